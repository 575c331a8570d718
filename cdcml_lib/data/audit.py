"""Audit of IMEMNet-format pair lists: a verdict on the splits, then sizes, duplicates, counts
beside the paper's Table 1, and agreement with Eq. 1.

    python -m cdcml_lib.data.audit PAIRS_FILE... [--image-va CSV] [--music-va CSV]
                                   [--images-like REGEX|all] [--json OUT] [--strict]

The verdict comes first (:func:`verdict`; JSON ``verdict.flags``): whether the lists' splits are
disjoint, and if not what they share (songs, clips, images, pairs) with the fraction of each
list; duplicate pairs; each list named ``*train*``, ``*val*`` or ``*test*`` beside Table 1
(``matching.IMEMNET_TABLE1``), with the likely reason of a difference (on the published lists: the test
list's 360 songs are Table 1's 270 plus the 90 validation songs); image ids with conflicting
labels. Overlaps and duplicates are violations: ``--strict`` exits with status 1 on any. An
empty list is an error. Then, per file: pairs, clips, songs (a clip id's prefix before its last
'-'), images, the score range and pairs per clip.

Where VA labels are given, how well the scores follow Eq. 1 of Zhao et al. 2020,
s = exp(-||y_I - y_M|| / sigma):

- music and image VA both known: the sigma that fits the scores best and the RMS residual;
- only image VA known (as for the published lists): each clip's VA is fitted to the scores of
  its images under one global sigma, all clips at once (:func:`fit_sigma_clip_va`: a grid start
  independent of sigma, then damped Gauss-Newton steps per clip, vectorised over all pairs). By
  default only the images whose labels reproduce the published scores are used
  (:data:`TRUSTED_IMAGE_IDS`: the IAPS ids of IMEMNet-C's image_va.csv); ``--images-like all``
  uses every labelled image. On the IAPS images of the published validation list this gives
  sigma ~ 0.39 with an RMS residual of about 0.006, while exp(-d^2 / sigma) or 1 - d / sigma fit
  several times worse.

The mean of -log(s) is reported too: under Eq. 1 it is mean(d) / sigma, about 1 when sigma is the
mean label distance over all image-music pairs, as the paper defines it.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from cdcml_lib.data.corpora import CorpusError, read_image_va, read_pairs, read_va_labels
from cdcml_lib.matching import IMEMNET_TABLE1

SIGMA_BOUNDS = (0.02, 5.0)

# Score as a function of label distance d: Eq. 1 and two alternatives the audit can rule out.
SCORE_FORMS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "exp": lambda d, sigma: np.exp(-d / sigma),            # Eq. 1
    "exp_squared": lambda d, sigma: np.exp(-d ** 2 / sigma),
    "linear": lambda d, sigma: 1.0 - d / sigma,
}


def song_of(clip_id: str) -> str:
    """The song of a clip id ``<song>-<k>``: the prefix before the last '-'."""
    return clip_id.rsplit("-", 1)[0]


def _spread(values: pd.Series) -> dict:
    return {"min": int(values.min()), "mean": float(values.mean()), "max": int(values.max())}


def file_summary(pairs: pd.DataFrame) -> dict:
    """Counts of one pair list: pairs, clips, songs, images, score range, duplicates, pairs/clip."""
    per_clip = pairs.groupby("music_id").size()
    return {
        "pairs": int(len(pairs)),
        "clips": int(pairs.music_id.nunique()),
        "songs": int(pairs.music_id.map(song_of).nunique()),
        "images": int(pairs.image_id.nunique()),
        "score_min": float(pairs.score.min()) if len(pairs) else None,
        "score_max": float(pairs.score.max()) if len(pairs) else None,
        "score_mean": float(pairs.score.mean()) if len(pairs) else None,
        "duplicate_pairs": int(pairs.duplicated(["music_id", "image_id"]).sum()),
        "conflicting_duplicates": int(pairs.drop_duplicates().duplicated(["music_id", "image_id"]).sum()),
        "pairs_per_clip": _spread(per_clip) if len(pairs) else None,
    }


def overlaps(pairs_by_file: dict[str, pd.DataFrame]) -> list[dict]:
    """Songs, clips, images and pairs shared by each two files (a split leak if any is > 0)."""
    out = []
    for a, b in combinations(pairs_by_file, 2):
        pa, pb = pairs_by_file[a], pairs_by_file[b]
        shared = lambda f: len(set(f(pa)) & set(f(pb)))  # noqa: E731
        out.append({"a": a, "b": b,
                    "songs": shared(lambda p: p.music_id.map(song_of)),
                    "clips": shared(lambda p: p.music_id),
                    "images": shared(lambda p: p.image_id),
                    "pairs": shared(lambda p: zip(p.music_id, p.image_id))})
    return out


def _rms(r: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(r))))


def fit_sigma(d: np.ndarray, s: np.ndarray, form: str = "exp") -> tuple[float, float]:
    """The sigma of Eq. 1 that best fits scores ``s`` to label distances ``d``, and its RMS."""
    f = SCORE_FORMS[form]
    best = minimize_scalar(lambda sg: _rms(f(d, sg) - s), bounds=SIGMA_BOUNDS, method="bounded",
                           options={"xatol": 1e-5})
    return float(best.x), float(best.fun)


# Each score form written as d = scale * g(s): the label distance a score implies, up to one
# global factor. This lets a clip's VA be located on a grid before sigma is known.
SCORE_TO_DISTANCE: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "exp": lambda s: -np.log(np.clip(s, 1e-12, 1)),                 # d = sigma * (-log s)
    "exp_squared": lambda s: np.sqrt(-np.log(np.clip(s, 1e-12, 1))),  # d = sqrt(sigma) * ...
    "linear": lambda s: 1.0 - s,                                     # d = sigma * (1 - s)
}
# d(score)/d(distance) of each form, for the Gauss-Newton steps.
SCORE_SLOPE: dict[str, Callable[[np.ndarray, np.ndarray, float], np.ndarray]] = {
    "exp": lambda d, f, sigma: -f / sigma,
    "exp_squared": lambda d, f, sigma: -2.0 * d * f / sigma,
    "linear": lambda d, f, sigma: np.full_like(d, -1.0 / sigma),
}
GRID_STEPS = 41          # the grid over [0, 1]^2 that starts each clip's fit (0.025 apart)


@dataclass
class ClipGroups:
    """Pairs sorted by clip: ``clip[m]`` the clip index of each pair (contiguous runs),
    ``y_img[m, 2]`` the image labels, ``s[m]`` the scores, ``starts`` each run's first pair."""

    clip: np.ndarray
    y_img: np.ndarray
    s: np.ndarray
    starts: np.ndarray

    @property
    def n_clips(self) -> int:
        return len(self.starts)

    @classmethod
    def from_pairs(cls, groups: Sequence[tuple[np.ndarray, np.ndarray]]) -> "ClipGroups":
        sizes = np.array([len(s) for _, s in groups], dtype=np.int64)
        return cls(clip=np.repeat(np.arange(len(groups)), sizes),
                   y_img=np.concatenate([np.asarray(y, float) for y, _ in groups]).reshape(-1, 2),
                   s=np.concatenate([np.asarray(s, float) for _, s in groups]),
                   starts=np.concatenate([[0], np.cumsum(sizes)[:-1]]))

    def per_clip(self, values: np.ndarray) -> np.ndarray:
        """Sum of ``values`` (pairs on axis 0) over each clip's pairs."""
        return np.add.reduceat(values, self.starts, axis=0)


