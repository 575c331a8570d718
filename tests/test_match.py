"""Matching a user's own files (cdcml_lib/explore/match.py, python -m cdcml_lib.match) with a
tiny run trained on the smoke dataset: a song read over its whole length with bounded memory,
the query's own VA, warnings for silence, short clips and out-of-distribution music, errors that
name unreadable files, and a folder written as CSV."""
import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

from cdcml_lib.audio import CLIP_SAMPLES, SR
from cdcml_lib.data.dataset import open_dataset
from cdcml_lib.data.images import ImageFileError
from cdcml_lib.explore import match as M
from cdcml_lib.runs.train import load_trained, train_run
from cdcml_lib.workflow.params import section as config_section, variant_params  # configs inherit: read them merged


@pytest.fixture(scope="module")
def run_dir(smoke_data, tmp_path_factory):
    params = config_section("smoke", "train")
    run_dir = tmp_path_factory.mktemp("runs") / "cdcml-s0"
    params.update({"data_dir": smoke_data, "run_dir": str(run_dir), "epochs": 1, "num_threads": 1})
    train_run(params, progress=False)
    return run_dir


@pytest.fixture(scope="module")
def trained(run_dir):
    return load_trained(run_dir)


def tone(seconds, sr=SR, channels=1, amp=0.3, freq=440.0):
    t = np.arange(int(seconds * sr)) / sr
    y = amp * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
    return np.stack([y] * channels, axis=1) if channels > 1 else y


def embedded_song(smoke_data, seconds=7):
    """Clips of the smoke dataset's test songs, one after another: in-distribution music."""
    ds = open_dataset(smoke_data)
    audio = ds.array("audio")
    rows = ds.items.query("modality == 'music' and split == 'test'")["row"].to_numpy()[:4]
    y = np.concatenate([audio[r].astype(np.float32) / 32767 for r in rows])
    return y[:int(seconds * SR)]


