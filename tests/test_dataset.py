"""The dataset folder (docs/ARCHITECTURE.md): a smoke build checked file by file, caches, errors."""
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from cdcml_lib.audio import to_int16
from cdcml_lib.data import dataset as D
from cdcml_lib import matching as M
from cdcml_lib.data import synthetic
from cdcml_lib.data.corpora import read_pairs
from cdcml_lib.workflow.params import section

SPLITS = ("train", "val", "test")


def smoke_params(out_dir, **change):
    return {**section("smoke", "dataset"), "out_dir": str(out_dir), **change}


@pytest.fixture(scope="session")
def smoke_build(smoke_data):
    """The session's smoke dataset (tests/conftest.py) and its parameters; tests only read it."""
    return D.open_dataset(smoke_data), smoke_params(smoke_data)


def test_items_csv(smoke_build):
    folder, params = smoke_build
    items = pd.read_csv(folder.path / "items.csv", keep_default_na=False)
    assert list(items.columns) == D.ITEM_COLUMNS
    assert set(items.modality) == {"image", "music"}
    assert set(items.split) == set(SPLITS)
    assert items.valence.between(0, 1).all() and items.arousal.between(0, 1).all()
    assert items.id.is_unique
    assert (items[items.modality == "image"].song == "").all()
    for modality in ("image", "music"):
        rows = items[items.modality == modality].row
        assert sorted(rows) == list(range(len(rows)))
    music = items[items.modality == "music"]
    assert (music.groupby("song").split.nunique() == 1).all()      # no song in two splits
    assert len(items[items.modality == "image"]) == params["n_images"]


def test_pairs_files_follow_the_recipe(smoke_build):
    folder, params = smoke_build
    items = folder.items.set_index("id")
    va = ["valence", "arousal"]
    img, mus = folder.items[folder.items.modality == "image"], folder.items[folder.items.modality == "music"]
    sigma = M.mean_label_distance(img[va].to_numpy(), mus[va].to_numpy())
    assert folder.stats["sigma"] == pytest.approx(sigma, rel=1e-12)
    per_clip = params["n_top"] + params["n_bottom"] + params["n_random"]
    for split in SPLITS:
        line = (folder.path / f"pairs_{split}.txt").read_text().splitlines()[0]
        assert re.fullmatch(r"\S+ \S+ [0-9.e-]+", line)            # the published format
        pairs = folder.pairs(split)
        assert list(pairs.columns) == ["music_id", "image_id", "score"]
        assert (items.loc[pairs.music_id, "split"] == split).all()
        assert (items.loc[pairs.image_id, "split"] == split).all()
        assert (items.loc[pairs.image_id, "modality"] == "image").all()
        expected = M.matching_score(items.loc[pairs.image_id, va].to_numpy(),
                                    items.loc[pairs.music_id, va].to_numpy(), sigma)
        np.testing.assert_allclose(pairs.score, expected, rtol=1e-12)   # Eq. 1
        n_clips = folder.stats["splits"][split]["clips"]
        assert len(pairs) == round(params["keep_fraction"] * per_clip * n_clips)
        assert not pairs.duplicated(["music_id", "image_id"]).any()
        assert pairs.equals(read_pairs(folder.path / f"pairs_{split}.txt"))


def test_stats_json_counts_table1(smoke_build):
    folder, params = smoke_build
    stats = json.loads((folder.path / "stats.json").read_text())
    items = folder.items
    for split in SPLITS:
        counts = stats["splits"][split]
        sel = items[items.split == split]
        assert counts["clips"] == (sel.modality == "music").sum()
        assert counts["images"] == (sel.modality == "image").sum()
        assert counts["songs"] == sel[sel.modality == "music"].song.nunique()
        assert counts["pairs"] == len(folder.pairs(split))
    assert stats["splits"]["total"]["songs"] == params["n_songs"]
    assert stats["seed"] == params["seed"]
    assert {k: stats["parameters"][k] for k in params} == params
    assert stats["made_by"]["module"] == "cdcml_lib.data.dataset.build_dataset"


