"""Readers of the real corpora (cdcml_lib.data.corpora): real reference files and broken copies."""
from __future__ import annotations

import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cdcml_lib.data.corpora import (ITEM_COLUMNS, AudioWindowWarning, CorpusError, clip_windows, load_audio_clip, load_image,
                               load_imemnet_items, read_deam, read_deam_static, read_emotic,
                               read_folder_corpus, read_iaps, read_image_va, read_pairs, write_pairs)
from cdcml_lib.workflow.paths import repo_root
from cdcml_lib.workflow.params import section as config_section  # configs inherit: read them merged

REFERENCE = repo_root().parent / "shared" / "reference"
DEAM_STATIC = [REFERENCE / "deam" / "static_annotations_averaged_songs_1_2000.csv",
               REFERENCE / "deam" / "static_annotations_averaged_songs_2000_2058.csv"]
needs_reference = pytest.mark.skipif(
    not REFERENCE.is_dir(), reason=f"real reference files not found at {REFERENCE} "
                                   "(../shared/reference beside the repository)")


# --- real files --------------------------------------------------------------------------------

@needs_reference
def test_deam_static_reads_both_real_files_with_their_quirks():
    songs = read_deam_static(DEAM_STATIC)
    assert len(songs) == 1802                      # README: 1,802 songs in the two files
    assert songs.song.is_unique
    assert {"2", "2000", "2001", "2058"} <= set(songs.song)
    assert songs.valence.between(1, 9).all() and songs.arousal.between(1, 9).all()
    # the padded, misspelt header of the second file is read as the intended column
    second = read_deam_static(DEAM_STATIC[1:], valence_col="valence_max_mean")
    assert len(second) == 58 and second.valence.iloc[0] == 5.0


@needs_reference
def test_image_va_reports_the_eight_conflicting_ids_and_picks_none():
    with pytest.warns(UserWarning, match="8 image ids have conflicting"):
        va = read_image_va(REFERENCE / "imemnet" / "image_va.csv")
    assert va.conflicting_ids == ["2345", "2352", "2745", "2900", "3550", "4664", "6250", "6570"]
    assert not set(va.conflicting_ids) & set(va.labels.index)
    assert len(va.labels) == 24744 - 8
    v2352 = sorted(va.conflicts[va.conflicts.id == "2352"].valence.round(2))
    assert v2352 == [0.11, 0.80, 0.85]
    assert va.labels.index.dtype == object or str(va.labels.index.dtype).startswith("str")
    assert "Animals_001_h" in va.labels.index   # ids stay text


@needs_reference
def test_pairs_round_trip_is_byte_identical_to_the_published_file(tmp_path):
    source = REFERENCE / "imemnet" / "val_matching.txt"
    pairs = read_pairs(source)
    assert list(pairs.columns) == ["music_id", "image_id", "score"] and len(pairs) == 8795
    out = write_pairs(pairs, tmp_path / "sub" / "val.txt")
    assert out.read_bytes() == source.read_bytes()
    assert not list(out.parent.glob("*.tmp"))       # the temporary file was renamed


# --- broken copies: every error names the file and the field -----------------------------------

def _broken_static(tmp_path, edit) -> Path:
    table = pd.read_csv(DEAM_STATIC[0], dtype=str, skipinitialspace=True)
    table.columns = [c.strip() for c in table.columns]
    path = tmp_path / "static_broken.csv"
    edit(table).to_csv(path, index=False)
    return path


@needs_reference
def test_deam_static_missing_column_names_file_and_column(tmp_path):
    path = _broken_static(tmp_path, lambda t: t.drop(columns="arousal_mean"))
    with pytest.raises(CorpusError, match=r"static_broken\.csv.*arousal_mean"):
        read_deam_static([path])


@needs_reference
def test_deam_static_non_numeric_value_names_file_line_and_column(tmp_path):
    def edit(t):
        t.loc[4, "valence_mean"] = "n/a"
        return t
    path = _broken_static(tmp_path, edit)
    with pytest.raises(CorpusError, match=r"static_broken\.csv, line 6, column 'valence_mean'.*'n/a'"):
        read_deam_static([path])


@needs_reference
def test_deam_static_out_of_range_value_names_file_line_and_column(tmp_path):
    def edit(t):
        t.loc[0, "arousal_mean"] = "12"
        return t
    path = _broken_static(tmp_path, edit)
    with pytest.raises(CorpusError, match=r"static_broken\.csv, line 2, column 'arousal_mean'.*outside"):
        read_deam_static([path])


