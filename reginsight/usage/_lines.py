"""One line of a registry's log: a request that used (or pushed) an image, a registry
line that only tells the time, or not a registry line at all. Pure: no I/O.

Distribution (2.x and 3.0) writes two lines per request when its log level is ``info``
and its access log is on, both once the request is done:

- logrus's ``response completed`` (or ``response completed with error``) on standard
  error, in the ``text``, ``json`` or (2.x) ``logstash`` formatter: the time it ended,
  ``http.request.method``, ``.uri``, ``.remoteaddr``, ``.useragent``,
  ``http.response.status``, ``.duration``, ``auth.user.name`` when authenticated;
- gorilla's combined access-log line on standard output: ``client - user [start] "GET
  /v2/... HTTP/1.1" status size "referer" "user agent"``, its time the second the
  request began.

Those lines come bare or wrapped by what collected them: ``kubectl logs`` with
``--timestamps`` and/or ``--prefix``, a container runtime's log file (CRI
``<time> stdout F <line>``, docker's json-file ``{"log": ...}``), ``journalctl`` (``-o
json``, ``short``, ``short-precise``, ``short-iso``, ``short-iso-precise``, ``short-full``,
``cat``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from functools import lru_cache
from typing import NamedTuple

from .._errors import InvalidReference
from ..registry._digest import validate_digest
from ..registry._reference import validate_repository, validate_tag


class Request(NamedTuple):
    """A request for a manifest or a blob: a GET or HEAD (a pull) or a manifest PUT (a
    push). Its first ten fields are the pull frame's columns but ``source``."""

    time: str                 # RFC 3339: logrus's end of the request; the access log's start
    repository: str
    reference: str            # tag or digest, as asked
    digest: str | None        # the digest when the reference is one (always for a blob)
    method: str               # GET, HEAD or PUT
    kind: str                 # manifest or blob
    status: int
    client: str | None        # remote address without its port
    user_agent: str | None
    user: str | None
    start: float              # seconds since the epoch the request began: pairs the two lines
    access_log: bool          # from the combined access log (else logrus's line)


class Stamp(NamedTuple):
    """A registry line with a time and no image request: a start-up message, a health
    check, an upload, a tag list. ``proves``: the line shows the log records served
    requests (an access-log line, a ``response completed`` line, which logrus writes
    at level info only), so the time up to it counts as covered; a start-up message or
    an error does not (a log at level warn shows no successful pull)."""

    time: str
    proves: bool = False
    access_log: bool = False  # from the combined access log


class Piece(NamedTuple):
    """Part of a line a container runtime split (CRI ``P`` pieces, docker's json-file
    entries without their newline): joined per stream until its last piece."""

    stream: str
    text: str
    last: bool


class Skip(Enum):
    """A line that records nothing."""

    BLANK = "not a log line"       # empty, or journalctl's "-- Boot ... --" markers
    MALFORMED = "malformed"        # none of the formats, truncated, or a bad image name


BLANK, MALFORMED = Skip.BLANK, Skip.MALFORMED
Parsed = Request | Stamp | Piece | Skip

_ROW_METHODS = frozenset(("GET", "HEAD", "PUT"))
_MONTHS = {name: number for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3}
_GO_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?")
_SECOND_ZONE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d")
_CLF_TIME = re.compile(r"(\d\d)/([A-Z][a-z]{2})/(\d{4}):(\d\d:\d\d:\d\d) ([+-])(\d\d)(\d\d)")

#: Go's quoted string (logrus's text formatter, gorilla's access log): no bare quote
_QUOTED = r'"([^"\\]*(?:\\.[^"\\]*)*)"'
#: one ``key=value`` of logrus's text formatter, the value quoted when it needs to be; a
#: key starts a line or follows a space (else a long unquoted run is tried at each of
#: its characters: quadratic on a hostile User-Agent split by journald)
_TEXT_FIELD = re.compile(r'(?<!\S)([^\s="]+)=(?:' + _QUOTED + r'|([^\s"]*))')
_COMBINED = re.compile(
    r"(\S+) \S+ (\S+) \[([^\]]{26})\] "           # client, user, start time
    r'"(\S+) (\S+) [^"\s]+" (\d{1,3}) (?:\d+|-) '  # method, URI, status, size
    r'"[^"\\]*(?:\\.[^"\\]*)*" ' + _QUOTED)               # referer, user agent
