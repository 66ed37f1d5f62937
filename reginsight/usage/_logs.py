"""Registry logs read into pull frames: a file (plain or gzip), a folder of them, or a
stream of lines; streamed, a bounded number of lines and rows held at a time.

Each request is recorded once. With its access log on, the registry writes two lines
per request once it is done (see :mod:`._lines`): logrus's ``response completed`` line
and the access-log line. The logrus line is the record (the end time to the
nanosecond, the authenticated user, the client behind a proxy); an access-log line is a
record only when no logrus line is its twin, as for Distribution 3.0's HEAD of a
manifest, which writes no logrus line, or a registry logging at ``warn``. Twins are
paired in a window of :data:`TWIN_WINDOW` lines (the two are written one after the
other; a container runtime, reading standard output and error apart, may swap them or
put a few lines between them): same method, repository, kind, reference, status and user
agent, and the access line's second no later than the logrus line's start (its end less
its duration) and at most a second before it. The client is not compared: behind a
proxy logrus names the client from X-Forwarded-For and the access log the proxy. Pairing
counts: any number of identical requests in one second are kept as many times.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from pathlib import Path

import numpy as np
import pandas as pd

from .._errors import PullRecordsInvalid
from ._frame import PULL_COLUMNS, SOURCE_GAP, Span, empty_pulls, utc_now
from ._lines import MALFORMED, Piece, Request, Stamp, parse_line, parse_message, piece_of

#: a longer line is skipped as malformed, never held whole (characters)
MAX_LINE = 1 << 20
#: lines between a request's two lines beyond which they are not taken as twins
TWIN_WINDOW = 20_000
#: rows turned into a (categorical) frame at a time
CHUNK_ROWS = 1 << 16
#: the source name of lines that come from no file
LINES = "<lines>"
_GZIP_MAGIC = b"\x1f\x8b"
#: a gzip file cut short (a rotation still compressing) or corrupt
_GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


def read_log(path: str | os.PathLike) -> pd.DataFrame:
    """The pull frame of one log file, plain or gzip-compressed (known by its first
    bytes, not its name); a pipe too. Its source is the path."""
    source = os.fspath(path)
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed below, after the stream is read
    except OSError as exc:
        raise PullRecordsInvalid(f"cannot read {source!r}: {exc.strerror or exc}") from None
    with raw:
        binary = raw if raw.peek(2)[:2] != _GZIP_MAGIC else gzip.GzipFile(fileobj=raw)
        text = io.TextIOWrapper(binary, encoding="utf-8", errors="replace", newline="\n")
        try:
            return _read_stream(_capped(text.readline, "\n"), source)
        finally:
            text.detach()


def read_stream(stream: object, *, source: str = LINES) -> pd.DataFrame:
    """The pull frame of an open file (text or binary; read from where it is, not
    closed): ``sys.stdin``, a pipe from ``kubectl logs``, ``open(...)``."""
    readline = stream.readline
    try:
        first = readline(MAX_LINE)
        if isinstance(first, bytes):
            return _read_stream(_decoded(_capped(readline, b"\n", first)), source)
        return _read_stream(_capped(readline, "\n", first), source)
    except UnicodeDecodeError as exc:
        raise PullRecordsInvalid(
            f"{source}: not UTF-8 text ({exc.reason}): open it in binary mode ('rb'), or "
            "with errors='replace'") from None


def read_lines(lines: Iterable[str | bytes], *, source: str = LINES) -> pd.DataFrame:
    """The pull frame of lines (str, or bytes taken as UTF-8), each item one line with
    or without its line ending. A line over :data:`MAX_LINE` is skipped as malformed."""
    return _read_stream(_checked(lines), source)


def log_files(folder: str | os.PathLike) -> list[Path]:
    """The files of a log folder, by name: every regular file in it (subfolders are
    not read). A symbolic link to a file in the folder is that file, read once (under
    its own name); one that leads out of the folder is refused."""
    root = Path(folder).resolve()
    chosen: dict[Path, Path] = {}  # the file -> the name it is read under
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise PullRecordsInvalid(f"cannot read {os.fspath(folder)!r}: "
                                 f"{exc.strerror or exc}") from None
    for entry in entries:
        path = Path(entry.path)
        if entry.is_symlink():
            target = path.resolve()
            if not target.is_relative_to(root):
                raise PullRecordsInvalid(
                    f"{entry.path!r} is a symbolic link that leads out of {os.fspath(folder)!r}"
                    "; refused (copy the file into the folder, or pass its path)")
            if target.is_file():
                chosen.setdefault(target, path)
        elif entry.is_file(follow_symlinks=False):
            chosen[path.resolve()] = path
    return sorted(chosen.values())


def _capped(readline: Callable, newline: str | bytes, first: str | bytes | None = None
            ) -> Iterator[str | bytes | None]:
    """Lines of ``readline`` (each read at most :data:`MAX_LINE` at a time); None for a
    longer line, whose rest is read and dropped without ever being held whole."""
    line = readline(MAX_LINE) if first is None else first
    while line:
        if len(line) >= MAX_LINE and not line.endswith(newline):
            while line and not line.endswith(newline):
                line = readline(MAX_LINE)
            yield None
        else:
            yield line
        line = readline(MAX_LINE)


def _decoded(lines: Iterator[bytes | None]) -> Iterator[str | None]:
    for line in lines:
        yield None if line is None else line.decode("utf-8", "replace")


def _checked(lines: Iterable[str | bytes]) -> Iterator[str | None]:
    for number, line in enumerate(lines, 1):
        if isinstance(line, bytes):
            line = line.decode("utf-8", "replace")
        elif not isinstance(line, str):
            raise PullRecordsInvalid(f"line {number} is a {type(line).__name__}, not text "
                                     "(str or bytes): give an iterable of log lines")
        yield None if len(line) > MAX_LINE else line


def _read_stream(lines: Iterator[str | None], source: str) -> pd.DataFrame:
    """The pull frame of one stream of lines (None: a line too long, skipped)."""
    rows = _Rows(source)
    twins = _Twins(rows.add, TWIN_WINDOW)
    pieces: dict[str, list[str]] = {}
    skipped, spans = 0, _Spans()
    try:
        for number, line in enumerate(lines):
            if line is None:
                skipped += 1
                continue
            if pieces:  # a split line is being joined: its next piece may be this line
                parsed = _join(pieces, piece_of(line))
                if parsed is None:
                    parsed = parse_line(line)
            else:
                parsed = parse_line(line)
            kind = type(parsed)
            if kind is Request:
                twins.add(parsed, number)
                if parsed.access_log or parsed.status < 400:
                    spans.see(parsed.time, access_log=parsed.access_log)
            elif kind is Stamp:
                if parsed.proves:
                    spans.see(parsed.time, access_log=parsed.access_log)
            elif kind is Piece:
                pieces[parsed.stream] = [parsed.text]
                continue
            elif parsed is MALFORMED:
                skipped += 1
                continue
            spans.version(line)
    except _GZIP_ERRORS:
        skipped += 1  # the compressed file ends mid-stream: what was read is kept
    skipped += len(pieces)  # split lines never finished
    twins.flush()
    frame = rows.frame()
    frame.attrs["coverage"] = spans.coverage(source, frame)
    frame.attrs["skipped"] = {source: skipped}
    return frame


def _join(pieces: dict[str, list[str]], piece: Piece | None) -> object:
    """The line a split one makes once ``piece`` (its last) arrives: parsed, or None when
    ``piece`` continues no split line (the caller parses the line itself). A piece is
    added; a line grown past :data:`MAX_LINE` is dropped (malformed)."""
    if piece is None or piece.stream not in pieces:
        return None
    parts = pieces[piece.stream]
    if parts and sum(map(len, parts)) + len(piece.text) > MAX_LINE:
        parts.clear()  # too long: its remaining pieces are dropped, then counted once
    elif parts:
        parts.append(piece.text)
    if not piece.last:
        return _CONTINUED
    del pieces[piece.stream]
    return parse_message("".join(parts)) if parts else MALFORMED


_CONTINUED = object()  # a piece taken into a split line: nothing to record yet


class _Rows:
    """A stream's rows, kept compact as they come: each coded by two lookups (its image:
    repository, reference, digest, kind; its caller: method, client, user agent, user),
    the codes and times packed into arrays every :data:`CHUNK_ROWS` rows (18 bytes a
    row), the frame made once at the end. A log names the same images and callers over
    and over: a code per distinct one is all they cost."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.targets: dict[tuple, int] = {}
        self.callers: dict[tuple, int] = {}
        self.parts: list[list] = []  # [times (ns), status, image codes, caller codes]
        self._start()

    def _start(self) -> None:
        self.times: list[str] = []
        self.status = array("h")
        self.target_codes, self.caller_codes = array("i"), array("i")

    def add(self, record: Request) -> None:
        times, targets, callers = self.times, self.targets, self.callers
        times.append(record.time)
        self.status.append(record.status)
        target, caller = _target_of(record), _caller_of(record)
        code = targets.get(target)
        if code is None:
            code = targets[target] = len(targets)
        self.target_codes.append(code)
        code = callers.get(caller)
        if code is None:
            code = callers[caller] = len(callers)
        self.caller_codes.append(code)
        if len(times) >= CHUNK_ROWS:
            self._pack()

    def _pack(self) -> None:
        nanoseconds = pd.to_datetime(self.times, utc=True, format="ISO8601").as_unit("ns").asi8
        self.parts.append([nanoseconds, self.status, self.target_codes, self.caller_codes])
        self._start()

    def frame(self) -> pd.DataFrame:
        """All the rows, sorted by time (stable): the pull frame's columns and dtypes
        (:func:`._frame.pull_frame`'s), made without a Python object a row, a column at a
        time (each part freed once joined: the peak stays near the frame's size)."""
        if self.times:
            self._pack()
        if not self.parts:
            return empty_pulls()
        parts, self.parts = self.parts, []

        def joined(index: int, dtype: type) -> np.ndarray:
            column = np.concatenate([np.frombuffer(part[index], dtype=dtype) for part in parts])
            for part in parts:
                part[index] = None
            return column

        times = joined(0, np.int64)
        order = np.argsort(times, kind="stable")
        columns: dict[str, object] = {
            "time": pd.DatetimeIndex(times[order].view("datetime64[ns]")).tz_localize("UTC"),
            "status": pd.array(joined(1, np.int16)[order], dtype="Int16"),
            "source": pd.Categorical.from_codes(np.zeros(len(order), dtype=np.int8),
                                                categories=pd.Index([self.source], dtype=str)),
        }
        del times
        for index, names, combos in ((2, _TARGET, self.targets), (3, _CALLER, self.callers)):
            codes = joined(index, np.int32)[order]
            for name, values in zip(names, zip(*combos, strict=True), strict=True):
                value_codes, categories = pd.factorize(np.array(values, dtype=object),
                                                       sort=True)  # as pull_frame's
                narrow = value_codes.astype(np.min_scalar_type(-len(categories) - 1))
                columns[name] = pd.Categorical.from_codes(
                    narrow[codes], categories=pd.Index(categories, dtype=str))
            combos.clear()
        return pd.DataFrame({column: columns[column] for column in PULL_COLUMNS})


