"""Time gaitlib.evaluation.evaluate() on CASIA-B- and OU-MVLP-sized random feature sets.

Each measurement runs in a fresh process; its peak memory is the highest resident set
sampled during evaluate() less the resident set before it (features already held). The chunked
evaluation is compared with the naive computation (the whole probe x gallery distance
matrix in one piece) on the OU-MVLP-shaped set, in the same run.

    .venv/bin/python bench/evaluation.py            # ~1-2 minutes on 2 cores
    .venv/bin/python bench/evaluation.py --oumvlp-scale 4
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import threading
import time

CASIA_VIEWS = [f"{v:03d}" for v in range(0, 181, 18)]
CASIA_CONDS = [*(f"nm-{i:02d}" for i in range(1, 7)), "bg-01", "bg-02", "cl-01", "cl-02"]
OU_VIEWS = [f"{v:03d}" for v in (*range(0, 91, 15), *range(180, 271, 15))]
OU_SUBJECTS = 5154


def _labels(n_subjects: int, conditions, views, drop: float, seed: int = 0):
    """Every subject x condition x view, less a ``drop`` fraction of the gallery condition
    (OU-MVLP misses some: that is what separates its 'miss' and 'discard' numbers)."""
    import numpy as np

    rows = [(f"{s:05d}", c, v) for s in range(n_subjects) for c in conditions for v in views]
    gone = np.random.default_rng(seed).random(len(rows)) < drop
    rows = [r for r, g in zip(rows, gone, strict=True) if not (g and r[1] == conditions[-1])]
    return [list(x) for x in zip(*rows, strict=True)]


def _features(subjects: list[str], c: int, p: int, noise: float, seed: int = 0):
    """Subject centre plus noise, float32 throughout (no float64 peak to hide the real one)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    names, code = np.unique(subjects, return_inverse=True)
    feats = rng.standard_normal((len(names), c, p), dtype=np.float32)[code]
    for i in range(0, len(feats), 1024):  # in slices: no second full-size array
        block = feats[i : i + 1024]
        block += noise * rng.standard_normal(block.shape, dtype=np.float32)
    return feats


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


class PeakRSS:
    """Highest resident set seen by a polling thread while the block runs, less the
    resident set on entry (ru_maxrss cannot be reset, so it would include older peaks)."""

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())

    @property
    def growth_mb(self) -> float:
        return self.peak - self.start


def _measure(case: dict, queue) -> None:
    import torch

    from gaitlib.evaluation import evaluate
    from gaitlib.evaluation.distance import magnitude_scale

    torch.set_num_threads(case["threads"])
    subjects, conditions, views = _labels(case["subjects"], case["conditions"], case["views"],
                                          case["drop"])
    per = len(case["conditions"]) * len(case["views"])
    feats = _features(subjects, case["c"], case["p"], case["noise"])
    # Warm up (library initialisation, thread pools) on a tiny slice so it is not counted.
    evaluate(feats[: 2 * per], subjects[: 2 * per], conditions[: 2 * per], views[: 2 * per],
             case["protocol"], device="cpu", bootstrap=2)
    chunk = None if case["chunked"] else len(subjects)  # one chunk: the full matrix
    seconds = float("inf")
    peak_mb = 0.0
    for _ in range(case["repeat"]):  # best of: the machine may be shared
        with PeakRSS() as mem:
            start = time.perf_counter()
            res = evaluate(feats, subjects, conditions, views, case["protocol"], device="cpu",
                           bootstrap=case["bootstrap"], chunk_size=chunk)
            seconds = min(seconds, time.perf_counter() - start)
        peak_mb = max(peak_mb, mem.growth_mb)
    # the pass over the features that guards the float32 distances against overflow, inside
    # evaluate(): timed alone to show its share
    check = float("inf")
    for _ in range(case["repeat"]):
        start = time.perf_counter()
        magnitude_scale(torch.from_numpy(feats))
        check = min(check, time.perf_counter() - start)
    queue.put((seconds, peak_mb, res.table["Mean"].round(2).to_dict(), feats.shape, check))


def run(case: dict) -> tuple[float, float, dict, tuple, float]:
    # A fixed mmap threshold makes glibc hand large freed blocks back to the system, so the
    # child's peak resident set tracks what the computation really held at once.
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(1 << 20))
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(case, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--oumvlp-scale", type=int, default=10,
                        help="divide OU-MVLP's 5154 test subjects by this (default 10)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--repeat", type=int, default=2, help="report the best of N (default 2)")
    args = parser.parse_args()
    common = dict(bootstrap=args.bootstrap, threads=args.threads, chunked=True,
                  repeat=args.repeat)

    casia = dict(common, protocol="casia-b", subjects=50, conditions=CASIA_CONDS,
                 views=CASIA_VIEWS, c=256, p=16, noise=4.0, drop=0.0)
    sec, mb, means, shape, check = run(casia)
    print(f"CASIA-B test set, 50 subjects x 110 sequences, features {shape}: {sec:.2f} s, "
          f"peak +{mb:.0f} MB; Mean {means}")
    print(f"  of which the magnitude check: {1000 * check:.1f} ms ({check / sec:.2%})")

    n_subj = OU_SUBJECTS // args.oumvlp_scale
    ou = dict(common, protocol="oumvlp", subjects=n_subj, conditions=["00", "01"],
              views=OU_VIEWS, c=128, p=16, noise=3.0, drop=0.05)
    sec, mb, means, shape, check = run(ou)
    print(f"OU-MVLP test set scaled down {args.oumvlp_scale}x ({n_subj} subjects x 14 views x 2, "
          f"5% of gallery dropped), features {shape}: {sec:.2f} s, peak +{mb:.0f} MB; "
          f"Mean {means}")
    print(f"  of which the magnitude check: {1000 * check:.1f} ms ({check / sec:.2%})")
    full_sec, full_mb, full_means, _, _ = run(dict(ou, chunked=False))
    print(f"  same set, naive full distance matrix in one piece: {full_sec:.2f} s, "
          f"peak +{full_mb:.0f} MB; Mean {full_means}")
    print(f"chunked vs full-matrix: {sec / full_sec:.2f}x time, {mb / full_mb:.2f}x peak memory")
    full_gb = (OU_SUBJECTS * 14) ** 2 * 4 / 2**30
    print(f"(times: best of {args.repeat}, {args.threads} torch threads, bootstrap "
          f"{args.bootstrap}; full OU-MVLP is {args.oumvlp_scale ** 2}x the distances, "
          f"~{sec * args.oumvlp_scale ** 2 / 60:.0f} min extrapolated on this CPU, and its full "
          f"matrix would be ~{full_gb:.0f} GB per float32 copy)")

if __name__ == "__main__":
    main()
