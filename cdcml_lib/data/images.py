"""The one image loader: a file to uint8 ``[S, S, 3]``, and a uint8 batch to the network's tensor.

Everything that turns an image into model input goes through here, so that a photo a user
matches is read exactly as a training image was (``docs/METHOD.md``, "Image input"):

- :func:`load_image` reads a file, converts it to RGB and resizes the WHOLE image to a square
  ``S x S`` (bilinear; no crop: the aspect ratio is not kept, as the paper resizes to 224 x 224).
  The dataset build (``data.corpora.load_image`` for real corpora) and matching
  (``explore.match``) both call it; the embedded benchmark renders its images in memory at
  ``S x S`` and never reads a file.
- :func:`resize_images` resizes uint8 arrays the same way (for arrays given in memory).
- :func:`image_to_tensor` turns a uint8 batch ``[B, S, S, 3]`` into the float ``[B, 3, S, S]``
  ImageNet-normalised tensor every model takes; the training loaders
  (``runs.loader``) and ``TrainedModel.encode_images`` use it.

An unreadable file (not an image, truncated, empty) is an :class:`ImageFileError` that names the
file and the cause.
"""
from __future__ import annotations

import os
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class ImageFileError(ValueError):
    """An image file that cannot be read; the message names the file and what was wrong."""


def load_image(path: str | os.PathLike, size: int) -> np.ndarray:
    """An image file as RGB uint8 ``[size, size, 3]``: the whole image resized (bilinear).

    PIL decodes lazily; ``convert`` forces the full decode here, so a truncated JPEG fails in this
    function (with the file's name) and not later inside a batch.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageFileError(f"image: {path}: no such file")
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB").resize((int(size), int(size)), Image.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
    except UnidentifiedImageError:
        raise ImageFileError(f"image: {path}: not an image file PIL can identify (empty, or "
                             "another format under an image suffix). Fix: check the file, "
                             "e.g. open it in an image viewer.") from None
    except (OSError, SyntaxError, ValueError) as err:  # truncated or corrupt data
        raise ImageFileError(f"image: {path}: cannot decode it ({err}). The file is probably "
                             "truncated or corrupt; fix: re-export or re-download it.") from None


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 ``[N, H, W, 3]`` -> uint8 ``[N, size, size, 3]``, each resized as :func:`load_image`."""
    from PIL import Image

    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"resize_images expects uint8 [N, H, W, 3], got {images.dtype} "
                         f"{list(images.shape)}")
    if images.shape[1:3] == (size, size):
        return images
    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR))
                     for im in images])


def image_to_tensor(images: np.ndarray | torch.Tensor, size: int | None = None) -> torch.Tensor:
    """uint8 ``[B, S, S, 3]`` -> float ``[B, 3, size, size]``, ImageNet-normalised.

    When ``size`` differs from the cached S the batch is resized (bilinear, antialiased). A torch
    tensor is converted on its own device (the CUDA trainer normalises uint8 batches on the GPU).
    """
    # torch imported here: the corpus readers import this module for load_image and stay light
    import torch
    import torch.nn.functional as F

    if isinstance(images, torch.Tensor):
        x = images
    else:
        array = np.asarray(images)
        x = torch.from_numpy(array if array.flags.writeable else array.copy())  # memmap slices are read-only
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"image_to_tensor expects uint8 [B, S, S, 3], got {x.dtype} "
                         f"{list(x.shape)}")
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    if size is not None and x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                          align_corners=False)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std
