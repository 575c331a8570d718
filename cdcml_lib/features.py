"""The paper's 193x87 music matrix, and the log-spectrogram of L3-Net.

Zhao et al. 2020 (CDCML, section 3 of ``METHOD.md``) describe each 2-second clip (22,050 Hz,
44,100 samples) by a matrix of 193 feature rows and 87 frames, stacked in this order::

    rows   0..39   40 MFCC                      librosa.feature.mfcc
    rows  40..51   12 chroma                    librosa.feature.chroma_stft
    rows  52..58    7 spectral contrast         librosa.feature.spectral_contrast
    rows  59..64    6 tonnetz                   librosa.feature.tonnetz (chroma_cqt inside)
    rows  65..192 128 mel bands, in dB          power_to_db(melspectrogram, ref=1.0)

All with librosa's defaults (n_fft 2048, hop 512, centred frames, so 1 + 44100 // 512 = 87).
The mel block is in absolute dB (``ref=1.0``) rather than relative to each clip's maximum: a
clip's loudness is then kept in the features (quiet and loud clips differ), and the value does
not depend on the other frames of the clip. The MFCC block is computed from the same dB mel
spectrogram, as librosa does.

Two extractors give the same numbers (within :data:`TOLERANCE`, checked by the tests):

- :func:`librosa_features` is the reference: it calls librosa clip by clip.
- :func:`fast_features` works on chunks of clips at once with NumPy, across processes (or with
  torch on a GPU, :mod:`cdcml_lib.features_torch`). One STFT per clip feeds the mel, MFCC,
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

SR = 22050
CLIP_SAMPLES = 44100
N_FFT = 2048
HOP = 512
N_FRAMES = 1 + CLIP_SAMPLES // HOP  # 87 with centred frames

N_MFCC, N_CHROMA, N_CONTRAST, N_TONNETZ, N_MELS = 40, 12, 7, 6, 128
N_FEATURES = N_MFCC + N_CHROMA + N_CONTRAST + N_TONNETZ + N_MELS  # 193

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
    clip = clip.astype(np.float32) / 32768.0 if clip.dtype == np.int16 else clip.astype(np.float32)
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
    """L3-Net's input: log(1 + |STFT|) of each clip, float16 ``[N, n_fft // 2 + 1, frames]``.

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


