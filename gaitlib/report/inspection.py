"""Checks behind the figure pages: what a figure shows and whether an artefact of the code drives it.

- :func:`ssfl_padding_check` (CSTL Fig. 7): SSFL's picks with the trained model as it is (zero
  padding at the clip ends in MSTE's short-term temporal convs) against the same weights with
  replicate padding, to tell whether the ends of the clip attract the picks because of the padding.
- :func:`fusion_markdown` (3D Local Fig. 4): how the fusion weights compare across branches (the
  paths' on-map fractions come from the model itself: ``LocalCNN3D.inspect``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np


@contextmanager
def temporal_padding(model, mode: str) -> Iterator[int]:
    """Within the block, CSTL's short-term temporal convs pad the clip ends with ``mode``
    ('zeros', 'replicate', 'reflect', 'circular') instead of what they were built with; yields
    how many frames at each end the stacked convs' padding reaches (the sum of their paddings).
    The weights are untouched and the modes are restored afterwards."""
    from torch import nn

    short = getattr(getattr(model, "mste", None), "short_term", None)
    if short is None:
        raise ValueError("the model has no short-term temporal convs (CSTL with MSTE's 'short' scale)")
    convs = [m for m in short.modules() if isinstance(m, nn.Conv1d) and m.padding[0] > 0]
    before = [c.padding_mode for c in convs]
    try:
        for c in convs:
            c.padding_mode = mode
        yield sum(c.padding[0] for c in convs)
    finally:
        for c, m in zip(convs, before, strict=True):
            c.padding_mode = m


@dataclass
class PaddingCheck:
    """SSFL's frame picks (clips x parts) for clips of ``frames`` frames: ``trained`` with the
    convs' own (zero) padding, ``replicate`` with replicate padding; ``reach``: frames at each
    end the padding reaches."""

    frames: int
    reach: int
    trained: np.ndarray
    replicate: np.ndarray

    def at_ends(self, picks: np.ndarray) -> float:
        """Fraction of picks within ``reach`` frames of a clip end."""
        near = (picks < self.reach) | (picks >= self.frames - self.reach)
        return float(near.mean()) if picks.size else float("nan")

    @property
    def chance(self) -> float:
        """The fraction of frames within ``reach`` of an end: the rate of uniform picks."""
        return min(1.0, 2 * self.reach / self.frames)

    def verdict(self) -> str:
        """'ends not favoured', 'padding' (replicate padding removes most of the excess of picks
        at the ends over uniform picks) or 'not padding alone'."""
        excess = self.at_ends(self.trained) - self.chance
        if excess < 0.1:
            return "ends not favoured"
        left = self.at_ends(self.replicate) - self.chance
        return "padding" if left < excess / 2 else "not padding alone"

    def markdown(self) -> str:
        """What the check shows, for the page."""
        zero, rep = self.at_ends(self.trained), self.at_ends(self.replicate)
        clips, k = self.trained.shape
        changed = float((self.trained != self.replicate).mean())
        text = (f"**Are the picks at the clip ends an artefact of zero padding?** MSTE's two "
                f"stacked k=3 temporal convs pad the clip with zeros, so their output differs in "
                f"the first and last {self.reach} frames. Over {clips} test clip"
                f"{'s' if clips != 1 else ''} of {self.frames} frames and {k} parts, {zero:.0%} "
                f"of the picks of the trained model lie within {self.reach} frames of an end "
                f"(uniform picks would give {self.chance:.0%}); with the same weights and "
                f"replicate padding (the ends padded with copies of the first and last frame), "
                f"{rep:.0%} do, and {changed:.0%} of the picks change. ")
        return text + {
            "ends not favoured": "The picks are not concentrated at the clip ends in this run.",
            "padding": "Most of the excess at the clip ends goes away with replicate padding: the "
                       "zero padding, not the gait, draws SSFL to the first and last frames.",
            "not padding alone": "The excess at the clip ends stays with replicate padding, so "
                                 "zero padding alone does not explain it.",
        }[self.verdict()]


def ssfl_padding_check(model, clips) -> PaddingCheck:
    """Run each clip (T, H, W; all of one length) through a CSTL with SSFL twice, with its
    temporal convs' own padding and with replicate padding, and collect both sets of picks
    (see :class:`PaddingCheck`)."""
    import torch

    clips = list(clips)
    lengths = {int(c.shape[0]) for c in clips}
    if len(lengths) != 1:
        raise ValueError(f"clips must have one length, got {sorted(lengths)}")
    batch = torch.stack(clips)
    model.eval()
    with torch.no_grad():
        trained = model(batch)["ssfl_index"].cpu().numpy()
        with temporal_padding(model, "replicate") as reach:
            replicate = model(batch)["ssfl_index"].cpu().numpy()
    return PaddingCheck(lengths.pop(), reach, trained, replicate)


def separation(features, subjects) -> float:
    """Silhouette score of embeddings (n, c, p) or (n, d) grouped by identity, in [-1, 1]:
    higher means tighter clusters that sit further apart (what a t-SNE plot shows by eye)."""
    from sklearn.metrics import silhouette_score

    x = np.asarray(features.detach().cpu() if hasattr(features, "detach") else features, float)
    labels = np.asarray(subjects).astype(str)
    if len(set(labels)) < 2 or len(set(labels)) >= len(labels):
        return float("nan")
    return float(silhouette_score(x.reshape(len(x), -1), labels))


def tsne_markdown(baseline: float, full: float) -> str:
    """CSTL Fig. 6 in words: the paper's claim and what the two separations say here."""
    text = ("In the paper's Fig. 6 the baseline's ten identities overlap, while CSTL's form "
            "tighter clusters that sit further apart. The silhouette score of the embeddings by "
            f"identity (-1 to 1, higher is better separated) is **{baseline:.2f}** for the "
            f"baseline and **{full:.2f}** for CSTL here: ")
    if np.isnan(baseline) or np.isnan(full):
        return text + "too few sequences per identity to tell."
    if abs(full - baseline) < 0.02:
        return text + "the two are as well separated, so this run does not show the paper's effect."
    return text + ("CSTL separates the identities better, as in the paper." if full > baseline else
                   "the baseline separates them better, the opposite of the paper's figure.")


