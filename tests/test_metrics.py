"""cdcml_lib.metrics against values computed by hand and against scipy."""
import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from cdcml_lib.metrics import all_metrics, correspondence_accuracy, ndcg_at_k, paper_metrics, spearman_per_query

# The keys of metrics.json, as docs/ARCHITECTURE.md lists them.
METRICS_JSON_KEYS = {"sim_mse", "sim_mae", "img_v_mse", "img_v_mae", "img_a_mse", "img_a_mae", "mus_v_mse",
                     "mus_v_mae", "mus_a_mse", "mus_a_mae", "ndcg_at_10", "spearman", "corr_acc"}


def test_paper_metrics_by_hand():
    score, pred = [0.5, 0.2, 0.9], [0.6, 0.0, 0.9]          # errors 0.1, -0.2, 0
    y_img, va_img = [[0.1, 0.2], [0.5, 0.5]], [[0.3, 0.2], [0.5, 0.1]]  # v errors 0.2, 0; a errors 0, -0.4
    y_mus, va_mus = [[0.0, 1.0]], [[0.5, 0.5]]              # v error 0.5, a error -0.5
    m = paper_metrics(score, pred, y_img, va_img, y_mus, va_mus)
    expected = {"sim_mse": (0.01 + 0.04) / 3, "sim_mae": 0.3 / 3,
                "img_v_mse": 0.04 / 2, "img_v_mae": 0.2 / 2, "img_a_mse": 0.16 / 2, "img_a_mae": 0.4 / 2,
                "mus_v_mse": 0.25, "mus_v_mae": 0.5, "mus_a_mse": 0.25, "mus_a_mae": 0.5}
    assert m.keys() == expected.keys()
    for k, v in expected.items():
        assert math.isclose(m[k], v, abs_tol=1e-12), k


def test_paper_metrics_count_each_item_once_with_ids():
    # Image "a" appears three times (e.g. once per pair): with ids it counts once.
    y_img = [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 1.0]]
    va_img = [[0.1, 0.0], [0.1, 0.0], [0.1, 0.0], [0.7, 1.0]]
    y_mus = va_mus = [[0.5, 0.5]]
    m = paper_metrics([0.5], [0.5], y_img, va_img, y_mus, va_mus, img_ids=["a", "a", "a", "b"])
    assert math.isclose(m["img_v_mse"], (0.01 + 0.09) / 2)
    assert math.isclose(m["img_v_mae"], (0.1 + 0.3) / 2)


def test_conflicting_labels_for_one_id_are_an_error():
    with pytest.raises(ValueError, match=r"image id 'a' has conflicting true VA labels \(row 1"):
        paper_metrics([0.5], [0.5], [[0, 0], [1, 1]], [[0, 0], [0, 0]], [[0, 0]], [[0, 0]], img_ids=["a", "a"])


def test_bad_inputs_name_the_array_and_row():
    with pytest.raises(ValueError, match=r"pred has 1 non-finite value\(s\), first at row 1"):
        paper_metrics([0.5, 0.5], [0.5, np.nan], [[0, 0]], [[0, 0]], [[0, 0]], [[0, 0]])
    with pytest.raises(ValueError, match="lengths"):
        paper_metrics([0.5, 0.5], [0.5], [[0, 0]], [[0, 0]], [[0, 0]], [[0, 0]])
    with pytest.raises(ValueError, match=r"va_mus_pred must have shape \[N, 2\]"):
        paper_metrics([0.5], [0.5], [[0, 0]], [[0, 0]], [[0, 0]], [0, 0])