@needs_reference
def test_deam_song_listed_in_two_files_is_an_error(tmp_path):
    copy = tmp_path / "copy.csv"
    shutil.copy(DEAM_STATIC[1], copy)
    with pytest.raises(CorpusError, match=r"song 2001 appears 2 times: .*2000_2058\.csv line 2, .*copy\.csv line 2 \(58 songs"):
        read_deam_static([DEAM_STATIC[1], copy])


def test_missing_folder_and_missing_file_name_the_path(tmp_path):
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("IAPS,valmn,aromn\n1050,3.5,6.2\n")
    with pytest.raises(CorpusError, match=r"folder .*no_such_dir does not exist"):
        read_iaps(ratings, tmp_path / "no_such_dir")
    with pytest.raises(CorpusError, match=r"file .*absent\.csv does not exist"):
        read_iaps(tmp_path / "absent.csv", tmp_path)


def test_pair_list_errors_name_file_and_line(tmp_path):
    path = tmp_path / "pairs.txt"
    path.write_text("1-9 a 0.5\n1-10 b\n")
    with pytest.raises(CorpusError, match=r"pairs\.txt, line 2: expected 3 fields"):
        read_pairs(path)
    path.write_text("1-9 a\n1-10 b 0.5\n")            # a bad FIRST line is line 1, not 2
    with pytest.raises(CorpusError, match=r"pairs\.txt, line 1: expected 3 fields.*found 2"):
        read_pairs(path)
    path.write_text("1-9 a 0.5 extra\n")
    with pytest.raises(CorpusError, match=r"pairs\.txt, line 1: expected 3 fields.*found 4"):
        read_pairs(path)
    path.write_text("1-9 a 0.5\n\n1-10 b 0.25\n1-11 c\n")   # blank lines still count
    with pytest.raises(CorpusError, match=r"pairs\.txt, line 4: expected 3 fields"):
        read_pairs(path)
    path.write_text("1-9 a 0.5\n1-10 b 0.2\n1-11 c high\n")
    with pytest.raises(CorpusError, match=r"pairs\.txt, line 3, field matching_score: 'high'"):
        read_pairs(path)
    path.write_text("1-9 a 1.5\n")
    with pytest.raises(CorpusError, match=r"line 1, field matching_score: '1.5' is not a number in \[0, 1\]"):
        read_pairs(path)


# --- DEAM clips from per-second annotations ----------------------------------------------------

def test_clip_windows_mean_the_samples_inside_each_window():
    times = np.arange(15.0, 45.0, 0.5)                      # sample_15000ms .. sample_44500ms
    values = np.sin(times)
    clips = clip_windows(times, values, 2.0, align="song")
    index, start, mean = clips[0]
    assert (index, start) == (9, 16.0)                      # published ids start at <song>-9
    assert mean == pytest.approx(np.sin([16, 16.5, 17, 17.5]).mean())
    assert [c[0] for c in clips] == list(range(9, 23))     # last full window [42, 44)
    ann = clip_windows(times, values, 2.0, align="annotations")
    assert ann[0][:2] == (1, 15.0) and len(ann) == 15
    # a song whose annotation stops early gives fewer clips; missing cells are skipped
    short = np.where(times < 20.0, values, np.nan)
    assert [c[0] for c in clip_windows(times, short, 2.0)] == [9, 10]


AUDIO_SR = 8000     # the test songs' files: small, and any rate is resampled when read


def _write_song(path: Path, seconds: float = 45.0) -> None:
    import soundfile as sf
    t = np.arange(int(seconds * AUDIO_SR)) / AUDIO_SR
    sf.write(path, (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), AUDIO_SR)


def _write_deam(root: Path, songs: dict[str, tuple[np.ndarray, np.ndarray]], n_samples: int = 60):
    """A tiny DEAM release: static CSV, per-second valence/arousal CSVs, 45-s audio files."""
    (root / "audio").mkdir(parents=True)
    (root / "dynamic").mkdir()
    cols = [f"sample_{15000 + 500 * k}ms" for k in range(n_samples)]
    for name, which in (("valence.csv", 0), ("arousal.csv", 1)):
        rows = [[song] + [f"{x:.3f}" if np.isfinite(x) else "" for x in va[which]]
                for song, va in songs.items()]
        pd.DataFrame(rows, columns=["song_id"] + cols).to_csv(root / "dynamic" / name, index=False)
    static = pd.DataFrame({"song_id": list(songs), "valence_mean": 5.0, "arousal_mean": 5.0})
    static.to_csv(root / "static.csv", index=False)
    for song in songs:
        _write_song(root / "audio" / f"{song}.wav")


