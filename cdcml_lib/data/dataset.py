"""Build and open a dataset folder ``data/<config>/`` (docs/ARCHITECTURE.md, "The dataset folder").

``build_dataset(**params)`` runs the IMEMNet recipe (Zhao et al. 2020, section 3; docs/METHOD.md,
section "The dataset recipe (IMEMNet)") on a corpus and writes::

    items.csv                 one row per image and clip: id, modality, song, split, VA, row ...
    pairs_{train,val,test}.txt  the published IMEMNet pair format (corpora.write_pairs)
    stats.json                Table-1 counts per split, sigma, seed, parameters, what made it
    cache/manifest.json       one entry per cached array
    cache/<name>_<key>.npy    images, audio, music_features, log_spectrogram
    draws/s<seed>/            one seed's own draw of the split and the pair lists from the same
                              items (items.csv, pairs_*.txt, stats.json with ``draw_of``); its
                              arrays are the corpus's cache, computed once

A draw folder opens like a dataset folder (:func:`open_dataset`). Seed s's draw is what the
recipe's random steps (split, candidates, sampling) give with seed s, so the draw of the dataset
seed holds the folder's own split.

Every cached array is keyed by a hash of what made it (item ids, sizes, the producing code and,
for the features, the versions of the libraries whose arithmetic they hold), so a re-run with the
same parameters reuses it. Arrays are produced in chunks; each chunk is saved
atomically under ``cache/.parts_<name>_<key>/``, so an interrupted build resumes where it stopped.
The assembled array is written under a temporary name and renamed: a file with a final name is
complete. ``stats.json`` is removed when a build starts and written last, so its presence means
the folder is finished.

Command line: ``python -m cdcml_lib.data.dataset --config smoke``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from cdcml_lib import matching
from cdcml_lib.audio import CLIP_SAMPLES, CLIP_SECONDS, SR, to_int16
from cdcml_lib.workflow.paths import DRAWS_FOLDER, atomic_path, atomic_write_text, draw_dir, repo_root, resolve
from cdcml_lib.data import corpora, features, published, standin, synthetic
from cdcml_lib.data.published import PUBLISHED_DEFAULTS
from cdcml_lib.data.corpora import read_pairs, write_pairs
from cdcml_lib.workflow import schema
from cdcml_lib.workflow.params import draw_seeds, section

SPLITS = matching.SPLITS
ITEM_COLUMNS = [*corpora.ITEM_COLUMNS, "row"]   # a corpus's item table, and each item's cache row
ARRAYS = ("images", "audio", "music_features", "log_spectrogram")

#: The keys of the ``dataset:`` section of params/*.yaml, i.e. of build_dataset's parameters
#: (declared in cdcml_lib/workflow/schema.py): those a build needs, the real corpora's paths
#: (corpus: imemnet; read by corpora.load_imemnet_items) and the published pair lists
#: (data/published.py), both optional.
DATASET_KEYS = schema.required_keys("dataset")
PUBLISHED_KEYS = tuple(PUBLISHED_DEFAULTS)
IMEMNET_KEYS = tuple(k for k in schema.optional_keys("dataset") if k not in PUBLISHED_KEYS)

HINT = "build it with `make data CONFIG=<config>` (or `python -m cdcml_lib.data.dataset --config <config>`)"


class DatasetError(ValueError):
    """A dataset folder that is missing, incomplete or inconsistent, or bad build parameters."""


# ---------------------------------------------------------------------------------------------
# Small file helpers: hashing and atomic writes
# ---------------------------------------------------------------------------------------------

def content_key(made_by: dict) -> str:
    """A short, stable hash of everything that made an array (12 hex digits)."""
    text = json.dumps(made_by, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _hash_strings(values) -> str:
    h = hashlib.sha256()
    for v in values:
        h.update(str(v).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _code_hash(*modules) -> str:
    """Hash of the producing modules' source: editing the code invalidates its caches."""
    return _hash_strings(Path(m.__file__).read_text() for m in modules)


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    # through a handle: np.save given a path not ending in .npy would add the suffix
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)


def _library_version() -> str:
    try:
        from importlib.metadata import version
        return version("cdcml-kit")
    except Exception:  # not installed as a package (e.g. run from a source tree)
        return "unknown"


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo_root(),
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


# ---------------------------------------------------------------------------------------------
# The cache: keyed, chunked, resumable arrays
# ---------------------------------------------------------------------------------------------

def _read_manifest(cache_dir: Path) -> dict:
    path = cache_dir / "manifest.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path}: not valid JSON ({err}); delete it and rebuild "
                           f"({HINT}): the arrays will be checked again") from err


