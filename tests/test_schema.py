"""The one declaration of every parameter (cdcml_lib/workflow/schema.py) and what is derived from it:
the notebooks' parameters cells agree with it, configs list only what they change, and Make re-runs
a notebook when any key it reads changes."""
import inspect
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from cdcml_lib.workflow import params as P
from cdcml_lib.workflow import schema
from cdcml_lib.workflow.paths import repo_root

ROOT = repo_root()


@pytest.mark.parametrize("step", sorted(schema.STEPS))
def test_each_notebooks_parameters_cell_is_what_the_schema_says_it_reads(step):
    cell = P.notebook_defaults(ROOT / "notebooks" / f"{step}.ipynb")
    declared = schema.STEPS[step]
    assert set(cell) == declared.parameters(), (
        f"{step}: the cell has {sorted(set(cell) - declared.parameters())} more and "
        f"lacks {sorted(declared.parameters() - set(cell))}")
    for section, key in declared.config_keys():   # the cell's literal is a valid value
        assert schema.BY_SECTION[section][key].rule.problem(key, cell[key]) is None, (step, key)


def test_every_parameter_has_a_type_a_default_that_passes_and_a_doc():
    for p in schema.PARAMS:
        assert p.doc, p.key
        assert p.rule.problem(p.name, p.default) is None, p.key


@pytest.mark.parametrize("config", [c for c in P.available_configs() if c != "default"])
def test_a_config_lists_only_what_it_changes_from_its_base(config):
    raw = yaml.safe_load((ROOT / "params" / f"{config}.yaml").read_text())
    base = raw.pop(P.BASE_KEY)
    inherited = P.load_config(base)
    same = [f"{s}.{k}" for s, values in raw.items() for k, v in values.items() if inherited[s].get(k) == v]
    assert not same, f"params/{config}.yaml repeats its base's values: {same}"


def test_decisive_says_its_four_things():
    raw = yaml.safe_load((ROOT / "params" / "decisive.yaml").read_text())
    assert raw.pop("base") == "default"
    assert {f"{s}.{k}" for s, values in raw.items() for k in values} == {
        "dataset.out_dir", "train.data_dir", "train.run_dir", "study.seeds"}


def test_a_base_that_loops_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "params" / "variants").mkdir(parents=True)
    (tmp_path / "params" / "a.yaml").write_text("base: b\n")
    (tmp_path / "params" / "b.yaml").write_text("base: a\n")
    monkeypatch.setattr(P, "repo_root", lambda: tmp_path)
    with pytest.raises(P.ParamError, match="loop"):
        P.load_config("a")
    assert any("loop" in p for p in P.check_config("a", tmp_path))


def test_the_plateau_keys_are_filled_in_only_under_the_plateau_schedule():
    assert "patience" in P.section("smoke", "train")
    assert "patience" not in P.section("paper", "train")          # schedule: step


def test_the_loss_classes_defaults_are_the_schemas():
    from cdcml_lib.losses import CDCMLLoss

    signature = inspect.signature(CDCMLLoss).parameters
    for name, arg in signature.items():
        if name in schema.BY_SECTION["train"]:
            assert schema.BY_SECTION["train"][name].default == arg.default, name


def test_split_fractions_are_checked_by_one_rule_everywhere():
    from cdcml_lib import matching
    from cdcml_lib.data import dataset as D

    assert matching.split_fractions_problem((0.7, 0.15, 0.15)) is None
    assert "summing to 1" in matching.split_fractions_problem((0.7, 0.3, 0.3))
    problems = schema.problems("dataset", {"split_train": 0.7, "split_val": 0.3, "split_test": 0.3}, "x")
    assert any("summing to 1" in p for p in problems)
    with pytest.raises(ValueError, match="summing to 1"):
        matching.split_by_group(["a", "b", "c"], (0.7, 0.3, 0.3))
    with pytest.raises(D.DatasetError, match="summing to 1"):
        D.check_dataset_params({**P.section("smoke", "dataset"), "split_val": 0.3})


