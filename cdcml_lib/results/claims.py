"""The claims checklist: the claims of Zhao et al. 2020 (docs/METHOD.md, section "The paper's claims
and Figure 3"), each judged on our own numbers by one stated rule.

The decision rule (one rule for every claim):

- A claim is read as *checks* (:data:`READINGS`, data the 03_tables notebook shows before judging).
  A direction check says "variant A beats variant B on metric m". Variants are compared **paired
  by seed**: seed s of every variant trains on the same split and pair lists, so the per-seed
  difference d_s = (B_s - A_s) for an error metric (A_s - B_s for a retrieval metric; positive
  always favours the claim) removes what the seeds share. Its estimate is the mean of d_s and its
  interval the two-sided ``confidence`` t-interval, mean +- t(n-1) * sd(d) / sqrt(n).
- A direction check shows *no difference* when its interval lies inside the equivalence margin
  +-``equivalence`` x the mean of B (a relative margin, stated in claims.md: a difference that
  small does not matter, however sure it is); otherwise it *supports* the claim when the interval
  lies above 0, *contradicts* it when it lies below 0, and is *undecided* when it holds 0. With
  fewer than ``min_seeds`` paired seeds it is undecided.
- A magnitude check (a relative gain the paper prints, g = 1 - A/B per seed) has the same
  t-interval, widened by half the paper's rounding step (0.05%): it *supports* when the interval
  holds the paper's gain and excludes 0, *contradicts* when it excludes the paper's gain, and is
  *undecided* when it holds both. Claims about direction and about magnitude are separate
  readings (claim 8 is read twice: 8a direction, 8b magnitude).
- A claim *holds* when every check supports it, *does not hold* when at least one contradicts it,
  shows *no difference* when every check that does not support it shows no difference, and is
  *not decided* otherwise. A claim whose variants are not in the study is *not checked*.
- The claim's verdict judges "does not hold" with each contradicting check's interval widened for
  the claim's number of checks k (Bonferroni, confidence 1 - (1 - confidence) / k,
  :func:`corrected_checks`); ``Claim.uncorrected`` keeps the rule's own verdict beside it.
- A check that compares two variants neither of which is shown to beat always guessing the
  training mean on its metric (``results.guessing``) is *not testable* on this benchmark: shown,
  left out of the verdict, and counted apart; a claim with no testable check is
  :data:`NOT_TESTABLE`.
- A check whose interval edge lies within ``boundary`` (10%) of its half-width from 0 is *on the
  boundary*; a verdict that rests on such a check is *fragile* (:data:`ON_BOUNDARY`: "may differ on
  another machine"), since another machine's round-off may tip it.
- Each claim gets a one-line ``why``: which way and by how much ours differs from the paper, or why
  nothing is decided, and where the benchmark's construction decides a check (SP-Net and Eq. 1).

Each check also carries the paper's own estimate (from its Tables 3 and 4), so a reader sees at
once whether our reading of a claim agrees with the paper's numbers.

An undecided check also carries a projection, :func:`seeds_to_decide`: how many paired seeds its
interval would need to exclude 0 (or to fit inside the equivalence margin) if the mean and the
spread of its per-seed differences stayed as measured. A claim not decided is projected at the
largest of its checks'. It is arithmetic on one study's spread, not a measurement, and it moves a
lot between machines, so the pages show it only as a range (:func:`projection_range`).

:func:`verdicts_by_seeds` is the measurement: every claim judged again on the study's first 10, 20,
... seeds, so a study with many seeds shows how many it took to decide each claim.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from cdcml_lib.data.evidence import markdown_box
from cdcml_lib.workflow.paths import atomic_write_text, resolve
from cdcml_lib.results.tables import HIGHER_IS_BETTER, METRICS, PAPER_METRICS, paper_numbers

HOLDS = "holds"
FAILS = "does not hold"
NO_DIFFERENCE = "no difference"
UNDECIDED = "not decided"
NOT_CHECKED = "not checked"
#: a verdict that rests on a check within 10% of its interval's half-width from 0: round-off on
#: another CPU can tip it (it did, for claim 1 of the default study, between two machines)
ON_BOUNDARY = " (fragile: may differ on another machine)"
#: the same label as claims.json files and references written before 2026-12-08 spell it
LEGACY_BOUNDARY = ", on the boundary"
#: a claim all of whose checks compare two variants that do not beat guessing on the check's metric
NOT_TESTABLE = "not testable on this benchmark"

SUPPORTS, CONTRADICTS, EQUIVALENT, NO_DECISION = "supports", "contradicts", "no difference", "undecided"
#: a check comparing two variants neither of which beats guessing on its metric (two guesses)
UNTESTABLE = "not testable"

SIM = ["sim_mse", "sim_mae"]
IMG_VA = ["img_v_mse", "img_v_mae", "img_a_mse", "img_a_mae"]
MUS_VA = ["mus_v_mse", "mus_v_mae", "mus_a_mse", "mus_a_mae"]
VA = IMG_VA + MUS_VA

# The paper's relative gains of CDCML over ACP-Net (claim 8) and of CFR over Sim (claim 4).
PAPER_GAIN_CDCML_OVER_ACP = {"sim_mse": 0.221, "sim_mae": 0.054}
PAPER_GAIN_CFR_SIM_MSE = 0.108
PAPER_GAIN_ROUNDING = 0.0005  # half of the 0.1% step the paper prints its gains with


@dataclass
class Check:
    """One comparison behind a claim; ``estimate > 0`` always favours the claim.

    ``low``/``high``: the confidence interval of the estimate (paired by seed); ``margin``: the
    equivalence margin of a direction check (0 for a magnitude check).
    """

    metric: str
    what: str
    estimate: float
    se: float
    paper_estimate: float
    outcome: str
    numbers: dict = field(default_factory=dict)
    low: float = float("nan")
    high: float = float("nan")
    margin: float = 0.0
    boundary: bool = False
    seeds_to_decide: int | None = None   # undecided checks only: :func:`seeds_to_decide`
    uncorrected_outcome: str | None = None   # set where the corrected interval replaced the rule's


@dataclass
class Claim:
    number: int
    part: str
    claim: str
    reading: str
    verdict: str
    reason: str
    per_metric: dict = field(default_factory=dict)
    checks: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    summary: str = ""  # one line for REPORT.md: how the checks came out
    seeds_to_decide: int | None = None   # not decided: the largest of its undecided checks'
    uncorrected: str = ""   # the verdict of the rule without the correction for the number of checks
    why: str = ""           # one line: the direction and size behind the verdict, or what decides it
    fragile: bool = False   # the verdict rests on a check on its boundary (:data:`ON_BOUNDARY`)


@dataclass
class Rule:
    """The decision rule (see the module docstring)."""

    confidence: float = 0.95
    equivalence: float = 0.01
    min_seeds: int = 2
    boundary: float = 0.1

    def text(self) -> str:
        return (f"variants paired by seed; a difference counts when its {self.confidence:.0%} "
                f"t-interval excludes 0, and is 'no difference' when the interval lies within "
                f"+-{self.equivalence:.0%} of the compared variant's mean; at least {self.min_seeds} "
                f"paired seeds; a check whose interval edge is within {self.boundary:.0%} of its "
                f"half-width from 0 is 'on the boundary', and a verdict resting on it is fragile")


# --- the statistics of one check ---------------------------------------------------------

Samples = dict  # (variant, metric) -> pd.Series of per-seed values, indexed by seed


def samples_of(per_seed: pd.DataFrame | Samples) -> Samples:
    """Per-seed values by (variant, metric), from ``tables.gather_runs``'s table (read once)."""
    if isinstance(per_seed, dict):
        return per_seed
    out = {}
    for variant, group in per_seed.groupby("variant", sort=False):
        group = group.set_index("seed")
        for m in METRICS:
            if m in group:
                out[(variant, m)] = group[m].astype(float)
    return out