def _valid_array(path: Path, shape: tuple, dtype) -> bool:
    """Does ``path`` hold a complete array of this shape and dtype (header check, no full read)?"""
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return False
    return tuple(arr.shape) == tuple(shape) and arr.dtype == np.dtype(dtype)


def cached_array(cache_dir: Path, name: str, made_by: dict, shape: tuple, dtype,
                 produce: Callable[[np.ndarray], np.ndarray], chunk: int,
                 progress: bool = False) -> tuple[Path, bool]:
    """Make (or reuse) ``cache/<name>_<key>.npy``; return its path and whether it was reused.

    ``produce(rows)`` returns the array's rows ``rows`` (a contiguous range). Each chunk is saved
    atomically before the next is made, so an interrupted call resumes at the first missing chunk.
    """
    key = content_key(made_by)
    final = cache_dir / f"{name}_{key}.npy"
    reused = final.is_file() and _valid_array(final, shape, dtype)
    if not reused:
        parts = cache_dir / f".parts_{name}_{key}"
        # Parts saved with another chunk size do not line up with these chunks (their rows would
        # be left as zeros): the folder records its chunk size, and other parts are dropped.
        size_file = parts / "chunk_size.txt"
        if parts.is_dir() and (not size_file.is_file() or size_file.read_text().strip() != str(chunk)):
            shutil.rmtree(parts)
        parts.mkdir(parents=True, exist_ok=True)
        size_file.write_text(f"{chunk}\n")
        n = shape[0]
        starts = list(range(0, n, chunk))
        todo = [s for s in starts if not (parts / f"{s:09d}.npy").is_file()]
        bar = _progress_bar(progress, len(starts), f"{name} ({len(starts) - len(todo)} chunks cached)")
        bar.update(len(starts) - len(todo))
        for start in todo:
            rows = np.arange(start, min(n, start + chunk))
            block = np.asarray(produce(rows))
            if block.shape != (len(rows),) + tuple(shape[1:]):
                raise DatasetError(f"cache {name}: a chunk came back with shape {block.shape}, "
                                   f"expected {(len(rows),) + tuple(shape[1:])}")
            _atomic_save_npy(parts / f"{start:09d}.npy", block.astype(dtype, copy=False))
            bar.update(1)
        bar.close()
        tmp = cache_dir / f".{name}_{key}.npy.tmp"
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=tuple(shape))
        for start in starts:
            block = np.load(parts / f"{start:09d}.npy")
            out[start:start + len(block)] = block
        out.flush()
        del out
        os.replace(tmp, final)
        shutil.rmtree(parts, ignore_errors=True)
    # One file per array name: drop older versions (other keys) of the same array, and the
    # unfinished parts of other keys.
    for old in cache_dir.glob(f"{name}_*.npy"):
        if old != final and re.fullmatch(rf"{name}_[0-9a-f]{{12}}\.npy", old.name):
            old.unlink(missing_ok=True)
    for stale in cache_dir.glob(f".parts_{name}_*"):
        shutil.rmtree(stale, ignore_errors=True)
    manifest = _read_manifest(cache_dir)
    manifest[name] = {"file": final.name, "key": key, "shape": list(shape),
                      "dtype": np.dtype(dtype).name, "made_by": made_by}
    atomic_write_text(cache_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return final, reused


def _progress_bar(enabled: bool, total: int, desc: str):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, disable=not enabled, leave=False)


# ---------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------

def check_dataset_params(params: dict) -> dict:
    """Check the ``dataset:`` section (every required key present, no unknown key, every value in
    its range: :func:`cdcml_lib.workflow.schema.problems`, every problem at once); return it with
    the optional keys' defaults filled in."""
    problems = schema.problems("dataset", dict(params), "build_dataset", complete=True)
    if params.get("corpus") not in CORPUS_SOURCES:
        problems.append(f"build_dataset, dataset.corpus: {params.get('corpus')!r} is not a registered "
                        f"corpus. Fix: use one of {', '.join(CORPUS_SOURCES)} (data.dataset.register_corpus)")
    if problems:
        raise DatasetError(f"{len(problems)} problem(s) with the dataset parameters:\n  - "
                           + "\n  - ".join(problems))
    p = {**schema.defaults("dataset"), **params}
    try:   # the machine, not the value: a cuda device asked for where torch sees none
        features.resolve_device(p["feature_device"])
    except ValueError as err:
        raise DatasetError(f"dataset.feature_device: {err}") from None
    return p


def _sub_seed(seed: int, stream: int) -> int:
    """An independent seed for one random step of the recipe (splits, candidates, sampling)."""
    return int(np.random.SeedSequence([int(seed), stream]).generate_state(1)[0])


