"""The IMAC-style dataset (cdcml_lib.data.imac): the three-class mapping, song labels, balanced
pairs within each split, and rebuilding only when something changed."""
import shutil

import numpy as np
import pandas as pd
import pytest

from cdcml_lib.data import imac


def test_valence_rule_has_three_classes_with_stated_bounds():
    v = np.array([0.0, 0.32, 0.33, 0.5, 0.67, 0.68, 1.0])
    got = imac.emotion_class(v, rule="valence", valence_low=0.33, valence_high=0.67)
    # below low: negative; [low, high]: neutral (bounds inclusive); above high: positive
    assert got.tolist() == [0, 0, 1, 1, 1, 2, 2]


def test_valence_arousal_rule_reads_imac_tags():
    v = np.array([0.1, 0.1, 0.6, 0.6, 0.9])
    a = np.array([0.9, 0.1, 0.8, 0.2, 0.5])
    got = imac.emotion_class(v, a, rule="valence_arousal", valence_low=0.4, arousal_split=0.5)
    # sad whatever the arousal; calm (neutral) below the arousal split; energetic (positive) above
    assert got.tolist() == [0, 0, 2, 1, 2]
    with pytest.raises(imac.ImacError, match="arousal"):
        imac.emotion_class(v, rule="valence_arousal")


def test_song_label_uses_the_song_mean():
    items = pd.DataFrame({"id": ["a", "b", "c", "i"], "modality": ["music"] * 3 + ["image"],
                          "song": ["s", "s", "t", None], "split": ["train"] * 4,
                          "valence": [0.2, 0.6, 0.9, 0.1], "arousal": [0.5] * 4})
    by_song = imac.item_classes(items, {"music_label": "song"})["emotion"].tolist()
    by_clip = imac.item_classes(items, {"music_label": "clip"})["emotion"].tolist()
    assert by_song == [1, 1, 2, 0]   # song s: mean valence 0.4 -> neutral for both clips
    assert by_clip == [0, 1, 2, 0]


@pytest.mark.parametrize("bad, match", [({"valence_low": 0.8, "valence_high": 0.2}, "valence_low"),
                                        ({"pairs_per_clip": 3}, "even"), ({"rule": "x"}, "rule"),
                                        ({"colour": 1}, "unknown")])
def test_bad_parameters_are_named(bad, match):
    with pytest.raises(imac.ImacError, match=match):
        imac.check_imac_params(**bad)


@pytest.fixture(scope="module")
def folder(smoke_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("imac") / "smoke"
    shutil.copytree(smoke_data, out)
    return out


def test_pairs_are_balanced_and_stay_within_their_split(folder):
    record = imac.build_imac(folder, pairs_per_clip=6, seed=3)
    classes = imac.read_imac_classes(folder).set_index("id")
    for split in imac.SPLITS:
        pairs = imac.read_imac_pairs(folder, split)
        counts = record["counts"][split]
        assert counts["true"] == counts["false"] == len(pairs) // 2
        # true exactly when both items carry the same class
        same = classes.loc[pairs["music_id"], "emotion"].to_numpy() == classes.loc[pairs["image_id"], "emotion"].to_numpy()
        assert (same == (pairs["label"] == 1)).all()
        assert (classes.loc[pairs["music_id"], "split"] == split).all()
        assert (classes.loc[pairs["image_id"], "split"] == split).all()
        per_clip = pairs.groupby("music_id")["label"].agg(["size", "sum"])
        assert (per_clip["size"] == 6).all() and (per_clip["sum"] == 3).all()
        n_clips = int(((classes["split"] == split) & (classes["modality"] == "music")).sum())
        assert len(per_clip) + counts["clips_without_pairs"] == n_clips


def test_a_rebuild_happens_only_when_something_changed(folder):
    first = imac.ensure_imac(folder, seed=0)
    stamp = (folder / "imac.json").stat().st_mtime_ns
    assert imac.ensure_imac(folder, seed=0) == first
    assert (folder / "imac.json").stat().st_mtime_ns == stamp
    before = imac.read_imac_pairs(folder, "train")
    other = imac.ensure_imac(folder, seed=1)   # another seed: rebuilt, other pairs
    assert other["params"]["seed"] == 1
    seed1 = imac.read_imac_pairs(folder, "train")
    assert not before.equals(seed1)
    imac.build_imac(folder, seed=1)            # the same seed again: the same pairs
    pd.testing.assert_frame_equal(imac.read_imac_pairs(folder, "train"), seed1)
