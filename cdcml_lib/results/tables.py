"""Tables 3 and 4 of Zhao et al. 2020, rebuilt from our run folders, beside the paper's numbers.

Every number here is read from ``runs/<config>/<variant>-s<seed>/metrics.json`` (its ``test``
block) and summarised over seeds: the mean and the sample standard deviation (ddof=1; undefined
with one seed). The paper's numbers come from ``cdcml_lib/resources/paper_results.csv``, a copy of
the published Tables 3 and 4, and appear beside ours, never in place of them.

Outputs (all written by :func:`write_table` and :func:`plot_table`):
``<reports>/tables/<name>.{csv,md,tex}`` and ``<reports>/figures/<name>.png`` (+ ``<name>_retrieval.png``).
"""
from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from cdcml_lib.data.evidence import md_comment, png_metadata, tex_comment, with_column
from cdcml_lib.runs.folder import MissingRunError, read_run_info, read_test_metrics, run_folder
from cdcml_lib.workflow.paths import atomic_write_text, resolve
from cdcml_lib.workflow.params import ParamError, config_path, section

# The ten error metrics of the paper's tables (lower is better), in the paper's column order.
PAPER_METRICS = [
    "sim_mse", "sim_mae",
    "img_v_mse", "img_v_mae", "img_a_mse", "img_a_mae",
    "mus_v_mse", "mus_v_mae", "mus_a_mse", "mus_a_mae",
]
# Our retrieval metrics (higher is better); the paper has no numbers for them.
RETRIEVAL_METRICS = ["ndcg_at_10", "spearman", "corr_acc"]
METRICS = PAPER_METRICS + RETRIEVAL_METRICS
HIGHER_IS_BETTER = {m: m in RETRIEVAL_METRICS for m in METRICS}

# Our variant name -> the paper's row name, per table. `contrastive` is ours: no paper row.
# Table 4's rows are read from the paper's text (docs/METHOD.md, section "Rows of Table 4").
PAPER_ROW = {
    "comparison": {"sp_net": "SP-Net", "l3_net": "L3-Net", "acp_net": "ACP-Net", "cdcml": "CDCML"},
    "ablation": {"sim": "sim", "sim_cfr": "sim+cfr", "sim_cfr_cfm": "sim+cfr+cfm",
                 "sim_va": "sim+va", "cdcml": "sim+va+cfr+cfm+sfr"},
}
TABLE_TITLE = {"comparison": "Table 3: comparison with the baselines",
               "ablation": "Table 4: ablation of the loss terms"}


# --- the paper's numbers ------------------------------------------------------------------

def paper_results() -> pd.DataFrame:
    """The published Tables 3 and 4: columns ``table, row`` and the ten paper metrics."""
    return _paper_results().copy()


@lru_cache(maxsize=1)
def _paper_results() -> pd.DataFrame:
    text = resources.files("cdcml_lib").joinpath("resources", "paper_results.csv").read_text()
    from io import StringIO

    df = pd.read_csv(StringIO(text))
    missing = [c for c in ["table", "row", *PAPER_METRICS] if c not in df.columns]
    if missing:
        raise ValueError(f"cdcml_lib/resources/paper_results.csv: columns {missing} are missing; "
                         f"restore it from shared/paper/results.csv.")
    return df


def paper_row(table: str, variant: str) -> str | None:
    """The paper's row name for our ``variant`` in ``table``, or None (e.g. `contrastive`)."""
    return PAPER_ROW[table].get(variant)


def paper_numbers(table: str, variant: str) -> dict[str, float]:
    """The paper's ten metrics for ``variant`` in ``table``; empty when the paper has no such row."""
    name = paper_row(table, variant)
    if name is None:
        return {}
    df = _paper_results()
    hit = df[(df["table"] == table) & (df["row"] == name)]
    if len(hit) != 1:
        raise ValueError(f"cdcml_lib/resources/paper_results.csv: expected one row "
                         f"table={table}, row={name}, found {len(hit)}.")
    return {m: float(hit.iloc[0][m]) for m in PAPER_METRICS}


# --- reading run folders (cdcml_lib.runs.folder owns their files) ---------------------------

def gather_runs(runs_dir: str | Path, variants: list[str], seeds: list[int]) -> pd.DataFrame:
    """One row per (variant, seed): the test metrics, ``wall_s`` and ``device`` from run.json.

    Every run must have finished: otherwise a :class:`MissingRunError` lists each missing run
    folder with the command that produces it.
    """
    rows, missing = [], []
    for variant in dict.fromkeys(variants):  # a variant in both tables (cdcml) is read once
        for seed in seeds:
            folder = run_folder(runs_dir, variant, seed)
            try:
                metrics = read_test_metrics(folder, METRICS, variant, seed)
            except MissingRunError as err:
                missing.append(str(err))
                continue
            info = read_run_info(folder)
            rows.append({"variant": variant, "seed": int(seed), **metrics,
                         "wall_s": float(info.get("wall_s", float("nan"))),
                         "device": str(info.get("device", ""))})
    if missing:
        raise MissingRunError(f"{len(missing)} run(s) missing:\n" + "\n".join(missing))
    return pd.DataFrame(rows)


