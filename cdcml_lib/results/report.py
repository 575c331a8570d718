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

from cdcml_lib.workflow.paths import atomic_write_text, draw_dir, repo_root, reports_dir, resolve  # reports_dir(config): the one place the rule lives
from cdcml_lib.matching import IMEMNET_TABLE1
from cdcml_lib.results import acp, guessing
from cdcml_lib.data.evidence import describe_dataset, markdown_box
from cdcml_lib.results.claims import (NOT_TESTABLE, UNDECIDED, UNTESTABLE, Rule, by_seeds_markdown, counts_sentence,
                                      family_wise_markdown, family_wise_words, projection_range, verdict_counts)
from cdcml_lib.results.tables import load_study
from cdcml_lib.runs.folder import is_finished, read_metrics, read_run_info, run_folder
from cdcml_lib.workflow.params import section

__all__ = ["reports_dir", "write_report", "render_report"]

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


def cpu_name() -> str:
    """The processor's model name (Linux), else what platform reports."""
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
    return {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "gpu": gpu, "torch": torch.__version__,
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
            done += is_finished(folder)
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
        cells = [f"{_count(counts[s].get(k))} / {IMEMNET_TABLE1[s][k]:,}" for k in keys]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    draws = stats.get("draws") or []
    if draws:
        lines += ["", f"The table is the folder's own split (seed {stats.get('seed', '?')}). Each study seed "
                  f"trains and is tested on its own draw of the split and pairs of the same items "
                  f"(`{draw_dir(data_dir, '<seed>')}/`, seeds {', '.join(map(str, draws))}); per split, "
                  "the range over the draws:", "", "| split | " + " | ".join(keys) + " |",
                  "|---|" + "---:|" * len(keys)]
        paths = [resolve(draw_dir(data_dir, d)) / "stats.json" for d in draws]
        per_draw = [_split_counts(_read_json(f)) for f in paths if f.is_file()]
        for s in SPLITS:
            cells = []
            for k in keys:
                values = [c[s][k] for c in per_draw if c and isinstance(c.get(s, {}).get(k), int)]
                cells.append(f"{min(values):,}-{max(values):,}" if values else "?")
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
    return lines + ["", f"Sum of the step times: {total:.1f} s ({total / 60:.1f} min). This is not the "
                        "study's wall time: `make reproduce` runs JOBS steps side by side, so the wall "
                        "time is shorter."]


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
    md = _required(reports / "tables" / "guessing.md", config).read_text().rstrip()
    return lines + ["", "### Against guessing", "", guessing.HOW_TO_READ, "", md]


def _verdict_words(claim: dict, bold: bool) -> str:
    """A verdict, and for a claim not decided a rough range of the seeds that might decide it at
    the measured spread (claims.projection_range: a projection, shown only as a range)."""
    verdict = f"**{claim['verdict']}**" if bold else claim["verdict"]
    needed = claim.get("seeds_to_decide")
    return verdict if needed is None else f"{verdict} ({projection_range(needed)})"


def _why(claim: dict) -> str:
    """The claim's one-line why (claims.json ``why``; a record written before it existed: its summary)."""
    return (claim.get("why") or claim.get("summary") or claim.get("reason", "")).replace("|", "/")


def _section_claims(reports: Path, config: str) -> list[str]:
    record = _read_json(_required(reports / "claims.json", config))
    rule = record.get("rule", {})
    counts = verdict_counts([c["verdict"] for c in record["claims"]])
    lines = ["## Claims of the paper, checked", "",
             f"**{len(record['claims'])} readings: {counts_sentence(counts)}.**", "",
             f"Rule: {rule.get('text', 'see claims.md')}. The verdict judges 'does not hold' corrected for "
             f"the claim's number of checks; checks comparing two variants that do not beat guessing are "
             f"not testable on this benchmark and left out; a fragile verdict may differ on another "
             f"machine. Details and every number behind each verdict: [claims.md](claims.md).", "",
             "| # | claim | verdict | why |", "|---|---|---|---|"]
    for c in record["claims"]:
        lines.append(f"| {c.get('id', c['number'])} | {c['claim']} | {_verdict_words(c, True)} | {_why(c)} |")
    if record.get("family_wise"):
        rule_fields = {k: v for k, v in rule.items() if k in Rule.__dataclass_fields__}
        lines += ["", "### The verdicts beside the rule without the correction", "",
                  family_wise_words(Rule(**rule_fields)), "", family_wise_markdown(record["family_wise"]).rstrip()]
    if len(record.get("by_seeds") or []) > 1:
        lines += ["", "### Verdicts by the number of seeds", "",
                  "Every claim judged again on the runs of the study's first n seeds (measured, not "
                  "projected).", "",
                  by_seeds_markdown(record["by_seeds"]).rstrip()]
    return lines


def _make_command(target: str, config: str) -> str:
    return f"make {target}" + ("" if config == "default" else f" CONFIG={config}")


def _section_figures(reports: Path, config: str = "default") -> list[str]:
    lines = ["## Figures", ""]
    pngs = sorted((reports / "figures").glob("*.png")) + sorted((reports / "embeddings").glob("*.png"))
    if not pngs:
        lines += ["No figures yet."]
    for p in pngs:
        rel = p.relative_to(reports).as_posix()
        lines += [f"![{p.stem}]({rel})", ""]
    mixing = modality_mixing_sentence(reports)
    if mixing:
        lines += [mixing, ""]
    return lines + _section_links(reports, config)


def modality_mixing_sentence(reports: Path) -> str | None:
    """The measured modality mixing of the UMAP maps (``embeddings/numbers.json``, written by
    notebooks/04_embeddings) as one sentence, or None when it was not measured."""
    path = reports / "embeddings" / "numbers.json"
    if not path.is_file():
        return None
    numbers = _read_json(path)
    runs = {r: n for r, n in numbers.items() if isinstance(n, dict) and n.get("same_modality_share") is not None}
    if not runs:
        return None
    chance = next(iter(runs.values())).get("chance_share")
    parts = [f"{100 * n['same_modality_share']:.0f}% for `{r}`" for r, n in runs.items()]
    return ("Modality mixing on the UMAP maps (measured by notebooks/04_embeddings, "
            "`embeddings/numbers.json`): of a point's nearest neighbours on the map, "
            + ", ".join(parts) + " share its modality"
            + (f" ({100 * chance:.0f}% if images and clips were mixed at random; 100% means two "
               "separate clouds)." if chance is not None else "."))


def _section_links(reports: Path, config: str) -> list[str]:
    """Links to what `make reproduce` writes but git does not keep (the interactive maps and the
    executed notebooks): each says what to run when its target is not there yet."""
    lines = ["## Interactive map and executed notebooks", "",
             "These files are written by the study's steps and are not kept by git, so a fresh "
             "clone does not have them until the steps have run."]
    maps = [("embeddings/map.html", "the interactive map of the CDCML run's space")] + [
        (p.relative_to(reports).as_posix(), f"the same map for `{p.stem[4:]}`")
        for p in sorted((reports / "embeddings").glob("map_*.html"))]
    for rel, what in maps:
        if (reports / rel).is_file():
            lines.append(f"- [{rel}]({rel}): {what}.")
        else:
            lines.append(f"- `{rel}` ({what}): not there yet; run `{_make_command('embeddings', config)}` "
                         f"(or `{_make_command('reproduce', config)}`).")
    executed = sorted((reports / "notebooks").glob("*.html"))
    if executed:
        lines += [f"- [notebooks/{p.name}](notebooks/{p.name}): the executed `{p.stem}` notebook."
                  for p in executed]
    else:
        lines.append(f"- `notebooks/*.html` (the executed notebooks, readable offline): not there yet; "
                     f"run `{_make_command('reproduce', config)}`.")
    return lines


def _best_epochs(study: dict, runs_dir: str | Path) -> list[tuple[str, int, int, str]]:
    """(run, best epoch, epochs done, how it ended) of every finished run of the study; how it
    ended is ``runs.schedule.ENDS`` ("epochs", "flattened", "cap"), or "?" for an older run."""
    out = []
    for v in dict.fromkeys(study["comparison"] + study["ablation"]):
        for seed in study["seeds"]:
            folder = run_folder(runs_dir, v, seed)
            info = read_run_info(folder)
            if is_finished(folder) and info.get("epochs_done"):
                metrics = read_metrics(folder)
                best = metrics.get("best_epoch")
                if isinstance(best, int):
                    out.append((folder.name, best, int(info["epochs_done"]), str(metrics.get("ended", "?"))))
    return out


def _section_epochs_kept(study: dict, runs_dir: str | Path) -> list[str]:
    """Per variant, the epoch each seed kept (lowest validation sim_mse), flagging the first epoch
    (the model barely trained) and the last (it may still have been improving)."""
    lines = ["## Epochs kept", "",
             "The epoch each run kept as its model (lowest validation similarity MSE) and the epochs it "
             "trained, seed by seed. **first**: kept after one epoch (the model barely trained); "
             "**last**: validation was still improving when training stopped; **cap**: the run reached "
             "the `epochs` cap before its validation curve flattened (the plateau rule, "
             "`cdcml_lib.runs.schedule`). Bold counts are runs to look at.", "",
             "| variant | epochs kept (per seed) | epochs trained (per seed) | first | last | cap |",
             "|---|---|---|---:|---:|---:|"]
    by_variant: dict[str, list[tuple[int, int, str]]] = {}
    for run, best, done, ended in _best_epochs(study, runs_dir):
        by_variant.setdefault(run.rsplit("-s", 1)[0], []).append((best, done, ended))
    bold = lambda n: f"**{n}**" if n else "0"  # noqa: E731
    for variant, kept in by_variant.items():
        firsts = sum(best == 1 for best, _, _ in kept)
        lasts = sum(best == done for best, done, _ in kept)
        caps = sum(ended == "cap" for _, _, ended in kept)
        lines.append(f"| {variant} | {', '.join(str(b) for b, _, _ in kept)} "
                     f"| {', '.join(str(d) for _, d, _ in kept)} | {bold(firsts)} | {bold(lasts)} | {bold(caps)} |")
    return lines


def _section_reference(reports: Path) -> list[str]:
    """The comparison with the committed reference (results.reference), as written by that step."""
    path = reports / "reference_comparison.md"
    if not path.is_file():
        return ["## Against the committed reference", "",
                "Not compared yet: `make reproduce` ends with this comparison."]
    body = path.read_text().split("\n", 1)[1].strip()   # below its own title
    return ["## Against the committed reference", "", body]


#: fewer validation songs than this and the best-epoch choice rests on too few songs to trust
MIN_VAL_SONGS = 10


def _section_caveats(study: dict, runs_dir: str | Path, data_dir: str | Path, reports: Path) -> list[str]:
    """What a reader should know before trusting the tables: metrics some variant has not learned
    (no better than guessing, from ``reports``' guessing table), runs whose best validation epoch is
    the last one (they may still be learning) and a validation split with few songs."""
    lines = ["## Read the results with these caveats", ""]
    found = []
    guessed, words = guessing.words_from_reports(reports)
    if words:
        found.append(f"- **No better than guessing** (section \"Against guessing\"): these variants {words}")
    epochs = _best_epochs(study, runs_dir)
    at_last = [r for r, best, done, _ in epochs if best == done]
    if at_last:
        found.append(f"- **Best epoch = last epoch** in {len(at_last)} of {len(epochs)} runs "
                     f"({', '.join(at_last[:6])}{', ...' if len(at_last) > 6 else ''}): validation "
                     "was still improving when training stopped, so these models may be "
                     "under-trained; more epochs could change the tables.")
    at_cap = [r for r, _, _, ended in epochs if ended == "cap"]
    if at_cap:
        found.append(f"- **Epoch cap reached** in {len(at_cap)} of {len(epochs)} runs "
                     f"({', '.join(at_cap[:6])}{', ...' if len(at_cap) > 6 else ''}): their validation "
                     "curve had not flattened by the train section's `epochs`.")
    stats_path = resolve(data_dir) / "stats.json"
    counts = _split_counts(_read_json(stats_path)) if stats_path.is_file() else None
    val_songs = (counts or {}).get("val", {}).get("songs")
    if isinstance(val_songs, int) and val_songs < MIN_VAL_SONGS:
        val = counts["val"]
        found.append(f"- **Tiny validation set**: {val_songs} songs ({_count(val.get('clips'))} clips, "
                     f"{_count(val.get('images'))} images, {_count(val.get('pairs'))} pairs). The best "
                     "epoch is chosen on it, so that choice is noisy; the test split decides the tables.")
    overlaps = [o for o in (_read_json(stats_path).get("split_overlap") or []) if any(o.get("shared", {}).values())] \
        if stats_path.is_file() else []
    for o in overlaps:
        shared = o["shared"]
        found.append(f"- **The {o['a']} and {o['b']} splits share items** (published lists, allowed by "
                     f"`allow_split_overlap`): {shared.get('songs', 0)} songs, {shared.get('clips', 0)} clips, "
                     f"{shared.get('images', 0)} images, {shared.get('pairs', 0)} pairs. Test results include "
                     "pairs shared with validation, so they flatter the models.")
    checked = (["every variant beats guessing on every error metric"] if guessed else []) \
        + ["best epochs before the last", f"at least {MIN_VAL_SONGS} validation songs"]
    return lines + (found or [f"None flagged ({'; '.join(checked)})."])


# --- the report ---------------------------------------------------------------------------

def render_report(config: str, reports_dir: str | Path, runs_dir: str | Path, data_dir: str | Path,
                  study: dict | None = None) -> str:
    """REPORT.md's text (see the module docstring for what it reads); ``study`` defaults to the
    study section of ``params/<config>.yaml``."""
    reports = resolve(reports_dir)
    study = study or load_study(config)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    head = [f"# CDCML reproduction report: configuration `{config}`", "",
            *markdown_box(describe_dataset(data_dir), study["seeds"]),
            f"Written {now} by `python -m cdcml_lib.results.report --config {config}` from the files of "
            f"`params/{config}.yaml`, `{runs_dir}` and `{data_dir}`. Paper: Zhao et al., "
            f"\"Emotion-Based End-to-End Matching Between Image and Music in Valence-Arousal Space\", "
            f"ACM MM 2020."]
    parts = [head, _section_runs(study, runs_dir), _section_data(data_dir), _section_hardware(),
             _section_timings(reports), _section_reference(reports),
             _section_caveats(study, runs_dir, data_dir, reports), _section_epochs_kept(study, runs_dir),
             _section_tables(reports, config), _section_claims(reports, config),
             acp.report_section(reports), _section_figures(reports, config)]
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
#: The README is led by the same study with more paired seeds (params/decisive.yaml, whose reports
#: are committed too) when its reports exist, with the default study's verdicts beside them.
README_STUDY = "default"
MORE_SEEDS_STUDY = "decisive"


def paired_seeds(claims: dict) -> int:
    """The most paired seeds behind any check of a claims record (the study's seed count)."""
    return max((check.get("numbers", {}).get("n_paired", 0)
                for c in claims["claims"] for check in c.get("checks", [])), default=0)


def not_decided(claims: dict) -> list[str]:
    """The ids of the claim readings whose verdict is 'not decided'."""
    return [str(c.get("id", c["number"])) for c in claims["claims"] if c["verdict"].startswith(UNDECIDED)]


#: the columns of the README's compact Table 3 (the similarity and the four VA MSEs)
COMPACT_METRICS = ("sim_mse", "sim_mae", "img_v_mse", "img_a_mse", "mus_v_mse", "mus_a_mse")


def compact_table(comparison_csv: Path) -> str:
    """Table 3 in a few columns: ours (mean over seeds) with the paper's value in parentheses."""
    import pandas as pd

    table = pd.read_csv(comparison_csv)
    lines = ["| method | seeds | " + " | ".join(f"{m} ↓" for m in COMPACT_METRICS) + " |",
             "|---|---:|" + "---:|" * len(COMPACT_METRICS)]
    for _, row in table.iterrows():
        name = row["paper_row"] if isinstance(row["paper_row"], str) else f"{row['variant']} (ours)"
        cells = [f"{row[f'{m}_mean']:.3f}" + ("" if pd.isna(row[f"{m}_paper"]) else f" ({row[f'{m}_paper']:.3f})")
                 for m in COMPACT_METRICS]
        lines.append(f"| {name} | {int(row['n_seeds'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _claims_rows(lead: dict, other: dict | None) -> list[str]:
    """The claims table: the leading study's verdicts and why, with the other study's verdicts beside."""
    theirs = {str(c.get("id", c["number"])): c for c in (other or {}).get("claims", [])}
    head = f"| # | claim | {paired_seeds(lead)} seeds |" + (f" {paired_seeds(other)} seeds |" if other else "")
    lines = [head + " why |", "|---|---|---|" + ("---|" if other else "") + "---|"]
    for c in lead["claims"]:
        key = str(c.get("id", c["number"]))
        beside = f" {theirs[key]['verdict'] if key in theirs else '-'} |" if other else ""
        lines.append(f"| {key} | {c['claim']} | **{c['verdict']}** |{beside} {_why(c)} |")
    return lines


def render_readme_results(config: str, reports_dir: str | Path, more_seeds_dir: str | Path | None = None) -> str:
    """The README's results section, led by the study with more seeds (``more_seeds_dir``, the
    60-seed study) when its reports exist: what the evidence is, the verdict counts of both studies,
    the claims table with each verdict's why, a compact Table 3 and the comparison of two machines'
    reproductions. Every number and word is read from the files the studies wrote."""
    reports = resolve(reports_dir)
    rel = reports.relative_to(repo_root()).as_posix()
    claims = _read_json(_required(reports / "claims.json", config))
    more_path = resolve(more_seeds_dir) / "claims.json" if more_seeds_dir else None
    more = _read_json(more_path) if more_path and more_path.is_file() else None
    lead, lead_dir = (more, more_path.parent) if more else (claims, reports)
    lead_rel = lead_dir.relative_to(repo_root()).as_posix()
    evidence = lead.get("evidence") or {}
    lines = [f"Generated by `make readme` from `{lead_rel}/`" + (f" and `{rel}/`" if more else "")
             + "; nothing here is typed by hand.", ""]
    if evidence:
        lines += [f"**Evidence: {evidence['description']}.** It can show {evidence['can_show']}. "
                  f"It cannot show {evidence['cannot_show']}.", ""]
    studies = [(lead, lead_rel)] + ([(claims, rel)] if more else [])
    lines += ["**Verdicts** (" + "; ".join(
        f"[{paired_seeds(c)} seeds]({r}/claims.md): {counts_sentence(verdict_counts([x['verdict'] for x in c['claims']]))}"
        for c, r in studies) + "). A verdict corrects 'does not hold' for the claim's number of checks; "
        "'not testable' means both compared variants do no better than always guessing the training mean; "
        "'fragile' means another machine's round-off may change it.", ""]
    lines += _claims_rows(lead, claims if more else None)
    table = lead_dir / "tables" / "comparison.csv"
    if table.is_file():
        lines += ["", f"**Table 3, compact** ({paired_seeds(lead)} seeds, test split, mean over seeds; the "
                      f"paper's IMEMNet value in parentheses, not comparable one to one; full tables with "
                      f"spreads: [{lead_rel}/REPORT.md]({lead_rel}/REPORT.md)):", "", compact_table(table)]
    _, words = guessing.words_from_reports(lead_dir)
    if words:
        lines += ["", f"**Against guessing**: some variants {words}"]
    for record, where in studies:   # each study's last comparison with its committed reference
        comparison = repo_root() / where / "reference_comparison.json"
        if comparison.is_file() and _read_json(comparison).get("headline"):
            result = _read_json(comparison)
            cpus = result.get("environment", {})
            machines = (f" ({cpus['reference'].get('cpu', '?')} then {cpus['fresh'].get('cpu', '?')})"
                        if cpus.get("reference") and cpus.get("fresh") else "")
            lines += ["", f"**Against the reference, {paired_seeds(record)} seeds**{machines} "
                          f"([{where}/reference_comparison.md]({where}/reference_comparison.md)): {result['headline']}"
                          + (f" Verdicts compared {result['verdicts_compared']}." if result.get("verdicts_compared") else "")]
    return "\n".join(lines)


def update_readme(config: str, reports_dir: str | Path, readme: str | Path = "README.md",
                  more_seeds_dir: str | Path | None = None) -> Path:
    """Replace the text between the README's results markers (atomically)."""
    path = resolve(readme)
    text = path.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise ValueError(f"{path}: the markers {README_BEGIN} and {README_END} are missing; "
                         "put them around the results section.")
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    body = render_readme_results(config, reports_dir, more_seeds_dir)
    atomic_write_text(path, f"{head}{README_BEGIN}\n{body}\n{README_END}{tail}")
    return path


def main(argv: list[str] | None = None) -> int:

    parser = argparse.ArgumentParser(prog="python -m cdcml_lib.results.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="default")
    parser.add_argument("--reports-dir", help="default: reports/ for default, reports/<config>/ otherwise")
    parser.add_argument("--runs-dir", help="default: runs/<config>")
    parser.add_argument("--data-dir", help="default: the dataset section's out_dir")
    parser.add_argument("--readme", action="store_true",
                        help="only rewrite README.md's results section (`make readme`: led by the decisive "
                             "study's reports, the default study's verdicts beside them); REPORT.md is left alone")
    args = parser.parse_args(argv)
    if args.readme:
        print(f"updated {update_readme(README_STUDY, reports_dir(README_STUDY), more_seeds_dir=reports_dir(MORE_SEEDS_STUDY))}")
        return 0
    try:
        out = write_report(args.config, args.reports_dir or reports_dir(args.config),
                           args.runs_dir or f"runs/{args.config}",
                           args.data_dir or section(args.config, "dataset")["out_dir"])
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
