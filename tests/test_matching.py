"""The IMEMNet recipe (cdcml_lib.matching) against hand computations and brute-force loops."""
import math

import numpy as np
import pandas as pd
import pytest

from cdcml_lib import matching as M


def _items(n, prefix, split, seed):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": [f"{prefix}{i}" for i in range(n)], "split": split,
                         "valence": rng.random(n), "arousal": rng.random(n)})


# --- normalisation -------------------------------------------------------------------------

def test_minmax_normalise_per_column_and_fixed_scale():
    va = np.array([[1.0, 3.0], [5.0, 3.5], [9.0, 4.0]])
    out = M.minmax_normalise(va)
    np.testing.assert_allclose(out, [[0, 0], [0.5, 0.5], [1, 1]])
    # a 9-point scale's ends instead of the corpus's own range
    np.testing.assert_allclose(M.minmax_normalise([1.0, 5.0, 7.0], lo=1, hi=9), [0, 0.5, 0.75])


def test_minmax_normalise_rejects_constant_and_nan():
    with pytest.raises(ValueError, match="empty range"):
        M.minmax_normalise([2.0, 2.0])
    with pytest.raises(ValueError, match="index"):
        M.minmax_normalise([0.0, np.nan, 1.0])


# --- splits --------------------------------------------------------------------------------

def test_split_by_group_keeps_groups_whole_and_fills_every_split():
    songs = np.repeat(np.arange(40), 7)
    split = M.split_by_group(songs, (0.8, 0.05, 0.15), seed=3)
    table = pd.DataFrame({"song": songs, "split": split})
    assert (table.groupby("song").split.nunique() == 1).all()  # no song in two splits
    per_split = table.groupby("split").song.nunique()
    assert per_split.to_dict() == {"train": 32, "val": 2, "test": 6}
    assert set(split) == {"train", "val", "test"}


def test_split_by_group_tiny_and_bad_fractions():
    split = M.split_by_group(["a", "b", "c"], (0.98, 0.01, 0.01), seed=0)
    assert sorted(split) == ["test", "train", "val"]  # every split gets one group
    with pytest.raises(ValueError, match="at least 3 groups"):
        M.split_by_group(["a", "b"], seed=0)
    with pytest.raises(ValueError, match="sum"):
        M.split_by_group(np.arange(10), (0.5, 0.2, 0.2))


def test_split_by_group_is_seeded():
    g = np.arange(100)
    assert (M.split_by_group(g, seed=1) == M.split_by_group(g, seed=1)).all()
    assert (M.split_by_group(g, seed=1) != M.split_by_group(g, seed=2)).any()


# --- Eq. 1 and sigma -----------------------------------------------------------------------

def test_matching_score_eq1_hand_computed():
    # distance of (0,0)-(0.3,0.4) is 0.5; with sigma 0.5 the score is exp(-1)
    s = M.matching_score(np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([[0.3, 0.4], [1.0, 1.0]]), 0.5)
    np.testing.assert_allclose(s, [math.exp(-1.0), 1.0])
    # broadcasting gives the whole score matrix
    mat = M.matching_score(np.zeros((3, 1, 2)), np.array([[[0.6, 0.8]]]), 2.0)
    np.testing.assert_allclose(mat, np.full((3, 1), math.exp(-0.5)))
    with pytest.raises(ValueError, match="sigma"):
        M.matching_score([0, 0], [1, 1], 0.0)


def test_mean_label_distance_exact_against_a_loop():
    rng = np.random.default_rng(0)
    y_img, y_mus = rng.random((37, 2)), rng.random((53, 2))
    slow = np.mean([math.dist(a, b) for a in y_img for b in y_mus])
    for block in (1, 5, 4096):   # the blocking never changes the answer
        assert M.mean_label_distance(y_img, y_mus, block_rows=block) == pytest.approx(slow, rel=1e-12)
    assert M.mean_label_distance(y_mus, y_img) == pytest.approx(slow, rel=1e-12)


# --- the 50-candidate rule and sampling ----------------------------------------------------

@pytest.fixture(scope="module")
def recipe():
    clips = pd.concat([_items(40, "m", "train", 1), _items(12, "v", "val", 2)], ignore_index=True)
    images = pd.concat([_items(70, "i", "train", 3), _items(55, "j", "val", 4),
                        _items(5, "t", "test", 5)], ignore_index=True)
    sigma = M.mean_label_distance(images[["valence", "arousal"]], clips[["valence", "arousal"]])
    cand = M.candidate_pairs(clips, images, sigma, n_random=30, n_top=10, n_bottom=10, seed=0)
    return clips, images, sigma, cand


