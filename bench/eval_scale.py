"""What a cheap profile's test scale costs and what it buys: test subjects x frames per sequence.

For each model, one run of ``--profile`` (cpu by default; trained once, cached in ``--runs-dir``)
is re-evaluated at several test scales ``SUBJECTSxFRAMES`` (frames 0 = every frame of a sequence):
the seconds of feature extraction and of scoring (with the 1000-resample bootstrap), and what the
result resolves: the mean rank-1 over NM/BG/CL, the median half-width of a condition's 95% CI, the
step of one probe in a cell (100 / probes per cell) and chance (100 / gallery subjects). The first
scale is the baseline of the time ratios. Times are CPU seconds of this process (one thread by
default, as each of the book's CPU workers), which other load on the machine does not inflate the
way it inflates wall-clock time.

    .venv/bin/python bench/eval_scale.py --data casia-b --data-root data       # real CASIA-B
    .venv/bin/python bench/eval_scale.py --models gaitgl,cstl --scales 10x10,50x10,50x0
    .venv/bin/python bench/eval_scale.py --profile cpu-long --models cstl \
        --scales 50x10,50x20,50x30,50x0                                          # cpu-long frames
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

MODELS = ("gaitset", "gaitpart", "gaitgl", "gaitmm", "local3d", "cstl")


def _scale(text: str) -> tuple[int, int]:
    subjects, _, frames = text.lower().partition("x")
    return int(subjects), int(frames or 0)


def measure(model: str, data: str, data_root: str, runs_dir: str, scales: list[tuple[int, int]],
            threads: int, report=None, profile: str = "cpu") -> list[dict]:
    import numpy as np
    import torch

    from gaitlib.data.store import Store
    from gaitlib.evaluation import evaluate, protocol_for
    from gaitlib.evaluation.extract import extract_features
    from gaitlib.runs.cache import RunSpec, ensure_run
    from gaitlib.training.trainer import resolve_subjects

    torch.set_num_threads(threads)
    start = time.process_time()
    run = ensure_run(RunSpec.of(model, data=data, profile=profile), runs_dir, data_root, "cpu",
                     progress=False)
    trained = time.process_time() - start
    net = run.load_model()
    store = Store(run.config.data.store)
    lines = []
    for subjects, frames in scales:
        config = replace(run.config, eval=replace(run.config.eval, max_subjects=subjects,
                                                  max_frames=frames))
        _, test = resolve_subjects(config, store)
        items = store.select(subjects=test)
        t0 = time.process_time()
        feats = extract_features(net, store, items, "cpu", sequences_per_batch=32,
                                 max_frames=frames, height=config.data.resolution)
        t1 = time.process_time()
        result = evaluate(feats.embeddings, feats.subjects, feats.conditions, feats.views,
                          protocol_for(store.dataset), bootstrap=1000, seed=0)
        t2 = time.process_time()
        half = ((result.ci["high"] - result.ci["low"]) / 2).to_numpy(float)
        per_cell = min(result.n_probes.values()) / max(len(result.table.columns) - 1, 1)
        lines.append({"model": model, "scale": f"{subjects}x{frames or 'all'}",
                      "subjects": len(test), "sequences": len(items),
                      "frames": int(sum(store.lengths[items].clip(max=frames or None))),
                      "extract_s": t1 - t0, "score_s": t2 - t1,
                      "mean": result.mean_over_rows(), "ci_half": float(np.median(half)),
                      "cell_step": 100 / per_cell, "chance": 100 / len(test),
                      "train_s": trained})
        if report is not None:
            report(lines)
    return lines


def _print_last(lines: list[dict]) -> None:
    base = lines[0]["extract_s"] + lines[0]["score_s"]
    x = lines[-1]
    total = x["extract_s"] + x["score_s"]
    print(f"{x['model']:<9} {x['scale']:<8} {x['subjects']:>4} {x['sequences']:>5} "
          f"{x['frames']:>7} {x['extract_s']:>9.1f} {x['score_s']:>7.1f} {total / base:>6.1f} "
          f"{x['mean']:>5.1f} {x['ci_half']:>5.1f} {x['cell_step']:>9.1f} {x['chance']:>6.1f}",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="casia-b", choices=("synthetic", "casia-b"))
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--runs-dir", default="/tmp/gaitlib-eval-scale-runs")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--scales", default="10x10,50x10,10x0,50x30,50x0",
                        help="SUBJECTSxFRAMES, comma-separated (frames 0: all); the first is the "
                             "baseline of the ratios")
    parser.add_argument("--profile", default="cpu", choices=("cpu", "cpu-long"),
                        help="the run's training scale (cpu-long: CSTL and the baselines 1,000 "
                             "iterations)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (the book's CPU workers use 1 each on 2 cores)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    scales = [_scale(s) for s in args.scales.split(",") if s.strip()]
    print(f"{'model':<9} {'scale':<8} {'subj':>4} {'seqs':>5} {'frames':>7} {'extract s':>9} "
          f"{'score s':>7} {'x base':>6} {'mean':>5} {'CI +-':>5} {'cell step':>9} {'chance':>6}")
    for model in args.models.split(","):
        lines = measure(model.strip(), args.data, args.data_root, args.runs_dir, scales,
                        args.threads, _print_last, args.profile)
        print(f"{'':<9} (training the run: {lines[0]['train_s']:.0f} CPU s, 0 when cached)",
              flush=True)


if __name__ == "__main__":
    main()
