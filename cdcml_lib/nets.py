"""Networks: the CDCML model (Zhao et al. 2020, section 5) and the baselines of its Table 3
(docs/METHOD.md, sections "Networks" and "Baselines").

Every model built by :func:`build_model` follows the model interface of docs/ARCHITECTURE.md:

- ``forward(images, music) -> dict`` with ``s_hat [B]`` and, where the model has them,
  ``f_img [B, D]``, ``f_mus [B, D]``, ``va_img [B, 2]``, ``va_mus [B, 2]``;
- ``embed_image(images) -> [B, D]`` and ``embed_music(music) -> [B, D]``;
- ``similarity(f_img, f_mus) -> [B]`` (the pair score from two embeddings) and
  ``predict_va(f, modality) -> [B, 2]`` (``modality`` is ``"image"`` or ``"music"``; models with
  one shared VA predictor ignore it).

Backbones are named as in torchvision (``resnet50``, ``resnet18``, ``mobilenet_v3_small``...), plus
``tiny_cnn``: our own four-layer CNN (:class:`TinyCNN`) that makes the default study run on a
2-core CPU. The music branch tiles the 193x87 feature matrix to 3 channels (paper section 3) so
that any image CNN can read it (the kit's TinyCNN reads it as one channel).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F

from cdcml_lib.matching import score_from_distance

MODELS = ("cdcml", "sp_net", "l3_net", "acp_net", "contrastive")
#: rows of the music input (paper section 3: 40 MFCC + 12 chroma + 7 contrast + 6 tonnetz + 128 mel);
#: data.features builds its matrix to this height (and checks it)
MUSIC_FEATURE_ROWS = 193


# --------------------------------------------------------------------------------------------
# Backbones
# --------------------------------------------------------------------------------------------
class TinyCNN(nn.Module):
    """A small, fast CNN for CPU runs (not in the paper; our stand-in for ResNet on a CPU;
    docs/METHOD.md, section "Backbones").

    A 4x4 stride-4 "patchify" stem (``width`` channels), two 3x3 stride-2 convolutions (2x and 4x
    ``width`` channels), each with BatchNorm and ReLU, then global average pooling: a
    ``4 * width``-d feature for any input of at least 16x16. ``tiny_cnn`` is width 16 (64
    features), ``tiny_cnn8`` width 8 (32 features).

    It reads a [B, H, W] matrix as one channel: tiling it to three identical channels (what a
    pretrained ImageNet CNN needs, :func:`tile_to_rgb`) would only triple the stem's work of a
    network that starts from random weights. Inputs and weights are channels-last, which the
    CPU's oneDNN convolutions run about 1.5x faster than the default layout for these shapes
    (benchmarks/train.py; docs/METHOD.md, section "Backbones").
    """

    def __init__(self, in_channels: int = 3, width: int = 16):
        super().__init__()
        w = (width, 2 * width, 4 * width)
        self.out_features = w[2]
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w[0], 4, stride=4, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU(inplace=True),
            nn.Conv2d(w[0], w[1], 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w[1]), nn.ReLU(inplace=True),
            nn.Conv2d(w[1], w[2], 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w[2]), nn.ReLU(inplace=True))
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:   # a [B, H, W] matrix: one channel
            x = x.unsqueeze(1)
        return self.features(x.contiguous(memory_format=torch.channels_last)).mean(dim=(2, 3))


#: The kit's own backbones: name -> stem width (:class:`TinyCNN`).
TINY_CNN_WIDTHS = {"tiny_cnn": 16, "tiny_cnn8": 8}


def _weights_file(weights) -> Path:
    """Where torchvision's weights API keeps ``weights`` ($TORCH_HOME/hub/checkpoints/<file>)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def _pretrained_weights(name: str):
    """The ImageNet weights of torchvision model ``name``, with a clear error when not cached."""
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
    except (ValueError, KeyError) as err:
        raise ValueError(f"torchvision has no pretrained weights for backbone {name!r}: "
                         f"set pretrained: false") from err
    path = _weights_file(weights)
    if not path.exists():
        raise FileNotFoundError(
            f"ImageNet weights for {name!r} are not in the torch cache ({path}) and this run "
            f"does not download anything. On a machine with network, pre-download them with\n"
            f"  python -c \"import torchvision; torchvision.models.get_model('{name}', "
            f"weights='DEFAULT')\"\n"
            f"and copy {path.name} to {path.parent} here (the folder follows $TORCH_HOME; "
            f"default ~/.cache/torch), or set pretrained: false.")
    return weights


