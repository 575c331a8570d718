"""Audit of IMEMNet-format pair lists: sizes, overlaps, duplicates and agreement with Eq. 1.

    python -m cdcml_lib.data.audit PAIRS_FILE... [--image-va CSV] [--music-va CSV] [--json OUT]

For each file: pairs, clips, songs (a clip id's prefix before its last '-'), images, the score
range, duplicate pairs and pairs per clip. Between files: the songs, clips and images they share
(IMEMNet's splits share none). Where VA labels are given, how well the scores follow Eq. 1 of
Zhao et al. 2020, s = exp(-||y_I - y_M|| / sigma):

- music and image VA both known: the sigma that fits the scores best and the RMS residual;
- only image VA known (as for the published lists): each clip's VA is fitted to the scores of
  its images (a small least-squares problem per clip) under one global sigma. On the IAPS images
  of the published validation list this gives sigma ~ 0.38 with an RMS residual of a few
  thousandths, while exp(-d^2 / sigma) or 1 - d / sigma fit several times worse.

The mean of -log(s) is reported too: under Eq. 1 it is mean(d) / sigma, about 1 when sigma is the
mean label distance over all image-music pairs, as the paper defines it.
"""
from __future__ import annotations

import argparse
import json
import sys
from itertools import combinations
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy.optimize import least_squares, minimize_scalar

from cdcml_lib.data.corpora import CorpusError, read_image_va, read_pairs, read_va_labels

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


_GRID = np.stack(np.meshgrid(np.linspace(0, 1, 51), np.linspace(0, 1, 51)), -1).reshape(-1, 2)


def fit_clip_va(y_img: np.ndarray, s: np.ndarray, sigma: float, form: str = "exp") -> np.ndarray:
    """Least-squares VA of one clip from the scores ``s`` of its images (labels ``y_img``).

    Starts from the best point of a grid over [0, 1]^2 (the problem has local minima), then
    refines within the unit square. Returns the residuals ``model - s``.
    """
    f = SCORE_FORMS[form]
    d_grid = np.linalg.norm(_GRID[:, None, :] - y_img[None], axis=-1)
    cost = ((f(d_grid, sigma) - s) ** 2).sum(1)
    best = None
    for start in _GRID[np.argsort(cost)[:2]]:   # two starts: the best grid points
        fit = least_squares(lambda x: f(np.linalg.norm(y_img - x, axis=1), sigma) - s, start,
                            bounds=([0, 0], [1, 1]))
        best = fit if best is None or fit.cost < best.cost else best
    return best.fun


def fit_sigma_clip_va(groups: Sequence[tuple[np.ndarray, np.ndarray]], form: str = "exp"
                      ) -> tuple[float, float]:
    """One global sigma with each clip's VA fitted to its images' scores; returns (sigma, RMS).

    ``groups`` holds ``(y_img [k, 2], s [k])`` per clip.
    """
    def rms(sigma: float) -> float:
        return _rms(np.concatenate([fit_clip_va(y, s, sigma, form) for y, s in groups]))

    best = minimize_scalar(rms, bounds=(0.05, 2.0), method="bounded", options={"xatol": 1e-3})
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


def eq1_agreement(pairs: pd.DataFrame, image_labels: pd.DataFrame | None,
                  music_labels: pd.DataFrame | None, images_like: str | None = None,
                  min_images_per_clip: int = 3, forms: Sequence[str] = tuple(SCORE_FORMS)) -> dict:
    """How well the scores follow Eq. 1, with known VA or with each clip's VA fitted."""
    out: dict = {"mean_neg_log_score": float(np.mean(-np.log(np.clip(pairs.score, 1e-12, 1))))}
    if image_labels is None:
        return out
    if images_like:
        image_labels = image_labels[image_labels.index.str.fullmatch(images_like)]
    known = _labelled(pairs, image_labels, "image_id", "img")
    out["pairs_with_image_va"] = int(len(known))
    if music_labels is not None:
        both = _labelled(known, music_labels, "music_id", "mus")
        d = np.hypot(both.img_v - both.mus_v, both.img_a - both.mus_a).to_numpy()
        out["known_va"] = {"pairs": int(len(both))}
        if len(both):
            for form in forms:
                sigma, rms = fit_sigma(d, both.score.to_numpy(), form)
                out["known_va"][form] = {"sigma": sigma, "rms": rms}
            out["known_va"]["mean_distance"] = float(d.mean())
        return out
    groups = [(g[["img_v", "img_a"]].to_numpy(), g.score.to_numpy())
              for _, g in known.groupby("music_id") if len(g) >= min_images_per_clip]
    fitted = {"clips": len(groups), "pairs": int(sum(len(s) for _, s in groups)),
              "min_images_per_clip": min_images_per_clip, "images_like": images_like}
    if groups:
        for form in forms:
            sigma, rms = fit_sigma_clip_va(groups, form)
            fitted[form] = {"sigma": sigma, "rms": rms}
    out["fitted_clip_va"] = fitted
    return out