def test_stamps_hold_what_each_notebook_reads(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "params", tmp_path / "params")
    monkeypatch.setattr(P, "repo_root", lambda: tmp_path)
    assert set(P.write_stamps("smoke", tmp_path / ".make")) >= set(schema.STEPS)
    smoke = tmp_path / "params" / "smoke.yaml"
    smoke.write_text(smoke.read_text().replace("train:\n", "train:\n  splits: fixed\n"))
    assert set(P.write_stamps("smoke", tmp_path / ".make")) == {"01_dataset", "02_train", "train"}
    smoke.write_text(smoke.read_text().replace("  compare_seeds: [0]", "  compare_seeds: [0, 3]"))
    assert set(P.write_stamps("smoke", tmp_path / ".make")) == {"01_dataset", "05_acp_net", "acp_net"}


# --- Make, in a scratch copy of the kit ------------------------------------------------------------

SKIP = {".git", ".venv", "data", "runs", ".make", "reports", "__pycache__", ".pytest_cache", "build",
        "benchmarks", "docs", "tests", "cdcml_kit.egg-info"}


def make(copy: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, CDCML_ROOT=str(copy), PYTHONPATH=str(copy))
    done = subprocess.run(["make", "-C", str(copy), "--no-print-directory", *args, "CONFIG=smoke",
                           f"PY={sys.executable}", f"ENV_OK={copy / '.env_ok'}"],
                          env=env, capture_output=True, text=True)
    if check and done.returncode != 0:
        pytest.fail(f"make {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU Make")
def test_flipping_splits_builds_the_draws_and_an_unknown_seed_trains():
    # not pytest's tmp_path: other pytest sessions of this user may rotate its folders away while
    # this one trains, and the kernel would then import another checkout's library
    with tempfile.TemporaryDirectory(prefix="cdcml-kit-") as scratch:
        flip_splits_then_train_seed_7(Path(scratch) / "kit")


def flip_splits_then_train_seed_7(copy: Path) -> None:
    # top-level folders only: cdcml_lib/data must come along (else the kernel finds another checkout's)
    shutil.copytree(ROOT, copy, symlinks=True,
                    ignore=lambda folder, names: {n for n in names if n in SKIP and Path(folder) == ROOT})
    (copy / ".env_ok").touch()
    smoke = copy / "params" / "smoke.yaml"
    per_seed = smoke.read_text()
    smoke.write_text(per_seed.replace("train:\n", "train:\n  splits: fixed\n"))
    make(copy, "data")
    draws = copy / "data" / "smoke" / "draws"
    assert not draws.exists()                        # fixed: no seed draws its own split
    assert make(copy, "-q", "reports/smoke/notebooks/01_dataset.ipynb", check=False).returncode == 0

    time.sleep(1)
    smoke.write_text(per_seed)                       # train.splits: per_seed again
    assert make(copy, "-q", "reports/smoke/notebooks/01_dataset.ipynb", check=False).returncode != 0
    make(copy, "data")
    assert sorted(p.name for p in draws.iterdir()) == ["s0", "s1"]

    make(copy, "train", "MODEL=cdcml", "SEEDS=7")    # a seed outside study.seeds: drawn on demand
    assert (draws / "s7" / "stats.json").is_file()
    assert (copy / "runs" / "smoke" / "cdcml-s7" / "metrics.json").is_file()


def test_edge_facts_have_one_home():
    """The feature height is the method's (nets); the extractor's blocks fill exactly that."""
    from cdcml_lib import matching, nets
    from cdcml_lib.data import corpora, dataset, features, imac
    from cdcml_lib.workflow.paths import parse_run_name, run_name

    assert features.N_FEATURES == nets.MUSIC_FEATURE_ROWS
    assert dataset.SPLITS is matching.SPLITS and imac.SPLITS is matching.SPLITS
    assert dataset.ITEM_COLUMNS[:-1] == corpora.ITEM_COLUMNS
    assert parse_run_name(run_name("sim_cfr", 12)) == ("sim_cfr", 12)
