"""The listener's event folder: what :func:`is_store` recognises and :func:`read_store`
reads as pull records.

Layout of a store ``DIR``::

    reginsight-events.json      marks the folder as an event store (format, version)
    journal/<segment>.jsonl     event records as received, one JSON object a line
    parts/<segment>.parquet     closed segments compacted (same records, typed)
    sessions/<session>.json     each listener run: start, last heartbeat, stop
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from .._errors import PullRecordsInvalid
from ._events import EVENT_COLUMNS, is_pull_row, pull_columns
from ._frame import Span, pull_frame

#: the file that marks a folder as an event store
MARKER = "reginsight-events.json"
FORMAT = "reginsight event store"
VERSION = 1
JOURNAL, PARTS, SESSIONS = "journal", "parts", "sessions"


def is_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a listener's event folder (a real folder, not a symbolic
    link, holding the store's marker file)."""
    path = Path(path)
    marker = path / MARKER
    if path.is_symlink() or not path.is_dir() or marker.is_symlink() or not marker.is_file():
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
    stop); ``attrs["skipped"]``: journal lines that could not be read. Raises
    :class:`~reginsight.PullRecordsInvalid` when ``path`` is not an event store."""
    if not is_store(path):
        raise PullRecordsInvalid(f"{os.fspath(path)!r} is not a reginsight event store")
    root = Path(path)
    source = str(root)
    events = pd.DataFrame({c: [] for c in EVENT_COLUMNS})
    skipped = 0
    frames = []
    for segment in sorted((root / JOURNAL).glob("*.jsonl")):
        records = []
        for line in segment.read_bytes().split(b"\n")[:-1]:
            try:
                records.append(json.loads(line))
            except ValueError:
                skipped += 1
        frames.append(pd.DataFrame(records, columns=EVENT_COLUMNS))
    if frames:
        events = pd.concat(frames, ignore_index=True)
    events = events.drop_duplicates("id", keep="first")
    keep = [is_pull_row(a, k, m) for a, k, m in
            zip(events["action"], events["kind"], events["method"], strict=True)]
    events = events[pd.Series(keep, index=events.index, dtype=bool)]
    columns = pull_columns({c: events[c].tolist() for c in EVENT_COLUMNS}, source=source)
    return pull_frame(columns, spans=_spans(root, source),
                      skipped={source: skipped} if skipped else {})


def _spans(root: Path, source: str) -> list[Span]:
    spans = []
    for file in sorted((root / SESSIONS).glob("*.json")):
        try:
            session = json.loads(file.read_bytes())
            start = pd.Timestamp(session["start"])
            end = pd.Timestamp(session.get("stopped") or session["heartbeat"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        spans.append(Span(source, start, end))
    return spans
