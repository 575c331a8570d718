"""Torch datasets over a dataset folder (docs/ARCHITECTURE.md, "The dataset folder").

The caches are memory-mapped; the per-step work is only indexing, a dtype conversion and a
normalisation:

- images: uint8 ``[N, S, S, 3]`` -> float ``[B, 3, S, S]``, ImageNet-normalised
  (:func:`cdcml_lib.data.images.image_to_tensor`, the one image loader);
- music: float32 ``[N, 193, 87]`` (or the float16 ``[N, 257, 87]`` log-spectrogram for L3-Net)
  standardised per feature row with TRAINING-split statistics (:class:`RowStandardiser`), which
  a run keeps in its checkpoint so that a trained model reads new clips the same way (our
  reading: docs/METHOD.md, section "Scale of the music features").

Both datasets accept a list of indices in ``__getitem__`` and return a whole batch (use them
with ``DataLoader(ds, sampler=BatchSampler(...), batch_size=None)``): one fancy-indexing read
of the memory map per batch instead of one per item.

A training set reads the same items every epoch, so :class:`PairDataset` converts each distinct
item it reads once, on its first batch, and cuts every batch from that table
(:class:`ConvertedRows`) when the table fits in :data:`CONVERTED_BYTES`; a larger one (the
paper configuration's 224 px images) is converted batch by batch as before. The conversions
work element by element, so both ways give the same batch bit for bit.

The memory maps are opened lazily in the process that reads them (:class:`LazyMemmaps`): a
DataLoader worker started by spawn or forkserver receives the dataset pickled, and pickling an
open ``np.memmap`` would copy the whole array into every worker.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

# the one image conversion, shared with matching (data/images.py); re-exported for the trainer
from cdcml_lib.data.images import IMAGENET_MEAN, IMAGENET_STD, image_to_tensor  # noqa: F401

from cdcml_lib.data.dataset import open_dataset, open_draw  # noqa: F401 - open_dataset: part of this API
from cdcml_lib.workflow.paths import resolve

MUSIC_ARRAYS = ("music_features", "log_spectrogram")
#: Largest table of converted inputs a dataset keeps in memory (per array and process). Reading and
#: converting a batch was about 15% of a default training step (torch.profiler), cutting it from the table 3%.
CONVERTED_BYTES = 1 << 30


def open_folder(folder):
    """A DatasetFolder from a path (``dataset.open_dataset``) or one already opened."""
    if isinstance(folder, (str, Path)):
        return open_draw(resolve(folder))   # a seed's missing draw is made first
    return folder


class RowStandardiser:
    """Standardise a ``[B, R, T]`` matrix per row r with a mean and std over training clips and
    frames (statistics of the training split only, so nothing leaks from val or test)."""

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)

    @classmethod
    def fit(cls, array: np.ndarray, rows: np.ndarray, chunk: int = 1024) -> "RowStandardiser":
        """Mean and std of each feature row over ``array[rows]`` (chunked, float64 sums)."""
        rows = np.sort(np.asarray(rows))
        if len(rows) == 0:
            raise ValueError("cannot fit music statistics: the training split has no clips")
        total = np.zeros(array.shape[1]); total_sq = np.zeros(array.shape[1]); n = 0
        for start in range(0, len(rows), chunk):
            block = np.asarray(array[rows[start:start + chunk]], dtype=np.float64)
            total += block.sum(axis=(0, 2)); total_sq += (block ** 2).sum(axis=(0, 2))
            n += block.shape[0] * block.shape[2]
        mean = total / n
        std = np.sqrt(np.maximum(total_sq / n - mean ** 2, 0.0))
        # A constant row (e.g. silence in a band) would divide by zero; leave it centred only.
        return cls(mean, np.where(std > 1e-6, std, 1.0))

    def __call__(self, batch: np.ndarray) -> torch.Tensor:
        x = np.asarray(batch, dtype=np.float32)
        return torch.from_numpy((x - self.mean[:, None]) / self.std[:, None])

    def state_dict(self) -> dict:
        return {"mean": torch.from_numpy(self.mean.copy()), "std": torch.from_numpy(self.std.copy())}

    @classmethod
    def from_state_dict(cls, state: dict) -> "RowStandardiser":
        return cls(np.asarray(state["mean"]), np.asarray(state["std"]))


class LazyMemmaps:
    """Cache arrays of ``self.folder`` memory-mapped on first use in each process.

    ``_array(name)`` opens ``self.folder.array(name)`` once per process; pickling the object
    (for DataLoader workers) drops the open maps, so the worker reopens the files itself instead
    of receiving a copy of their content.
    """

    def _array(self, name: str) -> np.ndarray:
        maps = self.__dict__.setdefault("_maps", {})
        if name not in maps:
            maps[name] = self.folder.array(name, mmap=True)
        return maps[name]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_maps"] = {}
        return state


def take_rows(table: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    """``table[position]`` (rows along dim 0, same values and strides) by ``index_select``, which
    copies whole rows (6-9x faster than advanced indexing for a batch of music matrices). The
    images' channels-last table is taken in its memory order [N, S, S, 3] and viewed back."""
    if table.is_contiguous():
        return table.index_select(0, position)
    if table.dim() == 4 and table.is_contiguous(memory_format=torch.channels_last):
        return table.permute(0, 2, 3, 1).index_select(0, position).permute(0, 3, 1, 2)
    return table[position]