def test_ndcg_on_a_ranking_computed_by_hand():
    # Clip "x": true 0.9, 0.5, 0.1; predicted order puts them 3rd, 1st, 2nd -> ranked gains 0.5, 0.1, 0.9.
    # Clip "y": predicted order equals the true order -> nDCG 1.
    music = ["x", "x", "x", "y", "y"]
    true = [0.9, 0.5, 0.1, 0.8, 0.3]
    pred = [0.2, 0.8, 0.5, 0.6, 0.1]
    log2_3 = math.log2(3)
    dcg_x = 0.5 / 1 + 0.1 / log2_3 + 0.9 / 2
    idcg_x = 0.9 / 1 + 0.5 / log2_3 + 0.1 / 2
    assert math.isclose(ndcg_at_k(music, true, pred, k=10), (dcg_x / idcg_x + 1.0) / 2, rel_tol=1e-12)
    # Cut at k = 2: only the first two ranks count.
    dcg_x2, idcg_x2 = 0.5 + 0.1 / log2_3, 0.9 + 0.5 / log2_3
    assert math.isclose(ndcg_at_k(music, true, pred, k=2), (dcg_x2 / idcg_x2 + 1.0) / 2, rel_tol=1e-12)
    # k = 1: clip x's top prediction has gain 0.5 of the best 0.9
    assert math.isclose(ndcg_at_k(music, true, pred, k=1), (0.5 / 0.9 + 1.0) / 2, rel_tol=1e-12)


def test_ndcg_is_one_for_a_perfect_ranking_and_lower_for_a_reversed_one():
    rng = np.random.default_rng(0)
    music = np.repeat(np.arange(6), 8)
    true = rng.uniform(0.05, 1, size=48)
    assert math.isclose(ndcg_at_k(music, true, true), 1.0)
    assert ndcg_at_k(music, true, -true) < 0.9


def test_spearman_per_query_matches_scipy():
    rng = np.random.default_rng(1)
    music = np.repeat(["a", "b", "c", "d"], [5, 7, 2, 6])  # "c" has 2 pairs: skipped
    true = np.round(rng.uniform(size=20), 1)                  # rounding makes ties
    pred = np.round(true + rng.normal(0, 0.3, size=20), 1)
    out = spearman_per_query(music, true, pred)
    expected = [spearmanr(true[music == q], pred[music == q])[0] for q in ("a", "b", "d")]
    assert out["n_queries"] == 3
    assert math.isclose(out["per_query"], float(np.mean(expected)), rel_tol=1e-12)
    assert math.isclose(out["global"], spearmanr(true, pred)[0], rel_tol=1e-12)


def test_spearman_skips_clips_with_constant_predictions():
    out = spearman_per_query(["a"] * 3 + ["b"] * 3, [0.1, 0.5, 0.9, 0.1, 0.5, 0.9], [0.2, 0.2, 0.2, 0.1, 0.3, 0.2])
    assert out["n_queries"] == 1 and math.isclose(out["per_query"], 0.5)


def test_correspondence_accuracy_by_hand():
    # agree, disagree, disagree (0.5 counts as corresponding), agree
    assert correspondence_accuracy([0.6, 0.4, 0.5, 0.2], [0.7, 0.6, 0.49, 0.1]) == 0.5
    assert correspondence_accuracy([0.6, 0.2], [0.35, 0.1], threshold=0.3) == 1.0


def test_all_metrics_gives_every_metrics_json_key():
    rng = np.random.default_rng(2)
    music = np.repeat(np.arange(5), 6)
    score = rng.uniform(0.05, 1, size=30)
    pred = np.clip(score + rng.normal(0, 0.1, size=30), 0, 1)
    y_img, y_mus = rng.uniform(size=(9, 2)), rng.uniform(size=(5, 2))
    m = all_metrics(music_ids=music, score=score, pred=pred, y_img=y_img, va_img_pred=y_img + 0.1,
                    y_mus=y_mus, va_mus_pred=y_mus, img_ids=None, mus_ids=None)
    assert set(m) == METRICS_JSON_KEYS
    assert all(isinstance(v, float) and math.isfinite(v) for v in m.values())
    assert math.isclose(m["img_v_mae"], 0.1) and m["mus_a_mse"] == 0.0
    assert m["ndcg_at_10"] == ndcg_at_k(music, score, pred) and m["corr_acc"] == correspondence_accuracy(score, pred)
