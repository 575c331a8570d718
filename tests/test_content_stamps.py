"""Content stamps (cdcml_lib.workflow.content): Make re-runs a step when an input's content changes,
not when its time does."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cdcml_lib.workflow.content import digest, stamp_path, update_stamp
from cdcml_lib.workflow.params import study_seeds

ROOT = Path(__file__).resolve().parents[1]


def notebook(code: str, outputs=None, count=None, tags=()) -> dict:
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "cdcml"}},
            "cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# Title"]},
                      {"cell_type": "code", "metadata": {"tags": list(tags)}, "execution_count": count,
                       "outputs": outputs or [], "source": [code]}]}


def write(path: Path, data) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_a_notebook_run_and_saved_keeps_its_digest(tmp_path):
    clean = digest(write(tmp_path / "a.ipynb", notebook("x = 1", tags=["parameters"])))
    ran = notebook("x = 1", tags=["parameters"], count=3,
                   outputs=[{"output_type": "stream", "name": "stdout", "text": ["1\n"]}])
    ran["metadata"]["language_info"] = {"name": "python", "version": "3.11.9"}
    assert digest(write(tmp_path / "b.ipynb", ran)) == clean
    assert digest(write(tmp_path / "c.ipynb", notebook("x = 2", tags=["parameters"]))) != clean
    # papermill finds the parameters cell by its tag: losing it changes what runs
    assert digest(write(tmp_path / "d.ipynb", notebook("x = 1"))) != clean


def test_a_yaml_file_is_its_values(tmp_path):
    base = digest(write(tmp_path / "a.yaml", "model: cdcml\nw_cfr: 0.0\n"))
    assert digest(write(tmp_path / "b.yaml", "# a comment\nmodel: cdcml   # why\nw_cfr: 0.0\n\n")) == base
    assert digest(write(tmp_path / "c.yaml", "model: cdcml\nw_cfr: 1.0\n")) != base
    # a file that does not parse still gets a digest (the step that reads it reports the problem)
    assert len(digest(write(tmp_path / "d.yaml", "model: [cdcml\n"))) == 64


def test_a_stamp_moves_only_when_the_content_does(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = write(tmp_path / "lib.py", "x = 1\n")
    old = time.time() - 1000
    os.utime(source, (old, old))
    assert update_stamp("stamps", "lib.py") == "created"
    stamp = stamp_path("stamps", "lib.py")
    # a new stamp is judged as its file was
    assert stamp.stat().st_mtime == pytest.approx(old, abs=1e-3)

    os.utime(source)                      # touched: newer, same content
    assert update_stamp("stamps", "lib.py") == "same"
    assert stamp.stat().st_mtime == pytest.approx(old, abs=1e-3)

    write(source, "x = 2\n")
    os.utime(source, (old, old))          # digested again, an older time still counts as changed
    assert update_stamp("stamps", "lib.py") == "changed"
    assert stamp.stat().st_mtime > time.time() - 60


def test_a_stamp_needs_a_path_inside_the_repository(tmp_path):
    with pytest.raises(ValueError, match="inside the repository"):
        stamp_path(tmp_path, "../elsewhere.py")


# --- the Makefile: a scratch copy of the sources, fake finished outputs, make -q ----------------
SKIP = {".git", ".venv", "data", "runs", ".make", "reports", "__pycache__", ".pytest_cache", "build",
        "benchmarks", "docs", "tests", "cdcml_kit.egg-info"}


def make_q(copy: Path, target: str) -> int:
    """``make -q`` in the scratch copy: 0 when ``target`` is up to date (included makefiles, the
    content stamps among them, are still brought up to date first, as GNU Make does under -q)."""
    env = dict(os.environ, CDCML_ROOT=str(copy), PYTHONPATH=str(copy))
    return subprocess.run(["make", "-C", str(copy), "-q", target, "CONFIG=smoke", f"PY={sys.executable}",
                           f"ENV_OK={copy / '.env_ok'}"], env=env, capture_output=True, text=True).returncode


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU Make")
def test_make_reruns_training_for_content_not_for_time(tmp_path):
    copy = tmp_path / "kit"
    shutil.copytree(ROOT, copy, ignore=lambda folder, names: {n for n in names if n in SKIP}, symlinks=True)
    (copy / ".env_ok").touch()
    target = "reports/smoke/notebooks/02_train-cdcml.ipynb"
    assert make_q(copy, target) != 0      # nothing trained yet; the stamps are made on the way

    # Every input an hour old, the dataset and the runs finished after them.
    then = time.time() - 3600
    for path in copy.rglob("*"):
        os.utime(path, (then, then))
    outputs = [copy / "data/smoke/stats.json", copy / "reports/smoke/notebooks/01_dataset.ipynb", copy / target]
    outputs[2:2] = [copy / f"runs/smoke/cdcml-s{s}/metrics.json" for s in study_seeds("smoke")]
    for i, path in enumerate(outputs):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
        os.utime(path, (then + 60 + i, then + 60 + i))
    assert make_q(copy, target) == 0

    # Touched, saved after a run in JupyterLab, a comment edited: the runs still stand.
    for path in (copy / "cdcml_lib").rglob("*.py"):
        os.utime(path)
    nb_path = copy / "notebooks/02_train.ipynb"
    nb = json.loads(nb_path.read_text())
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["execution_count"], code["outputs"] = 1, [{"output_type": "stream", "name": "stdout", "text": "ok\n"}]
    nb_path.write_text(json.dumps(nb, indent=1))
    variant = copy / "params/variants/cdcml.yaml"
    variant.write_text("# a note\n" + variant.read_text())
    assert make_q(copy, target) == 0, "a change of time alone made the training step stale"

    # A real edit of the library: the runs are stale.
    losses = copy / "cdcml_lib/losses.py"
    losses.write_text(losses.read_text() + "\nEDITED = True\n")
    assert make_q(copy, target) != 0, "an edit of cdcml_lib/losses.py left the training step up to date"
