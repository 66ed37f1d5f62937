"""``read_pulls``: pull records from whatever holds them, one frame."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Mapping, Set
from pathlib import Path

import pandas as pd

from .._errors import PullRecordsInvalid
from ..registry._hosts import redact_text
from ._frame import PULL_COLUMNS, concat_pulls, empty_pulls, from_frame
from ._logs import LINES, log_files, read_lines, read_log, read_stream
from ._store import is_store, read_store

_WHAT = ("a registry log file or folder, the folder `reginsight listen` writes, an open "
         "file or an iterator of log lines, a DataFrame of pull records, or a list of these")


def read_pulls(source: object) -> pd.DataFrame:
    """The requests that used (or pushed) an image, one row each, from the registry's
    own records.

    ``source`` is any of, or a list or tuple of several (their records joined):

    - a path (str or :class:`os.PathLike`) to a Distribution 2.x or 3.0 log file,
      plain or gzip-compressed (known by its first bytes, not its name), written with the
      ``text``, ``json`` or ``logstash`` log formatter at level ``info``, with or without
      the access log; the lines bare or as collected: ``kubectl logs`` (``--timestamps``,
      ``--prefix``), a node's CRI log file, docker's json-file, ``journalctl`` (``-o
      json``, ``short``, ``short-iso``, ``cat`` ...);
    - a folder of such files (rotated sets: every regular file in it, subfolders not
      read; a symbolic link leading out of the folder is refused);
    - the folder ``reginsight listen`` writes (the registry's notifications);
    - an open file (text or binary, e.g. ``sys.stdin``) or any other iterator of lines
      (str or bytes): ``kubectl logs`` piped in, a ``journalctl`` export;
    - a DataFrame with the columns below (time, repository, reference, method and kind
      at least): another tool's records.

    A request the registry logged twice (its ``response completed`` line and its
    access-log line) is one row. A HEAD counts as a pull: a node that has the image sends
    only that. Distribution 3.0 writes no ``response completed`` line for a HEAD of a
    manifest that succeeds, so that row comes from the access log: its time is to the
    second, the request's start, and it has no user. Lines that are not the registry's
    or are cut short, and requests naming an invalid image, are skipped and counted.

    Columns: ``time`` (datetime64[ns, UTC]: the end of the request, or its start when
    only the access log has it), ``repository``, ``reference`` (the tag or digest as
    asked), ``digest`` (the reference when it is a digest, always for a blob; NA for a
    tag), ``method`` (``GET`` or ``HEAD`` for a pull, ``PUT`` for a manifest push),
    ``kind`` (``manifest`` or ``blob``), ``status`` (Int16: the response's; NA from
    notifications), ``client`` (the remote IP, without its port; behind a proxy the
    address in X-Forwarded-For), ``user_agent``, ``user`` (the authenticated user, or
    NA), ``source`` (the file, ``"<lines>"``, or the event folder); text columns are
    categorical. Rows are sorted by time. Failed requests are rows too (their status
    says so).

    A file given twice (or in a folder given too) is read once, and of rows alike in
    every column but the source (a log and its compressed copy) each source's are
    kept, not their sum. A log and the listener's folder both holding a request count
    it twice: give one of them for a time.

    ``.attrs["coverage"]``: a list of :class:`Span` (source, start, end), per log file or
    stream from its first to its last line showing served requests (an access-log
    line, a ``response completed`` line: a log at level warn shows none, and a 3.x log
    without its access log none of the HEADs a node sends), cut where two are more
    than 24 hours apart; one per run of the listener; ``.attrs["skipped"]``:
    ``{source: lines skipped}``.

    Raises :class:`~reginsight.PullRecordsInvalid` for a source of another kind, a path
    that does not exist, or a DataFrame missing a column.
    """
    pulls = _read(source, set(), set())
    return _without_copies(pulls) if len(pulls.attrs.get("skipped", {})) > 1 else pulls


def _without_copies(pulls: pd.DataFrame) -> pd.DataFrame:
    """``pulls`` less the rows another source holds too (a log and its compressed
    copy, a folder and a file in it): of rows alike in every column but ``source``, as
    many are kept as the source holding most of them has (alike rows in one source are
    requests of their own)."""
    alike = [c for c in PULL_COLUMNS if c != "source"]
    rank = pulls.groupby([*alike, "source"], observed=True, dropna=False, sort=False).cumcount()
    copies = pulls[alike].assign(_rank=rank.to_numpy()).duplicated().to_numpy()
    if not copies.any():
        return pulls
    kept = pulls[~copies].reset_index(drop=True)
    kept.attrs = pulls.attrs
    return kept


def _read(source: object, within: set[int], seen: set[Path]) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return from_frame(source)
    if isinstance(source, list | tuple):
        if id(source) in within:
            raise PullRecordsInvalid("a list of pull sources holds itself")
        within.add(id(source))
        frames = [_read(item, within, seen) for item in source]
        within.discard(id(source))
        return concat_pulls(frames)
    if isinstance(source, str | os.PathLike):
        return _read_path(Path(source), os.fspath(source), seen)
    if isinstance(source, bytes | bytearray | memoryview):
        raise PullRecordsInvalid(f"cannot read pull records from {type(source).__name__}: "
                                 f"give {_WHAT}")
    if source is sys.stdin and hasattr(source, "buffer"):
        # bytes whatever the locale: a stray byte is replaced, not an error mid-stream
        return read_stream(source.buffer, source=LINES)
    if callable(getattr(source, "readline", None)):
        name = getattr(source, "name", None)
        return read_stream(source, source=name if isinstance(name, str) else LINES)
    if isinstance(source, Iterable) and not isinstance(source, Mapping | Set):
        return read_lines(source)
    raise PullRecordsInvalid(f"cannot read pull records from a {type(source).__name__}: "
                             f"give {_WHAT}")


def _read_path(path: Path, shown: str, seen: set[Path]) -> pd.DataFrame:
    """A file, a log folder or an event store; a file ``seen`` already (given twice, or
    in a folder given too) is read once."""
    if not path.exists():
        hint = ("; to read lines, give an iterator of them (iter(lines)), not a list"
                if "\n" in shown or len(shown) > 255 else "")
        raise PullRecordsInvalid(f"no such file or folder: {redact_text(shown)[:200]!r}{hint}")
    if path.is_dir():
        if is_store(path):
            return _once(path, seen, read_store)
        return concat_pulls([_once(file, seen, read_log) for file in log_files(path)])
    return _once(path, seen, read_log)


def _once(path: Path, seen: set[Path], read: Callable[[Path], pd.DataFrame]) -> pd.DataFrame:
    resolved = path.resolve()
    if resolved in seen:
        return empty_pulls()
    seen.add(resolved)
    return read(path)
