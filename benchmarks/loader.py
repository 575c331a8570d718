"""Does the data path keep the model fed? (issue 8)

Measures, on this machine and for one configuration's train section:

1. the DataLoader alone (cdcml_lib.runs.loader.PairDataset over the memory-mapped caches, batches drawn
   as the trainer draws them) with 0, 1 and 2 worker processes, in pairs per second, in both of
   the trainer's modes: images normalised in the loader (the CPU trainer) and uint8 images
   normalised later on the GPU (the CUDA trainer, ``PairDataset(raw_images=True)``);
2. the model alone: forward + backward + optimiser step of the configuration's CDCML model on
   synthetic tensors of the same shapes (no loading at all), in pairs per second, on the device
   the trainer would use (on CUDA as train.py does: uint8 images normalised on the GPU, AMP,
   channels-last);

and says which of the two is the bottleneck.

    python benchmarks/loader.py --config default|paper [--batches N] [--steps M]

Data: the configuration's dataset folder when it has been built; otherwise (e.g. the paper
configuration without data/paper) a temporary dataset folder of synthetic memory-mapped arrays
at the configuration's shapes (images uint8 [n, S, S, 3], music features float32 [n, 193, 87]),
small enough to sit in the page cache: it measures indexing, conversion and normalisation, not
the disk. The script says which one it used.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cdcml_lib.data.corpora import write_pairs  # noqa: E402
from cdcml_lib.runs.loader import PairDataset, fit_music_standardiser, image_to_tensor  # noqa: E402
from cdcml_lib.data.dataset import DatasetFolder, open_dataset  # noqa: E402
from cdcml_lib.losses import build_loss  # noqa: E402
from cdcml_lib.nets import build_model  # noqa: E402
from cdcml_lib.workflow.params import train_params  # noqa: E402
from cdcml_lib.workflow.paths import resolve  # noqa: E402

MUSIC_SHAPE = (193, 87)
GPU_TARGET = 2000   # pairs/s the paper configuration should train at on one H100 (issue 8)
SYNTHETIC_SIGMA = 0.3


def config_params(config: str) -> dict:
    """The config's train section merged with the CDCML variant; no pretrained download."""
    params = train_params(config, "cdcml", 0)
    params["pretrained"] = False   # same speed; the weights may not be in the local cache
    return params


# --------------------------------------------------------------------------------------------
# The data: the built folder, or synthetic memory maps of the same shapes
# --------------------------------------------------------------------------------------------
def synthetic_folder(root: Path, image_size: int, n_images: int, n_clips: int, n_pairs: int,
                     seed: int = 0) -> DatasetFolder:
    """A dataset folder in ``root`` with random arrays of the trainer's shapes and random pairs
    (training split only): enough for PairDataset, written as .npy files read back memory-mapped."""
    rng = np.random.default_rng(seed)
    cache = root / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    arrays = {"images": ((n_images, image_size, image_size, 3), np.uint8),
              "music_features": ((n_clips, *MUSIC_SHAPE), np.float32)}
    manifest = {}
    for name, (shape, dtype) in arrays.items():
        out = np.lib.format.open_memmap(cache / f"{name}_synthetic.npy", mode="w+", dtype=dtype, shape=shape)
        for start in range(0, shape[0], 256):   # chunked: never the whole array in memory
            stop = min(start + 256, shape[0])
            block = rng.integers(0, 256, (stop - start, *shape[1:])) if dtype == np.uint8 \
                else rng.standard_normal((stop - start, *shape[1:]))
            out[start:stop] = block.astype(dtype)
        out.flush()
        del out
        manifest[name] = {"file": f"{name}_synthetic.npy", "key": "synthetic", "shape": list(shape),
                          "dtype": np.dtype(dtype).name, "made_by": "benchmarks/loader.py"}
    items = pd.DataFrame({
        "id": [f"img{i}" for i in range(n_images)] + [f"clip{i}" for i in range(n_clips)],
        "modality": ["image"] * n_images + ["music"] * n_clips,
        "song": [""] * n_images + [f"song{i // 20}" for i in range(n_clips)],
        "split": "train", "valence": rng.random(n_images + n_clips),
        "arousal": rng.random(n_images + n_clips), "source": "synthetic", "path": "",
        "start_s": np.nan, "row": list(range(n_images)) + list(range(n_clips))})
    pairs = pd.DataFrame({"music_id": [f"clip{i}" for i in rng.integers(0, n_clips, n_pairs)],
                          "image_id": [f"img{i}" for i in rng.integers(0, n_images, n_pairs)],
                          "score": rng.random(n_pairs)})
    write_pairs(pairs, root / "pairs_train.txt")
    stats = {"sigma": SYNTHETIC_SIGMA}
    (root / "stats.json").write_text(json.dumps(stats))
    return DatasetFolder(path=root, items=items, stats=stats, manifest=manifest)


