"""Data-parallel training under ``torchrun`` (PyTorch DDP): the pieces :mod:`cdcml_lib.runs.train` uses.

The aim is that N processes train the same model as one process would, with no change to the
parameter files:

- **the global batch stays** ``batch_size``: every rank draws the SAME seeded permutation as the
  one-process run and takes its slice of each global batch (:class:`RankSlices`), so the union of
  the rank batches is the one-process batch;
- **batch statistics are global**: BatchNorm layers become synchronised ones
  (:func:`convert_sync_batchnorm`: torch's ``SyncBatchNorm`` on CUDA, :class:`CPUSyncBatchNorm`
  on the CPU, where torch's has no kernels);
- **the losses see the global batch**: the model outputs of every rank are all-gathered
  (:func:`gather_global_many`, the local slice keeps its gradient; one exchange of sizes and one
  all-gather per dtype a step), so the dense triplets of Eqs. 2, 4
  and 5 and the InfoNCE logits are drawn over the global batch, exactly as in one process;
  every rank computes the same global loss, and its backward reaches only its own slice, so the
  loss is multiplied by the world size before DDP averages the gradients (:data:`train`);
- rank 0 alone writes the run folder and evaluates, with the unwrapped model.

What still differs from one process: dropout masks (each rank draws its own, from its own torch
RNG stream) and the order of floating-point sums. tests/test_distributed.py states the tolerance.

:func:`cdcml_lib.runs.launch.launch` runs a training run from a notebook: in this process for ``nproc: 1``, else as a
``torchrun`` subprocess.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

# Rank r > 0 reseeds its global torch RNG (dropout masks) with seed + RANK_SEED_STRIDE * r, so
# that ranks do not draw identical masks for their slices; rank 0 keeps the one-process stream.
RANK_SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size`` processes, GPU ``local_rank``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    group: object = None    # a process group of its own for the gathers and BatchNorm syncs

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_context() -> DistContext:
    """The torchrun environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), or one process."""
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
    values = {n: os.environ.get(n) for n in names}
    if values["WORLD_SIZE"] is None:
        return DistContext()
    try:
        rank, world, local = (int(values[n] if values[n] is not None else 0) for n in names)
    except ValueError as err:
        raise RuntimeError(f"torchrun environment not understood ({values}): RANK, WORLD_SIZE and "
                           f"LOCAL_RANK must be integers; launch with torchrun") from err
    if not (0 <= rank < world):
        raise RuntimeError(f"RANK={rank} is not in [0, WORLD_SIZE={world}); launch with torchrun")
    return DistContext(rank, world, local)


def init(device_name: str) -> tuple[DistContext, str]:
    """Join the process group if torchrun started this process; the device name to use.

    Backend nccl on CUDA, gloo on the CPU. On CUDA every process takes GPU ``LOCAL_RANK``.
    Returns the context (with its own group for the collectives inside the step) and the device
    name (``cuda:<local_rank>`` in place of ``auto``/``cuda`` under torchrun on GPUs).
    """
    ctx = env_context()
    if not ctx.enabled:
        return ctx, device_name
    cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    if cuda:
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device_name!r} asked for, but torch sees no CUDA GPU")
        if ctx.local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK={ctx.local_rank} but this machine has "
                               f"{torch.cuda.device_count()} GPU(s); lower --nproc_per_node")
        torch.cuda.set_device(ctx.local_rank)
        device_name = f"cuda:{ctx.local_rank}"
    # Rank 0 evaluates while the others wait in the next collective: allow an hour.
    timeout = datetime.timedelta(hours=1)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", timeout=timeout)
    group = dist.new_group(backend="nccl" if cuda else "gloo", timeout=timeout)
    return DistContext(ctx.rank, ctx.world_size, ctx.local_rank, group), device_name


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def local_batch_size(batch_size: int, world_size: int) -> int:
    """``batch_size / world_size``: the global batch stays ``batch_size`` whatever the world size."""
    if batch_size % world_size:
        raise ValueError(f"batch_size {batch_size} (params train section) is not divisible by the "
                         f"{world_size} processes: every rank takes batch_size / world_size pairs. "
                         f"Fix: launch with a number of processes that divides {batch_size}")
    return batch_size // world_size


# --------------------------------------------------------------------------------------------
# Sampling: the one-process batches, sliced
# --------------------------------------------------------------------------------------------
def slice_bounds(n: int, world_size: int) -> list[int]:
    """Start offsets (and the end) of the ``world_size`` contiguous slices of a batch of ``n``:
    equal slices of ``n / world_size``, or as equal as can be for the last, shorter batch."""
    base, extra = divmod(n, world_size)
    sizes = [base + (r < extra) for r in range(world_size)]
    return [0] + list(np.cumsum(sizes))


class RankSlices:
    """Wraps a batch sampler: yields this rank's contiguous slice of each global batch.

    Every rank builds the same seeded batch sampler as the one-process run, so all ranks see
    the same global batches and the union of their slices is the one-process batch. A global
    batch with fewer pairs than ranks is skipped (a rank would get no pair); with
    ``batch_size`` divisible by the world size that happens only to a last batch shorter than
    the world size.
    """

    def __init__(self, batch_sampler, rank: int, world_size: int):
        self.batch_sampler, self.rank, self.world_size = batch_sampler, rank, world_size

    def __iter__(self):
        for batch in self.batch_sampler:
            if len(batch) < self.world_size:
                continue
            bounds = slice_bounds(len(batch), self.world_size)
            yield batch[bounds[self.rank]:bounds[self.rank + 1]]


# --------------------------------------------------------------------------------------------
# The global batch from the local slices
# --------------------------------------------------------------------------------------------
def rank_sizes(n_local: int, device, ctx: DistContext) -> list[int]:
    """Every rank's number of rows, in rank order: one all-gather, and the one wait of the host
    for the device that a gather needs (it must know the sizes to cut the padding off)."""
    sizes = torch.tensor([n_local], device=device)
    all_sizes = [torch.zeros_like(sizes) for _ in range(ctx.world_size)]
    dist.all_gather(all_sizes, sizes, group=ctx.group)
    return torch.cat(all_sizes).tolist()


def gather_global(local: torch.Tensor, ctx: DistContext, sizes: list[int] | None = None) -> torch.Tensor:
    """Concatenate every rank's ``local`` [b_r, ...] in rank order into the global [B, ...].

    The rows of this rank keep their gradient; the other ranks' rows are constants here (their
    own rank back-propagates through them). Slices may differ in length by one (the last batch).
    ``sizes``: every rank's b_r (:func:`rank_sizes`) if the caller has them.
    """
    return gather_global_many({"x": local}, ctx, sizes)["x"]


def gather_global_many(tensors: dict[str, torch.Tensor], ctx: DistContext,
                       sizes: list[int] | None = None) -> dict[str, torch.Tensor]:
    """:func:`gather_global` of several tensors with the same number of rows (a step's model
    outputs and loss labels): one exchange of sizes, then one all-gather per dtype of the tensors
    packed side by side, instead of two collectives and a host wait per tensor. The values are
    exactly those of gathering each tensor alone."""
    first = next(iter(tensors.values()))
    n_local = first.shape[0]
    if any(t.shape[0] != n_local for t in tensors.values()):
        raise ValueError(f"gather_global_many: tensors with different numbers of rows "
                         f"{ {k: tuple(t.shape) for k, t in tensors.items()} }")
    sizes = rank_sizes(n_local, first.device, ctx) if sizes is None else list(sizes)
    longest = max(sizes)
    out: dict[str, torch.Tensor] = {}
    by_dtype: dict[torch.dtype, list[str]] = {}
    for name, t in tensors.items():
        by_dtype.setdefault(t.dtype, []).append(name)
    for dtype, names in by_dtype.items():
        columns = [tensors[k].detach().reshape(n_local, -1) for k in names]
        packed = torch.cat(columns, dim=1)
        if n_local < longest:
            packed = torch.cat([packed, packed.new_zeros((longest - n_local, packed.shape[1]))])
        parts = [torch.empty_like(packed) for _ in range(ctx.world_size)]
        dist.all_gather(parts, packed.contiguous(), group=ctx.group)
        widths = [c.shape[1] for c in columns]
        for name, cols in zip(names, zip(*(p.split(widths, dim=1) for p in parts))):
            shape = tensors[name].shape[1:]
            rows = [c[:n].reshape(n, *shape) for c, n in zip(cols, sizes)]
            rows[ctx.rank] = tensors[name]
            out[name] = torch.cat(rows)
    return {name: out[name] for name in tensors}


# --------------------------------------------------------------------------------------------
# Batch statistics over the global batch
# --------------------------------------------------------------------------------------------
class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose backward is the sum of the ranks' gradients (each rank's objective
    depends on the summed value, so every rank's input receives all of them)."""

    @staticmethod
    def forward(ctx, x, group):
        ctx.group = group
        y = x.clone()
        dist.all_reduce(y, group=group)
        return y

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


class CPUSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the global batch, for gloo on the CPU
    (torch's SyncBatchNorm has CUDA kernels only).

    Mean and biased variance over every rank's rows (two passes, as BatchNorm computes them), the
    running statistics updated with the unbiased variance; in eval mode it is plain BatchNorm.
    Gradients flow through the all-reduced sums, so they equal BatchNorm's on the global batch.
    The state_dict keys are BatchNorm's: a checkpoint loads into the plain model.
    """

    def __init__(self, *args, group=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.group = group

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = _AllReduceSum.apply(x.new_tensor([x.numel() / x.shape[1]]), self.group)
        mean = _AllReduceSum.apply(x.sum(dims), self.group) / count
        centred = x - mean.view(shape)
        var = _AllReduceSum.apply((centred * centred).sum(dims), self.group) / count
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                            else self.momentum)
                unbiased = var * (count / (count - 1).clamp_min(1))
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(unbiased.detach(), momentum)
        return y


def convert_sync_batchnorm(model: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """Every BatchNorm of ``model`` synchronised over the ranks (SyncBatchNorm when world_size > 1)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model, ctx.group)
    return _convert_cpu(model, ctx.group)


def _convert_cpu(module: nn.Module, group) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, CPUSyncBatchNorm):
        sync = CPUSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                module.track_running_stats, group=group)
        sync.load_state_dict(module.state_dict())
        sync.train(module.training)
        if module.affine:
            sync.weight.requires_grad_(module.weight.requires_grad)
            sync.bias.requires_grad_(module.bias.requires_grad)
        return sync
    for name, child in module.named_children():
        module.add_module(name, _convert_cpu(child, group))
    return module


# --------------------------------------------------------------------------------------------
# Small collectives
# --------------------------------------------------------------------------------------------
def broadcast_object(obj, ctx: DistContext):
    """Rank 0's ``obj`` on every rank (identity in one process)."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj, ctx: DistContext) -> list:
    """Every rank's ``obj``, in rank order (``[obj]`` in one process)."""
    if not ctx.enabled:
        return [obj]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()
