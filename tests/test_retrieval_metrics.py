"""recall@K, MRR and the threshold fit (cdcml_lib.metrics) against brute-force loops."""
import numpy as np
import pytest

from cdcml_lib import metrics as M


def loop_rank(scores, relevant, candidates):
    """Sort the query's candidates by score (high first), non-relevant first among ties; the
    position of the first relevant one (1-based), or 0 when none is relevant."""
    order = sorted((j for j in range(len(scores)) if candidates[j]),
                   key=lambda j: (-scores[j], bool(relevant[j])))
    for pos, j in enumerate(order, start=1):
        if relevant[j]:
            return pos
    return 0


@pytest.mark.parametrize("seed", range(5))
def test_ranks_recall_and_mrr_match_a_loop(seed):
    rng = np.random.default_rng(seed)
    q, g = 17, 23
    scores = rng.integers(0, 5, size=(q, g)).astype(float)  # many ties on purpose
    relevant = rng.random((q, g)) < 0.2
    candidates = rng.random((q, g)) < 0.7
    ranks = [loop_rank(scores[i], relevant[i], candidates[i]) for i in range(q)]
    assert M.first_relevant_ranks(scores, relevant, candidates).tolist() == ranks
    kept = np.array([r for r in ranks if r > 0])
    for k in (1, 3, 10):
        assert M.recall_at_k(scores, relevant, k, candidates) == pytest.approx(np.mean(kept <= k))
    assert M.mean_reciprocal_rank(scores, relevant, candidates) == pytest.approx(np.mean(1 / kept))


def test_perfect_and_reversed_rankings():
    s = np.array([[3.0, 2.0, 1.0]])
    assert M.recall_at_k(s, np.array([[True, False, False]]), 1) == 1.0
    assert M.mean_reciprocal_rank(-s, np.array([[True, False, False]])) == pytest.approx(1 / 3)


@pytest.mark.parametrize("seed", range(3))
def test_pair_retrieval_matches_a_loop(seed):
    rng = np.random.default_rng(seed)
    n = 300
    music = rng.integers(0, 20, n).astype(str)
    image = rng.integers(0, 25, n).astype(str)
    true = rng.integers(0, 4, n) / 4.0
    pred = rng.integers(0, 6, n) / 6.0
    got = M.pair_retrieval_metrics(music, image, true, pred, ks=(1, 3))
    for tag, queries in (("i2m", image), ("m2i", music)):
        ranks = []
        for qid in np.unique(queries):
            rows = np.flatnonzero(queries == qid)
            rel = true[rows] == true[rows].max()
            if len(rows) < 2 or rel.all():
                continue
            ranks.append(loop_rank(pred[rows], rel, np.ones(len(rows), bool)))
        ranks = np.array(ranks)
        assert got[f"{tag}_queries"] == len(ranks)
        assert got[f"{tag}_recall_at_1"] == pytest.approx(np.mean(ranks <= 1))
        assert got[f"{tag}_recall_at_3"] == pytest.approx(np.mean(ranks <= 3))
        assert got[f"{tag}_mrr"] == pytest.approx(np.mean(1 / ranks))


@pytest.mark.parametrize("seed", range(4))
def test_best_threshold_matches_a_search(seed):
    rng = np.random.default_rng(seed)
    v = rng.integers(0, 30, 80) / 7.0
    y = rng.random(80) < 1 / (1 + np.exp(-(v - 2)))
    t, acc = M.best_threshold(v, y)
    assert np.mean((v >= t) == y) == pytest.approx(acc)
    brute = max(np.mean((v >= c) == y) for c in np.concatenate([np.unique(v), [np.inf]]))
    assert acc == pytest.approx(brute)
