"""Equivalence of gaitlib's networks with the reference code, measured.

    python bench/equivalence.py PATH_TO_REFERENCE_CHECKOUT [--models ...] [--fixtures DIR]

PATH is a checkout of OpenGait (github.com/ShiqiYu/OpenGait; its ``opengait/modeling``) or of
the CSTL authors' code (github.com/OliverHxh/CSTL; its ``model/network``), detected from its
layout.  For every model of that checkout the script builds the reference network from the
checkout's own files (imported by path; the few project modules their imports pull in --
OpenGait's ``BaseModel`` and ``utils``, and torchvision / einops when absent -- are replaced
by minimal stand-ins, since building the network needs none of the training machinery; the
checkout is never modified), gives it random
weights and BatchNorm statistics, converts its state dict with
:mod:`gaitlib.models.convert` (what ``gaitlib checkpoint import`` does), runs both networks in
eval mode on the same random silhouettes and prints the largest absolute difference between
their embeddings, in float32 and float64, and both parameter counts.

``--fixtures DIR`` also writes the reference state dicts' tensor names and shapes as JSON
(``tests/fixtures/reference_state_dicts.json`` was made this way).
"""

from __future__ import annotations

import argparse
import copy
import importlib
import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gaitlib.models import count_parameters  # noqa: E402
from gaitlib.models.convert import convert_state  # noqa: E402

# OpenGait's model_cfg of each published configuration (configs/<model>/<model>[_OUMVLP].yaml).
OPENGAIT_CONFIGS = {
    ("gaitset", "casia-b"): {"model": "GaitSet", "in_channels": [1, 32, 64, 128],
                             "SeparateFCs": {"in_channels": 128, "out_channels": 256,
                                             "parts_num": 62},
                             "bin_num": [16, 8, 4, 2, 1]},
    ("gaitset", "oumvlp"): {"model": "GaitSet", "in_channels": [1, 64, 128, 256],
                            "SeparateFCs": {"in_channels": 256, "out_channels": 256,
                                            "parts_num": 62},
                            "bin_num": [16, 8, 4, 2, 1]},
    ("gaitpart", "casia-b"): {"model": "GaitPart",
                              "backbone_cfg": {"in_channels": 1, "type": "Plain", "layers_cfg": [
                                  "BC-32", "BC-32", "M", "FC-64-2", "FC-64-2", "M", "FC-128-3",
                                  "FC-128-3"]},
                              "SeparateFCs": {"in_channels": 128, "out_channels": 128,
                                              "parts_num": 16},
                              "bin_num": [16]},
    ("gaitpart", "oumvlp"): {"model": "GaitPart",
                             "backbone_cfg": {"in_channels": 1, "type": "Plain", "layers_cfg": [
                                 "BC-32", "BC-32", "M", "BC-64", "BC-64", "M", "FC-128-3",
                                 "FC-128-3", "FC-256-3", "FC-256-3"]},
                             "SeparateFCs": {"in_channels": 256, "out_channels": 256,
                                             "parts_num": 16},
                             "bin_num": [16]},
    ("gaitgl", "casia-b"): {"model": "GaitGL", "channels": [32, 64, 128], "class_num": 74},
    ("gaitgl", "oumvlp"): {"model": "GaitGL", "channels": [32, 64, 128, 256],
                           "class_num": 5153},
}
CLASSES = {"gaitset": "GaitSet", "gaitpart": "GaitPart", "gaitgl": "GaitGL"}
DEFAULT_CASES = [("gaitset", "casia-b"), ("gaitpart", "casia-b"), ("gaitgl", "casia-b"),
                 ("gaitset", "oumvlp"), ("gaitpart", "oumvlp"), ("gaitgl", "oumvlp")]


def _package(name: str, path: Path | None) -> types.ModuleType:
    """An empty package whose submodules are found under ``path`` (its __init__ never runs)."""
    mod = types.ModuleType(name)
    mod.__path__ = [str(path)] if path is not None else []
    sys.modules[name] = mod
    return mod


