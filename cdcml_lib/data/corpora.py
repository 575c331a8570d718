"""Readers of the real corpora into one item table, and the published IMEMNet pair format.

IMEMNet (Zhao et al. 2020, section 3) is built from four corpora: DEAM (music) and IAPS, NAPS and
EMOTIC (images). Each reader here maps one corpus to the same item table

    id, modality, song, split, valence, arousal, source, path, start_s

with valence and arousal min-max normalised to [0, 1] *per corpus* (docs/METHOD.md, section "Corpora
and VA normalisation"), ``split`` left empty (the recipe in ``matching`` assigns it) and ``song``
empty for images.

We hold no copy of the IAPS, NAPS or EMOTIC rating files, so their column names are parameters
whose defaults are the layouts we expect (written in each reader's docstring). The DEAM static
files are tested on the real release (``../shared/reference/deam``), quirks included.

Every problem with the input is a :class:`CorpusError` that names the file, the row or field, and
the fix; where the data stays usable (a per-second file cut short, songs without per-second
annotations) a warning says what is left out, with counts. Audio files are opened when DEAM is
read (:func:`check_audio_files`: a header read and the last half second decoded, in threads): an
empty, non-audio or truncated file is reported then, not at feature time.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from cdcml_lib.audio import CLIP_SECONDS, SR
from cdcml_lib.data import images
from cdcml_lib.matching import minmax_normalise
from cdcml_lib.workflow.paths import atomic_write_text, resolve

ITEM_COLUMNS = ["id", "modality", "song", "split", "valence", "arousal", "source", "path", "start_s"]
PAIR_COLUMNS = ["music_id", "image_id", "score"]
AUDIO_EXTENSIONS = (".mp3", ".wav", ".flac", ".ogg", ".m4a")
IMAGE_EXTENSIONS = images.IMAGE_SUFFIXES

# Known misspellings of column names in published files, mapped to the intended name.
# DEAM's static_annotations_averaged_songs_2000_2058.csv writes "valence_ max_mean".
COLUMN_TYPOS = {"valence_ max_mean": "valence_max_mean"}


class CorpusError(ValueError):
    """A corpus file or folder that cannot be read as documented; the message says how to fix it."""


# ---------------------------------------------------------------------------------------------
# Small shared pieces: reading a table, checking columns and values, finding files
# ---------------------------------------------------------------------------------------------

def _clean_name(name) -> str:
    """A column name without padding, with known typos mapped (``" valence_ max_mean "``)."""
    name = str(name).strip()
    return COLUMN_TYPOS.get(name, name)


def read_table(path, what: str, sep: str | None = ",") -> pd.DataFrame:
    """Read a CSV (or, with ``sep=None``, a sniffed CSV/TSV) as strings, names and cells stripped.

    Everything is read as text so that ids like IAPS ``2352.1`` keep their exact spelling and a
    bad number can be reported with its row; numbers are converted by :func:`numeric_column`.
    """
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{what}: file {path} does not exist; download it and set its path "
                          "in params/imemnet.yaml (dataset section)")
    try:
        # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") is dropped, not kept in a name
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                            skipinitialspace=True, engine="python" if sep is None else "c")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise CorpusError(f"{what}: cannot read {path} as a table ({err}); check that it is the "
                          "documented text file (comma- or tab-separated, UTF-8)") from err
    frame.columns = [_clean_name(c) for c in frame.columns]
    return frame.apply(lambda col: col.str.strip())


def require_columns(frame: pd.DataFrame, columns: Iterable[str], path, what: str) -> None:
    """Raise a :class:`CorpusError` naming the file and each missing column."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise CorpusError(f"{what}: {path} has no column {missing} (columns found: "
                          f"{list(frame.columns)}); rename the column in the file or pass its "
                          "name to the reader")


def numeric_column(frame: pd.DataFrame, column: str, path, what: str,
                   lo: float | None = None, hi: float | None = None,
                   allow_missing: bool = False) -> np.ndarray:
    """The column as float64; a non-numeric or out-of-range cell is an error naming its row.

    Rows are counted as in a spreadsheet: the header is line 1, the first data row line 2.
    """
    text = frame[column]
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    empty = text.eq("").to_numpy()
    bad = np.isnan(values) & ~(empty & allow_missing)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise CorpusError(f"{what}: {path}, line {row + 2}, column '{column}': value "
                          f"{text.iloc[row]!r} is not a number; fix or delete that row")
    outside = np.zeros_like(bad)
    if lo is not None:
        outside |= values < lo
    if hi is not None:
        outside |= values > hi
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise CorpusError(f"{what}: {path}, line {row + 2}, column '{column}': value "
                          f"{values[row]} is outside the scale [{lo}, {hi}]; check that the "
                          "column holds this corpus's ratings and that `scale` is right")
    return values


