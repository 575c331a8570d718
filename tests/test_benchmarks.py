"""The feature benchmark runs end to end on a few clips and prints every figure it promises.

(Speed is not asserted here: tests stay fast and deterministic; the figures are the benchmark's.)
"""
import re
import runpy
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "features.py"


def test_features_benchmark_prints_rates_and_agreement(capsys, monkeypatch):
    pytest.importorskip("librosa")
    monkeypatch.setattr(sys, "argv", [str(BENCH), "--clips", "6", "--reference-clips", "2",
                                      "--repeats", "1", "--jobs", "2"])
    runpy.run_path(str(BENCH), run_name="__main__")
    out = capsys.readouterr().out
    for line in ("librosa, clip by clip", "fast, 1 core, cold caches", "fast, 2 processes, first call",
                 "fast, 1 core", "fast, 2 processes", "fast, CUDA"):
        assert re.search(rf"^{re.escape(line)}\s+(\d+\.\d|-)", out, re.M), line
    assert "WARNING" not in out  # 1-core and 2-process results are identical
    for block in ("mfcc", "chroma", "contrast", "tonnetz", "mel"):
        match = re.search(rf"^  {block}\s+(\S+)\s+(\S+)\s+(\S+)$", out, re.M)
        assert match and float(match[1]) <= float(match[3]), block  # within its tolerance


def test_spread_table_compares_the_paired_spread_with_the_draw_fixed_and_varying():
    sys.path.insert(0, str(BENCH.parent))
    import spread

    # b - a: 1, 3 with the draw fixed (sd 1.41); 0, 4, 8 across draws (sd 4): ratio 0.35
    fixed = {"a": {0: {"m": 0.0}, 1: {"m": 0.0}}, "b": {0: {"m": 1.0}, 1: {"m": 3.0}}}
    across = {"a": {s: {"m": 1.0} for s in range(3)}, "b": {0: {"m": 1.0}, 1: {"m": 5.0}, 2: {"m": 9.0}}}
    (row,) = spread.spread_table(fixed, across, [("a", "b")], ["m"])
    assert row["pair"] == "b - a" and row["sd_fixed_draw"] == pytest.approx(2 ** 0.5)
    assert row["sd_draws_vary"] == pytest.approx(4.0) and row["ratio"] == pytest.approx(2 ** 0.5 / 4)
    assert "median ratio 0.35 over 1 checks" in spread.summary([row]) and "about 13%" in spread.summary([row])
    assert spread.summary([{"ratio": float("nan")}]) == "no ratio could be computed"


def _frontier():
    sys.path.insert(0, str(BENCH.parent))
    import frontier
    return frontier


def test_frontier_trains_what_02_train_trains_with_only_the_epoch_cap_changed(monkeypatch):
    from cdcml_lib.runs import launch
    from cdcml_lib.workflow.params import variant_params

    frontier = _frontier()
    calls = []
    monkeypatch.setattr(launch, "train_variant", lambda *args: calls.append(args))
    frontier.train_variant_capped("smoke", "cdcml", [0, 1], epochs=1)
    ((params, variant, seeds, runs_dir),) = calls
    expected = {k: v for k, v in variant_params("smoke", "cdcml").items() if k in launch.VARIANT_KEYS}
    assert expected["epochs"] != 1 and params == {**expected, "epochs": 1}
    assert (variant, seeds, runs_dir) == ("cdcml", [0, 1], "runs/frontier/smoke-e1")


def test_frontier_table_names_the_claims_left_undecided_beside_the_converged_study():
    frontier = _frontier()
    capped = [{"seeds": 5, "not_decided": ["4", "5"]}, {"seeds": 10, "not_decided": []}]
    converged = [{"seeds": 5, "not_decided": ["5"]}, {"seeds": 10, "not_decided": ["5"]}]
    table = frontier.verdict_table(capped, converged, epochs=3).splitlines()
    assert table[0] == "| seeds | at most 3 epochs: not decided | converged (plateau rule): not decided |"
    assert table[2:] == ["| 5 | **2** (4, 5) | **1** (5) |", "| 10 | **0** | **1** (5) |"]
    alone = frontier.verdict_table(capped, None, epochs=1).splitlines()
    assert alone[0] == "| seeds | at most 1 epoch: not decided |" and alone[3] == "| 10 | **0** |"


def test_frontier_agreement_lists_the_readings_whose_verdicts_differ():
    frontier = _frontier()
    capped = {"4": "not decided", "5": "does not hold", "7": "does not hold, on the boundary"}
    converged = {"4": "holds", "5": "does not hold", "7": "does not hold"}
    text = frontier.agreement(capped, converged, 30, 60, 2).splitlines()
    assert text[0] == ("2 of 3 readings get the same verdict from 30 seeds of runs capped at 2 epochs "
                       "as from all 60 seeds of converged runs (boundary labels aside):")
    assert text[1:] == ["- claim 4: not decided (capped), holds (converged)"]


def _seed_batching():
    sys.path.insert(0, str(BENCH.parent))
    import seed_batching
    return seed_batching


def test_grouped_backbone_computes_each_seeds_backbone_in_its_own_group():
    import torch
    from cdcml_lib.nets import TinyCNN

    seed_batching = _seed_batching()
    torch.manual_seed(0)
    backbones = [TinyCNN(1, 8) for _ in range(3)]
    inputs = [torch.randn(4, 40, 24) for _ in range(3)]
    for layout in (torch.channels_last, torch.contiguous_format):
        grouped = seed_batching.grouped_backbone(backbones).to(memory_format=layout)
        for net, x, got in zip(backbones, inputs, seed_batching.grouped_features(grouped, inputs, layout)):
            assert torch.allclose(got, net(x), atol=1e-5)


def test_vmapped_seeds_take_the_same_sgd_step_as_the_seeds_one_after_another():
    import torch
    from cdcml_lib.workflow.params import section

    seed_batching = _seed_batching()
    params = dict(section("smoke", "train"))

    def models():
        ms = [seed_batching.cdcml_model(params, s) for s in range(2)]
        for m in ms:
            for d in m.modules():
                if isinstance(d, torch.nn.Dropout):
                    d.p = 0.0   # the two paths draw dropout masks differently
        return ms

    batches = [seed_batching.seed_batch(s, 6, params["image_size"]) for s in range(2)]
    one_by_one, together = models(), models()
    before, _ = torch.func.stack_module_state(models())
    seed_batching.sequential_step(one_by_one, batches)()
    step, updated = seed_batching.vmapped_step(together, batches)
    step()
    stacked, _ = torch.func.stack_module_state(one_by_one)
    assert set(stacked) == set(updated)
    for name, value in stacked.items():
        assert torch.allclose(updated[name], value, atol=1e-5), name
    assert not torch.allclose(before["image_branch.fc.weight"], stacked["image_branch.fc.weight"], atol=1e-4)


def test_seed_batching_benchmark_prints_every_ratio(capsys):
    seed_batching = _seed_batching()
    seed_batching.main(["--config", "smoke", "--seeds-together", "1,2", "--repeats", "1", "--batch-size", "4"])
    out = capsys.readouterr().out
    assert len(re.findall(r"batched/sequential \d+\.\d\d$", out, re.M)) == 2 + 8 + 2
