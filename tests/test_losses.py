"""The losses of cdcml_lib.losses against slow explicit loops, values and gradients, plus their properties."""
import math

import pytest
import torch

from cdcml_lib.losses import (CDCMLLoss, CrossModalFeatureMarginLoss, CrossModalFeatureRatioLoss, InfoNCELoss,
                              SingleModalFeatureRatioLoss, build_loss, embedding_distance, similarity_mse_loss,
                              va_mse_loss)

SIGMA = 0.4
DIM = 4


# ---------------------------------------------------------------- slow references, one number at a time
def loop_distance(a, b, power):
    squared = sum((a[k] - b[k]) ** 2 for k in range(len(a)))
    return squared if power == 2 else squared ** (power / 2)


def loop_va_distance(y1, y2):
    return ((y1[0] - y2[0]) ** 2 + (y1[1] - y2[1]) ** 2) ** 0.5


def loop_label_distance(s, kind):
    return -torch.log(s) if kind == "neg_log_s" else 1 - s


def loop_log_ratio(d_ap, d_aq, l_ap, l_aq, eps):
    return (torch.log(d_ap + eps) - torch.log(d_aq + eps) - (torch.log(l_ap + eps) - torch.log(l_aq + eps))) ** 2


def loop_cfr(f_img, f_mus, batch, trip, kind, triplets, power, eps):
    """Eq. 2 over given triplets: mean over image anchors plus mean over music anchors."""
    total = 0.0
    for anchor_is_image in (True, False):
        anchors = trip["img_anchor" if anchor_is_image else "mus_anchor"].tolist()
        pqs = trip["img_pq" if anchor_is_image else "mus_pq"].tolist()
        terms = []
        for a, (p, q) in zip(anchors, pqs):
            d, lab = [], []
            for o in (p, q):
                if anchor_is_image:
                    d.append(loop_distance(f_img[a], f_mus[o], power))
                    i, m = a, o
                else:
                    d.append(loop_distance(f_mus[a], f_img[o], power))
                    i, m = o, a
                if triplets == "dense":
                    s = torch.exp(-loop_va_distance(batch["y_img"][i], batch["y_mus"][m]) / SIGMA)
                else:
                    s = batch["score"][o]
                lab.append(loop_label_distance(s, kind))
            terms.append(loop_log_ratio(d[0], d[1], lab[0], lab[1], eps))
        if terms:
            total = total + sum(terms) / len(terms)
    return total


def loop_sfr(f, y, trip, power, eps):
    terms = []
    for a, p, q in trip.tolist():
        terms.append(loop_log_ratio(loop_distance(f[a], f[p], power), loop_distance(f[a], f[q], power),
                                    loop_va_distance(y[a], y[p]), loop_va_distance(y[a], y[q]), eps))
    return sum(terms) / len(terms)


# ---------------------------------------------------------------- fixtures
def make_batch(seed=0, B=12, n_images=7, n_music=5):
    g = torch.Generator().manual_seed(seed)
    image_idx = torch.randint(0, n_images, (B,), generator=g)
    music_idx = torch.randint(0, n_music, (B,), generator=g)
    y_img_item = torch.rand(n_images, 2, generator=g, dtype=torch.float64)
    y_mus_item = torch.rand(n_music, 2, generator=g, dtype=torch.float64)
    f_img_item = torch.randn(n_images, DIM, generator=g, dtype=torch.float64)
    f_mus_item = torch.randn(n_music, DIM, generator=g, dtype=torch.float64)
    y_img, y_mus = y_img_item[image_idx], y_mus_item[music_idx]
    batch = {"image_idx": image_idx, "music_idx": music_idx, "y_img": y_img, "y_mus": y_mus,
             "score": torch.exp(-torch.linalg.vector_norm(y_img - y_mus, dim=1) / SIGMA)}
    # Repeated items carry the same embedding, as a model gives them.
    out = {"f_img": f_img_item[image_idx].clone().requires_grad_(True),
           "f_mus": f_mus_item[music_idx].clone().requires_grad_(True),
           "s_hat": torch.rand(B, generator=g, dtype=torch.float64).requires_grad_(True),
           "va_img": torch.rand(B, 2, generator=g, dtype=torch.float64).requires_grad_(True),
           "va_mus": torch.rand(B, 2, generator=g, dtype=torch.float64).requires_grad_(True)}
    return out, batch


