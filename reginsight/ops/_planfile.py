"""Cleanup plans as files: written by ``reginsight cleanup -o``, the report and the
explorer, read back by ``reginsight cleanup --plan`` to be applied later.

A plan file holds :func:`reginsight.plan_cleanup`'s columns (repository, tag,
digest, created, action, reason), one row per line, with full digests and ISO 8601
UTC times: CSV (an empty tag is NA), or JSON (a list of objects, null for NA).
Reading one is strict because its rows become DELETE requests: every row is
checked, the first bad one is named (its line in a CSV, its number in JSON), and
nothing is returned unless the whole file is a plan.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from .._errors import InvalidReference, PlanError
from .._text import printable
from ..registry._digest import validate_digest
from ..registry._reference import validate_repository, validate_tag
from ._plan import PLAN_COLUMNS

#: the largest plan file read (a plan row is ~200 bytes: a million rows fit)
MAX_PLAN_BYTES = 512 * 1024 * 1024
SUFFIXES = (".csv", ".json")
ACTIONS = ("delete", "keep")
_STRING_COLUMNS = ["repository", "tag", "digest", "action", "reason"]
# a 12-hex digest as the report and `ls` show it, or one cut anywhere short of full
_SHORT_DIGEST = re.compile(r"(?:sha256:)?[0-9a-f]{4,63}")
_HEADER = ",".join(PLAN_COLUMNS)


def _show(text: str) -> str:
    return repr(printable(text, limit=80))


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise PlanError(f"a plan file is .csv or .json, not {_show(path.name)}")
    return suffix


def plan_csv(plan: pd.DataFrame) -> str:
    """The plan as CSV text: its six columns, full digests, ``created`` in ISO 8601
    UTC (``2024-05-01T12:00:00Z``), an empty field for NA. Raises PlanError when the
    plan is not one :func:`load_plan` would read back."""
    return _csv_text(_checked(plan))


def save_plan(plan: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write the plan to ``path`` (``.csv`` or ``.json``, by its suffix) and return it.

    The file is written beside the target and renamed over it, so a reader never
    sees half a plan. An existing file is replaced only when it is a plan file
    itself (it starts as one): anything else raises PlanError and is left alone, and
    so does a symbolic link (replacing it would delete the link, writing through it
    write outside the folder named), and a folder that does not exist.
    """
    target = Path(path)
    suffix = _suffix(target)
    if target.is_symlink():
        raise PlanError(f"{_show(str(target))} is a symbolic link: not replaced (give the "
                        "file it points at, or another name)")
    if not target.parent.is_dir():
        raise PlanError(f"{_show(str(target))}: no such folder {_show(str(target.parent))}")
    rows = _checked(plan)
    text = _csv_text(rows) if suffix == ".csv" else _json_text(rows)
    if target.exists() and not _looks_like_plan(target, suffix):
        raise PlanError(f"{_show(str(target))} exists and is not a plan file: not replaced")
    mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed, not closed, on success
        "w", encoding="utf-8", newline="", dir=target.parent or ".",
        prefix=f".{target.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            handle.write(text)
        os.chmod(handle.name, mode)
        os.replace(handle.name, target)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return target


