"""An IMAC-style dataset (Verma et al. 2019; docs/METHOD.md, section "13. The kit's ACP-Net study") from any dataset folder.

IMAC labels every image and every song with one of three emotion classes (negative, neutral,
positive); a pair *corresponds* (label 1) when both carry the same class. Our corpora carry
valence-arousal (VA) labels in [0, 1] instead, so the classes come from a stated VA rule
(:func:`emotion_class`), and the pairs are drawn from the items of each split of the dataset
folder, so the kit's splits (by song for music, by image for images) carry over unchanged.

The rule (our reading; the paper gives the classes, not a VA rule):

- ``rule="valence"`` (default): negative when valence < ``valence_low``, positive when
  valence > ``valence_high``, neutral in between (both bounds inclusive to neutral);
- ``rule="valence_arousal"``: IMAC's music tags read in VA: negative ("sad", "pain") when
  valence < ``valence_low``; otherwise positive ("happy", "joyous", "energetic") when arousal
  >= ``arousal_split`` and neutral ("soothing", "relax", "calm") when arousal is lower.

IMAC labels whole songs: with ``music_label="song"`` (default) every clip takes the class of its
song's mean VA; ``"clip"`` labels each clip by its own VA.

Pairs (:func:`draw_pairs`): for each clip of a split, ``pairs_per_clip / 2`` images of its class
(true) and as many of the other two classes (false), drawn from that split's images with a seeded
generator; a clip whose split lacks images of its class, or of the other classes, gets no pairs
(counted in ``imac.json``). True and false pairs are therefore exactly balanced.

Files written into the dataset folder by :func:`build_imac` (``imac.json`` last):

- ``imac_classes.csv``: ``id, modality, song, split, valence, arousal, emotion`` (0, 1, 2 =
  negative, neutral, positive) for every item;
- ``imac_pairs_{train,val,test}.csv``: ``music_id, image_id, label, music_emotion, image_emotion``;
- ``imac.json``: the parameters, a hash of ``items.csv``, counts per split and class.

:func:`ensure_imac` rebuilds only when the parameters or ``items.csv`` changed, so the dataset step
(or notebooks/05_acp_net) can call it every time.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from cdcml_lib import matching
from cdcml_lib.workflow.paths import atomic_write_text, resolve

CLASSES = ("negative", "neutral", "positive")
RULES = ("valence", "valence_arousal")
MUSIC_LABELS = ("song", "clip")
SPLITS = matching.SPLITS
PAIR_COLUMNS = ["music_id", "image_id", "label", "music_emotion", "image_emotion"]

#: The IMAC construction's parameters and their defaults (the ``imac_*`` keys of the acp_net
#: section of params/*.yaml map onto these without the prefix).
DEFAULTS = {"rule": "valence", "valence_low": 1 / 3, "valence_high": 2 / 3, "arousal_split": 0.5,
            "music_label": "song", "pairs_per_clip": 4, "seed": 0}


class ImacError(ValueError):
    """Bad IMAC parameters, or a dataset folder they cannot be applied to."""


def check_imac_params(**params) -> dict:
    """Every parameter known and in range; returns the full set (defaults filled in)."""
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ImacError(f"unknown IMAC parameter(s) {unknown}; allowed: {sorted(DEFAULTS)}")
    p = {**DEFAULTS, **params}
    if p["rule"] not in RULES:
        raise ImacError(f"imac rule {p['rule']!r}: choose one of {RULES}")
    if p["music_label"] not in MUSIC_LABELS:
        raise ImacError(f"imac music_label {p['music_label']!r}: choose one of {MUSIC_LABELS}")
    low, high = float(p["valence_low"]), float(p["valence_high"])
    if not 0.0 <= low <= high <= 1.0:
        raise ImacError(f"imac valence thresholds must satisfy 0 <= valence_low <= valence_high <= 1 "
                        f"(VA is normalised to [0, 1]); got valence_low={low}, valence_high={high}")
    if not 0.0 <= float(p["arousal_split"]) <= 1.0:
        raise ImacError(f"imac arousal_split must be in [0, 1], got {p['arousal_split']}")
    n = int(p["pairs_per_clip"])
    if n < 2 or n % 2:
        raise ImacError(f"imac pairs_per_clip must be an even number >= 2 (half true, half false), "
                        f"got {p['pairs_per_clip']}")
    return {**p, "valence_low": low, "valence_high": high, "arousal_split": float(p["arousal_split"]),
            "pairs_per_clip": n, "seed": int(p["seed"])}


def emotion_class(valence, arousal=None, rule: str = "valence", valence_low: float = 1 / 3,
                  valence_high: float = 2 / 3, arousal_split: float = 0.5) -> np.ndarray:
    """Three-class emotion (0 negative, 1 neutral, 2 positive) from VA in [0, 1] (module docstring)."""
    v = np.asarray(valence, dtype=float)
    if rule == "valence":
        return np.where(v < valence_low, 0, np.where(v > valence_high, 2, 1)).astype(np.int64)
    if rule == "valence_arousal":
        if arousal is None:
            raise ImacError("rule 'valence_arousal' needs the arousal values")
        a = np.asarray(arousal, dtype=float)
        return np.where(v < valence_low, 0, np.where(a >= arousal_split, 2, 1)).astype(np.int64)
    raise ImacError(f"unknown rule {rule!r}: choose one of {RULES}")


def item_classes(items: pd.DataFrame, params: dict) -> pd.DataFrame:
    """``items.csv`` with an ``emotion`` column; music labelled by clip or by its song's mean VA."""
    p = check_imac_params(**params)
    missing = [c for c in ("id", "modality", "song", "split", "valence", "arousal") if c not in items]
    if missing:
        raise ImacError(f"items.csv lacks the column(s) {missing}; rebuild the dataset folder")
    out = items[["id", "modality", "song", "split", "valence", "arousal"]].copy()
    va = out[["valence", "arousal"]].to_numpy(float).copy()
    music = (out["modality"] == "music").to_numpy()
    if p["music_label"] == "song" and music.any():
        song_va = out[music].groupby("song")[["valence", "arousal"]].transform("mean").to_numpy(float)
        va[music] = song_va
    out["emotion"] = emotion_class(va[:, 0], va[:, 1], p["rule"], p["valence_low"],
                                   p["valence_high"], p["arousal_split"])
    return out