def assert_same_value_and_grad(fast, slow, leaves):
    assert torch.allclose(fast, torch.as_tensor(slow, dtype=fast.dtype), rtol=1e-9, atol=1e-12)
    g_fast = torch.autograd.grad(fast, leaves, allow_unused=True)
    g_slow = torch.autograd.grad(slow, leaves, allow_unused=True)
    for a, b in zip(g_fast, g_slow):
        a = torch.zeros_like(leaves[0]) if a is None else a
        b = torch.zeros_like(leaves[0]) if b is None else b
        assert torch.allclose(a, b, rtol=1e-7, atol=1e-10)


# ---------------------------------------------------------------- shared pieces
@pytest.mark.parametrize("power", [1, 2])
def test_embedding_distance_matches_loop(power):
    a, b = torch.randn(5, DIM, dtype=torch.float64), torch.randn(5, DIM, dtype=torch.float64)
    fast = embedding_distance(a, b, power)
    for r in range(5):
        assert math.isclose(fast[r].item(), loop_distance(a[r], b[r], power).item(), rel_tol=1e-12)


def test_embedding_distance_has_finite_gradient_at_zero():
    a = torch.ones(1, DIM, requires_grad=True)
    embedding_distance(a, torch.ones(1, DIM), 1).sum().backward()
    assert torch.isfinite(a.grad).all()


# ---------------------------------------------------------------- Eq. 2
@pytest.mark.parametrize("kind", ["neg_log_s", "one_minus_s"])
@pytest.mark.parametrize("power", [1, 2])
def test_cfr_dense_matches_loop(kind, power):
    out, batch = make_batch(seed=1)
    loss = CrossModalFeatureRatioLoss(kind, "dense", power, 1e-4, SIGMA)
    trip = loss.sample_triplets(batch["image_idx"], batch["music_idx"], torch.Generator().manual_seed(5))
    fast, n = loss(out["f_img"], out["f_mus"], image_idx=batch["image_idx"], music_idx=batch["music_idx"],
                   y_img=batch["y_img"], y_mus=batch["y_mus"], generator=torch.Generator().manual_seed(5))
    slow = loop_cfr(out["f_img"], out["f_mus"], batch, trip, kind, "dense", power, 1e-4)
    assert n == len(batch["image_idx"].unique()) + len(batch["music_idx"].unique())
    assert_same_value_and_grad(fast, slow, [out["f_img"], out["f_mus"]])


def test_cfr_dense_triplets_are_valid():
    _, batch = make_batch(seed=2)
    loss = CrossModalFeatureRatioLoss(sigma=SIGMA)
    trip = loss.sample_triplets(batch["image_idx"], batch["music_idx"], torch.Generator().manual_seed(0))
    img, mus = batch["image_idx"], batch["music_idx"]
    # each distinct image is an anchor exactly once; its two neighbours are two different clips
    assert sorted(img[trip["img_anchor"]].tolist()) == sorted(img.unique().tolist())
    assert (mus[trip["img_pq"][:, 0]] != mus[trip["img_pq"][:, 1]]).all()
    assert sorted(mus[trip["mus_anchor"]].tolist()) == sorted(mus.unique().tolist())
    assert (img[trip["mus_pq"][:, 0]] != img[trip["mus_pq"][:, 1]]).all()


def pairs_batch():
    # image 0 listed with clips 0, 1, 2; image 1 with clip 0 only; image 3 with clip 4, twice (one pair).
    image_idx = torch.tensor([0, 0, 1, 0, 3, 3])
    music_idx = torch.tensor([0, 1, 0, 2, 4, 4])
    g = torch.Generator().manual_seed(3)
    batch = {"image_idx": image_idx, "music_idx": music_idx,
             "score": torch.rand(6, generator=g, dtype=torch.float64) * 0.9 + 0.05,
             "y_img": torch.rand(6, 2, dtype=torch.float64, generator=g),
             "y_mus": torch.rand(6, 2, dtype=torch.float64, generator=g)}
    f_img = torch.randn(6, DIM, dtype=torch.float64, generator=g).requires_grad_(True)
    f_mus = torch.randn(6, DIM, dtype=torch.float64, generator=g).requires_grad_(True)
    return f_img, f_mus, batch