# ---------------------------------------------------------------------------------------------
# Sources: the items and how to render or load each one
# ---------------------------------------------------------------------------------------------

@dataclass
class Source:
    """The items of a corpus (images first, then clips, each in cache row order) and loaders."""

    items: pd.DataFrame                                 # ITEM_COLUMNS without split/row
    images: Callable[[np.ndarray, int], np.ndarray]     # (rows, size) -> uint8 [n, S, S, 3]
    clips: Callable[[np.ndarray], np.ndarray]           # rows -> float32 [n, 44100]
    made_by: dict = field(default_factory=dict)         # what defines the items (for cache keys)
    corpus: object = None                               # the EmbeddedCorpus, when embedded


#: every corpus a dataset can be built from, by the name ``dataset.corpus`` gives it: a function of
#: the dataset parameters (and whether to show progress) returning its :class:`Source`
CORPUS_SOURCES: dict[str, Callable[[dict, bool], Source]] = {}


def register_corpus(name: str):
    """Decorator: make ``reader(params, progress) -> Source`` the corpus ``dataset.corpus: name``."""
    def register(reader):
        if name in CORPUS_SOURCES:
            raise ValueError(f"a corpus named {name!r} is registered already")
        CORPUS_SOURCES[name] = reader
        return reader
    return register


@register_corpus("embedded")
def embedded_source(p: dict, progress: bool = False) -> Source:
    """The embedded benchmark (cdcml_lib.data.synthetic): labels drawn on [0, 1], rendered on demand.

    Its labels are generated on the normalised [0, 1] scale already, so the per-corpus min-max
    normalisation of IMEMNet is the identity here and is not applied.
    """

    corpus = synthetic.make_corpus(
        n_songs=int(p["n_songs"]), clips_per_song_min=int(p["clips_per_song_min"]),
        clips_per_song_max=int(p["clips_per_song_max"]), n_images=int(p["n_images"]),
        label_noise=float(p["label_noise"]), seed=int(p["seed"]))
    n_img, n_clip = len(corpus.image_ids), len(corpus.clip_ids)
    images = pd.DataFrame({"id": corpus.image_ids, "modality": "image", "song": "",
                           "valence": corpus.image_va[:, 0], "arousal": corpus.image_va[:, 1],
                           "source": "embedded", "path": "", "start_s": np.nan})
    clips = pd.DataFrame({"id": corpus.clip_ids, "modality": "music", "song": corpus.clip_song,
                          "valence": corpus.clip_va[:, 0], "arousal": corpus.clip_va[:, 1],
                          "source": "embedded", "path": "",
                          "start_s": np.asarray(corpus.clip_index, float) * CLIP_SECONDS})
    made_by = {"corpus": "embedded", "generator": "cdcml_lib.data.synthetic.make_corpus",
               "code": _code_hash(synthetic),
               **{k: p[k] for k in ("seed", "n_songs", "clips_per_song_min", "clips_per_song_max",
                                    "n_images", "label_noise")},
               "n_images_made": n_img, "n_clips_made": n_clip}
    return Source(items=pd.concat([images, clips], ignore_index=True),
                  images=lambda rows, size: corpus.render_images(rows, size),
                  clips=lambda rows: corpus.render_clips(rows), made_by=made_by, corpus=corpus)


@register_corpus("imemnet")
def imemnet_source(p: dict, progress: bool = False) -> Source:
    """The real corpora (DEAM + IAPS/NAPS/EMOTIC) through cdcml_lib.data.corpora, already normalised
    per corpus to [0, 1] by their readers (docs/METHOD.md, section "Corpora and VA normalisation")."""

    items = corpora.load_imemnet_items(p, progress=progress)
    images = items[items.modality == "image"]
    clips = items[items.modality == "music"]
    if len(images) == 0 or len(clips) == 0:
        raise DatasetError(f"corpus imemnet: found {len(images)} images and {len(clips)} clips; "
                           "both an image corpus and DEAM must be configured in the dataset "
                           "section of params/imemnet.yaml")
    items = pd.concat([images, clips], ignore_index=True)
    img_paths = images["path"].to_numpy()
    clip_paths, clip_starts = clips["path"].to_numpy(), clips["start_s"].to_numpy()

    def load_images(rows, size):
        return np.stack([corpora.load_image(resolve(img_paths[r]), size) for r in rows])

    def load_clips(rows):   # each song decoded once per chunk, its clips cut from it
        rows = np.asarray(rows)
        out = np.empty((len(rows), CLIP_SAMPLES), np.float32)
        for path in pd.unique(clip_paths[rows]):
            mine = np.flatnonzero(clip_paths[rows] == path)
            out[mine] = corpora.load_song_clips(resolve(path), clip_starts[rows[mine]])
        return out

    made_by = {"corpus": p["corpus"], "reader": "cdcml_lib.data.corpora.load_imemnet_items",
               "audio": "load_song_clips",   # songs decoded whole, clips cut
               **{k: p[k] for k in IMEMNET_KEYS}}
    return Source(items=items, images=load_images, clips=load_clips, made_by=made_by)


