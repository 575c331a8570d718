"""Where the seed spread of a paired difference comes from: training or the split draw.

A study seed s sets two things at once: the split and pair lists a run trains and is tested on
(its draw, ``data/<config>/draws/s<s>``) and the training's random streams (initial weights, batch
order, triplet draws). This script holds the draw fixed and varies only the training seed:

1. it trains each variant of ``--pairs`` on draw ``--draw`` with the training seeds ``--inits``
   (``python -m cdcml_lib.runs.train --params-file``, one thread each, ``--jobs`` at a time, into a
   temporary folder);
2. for every pair (a, b) and error metric it prints the standard deviation of the paired difference
   b - a over those training seeds (the draw fixed) beside the same over the study's own runs
   (``runs/<config>/<variant>-s<seed>``, each seed on its own draw), and their ratio.

Variances add, so the squared ratio is roughly the share of the paired variance that training
alone gives; the rest comes from the split draw. A ratio near 1 says a larger or redrawn test split
would not narrow the intervals, only more (or steadier) training runs would. With a handful of
training seeds each standard deviation is itself uncertain by about 30%: read the median.

    python benchmarks/spread.py --config default --draw 0 --inits 100,101,102,103,104,105

It needs the configuration's dataset folder with its draws and the study's finished runs
(``make reproduce``).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cdcml_lib.results.claims import SIM, VA  # noqa: E402
from cdcml_lib.runs.folder import read_metrics  # noqa: E402
from cdcml_lib.workflow.params import study_seeds, train_params  # noqa: E402
from cdcml_lib.workflow.paths import resolve, run_name, runs_dir  # noqa: E402

#: The Table 4 comparisons of claims 4 to 7 (docs/METHOD.md, "The paper's claims"): (a, b) is b - a.
DEFAULT_PAIRS = "sim:sim_cfr,sim_cfr:sim_cfr_cfm,sim:sim_va,sim_cfr:cdcml"


def sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else float("nan")


def paired_sd(tests: dict[str, dict[int, dict]], a: str, b: str, metric: str) -> float:
    """The standard deviation over seeds of b's metric minus a's (seeds both have)."""
    seeds = sorted(set(tests[a]) & set(tests[b]))
    return sd([tests[b][s][metric] - tests[a][s][metric] for s in seeds])


def spread_table(fixed: dict[str, dict[int, dict]], across: dict[str, dict[int, dict]],
                 pairs: list[tuple[str, str]], metrics: list[str]) -> list[dict]:
    """One row per (pair, metric): the paired sd with the draw fixed, across draws, and the ratio."""
    rows = []
    for a, b in pairs:
        for metric in metrics:
            fixed_sd, across_sd = paired_sd(fixed, a, b, metric), paired_sd(across, a, b, metric)
            rows.append({"pair": f"{b} - {a}", "metric": metric, "sd_fixed_draw": fixed_sd,
                         "sd_draws_vary": across_sd,
                         "ratio": fixed_sd / across_sd if across_sd > 0 else float("nan")})
    return rows


def summary(rows: list[dict]) -> str:
    ratios = [r["ratio"] for r in rows if r["ratio"] == r["ratio"]]
    if not ratios:
        return "no ratio could be computed"
    median = statistics.median(ratios)
    return (f"median ratio {median:.2f} over {len(ratios)} checks: with the draw held fixed, training "
            f"alone (initial weights, batch order, triplet draws) gives about {100 * min(median, 1) ** 2:.0f}% "
            f"of the paired variance across the study's draws; the split draw, at most the rest")


def train_fixed_draw(config: str, variants: list[str], draw: int, inits: list[int], jobs: int,
                     out: Path) -> dict[str, dict[int, dict]]:
    """Train every variant on draw ``draw`` with each training seed; their test metrics."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CI": "1"}   # CI: no progress bars
    todo, running = [(v, i) for i in inits for v in variants], []
    tests: dict[str, dict[int, dict]] = {v: {} for v in variants}
    while todo or running:
        while todo and len(running) < jobs:
            variant, init = todo.pop(0)
            params = train_params(config, variant, draw, str(out / f"{variant}-i{init}"))
            params["seed"] = init        # the draw (data_dir) stays the one of seed `draw`
            params_file = out / f"{variant}-i{init}.json"
            params_file.write_text(json.dumps(params))
            cmd = [sys.executable, "-m", "cdcml_lib.runs.train", "--params-file", str(params_file)]
            running.append((variant, init, subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL,
                                                            stderr=subprocess.PIPE, text=True)))
        variant, init, proc = running.pop(0)
        _, err = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"{variant} with training seed {init} failed (exit {proc.returncode}):\n{err[-2000:]}")
        tests[variant][init] = read_metrics(out / f"{variant}-i{init}")["test"]
    return tests


def study_tests(config: str, variants: list[str]) -> dict[str, dict[int, dict]]:
    """The test metrics of the study's own runs (each seed on its own draw)."""
    tests: dict[str, dict[int, dict]] = {}
    for variant in variants:
        tests[variant] = {}
        for seed in study_seeds(config):
            run_dir = resolve(runs_dir(config)) / run_name(variant, seed)
            if not (run_dir / "metrics.json").is_file():
                raise SystemExit(f"{run_dir}: no finished run. Fix: make reproduce CONFIG={config} first.")
            tests[variant][seed] = read_metrics(run_dir)["test"]
    return tests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="default")
    parser.add_argument("--draw", type=int, default=0, help="the study seed whose split draw is held fixed")
    parser.add_argument("--inits", default="100,101,102,103,104,105", help="training seeds, comma-separated")
    parser.add_argument("--pairs", default=DEFAULT_PAIRS, help="a:b,... (the difference b - a)")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    pairs = [tuple(p.split(":")) for p in args.pairs.split(",")]
    variants = sorted({v for pair in pairs for v in pair})
    inits = [int(i) for i in args.inits.split(",")]
    across = study_tests(args.config, variants)
    with tempfile.TemporaryDirectory(prefix="cdcml-spread-") as tmp:
        fixed = train_fixed_draw(args.config, variants, args.draw, inits, args.jobs, Path(tmp))
    print(f"config {args.config}: draw s{args.draw} held fixed, training seeds {args.inits} ({len(inits)}), "
          f"against the study's {len(study_seeds(args.config))} seeds (each on its own draw)")
    rows = spread_table(fixed, across, pairs, SIM + VA)
    print(f"{'pair':28s} {'metric':10s} {'sd, draw fixed':>15s} {'sd, draws vary':>15s} {'ratio':>6s}")
    for r in rows:
        print(f"{r['pair']:28s} {r['metric']:10s} {r['sd_fixed_draw']:15.5f} {r['sd_draws_vary']:15.5f} {r['ratio']:6.2f}")
    print(summary(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