def test_cfr_pairs_uses_only_anchors_with_two_listed_partners():
    f_img, f_mus, batch = pairs_batch()
    loss = CrossModalFeatureRatioLoss(triplets="pairs")
    for seed in range(10):
        trip = loss.sample_triplets(batch["image_idx"], batch["music_idx"], torch.Generator().manual_seed(seed))
        # Only image 0 has two distinct partners; clip 0 is listed with images 0 and 1.
        assert batch["image_idx"][trip["img_anchor"]].tolist() == [0]
        assert batch["music_idx"][trip["mus_anchor"]].tolist() == [0]
        p, q = trip["img_pq"][0].tolist()
        assert p != q and batch["image_idx"][p] == 0 and batch["image_idx"][q] == 0
        p, q = trip["mus_pq"][0].tolist()
        assert sorted(batch["image_idx"][[p, q]].tolist()) == [0, 1]


@pytest.mark.parametrize("kind", ["neg_log_s", "one_minus_s"])
def test_cfr_pairs_matches_loop(kind):
    f_img, f_mus, batch = pairs_batch()
    loss = CrossModalFeatureRatioLoss(kind, "pairs", 1, 1e-4)
    trip = loss.sample_triplets(batch["image_idx"], batch["music_idx"], torch.Generator().manual_seed(9))
    fast, n = loss(f_img, f_mus, image_idx=batch["image_idx"], music_idx=batch["music_idx"],
                   score=batch["score"], generator=torch.Generator().manual_seed(9))
    assert n == 2
    slow = loop_cfr(f_img, f_mus, batch, trip, kind, "pairs", 1, 1e-4)
    assert_same_value_and_grad(fast, slow, [f_img, f_mus])


def test_cfr_pairs_without_anchors_is_zero_and_says_so():
    f_img, f_mus, batch = pairs_batch()
    keep = torch.tensor([2, 4, 5])  # image 1 - clip 0, image 3 - clip 4 twice: nobody has two partners
    out = {"f_img": f_img[keep], "f_mus": f_mus[keep]}
    b = {k: v[keep] for k, v in batch.items()}
    total, terms = CDCMLLoss(w_sim_mse=0, w_cfm=0, w_va_mse=0, w_sfr=0, triplets="pairs")(out, b)
    assert total.item() == 0 and terms["cfr"].item() == 0 and terms["cfr_triplets"].item() == 0


# ---------------------------------------------------------------- Eqs. 4, 5
@pytest.mark.parametrize("power", [1, 2])
def test_sfr_matches_loop(power):
    out, batch = make_batch(seed=4)
    loss = SingleModalFeatureRatioLoss(power, 1e-4)
    trip = loss.sample_triplets(batch["image_idx"], torch.Generator().manual_seed(1))
    fast = loss(out["f_img"], batch["y_img"], batch["image_idx"], torch.Generator().manual_seed(1))
    # each distinct image anchors once, with two other distinct images
    img = batch["image_idx"]
    assert sorted(img[trip[:, 0]].tolist()) == sorted(img.unique().tolist())
    assert (img[trip[:, 0]] != img[trip[:, 1]]).all() and (img[trip[:, 0]] != img[trip[:, 2]]).all()
    assert (img[trip[:, 1]] != img[trip[:, 2]]).all()
    slow = loop_sfr(out["f_img"], batch["y_img"], trip, power, 1e-4)
    assert_same_value_and_grad(fast, slow, [out["f_img"]])


def test_sfr_with_fewer_than_three_items_is_zero():
    f = torch.randn(4, DIM, requires_grad=True)
    loss = SingleModalFeatureRatioLoss()(f, torch.rand(4, 2), torch.tensor([0, 1, 0, 1]))
    assert loss.item() == 0


