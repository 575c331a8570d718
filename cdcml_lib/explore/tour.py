"""The tiny study of the tour (notebooks/00_tour and 00_tour_solutions), in one place.

The tour trains a tiny CDCML on a small rendered corpus, several times with terms of Eq. 8
switched off; its solutions notebook does the same. The helpers both use live here, so the two
notebooks run the same code (docs/METHOD.md, section "7. Losses"):

- :class:`TinyStudy` renders the corpus, computes the 193 x 87 music matrices, standardises them,
  builds the IMEMNet pair list (Eq. 1 scores) and then gives ``make_batches``, ``train_tiny``
  (the study's own ``runs.train.train_epoch``), ``embed_all`` and ``space_numbers`` (how well
  the space follows VA, and how far the modalities are mixed);
- :func:`fit_log_ratio` trains free toy embeddings on one cross-modal loss (Eq. 2 and variants).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from cdcml_lib import losses, matching, nets
from cdcml_lib.data import features
from cdcml_lib.data.images import image_to_tensor
from cdcml_lib.explore.embedding import modality_mixing
from cdcml_lib.runs import loader, train


@dataclass
class TinyStudy:
    """A rendered corpus as model inputs and pairs, and the tiny training of the tour."""

    corpus: object               # synthetic.EmbeddedCorpus
    sigma: float                 # of Eq. 1
    image_size: int = 32
    embed_dim: int = 32
    batch_size: int = 32
    lr: float = 0.003
    margin: float = 1.0          # m of Eq. 3
    log_every: int = 10          # steps per point of the loss curves
    seed: int = 0
    y_img: np.ndarray = field(init=False)
    y_mus: np.ndarray = field(init=False)

    def __post_init__(self):
        self.y_img, self.y_mus = self.corpus.image_va, self.corpus.clip_va
        n_images, n_clips = len(self.y_img), len(self.y_mus)
        # Render the pixels and the audio, then compute the 193 x 87 music matrix of each clip.
        self.images_uint8 = self.corpus.render_images(np.arange(n_images), self.image_size)
        clips_audio = self.corpus.render_clips(np.arange(n_clips))
        self.music_features = features.extract_features(clips_audio)       # [n_clips, 193, 87]
        standardiser = loader.RowStandardiser.fit(self.music_features, np.arange(n_clips))
        self.x_img = image_to_tensor(self.images_uint8)                     # [n_images, 3, S, S]
        self.x_mus = standardiser(self.music_features)                      # [n_clips, 193, 87]
        # The pair list, with the IMEMNet recipe: 50 candidates per clip, all of them kept here.
        image_table = pd.DataFrame({"id": np.arange(n_images), "split": "train",
                                    "valence": self.y_img[:, 0], "arousal": self.y_img[:, 1]})
        clip_table = pd.DataFrame({"id": np.arange(n_clips), "split": "train",
                                   "valence": self.y_mus[:, 0], "arousal": self.y_mus[:, 1]})
        self.pairs = matching.candidate_pairs(clip_table, image_table, self.sigma, seed=self.seed)

    @property
    def net_params(self) -> dict:
        return {"model": "cdcml", "image_backbone": "tiny_cnn", "music_backbone": "tiny_cnn",
                "embed_dim": self.embed_dim, "pretrained": False}

    def make_batches(self, n_batches: int, generator: torch.Generator):
        """``n_batches`` random batches of listed pairs, in the format the study's loader gives."""
        pairs = self.pairs
        for _ in range(n_batches):
            rows = torch.randint(len(pairs), (self.batch_size,), generator=generator).numpy()
            i = pairs["image_id"].to_numpy()[rows]
            j = pairs["music_id"].to_numpy()[rows]
            yield {"images": self.x_img[i], "music": self.x_mus[j],
                   "score": torch.tensor(pairs["score"].to_numpy()[rows], dtype=torch.float32),
                   "y_img": torch.tensor(self.y_img[i], dtype=torch.float32),
                   "y_mus": torch.tensor(self.y_mus[j], dtype=torch.float32),
                   "image_idx": torch.from_numpy(i), "music_idx": torch.from_numpy(j)}

    def embed_all(self, model) -> tuple[np.ndarray, ...]:
        """Embeddings and predicted VA of every image and clip (evaluation mode):
        ``f_img, f_mus, va_img, va_mus``."""
        model.eval()
        with torch.no_grad():
            f_i, f_m = model.embed_image(self.x_img), model.embed_music(self.x_mus)
            return f_i.numpy(), f_m.numpy(), model.predict_va(f_i).numpy(), model.predict_va(f_m).numpy()

    def train_tiny(self, steps: int, **loss_weights):
        """Train a fresh tiny CDCML with the study's own ``train_epoch``; return the model, its
        loss curves and the embeddings before training.

        Every ``log_every`` steps are one call of ``train.train_epoch``, whose means make one
        curve point. ``loss_weights`` (w_sim_mse, w_cfr, w_cfm, w_va_mse, w_sfr) switch terms of
        Eq. 8 on or off. Adam for speed (the study uses SGD with momentum, as the paper does).
        """
        torch.manual_seed(self.seed)
        model = nets.build_model(self.net_params)
        loss_fn = losses.CDCMLLoss(sigma=self.sigma, margin=self.margin, **loss_weights)
        optimiser = torch.optim.Adam(model.parameters(), lr=self.lr)
        scaler = torch.amp.GradScaler("cuda", enabled=False)        # CPU: no mixed precision
        no_autocast = lambda: torch.autocast("cpu", enabled=False)  # noqa: E731
        batch_gen = torch.Generator().manual_seed(self.seed)
        loss_gen = torch.Generator().manual_seed(self.seed + 1)
        before = self.embed_all(model)
        curves = []
        for step in range(self.log_every, steps + 1, self.log_every):
            means = train.train_epoch(model, self.make_batches(self.log_every, batch_gen), loss_fn,
                                      optimiser, scaler, self.net_params, "cpu", no_autocast,
                                      loss_gen, channels_last=False)
            curves.append({"step": step, **means})
        return model, pd.DataFrame(curves), before

    def space_numbers(self, embedded, neighbours: int = 10) -> dict[str, float]:
        """How well the shared space follows VA, and how far apart the two modalities sit.

        - Spearman correlation of image-clip embedding distances with VA distances;
        - the VA prediction MSE per modality;
        - the modality gap: distance of the cloud centres over the mean distance of a point to
          its cloud's centre (near 0: one cloud; well above 1: two separate clouds);
        - modality mixing: the share of each point's ``neighbours`` nearest neighbours in the
          shared space (itself excluded) that have its own modality, averaged over all points,
          and the same share if the modality labels were shuffled (the chance level). 1.0 means
          every point sits among its own modality; the chance level means fully mixed. This is
          ``explore.embedding.modality_mixing``, which ``04_embeddings`` applies to UMAP maps.
        """
        f_i, f_m, va_i, va_m = embedded
        d_embed = np.linalg.norm(f_i[:, None] - f_m[None], axis=-1).ravel()
        d_va = matching.label_distances(self.y_img, self.y_mus).ravel()
        within = np.mean([np.linalg.norm(f - f.mean(0), axis=1).mean() for f in (f_i, f_m)])
        mixing = modality_mixing(np.concatenate([f_i, f_m]), ["image"] * len(f_i) + ["music"] * len(f_m),
                                 k=neighbours)
        return {"spearman(D, VA distance)": spearmanr(d_embed, d_va)[0],
                "VA MSE images": float(np.mean((va_i - self.y_img) ** 2)),
                "VA MSE music": float(np.mean((va_m - self.y_mus) ** 2)),
                "gap / spread": float(np.linalg.norm(f_i.mean(0) - f_m.mean(0)) / within),
                "same-modality neighbours": mixing["same_modality_share"],
                "same-modality neighbours, chance": mixing["chance_share"]}


