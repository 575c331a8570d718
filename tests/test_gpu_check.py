"""The prepared GPU check (benchmarks/gpu_check.py) runs on the CPU, skips its CUDA parts saying
why, and writes the JSON that reports/gpu/README.md describes.

It runs with ``--device cpu --quick`` (tiny sizes, no smoke study, no DDP run), so it behaves the
same on a machine with a GPU. Speeds are not asserted (the figures are the script's); what is
asserted holds on any machine: the structure, the skip reasons, the feature agreement of the CUDA
path's code on torch's CPU device, and the host-wait count of the losses' training step.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
PARTS = ("features", "train", "syncs", "smoke", "ddp")
BLOCKS = ("mfcc", "chroma", "contrast", "tonnetz", "mel")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    pytest.importorskip("librosa")
    out = tmp_path_factory.mktemp("gpu") / "check.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


def checks_of(report: dict, part: str) -> dict:
    return {c["name"]: c for c in report["parts"][part]["checks"]}


def test_report_names_the_machine_and_the_mode(report):
    assert report["schema"] == 1 and report["mode"] == "cpu" and report["quick"] is True
    for key in ("device_name", "driver", "torch", "cuda_runtime", "cudnn", "gpu_count", "hostname"):
        assert key in report["machine"], key
    assert report["machine"]["device_name"] == "cpu"
    assert report["skip_reason"].startswith("--device cpu")
    assert set(report["parts"]) == set(PARTS)
    for part in PARTS:
        assert report["parts"][part]["status"] in ("pass", "measured", "skipped"), part


def test_every_cuda_measurement_is_skipped_with_its_reason(report):
    expected = {"features.cuda_clips_per_s", "train.trainer_pairs_per_s", "smoke.smoke_gpu_vs_cpu",
                "ddp.ddp_smoke_run"}
    assert expected <= set(report["skipped"])
    for name, reason in report["skipped"].items():
        assert reason.startswith(("--device cpu", "--quick")), (name, reason)
        part, check = name.split(".", 1)
        entry = checks_of(report, part)[check]
        assert entry["pass"] is None and entry["value"] is None, name
    assert "skipped" in report["parts"]["train"]["estimate"]


def test_features_agree_within_the_tolerances(report):
    features = report["parts"]["features"]
    assert features["path"].startswith("features_torch.features_block")
    checks = checks_of(report, "features")
    for block in BLOCKS:
        c = checks[f"agreement_{block}"]
        assert c["pass"] is True and 0 <= c["value"] <= features["tolerance"][block], block


def test_training_step_and_loader_were_timed(report):
    train = report["parts"]["train"]
    assert train["config"] == "smoke" and train["timed_steps"] >= 1
    assert train["trainer_pairs_per_s"] > 0 and train["loader_pairs_per_s"] > 0
    ratio = checks_of(report, "train")["loader_over_trainer"]
    assert ratio["value"] == pytest.approx(train["loader_pairs_per_s"] / train["trainer_pairs_per_s"], rel=0.02)


def test_losses_wait_for_the_device_twice_a_step_at_most(report):
    """One torch.unique per modality; no .item()/int() of a device tensor in losses.py."""
    syncs = report["parts"]["syncs"]
    unique = syncs["ops_per_step"]["aten::_unique2"]["sites"]
    assert sum(n for site, n in unique.items() if site.startswith("cdcml_lib/losses.py")) == 2
    scalar = syncs["ops_per_step"].get("aten::_local_scalar_dense", {}).get("sites", {})
    assert not [site for site in scalar if site.startswith("cdcml_lib/losses.py")], scalar
    checks = checks_of(report, "syncs")
    assert checks["losses_unique_per_step"]["pass"] and checks["losses_item_per_step"]["pass"]