def test_cache_arrays_match_the_contract(smoke_build):
    folder, params = smoke_build
    manifest = json.loads((folder.path / "cache" / "manifest.json").read_text())
    n_img = folder.stats["splits"]["total"]["images"]
    n_clip = folder.stats["splits"]["total"]["clips"]
    s = params["image_size"]
    expected = {"images": ((n_img, s, s, 3), "uint8"), "audio": ((n_clip, 44100), "int16"),
                "music_features": ((n_clip, 193, 87), "float32"),
                "log_spectrogram": ((n_clip, 257, 87), "float16")}
    assert set(manifest) == set(expected)
    for name, (shape, dtype) in expected.items():
        entry = manifest[name]
        assert set(entry) == {"file", "key", "shape", "dtype", "made_by"}
        assert entry["file"] == f"{name}_{entry['key']}.npy"
        assert entry["key"] == D.content_key(entry["made_by"])
        arr = folder.array(name)
        assert arr.shape == shape and arr.dtype == np.dtype(dtype) and tuple(entry["shape"]) == shape
        assert np.isfinite(np.asarray(arr, dtype=np.float64)).all()
    # no temporary or partial file is left behind
    leftovers = [p.name for p in (folder.path / "cache").iterdir() if p.name.startswith(".")]
    assert leftovers == [] and not list(folder.path.glob("*.tmp"))


def test_cache_rows_are_the_items(smoke_build):
    folder, params = smoke_build
    corpus = synthetic.make_corpus(params["n_songs"], params["clips_per_song_min"],
                                   params["clips_per_song_max"], params["n_images"],
                                   params["label_noise"], params["seed"])
    items = folder.items
    img = items[items.modality == "image"].iloc[[0, -1]]
    idx = [corpus.image_ids.index(i) for i in img.id]
    np.testing.assert_array_equal(folder.array("images")[img.row.to_numpy()],
                                  corpus.render_images(idx, params["image_size"]))
    mus = items[items.modality == "music"].iloc[[3]]
    j = [corpus.clip_ids.index(i) for i in mus.id]
    np.testing.assert_array_equal(folder.array("audio")[mus.row.to_numpy()],
                                  to_int16(corpus.render_clips(j)))


def test_rebuild_reuses_caches_and_rebuilds_what_changed(smoke_build, tmp_path):
    folder, params = smoke_build
    copy = tmp_path / "smoke"
    shutil.copytree(folder.path, copy)
    before = {p.name: p.stat().st_mtime_ns for p in (copy / "cache").glob("*.npy")}
    again = D.build_dataset(**smoke_params(copy))
    assert all(a["reused"] for a in again.stats["arrays"].values())
    assert {p.name: p.stat().st_mtime_ns for p in (copy / "cache").glob("*.npy")} == before
    assert again.items.equals(folder.items)
    for split in SPLITS:
        assert again.pairs(split).equals(folder.pairs(split))
    # another image size: only the images are made again, and the old file is gone
    resized = D.build_dataset(**smoke_params(copy, image_size=24))
    arrays = resized.stats["arrays"]
    assert not arrays["images"]["reused"] and arrays["audio"]["reused"]
    assert arrays["music_features"]["reused"] and arrays["log_spectrogram"]["reused"]
    assert resized.array("images").shape[1:] == (24, 24, 3)
    assert len(list((copy / "cache").glob("images_*.npy"))) == 1


def test_feature_caches_are_rebuilt_under_another_library_version(smoke_build, tmp_path, monkeypatch):
    from cdcml_lib.data import features

    folder, _ = smoke_build
    copy = tmp_path / "smoke"
    shutil.copytree(folder.path, copy)
    real = features.library_versions
    monkeypatch.setattr(features, "library_versions",
                        lambda **kw: {**real(**kw), "scipy": "0.0-another"})
    arrays = D.build_dataset(**smoke_params(copy)).stats["arrays"]
    assert arrays["audio"]["reused"] and arrays["images"]["reused"]
    assert not arrays["music_features"]["reused"] and not arrays["log_spectrogram"]["reused"]