#: the request fields of logrus's JSON line, from the method on (keys sorted, no escape)
_JSON_REQUEST = re.compile(
    r'"http\.request\.method":"([^"]*)",(?:"http\.request\.remoteaddr":"([^"]*)",)?'
    r'"http\.request\.uri":"([^"]*)",(?:"http\.request\.useragent":"([^"]*)",)?'
    r'(?:"http\.response\.contenttype":"[^"]*",)?(?:"http\.response\.duration":"([^"]*)",)?'
    r'"http\.response\.status":(\d+)[,}]')
#: the same of a text-formatter line (no backslash: a quoted value holds no quote)
_TEXT_VALUE = r'(?:"([^"]*)"|([^\s"]*))'
_TEXT_REQUEST = re.compile(
    r" http\.request\.method=([^\s\"]*)(?: http\.request\.remoteaddr=" + _TEXT_VALUE + ")?"
    r" http\.request\.uri=" + _TEXT_VALUE + r"(?: http\.request\.useragent=" + _TEXT_VALUE + ")?"
    r'(?: http\.response\.contenttype=(?:"[^"]*"|[^\s"]*))?'
    r"(?: http\.response\.duration=" + _TEXT_VALUE + r")? http\.response\.status=(\d+)(?: |$)")
_TEXT_MESSAGE = re.compile(r' level=\w+ msg=' + _TEXT_VALUE)
_TEXT_USER = re.compile(r' auth\.user\.name=' + _TEXT_VALUE)
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)")
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t",
                   "v": "\v"}

#: kubectl --timestamps, a CRI log file, docker logs -t, journalctl -o short-iso
_WRAPPER_TIME = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:?\d\d) ")
#: kubectl logs --prefix: "[pod/<name>/<container>] "
_KUBECTL_PREFIX = re.compile(r"\[[^\]\s]+\] ")
#: after journalctl's time: "<host> <identifier>[<pid>]: "
_JOURNAL_SOURCE = re.compile(r"\S+ [^\s\[\]:]+(?:\[\d+\])?: ")
#: journalctl -o short / short-precise ("Dec 06 10:06:51") and short-full
#: ("Sun 2026-12-06 10:06:51 UTC"), then host and identifier
_JOURNAL_SHORT = re.compile(
    r"(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)?"
    r"|[A-Z][a-z]{2} \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? \S+) "
    r"\S+ [^\s\[\]:]+(?:\[\d+\])?: ")


def parse_line(line: str) -> Parsed:
    """What one line of a log says (its line ending, if any, ignored)."""
    line = line.rstrip("\r\n")
    if not line:
        return BLANK
    first = line[0]
    if first == "{":
        if line.startswith('{"log":'):
            return _docker_entry(line)
        if '"MESSAGE":' in line:
            return _journal_entry(line)
        return _logrus_json(line)
    if first == "t":
        return _logrus_text(line) if line.startswith('time="') else MALFORMED
    if first == "[":
        prefix = _KUBECTL_PREFIX.match(line)
        return _timed(line[prefix.end():]) if prefix else MALFORMED
    if first.isdigit():  # a wrapper's time, or an access line's IPv4 or IPv6 client
        return _timed(line) if line[4:5] == "-" else _combined(line)
    if first == "-":
        # journalctl's "-- Logs begin at ... --", "-- Boot <id> --", "-- No entries --"
        return BLANK if line.startswith("-- ") and line.endswith(" --") else MALFORMED
    if "A" <= first <= "Z":
        journal = _JOURNAL_SHORT.match(line)
        return parse_message(line[journal.end():]) if journal else MALFORMED
    return _combined(line)


def parse_message(text: str) -> Request | Stamp | Skip:
    """What a registry's own line says (no wrapper around it)."""
    if not text:
        return BLANK
    if text[0] == "{":
        return _logrus_json(text)
    if text.startswith('time="'):
        return _logrus_text(text)
    return _combined(text)


def piece_of(line: str) -> Piece | None:
    """The piece a CRI or docker json-file line carries (its last one too), or None for
    another line: what joins a split line back."""
    line = line.rstrip("\r\n")
    stamp = _WRAPPER_TIME.match(line)
    if stamp is not None:
        rest = line[stamp.end():]
        if rest[:7] in ("stdout ", "stderr ") and rest[7:9] in ("F ", "P "):
            return Piece(rest[:6], rest[9:], rest[7] == "F")
        return None
    if line.startswith('{"log":'):
        try:
            entry = json.loads(line)
        except ValueError:
            return None
        text = entry.get("log") if isinstance(entry, dict) else None
        if isinstance(text, str):
            return Piece(str(entry.get("stream")), text.rstrip("\n"), text.endswith("\n"))
    return None


