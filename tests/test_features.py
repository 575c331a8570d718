"""Tests of the music features: the librosa reference, the batched extractor and the
log-spectrogram.

The batched extractor is compared block by block with librosa's own functions on varied audio:
rendered clips of the embedded corpus, white noise, a chord, a melody, a sine sweep, silence and
a clip shorter than 2 s (zero-padded). Tolerances are features.TOLERANCE.
"""
import warnings

import numpy as np
import pytest

from cdcml_lib.audio import INT16_SCALE, from_int16, to_int16
from cdcml_lib.data import features as F

SR = F.SR
T = np.arange(F.CLIP_SAMPLES) / SR


def _tone(freqs, amp=0.2):
    return sum(amp * np.sin(2 * np.pi * f * T) for f in freqs).astype(np.float32)


def _melody():
    # eight notes of a slightly detuned scale (+30 cents), to move the tuning estimate
    notes = 440.0 * 2 ** ((np.array([0, 2, 4, 5, 7, 9, 11, 12]) + 0.3) / 12)
    step = F.CLIP_SAMPLES // len(notes)
    f = np.repeat(notes, step)[: F.CLIP_SAMPLES]
    f = np.pad(f, (0, F.CLIP_SAMPLES - len(f)), mode="edge")
    return (0.3 * np.sin(2 * np.pi * np.cumsum(f) / SR)).astype(np.float32)


def _sweep():
    f0, f1 = 60.0, 8000.0
    phase = 2 * np.pi * (f0 * T + (f1 - f0) / (2 * T[-1]) * T**2)
    return (0.5 * np.sin(phase)).astype(np.float32)


def _corpus_clips(n):
    synthetic = pytest.importorskip("cdcml_lib.data.synthetic")
    corpus = synthetic.make_corpus(n_songs=2, clips_per_song_min=2, clips_per_song_max=2,
                                   n_images=1, label_noise=0.05, seed=3)
    return list(corpus.render_clips(np.arange(n)))


@pytest.fixture(scope="module")
def varied_clips():
    rng = np.random.default_rng(7)
    clips = {
        "noise": (0.1 * rng.standard_normal(F.CLIP_SAMPLES)).astype(np.float32),
        "chord": _tone([261.63, 329.63, 392.0]),
        "melody": _melody(),
        "sweep": _sweep(),
        "silence": np.zeros(F.CLIP_SAMPLES, np.float32),
        "short": _tone([220.0, 277.18])[: SR],  # 1 s, zero-padded to 2 s
    }
    for i, clip in enumerate(_corpus_clips(2)):
        clips[f"corpus{i}"] = clip
    return clips


@pytest.fixture(scope="module")
def both_extractors(varied_clips):
    names = list(varied_clips)
    clips = [varied_clips[k] for k in names]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns on silence and on its last CQT octave
        reference = np.stack([F.librosa_features(c) for c in clips])
    fast = F.fast_features(clips, chunk_size=3)  # several chunks, one with a single group
    return names, reference, fast


@pytest.mark.parametrize("block", list(F.BLOCKS))
def test_fast_matches_librosa_per_block(both_extractors, block):
    names, reference, fast = both_extractors
    rows = F.BLOCKS[block]
    err = np.abs(fast[:, rows] - reference[:, rows]).reshape(len(names), -1).max(axis=1)
    worst = names[int(err.argmax())]
    assert err.max() <= F.TOLERANCE[block], f"{block}: max abs error {err.max():.3g} on {worst}"


def test_fast_output_is_finite_and_shaped(both_extractors):
    names, _, fast = both_extractors
    assert fast.shape == (len(names), 193, 87) and fast.dtype == np.float32
    assert np.isfinite(fast).all()
    silence = fast[names.index("silence")]
    np.testing.assert_allclose(silence[F.BLOCKS["mel"]], -100.0, rtol=1e-6)  # 10 log10(1e-10)
    assert np.all(silence[F.BLOCKS["chroma"]] == 0.0) and np.all(silence[F.BLOCKS["tonnetz"]] == 0.0)


def test_blocks_respond_to_their_content(both_extractors):
    """Sanity of meaning, not only of agreement: the chord's chroma peaks on C, E and G."""
    names, _, fast = both_extractors
    chroma = fast[names.index("chord"), F.BLOCKS["chroma"]].mean(axis=1)
    assert set(np.argsort(chroma)[-3:]) == {0, 4, 7}


def test_worker_processes_give_the_same_numbers(varied_clips):
    clips = list(varied_clips.values())[:5]
    for chunk in (2, 5):
        np.testing.assert_array_equal(F.fast_features(clips, chunk_size=chunk),
                                      F.fast_features(clips, n_jobs=2, chunk_size=chunk))


def test_chunk_size_changes_only_round_off(varied_clips):
    """BLAS picks its kernel by matrix size, so on some CPUs (seen on an AMD EPYC) another chunk
    size moves float32 round-off in the last bits (measured: 1.5e-5 on MFCC values near 20). The
    dataset step always extracts in the same chunks, so its caches do not depend on this."""
    clips = list(varied_clips.values())[:5]
    np.testing.assert_allclose(F.fast_features(clips, chunk_size=5), F.fast_features(clips, chunk_size=2),
                               rtol=1e-5, atol=1e-4)


