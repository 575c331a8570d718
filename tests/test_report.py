"""REPORT.md from fabricated runs, dataset stats and step timings."""
import json
from pathlib import Path

import pandas as pd
import pytest

from cdcml_lib.results import claims as C
from cdcml_lib.results import guessing as G
from cdcml_lib.results import report as R
from cdcml_lib.results import tables as T
from cdcml_lib.workflow.paths import repo_root

STUDY = T.load_study("smoke")  # the CLI reads it from params/smoke.yaml: fabricate the same runs
VARIANTS = list(dict.fromkeys(STUDY["comparison"] + STUDY["ablation"]))


def fabricate(tmp_path: Path) -> dict:
    runs, reports, data = tmp_path / "runs" / "smoke", tmp_path / "reports", tmp_path / "data"
    for i, v in enumerate(VARIANTS):
        for seed in STUDY["seeds"]:
            folder = runs / f"{v}-s{seed}"
            folder.mkdir(parents=True)
            test = {m: 0.01 * (i + 1) + 0.001 * (seed % 2) for m in T.METRICS}
            (folder / "metrics.json").write_text(json.dumps({"schema": 1, "best_epoch": 1, "val": test,
                                                             "test": test}))
            (folder / "run.json").write_text(json.dumps({"status": "finished", "wall_s": 10.0 + i,
                                                         "device": "cpu", "torch": "2.x"}))
    data.mkdir()
    counts = {s: {"songs": n, "clips": 5 * n, "images": 20 * n, "pairs": 50 * n}
              for s, n in (("train", 7), ("val", 1), ("test", 2))}
    (data / "stats.json").write_text(json.dumps({"splits": counts, "sigma": 0.4123, "seed": 0}))
    (reports / "timings").mkdir(parents=True)
    (reports / "timings" / "01_dataset.json").write_text(
        json.dumps({"step": "01_dataset", "wall_s": 3.25, "finished": "2026-01-01T00:00:00+00:00"}))
    (reports / "embeddings").mkdir()
    (reports / "embeddings" / "umap.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return {"runs": runs, "reports": reports, "data": data}


def write_tables_and_claims(d: dict) -> list:
    per_seed = T.gather_runs(d["runs"], STUDY["comparison"] + STUDY["ablation"], STUDY["seeds"])
    T.write_table(T.comparison_table(per_seed, STUDY["comparison"]), "comparison", d["reports"])
    T.write_table(T.ablation_table(per_seed, STUDY["ablation"]), "ablation", d["reports"])
    guesses = pd.DataFrame([{"seed": s, **{m: 0.5 for m in T.PAPER_METRICS}} for s in STUDY["seeds"]])
    G.write_guessing(G.guessing_table(per_seed, guesses, VARIANTS), d["reports"])
    claims = C.check_claims(per_seed)
    C.write_claims(claims, d["reports"])
    return claims


def test_report_holds_what_was_run_the_tables_and_the_verdicts(tmp_path):
    d = fabricate(tmp_path)
    claims = write_tables_and_claims(d)
    out = R.write_report("smoke", d["reports"], d["runs"], d["data"], study=STUDY)
    text = out.read_text()
    assert out == d["reports"] / "REPORT.md"
    for name in ("comparison", "ablation"):
        assert (d["reports"] / "tables" / f"{name}.md").read_text().strip() in text
    for c in claims:
        assert f"| {c.number}{c.part} | {c.claim} | **{c.verdict}** |" in text
    n = len(STUDY["seeds"])
    assert f"{len(VARIANTS)} variants x {n} seeds" in text
    wall = n * (10.0 + VARIANTS.index("sim_va"))  # run.json wall_s summed over seeds
    assert f"| sim_va | {n}/{n} | {wall:.1f} |" in text
    assert "0.4123" in text and "| train | 7 / 1,442 | 35 / 28,835 |" in text
    assert "| 01_dataset | 3.2 |" in text or "| 01_dataset | 3.3 |" in text
    assert "torch" in text and "CPU:" in text
    assert "![umap](embeddings/umap.png)" in text
    assert "[claims.md](claims.md)" in text


def test_report_without_tables_says_which_step_to_run(tmp_path):
    d = fabricate(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"comparison.md is missing: run notebooks/03_tables"):
        R.write_report("smoke", d["reports"], d["runs"], d["data"], study=STUDY)


def test_reports_dir_rule():
    assert R.reports_dir("default") == repo_root() / "reports"
    assert R.reports_dir("smoke") == repo_root() / "reports" / "smoke"


def test_cli_writes_the_report_and_fails_clearly_without_tables(tmp_path, capsys):
    d = fabricate(tmp_path)
    args = ["--config", "smoke", "--reports-dir", str(d["reports"]), "--runs-dir", str(d["runs"]),
            "--data-dir", str(d["data"])]
    assert R.main(args) == 1
    assert "run notebooks/03_tables first" in capsys.readouterr().err
    write_tables_and_claims(d)
    assert R.main(args) == 0
    assert "## Claims of the paper, checked" in (d["reports"] / "REPORT.md").read_text()


def test_update_readme_replaces_only_the_marked_section(tmp_path, monkeypatch):
    from cdcml_lib.results import report

    reports = tmp_path / "reports"
    (reports / "tables").mkdir(parents=True)
    (reports / "claims.json").write_text(json.dumps({"rule": {"k_sigma": 2}, "claims": [
        {"number": 1, "claim": "CDCML is best.", "verdict": "holds", "why": "As the paper says."}]}))
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.README_BEGIN}\nold text\n{report.README_END}\noutro\n")
    monkeypatch.setenv("CDCML_ROOT", str(tmp_path))
    report.update_readme("default", reports, readme)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n")
    assert "old text" not in text and "| 1 | CDCML is best. | **holds** | As the paper says. |" in text
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="markers"):
        report.update_readme("default", reports, readme)


