"""The cluster launch prefix: ``make ... LAUNCH="srun --gres=gpu:1 --ntasks=1"`` puts the launcher
in front of every training step of the study, so ``make -j N reproduce CONFIG=paper`` spreads the
runs over a SLURM cluster (docs/RUNNING.md, clusters).

The Makefile is checked with a dry run (``make -n -B``: every step printed, nothing run) of the
smoke study, with ``LAUNCH`` set to a stand-in launcher (tests/fixtures/fake_srun, which records
its command line and runs the rest, as srun does): every command that trains (``notebooks/02_train``
or ``cdcml_lib.runs.train``) must start with the stand-in, after any ``NAME=value`` environment
assignments, and every variant of the study must be trained by one of them (one command per run or
one per variant, whichever the Makefile does). The stand-in itself is checked to
record its command line, drop srun's options and run the command in its place.
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FAKE_SRUN = ROOT / "tests" / "fixtures" / "fake_srun"
TRAINING = re.compile(r"workflow\.nbrun notebooks/02_train\.ipynb|cdcml_lib\.runs\.train")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")

needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="the stand-in is a bash script")
needs_make = pytest.mark.skipif(shutil.which("make") is None or shutil.which("bash") is None,
                                reason="needs GNU make and bash")


def dry_run_training_commands(makefile: Path, launch: str, config: str = "smoke") -> list[list[str]]:
    """The training commands (as argument lists) of ``make -n -B`` of CONFIG's report with
    ``LAUNCH=launch``, continuation lines joined. (It rewrites only .make/, as any make does.)"""
    reports = "reports" if config == "default" else f"reports/{config}"
    proc = subprocess.run(["make", "-f", str(makefile), "-n", "-B", f"{reports}/REPORT.md",
                           f"CONFIG={config}", f"LAUNCH={launch}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    joined = proc.stdout.replace("\\\n", " ")
    return [shlex.split(line) for line in joined.splitlines() if TRAINING.search(line)]


def launcher_of(command: list[str]) -> str:
    """The program a shell command line starts, after its NAME=value assignments."""
    words = list(command)
    while words and ASSIGNMENT.match(words[0]):
        words.pop(0)
    return words[0] if words else ""


def study_variants(config: str = "smoke") -> set[str]:
    from cdcml_lib.workflow.params import study_runs

    return {variant for variant, _ in study_runs(config)}


def trained_variants(commands: list[list[str]]) -> set[str]:
    return {c[i + 1] for c in commands for i, word in enumerate(c[:-1]) if word == "--variant"}


@needs_make
def test_every_training_step_starts_with_the_launcher():
    launch = f"{FAKE_SRUN} --gres=gpu:1 --ntasks=1"
    commands = dry_run_training_commands(ROOT / "Makefile", launch)
    untrained = study_variants() - trained_variants(commands)
    assert not untrained, f"no training command in the dry run for the variants {sorted(untrained)}"
    unlaunched = [" ".join(c) for c in commands if launcher_of(c) != str(FAKE_SRUN)]
    assert not unlaunched, ("training steps that do not start with $(LAUNCH) in the Makefile "
                            "(put $(LAUNCH) first in their recipe line):\n" + "\n".join(unlaunched))
    for c in commands:   # srun's options reach the launcher, before the command it runs
        at = c.index(str(FAKE_SRUN))
        assert c[at + 1:at + 3] == ["--gres=gpu:1", "--ntasks=1"], c


@needs_bash
def test_the_stand_in_records_its_command_line_and_runs_the_command(tmp_path):
    log = tmp_path / "srun.log"
    env = dict(os.environ, FAKE_SRUN_LOG=str(log))
    proc = subprocess.run([str(FAKE_SRUN), "--gres=gpu:1", "--ntasks=1", sys.executable, "-c",
                           "import sys; print('ran', sys.argv[1:]); sys.exit(3)", "a b", "c"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 3                      # the command's status comes back
    assert proc.stdout.strip() == "ran ['a b', 'c']"  # its arguments intact
    recorded = shlex.split(log.read_text().strip())
    assert recorded[:3] == [str(FAKE_SRUN), "--gres=gpu:1", "--ntasks=1"]
    assert recorded[-2:] == ["a b", "c"]


@needs_make
@pytest.mark.parametrize("args, jobs", [([], "2"), (["-j4"], "4"), (["-j5", "JOBS=3"], "3"), (["-j"], "2")])
def test_reproduce_takes_its_steps_at_once_from_jobs_or_make_j(args, jobs):
    # make -n still runs the recursive $(MAKE) line, itself with -n: nothing is built
    proc = subprocess.run(["make", "-n", *args, "reproduce", "CONFIG=smoke"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    sub_make = [line for line in proc.stdout.splitlines() if line.startswith("flock ")]
    assert sub_make and re.search(rf"\s-j{jobs}\s", sub_make[0]), sub_make