@register_corpus("standin")
def standin_source(p: dict, progress: bool = False) -> Source:
    """The stand-in corpus (data.standin): written where the paths point, then read like the real ones."""
    standin.write_standin(p)
    return imemnet_source(p, progress)


# ---------------------------------------------------------------------------------------------
# The recipe on an item table: splits, sigma, pairs
# ---------------------------------------------------------------------------------------------

def assign_splits(items: pd.DataFrame, fractions, seed: int) -> np.ndarray:
    """Split labels: images each their own group, clips grouped by song (docs/METHOD.md, section
    "Splits by song and by image")."""
    split = np.empty(len(items), dtype=object)
    is_img = (items["modality"] == "image").to_numpy()
    split[is_img] = matching.split_images(items["id"][is_img].to_numpy(), fractions, seed=_sub_seed(seed, 1))
    split[~is_img] = matching.split_songs(items["song"][~is_img].to_numpy(), fractions, seed=_sub_seed(seed, 2))
    return split.astype(str)


def table1(items: pd.DataFrame, pairs: dict) -> dict:
    """Table-1 counts per split (songs, clips, images, pairs) and their total."""
    out = {}
    for s in SPLITS:
        sel = items[items.split == s]
        mus = sel[sel.modality == "music"]
        out[s] = {"songs": int(mus.song.nunique()), "clips": int(len(mus)),
                  "images": int((sel.modality == "image").sum()), "pairs": int(len(pairs[s]))}
    out["total"] = {k: sum(out[s][k] for s in SPLITS) for k in ("songs", "clips", "images", "pairs")}
    return out


# ---------------------------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------------------------

def split_counts(splits: dict) -> dict:
    """stats.json's Table-1 counts as one flat row: ``"<split> <what>": n`` (totals left out)."""
    return {f"{split} {what}": n for split, counts in splits.items() if split != "total"
            for what, n in counts.items()}


@dataclass
class DatasetBuild:
    """A dataset folder being built: what each step of the recipe has produced so far.

    :func:`build_dataset` runs the steps in order; ``notebooks/01_dataset`` calls them one cell at a
    time and shows what each produced: :func:`start_build`, :func:`load_items` (step 1),
    :func:`split_items` (2), :func:`score_pairs` (3-5), :func:`draw_splits` (steps 2-5 again,
    once per study seed), :func:`cache_inputs` (6), :func:`write_folder` (7).
    """

    params: dict
    out_dir: Path
    timings: dict = field(default_factory=dict)
    source: Source | None = None
    items: pd.DataFrame | None = None
    sigma: float | None = None
    candidates: pd.DataFrame | None = None
    pairs: pd.DataFrame | None = None
    pairs_by_split: dict | None = None
    draws: dict = field(default_factory=dict)   # seed -> Draw (:func:`draw_splits`)
    lists: object = None     # published.PublishedPairs when pairs_source is "published"
    arrays: dict = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    @property
    def cache_dir(self) -> Path:
        return self.out_dir / "cache"

    def _need(self, *names: str) -> None:
        missing = [n for n in names if getattr(self, n) is None]
        if missing:
            raise DatasetError(f"dataset build: {', '.join(missing)} not made yet; run the recipe's "
                               f"steps in order (start_build, load_items, split_items, score_pairs, "
                               f"cache_inputs, write_folder), or build_dataset for all of them")


def start_build(**params) -> DatasetBuild:
    """Check the ``dataset:`` parameters and open ``out_dir`` for building.

    ``stats.json`` is removed first: it is written last, so the folder reads as unfinished from
    here until :func:`write_folder` (valid caches are kept and reused).
    """
    p = check_dataset_params(params)
    out_dir = resolve(p["out_dir"])
    (out_dir / "cache").mkdir(parents=True, exist_ok=True)
    (out_dir / "stats.json").unlink(missing_ok=True)
    shutil.rmtree(out_dir / DRAWS_FOLDER, ignore_errors=True)   # cheap to redraw; none may outlive its items
    return DatasetBuild(params=p, out_dir=out_dir)


