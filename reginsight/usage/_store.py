"""The listener's event folder: a durable journal of the events a registry posted, its
compaction to Parquet, the listener's runs; :func:`read_store` reads it as pull records.

Layout of a store ``DIR`` (nothing is ever written outside it)::

    reginsight-events.json      marks the folder as an event store (format, version)
    lock                        held (flock) by the one listener writing the store
    journal/<segment>.jsonl     event records as received, one JSON object a line
    parts/<segment>.parquet     a closed segment compacted: the same records, typed
    sessions/<session>.json     each listener run: its start, last heartbeat, stop

A batch is acknowledged only once its lines are written and fsynced (the segment's
folder too when the segment is new). A crash can leave a torn last line (never
acknowledged, so the registry sends it again) and events stored twice (written, then
the crash came before the answer): reading and compaction take each event id once.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import PullRecordsInvalid
from ._events import EVENT_COLUMNS, INTEGER_COLUMNS, is_pull_row, is_timestamp, pull_columns

# the listener's process loads no pandas, and pyarrow only to compact: its memory stays
# small
if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from ._frame import Span

#: the file that marks a folder as an event store
MARKER = "reginsight-events.json"
FORMAT = "reginsight event store"
VERSION = 1
JOURNAL, PARTS, SESSIONS, LOCK = "journal", "parts", "sessions", "lock"
#: a journal segment is closed (and compacted) after this many events or bytes: the
#: events of one segment are what compaction holds in memory at once
SEGMENT_EVENTS = 100_000
SEGMENT_BYTES = 32 * 2 ** 20
#: journal lines converted at a time when compacting or reading
BATCH_LINES = 4096
#: the columns read_store needs of the stored events
_PULL_FIELDS = ["id", "time", "action", "repository", "tag", "digest", "kind", "method",
                "client", "user_agent", "user"]
_TIME_COLUMNS = ("time", "received")
#: key of a part's metadata: journal lines its compaction could not read
_SKIPPED_KEY = b"reginsight.skipped_lines"


def is_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a listener's event folder: a folder (or a symbolic link to
    one: a volume mounted elsewhere) holding the store's marker file. The listener
    itself writes only into a folder given as it is (:func:`open_store`)."""
    path = Path(path)
    marker = path / MARKER
    if not path.is_dir() or marker.is_symlink() or not marker.is_file():
        return False
    try:
        document = json.loads(marker.read_bytes()[:4096])
    except (OSError, ValueError):
        return False
    return isinstance(document, dict) and document.get("format") == FORMAT


def read_store(path: str | os.PathLike) -> pd.DataFrame:
    """The pull records of the event store at ``path`` (see :func:`._frame.pull_frame`
    for the columns and dtypes): pulls (GET and HEAD of manifests and blobs) and manifest
    pushes (method ``PUT``), each event once (a batch resent by the registry after a
    crash is stored twice, and read once by event id). Status is NA (a registry notifies
    only of requests it served), source the store's folder. ``attrs["coverage"]``: one
    :class:`._frame.Span` per listener run, from its start to its last heartbeat (or its
    stop); ``attrs["skipped"]``: journal lines that could not be read. A listener may be
    writing the store meanwhile. Raises :class:`~reginsight.PullRecordsInvalid` when
    ``path`` is not an event store."""
    if not is_store(path):
        raise PullRecordsInvalid(f"{os.fspath(path)!r} is not a reginsight event store "
                                 f"(no {MARKER} in it)")
    from ._frame import pull_frame

    root = Path(path)
    source = str(root)
    # every action read once: who posted when (any event) decides the spans' gaps
    events, skipped = _read(root, columns=[*_PULL_FIELDS, "received", "source_instance"])
    spans = _unbridged(_spans(root, source), events)
    keep = [is_pull_row(a, k, m) for a, k, m in
            zip(events["action"], events["kind"], events["method"], strict=True)]
    events = events[keep] if len(events) else events
    columns = pull_columns({c: events[c].tolist() if c != "time" else events[c]
                            for c in _PULL_FIELDS}, source=source)
    return pull_frame(columns, spans=spans, skipped={source: skipped} if skipped else {})


