"""The claims checklist on constructed per-seed numbers: paired by seed, with every outcome."""
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cdcml_lib.results import claims as C
from cdcml_lib.results import tables as T

VARIANTS = ["sp_net", "l3_net", "acp_net", "cdcml", "contrastive", "sim", "sim_cfr", "sim_cfr_cfm", "sim_va"]
SEEDS = range(5)


def per_seed_from(means, own_spread: float, shared_spread: float = 0.0, seeds=SEEDS) -> pd.DataFrame:
    """Each seed's value: the mean, a seed effect every variant shares (what pairing removes),
    and the variant's own noise."""
    rng = np.random.default_rng(0)
    shared = {s: rng.standard_normal() for s in seeds}
    rows = []
    for variant, metrics in means.items():
        for s in seeds:
            rows.append({"variant": variant, "seed": s,
                         **{m: v + shared_spread * shared[s] + own_spread * rng.standard_normal()
                            for m, v in metrics.items()}})
    return pd.DataFrame(rows)


def paper_means() -> dict[str, dict[str, float]]:
    """Every variant at the paper's numbers (contrastive: ACP-Net's), retrieval metrics equal."""
    out = {}
    for v in VARIANTS:
        table = "comparison" if v in T.PAPER_ROW["comparison"] else "ablation"
        nums = T.paper_numbers(table, "acp_net" if v == "contrastive" else v)
        out[v] = {**nums, "ndcg_at_10": 0.8, "spearman": 0.5, "corr_acc": 0.7}
    return out


def verdicts(claims):
    return {f"{c.number}{c.part}": c.verdict for c in claims}


def test_the_readings_are_data_and_claim_8_is_read_twice():
    ids = [r.id for r in C.READINGS]
    assert ids == ["1", "2", "3", "4", "5", "6", "7", "8a", "8b"]
    assert not C.CLAIMS["8a"].judged_on_gains and C.CLAIMS["8b"].judged_on_gains
    table = C.readings_table()
    assert set(table["kind"]) == {"direction", "magnitude", "reported only"}
    assert (table["claim"] == "8b").sum() == 2 and (table[table["claim"] == "8b"]["kind"] == "magnitude").all()


def test_the_papers_own_numbers_make_every_claim_hold_but_one_difference_below_the_margin():
    claims = {f"{c.number}{c.part}": c for c in C.check_claims(per_seed_from(paper_means(), own_spread=1e-5))}
    assert {k: c.verdict for k, c in claims.items() if k != "7"} == {k: C.HOLDS for k in claims if k != "7"}
    # The paper's own Table 4: CDCML 0.157 against Sim + VA 0.158 in image valence MAE, 0.6%:
    # inside the 1% equivalence margin, so even the paper's numbers show no difference there.
    assert claims["7"].verdict == C.NO_DIFFERENCE
    assert [k.metric for k in claims["7"].checks if k.outcome == C.EQUIVALENT] == ["img_v_mae"]


def test_the_interval_is_the_paired_t_interval():
    means = paper_means()
    per_seed = per_seed_from(means, own_spread=0.003, shared_spread=0.01)
    check = C.improvement_check(per_seed, "sim_cfr_cfm", "sim_cfr", "sim_mse", C.Rule())
    a = per_seed[per_seed.variant == "sim_cfr_cfm"].set_index("seed")["sim_mse"]
    b = per_seed[per_seed.variant == "sim_cfr"].set_index("seed")["sim_mse"]
    d = (b - a).to_numpy()
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    assert check.estimate == pytest.approx(d.mean())
    assert (check.low, check.high) == pytest.approx((d.mean() - half, d.mean() + half))


