"""The IMEMNet recipe: normalisation, splits, the matching score (Eq. 1) and candidate pairs.

Zhao et al. 2020 (ACM MM, section 3; ``docs/METHOD.md``, section "The dataset recipe (IMEMNet)")
build IMEMNet in five steps, one function each here:

1. :func:`minmax_normalise` - each corpus's valence-arousal (VA) labels to [0, 1];
2. :func:`split_by_group` - 80/5/15 train/val/test, no song (or image) in two splits;
3. :func:`mean_label_distance` - sigma, the mean Euclidean VA distance over all image-music pairs;
4. :func:`matching_score` - Eq. 1, s = exp(-||y_I - y_M||_2 / sigma);
5. :func:`candidate_pairs` then :func:`sample_pairs` - per clip 50 images of its own split
   (10 best, 10 worst, 30 random), then a random 10% of those pairs.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")

# Rows of the clip-by-image distance matrix computed at once: 256 rows x 36k images of float64
# is about 70 MB, small enough for a laptop and large enough for numpy to be efficient.
_BLOCK_ROWS = 256


def minmax_normalise(values, lo=None, hi=None) -> np.ndarray:
    """Min-max normalise one corpus's labels to [0, 1] (docs/METHOD.md, section "Corpora and VA
    normalisation").

    ``values`` is ``[n]`` or ``[n, d]`` (e.g. d = 2 for valence and arousal); each column is
    normalised by its own minimum and range, as IMEMNet does per corpus. ``lo`` and ``hi`` fix the
    scale's ends instead (e.g. 1 and 9 for a 9-point rating scale).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("minmax_normalise: no values to normalise (the corpus is empty)")
    if not np.all(np.isfinite(values)):
        bad = np.argwhere(~np.isfinite(values))[0]
        raise ValueError(f"minmax_normalise: value at index {tuple(bad)} is NaN or infinite; "
                         "drop or fix that item before normalising")
    lo = values.min(axis=0) if lo is None else np.asarray(lo, dtype=np.float64)
    hi = values.max(axis=0) if hi is None else np.asarray(hi, dtype=np.float64)
    span = hi - lo
    if np.any(span <= 0):
        raise ValueError(f"minmax_normalise: empty range (lo={lo}, hi={hi}); a corpus whose labels "
                         "are all equal cannot be min-max normalised - pass lo and hi explicitly")
    return (values - lo) / span


#: Table 1 of Zhao et al. 2020: the sizes of IMEMNet's splits (the one copy in the kit; the audit,
#: the dataset notebook and the report compare counts with it).
IMEMNET_TABLE1 = {"train": {"songs": 1442, "clips": 28835, "images": 20496, "pairs": 109525},
                  "val": {"songs": 90, "clips": 1759, "images": 1281, "pairs": 8795},
                  "test": {"songs": 270, "clips": 5223, "images": 3843, "pairs": 26115},
                  "total": {"songs": 1802, "clips": 35817, "images": 25620, "pairs": 144435}}


def split_fractions_problem(fractions: Sequence) -> str | None:
    """What is wrong with split fractions (train, val, test), or None: three positive numbers
    summing to 1. The one home of this rule: the parameter check (``workflow.schema``) asks it
    before any dataset is built, :func:`split_by_group` before it cuts."""
    try:
        values = [float(f) for f in fractions]
    except (TypeError, ValueError):
        return f"they must be three numbers (train, val, test), got {fractions!r}"
    if len(values) != 3 or min(values) <= 0 or abs(sum(values) - 1.0) > 1e-6:
        return (f"they must be three positive numbers summing to 1 (train, val, test), got "
                f"{values} (sum {sum(values):g}); the paper uses 0.80/0.05/0.15")
    return None


def split_songs(songs: Sequence, fractions=(0.8, 0.05, 0.15), seed: int = 0) -> np.ndarray:
    """The split of music clips: all clips of a song in one split (docs/METHOD.md, section
    "Splits by song and by image"). The one place of the rule for clips: the dataset build, its
    per-seed draws and the stand-in corpus all call it."""
    return split_by_group(np.asarray(songs), fractions, seed=seed)