def _grid_search(groups: ClipGroups, t: np.ndarray, candidates: np.ndarray,
                 chunk_pairs: int) -> np.ndarray:
    """For each clip, the candidate point (``candidates [n_clips or 1, G, 2]``) whose distances to
    the clip's images best fit ``scale * t`` with the scale free: minimises
    ``sum d^2 - (sum d t)^2 / sum t^2`` (least squares over the scale, solved exactly)."""
    best = np.empty((groups.n_clips, 2))
    bounds = np.append(groups.starts, len(groups.s))
    y = groups.y_img.astype(np.float32)
    first = 0
    while first < groups.n_clips:          # whole clips per chunk, about chunk_pairs pairs
        last = int(np.searchsorted(bounds, bounds[first] + chunk_pairs, side="right")) - 1
        last = min(max(last, first + 1), groups.n_clips)
        lo, hi = bounds[first], bounds[last]
        cand = candidates if len(candidates) == 1 else candidates[groups.clip[lo:hi]]
        d = np.sqrt((y[lo:hi, None, 0] - cand[..., 0]) ** 2 + (y[lo:hi, None, 1] - cand[..., 1]) ** 2)
        starts = groups.starts[first:last] - lo
        dd = np.add.reduceat(d * d, starts, axis=0)
        dt = np.add.reduceat(d * t[lo:hi, None], starts, axis=0)
        tt = np.add.reduceat(t[lo:hi] ** 2, starts)[:, None] + 1e-12
        pick = np.argmin(dd - dt ** 2 / tt, axis=1)
        chosen = candidates[0] if len(candidates) == 1 else candidates[first:last]
        best[first:last] = chosen[pick] if len(candidates) == 1 else chosen[np.arange(last - first), pick]
        first = last
    return best