def _unbridged(spans: list[Span], events: pd.DataFrame) -> list[Span]:
    """``spans`` with ``joins`` False after a gap across which a registry instance that
    posted before it (``events``' received, source_instance) never posted again: it
    restarted while the listener was down, and its in-memory queue of events was lost
    with it."""
    if len(spans) < 2:
        return spans
    import dataclasses

    received = events["received"].to_numpy()
    instances = events["source_instance"].to_numpy(dtype=object)
    out = [spans[0]]
    for span in spans[1:]:
        last = out[-1]  # who posted during the run before the gap
        before = set(instances[(received >= last.start) & (received <= last.end)]) - {None}
        after = set(instances[received >= span.start]) - {None}
        out.append(span if before <= after else dataclasses.replace(span, joins=False))
    return out


def read_events(path: str | os.PathLike) -> pd.DataFrame:
    """Every event of the store at ``path`` (pulls, pushes, deletes, mounts), each once,
    one row each with the columns of :data:`._events.EVENT_COLUMNS`: time and received
    datetime64[ns, UTC], size Int64, the others text (object, None when absent)."""
    if not is_store(path):
        raise PullRecordsInvalid(f"{os.fspath(path)!r} is not a reginsight event store")
    return _read(Path(path))[0]


def _read(root: Path, *, columns: list[str] | None = None) -> tuple[pd.DataFrame, int]:
    # the store's events (only these columns), each id once, as a frame;
    # and the journal lines that could not be read. Segments before parts: a segment
    # compacted meanwhile is then in the parts listed.
    import pandas as pd
    import pyarrow as pa

    tables, skipped = [], 0
    for segment in _files(root / JOURNAL, ".jsonl"):
        with contextlib.suppress(FileNotFoundError):
            for batch, bad in _segment_batches(segment):
                skipped += bad
                tables.append(batch.select(columns) if columns else batch)
    for part in _files(root / PARTS, ".parquet"):
        table, bad = _read_part(part, columns)
        skipped += bad
        tables.append(table)
    schema = _schema()
    schema = pa.schema([schema.field(c) for c in columns]) if columns else schema
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    frame = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    frame = frame.drop_duplicates("id", keep="first").reset_index(drop=True)
    for column in frame.columns:
        if column not in _TIME_COLUMNS and column not in INTEGER_COLUMNS:
            frame[column] = frame[column].astype(object)
    return frame, skipped


