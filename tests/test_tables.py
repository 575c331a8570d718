"""Tables 3 and 4 from fabricated run folders with known numbers."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cdcml_lib.results import tables as T

COMPARISON = ["sp_net", "l3_net", "acp_net", "cdcml", "contrastive"]
ABLATION = ["sim", "sim_cfr", "sim_cfr_cfm", "sim_va", "cdcml"]
SEEDS = [0, 1, 2]
OFFSETS = [-1.0, 0.0, 1.0]  # per seed: mean = base, sample sd = spread exactly


def base_value(variant: str, metric: str) -> float:
    """A distinct known number per (variant, metric)."""
    return 0.01 * (1 + COMPARISON.index(variant) if variant in COMPARISON else 10 + ABLATION.index(variant)) \
        + 0.001 * T.METRICS.index(metric)


def write_run(root: Path, variant: str, seed: int, test: dict, wall_s: float = 10.0) -> Path:
    folder = root / f"{variant}-s{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps({"schema": 1, "best_epoch": 1, "val": test, "test": test}))
    (folder / "run.json").write_text(json.dumps({"status": "finished", "wall_s": wall_s, "device": "cpu",
                                                 "torch": "2.x"}))
    return folder


def make_runs(root: Path, spread: float = 0.002) -> Path:
    for variant in dict.fromkeys(COMPARISON + ABLATION):
        for seed, off in zip(SEEDS, OFFSETS):
            write_run(root, variant, seed, {m: base_value(variant, m) + off * spread for m in T.METRICS})
    return root


@pytest.fixture()
def runs(tmp_path):
    return make_runs(tmp_path / "runs" / "smoke")


def test_gather_and_summarise_give_known_means_and_stds(runs):
    per_seed = T.gather_runs(runs, COMPARISON + ABLATION, SEEDS)
    assert len(per_seed) == 9 * 3  # cdcml is in both tables but read once
    summary = T.summarise(per_seed, ["cdcml", "sim"]).set_index("variant")
    for v in ("cdcml", "sim"):
        for m in T.METRICS:
            assert summary.loc[v, f"{m}_mean"] == pytest.approx(base_value(v, m))
            assert summary.loc[v, f"{m}_std"] == pytest.approx(0.002)
    assert (summary["n_seeds"] == 3).all()
    assert per_seed["wall_s"].eq(10.0).all()


def test_one_seed_has_no_std(runs):
    per_seed = T.gather_runs(runs, ["cdcml"], [0])
    assert np.isnan(T.summarise(per_seed, ["cdcml"]).loc[0, "sim_mse_std"])


def test_tables_put_the_paper_number_beside_ours(runs):
    per_seed = T.gather_runs(runs, COMPARISON + ABLATION, SEEDS)
    comp = T.comparison_table(per_seed, COMPARISON).set_index("variant")
    abl = T.ablation_table(per_seed, ABLATION).set_index("variant")
    assert list(comp.index) == COMPARISON and list(abl.index) == ABLATION
    assert comp.loc["cdcml", "sim_mse_paper"] == pytest.approx(0.067)
    assert comp.loc["acp_net", "sim_mae_paper"] == pytest.approx(0.222)
    assert abl.loc["sim_cfr", "sim_mse_paper"] == pytest.approx(0.074)
    assert abl.loc["cdcml", "paper_row"] == "sim+va+cfr+cfm+sfr"
    assert np.isnan(comp.loc["contrastive", "sim_mse_paper"])  # ours: no paper row
    assert np.isnan(comp.loc["cdcml", "ndcg_at_10_paper"])  # the paper has no retrieval metrics
    assert comp.loc["sp_net", "img_a_mse_mean"] == pytest.approx(base_value("sp_net", "img_a_mse"))


def test_written_files_have_the_expected_rows_and_columns(runs, tmp_path):
    reports = tmp_path / "reports"
    out = T.write_tables({"seeds": SEEDS, "comparison": COMPARISON, "ablation": ABLATION}, runs, reports)
    for name, variants in (("comparison", COMPARISON), ("ablation", ABLATION)):
        csv = pd.read_csv(reports / "tables" / f"{name}.csv")
        assert list(csv["variant"]) == variants
        expected = ["variant", "paper_row", "n_seeds"] + [f"{m}_{s}" for m in T.METRICS
                                                          for s in ("mean", "std", "paper")]
        assert list(csv.columns) == expected
        pd.testing.assert_frame_equal(csv[["sim_mse_mean"]], out[name][["sim_mse_mean"]], rtol=1e-5)
        md = (reports / "tables" / f"{name}.md").read_text().splitlines()
        assert len(md) == 2 + len(variants)
        assert all(f"| {v} |" in "\n".join(md) for v in variants)
        tex = (reports / "tables" / f"{name}.tex").read_text()
        assert all(k in tex for k in (r"\toprule", r"\midrule", r"\bottomrule", r"$\pm$"))
        for suffix in ("", "_retrieval"):
            png = reports / "figures" / f"{name}{suffix}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (reports / "tables" / "comparison.md").read_text()
    cdcml_row = next(line for line in md.splitlines() if line.startswith("| cdcml |"))
    assert f"{base_value('cdcml', 'sim_mse'):.3f} ± 0.002 (0.067)" in cdcml_row
    sp_net_row = next(line for line in md.splitlines() if line.startswith("| sp_net |"))
    assert sp_net_row.count("**") == 2 * len(T.PAPER_METRICS)  # its errors are the lowest: bold


def test_a_missing_run_names_its_folder_and_the_make_command(runs):
    import shutil

    shutil.rmtree(runs / "sim_va-s1")
    with pytest.raises(T.MissingRunError) as err:
        T.gather_runs(runs, ABLATION, SEEDS)
    text = str(err.value)
    assert str(runs / "sim_va-s1") in text
    assert "make train CONFIG=smoke MODEL=sim_va SEEDS=1" in text
    assert "notebooks/02_train" in text


def test_a_metrics_file_without_a_metric_is_a_clear_error(runs):
    path = runs / "cdcml-s0" / "metrics.json"
    data = json.loads(path.read_text())
    del data["test"]["spearman"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"cdcml-s0/metrics.json: 'test' has no 'spearman'"):
        T.gather_runs(runs, ["cdcml"], SEEDS)


def test_paper_results_cover_every_mapped_row_and_match_the_shared_copy():
    df = T.paper_results()
    for table, mapping in T.PAPER_ROW.items():
        assert set(mapping.values()) == set(df.loc[df["table"] == table, "row"])
    shared = Path(__file__).resolve().parents[2] / "shared" / "paper" / "results.csv"
    if not shared.is_file():
        pytest.skip(f"{shared} absent: cannot compare the packaged copy with the shared one")
    pd.testing.assert_frame_equal(df, pd.read_csv(shared))