class ConvertedRows:
    """The cache rows a dataset reads (one per item it returns, repeats allowed), converted to
    model input once per process and cut into batches by position.

    ``batch(array, convert, index)`` equals ``convert(array[rows[index]])``: ``convert`` (image
    normalisation, music standardisation) works item by item, so converting each distinct row
    once and indexing the result gives the same numbers. When the converted table would exceed
    ``max_bytes`` (counted as float32), every batch is read and converted on its own instead.
    """

    def __init__(self, rows: np.ndarray, max_bytes: int = CONVERTED_BYTES):
        self.rows = np.asarray(rows, dtype=np.int64)
        self.distinct, position = np.unique(self.rows, return_inverse=True)
        self.position = torch.from_numpy(position.reshape(-1).astype(np.int64))
        self.max_bytes = max_bytes
        self._table: torch.Tensor | None = None

    def fits(self, array: np.ndarray) -> bool:
        """Whether the converted table of ``array``'s distinct rows fits in ``max_bytes``."""
        return len(self.distinct) * int(np.prod(array.shape[1:])) * 4 <= self.max_bytes

    def batch(self, array: np.ndarray, convert, index: np.ndarray) -> torch.Tensor:
        if not self.fits(array):
            return convert(array[self.rows[index]])
        if self._table is None:
            self._table = convert(array[self.distinct])
        return take_rows(self._table, self.position[torch.from_numpy(index)])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_table": None}   # a DataLoader worker converts its own


def _items(folder, modality: str, split: str | None = None):
    items = folder.items
    sel = items[items["modality"] == modality]
    if split is not None:
        sel = sel[sel["split"] == split]
    return sel


def fit_music_standardiser(folder, music_input: str = "music_features") -> RowStandardiser:
    """Training-split statistics of the music cache ``music_input``."""
    folder = open_folder(folder)
    rows = _items(folder, "music", "train")["row"].to_numpy(dtype=np.int64)
    return RowStandardiser.fit(folder.array(music_input), rows)


