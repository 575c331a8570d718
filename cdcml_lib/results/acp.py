"""ACP-Net's own study: its table beside the paper's numbers, its claims judged, and REPORT.md's
section (Verma et al. 2019; docs/METHOD.md, section "13. The kit's ACP-Net study").

Inputs are the tables :mod:`cdcml_lib.runs.correspondence` returns: one row per (model, seed)
(``run_study``), the raw-input probes and chance (``raw_input_probes``) and the kit's runs read on
ACP-Net's task (``compare_kit_runs``).

Statistics. Every mean over seeds comes with a 95% t interval, mean ± t(0.975, n-1) · sd/sqrt(n).
The claims are judged PAIRED by seed: the per-seed difference A - B (the models of a seed share
pairs, batch order and the initial weights of shared parts), its mean and standard error
sd/sqrt(n); the verdict machinery is the one of the CDCML claims (:mod:`cdcml_lib.results.claims`:
a check *supports* when the estimate exceeds k standard errors, *contradicts* below -k, else
*undecided*; a claim holds when every check supports it), with k = t(0.975, n-1), so a check
decides exactly when its paired 95% interval excludes 0.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from cdcml_lib.data.evidence import md_comment, with_column
from cdcml_lib.results.claims import HOLDS, NO_DECISION, Check, _json_safe, interval_outcome, verdict_of
from cdcml_lib.workflow.paths import atomic_write_text, resolve

#: Correspondence accuracy (%) on IMAC, Verma et al. 2019 (abstract and results).
PAPER_ACCURACY = {"acp_net": 61.67, "l3_net": 57.17, "spectrogram_acp": 55.84}
NAMES = {"acp_net": "ACP-Net", "l3_net": "L3-Net", "spectrogram_acp": "Spectrogram-ACP"}
LEVEL = 0.95
SUBDIR = "acp_net"


def t_interval(values, level: float = LEVEL) -> tuple[float, float, float, int]:
    """Mean and the ``level`` t interval of the mean over seeds: (mean, low, high, n); with one
    value the interval is (nan, nan)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    m = float(v.mean())
    if n < 2:
        return m, float("nan"), float("nan"), n
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return m, m - half, m + half, n


def _fmt_ci(m: float, lo: float, hi: float, scale: float = 100.0, digits: int = 2) -> str:
    if math.isnan(m):
        return "–"
    if math.isnan(lo):
        return f"{m * scale:.{digits}f}"
    return f"{m * scale:.{digits}f} [{lo * scale:.{digits}f}, {hi * scale:.{digits}f}]"


def accuracy_table(per_seed: pd.DataFrame, models) -> pd.DataFrame:
    """Test correspondence accuracy (%) per model: mean and 95% interval over seeds, beside the paper."""
    rows = []
    for model in models:
        m, lo, hi, n = t_interval(per_seed.loc[per_seed["model"] == model, "acc_test"])
        rows.append({"model": model, "name": NAMES.get(model, model), "seeds": n,
                     "acc_mean": 100 * m, "acc_low": 100 * lo, "acc_high": 100 * hi,
                     "paper": PAPER_ACCURACY.get(model, float("nan"))})
    return pd.DataFrame(rows)


def probe_table(per_seed: pd.DataFrame, raw: dict, models) -> pd.DataFrame:
    """Probe accuracy (%) per model and modality: trained and untrained branches (mean and 95%
    interval over seeds), beside the probe on the raw inputs and chance."""
    rows = []
    raw_music = {"acp_net": "music_music_features"}
    for model in models:
        sel = per_seed[per_seed["model"] == model]
        for modality, tag in (("image", "img"), ("music", "mus")):
            m, lo, hi, n = t_interval(sel[f"probe_{tag}"])
            mi, loi, hii, _ = t_interval(sel[f"probe_{tag}_init"])
            raw_key = "image_pixels" if modality == "image" else raw_music.get(model, "music_log_spectrogram")
            rows.append({"model": model, "name": NAMES.get(model, model), "modality": modality, "seeds": n,
                         "probe_mean": 100 * m, "probe_low": 100 * lo, "probe_high": 100 * hi,
                         "init_mean": 100 * mi, "init_low": 100 * loi, "init_high": 100 * hii,
                         "raw_input": raw_key, "raw": 100 * raw[raw_key],
                         "chance": 100 * raw[f"{modality}_chance"],
                         "train_majority": 100 * raw.get(f"{modality}_train_majority", float("nan"))})
    return pd.DataFrame(rows)


