"""The determinism policy: a run's numbers do not depend on how it was launched.

Each training process sets its own thread count (``num_threads`` of the train section, for torch
and for the BLAS libraries), so the launcher's environment (OMP_NUM_THREADS, JOBS) cannot change a
run's numbers; every random stream is seeded from the run's seed.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

from cdcml_lib.workflow.params import train_params

ROOT = Path(__file__).resolve().parents[1]


def _train(data_dir: str, run_dir: Path, omp_threads: str) -> dict:
    params = {**train_params("smoke", "cdcml", 3, str(run_dir)), "data_dir": data_dir}
    params_file = run_dir.with_suffix(".json")
    params_file.write_text(json.dumps(params))
    env = {**os.environ, "OMP_NUM_THREADS": omp_threads, "OPENBLAS_NUM_THREADS": omp_threads,
           "MKL_NUM_THREADS": omp_threads}
    subprocess.run([sys.executable, "-m", "cdcml_lib.runs.train", "--params-file", str(params_file)],
                   cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return json.loads((run_dir / "metrics.json").read_text())


def test_the_launchers_thread_count_does_not_change_a_run(smoke_data, tmp_path):
    one = _train(smoke_data, tmp_path / "omp1", "1")
    two = _train(smoke_data, tmp_path / "omp2", "2")
    assert one == two   # bit for bit: every metric, val and test, and the epoch kept
    info = json.loads((tmp_path / "omp2" / "run.json").read_text())
    assert info["threads"] == 1   # the train section's num_threads, not the environment's 2
