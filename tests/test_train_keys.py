"""The training keys have one list (runs.train); 02_train's parameters cell holds the same names."""
from pathlib import Path

from cdcml_lib.runs.launch import VARIANT_KEYS, variant_params_from
from cdcml_lib.runs.train import OPTIONAL_KEYS, REQUIRED_KEYS
from cdcml_lib.workflow.params import notebook_defaults, section, variant_params

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "02_train.ipynb"


def test_the_notebook_parameters_are_the_train_keys_plus_the_seed_loop():
    names = set(notebook_defaults(NOTEBOOK))
    assert names == set(VARIANT_KEYS) | {"variant", "seeds", "runs_dir", "extra_terms"}
    assert set(VARIANT_KEYS) == set(REQUIRED_KEYS + OPTIONAL_KEYS) - {"seed", "run_dir"}


def test_variant_params_from_a_namespace_picks_only_train_keys():
    namespace = {**notebook_defaults(NOTEBOOK), "unrelated": 1, "plt": object()}
    picked = variant_params_from(namespace)
    assert set(picked) == set(VARIANT_KEYS) and "unrelated" not in picked


def test_every_config_train_section_has_every_required_key():
    for config in ("smoke", "default", "paper", "imemnet"):
        merged = variant_params(config, "cdcml")
        missing = set(REQUIRED_KEYS) - {"seed", "run_dir"} - set(merged)
        assert not missing, (config, missing)
        assert "seed" not in merged and "run_dir" not in merged
        assert set(section(config, "train")) - {"seed", "run_dir"} <= set(REQUIRED_KEYS + OPTIONAL_KEYS)