# --- summaries ----------------------------------------------------------------------------

def summarise(per_seed: pd.DataFrame, variants: list[str]) -> pd.DataFrame:
    """Mean and sample standard deviation (ddof=1) over seeds per variant and metric.

    Returns one row per variant (in ``variants`` order) with ``n_seeds`` and ``<m>_mean``,
    ``<m>_std`` for every metric; the std is NaN with one seed.
    """
    out = []
    for variant in variants:
        sub = per_seed[per_seed["variant"] == variant]
        if sub.empty:
            raise KeyError(f"no runs of variant '{variant}' in the gathered table "
                           f"(have: {sorted(per_seed['variant'].unique())}).")
        row = {"variant": variant, "n_seeds": len(sub)}
        for m in METRICS:
            values = sub[m].to_numpy(dtype=float)
            row[f"{m}_mean"] = float(values.mean())
            row[f"{m}_std"] = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
        out.append(row)
    return pd.DataFrame(out)


def study_table(per_seed: pd.DataFrame, variants: list[str], table: str) -> pd.DataFrame:
    """Our summary for ``table`` ('comparison' or 'ablation') with the paper's number beside it.

    Columns: ``variant, paper_row, n_seeds`` then, per metric, ``<m>_mean, <m>_std, <m>_paper``
    (``_paper`` is NaN where the paper has no number: our extra variant and retrieval metrics).
    """
    if table not in PAPER_ROW:
        raise ValueError(f"table must be one of {sorted(PAPER_ROW)}, not {table!r}.")
    ours = summarise(per_seed, variants)
    cols = {"variant": ours["variant"],
            "paper_row": [paper_row(table, v) or "" for v in ours["variant"]],
            "n_seeds": ours["n_seeds"]}
    for m in METRICS:
        cols[f"{m}_mean"] = ours[f"{m}_mean"]
        cols[f"{m}_std"] = ours[f"{m}_std"]
        cols[f"{m}_paper"] = [paper_numbers(table, v).get(m, float("nan")) for v in ours["variant"]]
    return pd.DataFrame(cols)


def comparison_table(per_seed: pd.DataFrame, variants: list[str]) -> pd.DataFrame:
    """Table 3 (CDCML against SP-Net, L3-Net, ACP-Net, and our contrastive baseline)."""
    return study_table(per_seed, variants, "comparison")


def ablation_table(per_seed: pd.DataFrame, variants: list[str]) -> pd.DataFrame:
    """Table 4 (the loss terms switched on one family at a time; the last row is CDCML)."""
    return study_table(per_seed, variants, "ablation")


# --- writing ------------------------------------------------------------------------------

