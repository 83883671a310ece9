"""What the project raises for bad input, and how an OS error keeps the path it concerns.

Every error a user can fix (a store, a config, a checkpoint, a run directory, a path) derives
from :class:`GaitlibError` or ``ValueError``; the command line prints it as one line,
``gaitlib: error: ...``, with exit status 2. An ``OSError`` on a user's path (full disk,
read-only file system, a folder where a file belongs) is printed the same way, naming the path;
any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


class GaitlibError(Exception):
    """Bad input the user can fix; the message names the file, key or value at fault."""


class ConfigError(GaitlibError, ValueError):
    """A configuration key or value is invalid (:mod:`gaitlib.training.checks`)."""


@contextmanager
def naming(path: str | os.PathLike) -> Iterator[None]:
    """Give an ``OSError`` raised in the block the path it concerns: a failed ``write()`` on an
    open file (disk full, I/O error) names no file, and the message must say which."""
    try:
        yield
    except OSError as err:
        if err.filename is not None:
            raise
        raise OSError(err.errno, err.strerror or str(err), os.fspath(path)) from err


def describe_os_error(err: OSError) -> str | None:
    """``PATH: reason`` for an OS error on a path, None for one without a path (a bug's)."""
    if err.filename is None:
        return None
    paths = [os.fsdecode(err.filename)]
    if err.filename2 is not None:
        paths.append(os.fsdecode(err.filename2))
    return f"{' -> '.join(paths)}: {err.strerror or err}"
