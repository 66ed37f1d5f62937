"""The pull frame: one row per request that used (or pushed) an image, whatever the
source, and the time span its records cover. Pure: no I/O."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from .._errors import PullRecordsInvalid

#: the columns of every pull frame, in this order
PULL_COLUMNS = ["time", "repository", "reference", "digest", "method", "kind", "status",
                "client", "user_agent", "user", "source"]
#: text columns are categorical: a log repeats a few names millions of times
TEXT_COLUMNS = [c for c in PULL_COLUMNS if c not in ("time", "status")]
#: what counts as use: a manifest or blob read (HEAD by tag included: a node with the
#: image cached sends only that); PUT rows are manifest pushes
PULL_METHODS = ("GET", "HEAD")
METHODS = (*PULL_METHODS, "PUT")
KINDS = ("manifest", "blob")
#: records ending earlier than this before "now" leave the time since unknown
RECORD_GAP = pd.Timedelta(hours=1)
#: gaps between two sources (rotated files, listener restarts) up to this are bridged:
#: a quiet night leaves no line, and rotation starts a new file at the next request
SOURCE_GAP = pd.Timedelta(hours=24)


@dataclass(frozen=True)
class Span:
    """The time one source's records cover: a log's first to last line showing served
    requests (not only pulls); a listener's running time. ``joins``: False when the gap
    before it must not be bridged (a registry that posted to the listener before the
    gap and never after: restarted, its queued events lost)."""

    source: str
    start: pd.Timestamp
    end: pd.Timestamp
    joins: bool = True


def utc_now(now: object = None) -> pd.Timestamp:
    """``now`` (a time or its text) as a UTC timestamp, naive taken as UTC; None: the
    current time."""
    when = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    return when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")


def empty_pulls() -> pd.DataFrame:
    """A pull frame with no rows, every column of its dtype."""
    return pull_frame({column: [] for column in PULL_COLUMNS})


def pull_frame(columns: dict[str, Sequence], *, spans: Iterable[Span] = (),
               skipped: dict[str, int] | None = None) -> pd.DataFrame:
    """The pull frame of ``columns`` (every one of :data:`PULL_COLUMNS`, equal lengths):
    time (datetime64[ns, UTC]), status (Int16; NA for a notification, sent only for a
    request served), the others categorical. ``.attrs["coverage"]``: the
    :class:`Span` of each source; ``.attrs["skipped"]``: malformed lines per source."""
    frame = pd.DataFrame({
        "time": pd.to_datetime(pd.Series(columns["time"], dtype=object), utc=True,
                               format="ISO8601").astype("datetime64[ns, UTC]"),
        **{c: _text(columns[c]) for c in TEXT_COLUMNS},
        "status": pd.Series(columns["status"], dtype="Int16"),
    })[PULL_COLUMNS]
    frame.attrs["coverage"] = list(spans)
    frame.attrs["skipped"] = dict(skipped or {})
    return frame


_STR = pd.Index([], dtype=str).dtype


def _text(values: Sequence | pd.Series) -> pd.Series:
    """A categorical text column whose categories are str whatever the values (none
    at all, all NA): frames then unite with :func:`concat_pulls`."""
    column = pd.Series(values, dtype="category")
    categories = column.cat.categories
    if categories.dtype != _STR:
        column = column.cat.rename_categories(categories.astype(str).astype(_STR))
    return column


def concat_pulls(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Pull frames joined, sorted by time (stable), their categories united and their
    coverage and skipped counts kept."""
    frames = [f for f in frames if f is not None]
    if not frames:
        return empty_pulls()
    joined = {}
    for column in PULL_COLUMNS:
        parts = [f[column] for f in frames]
        if column in TEXT_COLUMNS:
            joined[column] = pd.Series(pd.api.types.union_categoricals(
                [_text(p) for p in parts], ignore_order=True))
        else:
            joined[column] = pd.concat(parts, ignore_index=True)
    frame = pd.DataFrame(joined)[PULL_COLUMNS]
    frame = frame.sort_values("time", kind="stable").reset_index(drop=True)
    frame.attrs["coverage"] = [s for f in frames for s in f.attrs.get("coverage", [])]
    skipped: dict[str, int] = {}
    for f in frames:
        for source, count in f.attrs.get("skipped", {}).items():
            skipped[source] = skipped.get(source, 0) + count
    frame.attrs["skipped"] = skipped
    return frame


