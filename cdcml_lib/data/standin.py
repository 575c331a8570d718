"""A stand-in corpus in the real layouts: DEAM, IAPS, NAPS and EMOTIC as a user's downloads look,
filled with embedded-benchmark media (issue 13).

``write_standin(params)`` writes, where the ``dataset`` section's corpus keys point (the same keys
a user sets for the real corpora, ``params/standin.yaml``):

- DEAM: ``deam_dir/<song>.mp3`` (46 s per song, every 2-s window rendered by
  ``cdcml_lib.data.synthetic`` at that window's label), the two static annotation files named in
  ``deam_static_csvs`` (``song_id, valence_mean, valence_std, arousal_mean, arousal_std`` on 1-9)
  and the per-second ``valence.csv`` / ``arousal.csv`` in ``deam_dynamic_dir``
  (``song_id, sample_15000ms, ..., sample_44500ms`` on [-1, 1]);
- IAPS: a tab-separated ratings table (``desc, IAPS, valmn, aromn`` on 1-9) and
  ``iaps_dir/<IAPS>.jpg``; NAPS: ``ID, Valence_M, Arousal_M`` and ``naps_dir/<ID>.jpg``; EMOTIC:
  ``Folder, Filename, Valence, Arousal`` (1-10, one row per annotated person) and
  ``emotic_dir/<Folder>/<Filename>``;
- with ``pairs_source: published``: ``train_pairs``, ``val_pairs``, ``test_pairs`` in the
  published format.

Labels. Where the project's real reference files are present (``../shared/reference``: the real
DEAM static annotations, the published validation list and IMEMNet-C's image VA; see its
README), the stand-in takes ``n_songs`` real DEAM songs of the published validation list (45-s
excerpts, songs up to 2000), their real song-level VA, the real ids and scores of their pairs,
the real VA of those images (drawn where image_va.csv has none, as for NAPS), and for each clip
the VA that best explains its published scores under Eq. 1 (``cdcml_lib.data.audit``); the
per-second annotations are made up around those clip labels (DEAM's per-second files are not
redistributable). The songs are split by song into train / val / test lists, images kept in one
split; then, as in the published lists, the test list also holds every validation pair (hence
``allow_split_overlap: true`` in params/standin.yaml). Without the reference files, labels are
drawn by ``synthetic.make_corpus`` and the lists made by our recipe (``cdcml_lib.matching``).

No reference file is copied into the project: their licences are not stated, so the generator
reads them at run time and the stand-in tree lives under ``data/`` (not committed).

Command line: ``python -m cdcml_lib.data.standin --config standin``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cdcml_lib import matching
from cdcml_lib.audio import CLIP_SECONDS, SR
from cdcml_lib.data import audit, synthetic
from cdcml_lib.data.corpora import read_deam_static, read_image_va, read_pairs, write_pairs
from cdcml_lib.matching import SPLITS
from cdcml_lib.workflow.params import section
from cdcml_lib.workflow.paths import atomic_write_text, repo_root, resolve

REFERENCE = repo_root().parent / "shared" / "reference"
SONG_WINDOWS = 23                          # 46 s of audio per song: windows 1..23
SAMPLE_TIMES_MS = np.arange(15000, 45000, 500)   # DEAM's per-second files: 15 s .. 44.5 s
LAST_CLIP = 22                             # last full 2-s window inside the annotations: [42, 44)
STANDIN_SIGMA = 0.39                       # Eq. 1's sigma measured on the published scores
IMAGE_PIXELS = 64                          # side of the stored pictures (the dataset resizes)
SPLIT_SONGS = (0.6, 0.2, 0.2)


@dataclass
class StandinLabels:
    """What the stand-in writes: songs, per-window clip VA, images, and the pair lists."""

    songs: pd.DataFrame           # song (int text), valence, arousal: static, 1-9
    windows: pd.DataFrame         # song, k (1..SONG_WINDOWS), valence, arousal in [0, 1]
    images: pd.DataFrame          # id, corpus (iaps|naps|emotic), valence, arousal in [0, 1]
    lists: dict                   # split -> pairs (music_id, image_id, score)
    source: str                   # "reference" or "drawn"


def corpus_of(image_id: str) -> str:
    """Which image corpus an id of the published lists belongs to."""
    if image_id.replace(".", "", 1).isdigit():
        return "iaps"
    parts = image_id.split("_")
    if len(parts) == 3 and parts[1].isdigit() and parts[2] in ("h", "v"):
        return "naps"
    return "emotic"


def _smooth(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    walk = np.cumsum(rng.normal(0, 1, n))
    walk -= np.linspace(walk[0], walk[-1], n)
    return scale * walk / (np.abs(walk).max() + 1e-9)


def _reference_labels(n_songs: int, seed: int) -> StandinLabels:
    rng = np.random.default_rng(seed)
    val = read_pairs(REFERENCE / "imemnet" / "val_matching.txt")
    song = val.music_id.map(audit.song_of)
    k = val.music_id.str.rsplit("-", n=1).str[1].astype(int)
    per_song = pd.DataFrame({"song": song, "k": k}).groupby("song").k.agg(["min", "max"])
    usable = per_song[(per_song["max"] <= LAST_CLIP) & (per_song.index.astype(int) <= 2000)]
    chosen = sorted(rng.choice(usable.index.to_numpy(), size=min(n_songs, len(usable)),
                               replace=False), key=int)
    pairs = val[song.isin(chosen)].drop_duplicates(["music_id", "image_id"]).reset_index(drop=True)
    static = read_deam_static(sorted((REFERENCE / "deam").glob("static_annotations_*.csv")))
    static = static.set_index("song").loc[chosen].reset_index()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")            # image_va.csv's 8 conflicting ids: left out
        known = read_image_va(REFERENCE / "imemnet" / "image_va.csv").labels
    ids = pd.unique(pairs.image_id)
    va = np.array([known.loc[i].to_numpy() if i in known.index else rng.random(2) for i in ids])
    images = pd.DataFrame({"id": ids, "corpus": [corpus_of(i) for i in ids],
                           "valence": va[:, 0], "arousal": va[:, 1]})
    # each clip's VA: the point that best explains its published scores (Eq. 1, sigma 0.39)
    labelled = pairs.merge(images.rename(columns={"id": "image_id", "valence": "img_v",
                                                  "arousal": "img_a"}), on="image_id")
    groups = audit._clip_groups(labelled, 1)
    start = audit.grid_start(groups)
    clip_va, _ = audit.fit_clip_va(groups, STANDIN_SIGMA, "exp", start)
    clip_ids = np.unique(labelled.drop_duplicates(["music_id", "image_id", "score"]).music_id)
    fitted = dict(zip(clip_ids, clip_va))
    rows = []
    for s, v9, a9 in static[["song", "valence", "arousal"]].itertuples(index=False):
        base = np.array([(v9 - 1) / 8, (a9 - 1) / 8])
        drift = np.stack([_smooth(rng, SONG_WINDOWS, 0.08), _smooth(rng, SONG_WINDOWS, 0.08)], 1)
        for w in range(1, SONG_WINDOWS + 1):
            y = fitted.get(f"{s}-{w}", np.clip(base + drift[w - 1], 0.02, 0.98))
            rows.append((s, w, float(y[0]), float(y[1])))
    windows = pd.DataFrame(rows, columns=["song", "k", "valence", "arousal"])
    return StandinLabels(songs=static, windows=windows, images=images,
                         lists=_split_lists(pairs, chosen, rng), source="reference")


def _split_lists(pairs: pd.DataFrame, songs, rng) -> dict:
    """Train / val / test lists by song, each image in one split only, and then (as in the
    published lists) every validation pair also in the test list."""
    order = rng.permutation(np.asarray(songs))
    n_train = int(round(SPLIT_SONGS[0] * len(order)))
    n_val = max(1, int(round(SPLIT_SONGS[1] * len(order))))
    of_song = {s: ("train" if i < n_train else "val" if i < n_train + n_val else "test")
               for i, s in enumerate(order)}
    split = pairs.music_id.map(audit.song_of).map(of_song)
    image_split = {}
    for name in ("test", "val", "train"):                # first come: test, then val, train
        for image in pairs.image_id[split == name]:
            image_split.setdefault(image, name)
    keep = pairs.image_id.map(image_split) == split
    lists = {name: pairs[keep & (split == name)][["music_id", "image_id", "score"]]
             for name in SPLITS}
    lists["test"] = pd.concat([lists["test"], lists["val"]], ignore_index=True)
    return lists


def _drawn_labels(n_songs: int, n_images: int, seed: int) -> StandinLabels:
    """Without the reference files: labels from synthetic.make_corpus, ids in the real
    conventions, lists from our recipe (Eq. 1 with sigma the mean label distance)."""
    corpus = synthetic.make_corpus(n_songs=n_songs, clips_per_song_min=SONG_WINDOWS,
                                   clips_per_song_max=SONG_WINDOWS, n_images=n_images,
                                   label_noise=0.0, seed=seed)
    song_ids = [str(2 + i) for i in range(n_songs)]
    windows = pd.DataFrame({"song": np.repeat(song_ids, SONG_WINDOWS),
                            "k": np.tile(np.arange(1, SONG_WINDOWS + 1), n_songs),
                            "valence": corpus.clip_va[:, 0], "arousal": corpus.clip_va[:, 1]})
    static = windows.groupby("song", sort=False)[["valence", "arousal"]].mean() * 8 + 1
    static = static.loc[song_ids].reset_index()
    kinds = np.array(["iaps", "naps", "emotic", "emotic"])[np.arange(n_images) % 4]
    ids = [(f"{1000 + i}" if kind == "iaps" else f"Animals_{i:03d}_h" if kind == "naps" else
            f"COCO_train2014_{i:012d}" if i % 8 < 4 else f"frame_standin{i:05d}")
           for i, kind in enumerate(kinds)]
    images = pd.DataFrame({"id": ids, "corpus": kinds, "valence": corpus.image_va[:, 0],
                           "arousal": corpus.image_va[:, 1]})
    clips = windows[(windows.k >= 9) & (windows.k <= LAST_CLIP)].copy()
    clips["id"] = clips.song + "-" + clips.k.astype(str)
    clips["split"] = matching.split_songs(clips.song.to_numpy(), SPLIT_SONGS, seed=seed)
    images["split"] = matching.split_images(images.id.to_numpy(), SPLIT_SONGS, seed=seed + 1)
    sigma = matching.mean_label_distance(images[["valence", "arousal"]].to_numpy(),
                                         clips[["valence", "arousal"]].to_numpy())
    smallest = int(images.split.value_counts().min())     # each split must offer the candidates
    cand = matching.candidate_pairs(clips, images, sigma, n_random=max(0, min(6, smallest - 4)),
                                    n_top=2, n_bottom=2, seed=seed)
    pairs = matching.sample_pairs(cand, 0.5, seed=seed)
    lists = {s: pairs[pairs.split == s][["music_id", "image_id", "score"]] for s in SPLITS}
    lists["test"] = pd.concat([lists["test"], lists["val"]], ignore_index=True)
    return StandinLabels(songs=static, windows=windows, images=images.drop(columns="split"),
                         lists=lists, source="drawn")


def standin_labels(n_songs: int, n_images: int, seed: int) -> StandinLabels:
    """The stand-in's labels and lists, from the reference files when present."""
    if (REFERENCE / "imemnet" / "val_matching.txt").is_file():
        return _reference_labels(n_songs, seed)
    return _drawn_labels(n_songs, n_images, seed)