def split_images(image_ids: Sequence, fractions=(0.8, 0.05, 0.15), seed: int = 0) -> np.ndarray:
    """The split of images: each image is its own group (docs/METHOD.md, section "Splits by song
    and by image"). The one place of the rule for images (see :func:`split_songs`)."""
    return split_by_group(np.asarray(image_ids), fractions, seed=seed)


def split_by_group(groups: Sequence, fractions=(0.8, 0.05, 0.15), seed: int = 0) -> np.ndarray:
    """Assign each item to ``train``/``val``/``test`` so that no group is in two splits.

    IMEMNet splits songs (all clips of a song go to one split) and images (each image is its own
    group) at random 80/5/15 (docs/METHOD.md, section "Splits by song and by image"). Groups, not
    items, are shuffled and cut by ``fractions``; every split receives at least one group, so at
    least three groups are needed.
    Returns an array of split labels aligned with ``groups``.
    """
    problem = split_fractions_problem(fractions)
    if problem:
        raise ValueError(f"split fractions: {problem}")
    fractions = np.asarray(fractions, dtype=np.float64)
    groups = np.asarray(groups)
    unique = np.unique(groups)
    n = len(unique)
    if n < 3:
        raise ValueError(f"split_by_group needs at least 3 groups (one per split), got {n}; "
                         "make the corpus larger")
    n_val = max(1, int(round(fractions[1] * n)))
    n_test = max(1, int(round(fractions[2] * n)))
    n_train = n - n_val - n_test
    if n_train < 1:
        raise ValueError(f"{n} groups leave none for training with fractions {fractions.tolist()}")
    order = np.random.default_rng(seed).permutation(n)
    label_of_group = np.empty(n, dtype=object)
    label_of_group[order[:n_train]] = "train"
    label_of_group[order[n_train:n_train + n_val]] = "val"
    label_of_group[order[n_train + n_val:]] = "test"
    return label_of_group[np.searchsorted(unique, groups)].astype(str)


def label_distances(y_a, y_b) -> np.ndarray:
    """Euclidean distances ``[n_a, n_b]`` between every label of ``y_a`` and every one of ``y_b``."""
    y_a = np.asarray(y_a, dtype=np.float64)
    y_b = np.asarray(y_b, dtype=np.float64)
    diff = y_a[:, None, :] - y_b[None, :, :]
    return np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))


def score_from_distance(distance, sigma: float):
    """Eq. 1 of Zhao et al. 2020 from a VA distance d = ||y_I - y_M||_2: s = exp(-d / sigma).

    The one home of Eq. 1: the recipe (NumPy, labels), the networks (SP-Net's score from predicted
    VA) and the losses (the label distance of the dense triplets) all call it. ``distance`` is a
    NumPy array or a torch tensor (kept on its device, with its gradient); each caller computes
    the distance the way its context needs (a floor under the square root where a gradient flows).
    """
    z = -distance / sigma
    return z.exp() if hasattr(z, "exp") else np.exp(z)


