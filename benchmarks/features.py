"""Speed and agreement of the music-feature extractors (issue 7).

Times, in one run and on the same clips: librosa clip by clip on one core (the reference; its
BLAS is held to one thread, which it would otherwise spread over every core), the batched
extractor on one core, and the batched extractor on all cores. Prints clips per second, the
speed-ups over librosa, and the per-block errors of the batched extractor against librosa.

    python benchmarks/features.py [--clips N] [--reference-clips M] [--jobs J]

The batched extractor is timed once with cold filter-bank caches on one core, once on all cores
as a first call (which also starts the worker processes), then in steady state (the worker
processes are kept between calls, as in the dataset step, which calls once per 256 clips). Timings are interleaved and
repeated (``--repeats``), keeping the best of each, because the machine may be shared.
Clips come from the embedded corpus (cdcml_lib.data.synthetic), with white noise, a sweep and
silence mixed in. librosa is timed on the first ``--reference-clips`` clips only (it is slow) and
its rate is extrapolated as clips per second.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cdcml_lib.data import features as F  # noqa: E402


def benchmark_clips(n: int, seed: int = 0) -> np.ndarray:
    """``n`` clips [n, 44100]: corpus renderings, plus noise, a sweep and silence."""
    rng = np.random.default_rng(seed)
    clips = []
    try:
        from cdcml_lib.data.synthetic import make_corpus

        corpus = make_corpus(n_songs=max(1, n // 8), clips_per_song_min=8, clips_per_song_max=8,
                             n_images=1, label_noise=0.05, seed=seed)
        clips.extend(corpus.render_clips(np.arange(min(n, len(corpus.clip_ids)))))
    except ImportError:
        pass
    t = np.arange(F.CLIP_SAMPLES) / F.SR
    extras = [
        (0.1 * rng.standard_normal(F.CLIP_SAMPLES)).astype(np.float32),
        (0.5 * np.sin(2 * np.pi * (60 * t + 2000 * t**2))).astype(np.float32),
        np.zeros(F.CLIP_SAMPLES, np.float32),
    ]
    while len(clips) < n:
        clips.append(extras[len(clips) % len(extras)])
    clips = np.stack(clips[:n]).astype(np.float32)
    clips[1::16] = extras[0]  # some noise among the music, wherever the corpus was found
    clips[2::16] = extras[2]
    return clips


def _clear_bank_caches() -> None:
    """Forget every filter bank built so far (they are functools.lru_cache'd)."""
    for name in dir(F):
        cache_clear = getattr(getattr(F, name), "cache_clear", None)
        if cache_clear is not None:
            cache_clear()


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=256, help="clips for the batched extractor")
    parser.add_argument("--reference-clips", type=int, default=32,
                        help="clips timed with librosa (the first of the same clips)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="processes for the all-cores run (default: all cores)")
    parser.add_argument("--repeats", type=int, default=3, help="timings kept: the best of these")
    args = parser.parse_args(argv)

    clips = benchmark_clips(args.clips)
    n_ref = min(args.reference_clips, args.clips)
    print(f"{args.clips} clips of 2 s at {F.SR} Hz; {os.cpu_count()} cores; librosa timed on "
          f"{n_ref}; best of {args.repeats}; load average before: {os.getloadavg()[0]:.1f}")

    import librosa  # noqa: F401  (both extractors need it; its import is not what is timed)
    from threadpoolctl import threadpool_limits

    # Cold runs: a first call builds the filter banks (one chroma and one constant-Q bank per
    # tuning offset met, at most 100 of each), cached for the rest of the process; the first
    # all-cores call also starts the worker processes, which are kept for later calls.
    _, t_cold = timed(F.fast_features, clips, n_jobs=1)
    _clear_bank_caches()
    F.shutdown_workers()
    _, t_cold_all = timed(F.fast_features, clips, n_jobs=args.jobs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns on silence and on its last CQT octave
        F.librosa_features(clips[0])
        # The machine may be shared: the three timings are interleaved and repeated, and the
        # best of each is kept (as timeit does), so that a burst of load elsewhere hits all.
        t_ref = t_1 = t_all = np.inf
        for _ in range(args.repeats):
            with threadpool_limits(limits=1):  # single-core: librosa's BLAS would use 2
                reference, t = timed(F.extract_features, clips[:n_ref], backend="librosa")
            t_ref = min(t_ref, t)
            fast_1, t = timed(F.fast_features, clips, n_jobs=1)
            t_1 = min(t_1, t)
            fast_all, t = timed(F.fast_features, clips, n_jobs=args.jobs)
            t_all = min(t_all, t)

    rate_ref, rate_1, rate_all = n_ref / t_ref, args.clips / t_1, args.clips / t_all
    print(f"{'extractor':<28}{'clips/s':>10}{'speed-up':>10}")
    print(f"{'librosa, clip by clip':<28}{rate_ref:>10.1f}{1.0:>10.1f}")
    rate_cold, rate_cold_all = args.clips / t_cold, args.clips / t_cold_all
    print(f"{'fast, 1 core, cold caches':<28}{rate_cold:>10.1f}{rate_cold / rate_ref:>10.1f}")
    print(f"{f'fast, {args.jobs} processes, first call':<28}{rate_cold_all:>10.1f}"
          f"{rate_cold_all / rate_ref:>10.1f}")
    print(f"{'fast, 1 core':<28}{rate_1:>10.1f}{rate_1 / rate_ref:>10.1f}")
    print(f"{f'fast, {args.jobs} processes':<28}{rate_all:>10.1f}{rate_all / rate_ref:>10.1f}")
    if not np.array_equal(fast_1, fast_all):
        print("WARNING: 1-core and all-core results differ")
    fast_gpu, gpu = _time_cuda(clips, args.repeats)
    if fast_gpu is None:
        print(f"{'fast, CUDA':<28}{'-':>10}{'-':>10}   (torch sees no GPU here: not timed)")
    else:
        rate_gpu = args.clips / gpu[1]
        print(f"{'fast, CUDA':<28}{rate_gpu:>10.1f}{rate_gpu / rate_ref:>10.1f}   ({gpu[0]})")

    print(f"\nagreement with librosa on the {n_ref} reference clips")
    print("(max rel = max abs error / largest magnitude of the block in the reference)")
    for name, fast in (("CPU", fast_1), ("CUDA", fast_gpu)):
        if fast is None:
            continue
        print(f"{name + ' extractor':<10}{'max abs':>12}{'max rel':>12}{'tolerance':>12}")
        for block, rows in F.BLOCKS.items():
            diff = np.abs(fast[:n_ref, rows] - reference[:, rows])
            scale = np.abs(reference[:, rows]).max()
            print(f"  {block:<8}{diff.max():>12.3g}{diff.max() / max(scale, 1e-12):>12.3g}"
                  f"{F.TOLERANCE[block]:>12.3g}")


def _time_cuda(clips: np.ndarray, repeats: int):
    """The CUDA extractor's output and (GPU name, best time), or (None, None) without a GPU."""
    if F.resolve_device("auto") != "cuda":
        return None, None
    import torch

    F.fast_features(clips[:128], device="cuda")  # warm-up: CUDA context, kernels, banks
    best, out = np.inf, None
    for _ in range(repeats):
        torch.cuda.synchronize()
        out, t = timed(F.fast_features, clips, device="cuda")  # returns host arrays: synced
        best = min(best, t)
    return out, (torch.cuda.get_device_name(), best)


if __name__ == "__main__":
    main()
