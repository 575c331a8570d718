"""The batched 193x87 extractor on torch tensors, for a GPU: ``fast_features(device="cuda")``.

The steps of :func:`cdcml_lib.data.features._features_block`, with the heavy arithmetic on the device:
the float64 STFT, the mel, chroma, DCT, constant-Q and tonnetz products, and the sorts of the
spectral contrast. Two steps stay on the CPU, because their numbers must be librosa's and they are
small: each clip's tuning estimate (a histogram vote over its spectral peaks) and the soxr
halvings of the multirate constant-Q transform (soxr's filter has no torch twin). The filter banks
are those of ``features.py``, copied to the device once.

Every float32 matrix product runs at full float32 precision, whatever the process asked of torch
elsewhere: TF32 (the trainer may allow it) would cost three decimal digits, far outside
``features.TOLERANCE``.

``tests/test_features.py`` runs this path on torch's CPU device against librosa with the same
tolerances. On a CPU the NumPy extractor is the faster one, so it stays the CPU path.
"""
from __future__ import annotations

import contextlib
import functools

import numpy as np
import torch

from cdcml_lib.data import spectral


def features_block(y: np.ndarray, device: str | torch.device) -> np.ndarray:
    """The 193x87 matrices of clips [N, 44100] float32, computed on ``device``; float32 numpy."""
    with _full_float32():
        signal = torch.as_tensor(np.ascontiguousarray(y), device=device)
        magnitude = _stft_magnitude(signal)  # [N, T, F]
        power = magnitude**2

        mel_db = _power_to_db(power @ _bank(device, spectral.mel_basis).T, dims=(1, 2))
        mfcc = mel_db.double() @ _bank(device, spectral.dct_basis).T  # float64, as the NumPy path

        tunings = spectral.estimate_tuning(power.cpu().numpy(), spectral.N_CHROMA)
        chroma_basis = torch.stack([_bank(device, spectral.chroma_basis, float(t)).T for t in tunings])
        chroma = _normalize(torch.bmm(power, chroma_basis), float("inf"))

        contrast = _spectral_contrast(magnitude)
        chroma_cq = _chroma_cqt(y, magnitude, device)
        tonnetz = _normalize(chroma_cq, 1.0).double() @ _bank(device, spectral.tonnetz_basis).T

        blocks = [mfcc, chroma, contrast, tonnetz, mel_db]
        out = torch.cat([b.float() for b in blocks], dim=2).transpose(1, 2)
        return out.contiguous().cpu().numpy()


