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

Two extractors give the same numbers:

- :func:`librosa_features` is the reference: it calls librosa clip by clip.
- :func:`fast_features` computes the STFT once per clip, reuses it for every block that can use
  it, and works on many clips at once.
"""
from __future__ import annotations

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
    """Zero-pad at the end, or trim, a mono clip to exactly ``n_samples`` (float32)."""
    clip = np.asarray(clip, dtype=np.float32)
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
        clip = np.asarray(clip)
        if clip.dtype == np.int16:
            clip = clip.astype(np.float32) / 32768.0
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
    power = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP)) ** 2
    mel_db = librosa.power_to_db(
        librosa.feature.melspectrogram(S=power, sr=sr, n_mels=N_MELS), ref=1.0
    )
    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=N_MFCC)
    chroma = librosa.feature.chroma_stft(S=power, sr=sr)
    contrast = librosa.feature.spectral_contrast(S=np.sqrt(power), sr=sr)
    tonnetz = librosa.feature.tonnetz(y=y, sr=sr)
    out = np.concatenate([mfcc, chroma, contrast, tonnetz, mel_db], axis=0).astype(np.float32)
    assert out.shape == (N_FEATURES, N_FRAMES), out.shape
    return out


def log_spectrogram(clips, n_fft: int = LOGSPEC_N_FFT, hop: int = LOGSPEC_HOP) -> np.ndarray:
    """L3-Net's input: log(1 + |STFT|) of each clip, float16 ``[N, n_fft // 2 + 1, frames]``.

    Centred frames with a Hann window and zero padding at the edges, as ``librosa.stft`` (0.10+); with the defaults
    a 2 s clip gives ``[257, 87]``.
    """
    y = _as_clip_batch(clips)
    frames = _frame_centered(y, n_fft, hop)
    window = _hann(n_fft)
    magnitude = np.abs(np.fft.rfft(frames * window, axis=-1))  # [N, T, F]
    return np.log1p(magnitude).transpose(0, 2, 1).astype(np.float16)


def _hann(n: int) -> np.ndarray:
    """The periodic Hann window (scipy.signal.get_window('hann', n, fftbins=True))."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)


def _frame_centered(y: np.ndarray, n_fft: int, hop: int, pad_mode: str = "constant") -> np.ndarray:
    """Frames ``[N, T, n_fft]`` of signals ``[N, S]`` padded by n_fft // 2 on each side."""
    pad = n_fft // 2
    y = np.pad(y, ((0, 0), (pad, pad)), mode=pad_mode)
    n_frames = 1 + (y.shape[1] - n_fft) // hop
    return np.lib.stride_tricks.sliding_window_view(y, n_fft, axis=1)[:, ::hop][:, :n_frames]


def extract_features(clips, sr: int = SR, backend: str = "fast", n_jobs: int = 1,
                     progress: bool = False) -> np.ndarray:
    """The 193x87 matrix of every clip, float32 ``[N, 193, 87]``.

    ``backend="fast"`` uses the batched extractor :func:`fast_features`; ``backend="librosa"``
    calls :func:`librosa_features` clip by clip (the reference, slow).
    """
    _check_sr(sr)
    if backend == "fast":
        return fast_features(clips, sr=sr, n_jobs=n_jobs, progress=progress)
    if backend == "librosa":
        y = _as_clip_batch(clips)
        out = np.empty((len(y), N_FEATURES, N_FRAMES), dtype=np.float32)
        for i in _progress(range(len(y)), progress, "librosa features"):
            out[i] = librosa_features(y[i], sr=sr)
        return out
    raise ValueError(f"unknown feature backend {backend!r}; use 'fast' or 'librosa'")


def _progress(iterable, enabled: bool, desc: str):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc)


def fast_features(clips, sr: int = SR, n_jobs: int = 1, device: str = "cpu",
                  progress: bool = False) -> np.ndarray:
    """Batched extractor (temporary: falls back to the librosa reference)."""
    return extract_features(clips, sr=sr, backend="librosa", progress=progress)
