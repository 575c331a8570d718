"""Data-parallel training (cdcml_lib.runs.distributed, train.py under torchrun) on the CPU with gloo.

Two processes train the smoke data in a few tiny epochs and are compared with one process with the
same global batch (params/smoke.yaml, batch_size 32: 16 pairs per rank):

- with dropout switched off (the only per-rank randomness), every metric must agree within
  ``TIGHT = 1e-6`` (absolute; measured: at most 2e-9): the rank slices, the all-gathered losses,
  the synchronised BatchNorm and the gradient scaling reproduce the one-process steps up to
  float rounding. That run is also killed (SIGKILL, torchrun and workers) after its first
  checkpoint and started again with the same command, and must resume and finish;
- with dropout on (the real model), each rank draws its own masks, so the runs differ as two
  dropout streams do: the error metrics must agree within ``LOOSE = 0.01`` (absolute; measured:
  at most 1e-3 after 2 epochs).

This file is also the torchrun worker of those runs (see ``__main__`` at the end).
"""
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from cdcml_lib.runs.loader import ItemDataset, PairDataset, image_to_tensor, take_rows
from cdcml_lib.runs.distributed import RankSlices, env_context, local_batch_size, slice_bounds
from cdcml_lib.workflow.paths import repo_root
from cdcml_lib.runs.train import train_run
from cdcml_lib.workflow.params import section as config_section, variant_params  # configs inherit: read them merged

EPOCHS = 3
TIGHT = 1e-6
LOOSE = 0.01
# The error metrics (paper's results.csv columns). Ranking metrics on 60 test pairs (spearman,
# ndcg_at_10, corr_acc) move by whole ranks under dropout noise, so the loose check leaves them out.
ERROR_METRICS = ("sim_mse", "sim_mae", "img_v_mse", "img_v_mae", "img_a_mse", "img_a_mae",
                 "mus_v_mse", "mus_v_mae", "mus_a_mse", "mus_a_mae")
RUN_TIMEOUT_S = 300


# --------------------------------------------------------------------------------------------
# Sampling and set-up, in this process
# --------------------------------------------------------------------------------------------
linux_only = pytest.mark.skipif(not Path("/proc/self/task").is_dir(),
                                reason="the kill test finds torchrun's workers in /proc (Linux)")


@pytest.mark.parametrize("n, world", [(70, 2), (70, 4), (66, 4), (64, 2)])
def test_rank_slices_union_is_the_one_process_batch(n, world):
    def batches():
        gen = torch.Generator().manual_seed(3)
        return torch.utils.data.BatchSampler(
            torch.utils.data.RandomSampler(range(n), generator=gen), 16, drop_last=False)

    per_rank = [list(RankSlices(batches(), r, world)) for r in range(world)]
    expected = [b for b in batches() if len(b) >= world]   # shorter than the world: skipped
    assert all(len(p) == len(expected) for p in per_rank)
    for k, batch in enumerate(expected):
        assert sum((p[k] for p in per_rank), []) == batch          # rank order = batch order
        assert max(len(p[k]) for p in per_rank) - min(len(p[k]) for p in per_rank) <= 1


def test_slice_bounds_cover_the_batch():
    assert slice_bounds(32, 2) == [0, 16, 32]
    assert slice_bounds(6, 4) == [0, 2, 4, 5, 6]


def test_batch_size_must_divide_by_the_world_size():
    assert local_batch_size(128, 8) == 16
    with pytest.raises(ValueError, match=r"batch_size 30 .*not divisible by the 4 processes"):
        local_batch_size(30, 4)


def test_torchrun_environment_is_detected(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert env_context().world_size == 1 and not env_context().enabled
    monkeypatch.setenv("RANK", "3"); monkeypatch.setenv("WORLD_SIZE", "4"); monkeypatch.setenv("LOCAL_RANK", "1")
    ctx = env_context()
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.enabled, ctx.is_main) == (3, 4, 1, True, False)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(RuntimeError, match="RANK=4 is not in"):
        env_context()


