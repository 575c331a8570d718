"""The audio conventions of the method: one home for the sample rate, the clip length and int16.

Zhao et al. 2020 (``docs/METHOD.md``, section "Music input") cut DEAM's songs into 2-second clips at
22,050 Hz; every reader, generator, cache and extractor of the kit takes these numbers from here.
Clips are cached as int16 (:func:`to_int16`, :func:`from_int16`): the one scale below is used both
ways, so a clip written and read back differs from the original by at most half a step.
"""
from __future__ import annotations

import numpy as np

SR = 22050
CLIP_SECONDS = 2.0
CLIP_SAMPLES = int(SR * CLIP_SECONDS)  # 44,100

#: float [-1, 1] <-> int16: x_int = round(x * INT16_SCALE). 32767 keeps +1.0 representable.
INT16_SCALE = 32767.0


def to_int16(clips) -> np.ndarray:
    """Float clips in [-1, 1] (clipped there) as int16, rounded to the nearest step."""
    return np.round(np.clip(np.asarray(clips, dtype=np.float32), -1.0, 1.0) * INT16_SCALE).astype(np.int16)


def from_int16(clips: np.ndarray) -> np.ndarray:
    """int16 clips back to float32 in [-1, 1], the inverse of :func:`to_int16`."""
    return np.asarray(clips).astype(np.float32) / np.float32(INT16_SCALE)
