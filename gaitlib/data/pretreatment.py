"""OpenGait's silhouette pretreatment, which the three papers' numbers assume.

A raw silhouette frame (any size, 0..255) becomes a 64x64 uint8 frame:

1. frames whose pixel sum is <= 10000 are skipped (near-empty segmentations);
2. rows are cropped to the first..last non-empty row;
3. the crop is resized to height 64 keeping its aspect ratio (OpenCV cubic,
   width truncated to an integer as OpenGait does);
4. the horizontal centre is the first column where the cumulative column mass
   exceeds half the total; frames whose centre is column 0 are skipped (an
   OpenGait quirk we keep, it only affects degenerate frames);
5. columns [xc - 32, xc + 32) are taken, zero-padded where out of bounds.

Sequences left with fewer than ``MIN_FRAMES`` frames are dropped by the caller.
At load time the model input is cut to 64x44 (``crop_width``) and scaled to [0, 1].
"""

from __future__ import annotations

import cv2
import numpy as np

MIN_PIXEL_SUM = 10000
MIN_FRAMES = 5
FRAME_SIZE = 64


def pretreat_frame(frame: np.ndarray, size: int = FRAME_SIZE) -> np.ndarray | None:
    """Pretreat one raw silhouette; returns (size, size) uint8 or None if the frame is skipped."""
    if frame.ndim != 2:
        raise ValueError(f"expected a 2-D grey frame, got shape {frame.shape}")
    img = np.asarray(frame, dtype=np.uint8)
    if int(img.sum(dtype=np.int64)) <= MIN_PIXEL_SUM:
        return None
    rows = np.flatnonzero(img.sum(axis=1))
    img = img[rows[0] : rows[-1] + 1]
    width = int(size * img.shape[1] / img.shape[0])
    if width < 1:
        return None
    img = cv2.resize(img, (width, size), interpolation=cv2.INTER_CUBIC)
    col_mass = img.sum(axis=0, dtype=np.int64).cumsum()
    x_centre = int(np.argmax(col_mass > col_mass[-1] / 2))
    if x_centre == 0:
        return None
    half = size // 2
    padded = np.zeros((size, width + 2 * half), dtype=np.uint8)
    padded[:, half : half + width] = img
    return padded[:, x_centre : x_centre + size].copy()


def pretreat_sequence(frames, size: int = FRAME_SIZE) -> np.ndarray:
    """Pretreat an iterable of raw frames; returns (T, size, size) uint8 (T may be < MIN_FRAMES)."""
    kept = [out for f in frames if (out := pretreat_frame(f, size)) is not None]
    if not kept:
        return np.zeros((0, size, size), dtype=np.uint8)
    return np.stack(kept)


def crop_width(frames: np.ndarray) -> np.ndarray:
    """Cut a (.., H, H) square to the model input width: 64x64 -> 64x44, 128x128 -> 128x88."""
    side = frames.shape[-1]
    cut = side // 64 * 10
    return frames[..., cut : side - cut]