@functools.lru_cache(maxsize=None)
def _hann(n: int) -> np.ndarray:
    """The periodic Hann window in float64 (scipy.signal.get_window('hann', n, fftbins=True))."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


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

_AMIN = 1e-10       # power_to_db floor (librosa's default)
_TOP_DB = 80.0      # power_to_db dynamic range, per clip (librosa's default)
_TUNING_RESOLUTION = 0.01
_CQT_BINS_PER_OCTAVE = 36
_CQT_OCTAVES = 7


@functools.lru_cache(maxsize=None)
def _mel_basis() -> np.ndarray:
    """Slaney mel filter bank [128, 1025] (as librosa.filters.mel with its defaults)."""
    import librosa

    return librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS)


@functools.lru_cache(maxsize=None)
def _mel_groups(n_groups: int = 8) -> tuple:
    """The mel bank cut into groups of neighbouring filters, each with the FFT columns it spans.

    A triangular filter is non-zero only around its centre, so ``n_groups`` small products, each
    over its own columns, do the work of the full [1025, 128] product in about a sixth of the
    operations (the zero weights add nothing; only the order of the float32 sums changes).
    Returns ``((rows, cols, weights [cols, rows]), ...)`` with ``rows`` and ``cols`` slices.
    """
    basis = _mel_basis()
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


@functools.lru_cache(maxsize=None)
def _dct_basis() -> np.ndarray:
    """Orthonormal DCT-II matrix [40, 128]: the MFCC are its product with the dB mel bands."""
    import scipy.fft

    return scipy.fft.dct(np.eye(N_MELS), type=2, norm="ortho", axis=0)[:N_MFCC]


@functools.lru_cache(maxsize=None)
def _chroma_basis(tuning: float) -> np.ndarray:
    """STFT-to-chroma filter bank [12, 1025] for a tuning offset (fractions of a semitone)."""
    import librosa

    return librosa.filters.chroma(sr=SR, n_fft=N_FFT, tuning=tuning, n_chroma=N_CHROMA)


@functools.lru_cache(maxsize=None)
def _contrast_bands(fmin: float = 200.0, n_bands: int = 6, quantile: float = 0.02):
    """Rows (a slice) of each spectral-contrast band and how many rows make its peak and valley.

    Band k spans [fmin 2^(k-1), fmin 2^k] (band 0 is [0, fmin], the last one runs up to the
    Nyquist frequency); each band but the first takes one more row below, each but the last
    drops its top row, as librosa.feature.spectral_contrast does.
    """
    freq = np.fft.rfftfreq(N_FFT, 1.0 / SR)
    edges = np.zeros(n_bands + 2)
    edges[1:] = fmin * 2.0 ** np.arange(n_bands + 1)
    bands = []
    for k, (f_low, f_high) in enumerate(zip(edges[:-1], edges[1:])):
        in_band = (freq >= f_low) & (freq <= f_high)
        idx = np.flatnonzero(in_band)
        if k > 0:
            in_band[idx[0] - 1] = True
        if k == n_bands:
            in_band[idx[-1] + 1:] = True
        n_quantile = max(int(np.rint(quantile * in_band.sum())), 1)
        rows = np.flatnonzero(in_band)
        if k < n_bands:
            rows = rows[:-1]
        assert rows[-1] - rows[0] + 1 == len(rows), "a contrast band is a contiguous range"
        bands.append((slice(int(rows[0]), int(rows[-1]) + 1), n_quantile))
    return tuple(bands)


def _relative_bandwidth(freqs: np.ndarray) -> np.ndarray:
    """Relative bandwidth alpha of each constant-Q bin from its neighbours' log-spacing."""
    logf = np.log2(freqs)
    bpo = np.empty_like(freqs)
    bpo[0] = 1 / (logf[1] - logf[0])
    bpo[-1] = 1 / (logf[-1] - logf[-2])
    bpo[1:-1] = 2 / (logf[2:] - logf[:-2])
    return (2.0 ** (2 / bpo) - 1) / (2.0 ** (2 / bpo) + 1)


def _wavelets(freqs: np.ndarray, lengths: np.ndarray, sr: float) -> np.ndarray:
    """Hann-windowed complex exponentials, L1-normalised, centred in a power-of-2 frame.

    Filter k spans the integer range [-lengths[k]/2, lengths[k]/2) (the constant-Q filters of Brown 1991), as
    librosa.filters.wavelet; returns complex64 [len(freqs), n_fft].
    """
    n_fft = int(2.0 ** np.ceil(np.log2(lengths.max())))
    out = np.zeros((len(freqs), n_fft), dtype=np.complex64)
    for k, (length, freq) in enumerate(zip(lengths, freqs)):
        t = np.arange(-length // 2, length // 2, dtype=float)
        n = len(t)  # periodic Hann window over the whole filter
        window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)
        sig = np.exp(1j * (t * 2 * np.pi * freq / sr)) * window
        sig /= np.abs(sig).sum()
        start = (n_fft - len(sig)) // 2
        out[k, start:start + len(sig)] = sig
    return out


def _sparsify_rows(x: np.ndarray, quantile: float = 0.01) -> np.ndarray:
    """Zero the smallest entries of each row that together hold < ``quantile`` of its L1 mass."""
    mags = np.abs(x)
    mag_sort = np.sort(mags, axis=1)
    cumulative = np.cumsum(mag_sort / mags.sum(axis=1, keepdims=True), axis=1)
    cut = mag_sort[np.arange(len(x)), np.argmin(cumulative < quantile, axis=1)]
    return np.where(mags >= cut[:, None], x, 0)