def index_files(folder, extensions: Sequence[str], what: str) -> dict[str, Path]:
    """Map each file's name without extension to its path, over ``folder`` and its subfolders."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CorpusError(f"{what}: folder {folder} does not exist; put the corpus files there "
                          "or set the folder in params/imemnet.yaml (dataset section)")
    files: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in extensions and path.is_file():
            files.setdefault(path.stem, path)
    return files


def _paths_for(ids: Sequence[str], files: dict[str, Path], folder, what: str,
               require: bool, noun: str = "rated items") -> list[str]:
    """The file of each id; missing files are an error (``require``) or an empty path."""
    distinct = list(dict.fromkeys(ids))
    missing = [i for i in distinct if i not in files]
    if missing and require:
        raise CorpusError(f"{what}: {len(missing)} of {len(distinct)} {noun} have no file in "
                          f"{folder} (e.g. {missing[:5]}); add the files, or drop those rows "
                          "from the annotations")
    return [str(files[i]) if i in files else "" for i in ids]


def _normalised(values: np.ndarray, scale: tuple[float, float] | None) -> np.ndarray:
    """:func:`matching.minmax_normalise` of ``[n, 2]`` VA, its errors raised as CorpusError.

    ``scale=None`` uses the corpus's own minimum and range per column, as IMEMNet does; a pair
    (lo, hi) uses the rating scale's ends instead.
    """
    try:
        return minmax_normalise(values, *(scale or (None, None)))
    except ValueError as err:
        raise CorpusError(str(err)) from None


def item_table(ids, modality: str, valence, arousal, source: str, paths,
               song=None, start_s=None) -> pd.DataFrame:
    """Build rows of the common item table (``split`` empty, ``song`` empty for images)."""
    n = len(ids)
    return pd.DataFrame({
        "id": [str(i) for i in ids],
        "modality": modality,
        "song": [""] * n if song is None else [str(s) for s in song],
        "split": [""] * n,
        "valence": np.asarray(valence, dtype=np.float64),
        "arousal": np.asarray(arousal, dtype=np.float64),
        "source": source,
        "path": list(paths),
        "start_s": np.full(n, np.nan) if start_s is None else np.asarray(start_s, dtype=np.float64),
    }, columns=ITEM_COLUMNS)


def _check_unique(ids: pd.Series, path, what: str, column: str) -> None:
    dup = ids[ids.duplicated(keep=False)]
    if len(dup):
        raise CorpusError(f"{what}: {path}, column '{column}': id {dup.iloc[0]!r} appears "
                          f"{int((ids == dup.iloc[0]).sum())} times (lines "
                          f"{[int(i) + 2 for i in dup.index[:4]]}); keep one row per id")


# ---------------------------------------------------------------------------------------------
# Images: IAPS, NAPS, EMOTIC and any folder with a CSV of VA
# ---------------------------------------------------------------------------------------------

def read_folder_corpus(folder, csv, id_col: str, valence_col: str, arousal_col: str,
                       scale: tuple[float, float] | None = None, source: str = "",
                       modality: str = "image", normalise: str = "corpus",
                       require_files: bool = True, sep: str | None = ",") -> pd.DataFrame:
    """Any corpus given as a folder of files plus a CSV of valence and arousal, one row per item.

    ``id_col`` names each item's file (its name without extension, searched in ``folder`` and its
    subfolders). ``scale = (lo, hi)`` is the rating scale: values outside it are an error.
    ``normalise="corpus"`` maps the corpus's own minimum and maximum to 0 and 1 (IMEMNet's
    per-corpus min-max normalisation); ``"scale"`` maps ``lo`` and ``hi`` to 0 and 1.
    """
    what = f"{source or 'corpus'} ratings"
    table = read_table(csv, what, sep=sep)
    require_columns(table, [id_col, valence_col, arousal_col], csv, what)
    lo, hi = scale if scale is not None else (None, None)
    valence = numeric_column(table, valence_col, csv, what, lo, hi)
    arousal = numeric_column(table, arousal_col, csv, what, lo, hi)
    ids = table[id_col]
    _check_unique(ids, csv, what, id_col)
    extensions = AUDIO_EXTENSIONS if modality == "music" else IMAGE_EXTENSIONS
    paths = _paths_for(list(ids), index_files(folder, extensions, what), folder, what, require_files)
    if normalise not in ("corpus", "scale"):
        raise CorpusError(f"{what}: normalise={normalise!r}; use 'corpus' or 'scale'")
    y = _normalised(np.column_stack([valence, arousal]), scale if normalise == "scale" else None)
    return item_table(ids, modality, y[:, 0], y[:, 1], source or Path(folder).name, paths)


def read_iaps(ratings, image_dir, id_col: str = "IAPS", valence_col: str = "valmn",
              arousal_col: str = "aromn", require_files: bool = True) -> pd.DataFrame:
    """IAPS (Lang et al.): 9-point valence and arousal means per picture.

    Assumed layout (the technical manual's "AllSubjects" table, saved as CSV or tab-separated
    text): one row per picture, ``IAPS`` the picture number as text (e.g. ``2352.1``; the dot
    matters, 2352.1 and 2352.2 are different pictures), ``valmn`` and ``aromn`` the means on the
    1-9 scale. Pictures are ``<IAPS>.jpg`` in ``image_dir``. Values are min-max normalised over
    the corpus.
    """
    return read_folder_corpus(image_dir, ratings, id_col, valence_col, arousal_col, scale=(1, 9),
                              source="iaps", require_files=require_files, sep=None)


def read_naps(ratings, image_dir, id_col: str = "ID", valence_col: str = "Valence_M",
              arousal_col: str = "Arousal_M", require_files: bool = True) -> pd.DataFrame:
    """NAPS (Marchewka et al. 2014): 9-point valence and arousal means per picture.

    Assumed layout (the NAPS spreadsheet exported to CSV): one row per picture, ``ID`` the
    picture's name as in IMEMNet (e.g. ``Animals_001_h``), ``Valence_M`` and ``Arousal_M`` the
    means on the 1-9 scale. Pictures are ``<ID>.jpg`` in ``image_dir``. Min-max normalised over
    the corpus.
    """
    return read_folder_corpus(image_dir, ratings, id_col, valence_col, arousal_col, scale=(1, 9),
                              source="naps", require_files=require_files, sep=None)


def read_emotic(annotations, image_dir, file_col: str = "Filename", folder_col: str = "Folder",
                valence_col: str = "Valence", arousal_col: str = "Arousal",
                require_files: bool = True) -> pd.DataFrame:
    """EMOTIC (Kosti et al. 2019): continuous valence and arousal (1-10) per annotated person.

    Assumed layout (the annotations exported to CSV, one row per person): ``Folder`` the image's
    subfolder (e.g. ``mscoco/images``), ``Filename`` the image file (e.g.
    ``COCO_train2014_000000318807.jpg``), ``Valence`` and ``Arousal`` on the 1-10 scale. An image
    with several people gets the mean of their annotations, as IMEMNet uses one label per image
    (our reading: docs/METHOD.md, section "One label per EMOTIC image"); its id is the file name
    without extension, as in the published pair lists.
    """
    what = "emotic annotations"
    table = read_table(annotations, what)
    require_columns(table, [file_col, valence_col, arousal_col], annotations, what)
    valence = numeric_column(table, valence_col, annotations, what, 1, 10)
    arousal = numeric_column(table, arousal_col, annotations, what, 1, 10)
    per_person = pd.DataFrame({"id": table[file_col].map(lambda f: Path(f).stem),
                               "valence": valence, "arousal": arousal})
    per_image = per_person.groupby("id", sort=True)[["valence", "arousal"]].mean()
    files = index_files(image_dir, IMAGE_EXTENSIONS, what)
    paths = _paths_for(list(per_image.index), files, image_dir, what, require_files)
    y = _normalised(per_image.to_numpy(), None)
    return item_table(per_image.index, "image", y[:, 0], y[:, 1], "emotic", paths)


# ---------------------------------------------------------------------------------------------
# Music: DEAM
# ---------------------------------------------------------------------------------------------

def song_ids(table: pd.DataFrame, path, what: str, column: str = "song_id") -> pd.Series:
    """DEAM song ids as text (``"5"``); an id that is not a whole number (``5.7``) is an error
    naming its line, since reading it as song 5 would join it to another song's data."""
    values = numeric_column(table, column, path, what, 0)
    bad = values != np.floor(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise CorpusError(f"{what}: {path}, line {row + 2}, column '{column}': song id "
                          f"{table[column].iloc[row]!r} is not a whole number; DEAM song ids are "
                          "integers (2, 3, ... 2058): fix or delete that row")
    return pd.Series(values.astype(np.int64).astype(str), index=table.index)


def _require_rows(table: pd.DataFrame, path, what: str) -> None:
    if len(table) == 0:
        raise CorpusError(f"{what}: {path} has a header but no rows (0 songs); the file is "
                          "incomplete: download it again (or remove it from the list of files)")


def _duplicate_lines(songs: pd.Series, lines: pd.Series, files: pd.Series | None = None) -> str:
    """``"song 5 on lines [3, 9]"`` (with the file of each line when ``files`` is given) for
    the first song listed more than once; empty when every song is listed once."""
    dup = songs[songs.duplicated(keep=False)]
    if not len(dup):
        return ""
    first = dup.iloc[0]
    where = songs == first
    if files is None:
        places = f"lines {lines[where].tolist()}"
    else:
        places = ", ".join(f"{f} line {n}" for f, n in zip(files[where], lines[where]))
    n_dup = int(songs[songs.duplicated()].nunique())
    more = f" ({n_dup} songs are listed more than once)" if n_dup > 1 else ""
    return f"song {first} appears {int(where.sum())} times: {places}{more}"


def read_deam_static(paths: Sequence, valence_col: str = "valence_mean",
                     arousal_col: str = "arousal_mean") -> pd.DataFrame:
    """DEAM's song-level (static) annotations: ``song, valence, arousal`` on the 1-9 scale.

    Reads ``static_annotations_averaged_songs_1_2000.csv`` and ``..._2000_2058.csv`` together
    (the second pads its header names with spaces and writes ``valence_ max_mean``; both are
    handled). A song listed twice is an error.
    """
    frames = []
    for path in paths:
        what = "DEAM static annotations"
        table = read_table(path, what)
        require_columns(table, ["song_id", valence_col, arousal_col], path, what)
        _require_rows(table, path, what)
        frames.append(pd.DataFrame({
            "song": song_ids(table, path, what).to_numpy(),
            "valence": numeric_column(table, valence_col, path, what, 1, 9),
            "arousal": numeric_column(table, arousal_col, path, what, 1, 9),
            "file": str(path), "line": np.arange(len(table)) + 2}))
    if not frames:
        raise CorpusError("DEAM static annotations: no file given; set deam_static_csvs in "
                          "params/imemnet.yaml")
    songs = pd.concat(frames, ignore_index=True)
    duplicate = _duplicate_lines(songs.song, songs.line, songs.file)
    if duplicate:
        raise CorpusError(f"DEAM static annotations: {duplicate}; keep one row per "
                          "song (list each static file once in deam_static_csvs)")
    return songs.drop(columns=["file", "line"])


def read_deam_dynamic(path, what: str = "DEAM dynamic annotations") -> pd.DataFrame:
    """One per-second DEAM annotation file (``arousal.csv`` or ``valence.csv``).

    Layout: one row per song, ``song_id`` then ``sample_15000ms, sample_15500ms, ...`` in
    [-1, 1]; songs with shorter annotations leave their last cells empty. Returns a float frame
    indexed by song id (text) whose columns are the sample times in seconds.
    """
    table = read_table(path, what)
    require_columns(table, ["song_id"], path, what)
    sample_cols = [c for c in table.columns if re.fullmatch(r"sample_\d+ms", c)]
    if not sample_cols:
        raise CorpusError(f"{what}: {path} has no column named like 'sample_15000ms'; this is "
                          "not a DEAM per-second annotation file")
    _require_rows(table, path, what)
    songs = song_ids(table, path, what)
    duplicate = _duplicate_lines(songs, pd.Series(np.arange(len(table)) + 2, index=table.index))
    if duplicate:
        raise CorpusError(f"{what}: {path}: {duplicate}; keep one row per song (the file must "
                          "be DEAM's, one row per song)")
    _warn_if_cut_short(path, len(sample_cols) + 1, what)
    values = np.column_stack([numeric_column(table, c, path, what, -1, 1, allow_missing=True)
                              for c in sample_cols])
    times = [int(c[len("sample_"):-2]) / 1000.0 for c in sample_cols]
    return pd.DataFrame(values, index=pd.Index(songs.to_numpy(), name="song"), columns=times)


def _warn_if_cut_short(path, n_fields: int, what: str) -> None:
    """Warn when a file's last line has no newline and fewer fields than the header: the file
    was cut short (an interrupted download), and the song on that line loses its last samples."""
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - 65536))
        tail = handle.read()
    if not tail or tail.endswith(b"\n"):
        return
    lines = tail.split(b"\n")
    last = lines[-1].decode("utf-8", "replace")
    fields = last.count(",") + 1
    if fields < n_fields:
        with open(path, "rb") as handle:
            line_no = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b"")) + 1
        warnings.warn(f"{what}: {path} looks cut short: its last line ({line_no}, song "
                      f"{last.split(',')[0].strip()!r}) has {fields} of {n_fields} fields and no "
                      "newline; that song keeps only the samples before the cut, and songs after "
                      "it are missing. Download the file again.", stacklevel=3)