def from_frame(frame: pd.DataFrame, *, source: str = "DataFrame") -> pd.DataFrame:
    """A pull frame from a user's DataFrame with the pull columns (another tool's
    records: Harbor's pull_time, ECR's lastRecordedPullTime, a proxy's log). Missing
    optional columns (digest, client, user_agent, user, source, status) become NA;
    time, repository, reference, method and kind are required. Its coverage is its
    ``attrs["coverage"]`` when it has one, else from its first to its last row, cut
    where two rows lie more than a day apart."""
    if not isinstance(frame, pd.DataFrame):
        raise PullRecordsInvalid(f"expected a DataFrame, got {type(frame).__name__}")
    required = ["time", "repository", "reference", "method", "kind"]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise PullRecordsInvalid(f"pull records need the columns {missing}")
    try:
        times = pd.to_datetime(frame["time"], utc=True)
    except (ValueError, TypeError) as exc:
        raise PullRecordsInvalid(f"pull records: column 'time' is not times: {exc}") from None
    if times.isna().any():
        raise PullRecordsInvalid("pull records: column 'time' has missing values")
    method = frame["method"].astype("string").str.upper()
    bad = ~method.isin(METHODS)
    if bad.any():
        raise PullRecordsInvalid(f"pull records: method {method[bad].iloc[0]!r} is not one of "
                                 f"{list(METHODS)}")
    kind = frame["kind"].astype("string")
    if (~kind.isin(KINDS)).any():
        raise PullRecordsInvalid(f"pull records: kind {kind[~kind.isin(KINDS)].iloc[0]!r} is "
                                 f"not one of {list(KINDS)}")
    n = len(frame)
    columns = {c: (frame[c] if c in frame.columns else [None] * n) for c in PULL_COLUMNS}
    columns.update(time=times, method=method, kind=kind)
    if "source" not in frame.columns:
        columns["source"] = [source] * n
    try:
        columns["status"] = pd.to_numeric(pd.Series(columns["status"]), errors="raise")
    except (ValueError, TypeError):
        raise PullRecordsInvalid("pull records: column 'status' is not numbers") from None
    spans = frame.attrs.get("coverage")
    if not spans:
        spans = _spans_of(times, source)
    return pull_frame({c: list(v) if not isinstance(v, list) else v
                       for c, v in columns.items()}, spans=spans,
                      skipped=frame.attrs.get("skipped"))


def as_pulls(pulls: object) -> pd.DataFrame:
    """``pulls`` as a pull frame: one :func:`reginsight.read_pulls` made as it is, any
    other frame through :func:`from_frame` (checked; its coverage: first to last row).
    A frame that lost a column is refused (PullRecordsInvalid), never half read."""
    if isinstance(pulls, pd.DataFrame) and "coverage" in pulls.attrs:
        missing = [c for c in PULL_COLUMNS if c not in pulls.columns]
        if missing:
            raise PullRecordsInvalid(f"pull records need the columns {missing}")
        return pulls
    return from_frame(pulls)


def _spans_of(times: pd.Series, source: str) -> list[Span]:
    """The spans rows at these times cover: first to last, cut where two rows lie more
    than :data:`SOURCE_GAP` apart (records with a hole are not taken to cover it)."""
    ordered = times.sort_values(ignore_index=True)
    if not len(ordered):
        return []
    cuts = ordered.diff().gt(SOURCE_GAP).to_numpy().nonzero()[0].tolist()
    bounds = [0, *cuts, len(ordered)]
    return [Span(source, ordered.iloc[a], ordered.iloc[b - 1])
            for a, b in itertools.pairwise(bounds)]


def covered(spans: Iterable[Span]) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """The time the records cover: the spans merged where they overlap or lie at most
    :data:`SOURCE_GAP` apart (unless the later one does not join), earliest first."""
    merged: list[list[pd.Timestamp]] = []
    for span in sorted(spans, key=lambda s: s.start):
        if merged and (span.start <= merged[-1][1]
                       or (span.joins and span.start - merged[-1][1] <= SOURCE_GAP)):
            merged[-1][1] = max(merged[-1][1], span.end)
        else:
            merged.append([span.start, span.end])
    return [(start, end) for start, end in merged]


def coverage_gap(pulls: pd.DataFrame, start: pd.Timestamp, now: pd.Timestamp) -> str | None:
    """Why the records of ``pulls`` do not cover ``start`` .. ``now`` (so a missing pull
    record means unknown, not unused), or None when they do."""
    parts = covered(pulls.attrs.get("coverage", []))
    if not parts:
        return "there are no pull records"
    for first, last in parts:
        if first <= start and last >= now - RECORD_GAP:
            return None
    since = covered_since(pulls, now)
    if since is None:
        return f"the records end {_ago(now - parts[-1][1])} before now"
    return f"the records cover only since {since:%Y-%m-%d %H:%M} UTC"


def covered_since(pulls: pd.DataFrame, now: pd.Timestamp) -> pd.Timestamp | None:
    """Since when the records cover the time up to ``now`` without a gap (None: they
    end more than :data:`RECORD_GAP` before it): a missing pull after this time means
    not pulled."""
    reaching = [first for first, last in covered(pulls.attrs.get("coverage", []))
                if last >= now - RECORD_GAP]
    return reaching[-1] if reaching else None


def _ago(delta: pd.Timedelta) -> str:
    hours = delta / pd.Timedelta(hours=1)
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.0f} days"