def load_items(build: DatasetBuild, progress: bool = False) -> pd.DataFrame:
    """Step 1: every image and clip of the corpus with its VA label on [0, 1]."""
    t = time.perf_counter()
    p = build.params
    # the stand-in corpus is written first, then read like the real corpora; the
    # published lists, when they are the source, choose the items and give splits and pairs
    build.source = CORPUS_SOURCES[p["corpus"]](p, progress)
    if p["pairs_source"] == "published":
        build.source, build.lists = published.restrict_source(p, build.source)
    build.items = build.source.items.copy()
    build.timings["items_s"] = time.perf_counter() - t
    return build.items


def split_items(build: DatasetBuild) -> pd.DataFrame:
    """Step 2: train / val / test by song (clips) and by image (or as the published lists give
    them), and each item's cache row."""
    build._need("items")
    t = time.perf_counter()
    p, items = build.params, build.items
    fractions = (p["split_train"], p["split_val"], p["split_test"])
    if build.lists is None:   # else the published lists gave each item its split
        items["split"] = assign_splits(items, fractions, int(p["seed"]))
    is_img = (items.modality == "image").to_numpy()
    items["row"] = 0
    items.loc[is_img, "row"] = np.arange(is_img.sum())
    items.loc[~is_img, "row"] = np.arange((~is_img).sum())
    build.items = items[ITEM_COLUMNS]
    build.timings["items_s"] += time.perf_counter() - t
    return build.items


def score_pairs(build: DatasetBuild) -> pd.DataFrame:
    """Steps 3-5: sigma of Eq. 1 over all image-music label pairs of every split (our reading:
    docs/METHOD.md, section "The items behind sigma"), each clip's candidates in its split, and the
    random fraction of them that is kept."""
    build._need("items")
    if "split" not in build.items:
        split_items(build)
    t = time.perf_counter()
    p, items = build.params, build.items
    images, clips = items[items.modality == "image"], items[items.modality == "music"]
    va = ["valence", "arousal"]
    build.sigma = matching.mean_label_distance(images[va].to_numpy(), clips[va].to_numpy())
    if build.lists is None:
        build.candidates, build.pairs, build.pairs_by_split = recipe_pairs(items, build.sigma, p, int(p["seed"]))
    else:   # the published scores, as listed
        build.pairs = build.candidates = published.pairs_table(build.lists)
        build.pairs_by_split = build.lists.pairs
    build.timings["pairs_s"] = time.perf_counter() - t
    return build.pairs


def recipe_pairs(items: pd.DataFrame, sigma: float, p: dict, seed: int):
    """Steps 4-5 on split items: each clip's candidate images in its split, then the random
    fraction kept; returns (candidates, pairs, pairs by split)."""
    images, clips = items[items.modality == "image"], items[items.modality == "music"]
    candidates = matching.candidate_pairs(clips, images, sigma, n_random=int(p["n_random"]),
                                          n_top=int(p["n_top"]), n_bottom=int(p["n_bottom"]),
                                          seed=_sub_seed(seed, 3))
    pairs = matching.sample_pairs(candidates, float(p["keep_fraction"]), seed=_sub_seed(seed, 4))
    by_split = {s: pairs[pairs.split == s][["music_id", "image_id", "score"]] for s in SPLITS}
    return candidates, pairs, by_split


@dataclass
class Draw:
    """One seed's own split and pair lists of the corpus's items (:func:`draw_splits`)."""

    seed: int
    items: pd.DataFrame
    candidates: pd.DataFrame
    pairs: pd.DataFrame
    pairs_by_split: dict


def draw_splits(build: DatasetBuild, seeds) -> dict:
    """Steps 2-5 again for each of ``seeds``: the seed's own train/val/test split of the same
    items and its own candidate and sampled pairs (sigma is over all items, so it is shared).
    The study trains seed s on draw s, so the spread over seeds holds the split's variance;
    variants compared at one seed share its split and pair lists."""
    build._need("items", "sigma")
    if build.lists is not None:
        raise DatasetError("dataset.pairs_source is 'published': the published lists fix the split, "
                           "so seeds cannot draw their own; set train.splits: fixed in the config")
    t = time.perf_counter()
    p = build.params
    fractions = (p["split_train"], p["split_val"], p["split_test"])
    build.draws = {}
    for seed in dict.fromkeys(int(s) for s in seeds):
        if seed == int(p["seed"]) and build.pairs is not None:   # the folder's own split: drawn already
            build.draws[seed] = Draw(seed, build.items, build.candidates, build.pairs, build.pairs_by_split)
            continue
        items = build.items.copy()
        items["split"] = assign_splits(items, fractions, seed)
        build.draws[seed] = Draw(seed, items, *recipe_pairs(items, build.sigma, p, seed))
    build.timings["draws_s"] = time.perf_counter() - t
    return build.draws


