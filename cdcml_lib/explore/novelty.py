"""Has the model seen media like this? A novelty guard for both modalities, built on the run's
own training items.

A trained run rates anything it is given; it only knows the media of its training split. The
guard measures how far a query lies from those items, with *detectors* that each describe the
input the way the run reads it:

- music, ``rows``: for each 2 s window, the mean, standard deviation and 10th / 90th percentiles
  over time of each row of the run's standardised music input (the 193 feature rows, or
  L3-Net's spectrogram rows): what sounds the window holds and how they move. Its novelty is
  the mean distance to the ``K`` nearest training windows (each dimension standardised);
- images, ``colour`` (quantiles of each channel, of saturation and of edge strength) and
  ``texture`` (how peaked the spectrum is, where its energy lies, the share of flat pixels, the
  pixel grain), of the image as the run reads it (resized to its ``image_size``). Each is a
  Gaussian of the training images (Mahalanobis distance, covariance slightly shrunk).

Each detector's threshold is set on the run's *validation* items (never trained on, from songs
it never heard): their :data:`VAL_QUANTILE` quantile times :data:`MARGIN`. A query's novelty is
the largest of its detectors' distances divided by their thresholds: up to 1 is familiar, above
1 the model has not seen media like it. A song is unfamiliar when most of its non-silent windows
are. The test split is left alone for measuring the guard (``benchmarks/novelty.py``).

The guard is fitted on first use of a run and cached in its folder (``novelty.npz``, keyed by
the checkpoint and the dataset it was fitted from); training writes nothing for it. It changes
no prediction: it adds the plain statement that the model has not seen media like the file,
which the match CLI, its CSV and :class:`~cdcml_lib.explore.match.Prediction` carry.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cdcml_lib.data.dataset import open_dataset
from cdcml_lib.nets import music_input
from cdcml_lib.workflow.paths import resolve

#: Neighbours the music novelty averages over (one nearest window is noisy).
K = 5
#: The share of validation items a detector's threshold keeps inside.
VAL_QUANTILE = 0.99
#: Extra room over that quantile: the validation split is small (a few hundred items).
MARGIN = 1.1
#: Shrinkage of the image Gaussians' covariance toward its mean variance (stable inverse).
SHRINK = 1e-3
GUARD_FILE = "novelty.npz"
GUARD_VERSION = 2
#: Training items kept per modality (a random subset beyond this: bounded memory and time).
MAX_TRAIN_ITEMS = 20000

UNFAMILIAR = ("the model has not seen media like this: {what} lies far from everything it was "
              "trained on (novelty {score:.1f}, where 1.0 is the edge of its training media); its "
              "valence, arousal and matches for it are guesses, not measurements")


# --- descriptors ---------------------------------------------------------------------------------

def music_rows(standardised: np.ndarray) -> np.ndarray:
    """``[W, 4R]``: each row's mean, std, 10th and 90th percentile over time of standardised
    music inputs ``[W, R, T]``."""
    z = np.asarray(standardised, dtype=np.float32)
    q = np.quantile(z, [0.1, 0.9], axis=2)
    return np.concatenate([z.mean(axis=2), z.std(axis=2), q[0], q[1]], axis=1)


QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def image_colour(images: np.ndarray) -> np.ndarray:
    """``[N, 25]``: quantiles of each RGB channel, of saturation and of edge strength."""
    x = np.asarray(images, dtype=np.float32) / 255.0
    n = len(x)
    top, bottom = x.max(axis=3), x.min(axis=3)
    saturation = (top - bottom) / (top + 1e-6)
    grey = x.mean(axis=3)
    edges = np.concatenate([np.abs(np.diff(grey, axis=2)).reshape(n, -1),
                            np.abs(np.diff(grey, axis=1)).reshape(n, -1)], axis=1)
    parts = [np.quantile(x[..., c].reshape(n, -1), QUANTILES, axis=1).T for c in range(3)]
    parts.append(np.quantile(saturation.reshape(n, -1), QUANTILES, axis=1).T)
    parts.append(np.quantile(edges, (0.25, 0.5, 0.75, 0.9, 0.99), axis=1).T)
    return np.concatenate(parts, axis=1)


def image_texture(images: np.ndarray) -> np.ndarray:
    """``[N, 10]``: how peaked the grey spectrum is (a periodic pattern is), its share of high
    and middle frequencies, the share of flat pixels at three steps, and the pixel grain."""
    g = np.asarray(images, dtype=np.float32).mean(axis=3) / 255.0
    n, size = g.shape[0], g.shape[1]
    power = (np.abs(np.fft.rfft2(g - g.mean(axis=(1, 2), keepdims=True))) ** 2).reshape(n, -1)[:, 1:]
    total = power.sum(axis=1) + 1e-12
    ranked = np.sort(power, axis=1)[:, ::-1]
    radius = np.hypot(np.fft.fftfreq(size)[:, None], np.fft.rfftfreq(size)[None, :]).reshape(-1)[1:]
    step = np.abs(np.diff(g, axis=2)).reshape(n, -1)
    grain = np.abs(4 * g[:, 1:-1, 1:-1] - g[:, :-2, 1:-1] - g[:, 2:, 1:-1]
                   - g[:, 1:-1, :-2] - g[:, 1:-1, 2:]).reshape(n, -1)
    return np.stack([np.log(ranked[:, 0] / (np.median(power, axis=1) + 1e-12) + 1e-12),
                     ranked[:, :5].sum(axis=1) / total, ranked[:, :20].sum(axis=1) / total,
                     power[:, radius > 0.25].sum(axis=1) / total,
                     power[:, (radius > 0.1) & (radius <= 0.25)].sum(axis=1) / total,
                     *[(step < t).mean(axis=1) for t in (0.005, 0.02, 0.05)],
                     np.median(grain, axis=1), np.quantile(grain, 0.9, axis=1)], axis=1)


#: modality -> {detector name: (descriptor of model inputs, model kind)}
DETECTORS = {
    "music": {"rows": (lambda trained, x: music_rows(trained.standardiser(x).numpy()), "knn")},
    "image": {"colour": (lambda trained, x: image_colour(x), "gaussian"),
              "texture": (lambda trained, x: image_texture(x), "gaussian")},
}


# --- the detectors -------------------------------------------------------------------------------

@dataclass
class Detector:
    """One descriptor's model of the training items and its threshold from validation.

    ``kind="knn"``: ``reference`` holds the standardised training descriptors; ``"gaussian"``:
    ``reference`` holds the inverse covariance. ``mean``/``std`` standardise a descriptor."""

    kind: str
    reference: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    threshold: float = np.inf

    def distance(self, descriptors: np.ndarray) -> np.ndarray:
        x = (np.asarray(descriptors, dtype=np.float64) - self.mean) / self.std
        if self.kind == "gaussian":
            return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", x, self.reference, x), 0))
        out = np.empty(len(x))
        for b in range(0, len(x), 256):   # blocks: never all query x training distances at once
            d = _distances(x[b:b + 256], self.reference)
            k = min(K, d.shape[1])
            out[b:b + 256] = np.partition(d, k - 1, axis=1)[:, :k].mean(axis=1)
        return out

    def novelty(self, descriptors: np.ndarray) -> np.ndarray:
        """Distance in units of the threshold: above 1 is unfamiliar."""
        return self.distance(descriptors) / self.threshold


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(sq, 0))


def fit_detector(kind: str, train: np.ndarray, val: np.ndarray) -> Detector:
    """A detector of the training descriptors, its threshold set on the validation ones."""
    train = np.asarray(train, dtype=np.float64)
    mean = train.mean(axis=0)
    std = np.where(train.std(axis=0) > 1e-9, train.std(axis=0), 1.0)
    x = (train - mean) / std
    if kind == "gaussian":
        cov = np.cov(x, rowvar=False)
        cov += SHRINK * np.trace(cov) / len(cov) * np.eye(len(cov))
        reference = np.linalg.inv(cov)
    else:
        reference = x
    detector = Detector(kind, reference, mean, std)
    detector.threshold = float(np.quantile(detector.distance(val), VAL_QUANTILE) * MARGIN)
    return detector


@dataclass
class NoveltyGuard:
    """The detectors of one run, both modalities, and what they were fitted on."""

    detectors: dict         # modality -> {name: Detector}
    fitted_on: dict         # dataset folder, corpus

    def scores(self, trained, modality: str, inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Each detector's novelty of model inputs (images, or music inputs ``[W, R, T]``)."""
        return {name: self.detectors[modality][name].novelty(describe(trained, inputs))
                for name, (describe, _) in DETECTORS[modality].items()}

    def novelty(self, trained, modality: str, inputs: np.ndarray) -> np.ndarray:
        """The largest detector novelty per item: above 1 the model has not seen media like it."""
        return np.max(np.stack(list(self.scores(trained, modality, inputs).values())), axis=0)