# --- writing the files ---------------------------------------------------------------------

def _write_deam(p: dict, labels: StandinLabels, seed: int) -> None:
    import soundfile as sf

    audio_dir = resolve(p["deam_dir"])
    audio_dir.mkdir(parents=True, exist_ok=True)
    w = labels.windows
    song_index = {s: i for i, s in enumerate(labels.songs.song)}
    corpus = synthetic.EmbeddedCorpus(
        image_ids=[], image_va=np.zeros((0, 2)), image_cue_va=np.zeros((0, 2)),
        song_ids=list(labels.songs.song), clip_ids=(w.song + "-" + w.k.astype(str)).tolist(),
        clip_song=w.song.tolist(), clip_index=w.k.to_numpy(),
        clip_va=w[["valence", "arousal"]].to_numpy(), clip_cue_va=w[["valence", "arousal"]].to_numpy(),
        seed=seed, clip_song_index=w.song.map(song_index).to_numpy())
    for song, rows in w.groupby("song", sort=False).groups.items():
        audio = corpus.render_clips(np.asarray(rows)).reshape(-1)   # windows 1..23, in order
        sf.write(audio_dir / f"{song}.mp3", audio, SR)
    # per-second annotations: each 2-s window's samples around its label, on DEAM's [-1, 1]
    rng = np.random.default_rng(seed)
    dyn = resolve(p["deam_dynamic_dir"])
    dyn.mkdir(parents=True, exist_ok=True)
    columns = [f"sample_{t}ms" for t in SAMPLE_TIMES_MS]
    window_of = (SAMPLE_TIMES_MS // 1000 // int(CLIP_SECONDS)) + 1
    for name in ("valence", "arousal"):
        table = w.pivot(index="song", columns="k", values=name).loc[labels.songs.song]
        values = table[window_of].to_numpy() * 2 - 1
        jitter = pd.DataFrame(rng.normal(0, 0.02, values.shape))
        jitter -= jitter.T.groupby(window_of).transform("mean").T.to_numpy()  # window means kept
        jitter = jitter.to_numpy()
        values = np.clip(values + jitter, -1, 1)
        text = pd.DataFrame(np.round(values, 6), columns=columns)
        text.insert(0, "song_id", table.index)
        atomic_write_text(dyn / f"{name}.csv", text.to_csv(index=False))
    # static annotations, split like DEAM's two files (songs up to 2000, then 2000..2058)
    files = [resolve(c.strip()) for c in p["deam_static_csvs"].split(",") if c.strip()]
    songs = labels.songs.assign(n=labels.songs.song.astype(int))
    parts = [songs]
    if len(files) == 2:   # the second file must not be empty: it takes the last song at least
        second = (songs.n > 2000) | (np.arange(len(songs)) == len(songs) - 1)
        parts = [songs[~second], songs[second]]
    for path, part in zip(files, parts):
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = ["song_id, valence_mean, valence_std, arousal_mean, arousal_std"]
        lines += [f"{s},{v:.2f},1.5,{a:.2f},1.5" for s, v, a in
                  part[["song", "valence", "arousal"]].itertuples(index=False)]
        atomic_write_text(path, "\n".join(lines) + "\n")


def _write_images(p: dict, labels: StandinLabels, seed: int) -> None:
    from PIL import Image

    images = labels.images
    y = images[["valence", "arousal"]].to_numpy()
    corpus = synthetic.EmbeddedCorpus(image_ids=images.id.tolist(), image_va=y, image_cue_va=y,
                                      song_ids=[], clip_ids=[], clip_song=[],
                                      clip_index=np.zeros(0, int), clip_va=np.zeros((0, 2)),
                                      clip_cue_va=np.zeros((0, 2)), seed=seed)
    pixels = corpus.render_images(np.arange(len(images)), IMAGE_PIXELS)
    rng = np.random.default_rng(seed)
    tables = {"iaps": [], "naps": [], "emotic": []}
    for row, (image_id, kind, v, a) in enumerate(images.itertuples(index=False)):
        if kind == "emotic":
            folder = ("mscoco/images" if image_id.startswith("COCO_") else
                      "framesdb/images" if image_id.startswith("frame_") else "emodb_small/images")
            path = resolve(p["emotic_dir"]) / folder / f"{image_id}.jpg"
            # two annotators whose mean is the label, both inside the 1-10 scale
            dv, da = (min(rng.uniform(0, 0.5), 9 * x, 9 * (1 - x)) for x in (v, a))
            for sign in (-1, 1):
                tables["emotic"].append((folder, f"{image_id}.jpg", 1 + 9 * v + sign * dv,
                                         1 + 9 * a - sign * da))
        else:
            path = resolve(p[f"{kind}_dir"]) / f"{image_id}.jpg"
            tables[kind].append((image_id, 1 + 8 * v, 1 + 8 * a))
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels[row]).save(path, quality=90)
    iaps = resolve(p["iaps_ratings"])
    iaps.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(iaps, "desc\tIAPS\tvalmn\taromn\n" + "".join(
        f"standin\t{i}\t{v:.4f}\t{a:.4f}\n" for i, v, a in tables["iaps"]))
    naps = resolve(p["naps_ratings"])
    naps.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(naps, "ID,Valence_M,Arousal_M\n" + "".join(
        f"{i},{v:.4f},{a:.4f}\n" for i, v, a in tables["naps"]))
    emotic = resolve(p["emotic_annotations"])
    emotic.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(emotic, "Folder,Filename,Valence,Arousal\n" + "".join(
        f"{f},{n},{v:.4f},{a:.4f}\n" for f, n, v, a in tables["emotic"]))