class PairDataset(LazyMemmaps, torch.utils.data.Dataset):
    """The image-music pairs of one split, with everything the losses read.

    An item (or a batch, for a list of indices) is a dict with ``images [B,3,S,S]``,
    ``music [B,R,T]``, ``score [B]``, ``y_img [B,2]``, ``y_mus [B,2]``, ``music_idx [B]`` and
    ``image_idx [B]`` (cache rows, so equal indices mean the same item).

    ``raw_images=True`` returns ``images`` as the cached uint8 ``[B, S, S, 3]`` instead, for the
    caller to pass through :func:`image_to_tensor` on its device: the CUDA trainer does so,
    because that conversion is most of a loader's CPU time at 224 px (benchmarks/loader.py) and
    uint8 is a quarter of the bytes to copy to the GPU.
    """

    def __init__(self, folder, split: str, standardiser: RowStandardiser | None = None,
                 music_input: str = "music_features", image_size: int | None = None,
                 raw_images: bool = False):
        if music_input not in MUSIC_ARRAYS:
            raise ValueError(f"music_input must be one of {MUSIC_ARRAYS}, got {music_input!r}")
        self.folder = open_folder(folder)
        self.split, self.music_input, self.image_size = split, music_input, image_size
        self.raw_images = raw_images
        self.standardiser = standardiser or fit_music_standardiser(self.folder, music_input)
        # Open both now, so that a missing cache fails here rather than in a worker.
        self._array("images"); self._array(music_input)
        pairs = self.folder.pairs(split)
        self.pairs = pairs.reset_index(drop=True)
        img = _items(self.folder, "image").set_index("id")
        mus = _items(self.folder, "music").set_index("id")
        for ids, table, what in ((pairs["image_id"], img, "image"), (pairs["music_id"], mus, "music")):
            missing = ~ids.astype(str).isin(table.index.astype(str))
            if missing.any():
                row = int(np.flatnonzero(missing.to_numpy())[0])
                raise ValueError(
                    f"pairs_{split}.txt line {row + 1}: {what} id {ids.iloc[row]!r} is not in "
                    f"items.csv; rebuild the dataset folder so pairs and items agree")
        img.index = img.index.astype(str); mus.index = mus.index.astype(str)
        img_rows = img.loc[pairs["image_id"].astype(str)]
        mus_rows = mus.loc[pairs["music_id"].astype(str)]
        self.image_row = img_rows["row"].to_numpy(np.int64)
        self.music_row = mus_rows["row"].to_numpy(np.int64)
        self._image_inputs, self._music_inputs = ConvertedRows(self.image_row), ConvertedRows(self.music_row)
        self.score = torch.tensor(pairs["score"].to_numpy(np.float32))
        self.y_img = torch.tensor(img_rows[["valence", "arousal"]].to_numpy(np.float32))
        self.y_mus = torch.tensor(mus_rows[["valence", "arousal"]].to_numpy(np.float32))

    @property
    def images(self) -> np.ndarray:
        """uint8 [N, S, S, 3], memory-mapped."""
        return self._array("images")

    @property
    def music(self) -> np.ndarray:
        """The music cache this dataset reads, memory-mapped."""
        return self._array(self.music_input)

    def __len__(self) -> int:
        return len(self.score)

    def _convert_images(self, images: np.ndarray) -> torch.Tensor:
        # fancy indexing of the memory map gives a new, writeable array: from_numpy may share it
        return torch.from_numpy(images) if self.raw_images else image_to_tensor(images, self.image_size)

    def __getitem__(self, index: int | Sequence[int]) -> dict:
        single = np.isscalar(index)
        idx = np.atleast_1d(np.asarray(index, dtype=np.int64))
        batch = {
            "images": self._image_inputs.batch(self.images, self._convert_images, idx),
            "music": self._music_inputs.batch(self.music, self.standardiser, idx),
            "score": self.score[idx], "y_img": self.y_img[idx], "y_mus": self.y_mus[idx],
            "music_idx": torch.from_numpy(self.music_row[idx]),
            "image_idx": torch.from_numpy(self.image_row[idx]),
        }
        return {k: v[0] for k, v in batch.items()} if single else batch


class ItemDataset(LazyMemmaps, torch.utils.data.Dataset):
    """The single items of one modality (and split, or all), for evaluation and embeddings.

    A batch is ``x`` (the model input), ``y [B, 2]`` (VA labels) and ``row [B]``; ``ids`` lists
    the item ids in dataset order.
    """

    def __init__(self, folder, modality: str, split: str | None = None,
                 standardiser: RowStandardiser | None = None,
                 music_input: str = "music_features", image_size: int | None = None):
        if modality not in ("image", "music"):
            raise ValueError(f"modality must be 'image' or 'music', got {modality!r}")
        self.folder = open_folder(folder)
        self.modality, self.image_size = modality, image_size
        table = _items(self.folder, modality, split).sort_values("row")
        self.ids = table["id"].astype(str).tolist()
        self.rows = table["row"].to_numpy(np.int64)
        self.y = torch.tensor(table[["valence", "arousal"]].to_numpy(np.float32))
        self.array_name = "images" if modality == "image" else music_input
        if modality == "music":
            self.standardiser = standardiser or fit_music_standardiser(self.folder, music_input)
        self._array(self.array_name)  # open it now: a missing cache fails here, not in a worker

    @property
    def array(self) -> np.ndarray:
        """This modality's cache array, memory-mapped."""
        return self._array(self.array_name)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int | Sequence[int]) -> dict:
        single = np.isscalar(index)
        idx = np.atleast_1d(np.asarray(index, dtype=np.int64))
        raw = self.array[self.rows[idx]]
        x = image_to_tensor(raw, self.image_size) if self.modality == "image" else self.standardiser(raw)
        batch = {"x": x, "y": self.y[idx], "row": torch.from_numpy(self.rows[idx])}
        return {k: v[0] for k, v in batch.items()} if single else batch

    def batches(self, batch_size: int):
        """Consecutive batches in dataset order (evaluation needs no shuffling)."""
        for start in range(0, len(self), batch_size):
            yield self[list(range(start, min(start + batch_size, len(self))))]