def split_inputs(ds, trained, modality: str, split: str, rng) -> np.ndarray:
    """The run's model inputs of one split and modality (a random subset when very many)."""
    items = ds.items
    rows = items.loc[(items["split"] == split) & (items["modality"] == modality), "row"]
    rows = np.sort(rows.to_numpy(dtype=int))
    if len(rows) == 0:
        raise ValueError(f"{ds.path}: no {modality} items in split {split!r}; the novelty guard "
                         "needs the run's training and validation items")
    if len(rows) > MAX_TRAIN_ITEMS:
        rows = np.sort(rng.choice(rows, MAX_TRAIN_ITEMS, replace=False))
    name = "images" if modality == "image" else music_input(trained.params["model"])
    return np.asarray(ds.array(name)[rows])


def _describe_all(describe, trained, inputs: np.ndarray) -> np.ndarray:
    return np.concatenate([describe(trained, inputs[b:b + 512]) for b in range(0, len(inputs), 512)])


def fit_guard(trained, dataset) -> NoveltyGuard:
    """Fit every detector on the run's dataset: training items as the reference, validation
    items for the thresholds."""
    rng = np.random.default_rng(0)
    detectors: dict = {}
    for modality, kinds in DETECTORS.items():
        train = split_inputs(dataset, trained, modality, "train", rng)
        val = split_inputs(dataset, trained, modality, "val", rng)
        detectors[modality] = {
            name: fit_detector(kind, _describe_all(describe, trained, train),
                               _describe_all(describe, trained, val))
            for name, (describe, kind) in kinds.items()}
    return NoveltyGuard(detectors, {"data_dir": str(trained.params.get("data_dir")),
                                    "corpus": run_corpus(trained, dataset)})


