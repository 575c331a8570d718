"""The embedded benchmark: determinism, shapes, smooth songs, cues that follow VA, bounded noise."""
import numpy as np
import pytest

from cdcml_lib.data import synthetic as syn
from cdcml_lib.audio import CLIP_SAMPLES, SR as SAMPLE_RATE
from cdcml_lib.data.synthetic import make_corpus


@pytest.fixture(scope="module")
def corpus():
    return make_corpus(n_songs=40, clips_per_song_min=3, clips_per_song_max=5, n_images=240,
                       label_noise=0.06, seed=3)


@pytest.fixture(scope="module")
def images(corpus):
    return corpus.render_images(np.arange(len(corpus.image_ids)), 24)


@pytest.fixture(scope="module")
def clips(corpus):
    return corpus.render_clips(np.arange(len(corpus.clip_ids)))


def _corr(a, b):
    return float(np.corrcoef(a, b)[0, 1])


# ---------------------------------------------------------------- determinism

def test_same_seed_same_corpus_and_pixels():
    a = make_corpus(5, 2, 4, 20, 0.06, seed=11)
    b = make_corpus(5, 2, 4, 20, 0.06, seed=11)
    assert a.clip_ids == b.clip_ids and a.image_ids == b.image_ids
    for name in ("image_va", "image_cue_va", "clip_va", "clip_cue_va", "clip_index"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.render_images([0, 7, 19], 20), b.render_images([0, 7, 19], 20))
    np.testing.assert_array_equal(a.render_clips([0, 5]), b.render_clips([0, 5]))
    c = make_corpus(5, 2, 4, 20, 0.06, seed=12)
    assert not np.array_equal(a.image_va, c.image_va)
    assert not np.array_equal(a.render_images([0], 20), c.render_images([0], 20))


def test_item_alone_equals_item_in_batch(corpus, images, clips):
    for i in (0, 17, 239):
        np.testing.assert_array_equal(corpus.render_images([i], 24)[0], images[i])
    for j in (0, 9, len(corpus.clip_ids) - 1):
        np.testing.assert_array_equal(corpus.render_clips([j])[0], clips[j])
    # Order and chunking do not matter either.
    np.testing.assert_array_equal(corpus.render_images([5, 3], 24), images[[5, 3]])


def test_more_images_leave_songs_unchanged():
    a = make_corpus(6, 3, 5, 10, 0.06, seed=0)
    b = make_corpus(6, 3, 5, 50, 0.06, seed=0)
    np.testing.assert_array_equal(a.clip_va, b.clip_va)
    np.testing.assert_array_equal(a.render_clips([4]), b.render_clips([4]))


# ---------------------------------------------------------------- shapes, types, ranges

def test_ids_shapes_dtypes_and_ranges(corpus, images, clips):
    n_img, n_clip = len(corpus.image_ids), len(corpus.clip_ids)
    assert corpus.image_ids[42] == "img00042" and corpus.song_ids[7] == "s0007"
    assert len(set(corpus.clip_ids)) == n_clip
    for cid, song, k in zip(corpus.clip_ids, corpus.clip_song, corpus.clip_index):
        assert cid == f"{song}-{k}"
    counts = np.unique(corpus.clip_song, return_counts=True)[1]
    assert len(counts) == 40 and counts.min() >= 3 and counts.max() <= 5
    for name, n in (("image_va", n_img), ("image_cue_va", n_img), ("clip_va", n_clip),
                    ("clip_cue_va", n_clip)):
        arr = getattr(corpus, name)
        assert arr.shape == (n, 2) and arr.min() >= 0 and arr.max() <= 1, name
    assert images.shape == (n_img, 24, 24, 3) and images.dtype == np.uint8
    assert clips.shape == (n_clip, CLIP_SAMPLES) and clips.dtype == np.float32
    assert CLIP_SAMPLES == int(SAMPLE_RATE * syn.CLIP_SECONDS)
    peaks = np.abs(clips).max(axis=1)
    assert peaks.max() <= 1.0 and peaks.min() > 0.01  # no clipping, no silence
    assert np.isfinite(clips).all()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="clips_per_song_min"):
        make_corpus(3, 5, 2, 10, 0.06, 0)
    with pytest.raises(ValueError, match="label_noise"):
        make_corpus(3, 2, 4, 10, -0.1, 0)
    c = make_corpus(2, 2, 2, 5, 0.06, 0)
    with pytest.raises(IndexError, match="image index 5 .* 5 images"):
        c.render_images([0, 5], 16)
    with pytest.raises(IndexError, match="clip index"):
        c.render_clips([-1])


# ---------------------------------------------------------------- songs

def test_va_drifts_smoothly_within_songs(corpus):
    song = corpus.clip_song_index
    same = song[1:] == song[:-1]
    for name in ("clip_cue_va", "clip_va"):
        va = getattr(corpus, name)
        step = np.linalg.norm(np.diff(va, axis=0)[same], axis=1).mean()
        rng = np.random.default_rng(0)
        i, j = rng.integers(len(va), size=(2, 2000))
        other = song[i] != song[j]
        between = np.linalg.norm(va[i[other]] - va[j[other]], axis=1).mean()
        assert step < 0.3 * between, (name, step, between)


