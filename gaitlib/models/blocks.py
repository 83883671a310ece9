"""Building blocks shared by every model in the zoo.

Layout conventions, used throughout ``gaitlib.models``:

* silhouettes enter a model as ``(n, s, h, w)`` floats in [0, 1] and are lifted to
  ``(n, c, s, h, w)`` (channels first, frames second), the layout 3D convolutions need;
* part features are ``(n, c, p)``: channels, then horizontal parts;
* a *packed* batch is one tensor ``(1, sum(lengths), h, w)`` holding several sequences
  end to end, as OpenGait feeds test sequences of unequal length.  Anything that mixes
  frames (set pooling, temporal convs) must then work sequence by sequence:
  :func:`per_sequence` is the one place that does the splitting.

Each block exists once here; the model files only compose them.  Initialisation follows
OpenGait's ``BaseModel.init_parameters`` (:func:`init_weights`), because the papers do not
state one and the published numbers were obtained with it.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Lengths = Sequence[int] | Tensor | None


# ---------------------------------------------------------------------------------------------
# Input handling and packed sequences
# ---------------------------------------------------------------------------------------------

def as_lengths(lengths: Lengths) -> list[int] | None:
    """Normalise ``lengths`` (list, tuple or 1-D tensor of frame counts) to a list of ints."""
    if lengths is None:
        return None
    if isinstance(lengths, Tensor):
        lengths = lengths.reshape(-1).tolist()
    out = [int(v) for v in lengths]
    if not out or min(out) <= 0:
        raise ValueError(f"lengths must be a non-empty list of positive ints, got {out}")
    return out


def prepare_input(sils: Tensor, lengths: Lengths = None) -> tuple[Tensor, list[int] | None]:
    """Check the model contract and lift ``(n, s, h, w)`` to ``(n, 1, s, h, w)``.

    With ``lengths`` the batch must be packed: ``n == 1`` and ``s == sum(lengths)``.
    """
    if sils.dim() != 4:
        raise ValueError(f"silhouettes must be (n, frames, h, w), got shape {tuple(sils.shape)}")
    lens = as_lengths(lengths)
    if lens is not None and (sils.shape[0] != 1 or sum(lens) != sils.shape[1]):
        raise ValueError(
            f"a packed batch must be (1, sum(lengths), h, w); got {tuple(sils.shape)} "
            f"with sum(lengths)={sum(lens)}")
    return sils.unsqueeze(1), lens


def per_sequence(fn: Callable[[Tensor], Tensor | dict[str, Tensor]], x: Tensor,
                 lengths: Lengths = None, dim: int = 2,
                 out_dims: dict[str, int] | None = None) -> Tensor | dict[str, Tensor]:
    """Apply ``fn`` to each packed sequence of ``x`` (split along ``dim``), concatenate on dim 0
    (an ``fn`` that returns a dict: each value, on dim 0 or on its ``out_dims`` entry).

    Without ``lengths`` this is just ``fn(x)``: every row of the batch is one sequence.
    """
    lens = as_lengths(lengths)
    if lens is None:
        return fn(x)
    outs = [fn(chunk) for chunk in x.split(lens, dim=dim)]
    if isinstance(outs[0], dict):
        return {key: torch.cat([o[key] for o in outs], dim=(out_dims or {}).get(key, 0))
                for key in outs[0]}
    return torch.cat(outs, dim=0)


def set_max(x: Tensor, lengths: Lengths = None, dim: int = 2) -> Tensor:
    """Set pooling / temporal pooling (TP): max over frames, sequence by sequence if packed.

    GaitSet treats a sequence as an unordered set, so an order-free max is the natural
    permutation-invariant pooling; the later models keep it as their TP.
    """
    return per_sequence(lambda t: t.max(dim=dim).values, x, lengths, dim)


class SetBlock(nn.Module):
    """Apply a 2D module to every frame: ``(n, c, s, h, w) -> (n, c', s, h', w')``.

    Frames are folded into the batch, so the wrapped module never sees more than one frame
    and packing cannot leak information between sequences.
    """

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        n, c, s, h, w = x.shape
        y = self.module(x.transpose(1, 2).reshape(n * s, c, h, w))
        return y.reshape(n, s, *y.shape[1:]).transpose(1, 2).contiguous()


# ---------------------------------------------------------------------------------------------
# Convolutions (bias-free, as in all three baselines)
# ---------------------------------------------------------------------------------------------

class BasicConv1d(nn.Conv1d):
    """Bias-free ``nn.Conv1d`` (a subclass, so :func:`init_weights` treats it as a conv)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1,
                 padding=0, **kwargs):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias=False,
                         **kwargs)


