"""A registry's notification envelope, checked and flattened into event records; event
records into pull-frame columns. Pure: no I/O.

Distribution posts ``{"events": [...]}`` (media type
``application/vnd.docker.distribution.events.v1+json`` from 2.x, ``...v2+json`` from
3.0), each event::

    {"id", "timestamp", "action": "pull"|"push"|"delete"|"mount",
     "target": {"mediaType", "size", "digest", "length", "repository", "url", "tag",
                "fromRepository"},
     "request": {"id", "addr", "host", "method", "useragent"},
     "actor": {"name"}, "source": {"addr", "instanceID"}}

Every event is kept flattened (pulls, pushes, deletes and mounts alike); only pulls and
manifest pushes become pull-frame rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from .._errors import PullRecordsInvalid

#: the media types a registry sends its envelope as (2.x, 3.0) and the generic one
ENVELOPE_TYPES = ("application/vnd.docker.distribution.events.v1+json",
                  "application/vnd.docker.distribution.events.v2+json",
                  "application/json")
#: the flattened fields of one event, in this order (``time`` is the event's timestamp,
#: RFC 3339 text until read; ``received`` the listener's clock when it stored the batch)
EVENT_COLUMNS = ["id", "time", "action", "repository", "tag", "digest", "media_type", "size",
                 "kind", "method", "request_id", "client", "host", "user_agent", "user",
                 "from_repository", "source_addr", "source_instance", "received"]
#: columns holding whole numbers (the others text)
INTEGER_COLUMNS = ("size",)
#: an event field longer than this is not a registry's: the envelope is refused
FIELD_LIMIT = 4096
#: Go's RFC 3339 (nanoseconds optional): what Distribution writes as an event's timestamp
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)\Z")
#: the path of a request's URL: /v2/<name>/manifests/<ref> or /v2/<name>/blobs/<digest>
_KIND = re.compile(r"/v2/.+/(manifests|blobs)/[^/]+\Z")


def media_type_accepted(content_type: str | None) -> bool:
    """Whether a Content-Type header names an events envelope (parameters such as
    ``charset`` ignored, case-insensitive)."""
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() in ENVELOPE_TYPES


def parse_envelope(body: bytes, *, received: str) -> list[dict]:
    """The event records of one envelope body, each a dict of :data:`EVENT_COLUMNS`
    (absent fields None; ``received``: the listener's time, RFC 3339). Raises
    :class:`~reginsight.PullRecordsInvalid` (answered 400) for a body that is not JSON,
    not ``{"events": [...]}``, or holds an event without a text ``id``, an RFC 3339
    ``timestamp``, an ``action`` or a ``target`` object; a field of the wrong type or
    over :data:`FIELD_LIMIT` characters. The batch is refused whole: a registry never
    sends such a thing."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise PullRecordsInvalid("the body is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("events"), list):
        raise PullRecordsInvalid('the body is not an events envelope {"events": [...]}')
    return [_record(event, index, received) for index, event in
            enumerate(document["events"])]


def _record(event: object, index: int, received: str) -> dict:
    where = f"event {index}"
    if not isinstance(event, dict):
        raise PullRecordsInvalid(f"{where} is not an object")
    target = _object(event, "target", where, required=True)
    request = _object(event, "request", where)
    actor = _object(event, "actor", where)
    source = _object(event, "source", where)
    timestamp = _text(event, "timestamp", where, required=True)
    if not is_timestamp(timestamp):
        raise PullRecordsInvalid(f"{where}: timestamp is not RFC 3339")
    url = _text(target, "url", where)
    kind = _KIND.search(_path(url)) if url else None
    addr = _text(request, "addr", where)
    return {
        "id": _text(event, "id", where, required=True),
        "time": timestamp,
        "action": _text(event, "action", where, required=True),
        "repository": _text(target, "repository", where),
        "tag": _text(target, "tag", where),
        "digest": _text(target, "digest", where),
        "media_type": _text(target, "mediaType", where),
        "size": _integer(target, "size", where),
        "kind": {"manifests": "manifest", "blobs": "blob"}[kind.group(1)] if kind else None,
        "method": _text(request, "method", where),
        "request_id": _text(request, "id", where),
        "client": client_host(addr) if addr else None,
        "host": _text(request, "host", where),
        "user_agent": _text(request, "useragent", where),
        "user": _text(actor, "name", where),
        "from_repository": _text(target, "fromRepository", where),
        "source_addr": _text(source, "addr", where),
        "source_instance": _text(source, "instanceID", where),
        "received": received,
    }