def test_clips_of_a_song_share_key_and_instrument(corpus):
    for s in (0, 1):
        designs = [corpus.clip_design(j) for j in np.flatnonzero(corpus.clip_song_index == s)]
        tonic = corpus.song_style(s).tonic
        for d in designs:  # every chord and melody note lies in the song's key
            scale = set(syn._MAJOR if d.major else syn._MINOR)
            assert set((d.chord_midi.ravel() - tonic) % 12) <= scale
            notes = d.melody_midi[~np.isnan(d.melody_midi)]
            assert set(((notes - tonic) % 12).astype(int)) <= scale
    profiles = [corpus.song_style(s).harmonic_profile for s in range(len(corpus.song_ids))]
    assert len({p.round(6).tobytes() for p in profiles}) > 1  # instruments differ between songs


# ---------------------------------------------------------------- cues follow VA

def test_image_cues_follow_va(corpus, images):
    rgb = images.astype(float) / 255
    v, a = corpus.image_cue_va.T
    brightness = rgb.mean(axis=(1, 2, 3))
    mx, mn = rgb.max(-1), rgb.min(-1)
    saturation = ((mx - mn) / np.maximum(mx, 1e-3)).mean(axis=(1, 2))
    warmth = (rgb[..., 0] - rgb[..., 2]).mean(axis=(1, 2))
    assert _corr(brightness, v) > 0.5
    assert _corr(saturation, a) > 0.6
    assert _corr(warmth, a) > 0.5
    depth = np.array([corpus.image_design(i).shapes["depth"].mean() for i in range(120)])
    assert _corr(depth, v[:120]) < -0.6  # angular shapes at low valence (Bar & Neta 2006)
    n_shapes = np.array([len(corpus.image_design(i).shapes["x"]) for i in range(120)])
    assert _corr(n_shapes, a[:120]) > 0.5  # clutter rises with arousal


def test_music_cues_follow_va(corpus, clips):
    v, a = corpus.clip_cue_va.T
    stats = syn.audio_statistics(clips)
    rms, centroid = stats[:, 0], stats[:, 4]
    assert _corr(rms, a) > 0.6
    assert _corr(centroid, a) > 0.3
    designs = [corpus.clip_design(j) for j in range(len(clips))]
    onset_rate = np.array([d.bpm * d.notes_per_beat / 60 for d in designs])
    assert _corr(onset_rate, a) > 0.7
    major = np.array([d.major for d in designs])
    assert major[v > 0.7].mean() > 0.8 and major[v < 0.3].mean() < 0.2


def test_mode_is_audible(corpus, clips):
    """Major clips carry more energy on the major third, sixth and seventh of their key."""
    power = np.abs(np.fft.rfft(clips, axis=1)) ** 2
    f = np.fft.rfftfreq(CLIP_SAMPLES, 1 / SAMPLE_RATE)
    band = (f > 80) & (f < 2000)
    pitch_class = (np.round(12 * np.log2(f[band] / 440)) + 69).astype(int) % 12
    chroma = np.stack([power[:, band][:, pitch_class == k].sum(1) for k in range(12)], axis=1)
    tonic = np.array([corpus.song_style(s).tonic for s in corpus.clip_song_index])
    rel = np.stack([np.roll(c, -t) for c, t in zip(chroma, tonic)])
    score = (rel[:, [4, 9, 11]].sum(1) - rel[:, [3, 8, 10]].sum(1)) / rel.sum(1)
    major = np.array([corpus.clip_design(j).major for j in range(len(clips))])
    assert score[major].mean() - score[~major].mean() > 0.1


def test_a_conflicting_cue_points_the_other_way(corpus):
    v = corpus.image_cue_va[:, 0]
    i_conf = np.flatnonzero(corpus.image_conflict == syn.IMAGE_CUES.index("brightness"))
    assert len(i_conf) >= 3
    for i in i_conf:
        assert corpus.image_design(i).cues["brightness"] == pytest.approx(1 - v[i])
    frac = (corpus.image_conflict >= 0).mean()
    assert 0.05 < frac < 0.3


# ---------------------------------------------------------------- label noise

def test_label_noise_present_but_bounded(corpus):
    for name in ("image", "clip"):
        err = getattr(corpus, f"{name}_va") - getattr(corpus, f"{name}_cue_va")
        assert 0.035 < err.std() < 0.08, (name, err.std())
        assert np.abs(err).max() < 6 * 0.06
    clean = make_corpus(4, 3, 3, 30, 0.0, seed=3)
    np.testing.assert_array_equal(clean.image_va, clean.image_cue_va)
    np.testing.assert_array_equal(clean.clip_va, clean.clip_cue_va)


# ---------------------------------------------------------------- linear baselines

def test_linear_models_are_clearly_worse_than_cue_va():
    small = make_corpus(16, 4, 6, 200, 0.06, seed=5)
    table = syn.linear_baselines(small, image_size=12, seed=0)
    assert list(table.columns) == ["modality", "predictor", "valence_mse", "arousal_mse"]
    t = table.set_index(["modality", "predictor"])
    for modality, ridge in (("image", "ridge_raw_pixels"), ("music", "ridge_spectrogram")):
        cue = t.loc[(modality, "cue_va")]
        assert cue.valence_mse < 0.01 and cue.arousal_mse < 0.01
        fit = t.loc[(modality, ridge)]
        assert fit.valence_mse > 2 * cue.valence_mse and fit.arousal_mse > 2 * cue.arousal_mse
