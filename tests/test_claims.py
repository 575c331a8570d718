"""The claims checklist on constructed per-seed numbers: clearly holds, clearly fails, within noise."""
import json
import math

import pandas as pd
import pytest

from cdcml_lib.results import claims as C
from cdcml_lib.results import tables as T

VARIANTS = ["sp_net", "l3_net", "acp_net", "cdcml", "contrastive", "sim", "sim_cfr", "sim_cfr_cfm", "sim_va"]
OFFSETS = [-1.0, 0.0, 1.0]  # three seeds: sample sd = spread


def per_seed_from(means: dict[str, dict[str, float]], spread: float, offsets=OFFSETS) -> pd.DataFrame:
    rows = []
    for variant, metrics in means.items():
        for seed, off in enumerate(offsets):
            rows.append({"variant": variant, "seed": seed, **{m: v + off * spread for m, v in metrics.items()}})
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
    return {c.number: c.verdict for c in claims}


def test_the_papers_own_numbers_make_every_claim_hold():
    # Checks our reading of each claim: the paper's tables, with a tiny seed spread, support it.
    claims = C.check_claims(per_seed_from(paper_means(), spread=1e-4))
    assert verdicts(claims) == {n: C.HOLDS for n in range(1, 9)}, [c.reason for c in claims if c.verdict != C.HOLDS]
    claim4 = claims[3]
    assert claim4.extra["sim_mse_relative_gain"]["ours"] == pytest.approx(1 - 0.074 / 0.083, abs=1e-3)


def test_a_clear_reversal_makes_claims_fail_and_says_so_per_metric():
    means = paper_means()
    means["cdcml"]["sim_mse"] = 0.100  # worse than every baseline but SP-Net
    claims = {c.number: c for c in C.check_claims(per_seed_from(means, spread=1e-4))}
    one = claims[1]
    assert one.verdict == C.FAILS
    assert one.per_metric["sim_mse"] == C.FAILS
    assert all(v == C.HOLDS for m, v in one.per_metric.items() if m != "sim_mse")
    assert "disagrees with the paper" in one.reason and "sim_mse" in one.reason
    assert ("Against: sim_mse (claimed cdcml better than l3_net; ours the reverse), "
            "sim_mse (claimed cdcml better than acp_net; ours the reverse).") in one.summary
    assert claims[7].verdict == C.FAILS and claims[7].per_metric["sim_mse"] == C.FAILS
    eight = claims[8]
    assert eight.verdict == C.FAILS  # negative gain: the interval excludes 22.1%
    assert "smaller" in eight.reason and "disagrees with the paper" in eight.reason
    assert claims[3].verdict == C.HOLDS  # claims not about cdcml are untouched


def test_differences_within_seed_noise_are_not_decided():
    claims = C.check_claims(per_seed_from(paper_means(), spread=0.05))
    assert all(c.verdict == C.UNDECIDED for c in claims), verdicts(claims)
    assert "within 2 standard errors" in claims[0].reason


def test_k_sigma_moves_the_line_between_decided_and_not():
    # sim_cfr_cfm beats sim_cfr by 0.002 on sim_mse; with sd 0.002 over 3 seeds SE = 0.00163.
    means = paper_means()
    per_seed = per_seed_from(means, spread=0.002)
    check = C.improvement_check(per_seed, "sim_cfr_cfm", "sim_cfr", "sim_mse", C.Rule(k_sigma=1.0))
    assert check.estimate == pytest.approx(0.002)
    assert check.se == pytest.approx(math.sqrt(2 * 0.002 ** 2 / 3))  # unpaired SE
    assert check.outcome == C.SUPPORTS
    assert C.improvement_check(per_seed, "sim_cfr_cfm", "sim_cfr", "sim_mse", C.Rule(k_sigma=2.0)).outcome \
        == C.NO_DECISION


def test_one_seed_decides_nothing_unless_min_seeds_is_one():
    per_seed = per_seed_from(paper_means(), spread=0.0, offsets=[0.0])
    assert all(c.verdict == C.UNDECIDED for c in C.check_claims(per_seed))
    assert all(c.verdict == C.HOLDS for c in C.check_claims(per_seed, min_seeds=1))


def test_claim_8_compares_relative_gains_with_the_papers():
    means = paper_means()
    means["cdcml"]["sim_mse"] = 0.086 * (1 - 0.40)  # 40% gain: better than the paper says
    eight = C.check_claim(8, per_seed_from(means, spread=1e-4))
    assert eight.verdict == C.FAILS
    assert eight.per_metric == {"sim_mse": C.FAILS, "sim_mae": C.HOLDS}
    assert eight.checks[0].estimate == pytest.approx(0.40, abs=1e-3)
    assert "larger" in eight.reason


def test_a_claim_whose_rows_are_absent_is_not_checked():
    per_seed = per_seed_from({v: m for v, m in paper_means().items() if v != "sp_net"}, spread=1e-4)
    claims = verdicts(C.check_claims(per_seed))
    assert claims[1] == C.NOT_CHECKED and claims[2] == C.NOT_CHECKED and claims[3] == C.HOLDS


def test_claims_files_hold_every_verdict_and_the_numbers(tmp_path):
    means = paper_means()
    means["cdcml"]["sim_mse"] = 0.100
    claims = C.check_claims(per_seed_from(means, spread=1e-4), k_sigma=3)
    paths = C.write_claims(claims, tmp_path, k_sigma=3)
    record = json.loads(paths["json"].read_text())
    assert record["rule"] == {"k_sigma": 3, "min_seeds": 2}
    assert [c["verdict"] for c in record["claims"]] == [c.verdict for c in claims]
    first = record["claims"][0]
    assert {"metric", "what", "estimate", "se", "paper_estimate", "outcome", "numbers"} <= set(first["checks"][0])
    md = paths["md"].read_text()
    assert "| 1 | CDCML is best on every metric of Table 3. | **does not hold** |" in md
    assert "sim_mse: does not hold" in md and "exceeds 3 standard errors" in md
