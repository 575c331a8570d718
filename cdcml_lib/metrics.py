"""The metrics of a run: the paper's (section 6.1 of Zhao et al. 2020) and the retrieval ones we add.

Each is written out, as Eqs. M1 to M5, in docs/METHOD.md, section "Metrics" (labels of ours: the
paper numbers none of them).

- :func:`paper_metrics` - MSE and MAE of the similarity, and of valence and arousal for images and music
  (the columns of the paper's Tables 3 and 4; lower is better).
- :func:`ndcg_at_k` - per test music clip, its test images ranked by predicted similarity (nDCG@k).
- :func:`spearman_per_query` - rank agreement of predicted and true scores, per clip and global.
- :func:`correspondence_accuracy` - ACP-Net's binary affective-correspondence accuracy (Verma et al. 2019).
- :func:`all_metrics` - every key of ``metrics.json`` (docs/ARCHITECTURE.md).
- :func:`first_relevant_ranks`, :func:`recall_at_k`, :func:`mean_reciprocal_rank` - cross-modal
  retrieval over a score matrix (image->music, music->image), and :func:`pair_retrieval_metrics`,
  the same over a list of scored pairs (what a run's evaluation has).
- :func:`best_threshold` - the decision threshold of a score that maximises accuracy (fitted on
  validation, used on test; ACP-Net's task read from another model's score or distance).

All inputs are numpy arrays (or anything ``np.asarray`` takes); all outputs are Python floats.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

METRIC_KEYS = ("sim_mse", "sim_mae", "img_v_mse", "img_v_mae", "img_a_mse", "img_a_mae",
               "mus_v_mse", "mus_v_mae", "mus_a_mse", "mus_a_mae", "ndcg_at_10", "spearman", "corr_acc")


def _vector(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one value per pair), got shape {a.shape}")
    bad = np.flatnonzero(~np.isfinite(a))
    if len(bad):
        raise ValueError(f"{name} has {len(bad)} non-finite value(s), first at row {bad[0]}: {a[bad[0]]}")
    return a


def _va(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"{name} must have shape [N, 2] (valence, arousal), got {a.shape}")
    bad = np.flatnonzero(~np.isfinite(a).all(axis=1))
    if len(bad):
        raise ValueError(f"{name} has non-finite values, first at row {bad[0]}: {a[bad[0]]}")
    return a


def _same_length(**arrays) -> None:
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"arrays must have one row per item/pair, got lengths {lengths}")
    if not next(iter(lengths.values())):
        raise ValueError(f"no rows to score: {list(lengths)} are empty")


def _distinct_rows(ids, y_true: np.ndarray, y_pred: np.ndarray, what: str):
    """The first row of each distinct id; an id whose true labels disagree between rows is an error."""
    if ids is None:
        return y_true, y_pred
    ids = np.asarray(ids)
    if len(ids) != len(y_true):
        raise ValueError(f"{what} ids: {len(ids)} rows, but the {what} VA arrays have {len(y_true)}; "
                         "pass one id per row")
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    conflict = np.flatnonzero(np.abs(y_true - y_true[first][inverse]).max(axis=1) > 1e-9)
    if len(conflict):
        r = conflict[0]
        bad_id = ids[r].item() if hasattr(ids[r], "item") else ids[r]
        raise ValueError(f"{what} id {bad_id!r} has conflicting true VA labels (row {r}: {y_true[r]}, "
                         f"first row {first[inverse[r]]}: {y_true[first[inverse[r]]]}); fix the item table")
    return y_true[first], y_pred[first]


def paper_metrics(score, pred, y_img, va_img_pred, y_mus, va_mus_pred, img_ids=None, mus_ids=None) -> dict:
    """The paper's metrics (Zhao et al. 2020, section 6.1; Tables 3, 4): MSE and MAE of the similarity
    over pairs, and MSE and MAE of valence and of arousal, for images and for music (Eqs. M1, M2 of
    docs/METHOD.md, section "Similarity and VA errors").

    ``score``, ``pred``: true and predicted similarity, one value per pair. ``y_img``, ``va_img_pred``
    [N, 2] and ``y_mus``, ``va_mus_pred`` [M, 2]: true and predicted (valence, arousal). The VA metrics
    are computed over the *distinct items* of each modality, each counted once: pass one row per item,
    or pass ``img_ids`` / ``mus_ids`` (one id per row) and repeated ids are reduced to their first row.
    Keys: sim_mse, sim_mae, img_v_mse, img_v_mae, img_a_mse, img_a_mae, mus_v_mse, mus_v_mae,
    mus_a_mse, mus_a_mae.
    """
    score, pred = _vector(score, "score"), _vector(pred, "pred")
    _same_length(score=score, pred=pred)
    out = {"sim_mse": float(np.mean((pred - score) ** 2)), "sim_mae": float(np.mean(np.abs(pred - score)))}
    for tag, y, p, ids, what in (("img", y_img, va_img_pred, img_ids, "image"),
                                 ("mus", y_mus, va_mus_pred, mus_ids, "music")):
        y, p = _va(y, f"y_{tag}"), _va(p, f"va_{tag}_pred")
        _same_length(**{f"y_{tag}": y, f"va_{tag}_pred": p})
        y, p = _distinct_rows(ids, y, p, what)
        for col, dim in ((0, "v"), (1, "a")):
            err = p[:, col] - y[:, col]
            out[f"{tag}_{dim}_mse"] = float(np.mean(err ** 2))
            out[f"{tag}_{dim}_mae"] = float(np.mean(np.abs(err)))
    return out


def _groups(music_ids) -> list[np.ndarray]:
    """Row indices of each music clip, in order of first appearance of the clip."""
    ids = np.asarray(music_ids)
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    order = np.argsort(first)
    return [np.flatnonzero(inverse == g) for g in order]


def _dcg(gains: np.ndarray) -> float:
    """Discounted cumulative gain of gains in rank order: sum_r gain_r / log2(r + 1), r from 1."""
    return float(np.sum(gains / np.log2(np.arange(2, len(gains) + 2))))


def ndcg_at_k(music_ids, true, pred, k: int = 10) -> float:
    """Mean over music clips of nDCG@k: each clip's images ranked by predicted similarity, graded
    relevance = the true score (linear gain), DCG = sum_{r<=k} true_r / log2(r + 1), normalised by the
    DCG of the ideal order. Ties in ``pred`` keep the input order (stable sort). A clip whose true
    scores are all 0 has no ideal gain and is skipped. Eq. M3 of docs/METHOD.md, section "nDCG@10"."""
    true, pred = _vector(true, "true"), _vector(pred, "pred")
    _same_length(music_ids=np.asarray(music_ids), true=true, pred=pred)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    values = []
    for rows in _groups(music_ids):
        ranked = true[rows][np.argsort(-pred[rows], kind="stable")][:k]
        ideal = np.sort(true[rows])[::-1][:k]
        best = _dcg(ideal)
        if best > 0:
            values.append(_dcg(ranked) / best)
    if not values:
        raise ValueError("ndcg_at_k: no clip has a positive true score")
    return float(np.mean(values))


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho: Pearson correlation of the average ranks; nan if either side is constant."""
    ra, rb = rankdata(a) - (len(a) + 1) / 2, rankdata(b) - (len(b) + 1) / 2
    denom = np.sqrt(np.sum(ra * ra) * np.sum(rb * rb))
    return float(np.sum(ra * rb) / denom) if denom > 0 else float("nan")


