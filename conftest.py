"""Shared test set-up for the unit tests and for nbval.

Notebooks 02-04 read what earlier steps wrote (data/smoke, runs/smoke). Before the first of their
cells runs, the smoke study is brought up to date once with ``make reproduce CONFIG=smoke``
(which does nothing when it already is), so each notebook test works alone and in any order.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
_NEEDS_STUDY = ("02_train", "03_tables", "04_embeddings")
_study_result: subprocess.CompletedProcess | None = None


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


def pytest_runtest_setup(item):
    path = Path(str(getattr(item, "path", getattr(item, "fspath", ""))))
    if path.suffix == ".ipynb" and path.stem.startswith(_NEEDS_STUDY):
        run_smoke_study()