class EventStore:
    """An event store opened for writing by one listener run (a *session*): appends
    batches durably, heartbeats, compacts closed segments to Parquet. Thread-safe:
    request handlers append concurrently, one fsync covering the batches written
    before it (group commit). Open it with :func:`open_store`; ``close()`` compacts
    everything and records the stop."""

    def __init__(self, root: Path, lock_fd: int, *, segment_events: int,
                 segment_bytes: int) -> None:
        self.root = root
        self.session = (datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ") + "-"
                        + secrets.token_hex(3))
        self._lock_fd = lock_fd
        self._segment_events, self._segment_bytes = segment_events, segment_bytes
        self._write_lock = threading.Lock()     # the segment's fd, size, counters
        self._sync_lock = threading.Lock()      # one fsync or segment switch at a time
        self._compact_lock = threading.Lock()
        self._fd: int | None = None
        self._segment: Path | None = None
        self._closed: list[Path] = []          # this run's segments closed, not compacted
        self._sequence = 0
        self._events = self._bytes = 0          # in the open segment
        self._written = self._synced = 0        # batches written / known on disk
        self._failed = 0                        # batches up to this one: not on disk
        self.started = now_text()
        self.stored = 0
        # the time this run's records cover: closed intervals, and the start of the one
        # open now (None while a registry's posts are being refused)
        self._session_lock = threading.Lock()
        self._covered: list[tuple[str, str]] = []
        self._open: str | None = self.started
        self._write_session(stopped=None)

    # -- the journal

    def append(self, records: list[dict]) -> bool:
        """Write the event records of one batch and return once they are on disk
        (written, fsynced; the folder fsynced when the segment is new). True when the
        segment filled up and was closed: :meth:`compact` has work."""
        if not records:
            return False
        data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode()
        with self._write_lock:
            if self._fd is None:
                self._open_segment()
            _write_all(self._fd, data, self._bytes)
            self._bytes += len(data)
            self._events += len(records)
            self._written += 1
            mine = self._written
            self.stored += len(records)
            full = self._events >= self._segment_events or self._bytes >= self._segment_bytes
        with self._sync_lock:
            if mine <= self._failed:
                raise OSError(errno.EIO, "an fsync of the journal failed")
            if self._synced < mine:
                with self._write_lock:
                    fd, upto = self._fd, self._written
                try:
                    os.fsync(fd)
                except OSError:
                    # after a failed fsync Linux may mark the pages clean: a later fsync
                    # would succeed with the data lost. Every batch written so far is
                    # refused (the registry resends it) and a new segment begins.
                    with self._write_lock:
                        self._failed = self._written
                        with contextlib.suppress(OSError):
                            os.close(self._fd)
                        self._closed.append(self._segment)
                        self._fd, self._segment = None, None
                    raise
                self._synced = max(self._synced, upto)
            if self._open is None:
                with self._session_lock:
                    if self._open is None:  # stored again: the records cover from now on
                        self._open = now_text()
            if full:
                return self._close_segment_if_full()
        return False

    def _open_segment(self) -> None:
        # under the write lock
        self._sequence += 1
        name = f"{self.session}-{self._sequence:06d}.jsonl"
        self._segment = self.root / JOURNAL / name
        self._fd = os.open(self._segment, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
                           | _NOFOLLOW | _CLOEXEC, 0o640)
        _fsync_dir(self.root / JOURNAL)
        self._events = self._bytes = 0

    def _close_segment_if_full(self) -> bool:
        # under the sync lock: the batches written to the segment are synced first
        with self._write_lock:
            if self._fd is None or (self._events < self._segment_events
                                    and self._bytes < self._segment_bytes):
                return False
            self._close_segment()
        return True

    def _close_segment(self) -> None:
        # under both locks
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._synced = self._written
            self._closed.append(self._segment)
            self._fd, self._segment = None, None

    # -- sessions

    def heartbeat(self) -> None:
        """Record that this run is alive now (a small file replaced atomically): what
        :func:`read_store` takes as the end of its coverage if it stops unseen."""
        self._write_session(stopped=None)

    def events_refused(self) -> None:
        """Record that a registry's events were refused just now (a wrong secret, a
        failed write): the registry holds them and retries, but loses them if it
        restarts first, so this run's coverage stops here, until a batch is stored
        again. A missing record then means "unknown", not "unused"."""
        with self._session_lock:
            if self._open is None:
                return
            self._covered.append((self._open, now_text()))
            self._open = None
        self._write_session(stopped=None)

    def _write_session(self, *, stopped: str | None) -> None:
        with self._session_lock:
            now = now_text()
            covered = [*self._covered, *([(self._open, stopped or now)] if self._open else [])]
            document = {"session": self.session, "pid": os.getpid(), "start": self.started,
                        "heartbeat": now, "stopped": stopped, "stored": self.stored,
                        "covered": [list(interval) for interval in covered]}
            _replace(self.root / SESSIONS / f"{self.session}.json",
                     json.dumps(document, indent=1).encode())

    # -- compaction

    def compact(self, *, all_segments: bool = False) -> int:
        """Compact the closed journal segments (with ``all_segments``, the open one too,
        closed first) into Parquet parts, each part written to a temporary name, fsynced
        and renamed before its segment is deleted; events already in a part are left
        out. Returns the number of segments compacted."""
        with self._compact_lock:
            if all_segments:
                with self._sync_lock, self._write_lock:
                    self._close_segment()
            # a segment of this run is compacted only once closed: one listed by name
            # could be the segment a request is writing to right now
            with self._write_lock:
                closed = list(self._closed)
            earlier = [segment for segment in _files(self.root / JOURNAL, ".jsonl")
                       if not segment.name.startswith(self.session + "-")]
            done = 0
            for segment in earlier + closed:
                compact_segment(self.root, segment)
                done += 1
                if segment in closed:
                    with self._write_lock:
                        self._closed.remove(segment)
            return done

    def close(self) -> None:
        """Compact every segment, record the stop, release the store. A compaction that
        fails (a full disk) still records the stop, then raises: the segments stay in
        the journal, for the next run or reader."""
        try:
            self.compact(all_segments=True)
        finally:
            try:
                self._write_session(stopped=now_text())
            finally:
                with contextlib.suppress(OSError):
                    os.close(self._lock_fd)