@contextlib.contextmanager
def _full_float32():
    """Float32 matrix products at full precision (no TF32) inside the block; restored after."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


@functools.lru_cache(maxsize=None)
def _bank(device: str | torch.device, make, *args) -> torch.Tensor:
    """The filter bank ``make(*args)`` (a function of :mod:`spectral`) as a tensor on ``device``, kept per device."""
    return torch.as_tensor(np.asarray(make(*args)), device=device)


@functools.lru_cache(maxsize=None)
def _cqt_bank(device: str | torch.device, tuning: float) -> tuple[int, torch.Tensor, torch.Tensor]:
    """:func:`spectral.cqt_bank` on ``device``: (frame length, kernel [n_fft, 72], lengths)."""
    n_fft, kernel, lengths = spectral.cqt_bank(tuning)
    return n_fft, torch.as_tensor(kernel, device=device), torch.as_tensor(lengths, device=device)


def _stft_magnitude(signal: torch.Tensor, n_fft: int = spectral.N_FFT, hop: int = spectral.HOP) -> torch.Tensor:
    """|STFT| [N, T, F] float32 of signals [N, S]: centred, zero-padded, periodic Hann window.

    As ``features._stft_magnitude`` (and librosa.stft): frames in float64, spectrum rounded to
    complex64 before its magnitude.
    """
    frames = _frames(signal.double(), n_fft, hop)
    window = _bank(signal.device, spectral.hann, n_fft)
    spectrum = torch.fft.rfft(frames * window, dim=-1)
    return spectrum.to(torch.complex64).abs()


def _frames(signal: torch.Tensor, n_fft: int, hop: int, n_frames: int | None = None) -> torch.Tensor:
    """Frames [N, T, n_fft] of signals [N, S] padded with n_fft // 2 zeros on each side."""
    padded = torch.nn.functional.pad(signal, (n_fft // 2, n_fft // 2))
    frames = padded.unfold(-1, n_fft, hop)
    return frames if n_frames is None else frames[:, :n_frames]


def _power_to_db(power: torch.Tensor, dims: tuple) -> torch.Tensor:
    """10 log10(max(power, 1e-10)), floored at 80 dB below each clip's maximum."""
    log_spec = 10.0 * torch.log10(torch.clamp_min(power, spectral.AMIN))
    floor = log_spec.amax(dim=dims, keepdim=True) - spectral.TOP_DB
    return torch.maximum(log_spec, floor)


def _normalize(x: torch.Tensor, norm: float) -> torch.Tensor:
    """``features._normalize`` over the last axis: the norm in float64, near-zero norms left."""
    mag = x.abs().double()
    length = mag.amax(dim=-1, keepdim=True) if norm == float("inf") else mag.sum(dim=-1, keepdim=True)
    length = torch.where(length < torch.finfo(x.dtype).tiny, torch.ones_like(length), length)
    return (x.double() / length).to(x.dtype)


def _spectral_contrast(magnitude: torch.Tensor) -> torch.Tensor:
    """Spectral contrast [N, T, 7] (float64): dB of each band's peak over its valley."""
    valley, peak = [], []
    for rows, q in spectral.contrast_bands():
        band = magnitude[..., rows]
        if q == 1:
            valley.append(band.amin(dim=-1))
            peak.append(band.amax(dim=-1))
        else:
            band = torch.sort(band, dim=-1).values
            valley.append(band[..., :q].mean(dim=-1))
            peak.append(band[..., -q:].mean(dim=-1))
    peak, valley = torch.stack(peak, dim=-1).double(), torch.stack(valley, dim=-1).double()
    return _power_to_db(peak, dims=(1, 2)) - _power_to_db(valley, dims=(1, 2))


def _chroma_cqt(y: np.ndarray, magnitude: torch.Tensor, device) -> torch.Tensor:
    """Constant-Q chroma [N, 87, 12] float32, as ``features._chroma_cqt``.

    The tuning estimates and the soxr halvings run on the CPU; each octave's frames meet the
    time-domain kernels of the clip's tuning in one batched product on the device.
    """
    bpo, n_octaves = spectral.CQT_BINS_PER_OCTAVE, spectral.CQT_OCTAVES
    tunings = spectral.estimate_tuning(magnitude.cpu().numpy(), bpo)
    banks = [_cqt_bank(device, float(t)) for t in tunings]
    n_fft = banks[0][0]
    kernels = torch.stack([bank[1] for bank in banks])  # [N, n_fft, 72]
    lengths = torch.stack([bank[2] for bank in banks])  # [N, 252]
    octaves = [y]  # the signals at SR / 2^i
    for _ in range(n_octaves - 1):
        octaves.append(np.stack([spectral.resample_half(clip) for clip in octaves[-1]]))
    responses = []
    for i, signal in enumerate(octaves):
        frames = _frames(torch.as_tensor(signal, device=device), n_fft, spectral.HOP // 2**i, spectral.N_FRAMES)
        response = torch.bmm(frames.contiguous(), kernels).view(len(y), spectral.N_FRAMES, 2, bpo)
        responses.append(torch.hypot(response[..., 0, :], response[..., 1, :]))  # [N, T, 36]
    cqt = torch.cat(responses[::-1], dim=-1)  # octave i holds bins 36 (6 - i) .. 36 (7 - i)
    octave = torch.arange(n_octaves - 1, -1, -1, dtype=torch.float64, device=device)
    scale = (torch.sqrt(2.0 ** octave.repeat_interleave(bpo)) / torch.sqrt(lengths)).float()
    chroma = (cqt * scale[:, None, :]) @ _bank(device, spectral.cq_to_chroma).T
    chroma = torch.clamp_min(chroma, 0.0)
    return _normalize(chroma, float("inf"))