def benchmark_folder(params: dict, tmp: Path, n_images: int = 2048, n_clips: int = 1024,
                     n_pairs: int = 8192) -> tuple[DatasetFolder, str]:
    """The config's dataset folder if built, else synthetic memmaps at its shapes; and a line
    saying which."""
    data_dir = resolve(params["data_dir"])
    if (data_dir / "stats.json").is_file():
        folder = open_dataset(data_dir)
        shape = folder.manifest["images"]["shape"]
        return folder, (f"data: {params['data_dir']} (built; images {shape}, "
                        f"{len(folder.pairs('train'))} training pairs)")
    size = int(params["image_size"])
    folder = synthetic_folder(tmp, size, n_images, n_clips, n_pairs)
    gb = (n_images * size * size * 3 + n_clips * np.prod(MUSIC_SHAPE) * 4) / 1e9
    return folder, (f"data: {params['data_dir']} is not built; SYNTHETIC memory-mapped arrays at "
                    f"its shapes in a temporary folder (images uint8 [{n_images}, {size}, {size}, 3], "
                    f"music float32 [{n_clips}, 193, 87], {gb:.2f} GB, page-cached)")


# --------------------------------------------------------------------------------------------
# Rates
# --------------------------------------------------------------------------------------------
def loader_rate(dataset: PairDataset, batch_size: int, workers: int, batches: int,
                pin_memory: bool = False) -> float:
    """Pairs per second of the DataLoader alone, steady state (the first batch, with the worker
    start-up, is not timed), with batches drawn as the trainer draws them."""
    sampler = torch.utils.data.BatchSampler(
        torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=batch_size * (batches + 1),
                                       generator=torch.Generator().manual_seed(0)),
        batch_size, drop_last=True)
    loader = torch.utils.data.DataLoader(dataset, sampler=sampler, batch_size=None,
                                         num_workers=workers, pin_memory=pin_memory)
    it = iter(loader)
    next(it)
    start, n = time.perf_counter(), 0
    for batch in it:
        n += len(batch["score"])
    return n / (time.perf_counter() - start)


def synthetic_batch(batch_size: int, image_size: int, n_items: int, device) -> dict:
    """Random tensors of a training batch's shapes, with labels the losses accept."""
    g = torch.Generator().manual_seed(0)
    batch = {"images": torch.randint(0, 256, (batch_size, image_size, image_size, 3), generator=g,
                                     dtype=torch.uint8),
             "music": torch.randn(batch_size, *MUSIC_SHAPE, generator=g),
             "score": torch.rand(batch_size, generator=g),
             "y_img": torch.rand(batch_size, 2, generator=g), "y_mus": torch.rand(batch_size, 2, generator=g),
             "music_idx": torch.randint(0, n_items, (batch_size,), generator=g),
             "image_idx": torch.randint(0, n_items, (batch_size,), generator=g)}
    return {k: v.to(device) for k, v in batch.items()}


def model_rate(params: dict, batch_size: int, steps: int, device: torch.device) -> float:
    """Pairs per second of forward + backward + SGD step on synthetic tensors (no data loading),
    with AMP and channels-last on CUDA as train.py uses them; two untimed warm-up steps."""
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    model = build_model(params, SYNTHETIC_SIGMA).to(device).train()
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = build_loss(params, SYNTHETIC_SIGMA)
    optimiser = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    batch = synthetic_batch(batch_size, int(params["image_size"]), 4 * batch_size, device)
    cpu_images = image_to_tensor(batch["images"])   # the CPU trainer's loader normalises
    loss_gen = torch.Generator().manual_seed(1)

    def step():
        if cuda:   # as train_epoch: uint8 normalised on the GPU, channels-last
            images = image_to_tensor(batch["images"]).contiguous(memory_format=torch.channels_last)
        else:
            images = cpu_images
        with torch.autocast(device.type, dtype=torch.float16, enabled=cuda):
            out = model(images, batch["music"])
        out = {k: v.float() for k, v in out.items()}
        total, _ = loss_fn(out, batch, generator=loss_gen)
        optimiser.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        scaler.step(optimiser)
        scaler.update()

    step(); step()
    if cuda:
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize(device)
    return steps * batch_size / (time.perf_counter() - start)


