"""Tests of the music features: the librosa reference and the batched extractor."""
import numpy as np
import pytest

from cdcml_lib import features as F


def _noise(n=2, seed=0):
    return (np.random.default_rng(seed).standard_normal((n, F.CLIP_SAMPLES)) * 0.1).astype(np.float32)


def test_reference_shape_and_padding():
    clip = _noise(1)[0]
    short = clip[:30000]
    out = F.librosa_features(short)
    assert out.shape == (193, 87) and out.dtype == np.float32
    padded = np.concatenate([short, np.zeros(F.CLIP_SAMPLES - 30000, np.float32)])
    np.testing.assert_array_equal(out, F.librosa_features(padded))


def test_log_spectrogram_matches_librosa_stft():
    import librosa

    y = _noise(2)
    out = F.log_spectrogram(y)
    assert out.shape == (2, 257, 87) and out.dtype == np.float16
    ref = np.log1p(np.abs(librosa.stft(y[1], n_fft=512, hop_length=512)))
    np.testing.assert_allclose(out[1].astype(np.float32), ref, atol=2e-3, rtol=2e-3)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="sample rate"):
        F.librosa_features(np.zeros(100), sr=44100)
    with pytest.raises(ValueError, match="clip 1"):
        F.extract_features([np.zeros(100), np.full(100, np.nan)], backend="librosa")
    with pytest.raises(ValueError, match="backend"):
        F.extract_features(_noise(1), backend="nope")