# ---------------------------------------------------------------- properties of the log-ratio terms
def test_log_ratio_terms_do_not_depend_on_embedding_scale():
    out, batch = make_batch(seed=6)
    cfr = CrossModalFeatureRatioLoss(sigma=SIGMA, epsilon=1e-12)
    sfr = SingleModalFeatureRatioLoss(epsilon=1e-12)
    kw = dict(image_idx=batch["image_idx"], music_idx=batch["music_idx"], y_img=batch["y_img"], y_mus=batch["y_mus"])
    base_cfr, _ = cfr(out["f_img"], out["f_mus"], generator=torch.Generator().manual_seed(0), **kw)
    base_sfr = sfr(out["f_mus"], batch["y_mus"], batch["music_idx"], torch.Generator().manual_seed(0))
    for c in (0.01, 7.0):
        scaled_cfr, _ = cfr(c * out["f_img"], c * out["f_mus"], generator=torch.Generator().manual_seed(0), **kw)
        scaled_sfr = sfr(c * out["f_mus"], batch["y_mus"], batch["music_idx"], torch.Generator().manual_seed(0))
        assert base_cfr.item() > 0.01 and base_sfr.item() > 0.01
        assert math.isclose(scaled_cfr.item(), base_cfr.item(), rel_tol=1e-8)
        assert math.isclose(scaled_sfr.item(), base_sfr.item(), rel_tol=1e-8)


def embeddings_proportional_to_labels(batch, c=3.0):
    """f = c * (v, a, 0, 0): embedding distances are c times the VA distances, in and across modalities."""
    pad = torch.zeros(len(batch["y_img"]), DIM - 2, dtype=torch.float64)
    return c * torch.cat([batch["y_img"], pad], 1), c * torch.cat([batch["y_mus"], pad], 1)


def test_ratio_terms_are_zero_when_distances_are_proportional_with_power_1_and_neg_log_s():
    # With distance_power 1 and label_distance neg_log_s (-log s = VA distance / sigma under Eq. 1),
    # Eqs. 2, 4 and 5 vanish when embedding distances are proportional to VA distances.
    _, batch = make_batch(seed=7)
    f_img, f_mus = embeddings_proportional_to_labels(batch)
    kw = dict(image_idx=batch["image_idx"], music_idx=batch["music_idx"], y_img=batch["y_img"],
              y_mus=batch["y_mus"], generator=torch.Generator().manual_seed(0))
    cfr, n = CrossModalFeatureRatioLoss("neg_log_s", "dense", 1, 1e-12, SIGMA)(f_img, f_mus, **kw)
    sfr = SingleModalFeatureRatioLoss(1, 1e-12)(f_img, batch["y_img"], batch["image_idx"])
    assert n > 0 and cfr.item() < 1e-12 and sfr.item() < 1e-12
    # The same holds in "pairs" mode when the listed scores follow Eq. 1.
    f_img_p, f_mus_p, pb = pairs_batch()
    img_va = torch.tensor([[0.1, 0.9], [0.7, 0.3], [0.0, 0.0], [0.5, 0.5]], dtype=torch.float64)
    mus_va = torch.tensor([[0.2, 0.2], [0.5, 0.8], [0.9, 0.1], [0.0, 0.0], [0.4, 0.6]], dtype=torch.float64)
    pb["y_img"], pb["y_mus"] = img_va[pb["image_idx"]], mus_va[pb["music_idx"]]
    pb["score"] = torch.exp(-torch.linalg.vector_norm(pb["y_img"] - pb["y_mus"], dim=1) / SIGMA)
    fi, fm = embeddings_proportional_to_labels(pb)
    cfr_p, n_p = CrossModalFeatureRatioLoss("neg_log_s", "pairs", 1, 1e-12)(
        fi, fm, image_idx=pb["image_idx"], music_idx=pb["music_idx"], score=pb["score"])
    assert n_p == 2 and cfr_p.item() < 1e-12


@pytest.mark.parametrize("kind,power", [("neg_log_s", 2), ("one_minus_s", 1)])
def test_other_readings_are_not_zero_on_proportional_distances(kind, power):
    # The literal squared D (power 2), or 1 - s, do not vanish on that geometry: the property is the default's.
    _, batch = make_batch(seed=7)
    f_img, f_mus = embeddings_proportional_to_labels(batch)
    cfr, _ = CrossModalFeatureRatioLoss(kind, "dense", power, 1e-12, SIGMA)(
        f_img, f_mus, image_idx=batch["image_idx"], music_idx=batch["music_idx"], y_img=batch["y_img"],
        y_mus=batch["y_mus"], generator=torch.Generator().manual_seed(0))
    assert cfr.item() > 1e-3