def test_read_deam_makes_normalised_clips_with_published_ids(tmp_path):
    t = np.arange(60)
    songs = {"2": (np.linspace(-0.5, 0.5, 60), np.full(60, 0.2)),
             "3": (np.full(60, 0.1), np.linspace(0.8, -0.8, 60))}
    _write_deam(tmp_path, songs)
    items = read_deam(tmp_path / "audio", [tmp_path / "static.csv"], tmp_path / "dynamic")
    assert list(items.columns) == ITEM_COLUMNS
    assert (items.modality == "music").all() and (items.source == "deam").all()
    assert items.id.iloc[0] == "2-9" and items.start_s.iloc[0] == 16.0
    assert set(items.song) == {"2", "3"} and (items.split == "").all()
    assert items.valence.min() == pytest.approx(0) and items.valence.max() == pytest.approx(1)
    assert items.arousal.min() == pytest.approx(0) and items.arousal.max() == pytest.approx(1)
    # song 2's valence rises with time, so its clips' normalised valence does too
    assert np.all(np.diff(items[items.song == "2"].valence.to_numpy()) > 0)
    assert items.path.iloc[0].endswith("2.wav")
    del t


def test_read_deam_out_of_range_dynamic_value_names_file_line_and_column(tmp_path):
    values = np.zeros(60)
    values[3] = 1.7
    _write_deam(tmp_path, {"2": (values, np.zeros(60))})
    with pytest.raises(CorpusError, match=r"valence\.csv, line 2, column 'sample_16500ms'.*outside"):
        read_deam(tmp_path / "audio", [tmp_path / "static.csv"], tmp_path / "dynamic")


def test_read_deam_missing_audio_is_an_error_naming_the_songs(tmp_path):
    _write_deam(tmp_path, {"2": (np.linspace(-1, 1, 60), np.linspace(1, -1, 60))})
    (tmp_path / "audio" / "2.wav").unlink()
    with pytest.raises(CorpusError, match=r"1 of 1 songs have no file in .*audio.*\[.2.\]"):
        read_deam(tmp_path / "audio", [tmp_path / "static.csv"], tmp_path / "dynamic")


# --- image corpora ----------------------------------------------------------------------------

def _images(folder: Path, names, size=(20, 12)):
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(folder / name)


def test_emotic_averages_people_per_image_then_normalises(tmp_path):
    _images(tmp_path / "img" / "mscoco", ["COCO_a.jpg", "COCO_b.jpg"])
    _images(tmp_path / "img" / "framesdb", ["frame_c.jpg"])
    pd.DataFrame({"Folder": ["mscoco", "mscoco", "mscoco", "framesdb"],
                  "Filename": ["COCO_a.jpg", "COCO_a.jpg", "COCO_b.jpg", "frame_c.jpg"],
                  "Valence": [2, 4, 9, 7], "Arousal": [5, 7, 1, 10]}).to_csv(tmp_path / "ann.csv", index=False)
    items = read_emotic(tmp_path / "ann.csv", tmp_path / "img").set_index("id")
    # per image: a = (3, 6), b = (9, 1), c = (7, 10); then min-max over the corpus
    assert items.loc["COCO_a", "valence"] == pytest.approx(0.0)
    assert items.loc["frame_c", "valence"] == pytest.approx(4 / 6)
    assert items.loc["COCO_a", "arousal"] == pytest.approx(5 / 9)
    assert items.loc["frame_c", "path"].endswith("framesdb/frame_c.jpg")
    assert (items.song == "").all() and items.start_s.isna().all()


