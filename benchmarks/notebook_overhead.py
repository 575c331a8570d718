"""What training through the 02_train notebook costs against calling the trainer directly.

    python benchmarks/notebook_overhead.py --path notebook   # one Papermill kernel, all seeds
    python benchmarks/notebook_overhead.py --path direct     # one `python -m cdcml_lib.runs.train` per seed

Both train the same variant for the same seeds (default: cdcml, seeds 0 1 2 of the smoke config)
into fresh run folders under a temporary directory, and print the wall time. The notebook path
pays one kernel start, Papermill and the HTML copy once per variant; the direct path pays Python's
and torch's start-up once per seed. Run each path several times and compare medians, e.g. with
``/usr/bin/time`` or any tool that pairs two commands.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:   # a failed run is no measurement: say why and stop
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--path", choices=["notebook", "direct"], required=True)
    parser.add_argument("--config", default="smoke")
    parser.add_argument("--variant", default="cdcml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    if not (ROOT / "data" / args.config / "stats.json").is_file():
        print(f"build the dataset first: make data CONFIG={args.config}", file=sys.stderr)
        return 2
    (ROOT / "runs").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "runs") as tmp:
        runs_dir = os.path.relpath(tmp, ROOT)
        start = time.perf_counter()
        if args.path == "notebook":
            run([sys.executable, "-m", "cdcml_lib.workflow.nbrun", "notebooks/02_train.ipynb",
                 "--config", args.config, "--variant", args.variant, "--seeds", *map(str, args.seeds),
                 "-p", f"runs_dir={runs_dir}", "--out", f"{runs_dir}/02_train.ipynb"])
        else:
            for seed in args.seeds:
                run([sys.executable, "-m", "cdcml_lib.runs.train", "--config", args.config,
                     "--variant", args.variant, "--seed", str(seed),
                     "--run-dir", f"{runs_dir}/{args.variant}-s{seed}"])
        wall = time.perf_counter() - start
    print(f"{args.path}: {args.variant} x {len(args.seeds)} seeds on {args.config}: {wall:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