def test_candidates_follow_the_rule(recipe):
    clips, images, sigma, cand = recipe
    img = images.set_index("id")
    assert len(cand) == 50 * len(clips)
    assert cand.music_id.unique().tolist() == clips.id.tolist()   # clips in input order
    for clip in clips.itertuples():
        mine = cand[cand.music_id == clip.id]
        assert mine.image_id.is_unique                            # no duplicates
        assert mine.kind.value_counts().to_dict() == {"random": 30, "top": 10, "bottom": 10}
        assert (img.loc[mine.image_id, "split"] == clip.split).all()  # only its own split
        # brute force: every image of the split ranked by Eq. 1
        pool = images[images.split == clip.split]
        scores = M.matching_score(pool[["valence", "arousal"]].to_numpy(),
                                  np.array([clip.valence, clip.arousal]), sigma)
        ranked = pool.id.to_numpy()[np.argsort(-scores)]
        assert set(mine[mine.kind == "top"].image_id) == set(ranked[:10])
        assert set(mine[mine.kind == "bottom"].image_id) == set(ranked[-10:])
        expected = dict(zip(pool.id, scores))
        np.testing.assert_allclose(mine.score, [expected[i] for i in mine.image_id], rtol=1e-12)


def test_random_candidates_are_uniform_over_the_middle():
    # 600 clips with one VA label, 30 images: the same top 2 and bottom 2 for every clip,
    # and 3 of the 26 others drawn independently per clip
    images = _items(30, "i", "train", 0)
    clips = _items(600, "m", "train", 1).assign(valence=0.3, arousal=0.6)
    cand = M.candidate_pairs(clips, images, 0.5, n_random=3, n_top=2, n_bottom=2, seed=0)
    fixed = set(cand[cand.kind != "random"].image_id)
    assert len(fixed) == 4
    counts = cand[cand.kind == "random"].image_id.value_counts()
    assert not fixed & set(counts.index) and len(counts) == 26
    # each middle image is expected 600 * 3/26 = 69.2 times; a binomial sd is about 7.9
    assert counts.min() > 40 and counts.max() < 100


def test_uniform_subset_and_complement_mapping():
    rng = np.random.default_rng(0)
    sub = M._uniform_subset(rng, 2000, 10, 4)
    assert all(len(set(r)) == 4 for r in sub) and sub.min() >= 0 and sub.max() < 10
    freq = np.bincount(sub.ravel(), minlength=10) / 2000   # each value: 4/10
    assert np.abs(freq - 0.4).max() < 0.05
    excluded = np.array([[0, 3, 4], [7, 8, 9]])
    rank = np.array([[0, 1, 2, 3, 4, 5, 6], [0, 1, 2, 3, 4, 5, 6]])
    np.testing.assert_array_equal(M._random_from_complement(rank, excluded),
                                  [[1, 2, 5, 6, 7, 8, 9], [0, 1, 2, 3, 4, 5, 6]])


def test_candidates_need_enough_images_per_split():
    images = _items(8, "i", "train", 0)
    clips = _items(2, "m", "train", 1)
    with pytest.raises(ValueError, match="split 'train' has 8 images"):
        M.candidate_pairs(clips, images, 0.5, n_random=5, n_top=2, n_bottom=2)
    bad = clips.assign(split=["train", "Train"])
    with pytest.raises(ValueError, match="row 1"):
        M.candidate_pairs(bad, _items(20, "i", "train", 0), 0.5, n_random=5, n_top=2, n_bottom=2)


def test_ties_never_put_an_image_in_top_and_bottom():
    images = _items(12, "i", "train", 0).assign(valence=0.5, arousal=0.5)  # all tied
    clips = _items(3, "m", "train", 1)
    cand = M.candidate_pairs(clips, images, 0.5, n_random=2, n_top=5, n_bottom=5, seed=0)
    assert cand.groupby("music_id").image_id.nunique().eq(12).all()


def test_sample_pairs_keeps_the_fraction_per_split(recipe):
    clips, images, sigma, cand = recipe
    kept = M.sample_pairs(cand, keep_fraction=0.1, seed=0)
    assert kept.groupby("split").size().to_dict() == {"train": 200, "val": 60}
    # a subset of the candidates, without repetition, in candidate order
    assert not kept.duplicated(["music_id", "image_id"]).any()
    merged = kept.merge(cand, on=["music_id", "image_id", "score", "kind", "split"], how="left",
                        indicator=True)
    assert (merged._merge == "both").all()
    assert kept.equals(M.sample_pairs(cand, keep_fraction=0.1, seed=0))
    assert not kept.equals(M.sample_pairs(cand, keep_fraction=0.1, seed=1))
    assert len(M.sample_pairs(cand, 1.0)) == len(cand)
    with pytest.raises(ValueError, match="keep_fraction"):
        M.sample_pairs(cand, 0.0)
