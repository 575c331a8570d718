"""The claims checklist: the eight claims of Zhao et al. 2020 (docs/METHOD.md, section "The paper's
claims and Figure 3"), each judged on our own numbers.

The decision rule (one rule for every claim):

- A claim is broken into *checks*. A check says "variant A beats variant B on metric m"; its
  estimate is A's improvement over B (``mean_B - mean_A`` for an error metric, the opposite sign
  for a retrieval metric, so a positive estimate always favours the claim). Its standard error
  is the unpaired one across seeds, ``SE = sqrt(sd_A^2/n_A + sd_B^2/n_B)`` (sample sd, ddof=1).
- A check *supports* the claim when the estimate exceeds ``+k_sigma * SE``, *contradicts* it when
  it is below ``-k_sigma * SE``, and is *undecided* otherwise (``k_sigma`` defaults to 2).
- With fewer than ``min_seeds`` seeds on either side (default 2) the spread is unknown and the
  check is undecided. Setting ``min_seeds=1`` treats a single seed's SE as 0, so the sign alone
  decides: for exploratory runs only.
- Claim 8 (relative gains) uses the interval ``gain ± (k_sigma * SE + 0.05%)`` (SE by the delta
  method; 0.05% is half the rounding step of the paper's printed gains):
  it supports when the interval holds the paper's gain and excludes 0, contradicts when it
  excludes the paper's gain, and is undecided when it holds both.
- A claim (and each metric of a claim) *holds* when every check supports it, *does not hold*
  when at least one check contradicts it, and is *not decided at this seed spread* otherwise.
  A claim whose variants are not in the study is *not checked*.

Each check also carries the paper's own estimate (from its Tables 3 and 4), so a reader sees at
once whether our reading of a claim agrees with the paper's numbers.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from cdcml_lib.workflow.paths import atomic_write_text, resolve
from cdcml_lib.results.tables import HIGHER_IS_BETTER, METRICS, PAPER_METRICS, paper_numbers

HOLDS = "holds"
FAILS = "does not hold"
UNDECIDED = "not decided at this seed spread"
NOT_CHECKED = "not checked"

SUPPORTS, CONTRADICTS, NO_DECISION = "supports", "contradicts", "undecided"

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
    """One comparison behind a claim; ``estimate > 0`` always favours the claim."""

    metric: str
    what: str
    estimate: float
    se: float
    paper_estimate: float
    outcome: str
    numbers: dict = field(default_factory=dict)


@dataclass
class Claim:
    number: int
    claim: str
    reading: str
    verdict: str
    reason: str
    per_metric: dict = field(default_factory=dict)
    checks: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    summary: str = ""  # one line for REPORT.md: how the checks came out


@dataclass
class Rule:
    """The decision rule (see the module docstring)."""

    k_sigma: float = 2.0
    min_seeds: int = 2


# --- the statistics of one check ---------------------------------------------------------

Samples = dict  # (variant, metric) -> np.ndarray of per-seed values


def samples_of(per_seed: pd.DataFrame | Samples) -> Samples:
    """Per-seed values by (variant, metric), from ``tables.gather_runs``'s table (read once)."""
    if isinstance(per_seed, dict):
        return per_seed
    out = {}
    for variant, group in per_seed.groupby("variant", sort=False):
        for m in METRICS:
            if m in group:
                out[(variant, m)] = group[m].to_numpy(dtype=float)
    return out


def _mean_se(values: np.ndarray) -> tuple[float, float, int]:
    """Mean, standard error of the mean (NaN with one seed) and number of seeds."""
    n = len(values)
    sd = float(values.std(ddof=1)) if n > 1 else float("nan")
    return float(values.mean()), sd / math.sqrt(n) if n > 1 else float("nan"), n


def _decide(estimate: float, se: float, n_min: int, rule: Rule) -> str:
    """Supports / contradicts / undecided for an estimate whose positive side favours the claim."""
    if n_min < rule.min_seeds:
        return NO_DECISION
    se = 0.0 if math.isnan(se) else se  # only reached with min_seeds=1: the sign alone decides
    if estimate > rule.k_sigma * se:
        return SUPPORTS
    if estimate < -rule.k_sigma * se:
        return CONTRADICTS
    return NO_DECISION


@lru_cache(maxsize=None)
def _paper_value(variant: str, metric: str) -> float:
    for table in ("comparison", "ablation"):
        value = paper_numbers(table, variant).get(metric)
        if value is not None:
            return value
    return float("nan")


