"""The stand-in corpus (cdcml_lib.data.standin) read by the real readers, and the published lists
as a dataset source (cdcml_lib.data.published): a tiny end-to-end build, overlaps, missing ids."""
from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest
import yaml

from cdcml_lib.data import published, standin
from cdcml_lib.data.corpora import read_pairs
from cdcml_lib.data.dataset import build_dataset
from cdcml_lib.workflow.paths import repo_root
from cdcml_lib.workflow.params import section as config_section  # configs inherit: read them merged

PATH_KEYS = ("deam_dir", "deam_dynamic_dir", "iaps_ratings", "iaps_dir", "naps_ratings",
             "naps_dir", "emotic_annotations", "emotic_dir", "train_pairs", "val_pairs", "test_pairs")


def tiny_params(root, **change) -> dict:
    """params/standin.yaml's dataset section, tiny, with every path under ``root``."""
    p = config_section("standin", "dataset")
    raw = "data/raw-standin/"
    for key in PATH_KEYS:
        p[key] = str(root / p[key].replace(raw, "raw/"))
    p["deam_static_csvs"] = ",".join(str(root / c.replace(raw, "raw/"))
                                     for c in p["deam_static_csvs"].split(","))
    p.update({"out_dir": str(root / "out"), "n_songs": 3, "n_images": 48, "image_size": 16,
              "n_jobs": 1, "feature_device": "cpu", **change})
    return p