def draw_on_demand(folder: str | Path, seed: int) -> Path:
    """Make seed ``seed``'s draw of a finished dataset folder when it has none (a seed outside
    the study's, trained by hand: ``make train SEEDS=7``): the same steps as :func:`draw_splits`,
    from the folder's items, sigma and parameters. Returns the draw's folder."""
    corpus = open_dataset(folder)
    target = resolve(draw_dir(corpus.path, seed))
    if (target / "stats.json").is_file():
        return target
    p = {**schema.defaults("dataset"), **corpus.stats["parameters"]}
    build = DatasetBuild(params=p, out_dir=corpus.path, items=corpus.items[ITEM_COLUMNS].copy(),
                         sigma=float(corpus.stats["sigma"]))
    if p["pairs_source"] == "published":
        build.lists = True   # draw_splits refuses: the published lists fix the split
    draw = draw_splits(build, [int(seed)])[int(seed)]
    _write_draw(build, draw, _made_by())
    return target


def open_draw(path: str | Path) -> "DatasetFolder":
    """:func:`open_dataset`, making the folder first when it is a seed's missing draw of a
    finished dataset folder (``<data_dir>/draws/s<seed>``, see :func:`draw_on_demand`)."""
    path = resolve(path)
    if not path.is_dir() and path.parent.name == DRAWS_FOLDER and path.name[1:].isdigit() \
            and (path.parent.parent / "stats.json").is_file():
        draw_on_demand(path.parent.parent, int(path.name[1:]))
    return open_dataset(path)