def grid_start(groups: ClipGroups, form: str = "exp", chunk_pairs: int = 4096) -> np.ndarray:
    """Each clip's starting VA: the point of a 0.025 grid over [0, 1]^2 whose distances to the
    clip's images are most nearly proportional to the distances its scores imply
    (``SCORE_TO_DISTANCE``), the factor free. Independent of sigma, so it is computed once per
    form. ``[n_clips, 2]``."""
    t = SCORE_TO_DISTANCE[form](groups.s).astype(np.float32)
    axis = np.linspace(0, 1, GRID_STEPS, dtype=np.float32)
    grid = np.stack(np.meshgrid(axis, axis), -1).reshape(1, -1, 2)
    return _grid_search(groups, t, grid, chunk_pairs)


def _start_sigma(groups: ClipGroups, va: np.ndarray, form: str) -> float:
    """The median over clips of the scale that best maps score-implied distances onto the
    distances from the starting VA (``SCORE_TO_DISTANCE``), as a sigma."""
    t = SCORE_TO_DISTANCE[form](groups.s)
    diff = va[groups.clip] - groups.y_img
    d = np.hypot(diff[:, 0], diff[:, 1])
    scale = float(np.median(groups.per_clip(d * t) / (groups.per_clip(t * t) + 1e-12)))
    sigma = scale ** 2 if form == "exp_squared" else scale
    return float(np.clip(sigma, *SIGMA_BOUNDS)) if np.isfinite(sigma) and sigma > 0 else 0.4


