"""The study's frontier, measured: seeds x epochs x minutes against the claims left undecided.

The default study trains every run until its validation curve flattens (the plateau rule, with
``epochs`` = 14 as its cap) and affords 10 seeds in about 15 minutes on 2 cores. Would shorter
runs and more seeds decide more of the paper's claims in the same time? This script answers with
runs, not with a projection:

1. it trains the study's variants for the first ``--seeds`` seeds of ``--config`` (each seed on its
   own split draw) with the plateau rule capped at ``--epochs`` (the epoch kept is still chosen on
   validation), as ``make reproduce`` trains: one process per variant trains its seeds in turn,
   ``--jobs`` variants at a time, one thread each; into ``runs/frontier/<config>-e<epochs>/``
   (a finished run is read back, so an interrupted call resumes);
2. it prints the CPU time and epochs per run, the wall time of this training, and what a whole
   ``make reproduce`` with such runs would take (this training plus the other steps' times
   recorded in ``reports/timings/``);
3. it judges every claim on the first 5, 10, ... seeds (``--step``) (``claims.verdicts_by_seeds``, the rule of
   ``reports/claims.md``), beside the converged runs of ``runs/<config>/`` for the same seeds when
   they are there, and how many readings get the verdict of the whole converged study.

With ``--epochs`` at the study's own cap the runs are the study's: it then counts how many are
byte-identical to ``runs/<config>/``, a check that this path trains as the notebooks do.

    python benchmarks/frontier.py --config decisive --epochs 3 --seeds 20 --jobs 2

``--config decisive`` because its dataset has 60 split draws; its first 10 are the default study's.
"""
from __future__ import annotations

import argparse
import filecmp
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cdcml_lib.results import claims as C  # noqa: E402
from cdcml_lib.results.reference import outcome_of  # noqa: E402
from cdcml_lib.results.tables import gather_runs  # noqa: E402
from cdcml_lib.runs.folder import MissingRunError, read_curves, read_metrics, run_folder  # noqa: E402
from cdcml_lib.workflow.params import section, study_seeds, study_variants  # noqa: E402
from cdcml_lib.workflow.paths import reports_dir, repo_root, resolve, runs_dir as runs_of  # noqa: E402

#: The steps of `make reproduce` besides training (reports/timings/<step>.json): the dataset step
#: and the report run alone; ACP-Net's study and the embeddings share the cores with training.
ALONE_STEPS = ("01_dataset", "03_tables")
SHARED_STEPS = ("04_embeddings", "05_acp_net")


def frontier_runs_dir(config: str, epochs: int) -> str:
    return f"runs/frontier/{config}-e{epochs}"


def train_variant_capped(config: str, variant: str, seeds: list[int], epochs: int) -> None:
    """The worker: ``variant``'s seeds in turn in this process, with the plateau rule capped at
    ``epochs`` (what one 02_train execution does, one key changed)."""
    # Local imports: the parent process never loads torch.
    from cdcml_lib.runs.launch import VARIANT_KEYS, train_variant
    from cdcml_lib.workflow.params import variant_params

    params = {k: v for k, v in variant_params(config, variant).items() if k in VARIANT_KEYS}
    params["epochs"] = epochs
    train_variant(params, variant, seeds, frontier_runs_dir(config, epochs))


