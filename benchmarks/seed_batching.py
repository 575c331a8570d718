"""Would training a variant's seeds together, batched in one step, make the study cheaper on a CPU?

Issue 17 asks to "train the seeds of a variant together where it pays (for example batched over
seeds in one process)". A variant's seeds already share one process (one Jupyter kernel per
variant); this script measures whether they should also share each training step. It times, on
one thread, with K seeds' models side by side and each model on its own batch of the config's size:

1. **the whole model step** (forward, backward, SGD with momentum) of the config's CDCML model:
   K steps one after another (what ``02_train`` does, seed after seed) against one step of
   ``torch.func.vmap`` over the K models' stacked parameters. vmap cannot lay tensors out
   channels-last inside the transform (torch: "NYI"), so the vmapped models run TinyCNN in the
   default layout; the sequential models run it exactly as the trainer does;
2. **the backbones alone** (each TinyCNN of the config, forward and backward): K backbones one after
   another against ONE backbone whose convolutions have K groups (the K models' weights side by
   side, each seed's batch in its own group of channels: what batching over seeds comes down to
   for a convolution), channels-last and in the default layout;
3. **one model at K times the batch**: the same arithmetic as K seeds' steps with no per-step
   overhead at all, the best any batching over seeds could do.

It prints milliseconds per seed-step and the ratio batched / sequential (below 1: batching pays).
The step's loss is a stand-in (Eq. 6 and Eq. 7's squared errors on random targets): the dense
triplet terms of Eq. 8 are about 3 ms of a 46 ms step (docs/PERFORMANCE.md) and cost the
same either way. Medians of ``--repeats`` timed steps after two untimed ones::

    python benchmarks/seed_batching.py --config default --seeds-together 1,2,4,8
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import types
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call, grad_and_value, replace_all_batch_norm_modules_, stack_module_state, vmap

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cdcml_lib.nets import TINY_CNN_WIDTHS, TinyCNN, build_model  # noqa: E402
from cdcml_lib.workflow.params import section  # noqa: E402

MUSIC_SHAPE = (193, 87)   # the music matrix (docs/METHOD.md, section "Music input")
SIGMA = 0.5               # Eq. 1's sigma: any value, the step's cost does not depend on it
LR, MOMENTUM = 0.02, 0.9


def median_seconds(step, repeats: int) -> float:
    """Median wall time of ``step()`` over ``repeats`` calls, after two untimed ones."""
    step()
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def seed_batch(seed: int, batch: int, image_size: int) -> tuple[torch.Tensor, ...]:
    """One seed's batch: images, music matrices, similarity targets, VA targets (random)."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 3, image_size, image_size, generator=g), torch.randn(batch, *MUSIC_SHAPE, generator=g),
            torch.rand(batch, generator=g), torch.rand(batch, 2, generator=g))


def stand_in_loss(out: dict, score: torch.Tensor, va: torch.Tensor) -> torch.Tensor:
    """Eq. 6 plus Eq. 7 (both modalities' VA): the predictor heads' share of the loss."""
    return (((out["s_hat"] - score) ** 2).mean() + ((out["va_img"] - va) ** 2).mean()
            + ((out["va_mus"] - va) ** 2).mean())


def cdcml_model(params: dict, seed: int) -> nn.Module:
    """The config's CDCML model with seed ``seed``'s weights; BatchNorm without running statistics
    (torch.func cannot update them inside vmap), for the sequential models too, to compare like with like."""
    torch.manual_seed(seed)
    model = build_model({**params, "model": "cdcml"}, sigma=SIGMA)
    return replace_all_batch_norm_modules_(model)


def default_layout_forward(self: TinyCNN, x: torch.Tensor) -> torch.Tensor:
    """TinyCNN.forward without the channels-last copy that vmap cannot make."""
    return self.features(x.unsqueeze(1) if x.dim() == 3 else x).mean(dim=(2, 3))


def sequential_step(models: list[nn.Module], batches: list[tuple]):
    """K seeds' steps one after another, as 02_train trains them."""
    optimisers = [torch.optim.SGD(m.parameters(), lr=LR, momentum=MOMENTUM) for m in models]

    def step():
        for model, opt, (images, music, score, va) in zip(models, optimisers, batches):
            opt.zero_grad()
            stand_in_loss(model(images, music), score, va).backward()
            opt.step()
    return step


def vmapped_step(models: list[nn.Module], batches: list[tuple]):
    """One step of all K seeds: vmap over their stacked parameters, SGD with momentum by hand.
    Returns the step and the stacked parameters it updates ([K, ...] each)."""
    params, buffers = stack_module_state(models)
    params = {k: v.detach() for k, v in params.items()}
    velocity = {k: torch.zeros_like(v) for k, v in params.items()}
    template = copy.deepcopy(models[0]).to("meta")
    for module in template.modules():
        if isinstance(module, TinyCNN):
            module.forward = types.MethodType(default_layout_forward, module)

    def one_seed(p, b, images, music, score, va):
        return stand_in_loss(functional_call(template, (p, b), (images, music)), score, va)

    grads_of = vmap(grad_and_value(one_seed), randomness="different")   # each seed its own dropout
    stacked = [torch.stack(parts) for parts in zip(*batches)]

    def step():
        grads, _ = grads_of(params, buffers, *stacked)
        for k, p in params.items():
            velocity[k].mul_(MOMENTUM).add_(grads[k])
            p.sub_(LR * velocity[k])
    return step, params