def cpu_model_batch(params: dict, batch_size: int) -> tuple[int, str]:
    """On the CPU a torchvision backbone at batch 128 takes tens of seconds a step and many GB:
    time it at 16 pairs a step (pairs/s barely depends on the batch on a CPU) and say so."""
    if params["image_backbone"] != "tiny_cnn" and batch_size > 16:
        return 16, (f" (CPU: timed at batch 16, not {batch_size}: {params['image_backbone']} at "
                    f"batch {batch_size} is a GPU workload)")
    return batch_size, ""


def machine_line(device: torch.device, threads: int | None = None) -> str:
    """The device, and on the CPU the torch threads and the load (a busy machine slows every
    figure; more torch threads than free cores slows the model a lot). ``threads``: those of the
    processes timed, when they are not this one (whole runs set their own)."""
    if device.type == "cuda":
        return f"device {device} ({torch.cuda.get_device_name(device)})"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    threads = torch.get_num_threads() if threads is None else threads
    return f"device cpu ({threads} torch threads, {os.cpu_count()} cores, load average {load:.1f})"


def add_thread_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0: torch's default); use 1 on a busy machine")


def setup(args: argparse.Namespace) -> tuple[dict, torch.device]:
    """What both benchmarks do first: torch threads from ``--threads``, the config's training
    parameters, and the device the trainer would pick."""
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    return config_params(args.config), torch.device("cuda" if torch.cuda.is_available() else "cpu")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="default", help="params/<config>.yaml (train section)")
    parser.add_argument("--batches", type=int, default=20, help="timed batches per loader setting")
    parser.add_argument("--steps", type=int, default=5, help="timed model steps")
    parser.add_argument("--workers", default="0,1,2", help="worker counts to time, comma-separated")
    add_thread_option(parser)
    args = parser.parse_args(argv)
    params, device = setup(args)
    batch_size = int(params["batch_size"])
    print(f"config {args.config}: batch {batch_size}, image {params['image_size']}px, "
          f"{params['image_backbone']} / {params['music_backbone']}; {machine_line(device)}")
    with tempfile.TemporaryDirectory(prefix="cdcml-loader-") as tmp:
        folder, what = benchmark_folder(params, Path(tmp))
        print(what)
        standardiser = fit_music_standardiser(folder)
        cuda = device.type == "cuda"
        modes = {"normalised": False, "uint8": True}
        datasets = {m: PairDataset(folder, "train", standardiser, image_size=int(params["image_size"]),
                                   raw_images=raw) for m, raw in modes.items()}
        trainer_mode = "uint8" if cuda else "normalised"
        print(f"  DataLoader alone, pairs/s: images normalised in the loader (CPU trainer) | "
              f"uint8, normalised on the GPU (CUDA trainer); this device's trainer: {trainer_mode}")
        rates = {m: {} for m in modes}
        for w in (int(x) for x in args.workers.split(",")):
            for m in modes:
                rates[m][w] = loader_rate(datasets[m], batch_size, w, args.batches, pin_memory=cuda)
            print(f"  {w} worker(s): {rates['normalised'][w]:9.0f} | {rates['uint8'][w]:9.0f}")
        loader = rates[trainer_mode]
        model_batch, note = (batch_size, "") if device.type == "cuda" else cpu_model_batch(params, batch_size)
        rate = model_rate(params, model_batch, args.steps, device)
        print(f"  model alone (forward+backward+step, synthetic tensors): {rate:9.0f} pairs/s{note}")
    best_w = max(loader, key=loader.get)
    if loader[best_w] >= rate:
        enough = min((w for w in loader if loader[w] >= rate), default=best_w)
        print(f"bottleneck: the MODEL. The loader gives {loader[best_w] / rate:.1f}x what the model "
              f"consumes; {enough} worker(s) suffice (num_workers in the train section).")
    else:
        per_worker = max(loader[w] / w for w in loader if w > 0) if any(w > 0 for w in loader) else loader[best_w]
        need = int(np.ceil(rate / per_worker))
        print(f"bottleneck: the LOADER ({loader[best_w]:.0f} < {rate:.0f} pairs/s). About {need} "
              f"worker(s) would keep up on this machine (num_workers in the train section), "
              f"if it has the cores.")
    if args.config == "paper" and any(w > 0 for w in loader):
        per_worker = max(rates["uint8"][w] / w for w in loader if w > 0)
        print(f"to feed {GPU_TARGET} pairs/s (the H100 target of the paper configuration) with the "
              f"CUDA trainer's uint8 loader at this machine's {per_worker:.0f} pairs/s per worker: "
              f">= {int(np.ceil(GPU_TARGET / per_worker))} workers (train section num_workers: "
              f"{params['num_workers']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