def clip_windows(times: np.ndarray, values: np.ndarray, clip_seconds: float = CLIP_SECONDS,
                 align: str = "song") -> list[tuple[int, float, float]]:
    """Cut one song's per-second annotation into clips: ``(index, start_s, mean value)``.

    A clip is a ``clip_seconds`` window whose every annotation sample is present; its label is
    the mean of those samples (docs/METHOD.md, section "Music clips from DEAM"). ``align="song"``
    puts windows on multiples of ``clip_seconds`` from the song's start and numbers them from 1
    (window [16 s, 18 s) is clip 9): this reproduces the published IMEMNet ids, whose DEAM
    excerpts run from clip 9 (first window after the annotations start at 15 s) to clip 21.
    ``align="annotations"`` starts the first window at the first annotation and numbers from 1.
    Both are readings of the paper (docs/METHOD.md, section "DEAM clip windows and labels").
    """
    present = ~np.isnan(values)
    if not present.any():
        return []
    times, values = times[present], values[present]
    step = float(np.median(np.diff(times))) if len(times) > 1 else clip_seconds
    first = times[0]
    if align == "song":
        start = np.ceil(first / clip_seconds - 1e-9) * clip_seconds
        index0 = int(round(start / clip_seconds)) + 1
    elif align == "annotations":
        start, index0 = first, 1
    else:
        raise CorpusError(f"clip alignment {align!r} is unknown; use 'song' or 'annotations'")
    per_window = int(round(clip_seconds / step))
    clips = []
    k = 0
    while True:
        lo = start + k * clip_seconds
        inside = (times >= lo - 1e-6) & (times < lo + clip_seconds - 1e-6)
        if inside.sum() < per_window:
            break
        clips.append((index0 + k, float(lo), float(values[inside].mean())))
        k += 1
    return clips