def test_interrupted_cache_resumes_at_the_first_missing_chunk(tmp_path):
    data = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)
    made = []

    def failing(rows):
        if rows[0] >= 6:
            raise KeyboardInterrupt  # the user stops the build in the fourth chunk
        made.append(rows[0])
        return data[rows]

    made_by = {"array": "toy", "n": 10}
    with pytest.raises(KeyboardInterrupt):
        D.cached_array(tmp_path, "toy", made_by, (10, 3), np.float32, failing, chunk=2)
    key = D.content_key(made_by)
    assert not (tmp_path / f"toy_{key}.npy").exists()          # nothing looks finished
    assert len(list((tmp_path / f".parts_toy_{key}").glob("*.npy"))) == 3
    made.clear()

    def working(rows):
        made.append(int(rows[0]))
        return data[rows]

    path, reused = D.cached_array(tmp_path, "toy", made_by, (10, 3), np.float32, working, chunk=2)
    assert made == [6, 8] and not reused                       # only the missing chunks
    np.testing.assert_array_equal(np.load(path), data)
    assert not (tmp_path / f".parts_toy_{key}").exists()
    made.clear()
    _, reused = D.cached_array(tmp_path, "toy", made_by, (10, 3), np.float32, working, chunk=2)
    assert reused and made == []


def test_truncated_cache_file_is_made_again(tmp_path):
    data = np.ones((4, 2), dtype=np.float32)
    made_by = {"array": "toy"}
    path, _ = D.cached_array(tmp_path, "toy", made_by, (4, 2), np.float32, lambda r: data[r], chunk=4)
    path.write_bytes(path.read_bytes()[:-8])                    # a damaged file
    _, reused = D.cached_array(tmp_path, "toy", made_by, (4, 2), np.float32, lambda r: data[r], chunk=4)
    assert not reused and np.load(path).shape == (4, 2)


def test_open_dataset_errors_name_the_file_and_the_fix(smoke_build, tmp_path):
    folder, _ = smoke_build
    with pytest.raises(D.DatasetError, match="make data CONFIG="):
        D.open_dataset(tmp_path / "nothing-here")
    copy = tmp_path / "smoke"
    shutil.copytree(folder.path, copy)
    (copy / "stats.json").unlink()                              # an unfinished build
    with pytest.raises(D.DatasetError, match=r"stats.json is missing.*make data"):
        D.open_dataset(copy)
    shutil.copy(folder.path / "stats.json", copy / "stats.json")
    victim = next((copy / "cache").glob("music_features_*.npy"))
    victim.unlink()
    with pytest.raises(D.DatasetError, match=victim.name):
        D.open_dataset(copy)
    with pytest.raises(D.DatasetError, match="unknown split"):
        folder.pairs("training")


def test_bad_parameters_are_clear_errors(tmp_path):
    with pytest.raises(D.DatasetError, match="n_song: unknown key.*n_songs"):
        D.build_dataset(**{**smoke_params(tmp_path), "n_song": 3})
    with pytest.raises(D.DatasetError, match="sum to 1"):
        D.build_dataset(**smoke_params(tmp_path, split_val=0.3))
    with pytest.raises(D.DatasetError, match="corpus"):
        D.build_dataset(**smoke_params(tmp_path, corpus="deam"))
    with pytest.raises(D.DatasetError, match="dataset.feature_device: 'gpu'.*cpu, cuda"):
        D.build_dataset(**smoke_params(tmp_path, feature_device="gpu"))
    params = smoke_params(tmp_path)
    del params["keep_fraction"]
    with pytest.raises(D.DatasetError, match="keep_fraction"):
        D.build_dataset(**params)


