"""A user's own files through a trained run: their predicted valence-arousal, and their matches.

- :func:`read_song_windows` reads a song window by window over its WHOLE length (2 s windows,
  ``hop_s`` apart, plus one window ending at the song's end so the tail is covered), seeking in
  the file with soundfile: one window of the decoded file is in memory at a time, never the whole
  song. Each window is mixed to mono and resampled to 22,050 Hz on its own, as the dataset build
  reads a DEAM clip (``data.corpora.load_audio_clip``).
- :func:`read_query` reads an image (through the one image loader, ``data.images.load_image``,
  the whole image resized as for training) or a song (its windows' music features).
- :func:`predict` gives a file's own predicted VA: for a song the MEAN over its windows, with
  every window's value in ``Prediction.windows``.
- :func:`best_matches` ranks a collection against a query (the paper's Figure 3):
  across modalities by the similarity predictor's s_hat (Eq. 6's network); for a song, s_hat of
  an image is the mean over the song's windows.
- :func:`match` / :func:`match_paths` do both for files and folders; folders go in batches with
  a progress bar and can be written as CSV (``python -m cdcml_lib.match``).

Warnings (:class:`QueryWarning`, also listed in ``Prediction.warnings``): digital silence, a
clip shorter than the model's 2 s window (padded with silence), and music far outside the
training distribution. The last is measured with the run's own music standardiser (training
statistics of each of the 193 feature rows, ``runs.loader.RowStandardiser``): the standardised
features z of a training clip have a mean square of 1 over rows and frames by construction;
a window whose root-mean-square z exceeds :data:`OOD_RMS_Z` (2, where the training clips of a
smoke run reach at most 1.25) lies far outside what the run saw; a song is flagged when most of
its non-silent windows are.
Every prediction also carries its *novelty* (:mod:`cdcml_lib.explore.novelty`): how far the
file lies from the run's own training media, for images as for songs. Above 1 the model has not
seen media like it, and the prediction says so plainly (``Prediction.unfamiliar``, the CSV's
``unfamiliar`` column, a warning in the terminal). A run trained on the embedded benchmark has
only seen synthetic media: :func:`run_notice` says so once, up front.
Unreadable files raise :class:`QueryFileError` (audio) or ``data.images.ImageFileError``
(images), each naming the file and the cause.
"""
from __future__ import annotations

import argparse
import contextlib
import inspect
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd

from cdcml_lib.audio import CLIP_SAMPLES, CLIP_SECONDS, SR
from cdcml_lib.data.dataset import open_dataset
from cdcml_lib.data.features import extract_features, log_spectrogram
from cdcml_lib.data.images import IMAGE_SUFFIXES, ImageFileError, load_image, resize_images
from cdcml_lib.explore import novelty
from cdcml_lib.nets import music_input
from cdcml_lib.runs.train import load_trained
from cdcml_lib.workflow.paths import resolve

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".caf", ".w64")
#: A window whose peak |sample| stays below this (about -80 dBFS) is digital silence.
SILENCE_PEAK = 1e-4
#: A window with root-mean-square standardised feature z above this is out of distribution.
#: Measured on a smoke run (1 epoch): training clips 0.84-1.25, test clips 0.87-1.15; white
#: noise 2.2, a chirp 2.1, clicks 3.2, a -60 dBFS tone 3.8; a steady 440 Hz sine 1.7 (not flagged).
OOD_RMS_Z = 2.0
#: Windows read, featurised and encoded together (bounds memory for long songs).
WINDOW_BLOCK = 32


class QueryFileError(ValueError):
    """A query file that cannot be read; the message names the file and the cause."""


class QueryWarning(UserWarning):
    """A query that is read, but whose prediction should not be trusted as it is."""


# --- reading a song window by window -----------------------------------------------------------

@contextlib.contextmanager
def quiet_stderr():
    """Hold back what C decoders write to file descriptor 2 (libmpg123's "Illegal
    Audio-MPEG-Header" notes): a user sees the kit's one message with the true cause instead."""
    fd = 2   # C libraries write to descriptor 2 whatever Python's sys.stderr is now
    sys.stderr.flush()
    saved = os.dup(fd)
    sink = os.open(os.devnull, os.O_WRONLY)
    os.dup2(sink, fd)
    try:
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(sink)


def what_it_is(path: Path) -> str | None:
    """A plain description of a file that is not audio, from its first bytes, or None."""
    with open(path, "rb") as handle:
        head = handle.read(512)
    if not head:
        return "an empty file (0 bytes)"
    if head.lstrip(b"\xef\xbb\xbf").startswith((b"<html", b"<!DOCTYPE", b"<!doctype")):
        return "an HTML page (a download that saved the web page, not the audio)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if all(c.isprintable() or c in "\r\n\t" for c in text):
        return f"a text file (it starts {text[:40]!r})"
    return None


