"""The prepared GPU check (issue 15): every CUDA path of the kit, measured in one command.

    benchmarks/gpu_check.sh              # or: make gpu-check
    python benchmarks/gpu_check.py [--device auto|cpu] [--parts features,train,syncs,smoke,ddp]
                                   [--out FILE] [--quick] [--smoke-rehearsal] [--train-pairs N]

It writes one JSON file (default ``reports/gpu/gpu_check-<device>.json``; its fields are explained
in ``reports/gpu/README.md``) with the machine (device name, driver, torch, CUDA and cuDNN
versions) and one entry per part:

- ``features``: the CUDA music-feature extractor (``fast_features(device="cuda")``) against the
  NumPy one on the same clips, the largest error of each block against
  ``cdcml_lib.data.features.TOLERANCE``, and clips per second (target >= 2,000 clips/s);
- ``train``: the paper configuration's training step (``cdcml_lib.runs.train.train_epoch``: ResNet-50
  image branch at 224 px, ResNet-18 music branch, batch 128, AMP, channels-last, with the
  trainer's deterministic settings) in pairs per second with the DataLoader included (target >=
  2,000 pairs/s), and the DataLoader's own rate, which must be >= 3x the trainer's;
- ``syncs``: the host's waits for the device in one training step, counted with the profiler
  (``torch.unique``, ``.item()``/``int()`` of a device tensor, boolean-mask indexing, and on CUDA the
  CUDA runtime's synchronising calls and the time spent in them), attributed to source lines;
- ``smoke``: ``make reproduce CONFIG=smoke`` end to end with the training on the GPU, next to the
  same study on the CPU, both in scratch copies of the repository, and their test metrics side by
  side (``sim_mse`` within :data:`SMOKE_RTOL`, relative);
- ``ddp``: a smoke run under ``torchrun`` with one process per GPU (nccl).

Bounded so that the whole takes at most about 8 minutes on one H100/H200 (each subprocess has a
timeout). On a machine without a CUDA GPU (or with ``--device cpu``) every CUDA measurement is
skipped, with the reason in the JSON, and the same code runs at tiny sizes on the CPU: the feature
comparison on torch's CPU device, the trainer's step on the smoke configuration, the profiler
count, a dry run of the smoke study's make command in a scratch copy, and a 2-process gloo run
(``--quick`` skips the last two; ``--smoke-rehearsal`` runs the smoke part's two studies for
real, both on the CPU): the GPU day is then not the first run of this code.

Nothing is downloaded: the backbones are built with ``pretrained: false`` (same speed) and the
training data are the built ``data/paper`` folder, else synthetic memory maps of its shapes.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import torch
import yaml

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(ROOT))
from features import benchmark_clips  # noqa: E402
from loader import (GPU_TARGET, benchmark_folder, config_params, loader_rate,  # noqa: E402
                    synthetic_batch)
from train import trainer_loader  # noqa: E402

from cdcml_lib.data import features as F  # noqa: E402
from cdcml_lib.losses import build_loss  # noqa: E402
from cdcml_lib.nets import build_model  # noqa: E402
from cdcml_lib.runs.loader import PairDataset, fit_music_standardiser  # noqa: E402
from cdcml_lib.runs.train import set_determinism, train_epoch  # noqa: E402
from cdcml_lib.workflow.params import study_runs, train_params  # noqa: E402

SCHEMA = 1
PARTS = ("features", "train", "syncs", "smoke", "ddp")
FEATURE_TARGET = 2000        # clips/s of the CUDA extractor on an H100/H200-class GPU (issue 15)
TRAIN_TARGET = GPU_TARGET    # pairs/s of the paper configuration on one H100/H200 (issue 8, 15)
LOADER_FACTOR = 3            # the DataLoader alone must feed >= 3x what the trainer consumes
SMOKE_RTOL = 1e-3            # relative: GPU vs CPU test sim_mse of each smoke run (see the JSON note)
DDP_ATOL = 0.01              # absolute, error metrics, DDP vs one process (dropout: tests/test_distributed)
BUDGET_S = 470              # the whole check, on a GPU: the subprocesses' timeouts fit in it
NO_GPU = "no CUDA GPU: torch.cuda.is_available() is False on this machine"
FORCED_CPU = "--device cpu: CUDA parts not run"

# Python modules each part needs beyond torch and numpy (the kit's dependencies, pyproject.toml):
# a machine without them gets a failed check that names them, not a traceback.
KIT_MODULES = ("pandas", "scipy", "torchvision", "librosa", "soxr", "soundfile", "PIL", "matplotlib",
               "seaborn", "sklearn", "umap", "yaml", "tqdm", "bokeh")
NEEDS = {"features": ("librosa", "soxr", "scipy"),
         "train": ("torchvision", "pandas"),
         "syncs": ("torchvision", "pandas"),
         "smoke": KIT_MODULES + ("papermill", "ipykernel", "nbformat"),
         "ddp": ("torchvision", "pandas", "librosa", "soxr")}

# Operators after which the host waits for a CUDA device (their output size, or a value, must be
# known on the host), and the CUDA runtime calls in which it waits.
SYNC_OPS = {"aten::_unique2": "torch.unique (output size depends on the values)",
            "aten::unique_consecutive": "torch.unique_consecutive",
            "aten::_local_scalar_dense": ".item() / int() / float() of a device tensor",
            "aten::nonzero": "boolean-mask indexing / nonzero (output size depends on the values)"}
SYNC_RUNTIME = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize",
                "cudaMemcpy")


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------
class Budget:
    """Seconds left of :data:`BUDGET_S`: a part's subprocess gets at most what remains, less what
    the parts after it need."""

    def __init__(self, seconds: float):
        self.end = time.perf_counter() + seconds

    def left(self, reserve: float = 0.0, cap: float | None = None, floor: float = 30.0) -> float:
        left = self.end - time.perf_counter() - reserve
        return max(floor, min(cap, left) if cap is not None else left)


BUDGET = Budget(BUDGET_S)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def check(name: str, value, target, passed: bool | None, note: str = "") -> dict:
    out = {"name": name, "value": value, "target": target, "pass": passed}
    if note:
        out["note"] = note
    return out


def skipped(name: str, reason: str) -> dict:
    return {"name": name, "value": None, "target": None, "pass": None, "skipped": reason}


def run_command(cmd: list[str], timeout: float, env: dict | None = None, cwd: Path | None = None) -> dict:
    """Run ``cmd``; its status, wall time and the last lines of its output (never raises)."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        rc, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as err:
        rc = "timeout"
        output = ((err.stdout or b"").decode(errors="replace") if isinstance(err.stdout, bytes)
                  else (err.stdout or "")) + f"\n[killed after {timeout:.0f} s]"
    except OSError as err:
        rc, output = "not started", str(err)
    return {"command": " ".join(map(str, cmd)), "returncode": rc,
            "wall_s": round(time.perf_counter() - start, 2), "output": output}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info(device: torch.device) -> dict:
    info = {"hostname": socket.gethostname(), "python": platform.python_version(),
            "torch": torch.__version__, "cuda_runtime": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "cpu_count": os.cpu_count(), "gpu_count": torch.cuda.device_count() if torch.cuda.is_available() else 0,
            "device": str(device), "device_name": "cpu", "driver": None}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(device_name=props.name, gpu_memory_gib=round(props.total_memory / 2 ** 30, 1),
                    compute_capability=f"{props.major}.{props.minor}")
        smi = shutil.which("nvidia-smi")
        if smi:
            out = run_command([smi, "--query-gpu=driver_version", "--format=csv,noheader"], 20)
            info["driver"] = out["output"].strip().splitlines()[0] if out["returncode"] == 0 else None
        if not info["driver"]:
            info["driver_note"] = "nvidia-smi not found or failed: driver version unknown"
    return info


