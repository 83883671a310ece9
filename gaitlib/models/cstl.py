"""CSTL: Huang, Zhu, Wang, Wang, Yang, He, Liu, Feng, "Context-Sensitive Temporal Feature
Learning for Gait Recognition", ICCV 2021 (seed 004).

Pipeline (paper Fig. 3): a 4-layer 2D CNN on every frame; each feature row is one of K part
features, described by GMP + GAP over its width -> P (n, K, c, frames); *MSTE* turns P into
frame-level, short-term and long-term features T_f, T_s, T_l (Sec. 3.2, eq. 1); *ATA* fuses
them with learned cross-scale weights into one sequence feature T (eqs. 2-5); *SSFL* scores
every part of every frame, trains the scores with a cross-entropy on the score-weighted
features (eqs. 6-8, 11) and recombines a frame S from the top-scoring frame of each part
(eqs. 9-10); the output goes through separate FCs (one per part) to 256 (CASIA-B) or 512
(OU-MVLP) channels.  Training: separate BA+ triplet on the embedding + the SSFL CE (eq. 11).

Two readings (``reading``), because the paper text and the authors' code
(github.com/OliverHxh/CSTL, ICCV version) differ and only the code reaches the published
parameter count (9.09M at 64x44, 17.93M at 128x88; measured here 9.09M / 17.93M with the
code reading, 5.75M / 11.25M with the paper reading):

* ``"code"`` (default, because the published accuracies and parameter counts come from it):
  the MLPs of MSTE and SSFL are FC -> BatchNorm -> LeakyReLU -> FC, ATA's is
  FC -> LeakyReLU -> FC and a LeakyReLU follows eq. 5; the short-term convs are each followed
  by BatchNorm; convs and FCs bias-free.  SSFL's weighted feature (eq. 7) is the score-weighted
  sum of a per-part 1x1 projection of concat(T_f, T_s, T_l) (not of T_f), batch-normalised
  before the class FC, and it joins the output: concat(T, W, S) -> FC (3c inputs per part,
  1.05M of the parameters; the paper says concat(T, S)).
* ``"paper"``: the text taken literally: MLPs FC -> ReLU -> FC with biases, no BatchNorm
  anywhere (the short-term convs get biases instead), eq. 7 weights T_f itself, output
  concat(T, S).  The "⊙" of eqs. 3 and 6 is read as the
  element-wise product (eq. 1 defines it so); the code concatenates (eq. 10 uses "⊙" for
  concatenation), which is also what gives W_T its 3C channels.

Facts the paper leaves open, taken from the code in both readings: every MLP and temporal
conv has its own weights per part (grouped 1x1 / k=3 conv1d over K*c channels); MLP hidden
width = input width / 16 ("FC(c, c/16)" with c the input width: 3c/16 for the concatenated
inputs); GMP and GAP are summed; MSTE's long-term scores are per channel (eq. 1 multiplies
them with P element-wise); SSFL's class FC is shared by all parts and initialised as the code
does (Xavier on a (1, c, classes) tensor).  The default ``num_classes`` is 74 (the LT split);
the code drops subject 005 and uses 73 (128 parameters fewer).  ``variant="oumvlp"`` uses the
paper's OU-MVLP widths (64, 128, 256, 256; output 512; 5153 classes): 37.6M parameters at
64x44 (the code ships no OU-MVLP configuration to compare with).

Ablation options (Tables 3-5):

* ``scales``: the MSTE features fed to ATA and to SSFL's scorer, in the fixed order
  frame, short, long; eq. 2's cumulative sums run over the chosen ones.  S always gathers
  from P (= T_f, which needs no computation), so SSFL still works without ``"frame"``;
* ``aggregation``: ``"ata"`` or temporal ``"max"`` / ``"avg"`` pooling of the mean of the
  cumulative scales (ATA with all weights 1 is exactly the ``"avg"`` case).  Table 3's
  "+MSTE+SSFL" (91.1) equals Table 5's max-pooling row (91.1), so without ATA the paper
  aggregates by max pooling;
* ``ssfl``: SSFL on/off (off: the output is T alone and there are no logits, so train with
  triplet only, ``loss.ce_weight=0``);
* ``mste=False`` (Table 3's baseline, "4-layer CNN with a feature division" and BA+ only):
  P is used as is, i.e. ``scales=("frame",)``.  The baseline row is
  ``mste=False, ssfl=False, aggregation="max"`` (temporal max, as GaitSet's set pooling);
  "+MSTE" is ``ssfl=False, aggregation="max"``, "+MSTE+ATA" ``ssfl=False``, "+MSTE+SSFL"
  ``aggregation="max"``.

Sequences: any length >= 1.  The temporal convs zero-pad at the sequence ends, all temporal
sums and the arg-max run within one sequence, and packed batches are split before MSTE, so
no sequence ever sees another's frames (the authors' loader reuses another sample's frames
for training clips of <= 15 frames; frame sampling lives in ``gaitlib.data`` here).

``parts`` (K) defaults to the feature height (every row a part, as the paper's K = 32 at 64x44
and the code); a smaller K that divides the height pools groups of adjacent rows into one part
(GMP + GAP over the strip), as the paper's Fig. 7 (K = 8) and its supplementary ablation of K do.

``channels`` overrides the variant's four backbone widths and ``resolution`` may also be 32
(32x22, K=16): the cpu profile uses both (half widths, half resolution; gaitlib.training.recipes).

Hooks (computed anyway, never altering the forward pass): ``ssfl_index`` (n, K), the frame
SSFL picks for each part (Fig. 7; relative to the start of each sequence) and ``ssfl_scores``
(n, frames, K; for a packed input (1, sum(lengths), K), laid out like the input), the
normalised part scores of eq. 6.  ``embedding`` (n, 256, K) is the feature for retrieval and
for Fig. 6's t-SNE.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import (
    BasicConv2d,
    Lengths,
    SeparateFCs,
    SetBlock,
    halved_options,
    init_weights,
    per_sequence,
    prepare_input,
)

SCALES = ("frame", "short", "long")
AGGREGATIONS = ("ata", "max", "avg")
READINGS = ("code", "paper")
VARIANTS: dict[str, dict] = {
    "casia-b": {"channels": (32, 64, 128, 128), "hidden": 256, "num_classes": 74},
    "oumvlp": {"channels": (64, 128, 256, 256), "hidden": 512, "num_classes": 5153},
}


# Part features travel as (n, K*c, frames): part-major channels, so a conv1d with groups=K is
# K independent per-part layers (same parameters and arithmetic, one call).

def _parts(x: Tensor, parts: int) -> Tensor:
    """(n, K*c, s) -> (n, K, c, s)."""
    n, kc, s = x.shape
    return x.reshape(n, parts, kc // parts, s)


def _cat_parts(feats: Sequence[Tensor], parts: int) -> Tensor:
    """Concatenate per-part features along channels, part by part: -> (n, K*sum(c), s)."""
    x = torch.cat([_parts(f, parts) for f in feats], dim=2)
    return x.reshape(x.shape[0], -1, x.shape[-1])


def _product(feats: Sequence[Tensor]) -> Tensor:
    out = feats[0]
    for f in feats[1:]:
        out = out * f
    return out


class PartMLP(nn.Sequential):
    """Per-part MLP "FC(c, c/16) -> act -> FC(c/16, out)" (paper Sec. 4.2) on (n, K*c, s)."""

    def __init__(self, parts: int, c_in: int, c_out: int, reading: str, bn: bool = True):
        hidden = max(c_in // 16, 1)
        code = reading == "code"
        layers: list[nn.Module] = [nn.Conv1d(parts * c_in, parts * hidden, 1, groups=parts,
                                             bias=not code)]
        if code and bn:
            layers.append(nn.BatchNorm1d(parts * hidden))
        layers.append(nn.LeakyReLU(inplace=True) if code else nn.ReLU(inplace=True))
        layers.append(nn.Conv1d(parts * hidden, parts * c_out, 1, groups=parts, bias=not code))
        super().__init__(*layers)


class MSTE(nn.Module):
    """Multi-scale temporal extraction (Sec. 3.2, Fig. 4): P -> [T_f, T_s, T_l] (chosen ones)."""

    def __init__(self, channels: int, parts: int, scales: Sequence[str], reading: str):
        super().__init__()
        self.parts, self.scales = parts, tuple(scales)
        code = reading == "code"

        def temporal_conv() -> nn.Module:
            conv = nn.Conv1d(parts * channels, parts * channels, 3, padding=1, groups=parts,
                             bias=not code)
            return nn.Sequential(conv, nn.BatchNorm1d(parts * channels)) if code else conv

        if "short" in self.scales:
            self.short_term = nn.ModuleList([temporal_conv(), temporal_conv()])
        if "long" in self.scales:
            self.long_term = PartMLP(parts, channels, channels, reading)

    def forward(self, p: Tensor) -> list[Tensor]:
        out: dict[str, Tensor] = {}
        if "frame" in self.scales:  # frame level: P itself
            out["frame"] = p
        if "short" in self.scales:  # two serial k=3 convs, outputs summed (fields 3 and 5)
            y = self.short_term[0](p)
            out["short"] = y + self.short_term[1](y)
        if "long" in self.scales:  # eq. 1: sigmoid(MLP(P))-weighted temporal mean, broadcast
            w = torch.sigmoid(self.long_term(p))
            t_l = (w * p).sum(-1, keepdim=True) / w.sum(-1, keepdim=True)
            out["long"] = t_l.expand_as(p)
        return [out[s] for s in self.scales]


class ATA(nn.Module):
    """Adaptive temporal aggregation (Sec. 3.3, Fig. 5): relation modeling across the cumulative
    scales (eqs. 2-3), soft attention (eq. 4) and a weight-normalised temporal sum (eq. 5)."""

    def __init__(self, channels: int, parts: int, num_scales: int, reading: str):
        super().__init__()
        self.parts, self.code = parts, reading == "code"
        c_in = num_scales * channels if self.code else channels
        self.relation = PartMLP(parts, c_in, num_scales * channels, reading, bn=False)

    def forward(self, cumulative: Tensor) -> Tensor:
        """``cumulative`` (n, K, m, c, s) from eq. 2 -> T (n, c, K)."""
        n, k, m, c, s = cumulative.shape
        if self.code:  # "⊙" read as concatenation
            x = cumulative.reshape(n, k * m * c, s)
        else:  # "⊙" read as the element-wise product
            x = cumulative.prod(dim=2).reshape(n, k * c, s)
        w = torch.sigmoid(self.relation(x)).reshape(n, k, m, c, s)  # eq. 3: W_T
        t = (cumulative * w).sum(dim=(2, 4)) / w.sum(dim=(2, 4))  # eqs. 4-5
        if self.code:
            t = F.leaky_relu(t)
        return t.transpose(1, 2)


class SSFL(nn.Module):
    """Salient spatial feature learning (Sec. 3.4): part scores (eq. 6), score-weighted feature
    and its class logits (eq. 7, for the CE of eq. 8), top-1 frame per part (eqs. 9-10)."""

    def __init__(self, channels: int, parts: int, num_scales: int, num_classes: int,
                 reading: str):
        super().__init__()
        self.parts, self.code = parts, reading == "code"
        c_in = num_scales * channels if self.code else channels
        self.part_score = PartMLP(parts, c_in, 1, reading)
        if self.code:  # the code's projection of concat(T_f, T_s, T_l) and per-part BN
            self.project = nn.Conv1d(parts * c_in, parts * channels, 1, groups=parts, bias=False)
            self.bn = nn.BatchNorm1d(parts * channels)
        # eq. 7's FC to the training classes, shared by the parts; the code's init.
        self.classifier = nn.Parameter(torch.empty(1, channels, num_classes))
        nn.init.xavier_uniform_(self.classifier)

    def forward(self, p: Tensor, feats: Sequence[Tensor]) -> dict[str, Tensor]:
        k = self.parts
        x = _cat_parts(feats, k) if self.code else _product(feats)
        score = torch.sigmoid(self.part_score(x))  # eq. 6: P_s (n, K, s)
        norm = score / score.sum(-1, keepdim=True)  # eq. 6: normalised over time
        source = _parts(self.project(x) if self.code else p, k)  # (n, K, c, s)
        weighted = (source * norm.unsqueeze(2)).sum(-1)  # eq. 7, inside the FC: (n, K, c)
        n, _, c = weighted.shape
        cls_in = self.bn(weighted.reshape(n, k * c)).reshape(n, k, c) if self.code else weighted
        logits = cls_in.matmul(self.classifier[0]).transpose(1, 2)  # eq. 7: (n, classes, K)
        index = score.argmax(-1)  # eq. 9: x_b^k (ties: the first frame)
        gather = index[:, :, None, None].expand(n, k, c, 1)
        selected = _parts(p, k).gather(3, gather).squeeze(3)  # eq. 10: S (n, K, c)
        return {"weighted": weighted.transpose(1, 2), "selected": selected.transpose(1, 2),
                "logits": logits, "index": index, "scores": norm.transpose(1, 2)}


class CSTL(nn.Module):
    """CSTL.  Output: ``embedding`` (n, hidden, K); with SSFL also ``ssfl_index`` (n, K) and
    ``ssfl_scores``, and in training mode ``logits`` (n, num_classes, K) for eq. 8's CE."""

    @classmethod
    def cheap_options(cls, options: dict) -> dict:
        """The cheap profiles' build options: half the widths (its parts, one per feature row,
        halve with the input; :func:`halved_options`)."""
        return halved_options(cls, options, variants=VARIANTS)

    def __init__(self, *, variant: str = "casia-b", num_classes: int | None = None,
                 resolution: int = 64, scales: Sequence[str] = SCALES,
                 aggregation: str = "ata", ssfl: bool = True, mste: bool = True,
                 reading: str = "code", channels: Sequence[int] | None = None,
                 parts: int | None = None):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown CSTL variant {variant!r}; valid: {', '.join(VARIANTS)}")
        if resolution not in (32, 64, 128):
            raise ValueError(f"resolution must be 64 (64x44), 128 (128x88) or 32 (32x22, the cpu "
                             f"profile), got {resolution}")
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {aggregation!r}; "
                             f"valid: {', '.join(AGGREGATIONS)}")
        if reading not in READINGS:
            raise ValueError(f"unknown reading {reading!r}; valid: {', '.join(READINGS)}")
        if isinstance(scales, str):
            scales = (scales,)
        unknown = sorted(set(scales) - set(SCALES))
        if unknown or not scales:
            raise ValueError(f"scales must be a non-empty subset of {SCALES}, got {scales!r}")
        if not mste:  # Table 3's baseline: P as is
            if tuple(scales) not in (SCALES, ("frame",)):
                raise ValueError(f"mste=False keeps the frame-level features only; scales="
                                 f"{tuple(scales)!r} asks for MSTE's temporal scales")
            scales = ("frame",)
        cfg = VARIANTS[variant]
        ch = tuple(channels) if channels is not None else cfg["channels"]
        if len(ch) != 4:
            raise ValueError(f"CSTL's backbone has four conv layers; got channels {ch}")
        num_classes = cfg["num_classes"] if num_classes is None else int(num_classes)
        rows = resolution // 2  # feature height after the backbone's one 2x2 max-pool
        if parts is None:
            parts = rows
        if parts < 1 or rows % parts:
            raise ValueError(f"parts must divide the feature height {rows} "
                             f"(resolution {resolution}), got {parts}")
        self.resolution, self.parts = resolution, int(parts)
        self.scales = tuple(s for s in SCALES if s in scales)
        self.aggregation, self.reading = aggregation, reading
        k, c = self.parts, ch[3]

        # 4-layer 2D CNN (Sec. 4.2): 3x3 convs, LeakyReLU, a 2x2 max-pool after the second.
        self.backbone = SetBlock(nn.Sequential(
            BasicConv2d(1, ch[0], 3, padding=1), nn.LeakyReLU(inplace=True),
            BasicConv2d(ch[0], ch[1], 3, padding=1), nn.LeakyReLU(inplace=True),
            nn.MaxPool2d(2),
            BasicConv2d(ch[1], ch[2], 3, padding=1), nn.LeakyReLU(inplace=True),
            BasicConv2d(ch[2], ch[3], 3, padding=1), nn.LeakyReLU(inplace=True)))
        self.mste = MSTE(c, k, self.scales, reading)
        m = len(self.scales)
        self.ata = ATA(c, k, m, reading) if aggregation == "ata" else None
        self.ssfl = SSFL(c, k, m, num_classes, reading) if ssfl else None
        pieces = 1 + ((2 if reading == "code" else 1) if ssfl else 0)
        self.fc = SeparateFCs(k, pieces * c, cfg["hidden"])  # the "FCs" of Fig. 3
        init_weights(self)

    def _sequence(self, p: Tensor) -> dict[str, Tensor]:
        """Everything after the backbone, for equal-length sequences: p (n, K*c, s)."""
        k = self.parts
        feats = self.mste(p)
        cumulative = torch.stack([_parts(t, k) for t in accumulate(feats)], dim=2)  # eq. 2
        if self.ata is not None:
            t = self.ata(cumulative)
        else:  # Table 5: the cumulative scales averaged, then temporal max / mean pooling
            fused = cumulative.mean(dim=2)
            t = (fused.amax(-1) if self.aggregation == "max" else fused.mean(-1)).transpose(1, 2)
        if self.ssfl is None:
            return {"feature": t}
        s = self.ssfl(p, feats)
        pieces = [t, s["weighted"], s["selected"]] if self.reading == "code" else \
            [t, s["selected"]]
        return {"feature": torch.cat(pieces, dim=1), "logits": s["logits"],
                "index": s["index"], "scores": s["scores"]}

    def forward(self, sils: Tensor, lengths: Lengths = None) -> dict[str, Tensor]:
        x, lens = prepare_input(sils, lengths)
        if x.shape[-2] != self.resolution:
            raise ValueError(f"this CSTL expects frames {self.resolution} high "
                             f"(resolution={self.resolution}), got {x.shape[-2]}")
        f = self.backbone(x)  # (n, c, s, h/2, w/2)
        if self.parts != f.shape[-2]:  # K strips of adjacent rows
            f = f.reshape(*f.shape[:3], self.parts, -1)
        f = f.amax(-1) + f.mean(-1)  # GMP + GAP over each part (a row when K = h/2)
        n, c, s, k = f.shape
        p = f.permute(0, 3, 1, 2).reshape(n, k * c, s)
        # packed: one sequence at a time from here on (SSFL's scores are (K, n, ...))
        res = per_sequence(self._sequence, p, lens, dim=2, out_dims={"scores": 1})
        out = {"embedding": self.fc(res["feature"])}
        if self.ssfl is not None:
            out["ssfl_index"], out["ssfl_scores"] = res["index"], res["scores"]
            if self.training:
                out["logits"] = res["logits"]
        return out
