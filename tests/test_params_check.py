"""check_config: every parameter of a configuration and of every variant file, checked before any
step runs, with every problem listed in one message (file, key, fix)."""
import shutil
import subprocess
import sys

import pytest

from cdcml_lib.workflow import params as P
from cdcml_lib.workflow.paths import repo_root


@pytest.fixture
def root(tmp_path):
    """A copy of the repository's params/ and notebooks' parameter cells to break."""
    shutil.copytree(repo_root() / "params", tmp_path / "params")
    (tmp_path / "notebooks").mkdir()
    for nb in ("01_dataset", "02_train", "04_embeddings", "05_acp_net"):
        shutil.copy(repo_root() / "notebooks" / f"{nb}.ipynb", tmp_path / "notebooks")
    return tmp_path


def edit(path, section=None, **values):
    """Set keys of a config file (a key it does not list yet is added under ``section``)."""
    lines = path.read_text().splitlines()
    for key, value in values.items():
        hits = [i for i, line in enumerate(lines) if line.startswith(f"  {key}:") or line.startswith(f"{key}:")]
        if not hits and section == "":   # a variant file: top-level keys
            lines.append(f"{key}: {value}")
            continue
        if not hits:
            assert section, key
            if f"{section}:" not in lines:
                lines.append(f"{section}:")
            lines.insert(lines.index(f"{section}:") + 1, f"  {key}: {value}")
            continue
        indent = lines[hits[0]][: len(lines[hits[0]]) - len(lines[hits[0]].lstrip())]
        lines[hits[0]] = f"{indent}{key}: {value}"
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("config", ["smoke", "default", "paper", "imemnet"])
def test_the_shipped_configurations_pass(config):
    assert P.check_config(config) == []


def test_five_mistakes_at_once_are_listed_in_one_message(root):
    edit(root / "params" / "smoke.yaml", epochs='"six"', lr="1e-3", batch_size=0, device="gpu")
    edit(root / "params" / "variants" / "sim.yaml", "", epochs=-1)
    with pytest.raises(P.ParamError) as err:
        P.require_valid_config("smoke", root)
    message = str(err.value)
    assert "5 problem(s); nothing was run" in message
    expected = [
        "params/smoke.yaml, train.epochs: 'six' is text, not a whole number. Fix: write epochs: a whole number",
        "params/smoke.yaml, train.lr: '1e-3' is read by YAML as text",
        "Fix: write lr: 1.0e-3",
        "params/smoke.yaml, train.batch_size: 0 is out of range: batch_size must be >= 1",
        "params/smoke.yaml, train.device: 'gpu' is out of range: device must be one of cpu, cuda, cuda:N",
        "params/variants/sim.yaml, train.epochs: -1 is out of range: epochs must be >= 1",
    ]
    for part in expected:
        assert part in message, part


def test_unknown_variants_keys_and_bad_splits_are_named(root):
    edit(root / "params" / "smoke.yaml", "study", ablation="[sim, sim_cfrr]")
    edit(root / "params" / "smoke.yaml", split_test=0.3)
    text = (root / "params" / "smoke.yaml").read_text().replace("  n_neighbors: 5", "  n_neighbours: 5")
    (root / "params" / "smoke.yaml").write_text(text)
    problems = P.check_config("smoke", root)
    assert any("study.ablation: unknown variant 'sim_cfrr'" in p and "write sim_cfr" in p for p in problems)
    assert any("split_train + split_val + split_test = 1.1" in p for p in problems)
    assert any("embeddings.n_neighbours: unknown key. Fix: did you mean 'n_neighbors'" in p
               for p in problems)


def test_devices_accepted_and_refused():
    rule = P.SCHEMA["train"]["device"]
    for ok in ("cpu", "cuda", "cuda:1", "auto"):
        assert rule.problem("device", ok) is None
    for bad in ("gpu", "cuda:", "cuda:x", "mps"):
        assert rule.problem("device", bad)


def test_the_model_names_are_those_of_nets():
    from cdcml_lib import losses, nets

    assert P.MODELS == nets.MODELS
    assert set(P.LABEL_DISTANCES) == set(losses.LABEL_DISTANCES)


def test_the_command_exits_non_zero_and_lists_the_problems(root):
    edit(root / "params" / "smoke.yaml", batch_size=0)
    ok = subprocess.run([sys.executable, "-m", "cdcml_lib.workflow.params", "check", "smoke"],
                        capture_output=True, text=True, cwd=repo_root())
    assert ok.returncode == 0, ok.stderr
    code = ("import sys; from cdcml_lib.workflow import params as P;"
            f"P.repo_root = lambda: __import__('pathlib').Path({str(root)!r});"
            "sys.exit(P._main(['check', 'smoke']))")
    bad = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "train.batch_size: 0 is out of range" in bad.stderr


def test_exit_contract_of_the_parameter_check_and_its_help(capsys):
    assert P._main(["check", "smoke"]) == 0
    for command in (["check", "no_such_config"], ["study-runs", "no_such_config"]):
        assert P._main(command) == 2
        assert "no_such_config.yaml" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        P._main(["no-such-command"])
    assert usage.value.code == 2
    with pytest.raises(SystemExit):
        P._main(["--help"])
    assert "2  usage or configuration error" in capsys.readouterr().out