def _drop_classifier(model: nn.Module, name: str) -> tuple[nn.Module, int]:
    """Replace the last Linear layer of a torchvision classifier by Identity; return its width."""
    for attr in ("fc", "classifier", "heads", "head"):
        head = getattr(model, attr, None)
        if head is None:
            continue
        if isinstance(head, nn.Linear):
            setattr(model, attr, nn.Identity())
            return model, head.in_features
        if isinstance(head, nn.Sequential):
            for i in reversed(range(len(head))):
                if isinstance(head[i], nn.Linear):
                    width = head[i].in_features
                    head[i] = nn.Identity()
                    return model, width
    raise ValueError(f"backbone {name!r}: cannot find its classification layer "
                     f"(looked for fc, classifier, heads, head); use a classification model")


def make_backbone(name: str, pretrained: bool = False, matrix_input: bool = False) -> tuple[nn.Module, int]:
    """A feature extractor by name and the width of its feature vector.

    ``tiny_cnn`` and ``tiny_cnn8`` are :class:`TinyCNN` (``matrix_input``: it reads a one-channel
    matrix); any other name is a torchvision classification model with its classification layer
    dropped (paper section 5). ``pretrained`` loads ImageNet weights from the local torch cache only.
    """
    if name in TINY_CNN_WIDTHS:
        if pretrained:
            raise ValueError(f"{name} has no pretrained weights: set pretrained: false")
        net = TinyCNN(in_channels=1 if matrix_input else 3, width=TINY_CNN_WIDTHS[name])
        return net, net.out_features
    import torchvision

    if name not in torchvision.models.list_models():
        raise ValueError(f"unknown backbone {name!r}: use {' or '.join(TINY_CNN_WIDTHS)} or a torchvision model "
                         f"name such as resnet18 or resnet50")
    weights = _pretrained_weights(name) if pretrained else None
    model = torchvision.models.get_model(name, weights=weights)
    return _drop_classifier(model, name)


# --------------------------------------------------------------------------------------------
# Branches and predictors
# --------------------------------------------------------------------------------------------
def tile_to_rgb(matrix: torch.Tensor) -> torch.Tensor:
    """[B, H, W] feature matrix -> [B, 3, H, W], the same matrix in each channel (section 3)."""
    return matrix.unsqueeze(1).expand(-1, 3, -1, -1)