def test_pairing_removes_what_the_seeds_share():
    """A seed effect ten times the gap hides it from an unpaired test, not from the paired one."""
    means = {"a": {"sim_mse": 0.050}, "b": {"sim_mse": 0.052}}
    per_seed = per_seed_from(means, own_spread=1e-4, shared_spread=0.02)
    check = C.improvement_check(per_seed, "a", "b", "sim_mse", C.Rule())
    assert check.outcome == C.SUPPORTS
    unpaired_se = math.sqrt(per_seed.groupby("variant")["sim_mse"].var().sum() / len(SEEDS))
    assert 0.002 < 2 * unpaired_se   # an unpaired 2-SE rule would not decide this


def test_a_clear_reversal_makes_claims_fail_and_says_so_per_metric():
    means = paper_means()
    means["sim_cfr_cfm"]["sim_mse"] = means["sim_cfr"]["sim_mse"] + 0.02   # CFM makes it worse
    claims = {f"{c.number}{c.part}": c for c in C.check_claims(per_seed_from(means, own_spread=1e-4))}
    assert claims["5"].verdict == C.FAILS
    assert claims["5"].per_metric == {"sim_mse": C.FAILS, "sim_mae": C.HOLDS}
    assert "disagrees" in claims["5"].reason and "sim_mse" in claims["5"].reason


def test_equal_variants_show_no_difference_not_undecided():
    means = paper_means()
    means["sim_cfr_cfm"] = dict(means["sim_cfr"])   # CFM changes nothing
    five = C.check_claim(5, per_seed_from(means, own_spread=1e-5))
    assert five.verdict == C.NO_DIFFERENCE
    assert all(k.outcome == C.EQUIVALENT for k in five.checks)


def test_differences_within_seed_noise_are_not_decided():
    claims = C.check_claims(per_seed_from(paper_means(), own_spread=0.2))
    assert C.UNDECIDED in verdicts(claims).values()
    assert C.HOLDS not in verdicts(claims).values()


def test_a_check_on_its_boundary_is_labelled():
    rule = C.Rule()
    assert C._on_boundary(1.0, 1.05, rule) and not C._on_boundary(1.0, 0.5, rule)
    check = C.Check("sim_mse", "a better than b", 1.0, 0.5, 1.0, C.SUPPORTS, boundary=True)
    assert C._with_boundary(C.HOLDS, [check]) == C.HOLDS + C.ON_BOUNDARY == "holds (fragile: may differ on another machine)"
    near = C.Check("sim_mse", "a better than b", 1.0, 0.5, 1.0, C.NO_DECISION, boundary=True)
    assert C._with_boundary(C.UNDECIDED, [near]) == C.UNDECIDED + C.ON_BOUNDARY
    far = C.Check("sim_mse", "a better than b", 0.1, 0.5, 1.0, C.NO_DECISION, boundary=False)
    assert C._with_boundary(C.UNDECIDED, [far]) == C.UNDECIDED


def test_claim_8_direction_and_magnitude_are_separate_readings():
    means = paper_means()
    means["cdcml"]["sim_mse"] = 0.086 * (1 - 0.40)  # 40% gain: better than the paper says
    per_seed = per_seed_from(means, own_spread=1e-5)
    direction, magnitude = C.check_claim("8a", per_seed), C.check_claim("8b", per_seed)
    assert direction.verdict == C.HOLDS          # CDCML does beat ACP-Net
    assert magnitude.verdict == C.FAILS          # but not by the paper's 22.1%
    assert magnitude.per_metric == {"sim_mse": C.FAILS, "sim_mae": C.HOLDS}
    assert magnitude.checks[0].estimate == pytest.approx(0.40, abs=1e-3)
    assert "larger" in magnitude.reason


def test_one_seed_decides_nothing():
    per_seed = per_seed_from(paper_means(), own_spread=1e-4, seeds=[0])
    assert set(verdicts(C.check_claims(per_seed)).values()) == {C.UNDECIDED}