def read_deam(audio_dir, static_csvs: Sequence, dynamic_dir, clip_seconds: float = CLIP_SECONDS,
              align: str = "song", require_audio: bool = True, check_audio: bool = True,
              n_jobs: int = 4, progress: bool = False) -> pd.DataFrame:
    """DEAM as music clips: one item per 2-s window with its own VA (IMEMNet, section 3).

    - ``audio_dir``: the release's ``MEMD_audio`` folder (``<song_id>.mp3``).
    - ``static_csvs``: the two static annotation files; they give the list of songs (1,802).
    - ``dynamic_dir``: the folder with the per-second ``valence.csv`` and ``arousal.csv`` (in the
      release: ``annotations averaged per song/dynamic (per second annotations)``).

    Each clip's valence and arousal is the mean of the per-second annotations inside its window
    (:func:`clip_windows`); then both are min-max normalised over all clips of the corpus. Clip
    ids are ``<song>-<k>``; ``start_s`` is the window's start in the song. Songs (or clips) with
    valence but no arousal, or the other way round, give no clips, with a warning that counts
    them. With ``check_audio`` each song's file is opened (:func:`check_audio_files`): a file that
    is empty, not audio, truncated or shorter than its annotations is an error here, not at
    feature time.
    """
    songs = read_deam_static(static_csvs)
    dynamic_dir = Path(dynamic_dir)
    if not dynamic_dir.is_dir():
        raise CorpusError(f"DEAM dynamic annotations: folder {dynamic_dir} does not exist; set "
                          "deam_dynamic_dir to the folder that holds valence.csv and arousal.csv")
    valence = read_deam_dynamic(dynamic_dir / "valence.csv")
    arousal = read_deam_dynamic(dynamic_dir / "arousal.csv")
    files = index_files(audio_dir, AUDIO_EXTENSIONS, "DEAM audio")
    _warn_missing_songs(songs.song, {"valence.csv": valence, "arousal.csv": arousal}, dynamic_dir)
    rows, one_sided = [], 0
    for song in songs.song:
        if song not in valence.index or song not in arousal.index:
            continue
        v = {k: (s, x) for k, s, x in clip_windows(np.asarray(valence.columns, float),
                                                   valence.loc[song].to_numpy(), clip_seconds, align)}
        a = {k: (s, x) for k, s, x in clip_windows(np.asarray(arousal.columns, float),
                                                   arousal.loc[song].to_numpy(), clip_seconds, align)}
        one_sided += len(set(v) ^ set(a))
        for k in sorted(set(v) & set(a)):
            rows.append((f"{song}-{k}", song, v[k][0], v[k][1], a[k][1]))
    if one_sided:
        warnings.warn(f"DEAM: {one_sided} clip windows have valence but no arousal annotation or "
                      f"the other way round (in {dynamic_dir}); they are left out, {len(rows)} "
                      "clips are kept. A per-second file cut short does this: compare the two "
                      "files' last lines.", stacklevel=2)
    if not rows:
        raise CorpusError(f"DEAM: no clip has both valence and arousal annotations in "
                          f"{dynamic_dir}; check that valence.csv and arousal.csv are DEAM's "
                          "per-second files")
    clips = pd.DataFrame(rows, columns=["id", "song", "start_s", "valence", "arousal"])
    paths = _paths_for(list(clips.song), files, audio_dir, "DEAM audio", require_audio, "songs")
    if check_audio:
        ends = (clips.start_s + clip_seconds).groupby(clips.song).max()
        check_audio_files({song: files[song] for song in ends.index if song in files},
                          ends.to_dict(), n_jobs=n_jobs, progress=progress)
    y = _normalised(clips[["valence", "arousal"]].to_numpy(), None)
    return item_table(clips.id, "music", y[:, 0], y[:, 1], "deam", paths,
                      song=clips.song, start_s=clips.start_s)