class BasicConv2d(nn.Conv2d):
    """Bias-free ``nn.Conv2d``; the baselines put LeakyReLU after it and no BatchNorm."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1,
                 padding=0, **kwargs):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias=False,
                         **kwargs)


class BasicConv3d(nn.Conv3d):
    """Bias-free ``nn.Conv3d`` over ``(n, c, s, h, w)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1,
                 padding=1, **kwargs):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias=False,
                         **kwargs)


# ---------------------------------------------------------------------------------------------
# Horizontal pooling
# ---------------------------------------------------------------------------------------------

def strip_height(height: int, strips: int, what: str = "") -> int:
    """The rows of each of ``strips`` equal horizontal strips of a ``height``-row feature map;
    an indivisible height is a ValueError (rather than a silent extra or ragged strip).  Every
    model that cuts a map into horizontal strips asks here first."""
    if strips < 1 or height % strips:
        raise ValueError(f"{what + ': ' if what else ''}feature height {height} is not divisible "
                         f"into {strips} horizontal strips")
    return height // strips


def split_strips(x: Tensor, strips: int, dim: int, what: str = "") -> tuple[Tensor, ...]:
    """``x`` cut along its height ``dim`` into ``strips`` equal horizontal strips (views)."""
    return x.split(strip_height(x.shape[dim], strips, what), dim=dim)


def _strips(x: Tensor, bins: int) -> Tensor:
    """``(..., h, w) -> (..., bins, h*w/bins)``: each row is one horizontal strip, flattened."""
    strip_height(x.shape[-2], bins, "HPP")
    return x.reshape(*x.shape[:-2], bins, -1)


class HorizontalPyramidPooling(nn.Module):
    """HPP: cut the map into ``b`` horizontal strips for each ``b`` in ``bins`` and describe
    each strip by mean + max over its pixels.  ``(..., h, w) -> (..., sum(bins))``.

    Works on any leading dimensions, so GaitPart applies it per frame on ``(n, c, s, h, w)``.
    """

    def __init__(self, bins: Sequence[int] = (16, 8, 4, 2, 1)):
        super().__init__()
        self.bins = tuple(int(b) for b in bins)

    def forward(self, x: Tensor) -> Tensor:
        feats = []
        for b in self.bins:
            z = _strips(x, b)
            feats.append(z.mean(-1) + z.amax(-1))
        return torch.cat(feats, dim=-1)


class GeMHPP(nn.Module):
    """Generalised-mean pooling over horizontal strips (GaitGL and later models).

    ``GeM(z) = mean(clamp(z, eps) ** p) ** (1/p)`` per strip, with one learnable ``p``
    (init 6.5, between average pooling at p=1 and max pooling as p -> inf).
    """

    def __init__(self, bins: Sequence[int] = (64,), p: float = 6.5, eps: float = 1e-6):
        super().__init__()
        self.bins = tuple(int(b) for b in bins)
        self.p = nn.Parameter(torch.full((1,), float(p)))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        feats = []
        for b in self.bins:
            z = _strips(x, b).clamp(min=self.eps).pow(self.p)
            feats.append(z.mean(-1).pow(1.0 / self.p))
        return torch.cat(feats, dim=-1)


# ---------------------------------------------------------------------------------------------
# Heads
# ---------------------------------------------------------------------------------------------

FC_INITS = ("opengait", "per_part")


def _init_part_weight(weight: Tensor, init: str) -> None:
    """Xavier-uniform init of a ``(parts, in, out)`` weight.

    ``"opengait"`` calls ``xavier_uniform_`` on the whole 3-D tensor, as GaitSet's and
    OpenGait's code do; PyTorch then takes fan_in = in*out and fan_out = parts*out, which
    makes the bound much smaller than for one matrix.  ``"per_part"`` treats each part as an
    ordinary ``in x out`` layer (fan_in = in, fan_out = out), the textbook reading.
    """
    if init == "opengait":
        nn.init.xavier_uniform_(weight)
    elif init == "per_part":
        bound = math.sqrt(6.0 / (weight.shape[1] + weight.shape[2]))
        nn.init.uniform_(weight, -bound, bound)
    else:
        raise ValueError(f"unknown fc init {init!r}; valid: {', '.join(FC_INITS)}")


