"""A job in a child process: write the job, run the child, read its result.

``gaitlib reproduce`` runs each notebook, each pre-trained run and each dry-run row in a fresh
Python process (its own GPU, its own peak memory, a crash that cannot take the parent down).
The protocol is the same for all three: the parent writes the job as JSON with the path the
child must write its result to, runs ``python -m MODULE JOB.json`` (under torchrun for a run
on several GPUs), and reads the result; a child that died before writing one becomes a failure
whose message is the last line it printed.  The child side is :func:`child_main`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

# The folder holding the gaitlib package (the repository in a checkout): children import the
# same gaitlib as their parent.
from gaitlib.provenance import SOURCE_ROOT


@dataclass
class ChildResult:
    """What came back: the child's result (``None`` when it wrote none), its exit code, a
    one-line message when it failed, and the wall-clock seconds."""

    result: dict | None
    returncode: int
    message: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.result is not None


def command(module: str, job: Path, processes: int = 1) -> list[str]:
    """``python -m module JOB``; with several processes under torchrun's launcher (a standalone
    c10d rendezvous on a free port, ``processes`` ranks on this machine)."""
    if processes == 1:
        return [sys.executable, "-m", module, str(job)]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={processes}", "-m", module, str(job)]


def run_child(module: str, job: Mapping, env: Mapping[str, str] | None = None, *,
              cwd: str | os.PathLike | None = None, log: str | os.PathLike | None = None,
              processes: int = 1) -> ChildResult:
    """Run ``module``'s :func:`child_main` on ``job`` in a fresh process with ``env`` added to
    this one's environment.  ``log``: append the child's output to that file (kept for a
    days-long run) instead of holding it in memory."""
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gaitlib-job-") as tmp:
        job_file, result_file = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_file.write_text(json.dumps({**job, "result": str(result_file)}, default=str))
        path = os.pathsep.join(p for p in (str(SOURCE_ROOT), os.environ.get("PYTHONPATH", ""))
                               if p)
        environment = {**os.environ, "PYTHONPATH": path, **(env or {})}
        cmd = command(module, job_file, processes)
        if log is not None:
            Path(log).parent.mkdir(parents=True, exist_ok=True)
            with open(log, "a") as out:
                out.write(f"$ {' '.join(cmd)}\n")
                out.flush()
                proc = subprocess.run(cmd, env=environment, cwd=cwd, stdout=out,
                                      stderr=subprocess.STDOUT, text=True)
            output = _tail(Path(log))
        else:
            proc = subprocess.run(cmd, env=environment, cwd=cwd, capture_output=True, text=True)
            output = (proc.stderr or proc.stdout).strip()
        result = json.loads(result_file.read_text()) if result_file.is_file() else None
    message = ""
    if result is None:
        lines = output.strip().splitlines()
        message = (f"process exited with code {proc.returncode}: "
                   f"{lines[-1] if lines else 'no output'}")[:300]
        if log is not None:
            message += f" (log: {log})"
    return ChildResult(result, proc.returncode, message, time.perf_counter() - began)


def _tail(path: Path, size: int = 4096) -> str:
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - size))
        return handle.read().decode(errors="replace")


def child_main(work: Callable[[dict], dict | None], argv: list[str] | None = None) -> int:
    """The child side: read the job named on the command line, run ``work(job)`` and write its
    result where the job says (only the main rank of a torchrun job writes)."""
    job = json.loads(Path((argv or sys.argv)[1]).read_text())
    result = work(job)
    if result is not None and int(os.environ.get("RANK", "0")) == 0:
        out = Path(job["result"])
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(json.dumps(result, default=str))
        os.replace(tmp, out)
    return 0