#: the columns a row's image and caller are, and where a Request holds them
_TARGET = ("repository", "reference", "digest", "kind")
_CALLER = ("method", "client", "user_agent", "user")
_target_of = itemgetter(*(Request._fields.index(column) for column in _TARGET))
_caller_of = itemgetter(*(Request._fields.index(column) for column in _CALLER))
#: what twins share: the same request, as both lines tell it (not the client: behind a
#: proxy logrus names the address in X-Forwarded-For, the access log the proxy)
_twin_key = itemgetter(*(Request._fields.index(column) for column in (
    "method", "repository", "kind", "reference", "status", "user_agent")))


class _Spans:
    """The time a stream's records cover: from line to line of those that show the log
    records served requests (:class:`Stamp`'s ``proves``), cut where two such lines
    are more than SOURCE_GAP apart (a rotation missing from ``zcat *.gz``) as between
    two files. A 3.x registry's log without its access-log lines covers nothing: 3.x
    writes a successful HEAD (a node's check of a cached image) only there."""

    def __init__(self) -> None:
        self.parts: list[list[str]] = []  # [first, last] times, RFC 3339
        self.hour = ""
        self.access_log = False
        self.version_3 = False

    def see(self, time: str, *, access_log: bool) -> None:
        self.access_log = self.access_log or access_log
        if not self.parts:
            self.parts.append([time, time])
        elif time[:13] != self.hour and utc_now(time) - utc_now(self.parts[-1][1]) > SOURCE_GAP:
            self.parts.append([time, time])  # (parsed only once an hour of the log)
        else:
            self.parts[-1][1] = time
        self.hour = time[:13]

    def version(self, line: str) -> None:
        if not self.version_3 and ('"version":"v3' in line or " version=v3" in line):
            self.version_3 = True

    def coverage(self, source: str, frame: pd.DataFrame) -> list[Span]:
        if not self.parts or (self.version_3 and not self.access_log):
            return []
        spans = [Span(source, utc_now(first), utc_now(last)) for first, last in self.parts]
        if len(frame):  # an access-log line's time is its request's start: earlier
            spans[0] = Span(source, min(spans[0].start, frame["time"].iloc[0]), spans[0].end)
            spans[-1] = Span(source, spans[-1].start, max(spans[-1].end, frame["time"].iloc[-1]))
        return spans


