"""What the pool is doing, for a person watching a days-long ``gaitlib reproduce``.

One line per active run (iteration, speed, loss, time left: the last record of its
``metrics.jsonl``, which the trainer writes on every log step) and one overall line (runs done,
running, queued, and the time left: the schedule of :mod:`gaitlib.runs.budget` replayed with
the measured speeds of the active runs and the projected hours of the queued ones).  On a
terminal the block is redrawn in place every few seconds; into a log file it is written as plain
lines every ``interval`` seconds (10 minutes by default), never with carriage returns.  Every
start and end of a run is one line too.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from gaitlib.training.progress import duration_text, progress_text


@dataclass
class Active:
    name: str
    run_dir: Path
    iterations: int
    gpus: int
    projected_hours: float
    began: float
    where: str = ""  # the pool's workers it runs on


def last_record(run_dir: Path) -> dict | None:
    """The last line of a run's ``metrics.jsonl`` (None before the first log step)."""
    path = Path(run_dir) / "metrics.jsonl"
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - 4096))
            lines = handle.read().decode(errors="replace").strip().splitlines()
        return json.loads(lines[-1]) if lines else None
    except (OSError, json.JSONDecodeError, IndexError):
        return None


class Board:
    """The live view (see the module note).  ``queued``: the placed runs (``budget.Placed``)
    still waiting, in order; ``devices``: the pool's size."""

    def __init__(self, runs: int, devices: int, queued: list | None = None,
                 interval: float | None = None, stream=None):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.interval = interval if interval is not None else (2.0 if self.tty else 600.0)
        self.runs, self.devices, self.done = runs, devices, 0
        self.queued = list(queued or [])
        self.active: dict[str, Active] = {}
        self.drawn = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Board:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()

    def started(self, key: str, active: Active, placed=None) -> None:
        with self.lock:
            self.active[key] = active
            if placed in self.queued:
                self.queued.remove(placed)
            self._say(f"started {active.name} on {active.where or active.gpus}")

    def finished(self, key: str, line: str) -> None:
        with self.lock:
            self.active.pop(key, None)
            self.done += 1
            self._say(f"[{self.done}/{self.runs}] {line}")

    def lines(self) -> list[str]:
        """The block: one line per active run, then the overall line."""
        now = time.monotonic()
        out, busy = [], []
        for run in self.active.values():
            record = last_record(run.run_dir)
            if record and record.get("it_per_s"):
                out.append("  " + progress_text(run.name, record["iteration"], run.iterations,
                                                record["it_per_s"], record.get("loss")))
                left = (run.iterations - record["iteration"]) / record["it_per_s"] / 3600
            else:
                out.append(f"  {run.name}: starting ({duration_text(now - run.began)})")
                left = run.projected_hours - (now - run.began) / 3600
            busy += [max(left, 0.0) if math.isfinite(left) else math.nan] * run.gpus
        out.append(f"  overall: {self.done}/{self.runs} runs done, {len(self.active)} running, "
                   f"{len(self.queued)} queued; ETA {self._eta(busy)}")
        return out

    def _eta(self, busy: list[float]) -> str:
        from gaitlib.runs.budget import Placed, simulate

        hours = [q.hours for q in self.queued]
        if any(not math.isfinite(h) for h in busy + hours):
            return "?"
        copies = [Placed(q.need, q.gpus) for q in self.queued]
        return duration_text(3600 * simulate(copies, self.devices, busy[: self.devices]))

    def _say(self, text: str) -> None:
        self._erase()
        print(f"{time.strftime('%H:%M:%S')} {text}", file=self.stream, flush=True)

    def _erase(self) -> None:
        if self.tty and self.drawn:
            self.stream.write(f"\x1b[{self.drawn}F\x1b[J")
            self.drawn = 0

    def draw(self) -> None:
        with self.lock:
            lines = self.lines()
            self._erase()
            if not self.tty:
                print(time.strftime("%H:%M:%S") + " progress", file=self.stream)
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()
            self.drawn = len(lines) if self.tty else 0

    def _loop(self) -> None:
        while not self.stop.wait(self.interval):
            if self.active:
                self.draw()