def test_resume_with_another_chunk_size_never_leaves_rows_of_zeros(tmp_path):
    # parts of an interrupted build made with chunk 2 must not be taken for chunk-4 parts
    from cdcml_lib.data.dataset import cached_array

    def produce(rows):
        return rows[:, None].astype(np.int64) + 1

    calls = {"n": 0}

    def interrupted(rows):
        calls["n"] += 1
        if calls["n"] > 1:
            raise KeyboardInterrupt
        return produce(rows)

    with pytest.raises(KeyboardInterrupt):
        cached_array(tmp_path, "x", {"what": "rows"}, (8, 1), np.int64, interrupted, chunk=2)
    final, _ = cached_array(tmp_path, "x", {"what": "rows"}, (8, 1), np.int64, produce, chunk=4)
    assert np.load(final)[:, 0].tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
    assert not list(tmp_path.glob(".parts_x_*"))


def test_each_seed_draws_its_own_split_and_pairs_of_the_same_items(smoke_build):
    folder, params = smoke_build
    seeds = folder.stats["draws"]
    assert seeds == [0, 1]
    draws = {s: D.open_dataset(folder.path / "draws" / f"s{s}") for s in seeds}
    for s, draw in draws.items():
        assert draw.stats["seed"] == s and draw.stats["sigma"] == folder.stats["sigma"]
        assert not (draw.path / "cache").exists() and draw.cache_dir == (folder.path / "cache").resolve()
        # the same items and cache rows; only the split differs
        assert draw.items.drop(columns="split").equals(folder.items.drop(columns="split"))
        assert np.array_equal(draw.array("images"), folder.array("images"))
        songs = draw.items[draw.items.modality == "music"].groupby("song")["split"].nunique()
        assert (songs == 1).all()                               # a song stays in one split
        for split in SPLITS:
            ids = set(draw.items[draw.items.split == split].id)
            pairs = draw.pairs(split)
            assert set(pairs.music_id) | set(pairs.image_id) <= ids
    # the dataset seed's draw is the folder's own split; another seed's is another split
    assert draws[params["seed"]].items["split"].equals(folder.items["split"])
    assert draws[0].pairs("train").equals(folder.pairs("train"))
    assert not draws[1].items["split"].equals(draws[0].items["split"])


def test_a_seed_without_a_draw_is_an_error_that_names_the_fix(smoke_build):
    folder, _ = smoke_build
    with pytest.raises(D.DatasetError, match=r"no split draw for seed 7.*study.seeds"):
        D.open_dataset(folder.path / "draws" / "s7")


def test_a_seed_outside_the_study_gets_its_draw_on_demand(smoke_build, tmp_path):
    """open_draw makes a missing draw from the finished folder, the same as the build makes it."""
    import shutil

    folder, _ = smoke_build
    copy = tmp_path / "smoke"
    shutil.copytree(folder.path, copy)
    built = copy / "draws" / "s1"
    assert built.is_dir()
    saved = tmp_path / "s1-built"
    shutil.move(built, saved)
    drawn = D.open_draw(built)                       # drawn again, on demand
    for name in ("items.csv", "pairs_train.txt", "pairs_val.txt", "pairs_test.txt"):
        assert (built / name).read_bytes() == (saved / name).read_bytes(), name
    assert drawn.stats["seed"] == 1 and drawn.stats["draw_of"] == "../.."
    seven = D.open_draw(copy / "draws" / "s7")       # a seed the study never drew
    assert seven.stats["seed"] == 7 and len(seven.pairs("train")) > 0


def test_published_lists_cannot_be_redrawn(smoke_build):
    build = D.DatasetBuild(params={}, out_dir=smoke_build[0].path)
    build.items, build.sigma, build.lists = smoke_build[0].items, 0.5, object()
    with pytest.raises(D.DatasetError, match="published lists fix the split.*splits: fixed"):
        D.draw_splits(build, [0, 1])
