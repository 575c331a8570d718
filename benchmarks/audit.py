"""Time the audit's Eq.-1 fit (cdcml_lib.data.audit) on pair lists.

    python benchmarks/audit.py LIST... --image-va image_va.csv [--images-like all] [--replicate N]

``--replicate N`` fits N copies of the lists' pairs (each copy's clip ids renamed, so each is a
separate clip) to time the fit at the size of lists we do not hold: the published test + val
lists hold about 4 times the validation list's pairs, all three lists about 16.5 times.
Prints the pairs and clips fitted, sigma, RMS and seconds per score form.
"""
from __future__ import annotations

import argparse
import time
import warnings

import pandas as pd

from cdcml_lib.data import audit
from cdcml_lib.data.corpora import read_image_va, read_pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pairs", nargs="+")
    parser.add_argument("--image-va", required=True)
    parser.add_argument("--images-like", default="all")
    parser.add_argument("--replicate", type=int, default=1)
    parser.add_argument("--forms", default="exp,exp_squared,linear")
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # the 8 conflicting ids of image_va.csv
        labels = read_image_va(args.image_va).labels
    pairs = pd.concat([read_pairs(p) for p in args.pairs], ignore_index=True)
    copies = [pairs.assign(music_id=pairs.music_id + f"#{k}") for k in range(args.replicate)]
    pairs = pd.concat(copies, ignore_index=True)
    t0 = time.perf_counter()
    eq1 = audit.eq1_agreement(pairs, labels, None, args.images_like,
                              forms=tuple(args.forms.split(",")), progress=False)
    fitted = eq1["fitted_clip_va"]
    print(f"{len(pairs):,} pairs listed; fitted {fitted['pairs']:,} pairs of {fitted['clips']:,} "
          f"clips (images like {fitted['images_like']})")
    for form in args.forms.split(","):
        f = fitted[form]
        print(f"  {form:12s} sigma {f['sigma']:.4f}  RMS {f['rms']:.4f}  {f['seconds']:.1f} s")
    print(f"total {time.perf_counter() - t0:.1f} s (labels and grouping included)")


if __name__ == "__main__":
    main()
