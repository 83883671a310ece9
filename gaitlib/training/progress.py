"""Training progress for people: a bar on a terminal, plain lines in a log file.

On a terminal the trainer shows a tqdm bar that redraws in place.  When its output is not a
terminal (a log file, a pipe, ``nohup``), redrawing would write a carriage return per update;
instead it prints one line on the first log step and then at most one every ``every`` seconds,
each readable alone: iteration, speed, loss and the time left.  The runs layer's board
(:mod:`gaitlib.runs.progress`) writes its lines with :func:`progress_text` too.
"""

from __future__ import annotations

import math
import sys
import time


def duration_text(seconds: float) -> str:
    """``'3h05m'``, ``'12m'`` or ``'40s'``; ``'?'`` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    minutes = round(seconds / 60)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if minutes < 60:
        return f"{minutes}m"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def progress_text(name: str, iteration: int, total: int, it_per_s: float,
                  loss: float | None = None) -> str:
    """One run's progress in one line: iteration of total, speed, loss and time left."""
    left = (total - iteration) / it_per_s if it_per_s > 0 else math.nan
    loss_text = "" if loss is None else f", loss {loss:.4f}"
    return (f"{name}: {iteration}/{total} ({100 * iteration / max(total, 1):.1f}%), "
            f"{it_per_s:.2f} it/s{loss_text}, ETA {duration_text(left)}")


class Progress:
    """The trainer's progress display (see the module note); ``enabled=False`` shows nothing."""

    def __init__(self, name: str, total: int, start: int = 0, enabled: bool = True,
                 every: float = 300.0, stream=None):
        self.name, self.total, self.every = name, total, every
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.bar = None
        self.printed_at = -math.inf
        if enabled and self.stream.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=start, desc=name, dynamic_ncols=True,
                            file=self.stream)

    def update(self, steps: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(steps)

    def log(self, iteration: int, it_per_s: float, loss: float, lr: float) -> None:
        """A log step's numbers: the bar's postfix, or a line when one is due."""
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.1e}")
        elif self.enabled and (time.monotonic() - self.printed_at >= self.every
                               or iteration == self.total):
            self.printed_at = time.monotonic()
            print(progress_text(self.name, iteration, self.total, it_per_s, loss) +
                  f", lr {lr:.1e}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