def improvement_check(per_seed: pd.DataFrame | Samples, better: str, worse: str, metric: str,
                      rule: Rule) -> Check:
    """Check "``better`` beats ``worse`` on ``metric``": the improvement and its unpaired SE."""
    samples = samples_of(per_seed)
    mb, seb, nb = _mean_se(samples[(better, metric)])
    mw, sew, nw = _mean_se(samples[(worse, metric)])
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    estimate = sign * (mb - mw)
    se = math.sqrt(seb ** 2 + sew ** 2) if nb > 1 and nw > 1 else float("nan")
    paper = sign * (_paper_value(better, metric) - _paper_value(worse, metric))
    return Check(metric=metric, what=f"{better} better than {worse}", estimate=estimate, se=se,
                 paper_estimate=paper, outcome=_decide(estimate, se, min(nb, nw), rule),
                 numbers={better: mb, worse: mw, f"n_{better}": nb, f"n_{worse}": nw})


def relative_gain_check(per_seed: pd.DataFrame | Samples, new: str, old: str, metric: str,
                        paper_gain: float, rule: Rule) -> Check:
    """Check "``new`` improves ``metric`` over ``old`` by ``paper_gain`` (relative)".

    Gain g = (old - new) / old for an error metric; SE by the delta method,
    SE(new/old) = (new/old) * sqrt((se_new/new)^2 + (se_old/old)^2). The paper prints its gains
    to 0.1%, so the interval is widened by half of that rounding step.
    """
    samples = samples_of(per_seed)
    mn, sen, nn = _mean_se(samples[(new, metric)])
    mo, seo, no = _mean_se(samples[(old, metric)])
    ratio = mn / mo
    gain = 1.0 - ratio
    se = abs(ratio) * math.sqrt((sen / mn) ** 2 + (seo / mo) ** 2) if nn > 1 and no > 1 else float("nan")
    if min(nn, no) < rule.min_seeds:
        outcome = NO_DECISION
    else:
        half = rule.k_sigma * (0.0 if math.isnan(se) else se) + PAPER_GAIN_ROUNDING
        paper_inside = gain - half <= paper_gain <= gain + half
        zero_inside = gain - half <= 0.0 <= gain + half
        outcome = CONTRADICTS if not paper_inside else (NO_DECISION if zero_inside else SUPPORTS)
    return Check(metric=metric, what=f"relative gain of {new} over {old} (paper {paper_gain:.1%})",
                 estimate=gain, se=se, paper_estimate=paper_gain, outcome=outcome,
                 numbers={new: mn, old: mo, f"n_{new}": nn, f"n_{old}": no})


# --- from checks to a verdict -------------------------------------------------------------

def verdict_of(outcomes: list[str]) -> str:
    """Holds when all checks support, does not hold when any contradicts, else undecided."""
    if any(o == CONTRADICTS for o in outcomes):
        return FAILS
    if outcomes and all(o == SUPPORTS for o in outcomes):
        return HOLDS
    return UNDECIDED


def _per_metric(checks: list[Check]) -> dict[str, str]:
    metrics = list(dict.fromkeys(c.metric for c in checks))
    return {m: verdict_of([c.outcome for c in checks if c.metric == m]) for m in metrics}


def _describe(check: Check) -> str:
    se = "SE n/a" if math.isnan(check.se) else f"SE {check.se:.4f}"
    return (f"{check.metric}: claimed {check.what}; advantage ours {check.estimate:+.4f} ({se}), "
            f"paper {check.paper_estimate:+.4f}")


def _reason(checks: list[Check], verdict: str, rule: Rule) -> str:
    n = len(checks)
    if verdict == HOLDS:
        return (f"All {n} checks favour the claim by more than {rule.k_sigma:g} standard errors "
                f"across seeds.")
    against = [c for c in checks if c.outcome == CONTRADICTS]
    open_ = [c for c in checks if c.outcome == NO_DECISION]
    if verdict == FAILS:
        text = (f"The reproduction disagrees with the paper: {len(against)} of {n} checks go against "
                f"the claim by more than {rule.k_sigma:g} standard errors: "
                + "; ".join(_describe(c) for c in against) + ".")
        if open_:
            text += f" {len(open_)} more within noise."
        return text
    few = [c for c in open_ if min(v for k, v in c.numbers.items() if k.startswith("n_")) < rule.min_seeds]
    text = (f"{len(open_)} of {n} checks lie within {rule.k_sigma:g} standard errors of no effect"
            + (f" ({len(few)} with fewer than {rule.min_seeds} seeds)" if few else "")
            + f"; {n - len(open_)} for the claim. Undecided: "
            + "; ".join(_describe(c) for c in open_[:6]) + ("; ..." if len(open_) > 6 else "") + ".")
    return text


