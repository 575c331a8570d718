"""The comparison of a fresh study with the committed reference (results.reference)."""
import json
import math

import pandas as pd
import pytest

from cdcml_lib.results import reference as R
from cdcml_lib.results.tables import METRICS


def write_study(folder, means: dict, std: float = 0.01, n: int = 3, verdicts=("holds", "does not hold")):
    (folder / "tables").mkdir(parents=True)
    for table in R.TABLES:
        rows = [{"variant": v, "n_seeds": n, **{f"{m}_mean": means[v] for m in METRICS},
                 **{f"{m}_std": std for m in METRICS}} for v in means]
        pd.DataFrame(rows).to_csv(folder / "tables" / f"{table}.csv", index=False)
    claims = [{"number": i + 1, "verdict": v} for i, v in enumerate(verdicts)]
    (folder / "claims.json").write_text(json.dumps({"rule": {}, "claims": claims}))
    return R.read_results(folder)


def test_the_same_study_agrees_with_itself(tmp_path):
    ref = write_study(tmp_path / "a", {"cdcml": 0.03, "sim": 0.04})
    result = R.compare(ref, ref)
    assert result["counts"]["identical"] == len(result["numbers"]) > 0
    assert result["verdicts_same"] == result["verdicts_total"] == 2
    assert R.headline(result).startswith("This reproduction AGREES")


def test_a_moved_number_and_a_flipped_verdict_are_reported_loudly(tmp_path, monkeypatch, capsys):
    ref = write_study(tmp_path / "a", {"cdcml": 0.03, "sim": 0.04})
    fresh = write_study(tmp_path / "b", {"cdcml": 0.03 + 0.001, "sim": 0.04 + 0.1},
                        verdicts=("holds", "holds"))
    result = R.compare(ref, fresh)
    # 0.001 against a spread of 0.01 (n = 3 each): z = 0.001 / sqrt(2 * 0.01^2 / 3) = 0.12
    z = [r["z"] for r in result["numbers"] if r["variant"] == "cdcml"][0]
    assert z == pytest.approx(0.001 / math.sqrt(2 * 0.01 ** 2 / 3), rel=1e-6)
    assert {r["status"] for r in result["numbers"] if r["variant"] == "cdcml"} == {"within"}
    assert {r["status"] for r in result["numbers"] if r["variant"] == "sim"} == {"outside"}
    assert [v["same"] for v in result["verdicts"]] == [True, False]
    text = R.headline(result)
    assert text.startswith("WARNING") and "1 of 2 claim verdicts are the same" in text
    md = R.to_markdown(result, {"environment": {"cpu": "A"}}, {"cpu": "B"})
    assert "**NO**" in md and "| cpu | A | B |" in md


def test_no_reference_is_said_not_failed(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(R, "reports_dir", lambda config: tmp_path)
    assert R.run_compare("smoke") is None
    assert "No reference for CONFIG=smoke" in capsys.readouterr().out
    assert "No reference" in (tmp_path / "reference_comparison.md").read_text()


def test_a_boundary_label_that_comes_or_goes_is_not_another_verdict(tmp_path):
    ref = write_study(tmp_path / "a", {"cdcml": 0.03, "sim": 0.04},
                      verdicts=("does not hold", "not decided, on the boundary"))
    fresh = write_study(tmp_path / "b", {"cdcml": 0.03, "sim": 0.04},
                        verdicts=("does not hold, on the boundary", "not decided"))
    result = R.compare(ref, fresh)
    assert result["verdicts_same"] == 2 and result["labels_differ"] == 2
    assert R.headline(result).startswith("This reproduction AGREES")
    assert "2 of 2 claim verdicts are the same (2 of them with another 'fragile' label)" in R.headline(result)
    assert R.to_markdown(result, {}, {}).count("yes (the fragile label differs)") == 2
    flipped = write_study(tmp_path / "c", {"cdcml": 0.03, "sim": 0.04}, verdicts=("holds", "not decided"))
    assert R.compare(ref, flipped)["verdicts_same"] == 1


def test_a_reference_older_than_the_corrected_verdicts_is_compared_on_the_uncorrected_ones(tmp_path):
    fresh = write_study(tmp_path / "b", {"cdcml": 0.03, "sim": 0.04}, verdicts=("not decided", "holds"))
    fresh["uncorrected"] = {"1": "does not hold (fragile: may differ on another machine)", "2": "holds"}
    old = {"metrics": fresh["metrics"], "verdicts": {"1": "does not hold, on the boundary", "2": "holds"}}
    result = R.compare(old, fresh)
    assert result["verdicts_same"] == 2 and result["labels_differ"] == 0
    assert result["verdicts_compared"].startswith("without the correction")
    assert R.compare({**old, "uncorrected": {}}, fresh)["verdicts_same"] == 1   # a new reference: the verdicts