def _timed(line: str) -> Parsed:
    """A line that may start with a wrapper's time: kubectl --timestamps, CRI, journalctl
    -o short-iso; else a combined access-log line (its client an IPv4 or IPv6 address)."""
    stamp = _WRAPPER_TIME.match(line)
    if stamp is None:
        return parse_message(line)
    rest = line[stamp.end():]
    if rest[:7] in ("stdout ", "stderr ") and rest[7:9] in ("F ", "P "):
        if rest[7] == "P":
            return Piece(rest[:6], rest[9:], False)
        return parse_message(rest[9:])
    parsed = parse_message(rest)
    if parsed is MALFORMED:
        journal = _JOURNAL_SOURCE.match(rest)
        if journal is not None:
            return parse_message(rest[journal.end():])
    return parsed


def _docker_entry(line: str) -> Parsed:
    """docker's json-file driver: ``{"log": "<line>\\n", "stream": ..., "time": ...}``."""
    try:
        entry = json.loads(line)
    except ValueError:
        return MALFORMED
    text = entry.get("log") if isinstance(entry, dict) else None
    if not isinstance(text, str):
        return MALFORMED
    if not text.endswith("\n"):
        return Piece(str(entry.get("stream")), text, False)
    return parse_message(text.rstrip("\r\n"))


def _journal_entry(line: str) -> Parsed:
    """journalctl -o json: the line is MESSAGE, text or (when not clean UTF-8) a list of
    byte values."""
    try:
        entry = json.loads(line)
        message = entry["MESSAGE"]
        if isinstance(message, list):
            message = bytes(message).decode("utf-8", "replace")
    except (ValueError, TypeError, KeyError):
        return MALFORMED
    if not isinstance(message, str):  # journalctl writes null for a field over 4096 bytes
        return MALFORMED
    return parse_message(message.rstrip("\r\n"))


def _logrus_json(text: str) -> Request | Stamp | Skip:
    """logrus's JSON (and 2.x's logstash) formatter: one flat object, keys sorted."""
    if text[-1] != "}":
        return MALFORMED  # cut short: a line truncated by a crash or a full disk
    at = text.find('"http.request.method":"')
    if at >= 0 and "\\" not in text:
        fields = _json_fields(text, at)
        if fields is not None:
            return fields
    try:
        fields = json.loads(text)
    except ValueError:
        return MALFORMED
    if not isinstance(fields, dict):
        return MALFORMED
    time = fields.get("time") or fields.get("@timestamp")
    if not isinstance(time, str):
        return MALFORMED
    message = fields.get("msg") or fields.get("message")
    method, uri = fields.get("http.request.method"), fields.get("http.request.uri")
    status = fields.get("http.response.status")
    if not (isinstance(message, str) and message.startswith("response completed")
            and isinstance(method, str) and isinstance(uri, str) and type(status) is int):
        return _stamp(time)
    return _request(time, method, uri, str(status),
                    _text_or_none(fields, "http.request.remoteaddr"),
                    _text_or_none(fields, "http.request.useragent"),
                    _text_or_none(fields, "auth.user.name"),
                    _text_or_none(fields, "http.response.duration"))


def _json_fields(text: str, at: int) -> Request | Stamp | Skip | None:
    """The record of a JSON line without a backslash, ``at`` its method key; None when
    its fields are not laid out as logrus lays them out (sorted keys).

    Without escapes a value ends at the next quote, and '"key":' cannot occur inside a
    value (its quotes would be escaped): reading the fields in place is twice as fast as
    json.loads of the line."""
    fields = _JSON_REQUEST.match(text, at)
    if fields is None:
        return None
    method, remote, uri, agent, duration, status = fields.groups()
    end = fields.end()
    message, end = _json_after(text, '"msg":"', end)
    if message is None:  # logstash: "message", its time "@timestamp", the first key
        message, _ = _json_after(text, '"message":"', end)
        time, _ = _json_after(text, '"@timestamp":"', 0)
    else:
        time, _ = _json_after(text, '"time":"', end)
    if time is None or message is None:
        return None
    if not message.startswith("response completed"):
        return _stamp(time)
    user, _ = _json_after(text[:at], '"auth.user.name":"', 0)  # sorted before the method
    return _request(time, method, uri, status, remote, agent, user, duration)


def _json_after(text: str, key: str, start: int) -> tuple[str | None, int]:
    """(the value of ``key`` at or after ``start``, where it ends), or (None, start)."""
    at = text.find(key, start)
    if at < 0:
        return None, start
    at += len(key)
    end = text.find('"', at)
    return text[at:end], end


def _text_or_none(fields: dict, key: str) -> str | None:
    value = fields.get(key)
    return value if isinstance(value, str) else None