def _summary(reading: "ClaimReading", checks: list[Check], extra: dict) -> str:
    """A one-line account of the checks: counts, and the metrics that went against the claim."""
    if reading.judged_on_gains:
        return "; ".join(f"{c.metric} gain: ours {c.estimate:.1%}"
                         + ("" if math.isnan(c.se) else f" (SE {c.se:.1%})")
                         + f", paper {c.paper_estimate:.1%}" for c in checks)
    count = {o: sum(c.outcome == o for c in checks) for o in (SUPPORTS, CONTRADICTS, NO_DECISION)}
    text = (f"{len(checks)} checks: {count[SUPPORTS]} for, {count[CONTRADICTS]} against, "
            f"{count[NO_DECISION]} within noise")
    # Name the claimed direction and say that ours is the reverse, so a reader cannot take
    # "sim_va better than sim" for what we found.
    against = [f"{c.metric} (claimed {c.what}; ours the reverse)" for c in checks if c.outcome == CONTRADICTS]
    if against:
        text += ". Against: " + ", ".join(against)
    for key, g in extra.items():
        text += f". {key.removesuffix('_relative_gain')} gain: ours {g['ours']:.1%}, paper {g['paper']:.1%}"
    return text + "."


def _reason_gains(checks: list[Check], verdict: str, rule: Rule) -> str:
    """Claim 8's reason: each relative gain's interval against the paper's gain and against 0."""
    parts = []
    for c in checks:
        if math.isnan(c.se) and rule.min_seeds > 1:
            parts.append(f"{c.metric}: ours {c.estimate:.1%} (one seed: no spread), paper {c.paper_estimate:.1%}")
            continue
        half = rule.k_sigma * (0.0 if math.isnan(c.se) else c.se) + PAPER_GAIN_ROUNDING
        where = {SUPPORTS: "holds the paper's value and excludes 0",
                 NO_DECISION: "holds both the paper's value and 0",
                 CONTRADICTS: "excludes the paper's value: our gain is "
                              + ("smaller" if c.estimate < c.paper_estimate else "larger")}[c.outcome]
        parts.append(f"{c.metric}: ours {c.estimate:.1%} ± {half:.1%} ({rule.k_sigma:g} SE), paper "
                     f"{c.paper_estimate:.1%}; the interval {where}")
    lead = {HOLDS: "Both gains agree with the paper.",
            FAILS: "The reproduction disagrees with the paper.",
            UNDECIDED: "The seed spread is too wide to tell."}[verdict]
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
        8, "Relative gains of CDCML over ACP-Net: 22.1% similarity MSE, 5.4% similarity MAE.",
        "the relative gain (acp_net - cdcml) / acp_net on sim_mse and sim_mae, with a "
        "delta-method SE, must be compatible with the paper's 22.1% and 5.4% and exclude 0.",
        gains=tuple(("cdcml", "acp_net", m, g) for m, g in PAPER_GAIN_CDCML_OVER_ACP.items())),
)
CLAIMS = {r.number: r for r in READINGS}


def readings_table() -> pd.DataFrame:
    """Every check behind every claim, one row each: what the notebook shows before judging."""
    rows = []
    for r in READINGS:
        rows += [{"claim": r.number, "kind": "direction", "check": f"{a} beats {b}", "metrics": ", ".join(ms)}
                 for a, b, ms in r.beats]
        rows += [{"claim": r.number, "kind": "magnitude",
                  "check": f"relative gain of {new} over {old} = paper's {g:.1%}", "metrics": m}
                 for new, old, m, g in r.gains]
        if r.reported_gain:
            new, old, m, g = r.reported_gain
            rows.append({"claim": r.number, "kind": "reported only",
                         "check": f"relative gain of {new} over {old} beside paper's {g:.1%}", "metrics": m})
    return pd.DataFrame(rows)


