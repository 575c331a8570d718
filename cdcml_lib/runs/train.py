"""Training, checkpoint and resume, evaluation and the run folder (docs/ARCHITECTURE.md).

One call of :func:`train_run` trains one model variant with one seed into one run folder
``runs/<config>/<variant>-s<seed>/``:

- SGD with momentum; the learning rate and the number of epochs follow the run's ``schedule``
  (:mod:`cdcml_lib.runs.schedule`): the paper's step decay over a fixed number of epochs (section
  6.1.3: batch 128, lr 1e-3 x0.1 every 10 epochs), or the kit's plateau rule, which trains until
  the validation curve has flattened;
- model selection on the validation split: the epoch with the lowest validation ``sim_mse``
  is kept as ``best.pt``; the test metrics come from that model (our reading: docs/METHOD.md,
  section "Training settings and model selection");
- a checkpoint after EVERY epoch, written atomically with all RNG states (torch, numpy, python,
  the batch sampler's generator and the loss's generator), so a run killed at any point and
  started again with the same command resumes and ends with the same metrics (bit for bit on
  the CPU);
- a run folder is never overwritten: the same parameters resume (or return the finished
  metrics), different parameters are an error that names the differing keys.

Under ``torchrun`` the same call trains with PyTorch DDP on every process
(:mod:`cdcml_lib.runs.distributed`): the global batch stays ``batch_size``, BatchNorm and the batch
losses see the global batch, every rank resumes from the same checkpoint, and rank 0 alone
evaluates and writes the run folder. In one process nothing of this runs.

CLI: ``python -m cdcml_lib.runs.train --config NAME --variant VARIANT --seed S [--run-dir D]``, or
``--params-file P.json`` (a whole train parameter set); under
``torchrun --nproc_per_node=N -m cdcml_lib.runs.train ...`` it trains on N processes.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from cdcml_lib.runs import distributed
from cdcml_lib.runs.loader import ItemDataset, PairDataset, RowStandardiser, fit_music_standardiser, image_to_tensor, open_folder
from cdcml_lib.losses import build_loss
from cdcml_lib.metrics import all_metrics, pair_retrieval_metrics
from cdcml_lib.nets import build_model, music_input
from cdcml_lib.runs import folder as run_folder
from cdcml_lib.runs.schedule import build_schedule, check_schedule_params
from cdcml_lib.runs.folder import RunFolderError  # noqa: F401 - raised here, part of this API
from cdcml_lib.workflow.paths import atomic_path, repo_root, resolve
from cdcml_lib.workflow import schema
from cdcml_lib.workflow.params import extra_term_keys, train_params

# Keys every train parameter set has, and those it may leave out (declared in workflow/schema.py).
REQUIRED_KEYS = schema.required_keys("train")
OPTIONAL_KEYS = schema.optional_keys("train")
# Keys that change how fast a run goes, not what it computes: they may differ when a run
# resumes. (nproc, the processes a notebook launches, changes only dropout draws and rounding.)
OPERATIONAL_KEYS = ("num_workers", "num_threads", "nproc")
EVAL_BATCH = 256


# --------------------------------------------------------------------------------------------
# Small helpers: parameters, devices, files
# --------------------------------------------------------------------------------------------
def check_train_params(params: dict) -> dict:
    """Every required key present, no unknown key (a typo would otherwise be ignored) and every
    value in its range (:func:`cdcml_lib.workflow.schema.problems`: every problem at once)."""
    given = {k: str(v) if isinstance(v, Path) else v for k, v in params.items()}
    extra = extra_term_keys(given)   # weights of terms registered after the paper's five
    problems = schema.problems("train", {k: v for k, v in given.items() if k not in extra},
                               "train parameters", complete=True)
    problems += [f"train parameters, {k}: {bad}" for k, v in extra.items()
                 if (bad := schema.Float(ge=0).problem(k, v))]
    if problems:
        raise KeyError(f"{len(problems)} problem(s) with the train parameters:\n  - " + "\n  - ".join(problems))
    check_schedule_params(params)
    return dict(params)


def pick_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} asked for, but torch sees no CUDA GPU; "
                           f"set device: auto or cpu")
    return torch.device(name)


def set_determinism(seed: int, num_threads: int) -> None:
    """Seed every RNG, use deterministic kernels where torch has them, fix the thread count.

    The determinism policy (docs/REPRODUCIBILITY.md): the run itself sets how many threads torch
    and the BLAS libraries use, from its ``num_threads`` parameter, so the launcher's environment
    (OMP_NUM_THREADS, make's JOBS, a notebook opened by hand) cannot change the order of a sum.
    ``num_threads: 0`` leaves both to the environment (for GPU configurations).
    """
    random.seed(seed); np.random.seed(seed); torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    threads = num_threads or int(os.environ.get("CDCML_NUM_THREADS", "0") or 0)
    if threads > 0:
        torch.set_num_threads(threads)
        threadpool_limits(limits=threads)   # NumPy's and SciPy's BLAS, for this whole process


def atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary name, then rename: a file with the final name is complete."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo_root(),
                              capture_output=True, text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def rng_states(sampler_gen: torch.Generator, loss_gen: torch.Generator) -> dict:
    states = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
              "python": random.getstate(), "sampler": sampler_gen.get_state(),
              "loss": loss_gen.get_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict, sampler_gen: torch.Generator, loss_gen: torch.Generator) -> None:
    torch.set_rng_state(states["torch"]); np.random.set_state(states["numpy"])
    random.setstate(states["python"]); sampler_gen.set_state(states["sampler"])
    loss_gen.set_state(states["loss"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def prepare_run_dir(run_dir: Path, params: dict) -> str:
    """``new``, ``resume`` or ``finished`` (:func:`cdcml_lib.runs.folder.prepare`)."""
    return run_folder.prepare(run_dir, params, OPERATIONAL_KEYS)


def progress_enabled() -> bool:
    """Progress bars in a terminal or a Jupyter kernel, never in CI."""
    if os.environ.get("CI"):
        return False
    return sys.stderr.isatty() or "ipykernel" in sys.modules


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def embed_items(model, items: ItemDataset, device, autocast) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings [N, D] and predicted VA [N, 2] of every item of an ItemDataset."""
    embed = model.embed_image if items.modality == "image" else model.embed_music
    feats, vas = [], []
    for batch in items.batches(EVAL_BATCH):
        with autocast():
            f = embed(batch["x"].to(device))
            va = model.predict_va(f, items.modality)
        feats.append(f.float().cpu()); vas.append(va.float().cpu())
    return torch.cat(feats).numpy(), torch.cat(vas).numpy()


@torch.no_grad()
def pair_scores(model, f_img: np.ndarray, f_mus: np.ndarray, device, autocast) -> np.ndarray:
    """s_hat for each (f_img[k], f_mus[k]) row pair."""
    out = []
    for start in range(0, len(f_img), 4 * EVAL_BATCH):
        a = torch.from_numpy(f_img[start:start + 4 * EVAL_BATCH]).to(device)
        b = torch.from_numpy(f_mus[start:start + 4 * EVAL_BATCH]).to(device)
        with autocast():
            out.append(model.similarity(a, b).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


@dataclass
class Evaluation:
    metrics: dict
    predictions: pd.DataFrame     # music_id, image_id, score, pred
    items: dict                   # per modality: ids, y, f, va


def evaluate(model, folder, split: str, standardiser: RowStandardiser, params: dict,
             device, autocast) -> Evaluation:
    """all_metrics of ``model`` on one split: pair scores and the VA of every item of the split."""
    model.eval()
    items = {}
    for modality in ("image", "music"):
        ds = ItemDataset(folder, modality, split, standardiser, music_input(params["model"]),
                         int(params["image_size"]))
        f, va = embed_items(model, ds, device, autocast)
        items[modality] = {"ids": np.asarray(ds.ids), "y": ds.y.numpy(), "f": f, "va": va}
    pairs = folder.pairs(split)
    pos_img = {i: k for k, i in enumerate(items["image"]["ids"])}
    pos_mus = {i: k for k, i in enumerate(items["music"]["ids"])}
    ki = np.array([pos_img[str(i)] for i in pairs["image_id"]], dtype=np.int64)
    km = np.array([pos_mus[str(i)] for i in pairs["music_id"]], dtype=np.int64)
    pred = pair_scores(model, items["image"]["f"][ki], items["music"]["f"][km], device, autocast)
    predictions = pd.DataFrame({"music_id": pairs["music_id"].astype(str).to_numpy(),
                                "image_id": pairs["image_id"].astype(str).to_numpy(),
                                "score": pairs["score"].to_numpy(float), "pred": pred.astype(float)})
    metrics = all_metrics(music_ids=predictions["music_id"].to_numpy(),
                          score=predictions["score"].to_numpy(), pred=predictions["pred"].to_numpy(),
                          y_img=items["image"]["y"], va_img_pred=items["image"]["va"],
                          y_mus=items["music"]["y"], va_mus_pred=items["music"]["va"])
    # recall@K and MRR in both directions (relevant: a query's best-scored partner; after the
    # paper's metrics, so metrics.json keeps the paper's keys first)
    metrics.update(pair_retrieval_metrics(predictions["music_id"].to_numpy(), predictions["image_id"].to_numpy(),
                                          predictions["score"].to_numpy(), predictions["pred"].to_numpy()))
    return Evaluation({k: float(v) for k, v in metrics.items()}, predictions, items)


# --------------------------------------------------------------------------------------------
# One epoch
# --------------------------------------------------------------------------------------------
# What the losses read from the batch besides the model inputs (gathered under DDP).
LOSS_BATCH_KEYS = ("score", "y_img", "y_mus", "music_idx", "image_idx")


def global_batch(out: dict, batch: dict, ctx) -> tuple[dict, dict]:
    """Under DDP: the model outputs and loss labels of every rank's slice, concatenated in rank
    order, so that the losses see the one-process batch (only this rank's rows carry gradient)."""
    both = distributed.gather_global_many({**{("out", k): v for k, v in out.items()},
                                           **{("batch", k): batch[k] for k in LOSS_BATCH_KEYS}}, ctx)
    return ({k: both[("out", k)] for k in out}, {k: both[("batch", k)] for k in LOSS_BATCH_KEYS})


def train_epoch(model, loader, loss_fn, optimiser, scaler, params, device, autocast, loss_gen,
                channels_last: bool, ctx=None) -> dict:
    """One pass over the training pairs; the mean of each loss term, weighted by batch size.

    Under DDP (``ctx.enabled``) each rank feeds its slice, the loss is computed on the gathered
    global batch (the same on every rank, with the same triplet draws), and it is multiplied by
    the world size before backward: each rank's backward reaches only its own rows, and DDP
    averages the ranks' gradients, so the sum it needs is world_size x the average.
    """
    ddp = ctx is not None and ctx.enabled
    model.train()
    sums: dict[str, torch.Tensor] = {}  # kept on the device: float() at every step would wait for it
    n_total = 0
    for batch in loader:
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        images = batch["images"]
        if images.dtype == torch.uint8:  # PairDataset(raw_images=True): normalised on the device
            images = image_to_tensor(images, int(params["image_size"]))
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast():
            out = model(images, batch["music"])
        out = {k: v.float() for k, v in out.items()}  # the losses take logs: keep them in fp32
        if ddp:
            # DDP waits for a gradient of every parameter: an output this variant's loss ignores
            # (the VA head of the Sim-only ablation) gets a zero one through this zero term.
            zero = sum(v.sum() for v in out.values()) * 0.0
            out, batch = global_batch(out, batch, ctx)
        total, terms = loss_fn(out, batch, generator=loss_gen)
        optimiser.zero_grad(set_to_none=True)
        scaler.scale((total + zero) * ctx.world_size if ddp else total).backward()
        scaler.step(optimiser)
        scaler.update()
        b = len(batch["score"])
        n_total += b
        for k, v in {"total": total.detach(), **terms}.items():
            sums[k] = sums.get(k, 0.0) + torch.as_tensor(v).detach().double() * b
    return {k: float(v) / max(n_total, 1) for k, v in sums.items()}


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------
def train_run(params: dict, stop_after_epochs: int | None = None, progress: bool | None = None):
    """Train one run into ``params['run_dir']`` and return its ``metrics.json`` content.

    ``stop_after_epochs`` stops (as a kill would) once that many epochs are done in total and
    returns None; calling again with the same params resumes. ``progress`` shows a tqdm bar
    (default: in a terminal or notebook, never in CI). Under torchrun every process calls this
    and every process gets the metrics.
    """
    params = check_train_params(params)
    owns_group = not torch.distributed.is_initialized()
    ctx, device_name = distributed.init(str(params["device"]))
    try:
        return _train_run(params, ctx, device_name, stop_after_epochs, progress)
    except Exception as err:
        # A crashed run says so in run.json ("failed", with the error), never "running".
        run_dir = resolve(params["run_dir"])
        if ctx.is_main and (run_dir / run_folder.PARAMS).is_file() and not run_folder.is_finished(run_dir):
            run_folder.mark_failed(run_dir, err)
        raise
    finally:
        if owns_group and ctx.enabled:
            distributed.shutdown()


def on_main(ctx, fn):
    """``fn()`` on rank 0, its result (or its exception, raised on every rank) on every rank."""
    result, error = None, None
    if ctx.is_main:
        try:
            result = fn()
        except Exception as err:  # noqa: BLE001 - re-raised below, on every rank
            error = err
    result, error = distributed.broadcast_object((result, error), ctx)
    if error is not None:
        raise error
    return result


def _autocast_for(device: torch.device):
    """Mixed precision on CUDA (fp16 autocast), none on the CPU: a factory of context managers."""
    if device.type == "cuda":
        return lambda: torch.autocast("cuda", dtype=torch.float16)
    return lambda: torch.autocast("cpu", enabled=False)


def build_run_model(params: dict, sigma: float, ctx, device: torch.device, seed: int):
    """The variant's model on ``device``: SyncBatchNorm and per-rank dropout streams under DDP,
    channels-last on CUDA."""
    model = build_model(params, sigma)
    if ctx.enabled:
        model = distributed.convert_sync_batchnorm(model, ctx, device)
        if ctx.rank > 0:  # own dropout masks; rank 0 keeps the one-process stream
            torch.manual_seed(seed + distributed.RANK_SEED_STRIDE * ctx.rank)
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def build_train_loader(train_set, batch_size: int, workers: int, seed: int, ctx, sampler_gen,
                       cuda: bool):
    """The training batches: a seeded random order, the same global batches on every DDP rank."""
    # A last batch of one pair would break BatchNorm: drop it only then.
    batches = torch.utils.data.BatchSampler(
        torch.utils.data.RandomSampler(train_set, generator=sampler_gen), batch_size,
        drop_last=len(train_set) % batch_size == 1)
    if ctx.enabled:  # every rank: the same global batches, its own slice of each
        batches = distributed.RankSlices(batches, ctx.rank, ctx.world_size)
    # The loader gets its own generator: each new iterator draws a worker seed from it, not from
    # the global stream that dropout uses, so num_workers (and a resume) leave results unchanged.
    return torch.utils.data.DataLoader(train_set, sampler=batches, batch_size=None,
                                       num_workers=workers, pin_memory=cuda,
                                       persistent_workers=workers > 0,
                                       generator=torch.Generator().manual_seed(seed + 2))


def build_optimiser(model, params: dict):
    """SGD with momentum (paper section 6.1.3) and the run's schedule (:mod:`cdcml_lib.runs.schedule`)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.SGD(trainable, lr=float(params["lr"]), momentum=float(params["momentum"]),
                                weight_decay=float(params["weight_decay"]))
    return optimiser, build_schedule(optimiser, params)


def new_run_info(model, device: torch.device, ctx) -> dict:
    """The first ``run.json``: where and with what the run trains."""
    cuda = device.type == "cuda"
    return {"status": "running", "commit": git_commit(), "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if cuda else "cpu",
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "world_size": ctx.world_size,
            "start": time.strftime("%Y-%m-%dT%H:%M:%S"), "end": None, "wall_s": 0.0,
            "epochs_done": 0, **getattr(model, "notes", {})}


def _train_run(params: dict, ctx, device_name: str, stop_after_epochs, progress):
    distributed.local_batch_size(int(params["batch_size"]), ctx.world_size)  # before any file
    run_dir = resolve(params["run_dir"])
    state = on_main(ctx, lambda: prepare_run_dir(run_dir, params))
    if state == "finished":
        return on_main(ctx, lambda: run_folder.read_metrics(run_dir))
    main = ctx.is_main  # only rank 0 writes the run folder
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.time()

    seed = int(params["seed"])
    set_determinism(seed, int(params.get("num_threads", 0) or 0))
    device = pick_device(device_name)
    cuda = device.type == "cuda"
    autocast = _autocast_for(device)

    folder = open_folder(params["data_dir"])
    sigma = float(folder.stats["sigma"])
    model = build_run_model(params, sigma, ctx, device, seed)
    loss_fn = build_loss(params, sigma)
    m_input = music_input(params["model"])
    standardiser = fit_music_standardiser(folder, m_input)
    # On CUDA the loader hands over uint8 images, normalised on the GPU (train_epoch).
    train_set = PairDataset(folder, "train", standardiser, m_input, int(params["image_size"]),
                            raw_images=cuda)
    if len(train_set) < 2:
        raise ValueError(f"{params['data_dir']}: pairs_train.txt has {len(train_set)} pairs; "
                         f"training needs at least 2")
    sampler_gen = torch.Generator().manual_seed(seed)
    loss_gen = torch.Generator().manual_seed(seed + 1)
    loader = build_train_loader(train_set, int(params["batch_size"]), int(params["num_workers"]),
                                seed, ctx, sampler_gen, cuda)
    optimiser, scheduler = build_optimiser(model, params)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)

    ckpt_path = run_dir / run_folder.CHECKPOINT
    run_info = new_run_info(model, device, ctx)
    curves: list[dict] = []
    best = {"epoch": 0, "sim_mse": float("inf"), "val": {}}
    start_epoch = 0
    if state == "resume":
        # Rank 0 reads the checkpoint and every rank resumes from that one. It is loaded to the CPU:
        # the RNG states must stay CPU byte tensors, and load_state_dict moves the rest.
        ckpt = on_main(ctx, lambda: torch.load(ckpt_path, map_location="cpu", weights_only=False)
                       if ckpt_path.is_file() else None)
        if ckpt is not None:
            model.load_state_dict(ckpt["model"]); optimiser.load_state_dict(ckpt["optimiser"])
            scheduler.load_state_dict(ckpt["scheduler"]); scaler.load_state_dict(ckpt["scaler"])
            restore_rng_states(ckpt["rng"], sampler_gen, loss_gen)
            if ctx.enabled:
                restore_rank_rng_state(ckpt["rng"], ctx, seed, int(ckpt["epoch"]))
            curves, best, start_epoch = ckpt["curves"], ckpt["best"], int(ckpt["epoch"])
            run_info = {**ckpt["run_info"], "resumed": ckpt["run_info"].get("resumed", 0) + 1,
                        "world_size": ctx.world_size}
    elif main:
        run_folder.write_params(run_dir, params)
    if main:
        run_folder.write_run_info(run_dir, run_info)
    wall_before = float(run_info["wall_s"])
    trained = model
    if ctx.enabled:
        trained = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if cuda else None)

    epochs = int(params["epochs"])   # the schedule's length, or the plateau rule's cap
    show = main and (progress_enabled() if progress is None else progress)
    bar = tqdm(total=epochs, initial=start_epoch, desc=run_dir.name, disable=not show, unit="epoch")
    for epoch in range(start_epoch, epochs):
        if scheduler.stopped:   # resumed after the rule ended the run, before its test
            break
        lr = optimiser.param_groups[0]["lr"]
        losses = train_epoch(trained, loader, loss_fn, optimiser, scaler, params, device, autocast,
                             loss_gen, channels_last=cuda, ctx=ctx)
        rank_rng = distributed.gather_objects(rank_rng_state(), ctx) if ctx.enabled else None
        val = evaluate(model, folder, "val", standardiser, params, device, autocast).metrics if main else None
        # every rank follows the same rule on rank 0's validation sim_mse
        val_sim_mse = distributed.broadcast_object(val["sim_mse"] if main else None, ctx) \
            if ctx.enabled else val["sim_mse"]
        event = scheduler.after_epoch(val_sim_mse)
        if main:
            curves.append({"epoch": epoch + 1, "lr": lr, **{f"loss_{k}": v for k, v in losses.items()},
                           **{f"val_{k}": v for k, v in val.items()}, "schedule": event})
            if val["sim_mse"] < best["sim_mse"]:
                best = {"epoch": epoch + 1, "sim_mse": val["sim_mse"], "val": val}
                atomic_save({"model": model.state_dict(), "standardiser": standardiser.state_dict(),
                             "sigma": sigma, "epoch": epoch + 1, "params": run_folder._jsonable(params)},
                            run_dir / run_folder.BEST)
            run_info.update(epochs_done=epoch + 1, wall_s=wall_before + time.time() - t_start)
            rng = rng_states(sampler_gen, loss_gen)
            if rank_rng is not None:
                rng["by_rank"] = rank_rng
            atomic_save({"model": model.state_dict(), "optimiser": optimiser.state_dict(),
                         "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                         "rng": rng, "epoch": epoch + 1,
                         "curves": curves, "best": best, "run_info": run_info}, ckpt_path)
            run_folder.write_curves(run_dir, curves)
            run_folder.write_run_info(run_dir, run_info)
            bar.update(1)
            bar.set_postfix(loss=f"{losses['total']:.4f}", val_sim_mse=f"{val['sim_mse']:.4f}")
        if stop_after_epochs is not None and epoch + 1 >= stop_after_epochs and epoch + 1 < epochs:
            bar.close()
            distributed.barrier(ctx)
            return None
    bar.close()
    ended = scheduler.end()
    return on_main(ctx, lambda: finish_run(run_dir, model, folder, standardiser, params, device,
                                           autocast, best, run_info, wall_before, t_start,
                                           epochs_trained=len(curves), ended=ended))


def rank_rng_state() -> dict:
    """This process's torch RNG states (CPU, and its GPU's), for a per-rank checkpoint entry."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rank_rng_state(states: dict, ctx, seed: int, epoch: int) -> None:
    """Under DDP: this rank's own torch RNG state from the checkpoint. A checkpoint written by
    another number of processes has none for this rank: it then gets a fresh stream from
    (seed, rank, epoch), so the run goes on, deterministically though not bit for bit."""
    by_rank = states.get("by_rank")
    if by_rank is not None and len(by_rank) == ctx.world_size:
        mine = by_rank[ctx.rank]
        torch.set_rng_state(mine["torch"])
        if "cuda" in mine and torch.cuda.is_available():
            torch.cuda.set_rng_state(mine["cuda"])
    elif ctx.rank > 0:
        torch.manual_seed(seed + distributed.RANK_SEED_STRIDE * ctx.rank + epoch)


def finish_run(run_dir, model, folder, standardiser, params, device, autocast, best, run_info,
               wall_before, t_start, epochs_trained: int, ended: str) -> dict:
    """Test the best model; write predictions, embeddings, run.json and metrics.json LAST."""
    best_path = run_dir / run_folder.BEST
    if not best_path.is_file():
        raise RuntimeError(f"{run_dir}: no {run_folder.BEST}: the validation sim_mse was never finite "
                           f"(the loss diverged); lower lr in the train section")
    state = torch.load(best_path, map_location=device, weights_only=False)
    model.load_state_dict(state["model"])
    test = evaluate(model, folder, "test", standardiser, params, device, autocast)
    run_folder.write_predictions(run_dir, test.predictions)
    img, mus = test.items["image"], test.items["music"]
    run_folder.write_embeddings(
        run_dir, ids=np.concatenate([img["ids"], mus["ids"]]),
        modality=np.array(["image"] * len(img["ids"]) + ["music"] * len(mus["ids"])),
        valence=np.concatenate([img["y"][:, 0], mus["y"][:, 0]]),
        arousal=np.concatenate([img["y"][:, 1], mus["y"][:, 1]]),
        pred_valence=np.concatenate([img["va"][:, 0], mus["va"][:, 0]]),
        pred_arousal=np.concatenate([img["va"][:, 1], mus["va"][:, 1]]),
        embedding=np.concatenate([img["f"], mus["f"]]).astype(np.float32))
    run_info.update(status="finished", end=time.strftime("%Y-%m-%dT%H:%M:%S"),
                    wall_s=wall_before + time.time() - t_start)
    run_folder.write_run_info(run_dir, run_info)
    # ended: "epochs" (step schedule), "flattened" or "cap" (plateau rule; runs.schedule.ENDS)
    metrics = {"schema": 1, "best_epoch": int(best["epoch"]), "epochs_trained": int(epochs_trained),
               "ended": ended, "val": best["val"], "test": test.metrics}
    run_folder.write_metrics(run_dir, metrics)
    return metrics


# --------------------------------------------------------------------------------------------
# A trained run
# --------------------------------------------------------------------------------------------
class TrainedModel:
    """The best model of a finished run, for encoding new inputs (numpy in, numpy out)."""

    def __init__(self, params: dict, model, standardiser: RowStandardiser, device):
        self.params, self.model, self.standardiser, self.device = params, model.eval(), standardiser, device

    @torch.no_grad()
    def _batched(self, fn, x: torch.Tensor) -> np.ndarray:
        out = [fn(x[i:i + EVAL_BATCH].to(self.device)).float().cpu()
               for i in range(0, len(x), EVAL_BATCH)]
        return torch.cat(out).numpy() if out else np.zeros((0,), np.float32)

    def encode_images(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, S, S, 3] -> embeddings [N, D]."""
        return self._batched(self.model.embed_image, image_to_tensor(images, int(self.params["image_size"])))

    def encode_music(self, features: np.ndarray) -> np.ndarray:
        """float32 [N, 193, 87] features (raw, as in the cache; L3-Net: [N, 257, 87]
        log-spectrogram) -> embeddings [N, D]; standardised with the run's training statistics."""
        return self._batched(self.model.embed_music, self.standardiser(features))

    @torch.no_grad()
    def similarity(self, f_img: np.ndarray, f_mus: np.ndarray) -> np.ndarray:
        """s_hat [N] of the row pairs (f_img[k], f_mus[k])."""
        a, b = torch.as_tensor(np.asarray(f_img, np.float32)), torch.as_tensor(np.asarray(f_mus, np.float32))
        return torch.cat([self.model.similarity(a[i:i + EVAL_BATCH].to(self.device),
                                                b[i:i + EVAL_BATCH].to(self.device)).float().cpu()
                          for i in range(0, len(a), EVAL_BATCH)]).numpy()

    def predict_va(self, f: np.ndarray, modality: str | None = None) -> np.ndarray:
        """Predicted (valence, arousal) [N, 2]; ``modality`` is needed by models with one VA
        predictor per modality (SP-Net, L3-Net, ACP-Net)."""
        x = torch.as_tensor(np.asarray(f, np.float32))
        return self._batched(lambda t: self.model.predict_va(t, modality), x)


def load_trained(run_dir, device: str = "cpu") -> TrainedModel:
    """The best model of a finished run folder, in eval mode."""
    run_dir = resolve(run_dir)
    if not (run_dir / run_folder.BEST).is_file():
        raise FileNotFoundError(f"{run_dir}: no {run_folder.BEST}; train the run first "
                                f"(make train MODEL=<variant>, or notebooks/02_train)")
    state = torch.load(run_dir / run_folder.BEST, map_location=device, weights_only=False)
    params = run_folder.read_params(run_dir)
    model = build_model(params, state["sigma"])
    model.load_state_dict(state["model"])
    model.to(device)
    return TrainedModel(params, model, RowStandardiser.from_state_dict(state["standardiser"]),
                        torch.device(device))


# --------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:

    parser = argparse.ArgumentParser(prog="python -m cdcml_lib.runs.train", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="params/<config>.yaml (its train section)")
    parser.add_argument("--variant", help="params/variants/<variant>.yaml")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--run-dir", default=None, help="default runs/<config>/<variant>-s<seed>")
    parser.add_argument("--params-file", default=None,
                        help="a JSON file holding the whole train parameter set (what "
                             "notebooks/02_train passes to torchrun), instead of --config/--variant/--seed")
    args = parser.parse_args(argv)
    if args.params_file:
        if args.config or args.variant or args.seed is not None:
            parser.error("give either --params-file or --config/--variant/--seed, not both")
        try:
            params = json.loads(Path(args.params_file).read_text())
        except (OSError, json.JSONDecodeError) as err:
            parser.error(f"--params-file {args.params_file}: cannot read it as JSON ({err})")
        if args.run_dir:
            params["run_dir"] = args.run_dir
    else:
        if not (args.config and args.variant and args.seed is not None):
            parser.error("--config, --variant and --seed are required (or --params-file)")
        params = train_params(args.config, args.variant, args.seed, args.run_dir)
    metrics = train_run(params)
    if int(os.environ.get("RANK", "0")) == 0:
        test = metrics["test"]
        print(f"{params['run_dir']}: best epoch {metrics['best_epoch']}; test "
              + ", ".join(f"{k} {test[k]:.4f}" for k in ("sim_mse", "sim_mae", "img_v_mse", "mus_v_mse")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