class Branch(nn.Module):
    """One modality's branch: a backbone, then one FC layer to the embedding (section 5;
    docs/METHOD.md, section "Branches and the shared space").

    ``tile=True`` reads a [B, H, W] matrix (music features, log-spectrogram): as a 3-channel image
    for a torchvision backbone (section 3), as one channel for the kit's :class:`TinyCNN`.
    """

    def __init__(self, backbone: str, embed_dim: int, pretrained: bool = False,
                 tile: bool = False):
        super().__init__()
        self.backbone, width = make_backbone(backbone, pretrained, matrix_input=tile)
        self.fc = nn.Linear(width, embed_dim)
        self.tile = tile and not isinstance(self.backbone, TinyCNN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tile:
            x = tile_to_rgb(x)
        return self.fc(self.backbone(x))


class Predictor(nn.Module):
    """FC layers with BatchNorm + ReLU + dropout between them and a Sigmoid output (section 5;
    docs/METHOD.md, section "Predictors").

    With ``n_layers=3`` this is the paper's similarity predictor (out 1) or VA predictor (out 2).
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int, n_layers: int = 3,
                 dropout: float = 0.5):
        super().__init__()
        layers, width = [], in_dim
        for _ in range(n_layers - 1):
            layers += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                       nn.Dropout(dropout)]
            width = hidden
        layers += [nn.Linear(width, out_dim), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _hidden(embed_dim: int) -> int:
    """Hidden width of the predictors (the paper does not give it): half the embedding. Our reading,
    fixed here (docs/METHOD.md, section "Hidden width of the predictors")."""
    return max(embed_dim // 2, 16)


def eq1_similarity(va_img: torch.Tensor, va_mus: torch.Tensor, sigma: float) -> torch.Tensor:
    """Eq. 1 of Zhao et al. 2020: s = exp(-||y^I - y^M||_2 / sigma) (docs/METHOD.md, section
    "The matching score (Eq. 1)")."""
    # A tiny floor keeps the gradient of the norm finite when both VA predictions coincide.
    dist = torch.sqrt(((va_img - va_mus) ** 2).sum(dim=1) + 1e-12)
    return score_from_distance(dist, sigma)


class BaseModel(nn.Module):
    """Shared forward: embed both inputs, score the pair, predict VA where the model can."""

    notes: dict = {}

    def forward(self, images: torch.Tensor, music: torch.Tensor) -> dict:
        f_img, f_mus = self.embed_image(images), self.embed_music(music)
        out = {"s_hat": self.similarity(f_img, f_mus), "f_img": f_img, "f_mus": f_mus}
        out["va_img"] = self.predict_va(f_img, "image")
        out["va_mus"] = self.predict_va(f_mus, "music")
        return out


class TwoBranchModel(BaseModel):
    """An image branch and a music branch (193x87 features tiled to 3 channels), each ending in
    one FC layer to ``embed_dim``: the part CDCML, SP-Net and the contrastive baseline share."""

    def __init__(self, image_backbone, music_backbone, embed_dim, pretrained):
        super().__init__()
        self.image_branch = Branch(image_backbone, embed_dim, pretrained)
        self.music_branch = Branch(music_backbone, embed_dim, pretrained, tile=True)

    def embed_image(self, images):
        return self.image_branch(images)

    def embed_music(self, music):
        return self.music_branch(music)


# --------------------------------------------------------------------------------------------
# CDCML
# --------------------------------------------------------------------------------------------
class CDCML(TwoBranchModel):
    """CDCML (Zhao et al. 2020, section 5): two branches into one 512-d space, a similarity
    predictor on the concatenated embeddings and ONE VA predictor shared by both modalities
    (docs/METHOD.md, section "Networks")."""

    def __init__(self, image_backbone="resnet50", music_backbone="resnet18", embed_dim=512,
                 pretrained=False, va_probe=False):
        super().__init__(image_backbone, music_backbone, embed_dim, pretrained)
        self.sim_predictor = Predictor(2 * embed_dim, 1, _hidden(embed_dim))
        self.va_predictor = Predictor(embed_dim, 2, _hidden(embed_dim))
        # va_probe: the VA predictor reads detached embeddings, so Eq. 7 trains it alone and never
        # shapes the space (the Table 4 rows without L_VA;
        # docs/METHOD.md, section "VA errors of the rows without the VA loss")
        self.va_probe = va_probe

    def similarity(self, f_img, f_mus):
        return self.sim_predictor(torch.cat([f_img, f_mus], dim=1)).squeeze(1)

    def predict_va(self, f, modality=None):
        return self.va_predictor(f.detach() if self.va_probe else f)


# --------------------------------------------------------------------------------------------
# Baselines (paper section 6.1.2; docs/METHOD.md, section "Baselines")
# --------------------------------------------------------------------------------------------
class SPNet(TwoBranchModel):
    """SP-Net: two separate VA regressors trained on VA labels only; the pair score is Eq. 1 on
    the predicted VA with the dataset's sigma (docs/METHOD.md, section "SP-Net")."""

    def __init__(self, image_backbone, music_backbone, embed_dim, pretrained, sigma):
        super().__init__(image_backbone, music_backbone, embed_dim, pretrained)
        if not sigma > 0:
            raise ValueError(f"SP-Net needs the dataset's sigma > 0 (stats.json), got {sigma}")
        self.sigma = float(sigma)
        self.va_image = Predictor(embed_dim, 2, _hidden(embed_dim))
        self.va_music = Predictor(embed_dim, 2, _hidden(embed_dim))

    def predict_va(self, f, modality=None):
        return _by_modality(self.va_image, self.va_music, f, modality)

    def similarity(self, f_img, f_mus):
        return eq1_similarity(self.va_image(f_img), self.va_music(f_mus), self.sigma)


def _by_modality(head_img: nn.Module, head_mus: nn.Module, f: torch.Tensor, modality):
    """Route ``f`` to the VA head of its modality (models with one head per modality)."""
    if modality == "image":
        return head_img(f)
    if modality == "music":
        return head_mus(f)
    raise ValueError(f"this model has one VA predictor per modality: pass modality='image' or "
                     f"'music', not {modality!r}")


class L3Net(BaseModel):
    """L3-Net (Arandjelovic and Zisserman 2017) as the paper ran it: trainable vision and audio
    sub-networks (audio input = log-spectrogram), embeddings concatenated and fused by FC layers
    into a similarity trained with MSE. Separate VA predictors (one per modality) learn from the
    detached features, so VA training never shapes the features (docs/METHOD.md, section
    "L3-Net"; our readings: docs/METHOD.md, sections "VA predictors of the baselines" and
    "L3-Net's spectrogram and fusion")."""

    def __init__(self, image_backbone, music_backbone, embed_dim, pretrained):
        super().__init__()
        self.image_branch = Branch(image_backbone, embed_dim, pretrained)
        self.audio_branch = Branch(music_backbone, embed_dim, pretrained, tile=True)
        # L3's fusion: two FC layers (1024 -> 128 -> 1 in the original).
        self.fusion = Predictor(2 * embed_dim, 1, 128, n_layers=2)
        self.va_image = Predictor(embed_dim, 2, _hidden(embed_dim))
        self.va_music = Predictor(embed_dim, 2, _hidden(embed_dim))

    def embed_image(self, images):
        return self.image_branch(images)

    def embed_music(self, log_spectrogram):
        return self.audio_branch(log_spectrogram)

    def similarity(self, f_img, f_mus):
        return self.fusion(torch.cat([f_img, f_mus], dim=1)).squeeze(1)

    def predict_va(self, f, modality=None):
        return _by_modality(self.va_image, self.va_music, f.detach(), modality)


class FrozenFeatures(nn.Module):
    """A backbone whose weights never change and which always runs in eval mode (ACP-Net)."""

    def __init__(self, backbone: str, pretrained: bool):
        super().__init__()
        self.backbone, self.out_features = make_backbone(backbone, pretrained)
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.backbone.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()  # BatchNorm statistics stay frozen too
        return self

    def forward(self, x):
        with torch.no_grad():
            return self.backbone(x)


def summarise_acoustic(music: torch.Tensor, two_pass: bool = False) -> torch.Tensor:
    """[B, 193, 87] acoustic features -> [B, 386]: mean and std of each row over time
    (ACP-Net reads summary statistics of MFCC, chroma, contrast... rather than the matrix).

    ``two_pass=True`` computes the (unbiased) std as sqrt(sum((x - mean)^2) / (T - 1)): the same
    number up to float round-off, about 10x faster on a CPU than torch's ``std`` over the last
    dimension (measured 1.7 ms against 18-26 ms for a [64, 193, 87] batch on one thread). The
    correspondence study uses it; the Table 3 baseline keeps torch's ``std`` so that its earlier
    results stay bit for bit."""
    mean = music.mean(dim=2)
    if not two_pass:
        return torch.cat([mean, music.std(dim=2)], dim=1)
    centred = music - mean.unsqueeze(2)
    std = (centred * centred).sum(dim=2).div(music.shape[2] - 1).sqrt()
    return torch.cat([mean, std], dim=1)


def acp_image_fc(width: int, embed_dim: int) -> nn.Sequential:
    """ACP-Net's image FC layers on frozen features: BatchNorm, FC, ReLU, FC.

    BatchNorm first: frozen features have whatever scale their backbone gives (tiny for a
    random-init one), and standardising them lets SGD use them at the study's learning rate."""
    return nn.Sequential(nn.BatchNorm1d(width), nn.Linear(width, embed_dim),
                         nn.ReLU(inplace=True), nn.Linear(embed_dim, embed_dim))


def acp_audio_fc(in_dim: int, embed_dim: int) -> nn.Sequential:
    """ACP-Net's music FC layers on the summarised acoustic features: FC, ReLU, FC."""
    return nn.Sequential(nn.Linear(in_dim, embed_dim), nn.ReLU(inplace=True),
                         nn.Linear(embed_dim, embed_dim))


class ACPNet(BaseModel):
    """ACP-Net (Verma et al. 2019) as the paper ran it: FROZEN image features from the image
    backbone, acoustic-feature input summarised over time, each through FC layers, concatenated
    and passed through a deeper FC stack than L3-Net's to a similarity (MSE). Separate VA
    predictors learn from the detached features (docs/METHOD.md, section "ACP-Net as CDCML's
    baseline"; our readings: docs/METHOD.md, sections "VA predictors of the baselines" and
    "ACP-Net's inputs and depth as a baseline")."""

    def __init__(self, image_backbone, embed_dim, pretrained, n_music_rows=MUSIC_FEATURE_ROWS):
        super().__init__()
        self.image_features = FrozenFeatures(image_backbone, pretrained)
        self.image_fc = acp_image_fc(self.image_features.out_features, embed_dim)
        self.audio_fc = acp_audio_fc(2 * n_music_rows, embed_dim)
        self.fusion = Predictor(2 * embed_dim, 1, _hidden(embed_dim), n_layers=4)
        self.va_image = Predictor(embed_dim, 2, _hidden(embed_dim))
        self.va_music = Predictor(embed_dim, 2, _hidden(embed_dim))
        self.notes = {"acp_image_features": "frozen ImageNet-pretrained" if pretrained else
                      "frozen random-init (no pretrained weights; pretrained: false)"}

    def embed_image(self, images):
        return self.image_fc(self.image_features(images))

    def embed_music(self, music):
        return self.audio_fc(summarise_acoustic(music))

    def similarity(self, f_img, f_mus):
        return self.fusion(torch.cat([f_img, f_mus], dim=1)).squeeze(1)

    def predict_va(self, f, modality=None):
        return _by_modality(self.va_image, self.va_music, f.detach(), modality)


class ContrastiveNet(TwoBranchModel):
    """Our contrastive baseline: the CDCML branches trained with InfoNCE (soft VA targets) only
    (docs/METHOD.md, section "Contrastive baseline (ours)").

    The score is a calibrated cosine: s_hat = sigmoid(a * cos(f_img, f_mus) + b), with two scalars
    a, b fitted by the similarity MSE on the DETACHED cosine, so the calibration maps the cosine
    into [0, 1] without shaping the embedding. The shared VA predictor also reads detached
    embeddings.
    """

    def __init__(self, image_backbone, music_backbone, embed_dim, pretrained):
        super().__init__(image_backbone, music_backbone, embed_dim, pretrained)
        self.scale = nn.Parameter(torch.tensor(5.0))  # a cosine of 1 starts near s = 0.99
        self.bias = nn.Parameter(torch.tensor(0.0))
        self.va_predictor = Predictor(embed_dim, 2, _hidden(embed_dim))

    def similarity(self, f_img, f_mus):
        cos = F.cosine_similarity(f_img.detach(), f_mus.detach(), dim=1)
        return torch.sigmoid(self.scale * cos + self.bias)

    def predict_va(self, f, modality=None):
        return self.va_predictor(f.detach())


# --------------------------------------------------------------------------------------------
# ACP-Net's own study: affective correspondence (Verma et al. 2019; docs/METHOD.md, section "13. The kit's ACP-Net study")
# --------------------------------------------------------------------------------------------
CORRESPONDENCE_MODELS = ("acp_net", "l3_net", "spectrogram_acp")

# Each part of a correspondence model is initialised from its own stream (seed, part): two models
# that share a part (ACP-Net and Spectrogram-ACP share the image branch and the head, Spectrogram-ACP
# and L3-Net the spectrogram branch) start that part from the same weights for the same seed.
_PART_STREAM = {"image_acp": 1, "image_l3": 2, "music_acp": 3, "music_spectrogram": 4,
                "head_acp": 5, "head_l3": 6}


class CorrespondenceHead(nn.Module):
    """FC layers on the concatenated embeddings [f_img, f_mus] to ONE logit of "this pair
    corresponds"; each hidden FC layer is followed by BatchNorm and ReLU, as in the kit's
    :class:`Predictor` (without it the three-layer ACP head stayed at the constant answer in our
    default runs; docs/METHOD.md, section "IMAC-style classes and pairs, and the models: our readings"). A sigmoid of one logit with binary cross-entropy is the
    paper's two-way softmax with cross-entropy, less one redundant output (section 11)."""

    def __init__(self, in_dim: int, widths):
        super().__init__()
        layers, width = [], in_dim
        for hidden in widths:
            layers += [nn.Linear(width, int(hidden)), nn.BatchNorm1d(int(hidden)), nn.ReLU(inplace=True)]
            width = int(hidden)
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, f_img: torch.Tensor, f_mus: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([f_img, f_mus], dim=1)).squeeze(1)


