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
import yaml
from PIL import Image

from cdcml_lib.audio import CLIP_SAMPLES, SR
from cdcml_lib.data.dataset import open_dataset
from cdcml_lib.data.images import ImageFileError
from cdcml_lib.explore import match as M
from cdcml_lib.runs.train import load_trained, train_run
from cdcml_lib.workflow.paths import repo_root
from cdcml_lib.workflow.params import section as config_section  # configs inherit: read them merged


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


def test_a_text_file_named_wav_is_an_error_naming_it_without_warnings(trained, tmp_path):
    (tmp_path / "notes.wav").write_text("these are my notes, not audio\n" * 20)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(M.QueryFileError, match=r"notes\.wav: not an audio file libsndfile can decode"):
            M.predict(trained, tmp_path / "notes.wav")
    assert not caught, [str(w.message) for w in caught]


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
    assert M.main([str(folder), "--run", str(run_dir), "-k", "2", "--batch-size", "2",
                   "--out", str(out)]) == 0
    table = pd.read_csv(out, keep_default_na=False)
    per_file = table.drop_duplicates("path").set_index("path")
    assert len(per_file) == 5 and len(table) == 4 * 2 + 1
    assert "fake.wav: not an audio file" in per_file.loc[str(folder / "fake.wav"), "error"]
    assert (table[table["error"] == ""]["rank"].astype(int) <= 2).all()
    text = capsys.readouterr()
    assert "song.wav" in text.out and "1 unreadable" in text.out
    assert "fake.wav" in text.err


def test_the_command_prints_the_query_va_beside_its_matches(run_dir, smoke_data, tmp_path, capsys):
    sf.write(tmp_path / "song.wav", embedded_song(smoke_data, 3), SR)
    assert M.main([str(tmp_path / "song.wav"), "--run", str(run_dir), "-k", "3"]) == 0
    out = capsys.readouterr().out
    assert "song.wav (music): predicted valence" in out and "matched image" in out
    assert M.main([str(tmp_path / "nothing.wav"), "--run", str(run_dir)]) == 1