def train_all(config: str, variants: list[str], seeds: list[int], epochs: int, jobs: int) -> dict:
    """Run one worker process per variant, ``jobs`` at a time; the CPU seconds of each."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CI": "1"}   # CI: no progress bars
    todo, running, cpu_s = list(variants), [], {}
    while todo or running:
        while todo and len(running) < jobs:
            variant = todo.pop(0)
            cmd = [sys.executable, __file__, "--worker", variant, "--config", config,
                   "--epochs", str(epochs), "--seeds", str(len(seeds))]
            log = resolve(frontier_runs_dir(config, epochs)) / f"{variant}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "w") as out:   # a file, not a pipe: a chatty worker cannot block on it
                proc = subprocess.Popen(cmd, cwd=repo_root(), env=env, stdout=out, stderr=subprocess.STDOUT)
            running.append((variant, proc, log))
        # wait for whichever worker ends first, with its own CPU time (user + system)
        pid, status, usage = os.wait4(-1, 0)
        done = next(r for r in running if r[1].pid == pid)
        running.remove(done)
        variant, proc, log = done
        proc.returncode = os.waitstatus_to_exitcode(status)   # reaped here, not by Popen
        if proc.returncode:
            raise SystemExit(f"{variant} failed (exit {proc.returncode}); the end of {log}:\n"
                             f"{log.read_text()[-2000:]}")
        cpu_s[variant] = usage.ru_utime + usage.ru_stime
        print(f"  {variant}: {len(seeds)} seeds, {cpu_s[variant]:.0f} CPU s", flush=True)
    return cpu_s


def epochs_trained(runs_dir: str, variants: list[str], seeds: list[int]) -> list[int]:
    return [len(read_curves(run_folder(runs_dir, v, s))) for v in variants for s in seeds]


def other_steps_s(config: str) -> tuple[float, float]:
    """Wall seconds of the steps that run alone, and of those that share the cores with training,
    as recorded by the last `make reproduce` of ``config`` (0 where a timing is missing)."""
    def wall(step: str) -> float:
        f = reports_dir(config) / "timings" / f"{step}.json"
        return float(json.loads(f.read_text())["wall_s"]) if f.is_file() else 0.0
    return sum(wall(s) for s in ALONE_STEPS), sum(wall(s) for s in SHARED_STEPS)


def study_cap(config: str) -> int:
    return int(section(config, "train")["epochs"])


def same_as_study(runs_dir: str, study_dir: str, variants: list[str], seeds: list[int]) -> str:
    """At the study's own cap the runs are the study's: how many match ``study_dir`` byte for byte."""
    names = ("metrics.json", "curves.csv")
    pairs = [(run_folder(runs_dir, v, s), run_folder(study_dir, v, s)) for v in variants for s in seeds]
    same = sum(all((b / n).is_file() and filecmp.cmp(a / n, b / n, shallow=False) for n in names)
               for a, b in pairs)
    return (f"at the study's own cap these are the study's runs: {same} of {len(pairs)} have "
            f"{' and '.join(names)} byte-identical to {study_dir}/")


def converged_runs(config: str, variants: list[str], seeds: list[int]):
    """The per-seed test metrics of the converged study's runs (``runs/<config>``) of ``seeds``,
    or None when some are missing."""
    try:
        return gather_runs(runs_of(config), variants, seeds)
    except MissingRunError:
        return None


def agreement(capped: dict[str, str], converged: dict[str, str], n_capped: int, n_converged: int,
              epochs: int) -> str:
    """Which readings the capped runs judge as the whole converged study does, and which not."""
    differ = [k for k in converged if outcome_of(capped[k]) != outcome_of(converged[k])]
    lines = [f"{len(converged) - len(differ)} of {len(converged)} readings get the same verdict from "
             f"{n_capped} seeds of runs capped at {epochs} epochs as from all {n_converged} seeds of "
             f"converged runs (boundary labels aside)" + (":" if differ else ".")]
    lines += [f"- claim {k}: {capped[k]} (capped), {converged[k]} (converged)" for k in differ]
    return "\n".join(lines)


def verdict_table(capped: list[dict], converged: list[dict] | None, epochs: int) -> str:
    """Markdown: per seed count, the claims not decided with capped and with converged runs."""
    def cell(entry: dict) -> str:
        ids = entry["not_decided"]
        return f"**{len(ids)}**" + (f" ({', '.join(ids)})" if ids else "")
    head = f"| seeds | at most {epochs} epoch{'s' if epochs > 1 else ''}: not decided |"
    rule = "|---:|---|"
    if converged:
        head += " converged (plateau rule): not decided |"
        rule += "---|"
    lines = [head, rule]
    for k, entry in enumerate(capped):
        line = f"| {entry['seeds']} | {cell(entry)} |"
        if converged:
            line += f" {cell(converged[k])} |"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="decisive")
    parser.add_argument("--epochs", type=int, default=3, help="the plateau rule's cap (the study's: 14)")
    parser.add_argument("--seeds", type=int, default=20, help="the first N seeds of the config's study")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--step", type=int, default=5, help="judge the claims on the first step, 2 x step, ... seeds")
    parser.add_argument("--worker", metavar="VARIANT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    all_seeds = study_seeds(args.config)
    if not 2 <= args.seeds <= len(all_seeds):
        parser.error(f"--seeds must be 2 to {len(all_seeds)} (the seeds of params/{args.config}.yaml)")
    if args.epochs < 1 or args.step < 2:
        parser.error("--epochs must be at least 1 and --step at least 2")
    seeds = all_seeds[:args.seeds]
    if args.worker:
        train_variant_capped(args.config, args.worker, seeds, args.epochs)
        return 0

    variants = study_variants(args.config)
    runs_dir = frontier_runs_dir(args.config, args.epochs)
    before = sum((run_folder(runs_dir, v, s) / "metrics.json").is_file() for v in variants for s in seeds)
    print(f"config {args.config}: {len(variants)} variants x {len(seeds)} seeds, plateau rule capped at "
          f"{args.epochs} epochs, {args.jobs} at a time, into {runs_dir}/"
          + (f" ({before} runs already finished: read back, their time not counted)" if before else ""),
          flush=True)
    start = time.perf_counter()
    cpu_s = train_all(args.config, variants, seeds, args.epochs, args.jobs)
    wall_s = time.perf_counter() - start
    trained = len(variants) * len(seeds) - before
    epochs = epochs_trained(runs_dir, variants, seeds)
    alone_s, shared_s = other_steps_s("default")
    study_s = alone_s + wall_s + shared_s / args.jobs
    print(f"\n{sum(epochs) / len(epochs):.1f} epochs per run ({min(epochs)}-{max(epochs)})")
    if trained < len(variants) * len(seeds):
        print(f"{len(variants) * len(seeds) - trained} runs were finished already: no time is given "
              f"(delete {runs_dir}/ to measure it)")
    else:
        print(f"training: {trained} runs in {wall_s:.0f} s wall, {sum(cpu_s.values()):.0f} CPU s "
              f"({sum(cpu_s.values()) / trained:.1f} CPU s per run, one process per variant)")
        print(f"a whole make reproduce with these runs: about {study_s:.0f} s ({study_s / 60:.1f} min) = "
              f"this training + {alone_s:.0f} s of steps that run alone + {shared_s:.0f} s of steps "
              f"that share the {args.jobs} cores (reports/timings/ of the default study; the notebooks' "
              f"own start-up and HTML copies not counted)")

    rule = C.Rule()
    study = gather_runs(runs_dir, variants, seeds)
    capped = C.verdicts_by_seeds(study, seeds, rule, step=args.step)
    # the converged study read once: all its seeds when they are there, else these seeds only
    whole = converged_runs(args.config, variants, all_seeds)
    first = whole[whole["seed"].isin(seeds)] if whole is not None else converged_runs(args.config, variants, seeds)
    converged = None if first is None else C.verdicts_by_seeds(first, seeds, rule, step=args.step)
    if converged is None:
        print(f"({runs_of(args.config)}/ lacks some of these seeds' converged runs: shown alone)")
    print("\n" + verdict_table(capped, converged, args.epochs))
    print("\n" + C.by_seeds_markdown(capped))
    if converged:
        kept = [read_metrics(run_folder(runs_of(args.config), v, s))["best_epoch"] for v in variants for s in seeds]
        kept.sort()
        print(f"the converged runs of these seeds keep epoch {kept[0]}-{kept[-1]} (median "
              f"{kept[len(kept) // 2]}); {sum(k <= args.epochs for k in kept)} of {len(kept)} keep an "
              f"epoch within the cap of {args.epochs}")
    if args.epochs == study_cap(args.config):
        print(same_as_study(runs_dir, runs_of(args.config), variants, seeds))
    if whole is not None:
        verdicts = {f"{c.number}{c.part}": c.verdict for c in C.check_claims(whole, rule)}
        print(agreement(capped[-1]["verdicts"], verdicts, len(seeds), len(all_seeds), args.epochs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
