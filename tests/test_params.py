"""Parameter files load, merge, and are checked against the notebooks' parameters cells."""
import json

import pytest

from cdcml_lib.workflow import params as P
from cdcml_lib.workflow.nbrun import parameters_for
from cdcml_lib.workflow.paths import repo_root, reports_dir

NOTEBOOKS = repo_root() / "notebooks"
CONFIGS = ["default", "smoke", "paper", "decisive"]


def test_configs_have_every_section():
    for config in CONFIGS:
        data = P.load_config(config)
        assert set(P.SECTIONS) <= set(data), config


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("stem", ["01_dataset", "03_tables", "04_embeddings"])
def test_config_sections_match_notebook_parameters(config, stem):
    nb = NOTEBOOKS / f"{stem}.ipynb"
    if not nb.exists():
        pytest.skip(f"{nb.name} not written yet")
    given = parameters_for(nb, config, None, None)
    defaults = P.notebook_defaults(nb)
    full = P.check_params(given, defaults, f"params/{config}.yaml")
    assert set(full) == set(defaults)


@pytest.mark.parametrize("config", CONFIGS)
def test_every_variant_merges_into_train_section(config):
    nb = NOTEBOOKS / "02_train.ipynb"
    for variant, seed in P.study_runs(config):
        merged = P.train_params(config, variant, seed)
        assert merged["run_dir"] == f"runs/{config}/{variant}-s{seed}"
    for variant in P.study_variants(config):  # what 02_train gets: one variant, all its seeds
        given = parameters_for(nb, config, variant, None)
        assert given["seeds"] == P.study_seeds(config) and given["variant"] == variant
        P.check_params(given, P.notebook_defaults(nb), variant)


def test_unknown_key_names_key_file_and_suggestion():
    with pytest.raises(P.ParamError) as err:
        P.check_params({"n_song": 3}, {"n_songs": 10, "seed": 0}, "params/x.yaml")
    msg = str(err.value)
    assert "n_song" in msg and "params/x.yaml" in msg and "n_songs" in msg


def test_wrong_type_is_an_error():
    with pytest.raises(P.ParamError, match="epochs"):
        P.check_params({"epochs": "ten"}, {"epochs": 10}, "cli")
    with pytest.raises(P.ParamError, match="lr"):
        P.check_params({"lr": 0.5}, {"lr": 1}, "cli")  # a float where an int is expected
    assert P.check_params({"lr": 1}, {"lr": 0.1}, "cli")["lr"] == 1  # an int where a float is fine


def test_unknown_config_lists_available(tmp_path):
    with pytest.raises(P.ParamError, match="default"):
        P.load_config("no-such-config")


def test_variant_with_unknown_key_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "params" / "variants").mkdir(parents=True)
    (tmp_path / "params" / "c.yaml").write_text("train:\n  model: cdcml\n  w_cfr: 1.0\n")
    (tmp_path / "params" / "variants" / "v.yaml").write_text("model: cdcml\nw_cfrr: 0.0\n")
    monkeypatch.setenv("CDCML_ROOT", str(tmp_path))
    with pytest.raises(P.ParamError, match="w_cfrr.*w_cfr"):
        P.train_params("c", "v", 0)


def test_reports_dir_rule():
    assert reports_dir("default") == repo_root() / "reports"
    assert reports_dir("smoke") == repo_root() / "reports" / "smoke"


def test_notebook_defaults_rejects_non_literals(tmp_path):
    nb = {"cells": [{"cell_type": "code", "metadata": {"tags": ["parameters"]},
                     "source": "x = 1\ny = len('ab')\n", "outputs": []}]}
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(nb))
    with pytest.raises(P.ParamError, match="'y' is not a literal"):
        P.notebook_defaults(path)


def test_per_seed_splits_send_each_seed_to_its_own_draw():
    from cdcml_lib.workflow.params import draw_seeds, seed_params, train_params
    assert train_params("default", "cdcml", 3)["data_dir"] == "data/default/draws/s3"
    assert train_params("standin", "cdcml", 3)["data_dir"] == P.section("standin", "train")["data_dir"]
    fixed = seed_params({"data_dir": "data/x", "splits": "fixed"}, 2, "runs/x/cdcml-s2")
    assert fixed == {"data_dir": "data/x", "splits": "fixed", "seed": 2, "run_dir": "runs/x/cdcml-s2"}
    assert draw_seeds("default") == list(range(10)) and draw_seeds("standin") == []


def test_decisive_is_the_default_study_with_more_seeds():
    """params/decisive.yaml is based on default.yaml (base: default) and changes only the seeds
    and the folders, so a change to the default study cannot leave it behind."""
    default, decisive = P.load_config("default"), P.load_config("decisive")
    allowed = {("dataset", "out_dir"), ("train", "data_dir"), ("train", "run_dir"), ("study", "seeds")}
    differ = {(sec, key) for sec in P.SECTIONS for key in set(default[sec]) | set(decisive[sec])
              if default[sec].get(key) != decisive[sec].get(key)}
    assert differ == allowed, f"params/decisive.yaml differs from default.yaml in {sorted(differ - allowed)}"
    assert decisive["study"]["seeds"][:10] == default["study"]["seeds"]  # the default's runs are its first 10
    assert len(decisive["study"]["seeds"]) == 60
    assert decisive["dataset"]["out_dir"] == decisive["train"]["data_dir"] == "data/decisive"