#: seconds a logrus line's start may fall before its access line's second (rounding)
_SLACK = 0.001


class _Twins:
    """Pairs access-log lines with their logrus twins in a window of lines (see the
    module's docstring), giving each request's record to ``emit`` once: a logrus record
    at once, an access-log record once no twin came within the window."""

    def __init__(self, emit: Callable[[Request], None], window: int) -> None:
        self.emit, self.window = emit, window
        # key -> (line number, record) of the records still waiting for a twin, oldest first
        self.logrus: dict[tuple, deque[tuple[int, Request]]] = {}
        self.access: dict[tuple, deque[tuple[int, Request]]] = {}
        # the latest logrus record, (line number, key, record), not filed yet: most often
        # the very next record is its access line
        self.held: tuple[int, tuple, Request] | None = None
        self.sweep_at = window

    def add(self, record: Request, number: int) -> None:
        key = _twin_key(record)
        held = self.held
        if held is not None:
            self.held = None
            if record.access_log and held[1] == key and number - held[0] <= self.window \
                    and _in_time(record, held[2]):
                return
            _wait(self.logrus, key=held[1], number=held[0], record=held[2])
        if record.access_log:
            mine, theirs = self.access, self.logrus
        else:
            self.emit(record)
            mine, theirs = self.logrus, self.access
        waiting = theirs.get(key)
        if waiting and self._pair(waiting, record, number - self.window):
            if not waiting:
                del theirs[key]
        elif record.access_log:
            _wait(mine, key=key, number=number, record=record)
        else:
            self.held = (number, key, record)
        if number >= self.sweep_at:  # now and then, not every line: what has waited too long
            self._sweep(number - self.window)
            self.sweep_at = number + self.window // 4

    @staticmethod
    def _pair(waiting: deque[tuple[int, Request]], record: Request, since: int) -> bool:
        """Take the oldest of ``waiting`` (from line ``since`` on) that is ``record``'s
        twin; whether one was."""
        for index, (number, other) in enumerate(waiting):
            access, logrus = (record, other) if record.access_log else (other, record)
            if number >= since and _in_time(access, logrus):
                del waiting[index]
                return True
        return False

    def _sweep(self, before: float) -> None:
        """Give up on the records waiting since before line ``before``: the access-log
        ones are records of their own."""
        for table in (self.logrus, self.access):
            for key in list(table):
                waiting = table[key]
                while waiting and waiting[0][0] < before:
                    _, record = waiting.popleft()
                    if table is self.access:
                        self.emit(record)
                if not waiting:
                    del table[key]

    def flush(self) -> None:
        """The stream ended: the access-log records left without a twin are records."""
        self.held = None
        self._sweep(float("inf"))


def _wait(table: dict, *, key: tuple, number: int, record: Request) -> None:
    waiting = table.get(key)
    if waiting is None:
        waiting = table[key] = deque()
    waiting.append((number, record))


def _in_time(access: Request, logrus: Request) -> bool:
    """Whether an access line's second is the one its twin began in: the logrus line's
    start (its end less its duration) or the second before."""
    return access.start - _SLACK <= logrus.start < access.start + 2