def _opengait_stubs(checkout: Path) -> str:
    """Register the stand-ins OpenGait's model files import; returns the package name."""
    pkg = "_ref_opengait"
    if pkg in sys.modules:
        return pkg
    modeling = checkout / "opengait" / "modeling"
    _package(pkg, modeling)
    _package(f"{pkg}.models", modeling / "models")
    _package(f"{pkg}.backbones", modeling / "backbones")

    # `utils` (OpenGait's top-level helpers): the two functions the model files use.
    utils = types.ModuleType("utils")
    utils.clones = lambda module, n: nn.ModuleList([copy.deepcopy(module) for _ in range(n)])
    utils.is_list_or_tuple = lambda x: isinstance(x, (list, tuple))
    sys.modules.setdefault("utils", utils)
    if importlib.util.find_spec("torchvision") is None:  # modules.py imports RoIAlign (GaitEdge)
        tv = _package("torchvision", None)
        ops = types.ModuleType("torchvision.ops")
        ops.RoIAlign = object
        tv.ops = ops
        sys.modules["torchvision.ops"] = ops
    if importlib.util.find_spec("einops") is None:  # modules.py imports it for later models
        einops = types.ModuleType("einops")
        einops.rearrange = None
        sys.modules["einops"] = einops

    # BaseModel: only what building the network needs (the real one also sets up data
    # loaders, optimisers and distributed training).
    base = types.ModuleType(f"{pkg}.base_model")

    class BaseModel(nn.Module):
        def __init__(self, cfgs: dict):
            super().__init__()
            self.cfgs = cfgs
            self.build_network(cfgs["model_cfg"])

        def get_backbone(self, cfg: dict) -> nn.Module:
            module = importlib.import_module(f"{pkg}.backbones.{cfg['type'].lower()}")
            args = {k: v for k, v in cfg.items() if k != "type"}
            return getattr(module, cfg["type"])(**args)

    base.BaseModel = BaseModel
    sys.modules[base.__name__] = base
    return pkg


def opengait_network(checkout: Path, model: str, variant: str) -> nn.Module:
    """OpenGait's ``model`` in its published ``variant`` configuration, built from ``checkout``."""
    pkg = _opengait_stubs(checkout)
    module = importlib.import_module(f"{pkg}.models.{model}")
    cfgs = {"model_cfg": OPENGAIT_CONFIGS[(model, variant)],
            "data_cfg": {"dataset_name": "OUMVLP" if variant == "oumvlp" else "CASIA-B"}}
    return getattr(module, CLASSES[model])(cfgs)