def grouped_backbone(backbones: list[TinyCNN]) -> nn.Sequential:
    """ONE TinyCNN-shaped network whose convolutions have K groups, group k holding backbone k's
    weights: fed the K seeds' batches side by side as channels, group k computes backbone k's
    features (tests/test_benchmarks.py checks this)."""
    layers = []
    for parts in zip(*(b.features for b in backbones)):
        first = parts[0]
        if isinstance(first, nn.Conv2d):
            layer = nn.Conv2d(first.in_channels * len(parts), first.out_channels * len(parts), first.kernel_size,
                              stride=first.stride, padding=first.padding, bias=False, groups=len(parts))
            layer.weight.data = torch.cat([p.weight.data for p in parts])
        elif isinstance(first, nn.BatchNorm2d):
            layer = nn.BatchNorm2d(first.num_features * len(parts))
            layer.weight.data = torch.cat([p.weight.data for p in parts])
            layer.bias.data = torch.cat([p.bias.data for p in parts])
        else:
            layer = copy.deepcopy(first)
        layers.append(layer)
    return nn.Sequential(*layers)


def grouped_features(net: nn.Sequential, inputs: list[torch.Tensor], layout) -> list[torch.Tensor]:
    """The K seeds' pooled features from the grouped network, split back per seed."""
    x = torch.cat([i.unsqueeze(1) if i.dim() == 3 else i for i in inputs], dim=1)
    pooled = net(x.contiguous(memory_format=layout)).mean(dim=(2, 3))
    return list(pooled.chunk(len(inputs), dim=1))


def backbone_steps(backbones: list[TinyCNN], inputs: list[torch.Tensor], layout):
    """Forward and backward of K backbones one after another, and of the grouped one."""
    grouped = grouped_backbone(backbones).to(memory_format=layout)

    def sequential():
        for net, x in zip(backbones, inputs):
            net.zero_grad()
            net(x).sum().backward()

    def batched():
        grouped.zero_grad()
        torch.stack(grouped_features(grouped, inputs, layout)).sum().backward()
    return sequential, batched


def ratio_line(label: str, k: int, sequential_s: float, batched_s: float, batched_name: str) -> str:
    return (f"{label:<26} K={k}: sequential {1000 * sequential_s / k:6.1f} ms/seed, {batched_name} "
            f"{1000 * batched_s / k:6.1f} ms/seed, batched/sequential {batched_s / sequential_s:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="default", help="params/<config>.yaml (train section)")
    parser.add_argument("--seeds-together", default="1,2,4,8", help="comma-separated K: seeds per batched step")
    parser.add_argument("--batch-size", type=int, default=0, help="pairs per seed and step (0: the config's)")
    parser.add_argument("--repeats", type=int, default=7, help="timed steps per figure (the median is printed)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the study trains with 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    params = dict(section(args.config, "train"))
    batch = args.batch_size or params["batch_size"]
    size = params["image_size"]
    ks = [int(k) for k in args.seeds_together.split(",")]
    if any(params[f"{m}_backbone"] not in TINY_CNN_WIDTHS for m in ("image", "music")):
        raise SystemExit(f"params/{args.config}.yaml: train.image_backbone/music_backbone must be the kit's tiny "
                         f"CNNs ({', '.join(TINY_CNN_WIDTHS)}) for this CPU benchmark")
    print(f"config {args.config}: CDCML, batch {batch} per seed, image {size}px, "
          f"{params['image_backbone']} / {params['music_backbone']}; {args.threads} torch thread(s), "
          f"medians of {args.repeats} steps; ms per seed-step")

    print("1. whole model step (forward, backward, SGD)")
    for k in ks:
        batches = [seed_batch(s, batch, size) for s in range(k)]
        seq = median_seconds(sequential_step([cdcml_model(params, s) for s in range(k)], batches), args.repeats)
        bat = median_seconds(vmapped_step([cdcml_model(params, s) for s in range(k)], batches)[0], args.repeats)
        print(ratio_line("  torch.func.vmap", k, seq, bat, "vmapped"))

    print("2. backbones alone (forward, backward), K groups in one convolution")
    for branch, channels, shape in (("image", 3, (size, size)), ("music", 1, MUSIC_SHAPE)):
        name = params[f"{branch}_backbone"]
        for k in ks:
            inputs = [torch.randn(batch, channels, *shape, generator=torch.Generator().manual_seed(s))
                      for s in range(k)]
            torch.manual_seed(0)
            backbones = [TinyCNN(channels, TINY_CNN_WIDTHS[name]) for _ in range(k)]
            for layout, tag in ((torch.channels_last, "grouped channels-last"),
                                (torch.contiguous_format, "grouped default layout")):
                # the sequential steps are timed again beside each layout: on a noisy shared machine a
                # ratio holds only between timings taken together
                sequential, batched = backbone_steps(backbones, inputs, layout)
                seq, bat = median_seconds(sequential, args.repeats), median_seconds(batched, args.repeats)
                print(ratio_line(f"  {branch} {name}", k, seq, bat, tag))

    print("3. one model at K times the batch (the arithmetic of K seeds without per-step overhead)")
    for k in ks:
        model = cdcml_model(params, 0)
        single = median_seconds(sequential_step([model], [seed_batch(0, batch, size)]), args.repeats)
        scaled = median_seconds(sequential_step([model], [seed_batch(0, k * batch, size)]), args.repeats)
        print(ratio_line("  batch x K", k, k * single, scaled, f"batch {k * batch}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