def test_folder_corpus_checks_scale_and_finds_files(tmp_path):
    _images(tmp_path / "pics", ["x.png", "y.png", "z.png"])
    csv = tmp_path / "va.csv"
    pd.DataFrame({"name": ["x", "y", "z"], "V": [1, 4, 7], "A": [2, 2, 5]}).to_csv(csv, index=False)
    items = read_folder_corpus(tmp_path / "pics", csv, "name", "V", "A", scale=(1, 7), source="mine")
    assert items.valence.tolist() == pytest.approx([0, 0.5, 1])
    by_scale = read_folder_corpus(tmp_path / "pics", csv, "name", "V", "A", scale=(1, 7),
                                  normalise="scale")
    assert by_scale.arousal.tolist() == pytest.approx([1 / 6, 1 / 6, 4 / 6])
    with pytest.raises(CorpusError, match=r"va\.csv, line 4, column 'V'.*outside the scale \[1, 5\]"):
        read_folder_corpus(tmp_path / "pics", csv, "name", "V", "A", scale=(1, 5))
    with pytest.raises(CorpusError, match=r"va\.csv has no column \['Valence'\]"):
        read_folder_corpus(tmp_path / "pics", csv, "name", "Valence", "A")
    (tmp_path / "pics" / "z.png").unlink()
    with pytest.raises(CorpusError, match=r"1 of 3 rated items have no file .*\['z'\]"):
        read_folder_corpus(tmp_path / "pics", csv, "name", "V", "A")


def test_iaps_keeps_dotted_ids_and_reads_tab_separated_ratings(tmp_path):
    _images(tmp_path / "iaps", ["2352.1.jpg", "2352.2.jpg", "1050.jpg"])
    (tmp_path / "all.txt").write_text("desc\tIAPS\tvalmn\taromn\nKiss\t2352.1\t7.1\t5.0\n"
                                      "Bloody\t2352.2\t2.0\t6.0\nSnake\t1050\t3.5\t6.9\n")
    items = read_iaps(tmp_path / "all.txt", tmp_path / "iaps")
    assert items.id.tolist() == ["2352.1", "2352.2", "1050"]
    assert items.valence.tolist() == pytest.approx([1, 0, 1.5 / 5.1])


def test_load_imemnet_items_combines_configured_corpora(tmp_path):
    _write_deam(tmp_path / "deam", {"2": (np.linspace(-1, 1, 60), np.linspace(1, -1, 60))})
    _images(tmp_path / "iaps", ["1050.jpg", "2352.1.jpg"])
    (tmp_path / "iaps.csv").write_text("IAPS,valmn,aromn\n1050,3.5,6.9\n2352.1,7.1,5.0\n")
    params = {"dataset": {"deam_dir": str(tmp_path / "deam" / "audio"),
                          "deam_static_csvs": str(tmp_path / "deam" / "static.csv"),
                          "deam_dynamic_dir": str(tmp_path / "deam" / "dynamic"),
                          "iaps_ratings": str(tmp_path / "iaps.csv"), "iaps_dir": str(tmp_path / "iaps"),
                          "naps_ratings": "", "naps_dir": "", "emotic_annotations": "", "emotic_dir": ""}}
    items = load_imemnet_items(params)
    assert set(items.source) == {"deam", "iaps"} and items.id.is_unique
    assert (items.modality == "music").sum() == 14 and (items.modality == "image").sum() == 2
    params["dataset"]["naps_dir"] = str(tmp_path)
    with pytest.raises(CorpusError, match="naps needs both naps_ratings and naps_dir"):
        load_imemnet_items(params)


def test_imemnet_params_name_every_reader_key():
    import yaml
    dataset = config_section("imemnet", "dataset")
    assert dataset["corpus"] == "imemnet"
    for key in ("deam_dir", "deam_static_csvs", "deam_dynamic_dir", "iaps_ratings", "iaps_dir",
                "naps_ratings", "naps_dir", "emotic_annotations", "emotic_dir"):
        assert isinstance(dataset[key], str) and dataset[key]


# --- loading one image or clip -----------------------------------------------------------------

def test_load_image_resizes_to_square_rgb_uint8(tmp_path):
    _images(tmp_path, ["a.png"], size=(40, 25))
    image = load_image(tmp_path / "a.png", 16)
    assert image.shape == (16, 16, 3) and image.dtype == np.uint8
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(CorpusError, match=r"bad\.jpg"):
        load_image(tmp_path / "bad.jpg", 16)


