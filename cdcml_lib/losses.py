"""The losses of CDCML (Zhao et al. 2020, section 5), one class or function per equation.

Each equation is written out in docs/METHOD.md, section "Losses"; each docstring below cites its own
subsection there.

Shared pieces
-------------
- :func:`embedding_distance` - D(a, b) = ||a - b||_2 ** ``distance_power``.
- :func:`log_ratio_term` - the log-ratio term of Kim et al. 2019,
  l(a, p, q) = (log D(a,p) - log D(a,q) - [log delta(a,p) - log delta(a,q)])^2, epsilon inside the logs.
- :func:`eq1_score` - Eq. 1, s = exp(-||y_I - y_M||_2 / sigma), in torch.
- :func:`label_distance_from_score` - delta from a matching score: ``-log s`` or ``1 - s``.

The equations
-------------
- :class:`CrossModalFeatureRatioLoss` (Eq. 2), :class:`CrossModalFeatureMarginLoss` (Eq. 3),
  :class:`SingleModalFeatureRatioLoss` (Eqs. 4, 5), :func:`similarity_mse_loss` (Eq. 6),
  :func:`va_mse_loss` (Eq. 7), :class:`CDCMLLoss` (Eq. 8, the weighted sum).
- :class:`InfoNCELoss` - our modern contrastive baseline (not in the paper).

Defaults and why
----------------
Each default below is our reading of a gap in the paper (docs/METHOD.md, sections "Power of the
embedding distance", "Label distance of the cross-modal ratio", "Where the cross-modal neighbours
come from", "Epsilon, margin and loss weights" and "Repeated items in a batch").

``distance_power = 1`` (plain Euclidean D). The paper writes D as the *squared* distance while its label
distance is a plain one; taken literally (power 2), a log-ratio term is zero when the embedding distance
is proportional to the *square root* of the label distance. With power 1 the term is zero exactly when
embedding distances are proportional to label distances, as in the log-ratio authors' public code.

``label_distance = "neg_log_s"``. Under Eq. 1, -log s(i, j) = ||y_I - y_M|| / sigma, so the cross-modal
label distance is the VA distance divided by one constant; sigma cancels in the ratio. With power 1 the
cross-modal term (Eq. 2) is then zero exactly when embedding distances are proportional to VA
distances - the same property as the single-modal terms (Eqs. 4, 5), so all three terms ask for one
geometry. ``"one_minus_s"`` (1 - s) is offered as the other reading of the lost expression.

``triplets = "dense"``. With VA labels every cross-modal score follows from Eq. 1, so each anchor of
the batch can take two partners drawn at random from the whole batch ("at one time", as the paper
says), instead of only the few listed partners that share its batch. ``"pairs"`` uses listed pairs
only (for data with similarity labels alone).

``epsilon = 1e-4`` keeps the logs finite; it is small next to typical label distances (-log s of the
published IMEMNet pairs has mean about 1.0) and next to embedding distances at the margin scale.
``margin = 1.0``: the paper does not give m. The log-ratio terms do not depend on the scale of the
embedding, so m mainly fixes that scale: pairs farther apart than m are pulled in.

Within one modality, and for dense cross-modal triplets, each *distinct* item of the batch (by
``image_idx`` / ``music_idx``) is one anchor: a batch of pairs repeats items, and a repeated item would
otherwise be its own neighbour at distance 0.

Random draws use the ``generator`` passed to ``forward`` or, if none, torch's global RNG, so they
are deterministic under ``torch.manual_seed``. Draws are made on the CPU and moved to the data's device.

On a GPU the host waits for the device wherever a tensor's size depends on its values
(``torch.unique``) or a value is read on the host (``int(t)``, ``.item()``) or a tensor is copied from
pageable host memory. Per training step, :class:`CDCMLLoss` finds the distinct items of each
modality once and hands them to the triplet samplers, and the random keys of :func:`draw_two` go
through pinned memory: two waits remain (one ``torch.unique`` per modality), where there were sixteen
(``benchmarks/gpu_check.py`` counts them with the profiler). The numbers are unchanged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cdcml_lib.matching import score_from_distance

LABEL_DISTANCES = ("neg_log_s", "one_minus_s")
TRIPLET_SOURCES = ("dense", "pairs")
TERM_NAMES = ("sim_mse", "cfr", "cfm", "va_mse", "sfr_img", "sfr_mus")

# Smallest squared distance fed to a fractional power, so that the gradient of the square root stays
# finite when two embeddings coincide.
_MIN_SQUARED_DISTANCE = 1e-12
# Smallest score fed to -log s.
_MIN_SCORE = 1e-12


# ----------------------------------------------------------------------------------------------
# Shared pieces
# ----------------------------------------------------------------------------------------------
def embedding_distance(a: Tensor, b: Tensor, power: float = 1) -> Tensor:
    """D(a, b) = ||a - b||_2 ** power, row by row (the D of Eqs. 2-5 of Zhao et al. 2020;
    docs/METHOD.md, section "Embedding distance and the log-ratio term").

    power 1 is the plain Euclidean distance, power 2 the squared one the paper writes.
    """
    squared = ((a - b) ** 2).sum(dim=-1)
    if power == 2:
        return squared
    return squared.clamp_min(_MIN_SQUARED_DISTANCE).pow(power / 2)


def log_ratio_term(d_ap: Tensor, d_aq: Tensor, delta_ap: Tensor, delta_aq: Tensor,
                   epsilon: float) -> Tensor:
    """The log-ratio term of Kim et al. 2019, one value per triplet (a, p, q):

    l(a, p, q) = (log(D(a,p)+eps) - log(D(a,q)+eps) - [log(delta(a,p)+eps) - log(delta(a,q)+eps)])^2,

    the building block of Eqs. 2, 4 and 5 (docs/METHOD.md, section "Embedding distance and the
    log-ratio term").
    """
    embedding_log_ratio = torch.log(d_ap + epsilon) - torch.log(d_aq + epsilon)
    label_log_ratio = torch.log(delta_ap + epsilon) - torch.log(delta_aq + epsilon)
    return (embedding_log_ratio - label_log_ratio) ** 2


def eq1_score(y_img: Tensor, y_mus: Tensor, sigma: float) -> Tensor:
    """Eq. 1 of Zhao et al. 2020, row by row: s = exp(-||y_I - y_M||_2 / sigma)
    (docs/METHOD.md, section "The matching score (Eq. 1)")."""
    return score_from_distance(torch.linalg.vector_norm(y_img - y_mus, dim=-1), sigma)


def label_distance_from_score(score: Tensor, kind: str) -> Tensor:
    """delta of Eq. 2 from a matching score: ``"neg_log_s"`` gives -log s, ``"one_minus_s"`` gives 1 - s
    (docs/METHOD.md, section "Eq. 2: cross-modal feature ratio")."""
    if kind == "neg_log_s":
        return -torch.log(score.clamp_min(_MIN_SCORE))
    if kind == "one_minus_s":
        return 1.0 - score
    raise ValueError(f"label_distance must be one of {LABEL_DISTANCES}, got {kind!r}")


def draw_two(allowed: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """For each row of the boolean matrix ``allowed`` [A, N], two distinct allowed columns drawn
    uniformly at random: a long tensor [A, 2]. Every row must allow at least two columns.
    The neighbours of Eqs. 2, 4 and 5 (docs/METHOD.md, section "Triplets in a batch")."""
    keys = torch.rand(allowed.shape, generator=generator)
    if allowed.device.type == "cuda":  # from pinned memory the copy does not make the host wait
        keys = keys.pin_memory()
    keys = keys.to(allowed.device, non_blocking=True)
    keys = keys.masked_fill(~allowed, 2.0)  # disallowed columns sort last
    return keys.argsort(dim=1)[:, :2]


def first_positions(ids: Tensor) -> Tensor:
    """Positions of the first occurrence of each distinct value of ``ids`` [B] (in order of value):
    the distinct items of a batch, each one anchor (docs/METHOD.md, section "Triplets in a batch")."""
    # The number of distinct values is the length of unique's output, known on the host once
    # unique returns: reading it from the device (int(inverse.max())) would wait a second time.
    values, inverse = torch.unique(ids, return_inverse=True)
    positions = torch.arange(ids.numel(), device=ids.device)
    first = torch.full((len(values),), ids.numel(), dtype=torch.long, device=ids.device)
    return first.scatter_reduce(0, inverse, positions, reduce="amin")


def _check_choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}; "
                         f"set train.{name} in params/<config>.yaml or the variant file")


def _check_positive(name: str, value) -> None:
    if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive number, got {value!r}; "
                         f"set train.{name} in params/<config>.yaml")


# ----------------------------------------------------------------------------------------------
# Eq. 2: cross-modal feature ratio
# ----------------------------------------------------------------------------------------------
class CrossModalFeatureRatioLoss(nn.Module):
    """L_cfr, Eq. 2 of Zhao et al. 2020: log-ratio terms with an image anchor and two music clips,
    plus log-ratio terms with a music anchor and two images (docs/METHOD.md, section "Eq. 2:
    cross-modal feature ratio").

    The loss is the mean term over image anchors plus the mean term over music anchors. The label
    distance delta comes from the matching score s (``label_distance``: -log s or 1 - s).

    ``triplets="dense"``: each distinct image of the batch is an anchor with two distinct music clips
    of the batch drawn at random, and each distinct clip an anchor with two images; s comes from the
    VA labels through Eq. 1 (needs ``sigma``).
    ``triplets="pairs"``: only listed pairs; an anchor with at least two distinct listed partners in
    the batch takes two of them at random, and s is the listed score. Without such an anchor the
    loss is 0 (``forward`` returns the triplet count, 0 then).
    """

    def __init__(self, label_distance: str = "neg_log_s", triplets: str = "dense",
                 distance_power: float = 1, epsilon: float = 1e-4, sigma: float | None = None):
        super().__init__()
        _check_choice("label_distance", label_distance, LABEL_DISTANCES)
        _check_choice("triplets", triplets, TRIPLET_SOURCES)
        _check_positive("distance_power", distance_power)
        _check_positive("epsilon", epsilon)
        if triplets == "dense":
            if sigma is None:
                raise ValueError("CrossModalFeatureRatioLoss with triplets='dense' needs sigma (Eq. 1), "
                                 "the dataset's stats.json value; or use triplets='pairs'")
            _check_positive("sigma", sigma)
        self.label_distance = label_distance
        self.triplets = triplets
        self.distance_power = distance_power
        self.epsilon = epsilon
        self.sigma = sigma

    def sample_triplets(self, image_idx: Tensor, music_idx: Tensor,
                        generator: torch.Generator | None = None,
                        firsts: tuple[Tensor, Tensor] | None = None) -> dict[str, Tensor]:
        """Draw the triplets of one batch, as batch positions.

        Returns ``img_anchor [A], img_pq [A, 2]`` (positions whose *music* are p and q) and
        ``mus_anchor [C], mus_pq [C, 2]`` (positions whose *images* are p and q). ``firsts``:
        ``(first_positions(image_idx), first_positions(music_idx))`` if the caller has them.
        """
        if firsts is None:
            firsts = first_positions(image_idx), first_positions(music_idx)
        if self.triplets == "dense":
            return self._dense_triplets(*firsts, generator)
        return self._pair_triplets(image_idx, music_idx, *firsts, generator)

    @staticmethod
    def _dense_triplets(img_first, mus_first, generator):
        out = {}
        for name, anchors, others in (("img", img_first, mus_first), ("mus", mus_first, img_first)):
            if len(others) < 2 or len(anchors) == 0:
                anchors = anchors[:0]
                out[f"{name}_pq"] = torch.zeros((0, 2), dtype=torch.long, device=anchors.device)
            else:
                allowed = torch.ones((len(anchors), len(others)), dtype=torch.bool, device=anchors.device)
                out[f"{name}_pq"] = others[draw_two(allowed, generator)]
            out[f"{name}_anchor"] = anchors
        return out

    @staticmethod
    def _pair_triplets(image_idx, music_idx, img_first, mus_first, generator):
        # One position per distinct listed pair, so that a repeated pair is not two partners.
        # (The key's stride stays a device tensor: int() of it would make the host wait.)
        pair_key = image_idx * (music_idx.max() + 1) + music_idx
        pair_pos = first_positions(pair_key)
        out = {}
        for name, own, anchor_pos in (("img", image_idx, img_first), ("mus", music_idx, mus_first)):
            # allowed[a, j]: distinct pair j belongs to anchor a.
            allowed = own[anchor_pos][:, None] == own[pair_pos][None, :]
            keep = allowed.sum(dim=1) >= 2
            anchor_pos, allowed = anchor_pos[keep], allowed[keep]
            if len(anchor_pos):
                out[f"{name}_pq"] = pair_pos[draw_two(allowed, generator)]
            else:
                out[f"{name}_pq"] = torch.zeros((0, 2), dtype=torch.long, device=own.device)
            out[f"{name}_anchor"] = anchor_pos
        return out

    def _log_ratio_side(self, f_anchor: Tensor, f_other: Tensor, anchor: Tensor, pq: Tensor,
                        delta_of) -> Tensor:
        """Mean log-ratio term over anchors ``anchor`` with neighbours ``pq`` of the other modality;
        ``delta_of(anchor_pos, other_pos)`` gives the label distance."""
        if len(anchor) == 0:
            return f_anchor.new_zeros(())
        d = [embedding_distance(f_anchor[anchor], f_other[pq[:, k]], self.distance_power) for k in (0, 1)]
        delta = [delta_of(anchor, pq[:, k]) for k in (0, 1)]
        return log_ratio_term(d[0], d[1], delta[0], delta[1], self.epsilon).mean()

    def loss_on_triplets(self, f_img: Tensor, f_mus: Tensor, triplets: Mapping[str, Tensor], *,
                         score: Tensor | None = None, y_img: Tensor | None = None,
                         y_mus: Tensor | None = None) -> Tensor:
        """Eq. 2 on given triplets (from :meth:`sample_triplets`)."""
        def delta(s: Tensor) -> Tensor:
            return label_distance_from_score(s, self.label_distance)

        if self.triplets == "dense":  # s from the VA labels through Eq. 1
            img_delta = lambda a, o: delta(eq1_score(y_img[a], y_mus[o], self.sigma))  # noqa: E731
            mus_delta = lambda a, o: delta(eq1_score(y_img[o], y_mus[a], self.sigma))  # noqa: E731
        else:  # the neighbour's position is a listed pair with the anchor: its listed score
            img_delta = mus_delta = lambda a, o: delta(score[o])  # noqa: E731
        return (self._log_ratio_side(f_img, f_mus, triplets["img_anchor"], triplets["img_pq"], img_delta)
                + self._log_ratio_side(f_mus, f_img, triplets["mus_anchor"], triplets["mus_pq"], mus_delta))

    def forward(self, f_img: Tensor, f_mus: Tensor, *, image_idx: Tensor, music_idx: Tensor,
                score: Tensor | None = None, y_img: Tensor | None = None, y_mus: Tensor | None = None,
                generator: torch.Generator | None = None,
                firsts: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, int]:
        """Returns (L_cfr, number of triplets used); ``firsts`` as in :meth:`sample_triplets`."""
        if self.triplets == "dense" and (y_img is None or y_mus is None):
            raise ValueError("triplets='dense' needs the VA labels y_img and y_mus of the batch")
        if self.triplets == "pairs" and score is None:
            raise ValueError("triplets='pairs' needs the listed matching scores of the batch")
        triplets = self.sample_triplets(image_idx, music_idx, generator, firsts)
        n = len(triplets["img_anchor"]) + len(triplets["mus_anchor"])
        return self.loss_on_triplets(f_img, f_mus, triplets, score=score, y_img=y_img, y_mus=y_mus), n


# ----------------------------------------------------------------------------------------------
# Eq. 3: cross-modal feature margin
# ----------------------------------------------------------------------------------------------
class CrossModalFeatureMarginLoss(nn.Module):
    """L_cfm, Eq. 3 of Zhao et al. 2020: mean over the batch's image-music pairs of
    max(0, D(f_I, f_M) - m), m the largest tolerated distance (docs/METHOD.md, section "Eq. 3:
    cross-modal feature margin")."""

    def __init__(self, margin: float = 1.0, distance_power: float = 1):
        super().__init__()
        _check_positive("margin", margin)
        _check_positive("distance_power", distance_power)
        self.margin = margin
        self.distance_power = distance_power

    def forward(self, f_img: Tensor, f_mus: Tensor) -> Tensor:
        d = embedding_distance(f_img, f_mus, self.distance_power)
        return F.relu(d - self.margin).mean()


# ----------------------------------------------------------------------------------------------
# Eqs. 4, 5: single-modal feature ratio
# ----------------------------------------------------------------------------------------------
class SingleModalFeatureRatioLoss(nn.Module):
    """L_sfr^I and L_sfr^M, Eqs. 4 and 5 of Zhao et al. 2020: the log-ratio term within one modality,
    label distance delta = Euclidean distance of the VA labels (docs/METHOD.md, section "Eqs. 4 and
    5: single-modal feature ratio").

    Each distinct item of the batch (by its index) is an anchor with two other distinct items drawn
    at random. With fewer than three distinct items the loss is 0.
    """

    def __init__(self, distance_power: float = 1, epsilon: float = 1e-4):
        super().__init__()
        _check_positive("distance_power", distance_power)
        _check_positive("epsilon", epsilon)
        self.distance_power = distance_power
        self.epsilon = epsilon

    @staticmethod
    def sample_triplets(item_idx: Tensor, generator: torch.Generator | None = None,
                        first: Tensor | None = None) -> Tensor:
        """Triplets as batch positions, a long tensor [A, 3]: anchor, p, q. ``first``:
        ``first_positions(item_idx)`` if the caller has it."""
        first = first_positions(item_idx) if first is None else first
        if len(first) < 3:
            return torch.zeros((0, 3), dtype=torch.long, device=item_idx.device)
        allowed = ~torch.eye(len(first), dtype=torch.bool, device=item_idx.device)  # not the anchor itself
        pq = draw_two(allowed, generator)
        return torch.stack([first, first[pq[:, 0]], first[pq[:, 1]]], dim=1)

    def loss_on_triplets(self, f: Tensor, y: Tensor, triplets: Tensor) -> Tensor:
        if len(triplets) == 0:
            return f.new_zeros(())
        a, p, q = triplets.unbind(dim=1)
        d_ap = embedding_distance(f[a], f[p], self.distance_power)
        d_aq = embedding_distance(f[a], f[q], self.distance_power)
        delta_ap = torch.linalg.vector_norm(y[a] - y[p], dim=-1)
        delta_aq = torch.linalg.vector_norm(y[a] - y[q], dim=-1)
        return log_ratio_term(d_ap, d_aq, delta_ap, delta_aq, self.epsilon).mean()

    def forward(self, f: Tensor, y: Tensor, item_idx: Tensor,
                generator: torch.Generator | None = None, first: Tensor | None = None) -> Tensor:
        return self.loss_on_triplets(f, y, self.sample_triplets(item_idx, generator, first))


# ----------------------------------------------------------------------------------------------
# Eqs. 6, 7: the regression losses
# ----------------------------------------------------------------------------------------------
def similarity_mse_loss(s_hat: Tensor, score: Tensor) -> Tensor:
    """L_sim-mse, Eq. 6 of Zhao et al. 2020: mean over pairs of (s_hat - s)^2 (docs/METHOD.md,
    section "Eq. 6: similarity regression")."""
    return ((s_hat.reshape(-1) - score.reshape(-1)) ** 2).mean()


def va_mse_loss(va_pred: Tensor, va_true: Tensor) -> Tensor:
    """One modality's part of L_va-mse, Eq. 7 of Zhao et al. 2020: mean over items and over
    (valence, arousal) of the squared error. :class:`CDCMLLoss` adds the image and music parts
    (docs/METHOD.md, section "Eq. 7: VA regression")."""
    return ((va_pred - va_true) ** 2).mean()


# ----------------------------------------------------------------------------------------------
# Eq. 8: the total
# ----------------------------------------------------------------------------------------------
_BATCH_NEEDS = ("score", "y_img", "y_mus", "music_idx", "image_idx")


@dataclass
class BatchView:
    """What every term of one batch shares: the first position of each distinct image and clip
    (terms over items count each item once) and the generator of the random draws
    (docs/METHOD.md, section "Eq. 8: the total loss")."""

    img_first: Tensor
    mus_first: Tensor
    generator: torch.Generator | None = None


class LossTerm(nn.Module):
    """One named term of the total loss (Eq. 8). A subclass sets ``name`` (the key a variant
    weights it by, ``terms: {name: weight}``), ``needs`` (the model outputs it reads) and
    ``equation``, takes the loss options it uses as keyword arguments (ignoring the others), and
    returns from :meth:`parts` its named scalars (each weighted by the term's weight) and any
    extra detached numbers to log. :func:`register_term` makes it available to :class:`CDCMLLoss`;
    the order of registration is the order of the sum (docs/METHOD.md, section "Eq. 8: the total loss")."""

    name: str = ""
    needs: tuple[str, ...] = ()
    equation: str = ""

    def parts(self, out: Mapping[str, Tensor], batch: Mapping[str, Tensor],
              view: BatchView) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        raise NotImplementedError


#: every term a variant may name, by name, in the order they are summed (:func:`register_term`)
LOSS_TERMS: dict[str, type[LossTerm]] = {}


def register_term(cls: type[LossTerm]) -> type[LossTerm]:
    """Class decorator: make ``cls`` a term of :class:`CDCMLLoss`, named ``cls.name``
    (docs/METHOD.md, section "Eq. 8: the total loss")."""
    if not cls.name or cls.name in LOSS_TERMS:
        raise ValueError(f"a loss term needs a new name; {cls.name!r} is empty or taken")
    LOSS_TERMS[cls.name] = cls
    return cls


@register_term
class SimilarityMSETerm(LossTerm):
    """L_sim-mse, Eq. 6: the similarity predictor's squared error (docs/METHOD.md, section
    "Eq. 6: similarity regression")."""

    name, needs, equation = "sim_mse", ("s_hat",), "Eq. 6"

    def __init__(self, **_options):
        super().__init__()

    def parts(self, out, batch, view):
        return {"sim_mse": similarity_mse_loss(out["s_hat"], batch["score"])}, {}


@register_term
class CrossModalFeatureRatioTerm(LossTerm):
    """L_cfr, Eq. 2 (:class:`CrossModalFeatureRatioLoss`), and the number of triplets drawn
    (docs/METHOD.md, section "Eq. 2: cross-modal feature ratio")."""

    name, needs, equation = "cfr", ("f_img", "f_mus"), "Eq. 2"

    def __init__(self, label_distance="neg_log_s", triplets="dense", distance_power=1, epsilon=1e-4,
                 sigma=None, **_options):
        super().__init__()
        self.loss = CrossModalFeatureRatioLoss(label_distance, triplets, distance_power, epsilon, sigma)

    def parts(self, out, batch, view):
        value, n = self.loss(out["f_img"], out["f_mus"], image_idx=batch["image_idx"],
                             music_idx=batch["music_idx"], score=batch["score"], y_img=batch["y_img"],
                             y_mus=batch["y_mus"], generator=view.generator,
                             firsts=(view.img_first, view.mus_first))
        return {"cfr": value}, {"cfr_triplets": torch.tensor(float(n))}  # n is a host int (shapes): no wait


@register_term
class CrossModalFeatureMarginTerm(LossTerm):
    """L_cfm, Eq. 3 (:class:`CrossModalFeatureMarginLoss`; docs/METHOD.md, section
    "Eq. 3: cross-modal feature margin")."""

    name, needs, equation = "cfm", ("f_img", "f_mus"), "Eq. 3"

    def __init__(self, margin=1.0, distance_power=1, **_options):
        super().__init__()
        self.loss = CrossModalFeatureMarginLoss(margin, distance_power)

    def parts(self, out, batch, view):
        return {"cfm": self.loss(out["f_img"], out["f_mus"])}, {}


@register_term
class VAMSETerm(LossTerm):
    """L_va-mse, Eq. 7: the image MSE plus the music MSE, each over the batch's distinct items
    (docs/METHOD.md, section "Eq. 7: VA regression")."""

    name, needs, equation = "va_mse", ("va_img", "va_mus"), "Eq. 7"

    def __init__(self, **_options):
        super().__init__()

    def parts(self, out, batch, view):
        f_i, f_m = view.img_first, view.mus_first
        return {"va_mse": va_mse_loss(out["va_img"][f_i], batch["y_img"][f_i])
                + va_mse_loss(out["va_mus"][f_m], batch["y_mus"][f_m])}, {}


@register_term
class SingleModalFeatureRatioTerm(LossTerm):
    """L_sfr^I + L_sfr^M, Eqs. 4 and 5 (:class:`SingleModalFeatureRatioLoss`), one part each
    (docs/METHOD.md, section "Eqs. 4 and 5: single-modal feature ratio")."""

    name, needs, equation = "sfr", ("f_img", "f_mus"), "Eqs. 4, 5"

    def __init__(self, distance_power=1, epsilon=1e-4, **_options):
        super().__init__()
        self.loss = SingleModalFeatureRatioLoss(distance_power, epsilon)

    def parts(self, out, batch, view):
        return {"sfr_img": self.loss(out["f_img"], batch["y_img"], batch["image_idx"], view.generator, view.img_first),
                "sfr_mus": self.loss(out["f_mus"], batch["y_mus"], batch["music_idx"], view.generator, view.mus_first)}, {}


class CDCMLLoss(nn.Module):
    """L, Eq. 8 of Zhao et al. 2020, with weights (docs/METHOD.md, section "Eq. 8: the total loss"):

    L = w_sim_mse L_sim-mse + w_cfr L_cfr + w_cfm L_cfm          (L_sim, Eqs. 6, 2, 3)
      + w_va_mse L_va-mse + w_sfr (L_sfr^I + L_sfr^M)            (L_VA, Eqs. 7, 4, 5)

    plus ``w_<name>`` times any other registered term (:data:`LOSS_TERMS`, off unless weighted).
    L_va-mse is the image MSE plus the music MSE, each over the distinct items of the batch.
    A weight of 0 switches its term off: it is not computed and does not appear in ``terms``.
    ``forward(out, batch) -> (total, terms)``; ``terms`` maps each active term (``sim_mse, cfr, cfm,
    va_mse, sfr_img, sfr_mus``) to a detached scalar, plus ``cfr_triplets``, the number of Eq.-2
    triplets drawn (0 means L_cfr was 0 for want of triplets), when L_cfr is on.
    """

    def __init__(self, w_sim_mse: float = 1.0, w_cfr: float = 1.0, w_cfm: float = 1.0,
                 w_va_mse: float = 1.0, w_sfr: float = 1.0, label_distance: str = "neg_log_s",
                 triplets: str = "dense", distance_power: float = 1, epsilon: float = 1e-4,
                 margin: float = 1.0, sigma: float | None = None, **other_weights: float):
        super().__init__()
        unknown = [k for k in other_weights if not (k.startswith("w_") and k[2:] in LOSS_TERMS)]
        if unknown:
            raise TypeError(f"CDCMLLoss: unknown argument(s) {unknown}; a term's weight is w_<name> "
                            f"for a registered term ({', '.join(LOSS_TERMS)})")
        given = {"sim_mse": w_sim_mse, "cfr": w_cfr, "cfm": w_cfm, "va_mse": w_va_mse, "sfr": w_sfr,
                 **{k[2:]: v for k, v in other_weights.items()}}
        self.weights = {name: given.get(name, 0.0) for name in LOSS_TERMS}
        for name, w in self.weights.items():
            if not (isinstance(w, (int, float)) and w >= 0 and math.isfinite(w)):
                raise ValueError(f"w_{name} must be a number >= 0, got {w!r}; set train.w_{name} "
                                 f"in params/<config>.yaml or the variant file")
        if not any(self.weights.values()):
            raise ValueError(f"every CDCMLLoss weight is 0 ({', '.join('w_' + n for n in self.weights)}): "
                             "nothing to train; switch at least one term on in the variant file")
        options = dict(label_distance=label_distance, triplets=triplets, distance_power=distance_power,
                       epsilon=epsilon, margin=margin, sigma=sigma)
        self.terms = nn.ModuleDict({name: LOSS_TERMS[name](**options)
                                    for name, w in self.weights.items() if w})

    def _check(self, out: Mapping, batch: Mapping) -> None:
        for name, term in self.terms.items():
            missing = [k for k in term.needs if out.get(k) is None]
            if missing:
                raise ValueError(
                    f"CDCMLLoss term '{name}' (w_{name}={self.weights[name]}) needs the model output(s) {missing}, which "
                    f"this model does not produce (it gives: {sorted(k for k, v in out.items() if v is not None)}). "
                    f"Set w_{name}: 0 in the variant file, or use a model that has them.")
        missing = [k for k in _BATCH_NEEDS if k not in batch]
        if missing:
            raise KeyError(f"CDCMLLoss: the batch lacks {missing}; a batch needs {list(_BATCH_NEEDS)} "
                           f"(docs/ARCHITECTURE.md, 'Loss interface')")

    def forward(self, out: Mapping[str, Tensor], batch: Mapping[str, Tensor],
                generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        self._check(out, batch)
        view = BatchView(first_positions(batch["image_idx"]), first_positions(batch["music_idx"]), generator)
        parts: dict[str, Tensor] = {}
        weights: dict[str, float] = {}
        extra: dict[str, Tensor] = {}
        for name, term in self.terms.items():   # registration order: the sum's order
            values, logged = term.parts(out, batch, view)
            for key, value in values.items():
                parts[key], weights[key] = value, self.weights[name]
            extra.update(logged)
        total = sum(weights[k] * v for k, v in parts.items())
        terms = {k: v.detach() for k, v in parts.items()}
        terms.update(extra)
        return total, terms


# ----------------------------------------------------------------------------------------------
# The contrastive baseline
# ----------------------------------------------------------------------------------------------
class InfoNCELoss(nn.Module):
    """Symmetric InfoNCE with soft targets: our modern contrastive baseline (not in the paper;
    Eq. C1 of docs/METHOD.md, section "Contrastive baseline (ours)").

    Over the B pairs of the batch, logits[i, j] = cos(f_img[i], f_mus[j]) / temperature. The target
    distribution of image row i is softmax_j(s(i, j) / target_temperature), with s the true Eq.-1
    similarity from the VA labels (needs sigma); the music rows use the columns likewise. The loss
    is the mean of the image->music and music->image cross-entropies. With ``w_va_mse > 0`` Eq. 7 is
    added (weighted), so that a model with a VA predictor also learns VA. With ``w_sim_mse > 0``
    Eq. 6 on the model's ``s_hat`` is added (weighted): the contrastive model's calibration of
    sigmoid(a cos + b), whose cosine the model detaches, so it fits a and b only.
    ``forward(out, batch) -> (total, terms)`` with terms ``infonce`` (and ``va_mse``, ``sim_mse``).
    """

    def __init__(self, temperature: float = 0.07, target_temperature: float = 0.1,
                 sigma: float | None = None, w_va_mse: float = 0.0, w_sim_mse: float = 0.0):
        super().__init__()
        _check_positive("temperature", temperature)
        _check_positive("target_temperature", target_temperature)
        if sigma is None:
            raise ValueError("InfoNCELoss needs sigma (Eq. 1) for its soft targets: the dataset's stats.json value")
        _check_positive("sigma", sigma)
        for name, w in (("w_va_mse", w_va_mse), ("w_sim_mse", w_sim_mse)):
            if not (w >= 0):
                raise ValueError(f"{name} must be >= 0, got {w!r}")
        self.temperature = temperature
        self.target_temperature = target_temperature
        self.sigma = sigma
        self.w_va_mse = w_va_mse
        self.w_sim_mse = float(w_sim_mse)

    def soft_targets(self, y_img: Tensor, y_mus: Tensor) -> tuple[Tensor, Tensor]:
        """(image->music targets [B, B], music->image targets [B, B]) from Eq. 1 of the VA labels."""
        s = eq1_score(y_img[:, None, :], y_mus[None, :, :], self.sigma)  # s[i, j]
        return (torch.softmax(s / self.target_temperature, dim=1),
                torch.softmax(s.T / self.target_temperature, dim=1))

    def infonce(self, f_img: Tensor, f_mus: Tensor, y_img: Tensor, y_mus: Tensor) -> Tensor:
        logits = F.normalize(f_img, dim=1) @ F.normalize(f_mus, dim=1).T / self.temperature
        t_im, t_mi = self.soft_targets(y_img, y_mus)
        loss_im = -(t_im * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
        loss_mi = -(t_mi * torch.log_softmax(logits.T, dim=1)).sum(dim=1).mean()
        return 0.5 * (loss_im + loss_mi)

    def forward(self, out: Mapping[str, Tensor], batch: Mapping[str, Tensor],
                generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        for k in ("f_img", "f_mus"):
            if out.get(k) is None:
                raise ValueError(f"InfoNCELoss needs the model output '{k}' (an embedding); this model gives "
                                 f"{sorted(k for k, v in out.items() if v is not None)}")
        total = self.infonce(out["f_img"], out["f_mus"], batch["y_img"], batch["y_mus"])
        terms = {"infonce": total.detach()}
        if self.w_va_mse:
            if out.get("va_img") is None or out.get("va_mus") is None:
                raise ValueError(f"InfoNCELoss with w_va_mse={self.w_va_mse} needs the model outputs "
                                 "'va_img' and 'va_mus'; set w_va_mse: 0 or use a model with a VA predictor")
            img_first = first_positions(batch["image_idx"])
            mus_first = first_positions(batch["music_idx"])
            va = (va_mse_loss(out["va_img"][img_first], batch["y_img"][img_first])
                  + va_mse_loss(out["va_mus"][mus_first], batch["y_mus"][mus_first]))
            terms["va_mse"] = va.detach()
            total = total + self.w_va_mse * va
        if self.w_sim_mse:
            if out.get("s_hat") is None:
                raise ValueError(f"InfoNCELoss with w_sim_mse={self.w_sim_mse} needs the model output "
                                 "'s_hat'; set w_sim_mse: 0 or use a model that predicts it")
            calibration = self.w_sim_mse * similarity_mse_loss(out["s_hat"], batch["score"])
            terms["sim_mse"] = calibration.detach()
            total = total + calibration
        return total, terms


def correspondence_bce_loss(logit: Tensor, label: Tensor) -> Tensor:
    """Binary cross-entropy of the correspondence logit against the pair's label (1 = same emotion
    class): ACP-Net's training loss (Verma et al. 2019; docs/METHOD.md, section "Correspondence loss")."""
    return F.binary_cross_entropy_with_logits(logit, label.to(logit.dtype))


class CorrespondenceLoss(nn.Module):
    """:func:`correspondence_bce_loss` behind the training loop's loss interface:
    ``forward(out, batch) -> (total, {"bce": ...})`` with ``out["logit"]`` and the label in
    ``batch["score"]`` (0 or 1), so that ``runs.train.train_epoch`` trains the correspondence models
    (docs/METHOD.md, section "Correspondence loss")."""

    def forward(self, out: Mapping, batch: Mapping, generator=None):
        total = correspondence_bce_loss(out["logit"], batch["score"])
        return total, {"bce": total.detach()}


def build_loss(train_params: Mapping, sigma: float | None) -> nn.Module:
    """The loss of one run from its merged ``train`` parameters: :class:`InfoNCELoss` for
    ``model: contrastive``, else :class:`CDCMLLoss`. ``sigma`` is the dataset's (stats.json).
    Eq. 8 or Eq. C1 (docs/METHOD.md, sections "Eq. 8: the total loss" and "Contrastive baseline
    (ours)")."""
    p = train_params
    # only the keys the run sets: a key it leaves out takes the class's own default (its signature
    # is the one place of the method's defaults; a config's run gets every key, from the schema)
    if p.get("model") == "contrastive":
        names = {"nce_temperature": "temperature", "nce_target_temperature": "target_temperature",
                 "w_va_mse": "w_va_mse", "w_sim_mse": "w_sim_mse"}
        return InfoNCELoss(sigma=sigma, **{arg: p[key] for key, arg in names.items() if key in p})
    names = ("label_distance", "triplets", "distance_power", "epsilon", "margin",
             *(f"w_{term}" for term in LOSS_TERMS))
    return CDCMLLoss(sigma=sigma, **{key: p[key] for key in names if key in p})