def _logrus_text(text: str) -> Request | Stamp | Skip:
    """logrus's text formatter: ``time="..." level=info msg="..." key=value ...`` (keys
    after msg sorted), a value quoted as Go quotes when it holds a space, a quote or a
    character outside ``[A-Za-z0-9-._/@^+]``."""
    end = text.find('"', 6)
    if end < 0:
        return MALFORMED
    time = text[6:end]
    at = text.find(" http.request.method=")
    if at < 0 or ("/manifests/" not in text and "/blobs/" not in text):
        return _stamp(time)
    # msg follows time and level; without a backslash a quoted value holds no quote, so
    # the method key is a key when an even number of quotes comes before it
    fields = None
    if "\\" not in text and text.count('"', end + 1, at) % 2 == 0:
        fields = _TEXT_REQUEST.match(text, at)
    message = _TEXT_MESSAGE.match(text, end + 1)
    if fields is not None and message is not None:
        method, remote, remote_bare, uri, uri_bare, agent, agent_bare, duration, \
            duration_bare, status = fields.groups()
        remote, uri = remote or remote_bare, uri or uri_bare
        agent, duration = agent or agent_bare, duration or duration_bare
        user = None
        found = _TEXT_USER.search(text, message.end(), at)  # sorted before the http fields
        if found and text.count('"', message.end(), found.start()) % 2 == 0:
            user = found[1] or found[2]  # (an odd count: inside another field's value)
        message = message[1] or message[2]
    else:
        values = {key: (_unquote(quoted) if quoted else bare)
                  for key, quoted, bare in _TEXT_FIELD.findall(text)}
        message, method = values.get("msg"), values.get("http.request.method")
        remote, uri = values.get("http.request.remoteaddr"), values.get("http.request.uri")
        agent = values.get("http.request.useragent")
        duration = values.get("http.response.duration")
        status, user = values.get("http.response.status"), values.get("auth.user.name")
    if not (message and message.startswith("response completed") and method and uri
            and status):
        return _stamp(time)
    return _request(time, method, uri, status, remote, agent, user, duration)


def _combined(text: str) -> Request | Stamp | Skip:
    """gorilla's combined access-log line."""
    fields = _combined_split(text) if "\\" not in text else None
    if fields is None:
        match = _COMBINED.fullmatch(text)
        if match is None:
            return MALFORMED
        fields = match.groups()
    client, user, when, method, uri, status, agent = fields
    moment = _access_log_time(when)
    if moment is None:
        return MALFORMED
    time, start = moment
    target = _target(method, uri)
    if target is None:
        return Stamp(time, True, True)
    if target is MALFORMED:
        return MALFORMED
    kind, repository, reference, digest = target
    return Request(time, repository, reference, digest, method, kind, int(status), client,
                   _unquote(agent) if agent else None, None if user == "-" else user,
                   start, True)


def _combined_split(text: str) -> tuple[str, ...] | None:
    """The fields of a combined line without a backslash (so no quote inside its quoted
    fields) cut at its spaces and quotes, faster than the regular expression; None when
    it is not laid out so (then the expression decides)."""
    parts = text.split(" ", 9)
    if len(parts) != 10:
        return None
    client, _, user, day, zone, method, uri, protocol, status, rest = parts
    quoted = rest.split('"')  # size "referer" "agent"
    if not (day[:1] == "[" and zone[-1:] == "]" and method[:1] == '"'
            and protocol[-1:] == '"' and status.isdigit() and len(status) <= 3
            and len(quoted) == 5 and quoted[2] == " " and not quoted[4]
            and (quoted[0][:-1].isdigit() or quoted[0] == "- ")):
        return None
    return client, user, f"{day[1:]} {zone[:-1]}", method[1:], uri, status, quoted[3]


def _request(time: str, method: str, uri: str, status: str, remote: str | None,
             agent: str | None, user: str | None, duration: str | None
             ) -> Request | Stamp | Skip:
    """The record of a logrus ``response completed`` line's fields."""
    end = iso_seconds(time)
    if end is None:
        return MALFORMED
    target = _target(method, uri)
    if target is None:
        return Stamp(time, status.isdigit() and int(status) < 400)
    if target is MALFORMED or not status.isdigit() or len(status) > 3:
        return MALFORMED
    kind, repository, reference, digest = target
    took = _duration_seconds(duration) if duration else None
    return Request(time, repository, reference, digest, method, kind, int(status),
                   _host(remote), agent or None, user or None,
                   end - took if took is not None else end, False)