def missing_modules(names) -> list[str]:
    import importlib.util

    return [n for n in names if importlib.util.find_spec(n) is None]


def part_status(checks: list[dict]) -> str:
    ran = [c for c in checks if c.get("pass") is not None]
    if not ran:
        return "skipped" if any("skipped" in c for c in checks) else "measured"
    return "pass" if all(c["pass"] for c in ran) else "fail"


# --------------------------------------------------------------------------------------------
# Part 1: the CUDA feature extractor against the NumPy one
# --------------------------------------------------------------------------------------------
def block_errors(ref: np.ndarray, other: np.ndarray) -> dict:
    return {b: float(np.abs(other[:, rows] - ref[:, rows]).max()) for b, rows in F.BLOCKS.items()}


def part_features(device: torch.device, quick: bool, skip_reason: str | None) -> dict:
    """On CUDA: agreement on ``n_compare`` clips and clips/s on ``n_timed`` (the compared clips
    tiled: every clip costs the same work). On the CPU: the torch code of the CUDA path on torch's
    CPU device against the NumPy extractor (agreement only; its speed is not the GPU's)."""
    cuda = device.type == "cuda"
    n_compare = 256 if cuda else (4 if quick else 8)
    clips = benchmark_clips(n_compare)
    start = time.perf_counter()
    ref = F.fast_features(clips, device="cpu", n_jobs=-1 if cuda else 1)
    cpu_s = time.perf_counter() - start
    F.shutdown_workers()   # free the cores for the parts after this one
    out = {"clips_compared": n_compare, "tolerance": dict(F.TOLERANCE),
           "numpy_clips_per_s_first_call": round(n_compare / cpu_s, 1),
           "numpy_jobs": os.cpu_count() if cuda else 1}
    if cuda:
        F.fast_features(clips[:128], device=str(device))          # CUDA start-up, filter banks
        other = F.fast_features(clips, device=str(device))
        n_timed = 4096
        timed = np.concatenate([clips] * (n_timed // n_compare))
        rates = []
        for _ in range(2):                                       # best of two: the GPU is ours
            sync(device)
            start = time.perf_counter()
            F.fast_features(timed, device=str(device))         # returns numpy: synchronised
            rates.append(n_timed / (time.perf_counter() - start))
        out.update(path="fast_features(device='cuda')", clips_timed=n_timed,
                   cuda_clips_per_s=round(max(rates), 1), cuda_clips_per_s_runs=[round(r, 1) for r in rates])
        speed = check("cuda_clips_per_s", out["cuda_clips_per_s"], f">= {FEATURE_TARGET}",
                      out["cuda_clips_per_s"] >= FEATURE_TARGET)
    else:
        from cdcml_lib.data import features_torch

        start = time.perf_counter()
        other = features_torch.features_block(clips, "cpu")
        out.update(path="features_torch.features_block(device='cpu') (the CUDA path's code on "
                        "torch's CPU device)",
                   torch_cpu_clips_per_s=round(n_compare / (time.perf_counter() - start), 1))
        speed = skipped("cuda_clips_per_s", skip_reason)
    errors = block_errors(ref, other)
    out["max_abs_error"] = errors
    out["checks"] = [check(f"agreement_{b}", errors[b], f"<= {F.TOLERANCE[b]}", errors[b] <= F.TOLERANCE[b])
                     for b in F.BLOCKS] + [speed]
    return out


# --------------------------------------------------------------------------------------------
# Part 2: the paper configuration's training throughput, data loading included
# --------------------------------------------------------------------------------------------
class TimedBatches:
    """The trainer's DataLoader, with a clock started (device synchronised) when batch ``warmup``
    is handed over: the warm-up steps and the workers' start-up stay out of the timing."""

    def __init__(self, loader, warmup: int, device: torch.device):
        self.loader, self.warmup, self.device, self.t0 = loader, warmup, device, None

    def __iter__(self):
        for i, batch in enumerate(self.loader):
            if i == self.warmup:
                sync(self.device)
                self.t0 = time.perf_counter()
            yield batch


def trainer_pieces(params: dict, sigma: float, device: torch.device) -> dict:
    """Model, loss, optimiser, scaler and autocast exactly as ``runs.train._train_run`` builds them
    (one process)."""
    cuda = device.type == "cuda"
    set_determinism(0, 0)   # the trainer's settings: deterministic kernels, no cudnn autotuning
    model = build_model(params, sigma).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    optimiser = torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                                lr=float(params["lr"]), momentum=float(params["momentum"]),
                                weight_decay=float(params["weight_decay"]))
    autocast = (lambda: torch.autocast("cuda", dtype=torch.float16)) if cuda else \
        (lambda: torch.autocast("cpu", enabled=False))
    return {"model": model, "loss_fn": build_loss(params, sigma), "optimiser": optimiser,
            "scaler": torch.amp.GradScaler("cuda", enabled=cuda), "autocast": autocast}


def training_setup(device: torch.device, quick: bool, tmp: Path) -> tuple[str, dict, dict]:
    """The configuration, its parameters and the sizes of this part's measurement."""
    if device.type == "cuda":
        config = "paper"
        sizes = {"warmup": 5, "steps": 40, "loader_batches": 40, "n_images": 2048, "n_clips": 1024,
                 "n_pairs": 8192}
    else:
        config = "smoke"
        sizes = {"warmup": 1, "steps": 2 if quick else 5, "loader_batches": 4 if quick else 10,
                 "n_images": 128, "n_clips": 64, "n_pairs": 512}
    params = config_params(config)
    params["data_dir"] = str(tmp / "no-data")  # never the built folder: same data every time
    return config, params, sizes


def part_train(device: torch.device, quick: bool, skip_reason: str | None, train_pairs: int | None) -> dict:
    cuda = device.type == "cuda"
    with tempfile.TemporaryDirectory(prefix="cdcml-gpu-check-") as tmp:
        config, params, sizes = training_setup(device, quick, Path(tmp))
        if cuda and (ROOT / "data/paper/stats.json").is_file():
            params["data_dir"] = "data/paper"
        folder, what = benchmark_folder(params, Path(tmp), sizes["n_images"], sizes["n_clips"],
                                        sizes["n_pairs"])
        batch_size = int(params["batch_size"])
        workers = min(int(params["num_workers"]), os.cpu_count() or 1)
        standardiser = fit_music_standardiser(folder)
        dataset = PairDataset(folder, "train", standardiser, image_size=int(params["image_size"]),
                              raw_images=cuda)   # as the trainer: uint8 to the GPU, normalised there
        pieces = trainer_pieces(params, float(folder.stats["sigma"]), device)
        timed = TimedBatches(trainer_loader(dataset, batch_size, sizes["warmup"] + sizes["steps"],
                                            workers, cuda), sizes["warmup"], device)
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        train_epoch(pieces["model"], timed, pieces["loss_fn"], pieces["optimiser"], pieces["scaler"],
                    params, device, pieces["autocast"], torch.Generator().manual_seed(1),
                    channels_last=cuda)
        sync(device)
        trainer_rate = sizes["steps"] * batch_size / (time.perf_counter() - timed.t0)
        loader = loader_rate(dataset, batch_size, workers, sizes["loader_batches"], pin_memory=cuda)
    out = {"config": config, "data": what, "batch_size": batch_size, "image_size": int(params["image_size"]),
           "image_backbone": params["image_backbone"], "music_backbone": params["music_backbone"],
           "amp_fp16": cuda, "channels_last": cuda, "pretrained_weights": False,
           "loader_workers": workers, "timed_steps": sizes["steps"], "warmup_steps": sizes["warmup"],
           "trainer_pairs_per_s": round(trainer_rate, 1), "loader_pairs_per_s": round(loader, 1),
           "loader_over_trainer": round(loader / trainer_rate, 2)}
    ratio = check("loader_over_trainer", out["loader_over_trainer"], f">= {LOADER_FACTOR}",
                  out["loader_over_trainer"] >= LOADER_FACTOR,
                  "" if cuda else "CPU, smoke configuration: exercises the code, not the GPU check")
    if cuda:
        out["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2 ** 30, 2)
        out["checks"] = [check("trainer_pairs_per_s", out["trainer_pairs_per_s"], f">= {TRAIN_TARGET}",
                               out["trainer_pairs_per_s"] >= TRAIN_TARGET), ratio]
        out["estimate"] = paper_estimate(trainer_rate, train_pairs)
    else:
        out["checks"] = [skipped("trainer_pairs_per_s", skip_reason), ratio]
        out["estimate"] = {"skipped": f"{skip_reason}: the paper-scale estimate needs the GPU rate"}
    return out


def paper_estimate(pairs_per_s: float, train_pairs: int | None) -> dict:
    """Training time of one paper-scale run and of the paper study, from the measured rate:
    one run = epochs x N_train / rate (evaluation and start-up not included); the study = that
    times its number of runs (every variant costed as CDCML: the baselines differ a little)."""
    paper = train_params("paper", "cdcml", 0)
    epochs, runs = int(paper["epochs"]), len(study_runs("paper"))
    source = "--train-pairs"
    if train_pairs is None and (ROOT / "data/paper/pairs_train.txt").is_file():
        with open(ROOT / "data/paper/pairs_train.txt") as fh:
            train_pairs, source = sum(1 for line in fh if line.strip()), "data/paper/pairs_train.txt"
    out = {"formula": "run_s = epochs * N_train / trainer_pairs_per_s; study_s = runs * run_s",
           "epochs": epochs, "runs_in_study": runs, "trainer_pairs_per_s": round(pairs_per_s, 1)}
    if train_pairs is None:
        out["N_train"] = None
        out["note"] = ("N_train unknown: give --train-pairs N (the lines of pairs_train.txt) or build "
                       "data/paper; the formula above then gives the times")
        return out
    run_s = epochs * train_pairs / pairs_per_s
    out.update(N_train=train_pairs, N_train_source=source, run_hours=round(run_s / 3600, 2),
               study_gpu_hours=round(runs * run_s / 3600, 1))
    return out


# --------------------------------------------------------------------------------------------
# Part 3: the host's waits for the device in one training step
# --------------------------------------------------------------------------------------------
KIT_FRAME = re.compile(r"(cdcml_lib|benchmarks)/[^(]*\(\d+\): \S+")


def _site(event) -> str:
    """Where the kit called an operator: its innermost two kit functions (file(line): name of the
    function), from the profiler's Python-function events above it (``with_stack=True``)."""
    frames, parent = [], event.cpu_parent
    while parent is not None and len(frames) < 2:
        match = KIT_FRAME.search(parent.name)
        if match:
            frames.append(match.group(0))
        parent = parent.cpu_parent
    return " <- ".join(frames) or "(outside the kit)"


def part_syncs(device: torch.device, quick: bool) -> dict:
    """Profile ``steps`` training steps (``train_epoch`` on a fixed batch) and count, per step,
    the operators after which a CUDA host must wait, by source line; on CUDA also the CUDA
    runtime's synchronising calls with their time, and torch's sync debug mode's warnings."""
    cuda = device.type == "cuda"
    with tempfile.TemporaryDirectory(prefix="cdcml-gpu-check-") as tmp:
        config, params, _ = training_setup(device, quick, Path(tmp))
    batch_size = int(params["batch_size"])
    steps = 2 if quick else 5
    batch = synthetic_batch(batch_size, int(params["image_size"]), 4 * batch_size, torch.device("cpu"))
    batch["music_idx"] = torch.arange(batch_size) % (batch_size // 2)   # repeated items, as real batches
    if cuda:
        batch = {k: v.pin_memory() for k, v in batch.items()}
    else:
        from cdcml_lib.runs.loader import image_to_tensor

        batch["images"] = image_to_tensor(batch["images"])     # the CPU loader normalises
    pieces = trainer_pieces(params, 0.3, device)

    def steps_of(n: int) -> None:
        train_epoch(pieces["model"], [batch] * n, pieces["loss_fn"], pieces["optimiser"], pieces["scaler"],
                    params, device, pieces["autocast"], torch.Generator().manual_seed(1),
                    channels_last=cuda)

    steps_of(1 if quick else 2)     # warm-up: allocator, cudnn, lazy initialisation
    sync(device)
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    with torch.profiler.profile(activities=activities, with_stack=True) as prof:
        steps_of(steps)
        sync(device)
    ops: dict[str, dict] = {}
    runtime: dict[str, dict] = {}
    for event in prof.events():
        if event.name in SYNC_OPS:
            entry = ops.setdefault(event.name, {"what": SYNC_OPS[event.name], "sites": {}})
            site = _site(event)
            entry["sites"][site] = entry["sites"].get(site, 0) + 1
        elif cuda and event.name in SYNC_RUNTIME:
            entry = runtime.setdefault(event.name, {"calls": 0, "cpu_time_us": 0.0})
            entry["calls"] += 1
            entry["cpu_time_us"] += float(event.cpu_time_total)
    for entry in ops.values():
        entry["per_step"] = sum(entry["sites"].values()) / steps
        entry["sites"] = {k: v / steps for k, v in sorted(entry["sites"].items())}
    out = {"config": config, "batch_size": batch_size, "profiled_steps": steps,
           "ops_per_step": ops,
           "notes": ["on the CPU nothing waits; these are the operators that would make a CUDA "
                     "host wait, counted on the CPU's run of the same step",
                     "the Eq.-2 triplet count is a host int (tensor shapes): float(n) does not wait",
                     "GradScaler.step reads its inf/NaN flag on the host once a step (AMP, CUDA "
                     "only): a wait that mixed precision with a dynamic loss scale needs",
                     "DDP (not profiled here, one process): one exchange of batch sizes per step "
                     "(rank_sizes) is the only wait gather_global_many adds"]}
    if cuda:
        out["runtime_per_step"] = {k: {"calls": v["calls"] / steps,
                                       "wait_ms": round(v["cpu_time_us"] / steps / 1000, 3)}
                                   for k, v in runtime.items()}
        out["sync_debug_warnings_per_step"] = sync_debug_sites(steps_of, steps)
        out["step_ms_unprofiled"] = step_ms(steps_of, steps, device)
    in_losses = {name: sum(v for k, v in ops.get(name, {}).get("sites", {}).items() if "losses.py" in k.split(" <- ")[0])
                 for name in SYNC_OPS}
    out["checks"] = [check("losses_unique_per_step", in_losses["aten::_unique2"], "<= 2 (one per modality)",
                           in_losses["aten::_unique2"] <= 2),
                     check("losses_item_per_step", in_losses["aten::_local_scalar_dense"], "== 0",
                           in_losses["aten::_local_scalar_dense"] == 0)]
    return out


def sync_debug_sites(steps_of, steps: int) -> dict:
    """torch's CUDA sync debug mode warns at every synchronising call: count them by location."""
    counts: dict[str, float] = {}
    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            steps_of(steps)
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    for w in caught:
        if "synchroniz" in str(w.message).lower():
            where = re.sub(r"^.*?(cdcml_lib|benchmarks|torch)/", r"\1/", f"{w.filename}:{w.lineno}")
            counts[where] = counts.get(where, 0) + 1 / steps
    return dict(sorted(counts.items()))


def step_ms(steps_of, steps: int, device) -> float:
    sync(device)
    start = time.perf_counter()
    steps_of(steps)
    sync(device)
    return round((time.perf_counter() - start) / steps * 1000, 2)


# --------------------------------------------------------------------------------------------
# Part 4: make reproduce CONFIG=smoke with the training on the GPU, and on the CPU
# --------------------------------------------------------------------------------------------
SCRATCH_SKIP = {".git", ".venv", "data", "runs", ".make", "__pycache__", ".pytest_cache"}
SCRATCH_SKIP_REPORTS = {"smoke", "paper", "imemnet", "notebooks", "gpu", "timings"}


def scratch_copy(dest: Path, train_device: str | None) -> Path:
    """A copy of the repository's sources in ``dest`` (no data, runs, .git or environment);
    ``train_device`` set in its params/smoke.yaml (train.device, dataset.feature_device)."""
    def ignore(folder, names):
        here = Path(folder).resolve()
        skip = {n for n in names if n in SCRATCH_SKIP or n.endswith((".partial.ipynb", ".failed.ipynb"))}
        if here == ROOT / "reports":
            skip |= {n for n in names if n in SCRATCH_SKIP_REPORTS}
        return skip

    shutil.copytree(ROOT, dest, ignore=ignore, symlinks=True)
    if train_device:
        path = dest / "params/smoke.yaml"
        data = yaml.safe_load(path.read_text())
        data["train"]["device"] = train_device
        data["dataset"]["feature_device"] = train_device
        path.write_text(f"# gpu_check: params/smoke.yaml with the training on {train_device}\n"
                        + yaml.safe_dump(data, sort_keys=False))
    (dest / ".gpu_check_env_ok").touch()   # Make's environment stamp, newer than pyproject.toml
    return dest


def make_command(copy: Path, target: str, jobs: int, dry_run: bool = False) -> list[str]:
    """``make`` in the scratch copy with this interpreter (no .venv there: PY and ENV_OK given)."""
    return (["make", "-C", str(copy)] + (["-n"] if dry_run else []) +
            [target, "CONFIG=smoke", f"JOBS={jobs}", f"PY={sys.executable}",
             f"ENV_OK={copy / '.gpu_check_env_ok'}"])


def kernel_spec(folder: Path) -> Path:
    """A Jupyter data folder holding a ``cdcml`` kernel (the kernel the notebooks run under) that
    starts this interpreter: the studies' notebooks then run with the check's Python, also on a
    machine where ``make env`` never registered the kernel (nothing is installed anywhere)."""
    spec = folder / "kernels" / "cdcml"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (cdcml, gpu_check)", "language": "python"}))
    return folder


def copy_env(copy: Path, hide_gpu: bool) -> dict:
    """The environment of ``make`` in a scratch copy: its sources first, its root, the kernel."""
    jupyter = kernel_spec(copy / ".gpu_check_jupyter")
    env = dict(os.environ, CDCML_ROOT=str(copy), PYTHONPATH=str(copy), CI="1",
               JUPYTER_PATH=os.pathsep.join([str(jupyter)] + [p for p in [os.environ.get("JUPYTER_PATH")] if p]))
    if hide_gpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def compare_metrics(gpu_runs: Path, cpu_runs: Path) -> dict:
    """Test metrics of the runs present in both folders: the relative difference of each."""
    runs = {}
    for path in sorted(gpu_runs.glob("*/metrics.json")):
        other = cpu_runs / path.parent.name / "metrics.json"
        if not other.is_file():
            continue
        a, b = json.loads(path.read_text())["test"], json.loads(other.read_text())["test"]
        runs[path.parent.name] = {k: {"gpu": a[k], "cpu": b[k],
                                      "rel_diff": abs(a[k] - b[k]) / max(abs(b[k]), 1e-12)}
                                  for k in a if k in b}
    return runs


def part_smoke(device: torch.device, skip_reason: str | None, rehearsal: bool = False) -> dict:
    """On CUDA both studies; on the CPU make's plan of the GPU one only, or with ``rehearsal``
    both studies with the "GPU" one's training on the CPU too (the plumbing end to end: its
    metrics must then equal the reference's)."""
    cuda = device.type == "cuda"
    absent = [tool for tool in ("make", "flock") if shutil.which(tool) is None]
    if absent:   # the Makefile's reproduce target needs both
        return {"checks": [check("smoke_tools", absent, "none missing", False,
                                 f"{absent} not installed: make reproduce needs GNU make and flock")]}
    with tempfile.TemporaryDirectory(prefix="cdcml-gpu-check-smoke-") as tmp:
        gpu_copy = scratch_copy(Path(tmp) / "gpu", "cuda" if cuda or not rehearsal else "cpu")
        if not cuda and not rehearsal:
            # Only the plumbing: the scratch copy, its params and make's plan of the study.
            plan = run_command(make_command(gpu_copy, "reports/smoke/REPORT.md", 2, dry_run=True), 120,
                               env=copy_env(gpu_copy, hide_gpu=False))
            training = [line for line in plan["output"].replace("\\\n", " ").splitlines()
                        if "02_train" in line or "runs.train" in line]
            planned = set(re.findall(r"--variant (\S+)", "\n".join(training)))
            untrained = sorted({v for v, _ in study_runs("smoke")} - planned)
            out = {"dry_run": {"returncode": plan["returncode"], "wall_s": plan["wall_s"],
                               "training_commands": len(training), "variants_not_trained": untrained},
                   "params_device": yaml.safe_load((gpu_copy / "params/smoke.yaml").read_text())["train"]["device"]}
            if plan["returncode"] != 0:
                out["dry_run"]["output_tail"] = plan["output"][-3000:]
            ok = plan["returncode"] == 0 and not untrained
            out["checks"] = [check("make_plan_ok", ok, True, ok, "make -n of the smoke study in a scratch "
                                   "copy: it succeeds and plans the training of every variant"),
                             skipped("smoke_gpu_vs_cpu", skip_reason)]
            return out
        cpu_copy = scratch_copy(Path(tmp) / "cpu", None)
        jobs = max(2, min(8, (os.cpu_count() or 2) // 2))
        # Both studies at once: the GPU one is mostly waiting for its GPU, the CPU one for cores.
        procs = {}
        for name, copy, hide in (("gpu", gpu_copy, False), ("cpu", cpu_copy, True)):
            cmd = make_command(copy, "reproduce", jobs)
            procs[name] = (cmd, time.perf_counter(), subprocess.Popen(
                cmd, env=copy_env(copy, hide), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        results = {}
        # 90 s left for the DDP part; a CPU rehearsal is slow and has no device budget.
        timeout = BUDGET.left(reserve=90, cap=240) if cuda else 1800
        for name, (cmd, start, proc) in procs.items():
            try:
                output, _ = proc.communicate(timeout=max(5.0, timeout - (time.perf_counter() - start)))
                rc = proc.returncode
            except subprocess.TimeoutExpired:
                proc.kill()
                output, rc = (proc.communicate()[0] or "") + f"\n[killed after {timeout:.0f} s]", "timeout"
            results[name] = {"command": " ".join(cmd), "returncode": rc,
                             "wall_s": round(time.perf_counter() - start, 1), "output_tail": output[-3000:]}
        out = {"studies": results, "rtol_sim_mse": SMOKE_RTOL, "gpu_copy_train_device": "cuda" if cuda else "cpu",
               "policy_note": "the GPU trains in fp16 autocast, the CPU in fp32; the tolerance here is "
                              "a first yardstick: the determinism policy (what must match, and how "
                              "closely) is the lead's to state in the README"}
        if all(r["returncode"] == 0 for r in results.values()):
            runs = compare_metrics(gpu_copy / "runs/smoke", cpu_copy / "runs/smoke")
            out["runs"] = runs
            worst = max((r["sim_mse"]["rel_diff"] for r in runs.values() if "sim_mse" in r), default=None)
            out["checks"] = [check("smoke_studies_finish", True, True, True),
                             check("sim_mse_max_rel_diff", worst, f"<= {SMOKE_RTOL}",
                                   worst is not None and worst <= SMOKE_RTOL)]
        else:
            out["checks"] = [check("smoke_studies_finish", {k: r["returncode"] for k, r in results.items()},
                                   0, False)]
        if not cuda:
            out["rehearsal"] = ("--smoke-rehearsal on the CPU: both studies train on the CPU; this "
                                "checks the plumbing end to end, it is not a GPU figure")
            if "runs" in out:   # the same computation twice: nothing may differ
                differ = sorted(f"{run}.{k}" for run, m in out["runs"].items() for k, v in m.items()
                                if v["rel_diff"] != 0)
                out["checks"] = [c for c in out["checks"] if c["name"] != "sim_mse_max_rel_diff"] + [
                    check("rehearsal_runs_compared", len(out["runs"]), f"== {len(study_runs('smoke'))}",
                          len(out["runs"]) == len(study_runs("smoke"))),
                    check("rehearsal_metrics_identical", not differ, True, not differ,
                          "; ".join(differ[:10]))]
            out["checks"].append(skipped("smoke_gpu_vs_cpu", skip_reason))
    return out


# --------------------------------------------------------------------------------------------
# Part 5: DDP, one process per GPU (nccl), or 2 gloo processes on the CPU
# --------------------------------------------------------------------------------------------
def part_ddp(device: torch.device, quick: bool, skip_reason: str | None) -> dict:
    cuda = device.type == "cuda"
    if quick:
        return {"checks": [skipped("ddp_smoke_run", "--quick: the DDP run is left out")]}
    from cdcml_lib.data.dataset import build_dataset
    from cdcml_lib.workflow.params import section

    nproc = torch.cuda.device_count() if cuda else 2
    with tempfile.TemporaryDirectory(prefix="cdcml-gpu-check-ddp-") as tmp:
        dataset = section("smoke", "dataset")
        dataset.update(out_dir=str(Path(tmp) / "data"), feature_device="cuda" if cuda else "cpu")
        build_dataset(**dataset)
        params = train_params("smoke", "cdcml", 0, str(Path(tmp) / "run"))
        params.update(data_dir=dataset["out_dir"], device="cuda" if cuda else "cpu")
        if not cuda:
            params["epochs"] = 1
        params_file = Path(tmp) / "params.json"
        params_file.write_text(json.dumps(params))
        env = dict(os.environ, PYTHONPATH=str(ROOT), CDCML_ROOT=str(ROOT), OMP_NUM_THREADS="1", CI="1")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "cdcml_lib.runs.train", "--params-file", str(params_file)]
        result = run_command(cmd, BUDGET.left(reserve=20, cap=240, floor=60), env=env)
        run_json = Path(tmp) / "run" / "run.json"
        info = json.loads(run_json.read_text()) if run_json.is_file() else {}
        finished = (Path(tmp) / "run" / "metrics.json").is_file()
    out = {"backend": "nccl" if cuda else "gloo", "nproc": nproc, "epochs": params["epochs"],
           "run": {k: result[k] for k in ("command", "returncode", "wall_s")},
           "world_size": info.get("world_size"), "device_name": info.get("device_name")}
    if not finished:
        out["run"]["output_tail"] = result["output"][-3000:]
    checks = [check("ddp_smoke_run_finishes", finished, True, finished and info.get("world_size") == nproc)]
    if cuda and nproc == 1:
        # torchrun with one process has WORLD_SIZE 1: the trainer opens no process group. The
        # gathers of a step still go through nccl here, with a world of one.
        nccl = run_command([sys.executable, "-c", NCCL_WORLD_OF_ONE.replace("PORT", str(free_port()))],
                           60, env=env)
        out["nccl_world_of_one"] = {"returncode": nccl["returncode"], "output": nccl["output"][-1500:]}
        checks.append(check("nccl_gather_world_of_one", nccl["returncode"] == 0, True, nccl["returncode"] == 0,
                            "one GPU: the DDP run above has no process group; gather_global_many over "
                            "nccl with one rank instead"))
    elif not cuda:
        checks.append(skipped("ddp_nccl", f"{skip_reason}: ran 2 gloo processes on the CPU instead"))
    out["checks"] = checks
    return out


NCCL_WORLD_OF_ONE = """
import torch, torch.distributed as dist
from cdcml_lib.runs.distributed import DistContext, gather_global_many
dist.init_process_group("nccl", init_method="tcp://127.0.0.1:PORT", rank=0, world_size=1)
x = {"f": torch.randn(8, 4, device="cuda", requires_grad=True), "i": torch.arange(8, device="cuda")}
y = gather_global_many(x, DistContext(0, 1, 0, None))
assert torch.equal(y["f"], x["f"]) and torch.equal(y["i"], x["i"]) and y["f"].requires_grad
dist.destroy_process_group()
print("nccl", torch.cuda.nccl.version(), "gather ok")
"""


# --------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("auto", "cpu"), default="auto",
                        help="auto: the GPU when torch sees one; cpu: skip every CUDA part")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {','.join(PARTS)}")
    parser.add_argument("--out", default=None, help="JSON file (default reports/gpu/gpu_check-<device>.json)")
    parser.add_argument("--quick", action="store_true", help="CPU test sizes; leaves out the smoke "
                        "study's dry run and the DDP run")
    parser.add_argument("--smoke-rehearsal", action="store_true",
                        help="without a GPU: run the smoke part's two studies for real, both on the "
                        "CPU (minutes), to check its plumbing end to end")
    parser.add_argument("--train-pairs", type=int, default=None,
                        help="N_train for the paper-scale time estimate (lines of pairs_train.txt)")
    args = parser.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"--parts: unknown {unknown}; choose from {list(PARTS)}")

    global BUDGET
    BUDGET = Budget(BUDGET_S)
    cuda = args.device == "auto" and torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    skip_reason = None if cuda else (FORCED_CPU if args.device == "cpu" else NO_GPU)
    machine = machine_info(device)
    slug = re.sub(r"[^A-Za-z0-9]+", "_", machine["device_name"]).strip("_") or "cpu"
    out_path = Path(args.out) if args.out else ROOT / "reports" / "gpu" / f"gpu_check-{slug}.json"
    report = {"schema": SCHEMA, "script": "benchmarks/gpu_check.py", "commit": git_commit(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "mode": device.type, "quick": args.quick,
              "machine": machine, "skip_reason": skip_reason, "parts": {}}
    if args.quick and cuda:
        print("note: --quick only shortens the CPU run; on a GPU the sizes stay the issue's")
    start = time.perf_counter()
    runners = {"features": lambda: part_features(device, args.quick, skip_reason),
               "train": lambda: part_train(device, args.quick, skip_reason, args.train_pairs),
               "syncs": lambda: part_syncs(device, args.quick),
               "smoke": lambda: (part_smoke(device, skip_reason, args.smoke_rehearsal) if not args.quick else
                                 {"checks": [skipped("smoke_study", "--quick: the smoke study's dry run is left out"),
                                             skipped("smoke_gpu_vs_cpu", skip_reason or "--quick")]}),
               "ddp": lambda: part_ddp(device, args.quick, skip_reason)}
    for name in PARTS:
        if name not in parts:
            report["parts"][name] = {"status": "skipped", "checks": [skipped(name, "not in --parts")]}
            continue
        t0 = time.perf_counter()
        print(f"[{name}] ...", flush=True)
        missing = missing_modules(NEEDS[name])
        try:
            if missing:
                result = {"checks": [check("python_packages", missing, "none missing", False,
                                           f"install {missing} (pip install -e '.[dev]'), then run again")]}
            else:
                result = runners[name]()
        except Exception as err:  # noqa: BLE001 - one failing part must not hide the others' figures
            result = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-3000:],
                      "checks": [check(name, None, "no error", False)]}
        result["wall_s"] = round(time.perf_counter() - t0, 1)
        result["status"] = "error" if "error" in result else part_status(result["checks"])
        report["parts"][name] = result
        print(f"[{name}] {result['status']} in {result['wall_s']} s: "
              + "; ".join(f"{c['name']} {c['value'] if 'skipped' not in c else 'skipped (' + c['skipped'] + ')'}"
                          for c in result["checks"]), flush=True)
    report["wall_s"] = round(time.perf_counter() - start, 1)
    report["skipped"] = {f"{p}.{c['name']}": c["skipped"] for p, r in report["parts"].items()
                         for c in r["checks"] if "skipped" in c}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {out_path} ({report['wall_s']} s)")
    failed = [p for p, r in report["parts"].items() if r["status"] in ("fail", "error")]
    if failed:
        print(f"FAILED parts: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