def is_timestamp(value: object) -> bool:
    """Whether ``value`` is RFC 3339 text as Distribution writes an event's time."""
    return isinstance(value, str) and _RFC3339.match(value) is not None


def client_host(addr: str) -> str:
    """The host of a ``host:port`` remote address (``[::1]:5000`` -> ``::1``); the
    address as it is when it has no port."""
    if addr.startswith("["):
        return addr[1:addr.index("]")] if "]" in addr else addr
    host, colon, port = addr.rpartition(":")
    return host if colon and port.isdigit() and ":" not in host else addr


def _path(url: str) -> str:
    # the URL's path, without scheme, host and query
    rest = url.split("://", 1)[-1]
    slash = rest.find("/")
    return rest[slash:].split("?", 1)[0] if slash >= 0 else ""


def _object(parent: dict, field: str, where: str, *, required: bool = False) -> dict:
    value = parent.get(field)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise PullRecordsInvalid(f"{where}: {field} is not an object")
    return value


def _text(parent: dict, field: str, where: str, *, required: bool = False) -> str | None:
    value = parent.get(field)
    if value is None or value == "":
        if required:
            raise PullRecordsInvalid(f"{where}: {field} is missing")
        return None
    if not isinstance(value, str):
        raise PullRecordsInvalid(f"{where}: {field} is not text")
    if len(value) > FIELD_LIMIT:
        raise PullRecordsInvalid(f"{where}: {field} is longer than {FIELD_LIMIT} characters")
    return value


def _integer(parent: dict, field: str, where: str) -> int | None:
    value = parent.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2 ** 63:
        raise PullRecordsInvalid(f"{where}: {field} is not a size")
    return value


def is_pull_row(action: str | None, kind: str | None, method: str | None) -> bool:
    """Whether an event becomes a pull-frame row: a pull (GET or HEAD of a manifest or
    blob) or the push of a manifest (a PUT row)."""
    if action == "pull":
        return method in ("GET", "HEAD") and kind in ("manifest", "blob")
    return action == "push" and kind == "manifest"


def pull_columns(events: dict[str, Sequence], *, source: str) -> dict[str, list]:
    """The pull-frame columns (as :func:`._frame.pull_frame` takes them) of event
    columns ``events`` (:data:`EVENT_COLUMNS`, equal lengths, already filtered by
    :func:`is_pull_row` and deduplicated): reference is the tag when the request named
    one, else the digest; method PUT for a push; status NA (a registry notifies only of
    requests it served); source ``source`` (the store's folder)."""
    n = len(events["id"])
    tags, digests = events["tag"], events["digest"]
    return {
        "time": list(events["time"]),
        "repository": list(events["repository"]),
        "reference": [tags[i] if _present(tags[i]) else digests[i] for i in range(n)],
        "digest": list(digests),
        "method": ["PUT" if a == "push" else m for a, m in zip(events["action"],
                                                                events["method"], strict=True)],
        "kind": list(events["kind"]),
        "status": [None] * n,
        "client": list(events["client"]),
        "user_agent": list(events["user_agent"]),
        "user": list(events["user"]),
        "source": [source] * n,
    }


def _present(value: object) -> bool:
    return isinstance(value, str) and value != ""