def _fmt(x: float, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _cell(row: pd.Series, m: str, pm: str) -> str:
    text = _fmt(row[f"{m}_mean"])
    if not math.isnan(row[f"{m}_std"]):
        text += f"{pm}{_fmt(row[f'{m}_std'])}"
    if not math.isnan(row[f"{m}_paper"]):
        text += f" ({_fmt(row[f'{m}_paper'])})"
    return text


def best_variant(table: pd.DataFrame, metric: str) -> str:
    """The variant with the best mean on ``metric`` (lowest error, highest retrieval score)."""
    means = table.set_index("variant")[f"{metric}_mean"]
    return str(means.idxmax() if HIGHER_IS_BETTER[metric] else means.idxmin())


def to_markdown(table: pd.DataFrame) -> str:
    """A Markdown table: ``mean ± std (paper)`` per metric, our best mean in bold; arrows give
    the better direction."""
    head = ["variant", "paper row", "seeds"] + [f"{m} {'↑' if HIGHER_IS_BETTER[m] else '↓'}" for m in METRICS]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * len(METRICS)) + "|"]
    best = {m: best_variant(table, m) for m in METRICS}
    for _, row in table.iterrows():
        cells = [row["variant"], row["paper_row"] or "(ours)", str(int(row["n_seeds"]))]
        cells += [f"**{_cell(row, m, ' ± ')}**" if best[m] == row["variant"] else _cell(row, m, " ± ")
                  for m in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_latex(table: pd.DataFrame, caption: str) -> str:
    """A booktabs LaTeX table (needs ``\\usepackage{booktabs}``); paper numbers in parentheses."""
    def esc(s: str) -> str:
        return s.replace("_", r"\_").replace("&", r"\&")

    spec = "ll" + "r" * len(METRICS)
    lines = [r"\begin{table}[t]", r"\centering", r"\scriptsize", rf"\caption{{{esc(caption)}}}",
             rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(["Variant", "Seeds"] + [esc(m) + (r"$\uparrow$" if HIGHER_IS_BETTER[m] else r"$\downarrow$")
                                                for m in METRICS]) + r" \\",
             r"\midrule"]
    for _, row in table.iterrows():
        name = esc(row["paper_row"] or f"{row['variant']} (ours)")
        cells = [name, str(int(row["n_seeds"]))] + [_cell(row, m, r"$\pm$") for m in METRICS]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, name: str, reports_dir: str | Path,
                evidence: dict | None = None) -> dict[str, Path]:
    """Write ``<reports>/tables/<name>.{csv,md,tex}``; return the paths by extension. ``evidence``
    (``data.evidence.describe_dataset``) goes into each: a CSV column, a Markdown and a LaTeX comment."""
    out = resolve(reports_dir) / "tables"
    out.mkdir(parents=True, exist_ok=True)
    title = TABLE_TITLE.get(name, name)
    caption = (f"{title}. Ours: mean $\\pm$ standard deviation over seeds on the test split; "
               f"the paper's number in parentheses.")
    paths = {ext: out / f"{name}.{ext}" for ext in ("csv", "md", "tex")}
    csv = with_column(table, evidence) if evidence else table
    atomic_write_text(paths["csv"], csv.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(paths["md"], (md_comment(evidence) if evidence else "") + to_markdown(table))
    atomic_write_text(paths["tex"], (tex_comment(evidence) if evidence else "") + to_latex(table, caption))
    return paths


def plot_table(table: pd.DataFrame, name: str, reports_dir: str | Path,
               evidence: dict | None = None) -> list[Path]:
    """Bar plots of ``table``: ours (mean, seed-std error bars) beside the paper's, per metric.

    Writes ``<reports>/figures/<name>.png`` (the ten paper metrics) and
    ``<reports>/figures/<name>_retrieval.png`` (ours only: the paper has no retrieval numbers).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = resolve(reports_dir) / "figures"
    out.mkdir(parents=True, exist_ok=True)
    labels = [r or v for v, r in zip(table["variant"], table["paper_row"])]
    x = np.arange(len(table))
    written = []
    for suffix, metrics, ncols in (("", PAPER_METRICS, 5), ("_retrieval", RETRIEVAL_METRICS, 3)):
        nrows = math.ceil(len(metrics) / ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.9 * nrows), squeeze=False)
        for ax, m in zip(axes.flat, metrics):
            std = table[f"{m}_std"].fillna(0.0)
            # --- issue 16 (helper): retrieval metrics differ in the 2nd decimal, bars from 0
            # hide that: dots with seed error bars on an axis zoomed to the values, said so
            if suffix == "_retrieval":
                mean = table[f"{m}_mean"]
                ax.errorbar(x, mean, yerr=std, fmt="o", capsize=3, color="tab:blue",
                            label="ours (mean ± sd)")
                lo, hi = float((mean - std).min()), float((mean + std).max())
                pad = max(0.1 * (hi - lo), 0.005)
                ax.set_ylim(lo - pad, hi + pad)
                ax.set_ylabel("axis zoomed (not from 0)", fontsize=7)
                ax.grid(axis="y", alpha=0.3)
            # --- end issue 16
            else:
                ax.bar(x - 0.2, table[f"{m}_mean"], 0.4, yerr=std, capsize=3, label="ours (mean ± sd)",
                       color="tab:blue")
            paper = table[f"{m}_paper"]
            if paper.notna().any():
                ax.bar(x + 0.2, paper.fillna(0.0), 0.4, label="paper", color="tab:gray")
            ax.set_title(f"{m} {'↑' if HIGHER_IS_BETTER[m] else '↓'}", fontsize=9)
            ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
            ax.tick_params(axis="y", labelsize=7)
        for ax in list(axes.flat)[len(metrics):]:
            ax.axis("off")
        handles, names = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, names, loc="upper right", fontsize=8)
        fig.suptitle(TABLE_TITLE.get(name, name) + ("" if not suffix else " (retrieval, ours only)"), fontsize=10)
        fig.tight_layout(rect=(0, 0, 1, 0.95))
        path = out / f"{name}{suffix}.png"
        fig.savefig(path, dpi=110, metadata=png_metadata(evidence) if evidence else None)
        plt.close(fig)
        written.append(path)
    return written


def load_study(config: str) -> dict:
    """The ``study`` section of ``params/<config>.yaml`` (seeds, comparison, ablation), checked."""

    study = section(config, "study")
    for key, kind in (("seeds", int), ("comparison", str), ("ablation", str)):
        value = study.get(key)
        if not isinstance(value, list) or not value or not all(isinstance(v, kind) for v in value):
            raise ParamError(f"{config_path(config)}: study.{key} must be a non-empty list of "
                             f"{kind.__name__} (got {value!r}).")
    return study


def write_tables(study: dict, runs_dir: str | Path, reports_dir: str | Path,
                 evidence: dict | None = None) -> dict[str, pd.DataFrame]:
    """Gather the study's runs and write both tables and their plots. Returns the tables and
    the per-seed numbers under ``'per_seed'``."""
    per_seed = gather_runs(runs_dir, study["comparison"] + study["ablation"], study["seeds"])
    tables = {"comparison": comparison_table(per_seed, study["comparison"]),
              "ablation": ablation_table(per_seed, study["ablation"])}
    for name, table in tables.items():
        write_table(table, name, reports_dir, evidence)
        plot_table(table, name, reports_dir, evidence)
    return {**tables, "per_seed": per_seed}