# ---------------------------------------------------------------- Eq. 3
@pytest.mark.parametrize("power", [1, 2])
def test_cfm_matches_loop(power):
    out, _ = make_batch(seed=8)
    margin = 2.0
    fast = CrossModalFeatureMarginLoss(margin, power)(out["f_img"], out["f_mus"])
    B = len(out["f_img"])
    slow = sum(torch.clamp(loop_distance(out["f_img"][b], out["f_mus"][b], power) - margin, min=0)
               for b in range(B)) / B
    assert 0 < fast.item()
    assert_same_value_and_grad(fast, slow, [out["f_img"], out["f_mus"]])


def test_cfm_is_zero_when_all_pairs_are_within_the_margin():
    f_img = torch.randn(10, DIM)
    f_mus = f_img + 0.1 * torch.randn(10, DIM).clamp(-1, 1)  # every distance <= 0.1 * sqrt(DIM) = 0.2
    assert CrossModalFeatureMarginLoss(margin=0.25)(f_img, f_mus).item() == 0


# ---------------------------------------------------------------- Eqs. 6, 7
def test_similarity_and_va_mse_match_loops():
    out, batch = make_batch(seed=9)
    B = len(batch["score"])
    slow = sum((out["s_hat"][b] - batch["score"][b]) ** 2 for b in range(B)) / B
    assert_same_value_and_grad(similarity_mse_loss(out["s_hat"], batch["score"]), slow, [out["s_hat"]])
    slow = sum((out["va_img"][b, k] - batch["y_img"][b, k]) ** 2 for b in range(B) for k in range(2)) / (2 * B)
    assert_same_value_and_grad(va_mse_loss(out["va_img"], batch["y_img"]), slow, [out["va_img"]])


# ---------------------------------------------------------------- Eq. 8
def test_cdcml_total_is_the_weighted_sum_of_its_terms():
    out, batch = make_batch(seed=10)
    w = dict(w_sim_mse=0.5, w_cfr=2.0, w_cfm=1.5, w_va_mse=3.0, w_sfr=0.25)
    total, terms = CDCMLLoss(**w, sigma=SIGMA, margin=0.5)(out, batch, generator=torch.Generator().manual_seed(0))
    assert set(terms) == {"sim_mse", "cfr", "cfm", "va_mse", "sfr_img", "sfr_mus", "cfr_triplets"}
    expected = (0.5 * terms["sim_mse"] + 2.0 * terms["cfr"] + 1.5 * terms["cfm"] + 3.0 * terms["va_mse"]
                + 0.25 * (terms["sfr_img"] + terms["sfr_mus"]))
    assert torch.allclose(total.detach(), expected)
    assert all(not v.requires_grad and v.dim() == 0 for v in terms.values())
    total.backward()
    assert all(torch.isfinite(out[k].grad).all() for k in out)


def test_cdcml_va_mse_counts_each_item_once():
    out, batch = make_batch(seed=11)
    _, terms = CDCMLLoss(w_sim_mse=0, w_cfr=0, w_cfm=0, w_sfr=0)(out, batch)
    parts = []
    for va, y, idx in ((out["va_img"], batch["y_img"], batch["image_idx"]),
                       (out["va_mus"], batch["y_mus"], batch["music_idx"])):
        seen, errs = set(), []
        for b in range(len(idx)):
            if idx[b].item() not in seen:
                seen.add(idx[b].item())
                errs += [(va[b, k] - y[b, k]).item() ** 2 for k in range(2)]
        parts.append(sum(errs) / len(errs))
    assert math.isclose(terms["va_mse"].item(), sum(parts), rel_tol=1e-10)


@pytest.mark.parametrize("off,gone", [("w_sim_mse", ["sim_mse"]), ("w_cfr", ["cfr", "cfr_triplets"]),
                                      ("w_cfm", ["cfm"]), ("w_va_mse", ["va_mse"]),
                                      ("w_sfr", ["sfr_img", "sfr_mus"])])
def test_weight_zero_switches_the_term_off(off, gone):
    out, batch = make_batch(seed=12)
    _, terms = CDCMLLoss(**{off: 0.0}, sigma=SIGMA)(out, batch)
    assert not set(gone) & set(terms)
    assert terms  # the other terms are still there