def retrieval_table(per_seed: pd.DataFrame, models, compare: pd.DataFrame | None = None) -> pd.DataFrame:
    """Class retrieval (recall@K, MRR; both directions) per model, mean over seeds, the kit's
    compared runs (distance in their shared space) below."""
    cols = [c for c in per_seed.columns if c.startswith(("i2m_", "m2i_"))]
    rows = [{"model": NAMES.get(m, m), "ranked by": "correspondence logit",
             "seeds": int((per_seed["model"] == m).sum()),
             **per_seed.loc[per_seed["model"] == m, cols].mean().to_dict()} for m in models]
    if compare is not None and len(compare) and "status" in compare:
        ok = compare[compare["status"] == "ok"]
        for variant, group in ok.groupby("variant", sort=False):
            rows.append({"model": variant, "ranked by": "embedding distance", "seeds": len(group),
                         **group[[c for c in cols if c in group]].mean().to_dict()})
    return pd.DataFrame(rows)


def kit_runs_table(compare: pd.DataFrame) -> pd.DataFrame:
    """The kit's runs on ACP-Net's task: test accuracy (%) from the embedding distance and from the
    predicted score, thresholds fitted on validation; mean and 95% interval over seeds."""
    rows = []
    if compare is None or not len(compare) or "status" not in compare:
        return pd.DataFrame(rows)
    for variant, group in compare.groupby("variant", sort=False):
        ok = group[group["status"] == "ok"]
        row = {"variant": variant, "seeds": len(ok), "missing": int((group["status"] != "ok").sum())}
        for key in ("acc_dist", "acc_score"):
            m, lo, hi, _ = t_interval(ok[key]) if key in ok else (float("nan"),) * 3 + (0,)
            row.update({f"{key}_mean": 100 * m, f"{key}_low": 100 * lo, f"{key}_high": 100 * hi})
        rows.append(row)
    return pd.DataFrame(rows)


# --- claims ---------------------------------------------------------------------------------

