"""The book page "What a full reproduction costs", generated from the paper-scale dry run.

``book/results/paper-dry-run.csv`` (``gaitlib reproduce --profile paper --dry-run``) holds one
row per run of the study with its measured step time on the device that ran the dry run.  This
module turns it into ``book/cost.md``: device-hours per artifact and in total, measured on that
device, and projected for one H100/H200-class GPU.

GPU figures come from one of two places, and the page says which:

* measured: ``book/results/device_check.json`` (written by a GPU check), a JSON object
  ``{"device": "NVIDIA H200", "runs": [{"model": ..., "dataset": ..., "options": ...,
  "step_seconds": ..., "peak_memory_mb": ...}, ...]}`` whose rows match the dry run's
  (model, dataset, options); a run it measures uses its step time;
* projected: every other run's FLOPs per step (``step_tflop``, counted by the dry run) at an
  assumed effective throughput, :data:`GPU_EFFECTIVE_TFLOPS` (see :func:`render`).

Regenerate with ``python -m gaitlib.publish.cost`` (after a new dry run or device check).
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

from gaitlib.analysis.hours import runs_needed, runs_of
from gaitlib.papers.artifacts import ARTIFACT_IDS
from gaitlib.provenance import SOURCE_ROOT

REPO = SOURCE_ROOT  # the checkout whose book/ this page belongs to
DRY_RUN_CSV = REPO / "book" / "results" / "paper-dry-run.csv"
DEVICE_CHECK = REPO / "book" / "results" / "device_check.json"
# Paper-scale steps measured on the CPU (model, dataset, options, step_tflop, step_seconds, ...):
# when the dry run itself ran on a GPU, the CPU hours are projected at their throughput.
CPU_STEPS = REPO / "book" / "results" / "paper-dry-run-cpu.csv"
PAGE = REPO / "book" / "cost.md"
# Assumed effective training throughput of one H100/H200 on these networks: 10% of the ~990
# TFLOP/s dense bf16 peak (small convolutions, 3D convs and data loading keep the tensor cores
# far from peak).  A projection, never a result: device_check.json measurements replace it.
GPU_EFFECTIVE_TFLOPS = 100.0


def load_rows(path: str | os.PathLike = DRY_RUN_CSV) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def load_device_check(path: str | os.PathLike = DEVICE_CHECK) -> dict | None:
    """The GPU check's measurements, or None when no check has been published."""
    path = Path(path)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not (isinstance(data.get("runs"), list) or "sections" in data):
        raise ValueError(f"{path}: expected {{'device': ..., 'runs': [...]}} or bench/device_check.py's "
                         "{'sections': ...}")
    return data


def _key(row: dict) -> tuple[str, str, str]:
    return (row["model"], row["dataset"], row.get("options", "") or "")


def gpu_hours(rows: list[dict], check: dict | None,
              tflops: float = GPU_EFFECTIVE_TFLOPS) -> dict[tuple, tuple[float, str]]:
    """Per run: (GPU hours, 'measured' or 'projected')."""
    measured = {_key(r): float(r["step_seconds"]) for r in (check or {}).get("runs", [])}
    out = {}
    for r in rows:
        iters = int(r["iterations"])
        if _key(r) in measured:
            out[_key(r)] = (iters * measured[_key(r)] / 3600, "measured")
        else:
            out[_key(r)] = (iters * float(r["step_tflop"]) / tflops / 3600, "projected")
    return out


def _fmt(hours: float) -> str:
    if math.isnan(hours):
        return "-"
    return f"{hours:,.0f}" if hours >= 100 else f"{hours:,.1f}"