def fit_clip_va(groups: ClipGroups, sigma: float, form: str, start: np.ndarray,
                max_steps: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares VA of every clip at once for one ``sigma``: damped Gauss-Newton
    (Levenberg-Marquardt) steps on each clip's two coordinates, a damping per clip, kept in
    [0, 1]^2, from ``start`` (:func:`grid_start`). Returns ``(va [n_clips, 2], model - s)``."""
    f, slope = SCORE_FORMS[form], SCORE_SLOPE[form]

    def residuals(va):
        diff = va[groups.clip] - groups.y_img
        d = np.hypot(diff[:, 0], diff[:, 1]) + 1e-12
        fd = f(d, sigma)
        return fd - groups.s, diff, d, fd

    x = start.astype(np.float64).copy()
    damping = np.full(groups.n_clips, 1e-3)
    r, diff, d, fd = residuals(x)
    cost = groups.per_clip(r ** 2)
    for _ in range(max_steps):
        jac = (slope(d, fd, sigma) / d)[:, None] * diff                # d r / d x, [m, 2]
        a = groups.per_clip(jac[:, 0] ** 2) * (1 + damping) + 1e-12
        c = groups.per_clip(jac[:, 1] ** 2) * (1 + damping) + 1e-12
        b = groups.per_clip(jac[:, 0] * jac[:, 1])
        g = groups.per_clip(jac * r[:, None])
        step = -np.stack([c * g[:, 0] - b * g[:, 1], a * g[:, 1] - b * g[:, 0]], 1) \
            / (a * c - b * b)[:, None]
        trial = np.clip(x + step, 0.0, 1.0)
        r_t, diff_t, d_t, fd_t = residuals(trial)
        cost_t = groups.per_clip(r_t ** 2)
        better = cost_t < cost
        gain = float((cost - cost_t)[better].sum())
        if not better.any() or gain < 1e-10 * max(float(cost.sum()), 1e-30):
            break
        x[better], cost[better] = trial[better], cost_t[better]
        damping = np.where(better, damping / 3, damping * 4)
        keep = better[groups.clip]
        r, d, fd = np.where(keep, r_t, r), np.where(keep, d_t, d), np.where(keep, fd_t, fd)
        diff = np.where(keep[:, None], diff_t, diff)
    return x, r


def fit_sigma_clip_va(groups: Sequence[tuple[np.ndarray, np.ndarray]] | ClipGroups,
                      form: str = "exp", progress: bool = False) -> tuple[float, float]:
    """One global sigma with each clip's VA fitted to its images' scores; returns (sigma, RMS).

    ``groups`` holds ``(y_img [k, 2], s [k])`` per clip (or a :class:`ClipGroups`). A bounded
    scalar search over sigma, within a factor 2.5 of :func:`_start_sigma`; for each sigma it
    tries, all clips are fitted together (:func:`fit_clip_va`) from the same grid start, so
    the result does not depend on the order of the search.
    """
    from tqdm.auto import tqdm

    groups = groups if isinstance(groups, ClipGroups) else ClipGroups.from_pairs(groups)
    start = grid_start(groups, form)
    sigma0 = _start_sigma(groups, start, form)
    bounds = (max(SIGMA_BOUNDS[0], sigma0 / 2.5), min(SIGMA_BOUNDS[1], sigma0 * 2.5))
    bar = tqdm(desc=f"Eq.-1 fit ({form}), sigma steps", leave=False,
               disable=not progress or len(groups.s) < 20000)   # a bar only when it takes seconds

    def rms(sigma: float) -> float:
        bar.update(1)
        return _rms(fit_clip_va(groups, sigma, form, start)[1])

    best = minimize_scalar(rms, bounds=bounds, method="bounded", options={"xatol": 1e-3})
    bar.close()
    return float(best.x), float(best.fun)


def read_music_va(path) -> pd.DataFrame:
    """Music VA in [0, 1] by clip id from a CSV with ``id`` (or ``music_id``, ``clip``),
    ``valence``, ``arousal`` (an ``items.csv`` works: its image rows are skipped); ids with
    conflicting labels are left out with a warning (:func:`corpora.read_va_labels`)."""
    return read_va_labels(path, "music", ("id", "music_id", "clip")).labels

def _labelled(pairs: pd.DataFrame, labels: pd.DataFrame, column: str, prefix: str) -> pd.DataFrame:
    known = pairs[pairs[column].isin(labels.index)]
    y = labels.loc[known[column], ["valence", "arousal"]].to_numpy()
    return known.assign(**{f"{prefix}_v": y[:, 0], f"{prefix}_a": y[:, 1]})


#: Image ids whose VA labels in IMEMNet-C's image_va.csv reproduce the published scores: IAPS
#: picture numbers. Measured on the published validation list (``tests/test_audit.py``): with the
#: IAPS images, each clip's fitted VA leaves an RMS residual of about 0.006 under Eq. 1; with the
#: EMOTIC images (``COCO_*``, ``frame_*``, ...) about 0.07, ten times more, so those labels are
#: not the ones that made the scores; NAPS has no label there. Used by default when only image
#: VA is given (the clip-VA fit); ``images_like="all"`` uses every labelled image.
TRUSTED_IMAGE_IDS = r"\d+(\.\d+)?"

COUNTS = ("songs", "clips", "images", "pairs")


def _clip_groups(known: pd.DataFrame, min_images_per_clip: int) -> ClipGroups:
    """The labelled pairs as :class:`ClipGroups` (clips with at least ``min_images_per_clip``
    labelled images; a pair listed twice with the same score counts once)."""
    known = known.drop_duplicates(["music_id", "image_id", "score"])
    sizes = known.groupby("music_id").size()
    known = known[known.music_id.map(sizes).to_numpy() >= min_images_per_clip]
    known = known.sort_values("music_id", kind="stable")
    _, starts, clip = np.unique(known.music_id.to_numpy(), return_index=True, return_inverse=True)
    return ClipGroups(clip=clip, y_img=known[["img_v", "img_a"]].to_numpy(float),
                      s=known.score.to_numpy(float), starts=starts)


def eq1_agreement(pairs: pd.DataFrame, image_labels: pd.DataFrame | None,
                  music_labels: pd.DataFrame | None, images_like: str | None = None,
                  min_images_per_clip: int = 3, forms: Sequence[str] = tuple(SCORE_FORMS),
                  progress: bool = False) -> dict:
    """How well the scores follow Eq. 1, with known VA or with each clip's VA fitted.

    ``images_like``: a regular expression of the image ids to use, ``"all"`` for every labelled
    image, or None: every image when music VA is known (the labels are the dataset's own), else
    :data:`TRUSTED_IMAGE_IDS`.
    """
    if not len(pairs):
        raise CorpusError("audit: the pair lists hold no pairs; give non-empty lists")
    out: dict = {"mean_neg_log_score": float(np.mean(-np.log(np.clip(pairs.score, 1e-12, 1))))}
    if image_labels is None:
        return out
    if images_like is None:
        images_like = "all" if music_labels is not None else TRUSTED_IMAGE_IDS
    if images_like != "all":
        image_labels = image_labels[image_labels.index.str.fullmatch(images_like)]
    known = _labelled(pairs, image_labels, "image_id", "img")
    out["pairs_with_image_va"] = int(len(known))
    if music_labels is not None:
        both = _labelled(known, music_labels, "music_id", "mus")
        d = np.hypot(both.img_v - both.mus_v, both.img_a - both.mus_a).to_numpy()
        out["known_va"] = {"pairs": int(len(both)), "images_like": images_like}
        if len(both):
            for form in forms:
                sigma, rms = fit_sigma(d, both.score.to_numpy(), form)
                out["known_va"][form] = {"sigma": sigma, "rms": rms}
            out["known_va"]["mean_distance"] = float(d.mean())
        return out
    groups = _clip_groups(known, min_images_per_clip)
    fitted = {"clips": groups.n_clips, "pairs": int(len(groups.s)),
              "min_images_per_clip": min_images_per_clip, "images_like": images_like,
              "why": ("default: the image ids whose labels reproduce the published scores "
                      "(cdcml_lib.data.audit.TRUSTED_IMAGE_IDS)"
                      if images_like == TRUSTED_IMAGE_IDS else "chosen by the caller")}
    if groups.n_clips:
        for form in forms:
            t = time.perf_counter()
            sigma, rms = fit_sigma_clip_va(groups, form, progress=progress)
            fitted[form] = {"sigma": sigma, "rms": rms, "seconds": round(time.perf_counter() - t, 2)}
    fitted["support"] = fit_support(groups, "exp" in forms)
    out["fitted_clip_va"] = fitted
    return out


#: Below these, the clip-VA fit's sigma rests on too little: fewer clips than this, or fewer
#: residual degrees of freedom (pairs minus 2 fitted VA values per clip minus sigma) than this.
MIN_FIT_CLIPS = 30
MIN_FIT_DOF = 60


def drop_clip(groups: ClipGroups, j: int) -> ClipGroups:
    """The same pairs without clip ``j`` (for the leave-one-clip-out range of sigma)."""
    keep = groups.clip != j
    clip = groups.clip[keep]
    _, starts, clip = np.unique(clip, return_index=True, return_inverse=True)
    return ClipGroups(clip=clip, y_img=groups.y_img[keep], s=groups.s[keep], starts=starts)


def fit_support(groups: ClipGroups, with_range: bool = True) -> dict:
    """How much the clip-VA fit rests on: pairs, clips, residual degrees of freedom, and for a
    thin fit a warning with the range of Eq. 1's sigma when each clip is left out in turn."""
    pairs, clips = int(len(groups.s)), int(groups.n_clips)
    dof = pairs - 2 * clips - 1
    out = {"pairs": pairs, "clips": clips, "residual_dof": dof,
           "thin": clips < MIN_FIT_CLIPS or dof < MIN_FIT_DOF}
    if not out["thin"]:
        return out
    if with_range and clips > 2:
        sigmas = [fit_sigma_clip_va(drop_clip(groups, j), "exp")[0] for j in range(clips)]
        out["sigma_leave_one_clip_out"] = [float(min(sigmas)), float(max(sigmas))]
    spread = (" Leaving one clip out at a time moves sigma between "
              f"{out['sigma_leave_one_clip_out'][0]:.3f} and {out['sigma_leave_one_clip_out'][1]:.3f}."
              if "sigma_leave_one_clip_out" in out else "")
    out["warning"] = (f"the fit rests on only {pairs} pairs of {clips} clips, and each clip's VA "
                      f"is fitted too ({dof} residual degrees of freedom; at least "
                      f"{MIN_FIT_CLIPS} clips and {MIN_FIT_DOF} are wanted): too few to pin "
                      f"sigma down, so read it as a rough value.{spread} More labelled pairs "
                      "(more lists, or --images-like all) make it firmer")
    return out


def split_of(path) -> str | None:
    """The split a pair list's file name names (``val_matching.txt`` -> ``val``), or None."""
    found = re.findall(r"(?<![a-z])(train|val|test)(?![a-z])", Path(path).stem.lower())
    return found[0] if len(set(found)) == 1 else None


def _table1_check(name: str, counts: dict, split: str, shared_with: list[tuple[str, dict]]) -> dict:
    """The list's counts beside Table 1's for its split, and the likely reason of a difference."""
    paper = IMEMNET_TABLE1[split]
    rows = {k: {"list": counts[k], "paper": paper[k], "difference": counts[k] - paper[k]}
            for k in COUNTS}
    reasons = []
    for k in COUNTS:
        diff = rows[k]["difference"]
        for other, shared in shared_with:
            if diff > 0 and shared.get(k) == diff:
                reasons.append(f"{k}: {counts[k]:,} = {paper[k]:,} + {diff:,}, exactly the {k} "
                               f"this list shares with {Path(other).name}: the published {split} "
                               f"list seems to contain that split's {k}")
            elif diff > 0 and shared.get(k, 0) > 0:
                reasons.append(f"{k}: {diff:+,} against Table 1, and {shared[k]:,} of this list's "
                               f"{k} are also in {Path(other).name}")
    return {"file": name, "split": split, "counts": rows,
            "matches": all(r["difference"] == 0 for r in rows.values()),
            "likely_explanation": reasons or (
                ["the counts differ from Table 1 with no overlap to explain it: the paper's "
                 "counts may describe another version of the lists"]
                if any(r["difference"] for r in rows.values()) else [])}


def verdict(report: dict) -> dict:
    """The audit's findings as flags: split overlaps (with counts and fractions), duplicate
    pairs, counts beside Table 1, conflicting image labels. ``violations`` counts the flags that
    break IMEMNet's rules (overlaps, duplicates): ``--strict`` fails on any."""
    flags = []
    files = report["files"]
    for o in report["overlaps"]:
        shared = {k: o[k] for k in COUNTS}
        if any(shared.values()):
            flags.append({"flag": "split_overlap", "severity": "violation", "a": o["a"],
                          "b": o["b"], "shared": shared,
                          "fraction_of_a": {k: shared[k] / max(files[o["a"]][k], 1) for k in COUNTS},
                          "fraction_of_b": {k: shared[k] / max(files[o["b"]][k], 1) for k in COUNTS}})
    for name, f in files.items():
        if f["duplicate_pairs"]:
            flags.append({"flag": "duplicate_pairs", "severity": "violation", "file": name,
                          "count": f["duplicate_pairs"],
                          "with_different_scores": f["conflicting_duplicates"]})
    for name, f in files.items():
        split = split_of(name)
        if split is None:
            continue
        shared_with = [(o["b"] if o["a"] == name else o["a"], {k: o[k] for k in COUNTS})
                       for o in report["overlaps"] if name in (o["a"], o["b"])]
        check = _table1_check(name, f, split, shared_with)
        if not check["matches"]:
            flags.append({"flag": "table1_mismatch", "severity": "note", **check})
    conflicting = report.get("image_va", {}).get("conflicting_ids", [])
    if conflicting:
        flags.append({"flag": "conflicting_image_labels", "severity": "note",
                      "file": report["image_va"]["file"], "ids": conflicting})
    overlapping = [f for f in flags if f["flag"] == "split_overlap"]
    return {"splits_disjoint": not overlapping,
            "violations": sum(f["severity"] == "violation" for f in flags), "flags": flags}


def audit_pairs(files: Sequence, image_va=None, music_va=None, images_like: str | None = None,
                min_images_per_clip: int = 3, forms: Sequence[str] = tuple(SCORE_FORMS),
                progress: bool = False, fit: bool = True) -> dict:
    """Audit one or more pair lists (see the module docstring); returns a JSON-ready dict whose
    ``verdict`` (:func:`verdict`) comes first.

    ``image_va`` / ``music_va`` are CSV paths (read with ``read_image_va`` / ``read_music_va``).
    ``images_like`` chooses the images of the Eq. 1 fit (see :func:`eq1_agreement`).
    ``forms`` are the score forms fitted: Eq. 1 (``exp``) and the alternatives of ``SCORE_FORMS``.
    ``fit=False`` skips the Eq. 1 fits (the dataset step needs only the counts and overlaps).
    An empty list is an error.
    """
    if len(set(map(str, files))) != len(files):
        raise CorpusError(f"audit: a file is given twice in {list(map(str, files))}")
    pairs_by_file = {str(f): read_pairs(f) for f in files}
    empty = [f for f, p in pairs_by_file.items() if not len(p)]
    if empty:
        raise CorpusError(f"audit: {empty[0]} holds no pairs (an empty file); a pair list has one "
                          "'music_clip_id image_id matching_score' per line: check the path or "
                          "download the list again")
    report: dict = {"files": {f: file_summary(p) for f, p in pairs_by_file.items()},
                    "overlaps": overlaps(pairs_by_file)}
    image_labels = music_labels = None
    if image_va is not None:
        labels = read_image_va(image_va)
        image_labels = labels.labels
        report["image_va"] = {"file": str(image_va), "ids": int(len(image_labels)),
                              "conflicting_ids": labels.conflicting_ids}
    if music_va is not None:
        music_labels = read_music_va(music_va)
        report["music_va"] = {"file": str(music_va), "ids": int(len(music_labels))}
    if fit:
        all_pairs = pd.concat(pairs_by_file.values(), ignore_index=True)
        report["eq1"] = eq1_agreement(all_pairs, image_labels, music_labels, images_like,
                                      min_images_per_clip, forms, progress)
    return {"verdict": verdict(report), **report}


def _fits(name: str, block: dict) -> list[str]:
    lines = [f"  {name}: {block.get('pairs', 0):,} pairs"
             + (f" of {block['clips']:,} clips (>= {block['min_images_per_clip']} images each)"
                if "clips" in block else "")
             + (f"; images: {'all labelled' if block['images_like'] == 'all' else 'ids like ' + block['images_like']}"
                if block.get("images_like") else "")]
    if block.get("images_like") == TRUSTED_IMAGE_IDS:
        lines.append("    (the IAPS images: their labels in image_va.csv reproduce the published "
                     "scores; the EMOTIC labels there fit ten times worse. --images-like all uses "
                     "every image)")
    for form in SCORE_FORMS:
        if form in block:
            tag = "Eq. 1  " if form == "exp" else form
            took = f"  ({block[form]['seconds']:.1f} s)" if "seconds" in block[form] else ""
            lines.append(f"    {tag:12s} sigma {block[form]['sigma']:.4f}  RMS residual "
                         f"{block[form]['rms']:.4f}{took}")
    return lines


def _pct(x: float) -> str:
    return "all" if x == 1 else f"{100 * x:.0f}%"


def format_verdict(v: dict) -> list[str]:
    """The verdict block: one line per finding, violations marked."""
    lines = ["VERDICT"]
    overlaps_ = [f for f in v["flags"] if f["flag"] == "split_overlap"]
    lines.append("  splits disjoint: " + ("yes" if v["splits_disjoint"] else
                                           f"NO ({len(overlaps_)} pair(s) of lists share items)"))
    for f in overlaps_:
        a, b = Path(f["a"]).name, Path(f["b"]).name
        parts = [f"{f['shared'][k]:,} {k} ({_pct(f['fraction_of_a'][k])} of {a}'s, "
                 f"{_pct(f['fraction_of_b'][k])} of {b}'s)" for k in COUNTS if f["shared"][k]]
        lines.append(f"  [violation] {a} and {b} share " + ", ".join(parts))
    dups = [f for f in v["flags"] if f["flag"] == "duplicate_pairs"]
    lines.append("  duplicate pairs: " + ("none" if not dups else ""))
    for f in dups:
        lines.append(f"  [violation] {Path(f['file']).name}: {f['count']:,} pairs listed more "
                     f"than once ({f['with_different_scores']} with different scores)")
    for f in v["flags"]:
        if f["flag"] == "table1_mismatch":
            cells = ", ".join(f"{k} {c['list']:,} vs {c['paper']:,} ({c['difference']:+,})"
                              for k, c in f["counts"].items())
            lines.append(f"  [note] {Path(f['file']).name} against Table 1 ({f['split']}): {cells}")
            lines += [f"         likely: {r}" for r in f["likely_explanation"]]
        if f["flag"] == "conflicting_image_labels":
            lines.append(f"  [note] {len(f['ids'])} image ids with conflicting labels in "
                         f"{Path(f['file']).name}, left out: {f['ids']}")
    lines.append(f"  violations: {v['violations']}" + (" (--strict fails)" if v["violations"] else ""))
    return lines


def format_audit(report: dict) -> str:
    """A readable summary of :func:`audit_pairs`'s report, the verdict first."""
    lines = format_verdict(report["verdict"]) + [""]
    for name, f in report["files"].items():
        split = split_of(name)
        lines.append(f"{name}")
        lines.append(f"  pairs {f['pairs']:,}  clips {f['clips']:,}  songs {f['songs']:,}  "
                     f"images {f['images']:,}"
                     + (f"   (Table 1, {split}: " + ", ".join(
                         f"{IMEMNET_TABLE1[split][k]:,}" for k in ("pairs", "clips", "songs", "images"))
                        + ")" if split else ""))
        ppc = f["pairs_per_clip"]
        lines.append(f"  scores in [{f['score_min']:.4f}, {f['score_max']:.4f}], mean "
                     f"{f['score_mean']:.4f}; pairs per clip min {ppc['min']} mean "
                     f"{ppc['mean']:.2f} max {ppc['max']}")
        lines.append(f"  duplicate pairs {f['duplicate_pairs']} (with different scores: "
                     f"{f['conflicting_duplicates']})")
    for o in report["overlaps"]:
        lines.append(f"overlap {o['a']} / {o['b']}: songs {o['songs']:,}, clips {o['clips']:,}, "
                     f"images {o['images']:,}, pairs {o['pairs']:,}")
    if "image_va" in report:
        iv = report["image_va"]
        lines.append(f"image VA {iv['file']}: {iv['ids']:,} ids; conflicting ids left out: "
                     f"{iv['conflicting_ids'] or 'none'}")
    eq1 = report.get("eq1")
    if eq1:
        lines.append(f"Eq. 1: mean -log(s) = {eq1['mean_neg_log_score']:.4f} (about 1 when sigma "
                     "is the mean label distance)")
        if "known_va" in eq1:
            lines += _fits("known music and image VA", eq1["known_va"])
        if "fitted_clip_va" in eq1:
            lines += _fits("clip VA fitted to its images' scores", eq1["fitted_clip_va"])
            support = eq1["fitted_clip_va"].get("support", {})
            if support.get("warning"):
                lines.append(f"    WARNING: {support['warning']}")
    return "\n".join(lines)


EXIT_STATUS = """exit status (the same contract as python -m cdcml_lib.match and the parameter check):
  0  every pair list was read and audited (and, with --strict, no violation was found)
  1  some pair lists could not be read (each named on stderr; the others are still audited and
     reported), or --strict found violations
  2  usage or configuration error: a bad option, or a --image-va / --music-va file that cannot be
     read; nothing was audited

output: the summary (or, with --json -, the JSON report) is printed; a file is written only
where --json names one."""


def readable_lists(files: Sequence[str]) -> tuple[list[str], list[str]]:
    """The pair lists that can be read and hold pairs, and one message per list that cannot."""
    good, problems = [], []
    for f in files:
        try:
            if not len(read_pairs(f)):
                raise CorpusError(f"audit: {f} holds no pairs (an empty file); a pair list has one "
                                  "'music_clip_id image_id matching_score' per line: check the path "
                                  "or download the list again")
        except CorpusError as err:
            problems.append(str(err))
        else:
            good.append(f)
    return good, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cdcml_lib.data.audit",
                                     description=__doc__.split("\n\n")[0], epilog=EXIT_STATUS,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pairs", nargs="+", help="pair lists: music_clip_id image_id matching_score")
    parser.add_argument("--image-va", help="CSV of image VA in [0,1] (img or id, valence, arousal)")
    parser.add_argument("--music-va", help="CSV of music VA in [0,1] (id, valence, arousal)")
    parser.add_argument("--images-like", default=None,
                        help="regex of the image ids the Eq. 1 fit uses, or 'all'; default: all "
                        "with --music-va, else the IAPS ids (TRUSTED_IMAGE_IDS), whose labels "
                        "reproduce the published scores")
    parser.add_argument("--min-images-per-clip", type=int, default=3,
                        help="clips with fewer labelled images are left out of the clip-VA fit")
    parser.add_argument("--json", help="write the JSON report here ('-' for stdout only)")
    parser.add_argument("--strict", action="store_true",
                        help="exit with status 1 when the verdict lists any violation")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if len(set(args.pairs)) != len(args.pairs):
        parser.error(f"a pair list is given twice in {args.pairs}")
    good, problems = readable_lists(args.pairs)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not good:
        print(f"error: none of the {len(args.pairs)} pair list(s) could be read; nothing audited",
              file=sys.stderr)
        return 1
    try:
        report = audit_pairs(good, args.image_va, args.music_va, args.images_like,
                             args.min_images_per_clip, progress=not args.quiet)
    except CorpusError as err:   # the label files: the lists themselves were read above
        print(f"error: {err}", file=sys.stderr)
        return 2
    text = json.dumps(report, indent=2)
    if args.json == "-":
        print(text)
    else:
        print(format_audit(report))
        if args.json:
            Path(args.json).write_text(text + "\n")
            print(f"wrote {args.json}")
    if problems:
        print(f"{len(problems)} of {len(args.pairs)} pair list(s) could not be read and are "
              "left out of this audit (named above)", file=sys.stderr)
    status = 1 if problems else 0
    if args.strict and report["verdict"]["violations"]:
        print(f"strict: {report['verdict']['violations']} violation(s)", file=sys.stderr)
        status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
