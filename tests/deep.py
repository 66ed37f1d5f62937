"""Folders nested deeper than Python recurses (Path.mkdir, rglob and shutil.rmtree
all do), made and removed a level at a time by short paths."""

from __future__ import annotations

import os
from pathlib import Path


def nest(parent: Path, name: str, depth: int) -> None:
    """``depth`` folders ``name``, one in the other, in ``parent``."""
    fd = os.open(parent, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)


def unnest(parent: Path, name: str) -> None:
    """Remove what :func:`nest` made (pytest's own cleanup of the temp dir would hit
    the recursion limit at exit)."""
    top, spare = parent / name, parent / f"{name}-spare"
    while (top / name).is_dir():
        os.rename(top / name, spare)  # the second level moves up ...
        os.rmdir(top)  # ... the first, now empty, goes
        os.rename(spare, top)
    os.rmdir(top)
