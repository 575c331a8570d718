"""The run folder ``runs/<config>/<variant>-s<seed>/``: the one place that knows its files.

Training writes a run folder and every later step reads it (tables, the report, the embeddings
notebook, matching a user's files), so its file names and formats live here alone, as the
dataset folder's do in :mod:`cdcml_lib.data.dataset`. The contract is in
``docs/ARCHITECTURE.md`` ("The run folder"):

- ``params.json`` every parameter of the run, written when it starts;
- ``run.json`` ``status`` (``running``, ``failed`` or ``finished``), device, versions, timings;
- ``checkpoint.pt`` / ``best.pt`` the last epoch (to resume) and the best validation epoch;
- ``curves.csv`` one row per epoch; ``predictions_test.csv`` and ``embeddings_test.npz``;
- ``metrics.json`` written LAST: its presence means the run finished.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from cdcml_lib.workflow.params import run_name
from cdcml_lib.workflow.paths import atomic_path, atomic_write_text, resolve

PARAMS = "params.json"
RUN_INFO = "run.json"
CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
CURVES = "curves.csv"
PREDICTIONS = "predictions_test.csv"
EMBEDDINGS = "embeddings_test.npz"
METRICS = "metrics.json"
#: runs moved aside (never deleted) when their inputs changed, under <runs_dir>/SUPERSEDED
SUPERSEDED = ".superseded"

#: fields of embeddings_test.npz, each [N] except ``embedding`` [N, D]
EMBEDDING_FIELDS = ("ids", "modality", "valence", "arousal", "pred_valence", "pred_arousal", "embedding")


class MissingRunError(FileNotFoundError):
    """A run a step needs has not finished (its metrics.json is absent)."""


class RunFolderError(RuntimeError):
    """A run folder that cannot be used for these parameters."""


def run_folder(runs_dir: str | Path, variant: str, seed: int) -> Path:
    """``<runs_dir>/<variant>-s<seed>``."""
    return resolve(runs_dir) / run_name(variant, seed)


def _jsonable(params: dict) -> dict:
    return json.loads(json.dumps(params))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); delete the run folder and train it again.") from err


def how_to_make(run_dir: Path, variant: str, seed: int) -> str:
    """The command that produces a run (``runs_dir`` is ``runs/<config>`` by convention)."""
    config = run_dir.parent.name
    return (f"produce it with `make train CONFIG={config} MODEL={variant} SEEDS={seed}` (notebooks/02_train), "
            f"or the whole study with `make reproduce CONFIG={config}`")


# --- the parameters and the state of a run ---------------------------------------------------

def read_params(run_dir: str | Path) -> dict:
    return _read_json(resolve(run_dir) / PARAMS)


def write_params(run_dir: Path, params: dict) -> None:
    atomic_write_text(run_dir / PARAMS, json.dumps(_jsonable(params), indent=2))


def read_run_info(run_dir: str | Path) -> dict:
    """``run.json`` of a run (status, wall_s, device, torch...), or {} when absent."""
    path = Path(run_dir) / RUN_INFO
    return _read_json(path) if path.is_file() else {}


def write_run_info(run_dir: Path, info: dict) -> None:
    atomic_write_text(run_dir / RUN_INFO, json.dumps(info, indent=2))


def mark_failed(run_dir: Path, error: BaseException) -> None:
    """Record in run.json that the run stopped on an error, so it never reads "running"."""
    info = read_run_info(run_dir) if (run_dir / RUN_INFO).is_file() else {}
    info.update(status="failed", error=f"{type(error).__name__}: {error}",
                end=dt.datetime.now().strftime("%Y-%m-%dT%H:%M:%S"))
    write_run_info(run_dir, info)


def is_finished(run_dir: str | Path) -> bool:
    return (Path(run_dir) / METRICS).is_file()


def prepare(run_dir: Path, params: dict, operational_keys: tuple[str, ...]) -> str:
    """``new``, ``resume`` or ``finished`` for a run with ``params`` in ``run_dir``.

    A folder made with other parameters is never overwritten. If that run never finished
    (it failed or was stopped) it is moved aside to ``<runs_dir>/.superseded/`` and this one
    starts anew, so fixing a parameter and running again needs no manual clean-up; a
    finished run with other parameters is an error that names the keys that differ.
    ``operational_keys`` change speed only (threads, workers) and may differ on a resume.
    """
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return "new"
    if not (run_dir / PARAMS).is_file():
        raise RunFolderError(f"{run_dir} exists and is not a run folder (no {PARAMS}); "
                             f"pick a new run_dir or delete the folder")
    saved, mine = read_params(run_dir), _jsonable(params)
    differ = sorted(k for k in set(saved) | set(mine)
                    if k not in operational_keys and saved.get(k, "<absent>") != mine.get(k, "<absent>"))
    if not differ:
        return "finished" if is_finished(run_dir) else "resume"
    detail = ", ".join(f"{k}: {saved.get(k, '<absent>')!r} -> {mine.get(k, '<absent>')!r}" for k in differ)
    if not is_finished(run_dir):
        moved = supersede(run_dir)
        print(f"{run_dir.name}: the unfinished run there had other parameters ({detail}); "
              f"moved it to {moved} and starting anew", flush=True)
        return "new"
    raise RunFolderError(f"{run_dir} holds a finished run with other parameters ({detail}); a run is "
                         f"never overwritten: pick a new run_dir, or move the folder aside "
                         f"(`make reproduce` does this itself when its inputs change)")


def supersede(run_dir: Path) -> Path:
    """Move a run folder to ``<runs_dir>/.superseded/<name>-<time>`` (never delete a run)."""
    target = run_dir.parent / SUPERSEDED / f"{run_dir.name}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(run_dir), target)
    return target


# --- what a run wrote -------------------------------------------------------------------------

def write_curves(run_dir: Path, curves: list[dict]) -> None:
    columns: list[str] = []
    for row in curves:
        columns += [k for k in row if k not in columns]
    with atomic_path(run_dir / CURVES) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader(); writer.writerows(curves)


def read_curves(run_dir: str | Path) -> pd.DataFrame:
    return pd.read_csv(resolve(run_dir) / CURVES)


def write_predictions(run_dir: Path, predictions: pd.DataFrame) -> None:
    with atomic_path(run_dir / PREDICTIONS) as tmp:
        predictions.to_csv(tmp, index=False)


def write_embeddings(run_dir: Path, **fields: np.ndarray) -> None:
    """``embeddings_test.npz`` with exactly :data:`EMBEDDING_FIELDS`."""
    if set(fields) != set(EMBEDDING_FIELDS):
        raise ValueError(f"embeddings fields {sorted(fields)}; expected {sorted(EMBEDDING_FIELDS)}")
    with atomic_path(run_dir / EMBEDDINGS) as tmp:
        with open(tmp, "wb") as fh:  # a file object: np.savez would append .npz to the name
            np.savez(fh, **fields)


def write_metrics(run_dir: Path, metrics: dict) -> None:
    """``metrics.json``, the last file a run writes."""
    atomic_write_text(run_dir / METRICS, json.dumps(metrics, indent=2))


def read_metrics(run_dir: str | Path) -> dict:
    """The whole ``metrics.json`` of a finished run (``best_epoch``, ``val``, ``test``)."""
    run_dir = Path(run_dir)
    if not is_finished(run_dir):
        state = "has not started" if not run_dir.exists() else f"has not finished (no {METRICS})"
        raise MissingRunError(f"run {run_dir} {state}")
    return _read_json(run_dir / METRICS)


def read_test_metrics(run_dir: str | Path, keys, variant: str = "?", seed: int = 0) -> dict[str, float]:
    """The ``test`` metrics ``keys`` of one finished run, each checked to be a number."""
    run_dir = Path(run_dir)
    path = run_dir / METRICS
    try:
        data = read_metrics(run_dir)
    except MissingRunError as err:
        raise MissingRunError(f"{err}: {how_to_make(run_dir, variant, seed)}.") from None
    test = data.get("test") if isinstance(data, dict) else None
    if not isinstance(test, dict):
        raise ValueError(f"{path}: no 'test' block; expected "
                         f"{{'schema': 1, 'best_epoch', 'val': {{...}}, 'test': {{...}}}}.")
    out = {}
    for m in keys:
        if m not in test:
            raise ValueError(f"{path}: 'test' has no '{m}' (keys: {sorted(test)}); the run was made by an "
                             f"older trainer: train it again.")
        value = test[m]
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"{path}: test.{m} = {value!r} is not a number.")
        out[m] = float(value)
    return out

