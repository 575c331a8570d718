"""Under nbval, 02_train trains into its own folder (runs/smoke/nbval); a finished run left there
by an older version of the notebook is moved aside first (conftest.retire_outdated_runs), so that
`make test` passes again after a pull that changed the notebook's parameters."""
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "02_train.ipynb"


def root_conftest():
    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def finished_run(runs_dir: Path, **changed) -> Path:
    """A finished run folder of the notebook's committed parameters, with ``changed`` applied."""
    from cdcml_lib.runs.launch import variant_params_from
    from cdcml_lib.workflow.params import notebook_defaults, seed_params

    defaults = notebook_defaults(NOTEBOOK)
    seed = defaults["seeds"][0]
    run_dir = runs_dir / f"{defaults['variant']}-s{seed}"
    run_dir.mkdir(parents=True)
    params = {**seed_params(variant_params_from(defaults), seed, str(run_dir)), **changed}
    (run_dir / "params.json").write_text(json.dumps(params))
    (run_dir / "metrics.json").write_text("{}")
    return run_dir


def test_a_run_made_with_other_parameters_is_moved_aside(tmp_path):
    run_dir = finished_run(tmp_path, epochs=99)
    moved = root_conftest().retire_outdated_runs(NOTEBOOK, runs_dir=str(tmp_path))
    assert not run_dir.exists()
    assert [m.parent for m in moved] == [tmp_path / ".superseded"]
    assert (moved[0] / "params.json").is_file(), "the run was not kept"


def test_a_run_of_the_same_parameters_stays(tmp_path):
    run_dir = finished_run(tmp_path)
    assert root_conftest().retire_outdated_runs(NOTEBOOK, runs_dir=str(tmp_path)) == []
    assert (run_dir / "metrics.json").is_file()