def spearman_per_query(music_ids, true, pred, min_pairs: int = 3) -> dict:
    """Spearman rank correlation between predicted and true scores (Eq. M4 of docs/METHOD.md,
    section "Spearman correlation per clip").

    Returns ``per_query``: the mean over music clips of the Spearman rho of that clip's pairs (clips
    with fewer than ``min_pairs`` pairs, or with constant true or predicted scores, are skipped);
    ``n_queries``: the clips averaged; ``global``: the rho over all pairs together.
    """
    true, pred = _vector(true, "true"), _vector(pred, "pred")
    _same_length(music_ids=np.asarray(music_ids), true=true, pred=pred)
    rhos = [_spearman(true[rows], pred[rows]) for rows in _groups(music_ids) if len(rows) >= min_pairs]
    rhos = [r for r in rhos if np.isfinite(r)]
    return {"per_query": float(np.mean(rhos)) if rhos else float("nan"),
            "n_queries": len(rhos),
            "global": _spearman(true, pred)}


def correspondence_accuracy(true, pred, threshold: float = 0.5) -> float:
    """Binary affective-correspondence accuracy (ACP-Net, Verma et al. 2019): a pair corresponds when
    its score is >= ``threshold``; the fraction of pairs where prediction and truth agree (Eq. M5 of
    docs/METHOD.md, section "Correspondence accuracy"; the threshold is our reading:
    docs/METHOD.md, section "Correspondence of a continuous score")."""
    true, pred = _vector(true, "true"), _vector(pred, "pred")
    _same_length(true=true, pred=pred)
    return float(np.mean((true >= threshold) == (pred >= threshold)))