def test_a_claim_whose_rows_are_absent_is_not_checked():
    per_seed = per_seed_from({v: m for v, m in paper_means().items() if v != "sp_net"}, own_spread=1e-5)
    claims = verdicts(C.check_claims(per_seed))
    assert claims["1"] == C.NOT_CHECKED and claims["2"] == C.NOT_CHECKED and claims["3"] == C.HOLDS


def test_claims_files_hold_every_verdict_the_rule_and_the_numbers(tmp_path):
    rule = C.Rule(confidence=0.9)
    claims = C.check_claims(per_seed_from(paper_means(), own_spread=1e-4), rule)
    paths = C.write_claims(claims, tmp_path, rule)
    record = json.loads(paths["json"].read_text())
    assert record["rule"]["confidence"] == 0.9 and "paired by seed" in record["rule"]["text"]
    assert [c["id"] for c in record["claims"]] == ["1", "2", "3", "4", "5", "6", "7", "8a", "8b"]
    md = paths["md"].read_text()
    assert "90% interval" in md and "| 8b |" in md


def test_seeds_to_decide_projects_the_measured_spread():
    from scipy import stats
    from cdcml_lib.results.claims import MAX_PROJECTED_SEEDS, seeds_to_decide

    def half(m, sd):
        return stats.t.ppf(0.975, m - 1) * sd / m ** 0.5
    # mean 1, sd 2 (se 1 on 4 seeds): the first n' whose interval excludes 0
    m = seeds_to_decide(1.0, 1.0, 4, 0.0, 0.95)
    assert half(m, 2.0) < 1.0 <= half(m - 1, 2.0)
    # mean 0 inside a margin of 0.5: the first n' whose interval fits inside it
    m = seeds_to_decide(0.0, 0.5, 4, 0.5, 0.95)
    assert half(m, 1.0) <= 0.5 < half(m - 1, 1.0)
    # a zero difference and no margin: no number of seeds decides it
    assert seeds_to_decide(0.0, 0.5, 4, 0.0, 0.95) == MAX_PROJECTED_SEEDS + 1
    assert seeds_to_decide(1.0, float("nan"), 1, 0.0, 0.95) is None


def test_verdicts_by_seeds_judge_the_first_n_seeds_of_the_study(tmp_path):
    assert C.seed_counts(60) == [10, 20, 30, 40, 50, 60] and C.seed_counts(25) == [10, 20, 25]
    assert C.seed_counts(10) == [10] and C.seed_counts(3, step=2) == [2, 3]
    # a small true difference under noise: too few seeds leave it undecided, more decide it
    means = paper_means()
    per_seed = per_seed_from(means, own_spread=0.004, seeds=range(40))
    by_seeds = C.verdicts_by_seeds(per_seed, list(range(40)), step=4)
    assert [e["seeds"] for e in by_seeds] == list(range(4, 41, 4))
    for e in by_seeds:   # each entry is exactly the checklist of that many seeds
        first = per_seed[per_seed["seed"] < e["seeds"]]
        assert e["verdicts"] == verdicts(C.check_claims(first))
        assert e["not_decided"] == [k for k, v in e["verdicts"].items() if v.startswith(C.UNDECIDED)]
    assert len(by_seeds[-1]["not_decided"]) < len(by_seeds[0]["not_decided"])
    md = C.by_seeds_markdown(by_seeds)
    assert md.startswith("| # | first 4 seeds | first 8 seeds |") and "| **not decided** |" in md
    paths = C.write_claims(C.check_claims(per_seed), tmp_path, by_seeds=by_seeds)
    assert json.loads(paths["json"].read_text())["by_seeds"][0]["seeds"] == 4
    assert "## Verdicts by the number of seeds" in paths["md"].read_text()


def test_a_single_step_of_verdicts_by_seeds_is_not_written_again(tmp_path):
    per_seed = per_seed_from(paper_means(), own_spread=1e-4, seeds=range(4))
    one_step = C.verdicts_by_seeds(per_seed, list(range(4)))
    assert [e["seeds"] for e in one_step] == [4]
    paths = C.write_claims(C.check_claims(per_seed), tmp_path, by_seeds=one_step)
    assert "by_seeds" not in json.loads(paths["json"].read_text())
    assert "by the number of seeds" not in paths["md"].read_text()


