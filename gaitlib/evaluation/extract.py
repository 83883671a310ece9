"""Feature extraction over a store's test sequences, sharded across distributed ranks.

Each rank embeds every ``world_size``-th sequence (whole sequences, packed a few at a time with
their lengths) and the shards are gathered so that every rank ends with all features in the
order of ``items``. With one process it is a plain loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from gaitlib.data.pretreatment import crop_width
from gaitlib.data.sampling import FrameSampling, SequenceDataset, collate_packed, to_model_input
from gaitlib.data.store import Store


@dataclass
class Features:
    """Embeddings ``(n, c, p)`` (float32, CPU) with the labels the protocols need."""

    embeddings: torch.Tensor
    subjects: np.ndarray
    conditions: np.ndarray
    views: np.ndarray
    items: np.ndarray  # store indices, one per row


class _FirstFrames(Dataset):
    """A sequence dataset cut to each sequence's first ``n`` frames (cheap profiles)."""

    def __init__(self, base: SequenceDataset, n: int):
        self.base, self.n = base, n

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i):
        frames, label, index = self.base[i]
        return frames[: self.n], label, index


def _loader(store: Store, items: np.ndarray, workers: int, sequences_per_batch: int,
            max_frames: int) -> DataLoader:
    dataset: Dataset = SequenceDataset(store, items, FrameSampling("all"))
    if max_frames > 0:
        dataset = _FirstFrames(dataset, max_frames)
    return DataLoader(dataset, batch_size=sequences_per_batch, shuffle=False, num_workers=workers,
                      collate_fn=collate_packed, pin_memory=torch.cuda.is_available())


@torch.no_grad()
def extract_features(model: nn.Module, store: Store, items: Sequence[int],
                     device: torch.device | str = "cpu", *, workers: int = 0,
                     sequences_per_batch: int = 4, max_frames: int = 0, precision: str = "fp32",
                     dist_info=None, progress: bool = False, height: int = 0) -> Features:
    """Embed ``store``'s sequences ``items`` with ``model`` (set to eval mode, restored after).

    ``max_frames`` > 0 keeps only each sequence's first frames; ``height`` > 0 shrinks the frames
    to that height (see :func:`gaitlib.data.sampling.to_model_input`). ``precision``: fp32, or
    bf16/fp16 autocast (:mod:`gaitlib.training.precision`); features come back float32 either
    way. ``dist_info`` (a :class:`gaitlib.training.distributed.DistInfo`): shard the work
    across ranks and gather; every rank gets the full result.
    """
    from gaitlib.training.distributed import DistInfo, gather_varying
    from gaitlib.training.precision import autocast as autocast_for

    info = dist_info or DistInfo(device=torch.device(device))
    items = np.asarray(items, dtype=np.int64)
    shard = items[info.rank :: info.world_size]
    device = torch.device(device)
    was_training = model.training
    model.eval()
    chunks: list[torch.Tensor] = []
    autocast = autocast_for(device, precision)
    try:
        loader = _loader(store, shard, workers, sequences_per_batch, max_frames)
        bar = tqdm(loader, desc="extract", disable=not (progress and info.is_main), leave=False)
        for batch in bar:
            sils = to_model_input(batch["frames"], device, height)
            lengths = batch["lengths"].tolist()
            with autocast:
                if len(set(lengths)) == 1:  # equal lengths: one (n, T, h, w) batch, no packing
                    emb = model(sils.reshape(len(lengths), lengths[0], *sils.shape[-2:]))["embedding"]
                else:
                    emb = model(sils, lengths=lengths)["embedding"]
            chunks.append(emb.float())
    finally:
        model.train(was_training)
    if chunks:
        local = torch.cat(chunks)
    else:  # a rank with an empty shard still joins the gather; infer the shape from a probe
        local = _empty_like_output(model, store, device, height)
    gathered = gather_varying(local, info).cpu()
    # Shards were items[r::W]; undo the interleaving.
    w = info.world_size
    order = np.concatenate([np.arange(r, len(items), w) for r in range(w)])
    embeddings = torch.empty_like(gathered)
    embeddings[torch.from_numpy(order)] = gathered
    return Features(embeddings, store.subjects[items], store.conditions[items], store.views[items],
                    items)


def _empty_like_output(model: nn.Module, store: Store, device: torch.device,
                       height: int = 0) -> torch.Tensor:
    h, w = store.meta["frame_shape"]
    probe = to_model_input(torch.from_numpy(crop_width(np.zeros((1, 3, h, w), np.uint8)).copy()),
                           device, height)
    was_training = model.training
    model.eval()
    try:
        out = model(probe)["embedding"]
    finally:
        model.train(was_training)
    return out.new_zeros((0, *out.shape[1:])).float()