def test_switched_off_term_needs_no_model_output():
    out, batch = make_batch(seed=13)
    del out["va_img"], out["va_mus"]
    total, terms = CDCMLLoss(w_va_mse=0, sigma=SIGMA)(out, batch)
    assert "va_mse" not in terms and torch.isfinite(total)
    with pytest.raises(ValueError, match=r"va_mse.*va_img.*w_va_mse: 0"):
        CDCMLLoss(sigma=SIGMA)(out, batch)


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="label_distance"):
        CDCMLLoss(label_distance="log_s", sigma=SIGMA)
    with pytest.raises(ValueError, match="triplets"):
        CDCMLLoss(triplets="all", sigma=SIGMA)
    with pytest.raises(ValueError, match="sigma"):
        CDCMLLoss()  # dense triplets need sigma
    with pytest.raises(ValueError, match="every CDCMLLoss weight is 0"):
        CDCMLLoss(w_sim_mse=0, w_cfr=0, w_cfm=0, w_va_mse=0, w_sfr=0)
    out, batch = make_batch(seed=0)
    del batch["image_idx"]
    with pytest.raises(KeyError, match="image_idx"):
        CDCMLLoss(sigma=SIGMA)(out, batch)


def test_draws_are_deterministic_under_manual_seed():
    out, batch = make_batch(seed=14)
    loss = CDCMLLoss(sigma=SIGMA)
    torch.manual_seed(123)
    first, _ = loss(out, batch)
    torch.manual_seed(123)
    again, _ = loss(out, batch)
    assert first.item() == again.item()


def test_build_loss_reads_the_train_parameters():
    loss = build_loss({"model": "cdcml", "w_cfr": 0.0, "margin": 0.3, "triplets": "pairs"}, sigma=None)
    assert isinstance(loss, CDCMLLoss) and "cfr" not in loss.terms and loss.terms["cfm"].loss.margin == 0.3
    assert isinstance(build_loss({"model": "contrastive"}, sigma=SIGMA), InfoNCELoss)


# ---------------------------------------------------------------- InfoNCE
def test_infonce_matches_loop():
    out, batch = make_batch(seed=15, B=6)
    t, tt = 0.2, 0.3
    fast = InfoNCELoss(t, tt, SIGMA).infonce(out["f_img"], out["f_mus"], batch["y_img"], batch["y_mus"])
    fi, fm, B = out["f_img"], out["f_mus"], 6

    def cos(a, b):
        return sum(a[k] * b[k] for k in range(DIM)) / (loop_distance(a, 0 * a, 1) * loop_distance(b, 0 * b, 1))

    def s(i, j):  # Eq. 1 between image of row i and clip of row j
        return torch.exp(-loop_va_distance(batch["y_img"][i], batch["y_mus"][j]) / SIGMA)

    def cross_entropy(logit_row, target_row):
        z = sum(torch.exp(v) for v in logit_row)
        zt = sum(torch.exp(v) for v in target_row)
        return -sum(torch.exp(target_row[j]) / zt * (logit_row[j] - torch.log(z)) for j in range(B))

    i2m = sum(cross_entropy([cos(fi[i], fm[j]) / t for j in range(B)], [s(i, j) / tt for j in range(B)])
              for i in range(B)) / B
    m2i = sum(cross_entropy([cos(fi[i], fm[j]) / t for i in range(B)], [s(i, j) / tt for i in range(B)])
              for j in range(B)) / B
    assert_same_value_and_grad(fast, 0.5 * (i2m + m2i), [fi, fm])


def test_infonce_forward_and_switches():
    out, batch = make_batch(seed=16)
    total, terms = InfoNCELoss(sigma=SIGMA)(out, batch)
    assert set(terms) == {"infonce"} and total.item() == terms["infonce"].item()
    total, terms = InfoNCELoss(sigma=SIGMA, w_va_mse=2.0)(out, batch)
    assert set(terms) == {"infonce", "va_mse"}
    assert math.isclose(total.item(), terms["infonce"].item() + 2.0 * terms["va_mse"].item(), rel_tol=1e-10)
    del out["va_img"]
    with pytest.raises(ValueError, match="va_img"):
        InfoNCELoss(sigma=SIGMA, w_va_mse=1.0)(out, batch)