def open_store(path: str | os.PathLike, *, segment_events: int = SEGMENT_EVENTS,
               segment_bytes: int = SEGMENT_BYTES) -> EventStore:
    """The event store at ``path`` opened for writing: created when ``path`` does not
    exist or is an empty folder, reopened when it is a store; locked against a second
    listener. Raises :class:`~reginsight.PullRecordsInvalid` for a symbolic link, a
    file, a folder holding something else, or a store another listener has open."""
    import fcntl

    root = Path(path)
    shown = os.fspath(path)
    if root.is_symlink():
        raise PullRecordsInvalid(f"{shown!r} is a symbolic link: give the folder itself")
    if root.exists() and not root.is_dir():
        raise PullRecordsInvalid(f"{shown!r} is not a folder")
    if root.is_dir() and not is_store(root) and any(root.iterdir()):
        raise PullRecordsInvalid(f"{shown!r} is a folder that is not an event store and "
                                 "not empty: give a new or empty folder")
    root.mkdir(parents=True, exist_ok=True, mode=0o750)
    for sub in (JOURNAL, PARTS, SESSIONS, LOCK, MARKER):
        if (root / sub).is_symlink():
            raise PullRecordsInvalid(f"{shown!r}: {sub} is a symbolic link; refused")
    for sub in (JOURNAL, PARTS, SESSIONS):
        (root / sub).mkdir(exist_ok=True, mode=0o750)
    lock_fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o640)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(lock_fd)
        raise PullRecordsInvalid(f"{shown!r} is being written by another listener") from None
    if not is_store(root):
        _replace(root / MARKER, json.dumps({"format": FORMAT, "version": VERSION}).encode())
    _fsync_dir(root)
    return EventStore(root, lock_fd, segment_events=segment_events,
                      segment_bytes=segment_bytes)