def audit_pairs(files: Sequence, image_va=None, music_va=None, images_like: str | None = None,
                min_images_per_clip: int = 3, forms: Sequence[str] = tuple(SCORE_FORMS)) -> dict:
    """Audit one or more pair lists (see the module docstring); returns a JSON-ready dict.

    ``image_va`` / ``music_va`` are CSV paths (read with ``read_image_va`` / ``read_music_va``).
    ``images_like`` is a regular expression that keeps only matching image ids in the Eq. 1 fit
    (e.g. ``\\d+(\\.\\d+)?`` for IAPS, whose labels in image_va.csv use IMEMNet's normalisation).
    ``forms`` are the score forms fitted: Eq. 1 (``exp``) and the alternatives of ``SCORE_FORMS``.
    """
    pairs_by_file = {str(f): read_pairs(f) for f in files}
    if len(set(map(str, files))) != len(files):
        raise CorpusError(f"audit: a file is given twice in {list(map(str, files))}")
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
    all_pairs = pd.concat(pairs_by_file.values(), ignore_index=True)
    report["eq1"] = eq1_agreement(all_pairs, image_labels, music_labels, images_like,
                                  min_images_per_clip, forms)
    return report


def _fits(name: str, block: dict) -> list[str]:
    lines = [f"  {name}: {block.get('pairs', 0)} pairs"
             + (f" of {block['clips']} clips (>= {block['min_images_per_clip']} images each)"
                if "clips" in block else "")]
    for form in SCORE_FORMS:
        if form in block:
            tag = "Eq. 1  " if form == "exp" else form
            lines.append(f"    {tag:12s} sigma {block[form]['sigma']:.4f}  RMS residual "
                         f"{block[form]['rms']:.4f}")
    return lines


def format_audit(report: dict) -> str:
    """A readable summary of :func:`audit_pairs`'s report."""
    lines = []
    for name, f in report["files"].items():
        lines.append(f"{name}")
        lines.append(f"  pairs {f['pairs']:,}  clips {f['clips']:,}  songs {f['songs']:,}  "
                     f"images {f['images']:,}")
        if f["pairs"]:
            ppc = f["pairs_per_clip"]
            lines.append(f"  scores in [{f['score_min']:.4f}, {f['score_max']:.4f}], mean "
                         f"{f['score_mean']:.4f}; pairs per clip min {ppc['min']} mean "
                         f"{ppc['mean']:.2f} max {ppc['max']}")
        lines.append(f"  duplicate pairs {f['duplicate_pairs']} (with different scores: "
                     f"{f['conflicting_duplicates']})")
    for o in report["overlaps"]:
        leak = "" if o["songs"] == o["clips"] == o["images"] == 0 else "  <- shared items"
        lines.append(f"overlap {o['a']} / {o['b']}: songs {o['songs']}, clips {o['clips']}, "
                     f"images {o['images']}, pairs {o['pairs']}{leak}")
    if "image_va" in report:
        iv = report["image_va"]
        lines.append(f"image VA {iv['file']}: {iv['ids']:,} ids; conflicting ids left out: "
                     f"{iv['conflicting_ids'] or 'none'}")
    eq1 = report["eq1"]
    lines.append(f"Eq. 1: mean -log(s) = {eq1['mean_neg_log_score']:.4f} (about 1 when sigma is "
                 "the mean label distance)")
    if "known_va" in eq1:
        lines += _fits("known music and image VA", eq1["known_va"])
    if "fitted_clip_va" in eq1:
        lines += _fits("clip VA fitted to its images' scores", eq1["fitted_clip_va"])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cdcml_lib.data.audit", description=__doc__.split("\n\n")[0])
    parser.add_argument("pairs", nargs="+", help="pair lists: music_clip_id image_id matching_score")
    parser.add_argument("--image-va", help="CSV of image VA in [0,1] (img or id, valence, arousal)")
    parser.add_argument("--music-va", help="CSV of music VA in [0,1] (id, valence, arousal)")
    parser.add_argument("--images-like", help="regex: fit Eq. 1 on matching image ids only, "
                        r"e.g. '\d+(\.\d+)?' for IAPS")
    parser.add_argument("--min-images-per-clip", type=int, default=3,
                        help="clips with fewer labelled images are left out of the clip-VA fit")
    parser.add_argument("--json", help="write the JSON report here ('-' for stdout only)")
    args = parser.parse_args(argv)
    try:
        report = audit_pairs(args.pairs, args.image_va, args.music_va, args.images_like,
                             args.min_images_per_clip)
    except CorpusError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    text = json.dumps(report, indent=2)
    if args.json == "-":
        print(text)
        return 0
    print(format_audit(report))
    if args.json:
        Path(args.json).write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
