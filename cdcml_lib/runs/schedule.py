"""How long a run trains and how its learning rate moves (docs/METHOD.md, section "Training
settings and model selection").

Two schedules, chosen by the train key ``schedule``:

- ``step`` (the paper's, section 6.1.3): ``epochs`` epochs, the learning rate multiplied by
  ``lr_gamma`` every ``lr_step`` epochs;
- ``plateau`` (the kit's convergence rule): train until the validation curve has flattened.
  An epoch *improves* when its validation ``sim_mse`` is below the best so far by more than
  ``min_delta`` of it (relative). After ``patience`` epochs in a row without improving, the
  learning rate is multiplied by ``lr_gamma``, at most ``lr_drops`` times; once it has dropped
  ``lr_drops`` times, ``final_patience`` epochs without improving end the run ("flattened": at
  the lowest rate the curve moves smoothly, so one flat epoch says it has settled).
  ``epochs`` is a cap: a run that reaches it before flattening ends there and says so ("cap"),
  and the report flags it.

Both keep their whole state in :meth:`state_dict`, so a resumed run continues the same rule.
"""
from __future__ import annotations

import math

import torch

SCHEDULES = ("step", "plateau")
#: How a run ended: the fixed number of epochs of ``step``, the flattened curve of ``plateau``,
#: or the cap of ``plateau`` reached while the curve was still improving.
ENDS = ("epochs", "flattened", "cap")


class StepSchedule:
    """The paper's step decay over a fixed number of epochs."""

    name = "step"

    def __init__(self, optimiser, params: dict):
        self.lr = torch.optim.lr_scheduler.StepLR(optimiser, step_size=int(params["lr_step"]),
                                                  gamma=float(params["lr_gamma"]))
        self.stopped = False

    def after_epoch(self, val_sim_mse: float) -> str:
        """Decay on the step; the run never ends early. Returns what happened."""
        self.lr.step()
        return "step"

    def end(self) -> str:
        return "epochs"

    def state_dict(self) -> dict:
        return {"name": self.name, "lr": self.lr.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.lr.load_state_dict(state["lr"])


class PlateauSchedule:
    """Lower the learning rate when validation sim_mse stops improving; stop at the next plateau."""

    name = "plateau"

    def __init__(self, optimiser, params: dict):
        self.optimiser = optimiser
        self.patience = int(params["patience"])
        self.min_delta = float(params["min_delta"])
        self.lr_drops = int(params["lr_drops"])
        self.final_patience = int(params.get("final_patience", params["patience"]))
        self.gamma = float(params["lr_gamma"])
        self.best, self.wait, self.drops, self.stopped = math.inf, 0, 0, False

    def improves(self, value: float) -> bool:
        # NaN (a diverged epoch) never improves
        return value < self.best * (1.0 - self.min_delta)

    def after_epoch(self, val_sim_mse: float) -> str:
        """Update the rule with one epoch's validation sim_mse; returns ``improved``, ``waiting``,
        ``lr_drop`` or ``stop`` (then :attr:`stopped` is True)."""
        if self.improves(val_sim_mse):
            self.best, self.wait = float(val_sim_mse), 0
            return "improved"
        self.wait += 1
        if self.wait < (self.patience if self.drops < self.lr_drops else self.final_patience):
            return "waiting"
        if self.drops < self.lr_drops:
            for group in self.optimiser.param_groups:
                group["lr"] *= self.gamma
            self.drops, self.wait = self.drops + 1, 0
            return "lr_drop"
        self.stopped = True
        return "stop"

    def end(self) -> str:
        return "flattened" if self.stopped else "cap"

    def state_dict(self) -> dict:
        return {"name": self.name, "best": self.best, "wait": self.wait, "drops": self.drops,
                "stopped": self.stopped}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.wait = float(state["best"]), int(state["wait"])
        self.drops, self.stopped = int(state["drops"]), bool(state["stopped"])


def check_schedule_params(params: dict) -> None:
    """A clear error for a schedule the run cannot follow, before anything is trained."""
    name = params.get("schedule", "step")
    if name not in SCHEDULES:
        raise ValueError(f"train.schedule is {name!r}; use one of {SCHEDULES} "
                         f"(params/<config>.yaml, train section)")
    if name == "plateau":
        missing = [k for k in ("patience", "min_delta", "lr_drops") if k not in params]
        if missing:
            raise KeyError(f"train.schedule: plateau needs {missing}; see params/default.yaml")
        if int(params["patience"]) < 1 or int(params.get("final_patience", 1)) < 1 \
                or not 0 <= float(params["min_delta"]) < 1 or int(params["lr_drops"]) < 0:
            raise ValueError(f"train: patience >= 1, 0 <= min_delta < 1 and lr_drops >= 0 are needed; "
                             f"got patience {params['patience']}, min_delta {params['min_delta']}, "
                             f"lr_drops {params['lr_drops']}")


def build_schedule(optimiser, params: dict):
    """The run's schedule object (:class:`StepSchedule` or :class:`PlateauSchedule`)."""
    check_schedule_params(params)
    return PlateauSchedule(optimiser, params) if params.get("schedule", "step") == "plateau" \
        else StepSchedule(optimiser, params)