def test_datasets_reach_workers_without_their_arrays(smoke_data):
    """A DataLoader worker started by spawn/forkserver gets the dataset pickled: the memory maps
    must be reopened there, not copied (a pickled np.memmap carries its whole content)."""
    pairs = PairDataset(smoke_data, "train")
    items = ItemDataset(smoke_data, "image", "test")
    assert isinstance(pairs.images, np.memmap) and isinstance(pairs.music, np.memmap)
    for ds, arrays in ((pairs, pairs.images.nbytes + pairs.music.nbytes), (items, items.array.nbytes)):
        blob = pickle.dumps(ds)
        assert len(blob) < arrays / 2
        again = pickle.loads(blob)
        a, b = ds[[0, 3, 5]], again[[0, 3, 5]]
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert isinstance(pickle.loads(pickle.dumps(pairs)).images, np.memmap)


@pytest.mark.parametrize("raw_images, image_size", [(False, 32), (False, 24), (True, 32)])
def test_batches_cut_from_the_converted_table_are_the_batches_converted_alone(smoke_data, raw_images,
                                                                               image_size):
    """PairDataset converts each distinct item once and cuts batches from that table (loader.py,
    ConvertedRows); a table too large for memory is converted batch by batch instead. Both must
    give the model the same input bit for bit, resized images included, or a run's numbers would
    depend on the size of the machine's memory."""
    kept = PairDataset(smoke_data, "train", image_size=image_size, raw_images=raw_images)
    streamed = PairDataset(smoke_data, "train", kept.standardiser, image_size=image_size,
                           raw_images=raw_images)
    streamed._image_inputs.max_bytes = streamed._music_inputs.max_bytes = 0
    assert not streamed._image_inputs.fits(streamed.images) and kept._image_inputs.fits(kept.images)
    for index in ([4, 1, 9, 4], [0], list(range(len(kept)))[::-7]):
        a, b = kept[index], streamed[index]
        for k in a:
            assert torch.equal(a[k], b[k]) and a[k].stride() == b[k].stride(), k
    assert kept._image_inputs._table is not None and streamed._image_inputs._table is None
    blob = pickle.dumps(kept)   # a DataLoader worker converts its own table
    assert pickle.loads(blob)._image_inputs._table is None
    assert len(blob) < kept._image_inputs._table.numel()


def test_take_rows_is_advanced_indexing_with_its_strides():
    position = torch.tensor([3, 0, 3, 2])
    for table in (torch.randn(5, 4, 6), torch.randn(5, 6, 7, 3).permute(0, 3, 1, 2),
                  torch.randn(5, 6, 4).transpose(1, 2)):
        taken = take_rows(table, position)
        assert torch.equal(taken, table[position]) and taken.stride() == table[position].stride()


def test_raw_images_normalised_later_are_the_same_batch(smoke_data):
    """The CUDA trainer's loader hands over uint8 images and normalises them on the device: the
    same function on the same bytes, so the model sees the same input as from the CPU loader."""
    cooked = PairDataset(smoke_data, "train", image_size=32)
    raw = PairDataset(smoke_data, "train", image_size=32, raw_images=True)
    a, b = cooked[[4, 1, 9]], raw[[4, 1, 9]]
    assert b["images"].dtype == torch.uint8 and b["images"].shape == (3, 32, 32, 3)
    assert torch.equal(image_to_tensor(b["images"], 32), a["images"])
    assert all(torch.equal(a[k], b[k]) for k in a if k != "images")


# --------------------------------------------------------------------------------------------
# Two processes against one
# --------------------------------------------------------------------------------------------
def run_params(data_dir, run_dir, **over) -> dict:
    # the variant's terms as the train section's w_* keys (params.variant_params), seed kept
    params = {**config_section("smoke", "train"), **variant_params("smoke", "cdcml")}
    # the step schedule: exactly EPOCHS epochs, so the kill lands mid-run
    params.update({"data_dir": str(data_dir), "run_dir": str(run_dir), "epochs": EPOCHS,
                   "num_threads": 1, "schedule": "step", **over})
    return params


def no_dropout(monkeypatch=None):
    """Dropout as in eval mode: the one randomness that differs between ranks and one process."""
    identity = lambda self, x: x  # noqa: E731
    if monkeypatch is None:
        torch.nn.Dropout.forward = identity
    else:
        monkeypatch.setattr(torch.nn.Dropout, "forward", identity)


def torchrun(params: dict, tmp_path: Path, dropout: bool) -> list[str]:
    params_file = tmp_path / f"params-{Path(params['run_dir']).name}.json"
    params_file.write_text(json.dumps(params))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           __file__, "--params-file", str(params_file)]
    return cmd + ([] if dropout else ["--no-dropout"])