def test_load_audio_clip_is_two_seconds_padded_at_the_song_end(tmp_path):
    import soundfile as sf
    sr = 22050
    t = np.arange(3 * sr) / sr
    sf.write(tmp_path / "song.wav", 0.5 * np.sin(2 * np.pi * 440 * t), sr)
    clip = load_audio_clip(tmp_path / "song.wav", 0.5)
    assert clip.shape == (44100,) and clip.dtype == np.float32
    assert np.allclose(clip[:100], 0.5 * np.sin(2 * np.pi * 440 * t[sr // 2: sr // 2 + 100]), atol=1e-3)
    with pytest.warns(AudioWindowWarning, match=r"song\.wav: the clip 2\.00-4\.00 s crosses the "
                      r"end of the audio at 3\.00 s; its last 1\.00 s \(50%\) are silence"):
        tail = load_audio_clip(tmp_path / "song.wav", 2.0)  # only 1 s left: the rest is silence
    assert np.abs(tail[: sr - 10]).max() > 0.4 and np.all(tail[sr + 10:] == 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(CorpusError, match=r"song\.wav"):
            load_audio_clip(tmp_path / "song.wav", 10.0)


# --- broken copies of each DEAM file: issue 13's list ------------------------------------------

def _deam_release(tmp_path, n_songs: int = 3) -> Path:
    rng = np.random.default_rng(1)
    songs = {str(s): (rng.uniform(-0.8, 0.8, 60), rng.uniform(-0.8, 0.8, 60))
             for s in range(2, 2 + n_songs)}
    _write_deam(tmp_path, songs)
    return tmp_path


def _read(root: Path, **kw):
    return read_deam(root / "audio", [root / "static.csv"], root / "dynamic", **kw)


def test_per_second_file_listing_a_song_twice_names_file_song_and_lines(tmp_path):
    root = _deam_release(tmp_path)
    path = root / "dynamic" / "arousal.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines + [lines[2]]))          # song 3 again, as line 5
    with pytest.raises(CorpusError, match=r"arousal\.csv: song 3 appears 2 times: lines \[3, 5\]"):
        _read(root)


def test_static_file_listing_a_song_twice_names_the_lines(tmp_path):
    root = _deam_release(tmp_path)
    path = root / "static.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines + [lines[1]]))
    with pytest.raises(CorpusError, match=r"song 2 appears 2 times: \S*static\.csv line 2, \S*static\.csv line 5"):
        read_deam_static([path])


def test_static_file_with_a_header_and_no_rows_is_an_error(tmp_path):
    path = tmp_path / "static.csv"
    path.write_text("song_id, valence_mean, valence_std, arousal_mean, arousal_std\n")
    with pytest.raises(CorpusError, match=r"static\.csv has a header but no rows \(0 songs\)"):
        read_deam_static([path])


def test_song_id_that_is_not_a_whole_number_is_an_error(tmp_path):
    root = _deam_release(tmp_path)
    path = root / "static.csv"
    good = path.read_text()
    path.write_text(good.replace("\n3,", "\n5.7,", 1))
    with pytest.raises(CorpusError, match=r"static\.csv, line 3, column 'song_id': song id '5.7' "
                                          r"is not a whole number"):
        read_deam_static([path])
    path.write_text(good)
    dyn = root / "dynamic" / "valence.csv"
    dyn.write_text(dyn.read_text().replace("\n4,", "\n4.5,", 1))
    with pytest.raises(CorpusError, match=r"valence\.csv, line 4, column 'song_id': song id '4.5'"):
        _read(root)


def test_per_second_file_cut_short_warns_with_counts(tmp_path):
    root = _deam_release(tmp_path)
    path = root / "dynamic" / "valence.csv"
    text = path.read_text()
    path.write_bytes(text.encode()[: len(text.encode()) - 200])   # the last line loses its end
    with pytest.warns(UserWarning) as caught:
        items = _read(root)
    messages = " | ".join(str(w.message) for w in caught)
    assert re.search(r"valence\.csv looks cut short: its last line \(4, song '4'\) has \d+ of 61 "
                     r"fields", messages)
    assert re.search(r"\d+ clip windows have valence but no arousal", messages)
    assert 28 < len(items) < 42                              # 3 songs x 14 clips, minus the cut
    # cut at a line boundary: song 4 is missing from valence.csv only
    path.write_text("".join(text.splitlines(keepends=True)[:3]))
    with pytest.warns(UserWarning, match=r"1 of 3 songs of the static files have no row in "
                                         r".*valence\.csv \(2 songs there"):
        _read(root)


def test_empty_and_non_audio_files_are_caught_when_the_corpus_is_read(tmp_path):
    root = _deam_release(tmp_path)
    (root / "audio" / "3.wav").write_bytes(b"")
    (root / "audio" / "4.wav").write_text("<html>not found</html>")
    with pytest.raises(CorpusError) as err:
        _read(root)
    msg = str(err.value)
    assert "2 of 3 audio files cannot be used" in msg
    assert re.search(r"3\.wav is empty \(0 bytes\)", msg)
    assert re.search(r"4\.wav is not a readable audio file", msg)
    assert "Download those files again" in msg
    assert len(_read(root, check_audio=False)) == 42          # the check can be switched off


def test_truncated_audio_is_reported_as_truncated_not_as_a_bad_start(tmp_path):
    import soundfile as sf
    root = _deam_release(tmp_path, n_songs=2)
    # a WAV cut in half: libsndfile believes the shorter length, shorter than the annotations
    wav = root / "audio" / "2.wav"
    data = wav.read_bytes()
    wav.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorpusError, match=r"2\.wav is 22\.5 s long but its annotations need "
                                          r"44\.0 s: the file is truncated"):
        _read(root)
    # an MP3 cut in half keeps the whole song's length in its header: its tail cannot be decoded
    t = np.arange(45 * AUDIO_SR) / AUDIO_SR
    sf.write(root / "song.mp3", (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), AUDIO_SR)
    data = (root / "song.mp3").read_bytes()
    (root / "cut.mp3").write_bytes(data[: len(data) // 2])
    from cdcml_lib.data.corpora import audio_problem
    assert audio_problem(root / "song.mp3", 44.0) == ""
    assert audio_problem(root / "cut.mp3", 44.0).startswith("is truncated: its header says 45.0 s")
    with pytest.raises(CorpusError, match=r"cut\.mp3 is truncated: its header says 45\.0 s"):
        load_audio_clip(root / "cut.mp3", 30.0)


def test_empty_pair_list_reads_as_no_pairs(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    assert len(read_pairs(tmp_path / "empty.txt")) == 0


def test_a_window_past_the_end_of_a_truncated_wav_is_warned_with_the_seconds_missing(tmp_path):
    """A WAV cut at 20 s (its header rewritten by libsndfile's reader to the data present): the
    window at 19.0 s is half silence, and the warning names the file and the 1.00 s missing."""
    import soundfile as sf
    sr = 22050
    sf.write(tmp_path / "full.wav", 0.3 * np.sin(2 * np.pi * 330 * np.arange(30 * sr) / sr), sr,
             subtype="PCM_16")
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[:44 + 20 * sr * 2])   # header + 20 s of samples
    with pytest.warns(AudioWindowWarning, match=r"cut\.wav: the clip 19\.00-21\.00 s crosses the end "
                                                r"of the audio at 20\.00 s; its last 1\.00 s"):
        load_audio_clip(tmp_path / "cut.wav", 19.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AudioWindowWarning)   # a window inside the audio: silent
        load_audio_clip(tmp_path / "cut.wav", 10.0)


def test_a_byte_order_mark_is_stripped_from_pair_lists_and_csv_tables(tmp_path):
    (tmp_path / "val.txt").write_bytes("\ufeff1967-11 COCO_1 0.875\n238-12 frame_a 0.89\n".encode("utf-8"))
    pairs = read_pairs(tmp_path / "val.txt")
    assert pairs["music_id"].tolist() == ["1967-11", "238-12"]
    (tmp_path / "va.csv").write_bytes("\ufeffimg,valence,arousal\n1,0.2,0.3\n".encode("utf-8"))
    assert read_image_va(tmp_path / "va.csv").labels.index.tolist() == ["1"]


def test_a_pair_list_cut_mid_score_is_an_error_naming_the_file_and_line(tmp_path):
    full = "1967-11 COCO_1 0.8757995366765425\n238-12 frame_a 0.8956136698601915\n"
    (tmp_path / "val.txt").write_text(full + "2014-64 COCO_2 0.72")   # cut, no newline
    with pytest.raises(CorpusError, match=r"val\.txt, line 3: the file ends without a newline in "
                                          r"the middle of a score \('0\.72'"):
        read_pairs(tmp_path / "val.txt")
    (tmp_path / "whole.txt").write_text(full + "2014-64 COCO_2 0.7203913989161926")  # no newline, whole
    assert len(read_pairs(tmp_path / "whole.txt")) == 3
    (tmp_path / "hand.txt").write_text("a-1 b 0.5\nc-2 d 0.25")      # hand-written short scores
    assert len(read_pairs(tmp_path / "hand.txt")) == 2