def _warn_missing_songs(songs: pd.Series, dynamic: dict[str, pd.DataFrame], folder) -> None:
    """Warn, with counts, about songs of the static files that a per-second file lacks."""
    for name, table in dynamic.items():
        missing = sorted(set(songs) - set(table.index), key=int)
        if missing:
            warnings.warn(f"DEAM: {len(missing)} of {len(songs)} songs of the static files have no "
                          f"row in {Path(folder) / name} ({len(table)} songs there; e.g. "
                          f"{missing[:5]}); they give no clips. If the file was cut short, "
                          "download it again.", stacklevel=3)


# ---------------------------------------------------------------------------------------------
# Audio files: a cheap check when the corpus is read
# ---------------------------------------------------------------------------------------------

#: Extensions libsndfile (soundfile) decodes; others (.m4a) are only checked for being non-empty.
SOUNDFILE_EXTENSIONS = (".mp3", ".wav", ".flac", ".ogg")
#: Slack between an audio file's length and the end of its last annotated clip (decoder padding).
AUDIO_END_SLACK_S = 0.25


def audio_problem(path, needed_s: float | None = None) -> str:
    """What is wrong with one audio file, or ``""``: empty, not audio, truncated, too short.

    Reads the header (length, sample rate) and decodes the last half second: a file cut short
    keeps the header of the whole song, so its tail cannot be decoded. ``needed_s`` is the end of
    the song's last annotated clip: a file shorter than that is not the annotated recording.
    """
    import soundfile as sf

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        return f"cannot be read ({err.strerror})"
    if size == 0:
        return "is empty (0 bytes)"
    if path.suffix.lower() not in SOUNDFILE_EXTENSIONS:
        return ""
    try:
        with sf.SoundFile(str(path)) as handle:
            frames, sr = handle.frames, handle.samplerate
            if frames <= 0 or sr <= 0:
                return "has no audio frames in its header"
            tail = min(frames, sr // 2)
            handle.seek(frames - tail)
            got = len(handle.read(tail, dtype="float32", always_2d=True))
    except Exception as err:  # libsndfile raises several kinds for non-audio or damaged files
        return f"is not a readable audio file ({type(err).__name__}: {str(err).strip()})"
    duration = frames / sr
    if got < tail:
        return (f"is truncated: its header says {duration:.1f} s but the audio ends before "
                "that (the file was cut short)")
    if needed_s is not None and duration + AUDIO_END_SLACK_S < needed_s:
        return (f"is {duration:.1f} s long but its annotations need {needed_s:.1f} s: the file "
                "is truncated or is not the annotated recording")
    return ""


def check_audio_files(files: dict[str, Path], needed_s: dict[str, float] | None = None,
                      n_jobs: int = 4, progress: bool = False, what: str = "DEAM audio") -> None:
    """Check each song's audio file with :func:`audio_problem` (threads; a progress bar when
    ``progress`` and many files). Every bad file is listed in one CorpusError."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    needed_s = needed_s or {}
    songs = list(files)
    with ThreadPoolExecutor(max_workers=max(1, int(n_jobs))) as pool:
        results = pool.map(lambda s: audio_problem(files[s], needed_s.get(s)), songs)
        problems = [(s, p) for s, p in zip(songs, tqdm(
            results, total=len(songs), desc=f"checking {what} files", leave=False,
            disable=not progress or len(songs) < 200)) if p]
    if problems:
        listed = "; ".join(f"{files[s]} {p}" for s, p in problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise CorpusError(f"{what}: {len(problems)} of {len(songs)} audio files cannot be used: "
                          f"{listed}{more}. Download those files again, or delete their songs' "
                          "rows from the annotation files")


# ---------------------------------------------------------------------------------------------
# IMEMNet files: pair lists and image VA
# ---------------------------------------------------------------------------------------------

def read_pairs(path) -> pd.DataFrame:
    """A pair list in the published IMEMNet format: ``music_clip_id image_id matching_score``.

    Returns ``music_id, image_id`` (text) and ``score`` (float in [0, 1]); an empty file gives an
    empty table (the audit and the dataset step refuse it with their own message). A line
    without exactly three fields is an error naming that line (counted from 1); blank lines are
    skipped.
    """
    path = Path(path)
    what = "pair list"
    if not path.is_file():
        raise CorpusError(f"{what}: file {path} does not exist")
    try:
        # utf-8-sig: a byte-order mark would otherwise stay in the first clip id ('\ufeff1967-11')
        text = path.read_text(encoding="utf-8-sig")
        lines = text.splitlines()
    except UnicodeDecodeError as err:
        raise CorpusError(f"{what}: {path} is not UTF-8 text ({err}); each line must be "
                          "'music_clip_id image_id matching_score'") from err
    fields = [line.split() for line in lines]
    numbered = [(n, f) for n, f in enumerate(fields, start=1) if f]
    bad = next((n for n, f in numbered if len(f) != 3), None)
    if bad is not None:
        raise CorpusError(f"{what}: {path}, line {bad}: expected 3 fields "
                          f"'music_clip_id image_id matching_score', found {len(fields[bad - 1])} "
                          f"({lines[bad - 1][:80]!r}); fix that line")
    table = pd.DataFrame([f for _, f in numbered], columns=[0, 1, 2], dtype=str)
    line_no = np.array([n for n, _ in numbered], dtype=np.int64)
    score = pd.to_numeric(table[2], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(score) | (score < 0) | (score > 1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise CorpusError(f"{what}: {path}, line {line_no[row]}, field matching_score: "
                          f"{table[2].iloc[row]!r} is not a number in [0, 1]; fix that line")
    _refuse_cut_last_line(path, text, table[2].tolist(), int(line_no[-1]) if len(line_no) else 0)
    return pd.DataFrame({"music_id": table[0].to_numpy(dtype=object),
                         "image_id": table[1].to_numpy(dtype=object), "score": score})


def _refuse_cut_last_line(path: Path, text: str, scores: list[str], last_line: int) -> None:
    """Refuse a pair list whose last line looks cut mid-score (an interrupted download).

    The sign is a file that does not end with a newline and whose last score has fewer decimals
    than every other score of the file (the published lists write 13 to 18): ``0.87`` after
    thousands of ``0.8757995366765425``. A hand-written list with short scores passes.
    """
    if len(scores) < 2 or text.endswith(("\n", "\r")):
        return
    decimals = [len(s.partition(".")[2]) for s in scores]
    if decimals[-1] < min(decimals[:-1]):
        raise CorpusError(f"pair list: {path}, line {last_line}: the file ends without a newline "
                          f"in the middle of a score ({scores[-1]!r} has {decimals[-1]} decimals, "
                          f"every other line at least {min(decimals[:-1])}): the file was cut "
                          "short; download it again (or delete that line)")


def write_pairs(pairs: pd.DataFrame, path) -> Path:
    """Write pairs in the published format, one ``music_clip_id image_id matching_score`` a line.

    Written to a temporary file in the same folder and renamed, so a file with the final name is
    always complete. Scores keep full float precision.
    """
    require_columns(pairs, PAIR_COLUMNS, "<pairs DataFrame>", "write_pairs")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(f"{m} {i} {float(s)!r}\n"
                                    for m, i, s in zip(pairs.music_id, pairs.image_id, pairs.score)))
    return path


@dataclass
class ImageVA:
    """Image VA labels by id; ``conflicts`` holds every row of an id given different labels."""

    labels: pd.DataFrame        # index id (text), columns valence, arousal; unambiguous ids only
    conflicts: pd.DataFrame     # columns id, valence, arousal, line: all rows of conflicting ids

    @property
    def conflicting_ids(self) -> list[str]:
        return sorted(self.conflicts.id.unique().tolist())


def read_va_labels(path, modality: str, id_cols: Sequence[str]) -> ImageVA:
    """A CSV of VA labels in [0, 1] by item id, for one modality (an ``items.csv`` works too: the
    other modality's rows are skipped).

    An id listed twice with the same label is kept once. An id listed with *different* labels is
    left out of ``labels``, returned in ``conflicts`` and named in a warning: no label is picked
    silently.
    """
    what = f"{modality} VA"
    table = read_table(path, what)
    id_col = next((c for c in id_cols if c in table.columns), None)
    if id_col is None:
        raise CorpusError(f"{what}: {path} has none of the id columns {list(id_cols)} (columns "
                          f"found: {list(table.columns)}); name the {modality} id column "
                          f"{' or '.join(repr(c) for c in id_cols[:2])}")
    require_columns(table, ["valence", "arousal"], path, what)
    frame = pd.DataFrame({"id": table[id_col],
                          "valence": numeric_column(table, "valence", path, what, 0, 1),
                          "arousal": numeric_column(table, "arousal", path, what, 0, 1),
                          "line": np.arange(len(table)) + 2})
    if "modality" in table.columns:   # an items.csv: this modality only
        frame = frame[table.modality.to_numpy() == modality]
    distinct = frame.drop_duplicates(["id", "valence", "arousal"])
    conflicting = distinct.id[distinct.id.duplicated()].unique()
    conflicts = frame[frame.id.isin(conflicting)].sort_values(["id", "line"]).reset_index(drop=True)
    if len(conflicting):
        warnings.warn(f"{path}: {len(conflicting)} {modality} ids have conflicting VA labels and are "
                      f"left out: {sorted(conflicting)}")
    labels = distinct[~distinct.id.isin(conflicting)].set_index("id")[["valence", "arousal"]]
    return ImageVA(labels=labels, conflicts=conflicts)


def read_image_va(path, id_cols: Sequence[str] = ("img", "id")) -> ImageVA:
    """Image VA, e.g. IMEMNet-C's ``image_va.csv`` (``,img,valence,arousal``), by
    :func:`read_va_labels`. image_va.csv has 8 ids with different labels (e.g. IAPS 2352 with
    valence 0.11, 0.80 and 0.85: the IAPS suffixes .1/.2 were lost); they are reported, not used.
    """
    return read_va_labels(path, "image", id_cols)


# ---------------------------------------------------------------------------------------------
# All configured corpora, and loading one clip or image
# ---------------------------------------------------------------------------------------------

def _given(params: dict, key: str):
    value = params.get(key, "")
    return value not in ("", None, [])


def load_imemnet_items(params: dict, progress: bool = False) -> pd.DataFrame:
    """The item table of every corpus configured in the ``dataset`` section of params/imemnet.yaml.

    A corpus is used when its keys are set (non-empty): ``deam_dir`` + ``deam_static_csvs``
    (comma-separated paths) +
    ``deam_dynamic_dir``; ``iaps_ratings`` + ``iaps_dir``; ``naps_ratings`` + ``naps_dir``;
    ``emotic_annotations`` + ``emotic_dir``. Paths are resolved against the repository root.
    Each corpus is normalised on its own; ids must be unique across corpora.
    """
    params = params.get("dataset", params)
    parts = []
    if any(_given(params, k) for k in ("deam_dir", "deam_static_csvs", "deam_dynamic_dir")):
        for key in ("deam_dir", "deam_static_csvs", "deam_dynamic_dir"):
            if not _given(params, key):
                raise CorpusError(f"params: DEAM needs {key} set (dataset section of "
                                  "params/imemnet.yaml)")
        csvs = params["deam_static_csvs"]   # one string, paths separated by commas
        csvs = [c.strip() for c in csvs.split(",") if c.strip()] if isinstance(csvs, str) else csvs
        parts.append(read_deam(resolve(params["deam_dir"]), [resolve(c) for c in csvs],
                               resolve(params["deam_dynamic_dir"]),
                               n_jobs=int(params.get("n_jobs", 4) or 4), progress=progress))
    for name, reader, rating_key, dir_key in (("iaps", read_iaps, "iaps_ratings", "iaps_dir"),
                                              ("naps", read_naps, "naps_ratings", "naps_dir"),
                                              ("emotic", read_emotic, "emotic_annotations",
                                               "emotic_dir")):
        if _given(params, rating_key) or _given(params, dir_key):
            if not (_given(params, rating_key) and _given(params, dir_key)):
                raise CorpusError(f"params: {name} needs both {rating_key} and {dir_key} set "
                                  "(dataset section of params/imemnet.yaml)")
            parts.append(reader(resolve(params[rating_key]), resolve(params[dir_key])))
    if not parts:
        raise CorpusError("params: no corpus is configured; set the DEAM and image corpus paths "
                          "in the dataset section of params/imemnet.yaml")
    items = pd.concat(parts, ignore_index=True)
    dup = items.id[items.id.duplicated(keep=False)]
    if len(dup):
        sources = sorted(set(items.source[items.id == dup.iloc[0]]))
        raise CorpusError(f"items: id {dup.iloc[0]!r} comes from {sources}; ids must be unique "
                          "across corpora (rename the files of one corpus)")
    return items


def load_song_clips(path, starts: Sequence[float], sr: int = SR,
                    seconds: float = CLIP_SECONDS) -> np.ndarray:
    """The clips of one song that start at ``starts`` (s): float32 ``[len(starts), sr * seconds]``,
    mono, resampled to ``sr``. The song is decoded once, up to the end of its last clip, and the
    clips are cut from it (decoding a compressed file again for each clip costs ten times more).

    A clip that ends where the song really ends (the file's header says so) is padded with
    silence. A file that gives less audio than its header promises is truncated, and one that
    ends before a clip's start is shorter than its annotations: both are errors that name the
    file (the read-time check, :func:`check_audio_files`, normally catches them first).
    """
    import librosa  # slow to import: only when audio is read
    import soundfile as sf

    n = int(round(sr * seconds))
    starts = np.asarray(starts, dtype=np.float64)
    try:
        y, _ = librosa.load(str(path), sr=sr, mono=True, duration=float(starts.max()) + seconds)
    except Exception as err:  # librosa/soundfile/audioread raise many kinds
        raise CorpusError(f"audio: cannot read {path} ({type(err).__name__}: {err}); check that "
                          "the file is a complete audio file (mp3/wav) and that ffmpeg or "
                          "libsndfile can decode it") from err
    decoded_s = y.size / sr
    try:
        header_s = sf.info(str(path)).duration
    except Exception:  # not a libsndfile format: trust the decoder's length
        header_s = decoded_s
    out = np.zeros((len(starts), n), dtype=np.float32)
    for row, start in enumerate(starts):
        if decoded_s < min(header_s, start + seconds) - 0.05:
            raise CorpusError(f"audio: {path} is truncated: its header says {header_s:.1f} s but "
                              f"the audio ends at {decoded_s:.1f} s; download the file again")
        if decoded_s <= start:
            raise CorpusError(f"audio: {path} is {header_s:.1f} s long, shorter than its "
                              f"annotations (a clip starts at {start:.1f} s): the file is "
                              "truncated or is not the annotated recording")
        clip = y[int(round(start * sr)): int(round(start * sr)) + n]
        out[row, :clip.size] = clip
        _warn_if_padded(path, start, seconds, decoded_s, (n - clip.size) / sr)
    return out


class AudioWindowWarning(UserWarning):
    """A clip window that crosses the real end of its audio file and was padded with silence."""


def _warn_if_padded(path, start: float, seconds: float, end_s: float, missing_s: float) -> None:
    """Say which file and how many seconds of a clip are silence because the audio ended: a
    window past the end of a cut file would otherwise train on zeros without a word."""
    if missing_s > 0.01:
        warnings.warn(f"audio: {path}: the clip {start:.2f}-{start + seconds:.2f} s crosses the end "
                      f"of the audio at {end_s:.2f} s; its last {missing_s:.2f} s "
                      f"({100 * missing_s / seconds:.0f}%) are silence padding. If the file should "
                      "be longer, it is cut short: download it again", AudioWindowWarning,
                      stacklevel=3)


def load_audio_clip(path, start_s: float, sr: int = SR, seconds: float = CLIP_SECONDS) -> np.ndarray:
    """``seconds`` of mono audio from ``start_s``, resampled to ``sr``: float32 ``[sr * seconds]``
    (:func:`load_song_clips` for one clip: the same checks and padding)."""
    return load_song_clips(path, [start_s], sr, seconds)[0]


def load_image(path, size: int) -> np.ndarray:
    """An image as RGB uint8 ``[size, size, 3]``, the whole image resized (the paper resizes to
    224 x 224), through the one image loader :func:`cdcml_lib.data.images.load_image`."""
    try:
        return images.load_image(path, size)
    except images.ImageFileError as err:
        raise CorpusError(str(err)) from None