def paired(samples: Samples, a: str, b: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """The values of ``a`` and ``b`` on the seeds both have, in seed order."""
    sa, sb = samples[(a, metric)], samples[(b, metric)]
    seeds = sorted(set(sa.index) & set(sb.index))
    return sa.loc[seeds].to_numpy(dtype=float), sb.loc[seeds].to_numpy(dtype=float)


def t_interval(values: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """Mean, standard error and half-width of the two-sided t-interval (NaN below two values)."""
    n = len(values)
    mean = float(values.mean()) if n else float("nan")
    if n < 2:
        return mean, float("nan"), float("nan")
    se = float(values.std(ddof=1)) / math.sqrt(n)
    return mean, se, float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * se


#: projections beyond this many seeds are reported as "more than" it
MAX_PROJECTED_SEEDS = 1000


def seeds_to_decide(estimate: float, se: float, n: int, margin: float, confidence: float) -> int | None:
    """The smallest number of paired seeds n' at which the t-interval estimate +- t(n'-1) sd/sqrt(n')
    would exclude 0 or lie inside +-``margin``, with the mean and sd of the differences as measured
    on ``n`` seeds; ``MAX_PROJECTED_SEEDS + 1`` when none up to that does, None without a spread."""
    if n < 2 or not (se > 0) or math.isnan(estimate):
        return None
    sd = se * math.sqrt(n)
    for m in range(max(n, 2), MAX_PROJECTED_SEEDS + 1):
        half = float(stats.t.ppf(0.5 + confidence / 2, m - 1)) * sd / math.sqrt(m)
        if half < abs(estimate) or abs(estimate) + half <= (margin or 0.0):
            return m
    return MAX_PROJECTED_SEEDS + 1


def _on_boundary(estimate: float, half: float, rule: Rule) -> bool:
    """The interval's edge nearest 0 lies within ``rule.boundary`` of its half-width from 0."""
    return half > 0 and abs(abs(estimate) - half) <= rule.boundary * half


@lru_cache(maxsize=None)
def _paper_value(variant: str, metric: str) -> float:
    for table in ("comparison", "ablation"):
        value = paper_numbers(table, variant).get(metric)
        if value is not None:
            return value
    return float("nan")


def interval_outcome(low: float, high: float, margin: float | None = None) -> str:
    """A direction check's outcome from the interval of its estimate (positive favours the claim):
    no difference when it lies inside +-``margin`` (checked first: a difference that small does not
    matter, however sure it is), supports above 0, contradicts below 0, else undecided."""
    if math.isnan(low) or math.isnan(high):
        return NO_DECISION
    if margin is not None and -margin <= low and high <= margin:
        return EQUIVALENT
    if low > 0:
        return SUPPORTS
    if high < 0:
        return CONTRADICTS
    return NO_DECISION


def improvement_check(per_seed: pd.DataFrame | Samples, better: str, worse: str, metric: str,
                      rule: Rule) -> Check:
    """Direction check "``better`` beats ``worse`` on ``metric``", paired by seed."""
    b, w = paired(samples_of(per_seed), better, worse, metric)
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    estimate, se, half = t_interval(sign * (b - w), rule.confidence)
    margin = rule.equivalence * abs(float(w.mean())) if len(w) else float("nan")
    paper = sign * (_paper_value(better, metric) - _paper_value(worse, metric))
    low, high = estimate - half, estimate + half
    outcome = NO_DECISION if len(b) < rule.min_seeds else interval_outcome(low, high, margin)
    boundary = outcome in (SUPPORTS, CONTRADICTS, NO_DECISION) and _on_boundary(estimate, half, rule)
    needed = seeds_to_decide(estimate, se, len(b), margin, rule.confidence) if outcome == NO_DECISION else None
    return Check(metric=metric, what=f"{better} better than {worse}", estimate=estimate, se=se,
                 paper_estimate=paper, outcome=outcome,
                 numbers={better: float(b.mean()) if len(b) else float("nan"),
                          worse: float(w.mean()) if len(w) else float("nan"), "n_paired": len(b)},
                 low=low, high=high, margin=margin, boundary=boundary, seeds_to_decide=needed)


def relative_gain_check(per_seed: pd.DataFrame | Samples, new: str, old: str, metric: str,
                        paper_gain: float, rule: Rule) -> Check:
    """Magnitude check "``new`` improves ``metric`` over ``old`` by ``paper_gain`` (relative)".

    Per seed g_s = 1 - new_s / old_s (an error metric), paired; the t-interval of the mean gain
    is widened by half the 0.1% step the paper prints its gains with.
    """
    n_, o_ = paired(samples_of(per_seed), new, old, metric)
    gain, se, half = t_interval(1.0 - n_ / o_, rule.confidence)
    boundary = False
    if len(n_) < rule.min_seeds or math.isnan(half):
        outcome, low, high = NO_DECISION, float("nan"), float("nan")
    else:
        half += PAPER_GAIN_ROUNDING
        low, high = gain - half, gain + half
        # the edge that decides against 0, as for a direction check
        boundary = _on_boundary(gain, half, rule)
        paper_inside = low <= paper_gain <= high
        zero_inside = low <= 0.0 <= high
        outcome = CONTRADICTS if not paper_inside else (NO_DECISION if zero_inside else SUPPORTS)
    # undecided: the interval holds both 0 and the paper's gain; it decides once it excludes 0
    needed = seeds_to_decide(gain, se, len(n_), 0.0, rule.confidence) if outcome == NO_DECISION else None
    return Check(metric=metric, what=f"relative gain of {new} over {old} (paper {paper_gain:.1%})",
                 estimate=gain, se=se, paper_estimate=paper_gain, outcome=outcome,
                 numbers={new: float(n_.mean()) if len(n_) else float("nan"),
                          old: float(o_.mean()) if len(o_) else float("nan"), "n_paired": len(n_)},
                 low=low, high=high, boundary=boundary, seeds_to_decide=needed)


# --- from checks to a verdict -------------------------------------------------------------

def verdict_of(outcomes: list[str]) -> str:
    """Holds when all checks support, does not hold when any contradicts, no difference when
    every check that does not support shows no difference, else not decided. Checks that are not
    testable (two guesses) are left out; with none left the claim is :data:`NOT_TESTABLE`."""
    testable = [o for o in outcomes if o != UNTESTABLE]
    if outcomes and not testable:
        return NOT_TESTABLE
    outcomes = testable
    if any(o == CONTRADICTS for o in outcomes):
        return FAILS
    if outcomes and all(o == SUPPORTS for o in outcomes):
        return HOLDS
    if outcomes and all(o in (SUPPORTS, EQUIVALENT) for o in outcomes):
        return NO_DIFFERENCE
    return UNDECIDED


def _with_boundary(verdict: str, checks: list[Check]) -> str:
    """``verdict, on the boundary`` when a check that decides it sits on its boundary: a supporting
    check of a claim that holds, a contradicting one of a claim that does not, an undecided one of
    a claim not decided (its interval's edge almost reaches past 0)."""
    deciding = {HOLDS: SUPPORTS, FAILS: CONTRADICTS, UNDECIDED: NO_DECISION}.get(verdict)
    if deciding and any(c.boundary and c.outcome == deciding for c in checks):
        return verdict + ON_BOUNDARY
    return verdict


def _per_metric(checks: list[Check]) -> dict[str, str]:
    metrics = list(dict.fromkeys(c.metric for c in checks))
    return {m: verdict_of([c.outcome for c in checks if c.metric == m]) for m in metrics}


def _describe(check: Check) -> str:
    ci = "no interval" if math.isnan(check.low) else f"interval {check.low:+.4f} to {check.high:+.4f}"
    return (f"{check.metric}: claimed {check.what}; advantage ours {check.estimate:+.4f} ({ci}), "
            f"paper {check.paper_estimate:+.4f}")


def _reason(checks: list[Check], verdict: str, rule: Rule) -> str:
    n = len(checks)
    against = [c for c in checks if c.outcome == CONTRADICTS]
    same = [c for c in checks if c.outcome == EQUIVALENT]
    open_ = [c for c in checks if c.outcome == NO_DECISION]
    level = f"{rule.confidence:.0%} interval"
    if verdict == HOLDS:
        return f"All {n} checks favour the claim: each {level} lies above 0."
    if verdict == FAILS:
        text = (f"The reproduction disagrees with the paper: {len(against)} of {n} checks go against "
                f"the claim (their {level} lies below 0): " + "; ".join(_describe(c) for c in against) + ".")
        if open_ or same:
            text += f" {len(open_)} more undecided, {len(same)} with no difference."
        return text
    if verdict == NO_DIFFERENCE:
        return (f"{len(same)} of {n} checks show no difference (the {level} lies within "
                f"+-{rule.equivalence:.0%} of the compared variant's mean), the rest favour the claim: "
                + "; ".join(_describe(c) for c in same[:6]) + ("; ..." if len(same) > 6 else "") + ".")
    few = [c for c in open_ if c.numbers.get("n_paired", 0) < rule.min_seeds]
    return (f"{len(open_)} of {n} checks are undecided (their {level} holds 0 and reaches beyond the "
            f"equivalence margin)" + (f", {len(few)} with fewer than {rule.min_seeds} paired seeds" if few else "")
            + f"; {n - len(open_)} decided. Undecided: "
            + "; ".join(_describe(c) for c in open_[:6]) + ("; ..." if len(open_) > 6 else "") + ".")


def _summary(reading: "ClaimReading", checks: list[Check], extra: dict) -> str:
    """A one-line account of the checks: counts, and the metrics that went against the claim."""
    if reading.judged_on_gains:
        return "; ".join(f"{c.metric} gain: ours {c.estimate:.1%}"
                         + ("" if math.isnan(c.se) else f" (SE {c.se:.1%})")
                         + f", paper {c.paper_estimate:.1%}" for c in checks)
    count = {o: sum(c.outcome == o for c in checks) for o in (SUPPORTS, CONTRADICTS, EQUIVALENT, NO_DECISION)}
    text = (f"{len(checks)} checks: {count[SUPPORTS]} for, {count[CONTRADICTS]} against, "
            f"{count[EQUIVALENT]} no difference, {count[NO_DECISION]} undecided")
    # Name the claimed direction and say that ours is the reverse, so a reader cannot take
    # "sim_va better than sim" for what we found.
    against = [f"{c.metric} (claimed {c.what}; ours the reverse)" for c in checks if c.outcome == CONTRADICTS]
    if against:
        text += ". Against: " + ", ".join(against)
    for key, g in extra.items():
        text += f". {key.removesuffix('_relative_gain')} gain: ours {g['ours']:.1%}, paper {g['paper']:.1%}"
    return text + "."


def _reason_gains(checks: list[Check], verdict: str, rule: Rule) -> str:
    """A magnitude claim's reason: each relative gain's interval against the paper's gain and 0."""
    parts = []
    for c in checks:
        if math.isnan(c.low):
            parts.append(f"{c.metric}: ours {c.estimate:.1%} (fewer than {rule.min_seeds} paired seeds: "
                         f"no interval), paper {c.paper_estimate:.1%}")
            continue
        where = {SUPPORTS: "holds the paper's value and excludes 0",
                 NO_DECISION: "holds both the paper's value and 0",
                 CONTRADICTS: "excludes the paper's value: our gain is "
                              + ("smaller" if c.estimate < c.paper_estimate else "larger")}[c.outcome]
        parts.append(f"{c.metric}: ours {c.estimate:.1%} ({c.low:.1%} to {c.high:.1%}), paper "
                     f"{c.paper_estimate:.1%}; the interval {where}")
    lead = {HOLDS: "The gains agree with the paper's.",
            FAILS: "The reproduction disagrees with the paper's magnitude.",
            UNDECIDED: "The seed spread is too wide to tell."}.get(verdict, "")
    return lead + " " + "; ".join(parts) + "."


# --- the eight claims, as data -----------------------------------------------------------

@dataclass(frozen=True)
class ClaimReading:
    """How one claim of the paper is read, as data: which comparisons decide it.

    ``beats``: ``(better, worse, metrics)`` triples, "``better`` beats ``worse`` on each metric",
    one check per metric (a claim about direction). ``gains``: ``(new, old, metric, paper_gain)``,
    "``new`` improves ``metric`` over ``old`` by the paper's relative gain", judged by its interval
    (a claim about magnitude). ``reported_gain``: one such gain shown beside the verdict but not
    part of it.
    """

    number: int
    claim: str
    reading: str
    beats: tuple = ()
    gains: tuple = ()
    reported_gain: tuple | None = None
    part: str = ""

    @property
    def id(self) -> str:
        """``1`` ... ``7``, ``8a``, ``8b``: a claim read twice has one id per reading."""
        return f"{self.number}{self.part}"

    @property
    def variants(self) -> list[str]:
        """The variants the study must have trained for this claim to be checked."""
        pairs = [(a, b) for a, b, _ in self.beats] + [(new, old) for new, old, _, _ in self.gains]
        return list(dict.fromkeys(v for pair in pairs for v in pair))

    @property
    def judged_on_gains(self) -> bool:
        return bool(self.gains) and not self.beats


READINGS = (
    ClaimReading(
        1, "CDCML is best on every metric of Table 3.",
        "cdcml beats sp_net, l3_net and acp_net on each of the ten error metrics (our extra "
        "contrastive baseline is shown in the table but is not part of the paper's claim).",
        beats=tuple(("cdcml", b, PAPER_METRICS) for b in ("sp_net", "l3_net", "acp_net"))),
    ClaimReading(
        2, "SP-Net is worst on similarity but better than L3-Net and ACP-Net on single-modal VA.",
        "l3_net, acp_net and cdcml beat sp_net on sim_mse and sim_mae; sp_net beats l3_net and "
        "acp_net on the eight image and music VA metrics.",
        beats=tuple((b, "sp_net", SIM) for b in ("l3_net", "acp_net", "cdcml"))
        + tuple(("sp_net", b, VA) for b in ("l3_net", "acp_net"))),
    ClaimReading(
        3, "ACP-Net beats L3-Net on similarity and music VA; L3-Net beats ACP-Net on image VA.",
        "acp_net beats l3_net on sim_* and mus_*; l3_net beats acp_net on img_*.",
        beats=(("acp_net", "l3_net", SIM + MUS_VA), ("l3_net", "acp_net", IMG_VA))),
    ClaimReading(
        4, "CFR improves similarity MSE (about 10.8% relative) and also improves VA prediction.",
        "sim_cfr beats sim on sim_mse and on the eight VA metrics; the relative sim_mse gain is "
        "reported beside the paper's 10.8% (the verdict rests on the direction).",
        beats=(("sim_cfr", "sim", ["sim_mse"] + VA),),
        reported_gain=("sim_cfr", "sim", "sim_mse", PAPER_GAIN_CFR_SIM_MSE)),
    ClaimReading(
        5, "CFM improves further.",
        "sim_cfr_cfm beats sim_cfr on sim_mse and sim_mae (in the paper's Table 4 CFM changes the "
        "VA metrics by at most 0.004, in both directions, so the claim is read on similarity).",
        beats=(("sim_cfr_cfm", "sim_cfr", SIM),)),
    ClaimReading(
        6, "Sim + VA (both MSE losses) beats either family alone.",
        "sim_va beats sim (the similarity-MSE-only row) on all ten metrics. Table 4 has no VA-only "
        "row, so only the Sim side of the claim can be checked from it.",
        beats=(("sim_va", "sim", PAPER_METRICS),)),
    ClaimReading(
        7, "Adding SFR and the metric losses to Sim + VA gives the best result overall.",
        "cdcml beats every other ablation row (sim, sim_cfr, sim_cfr_cfm, sim_va) on each of the "
        "ten error metrics.",
        beats=tuple(("cdcml", b, PAPER_METRICS) for b in ("sim", "sim_cfr", "sim_cfr_cfm", "sim_va"))),
    ClaimReading(
        8, "CDCML beats ACP-Net on similarity (the direction of the paper's gains).",
        "cdcml beats acp_net on sim_mse and sim_mae.",
        beats=(("cdcml", "acp_net", SIM),), part="a"),
    ClaimReading(
        8, "CDCML's gains over ACP-Net are 22.1% in similarity MSE and 5.4% in similarity MAE.",
        "the relative gain 1 - cdcml / acp_net per seed on sim_mse and sim_mae: its interval must "
        "hold the paper's 22.1% and 5.4% and exclude 0.",
        gains=tuple(("cdcml", "acp_net", m, g) for m, g in PAPER_GAIN_CDCML_OVER_ACP.items()), part="b"),
)
CLAIMS = {r.id: r for r in READINGS}


def readings_table() -> pd.DataFrame:
    """Every check behind every claim, one row each: what the notebook shows before judging."""
    rows = []
    for r in READINGS:
        rows += [{"claim": r.id, "kind": "direction", "check": f"{a} beats {b}", "metrics": ", ".join(ms)}
                 for a, b, ms in r.beats]
        rows += [{"claim": r.id, "kind": "magnitude",
                  "check": f"relative gain of {new} over {old} = paper's {g:.1%}", "metrics": m}
                 for new, old, m, g in r.gains]
        if r.reported_gain:
            new, old, m, g = r.reported_gain
            rows.append({"claim": r.id, "kind": "reported only",
                         "check": f"relative gain of {new} over {old} beside paper's {g:.1%}", "metrics": m})
    return pd.DataFrame(rows)


def reading_checks(reading: ClaimReading, samples: Samples, rule: Rule) -> list[Check]:
    """The checks of one reading, in order: its direction checks, then its magnitude checks."""
    checks = [improvement_check(samples, a, b, m, rule) for a, b, metrics in reading.beats for m in metrics]
    return checks + [relative_gain_check(samples, new, old, m, g, rule) for new, old, m, g in reading.gains]


def not_testable(check: Check, not_learned) -> Check:
    """``check`` marked :data:`UNTESTABLE` when both its variants are no better than guessing on its
    metric (``not_learned``: :func:`compares_guesses`): it compares two guesses, whatever its interval."""
    if not compares_guesses(check, not_learned):
        return check
    return replace(check, outcome=UNTESTABLE, boundary=False, seeds_to_decide=None)


def corrected_checks(reading: ClaimReading, samples: Samples, rule: Rule, checks: list[Check]) -> list[Check]:
    """The checks with each contradicting one judged again at the Bonferroni-corrected confidence
    1 - (1 - confidence) / k for the claim's k testable checks (docs/METHOD.md, section
    "The paper's claims and Figure 3"): a
    contradiction counts only if the wider interval still lies below 0. "Holds" and "no difference"
    need every check, so a false one is already no likelier than one check's error (an
    intersection-union test), and their checks stay as the rule judged them."""
    k = sum(c.outcome != UNTESTABLE for c in checks)
    wide = reading_checks(reading, samples, bonferroni_rule(rule, k))
    return [replace(w, uncorrected_outcome=c.outcome) if c.outcome == CONTRADICTS else c
            for c, w in zip(checks, wide)]


def check_claim(claim_id, per_seed: pd.DataFrame | Samples, rule: Rule | None = None,
                not_learned=frozenset(), construction: dict | None = None) -> Claim:
    """Judge claim ``claim_id`` (1-7, "8a", "8b") on the per-seed test metrics (``tables.gather_runs``).

    The verdict is the rule's with "does not hold" corrected for the claim's number of checks
    (:func:`corrected_checks`); ``uncorrected`` keeps the rule's own. Checks on a metric that
    neither compared variant has learned (``not_learned``: (variant, metric) pairs no better than
    guessing) are not testable and left out. ``construction``: the similarity errors of Eq. 1 on
    the true VA (``results.guessing.oracle_similarity``), named in the one-line ``why`` where the
    benchmark's construction decides a check.
    """
    rule = rule or Rule()
    reading = CLAIMS[str(claim_id)]
    number = reading.number
    samples = samples_of(per_seed)
    have = {v for v, _ in samples}
    missing = [v for v in reading.variants if v not in have]
    if missing:
        return Claim(number, reading.part, reading.claim, reading.reading, NOT_CHECKED,
                     f"the study has no runs of {', '.join(missing)} (add them to study: in params).")
    checks = [not_testable(c, not_learned) for c in reading_checks(reading, samples, rule)]
    extra = {}
    if reading.reported_gain:
        new, old, m, g = reading.reported_gain
        gain = relative_gain_check(samples, new, old, m, g, rule)
        extra[f"{m}_relative_gain"] = {"ours": gain.estimate, "se": gain.se, "paper": g,
                                       "compatible_with_paper": gain.outcome != CONTRADICTS}
    plain = verdict_of([c.outcome for c in checks])
    uncorrected = _with_boundary(plain, checks)
    if plain == FAILS:
        checks = corrected_checks(reading, samples, rule, checks)
    reason_verdict = verdict_of([c.outcome for c in checks])
    verdict = _with_boundary(reason_verdict, checks)
    judged = [c for c in checks if c.outcome != UNTESTABLE]
    if reason_verdict == NOT_TESTABLE:
        reason = (f"All {len(checks)} checks compare two variants that are not shown to beat always "
                  "answering the training mean on the check's metric: there is nothing to judge.")
    elif reading.judged_on_gains:
        reason = _reason_gains(judged, reason_verdict, rule)
    else:
        reason = _reason(judged, reason_verdict, rule)
    if uncorrected != verdict:
        undone = [c for c in checks if c.uncorrected_outcome == CONTRADICTS and c.outcome != CONTRADICTS]
        reason += (f" Without the correction for its {len(judged)} checks the rule says '{uncorrected}': "
                   f"{len(undone)} check{'s' if len(undone) != 1 else ''} lie below 0 at "
                   f"{rule.confidence:.0%} but not at {bonferroni_rule(rule, len(judged)).confidence:.2%}.")
    if len(judged) < len(checks):
        reason += (f" {len(checks) - len(judged)} more check{'s are' if len(checks) - len(judged) != 1 else ' is'} "
                   "not testable: both variants are no better than guessing on the metric.")
    for key, g in extra.items():
        reason += f" Relative {key.removesuffix('_relative_gain')} gain: ours {g['ours']:.1%}, paper {g['paper']:.1%}."
    needed = None
    if reason_verdict == UNDECIDED:
        projected = [c.seeds_to_decide for c in checks if c.outcome == NO_DECISION]
        needed = None if None in projected or not projected else max(projected)
        if needed is not None:
            reason += " " + _projection_words(needed, checks)
    why = _why(reading, reason_verdict, checks, extra, construction, needed)
    return Claim(number, reading.part, reading.claim, reading.reading, verdict, reason, _per_metric(checks),
                 checks, extra, _summary(reading, checks, extra), needed, uncorrected, why,
                 verdict != reason_verdict)


def projection_range(needed: int) -> str:
    """A projection of the seeds needed, as a range: one study's spread moves the exact figure a
    lot (a rerun on another machine moved one from 22 to 40), its order of magnitude much less."""
    if needed > MAX_PROJECTED_SEEDS:
        return f"more seeds would not decide it (beyond {MAX_PROJECTED_SEEDS:,} paired seeds)"
    if needed <= 100:
        return "tens of paired seeds might decide it"
    return "hundreds of paired seeds might decide it"


def _why(reading: ClaimReading, verdict: str, checks: list[Check], extra: dict,
         construction: dict | None, needed: int | None) -> str:
    """One line a skimming reader cannot misread: which way and how much our numbers differ from
    the paper's, or why nothing is decided, and where the benchmark's construction decides a check."""
    judged = [c for c in checks if c.outcome != UNTESTABLE]
    n = len(judged)
    if verdict == NOT_TESTABLE:
        line = "Every check compares two variants that do not beat guessing on its metric."
    elif reading.judged_on_gains:
        words = "; ".join(f"{c.metric} ours {c.estimate:.1%} vs paper {c.paper_estimate:.1%}" for c in judged)
        new, old = reading.gains[0][0], reading.gains[0][1]
        if verdict.startswith(FAILS):
            larger = all(c.estimate > c.paper_estimate for c in judged if c.outcome == CONTRADICTS)
            smaller = all(c.estimate < c.paper_estimate for c in judged if c.outcome == CONTRADICTS)
            way = "more than" if larger else "less than" if smaller else "other amounts than"
            same = " in the paper's direction" if all(c.estimate > 0 for c in judged) else ""
            line = f"{new} improves on {old}{same}, but by {way} the paper says: {words}."
        elif verdict.startswith(HOLDS):
            line = f"{new}'s gain over {old} matches the paper's within the seed spread: {words}."
        else:
            line = f"The seed spread is too wide to tell the gain from 0 or from the paper's: {words}."
    elif verdict.startswith(HOLDS):
        line = f"As the paper says: all {n} checks favour the claim."
        for key, g in extra.items():
            line += (f" The {key.removesuffix('_relative_gain')} gain is ours {g['ours']:.1%} vs the "
                     f"paper's {g['paper']:.1%}.")
    elif verdict.startswith(FAILS):
        against: dict[str, list[str]] = {}
        for c in judged:
            if c.outcome == CONTRADICTS:
                better, worse = c.what.split(" better than ")
                against.setdefault(f"{worse} beats {better}", []).append(c.metric)
        line = (f"Opposite to the paper on {sum(map(len, against.values()))} of {n} checks: "
                + "; ".join(f"{k} on {', '.join(v)}" for k, v in against.items()) + ".")
    elif verdict.startswith(NO_DIFFERENCE):
        line = f"The differences the paper reports are within +-1% here on some of the {n} checks."
    else:
        open_ = sum(c.outcome == NO_DECISION for c in judged)
        line = (f"Too close to call: {open_} of {n} checks cannot tell the variants apart"
                + (f"; {projection_range(needed)}" if needed is not None else "") + ".")
        undone = [c for c in judged if c.uncorrected_outcome == CONTRADICTS and c.outcome != CONTRADICTS]
        if undone:
            line += (f" {len(undone)} check{'s' if len(undone) != 1 else ''} went against it at 95% but not "
                     "after the correction for the number of checks.")
    untestable = len(checks) - n
    if untestable:
        line += f" {untestable} check{'s' if untestable != 1 else ''} not testable (two guesses)."
    if construction and any("sp_net" in c.what and c.metric in SIM and c.outcome != SUPPORTS for c in judged):
        line += (" On similarity the benchmark favours SP-Net by construction: SP-Net predicts VA and "
                 "applies Eq. 1, and this benchmark's scores are Eq. 1 of the items' VA (Eq. 1 on the "
                 f"true VA: sim MSE {construction.get('sim_mse', float('nan')):.4f}).")
    return line


def _projection_words(needed: int, checks: list[Check]) -> str:
    n = max(int(c.numbers.get("n_paired", 0)) for c in checks)
    words = projection_range(needed)
    return f"{words[0].upper()}{words[1:]} (a rough projection from the spread of {n} seeds, not a measurement)."


def check_claims(per_seed: pd.DataFrame, rule: Rule | None = None, not_learned=frozenset(),
                 construction: dict | None = None) -> list[Claim]:
    """Every claim of :data:`READINGS` (docs/METHOD.md, section "The paper's claims and Figure 3"),
    judged with one :class:`Rule` (see :func:`check_claim`)."""
    rule = rule or Rule()
    samples = samples_of(per_seed)
    return [check_claim(r.id, samples, rule, not_learned, construction) for r in READINGS]


# --- how many seeds decide: the verdicts of the study's first n seeds -----------------------

#: the sub-studies of :func:`verdicts_by_seeds`: the first 10, 20, ... seeds
SEED_STEP = 10


def seed_counts(n_seeds: int, step: int = SEED_STEP) -> list[int]:
    """The seed counts of the sub-studies: every multiple of ``step`` below ``n_seeds``, then
    ``n_seeds`` itself (the whole study)."""
    return list(range(step, n_seeds, step)) + [n_seeds]


def verdicts_by_seeds(per_seed: pd.DataFrame, seeds: list[int], rule: Rule | None = None,
                      step: int = SEED_STEP, not_learned=frozenset()) -> list[dict]:
    """Every claim judged on the runs of the study's first n seeds, for each n of
    :func:`seed_counts`: the measured frontier of seeds against decided claims (the sub-studies are
    nested, each one the start of the next, as a study that stopped early would have been). Each
    entry: ``seeds`` (n), ``verdicts`` {claim id: verdict} and ``not_decided`` (the ids). (How long
    n seeds take is the study's timings' business: a run's own wall time depends on how many ran
    at once.)"""
    rule = rule or Rule()
    out = []
    for n in seed_counts(len(seeds), step):
        first = per_seed[per_seed["seed"].isin(seeds[:n])]
        verdicts = {f"{c.number}{c.part}": c.verdict for c in check_claims(first, rule, not_learned)}
        out.append({"seeds": n, "verdicts": verdicts,
                    "not_decided": [k for k, v in verdicts.items() if v.startswith(UNDECIDED)]})
    return out


def by_seeds_markdown(by_seeds: list[dict]) -> str:
    """The verdicts of :func:`verdicts_by_seeds` as a table: one row per claim, one column per n."""
    counts = [e["seeds"] for e in by_seeds]
    lines = ["| # | " + " | ".join(f"first {n} seeds" for n in counts) + " |",
             "|---|" + "---|" * len(counts)]
    for claim_id in by_seeds[0]["verdicts"]:
        lines.append(f"| {claim_id} | " + " | ".join(e["verdicts"][claim_id] for e in by_seeds) + " |")
    lines.append("| **not decided** | " + " | ".join(f"**{len(e['not_decided'])}**" for e in by_seeds) + " |")
    return "\n".join(lines) + "\n"


# --- many checks, one claim: "does not hold" corrected for their number -------------------

def bonferroni_rule(rule: Rule, n_checks: int) -> Rule:
    """``rule`` with each interval widened to confidence 1 - (1 - confidence) / ``n_checks``."""
    return replace(rule, confidence=1.0 - (1.0 - rule.confidence) / max(int(n_checks), 1))


def family_wise_verdicts(claims: list[Claim], rule: Rule | None = None) -> list[dict]:
    """The verdicts beside the rule's uncorrected ones, one entry per claim that was checked:
    ``id``, ``checks`` (k, the testable ones), ``confidence`` (of the corrected intervals),
    ``verdict`` (the rule's, uncorrected) and ``corrected`` (the claim's verdict)."""
    rule = rule or Rule()
    out = []
    for c in claims:
        if c.verdict == NOT_CHECKED:
            continue
        k = sum(ch.outcome != UNTESTABLE for ch in c.checks)
        out.append({"id": f"{c.number}{c.part}", "checks": k,
                    "confidence": bonferroni_rule(rule, k).confidence,
                    "verdict": c.uncorrected or c.verdict, "corrected": c.verdict})
    return out


def family_wise_markdown(family_wise: list[dict]) -> str:
    """The entries of :func:`family_wise_verdicts` as a table, and how many stay not decided."""
    lines = ["| # | checks | verdict (corrected for the number of checks) | the rule without the correction |",
             "|---|---:|---|---|"]
    for e in family_wise:
        mark = "" if e["corrected"] == e["verdict"] else " (differs)"
        lines.append(f"| {e['id']} | {e['checks']} ({e['confidence']:.2%} intervals) | **{e['corrected']}** | "
                     f"{e['verdict']}{mark} |")
    open_ = [e["id"] for e in family_wise if e["corrected"].startswith(UNDECIDED)]
    lines += ["", f"Not decided with the correction: **{len(open_)}** of {len(family_wise)} readings"
              + (f" (claims {', '.join(open_)})" if open_ else "") + "."]
    return "\n".join(lines) + "\n"


def family_wise_words(rule: Rule | None = None) -> str:
    """What the corrected verdicts are, for claims.md and REPORT.md."""
    rule = rule or Rule()
    return (f"A claim read through many checks would 'not hold' as soon as one of them goes against it, and "
            f"each check's {rule.confidence:.0%} interval misses by chance now and then: among 40 checks, "
            f"one such miss is not rare. So a claim's verdict judges 'does not hold' with its intervals "
            f"widened for its number of checks k (Bonferroni: confidence 1 - {1 - rule.confidence:.2g} / k). "
            f"'Holds' and 'no difference' need every check, so they stay as the rule gives them. The "
            f"right-hand column is the rule without the correction, for comparison.")


# --- writing ------------------------------------------------------------------------------

def _json_safe(x):
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    return x


def not_learned_in(check: Check | dict, not_learned) -> tuple[list[str], list[str]]:
    """The variants ``check`` compares, and those of them not shown to beat guessing on its metric.

    ``not_learned``: (variant, metric) pairs, from ``results.guessing.not_learned_pairs``; a check's
    variants are the keys of its ``numbers`` (each variant's mean); ``check`` is a :class:`Check`
    or its record in claims.json."""
    numbers = (check.get("numbers") or {}) if isinstance(check, dict) else check.numbers
    variants = [v for v in numbers if v != "n_paired"]
    if not variants or not not_learned:   # nothing to mark (a record without numbers has no metric either)
        return variants, []
    metric = check["metric"] if isinstance(check, dict) else check.metric
    return variants, [v for v in variants if (v, metric) in not_learned]


def compares_guesses(check: Check | dict, not_learned) -> bool:
    """True when no variant of ``check`` is shown to beat guessing on its metric: the check then
    compares two guesses, whatever its outcome."""
    variants, unlearned = not_learned_in(check, not_learned)
    return bool(variants) and len(unlearned) == len(variants)


#: under a claim's checks, when some name a variant that has not learned the check's metric
GUESS_NOTE = ("A check marked \"does not beat guessing\" names a variant that is not shown to beat always "
              "answering the training split's mean on that metric (REPORT.md, \"Against guessing\"); marked "
              "\"two guesses\", neither variant is, and the check compares two guesses whatever its outcome.")


def _fmt_check(k: Check, pct: bool, not_learned=frozenset(), rule: Rule | None = None) -> str:
    num = (lambda x: "–" if math.isnan(x) else f"{x:+.1%}") if pct else (lambda x: "–" if math.isnan(x) else f"{x:+.4f}")
    interval = "–" if math.isnan(k.low) else f"{num(k.low)} to {num(k.high)}"
    flag = " (fragile)" if k.boundary else ""
    if k.uncorrected_outcome:   # judged at the corrected confidence: say so, and what the rule gave
        flag += (" after the correction for the number of checks" if k.outcome == k.uncorrected_outcome
                 else f"; {k.uncorrected_outcome} at {(rule or Rule()).confidence:.0%}, not after the correction")
    variants, unlearned = not_learned_in(k, not_learned)
    if unlearned and k.outcome != UNTESTABLE:
        flag += f"; {', '.join(unlearned)} does not beat guessing"
    elif k.outcome == UNTESTABLE:
        flag += " (two guesses)"
    return (f"| {k.metric} | {k.what} | {num(k.estimate)} | {interval} | {num(k.paper_estimate)} "
            f"| {k.outcome}{flag} |")


#: the order in which REPORT.md, claims.md and the README count verdicts
VERDICT_ORDER = (HOLDS, FAILS, NO_DIFFERENCE, UNDECIDED, NOT_TESTABLE, NOT_CHECKED)


def verdict_counts(verdicts: list[str]) -> dict[str, int]:
    """How many verdicts of each kind (the fragile label aside), and how many are fragile."""
    bare = [outcome_of(v) for v in verdicts]
    counts = {kind: bare.count(kind) for kind in VERDICT_ORDER if bare.count(kind)}
    return {**counts, "fragile": sum(v != b for v, b in zip(verdicts, bare))}


def counts_sentence(counts: dict[str, int]) -> str:
    """``2 hold, 3 do not hold, 1 not decided, 1 not testable on this benchmark; 2 of them fragile``."""
    words = {HOLDS: "hold", FAILS: "do not hold"}
    parts = [f"{n} {words.get(k, k)}" for k, n in counts.items() if k != "fragile"]
    fragile = counts.get("fragile", 0)
    return ", ".join(parts) + (f"; {fragile} of them fragile (may differ on another machine)" if fragile else "")


def outcome_of(verdict: str) -> str:
    """A claim's verdict without its fragile label (either spelling of it)."""
    return verdict.removesuffix(ON_BOUNDARY).removesuffix(LEGACY_BOUNDARY)


def claims_markdown(claims: list[Claim], rule: Rule | None = None, not_learned=frozenset(),
                    evidence: dict | None = None, seeds: list[int] | None = None) -> str:
    """The checklist as Markdown: the evidence box (``evidence``: ``data.evidence.describe_dataset``),
    the rule, a summary table with each verdict's one-line why, then each claim with its checks
    (those naming a variant that has not learned the metric, ``not_learned``'s (variant, metric)
    pairs, marked: :data:`GUESS_NOTE`)."""
    rule = rule or Rule()
    lines = ["# Claims checklist", ""]
    if evidence:
        lines += markdown_box(evidence, seeds)
    counts = verdict_counts([c.verdict for c in claims])
    lines += [f"**{len(claims)} readings of the paper's claims: {counts_sentence(counts)}.**", "",
              "Each claim of the paper (docs/METHOD.md, section \"The paper's claims and Figure 3\") judged on our test numbers. "
              f"Rule: {rule.text()}. A claim holds when every check supports it, does not hold when any "
              "check goes against it, shows no difference when the checks that do not support it show "
              "no difference, and is not decided otherwise. The verdict judges 'does not hold' with the "
              "intervals widened for the claim's number of checks (Bonferroni; the last sections show the "
              "rule without it). A check that compares two variants neither of which beats always "
              "guessing the training mean on its metric is not testable on this benchmark: it is shown "
              "but left out of the verdict. A verdict marked fragile rests on a check whose interval edge "
              "is within 10% of its half-width from 0: round-off on another machine may change it. "
              "Estimates are improvements in the claimed direction (positive favours the claim); claims "
              "about direction and about magnitude (relative gains) are judged separately.", "",
              "| # | claim | verdict | why |", "|---|---|---|---|"]
    lines += [f"| {c.number}{c.part} | {c.claim} | **{c.verdict}** | {c.why.replace('|', '/')} |" for c in claims]
    for c in claims:
        lines += ["", f"## Claim {c.number}{c.part}: {c.claim}", "", f"**Verdict: {c.verdict}.** {c.why}", "",
                  c.reason, "", f"How we check it: {c.reading}"]
        if len(c.per_metric) > 1:
            lines += ["", "Per metric: " + "; ".join(f"{m}: {v}" for m, v in c.per_metric.items()) + "."]
        if c.checks:
            pct = CLAIMS[f"{c.number}{c.part}"].judged_on_gains
            lines += ["", f"| metric | check | ours | interval ({rule.confidence:.0%} unless marked) | paper | outcome |",
                      "|---|---|---:|---|---:|---|"]
            lines += [_fmt_check(k, pct, not_learned, rule) for k in c.checks]
            if any(not_learned_in(k, not_learned)[1] for k in c.checks):
                lines += ["", GUESS_NOTE]
    return "\n".join(lines) + "\n"


def write_claims(claims: list[Claim], reports_dir: str | Path, rule: Rule | None = None,
                 by_seeds: list[dict] | None = None, family_wise: list[dict] | None = None,
                 not_learned=frozenset(), evidence: dict | None = None,
                 seeds: list[int] | None = None) -> dict[str, Path]:
    """Write ``<reports>/claims.md`` and ``<reports>/claims.json`` (with ``family_wise``, the
    verdicts of :func:`family_wise_verdicts`, and ``by_seeds``, those of :func:`verdicts_by_seeds`,
    as their last sections when it has more than one step; ``not_learned``, the (variant, metric)
    pairs not shown to beat guessing, marks the checks on them)."""
    rule = rule or Rule()
    out = resolve(reports_dir)
    out.mkdir(parents=True, exist_ok=True)
    record = {"evidence": evidence, "seeds": seeds,
              "rule": {**asdict(rule), "text": rule.text(),
                       "verdict": "corrected for the number of checks (Bonferroni); not testable checks left out"},
              "counts": verdict_counts([c.verdict for c in claims]),
              "claims": [{"id": f"{c.number}{c.part}", **_json_safe(asdict(c))} for c in claims],
              "not_learned": sorted([v, m] for v, m in not_learned)}
    markdown = claims_markdown(claims, rule, not_learned, evidence, seeds)
    if family_wise:
        record["family_wise"] = family_wise
        markdown += ("\n## The verdicts beside the rule without the correction\n\n" + family_wise_words(rule)
                     + "\n\n" + family_wise_markdown(family_wise))
    if by_seeds and len(by_seeds) > 1:   # one step is the checklist above again
        record["by_seeds"] = by_seeds
        markdown += ("\n## Verdicts by the number of seeds\n\nEvery claim judged again on the runs of "
                     "the study's first n seeds (measured, not projected; each set of seeds is the start "
                     "of the next).\n\n" + by_seeds_markdown(by_seeds))
    paths = {"md": out / "claims.md", "json": out / "claims.json"}
    for key, text in (("md", markdown),
                      ("json", json.dumps(record, indent=2) + "\n")):
        atomic_write_text(paths[key], text)
    return paths