def _open_audio(path: Path):
    """An open ``soundfile.SoundFile``, or a :class:`QueryFileError` naming the file and cause."""
    import soundfile as sf

    if not path.is_file():
        raise QueryFileError(f"audio: {path}: no such file")
    try:
        with quiet_stderr():
            return sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        found = what_it_is(path)
        if found:
            raise QueryFileError(f"audio: {path}: not audio: {found}; give the real audio "
                                 "file") from None
        # libsndfile repeats the path, and for a non-MP3 says 'does not exist ... pipe?': keep
        # only its first sentence when it is informative
        cause = str(err).split("': ", 1)[-1].split(".Note:")[0].strip()
        if "possibly a pipe" in cause:
            cause = "its content is not any audio format libsndfile knows"
        raise QueryFileError(
            f"audio: {path}: not an audio file libsndfile can decode ({cause}). Readable: "
            f"{', '.join(s.lstrip('.') for s in AUDIO_SUFFIXES)}; convert other formats "
            "(e.g. m4a) first, e.g. ffmpeg -i song.m4a song.wav") from None


def window_starts(n_samples: int, sr: int, hop_s: float) -> np.ndarray:
    """Start times (seconds) of the 2 s windows covering ``n_samples`` samples at ``sr``.

    Windows start every ``hop_s`` seconds while they fit; if the song's tail is not covered,
    one more window ends exactly at the end. A song shorter than 2 s has one window at 0.
    """
    if hop_s <= 0:
        raise ValueError(f"hop_s={hop_s}: the hop between windows must be positive (seconds)")
    duration = n_samples / sr
    if duration <= CLIP_SECONDS:
        return np.zeros(1)
    starts = np.arange(0.0, duration - CLIP_SECONDS + 1e-9, hop_s)
    if starts[-1] + CLIP_SECONDS < duration - 1e-6:
        starts = np.append(starts, duration - CLIP_SECONDS)
    return starts