def fusion_markdown(weights: dict) -> str:
    """3D Local Fig. 4 (b) in words: the paper finds every path's averaged fusion weight
    non-zero; here, the smallest branch weight relative to the largest in each block."""
    parts = []
    for block, branches in weights.items():
        values = {k: float(v) for k, v in branches.items()}
        if not values:
            continue
        low = min(values, key=values.get)
        high = max(values.values())
        parts.append(f"block {block}: smallest {low} at {values[low] / high:.0%} of the largest"
                     if high > 0 else f"block {block}: all zero")
    return ("The paper's Fig. 4 (b) finds every path's averaged fusion weight non-zero: every path "
            "contributes. Here: " + ("; ".join(parts) if parts else "no local block") + ".")


def parameters_markdown(table) -> str:
    """GaitMM Fig. 2 in words: parameter counts at the paper's scale and how the DWConv variant
    and the full model compare here, next to what the paper's figure shows."""
    ours = table[table["source"] == "reproduced"].set_index("method")
    text = ("The paper's Fig. 2 places GaitMM, and its DWConv variant even more, at a better "
            "trade-off than the other methods: higher accuracy for their size. Parameter counts "
            "here are those of the paper-scale models, so the x positions compare with the "
            "paper's; the reproduced accuracies (filled circles) come from this page's short runs "
            "and the paper's Table 1 means (open diamonds, placed at gaitlib's count since the "
            "paper prints none) show where the paper's points sit.")
    if {"Ours", "Ours (DWConv)"} <= set(ours.index):
        full, dw = ours.loc["Ours"], ours.loc["Ours (DWConv)"]
        text += (f" The DWConv variant has {100 * (1 - dw['params'] / full['params']):.0f} % fewer "
                 f"parameters than the full model and reaches {dw['accuracy']:.1f} % against "
                 f"{full['accuracy']:.1f} % here.")
    return text
