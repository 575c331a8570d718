"""The schedules of cdcml_lib.runs.schedule: the plateau rule step by step, its state across a
resume, and a plateau run that resumes to the same numbers."""
import math

import pytest
import torch

from cdcml_lib.runs.schedule import PlateauSchedule, StepSchedule, build_schedule, check_schedule_params
from cdcml_lib.runs.train import train_run

from test_train import run_params

PLATEAU = {"schedule": "plateau", "patience": 2, "min_delta": 0.01, "lr_drops": 1, "lr_gamma": 0.1,
           "lr_step": 4}


def optimiser(lr=1.0):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def test_plateau_drops_the_lr_at_the_first_plateau_and_stops_at_the_second():
    opt = optimiser()
    rule = PlateauSchedule(opt, PLATEAU)
    events = [rule.after_epoch(v) for v in (1.0, 0.9, 0.895, 0.899, 0.8, 0.81, 0.805)]
    # 0.895 is within 1% of 0.9: not an improvement
    assert events == ["improved", "improved", "waiting", "lr_drop", "improved", "waiting", "stop"]
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    assert rule.stopped and rule.end() == "flattened"


def test_plateau_without_a_plateau_ends_at_the_cap_and_nan_never_improves():
    rule = PlateauSchedule(optimiser(), PLATEAU)
    for v in (1.0, 0.5, 0.25):
        assert rule.after_epoch(v) == "improved"
    assert not rule.stopped and rule.end() == "cap"
    assert rule.after_epoch(math.nan) == "waiting"


def test_plateau_state_survives_a_resume():
    values = (1.0, 0.9, 0.95, 0.97, 0.96, 0.99)
    whole = PlateauSchedule(optimiser(), PLATEAU)
    expected = [whole.after_epoch(v) for v in values]
    first = PlateauSchedule(optimiser(), PLATEAU)
    got = [first.after_epoch(v) for v in values[:3]]
    second = PlateauSchedule(optimiser(), PLATEAU)
    second.load_state_dict(first.state_dict())
    got += [second.after_epoch(v) for v in values[3:]]
    assert got == expected


def test_step_schedule_decays_every_lr_step_epochs_and_never_stops():
    opt = optimiser()
    rule = build_schedule(opt, {"lr_step": 2, "lr_gamma": 0.5})
    assert isinstance(rule, StepSchedule)
    for _ in range(4):
        rule.after_epoch(0.0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.25) and not rule.stopped and rule.end() == "epochs"


def test_bad_schedule_parameters_are_clear_errors():
    with pytest.raises(ValueError, match="train.schedule is 'cosine'"):
        check_schedule_params({"schedule": "cosine"})
    with pytest.raises(KeyError, match="patience"):
        check_schedule_params({"schedule": "plateau", "min_delta": 0.01, "lr_drops": 1})
    with pytest.raises(ValueError, match="patience >= 1"):
        check_schedule_params({**PLATEAU, "patience": 0})


def test_a_plateau_run_records_how_it_ended_and_resumes_to_the_same_numbers(smoke_data, tmp_path):
    over = {"schedule": "plateau", "patience": 1, "min_delta": 0.5, "lr_drops": 0, "epochs": 6}
    whole = train_run(run_params(smoke_data, tmp_path / "whole", **over), progress=False)
    # min_delta 0.5 asks for halving val sim_mse each epoch: the rule ends the run before the cap
    assert whole["ended"] == "flattened" and whole["epochs_trained"] < 6
    params = run_params(smoke_data, tmp_path / "resumed", **over)
    assert train_run(params, stop_after_epochs=1, progress=False) is None
    assert train_run(params, progress=False) == whole


def test_after_the_last_drop_final_patience_flat_epochs_end_the_run():
    rule = PlateauSchedule(optimiser(), {**PLATEAU, "final_patience": 1})
    events = [rule.after_epoch(v) for v in (1.0, 1.0, 1.0, 0.5, 0.6)]
    assert events == ["improved", "waiting", "lr_drop", "improved", "stop"]
