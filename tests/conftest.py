"""Fixtures shared by the test modules."""
import pytest
import yaml

from cdcml_lib.data.dataset import build_dataset
from cdcml_lib.workflow.params import draw_seeds
from cdcml_lib.workflow.paths import repo_root
from cdcml_lib.workflow.params import section as config_section  # configs inherit: read them merged


@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory) -> str:
    """The smoke dataset (params/smoke.yaml) with its study seeds' split draws, built once per
    test session; tests only read it."""
    params = config_section("smoke", "dataset")
    params["out_dir"] = str(tmp_path_factory.mktemp("data") / "smoke")
    build_dataset(draw_seeds=draw_seeds("smoke"), **params)
    return params["out_dir"]
