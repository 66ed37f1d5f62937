"""Progress bars for long reads (a crawl, a storage scan): tqdm, or nothing."""

from __future__ import annotations

import sys
from typing import Any


class NoBar:
    """What a disabled progress bar is: every call does nothing."""

    total = 0

    def update(self, n: int = 1) -> None:
        pass

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(description: str, *, unit: str, total: int = 0, enabled: bool = True) -> Any:
    """A tqdm bar on stderr (a widget in Jupyter), or a :class:`NoBar`."""
    if not enabled:
        return NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, desc=description, file=sys.stderr, leave=True)