def worker_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", CI="1")
    return env


def kill_hard(torchrun_pid: int) -> None:
    """SIGKILL torchrun and its workers, as a crash or a scheduler would. torchrun starts each
    worker in a session of its own, so the workers' process groups are killed one by one."""
    workers = []
    for task in Path(f"/proc/{torchrun_pid}/task").glob("*"):
        workers += [int(p) for p in (task / "children").read_text().split()]
    for pid in workers:
        os.killpg(pid, signal.SIGKILL)
    os.killpg(torchrun_pid, signal.SIGKILL)
    for pid in workers:   # gone (or a zombie of the killed torchrun) before the relaunch
        while Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text():
            time.sleep(0.01)


def assert_close(a: dict, b: dict, keys, tol: float) -> None:
    diff = {k: abs(a[k] - b[k]) for k in keys}
    assert max(diff.values()) <= tol, f"metrics differ by more than {tol}: {diff}"


@linux_only
def test_two_processes_resume_after_a_kill_and_match_one_process(smoke_data, tmp_path, monkeypatch):
    no_dropout(monkeypatch)
    one = train_run(run_params(smoke_data, tmp_path / "one"), progress=False)

    run_dir = tmp_path / "ddp"
    cmd = torchrun(run_params(smoke_data, run_dir), tmp_path, dropout=False)
    # First launch: torchrun and its workers killed as soon as epoch 1 is checkpointed.
    proc = subprocess.Popen(cmd, env=worker_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + RUN_TIMEOUT_S
    while not (run_dir / "checkpoint.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    kill_hard(proc.pid)
    _, err = proc.communicate(timeout=60)
    assert (run_dir / "checkpoint.pt").exists(), f"no checkpoint before the kill:\n{err[-3000:]}"
    assert not (run_dir / "metrics.json").exists(), "the run finished before it could be killed"
    killed_at = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    assert 1 <= killed_at["epoch"] < EPOCHS
    by_rank = killed_at["rng"]["by_rank"]   # each rank's own torch RNG, for its own resume
    assert len(by_rank) == 2 and not torch.equal(by_rank[0]["torch"], by_rank[1]["torch"])

    # Second launch, the same command: resumes from the checkpoint and finishes.
    done = subprocess.run(cmd, env=worker_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "finished" and run["resumed"] == 1 and run["world_size"] == 2
    assert run["epochs_done"] == EPOCHS
    ddp = json.loads((run_dir / "metrics.json").read_text())
    assert ddp["best_epoch"] == one["best_epoch"]
    assert_close(ddp["test"], one["test"], one["test"], TIGHT)
    assert_close(ddp["val"], one["val"], one["val"], TIGHT)
    # Rank 0 alone wrote the run folder, and nothing was left half-written.
    assert not list(run_dir.glob("*.tmp*"))


def test_two_processes_with_dropout_match_one_process_within_noise(smoke_data, tmp_path):
    # the plateau rule, decided on rank 0's validation and followed by every rank (min_delta 0.5:
    # it ends the run at the first epoch that does not halve val sim_mse)
    plateau = {"epochs": 3, "schedule": "plateau", "patience": 1, "min_delta": 0.5, "lr_drops": 0}
    one = train_run(run_params(smoke_data, tmp_path / "one", **plateau), progress=False)
    run_dir = tmp_path / "ddp"
    done = subprocess.run(torchrun(run_params(smoke_data, run_dir, **plateau), tmp_path, dropout=True),
                          env=worker_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    ddp = json.loads((run_dir / "metrics.json").read_text())
    assert ddp["ended"] == one["ended"] == "flattened" and ddp["epochs_trained"] == one["epochs_trained"]
    assert_close(ddp["test"], one["test"], ERROR_METRICS, LOOSE)
    assert ddp["test"] != one["test"]   # the ranks' own dropout masks do change the digits


if __name__ == "__main__":
    # torchrun worker: tests/test_distributed.py --params-file P.json [--no-dropout]
    from cdcml_lib.runs.train import main

    args = sys.argv[1:]
    if "--no-dropout" in args:
        args.remove("--no-dropout")
        no_dropout()
    raise SystemExit(main(args))
