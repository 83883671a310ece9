"""The gait energy image (GEI) baseline: a sequence's mean silhouette, matched by
Euclidean distance. It needs no training, so it calibrates a dataset's difficulty: the
synthetic set is tuned until its GEI accuracies resemble real CASIA-B's.
"""

from __future__ import annotations

import numpy as np

from gaitlib.data.pretreatment import crop_width
from gaitlib.data.splits import default_split, split_for
from gaitlib.data.store import Store
from gaitlib.evaluation.protocols import EvaluationResult, evaluate, protocol_for


def gei_features(store: Store, indices=None, max_frames: int = 0) -> np.ndarray:
    """(n, H * Wc) float32 GEIs in [0, 1] of the sequences ``indices`` (default: all), frames
    cropped to the model input width first (64x64 -> 64x44) like every model's input;
    ``max_frames`` > 0: of each sequence's first frames only (as a cheap profile tests)."""
    indices = np.arange(len(store)) if indices is None else np.asarray(indices, dtype=np.int64)
    h, w = store.meta["frame_shape"]
    width = crop_width(np.empty((0, h, w), dtype=np.uint8)).shape[-1]
    out = np.empty((len(indices), h * width), dtype=np.float32)
    for row, i in enumerate(indices):
        frames = crop_width(store.frames_of(int(i)))
        if max_frames > 0:
            frames = frames[:max_frames]
        # uint32 sums are exact; one division keeps the mean in float32 without drift.
        total = frames.sum(axis=0, dtype=np.uint32)
        out[row] = (total / (255.0 * len(frames))).astype(np.float32).ravel()
    return out


def gei_baseline(store: Store, split: str | None = None, subjects=None, max_frames: int = 0,
                 **evaluate_kwargs) -> EvaluationResult:
    """GEI rank-1 accuracy on the store's test subjects under its dataset's protocol.

    ``split``: a name from gaitlib.data.splits (default: the dataset's); ``subjects``: score
    these test subjects instead (e.g. the ones a cheap profile tests); ``max_frames`` > 0: GEIs
    of each sequence's first frames. Other keyword arguments go to
    :func:`gaitlib.evaluation.evaluate` (``protocol`` included, to override).
    """
    chosen = split_for(split or default_split(store.dataset), store.subjects)
    test = chosen.test if subjects is None else [str(s) for s in subjects]
    indices = store.select(subjects=test)
    if len(indices) == 0:
        raise ValueError(f"{store.path}: no sequences of the test subjects "
                         f"{'of split ' + repr(chosen.name) if subjects is None else test[:5]}")
    evaluate_kwargs.setdefault("protocol", protocol_for(store.dataset))
    return evaluate(gei_features(store, indices, max_frames), store.subjects[indices],
                    store.conditions[indices], store.views[indices], **evaluate_kwargs)