def _claim_7_against_on_one_check(mean_worse: float) -> pd.DataFrame:
    """Paper numbers, except Sim's sim_mse: CDCML's is worse than it by ``mean_worse`` on average over
    10 seeds, with a per-seed spread whose standard error is 0.0012 (CDCML's other checks as in the paper)."""
    per_seed = per_seed_from(paper_means(), own_spread=1e-6, seeds=range(10))
    z = np.array([-1.5, -1.0, -0.6, -0.3, 0.0, 0.0, 0.3, 0.6, 1.0, 1.5])
    spread = z / z.std(ddof=1) * 0.0012 * math.sqrt(len(z))
    cdcml = per_seed[per_seed.variant == "cdcml"].sort_values("seed")["sim_mse"].to_numpy()
    per_seed.loc[per_seed.variant == "sim", "sim_mse"] = cdcml - mean_worse - spread
    return per_seed


def test_a_does_not_hold_on_one_check_of_many_must_survive_the_correction_for_their_number():
    rule = C.Rule()
    near = _claim_7_against_on_one_check(0.003)   # 95% half-width 0.0027, Bonferroni (40 checks) 0.0059
    seven = C.check_claim(7, near, rule)
    # the verdict is the corrected one; the rule's own stays beside it
    assert seven.uncorrected.startswith(C.FAILS) and seven.verdict.startswith(C.UNDECIDED)
    (undone,) = [k for k in seven.checks if k.uncorrected_outcome == C.CONTRADICTS]
    assert undone.what == "cdcml better than sim" and undone.outcome == C.NO_DECISION
    assert C.bonferroni_rule(rule, 40).confidence == pytest.approx(1 - 0.05 / 40)
    assert "1 check went against it at 95% but not after the correction" in seven.why
    assert "Without the correction for its 40 checks the rule says 'does not hold'" in seven.reason
    clear = C.check_claim(7, _claim_7_against_on_one_check(0.02), rule)
    assert clear.verdict.startswith(C.FAILS) and clear.uncorrected.startswith(C.FAILS)
    assert clear.why.startswith("Opposite to the paper on 1 of 40 checks: sim beats cdcml on sim_mse")


def test_holds_and_no_difference_need_no_correction_and_keep_their_verdict():
    per_seed = per_seed_from(paper_means(), own_spread=1e-5)
    claims = C.check_claims(per_seed)
    entries = C.family_wise_verdicts(claims)
    assert [e["id"] for e in entries] == ["1", "2", "3", "4", "5", "6", "7", "8a", "8b"]
    assert all(e["corrected"] == e["verdict"] for e in entries)
    assert {e["verdict"] for e in entries} == {C.HOLDS, C.NO_DIFFERENCE}


def test_the_rule_without_the_correction_is_written_beside_the_verdicts_and_counted(tmp_path):
    near = _claim_7_against_on_one_check(0.003)
    claims = C.check_claims(near)
    entries = C.family_wise_verdicts(claims)
    paths = C.write_claims(claims, tmp_path, family_wise=entries)
    record = json.loads(paths["json"].read_text())
    (seven,) = [e for e in record["family_wise"] if e["id"] == "7"]
    assert seven["checks"] == 40 and seven["verdict"].startswith(C.FAILS) and seven["corrected"].startswith(C.UNDECIDED)
    (claim,) = [c for c in record["claims"] if c["id"] == "7"]
    assert claim["verdict"].startswith(C.UNDECIDED) and claim["uncorrected"].startswith(C.FAILS)
    md = paths["md"].read_text()
    assert "## The verdicts beside the rule without the correction" in md
    assert "| 7 | 40 (99.88% intervals) | **not decided" in md and "(differs)" in md
    assert "Not decided with the correction: **1** of 9 readings (claims 7)." in md
    assert "contradicts at 95%, not after the correction" in md