def matching_score(y_img, y_mus, sigma: float) -> np.ndarray:
    """Eq. 1 of Zhao et al. 2020: s = exp(-||y_I - y_M||_2 / sigma).

    ``y_img`` and ``y_mus`` are VA labels ``[..., 2]`` that broadcast against each other
    (e.g. ``[n, 2]`` and ``[n, 2]`` for n pairs, or ``[n, 1, 2]`` and ``[1, m, 2]`` for a matrix).
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    diff = np.asarray(y_img, dtype=np.float64) - np.asarray(y_mus, dtype=np.float64)
    return score_from_distance(np.sqrt(np.sum(diff * diff, axis=-1)), sigma)


def mean_label_distance(y_img, y_mus, block_rows: int = 512) -> float:
    """sigma of Eq. 1: the mean Euclidean distance over ALL image-music label pairs (exact).

    The n_img x n_mus distances are summed block by block (never held at once): ``block_rows``
    labels of the shorter side against all of the other, about 150 MB of float64 per block for
    IMEMNet's 25,620 x 35,817 pairs. Exact up to float64 rounding (no sampling).
    """
    y_img = np.asarray(y_img, dtype=np.float64)
    y_mus = np.asarray(y_mus, dtype=np.float64)
    if len(y_img) == 0 or len(y_mus) == 0:
        raise ValueError("mean_label_distance needs at least one image and one music label")
    a, b = (y_img, y_mus) if len(y_img) <= len(y_mus) else (y_mus, y_img)
    total = 0.0
    for start in range(0, len(a), block_rows):
        blk = a[start:start + block_rows]
        squared = np.zeros((len(blk), len(b)))
        for k in range(a.shape[1]):              # one VA axis at a time: no [block, d, n] array
            diff = blk[:, k:k + 1] - b[None, :, k]
            diff *= diff
            squared += diff
        total += np.sqrt(squared, out=squared).sum()   # (np.hypot is ~20x slower)
    return float(total / (len(y_img) * len(y_mus)))


def _va(frame: pd.DataFrame, what: str) -> np.ndarray:
    missing = {"id", "split", "valence", "arousal"} - set(frame.columns)
    if missing:
        raise ValueError(f"candidate_pairs: the {what} table lacks columns {sorted(missing)}; "
                         "it needs id, split, valence, arousal")
    return frame[["valence", "arousal"]].to_numpy(np.float64)


def _uniform_subset(rng: np.random.Generator, n_rows: int, n: int, k: int) -> np.ndarray:
    """Per row, k distinct integers drawn uniformly from range(n): Floyd's algorithm, vectorised.

    Floyd (1987): for j = n-k .. n-1 draw t in [0, j]; take t unless already taken, else j.
    Each of the C(n, k) subsets is equally likely; cost O(n_rows * k^2), independent of n.
    """
    out = np.empty((n_rows, k), dtype=np.int64)
    for step, j in enumerate(range(n - k, n)):
        t = rng.integers(0, j + 1, size=n_rows)
        taken = (out[:, :step] == t[:, None]).any(axis=1)
        out[:, step] = np.where(taken, j, t)
    return out


def _random_from_complement(rank: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    """Map ranks in the complement of ``excluded`` (per row) to indices in range(n_img).

    The r-th (0-based) index not in the excluded set is r plus the number of excluded indices
    at or below it: walking the sorted excluded indices upward, each one at or below the
    running index pushes it one further.
    """
    idx = rank.copy()
    for e in np.sort(excluded, axis=1).T:
        idx += e[:, None] <= idx
    return idx


def candidate_pairs(clips: pd.DataFrame, images: pd.DataFrame, sigma: float, n_random: int = 30,
                    n_top: int = 10, n_bottom: int = 10, seed: int = 0) -> pd.DataFrame:
    """The 50 candidate images of every music clip, before sampling (docs/METHOD.md, section
    "Candidate pairs and sampling").

    For each clip, among the images of the clip's own split: the ``n_top`` images with the
    highest Eq. 1 score, the ``n_bottom`` with the lowest, and ``n_random`` drawn uniformly
    without replacement from the remaining images.

    Overlaps are impossible by construction: the n_top nearest images are found first and then
    masked out before the n_bottom farthest are searched (so even with tied scores the two sets
    are disjoint), and the random ones are drawn from the remaining images only (ranks in the
    complement of top and bottom, see :func:`_random_from_complement`). Every clip thus gets
    exactly n_top + n_bottom + n_random distinct images. Ties at a rank boundary are broken by
    ``torch.topk`` (arbitrarily but deterministically).

    ``clips`` and ``images`` are tables with ``id, split, valence, arousal``. Returns a table with
    one row per candidate: ``music_id, image_id, score, kind, split`` (kind is ``top``,
    ``bottom`` or ``random``), clips in input order. Work is done per split, in blocks of clips.
    """
    import torch  # here: the corpus readers import this module, and torch is slow to load

    y_mus_all, y_img_all = _va(clips, "clips"), _va(images, "images")
    n_cand = n_top + n_bottom + n_random
    if min(n_top, n_bottom, n_random) < 0 or n_cand == 0:
        raise ValueError(f"n_top, n_bottom, n_random must be >= 0 and not all 0, got "
                         f"{n_top}, {n_bottom}, {n_random}")
    for frame, what in ((clips, "clips"), (images, "images")):
        bad = ~frame["split"].isin(SPLITS).to_numpy()
        if bad.any():
            raise ValueError(f"candidate_pairs: {what} row {int(np.argmax(bad))} (id "
                             f"{frame['id'].iloc[int(np.argmax(bad))]}) has split "
                             f"{frame['split'].iloc[int(np.argmax(bad))]!r}; expected one of {SPLITS}")
    rng = np.random.default_rng(seed)
    kinds = np.array(["top"] * n_top + ["bottom"] * n_bottom + ["random"] * n_random)
    parts = []
    for split in SPLITS:
        clip_rows = np.flatnonzero(clips["split"].to_numpy() == split)
        img_rows = np.flatnonzero(images["split"].to_numpy() == split)
        if len(clip_rows) == 0:
            continue
        n_img = len(img_rows)
        if n_img < n_cand:
            raise ValueError(
                f"split '{split}' has {n_img} images but each clip needs {n_cand} distinct "
                f"candidates (n_top {n_top} + n_bottom {n_bottom} + n_random {n_random}); "
                "use more images or fewer candidates")
        y_img = y_img_all[img_rows]
        n_mid = n_img - n_top - n_bottom
        chosen = np.empty((len(clip_rows), n_cand), dtype=np.int64)
        dist = np.empty((len(clip_rows), n_cand), dtype=np.float64)
        for start in range(0, len(clip_rows), _BLOCK_ROWS):
            rows = clip_rows[start:start + _BLOCK_ROWS]
            d = torch.from_numpy(label_distances(y_mus_all[rows], y_img))      # [b, n_img]
            top_d, top = torch.topk(d, n_top, dim=1, largest=False)
            d.scatter_(1, top, -np.inf)  # a top image can never be a bottom one too
            bottom_d, bottom = torch.topk(d, n_bottom, dim=1, largest=True)
            d.scatter_(1, top, top_d)
            excluded = torch.cat([top, bottom], dim=1).numpy()
            rank = _uniform_subset(rng, len(rows), n_mid, n_random)
            rand = _random_from_complement(rank, excluded)
            idx = np.concatenate([excluded, rand], axis=1)
            chosen[start:start + len(rows)] = idx
            dist[start:start + len(rows)] = np.take_along_axis(d.numpy(), idx, axis=1)
        parts.append(pd.DataFrame({
            "music_id": np.repeat(clips["id"].to_numpy()[clip_rows], n_cand),
            "image_id": images["id"].to_numpy()[img_rows][chosen.ravel()],
            "score": score_from_distance(dist.ravel(), sigma),
            "kind": np.tile(kinds, len(clip_rows)),
            "split": split,
            "_clip_row": np.repeat(clip_rows, n_cand),
        }))
    if not parts:
        raise ValueError("candidate_pairs: no clip has a split label in train/val/test")
    out = pd.concat(parts, ignore_index=True)
    # Back to the clips' input order (stable, so each clip keeps top, bottom, random order).
    out = out.sort_values("_clip_row", kind="stable").drop(columns="_clip_row")
    return out.reset_index(drop=True)


def sample_pairs(candidates: pd.DataFrame, keep_fraction: float = 0.1, seed: int = 0) -> pd.DataFrame:
    """Keep a random ``keep_fraction`` of the candidate pairs, split by split (docs/METHOD.md,
    section "Candidate pairs and sampling").

    Exactly ``round(keep_fraction * n)`` of the n candidates of each split are drawn uniformly
    without replacement, so the pair counts of Table 1 follow from the clip counts
    (val: 1,759 clips x 50 x 0.1 = 8,795 pairs, as published; test likewise 26,115). A clip
    can end up with no pair at all (probability 0.9^50, about 0.5%: the published val list has
    1,750 of its 1,759 clips). The kept rows stay in candidate order. The published train list is
    smaller than this rule gives (docs/METHOD.md, section "Training pair count").
    """
    if not 0 < keep_fraction <= 1:
        raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction}")
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(candidates), dtype=bool)
    split_col = candidates["split"].to_numpy() if "split" in candidates else np.zeros(len(candidates))
    for split in pd.unique(split_col):
        rows = np.flatnonzero(split_col == split)
        n_keep = int(round(keep_fraction * len(rows)))
        keep[rng.choice(rows, size=n_keep, replace=False)] = True
    return candidates[keep].reset_index(drop=True)