def _study(folder, n, verdicts, evidence=None):
    (folder / "tables").mkdir(parents=True)
    pd.DataFrame([{"variant": "cdcml", "paper_row": "CDCML", "n_seeds": n,
                   **{f"{m}_{k}": 0.05 for m in T.PAPER_METRICS for k in ("mean", "std", "paper")}}]
                 ).to_csv(folder / "tables" / "comparison.csv", index=False)
    claims = [{"number": i + 1, "id": str(i + 1), "claim": f"claim {i + 1}.", "verdict": v, "why": f"why {i + 1}.",
               "checks": [{"numbers": {"n_paired": n}}]} for i, v in enumerate(verdicts)]
    (folder / "claims.json").write_text(json.dumps({"rule": {"text": "r"}, "claims": claims,
                                                    "evidence": evidence}))
    return folder


def test_readme_leads_with_the_more_seeds_study_and_shows_the_default_beside_it(tmp_path, monkeypatch):
    from cdcml_lib.results import report

    evidence = {"description": "the kit's embedded benchmark: synthetic", "can_show": "a", "cannot_show": "b"}
    default = _study(tmp_path / "reports", 10, ["holds", "not decided", "not testable on this benchmark"])
    more = _study(tmp_path / "reports" / "decisive", 60,
                  ["holds", "does not hold (fragile: may differ on another machine)", "not decided"], evidence)
    readme = tmp_path / "README.md"
    readme.write_text(f"{report.README_BEGIN}\n{report.README_END}\n")
    monkeypatch.setenv("CDCML_ROOT", str(tmp_path))
    report.update_readme("default", default, readme, more_seeds_dir=more)
    text = readme.read_text()
    assert "**Evidence: the kit's embedded benchmark: synthetic.** It can show a. It cannot show b." in text
    assert "| # | claim | 60 seeds | 10 seeds | why |" in text
    assert "| 2 | claim 2. | **does not hold (fragile: may differ on another machine)** | not decided | why 2. |" in text
    assert ("[60 seeds](reports/decisive/claims.md): 1 hold, 1 do not hold, 1 not decided; 1 of them fragile "
            "(may differ on another machine); [10 seeds](reports/claims.md): 1 hold, 1 not decided, "
            "1 not testable on this benchmark") in text
    assert "| CDCML | 60 | 0.050 (0.050) |" in text   # the compact Table 3 of the leading study
    # without the more-seeds study the default leads alone
    (more / "claims.json").unlink()
    report.update_readme("default", default, readme, more_seeds_dir=more)
    assert "| 2 | claim 2. | **not decided** | why 2. |" in readme.read_text() and "60 seeds" not in readme.read_text()


def test_report_shows_the_verdicts_by_seeds_when_the_study_has_more_than_one_step(tmp_path):
    claim = {"number": 1, "id": "1", "claim": "c.", "verdict": "holds", "summary": "s"}
    steps = [{"seeds": n, "verdicts": {"1": "holds"}, "not_decided": []} for n in (10, 20)]
    (tmp_path / "claims.json").write_text(json.dumps({"rule": {"text": "r"}, "claims": [claim], "by_seeds": steps}))
    text = "\n".join(R._section_claims(tmp_path, "x"))
    assert "### Verdicts by the number of seeds" in text and "| # | first 10 seeds | first 20 seeds |" in text
    (tmp_path / "claims.json").write_text(json.dumps({"rule": {"text": "r"}, "claims": [claim], "by_seeds": steps[:1]}))
    assert "by the number of seeds" not in "\n".join(R._section_claims(tmp_path, "x"))


def test_report_shows_the_verdicts_beside_the_rule_without_the_correction(tmp_path):
    claims = [{"number": 1, "id": "1", "claim": "c.", "verdict": "not decided", "uncorrected": "does not hold",
               "why": "Too close to call.", "checks": [{"numbers": {"n_paired": 10}}] * 30}]
    family_wise = [{"id": "1", "checks": 30, "confidence": 1 - 0.05 / 30, "verdict": "does not hold",
                    "corrected": "not decided"}]
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "claims.json").write_text(json.dumps({"rule": {"text": "r", "confidence": 0.9, "equivalence": 0.01},
                                                     "claims": claims, "family_wise": family_wise}))
    text = "\n".join(R._section_claims(reports, "x"))
    assert "**1 readings: 1 not decided.**" in text and "| 1 | c. | **not decided** | Too close to call. |" in text
    assert "### The verdicts beside the rule without the correction" in text
    assert "each check's 90% interval" in text   # the words follow the study's rule
    assert "| 1 | 30 (99.83% intervals) | **not decided** | does not hold (differs) |" in text
