"""Analysis settings and filter banks shared by the NumPy and the torch music extractors.

:mod:`cdcml_lib.data.features` (NumPy, the reference path) and :mod:`cdcml_lib.data.features_torch`
(CUDA) both read their frame sizes, the spectral-contrast bands, the constant-Q filter bank, the
tuning estimate and the octave halving from here, so the two extractors cannot drift apart, and
neither has to reach into the other's private names.
"""
from __future__ import annotations

import functools

import numpy as np

from cdcml_lib.audio import CLIP_SAMPLES, SR

N_FFT = 2048
HOP = 512
N_FRAMES = 1 + CLIP_SAMPLES // HOP  # 87 with centred frames
N_MFCC, N_CHROMA, N_MELS = 40, 12, 128
AMIN = 1e-10        # power_to_db floor (librosa's default)
TOP_DB = 80.0       # power_to_db dynamic range, per clip (librosa's default)
TUNING_RESOLUTION = 0.01
CQT_BINS_PER_OCTAVE = 36
CQT_OCTAVES = 7


@functools.lru_cache(maxsize=None)
def contrast_bands(fmin: float = 200.0, n_bands: int = 6, quantile: float = 0.02):
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
def cqt_bank(tuning: float):
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
    bpo = CQT_BINS_PER_OCTAVE
    n_bins = bpo * CQT_OCTAVES
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


def estimate_tuning(S: np.ndarray, bins_per_octave: int, fmin: float = 150.0,
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
    edges = np.linspace(-0.5, 0.5, int(np.ceil(1.0 / TUNING_RESOLUTION)) + 1)
    n_bins = len(edges) - 1
    bins = np.searchsorted(edges, residual, side="right") - 1
    bins[residual == edges[-1]] = n_bins - 1
    inside = (bins >= 0) & (bins < n_bins)
    counts = np.bincount(clip_idx[votes][inside] * n_bins + bins[inside],
                         minlength=len(S) * n_bins).reshape(len(S), n_bins)
    # a clip without pitches (e.g. silence) gets 0.0, as librosa
    return np.where(counts.any(axis=1), edges[counts.argmax(axis=1)], 0.0)


def resample_half(y: np.ndarray) -> np.ndarray:
    """Halve the sample rate of a signal [S] with soxr's HQ filter, energy-preserving (x sqrt 2)."""
    import soxr

    n = int(np.ceil(len(y) * 0.5))
    out = soxr.resample(y, 2, 1, quality="soxr_hq")[:n].astype(np.float32)  # a copy, written below
    if len(out) < n:
        out = np.pad(out, (0, n - len(out)))
    out /= np.sqrt(0.5)  # in float64, rounded to float32 (an in-place division), as librosa
    return out


@functools.lru_cache(maxsize=None)
def hann(n: int) -> np.ndarray:
    """The periodic Hann window in float64 (scipy.signal.get_window('hann', n, fftbins=True))."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


@functools.lru_cache(maxsize=None)
def mel_basis() -> np.ndarray:
    """Slaney mel filter bank [128, 1025] (as librosa.filters.mel with its defaults)."""
    import librosa

    return librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS)


@functools.lru_cache(maxsize=None)
def dct_basis() -> np.ndarray:
    """Orthonormal DCT-II matrix [40, 128]: the MFCC are its product with the dB mel bands."""
    import scipy.fft

    return scipy.fft.dct(np.eye(N_MELS), type=2, norm="ortho", axis=0)[:N_MFCC]


@functools.lru_cache(maxsize=None)
def chroma_basis(tuning: float) -> np.ndarray:
    """STFT-to-chroma filter bank [12, 1025] for a tuning offset (fractions of a semitone)."""
    import librosa

    return librosa.filters.chroma(sr=SR, n_fft=N_FFT, tuning=tuning, n_chroma=N_CHROMA)


@functools.lru_cache(maxsize=None)
def cq_to_chroma() -> np.ndarray:
    """Folding matrix [12, 252] from the 252 constant-Q bins to 12 pitch classes."""
    import librosa

    return librosa.filters.cq_to_chroma(CQT_BINS_PER_OCTAVE * CQT_OCTAVES,
                                        bins_per_octave=CQT_BINS_PER_OCTAVE, n_chroma=N_CHROMA)


@functools.lru_cache(maxsize=None)
def tonnetz_basis() -> np.ndarray:
    """The 6x12 tonal-centroid projection of Harte et al. 2006 (fifths, minor and major thirds)."""
    pitch = np.arange(N_CHROMA, dtype=float)
    scale = np.array([7 / 6, 7 / 6, 3 / 2, 3 / 2, 2 / 3, 2 / 3])
    angle = np.multiply.outer(scale, pitch)
    angle[::2] -= 0.5  # even rows are sines
    radius = np.array([1, 1, 1, 1, 0.5, 0.5])
    return radius[:, None] * np.cos(np.pi * angle)