def test_worker_pool_is_kept_between_calls_and_restarts_after_a_crash(varied_clips):
    import os
    import signal
    from concurrent.futures.process import BrokenProcessPool

    clips = list(varied_clips.values())[:4]
    first = F.fast_features(clips, n_jobs=2, chunk_size=1)
    pool = F._POOL[1]
    np.testing.assert_array_equal(F.fast_features(clips, n_jobs=2, chunk_size=1), first)
    assert F._POOL[1] is pool  # the workers (and their filter banks) were kept
    os.kill(next(iter(pool._processes)), signal.SIGKILL)  # a worker dies (e.g. out of memory)
    with pytest.raises(BrokenProcessPool):
        for _ in range(50):  # the pool notices the death at its next task
            F.fast_features(clips, n_jobs=2, chunk_size=1)
    assert F._POOL is None
    np.testing.assert_array_equal(F.fast_features(clips, n_jobs=2, chunk_size=1), first)
    F.shutdown_workers()


def test_extract_features_backends(varied_clips):
    clips = [varied_clips["chord"], varied_clips["short"]]
    fast = F.extract_features(clips)  # backend="fast" by default
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = F.extract_features(clips, backend="librosa")
    assert fast.shape == ref.shape == (2, 193, 87)
    for block, rows in F.BLOCKS.items():
        assert np.abs(fast[:, rows] - ref[:, rows]).max() <= F.TOLERANCE[block], block


def test_int16_audio_is_read_with_the_scale_it_is_written_with(varied_clips):
    clip = varied_clips["chord"]
    as_int16 = to_int16(clip)[None]
    # one scale both ways (audio.INT16_SCALE): a stored clip comes back within half a step
    assert np.abs(from_int16(as_int16)[0] - np.clip(clip, -1, 1)).max() <= 0.5 / INT16_SCALE + 1e-7
    np.testing.assert_array_equal(F.fast_features(as_int16), F.fast_features(from_int16(as_int16)))


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_reference_pads_short_clips():
    clip = _tone([330.0])[:30000]
    padded = np.concatenate([clip, np.zeros(F.CLIP_SAMPLES - 30000, np.float32)])
    out = F.librosa_features(clip)
    assert out.shape == (193, 87) and out.dtype == np.float32
    np.testing.assert_array_equal(out, F.librosa_features(padded))
    longer = np.concatenate([padded, np.ones(500, np.float32)])
    np.testing.assert_array_equal(F.fast_features([longer]), F.fast_features([padded]))


def test_log_spectrogram_matches_librosa_stft():
    import librosa

    y = np.stack([_sweep(), _melody()])
    out = F.log_spectrogram(y)
    assert out.shape == (2, 257, 87) and out.dtype == np.float16
    ref = np.log1p(np.abs(librosa.stft(y[1], n_fft=512, hop_length=512)))
    np.testing.assert_allclose(out[1].astype(np.float32), ref, atol=2e-3, rtol=2e-3)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="sample rate"):
        F.librosa_features(np.zeros(100), sr=44100)
    with pytest.raises(ValueError, match="clip 1.*NaN"):
        F.fast_features([np.zeros(100), np.full(100, np.nan)])
    with pytest.raises(ValueError, match="clip 0.*mono"):
        F.fast_features([np.zeros((2, 100))])
    with pytest.raises(ValueError, match="clips\\[None\\]"):
        F.fast_features(np.zeros(100))
    with pytest.raises(ValueError, match="backend"):
        F.extract_features([np.zeros(100)], backend="nope")
    with pytest.raises(ValueError, match="feature device 'gpu'.*'cpu', 'cuda'"):
        F.fast_features([np.zeros(100)], device="gpu")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_reference_scales_int16_like_the_fast_path():
    clip = to_int16(_tone([330.0]))
    np.testing.assert_array_equal(F.librosa_features(clip), F.librosa_features(from_int16(clip)))


def test_empty_batch():
    assert F.fast_features([]).shape == (0, 193, 87)
    assert F.log_spectrogram(np.zeros((0, 100), np.float32)).shape == (0, 257, 87)


def test_cuda_device_without_a_gpu_says_so():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        assert F.resolve_device("auto") == "cuda"
        return
    assert F.resolve_device("auto") == "cpu"
    with pytest.raises(ValueError, match="torch sees no CUDA GPU.*device='cpu'"):
        F.fast_features([np.zeros(100)], device="cuda")


@pytest.fixture(scope="module")
def torch_features(varied_clips):
    """The torch extractor (the GPU path) run on torch's CPU device."""
    pytest.importorskip("torch")
    from cdcml_lib.data import features_torch

    clips = F._as_clip_batch(list(varied_clips.values()))
    return np.concatenate([features_torch.features_block(clips[s:s + 3], "cpu")
                           for s in range(0, len(clips), 3)])


@pytest.mark.parametrize("block", list(F.BLOCKS))
def test_torch_path_matches_librosa_per_block(both_extractors, torch_features, block):
    names, reference, _ = both_extractors
    rows = F.BLOCKS[block]
    err = np.abs(torch_features[:, rows] - reference[:, rows]).max(axis=(1, 2))
    worst = names[int(np.argmax(err))]
    assert err.max() <= F.TOLERANCE[block], f"{block}: max abs error {err.max():.3g} on {worst}"


def test_torch_path_keeps_full_float32_precision(varied_clips):
    """TF32 matrix products (which the trainer may allow) would break the tolerances."""
    torch = pytest.importorskip("torch")
    from cdcml_lib.data import features_torch

    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        seen = []
        real_bmm = torch.bmm
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(torch, "bmm", lambda *a: seen.append(torch.get_float32_matmul_precision())
                       or real_bmm(*a))
            features_torch.features_block(F._as_clip_batch([varied_clips["chord"]]), "cpu")
        assert seen and set(seen) == {"highest"}
        assert torch.get_float32_matmul_precision() == "medium"  # restored afterwards
    finally:
        torch.set_float32_matmul_precision(before)
