"""Shared test set-up for the unit tests and for nbval.

Notebooks 02-04 read what earlier steps wrote (data/smoke, runs/smoke). Before the first of their
cells runs, the smoke study is brought up to date once with ``make reproduce CONFIG=smoke``
(which does nothing when it already is), so each notebook test works alone and in any order.
Before 02_train runs under nbval, a run left in its folder by an older version of the notebook is
moved aside (:func:`retire_outdated_runs`).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
_NEEDS_STUDY = ("02_train", "03_tables", "04_embeddings")
_study_result: subprocess.CompletedProcess | None = None
_retired = False


def run_smoke_study() -> subprocess.CompletedProcess:
    """``make reproduce CONFIG=smoke`` once per test session; raises if it fails."""
    global _study_result
    if _study_result is None:
        _study_result = subprocess.run(["make", "--no-print-directory", "reproduce", "CONFIG=smoke"],
                                       cwd=ROOT, capture_output=True, text=True)
    if _study_result.returncode != 0:
        pytest.fail("make reproduce CONFIG=smoke failed:\n" + _study_result.stdout[-4000:]
                    + _study_result.stderr[-4000:], pytrace=False)
    return _study_result


@pytest.fixture(scope="session")
def smoke_study() -> subprocess.CompletedProcess:
    return run_smoke_study()


def retire_outdated_runs(notebook: Path = ROOT / "notebooks" / "02_train.ipynb", runs_dir: str | None = None) -> list[Path]:
    """Move aside the finished runs in 02_train's own folder under nbval (its parameters cell:
    ``runs_dir``, ``variant``, ``seeds``) that were made with other parameters, by an older
    version of the notebook; return where they went. The notebook refuses to overwrite a finished
    run, so after a pull that changed those parameters `make test` would fail on a machine that ran
    it before (a fresh clone has no such folder). Runs are moved to ``.superseded/``, never deleted."""
    from cdcml_lib.runs import folder as run_folder
    from cdcml_lib.runs.launch import variant_params_from
    from cdcml_lib.runs.train import check_train_params, prepare_run_dir
    from cdcml_lib.workflow.params import notebook_defaults, seed_params
    from cdcml_lib.workflow.paths import resolve

    defaults = notebook_defaults(notebook)
    runs_dir = runs_dir or defaults["runs_dir"]
    variant_set = variant_params_from(defaults)
    moved = []
    for seed in defaults["seeds"]:
        run_dir = f"{runs_dir.rstrip('/')}/{run_folder.run_name(defaults['variant'], seed)}"
        params = check_train_params(seed_params(variant_set, seed, run_dir))
        try:
            prepare_run_dir(resolve(run_dir), params)
        except run_folder.RunFolderError:
            moved.append(run_folder.supersede(resolve(run_dir)))
    return moved


def pytest_runtest_setup(item):
    global _retired
    path = Path(str(getattr(item, "path", getattr(item, "fspath", ""))))
    if path.suffix == ".ipynb" and path.stem.startswith(_NEEDS_STUDY):
        run_smoke_study()
    if path.suffix == ".ipynb" and path.stem == "02_train" and not _retired:
        _retired = True
        for moved in retire_outdated_runs(path):
            print(f"moved an outdated nbval run of 02_train to {moved}")
