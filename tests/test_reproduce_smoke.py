"""`make reproduce CONFIG=smoke` end to end: every table, the claims, the report; then no work."""
import csv
import re
import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports" / "smoke"


def test_smoke_study_writes_every_output(smoke_study):
    for name in ("comparison", "ablation"):
        for ext in ("csv", "md", "tex"):
            assert (REPORTS / "tables" / f"{name}.{ext}").is_file(), f"{name}.{ext} missing"
    rows = list(csv.DictReader(open(REPORTS / "tables" / "comparison.csv")))
    variants = {r.get("variant") or r.get("row") or r.get("method") for r in rows}
    assert {"sp_net", "l3_net", "acp_net", "cdcml", "contrastive"} <= variants, variants
    rows = list(csv.DictReader(open(REPORTS / "tables" / "ablation.csv")))
    variants = {r.get("variant") or r.get("row") or r.get("method") for r in rows}
    assert {"sim", "sim_cfr", "sim_cfr_cfm", "sim_va", "cdcml"} <= variants, variants
    for column in ("sim_mse", "sim_mae", "img_v_mse", "mus_a_mae"):
        assert any(column in c for c in rows[0].keys()), f"no column for {column}: {list(rows[0])}"

    claims = json.loads((REPORTS / "claims.json").read_text())
    claims = claims["claims"] if isinstance(claims, dict) else claims
    assert [c["id"] for c in claims] == ["1", "2", "3", "4", "5", "6", "7", "8a", "8b"]
    verdicts = {"holds", "does not hold", "no difference", "not decided", "not testable on this benchmark"}
    assert all(c["verdict"].removesuffix(" (fragile: may differ on another machine)") in verdicts for c in claims)

    report = (REPORTS / "REPORT.md").read_text()
    assert "Table 3" in report or "omparison" in report
    assert (REPORTS / "notebooks" / "03_tables.ipynb").is_file()
    assert (REPORTS / "notebooks" / "03_tables.html").is_file()
    assert (REPORTS / "embeddings" / "map.html").is_file()


def test_every_report_file_names_its_evidence(smoke_study):
    """Whatever file of the study a reader opens or cites alone, it says the data is the embedded,
    synthetic benchmark (a CSV column, a JSON field, a Markdown box or comment, PNG metadata, the
    executed notebook's first cell, an HTML comment)."""
    files = [p for p in REPORTS.rglob("*") if p.is_file()]
    assert len(files) > 40
    silent = [p.relative_to(REPORTS).as_posix() for p in files
              if not re.search(rb"embedded|synthetic", p.read_bytes(), re.IGNORECASE)]
    assert not silent, f"report files that do not name their evidence: {silent}"
    record = json.loads((REPORTS / "claims.json").read_text())
    assert record["evidence"]["corpus"] == "embedded" and record["evidence"]["synthetic"] is True
    assert "It cannot show how a model rates real photos and songs" in record["evidence"]["statement"]
    for page in ("REPORT.md", "claims.md"):
        text = (REPORTS / page).read_text()
        assert "> **Evidence.** The kit's embedded benchmark: synthetic images" in text.split("##")[0], page
        assert "> **What it cannot show:**" in text.split("##")[0], page


def test_second_reproduce_does_no_work(smoke_study):
    # `make -q` exits 0 only when the target and everything it depends on are up to date.
    up_to_date = subprocess.run(["make", "-q", "reports/smoke/REPORT.md", "CONFIG=smoke"], cwd=ROOT)
    assert up_to_date.returncode == 0, "make reproduce CONFIG=smoke would run steps again"
    again = subprocess.run(["make", "--no-print-directory", "reproduce", "CONFIG=smoke"], cwd=ROOT,
                           capture_output=True, text=True, check=True)
    assert "cdcml_lib.workflow.nbrun" not in again.stdout and "cdcml_lib.runs.train" not in again.stdout, again.stdout