class ACPImageBranch(nn.Module):
    """ACP-Net's image branch: frozen backbone features, then :func:`acp_image_fc`."""

    def __init__(self, backbone: str, embed_dim: int, pretrained: bool):
        super().__init__()
        self.features = FrozenFeatures(backbone, pretrained)
        self.fc = acp_image_fc(self.features.out_features, embed_dim)

    def forward(self, images):
        return self.fc(self.features(images))


class ACPMusicBranch(nn.Module):
    """ACP-Net's music branch: the acoustic matrix summarised over time
    (:func:`summarise_acoustic`), then :func:`acp_audio_fc`."""

    def __init__(self, n_rows: int, embed_dim: int):
        super().__init__()
        self.fc = acp_audio_fc(2 * n_rows, embed_dim)

    def forward(self, music):
        return self.fc(summarise_acoustic(music, two_pass=True))


class CorrespondenceNet(nn.Module):
    """An image branch, a music branch and a :class:`CorrespondenceHead`.

    ``forward(images, music)`` returns ``logit [B]`` (true correspondence), ``f_img`` and ``f_mus``;
    ``embed_image`` / ``embed_music`` give each branch's embedding (the emotion probe reads them)
    and ``correspondence(f_img, f_mus)`` the logit from two embeddings.
    """

    def __init__(self, image_branch: nn.Module, music_branch: nn.Module, head: nn.Module):
        super().__init__()
        self.image_branch, self.music_branch, self.head = image_branch, music_branch, head

    def embed_image(self, images):
        return self.image_branch(images)

    def embed_music(self, music):
        return self.music_branch(music)

    def correspondence(self, f_img, f_mus):
        return self.head(f_img, f_mus)

    def forward(self, images, music) -> dict:
        f_img, f_mus = self.embed_image(images), self.embed_music(music)
        return {"logit": self.correspondence(f_img, f_mus), "f_img": f_img, "f_mus": f_mus}