def write_standin(p: dict) -> Path:
    """Write the stand-in corpus where the params' corpus keys point (see the module
    docstring); skipped when the marker ``STANDIN.json`` beside the DEAM audio folder says the
    same parameters made it. Sizes: ``n_songs`` songs (``n_images`` images without the
    reference files; with them, the images the sampled lists name). Returns the marker."""
    keys = ("deam_dir", "deam_static_csvs", "deam_dynamic_dir", "iaps_ratings", "iaps_dir",
            "naps_ratings", "naps_dir", "emotic_annotations", "emotic_dir")
    lists = p.get("pairs_source") == "published"
    spec = {"n_songs": int(p["n_songs"]), "n_images": int(p["n_images"]), "seed": int(p["seed"]),
            "reference": (REFERENCE / "imemnet" / "val_matching.txt").is_file(),
            **{k: p[k] for k in keys},
            **({k: p[k] for k in ("train_pairs", "val_pairs", "test_pairs")} if lists else {}),
            "code": hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]}
    marker = resolve(p["deam_dir"]).parent / "STANDIN.json"
    if marker.is_file() and json.loads(marker.read_text()).get("spec") == spec:
        return marker
    marker.unlink(missing_ok=True)
    labels = standin_labels(spec["n_songs"], spec["n_images"], spec["seed"])
    _write_deam(p, labels, spec["seed"])
    _write_images(p, labels, spec["seed"])
    if lists:
        for split in SPLITS:
            write_pairs(labels.lists[split], resolve(p[f"{split}_pairs"]))
    atomic_write_text(marker, json.dumps({"spec": spec, "labels": labels.source}, indent=2) + "\n")
    return marker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cdcml_lib.data.standin",
                                     description="Write the stand-in corpus of params/<config>.yaml")
    parser.add_argument("--config", default="standin")
    args = parser.parse_args(argv)
    print(write_standin(dict(section(args.config, "dataset"))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