def run_corpus(trained, dataset=None) -> str:
    """The corpus a run was trained on (``embedded``, ``imemnet``, ...), from its dataset."""
    try:
        if dataset is None:
            dataset = open_dataset(resolve(trained.params["data_dir"]))
        for entry in dataset.manifest.values():
            corpus = entry.get("made_by", {}).get("corpus")
            if corpus:
                return str(corpus)
        return str(dataset.items["source"].mode().iloc[0])
    except Exception:   # a run whose dataset is gone still predicts; its corpus is then unknown
        return "unknown"


# --- cache in the run folder ---------------------------------------------------------------------

def _key(run_dir: Path, dataset) -> str:
    """What the cached guard depends on: the checkpoint's bytes and the dataset's arrays."""
    h = hashlib.sha256()
    h.update((run_dir / "best.pt").read_bytes())
    h.update(json.dumps({k: v.get("key") for k, v in dataset.manifest.items()}, sort_keys=True).encode())
    h.update((dataset.path / "items.csv").read_bytes())
    h.update(str(GUARD_VERSION).encode())
    return h.hexdigest()[:16]


def save_guard(guard: NoveltyGuard, path: Path, key: str) -> None:
    arrays = {"key": np.array(key), "fitted_on": np.array(json.dumps(guard.fitted_on))}
    for m, named in guard.detectors.items():
        for name, d in named.items():
            arrays.update({f"{m}.{name}.reference": d.reference, f"{m}.{name}.mean": d.mean,
                           f"{m}.{name}.std": d.std, f"{m}.{name}.threshold": np.array(d.threshold)})
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as handle:   # a file object: np.savez would append .npz to the name
        np.savez(handle, **arrays)
    tmp.replace(path)


def load_guard(path: Path, key: str) -> NoveltyGuard | None:
    """The cached guard, or None when there is none or it was fitted on something else."""
    if not path.is_file():
        return None
    with np.load(path) as z:
        if str(z["key"]) != key:
            return None
        detectors = {m: {name: Detector(kind, z[f"{m}.{name}.reference"], z[f"{m}.{name}.mean"],
                                        z[f"{m}.{name}.std"], float(z[f"{m}.{name}.threshold"]))
                         for name, (_, kind) in kinds.items()}
                     for m, kinds in DETECTORS.items()}
        return NoveltyGuard(detectors, json.loads(str(z["fitted_on"])))


def guard_for(trained, run_dir=None, dataset=None) -> NoveltyGuard:
    """The run's guard: read from ``run_dir/novelty.npz`` when it matches the run and dataset,
    else fitted now and cached there (when the folder is writable)."""
    dataset = dataset or open_dataset(resolve(trained.params["data_dir"]))
    run_dir = Path(resolve(run_dir or trained.params["run_dir"]))
    key = _key(run_dir, dataset)
    cached = load_guard(run_dir / GUARD_FILE, key)
    if cached is not None:
        return cached
    guard = fit_guard(trained, dataset)
    try:
        save_guard(guard, run_dir / GUARD_FILE, key)
    except OSError:   # a read-only run folder: the guard is simply fitted again next time
        pass
    return guard


def unfamiliar_message(what: str, score: float) -> str:
    return UNFAMILIAR.format(what=what, score=score)