def cache_inputs(build: DatasetBuild, progress: bool = False, chunk_size: int = 256) -> dict:
    """Step 6: the cached inputs - images, int16 audio, then the 193x87 features and the
    log-spectrogram computed from the stored audio. ``chunk_size`` items at a time (the unit of
    resumption); an array whose key (a hash of what made it) is unchanged is reused."""
    build._need("items")
    p, items, source = build.params, build.items, build.source
    images, clips = items[items.modality == "image"], items[items.modality == "music"]
    version = _library_version()
    img_src = _hash_strings(images.id.tolist() + images.path.tolist())
    mus_src = _hash_strings(clips.id.tolist() + clips.path.tolist() + clips.start_s.tolist())
    size = int(p["image_size"])

    def make(name, made_by, shape, dtype, produce, chunk):
        t0 = time.perf_counter()
        path, reused = cached_array(build.cache_dir, name, made_by, shape, dtype, produce, chunk, progress)
        build.timings[f"{name}_s"] = time.perf_counter() - t0
        build.arrays[name] = {"file": path.name, "reused": reused}
        return path

    make("images", {"array": "images", "items": img_src, "image_size": size, **source.made_by,
                    "version": version},
         (len(images), size, size, 3), np.uint8, lambda rows: source.images(rows, size), chunk_size)
    audio_made_by = {"array": "audio", "items": mus_src, "sr": SR, "samples": CLIP_SAMPLES,
                     **source.made_by, "version": version}
    audio_path = make("audio", audio_made_by, (len(clips), CLIP_SAMPLES), np.int16,
                      lambda rows: to_int16(source.clips(rows)), chunk_size)
    audio = np.load(audio_path, mmap_mode="r")
    audio_key = content_key(audio_made_by)
    # the device is part of the key: a GPU's float round-off differs from the CPU's (within
    # features.TOLERANCE), and a cache must hold what its key says
    feature_device = features.resolve_device(p["feature_device"])
    on_gpu = p["feature_backend"] == "fast" and feature_device != "cpu"
    if on_gpu:
        # Local: features_torch imports torch, needed on the GPU path only.
        from cdcml_lib.data import features_torch
    feature_code = _code_hash(features, *([features_torch] if on_gpu else []))
    make("music_features", {"array": "music_features", "audio": audio_key,
                            "backend": p["feature_backend"], "code": feature_code,
                            "libraries": features.library_versions(torch=on_gpu),
                            **({"device": feature_device} if on_gpu else {}),
                            "version": version},
         (len(clips), features.N_FEATURES, features.N_FRAMES), np.float32,
         lambda rows: features.extract_features(np.asarray(audio[rows]), SR,
                                                backend=p["feature_backend"], n_jobs=int(p["n_jobs"]),
                                                device=feature_device),
         chunk_size)
    make("log_spectrogram", {"array": "log_spectrogram", "audio": audio_key,
                             "n_fft": features.LOGSPEC_N_FFT, "hop": features.LOGSPEC_HOP,
                             "code": _code_hash(features),
                             "libraries": features.library_versions(librosa=False), "version": version},
         (len(clips), features.LOGSPEC_N_FFT // 2 + 1, features.N_FRAMES), np.float16,
         lambda rows: features.log_spectrogram(np.asarray(audio[rows])), chunk_size)
    del audio
    return build.arrays


def write_folder(build: DatasetBuild) -> "DatasetFolder":
    """Step 7: every draw folder, then ``items.csv``, the three pair lists and ``stats.json``
    LAST (its presence means the folder is complete); return the folder opened."""
    build._need("items", "pairs", "sigma")
    if set(build.arrays) != set(ARRAYS):
        raise DatasetError(f"dataset build: cached arrays {sorted(build.arrays)} of {list(ARRAYS)}; "
                           f"run cache_inputs before write_folder")
    p, items, out_dir = build.params, build.items, build.out_dir
    pairs_by_split = build.pairs_by_split
    made_by = _made_by()
    for draw in build.draws.values():   # before the folder's own stats.json, which says "finished"
        _write_draw(build, draw, made_by)
    _write_lists(out_dir, items, pairs_by_split)
    build.timings["total_s"] = time.perf_counter() - build.started
    stats = {
        "schema": 1,
        "splits": (table1(items, pairs_by_split) if build.lists is None   # the lists' own counts
                   else published.table1_from_lists(pairs_by_split, items)),
        **_pair_stats(build, int(p["seed"]), build.candidates, build.pairs),
        "draws": sorted(build.draws),
        **published.stats_block(build.lists),   # pairs_source, split_overlap, published
        "arrays": build.arrays,
        "timings_s": {k: round(v, 3) for k, v in build.timings.items()},
        "made_by": made_by,
    }
    atomic_write_text(out_dir / "stats.json", json.dumps(stats, indent=2) + "\n")
    return open_dataset(out_dir)


def _write_lists(folder: Path, items: pd.DataFrame, pairs_by_split: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "items.csv", items.to_csv(index=False))
    for s in SPLITS:
        write_pairs(pairs_by_split[s], folder / f"pairs_{s}.txt")


def _pair_stats(build: DatasetBuild, seed: int, candidates: pd.DataFrame, pairs: pd.DataFrame) -> dict:
    """The stats.json entries of one split and its pairs (the folder's own, or a draw's)."""
    p = build.params
    return {
        "sigma": build.sigma,
        "seed": seed,
        "candidates_per_clip": int(p["n_top"]) + int(p["n_bottom"]) + int(p["n_random"]),
        "candidates": int(len(candidates)),
        "score_range": [float(pairs.score.min()), float(pairs.score.max())] if len(pairs) else None,
        "normalisation": ("none: the embedded labels are generated on [0, 1]"
                          if p["corpus"] == "embedded" else
                          "per corpus min-max to [0, 1] (cdcml_lib.data.corpora readers)"),
        "parameters": {k: p[k] for k in DATASET_KEYS + IMEMNET_KEYS + PUBLISHED_KEYS},
    }


def _made_by() -> dict:
    return {"module": "cdcml_lib.data.dataset.build_dataset", "version": _library_version(),
            "commit": _git_commit(), "python": sys.version.split()[0], "numpy": np.__version__,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def _write_draw(build: DatasetBuild, draw: Draw, made_by: dict) -> None:
    """``draws/s<seed>/``: the draw's items.csv and pair lists, then its stats.json LAST."""
    folder = resolve(draw_dir(build.out_dir, draw.seed))
    _write_lists(folder, draw.items, draw.pairs_by_split)
    stats = {"schema": 1, "draw_of": "../..", "splits": table1(draw.items, draw.pairs_by_split),
             **_pair_stats(build, draw.seed, draw.candidates, draw.pairs), "made_by": made_by}
    atomic_write_text(folder / "stats.json", json.dumps(stats, indent=2) + "\n")


def build_dataset(progress: bool = False, chunk_size: int = 256, draw_seeds=(), **params) -> "DatasetFolder":
    """Build ``out_dir`` from the ``dataset:`` section of params/<config>.yaml; return it opened.

    ``params`` are exactly that section's keys (see :data:`DATASET_KEYS`, plus the optional
    :data:`IMEMNET_KEYS` paths for ``corpus: imemnet``): the recipe's steps in order (see
    :class:`DatasetBuild`), with one draw folder per seed of ``draw_seeds``
    (``workflow.params.draw_seeds(config)``). Valid caches are reused.
    """
    build = start_build(**params)
    load_items(build, progress=progress)
    split_items(build)
    score_pairs(build)
    if draw_seeds:
        draw_splits(build, draw_seeds)
    cache_inputs(build, progress=progress, chunk_size=chunk_size)
    return write_folder(build)


# ---------------------------------------------------------------------------------------------
# Open
# ---------------------------------------------------------------------------------------------

@dataclass
class DatasetFolder:
    """An opened, finished dataset folder (see docs/ARCHITECTURE.md)."""

    path: Path
    items: pd.DataFrame
    stats: dict
    manifest: dict
    cache_dir: Path | None = None   # <path>/cache, or for a seed's draw its corpus folder's cache

    def __post_init__(self):
        if self.cache_dir is None:
            self.cache_dir = self.path / "cache"

    def pairs(self, split: str) -> pd.DataFrame:
        """The pairs of ``split``: columns ``music_id, image_id, score``."""
        if split not in SPLITS:
            raise DatasetError(f"unknown split {split!r}; use one of {SPLITS}")
        return read_pairs(self.path / f"pairs_{split}.txt")

    def array(self, name: str, mmap: bool = True) -> np.ndarray:
        """A cached array (``images``, ``audio``, ``music_features``, ``log_spectrogram``)."""
        if name not in self.manifest:
            raise DatasetError(f"{self.cache_dir / 'manifest.json'} has no array {name!r} "
                               f"(it has {sorted(self.manifest)}); {HINT}")
        entry = self.manifest[name]
        return np.load(self.cache_dir / entry["file"], mmap_mode="r" if mmap else None)


def open_dataset(path) -> DatasetFolder:
    """Open a finished dataset folder; a missing or incomplete one is an error naming the file."""
    path = resolve(path)
    if not path.is_dir():
        if path.parent.name == DRAWS_FOLDER:
            raise DatasetError(f"{path} does not exist: the dataset has no split draw for seed "
                               f"{path.name[1:]}. Fix: open it with open_draw (it draws it), or "
                               f"add the seed to study.seeds and rebuild the dataset: {HINT}")
        raise DatasetError(f"dataset folder {path} does not exist; {HINT}")
    stats_path = path / "stats.json"
    if not stats_path.is_file():
        raise DatasetError(f"{stats_path} is missing: the dataset build of {path} did not finish; {HINT}")
    needed = [path / "items.csv"] + [path / f"pairs_{s}.txt" for s in SPLITS]
    for f in needed:
        if not f.is_file():
            raise DatasetError(f"{f} is missing from the dataset folder; {HINT}")
    stats = json.loads(stats_path.read_text())
    # a seed's draw keeps no arrays: they are its corpus folder's, computed once
    cache_dir = (path / stats["draw_of"] / "cache").resolve() if "draw_of" in stats else path / "cache"
    manifest = _read_manifest(cache_dir)
    for name in ARRAYS:
        entry = manifest.get(name)
        if entry is None:
            raise DatasetError(f"{cache_dir / 'manifest.json'} has no entry for {name!r}; {HINT}")
        f = cache_dir / entry["file"]
        if not _valid_array(f, tuple(entry["shape"]), entry["dtype"]):
            raise DatasetError(f"{f} is missing or not the {entry['dtype']} array of shape "
                               f"{entry['shape']} that cache/manifest.json lists; {HINT}")
    items = pd.read_csv(path / "items.csv", dtype={"id": str, "song": str, "path": str},
                        keep_default_na=False, na_values={"start_s": [""]})
    missing = set(ITEM_COLUMNS) - set(items.columns)
    if missing:
        raise DatasetError(f"{path / 'items.csv'} lacks columns {sorted(missing)}; {HINT}")
    return DatasetFolder(path=path, items=items, stats=stats, manifest=manifest, cache_dir=cache_dir)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cdcml_lib.data.dataset",
                                     description="Build data/<config>/ from params/<config>.yaml")
    parser.add_argument("--config", default="smoke", help="a params/<NAME>.yaml (default: smoke)")
    parser.add_argument("--out-dir", default=None, help="override dataset.out_dir")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    params = dict(section(args.config, "dataset"))
    if args.out_dir:
        params["out_dir"] = args.out_dir
    folder = build_dataset(progress=not args.quiet, draw_seeds=draw_seeds(args.config), **params)
    counts = folder.stats["splits"]
    print(f"{folder.path}: sigma {folder.stats['sigma']:.4f}, "
          + ", ".join(f"{s} {counts[s]['clips']} clips / {counts[s]['images']} images / "
                      f"{counts[s]['pairs']} pairs" for s in SPLITS)
          + f"; {folder.stats['timings_s']['total_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