def load_plan(path: str | os.PathLike[str], *, max_bytes: int = MAX_PLAN_BYTES
              ) -> pd.DataFrame:
    """Read a plan file written by :func:`save_plan`, ``reginsight cleanup -o``, the
    report or the explorer, checking every row.

    Raises PlanError, naming the file and the first bad row (its line in a CSV),
    when the file is larger than ``max_bytes``, not UTF-8, not CSV/JSON, lacks a
    column, or a row has an action other than delete/keep, an invalid repository
    name or tag, a digest that is not full (``sha256:`` and 64 hex characters: a
    shortened one names no manifest for certain), an unreadable time, a tag listed
    twice, or a digest both deleted and kept. Columns other than the plan's are
    ignored.

    Columns: repository, tag, digest (string), created (datetime64[ns, UTC]),
    action, reason (string): as :func:`reginsight.plan_cleanup` returns them.
    """
    source = Path(path)
    suffix = _suffix(source)
    try:
        with source.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise PlanError(f"plan {_show(str(source))} cannot be read: {exc.strerror or exc}"
                        ) from None
    if len(data) > max_bytes:
        raise PlanError(f"plan {_show(str(source))} is larger than {max_bytes} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PlanError(f"plan {_show(str(source))} is not UTF-8 text") from None
    try:
        rows, where = _csv_rows(text) if suffix == ".csv" else _json_rows(text)
        return _frame(rows, where)
    except PlanError as exc:
        raise PlanError(f"plan {_show(str(source))}: {exc}") from None


def _checked(plan: pd.DataFrame) -> pd.DataFrame:
    """The plan's six columns as strings (NA: None; ``created`` in ISO UTC), every row
    checked as load_plan checks it."""
    missing = [c for c in PLAN_COLUMNS if c not in getattr(plan, "columns", ())]
    if missing:
        raise PlanError(f"a plan needs the columns of plan_cleanup; missing {missing}")
    texts = {c: [None if pd.isna(v) else str(v) for v in plan[c]] for c in _STRING_COLUMNS}
    texts["created"] = [None if pd.isna(t) else _iso(t)
                        for t in pd.to_datetime(plan["created"], utc=True)]
    rows = pd.DataFrame({c: texts[c] for c in PLAN_COLUMNS}, dtype=object)
    _frame(rows, [f"row {n}" for n in range(len(rows))])  # raises on what it would refuse
    return rows


def _iso(when: pd.Timestamp) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _csv_text(rows: pd.DataFrame) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(PLAN_COLUMNS)
    writer.writerows(("" if v is None else v for v in row)
                     for row in rows.itertuples(index=False, name=None))
    return out.getvalue()


def _json_text(rows: pd.DataFrame) -> str:
    """A JSON list with one row object per line (a diff or grep reads it as rows)."""
    lines = [json.dumps(dict(zip(PLAN_COLUMNS, row, strict=True)))
             for row in rows.itertuples(index=False, name=None)]
    return "[\n" + ",\n".join(lines) + ("\n]\n" if lines else "]\n")


def _looks_like_plan(path: Path, suffix: str) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(4096).decode("utf-8-sig", errors="replace")
    except OSError:
        return False
    if suffix == ".csv":
        return head.splitlines()[0].strip() == _HEADER if head.strip() else True
    body = head.lstrip()
    return not body or bool(re.match(r'\[\s*(\]|\{\s*"repository"\s*:)', body))


def _csv_rows(text: str) -> tuple[pd.DataFrame, list[str]]:
    """The CSV's rows (all fields strings, "" -> None) and the line each starts on."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise PlanError("the file is empty; a plan starts with the header " + _HEADER)
        columns = _columns(header)
        records, where, line = [], [], reader.line_num + 1
        for record in reader:
            if record:
                if len(record) != len(header):
                    raise PlanError(f"line {line}: {len(record)} fields, the header has "
                                    f"{len(header)}")
                records.append([record[i] or None for i in columns])
                where.append(f"line {line}")
            line = reader.line_num + 1
    except csv.Error as exc:
        raise PlanError(f"line {reader.line_num}: not CSV ({exc})") from None
    return pd.DataFrame(records, columns=PLAN_COLUMNS, dtype=object), where


def _columns(header: list[str]) -> list[int]:
    """Where each plan column is in the header."""
    names = [name.strip() for name in header]
    if len(set(names)) != len(names):
        raise PlanError("the header names a column twice")
    missing = [c for c in PLAN_COLUMNS if c not in names]
    if missing:
        raise PlanError(f"missing the plan columns {missing} (a plan's header is {_HEADER}; "
                        f"this one is {_show(','.join(names))})")
    return [names.index(c) for c in PLAN_COLUMNS]


def _json_rows(text: str) -> tuple[pd.DataFrame, list[str]]:
    try:
        data = json.loads(text, object_pairs_hook=_object)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise PlanError(f"not JSON ({getattr(exc, 'msg', 'nested too deep')})") from None
    if not isinstance(data, list):
        raise PlanError("a JSON plan is a list of row objects")
    records = []
    for number, item in enumerate(data, 1):
        if not isinstance(item, dict):
            raise PlanError(f"row {number} is not an object")
        missing = [c for c in PLAN_COLUMNS if c not in item]
        if missing:
            raise PlanError(f"row {number} misses the plan columns {missing}")
        values = [item[c] for c in PLAN_COLUMNS]
        if any(v is not None and not isinstance(v, str) for v in values):
            raise PlanError(f"row {number}: every value is a string or null")
        records.append([v or None for v in values])
    return (pd.DataFrame(records, columns=PLAN_COLUMNS, dtype=object),
            [f"row {n}" for n in range(1, len(records) + 1)])


def _object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object; one naming a field twice is refused (readers differ on which
    value counts, and a row's action decides a DELETE)."""
    found = dict(pairs)
    if len(found) != len(pairs):
        names = [key for key, _ in pairs]
        twice = next(key for key in names if names.count(key) > 1)
        raise PlanError(f"an object names {_show(twice)} twice: which value is meant is "
                        "not known")
    return found


def _frame(rows: pd.DataFrame, where: list[str]) -> pd.DataFrame:
    """The checked rows (strings and None) as plan_cleanup's frame; PlanError at the
    first bad row, ``where`` naming each."""
    def fail(row: int, problem: str) -> PlanError:
        return PlanError(f"{where[row]}: {problem}")

    for column in ("repository", "digest", "action"):
        absent = rows[column].isna().to_numpy()
        if absent.any():
            raise fail(int(absent.argmax()), f"{column} is empty")
    bad = ~rows["action"].isin(ACTIONS).to_numpy()
    if bad.any():
        row = int(bad.argmax())
        raise fail(row, f"action {_show(str(rows.at[row, 'action']))} is neither delete nor keep")
    _each_unique(rows["repository"], validate_repository, fail)
    _each_unique(rows["tag"].dropna(), validate_tag, fail)
    _each_unique(rows["digest"], _full_digest, fail)
    created = pd.to_datetime(rows["created"], utc=True, format="ISO8601", errors="coerce")
    unread = (created.isna() & rows["created"].notna()).to_numpy()
    if unread.any():
        row = int(unread.argmax())
        raise fail(row, f"created {_show(str(rows.at[row, 'created']))} is not an ISO 8601 "
                        "time")
    tagged = rows[rows["tag"].notna()]
    twice = tagged.duplicated(["repository", "tag"]).to_numpy()
    if twice.any():
        row = int(tagged.index[twice.argmax()])
        raise fail(row, f"tag {rows.at[row, 'repository']}:{rows.at[row, 'tag']} is listed "
                        "twice")
    _no_digest_both(rows, fail)
    frame = rows.astype({c: "string" for c in _STRING_COLUMNS})
    frame["created"] = created.astype("datetime64[ns, UTC]")
    return frame[PLAN_COLUMNS].reset_index(drop=True)


def _each_unique(values: pd.Series, validate: Callable[[str], object], fail) -> None:
    """Check each distinct value once; the first row of a bad one is named."""
    for value in values.drop_duplicates():
        try:
            validate(value)
        except InvalidReference as exc:
            row = int(values.index[(values == value).to_numpy()][0])
            raise fail(row, str(exc)) from None


def _full_digest(digest: str) -> None:
    if _SHORT_DIGEST.fullmatch(digest):
        raise InvalidReference(
            f"digest {_show(digest)} is shortened; the plan needs full digests (sha256: and "
            "64 hex characters) to name each manifest for certain: write it with "
            "`reginsight cleanup -o`, the report's plan download or the explorer")
    if ":" not in digest:
        raise InvalidReference(f"invalid digest {_show(digest)}: not algorithm:hex")
    validate_digest(digest)


def _no_digest_both(rows: pd.DataFrame, fail) -> None:
    """Deleting a manifest deletes every tag on it: a digest cannot be both."""
    actions = rows.groupby(["repository", "digest"], sort=False)["action"].nunique()
    both = actions[actions > 1]
    if len(both):
        repository, digest = both.index[0]
        row = int(rows.index[(rows["repository"] == repository) & (rows["digest"] == digest)
                             & (rows["action"] == "delete")][0])
        raise fail(row, f"digest {digest} of {repository} is deleted here and kept on "
                        "another row; deleting a manifest deletes every tag on it")
