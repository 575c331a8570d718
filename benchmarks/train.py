"""Training speed and peak memory of the trainer itself (issue 8), and whole runs per minute.

Runs ``cdcml_lib.runs.train.train_epoch`` - the trainer's own step: DataLoader over the memory-mapped
caches, forward, the CDCML loss (Eq. 8), backward, SGD; AMP (fp16) and channels-last on CUDA,
exactly as train.py uses them - for a few steps of one configuration, and prints:

- training pairs per second (after untimed warm-up steps);
- peak memory: on CUDA ``torch.cuda.max_memory_allocated`` and the GPU name; on the CPU the
  peak resident set size of this process (and of the loader workers, if any);
- on CUDA, whether the paper configuration reaches the target (>= 2,000 pairs/s on one H100).

    python benchmarks/train.py --config default|paper [--steps N] [--batch-size B] [--threads T]

With ``--runs``, it instead trains whole runs as the study does, each in its own process
(``python -m cdcml_lib.runs.train --config C --variant V --seed S``, OMP_NUM_THREADS=1 as the
Makefile's training steps), ``--jobs`` at a time, into a temporary folder, and prints **runs per
minute** (wall) and **CPU seconds per run** (user + system of the finished processes), with the
epochs each run trained. It needs the configuration's dataset folder (``make data``)::

    python benchmarks/train.py --runs --variants cdcml,l3_net --seeds 0,1 --jobs 2

The paper configuration (ResNet-50 / ResNet-18 at 224 px, batch 128) is meant for a GPU; on a
CPU the script runs it at batch 16 for a few steps only, and says so. Data: as
benchmarks/loader.py (the built dataset folder, else synthetic memory maps at its shapes).
For several GPUs, time a real run instead: ``make train-ddp NPROC=<n> CONFIG=paper`` writes
``wall_s`` and ``world_size`` to its run.json.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from loader import (GPU_TARGET, add_thread_option, benchmark_folder, setup,  # noqa: E402
                    cpu_model_batch, machine_line)

from cdcml_lib.runs.loader import PairDataset, fit_music_standardiser  # noqa: E402
from cdcml_lib.losses import build_loss  # noqa: E402
from cdcml_lib.nets import build_model  # noqa: E402
from cdcml_lib.runs.train import train_epoch  # noqa: E402
from cdcml_lib.workflow.params import section  # noqa: E402
from cdcml_lib.workflow.paths import run_name  # noqa: E402

WARMUP_STEPS = 2


def trainer_loader(dataset, batch_size: int, steps: int, workers: int, cuda: bool):
    """The trainer's DataLoader (batches of indices, memory-mapped reads), ``steps`` batches."""
    sampler = torch.utils.data.BatchSampler(
        torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=batch_size * steps,
                                       generator=torch.Generator().manual_seed(0)),
        batch_size, drop_last=True)
    return torch.utils.data.DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=workers,
                                       pin_memory=cuda)


def peak_rss_mb() -> tuple[float, float]:
    """Peak resident set size of this process and of its (finished) children, in MB (Linux: KB)."""
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 2 ** 20
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale)