def _target(method: str, uri: str) -> tuple[str, str, str, str | None] | Skip | None:
    """(kind, repository, reference, digest) of a request that becomes a row, None for
    any other request, MALFORMED for an image request naming an invalid image."""
    if method not in _ROW_METHODS:
        return None
    target = _route(uri)
    if method == "PUT" and target is not None and target is not MALFORMED \
            and target[0] == "blob":
        return None
    return target


@lru_cache(maxsize=1 << 14)
def _route(uri: str) -> tuple[str, str, str, str | None] | Skip | None:
    # remembered: the same images are asked for by every node
    if not uri.startswith("/v2/"):
        return None
    path = uri.partition("?")[0]
    # a reference never holds "/": the last two parts are the route, the rest the name
    head, _, reference = path.rpartition("/")
    head, _, route = head.rpartition("/")
    if route not in ("manifests", "blobs"):
        return None
    kind = "manifest" if route == "manifests" else "blob"
    repository = head[4:]
    if not _valid(validate_repository, repository):
        return MALFORMED
    if ":" in reference:
        digest = _valid(validate_digest, reference)
        return (kind, repository, reference, digest) if digest else MALFORMED
    if kind == "blob" or not _valid(validate_tag, reference):
        return MALFORMED
    return kind, repository, reference, None


def _valid(validate: Callable[[str], str], text: str) -> str | None:
    try:
        return validate(text)
    except InvalidReference:
        return None


def _host(address: str | None) -> str | None:
    """The IP of a remote address, without its port: "10.0.0.1:5000", "[::1]:5000", or an
    X-Forwarded-For address the registry took as is ("10.0.0.1", "2001:db8::1")."""
    if not address:
        return None
    if address[0] == "[":
        end = address.find("]")
        return address[1:end] if end > 0 else address
    if address.count(":") == 1:
        return address.partition(":")[0]
    return address


def _stamp(time: str) -> Stamp | Skip:
    return Stamp(time) if iso_seconds(time) is not None else MALFORMED


def iso_seconds(text: str) -> float | None:
    """Seconds since the epoch of an RFC 3339 time as Go writes it
    (``2026-12-06T10:06:51.178535816Z``, ``...+02:00``), None when it is not one."""
    if text[-1:] == "Z":
        whole = _epoch_second(text[:19] + "+00:00")
        fraction = text[19:-1]
    else:
        whole = _epoch_second(text[:19] + text[-6:])
        fraction = text[19:-6]
    if whole is None:
        return None
    if not fraction:
        return float(whole)
    digits = fraction[1:]
    if fraction[0] != "." or not 0 < len(digits) <= 9 or not digits.isdigit() \
            or not digits.isascii():
        return None
    return whole + int(digits) / 10 ** len(digits)


@lru_cache(maxsize=1 << 12)
def _epoch_second(text: str) -> int | None:
    # one call per distinct second: a busy log repeats each many times
    if not _SECOND_ZONE.fullmatch(text):
        return None
    try:
        return int(datetime.fromisoformat(text).timestamp())
    except ValueError:
        return None


@lru_cache(maxsize=1 << 12)
def _access_log_time(text: str) -> tuple[str, int] | None:
    """("06/Dec/2026:10:06:47 +0000") -> (its RFC 3339 text, seconds since the epoch)."""
    match = _CLF_TIME.fullmatch(text)
    month = _MONTHS.get(match[2]) if match else None
    if month is None:
        return None
    day, _, year, clock, sign, hours, minutes = match.groups()
    time = f"{year}-{month:02d}-{day}T{clock}{sign}{hours}:{minutes}"
    seconds = _epoch_second(time)
    return None if seconds is None else (time, seconds)


def _duration_seconds(text: str) -> float | None:
    """Go's time.Duration text ("852.223µs", "1.02ms", "1m2.5s") in seconds."""
    scale = _DURATION_UNITS.get(text[-2:])
    if scale is not None:
        try:
            return float(text[:-2]) * scale
        except ValueError:
            return None
    match = _GO_DURATION.fullmatch(text)
    if match is None or not text:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)


def _unquote(text: str) -> str:
    """The text inside a Go-quoted string. A byte of invalid UTF-8 (``\\xb5``) becomes
    U+FFFD, as the JSON formatter writes it, so both lines of a request agree."""
    return _ESCAPE.sub(_unescape, text) if "\\" in text else text


def _unescape(match: re.Match) -> str:
    escape = match[1]
    if len(escape) == 1:
        return _SIMPLE_ESCAPES.get(escape, escape)
    code = int(escape[1:], 16)
    if (escape[0] == "x" and code >= 0x80) or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return "\ufffd"
    return chr(code)