def draw_pairs(classes: pd.DataFrame, split: str, pairs_per_clip: int,
               rng: np.random.Generator) -> tuple[pd.DataFrame, int]:
    """Balanced true/false pairs of one split (module docstring); returns them and the number of
    clips that could not be paired."""
    sel = classes[classes["split"] == split]
    images = sel[sel["modality"] == "image"]
    clips = sel[sel["modality"] == "music"]
    by_class = {c: images.loc[images["emotion"] == c, "id"].to_numpy() for c in range(len(CLASSES))}
    half = pairs_per_clip // 2
    rows, skipped = [], 0
    for clip_id, c in zip(clips["id"].to_numpy(), clips["emotion"].to_numpy()):
        same = by_class[int(c)]
        other = np.concatenate([by_class[k] for k in by_class if k != int(c)])
        if len(same) == 0 or len(other) == 0:
            skipped += 1
            continue
        # Without replacement when the split has enough images, so a clip meets distinct images.
        true_ids = rng.choice(same, size=half, replace=len(same) < half)
        false_ids = rng.choice(other, size=half, replace=len(other) < half)
        rows += [(clip_id, i, 1) for i in true_ids] + [(clip_id, i, 0) for i in false_ids]
    pairs = pd.DataFrame(rows, columns=["music_id", "image_id", "label"])
    emotion = classes.set_index("id")["emotion"]
    pairs["music_emotion"] = emotion.reindex(pairs["music_id"]).to_numpy(np.int64)
    pairs["image_emotion"] = emotion.reindex(pairs["image_id"]).to_numpy(np.int64)
    return pairs[PAIR_COLUMNS], skipped


def _items_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def build_imac(data_dir, **params) -> dict:
    """Write the IMAC-style files into ``data_dir`` (module docstring); return ``imac.json``'s content."""
    folder = resolve(data_dir)
    items_path = folder / "items.csv"
    if not items_path.is_file():
        raise ImacError(f"{items_path} is missing: build the dataset folder first "
                        f"(`make data CONFIG=<config>`)")
    p = check_imac_params(**params)
    (folder / "imac.json").unlink(missing_ok=True)  # written last: its presence means complete
    classes = item_classes(pd.read_csv(items_path, dtype={"id": str, "song": str}), p)
    rng = np.random.default_rng(p["seed"])
    counts = {}
    for split in SPLITS:
        pairs, skipped = draw_pairs(classes, split, p["pairs_per_clip"], rng)
        atomic_write_text(folder / f"imac_pairs_{split}.csv", pairs.to_csv(index=False))
        sel = classes[classes["split"] == split]
        counts[split] = {
            "pairs": int(len(pairs)), "true": int(pairs["label"].sum()),
            "false": int((pairs["label"] == 0).sum()), "clips_without_pairs": int(skipped),
            **{f"{m}_{CLASSES[c]}": int(((sel["modality"] == m) & (sel["emotion"] == c)).sum())
               for m in ("image", "music") for c in range(len(CLASSES))}}
    atomic_write_text(folder / "imac_classes.csv", classes.to_csv(index=False))
    record = {"params": p, "classes": list(CLASSES), "items_hash": _items_hash(items_path),
              "counts": counts}
    atomic_write_text(folder / "imac.json", json.dumps(record, indent=2) + "\n")
    return record


def ensure_imac(data_dir, **params) -> dict:
    """:func:`build_imac` unless ``imac.json`` already records these parameters and this items.csv."""
    folder = resolve(data_dir)
    record_path = folder / "imac.json"
    p = check_imac_params(**params)
    if record_path.is_file() and (folder / "items.csv").is_file():
        record = json.loads(record_path.read_text())
        if record.get("params") == json.loads(json.dumps(p)) and \
                record.get("items_hash") == _items_hash(folder / "items.csv"):
            return record
    return build_imac(folder, **p)


def read_imac_pairs(data_dir, split: str) -> pd.DataFrame:
    """``imac_pairs_<split>.csv`` of a dataset folder (ids as strings)."""
    path = resolve(data_dir) / f"imac_pairs_{split}.csv"
    if not path.is_file():
        raise ImacError(f"{path} is missing: call cdcml_lib.data.imac.ensure_imac on the folder")
    return pd.read_csv(path, dtype={"music_id": str, "image_id": str})


def read_imac_classes(data_dir) -> pd.DataFrame:
    """``imac_classes.csv`` of a dataset folder (ids as strings)."""
    path = resolve(data_dir) / "imac_classes.csv"
    if not path.is_file():
        raise ImacError(f"{path} is missing: call cdcml_lib.data.imac.ensure_imac on the folder")
    return pd.read_csv(path, dtype={"id": str, "song": str})