def _seeded_part(seed: int, part: str, make):
    """``make()`` with torch's RNG set from (seed, part), the global RNG left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1000 * int(seed) + _PART_STREAM[part])
        return make()


def build_correspondence_model(name: str, seed: int, image_backbone: str, music_backbone: str,
                               embed_dim: int, acp_head: list, l3_head: list,
                               n_music_rows: int = MUSIC_FEATURE_ROWS, pretrained: bool = False) -> CorrespondenceNet:
    """ACP-Net, L3-Net or Spectrogram-ACP for the correspondence task (docs/METHOD.md, section "13. The kit's ACP-Net study").

    - ``acp_net``: :class:`ACPImageBranch` (frozen features + FC) and :class:`ACPMusicBranch`
      (acoustic features summarised over time + FC), head of widths ``acp_head`` (paper: 2048, 512, 32);
    - ``spectrogram_acp``: ACP-Net with the music branch on the log-spectrogram: the kit's
      ``music_backbone`` reading it as an image (:class:`Branch`), as L3-Net's audio tower does;
    - ``l3_net``: trainable image and audio towers (:class:`Branch`, audio = log-spectrogram), head
      of widths ``l3_head`` (the original: 128).
    Parts are initialised per (seed, part) (``_PART_STREAM``), so shared parts start equal.
    """
    if name not in CORRESPONDENCE_MODELS:
        raise ValueError(f"unknown correspondence model {name!r}: choose one of "
                         f"{', '.join(CORRESPONDENCE_MODELS)}")
    dim = int(embed_dim)
    if name == "l3_net":
        image = _seeded_part(seed, "image_l3", lambda: Branch(image_backbone, dim, pretrained))
    else:
        image = _seeded_part(seed, "image_acp", lambda: ACPImageBranch(image_backbone, dim, pretrained))
    if name == "acp_net":
        music = _seeded_part(seed, "music_acp", lambda: ACPMusicBranch(n_music_rows, dim))
    else:
        music = _seeded_part(seed, "music_spectrogram",
                             lambda: Branch(music_backbone, dim, pretrained, tile=True))
    widths, part = (l3_head, "head_l3") if name == "l3_net" else (acp_head, "head_acp")
    head = _seeded_part(seed, part, lambda: CorrespondenceHead(2 * dim, widths))
    return CorrespondenceNet(image, music, head)


def correspondence_music_input(name: str) -> str:
    """The music cache a correspondence model reads: ACP-Net the acoustic features, the two
    spectrogram models the log-spectrogram."""
    return "music_features" if name == "acp_net" else "log_spectrogram"


# --------------------------------------------------------------------------------------------
def build_model(params: dict, sigma: float | None = None) -> nn.Module:
    """The model named by ``params['model']`` (one of MODELS) with the train-section sizes.

    ``sigma`` (the dataset's mean label distance, stats.json) is needed by SP-Net only.
    """
    name = params["model"]
    image_bb, music_bb = params["image_backbone"], params["music_backbone"]
    dim, pretrained = int(params["embed_dim"]), bool(params["pretrained"])
    if name == "cdcml":
        return CDCML(image_bb, music_bb, dim, pretrained, va_probe=bool(params.get("va_probe", False)))
    if name == "sp_net":
        return SPNet(image_bb, music_bb, dim, pretrained,
                     sigma if sigma is not None else math.nan)
    if name == "l3_net":
        return L3Net(image_bb, music_bb, dim, pretrained)
    if name == "acp_net":
        return ACPNet(image_bb, dim, pretrained)
    if name == "contrastive":
        return ContrastiveNet(image_bb, music_bb, dim, pretrained)
    raise ValueError(f"unknown model {name!r} (params 'model'): choose one of {', '.join(MODELS)}")


def music_input(model_name: str) -> str:
    """Which music cache a model reads: the log-spectrogram for L3-Net, else the 193x87 features."""
    return "log_spectrogram" if model_name == "l3_net" else "music_features"