def all_metrics(*, music_ids, score, pred, y_img, va_img_pred, y_mus, va_mus_pred,
                img_ids=None, mus_ids=None) -> dict:
    """Every key of ``metrics.json`` (docs/ARCHITECTURE.md): the :func:`paper_metrics`, ``ndcg_at_10``,
    ``spearman`` (the per-clip mean of :func:`spearman_per_query`) and ``corr_acc``.
    ``music_ids``, ``score``, ``pred`` have one row per pair; the VA arrays one row per item (or
    repeated rows with ``img_ids`` / ``mus_ids``, see :func:`paper_metrics`). Eqs. M1 to M5 of
    docs/METHOD.md, section "Metrics"."""
    out = paper_metrics(score, pred, y_img, va_img_pred, y_mus, va_mus_pred, img_ids=img_ids, mus_ids=mus_ids)
    out["ndcg_at_10"] = ndcg_at_k(music_ids, score, pred, k=10)
    out["spearman"] = spearman_per_query(music_ids, score, pred)["per_query"]
    out["corr_acc"] = correspondence_accuracy(score, pred)
    return {k: out[k] for k in METRIC_KEYS}


# --- retrieval: recall@K and MRR (beyond both papers; docs/METHOD.md, section "13. The kit's ACP-Net study") -----------------

def first_relevant_ranks(scores, relevant, candidates=None) -> np.ndarray:
    """The rank (1 = top) of the first relevant candidate of each query, candidates sorted by score
    from high to low with ties broken AGAINST the relevant ones (a pessimistic, order-free rule):
    rank_q = 1 + #{non-relevant candidates c of q : score[q, c] >= max relevant score of q}
    (docs/METHOD.md, section "Recall@K and MRR").

    ``scores``, ``relevant`` (bool) and ``candidates`` (bool, default all) are [Q, G] (queries by
    gallery items). Queries with no relevant candidate get rank 0 (callers skip them).
    """
    s = np.asarray(scores, dtype=np.float64)
    rel = np.asarray(relevant, dtype=bool)
    cand = np.ones_like(rel) if candidates is None else np.asarray(candidates, dtype=bool)
    if s.ndim != 2 or rel.shape != s.shape or cand.shape != s.shape:
        raise ValueError(f"scores, relevant and candidates must be [queries, gallery] arrays of one "
                         f"shape, got {s.shape}, {rel.shape}, {cand.shape}")
    if not np.isfinite(s[cand]).all():
        raise ValueError("scores has non-finite values among the candidates")
    rel = rel & cand
    best = np.where(rel, s, -np.inf).max(axis=1, initial=-np.inf)
    ahead = (cand & ~rel & (s >= best[:, None])).sum(axis=1)
    return np.where(rel.any(axis=1), ahead + 1, 0).astype(np.int64)