def check_claim(number: int, per_seed: pd.DataFrame | Samples, rule: Rule | None = None) -> Claim:
    """Judge claim ``number`` (1-8) on the per-seed test metrics (``tables.gather_runs``)."""
    rule = rule or Rule()
    reading = CLAIMS[number]
    samples = samples_of(per_seed)
    have = {v for v, _ in samples}
    missing = [v for v in reading.variants if v not in have]
    if missing:
        return Claim(number, reading.claim, reading.reading, NOT_CHECKED,
                     f"the study has no runs of {', '.join(missing)} (add them to study: in params).")
    checks = [improvement_check(samples, a, b, m, rule) for a, b, metrics in reading.beats for m in metrics]
    checks += [relative_gain_check(samples, new, old, m, g, rule) for new, old, m, g in reading.gains]
    extra = {}
    if reading.reported_gain:
        new, old, m, g = reading.reported_gain
        gain = relative_gain_check(samples, new, old, m, g, rule)
        extra[f"{m}_relative_gain"] = {"ours": gain.estimate, "se": gain.se, "paper": g,
                                       "compatible_with_paper": gain.outcome != CONTRADICTS}
    verdict = verdict_of([c.outcome for c in checks])
    if reading.judged_on_gains:
        reason = _reason_gains(checks, verdict, rule)
    else:
        reason = _reason(checks, verdict, rule)
    for key, g in extra.items():
        reason += f" Relative {key.removesuffix('_relative_gain')} gain: ours {g['ours']:.1%}, paper {g['paper']:.1%}."
    return Claim(number, reading.claim, reading.reading, verdict, reason, _per_metric(checks), checks,
                 extra, _summary(reading, checks, extra))


def check_claims(per_seed: pd.DataFrame, k_sigma: float = 2.0, min_seeds: int = 2) -> list[Claim]:
    """Every claim of :data:`READINGS` (docs/METHOD.md, section "The paper's claims and Figure 3"),
    judged with one :class:`Rule`."""
    rule = Rule(k_sigma=float(k_sigma), min_seeds=int(min_seeds))
    samples = samples_of(per_seed)
    return [check_claim(r.number, samples, rule) for r in READINGS]


# --- writing ------------------------------------------------------------------------------

def _json_safe(x):
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    return x


def claims_markdown(claims: list[Claim], k_sigma: float = 2.0, min_seeds: int = 2) -> str:
    """The checklist as Markdown: a summary table, then each claim with its checks."""
    lines = ["# Claims checklist", "",
             f"Each claim of the paper (docs/METHOD.md, section \"The paper's claims and Figure 3\") "
             f"judged on our test numbers. Rule: a "
             f"difference counts when it exceeds {k_sigma:g} standard errors across seeds "
             f"(unpaired; at least {min_seeds} seeds per variant); a claim holds when every check "
             f"supports it and does not hold when any check goes against it. Estimates are "
             f"improvements in the claimed direction (positive favours the claim).", "",
             "| # | claim | verdict |", "|---|---|---|"]
    lines += [f"| {c.number} | {c.claim} | **{c.verdict}** |" for c in claims]
    for c in claims:
        lines += ["", f"## Claim {c.number}: {c.claim}", "", f"**Verdict: {c.verdict}.** {c.reason}", "",
                  f"How we check it: {c.reading}"]
        if len(c.per_metric) > 1:
            lines += ["", "Per metric: " + "; ".join(f"{m}: {v}" for m, v in c.per_metric.items()) + "."]
        if c.checks:
            pct = CLAIMS[c.number].judged_on_gains
            fmt = (lambda x: "–" if math.isnan(x) else f"{x:+.1%}") if pct else \
                  (lambda x: "–" if math.isnan(x) else f"{x:+.4f}")
            sefmt = (lambda x: "–" if math.isnan(x) else f"{x:.1%}") if pct else \
                    (lambda x: "–" if math.isnan(x) else f"{x:.4f}")
            lines += ["", "| metric | check | ours | SE | paper | outcome |", "|---|---|---:|---:|---:|---|"]
            lines += [f"| {k.metric} | {k.what} | {fmt(k.estimate)} | {sefmt(k.se)} | {fmt(k.paper_estimate)} "
                      f"| {k.outcome} |" for k in c.checks]
    return "\n".join(lines) + "\n"


def write_claims(claims: list[Claim], reports_dir: str | Path, k_sigma: float = 2.0,
                 min_seeds: int = 2) -> dict[str, Path]:
    """Write ``<reports>/claims.md`` and ``<reports>/claims.json``."""
    out = resolve(reports_dir)
    out.mkdir(parents=True, exist_ok=True)
    record = {"rule": {"k_sigma": k_sigma, "min_seeds": min_seeds},
              "claims": [_json_safe(asdict(c)) for c in claims]}
    paths = {"md": out / "claims.md", "json": out / "claims.json"}
    for key, text in (("md", claims_markdown(claims, k_sigma, min_seeds)),
                      ("json", json.dumps(record, indent=2) + "\n")):
        atomic_write_text(paths[key], text)
    return paths