def cstl_network(checkout: Path, resolution: int = 64, num_classes: int = 73) -> nn.Module:
    """The CSTL authors' GaitNet (their CASIA-B network: hidden 256, K = resolution / 2)."""
    pkg = "_ref_cstl"
    if pkg not in sys.modules:
        _package(pkg, checkout / "model" / "network")
    module = importlib.import_module(f"{pkg}.gait_net")
    return module.GaitNet(256, num_classes, part_num=resolution // 2)


def randomise(net: nn.Module, seed: int) -> None:
    """Random weights everywhere, BatchNorm statistics and affine terms included (the default
    init leaves them at 0/1, which would hide a wrong BatchNorm mapping).  Weights are He-scaled
    (std sqrt(2 / fan_in)) so activations stay of order one through the depth of the network
    and the embedding differences are measured at a realistic scale."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if not t.is_floating_point():
                continue
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "running_var":
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif leaf == "p" and t.numel() == 1:  # GeM's exponent: keep it near its init 6.5
                t.fill_(6.5 + torch.rand(1, generator=g).item())
            elif leaf in ("running_mean", "bias"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif t.dim() == 1:  # BatchNorm scale
                t.copy_(1 + torch.randn(t.shape, generator=g) * 0.1)
            else:  # per-part FCs are (parts, in, out); convs (out, in / groups, *kernel)
                fan_in = t.shape[-2] if leaf in ("fc_bin", "fc") else t[0].numel()
                t.copy_(torch.randn(t.shape, generator=g) * (2.0 / fan_in) ** 0.5)


def _ref_embedding(net: nn.Module, kind: str, sils: torch.Tensor) -> torch.Tensor:
    """(n, c, p) from a reference network, one sequence at a time (OpenGait's GaitGL asserts a
    test batch of one)."""
    outs = []
    for one in sils.split(1):
        if kind == "opengait":
            labs = torch.zeros(1, dtype=torch.long)
            res = net(([one], labs, None, None, None))
            outs.append(res["inference_feat"]["embeddings"])
        else:
            feature, _ = net(one)  # (n, K, hidden)
            outs.append(feature.transpose(1, 2))
    return torch.cat(outs)


def compare(ref: nn.Module, kind: str, source: str, model: str, *, frames: int, seed: int,
            height: int = 64, batch: int = 2) -> dict:
    """Convert ``ref``'s weights, run both networks, measure the embedding difference."""
    randomise(ref, seed)
    ref.eval()
    conversion = convert_state(source, model, {k: v.clone() for k, v in ref.state_dict().items()})
    ours = conversion.build()
    width = height * 11 // 16
    g = torch.Generator().manual_seed(seed + 1)
    sils = (torch.rand(batch, frames, height, width, generator=g) > 0.5).float()
    row = {"model": model, "variant": conversion.variant,
           "params_reference": count_parameters(ref), "params_gaitlib": count_parameters(ours)}
    for dtype, label in ((torch.float32, "fp32"), (torch.float64, "fp64")):
        ref.to(dtype)
        ours.to(dtype)
        x = sils.to(dtype)
        with torch.no_grad():
            a = _ref_embedding(ref, kind, x)
            b = ours(x)["embedding"]
        if a.shape != b.shape:
            raise AssertionError(f"{model}: reference embedding {tuple(a.shape)}, "
                                 f"gaitlib {tuple(b.shape)}")
        row[f"max_abs_diff_{label}"] = (a - b).abs().max().item()
        row[f"max_abs_{label}"] = a.abs().max().item()
    ref.float()
    return row


def _commit(checkout: Path) -> str:
    done = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True,
                          text=True)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def _shapes(net: nn.Module) -> list[list]:
    return [[k, list(v.shape)] for k, v in net.state_dict().items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="OpenGait or CSTL (authors') checkout")
    parser.add_argument("--models", default=None,
                        help="comma-separated MODEL:VARIANT (OpenGait; default all six)")
    parser.add_argument("--frames", type=int, default=30, help="frames per test sequence")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--commit", default=None,
                        help="the reference commit to print (default: the checkout's HEAD)")
    parser.add_argument("--fixtures", type=Path, default=None,
                        help="merge the reference state dicts' names and shapes into this JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    checkout = args.checkout.resolve()
    commit = args.commit or _commit(checkout)
    rows, shapes = [], {}
    if (checkout / "opengait" / "modeling").is_dir():
        cases = DEFAULT_CASES if args.models is None else \
            [tuple(c.split(":")) for c in args.models.split(",")]
        for model, variant in cases:
            ref = opengait_network(checkout, model, variant)
            shapes[f"opengait/{model}/{variant}"] = _shapes(ref)
            rows.append(compare(ref, "opengait", "opengait", model, frames=args.frames,
                                seed=args.seed))
            rows[-1]["reference"] = f"ShiqiYu/OpenGait@{commit[:10]}"
            print(json.dumps(rows[-1]), flush=True)
    elif (checkout / "model" / "network" / "gait_net.py").is_file():
        for resolution in (64, 128):
            ref = cstl_network(checkout, resolution)
            shapes[f"cstl-official/cstl/{resolution}"] = _shapes(ref)
            rows.append(compare(ref, "cstl", "cstl-official", "cstl", frames=args.frames,
                                seed=args.seed, height=resolution))
            rows[-1]["reference"] = f"OliverHxh/CSTL@{commit[:10]}"
            print(json.dumps(rows[-1]), flush=True)
    else:
        parser.error(f"{checkout} is neither an OpenGait checkout (opengait/modeling) nor the "
                     "CSTL authors' (model/network/gait_net.py)")
    print()
    print("| model | variant | max abs diff fp32 | max abs diff fp64 | max abs embedding | "
          "params reference | params gaitlib | reference |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['variant']} | {r['max_abs_diff_fp32']:.2e} | "
              f"{r['max_abs_diff_fp64']:.2e} | {r['max_abs_fp32']:.3g} | "
              f"{r['params_reference']:,} | {r['params_gaitlib']:,} | {r['reference']} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    if args.fixtures:
        old = json.loads(args.fixtures.read_text()) if args.fixtures.is_file() else {}
        old.update(shapes)
        args.fixtures.write_text(json.dumps(old, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