def compact_segment(root: Path, segment: Path) -> None:
    """One closed journal segment into ``parts/<segment>.parquet``: its events in
    bounded batches, each id once and none already in a part covering the same time
    (a resent batch keeps its events' timestamps); then the segment is deleted. Done
    again after a crash, it finds the part and only deletes the segment."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    part = root / PARTS / (segment.stem + ".parquet")
    if not part.exists():
        first = last = None
        skipped = 0
        ids: set = set()
        for batch, bad in _segment_batches(segment):
            skipped += bad
            if batch.num_rows:
                ids.update(batch["id"].to_pylist())
                low, high = pc.min_max(batch["time"]).values()
                first = low.value if first is None else min(first, low.value)
                last = high.value if last is None else max(last, high.value)
        seen = _ids_stored(root, ids, first, last) if ids else set()
        del ids
        # the lines no compaction could read ride in the part's metadata
        schema = _schema().with_metadata({_SKIPPED_KEY: str(skipped).encode()})
        temporary = part.with_name("." + part.name + ".tmp")
        with _exclusive(temporary) as file:
            with pq.ParquetWriter(file, schema, compression="zstd") as writer:
                for batch, _ in _segment_batches(segment):
                    keep = []
                    for event_id in batch["id"].to_pylist():
                        keep.append(event_id not in seen)
                        seen.add(event_id)
                    writer.write_table(batch.filter(pa.array(keep, pa.bool_()))
                                       .replace_schema_metadata(schema.metadata))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, part)
        _fsync_dir(root / PARTS)
    segment.unlink(missing_ok=True)
    _fsync_dir(root / JOURNAL)


def _ids_stored(root: Path, ids: set, first: int, last: int) -> set:
    # which of a segment's ids a part holds already (a resent event keeps its time, so
    # only the row groups spanning first..last, in ns, are looked in). A batch of ids
    # at a time: never a set of every id stored.
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    wanted = pa.array(sorted(ids), pa.string())
    found: set = set()
    for part in _files(root / PARTS, ".parquet"):
        try:
            file = pq.ParquetFile(part)
            groups = [g for g in range(file.num_row_groups)
                      if _may_span(file.metadata.row_group(g), first, last)]
            for batch in file.iter_batches(batch_size=65_536, row_groups=groups,
                                           columns=["id"]):
                column = batch.column(0)
                found.update(column.filter(pc.is_in(column, value_set=wanted)).to_pylist())
        except (OSError, ValueError) as exc:
            raise PullRecordsInvalid(f"{os.fspath(part)!r} cannot be read as a Parquet "
                                     f"part ({type(exc).__name__}): move it aside") from None
    return found


def _may_span(group, first: int, last: int) -> bool:
    # whether a row group's times (its statistics, raw ns) can fall in first..last
    for index in range(group.num_columns):
        column = group.column(index)
        if column.path_in_schema == "time":
            stats = column.statistics
            if stats is None or not stats.has_min_max:
                return True
            return stats.min_raw <= last and stats.max_raw >= first
    return True


def _schema(*, times_as_text: bool = False) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([
        (c, pa.string() if c in _TIME_COLUMNS and times_as_text else
         pa.timestamp("ns", tz="UTC") if c in _TIME_COLUMNS else
         pa.int64() if c in INTEGER_COLUMNS else pa.string()) for c in EVENT_COLUMNS])


def _segment_batches(segment: Path) -> Iterator[tuple[pa.Table, int]]:
    # a segment's complete lines, BATCH_LINES at a time, typed; and the lines that are
    # not event records. A last line without its newline was never acknowledged.
    records, bad = [], 0
    with open(segment, "rb") as file:
        for line in file:
            if not line.endswith(b"\n"):
                break
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if (isinstance(record, dict) and isinstance(record.get("id"), str)
                    and is_timestamp(record.get("time"))):
                records.append(record)
            else:
                bad += 1
            if len(records) >= BATCH_LINES:
                table, wrong = _table_of(records)
                yield table, bad + wrong
                records, bad = [], 0
    if records or bad:
        table, wrong = _table_of(records)
        yield table, bad + wrong


def _table_of(records: list[dict]) -> tuple[pa.Table, int]:
    # the records as a typed table; a record of the wrong shape (a field of another
    # type: not written by a listener) is left out and counted
    import pyarrow as pa

    try:
        return _typed(pa.Table.from_pylist(records, schema=_schema(times_as_text=True))), 0
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        good = [r for r in records if _table_of([r])[1] == 0] if len(records) > 1 else []
        return _table_of(good)[0], len(records) - len(good)


def _typed(table: pa.Table) -> pa.Table:
    import pyarrow as pa

    for column in _TIME_COLUMNS:
        index = table.schema.get_field_index(column)
        table = table.set_column(index, column,
                                 table[column].cast(pa.timestamp("ns", tz="UTC")))
    return table


def _read_part(part: Path, columns: list[str] | None) -> tuple[pa.Table, int]:
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(part)
        table = file.read(columns=columns)
    except FileNotFoundError:
        return _schema().empty_table().select(columns or EVENT_COLUMNS), 0
    except (OSError, ValueError) as exc:
        raise PullRecordsInvalid(f"{os.fspath(part)!r} cannot be read as a Parquet part "
                                 f"({type(exc).__name__})") from None
    metadata = file.schema_arrow.metadata or {}
    return table.replace_schema_metadata(None), int(metadata.get(_SKIPPED_KEY, b"0"))


def _files(folder: Path, suffix: str) -> list[Path]:
    # the regular files of a store folder (symbolic links and temporaries left out)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except FileNotFoundError:
        return []
    return [Path(e.path) for e in entries if e.name.endswith(suffix)
            and not e.name.startswith(".") and e.is_file(follow_symlinks=False)]


def _spans(root: Path, source: str) -> list[Span]:
    # per run: the intervals it recorded ("covered": from its start, or from the first
    # batch stored after a refusal, to a refusal, its stop or its last heartbeat)
    import pandas as pd

    from ._frame import Span

    spans = []
    for file in _files(root / SESSIONS, ".json"):
        try:
            session = json.loads(file.read_bytes()[:1 << 20])
            intervals = session.get("covered")
            if intervals is None:   # a run's file without intervals: its whole run
                intervals = [(session["start"], session.get("stopped") or session["heartbeat"])]
            for start, end in intervals:
                start, end = pd.Timestamp(start), pd.Timestamp(end)
                if start <= end:
                    spans.append(Span(source, start, end))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return sorted(spans, key=lambda s: s.start)


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def now_text() -> str:
    """The time now, UTC, as RFC 3339 text with microseconds (``...Z``)."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _write_all(fd: int, data: bytes, size: int) -> None:
    # all of data, or nothing: a failed write (disk full) is cut back off the segment so
    # the next batch does not follow a torn line
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        raise


@contextlib.contextmanager
def _exclusive(path: Path):
    path.unlink(missing_ok=True)        # a temporary a crash left
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o640)
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _replace(path: Path, data: bytes) -> None:
    # a small file replaced atomically: a temporary written, fsynced, renamed
    temporary = path.with_name("." + path.name + ".tmp")
    with _exclusive(temporary) as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | _CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
