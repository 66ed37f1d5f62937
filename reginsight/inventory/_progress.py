"""Progress for long reads (a crawl, a storage scan): a bar, plain lines, or nothing.

Where the progress goes decides its form:

- a terminal: a tqdm bar redrawn in place;
- a Jupyter kernel: tqdm's widget bar (``tqdm.auto``);
- anything else (a pipe, a log file, CI): plain newline-terminated lines such as
  ``crawl http://r:5000: 120/300 tags``, at most one every few seconds, and a final
  one when done. No ``\\r`` redraws end up in a log file.

Every form has the same small interface, the one crawl and scan use: ``update(n)``,
``refresh()``, ``close()`` and a ``total`` that may be raised after creation.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any, TextIO

#: at most one plain progress line per this many seconds (the final line always comes)
LINE_INTERVAL = 5.0


class NoBar:
    """What a disabled progress bar is: every call does nothing."""

    total = 0

    def update(self, n: int = 1) -> None:
        pass

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


class LineBar:
    """Progress as plain lines, for a stderr that is no terminal: ``desc: n/total unit``
    when ``interval`` seconds have passed since the last line, and once more on close."""

    def __init__(self, description: str, *, unit: str, total: int = 0,
                 file: TextIO | None = None, interval: float = LINE_INTERVAL) -> None:
        self.desc = description
        self.unit = unit
        self.total = total
        self.n = 0
        self._file = file
        self._interval = interval
        self._started = self._last = time.monotonic()
        self._closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        self._maybe_show()

    def refresh(self) -> None:
        self._maybe_show()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._show(final=True)

    def _maybe_show(self) -> None:
        if not self._closed and time.monotonic() - self._last >= self._interval:
            self._show()

    def _show(self, *, final: bool = False) -> None:
        self._last = time.monotonic()
        count = f"{self.n}/{self.total}" if self.total else str(self.n)
        unit = self.unit if self.n == 1 and not self.total else _plural(self.unit)
        elapsed = self._last - self._started
        line = f"{self.desc}: {count} {unit}" + (f" in {elapsed:.1f}s" if final else "")
        stream = self._file if self._file is not None else sys.stderr
        with contextlib.suppress(OSError, ValueError):  # a broken stream never stops a crawl
            print(line, file=stream, flush=True)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, OSError, ValueError):
        return False


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where tqdm draws a widget): ipykernel is loaded and
    the running IPython shell is the kernel's ZMQInteractiveShell."""
    if "ipykernel" not in sys.modules or "IPython" not in sys.modules:
        return False
    get_ipython = getattr(sys.modules["IPython"], "get_ipython", None)
    shell = get_ipython() if get_ipython is not None else None
    kernel_shell = getattr(sys.modules.get("ipykernel.zmqshell"), "ZMQInteractiveShell", None)
    return kernel_shell is not None and isinstance(shell, kernel_shell)  # Colab's subclass too


def _plural(unit: str) -> str:
    return f"{unit[:-1]}ies" if unit.endswith("y") else f"{unit}s"  # repository, tag


def progress_bar(description: str, *, unit: str, total: int = 0, enabled: bool = True) -> Any:
    """A tqdm bar on a terminal's stderr (a widget in Jupyter), plain lines on any
    other stderr (:class:`LineBar`), or a :class:`NoBar` when disabled."""
    if not enabled:
        return NoBar()
    if not in_notebook() and not _is_terminal(sys.stderr):
        return LineBar(description, unit=unit, total=total)
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, desc=description, file=sys.stderr, leave=True)
