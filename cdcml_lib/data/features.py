"""The paper's 193x87 music matrix, and the log-spectrogram of L3-Net.

Zhao et al. 2020 (CDCML; ``docs/METHOD.md``, section "Music input") describe each 2-second clip
(22,050 Hz, 44,100 samples) by a matrix of 193 feature rows and 87 frames, stacked in this order::

    rows   0..39   40 MFCC                      librosa.feature.mfcc
    rows  40..51   12 chroma                    librosa.feature.chroma_stft
    rows  52..58    7 spectral contrast         librosa.feature.spectral_contrast
    rows  59..64    6 tonnetz                   librosa.feature.tonnetz (chroma_cqt inside)
    rows  65..192 128 mel bands, in dB          power_to_db(melspectrogram, ref=1.0)

All with librosa's defaults (n_fft 2048, hop 512, centred frames, so 1 + 44100 // 512 = 87).
The mel block is in absolute dB (``ref=1.0``) rather than relative to each clip's maximum: a
clip's loudness is then kept in the features (quiet and loud clips differ), and the value does
not depend on the other frames of the clip (our reading: docs/METHOD.md, section "Scale of the
music features"). The MFCC block is computed from the same dB mel spectrogram, as librosa does.

Two extractors give the same numbers (within :data:`TOLERANCE`, checked by the tests):

- :func:`librosa_features` is the reference: it calls librosa clip by clip.
- :func:`fast_features` works on chunks of clips at once with NumPy, across processes (or with
  torch on a GPU, :mod:`cdcml_lib.data.features_torch`). One STFT per clip feeds the mel, MFCC,
  chroma and contrast blocks and both tuning estimates; the filter banks (mel, DCT, chroma and
  constant-Q, the last two per tuning offset) are built once per process and cached. Tonnetz
  needs a constant-Q chromagram: it is computed as librosa's multirate CQT does (Schoerkhuber &
  Klapuri 2010: the signal is halved with soxr once per octave and each octave is analysed by
  short frames), with one filter bank that serves every octave, applied as one matrix product
  of the frames with its time-domain kernels. Like librosa, each clip gets its own tuning
  estimate (a histogram of the deviations of its spectral peaks from A440, on a grid of 0.01
  bin), for chroma_stft and for the CQT.

Use :func:`extract_features` (``backend="fast"`` or ``"librosa"``). Clips shorter than 2 s are
zero-padded at the end, longer ones trimmed; int16 audio is scaled to [-1, 1).
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import os
import sys

import numpy as np

from cdcml_lib.audio import CLIP_SAMPLES, SR, from_int16
from cdcml_lib.data import spectral
from cdcml_lib.data.spectral import (AMIN, CQT_BINS_PER_OCTAVE, CQT_OCTAVES, HOP, N_CHROMA, N_FFT,
                                     N_FRAMES, N_MELS, N_MFCC, TOP_DB)


N_CONTRAST, N_TONNETZ = 7, 6
N_FEATURES = N_MFCC + N_CHROMA + N_CONTRAST + N_TONNETZ + N_MELS  # nets.MUSIC_FEATURE_ROWS (tested equal)

#: row slices of each block in the 193-row matrix
BLOCKS = {
    "mfcc": slice(0, 40),
    "chroma": slice(40, 52),
    "contrast": slice(52, 59),
    "tonnetz": slice(59, 65),
    "mel": slice(65, 193),
}

# The log-spectrogram of L3-Net (Arandjelovic & Zisserman 2017): log(1 + |STFT|).
LOGSPEC_N_FFT = 512
LOGSPEC_HOP = 512


def _fit_length(clip: np.ndarray, n_samples: int = CLIP_SAMPLES) -> np.ndarray:
    """Zero-pad at the end, or trim, a mono clip to exactly ``n_samples`` (float32).

    int16 audio (as in the dataset's audio cache) is scaled to [-1, 1).
    """
    clip = np.asarray(clip)
    clip = from_int16(clip) if clip.dtype == np.int16 else clip.astype(np.float32)
    if clip.ndim != 1:
        raise ValueError(
            f"a clip must be a 1-D mono signal, got shape {clip.shape}; "
            "mix it down (e.g. clip.mean(axis=0)) before extracting features"
        )
    if not np.all(np.isfinite(clip)):
        raise ValueError("clip holds NaN or infinite samples; clean or drop it before extracting features")
    if clip.shape[0] >= n_samples:
        return clip[:n_samples]
    return np.pad(clip, (0, n_samples - clip.shape[0]))


def _as_clip_batch(clips) -> np.ndarray:
    """A float32 ``[N, 44100]`` array from an array ``[N, T]`` or a list of 1-D clips.

    int16 audio (as in the dataset's audio cache) is scaled to [-1, 1).
    """
    if isinstance(clips, np.ndarray) and clips.ndim == 1:
        raise ValueError(
            f"expected a batch of clips [N, samples], got a 1-D array of {clips.shape[0]} samples; "
            "wrap a single clip as clips[None]"
        )
    if isinstance(clips, np.ndarray) and clips.ndim != 2:
        raise ValueError(f"expected clips of shape [N, samples], got {clips.shape}")
    out = np.zeros((len(clips), CLIP_SAMPLES), dtype=np.float32)
    for i, clip in enumerate(clips):
        try:
            out[i] = _fit_length(clip)
        except ValueError as err:
            raise ValueError(f"clip {i}: {err}") from None
    return out


def _check_sr(sr: int) -> None:
    if sr != SR:
        raise ValueError(
            f"sample rate {sr} Hz: the 193x87 matrix is defined at {SR} Hz; "
            f"resample the clips (librosa.resample(y, orig_sr={sr}, target_sr={SR})) first"
        )


def librosa_features(clip: np.ndarray, sr: int = SR) -> np.ndarray:
    """The reference 193x87 matrix of one clip, computed with librosa's own functions.

    The clip is zero-padded at the end, or trimmed, to 44,100 samples first.
    Returns float32 ``[193, 87]`` in the row order of :data:`BLOCKS`.
    """
    import librosa

    _check_sr(sr)
    y = _fit_length(clip)
    magnitude = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP))
    power = magnitude**2
    mel_db = librosa.power_to_db(
        librosa.feature.melspectrogram(S=power, sr=sr, n_mels=N_MELS), ref=1.0
    )
    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=N_MFCC)
    chroma = librosa.feature.chroma_stft(S=power, sr=sr)
    contrast = librosa.feature.spectral_contrast(S=magnitude, sr=sr)
    tonnetz = librosa.feature.tonnetz(y=y, sr=sr)
    out = np.concatenate([mfcc, chroma, contrast, tonnetz, mel_db], axis=0).astype(np.float32)
    assert out.shape == (N_FEATURES, N_FRAMES), out.shape
    return out


def log_spectrogram(clips, n_fft: int = LOGSPEC_N_FFT, hop: int = LOGSPEC_HOP) -> np.ndarray:
    """L3-Net's input: log(1 + |STFT|) of each clip, float16 ``[N, n_fft // 2 + 1, frames]``
    (our reading of its settings: docs/METHOD.md, section "L3-Net's spectrogram and fusion").

    Centred frames with a Hann window and zero padding at the edges, as ``librosa.stft``
    (0.10+); with the defaults a 2 s clip gives ``[257, 87]``.
    """
    y = _as_clip_batch(clips)
    n_frames = 1 + y.shape[1] // hop
    out = np.empty((len(y), n_fft // 2 + 1, n_frames), dtype=np.float16)
    for s in range(0, len(y), 256):  # chunks bound the float64 frames in memory
        magnitude = _stft_magnitude(y[s:s + 256], n_fft, hop)  # [n, T, F]
        out[s:s + 256] = np.log1p(magnitude).transpose(0, 2, 1)
    return out


def _frame_centered(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Frames ``[..., T, n_fft]`` of signals ``[..., S]`` padded by n_fft // 2 zeros on each side.

    librosa's centred frames, as a read-only strided view of one padded copy (np.pad and
    sliding_window_view cost more than the work itself for the CQT's short octave signals).
    """
    pad = n_fft // 2
    padded = np.zeros(y.shape[:-1] + (y.shape[-1] + 2 * pad,), dtype=y.dtype)
    padded[..., pad:pad + y.shape[-1]] = y
    n_frames = 1 + (padded.shape[-1] - n_fft) // hop
    step = padded.strides[-1]
    return np.lib.stride_tricks.as_strided(padded, y.shape[:-1] + (n_frames, n_fft),
                                           padded.strides[:-1] + (hop * step, step), writeable=False)


def extract_features(clips, sr: int = SR, backend: str = "fast", n_jobs: int = 1,
                     progress: bool = False, device: str = "cpu") -> np.ndarray:
    """The 193x87 matrix of every clip, float32 ``[N, 193, 87]``.

    ``backend="fast"`` uses the batched extractor :func:`fast_features` (on ``device``: ``"cpu"``,
    ``"cuda"`` or ``"auto"``); ``backend="librosa"`` calls :func:`librosa_features` clip by clip
    (the reference, slow, CPU only).
    """
    _check_sr(sr)
    if backend == "fast":
        return fast_features(clips, sr=sr, n_jobs=n_jobs, device=device, progress=progress)
    if backend == "librosa":
        y = _as_clip_batch(clips)
        out = np.empty((len(y), N_FEATURES, N_FRAMES), dtype=np.float32)
        for i in _progress(range(len(y)), progress, "librosa features"):
            out[i] = librosa_features(y[i], sr=sr)
        return out
    raise ValueError(f"unknown feature backend {backend!r}; use 'fast' or 'librosa'")


def library_versions(librosa: bool = True, torch: bool = False) -> dict:
    """Versions of the libraries whose arithmetic enters the features, for cache keys.

    NumPy and SciPy (FFTs, products) always; librosa and soxr (filter banks, resampling) for the
    193x87 matrix; torch for the GPU path. A cache built with other versions is then rebuilt
    rather than silently reused.
    """
    from importlib.metadata import PackageNotFoundError, version

    names = ["numpy", "scipy"] + (["librosa", "soxr"] if librosa else []) + (["torch"] if torch else [])
    versions = {}
    for name in names:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "absent"
    return versions


def _progress(iterable, enabled: bool, desc: str):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc)


# ---------------------------------------------------------------------------------------------
# The batched extractor. Each function below mirrors one librosa step on a batch [N, ...] of
# clips; the filter banks are built once (functools.lru_cache) and reused.
# ---------------------------------------------------------------------------------------------

# Tolerances of the fast extractor against the librosa reference, per block (max abs error),
# used by tests/test_features.py on corpus clips, noise, a chord, a melody, a sweep, silence and
# a padded short clip. The fast extractor follows librosa's float32/float64 arithmetic step by
# step (same STFT, same tuning decisions), so what remains is round-off. Measured max errors on
# those clips: mfcc 6e-5, chroma 2e-7, contrast 2e-6, mel 4e-6, and tonnetz 6e-5 (benchmarks/
# features.py prints them for its own clips). Tonnetz is the sensitive one: where a frame's
# constant-Q energy is only leakage (the sweep above the CQT's top note, 4.2 kHz), chroma_cqt
# divides it by its own tiny maximum, which magnifies float32 round-off of the loud bins (an
# earlier version, with FFTs where this one has a matrix product, was 8e-5 off). The bounds leave a margin of 8x (tonnetz) and
# 30x or more (the other blocks) for other BLAS builds and summation orders.
TOLERANCE = {
    "mfcc": 2e-3,      # dB-scaled cepstra, values up to ~1e3
    "chroma": 1e-4,    # in [0, 1]
    "contrast": 1e-3,  # dB
    "tonnetz": 5e-4,   # in [-1, 1]
    "mel": 1e-3,       # dB
}


@functools.lru_cache(maxsize=None)
def _mel_groups(n_groups: int = 8) -> tuple:
    """The mel bank cut into groups of neighbouring filters, each with the FFT columns it spans.

    A triangular filter is non-zero only around its centre, so ``n_groups`` small products, each
    over its own columns, do the work of the full [1025, 128] product in about a sixth of the
    operations (the zero weights add nothing; only the order of the float32 sums changes).
    Returns ``((rows, cols, weights [cols, rows]), ...)`` with ``rows`` and ``cols`` slices.
    """
    basis = spectral.mel_basis()
    groups = []
    for rows in np.array_split(np.arange(N_MELS), n_groups):
        used = np.flatnonzero(np.any(basis[rows] != 0, axis=0))
        cols = slice(int(used[0]), int(used[-1]) + 1)
        groups.append((slice(int(rows[0]), int(rows[-1]) + 1), cols,
                       np.ascontiguousarray(basis[rows, cols].T)))
    return tuple(groups)


def _mel_power(power: np.ndarray) -> np.ndarray:
    """Mel power spectrogram [..., 128] of a power spectrogram [..., 1025] (float32)."""
    flat = power.reshape(-1, power.shape[-1])
    out = np.empty((flat.shape[0], N_MELS), dtype=np.float32)
    for rows, cols, weights in _mel_groups():
        out[:, rows] = flat[:, cols] @ weights
    return out.reshape(power.shape[:-1] + (N_MELS,))


def _stft_magnitude(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """|STFT| of signals [N, S] -> float32 [N, T, n_fft//2+1]: centred, zero-padded, Hann window.

    As librosa.stft: the windowed frames are transformed in float64 (the window is float64) and
    the spectrum is rounded to complex64 before its magnitude is taken. One clip at a time, so
    that its float64 frames and spectrum stay in the processor's cache (twice as fast as a batch).
    """
    import scipy.fft

    window = spectral.hann(n_fft)
    frames = _frame_centered(y, n_fft, hop)
    out = np.empty(frames.shape[:2] + (n_fft // 2 + 1,), dtype=np.float32)
    for i in range(len(y)):
        spectrum = scipy.fft.rfft(frames[i] * window, axis=-1, workers=1)
        out[i] = np.abs(spectrum.astype(np.complex64))
    return out


def _power_to_db(power: np.ndarray, axes: tuple) -> np.ndarray:
    """10 log10(max(power, 1e-10)) with ref 1, floored at 80 dB below each clip's maximum."""
    log_spec = 10.0 * np.log10(np.maximum(AMIN, power))
    floor = log_spec.max(axis=axes, keepdims=True) - TOP_DB
    return np.maximum(log_spec, floor)


def _normalize(x: np.ndarray, norm: float, axis: int) -> np.ndarray:
    """librosa.util.normalize with fill=None: columns with a (near) zero norm are left as they are."""
    mag = np.abs(x).astype(float)
    length = mag.max(axis=axis, keepdims=True) if norm == np.inf else mag.sum(axis=axis, keepdims=True)
    length[length < np.finfo(x.dtype).tiny] = 1.0
    return (x / length).astype(x.dtype)


def _chroma_cqt(y: np.ndarray, magnitude: np.ndarray) -> np.ndarray:
    """Constant-Q chroma [N, 87, 12] of clips [N, 44100], as librosa.feature.chroma_cqt.

    The tuning of each clip comes from the shared STFT magnitude [N, T, F]; the multirate CQT
    halves the signal once per octave, and each octave's centred frames are projected on the
    time-domain kernels of :func:`spectral.cqt_bank` of the clip's tuning (one matrix product).
    """
    tunings = spectral.estimate_tuning(magnitude, CQT_BINS_PER_OCTAVE)
    banks = [spectral.cqt_bank(float(t)) for t in tunings]
    n_fft = banks[0][0]
    assert all(bank[0] == n_fft for bank in banks), "the CQT frame length depends on the tuning"
    lengths = np.stack([bank[2] for bank in banks])  # [N, 252]
    response = np.empty((len(y), CQT_OCTAVES, N_FRAMES, 2 * CQT_BINS_PER_OCTAVE), np.float32)
    for c in range(len(y)):  # clip by clip: its frames stay in the processor's cache
        signal = y[c]  # at SR / 2^i in octave i
        for i in range(CQT_OCTAVES):
            if i > 0:
                signal = spectral.resample_half(signal)
            frames = _frame_centered(signal, n_fft, HOP // 2**i)[:N_FRAMES]
            response[c, i] = np.ascontiguousarray(frames) @ banks[c][1]  # its tuning's kernel
    response = response.reshape(len(y), CQT_OCTAVES, N_FRAMES, 2, CQT_BINS_PER_OCTAVE)
    response = np.hypot(response[..., 0, :], response[..., 1, :])  # [N, octave, T, 36]
    # octave i holds bins 36 (6 - i) .. 36 (7 - i); its response is scaled by sqrt(2^i / length)
    cqt = response[:, ::-1].transpose(0, 2, 1, 3).reshape(len(y), N_FRAMES, -1)
    octave = np.repeat(np.arange(CQT_OCTAVES)[::-1], CQT_BINS_PER_OCTAVE)  # [252]
    cqt = cqt * (np.sqrt(2.0**octave) / np.sqrt(lengths))[:, None, :].astype(np.float32)
    chroma = cqt @ spectral.cq_to_chroma().T
    chroma[chroma < 0] = 0.0
    return _normalize(chroma, np.inf, axis=2)


def _features_block(y: np.ndarray) -> np.ndarray:
    """The 193x87 matrices of a batch of clips [N, 44100] float32, every block from one STFT.

    Spectra are kept as [N, T, F] (frequency last) so each filter bank is one matrix product.
    """
    n = len(y)
    magnitude = _stft_magnitude(y, N_FFT, HOP)  # [N, T, F]
    power = magnitude**2

    mel_db = _power_to_db(_mel_power(power), axes=(1, 2))
    mfcc = mel_db.astype(np.float64) @ spectral.dct_basis().T  # float64: the c0 row sums 128 bands

    chroma = np.empty((n, N_FRAMES, N_CHROMA), dtype=np.float32)
    tunings = spectral.estimate_tuning(power, N_CHROMA)
    for tuning in np.unique(tunings):
        members = np.flatnonzero(tunings == tuning)
        chroma[members] = power[members] @ spectral.chroma_basis(float(tuning)).T
    chroma = _normalize(chroma, np.inf, axis=2)

    bands = spectral.contrast_bands()
    valley = np.empty((n, N_FRAMES, len(bands)))
    peak = np.empty_like(valley)
    for k, (rows, q) in enumerate(bands):
        band = magnitude[..., rows]
        if q == 1:  # the lowest bands: the extreme bins themselves
            valley[..., k], peak[..., k] = band.min(axis=-1), band.max(axis=-1)
            continue
        # the mean of the q smallest and of the q largest bins, as librosa; NumPy's vectorised
        # sort of float32 is 3 times faster here than a partial sort (np.partition)
        band = np.sort(band, axis=-1)
        valley[..., k] = band[..., :q].mean(axis=-1)
        peak[..., k] = band[..., -q:].mean(axis=-1)
    contrast = _power_to_db(peak, axes=(1, 2)) - _power_to_db(valley, axes=(1, 2))

    chroma_cq = _chroma_cqt(y, magnitude)  # [N, T, 12]
    tonnetz = _normalize(chroma_cq, 1, axis=2) @ spectral.tonnetz_basis().T

    out = np.concatenate([mfcc, chroma, contrast, tonnetz, mel_db], axis=2).astype(np.float32)
    return np.ascontiguousarray(out.transpose(0, 2, 1))


def _one_blas_thread():
    """A context that holds BLAS to one thread: parallelism comes from processes, and the
    small matrix products here run faster single-threaded than with threads contending."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _init_worker() -> None:
    """Start of a worker process: one BLAS thread for its whole life (threadpoolctl scans the
    loaded libraries at each call, which costs as much as a chunk's mel block)."""
    global _WORKER_BLAS_LIMIT
    _WORKER_BLAS_LIMIT = _one_blas_thread()
    _WORKER_BLAS_LIMIT.__enter__()


def fast_features(clips, sr: int = SR, n_jobs: int = 1, device: str = "cpu",
                  progress: bool = False, chunk_size: int | None = None) -> np.ndarray:
    """The 193x87 matrix of every clip, batched; float32 ``[N, 193, 87]``.

    Same numbers as :func:`librosa_features` within :data:`TOLERANCE`. The STFT is computed once
    per clip and feeds the mel, MFCC, chroma, contrast blocks and both tuning estimates.

    ``device="cpu"``: chunks of ``chunk_size`` clips (default 8, which keeps a chunk's spectra in
    the processor's cache) are processed with NumPy across ``n_jobs`` processes (``-1``: all
    cores); the processes are kept for the next call, with the filter banks they have built
    (:func:`shutdown_workers` stops them).

    ``device="cuda"`` (or ``"cuda:1"``, ...): chunks (default 128 clips) are processed with torch
    on that GPU by :mod:`cdcml_lib.data.features_torch`, in this process. ``"auto"``: CUDA when torch
    sees a GPU, else the CPU.
    """
    _check_sr(sr)
    device = resolve_device(device)
    y = _as_clip_batch(clips)
    if device != "cpu":
        return _torch_features(y, device, progress, chunk_size or 128)
    chunk_size = chunk_size or 8
    if n_jobs is None or n_jobs < 1:
        n_jobs = os.cpu_count() or 1
    starts = list(range(0, len(y), chunk_size))
    out = np.empty((len(y), N_FEATURES, N_FRAMES), dtype=np.float32)
    if n_jobs == 1 or len(starts) == 1:
        with _one_blas_thread():
            for s in _progress(starts, progress, "music features"):
                out[s:s + chunk_size] = _features_block(y[s:s + chunk_size])
        return out
    pool = _worker_pool(n_jobs)
    try:
        jobs = {pool.submit(_features_block, y[s:s + chunk_size]): s for s in starts}
        done = concurrent.futures.as_completed(jobs)
        for job in _progress(done, progress, "music features"):
            s = jobs[job]
            out[s:s + chunk_size] = job.result()
    except concurrent.futures.process.BrokenProcessPool:
        shutdown_workers()  # a worker died (killed, or out of memory): the next call starts afresh
        raise
    return out


def resolve_device(device: str) -> str:
    """``"cpu"``, or the torch device the fast extractor will use for ``device``.

    ``"auto"`` is ``"cuda"`` when torch sees a GPU and ``"cpu"`` otherwise; ``"cuda"`` (or
    ``"cuda:N"``) must name a GPU that torch sees.
    """
    if device == "cpu":
        return device
    if device != "auto" and not str(device).startswith("cuda"):
        raise ValueError(f"feature device {device!r}: use 'cpu', 'cuda' (or 'cuda:N') or 'auto'")
    try:
        import torch
    except ImportError:
        torch = None
    has_gpu = torch is not None and torch.cuda.is_available()
    if device == "auto":
        return "cuda" if has_gpu else "cpu"
    if not has_gpu:
        raise ValueError(f"feature device {device!r}, but torch sees no CUDA GPU on this machine; "
                         "use device='cpu' (all cores with n_jobs=-1) or 'auto'")
    return str(device)


def _torch_features(y: np.ndarray, device: str, progress: bool, chunk_size: int) -> np.ndarray:
    """:func:`fast_features` on a torch device, chunk by chunk in this process."""
    # Local: features_torch imports torch (seconds, and optional on the CPU path).
    from cdcml_lib.data import features_torch

    out = np.empty((len(y), N_FEATURES, N_FRAMES), dtype=np.float32)
    for s in _progress(range(0, len(y), chunk_size), progress, f"music features ({device})"):
        out[s:s + chunk_size] = features_torch.features_block(y[s:s + chunk_size], device)
    return out


_POOL: tuple | None = None  # (n_jobs, the executor) kept between calls


def _worker_pool(n_jobs: int) -> "concurrent.futures.ProcessPoolExecutor":
    """A pool of ``n_jobs`` worker processes, kept for the life of this process.

    Each worker builds a chroma and a constant-Q filter bank for every tuning offset it meets
    (up to 100 of each, 15 ms apiece); a pool kept between calls builds them once per worker
    rather than once per call (the dataset step calls once per chunk of 256 clips).
    """
    global _POOL
    if _POOL is not None and _POOL[0] == n_jobs:
        return _POOL[1]
    shutdown_workers()
    import multiprocessing

    # build the fixed banks (and import their libraries) once, before the workers are forked
    _mel_groups(), spectral.dct_basis(), spectral.chroma_basis(0.0), spectral.cq_to_chroma(), spectral.cqt_bank(0.0)
    ctx = multiprocessing.get_context("spawn" if sys.platform == "darwin" else "fork")
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx,
                                                  initializer=_init_worker)
    _POOL = (n_jobs, pool)
    return pool


def shutdown_workers() -> None:
    """Stop the worker processes that :func:`fast_features` keeps between calls, if any (they
    also stop when this process exits)."""
    global _POOL
    if _POOL is not None:
        _POOL[1].shutdown(wait=True, cancel_futures=True)
        _POOL = None
