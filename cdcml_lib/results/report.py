"""REPORT.md: what was run, on what, how long each step took, the tables, the claims verdicts
and the key figures, all read from the files the study's steps wrote.

    python -m cdcml_lib.results.report --config smoke

Inputs: ``params/<config>.yaml`` (study section), the run folders (``run.json``), the dataset's
``stats.json`` (Table-1 counts and sigma), ``<reports>/timings/*.json`` (written by
``cdcml_lib.workflow.nbrun``), ``<reports>/tables/*.md`` and ``<reports>/claims.json`` (written by
notebooks/03_tables), and any PNG under ``<reports>/figures`` and ``<reports>/embeddings``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
from pathlib import Path

from cdcml_lib.workflow.paths import atomic_write_text, repo_root, reports_dir, resolve  # reports_dir(config): the one place the rule lives
from cdcml_lib.results.tables import load_study, read_run_info, run_folder

__all__ = ["reports_dir", "write_report", "render_report"]

# Table 1 of Zhao et al. 2020 (IMEMNet), shown beside the counts of the dataset we used.
PAPER_TABLE1 = {"train": {"songs": 1442, "clips": 28835, "images": 20496, "pairs": 109525},
                "val": {"songs": 90, "clips": 1759, "images": 1281, "pairs": 8795},
                "test": {"songs": 270, "clips": 5223, "images": 3843, "pairs": 26115},
                "total": {"songs": 1802, "clips": 35817, "images": 25620, "pairs": 144435}}
SPLITS = ("train", "val", "test")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}).") from err


def _split_counts(stats: dict) -> dict | None:
    """The per-split counts in stats.json: the first mapping keyed by train/val/test."""
    candidates = [stats] + [v for v in stats.values() if isinstance(v, dict)]
    for c in candidates:
        if all(isinstance(c.get(s), dict) for s in SPLITS):
            return {s: c[s] for s in (*SPLITS, "total") if isinstance(c.get(s), dict)}
    return None


def _count(value) -> str:
    return f"{value:,}" if isinstance(value, int) else "?"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict:
    """The machine writing the report: CPU name and count, GPU name (if any), torch version."""
    import os

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {"cpu": _cpu_name(), "cpu_count": os.cpu_count(), "gpu": gpu, "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform()}


# --- sections -----------------------------------------------------------------------------

def _section_runs(study: dict, runs_dir: str | Path) -> list[str]:
    variants = list(dict.fromkeys(study["comparison"] + study["ablation"]))
    lines = ["## What was run", "",
             f"{len(variants)} variants x {len(study['seeds'])} seeds (seeds {study['seeds']}); "
             f"Table 3 rows: {', '.join(study['comparison'])}; Table 4 rows: {', '.join(study['ablation'])}.", "",
             "| variant | runs finished | training time (s, summed over seeds) | device | torch |",
             "|---|---:|---:|---|---|"]
    total = 0.0
    for v in variants:
        infos, done = [], 0
        for seed in study["seeds"]:
            folder = run_folder(runs_dir, v, seed)
            infos.append(read_run_info(folder))
            done += (folder / "metrics.json").is_file()
        wall = sum(float(i.get("wall_s") or 0.0) for i in infos)
        total += wall
        devices = sorted({str(i.get("device_name") or i["device"]) for i in infos if i.get("device")}) or ["?"]
        torches = sorted({str(i["torch"]) for i in infos if i.get("torch")}) or ["?"]
        lines.append(f"| {v} | {done}/{len(study['seeds'])} | {wall:.1f} | {', '.join(devices)} "
                     f"| {', '.join(torches)} |")
    lines += ["", f"Training time of all runs together: {total:.1f} s ({total / 60:.1f} min)."]
    return lines


def _section_data(data_dir: str | Path) -> list[str]:
    path = resolve(data_dir) / "stats.json"
    lines = ["## Data", ""]
    if not path.is_file():
        return lines + [f"No `{path}`: the dataset step has not run (`make data`)."]
    stats = _read_json(path)
    sigma = stats.get("sigma")
    built = (stats.get("timings_s") or {}).get("total_s")
    lines.append(f"Dataset folder `{data_dir}`; sigma (Eq. 1, the mean image-music label distance) = "
                 f"{sigma:.4f}; seed {stats.get('seed', '?')}"
                 + (f"; built in {built:.1f} s." if isinstance(built, (int, float)) else ".")
                 if isinstance(sigma, (int, float)) else f"Dataset folder `{data_dir}`; no sigma in `{path}`.")
    counts = _split_counts(stats)
    if counts is None:
        return lines + ["", f"(`{path}` has no per-split counts keyed train/val/test.)"]
    keys = [k for k in ("songs", "clips", "images", "pairs") if any(k in counts[s] for s in SPLITS)]
    lines += ["", "| split | " + " | ".join(f"{k} (ours / paper)" for k in keys) + " |",
              "|---|" + "---:|" * len(keys)]
    for s in counts:
        cells = [f"{_count(counts[s].get(k))} / {PAPER_TABLE1[s][k]:,}" for k in keys]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return lines


def _section_hardware() -> list[str]:
    hw = hardware()
    return ["## Hardware (the machine that wrote this report)", "",
            f"CPU: {hw['cpu']} ({hw['cpu_count']} logical cores); GPU: {hw['gpu']}; torch {hw['torch']}; "
            f"Python {hw['python']}; {hw['platform']}. The device of each run is in the table above."]


def _section_timings(reports: Path) -> list[str]:
    files = sorted((reports / "timings").glob("*.json"))
    lines = ["## How long each step took", ""]
    if not files:
        return lines + ["No step timings (`<reports>/timings/*.json`, written by `python -m cdcml_lib.workflow.nbrun`)."]
    records = [_read_json(f) for f in files]
    lines += ["| step | wall time (s) | finished |", "|---|---:|---|"]
    for r, f in zip(records, files):
        lines.append(f"| {r.get('step', f.stem)} | {float(r.get('wall_s', 0.0)):.1f} | {r.get('finished', '?')} |")
    total = sum(float(r.get("wall_s", 0.0)) for r in records)
    return lines + ["", f"All notebook steps together: {total:.1f} s ({total / 60:.1f} min)."]


def _required(path: Path, config: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run notebooks/03_tables first "
                                f"(`make tables CONFIG={config}`), then write the report again.")
    return path


def _section_tables(reports: Path, config: str) -> list[str]:
    lines = ["## Results", "",
             "Ours: mean ± standard deviation over seeds on the test split (our best mean in bold); "
             "the paper's number in parentheses. ↓ lower is better, ↑ higher is better. CSV and LaTeX (booktabs) versions "
             "are in `tables/`."]
    for name, title in (("comparison", "Table 3: comparison with the baselines"),
                        ("ablation", "Table 4: ablation of the loss terms")):
        md = _required(reports / "tables" / f"{name}.md", config).read_text().rstrip()
        lines += ["", f"### {title}", "", md]
    return lines


def _section_claims(reports: Path, config: str) -> list[str]:
    record = _read_json(_required(reports / "claims.json", config))
    rule = record.get("rule", {})
    lines = ["## Claims of the paper, checked", "",
             f"Rule: a difference counts when it exceeds {rule.get('k_sigma', float('nan')):g} standard errors "
             f"across seeds (at least {rule.get('min_seeds', '?')} seeds). Details and every number "
             f"behind each verdict: [claims.md](claims.md).", "",
             "| # | claim | verdict | checks |", "|---|---|---|---|"]
    for c in record["claims"]:
        reason = (c.get("summary") or c["reason"]).replace("|", "/")
        lines.append(f"| {c['number']} | {c['claim']} | **{c['verdict']}** | {reason} |")
    return lines


def _section_figures(reports: Path) -> list[str]:
    lines = ["## Figures", ""]
    pngs = sorted((reports / "figures").glob("*.png")) + sorted((reports / "embeddings").glob("*.png"))
    if not pngs:
        return lines + ["No figures yet."]
    for p in pngs:
        rel = p.relative_to(reports).as_posix()
        lines += [f"![{p.stem}]({rel})", ""]
    html = reports / "embeddings" / "map.html"
    if html.is_file():
        lines.append("Interactive map of the shared space: [embeddings/map.html](embeddings/map.html).")
    return lines


# --- the report ---------------------------------------------------------------------------

def render_report(config: str, reports_dir: str | Path, runs_dir: str | Path, data_dir: str | Path,
                  study: dict | None = None) -> str:
    """REPORT.md's text (see the module docstring for what it reads); ``study`` defaults to the
    study section of ``params/<config>.yaml``."""
    reports = resolve(reports_dir)
    study = study or load_study(config)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    head = [f"# CDCML reproduction report: configuration `{config}`", "",
            f"Written {now} by `python -m cdcml_lib.results.report --config {config}` from the files of "
            f"`params/{config}.yaml`, `{runs_dir}` and `{data_dir}`. Paper: Zhao et al., "
            f"\"Emotion-Based End-to-End Matching Between Image and Music in Valence-Arousal Space\", "
            f"ACM MM 2020."]
    parts = [head, _section_runs(study, runs_dir), _section_data(data_dir), _section_hardware(),
             _section_timings(reports), _section_tables(reports, config), _section_claims(reports, config),
             _section_figures(reports)]
    return "\n\n".join("\n".join(p) for p in parts) + "\n"


def write_report(config: str, reports_dir: str | Path, runs_dir: str | Path, data_dir: str | Path,
                 study: dict | None = None) -> Path:
    """Write ``<reports>/REPORT.md`` (atomically) and return its path."""
    text = render_report(config, reports_dir, runs_dir, data_dir, study)
    out = resolve(reports_dir) / "REPORT.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(out)
    return out


# --- the README's results section ----------------------------------------------------------

README_BEGIN = "<!-- results:begin -->"
README_END = "<!-- results:end -->"


def render_readme_results(config: str, reports_dir: str | Path) -> str:
    """The README's results section: Table 3 as written, the claims verdicts and one figure,
    all read from the files the study wrote (nothing here is typed by hand)."""
    reports = resolve(reports_dir)
    rel = reports.relative_to(repo_root()).as_posix()
    claims = _read_json(_required(reports / "claims.json", config))
    table = _required(reports / "tables" / "comparison.md", config).read_text().strip()
    lines = [f"Written by `python -m cdcml_lib.results.report --config {config} --readme` from `{rel}/` "
             f"(`make reproduce` regenerates all of it). These numbers come from the **embedded "
             f"benchmark** (configuration `{config}`), not from IMEMNet: they test the method and "
             f"the paper's claims on data whose emotions are known, and are not comparable one to one "
             f"with the paper's values (in parentheses). The whole report: [{rel}/REPORT.md]({rel}/REPORT.md).",
             "", "**Table 3** (test split; mean ± sd over seeds; the paper's value in parentheses):", "",
             table, "", "**The paper's claims on our numbers** (rule: "
             f"{claims.get('rule', {}).get('k_sigma', 2):g} standard errors across seeds; details in "
             f"[{rel}/claims.md]({rel}/claims.md)):", "", "| # | claim | verdict |", "|---|---|---|"]
    for c in claims["claims"]:
        lines.append(f"| {c['number']} | {c['claim']} | {c['verdict']} |")
    figure = reports / "figures" / "comparison.png"
    if figure.is_file():
        lines += ["", f"![Table 3 as bars, ours with seed error bars beside the paper's]({rel}/figures/comparison.png)"]
    umap = reports / "embeddings" / "umap_compare.png"
    if umap.is_file():
        lines += ["", f"![UMAP of the shared space: CDCML beside the Sim-only ablation]({rel}/embeddings/umap_compare.png)"]
    return "\n".join(lines)


def update_readme(config: str, reports_dir: str | Path, readme: str | Path = "README.md") -> Path:
    """Replace the text between the README's results markers (atomically)."""
    path = resolve(readme)
    text = path.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise ValueError(f"{path}: the markers {README_BEGIN} and {README_END} are missing; "
                         "put them around the results section.")
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    body = render_readme_results(config, reports_dir)
    atomic_write_text(path, f"{head}{README_BEGIN}\n{body}\n{README_END}{tail}")
    return path


def main(argv: list[str] | None = None) -> int:
    from cdcml_lib.workflow.params import section

    parser = argparse.ArgumentParser(prog="python -m cdcml_lib.results.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="default")
    parser.add_argument("--reports-dir", help="default: reports/ for default, reports/<config>/ otherwise")
    parser.add_argument("--runs-dir", help="default: runs/<config>")
    parser.add_argument("--data-dir", help="default: the dataset section's out_dir")
    parser.add_argument("--readme", action="store_true",
                        help="also rewrite README.md's results section from these reports")
    args = parser.parse_args(argv)
    try:
        out = write_report(args.config, args.reports_dir or reports_dir(args.config),
                           args.runs_dir or f"runs/{args.config}",
                           args.data_dir or section(args.config, "dataset")["out_dir"])
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    if args.readme:
        print(f"updated {update_readme(args.config, args.reports_dir or reports_dir(args.config))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