def recall_at_k(scores, relevant, k: int, candidates=None) -> float:
    """Recall@K: the fraction of queries (with at least one relevant candidate) whose first
    relevant candidate is within the top ``k`` (:func:`first_relevant_ranks`; docs/METHOD.md,
    section "Recall@K and MRR")."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    ranks = first_relevant_ranks(scores, relevant, candidates)
    ranks = ranks[ranks > 0]
    if not len(ranks):
        raise ValueError("recall_at_k: no query has a relevant candidate")
    return float(np.mean(ranks <= k))


def mean_reciprocal_rank(scores, relevant, candidates=None) -> float:
    """MRR: the mean over queries (with a relevant candidate) of 1 / rank of the first relevant
    candidate (:func:`first_relevant_ranks`; docs/METHOD.md, section "Recall@K and MRR")."""
    ranks = first_relevant_ranks(scores, relevant, candidates)
    ranks = ranks[ranks > 0]
    if not len(ranks):
        raise ValueError("mean_reciprocal_rank: no query has a relevant candidate")
    return float(np.mean(1.0 / ranks))


def _pair_ranks(query_ids, true: np.ndarray, pred: np.ndarray, min_candidates: int) -> np.ndarray:
    """First-relevant ranks per query over a list of scored pairs: a query's candidates are the
    items it is paired with, its relevant ones those with its highest true score. Queries with
    fewer than ``min_candidates`` candidates, or whose candidates all tie on the true score (all
    relevant: nothing to rank), are left out."""
    _, inv = np.unique(np.asarray(query_ids).astype(str), return_inverse=True)
    n = inv.max() + 1
    count = np.bincount(inv, minlength=n)
    top = np.full(n, -np.inf)
    np.maximum.at(top, inv, true)
    rel = true >= top[inv]
    best = np.full(n, -np.inf)
    np.maximum.at(best, inv[rel], pred[rel])
    ahead = np.bincount(inv, weights=(~rel) & (pred >= best[inv]), minlength=n)
    n_rel = np.bincount(inv, weights=rel, minlength=n)
    keep = (count >= min_candidates) & (n_rel < count)
    return (ahead[keep] + 1).astype(np.int64)


def pair_retrieval_metrics(music_ids, image_ids, true, pred, ks=(1, 5, 10),
                           min_candidates: int = 2) -> dict:
    """Recall@K and MRR in both directions over a list of scored pairs (one run's test pairs;
    docs/METHOD.md, section "Recall@K and MRR").

    Image->music (``i2m``): each image is a query, its candidates are the clips it is paired with,
    ranked by ``pred``; the relevant ones are those with its highest true ``score``. Music->image
    (``m2i``) the other way round. Ranks follow :func:`first_relevant_ranks` (ties against the
    relevant). Keys: ``i2m_recall_at_<k>``, ``i2m_mrr``, ``m2i_recall_at_<k>``, ``m2i_mrr``,
    ``i2m_queries``, ``m2i_queries`` (the queries kept; see :func:`_pair_ranks`).
    """
    true, pred = _vector(true, "true"), _vector(pred, "pred")
    music_ids, image_ids = np.asarray(music_ids), np.asarray(image_ids)
    _same_length(music_ids=music_ids, image_ids=image_ids, true=true, pred=pred)
    out = {}
    for tag, queries in (("i2m", image_ids), ("m2i", music_ids)):
        ranks = _pair_ranks(queries, true, pred, min_candidates)
        for k in ks:
            out[f"{tag}_recall_at_{k}"] = float(np.mean(ranks <= k)) if len(ranks) else float("nan")
        out[f"{tag}_mrr"] = float(np.mean(1.0 / ranks)) if len(ranks) else float("nan")
        out[f"{tag}_queries"] = int(len(ranks))
    return out


def best_threshold(values, labels) -> tuple[float, float]:
    """The threshold t maximising the accuracy of "label 1 when value >= t" on (values, labels),
    and that accuracy. Candidates are the midpoints between sorted distinct values and one below
    the smallest; the lowest best t wins ties. Use -distance for a distance (docs/METHOD.md,
    section "The regression models on ACP-Net's task")."""
    v, y = _vector(values, "values"), np.asarray(labels).astype(bool)
    _same_length(values=v, labels=y)
    distinct = np.unique(v)
    cands = np.concatenate([[distinct[0] - 1.0], (distinct[:-1] + distinct[1:]) / 2])
    # accuracy(t) = (#positives with v >= t + #negatives with v < t) / n, for every candidate at once
    order = np.sort(v[y]); neg = np.sort(v[~y])
    tp = len(order) - np.searchsorted(order, cands, side="left")
    tn = np.searchsorted(neg, cands, side="left")
    acc = (tp + tn) / len(v)
    i = int(np.argmax(acc))
    return float(cands[i]), float(acc[i])