def _paired(estimates: np.ndarray, what: str, metric: str, paper: float, numbers: dict) -> Check:
    """A check from per-seed estimates (positive favours the claim), judged as the CDCML claims'
    direction checks (results.claims): it supports when the ``LEVEL`` t interval of the mean lies
    above 0, contradicts when it lies below 0, and is undecided otherwise."""
    d = np.asarray(estimates, dtype=float)
    mean, low, high, n = t_interval(d)
    se = float(d[np.isfinite(d)].std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    outcome = interval_outcome(low, high) if n >= 2 else NO_DECISION
    return Check(metric=metric, what=what, estimate=mean, se=se, paper_estimate=paper, outcome=outcome,
                 numbers={**numbers, "n": n, "low": low, "high": high}, low=low, high=high)


def _by_seed(per_seed: pd.DataFrame, model: str, column: str) -> pd.Series:
    return per_seed[per_seed["model"] == model].set_index("seed")[column]


def paired_difference(per_seed: pd.DataFrame, better: str, worse: str, column: str = "acc_test") -> Check:
    """Check "``better`` beats ``worse`` on ``column``", paired by seed."""
    a, b = _by_seed(per_seed, better, column), _by_seed(per_seed, worse, column)
    seeds = a.index.intersection(b.index)
    paper = PAPER_ACCURACY.get(better, float("nan")) / 100 - PAPER_ACCURACY.get(worse, float("nan")) / 100
    return _paired((a[seeds] - b[seeds]).to_numpy(), f"{better} better than {worse}", column,
                   paper if column == "acc_test" else float("nan"),
                   {better: float(a[seeds].mean()), worse: float(b[seeds].mean())})


def above_reference(per_seed: pd.DataFrame, model: str, column: str, reference, label: str) -> Check:
    """Check "``model``'s ``column`` exceeds ``reference``" (a number, or a column paired by seed)."""
    a = _by_seed(per_seed, model, column)
    ref = _by_seed(per_seed, model, reference) if isinstance(reference, str) else pd.Series(float(reference), a.index)
    return _paired((a - ref[a.index]).to_numpy(), f"{model} {column} above {label}", column, float("nan"),
                   {column: float(a.mean()), label: float(ref.mean())})


CLAIMS = {
    "A1": ("ACP-Net > L3-Net > Spectrogram-ACP on correspondence accuracy.",
           "acp_net beats l3_net and l3_net beats spectrogram_acp on test accuracy, paired by seed."),
    "A2": ("Without emotion labels, the single-modality representations recognise emotion: the probe "
           "beats chance in both modalities.",
           "the probe on ACP-Net's trained image and music embeddings beats chance (the best "
           "constant answer: the share of the test split's most frequent class) on the test items, "
           "per seed."),
    "A3": ("(ours, not the paper's) Training adds the emotion information: the probe on the trained "
           "branches beats the probe on the same branches at initialisation.",
           "probe of the trained ACP-Net branches minus probe at initialisation (same seed), "
           "both modalities."),
}


def check_acp_claims(per_seed: pd.DataFrame, raw: dict) -> list[dict]:
    """Claims A1-A3 (``CLAIMS``), each with its checks and a verdict (claims.verdict_of)."""
    have = set(per_seed["model"])
    out = []
    for key, (text, reading) in CLAIMS.items():
        need = ["acp_net", "l3_net", "spectrogram_acp"] if key == "A1" else ["acp_net"]
        if not set(need) <= have:
            out.append({"claim": key, "text": text, "reading": reading, "verdict": "not checked",
                        "checks": []})
            continue
        if key == "A1":
            checks = [paired_difference(per_seed, "acp_net", "l3_net"),
                      paired_difference(per_seed, "l3_net", "spectrogram_acp")]
        elif key == "A2":
            checks = [above_reference(per_seed, "acp_net", "probe_img", raw["image_chance"], "chance"),
                      above_reference(per_seed, "acp_net", "probe_mus", raw["music_chance"], "chance")]
        else:
            checks = [above_reference(per_seed, "acp_net", "probe_img", "probe_img_init", "init"),
                      above_reference(per_seed, "acp_net", "probe_mus", "probe_mus_init", "init")]
        out.append({"claim": key, "text": text, "reading": reading,
                    "verdict": verdict_of([c.outcome for c in checks]), "checks": checks})
    return out


# --- writing ------------------------------------------------------------------------------------

def _md(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def accuracy_markdown(table: pd.DataFrame) -> str:
    view = pd.DataFrame({
        "model": table["name"], "seeds": table["seeds"],
        "accuracy % (ours, mean [95% CI])": [_fmt_ci(m, lo, hi, 1.0) for m, lo, hi in
                                             zip(table["acc_mean"], table["acc_low"], table["acc_high"])],
        "paper %": [f"{v:.2f}" for v in table["paper"]]})
    return _md(view)


def probe_markdown(table: pd.DataFrame) -> str:
    view = pd.DataFrame({
        "model": table["name"], "modality": table["modality"], "seeds": table["seeds"],
        "probe, trained % [95% CI]": [_fmt_ci(m, lo, hi, 1.0) for m, lo, hi in
                                      zip(table["probe_mean"], table["probe_low"], table["probe_high"])],
        "probe, at init % [95% CI]": [_fmt_ci(m, lo, hi, 1.0) for m, lo, hi in
                                      zip(table["init_mean"], table["init_low"], table["init_high"])],
        "raw input %": [f"{v:.2f} ({k})" for v, k in zip(table["raw"], table["raw_input"])],
        "chance % (test majority)": [f"{v:.2f}" for v in table["chance"]],
        "train majority %": [f"{v:.2f}" for v in table["train_majority"]]})
    return _md(view)


def claims_markdown(claims: list[dict]) -> str:
    lines = ["| # | claim | verdict | checks (paired by seed: mean difference [95% CI], outcome) |",
             "|---|---|---|---|"]
    for c in claims:
        checks = "; ".join(f"{k.what}: {100 * k.estimate:+.2f} pts [{100 * k.numbers['low']:+.2f}, "
                           f"{100 * k.numbers['high']:+.2f}], {k.outcome}" for k in c["checks"]) or "–"
        lines.append(f"| {c['claim']} | {c['text']} | **{c['verdict']}** | {checks} |")
    return "\n".join(lines)


def probe_words(claims: list[dict], probe: pd.DataFrame) -> str:
    """What the emotion probe shows, in plain words: A2 (the paper's claim) beside A3 (ours: does
    training add the emotion information?) and the probe on the raw inputs, so that "the probe beats
    chance" is not read as "training learned emotion" when the untrained branches do as well."""
    by = {c["claim"]: c for c in claims}
    a2, a3 = by.get("A2"), by.get("A3")
    if not a2 or not a3 or a3["verdict"] == "not checked":
        return ""
    text = (f"**What the probe shows.** A2 (the paper's claim, the probe beats chance) {a2['verdict']}; "
            f"A3 (training adds the emotion information) {a3['verdict']}")
    if a3["verdict"] == HOLDS:
        return text + ": the trained branches carry more emotion information than the same branches at initialisation."
    gaps = "; ".join(f"{k.metric.removeprefix('probe_')} {100 * k.estimate:+.2f} pts "
                     f"[{100 * k.low:+.2f}, {100 * k.high:+.2f}]" for k in a3["checks"])
    text += (f": the probe on ACP-Net's trained branches is not shown to beat the same probe on the "
             f"branches at initialisation ({gaps}), so on this benchmark the probe's success is not "
             f"shown to come from training.")
    raw = probe[probe["model"] == "acp_net"]
    if not raw.empty:
        text += " The same probe on the raw inputs: " + "; ".join(
            f"{r['modality']} {r['raw']:.2f}% ({r['raw_input']}) against {r['probe_mean']:.2f}% trained"
            for _, r in raw.iterrows()) + "."
    return text


def _round(df: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    return df.round(digits)


def write_acp_report(per_seed: pd.DataFrame, raw: dict, compare: pd.DataFrame | None, models,
                     reports_dir, evidence: dict | None = None) -> dict[str, Path]:
    """Write ``<reports>/acp_net/``: per_seed.csv, accuracy.{csv,md}, probe.{csv,md},
    retrieval.{csv,md}, kit_runs.{csv,md}, claims.{md,json} and summary.md (all of them, in one
    file, for REPORT.md). ``evidence`` (``data.evidence.describe_dataset``) goes into each: a CSV
    column, a Markdown comment, a JSON field."""
    out = resolve(reports_dir) / SUBDIR
    out.mkdir(parents=True, exist_ok=True)
    acc, probe = accuracy_table(per_seed, models), probe_table(per_seed, raw, models)
    retr = retrieval_table(per_seed, models, compare)
    kit = kit_runs_table(compare) if compare is not None else pd.DataFrame()
    claims = check_acp_claims(per_seed, raw)
    paths = {}
    for name, df in (("per_seed", per_seed), ("accuracy", acc), ("probe", probe), ("retrieval", retr),
                     ("kit_runs", kit)):
        paths[f"{name}.csv"] = out / f"{name}.csv"
        frame = with_column(_round(df), evidence) if evidence and not df.empty else _round(df)
        atomic_write_text(paths[f"{name}.csv"], frame.to_csv(index=False))
    kit_md = "(no kit runs to compare)" if kit.empty else _md(pd.DataFrame({
        "variant": kit["variant"], "seeds": kit["seeds"], "missing runs": kit["missing"],
        "accuracy % from distance [95% CI]": [_fmt_ci(m, lo, hi, 1.0) for m, lo, hi in
                                              zip(kit["acc_dist_mean"], kit["acc_dist_low"], kit["acc_dist_high"])],
        "accuracy % from score [95% CI]": [_fmt_ci(m, lo, hi, 1.0) for m, lo, hi in
                                           zip(kit["acc_score_mean"], kit["acc_score_low"], kit["acc_score_high"])]}))
    texts = {"accuracy.md": accuracy_markdown(acc), "probe.md": probe_markdown(probe),
             "retrieval.md": _md(_round(retr, 3)), "kit_runs.md": kit_md,
             "claims.md": claims_markdown(claims), "probe_words": probe_words(claims, probe)}
    head = md_comment(evidence) if evidence else ""
    for name, text in texts.items():
        if name.endswith(".md"):
            paths[name] = out / name
            atomic_write_text(paths[name], head + text + "\n")
    paths["claims.json"] = out / "claims.json"
    atomic_write_text(paths["claims.json"], json.dumps(_json_safe(
        {"evidence": evidence, "level": LEVEL, "probe_words": texts["probe_words"],
         "claims": [{**c, "checks": [asdict(k) for k in c["checks"]]} for c in claims]}),
        indent=2) + "\n")
    paths["summary.md"] = out / "summary.md"
    atomic_write_text(paths["summary.md"], head + "\n".join(report_lines(texts)) + "\n")
    return paths


def report_lines(texts: dict) -> list[str]:
    """REPORT.md's ACP-Net section from the Markdown tables (``texts`` keyed by file name)."""
    return ["## ACP-Net's own study: affective correspondence (Verma et al. 2019)", "",
            "Three emotion classes from VA, balanced true/false pairs (true = same class) on the "
            "dataset's splits; ACP-Net, L3-Net and Spectrogram-ACP trained with binary cross-entropy; "
            "test accuracy with 95% t intervals over seeds beside the paper's (which is on IMAC, not on "
            "this data). The protocol is rebuilt from the paper's description (docs/METHOD.md, "
            "section \"13. The kit's ACP-Net study\"): the authors' IMAC pairs and code are not used. "
            "Details: `notebooks/05_acp_net.ipynb`, files in `acp_net/`.", "",
            "### Correspondence accuracy", "", texts["accuracy.md"], "",
            "### The emotion probe (linear classifier on frozen embeddings, test items)", "",
            texts["probe.md"], "",
            "### Claims (paired by seed; a check decides when its 95% interval excludes 0)", "",
            texts["claims.md"], "", texts.get("probe_words", ""), "",
            "### Beyond the paper: the kit's runs on ACP-Net's task (thresholds fitted on validation)", "",
            texts["kit_runs.md"], "",
            "### Beyond the paper: retrieval with the emotion class as relevance (test items)", "",
            "Every test image ranks every test clip (and the reverse); relevant = same emotion class, "
            "so a query has many relevant items and recall@1 is the share of queries whose top item "
            "is of their class (`metrics.recall_at_k`, `metrics.mean_reciprocal_rank`).", "",
            texts["retrieval.md"]]


def report_section(reports_dir) -> list[str]:
    """The section for REPORT.md (``<reports>/acp_net/summary.md``), or a line saying how to make it."""
    path = resolve(reports_dir) / SUBDIR / "summary.md"
    if not path.is_file():
        return ["## ACP-Net's own study", "",
                f"Not run: `{path}` is missing (run notebooks/05_acp_net: `make acp CONFIG=<config>`)."]
    return path.read_text().rstrip("\n").split("\n")