@functools.lru_cache(maxsize=None)
def _cqt_bank(tuning: float):
    """Constant-Q filter bank of chroma_cqt (7 octaves of 36 bins from C1) for one tuning.

    As librosa's multirate CQT (Schoerkhuber & Klapuri 2010): Q = 1 / alpha, Hann wavelets,
    L1 norm, 1% sparsity of their spectra. Octave i is analysed at SR / 2^i with the frequencies
    of the top octave divided by 2^i, so its wavelets are those of the top octave: one bank
    serves all octaves, octave i's response being scaled by sqrt(2^i) for the downsampling.

    librosa takes each frame's FFT X[f] and sums X[f] B_k[f] over the positive frequencies f,
    B_k being the sparsified spectrum of wavelet k. The DFT is linear, so that sum is the inner
    product of the frame with the time-domain kernel h_k[n] = sum_f B_k[f] exp(-2 pi i f n / N),
    built here once in float64: one real matrix product per octave then replaces the frame FFTs
    and the sparse product (3 times faster; same numbers within float32 round-off).

    Returns ``(n_fft, kernel, lengths)``: ``kernel`` [n_fft, 72] float32 holds [Re h, Im h] of
    the top octave's 36 filters; ``lengths`` [252] are the wavelet lengths at SR, which scale the
    final response.
    """
    bpo = _CQT_BINS_PER_OCTAVE
    n_bins = bpo * _CQT_OCTAVES
    c1 = 440.0 * 2.0 ** ((24 - 69) / 12)  # MIDI note 24
    freqs = c1 * 2.0 ** (tuning / bpo) * 2.0 ** (np.arange(n_bins) / bpo)
    alpha = _relative_bandwidth(freqs)
    q_factor = 1.0 / alpha
    lengths = q_factor * SR / freqs
    top = slice(n_bins - bpo, n_bins)
    basis = _wavelets(freqs[top], lengths[top], SR)
    n_fft = basis.shape[1]
    basis = basis * (lengths[top, None] / float(n_fft))
    fft_basis = np.fft.fft(basis, n=n_fft, axis=1)[:, : n_fft // 2 + 1]
    # librosa stores the sparsified bank as complex64: round through it to use the same filters
    fft_basis = _sparsify_rows(fft_basis).astype(np.complex64).astype(np.complex128)
    used = np.flatnonzero(np.any(fft_basis != 0, axis=0))
    dft = np.exp(-2j * np.pi * np.outer(np.arange(n_fft), used) / n_fft)  # [n_fft, used]
    kernel = dft @ fft_basis[:, used].T  # [n_fft, 36] complex
    return n_fft, np.concatenate([kernel.real, kernel.imag], axis=1).astype(np.float32), lengths


@functools.lru_cache(maxsize=None)
def _cq_to_chroma() -> np.ndarray:
    """Folding matrix [12, 252] from the 252 constant-Q bins to 12 pitch classes."""
    import librosa

    return librosa.filters.cq_to_chroma(_CQT_BINS_PER_OCTAVE * _CQT_OCTAVES,
                                        bins_per_octave=_CQT_BINS_PER_OCTAVE, n_chroma=N_CHROMA)


@functools.lru_cache(maxsize=None)
def _tonnetz_basis() -> np.ndarray:
    """The 6x12 tonal-centroid projection of Harte et al. 2006 (fifths, minor and major thirds)."""
    pitch = np.arange(N_CHROMA, dtype=float)
    scale = np.array([7 / 6, 7 / 6, 3 / 2, 3 / 2, 2 / 3, 2 / 3])
    angle = np.multiply.outer(scale, pitch)
    angle[::2] -= 0.5  # even rows are sines
    radius = np.array([1, 1, 1, 1, 0.5, 0.5])
    return radius[:, None] * np.cos(np.pi * angle)


def _stft_magnitude(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """|STFT| of signals [N, S] -> float32 [N, T, n_fft//2+1]: centred, zero-padded, Hann window.

    As librosa.stft: the windowed frames are transformed in float64 (the window is float64) and
    the spectrum is rounded to complex64 before its magnitude is taken. One clip at a time, so
    that its float64 frames and spectrum stay in the processor's cache (twice as fast as a batch).
    """
    import scipy.fft

    window = _hann(n_fft)
    frames = _frame_centered(y, n_fft, hop)
    out = np.empty(frames.shape[:2] + (n_fft // 2 + 1,), dtype=np.float32)
    for i in range(len(y)):
        spectrum = scipy.fft.rfft(frames[i] * window, axis=-1, workers=1)
        out[i] = np.abs(spectrum.astype(np.complex64))
    return out


def _power_to_db(power: np.ndarray, axes: tuple) -> np.ndarray:
    """10 log10(max(power, 1e-10)) with ref 1, floored at 80 dB below each clip's maximum."""
    log_spec = 10.0 * np.log10(np.maximum(_AMIN, power))
    floor = log_spec.max(axis=axes, keepdims=True) - _TOP_DB
    return np.maximum(log_spec, floor)


def _normalize(x: np.ndarray, norm: float, axis: int) -> np.ndarray:
    """librosa.util.normalize with fill=None: columns with a (near) zero norm are left as they are."""
    mag = np.abs(x).astype(float)
    length = mag.max(axis=axis, keepdims=True) if norm == np.inf else mag.sum(axis=axis, keepdims=True)
    length[length < np.finfo(x.dtype).tiny] = 1.0
    return (x / length).astype(x.dtype)


def _parabolic_shift(left: np.ndarray, centre: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Offset of the vertex of the parabola through three neighbouring bins (0 if over a bin away).

    Computed in float64, as librosa's piptrack stencil does.
    """
    left, centre, right = (v.astype(np.float64) for v in (left, centre, right))
    a = right + left - 2 * centre
    b = (right - left) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.abs(b) >= np.abs(a), 0.0, -b / a)


def _inner_local_max(x: np.ndarray) -> np.ndarray:
    """x[i] > x[i-1] and x[i] >= x[i+1] for the inner bins x[..., 1:-1] of the last axis."""
    return (x[..., 1:-1] > x[..., :-2]) & (x[..., 1:-1] >= x[..., 2:])


def _estimate_tuning(S: np.ndarray, bins_per_octave: int, fmin: float = 150.0,
                     fmax: float = 4000.0, threshold: float = 0.1) -> np.ndarray:
    """Tuning offset of each clip (fractions of a bin, on a 0.01 grid), from S [N, T, F].

    Peaks of each frame above 10% of its maximum, between 150 Hz and 4 kHz, are located by
    parabolic interpolation; the strongest half of them vote in a histogram of their deviation
    from equal temperament (A440), as librosa.estimate_tuning / piptrack / pitch_tuning.
    """
    n_fft = 2 * (S.shape[-1] - 1)
    freq = np.fft.rfftfreq(n_fft, 1.0 / SR)
    in_range = np.flatnonzero((fmin <= freq) & (freq < fmax))
    lo, hi = in_range[0] - 1, in_range[-1] + 2  # one bin of context on each side (inner bins)
    ref = threshold * S.max(axis=-1, keepdims=True)
    sub = S[..., lo:hi]
    # local maxima above the threshold (the same bins as librosa's local maxima of S masked by
    # S > ref, since a bin above ref beats any neighbour below it); flat: faster than np.nonzero
    peaks = np.flatnonzero(_inner_local_max(sub) & (sub[..., 1:-1] > ref))
    clip_idx, t_idx, f_idx = np.unravel_index(peaks, (S.shape[0], S.shape[1], sub.shape[-1] - 2))
    left, centre, right = (sub[clip_idx, t_idx, f_idx + d] for d in (0, 1, 2))
    shift = _parabolic_shift(left, centre, right).astype(S.dtype)
    slope = ((right - left) / 2).astype(S.dtype)  # np.gradient at the peak
    all_mags = centre + 0.5 * slope * shift  # the interpolated peak height
    all_pitch = ((lo + 1 + f_idx + shift) * float(SR) / n_fft).astype(S.dtype)
    voiced = all_pitch > 0

    # the strongest half of each clip's peaks vote: those at or above its median height
    bounds = np.searchsorted(clip_idx, np.arange(len(S) + 1))  # np.nonzero is in clip order
    cut = np.zeros(len(S), dtype=S.dtype)
    for n in range(len(S)):
        mags = all_mags[bounds[n]:bounds[n + 1]][voiced[bounds[n]:bounds[n + 1]]]
        if mags.size:
            cut[n] = np.median(mags)
    votes = voiced & (all_mags >= cut[clip_idx])
    octs = np.log2(all_pitch[votes] / (440.0 / 16))
    residual = np.mod(bins_per_octave * octs, 1.0)
    residual[residual >= 0.5] -= 1.0

    # one histogram per clip, as np.histogram(residual, edges): bins [e_i, e_i+1), the last closed
    edges = np.linspace(-0.5, 0.5, int(np.ceil(1.0 / _TUNING_RESOLUTION)) + 1)
    n_bins = len(edges) - 1
    bins = np.searchsorted(edges, residual, side="right") - 1
    bins[residual == edges[-1]] = n_bins - 1
    inside = (bins >= 0) & (bins < n_bins)
    counts = np.bincount(clip_idx[votes][inside] * n_bins + bins[inside],
                         minlength=len(S) * n_bins).reshape(len(S), n_bins)
    # a clip without pitches (e.g. silence) gets 0.0, as librosa
    return np.where(counts.any(axis=1), edges[counts.argmax(axis=1)], 0.0)


def _resample_half(y: np.ndarray) -> np.ndarray:
    """Halve the sample rate of a signal [S] with soxr's HQ filter, energy-preserving (x sqrt 2)."""
    import soxr

    n = int(np.ceil(len(y) * 0.5))
    out = soxr.resample(y, 2, 1, quality="soxr_hq")[:n].astype(np.float32)  # a copy, written below
    if len(out) < n:
        out = np.pad(out, (0, n - len(out)))
    out /= np.sqrt(0.5)  # in float64, rounded to float32 (an in-place division), as librosa
    return out


def _chroma_cqt(y: np.ndarray, magnitude: np.ndarray) -> np.ndarray:
    """Constant-Q chroma [N, 87, 12] of clips [N, 44100], as librosa.feature.chroma_cqt.

    The tuning of each clip comes from the shared STFT magnitude [N, T, F]; the multirate CQT
    halves the signal once per octave, and each octave's centred frames are projected on the
    time-domain kernels of :func:`_cqt_bank` of the clip's tuning (one matrix product).
    """
    tunings = _estimate_tuning(magnitude, _CQT_BINS_PER_OCTAVE)
    banks = [_cqt_bank(float(t)) for t in tunings]
    n_fft = banks[0][0]
    assert all(bank[0] == n_fft for bank in banks), "the CQT frame length depends on the tuning"
    lengths = np.stack([bank[2] for bank in banks])  # [N, 252]
    response = np.empty((len(y), _CQT_OCTAVES, N_FRAMES, 2 * _CQT_BINS_PER_OCTAVE), np.float32)
    for c in range(len(y)):  # clip by clip: its frames stay in the processor's cache
        signal = y[c]  # at SR / 2^i in octave i
        for i in range(_CQT_OCTAVES):
            if i > 0:
                signal = _resample_half(signal)
            frames = _frame_centered(signal, n_fft, HOP // 2**i)[:N_FRAMES]
            response[c, i] = np.ascontiguousarray(frames) @ banks[c][1]  # its tuning's kernel
    response = response.reshape(len(y), _CQT_OCTAVES, N_FRAMES, 2, _CQT_BINS_PER_OCTAVE)
    response = np.hypot(response[..., 0, :], response[..., 1, :])  # [N, octave, T, 36]
    # octave i holds bins 36 (6 - i) .. 36 (7 - i); its response is scaled by sqrt(2^i / length)
    cqt = response[:, ::-1].transpose(0, 2, 1, 3).reshape(len(y), N_FRAMES, -1)
    octave = np.repeat(np.arange(_CQT_OCTAVES)[::-1], _CQT_BINS_PER_OCTAVE)  # [252]
    cqt = cqt * (np.sqrt(2.0**octave) / np.sqrt(lengths))[:, None, :].astype(np.float32)
    chroma = cqt @ _cq_to_chroma().T
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
    mfcc = mel_db.astype(np.float64) @ _dct_basis().T  # float64: the c0 row sums 128 bands

    chroma = np.empty((n, N_FRAMES, N_CHROMA), dtype=np.float32)
    tunings = _estimate_tuning(power, N_CHROMA)
    for tuning in np.unique(tunings):
        members = np.flatnonzero(tunings == tuning)
        chroma[members] = power[members] @ _chroma_basis(float(tuning)).T
    chroma = _normalize(chroma, np.inf, axis=2)

    bands = _contrast_bands()
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
    tonnetz = _normalize(chroma_cq, 1, axis=2) @ _tonnetz_basis().T

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
    on that GPU by :mod:`cdcml_lib.features_torch`, in this process. ``"auto"``: CUDA when torch
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
    from . import features_torch

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
    _mel_groups(), _dct_basis(), _chroma_basis(0.0), _cq_to_chroma(), _cqt_bank(0.0)
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