def render(rows: list[dict], check: dict | None = None,
           tflops: float = GPU_EFFECTIVE_TFLOPS, cpu_steps: list[dict] | None = None) -> str:
    """The page's markdown: a dry run measured on the CPU (GPU hours measured by a device check
    or projected from FLOPs), or one measured on a GPU (CPU hours projected from ``cpu_steps``,
    paper-scale steps measured on the CPU)."""
    ok = [r for r in rows if r["status"] == "ok"]
    failed = [r for r in rows if r["status"] != "ok"]
    if ok and not ok[0]["device"].startswith("cpu"):
        return _render_gpu_measured(rows, check, cpu_steps)
    gpu = gpu_hours(ok, check, tflops)
    cpu_device = ok[0]["device"] if ok else "-"
    gpu_device = (check or {}).get("device", "one H100/H200")
    kinds = {kind for _, kind in gpu.values()}
    gpu_label = "measured" if kinds == {"measured"} else \
        "projected" if kinds == {"projected"} else "measured where marked, else projected"
    commit = ok[0].get("git_commit", "") if ok else ""

    lines = ["(cost)=", "# What a full reproduction costs", "",
             f"Every run the book's {len(ARTIFACT_IDS)} artifacts need ({len(runs_needed())} "
             "distinct runs; a run several artifacts share counts once in the total) was started "
             "at the paper's full scale by `gaitlib reproduce "
             "--profile paper --data casia-b --dry-run`: the exact paper config against the "
             "store, a few training steps at the full batch, resolution and frame count, a "
             "checkpoint, a resumed step, and the features of a few test sequences extracted "
             "with all their frames and evaluated. OU-MVLP runs ran on an OU-MVLP-shaped store "
             "with OU-MVLP's 5153-class classifier. The step times below are **measured** on "
             f"`{cpu_device}` (data loading in the training process included); device-hours are "
             "the recipe's iterations times that step time, for training alone (testing adds "
             "little: one pass over the test set).", "",
             f"The GPU column is **{gpu_label}**: "
             + (f"measured on {gpu_device} (`book/results/device_check.json`)"
                if kinds == {"measured"} else
                f"each run's floating-point operations per step (counted by the dry run, forward "
                f"and backward) at an assumed {tflops:g} TFLOP/s, about 10% of one H100/H200's "
                "dense bf16 peak; an assumption, to be replaced by measurements "
                "(`book/results/device_check.json`) when a GPU check runs") + ".", ""]
    if commit:
        lines += [f"Source: `book/results/paper-dry-run.csv`, code at commit `{commit[:12]}`"
                  + (" (uncommitted changes)" if commit.endswith("+dirty") else "") + ".", ""]

    lines += ["## Per artifact", "",
              "| artifact | runs | CPU device-hours (measured step time) | GPU hours |",
              "|---|---|---|---|"]
    for a, runs in _per_artifact(rows):
        cpu = sum(float(r["projected_hours"]) for r in runs)
        g = sum(gpu[_key(r)][0] for r in runs)
        lines.append(f"| {a} | {_runs_cell(a, runs)} | {_fmt(cpu)} | {_fmt(g)} |")
    total_cpu = sum(float(r["projected_hours"]) for r in ok)
    total_gpu = sum(h for h, _ in gpu.values())
    lines += [f"| **all (shared runs once)** | {_runs_cell(None, ok)} | **{_fmt(total_cpu)}** "
              f"({total_cpu / 24 / 365:.1f} years) | **{_fmt(total_gpu)}** "
              f"({total_gpu / 24:.1f} days) |", ""]

    lines += ["## Per run", "",
              "| model | data | options | iterations | batch | TFLOP/step | step s | peak MB | "
              "CPU hours | GPU hours |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(ok, key=lambda r: -float(r["projected_hours"])):
        g, kind = gpu[_key(r)]
        lines.append(f"| {r['model']} | {r['dataset']} | {r['options'] or '-'} | "
                     f"{int(r['iterations']):,} | {r['batch']} | {float(r['step_tflop']):.2f} | "
                     f"{float(r['step_seconds']):.2f} | "
                     f"{float(r['peak_memory_mb']):,.0f} | {_fmt(float(r['projected_hours']))} | "
                     f"{_fmt(g)} ({kind}) |")
    lines.append("")
    if ok:
        slow = max(ok, key=lambda r: float(r["projected_hours"]))
        big = max(ok, key=lambda r: float(r["peak_memory_mb"]))
        lines += [f"The longest run is {slow['model']} on {slow['dataset']} "
                  f"({slow['options'] or 'the full model'}): {_fmt(float(slow['projected_hours']))} "
                  f"CPU hours. The largest is {big['model']} on {big['dataset']} "
                  f"({big['options'] or 'the full model'}) at "
                  f"{float(big['peak_memory_mb']):,.0f} MB peak memory (CPU: the whole process's "
                  "peak resident set).", ""]
    if failed:
        lines += ["## Runs that failed the dry run", ""]
        lines += [f"- {r['model']} {r['dataset']} {r['options'] or '-'}: {r['message']}"
                  for r in failed]
        lines.append("")
    return "\n".join(lines)


def _per_artifact(rows: list[dict]) -> list[tuple[str, list[dict]]]:
    """Each artifact's dry-run lines that ran, as the scorecard and the pages count them
    (:func:`gaitlib.analysis.hours.runs_of`): one source for every device-hour figure."""
    found = [(aid, runs_of(rows, [aid])[0]) for aid in ARTIFACT_IDS]
    return [(aid, ran) for aid, ran in found if ran]


def _runs_cell(artifact_id: str | None, ran: list[dict]) -> str:
    """'3', or '3 of 4' when some of the artifact's (or the study's) runs did not start."""
    needed = len(runs_needed(None if artifact_id is None else [artifact_id]))
    return str(len(ran)) if len(ran) == needed else f"{len(ran)} of {needed}"


def cpu_throughput(cpu_steps: list[dict]) -> float:
    """Mean TFLOP/s of the paper-scale steps measured on the CPU (NaN without any)."""
    rates = [float(r["step_tflop"]) / float(r["step_seconds"]) for r in cpu_steps]
    return sum(rates) / len(rates) if rates else float("nan")


def _render_gpu_measured(rows: list[dict], check: dict | None, cpu_steps: list[dict] | None) -> str:
    ok = [r for r in rows if r["status"] == "ok"]
    failed = [r for r in rows if r["status"] != "ok"]
    device, commit = ok[0]["device"], ok[0].get("git_commit", "")
    rate = cpu_throughput(cpu_steps or [])
    cpu = {_key(r): int(r["iterations"]) * float(r["step_tflop"]) / rate / 3600 for r in ok}
    measured_on = ", ".join(f"{r['model']} ({float(r['step_tflop']):.2f} TFLOP in "
                            f"{float(r['step_seconds']):.0f} s)" for r in cpu_steps or [])
    lines = ["(cost)=", "# What a full reproduction costs", "",
             f"Every run the book's {len(ARTIFACT_IDS)} artifacts need ({len(runs_needed())} "
             "distinct runs; a run several artifacts share counts once) was started at the "
             "paper's full scale by `gaitlib "
             "reproduce --profile paper --data casia-b --dry-run --gpus 0` on one "
             f"**{device}**: the exact paper config against the real CASIA-B store (binarized "
             "copy), a few training steps at the full batch, resolution and frame count, a "
             "checkpoint, a resumed step, and the features of 16 test sequences extracted with "
             "all their frames and evaluated. OU-MVLP runs ran on an OU-MVLP-shaped synthetic "
             "store with OU-MVLP's 5153-class classifier.", "",
             f"- **GPU hours are projected from measured step times**: the recipe's iterations "
             f"times the step time measured on the {device} (fp32 as the recipes say, except "
             "GaitPart and GaitGL, which train "
             "in fp16 as OpenGait does; data loading in the training process included), for "
             "training alone.",
             "- **CPU hours are projected**: each run's FLOPs per step (counted by the dry run) at "
             + (f"{rate:.4f} TFLOP/s, the mean throughput of the paper-scale steps measured on "
                f"this 2-core CPU ({measured_on}; `book/results/paper-dry-run-cpu.csv`)"
                if measured_on else "a CPU throughput not measured yet") + ".", ""]
    if commit:
        lines += [f"Source: `book/results/paper-dry-run.csv`, code at commit `{commit[:12]}`.", ""]
    lines += ["## Per artifact", "", f"| artifact | runs | GPU hours ({device}, projected) | "
              "CPU hours (projected) |", "|---|---|---|---|"]
    for a, runs in _per_artifact(rows):
        lines.append(f"| {a} | {_runs_cell(a, runs)} | "
                     f"{_fmt(sum(float(r['projected_hours']) for r in runs))} "
                     f"| {_fmt(sum(cpu[_key(r)] for r in runs))} |")
    total_gpu = sum(float(r["projected_hours"]) for r in ok)
    total_cpu = sum(cpu.values())
    lines += [f"| **all (shared runs once)** | {_runs_cell(None, ok)} | **{_fmt(total_gpu)}** "
              f"({total_gpu / 24:.1f} days) | **{_fmt(total_cpu)}** "
              f"({total_cpu / 24 / 365:.0f} years) |", ""]
    if failed:
        lines += ["Not in the totals: the runs that failed the dry run (below).", ""]
    lines += ["## Per run", "", "| model | data | options | iterations | batch | TFLOP/step | "
              "step s | peak GPU MB | GPU hours | CPU hours (projected) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(ok, key=lambda r: -float(r["projected_hours"])):
        lines.append(f"| {r['model']} | {r['dataset']} | {r['options'] or '-'} | "
                     f"{int(r['iterations']):,} | {r['batch']} | {float(r['step_tflop']):.2f} | "
                     f"{float(r['step_seconds']):.2f} | {float(r['peak_memory_mb']):,.0f} | "
                     f"{_fmt(float(r['projected_hours']))} | {_fmt(cpu[_key(r)])} |")
    slow = max(ok, key=lambda r: float(r["projected_hours"]))
    big = max(ok, key=lambda r: float(r["peak_memory_mb"]))
    lines += ["", f"The longest run is {slow['model']} on {slow['dataset']} "
              f"({slow['options'] or 'the full model'}): {_fmt(float(slow['projected_hours']))} GPU "
              f"hours. The largest is {big['model']} on {big['dataset']} "
              f"({big['options'] or 'the full model'}) at {float(big['peak_memory_mb']):,.0f} MB "
              "of GPU memory at its peak.", ""]
    if failed:
        lines += ["## Runs that failed the dry run", "",
                  "The dry run exists to find these before a days-long run does; they are open "
                  "bugs of gaitlib at the paper's scale:", ""]
        lines += [f"- {r['model']} {r['dataset']} {r['options'] or '-'}: {r['message']}"
                  for r in failed]
        lines.append("")
    if check and "sections" in check:
        lines += _device_check_lines(check, ok)
    return "\n".join(lines)


def _step_tflops(row: dict, steps: dict, runs: list[dict]) -> float | None:
    """Achieved TFLOP/s of one training step of the GPU check, the FLOPs counted as 3 x the
    forward pass (as the dry run counts them).  A check that says so (``"flops": "3x forward"``)
    is taken as it is; an older one counted forward and backward with ``torch.utils.flop_counter``,
    which counts a grouped convolution's weight gradient once per group (3D Local's step came out
    at 25.9 TFLOP for 12.0), so its step time is put over the dry run's FLOPs of the model's
    default CASIA-B run at the same batch instead (None when the dry run has no such run)."""
    if steps.get("flops") == "3x forward":
        return float(row["tflops"])
    batch = row.get("batch")
    for r in runs:
        if (r["model"], r["dataset"], r.get("options") or "") == (row["model"], "casia-b", "") \
                and (batch is None or int(r["batch"]) == batch[0] * batch[1]):
            return float(r["step_tflop"]) / (float(row["step_ms"]) / 1000)
    return None


def _device_check_lines(check: dict, runs: list[dict]) -> list[str]:
    """The GPU check (``bench/device_check.sh``): training steps per model and precision, the
    OU-MVLP-sized evaluation, and a time-boxed GaitGL run on real CASIA-B."""
    sec = check["sections"]
    env = sec.get("env", {})
    lines = ["## The GPU check", "",
             f"`bash bench/device_check.sh` on one {env.get('gpu', 'GPU')} (torch "
             f"{env.get('torch', '?')}, CUDA {env.get('cuda', '?')}); the whole JSON is "
             "`book/results/device_check.json`.", ""]
    if sec.get("tests", {}).get("summary"):
        lines += [f"- CUDA tests: {sec['tests']['summary']}."]
    ev = sec.get("oumvlp_eval", {})
    if ev.get("ok"):
        lines += [f"- OU-MVLP-sized evaluation ({ev['features'][0]:,} sequences, random features "
                  f"of shape {ev['features'][1:]}): {ev['seconds_bootstrap_0']:.1f} s, "
                  f"{ev['seconds_bootstrap_1000']:.1f} s with 1000 bootstrap resamples."]
    gl = sec.get("gaitgl_casia", {})
    if gl.get("ok"):
        r = gl["rank1_mean"]
        lines += [f"- GaitGL, paper recipe on the real CASIA-B (binarized) store, time-boxed: "
                  f"{gl['iterations']:,} of the paper's {gl['paper_iterations']:,} iterations "
                  f"({gl['train_budget_s']:.0f} s of training; {gl['setting']}), all 50 test "
                  f"subjects with all their frames: rank-1 NM {r['NM']:.1f}, BG {r['BG']:.1f}, "
                  f"CL {r['CL']:.1f} (binarized; the paper reports 96.0, 92.3, 80.5 after 80k "
                  "iterations)."]
    steps = sec.get("steps", {}).get("rows", [])
    if steps:
        own = sec["steps"].get("flops") == "3x forward"
        note = sec["steps"].get("note", "") if own else (
            "TFLOP/s: FLOPs per step, 3 x the forward pass, over the median step time; the FLOPs "
            "are the dry run's (`torch.utils.flop_counter`), since this check counted the backward "
            "pass with it too, which counts a grouped convolution's weight gradient once per group")
        lines += ["", f"Training step at the paper batch, per precision ({note}):", "",
                  "| model | precision | step ms | TFLOP/s | peak GiB |", "|---|---|---|---|---|"]
        for r in steps:
            if "step_ms" in r:
                tflops = _step_tflops(r, sec["steps"], runs)
                lines.append(f"| {r['model']} | {r['variant']} | {r['step_ms']:.1f} | "
                             f"{'-' if tflops is None else f'{tflops:.1f}'} | {r['peak_gib']:.1f} |")
    block = [r for r in sec.get("local3d_block", {}).get("rows", []) if "step_ms" in r]
    if block:
        lines += ["", "3D Local's training step at the paper batch, fp32, with the local block as "
                  "it was before its memory rewrite (`tests/local3d_reference.py`) and as it is, "
                  "with and without recomputation (`recompute=True`):", "",
                  "| input | local block | recompute | step ms | peak GiB |", "|---|---|---|---|---|"]
        lines += [f"| {r['resolution']} | {r['block']} | {'on' if r['recompute'] else 'off'} | "
                  f"{r['step_ms']:.1f} | {r['peak_gib']:.1f} |" for r in block]
    return lines + [""]


def placeholder() -> str:
    return "\n".join([
        "(cost)=", "# What a full reproduction costs", "",
        "This page is generated from the paper-scale dry run, which has not been published yet. "
        "Run it from a clean checkout with the real CASIA-B store in `data/casia-b`, then "
        "regenerate the page:", "",
        "```bash",
        "gaitlib reproduce --profile paper --data casia-b --dry-run   # book/results/paper-dry-run.csv",
        "python -m gaitlib.publish.cost                               # this page",
        "```", ""])


def write_page(csv_path: str | os.PathLike = DRY_RUN_CSV, page: str | os.PathLike = PAGE,
               check_path: str | os.PathLike = DEVICE_CHECK) -> Path:
    """Write ``book/cost.md`` from the dry run's CSV (a placeholder when there is none)."""
    page = Path(page)
    cpu_steps = load_rows(CPU_STEPS) if CPU_STEPS.is_file() else []
    text = render(load_rows(csv_path), load_device_check(check_path), cpu_steps=cpu_steps) \
        if Path(csv_path).is_file() else placeholder()
    page.write_text(text)
    return page


if __name__ == "__main__":
    print(f"wrote {write_page()}")