class SeparateFCs(nn.Module):
    """One bias-free linear map per part: ``(n, c_in, p) -> (n, c_out, p)``.

    Parts see different body regions, so they do not share weights (GaitSet's "independent
    fully connected layers" of HPM).
    """

    def __init__(self, parts: int, in_channels: int, out_channels: int,
                 init: str = "opengait"):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(parts, in_channels, out_channels))
        _init_part_weight(self.weight, init)

    def forward(self, x: Tensor) -> Tensor:
        # (n, c, p) -> (p, n, c) @ (p, c, o) -> (p, n, o) -> (n, o, p)
        return torch.bmm(x.permute(2, 0, 1), self.weight).permute(1, 2, 0).contiguous()


class BNNeck(nn.Module):
    """BNNeck (Luo et al., "Bag of Tricks" re-ID): BatchNorm on the embedding, then a
    separate per-part FC to class logits.  Returns ``(bn_features, logits)``, both
    ``(n, ., p)``.

    ``parallel_bn=True`` normalises each (channel, part) pair on its own
    (``BatchNorm1d(c*p)``, OpenGait's ``SeparateBNNecks``); ``False`` shares one
    ``BatchNorm1d(c)`` across parts (GaitGL's original head).  ``norm=True`` turns the
    classifier into a cosine one (unit features and unit class weights), as OpenGait's
    ``SeparateBNNecks`` does by default; the returned features are then the unit ones.
    """

    def __init__(self, parts: int, in_channels: int, num_classes: int,
                 parallel_bn: bool = True, norm: bool = False, init: str = "opengait"):
        super().__init__()
        self.parallel_bn = parallel_bn
        self.norm = norm
        self.bn = nn.BatchNorm1d(in_channels * parts if parallel_bn else in_channels)
        self.fc = SeparateFCs(parts, in_channels, num_classes, init=init)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        n, c, p = x.shape
        feat = self.bn(x.reshape(n, c * p)).reshape(n, c, p) if self.parallel_bn else self.bn(x)
        if not self.norm:
            return feat, self.fc(feat)
        feat = F.normalize(feat, dim=1)
        logits = torch.bmm(feat.permute(2, 0, 1), F.normalize(self.fc.weight, dim=1))
        return feat, logits.permute(1, 2, 0).contiguous()


# ---------------------------------------------------------------------------------------------
# Initialisation and bookkeeping
# ---------------------------------------------------------------------------------------------

def init_weights(model: nn.Module) -> nn.Module:
    """OpenGait's initialisation: Xavier-uniform convs and linears (zero bias), BatchNorm
    scale ~ N(1, 0.02) and zero shift.  Parameters owned by custom blocks (SeparateFCs,
    GeM's p, per-part convs) keep their own init.  Returns ``model`` for chaining.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return model


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters, the figure the papers' "Params" columns report."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def halved_options(model_cls: type, options: dict, *, strips: str | None = None,
                   variants: dict[str, dict] | None = None) -> dict:
    """A model's build options for the cheap profiles (``gaitlib.training.recipes``): half the
    channel widths and, where ``strips`` names the option that counts horizontal strips or
    pyramid bins, half as many, so each strip still covers the same body rows.  A value the
    options leave out comes from the model's ``variants`` table (by ``options['variant']``),
    else from its signature's default.  Each model's ``cheap_options`` classmethod calls this."""
    defaults = {p.name: p.default for p in inspect.signature(model_cls).parameters.values()}
    table = (variants or {}).get(options.get("variant", "casia-b"), {})

    def value(key: str):
        if options.get(key) is not None:
            return options[key]
        return table[key] if key in table else defaults[key]

    out = dict(options)
    out["channels"] = tuple(max(1, int(c) // 2) for c in value("channels"))
    if strips is not None:
        count = value(strips)
        out[strips] = (tuple(dict.fromkeys(max(1, int(v) // 2) for v in count))
                       if isinstance(count, (tuple, list)) else max(1, int(count) // 2))
    return out