def whole_runs(config: str, variants: list[str], seeds: list[int], jobs: int) -> int:
    """Train every (variant, seed) as its own process, ``jobs`` at a time; print the rates."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CI": "1"}   # CI: no progress bars
    todo = [(v, s) for v in variants for s in seeds]
    # each run sets its own threads (train.num_threads; 0: torch's default, 1 under OMP_NUM_THREADS=1)
    threads = section(config, "train").get("num_threads") or 1
    with tempfile.TemporaryDirectory(prefix="cdcml-runs-bench-") as tmp:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start, running, done = time.perf_counter(), [], []
        while todo or running:
            while todo and len(running) < jobs:
                v, s = todo.pop(0)
                run_dir = Path(tmp) / run_name(v, s)
                cmd = [sys.executable, "-m", "cdcml_lib.runs.train", "--config", config, "--variant", v,
                       "--seed", str(s), "--run-dir", str(run_dir)]
                running.append((run_dir, subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL,
                                                          stderr=subprocess.PIPE, text=True)))
            run_dir, proc = running.pop(0)
            _, err = proc.communicate()
            if proc.returncode:
                raise SystemExit(f"{run_dir.name} failed (exit {proc.returncode}):\n{err[-2000:]}")
            done.append(json.loads((run_dir / "run.json").read_text())["epochs_done"])
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    n = len(done)
    print(f"config {config}: {n} runs ({', '.join(variants)} x seeds {', '.join(map(str, seeds))}), "
          f"{jobs} at a time; {machine_line(torch.device('cpu'), threads=threads)}")
    print(f"whole runs: {60 * n / wall:.2f} runs/min, {cpu / n:.1f} CPU s/run "
          f"({wall:.1f} s wall, {cpu:.1f} CPU s; epochs per run {', '.join(map(str, done))})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="default", help="params/<config>.yaml (train section)")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--batch-size", type=int, default=0, help="0: the config's (16 for a "
                        "torchvision backbone on the CPU)")
    parser.add_argument("--workers", type=int, default=-1, help="-1: the config's num_workers")
    parser.add_argument("--runs", action="store_true", help="train whole runs (see the module docstring)")
    parser.add_argument("--variants", default="cdcml,l3_net", help="--runs: comma-separated variants")
    parser.add_argument("--seeds", default="0,1", help="--runs: comma-separated seeds")
    parser.add_argument("--jobs", type=int, default=2, help="--runs: runs trained at once")
    add_thread_option(parser)
    args = parser.parse_args(argv)
    if args.runs:
        return whole_runs(args.config, args.variants.split(","), [int(s) for s in args.seeds.split(",")],
                          args.jobs)
    params, device = setup(args)
    cuda = device.type == "cuda"
    batch_size, note = int(params["batch_size"]), ""
    if args.batch_size:
        batch_size = args.batch_size
    elif not cuda:
        batch_size, note = cpu_model_batch(params, batch_size)
    steps = args.steps
    if not cuda and params["image_backbone"] != "tiny_cnn" and steps > 3:
        steps, note = 3, note + f"; CPU: {3} timed steps only (a GPU configuration)"
    workers = int(params["num_workers"]) if args.workers < 0 else args.workers
    if not cuda and args.workers < 0 and workers > (os.cpu_count() or 1):
        workers, note = os.cpu_count() or 1, note + f"; CPU: {os.cpu_count()} loader workers, one a core"
    print(f"config {args.config}: batch {batch_size}, image {params['image_size']}px, "
          f"{params['image_backbone']} / {params['music_backbone']}, {workers} loader worker(s); "
          f"{machine_line(device)}{note}")

    with tempfile.TemporaryDirectory(prefix="cdcml-train-bench-") as tmp:
        folder, what = benchmark_folder(params, Path(tmp))
        print(what)
        sigma = float(folder.stats["sigma"])
        standardiser = fit_music_standardiser(folder)
        dataset = PairDataset(folder, "train", standardiser, image_size=int(params["image_size"]),
                              raw_images=cuda)   # as train.py: uint8 to the GPU, normalised there
        torch.manual_seed(0)
        model = build_model(params, sigma).to(device)
        if cuda:
            model = model.to(memory_format=torch.channels_last)
        loss_fn = build_loss(params, sigma)
        optimiser = torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                                    lr=float(params["lr"]), momentum=float(params["momentum"]),
                                    weight_decay=float(params["weight_decay"]))
        scaler = torch.amp.GradScaler("cuda", enabled=cuda)
        autocast = (lambda: torch.autocast("cuda", dtype=torch.float16)) if cuda else \
            (lambda: torch.autocast("cpu", enabled=False))
        loss_gen = torch.Generator().manual_seed(1)

        def run(n_steps: int) -> float:
            loader = trainer_loader(dataset, batch_size, n_steps, workers, cuda)
            if cuda:
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            train_epoch(model, loader, loss_fn, optimiser, scaler, params, device, autocast, loss_gen,
                        channels_last=cuda)
            if cuda:
                torch.cuda.synchronize(device)
            return time.perf_counter() - start

        run(WARMUP_STEPS)
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        seconds = run(steps)
    rate = steps * batch_size / seconds
    print(f"training: {rate:.0f} pairs/s ({steps} steps of {batch_size} pairs in {seconds:.2f} s, "
          f"loader start-up included)")
    if cuda:
        peak = torch.cuda.max_memory_allocated(device) / 2 ** 30
        print(f"peak GPU memory: {peak:.2f} GiB allocated on {torch.cuda.get_device_name(device)} "
              f"(AMP fp16 + channels-last)")
        if args.config == "paper":
            verdict = "meets" if rate >= GPU_TARGET else "MISSES"
            print(f"target (paper config, one H100): >= {GPU_TARGET} pairs/s: {verdict} it "
                  f"({rate:.0f} pairs/s on this GPU)")
    else:
        own, children = peak_rss_mb()
        print(f"peak memory (RSS): {own:.0f} MB this process"
              + (f", {children:.0f} MB the largest loader worker (pages shared with this process "
                 f"counted)" if workers else ""))
        if args.config == "paper":
            print(f"not the GPU target: the {GPU_TARGET} pairs/s target is for an H100; run this "
                  f"script there")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
