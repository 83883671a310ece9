"""Does the cpu profile's fast setting keep the accuracy? One cpu-profile run per model in fp32
eager and one in the profile's default setting (or ``--variant``), same seed, same store.

Each pair is the book's run of that model (``gaitlib.runs.cache.resolve``: the cpu recipe on the
synthetic store under ``--data-root``), trained in a temporary folder, once with
``precision=fp32 channels_last=false`` and once as the recipe says. Prints per model and row
(NM/BG/CL) the two mean rank-1 accuracies, the fp32 run's 95% bootstrap CI, and whether the fast
run's mean lies inside it. About a minute per run per model on 2 cores (12 runs).

    .venv/bin/python bench/precision_check.py [--models ...] [--data-root data]
                                              [--variant precision=bf16] [--seed 0]

Needs the synthetic store (``gaitlib data synth`` writes ``data/synthetic``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.train import MODELS  # noqa: E402


def run_pair(model: str, data_root: str, seed: int, variant: list[str], tmp: Path) -> dict:
    from gaitlib.runs.cache import RunSpec, resolve
    from gaitlib.training import apply_overrides, train

    out = {}
    fast = apply_overrides(resolve(RunSpec.of(model, seed=seed), data_root), variant)
    same = fast.precision == "fp32" and not fast.channels_last and not fast.compile
    for name in ("fp32",) if same else ("fp32", "fast"):
        config = resolve(RunSpec.of(model, seed=seed), data_root)
        if name == "fp32":
            config.precision, config.channels_last, config.compile = "fp32", False, ""
        else:
            config = apply_overrides(config, variant)
        run_dir = tmp / f"{model}-{name}"
        train(config, run_dir, progress=False)
        summary = json.loads((run_dir / "eval.json").read_text())
        results = json.loads((run_dir / "results.json").read_text())
        out[name] = {"mean": {row: values["Mean"] for row, values in summary["table"].items()},
                     "ci": summary["ci95"], "train_seconds": results["train_seconds"],
                     "setting": f"{config.precision}{'+cl' if config.channels_last else ''}"}
    if same:  # the profile runs this model in fp32 eager: the same run, trained once
        out["fast"] = out["fp32"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--data-root", default=str(REPO / "data"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", default="",
                        help="comma-separated overrides for the fast run (default: the recipe's)")
    args = parser.parse_args()
    variant = [v for v in args.variant.split(",") if v]
    print(f"{'model':<9} {'row':<4} {'fp32':>6} {'fp32 95% CI':>14} {'fast':>6} {'setting':<8} "
          f"{'inside':>6} {'s fp32':>7} {'s fast':>7}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            r = run_pair(model, args.data_root, args.seed, variant, Path(tmp))
            for row, ref in r["fp32"]["mean"].items():
                low, high = r["fp32"]["ci"][row]["low"], r["fp32"]["ci"][row]["high"]
                fast = r["fast"]["mean"][row]
                inside = low <= fast <= high
                print(f"{model:<9} {row:<4} {ref:6.1f} {f'[{low:.1f}, {high:.1f}]':>14} "
                      f"{fast:6.1f} {r['fast']['setting']:<8} {'yes' if inside else 'NO':>6} "
                      f"{r['fp32']['train_seconds']:7.1f} {r['fast']['train_seconds']:7.1f}",
                      flush=True)


if __name__ == "__main__":
    main()