def _music_valence_unlearned(means):
    """Sim and Sim + VA as bad as each other on music valence (the metric neither learns)."""
    for v in ("sim", "sim_va"):
        means[v]["mus_v_mse"], means[v]["mus_v_mae"] = 0.05, 0.2
    return means


def test_a_check_comparing_two_guesses_is_not_testable_and_left_out_of_the_verdict():
    per_seed = per_seed_from(_music_valence_unlearned(paper_means()), own_spread=1e-3)
    plain = C.check_claim(6, per_seed)
    assert plain.verdict.startswith(C.UNDECIDED)   # the two music-valence checks cannot tell them apart
    not_learned = {(v, m) for v in ("sim", "sim_va") for m in ("mus_v_mse", "mus_v_mae")}
    six = C.check_claim(6, per_seed, not_learned=not_learned)
    untestable = [k.metric for k in six.checks if k.outcome == C.UNTESTABLE]
    assert untestable == ["mus_v_mse", "mus_v_mae"] and six.verdict == C.HOLDS
    assert "2 checks not testable (two guesses)." in six.why and "2 more checks are not testable" in six.reason
    # a claim none of whose checks can be judged says so, and is counted apart from "not decided"
    everything = {(v, m) for v in VARIANTS for m in T.PAPER_METRICS}
    assert C.check_claim(6, per_seed, not_learned=everything).verdict == C.NOT_TESTABLE
    counts = C.verdict_counts([C.NOT_TESTABLE, C.UNDECIDED, C.HOLDS + C.ON_BOUNDARY])
    assert counts == {C.HOLDS: 1, C.UNDECIDED: 1, C.NOT_TESTABLE: 1, "fragile": 1}
    assert C.counts_sentence(counts) == ("1 hold, 1 not decided, 1 not testable on this benchmark; "
                                         "1 of them fragile (may differ on another machine)")


def test_the_why_of_a_magnitude_claim_says_which_way_the_gain_differs_from_the_papers():
    means = paper_means()
    for m in ("sim_mse", "sim_mae"):   # CDCML 40% below ACP-Net: more than the paper's 22.1% and 5.4%
        means["cdcml"][m] = 0.6 * means["acp_net"][m]
    eight_b = C.check_claim("8b", per_seed_from(means, own_spread=1e-5))
    assert eight_b.verdict == C.FAILS
    assert eight_b.why.startswith("cdcml improves on acp_net in the paper's direction, but by more than the paper says")
    assert "sim_mse ours 40.0% vs paper 22.1%" in eight_b.why


def test_the_why_names_the_benchmarks_construction_where_sp_net_decides_a_similarity_check():
    means = paper_means()
    for v in ("l3_net", "acp_net"):   # SP-Net best on similarity, as on the embedded benchmark
        means[v]["sim_mse"] = means["sp_net"]["sim_mse"] * 1.5
    per_seed = per_seed_from(means, own_spread=1e-5)
    two = C.check_claim(2, per_seed, construction={"sim_mse": 0.0, "sim_mae": 0.0})
    assert two.verdict == C.FAILS and "l3_net beats sp_net" not in two.why
    assert "sp_net beats l3_net on sim_mse" in two.why
    assert "On similarity the benchmark favours SP-Net by construction" in two.why and "sim MSE 0.0000" in two.why
    assert "by construction" not in C.check_claim(2, per_seed).why   # only with the measurement


def test_projections_are_shown_as_ranges_only():
    assert C.projection_range(22) == C.projection_range(40) == "tens of paired seeds might decide it"
    assert C.projection_range(123) == "hundreds of paired seeds might decide it"
    assert C.projection_range(C.MAX_PROJECTED_SEEDS + 1).startswith("more seeds would not decide it")