def read_song_windows(path: str | os.PathLike, hop_s: float = CLIP_SECONDS,
                      block: int = WINDOW_BLOCK) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(starts [b], clips float32 [b, 44100])``: blocks of mono 22,050 Hz windows.

    The file is opened once and each window is read by seeking to its first frame and reading
    its 2 s of frames at the file's own rate: at most one window of decoded audio (plus one block
    of resampled windows) is in memory, whatever the song's length.
    """
    import librosa

    path = Path(path)
    with _open_audio(path) as f:
        sr_in, n_in = f.samplerate, f.frames
        n_win = int(round(CLIP_SECONDS * sr_in))
        starts = window_starts(n_in, sr_in, hop_s)
        for b in range(0, len(starts), block):
            part = starts[b:b + block]
            clips = np.zeros((len(part), CLIP_SAMPLES), dtype=np.float32)
            for i, start in enumerate(part):
                try:
                    with quiet_stderr():
                        f.seek(int(round(start * sr_in)))
                        frames = f.read(n_win, dtype="float32", always_2d=True)
                except (RuntimeError, ValueError) as err:  # libsndfile on truncated data
                    raise QueryFileError(f"audio: {path}: cannot decode the window at "
                                         f"{start:.1f} s ({err}); the file is probably "
                                         "truncated or corrupt") from None
                short_s = (min(n_win, n_in - int(round(start * sr_in))) - len(frames)) / sr_in
                if short_s > 0.05:   # the header promised audio the file does not hold
                    raise QueryFileError(
                        f"audio: {path}: the window at {start:.1f} s gets {short_s:.2f} s less "
                        f"audio than the header promises ({n_in / sr_in:.1f} s in all); the file "
                        "is truncated: get it again")
                mono = frames.mean(axis=1)
                if sr_in != SR and len(mono):
                    mono = librosa.resample(mono, orig_sr=sr_in, target_sr=SR)
                clips[i, :min(CLIP_SAMPLES, len(mono))] = mono[:CLIP_SAMPLES]
            yield part, clips


def audio_duration(path: str | os.PathLike) -> float:
    """The song's length in seconds, from the file's header (nothing decoded)."""
    with _open_audio(Path(path)) as f:
        return f.frames / f.samplerate


# --- a query read as model input --------------------------------------------------------------

@dataclass
class Query:
    """A file read as model input.

    ``inputs`` is uint8 ``[1, S, S, 3]`` for an image, or music input ``[W, R, T]`` (one row per
    window: the 193x87 features, or L3-Net's log-spectrogram) for a song, with the windows'
    ``starts`` (s), ``peaks`` (max |sample|) and the song's ``duration_s``.
    """

    path: str
    modality: str
    inputs: np.ndarray
    starts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    peaks: np.ndarray = field(default_factory=lambda: np.zeros(0))
    duration_s: float = float("nan")


def modality_of(path: str | os.PathLike) -> str:
    """``"image"`` or ``"music"`` from the file's suffix, or a ValueError naming both lists."""
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in AUDIO_SUFFIXES:
        return "music"
    raise ValueError(f"{path}: unknown suffix {suffix!r}; use an image "
                     f"({', '.join(IMAGE_SUFFIXES)}) or audio ({', '.join(AUDIO_SUFFIXES)}) file")


def music_inputs(clips: np.ndarray, model_name: str, feature_backend: str = "fast") -> np.ndarray:
    """What the run's music branch takes for float32 clips ``[b, 44100]``."""

    if music_input(model_name) == "log_spectrogram":
        return log_spectrogram(clips)
    return extract_features(clips, backend=feature_backend)


def read_query(path: str | os.PathLike, params: dict, hop_s: float = CLIP_SECONDS) -> Query:
    """Read one file as the run with ``params`` (its params.json) reads its inputs.

    For a song this holds every window's music input (``[W, 193, 87]``, 67 kB a window);
    :func:`predict_file` streams instead and keeps only the windows' embeddings.
    """
    path = Path(path)
    if modality_of(path) == "image":
        return Query(str(path), "image", load_image(path, int(params["image_size"]))[None])
    starts, peaks, blocks = [], [], []
    for s, clips in read_song_windows(path, hop_s):
        starts.append(s)
        peaks.append(np.abs(clips).max(axis=1))
        blocks.append(music_inputs(clips, params["model"], params.get("feature_backend", "fast")))
    return Query(str(path), "music", np.concatenate(blocks), np.concatenate(starts),
                 np.concatenate(peaks), audio_duration(path))


def song_warnings(path: str, duration_s: float, peaks: np.ndarray, z: np.ndarray,
                  novel: np.ndarray | None = None, problem: str = "") -> list[str]:
    """The warnings of a song: too short, digital silence, far out of distribution, unlike the
    run's training music (most non-silent windows' novelty above 1)."""
    out = []
    if duration_s < CLIP_SECONDS:
        out.append(f"{path}: {duration_s:.2f} s is shorter than the model's {CLIP_SECONDS:g} s "
                   "window; it was padded with silence, so the prediction partly describes silence")
    silent = peaks < SILENCE_PEAK
    if silent.all():
        out.append(f"{path}: digital silence (peak below {SILENCE_PEAK:g}); the model has "
                   "nothing to rate and its prediction means nothing")
        return out
    if silent.any():
        out.append(f"{path}: {int(silent.sum())} of {len(silent)} windows are digital silence; "
                   "they are included in the mean")
    if np.mean(z[~silent] > OOD_RMS_Z) > 0.5:
        out.append(f"{path}: far outside the run's training music: the median window's RMS "
                   f"standardised feature is {np.median(z[~silent]):.1f} (training clips: about 1; "
                   f"threshold {OOD_RMS_Z:g}); the prediction is an extrapolation")
    if novel is not None and np.isnan(novel).all() and problem:
        out.append(f"{path}: {problem}")
    elif novel is not None and song_unfamiliar(novel, peaks):
        share = np.mean(novel[~silent] > 1)
        out.append(f"{path}: " + novelty.unfamiliar_message(
            f"this song ({share:.0%} of its sounding windows)", float(np.median(novel[~silent]))))
    return out


def song_unfamiliar(novel: np.ndarray, peaks: np.ndarray) -> bool:
    """A song is unfamiliar when most of its non-silent windows are (novelty above 1)."""
    sounding = peaks >= SILENCE_PEAK
    return bool(sounding.any() and np.mean(novel[sounding] > 1) > 0.5)


def rms_z(trained, inputs: np.ndarray) -> np.ndarray:
    """Root-mean-square of the run's standardised music input per window ``[W]`` (1 on average
    over the training clips by construction of the standardiser)."""
    z = trained.standardiser(inputs).numpy()
    return np.sqrt(np.mean(z.astype(np.float64) ** 2, axis=(1, 2)))


# --- has the model seen media like this? --------------------------------------------------------

def attach_guard(trained, run_dir=None) -> novelty.NoveltyGuard | None:
    """The run's novelty guard (fitted on first use, cached in the run folder), kept on
    ``trained``; None, with the reason in ``trained.novelty_problem``, when it cannot be fitted
    (the run's dataset is not on this machine)."""
    if not hasattr(trained, "novelty_guard"):
        try:
            trained.novelty_guard = novelty.guard_for(trained, run_dir)
            trained.novelty_problem = ""
        except (OSError, ValueError, KeyError) as err:
            trained.novelty_guard = None
            trained.novelty_problem = (f"not checked whether the model has seen media like this "
                                       f"(the run's training items cannot be read: {err})")
    return trained.novelty_guard


def novelty_of(trained, modality: str, inputs: np.ndarray) -> np.ndarray:
    """Each input's novelty (above 1: unlike anything the run trained on), NaN when unchecked."""
    guard = attach_guard(trained)
    if guard is None:
        return np.full(len(inputs), np.nan)
    return guard.novelty(trained, modality, inputs)


def image_warnings(trained, path: str, score: float) -> list[str]:
    """An image's warning when the model has not seen images like it (or could not check)."""
    if np.isnan(score):
        return [f"{path}: {trained.novelty_problem}"] if getattr(trained, "novelty_problem", "") else []
    if score > 1:
        return [f"{path}: " + novelty.unfamiliar_message("this image", score)]
    return []


def run_notice(trained) -> str:
    """What the run was trained on, said once before any prediction; for the embedded benchmark,
    that its ratings of real media are not validated."""
    corpus = novelty.run_corpus(trained)
    line = f"run {trained.params.get('run_dir', '?')}: trained on the {corpus!r} corpus"
    if corpus == "embedded":
        line += ("; NOTE: that is the kit's synthetic benchmark (generated images and tones). Its "
                 "ratings of real photos and music are NOT validated: a model of these cues has never "
                 "been checked against human ratings of real media, and its seeds disagree on the "
                 "level of the same song (docs/YOUR_MEDIA.md)")
    return line


# --- predictions --------------------------------------------------------------------------------

@dataclass
class Prediction:
    """A file's own predicted VA; ``windows`` holds a song's per-window values."""

    path: str
    modality: str
    valence: float
    arousal: float
    windows: pd.DataFrame | None = None  # start_s, pred_valence, pred_arousal, peak, rms_z
    duration_s: float = float("nan")
    warnings: list[str] = field(default_factory=list)
    embedding: np.ndarray | None = None   # [W, D] (songs) or [1, D] (images)
    #: how far the file lies from the run's training media (a song's: its median window's);
    #: above 1 the model has not seen media like it; NaN when it could not be checked
    novelty: float = float("nan")
    #: True when the model has not seen media like this file: its VA and matches are guesses
    unfamiliar: bool = False

    def row(self) -> dict:
        return {"path": self.path, "modality": self.modality, "pred_valence": self.valence,
                "pred_arousal": self.arousal,
                "n_windows": 1 if self.windows is None else len(self.windows),
                "duration_s": self.duration_s, "novelty": self.novelty,
                "unfamiliar": self.unfamiliar, "warnings": " | ".join(self.warnings)}


def predict_va(trained, f: np.ndarray, modality: str) -> np.ndarray:
    """Predicted VA ``[N, 2]`` of embeddings; models with one VA head per modality are told which."""
    if "modality" in inspect.signature(trained.predict_va).parameters:
        return np.asarray(trained.predict_va(f, modality=modality), dtype=float)
    return np.asarray(trained.predict_va(f), dtype=float)


def encode(trained, modality: str, inputs: np.ndarray) -> np.ndarray:
    return np.asarray(trained.encode_images(inputs) if modality == "image"
                      else trained.encode_music(inputs))


def predict_query(trained, q: Query) -> Prediction:
    """The predicted VA of a read query (a song's: the mean over its windows)."""
    f = encode(trained, q.modality, q.inputs)
    va = predict_va(trained, f, q.modality)
    novel = novelty_of(trained, q.modality, q.inputs)
    if q.modality == "image":
        return image_prediction(trained, q.path, va[0], f, float(novel[0]))
    z = rms_z(trained, q.inputs)
    peaks = q.peaks if len(q.peaks) else np.ones(len(f))
    windows = pd.DataFrame({"start_s": q.starts if len(q.starts) else np.zeros(len(f)),
                            "pred_valence": va[:, 0], "pred_arousal": va[:, 1],
                            "peak": peaks, "rms_z": z, "novelty": novel})
    return song_prediction(trained, q.path, va, windows, q.duration_s, f)


def image_prediction(trained, path: str, va: np.ndarray, f: np.ndarray, score: float) -> Prediction:
    """An image's prediction with its novelty and, when unfamiliar, the plain warning."""
    return Prediction(path, "image", float(va[0]), float(va[1]), embedding=f.reshape(1, -1),
                      novelty=score, unfamiliar=bool(score > 1),
                      warnings=image_warnings(trained, path, score))


def song_prediction(trained, path: str, va: np.ndarray, windows: pd.DataFrame, duration: float,
                    f: np.ndarray) -> Prediction:
    """A song's prediction from its windows (``start_s, pred_*, peak, rms_z, novelty``)."""
    peaks, novel = windows["peak"].to_numpy(), windows["novelty"].to_numpy()
    sounding = novel[peaks >= SILENCE_PEAK]
    return Prediction(path, "music", float(va[:, 0].mean()), float(va[:, 1].mean()), windows,
                      duration, song_warnings(path, duration, peaks, windows["rms_z"].to_numpy(),
                                              novel, getattr(trained, "novelty_problem", "")),
                      f, novelty=float(np.median(sounding)) if len(sounding) else float("nan"),
                      unfamiliar=song_unfamiliar(novel, peaks))


def predict_file(trained, path: str | os.PathLike, hop_s: float = CLIP_SECONDS) -> Prediction:
    """Read and predict one file; a song block by block (:func:`read_song_windows`), keeping
    only each window's embedding, VA, peak and RMS z, so memory stays bounded for any length."""
    path = Path(path)
    if modality_of(path) == "image":
        return predict_query(trained, read_query(path, trained.params))
    parts: dict[str, list] = {"start_s": [], "peak": [], "rms_z": [], "novelty": [], "f": []}
    for starts, clips in read_song_windows(path, hop_s):
        inputs = music_inputs(clips, trained.params["model"],
                              trained.params.get("feature_backend", "fast"))
        parts["start_s"].append(starts)
        parts["peak"].append(np.abs(clips).max(axis=1))
        parts["rms_z"].append(rms_z(trained, inputs))
        parts["novelty"].append(novelty_of(trained, "music", inputs))
        parts["f"].append(encode(trained, "music", inputs))
    f = np.concatenate(parts.pop("f"))
    va = predict_va(trained, f, "music")
    windows = pd.DataFrame({k: np.concatenate(v) for k, v in parts.items()})
    windows.insert(1, "pred_valence", va[:, 0])
    windows.insert(2, "pred_arousal", va[:, 1])
    return song_prediction(trained, str(path), va, windows, audio_duration(path), f)


def _warn(messages: Sequence[str]) -> None:
    for m in messages:
        warnings.warn(m, QueryWarning, stacklevel=3)


def predict(trained, path: str | os.PathLike, hop_s: float = CLIP_SECONDS) -> Prediction:
    """The predicted (valence, arousal) of one image or song file under a trained run.

    A song's VA is the mean over its windows (``hop_s`` apart, covering the whole song); the
    per-window values are in ``.windows``. Warnings are issued as :class:`QueryWarning`.
    """
    pred = predict_file(trained, path, hop_s)
    _warn(pred.warnings)
    return pred


# --- matches -----------------------------------------------------------------------------------

@dataclass
class Collection:
    """Items of one modality to match against, encoded once."""

    modality: str
    ids: np.ndarray
    embedding: np.ndarray          # [N, D]
    pred_va: np.ndarray            # [N, 2]
    va: np.ndarray | None = None   # [N, 2] labels, when known


def dataset_collection(trained, folder: Any, modality: str, split: str = "test") -> Collection:
    """The ``split`` items of ``modality`` in a dataset folder (path or DatasetFolder), encoded."""

    ds = open_dataset(resolve(folder)) if isinstance(folder, (str, os.PathLike)) else folder
    items = ds.items
    part = items[(items["split"] == split) & (items["modality"] == modality)]
    if part.empty:
        raise ValueError(f"the dataset folder has no {modality} items in split {split!r}; "
                         f"splits present: {sorted(items['split'].unique())}")
    rows = part["row"].to_numpy(dtype=int)
    name = "images" if modality == "image" else music_input(trained.params["model"])
    inputs = np.asarray(ds.array(name)[np.sort(rows)])[np.argsort(np.argsort(rows))]
    return array_collection(trained, modality, inputs, part["id"].astype(str).to_numpy(),
                            part[["valence", "arousal"]].to_numpy(dtype=float))


def array_collection(trained, modality: str, inputs: np.ndarray, ids: Sequence[str] | None = None,
                     va: np.ndarray | None = None) -> Collection:
    """A collection from model inputs (uint8 images ``[N,S,S,3]`` or music inputs ``[N,R,T]``)."""
    is_images = inputs.ndim == 4 and inputs.dtype == np.uint8
    if (modality == "image") != is_images:
        expected = "uint8 [N,S,S,3]" if modality == "image" else "float [N,193,87]"
        raise ValueError(f"the collection should hold {modality} inputs ({expected}), got shape "
                         f"{inputs.shape} dtype {inputs.dtype}")
    f = encode(trained, modality, inputs)
    ids = np.asarray(ids if ids is not None else [str(i) for i in range(len(inputs))]).astype(str)
    return Collection(modality, ids, f, predict_va(trained, f, modality),
                      None if va is None else np.asarray(va, dtype=float))


def rank(trained, f_q: np.ndarray, q_mod: str, coll: Collection, k: int) -> pd.DataFrame:
    """The ``k`` best items of ``coll`` for query embeddings ``f_q [W, D]`` (W windows of a song,
    or one row).

    Across modalities the score is s_hat of the similarity predictor (Eq. 6's network), averaged
    over the query's rows (a song's windows); within a modality the items are ranked by the
    distance to the mean query embedding (``score`` is then NaN).
    """
    f_c = coll.embedding
    distance = np.linalg.norm(f_c - f_q.mean(axis=0, keepdims=True), axis=1)
    if coll.modality == q_mod:
        score = np.full(len(f_c), np.nan)
        order = np.argsort(distance, kind="stable")
    else:
        score = np.zeros(len(f_c))
        for w in f_q:  # one query row at a time: W x N pairs never sit in memory together
            rep = np.repeat(w[None], len(f_c), axis=0)
            pair = (rep, f_c) if q_mod == "image" else (f_c, rep)
            score += np.asarray(trained.similarity(*pair), dtype=float).reshape(-1)
        score /= len(f_q)
        order = np.argsort(-score, kind="stable")
    order = order[:k]
    out = pd.DataFrame({"rank": np.arange(1, len(order) + 1), "id": coll.ids[order],
                        "modality": coll.modality, "score": score[order],
                        "distance": distance[order], "pred_valence": coll.pred_va[order, 0],
                        "pred_arousal": coll.pred_va[order, 1]})
    if coll.va is not None:
        out["valence"], out["arousal"] = coll.va[order, 0], coll.va[order, 1]
    return out


def array_query(query: np.ndarray, params: dict) -> Query:
    """A query given in memory: uint8 ``[H,W,3]`` image, 1-D waveform (22,050 Hz, read in 2 s
    windows) or one music input matrix ``[R, T]``."""
    arr = np.asarray(query)
    if arr.ndim == 3 and arr.shape[-1] == 3 and arr.dtype == np.uint8:
        return Query("<array>", "image", resize_images(arr[None], int(params["image_size"])))
    if arr.ndim == 2 and arr.dtype != np.uint8:
        return Query("<array>", "music", arr[None].astype(np.float32), duration_s=CLIP_SECONDS)
    if arr.ndim == 1:
        starts = window_starts(len(arr), SR, CLIP_SECONDS)
        clips = np.zeros((len(starts), CLIP_SAMPLES), dtype=np.float32)
        for i, s in enumerate(starts):
            seg = arr[int(round(s * SR)):int(round(s * SR)) + CLIP_SAMPLES]
            clips[i, :len(seg)] = seg
        return Query("<array>", "music", music_inputs(clips, params["model"],
                                                      params.get("feature_backend", "fast")),
                     starts, np.abs(clips).max(axis=1), len(arr) / SR)
    raise ValueError(f"query array of shape {arr.shape} and dtype {arr.dtype} is neither an "
                     "image (uint8 [S,S,3]), a waveform (1-D, 22,050 Hz) nor a music input "
                     "matrix ([193, 87])")


def best_matches(trained, query: Any, collection: Any, k: int = 6, split: str = "test",
                 modality: str = "other", ids: Sequence[str] | None = None,
                 va: np.ndarray | None = None, hop_s: float = CLIP_SECONDS) -> pd.DataFrame:
    """The ``k`` best matches of ``query`` in ``collection`` under a trained run.

    ``query``: an image or audio file path (a song is read over its whole length, see
    :func:`read_query`), or an array (:func:`array_query`). ``collection``: a dataset folder
    (path or ``DatasetFolder``) whose ``split`` items are searched, or an array of model inputs
    with optional ``ids`` and ``va`` labels. ``modality="other"`` ranks the other modality by
    s_hat (the paper's Figure 3); ``"same"`` ranks the query's own modality by distance.

    Returns the matches best first: ``rank, id, modality, score, distance, pred_valence,
    pred_arousal`` (the MATCHED items' predictions) and, where labels are known, ``valence,
    arousal``. The query's own predicted VA is in ``.attrs["query"]`` (a :class:`Prediction`).
    """
    if modality not in ("other", "same"):
        raise ValueError(f"best_matches: modality={modality!r}; use 'other' or 'same'")
    if isinstance(query, (str, os.PathLike)):
        pred = predict_file(trained, query, hop_s)
    else:
        pred = predict_query(trained, array_query(query, trained.params))
    q_mod = pred.modality
    c_mod = q_mod if modality == "same" else ("music" if q_mod == "image" else "image")
    if isinstance(collection, Collection):
        coll = collection
    elif isinstance(collection, np.ndarray):
        coll = array_collection(trained, c_mod, collection, ids, va)
    else:
        coll = dataset_collection(trained, collection, c_mod, split)
    _warn(pred.warnings)
    out = rank(trained, pred.embedding, q_mod, coll, k)
    out.attrs["query"] = pred
    return out


# --- files and folders -------------------------------------------------------------------------

def list_inputs(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """The files named, with every image and audio file of a named folder (sorted, not recursive)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file()
                           and f.suffix.lower() in IMAGE_SUFFIXES + AUDIO_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"{p}: no image or audio files in this folder")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    return files


def match_paths(trained, paths: Sequence[str | os.PathLike], against: Any = None, k: int = 5,
                split: str = "test", hop_s: float = CLIP_SECONDS, batch_size: int = 64,
                progress: bool = True) -> pd.DataFrame:
    """Predict and match every file in ``paths`` (files or folders); one row per (file, match).

    Images are read and encoded ``batch_size`` at a time; songs one at a time (their windows in
    blocks). ``against`` is the dataset folder searched (default: the run's own ``data_dir``).
    A file that cannot be read gets one row with its ``error`` and no match; the others go on.
    Columns: ``path, modality, pred_valence, pred_arousal, n_windows, duration_s, warnings,
    error, rank, match_id, match_modality, score, match_pred_valence, match_pred_arousal`` (and
    ``match_valence, match_arousal`` where the collection has labels).
    """
    from tqdm import tqdm  # plain tqdm: text bars in terminals and in executed notebooks

    files = list_inputs(paths)
    against = against if against is not None else trained.params.get("data_dir")
    colls: dict[str, Collection] = {}

    def collection(mod: str) -> Collection:
        if mod not in colls:
            colls[mod] = dataset_collection(trained, against, mod, split)
        return colls[mod]

    rows: list[dict] = []

    def add(pred: Prediction) -> None:
        other = "music" if pred.modality == "image" else "image"
        found = rank(trained, pred.embedding, pred.modality, collection(other), k)
        for _, m in found.iterrows():
            row = {**pred.row(), "error": "", "rank": int(m["rank"]), "match_id": m["id"],
                   "match_modality": m["modality"], "score": m["score"],
                   "match_pred_valence": m["pred_valence"], "match_pred_arousal": m["pred_arousal"]}
            if "valence" in m:
                row["match_valence"], row["match_arousal"] = m["valence"], m["arousal"]
            rows.append(row)

    def failed(path: Path, err: Exception) -> None:
        rows.append({"path": str(path), "modality": "", "error": str(err)})

    bar = tqdm(total=len(files), desc="matching", unit="file", disable=not progress)
    images = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES]
    others = [f for f in files if f.suffix.lower() not in IMAGE_SUFFIXES]
    size = int(trained.params["image_size"])
    for b in range(0, len(images), batch_size):
        batch, arrays = [], []
        for f in images[b:b + batch_size]:
            try:
                arrays.append(load_image(f, size)); batch.append(f)
            except ImageFileError as err:
                failed(f, err); bar.update(1)
        if batch:
            emb = encode(trained, "image", np.stack(arrays))
            va = predict_va(trained, emb, "image")
            novel = novelty_of(trained, "image", np.stack(arrays))
            for i, f in enumerate(batch):
                pred = image_prediction(trained, str(f), va[i], emb[i], float(novel[i]))
                _warn(pred.warnings)
                add(pred)
                bar.update(1)
    for f in others:
        try:
            pred = predict_file(trained, f, hop_s)
        except (QueryFileError, ValueError) as err:
            failed(f, err)
        else:
            _warn(pred.warnings)
            add(pred)
        bar.update(1)
    bar.close()
    order = {str(f): i for i, f in enumerate(files)}
    out = pd.DataFrame(rows)
    if "rank" not in out.columns:   # every file failed
        out["rank"] = np.nan
    out["rank"] = out["rank"].astype("Int64")
    if "n_windows" in out.columns:
        out["n_windows"] = out["n_windows"].astype("Int64")
    out = out.iloc[np.lexsort((out["rank"].fillna(0).to_numpy(), out["path"].map(order)))]
    return out.reset_index(drop=True)


def format_matches(pred: Prediction, found: pd.DataFrame) -> str:
    """A query's own VA, then its matches, as text for the terminal."""
    head = (f"{pred.path} ({pred.modality}): predicted valence {pred.valence:.3f}, "
            f"arousal {pred.arousal:.3f}")
    if pred.unfamiliar:
        head = ("UNFAMILIAR: the model has not seen media like this; what follows is a guess\n"
                + head)
    if pred.windows is not None:
        head += (f" (mean of {len(pred.windows)} windows over {pred.duration_s:.1f} s; "
                 f"window valence {pred.windows['pred_valence'].min():.2f}-"
                 f"{pred.windows['pred_valence'].max():.2f}, arousal "
                 f"{pred.windows['pred_arousal'].min():.2f}-{pred.windows['pred_arousal'].max():.2f})")
    cols = [c for c in ("rank", "id", "score", "pred_valence", "pred_arousal", "valence",
                        "arousal") if c in found.columns]
    table = found[cols].rename(columns={"id": f"matched {found['modality'].iloc[0]}",
                                        "pred_valence": "its pred_valence",
                                        "pred_arousal": "its pred_arousal"})
    return head + "\n" + table.to_string(index=False, float_format=lambda v: f"{v:.3f}")


EXIT_STATUS = """exit status (the same contract as the audit and the parameter check):
  0  every file was read and matched
  1  some files could not be read: each is named on stderr, the others are still matched
     (and written, with --out)
  2  usage or configuration error (a bad option, a run folder or --against dataset that cannot
     be opened): nothing was matched

output: without --out everything is printed and no file is written; with --out the table (one
row per file and match) is written to that CSV file, or to matches.csv inside that folder if
--out names an existing folder, and the file written is named on the last line."""


def expand_inputs(paths: Sequence[str | os.PathLike]) -> tuple[list[Path], list[str]]:
    """The files to match (folders expanded as :func:`list_inputs` does) and one problem per
    path that names nothing to match, so that the other paths still run."""
    files: list[Path] = []
    problems: list[str] = []
    for p in paths:
        try:
            files += list_inputs([p])
        except FileNotFoundError as err:
            problems.append(str(err))
    return files, problems


def csv_target(out: str) -> Path:
    """Where ``--out`` writes: the file named, or ``matches.csv`` inside an existing folder."""
    target = Path(out)
    return target / "matches.csv" if target.is_dir() else target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cdcml_lib.match",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXIT_STATUS,
        description="Predict the valence and arousal of your own images and songs with a trained "
                    "run, and find their best matches in a dataset's test split. A song is read "
                    "in 2 s windows over its whole length; its VA is the mean over the windows.")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image or audio files, or folders")
    parser.add_argument("--run", required=True, action="append",
                        help="a finished run folder, e.g. runs/default/cdcml-s0; give it again for "
                             "other seeds to see how far their predictions differ per file (the "
                             "matches are the first run's)")
    parser.add_argument("--against", default=None,
                        help="dataset folder to search (default: the run's own data_dir)")
    parser.add_argument("--split", default="test")
    parser.add_argument("-k", type=int, default=5, help="matches per file (default 5)")
    parser.add_argument("--hop", type=float, default=CLIP_SECONDS,
                        help="seconds between a song's 2 s windows (default 2: no overlap)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default=None,
                        help="CSV file (or existing folder) to write the table to; without it "
                             "nothing is written and the matches are printed")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.k < 1 or args.hop <= 0 or args.batch_size < 1:
        parser.error("-k and --batch-size must be at least 1 and --hop positive")

    # a path that exists from here is the user's (the library resolves others from the repo root)
    args.run = [str(Path(r).resolve()) if Path(r).exists() else r for r in args.run]
    if args.against is not None and Path(args.against).exists():
        args.against = str(Path(args.against).resolve())
    try:
        runs = [load_trained(r, device=args.device) for r in args.run]
        trained = runs[0]
        against = args.against or trained.params["data_dir"]
        open_dataset(resolve(against))
    except (FileNotFoundError, ValueError, KeyError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for run, folder in zip(runs, args.run):
        attach_guard(run, folder)
    print(run_notice(trained) + "\n")
    args.other_runs = runs[1:]
    warnings.simplefilter("ignore", QueryWarning)  # collected into the output instead
    files, problems = expand_inputs(args.paths)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if args.out is None:
        return max(print_matches(trained, files, against, args), 1 if problems else 0)
    return max(write_matches(trained, files, against, args), 1 if problems else 0)


def print_matches(trained, files: Sequence[Path], against, args) -> int:
    """Each file's VA and matches printed (nothing written); 1 if any file failed, else 0."""
    status = 0
    for p in files:
        try:
            found = best_matches(trained, p, against, k=args.k, split=args.split, hop_s=args.hop)
        except (QueryFileError, ImageFileError, ValueError, FileNotFoundError) as err:
            print(f"error: {err}", file=sys.stderr)
            status = 1
            continue
        pred = found.attrs["query"]
        for w in pred.warnings:
            print(f"warning: {w}", file=sys.stderr)
        text = format_matches(pred, found)
        if args.other_runs:
            text += "\n" + format_spread(run_spread(pred, args.other_runs, p, args.hop))
        print(text + "\n")
    return status


def run_spread(pred: Prediction, others: Sequence, path, hop_s: float) -> dict:
    """The file's predicted VA under each run (``pred`` under the first, then ``others``): the
    mean, standard deviation and range over runs. One seed's level is not to be trusted alone."""
    preds = [pred] + [predict_file(t, path, hop_s) for t in others]
    v = np.array([q.valence for q in preds])
    a = np.array([q.arousal for q in preds])
    return {"n_runs": len(preds), "runs_valence_mean": v.mean(), "runs_valence_sd": v.std(ddof=1),
            "runs_valence_min": v.min(), "runs_valence_max": v.max(),
            "runs_arousal_mean": a.mean(), "runs_arousal_sd": a.std(ddof=1),
            "runs_arousal_min": a.min(), "runs_arousal_max": a.max()}


def format_spread(s: dict) -> str:
    return (f"over {s['n_runs']} runs: valence {s['runs_valence_mean']:.3f} (sd "
            f"{s['runs_valence_sd']:.3f}, {s['runs_valence_min']:.2f}-{s['runs_valence_max']:.2f}), "
            f"arousal {s['runs_arousal_mean']:.3f} (sd {s['runs_arousal_sd']:.3f}, "
            f"{s['runs_arousal_min']:.2f}-{s['runs_arousal_max']:.2f}); the matches above are the "
            "first run's")


def add_run_spread(table: pd.DataFrame, others: Sequence, hop_s: float) -> pd.DataFrame:
    """The table with each readable file's spread over the runs (:func:`run_spread`)."""
    rows = {}
    for _, r in table.drop_duplicates("path").iterrows():
        if r.get("error", ""):
            continue
        first = Prediction(r["path"], r["modality"], float(r["pred_valence"]), float(r["pred_arousal"]))
        rows[r["path"]] = run_spread(first, others, r["path"], hop_s)
    spread = pd.DataFrame.from_dict(rows, orient="index")
    return table.join(spread, on="path") if len(spread) else table


def write_matches(trained, files: Sequence[Path], against, args) -> int:
    """The table of every file's matches written where ``--out`` says; 1 if any file failed."""
    out = csv_target(args.out)
    table = match_paths(trained, files, against, args.k, args.split, args.hop, args.batch_size) \
        if files else pd.DataFrame(columns=["path", "error"])
    table.insert(0, "run_corpus", novelty.run_corpus(trained))   # what the ratings rest on
    if args.other_runs and "modality" in table:
        table = add_run_spread(table, args.other_runs, args.hop)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False, float_format="%.4f")
    per_file = table.drop_duplicates("path")
    bad = per_file["error"].fillna("").ne("")
    warned = per_file.get("warnings", pd.Series("", index=per_file.index)).fillna("").ne("")
    for _, r in per_file[bad].iterrows():
        print(f"error: {r['error']}", file=sys.stderr)
    for _, r in per_file[warned].iterrows():
        for w in str(r["warnings"]).split(" | "):
            print(f"warning: {w}", file=sys.stderr)
    if (~bad).any():
        print(per_file.loc[~bad, ["path", "modality", "pred_valence", "pred_arousal", "novelty",
                                  "unfamiliar"]]
              .to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    unfamiliar = int(per_file["unfamiliar"].fillna(False).astype(bool).sum()) \
        if "unfamiliar" in per_file else 0
    print(f"wrote {out}: {len(per_file)} files ({int(bad.sum())} unreadable, "
          f"{int(warned.sum())} with warnings, {unfamiliar} unlike anything the model was "
          f"trained on), {args.k} matches each")
    return 1 if bad.any() else 0