def fit_log_ratio(cfr, toy_img: np.ndarray, toy_mus: np.ndarray, steps: int, dim: int = 3,
                  seed: int = 0):
    """Free ``dim``-D embeddings of a few images and clips, trained (Adam) on one cross-modal loss
    ``cfr`` (e.g. Eq. 2's ``CrossModalFeatureRatioLoss``) with the items' VA labels.

    Returns the trained image and clip embeddings, the image-clip distances before training
    (flattened) and the loss after each step.
    """
    n_img, n_mus = len(toy_img), len(toy_mus)
    t_img, t_mus = (torch.tensor(np.asarray(a), dtype=torch.float32) for a in (toy_img, toy_mus))
    gen = torch.Generator().manual_seed(seed)
    f_img = torch.randn(n_img, dim, generator=gen).requires_grad_()
    f_mus = torch.randn(n_mus, dim, generator=gen).requires_grad_()
    start = torch.cdist(f_img, f_mus).detach().numpy().ravel()
    optimiser = torch.optim.Adam([f_img, f_mus], lr=0.05)
    history = []
    for _ in range(steps):
        loss, _ = cfr(f_img, f_mus, image_idx=torch.arange(n_img), music_idx=torch.arange(n_mus),
                      y_img=t_img, y_mus=t_mus, generator=gen)
        optimiser.zero_grad(); loss.backward(); optimiser.step()
        history.append(loss.item())
    return f_img.detach(), f_mus.detach(), start, history
