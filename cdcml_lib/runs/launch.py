"""Start one training run from a notebook or a script: in this process, or under torchrun.

This sits above :mod:`cdcml_lib.runs.train` and :mod:`cdcml_lib.runs.distributed` (it needs both),
so the training loop never has to reach back up for its own launcher.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from cdcml_lib.runs import distributed
from cdcml_lib.runs.folder import run_name
from cdcml_lib.workflow.params import seed_params
from cdcml_lib.runs.train import OPTIONAL_KEYS, REQUIRED_KEYS, train_run
from cdcml_lib.runs import folder as run_folder
from cdcml_lib.workflow.paths import resolve


def torchrun_command(params_file: str, nproc: int) -> list[str]:
    """The torchrun command line of one run whose train parameters are in ``params_file``."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={nproc}", "-m", "cdcml_lib.runs.train", "--params-file", params_file]


def launch(params: dict) -> dict:
    """Train one run and return its ``metrics.json``: in this process for ``nproc`` 1 (or absent),
    else as ``torchrun --nproc_per_node=<nproc>`` in a subprocess whose output is echoed here."""
    nproc = int(params.get("nproc", 1) or 1)
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1 (train section), got {nproc}")
    if nproc == 1:
        return train_run(params)
    distributed.local_batch_size(int(params["batch_size"]), nproc)   # fail here, not in every rank
    with tempfile.TemporaryDirectory() as tmp:
        params_file = os.path.join(tmp, "train_params.json")
        with open(params_file, "w") as fh:
            json.dump(params, fh)
        command = torchrun_command(params_file, nproc)
        print("$", " ".join(command), flush=True)
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              bufsize=1) as proc:
            for line in proc.stdout:
                print(line, end="", flush=True)
        if proc.returncode != 0:
            raise RuntimeError(f"torchrun exited with status {proc.returncode} (output above); "
                               f"run again with the same parameters to resume from the last checkpoint")
    return run_folder.read_metrics(resolve(params["run_dir"]))


#: the train parameters a variant's notebook passes on: every train key but the two each seed sets
SEED_KEYS = ("seed", "run_dir")
VARIANT_KEYS = tuple(k for k in REQUIRED_KEYS + OPTIONAL_KEYS if k not in SEED_KEYS)


def variant_params_from(namespace: dict) -> dict:
    """The train parameters among a notebook's variables (its parameters cell): :data:`VARIANT_KEYS`.

    ``train.REQUIRED_KEYS`` and ``train.OPTIONAL_KEYS`` are the one list of training keys; the
    02_train notebook's parameters cell holds the same names (a test checks it).
    """
    params = {k: namespace[k] for k in VARIANT_KEYS if k in namespace}
    # weights of loss terms registered after the paper's five come as one mapping (nbrun packs them)
    params.update(namespace.get("extra_terms") or {})
    return params


def train_variant(params: dict, variant: str, seeds, runs_dir: str) -> dict[int, dict]:
    """Train ``variant`` once per seed, one after another in this process, into
    ``<runs_dir>/<variant>-s<seed>``; return each seed's ``metrics.json``.

    The seeds share one process (one Jupyter kernel under the Makefile), so the start-up cost
    (imports, the dataset's memory maps) is paid once per variant. Each run keeps its own folder,
    checkpoints and resume: a finished seed is read back, an interrupted one resumes.
    """
    return {int(seed): launch(seed_params(params, seed, f"{str(runs_dir).rstrip('/')}/{run_name(variant, seed)}"))
            for seed in seeds}