def test_windows_cover_the_whole_song():
    np.testing.assert_allclose(M.window_starts(7 * SR, SR, 2.0), [0, 2, 4, 5])
    np.testing.assert_allclose(M.window_starts(6 * SR, SR, 1.5), [0, 1.5, 3, 4])
    np.testing.assert_allclose(M.window_starts(SR // 2, SR, 2.0), [0])
    with pytest.raises(ValueError, match="hop_s=0"):
        M.window_starts(SR, SR, 0)


def test_song_va_is_the_mean_of_its_windows(trained, smoke_data, tmp_path):
    sf.write(tmp_path / "song.wav", embedded_song(smoke_data), SR)
    with warnings.catch_warnings():
        warnings.simplefilter("error", M.QueryWarning)   # in-distribution music: no warning
        pred = M.predict(trained, tmp_path / "song.wav", hop_s=1.0)
    assert pred.modality == "music" and len(pred.windows) == 6   # 0..5 s, hop 1 s
    assert pred.valence == pytest.approx(pred.windows["pred_valence"].mean())
    assert pred.arousal == pytest.approx(pred.windows["pred_arousal"].mean())
    assert pred.windows["rms_z"].max() < M.OOD_RMS_Z
    assert pred.duration_s == pytest.approx(7.0)


def test_digital_silence_is_warned(trained, tmp_path):
    sf.write(tmp_path / "silence.wav", np.zeros(3 * SR), SR)
    with pytest.warns(M.QueryWarning, match=r"silence\.wav: digital silence"):
        M.predict(trained, tmp_path / "silence.wav")


def test_a_clip_shorter_than_the_window_is_warned(trained, tmp_path):
    sf.write(tmp_path / "short.wav", tone(0.3), SR)
    with pytest.warns(M.QueryWarning, match=r"short\.wav: 0\.30 s is shorter than the model's 2 s"):
        pred = M.predict(trained, tmp_path / "short.wav")
    assert len(pred.windows) == 1


def test_music_far_from_the_training_clips_is_warned(trained, tmp_path):
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "noise.wav", np.clip(rng.normal(0, 0.9, 4 * SR), -1, 1), SR)
    with pytest.warns(M.QueryWarning, match=r"noise\.wav: far outside the run's training music"):
        pred = M.predict(trained, tmp_path / "noise.wav")
    assert (pred.windows["rms_z"] > M.OOD_RMS_Z).all()


def test_a_long_file_is_read_in_bounded_blocks(tmp_path, monkeypatch):
    """A 60 s stereo 44.1 kHz song (21 MB decoded as float32) is read a window at a time."""
    sr = 44100
    sf.write(tmp_path / "long.wav", tone(60, sr, channels=2).astype(np.float32), sr, subtype="PCM_16")
    reads = []
    real_read = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        reads.append(frames)
        return real_read(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    tracemalloc.start()
    n_windows = 0
    for starts, clips in M.read_song_windows(tmp_path / "long.wav", hop_s=2.0, block=4):
        n_windows += len(starts)
        assert clips.shape == (len(starts), CLIP_SAMPLES)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert n_windows == 30
    assert reads and max(reads) == 2 * sr                # never more than one window's frames
    assert peak < 8e6, f"peak {peak / 1e6:.1f} MB while the decoded song is 21 MB"


@pytest.mark.parametrize("name", ["notes.wav", "notes.mp3"])
def test_a_text_file_named_as_audio_is_refused_with_the_true_cause_and_no_decoder_noise(
        trained, tmp_path, capfd, name):
    (tmp_path / name).write_text("these are my notes, not audio\n" * 20)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(M.QueryFileError, match=rf"{name}: not audio: a text file \(it starts "
                                                   r"'these are my notes"):
            M.predict(trained, tmp_path / name)
    assert not caught, [str(w.message) for w in caught]
    err = capfd.readouterr().err
    assert "Illegal Audio-MPEG-Header" not in err and "resync" not in err, err


def test_binary_junk_named_mp3_is_refused_without_decoder_noise(trained, tmp_path, capfd):
    (tmp_path / "junk.mp3").write_bytes(np.random.default_rng(4).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(M.QueryFileError, match=r"junk\.mp3: not an audio file libsndfile can decode"):
        M.predict(trained, tmp_path / "junk.mp3")
    err = capfd.readouterr().err
    assert "Illegal" not in err and "possibly a pipe" not in err, err


def test_a_corrupt_image_is_an_error_naming_it(trained, smoke_data, tmp_path):
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (120, 120, 3), dtype=np.uint8)).save(
        tmp_path / "photo.jpg")
    data = (tmp_path / "photo.jpg").read_bytes()
    (tmp_path / "broken.jpg").write_bytes(data[:len(data) // 3])
    with pytest.raises(ImageFileError, match=r"broken\.jpg: cannot decode it"):
        M.best_matches(trained, tmp_path / "broken.jpg", smoke_data, k=3)


def test_an_image_query_gets_its_own_va_and_its_matches(trained, smoke_data, tmp_path):
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (50, 80, 3), dtype=np.uint8)).save(
        tmp_path / "photo.png")
    found = M.best_matches(trained, tmp_path / "photo.png", smoke_data, k=3)
    query = found.attrs["query"]
    assert query.modality == "image" and 0 <= query.valence <= 1
    # the query's own VA is what the VA predictor says of its embedding (Eq. 7's head)
    f = trained.encode_images(M.load_image(tmp_path / "photo.png", trained.params["image_size"])[None])
    assert query.valence == pytest.approx(float(trained.predict_va(f)[0, 0]), abs=1e-6)
    assert found["modality"].eq("music").all() and found["score"].is_monotonic_decreasing


def test_a_song_query_ranks_images_by_the_mean_s_hat_of_its_windows(trained, smoke_data, tmp_path):
    sf.write(tmp_path / "song.wav", embedded_song(smoke_data, 5), SR)
    found = M.best_matches(trained, tmp_path / "song.wav", smoke_data, k=4)
    pred = found.attrs["query"]
    coll = M.dataset_collection(trained, smoke_data, "image")
    best = int(np.flatnonzero(coll.ids == found["id"].iloc[0])[0])
    per_window = [trained.similarity(coll.embedding[best:best + 1], w[None])[0] for w in pred.embedding]
    assert found["score"].iloc[0] == pytest.approx(float(np.mean(per_window)), abs=1e-6)


def test_a_folder_is_written_as_csv_with_errors_per_file(run_dir, smoke_data, tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    sf.write(folder / "song.wav", embedded_song(smoke_data, 4), SR)
    (folder / "fake.wav").write_text("not audio")
    (folder / "readme.txt").write_text("ignored: not an image or audio suffix")
    out = tmp_path / "matches.csv"
    # exit status 1: one file could not be read; the four others are still matched and written
    assert M.main([str(folder), "--run", str(run_dir), "-k", "2", "--batch-size", "2",
                   "--out", str(out)]) == 1
    table = pd.read_csv(out, keep_default_na=False)
    per_file = table.drop_duplicates("path").set_index("path")
    assert len(per_file) == 5 and len(table) == 4 * 2 + 1
    assert "fake.wav: not audio: a text file" in per_file.loc[str(folder / "fake.wav"), "error"]
    assert (table[table["error"] == ""]["rank"].astype(int) <= 2).all()
    text = capsys.readouterr()
    assert "song.wav" in text.out and "1 unreadable" in text.out and f"wrote {out}" in text.out
    assert "fake.wav" in text.err
    # --out naming an existing folder writes matches.csv inside it
    assert M.main([str(folder / "p0.png"), "--run", str(run_dir), "-k", "1", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "matches.csv").is_file()


def test_a_folder_without_out_is_printed_and_nothing_is_written(run_dir, smoke_data, tmp_path,
                                                                 capsys, monkeypatch):
    folder = tmp_path / "mine"
    folder.mkdir()
    Image.fromarray(np.zeros((40, 40, 3), dtype=np.uint8)).save(folder / "p.png")
    (folder / "fake.wav").write_text("not audio")
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    assert M.main([str(folder), "--run", str(run_dir), "-k", "1"]) == 1
    text = capsys.readouterr()
    assert "p.png (image): predicted valence" in text.out and "fake.wav" in text.err
    assert not list(work.iterdir()) and sorted(f.name for f in folder.iterdir()) == ["fake.wav", "p.png"]


def test_exit_status_two_for_configuration_errors_and_the_contract_in_help(run_dir, tmp_path, capsys):
    Image.fromarray(np.zeros((40, 40, 3), dtype=np.uint8)).save(tmp_path / "p.png")
    assert M.main([str(tmp_path / "p.png"), "--run", str(tmp_path / "no-run")]) == 2
    assert "no-run" in capsys.readouterr().err
    assert M.main([str(tmp_path / "p.png"), "--run", str(run_dir), "--against", str(tmp_path)]) == 2
    with pytest.raises(SystemExit) as usage:
        M.main([str(tmp_path / "p.png"), "--run", str(run_dir), "-k", "0"])
    assert usage.value.code == 2
    with pytest.raises(SystemExit):
        M.main(["--help"])
    help_text = capsys.readouterr().out
    assert "exit status" in help_text and "1  some files could not be read" in help_text


def test_the_command_prints_the_query_va_beside_its_matches(run_dir, smoke_data, tmp_path, capsys):
    sf.write(tmp_path / "song.wav", embedded_song(smoke_data, 3), SR)
    assert M.main([str(tmp_path / "song.wav"), "--run", str(run_dir), "-k", "3"]) == 0
    out = capsys.readouterr().out
    assert "song.wav (music): predicted valence" in out and "matched image" in out
    assert M.main([str(tmp_path / "nothing.wav"), "--run", str(run_dir)]) == 1


# --- the novelty guard: has the model seen media like this? -------------------------------------

def test_noise_clicks_and_a_random_image_are_unfamiliar_and_benchmark_test_items_are_not(
        trained, run_dir, smoke_data, tmp_path):
    rng = np.random.default_rng(5)
    sf.write(tmp_path / "noise.wav", np.clip(rng.normal(0, 0.3, 4 * SR), -1, 1), SR)
    clicks = np.zeros(4 * SR)
    clicks[::SR // 10] = 0.9
    sf.write(tmp_path / "clicks.wav", clicks, SR)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "grain.png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", M.QueryWarning)
        for name in ("noise.wav", "clicks.wav", "grain.png"):
            pred = M.predict(trained, tmp_path / name)
            assert pred.unfamiliar and pred.novelty > 1, (name, pred.novelty)
            assert any("the model has not seen media like this" in w for w in pred.warnings)
            assert pred.row()["unfamiliar"] is True
    # the guard was fitted on first use and cached in the run folder
    assert (run_dir / "novelty.npz").is_file()
    ds = open_dataset(smoke_data)
    test = ds.items.query("split == 'test'")
    images = np.asarray(ds.array("images"))[test.query("modality == 'image'")["row"].to_numpy()]
    music = np.asarray(ds.array("music_features"))[test.query("modality == 'music'")["row"].to_numpy()]
    assert np.mean(M.novelty_of(trained, "image", images) > 1) <= 0.1
    assert np.mean(M.novelty_of(trained, "music", music) > 1) <= 0.1


def test_a_cached_guard_is_refitted_when_it_was_made_for_another_checkpoint(trained, run_dir, tmp_path):
    from cdcml_lib.explore import novelty as N
    N.guard_for(trained, run_dir)
    key = str(np.load(run_dir / "novelty.npz")["key"])
    assert N.load_guard(run_dir / "novelty.npz", key) is not None
    assert N.load_guard(run_dir / "novelty.npz", "another-key") is None


def test_the_command_names_the_corpus_and_flags_noise_but_not_a_benchmark_clip(
        run_dir, smoke_data, tmp_path, capsys):
    rng = np.random.default_rng(6)
    sf.write(tmp_path / "noise.wav", np.clip(rng.normal(0, 0.3, 4 * SR), -1, 1), SR)
    sf.write(tmp_path / "bench.wav", embedded_song(smoke_data, 4), SR)
    assert M.main([str(tmp_path / "noise.wav"), "--run", str(run_dir), "-k", "1"]) == 0
    text = capsys.readouterr()
    assert text.out.count("trained on the 'embedded' corpus") == 1
    assert "ratings of real photos and music are NOT validated" in text.out
    assert "UNFAMILIAR: the model has not seen media like this" in text.out
    assert "noise.wav: the model has not seen media like this" in text.err
    assert M.main([str(tmp_path / "bench.wav"), "--run", str(run_dir), "-k", "1"]) == 0
    text = capsys.readouterr()
    assert "UNFAMILIAR" not in text.out and "has not seen media like this" not in text.err
    out = tmp_path / "m.csv"
    assert M.main([str(tmp_path / "noise.wav"), str(tmp_path / "bench.wav"), "--run", str(run_dir),
                   "-k", "1", "--out", str(out)]) == 0
    table = pd.read_csv(out).set_index("path")
    assert (table["run_corpus"] == "embedded").all()
    assert bool(table.loc[str(tmp_path / "noise.wav"), "unfamiliar"]) is True
    assert bool(table.loc[str(tmp_path / "bench.wav"), "unfamiliar"]) is False
    assert "has not seen media like this" in table.loc[str(tmp_path / "noise.wav"), "warnings"]


def test_an_mp3_cut_short_is_an_error_naming_the_missing_audio(trained, tmp_path):
    y = 0.3 * np.sin(2 * np.pi * 330 * np.arange(12 * SR) / SR)
    sf.write(tmp_path / "full.mp3", y, SR)
    data = (tmp_path / "full.mp3").read_bytes()
    (tmp_path / "cut.mp3").write_bytes(data[:len(data) // 2])
    assert sum(len(s) for s, _ in M.read_song_windows(tmp_path / "full.mp3")) == 6
    with pytest.raises(M.QueryFileError, match=r"cut\.mp3: the window at .* s less audio than "
                                               r"the header promises \(12\.0 s in all\); the file is truncated"):
        M.predict(trained, tmp_path / "cut.mp3")


def test_several_runs_report_the_spread_of_their_predictions_per_file(run_dir, smoke_data, tmp_path,
                                                                     capsys):
    # configs inherit: read the smoke train section merged with its base
    params = {**config_section("smoke", "train"), **variant_params("smoke", "cdcml")}
    other = tmp_path / "cdcml-s1"
    params.update({"data_dir": smoke_data, "run_dir": str(other), "epochs": 1, "num_threads": 1,
                   "seed": 1})
    train_run(params, progress=False)
    Image.fromarray(np.zeros((40, 40, 3), dtype=np.uint8)).save(tmp_path / "p.png")
    sf.write(tmp_path / "song.wav", embedded_song(smoke_data, 4), SR)
    files = [str(tmp_path / "p.png"), str(tmp_path / "song.wav")]
    assert M.main(files + ["--run", str(run_dir), "--run", str(other), "-k", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("over 2 runs: valence") == 2 and "the matches above are the first run's" in out
    assert M.main(files + ["--run", str(run_dir), "--run", str(other), "-k", "1",
                           "--out", str(tmp_path / "m.csv")]) == 0
    table = pd.read_csv(tmp_path / "m.csv").drop_duplicates("path").set_index("path")
    assert (table["n_runs"] == 2).all()
    first = M.predict(load_trained(run_dir), tmp_path / "song.wav")
    second = M.predict(load_trained(other), tmp_path / "song.wav")
    row = table.loc[str(tmp_path / "song.wav")]
    assert row["runs_valence_mean"] == pytest.approx((first.valence + second.valence) / 2, abs=1e-3)
    assert row["runs_valence_min"] == pytest.approx(min(first.valence, second.valence), abs=1e-3)