def _build(p, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return build_dataset(chunk_size=64, **{**p, **kw})


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("standin")
    standin.write_standin(tiny_params(root))
    return root


def test_standin_tree_has_the_real_layouts(tree):
    p = tiny_params(tree)
    static = [c for c in p["deam_static_csvs"].split(",")]
    assert all(pd.read_csv(c).shape[0] >= 1 for c in static)
    assert " valence_mean" in open(static[0]).readline()          # DEAM's padded header
    header = open(f"{p['deam_dynamic_dir']}/valence.csv").readline().strip().split(",")
    assert header[:3] == ["song_id", "sample_15000ms", "sample_15500ms"] and header[-1] == "sample_44500ms"
    songs = pd.read_csv(f"{p['deam_dynamic_dir']}/arousal.csv").song_id.astype(str)
    audio = sorted(f.stem for f in (tree / "raw/deam/MEMD_audio").glob("*.mp3"))
    assert sorted(songs) == audio and len(audio) == 3
    assert open(p["iaps_ratings"]).readline().strip().split("\t") == ["desc", "IAPS", "valmn", "aromn"]
    emotic = pd.read_csv(p["emotic_annotations"])
    assert list(emotic.columns) == ["Folder", "Filename", "Valence", "Arousal"]
    assert emotic.Valence.between(1, 10).all() and emotic.Arousal.between(1, 10).all()
    first = emotic.iloc[0]
    assert (tree / "raw/emotic/images" / first.Folder / first.Filename).is_file()
    marker = json.loads((tree / "raw/deam/STANDIN.json").read_text())
    assert marker["spec"]["n_songs"] == 3
    # written once: a second call with the same parameters leaves the files alone
    mtime = (tree / "raw/deam/MEMD_audio" / f"{audio[0]}.mp3").stat().st_mtime
    standin.write_standin(tiny_params(tree))
    assert (tree / "raw/deam/MEMD_audio" / f"{audio[0]}.mp3").stat().st_mtime == mtime


def test_dataset_from_published_lists_through_the_real_readers(tree):
    p = tiny_params(tree)
    folder = _build(p)
    stats = folder.stats
    assert stats["pairs_source"] == "published"
    listed = {s: read_pairs(p[f"{s}_pairs"]) for s in ("train", "val", "test")}
    for s in listed:
        assert stats["splits"][s]["pairs"] == len(listed[s].drop_duplicates(["music_id", "image_id"]))
        assert folder.pairs(s).score.tolist() == pytest.approx(
            listed[s].drop_duplicates(["music_id", "image_id"]).score.tolist())
        assert stats["published"]["resolution"][s]["missing_ids"] == {}
    # like the published lists, test holds every val pair: allowed here, and recorded
    assert stats["published"]["allow_split_overlap"] is True
    overlap = {(o["a"], o["b"]): o["shared"] for o in stats["split_overlap"]}
    assert overlap[("val_matching.txt", "test_matching.txt")]["pairs"] == stats["splits"]["val"]["pairs"]
    assert stats["published"]["audit"]["splits_disjoint"] is False
    items = folder.items
    assert {"deam", "iaps", "emotic"} <= set(items.source)
    # every split's pairs name items of that split: the val items test shares are copied
    for s in listed:
        in_split = set(items[items.split == s].id)
        pairs = folder.pairs(s)
        assert set(pairs.music_id) | set(pairs.image_id) <= in_split
    copies = items[items.id.str.endswith("@test")]
    assert len(copies) == stats["published"]["shared_item_copies"]["test"] > 0
    val_items = items[items.split == "val"].set_index("id")
    for row in copies.itertuples():           # a copy: the same label and the same media
        original = val_items.loc[row.id[: -len("@test")]]
        assert (original.valence, original.arousal, original.path) == (row.valence, row.arousal, row.path)
        cache = folder.array("images" if row.modality == "image" else "audio")
        assert (cache[original.row] == cache[row.row]).all()
    assert set(items[items.modality == "music"].song) == set(
        pd.read_csv(f"{p['deam_dynamic_dir']}/valence.csv").song_id.astype(str))
    assert folder.array("images").shape[1:] == (16, 16, 3)
    assert folder.array("audio").shape[0] == (items.modality == "music").sum()
    assert float(abs(folder.array("audio")[:4]).max()) > 0           # decoded from the mp3 files


def test_overlapping_lists_stop_the_build_unless_allowed(tree):
    p = tiny_params(tree, allow_split_overlap=False, out_dir=str(tree / "out_strict"))
    with pytest.raises(published.PublishedListError, match=r"val_matching\.txt and test_matching\.txt share "
                                           r"1 songs.*allow_split_overlap: true"):
        _build(p)


def test_ids_not_found_are_reported_by_convention(tree, tmp_path):
    # corpus: imemnet reads the tree as a user's downloads, without writing it again
    p = tiny_params(tree, corpus="imemnet", out_dir=str(tmp_path / "out"))
    lines = open(p["train_pairs"]).read()
    extra = tmp_path / "train_matching.txt"
    extra.write_text(lines + "9999-9 COCO_train2014_000000000001 0.5\n"
                     + lines.split()[0] + " 99999.5 0.25\n")
    p["train_pairs"] = str(extra)
    with pytest.warns(UserWarning, match=r"2 of \d+ pairs of train_matching\.txt are left out.*"
                                         r"1 DEAM clip <song>-<clip> ids \(e\.g\. \['9999-9'\]\)"):
        folder = build_dataset(chunk_size=64, **p)
    missing = folder.stats["published"]["resolution"]["train"]["missing_ids"]
    assert missing["IAPS picture number"] == {"ids": 1, "examples": ["99999.5"]}
    assert missing["EMOTIC COCO_*"]["examples"] == ["COCO_train2014_000000000001"]


def test_id_conventions_and_canonical_spellings():
    assert published.convention("1193-12") == "DEAM clip <song>-<clip>"
    assert published.convention("2352.1") == "IAPS picture number"
    assert published.convention("Animals_001_h") == "NAPS name"
    assert published.convention("frame_ehvuajnvkgem5li0") == "EMOTIC frame_*"
    assert published.convention("ekhtdcez5lztslt9z") == "other (EMOTIC file name)"
    assert published.canonical_id("1050.0") == "1050" and published.canonical_id("2352.1") == "2352.1"
    assert published.canonical_id("0002-09") == "2-9"
    assert standin.corpus_of("2352.1") == "iaps" and standin.corpus_of("Objects_012_v") == "naps"
    assert standin.corpus_of("COCO_val2014_000000000042") == "emotic"


def test_without_reference_files_the_standin_draws_labels_and_makes_lists(tmp_path, monkeypatch):
    monkeypatch.setattr(standin, "REFERENCE", tmp_path / "no-reference")
    labels = standin.standin_labels(n_songs=3, n_images=40, seed=0)
    assert labels.source == "drawn" and len(labels.songs) == 3
    assert set(labels.images.corpus) == {"iaps", "naps", "emotic"}
    val_pairs = set(zip(labels.lists["val"].music_id, labels.lists["val"].image_id))
    assert val_pairs <= set(zip(labels.lists["test"].music_id, labels.lists["test"].image_id))
    assert all(len(labels.lists[s]) for s in ("train", "val", "test"))


def test_a_dataset_from_published_lists_trains_and_evaluates(tree, tmp_path):
    """One short CDCML run on the tiny stand-in built from published-format lists."""
    from cdcml_lib.runs.train import train_run
    from cdcml_lib.workflow.params import train_params

    folder = _build(tiny_params(tree))
    params = train_params("standin", "cdcml", 0, run_dir=str(tmp_path / "run"))
    params.update(data_dir=str(folder.path), epochs=1, batch_size=16, image_size=16,
                  embed_dim=32, device="cpu")
    metrics = train_run(params, progress=False)
    for split in ("val", "test"):
        assert 0 <= metrics[split]["sim_mse"] < 1
    predictions = pd.read_csv(tmp_path / "run" / "predictions_test.csv", dtype=str)
    assert len(predictions) == folder.stats["splits"]["test"]["pairs"]
    assert predictions.music_id.str.endswith("@test").any()        # the pairs test shares with val
