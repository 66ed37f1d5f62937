"""The HTTP endpoint a registry's ``notifications:`` config posts its events to.

Each POST of an events envelope is checked (path, caller, shared secret, size, media
type, content) and answered 204 only once its events are on disk (see
:class:`._store.EventStore`): Distribution retries a batch until it is acknowledged,
so a crash or a refusal loses nothing. Memory is bounded: a body cap (413 beyond), a
cap on connections open at once and on bodies being read and stored at once, nothing
kept across requests. Waits are bounded: every read has a timeout and a whole request
a deadline. The secret never appears in a message, a log line or a repr.
"""

from __future__ import annotations

import contextlib
import hmac
import io
import ipaddress
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .._errors import PullRecordsInvalid
from ._events import media_type_accepted, parse_envelope
from ._store import EventStore, now_text

#: defaults: a registry posts one event (about 1 KiB) a request
MAX_BODY = 4 * 2 ** 20
MAX_CONNECTIONS = 32
#: connections one address may hold at once: a registry instance posts one at a time,
#: and one slow caller cannot take every slot
PER_CLIENT = 8
PARALLEL = 4
READ_TIMEOUT = 10.0
REQUEST_DEADLINE = 30.0
HEARTBEAT = 30.0
#: a refused body up to this size is read (and looked at) before the answer
_DISCARD = 65536
#: how often the serving loop looks for a stop request or compaction work
_POLL = 0.25


class Secret:
    """The shared secret a registry sends as ``Authorization: Bearer SECRET``; compared in
    constant time, shown as ``Secret(***)``."""

    __slots__ = ("_expected",)

    def __init__(self, secret: str) -> None:
        if not secret or any(c.isspace() or not c.isprintable() or ord(c) > 126
                             for c in secret):
            raise PullRecordsInvalid("the listener's secret must be printable ASCII without "
                                     "spaces")
        self._expected = f"Bearer {secret}".encode("ascii")

    def matches(self, header: str | None) -> bool:
        """Whether an Authorization header value carries the secret."""
        if header is None:
            return False
        return hmac.compare_digest(header.encode("latin-1", "replace"), self._expected)

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("a Secret is not pickled")


@dataclass(frozen=True)
class ListenerOptions:
    """How the listener serves. ``secret`` None accepts any caller (allowed on a
    loopback address only); ``allow``: the networks callers may come from (empty:
    any); ``path``: where the registry posts."""

    host: str
    port: int
    secret: Secret | None = field(default=None, repr=False)
    path: str = "/events"
    allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    max_body: int = MAX_BODY
    max_connections: int = MAX_CONNECTIONS
    per_client: int = PER_CLIENT
    parallel: int = PARALLEL
    read_timeout: float = READ_TIMEOUT
    request_deadline: float = REQUEST_DEADLINE
    heartbeat: float = HEARTBEAT

    def __post_init__(self) -> None:
        if self.secret is None and not is_loopback(self.host):
            raise PullRecordsInvalid(
                f"no secret: a listener on {self.host!r} would store what anyone posts. "
                "Give one (REGINSIGHT_LISTEN_SECRET or --secret-file; the registry sends it "
                "as headers: {Authorization: [Bearer SECRET]}), or listen on a loopback "
                "address (127.0.0.1, ::1)")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address, or ``localhost``) is the loopback interface only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Listener:
    """The endpoint serving ``options`` and storing into ``store``. :meth:`serve` runs
    until :meth:`stop` (or a signal, with :meth:`serve_until_signalled`), then stops
    accepting, lets the requests under way finish, compacts and closes the store.
    ``log``: where it says what it refused and when it stops (one line each)."""

    def __init__(self, store: EventStore, options: ListenerOptions, *,
                 log: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.options = options
        self._log = log or _stderr
        self._stopping = False
        self._wake = threading.Event()
        self._refusals: dict[str, int] = {}
        self._refusal_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(options.parallel)
        family = socket.AF_INET6 if ":" in options.host else socket.AF_INET
        server_class = type("_Server", (_Server,), {"address_family": family})
        self._server = server_class((options.host.strip("[]"), options.port), _Handler,
                                    listener=self)

    @property
    def address(self) -> tuple[str, int]:
        """The host and port it listens on (the port the system chose for port 0)."""
        host, port = self._server.server_address[:2]
        return host, port

    @property
    def url(self) -> str:
        """The URL to put in the registry's ``notifications.endpoints[].url``."""
        host, port = self.address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}{self.options.path}"

    def stop(self) -> None:
        """Ask :meth:`serve` to stop (safe from a signal handler: no lock taken)."""
        self._stopping = True

    def serve(self) -> None:
        """Serve until :meth:`stop`: compact what an earlier run left, heartbeat, compact
        whenever a journal segment fills; on stop, finish the requests under way,
        compact everything and record the stop."""
        thread = threading.Thread(target=self._server.serve_forever,
                                  kwargs={"poll_interval": _POLL}, name="listen-accept")
        thread.start()
        try:
            self._housekeeping(self.store.compact, "compacting")
            beat = time.monotonic() + self.options.heartbeat
            while not self._stopping:
                self._wake.wait(_POLL)
                if self._wake.is_set():
                    self._wake.clear()
                    self._housekeeping(self.store.compact, "compacting")
                if time.monotonic() >= beat:
                    self._housekeeping(self.store.heartbeat, "recording the heartbeat")
                    self._report_refusals()
                    beat = time.monotonic() + self.options.heartbeat
        finally:
            self._server.shutdown()
            thread.join()
            self._server.server_close()     # joins the handlers under way
            self.store.close()
            self._report_refusals()
            self._log(f"stopped: {self.store.stored} events stored by this run; "
                      f"compacted into {self.store.root / 'parts'}")

    def _housekeeping(self, work: Callable[[], object], what: str) -> None:
        # a full disk fails compaction, not the service: the journal keeps the events
        # (and requests get 503 while it cannot), and the next wake tries again
        try:
            work()
        except (OSError, PullRecordsInvalid) as exc:
            self._log(f"{what} failed, tried again later: {exc}")

    def serve_until_signalled(self) -> None:
        """:meth:`serve` with SIGTERM and SIGINT (Ctrl-C) asking it to stop; a second
        signal ends the process at once (what is acknowledged is on disk already)."""
        def handle(signum: int, frame: object) -> None:
            self.stop()
            signal.signal(signum, signal.SIG_DFL)

        previous = {s: signal.signal(s, handle) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.serve()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    # -- what handlers call

    def stored(self, records: list[dict]) -> None:
        """Store one batch's event records (returns once they are on disk); a full
        journal segment wakes the serving loop to compact it."""
        if self.store.append(records):
            self._wake.set()

    def refused(self, status: int, reason: str, client: str) -> None:
        """Note a refused request: the first of each kind is logged at once, the rest
        counted and logged at the next heartbeat (a flood writes no flood of lines)."""
        key = f"{status} {reason}"
        with self._refusal_lock:
            first = key not in self._refusals
            self._refusals[key] = self._refusals.get(key, 0) + 1
        if first:   # the first of a kind at once, the rest counted at the heartbeat
            self._log(f"refused a request from {client}: {key}")

    def _report_refusals(self) -> None:
        with self._refusal_lock:
            counts, self._refusals = self._refusals, {key: 0 for key in self._refusals}
        repeated = {k: n for k, n in counts.items() if n > 1}
        if repeated:
            self._log("refused since the last report: " + "; ".join(
                f"{n} x {k}" for k, n in sorted(repeated.items())))


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: type, *, listener: Listener):
        self.listener = listener
        self._connections = threading.BoundedSemaphore(listener.options.max_connections)
        self._per_client: dict[str, int] = {}
        self._per_client_lock = threading.Lock()
        super().__init__(address, handler)

    def verify_request(self, request: socket.socket, client_address: object) -> bool:
        # checked as the connection is accepted, before a byte is read: a caller outside
        # --allow, or one holding its share of the connections already, is closed at once
        options = self.listener.options
        client = _host(client_address)
        if options.allow and not _allowed(client, options.allow):
            self.listener.refused(403, "the caller's address is not allowed", client)
            return False
        with self._per_client_lock:
            held = self._per_client.get(client, 0)
            if held >= options.per_client:
                refused = True
            else:
                refused = False
                self._per_client[client] = held + 1
        if refused:
            self.listener.refused(503, f"more than {options.per_client} connections from "
                                       "one address", client)
        return not refused

    def process_request(self, request: socket.socket, client_address: object) -> None:
        # a connection beyond the cap waits in the kernel's backlog, not in a thread
        self._connections.acquire()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._connections.release()
            self._let_go(client_address)
            raise

    def process_request_thread(self, request: socket.socket, client_address: object) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connections.release()
            self._let_go(client_address)

    def _let_go(self, client_address: object) -> None:
        client = _host(client_address)
        with self._per_client_lock:
            held = self._per_client.get(client, 1) - 1
            if held > 0:
                self._per_client[client] = held
            else:
                self._per_client.pop(client, None)

    def handle_error(self, request: object, client_address: object) -> None:
        error = sys.exc_info()[1]
        self.listener._log(f"a request from {_host(client_address)} failed: "
                           f"{type(error).__name__}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "reginsight-listen"
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        super().setup()
        options = self.server.listener.options
        self.connection.settimeout(options.read_timeout)
        raw = _DeadlineReader(self.connection, time.monotonic() + options.request_deadline,
                              options.read_timeout)
        self.rfile = io.BufferedReader(raw, 65536)

    def log_message(self, format: str, *args: object) -> None:
        pass    # refusals are logged by the listener, once a kind

    def do_GET(self) -> None:
        if self.path == "/health":
            self._answer(200, "ok\n")
        else:
            self._answer(404, "not found\n")

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_POST(self) -> None:
        listener = self.server.listener
        options = listener.options
        client = self.client_address[0]
        refusal = self._refusal(options, client)
        if refusal is not None:
            status, reason = refusal
            listener.refused(status, reason, client)
            body = self._small_body()
            # events refused are events the registry may lose (if it restarts before a
            # retry gets through): this run's coverage stops. Before the secret is
            # checked, only a body that is a registry's envelope counts (not a scanner).
            if status not in (401, 403, 404) or _is_envelope(body):
                listener.store.events_refused()
            self._answer(status, reason + "\n", authenticate=status == 401)
            return
        length = int(self.headers["Content-Length"])
        with listener._slots:   # bodies in memory at once are bounded
            try:
                body = self.rfile.read(length)
            except TimeoutError:
                listener.refused(408, "the body came too slowly", client)
                listener.store.events_refused()
                self._answer(408, "the body came too slowly\n")
                return
            if len(body) < length:
                listener.refused(400, "the body ended early", client)
                listener.store.events_refused()
                self._answer(400, "the body ended early\n")
                return
            try:
                records = parse_envelope(body, received=now_text())
            except PullRecordsInvalid as exc:
                listener.refused(400, str(exc), client)
                listener.store.events_refused()
                self._answer(400, f"{exc}\n")
                return
            del body
            try:
                listener.stored(records)
            except OSError as exc:
                listener.refused(503, f"the events could not be stored ({exc.strerror})",
                                 client)
                with contextlib.suppress(OSError):
                    listener.store.events_refused()
                self._answer(503, "the events could not be stored\n")
                return
        self._answer(204)

    def _refusal(self, options: ListenerOptions, client: str) -> tuple[int, str] | None:
        if self.path.split("?", 1)[0] != options.path:
            return 404, f"not the events path ({options.path})"
        if options.allow and not _allowed(client, options.allow):
            return 403, "the caller's address is not allowed"
        if options.secret is not None:
            values = self.headers.get_all("Authorization") or []
            if len(values) != 1 or not options.secret.matches(values[0]):
                return 401, "wrong or missing secret"
        if self.headers.get("Transfer-Encoding"):
            return 411, "a Content-Length is needed (no chunked bodies)"
        text = self.headers.get("Content-Length", "")
        if not text.isascii() or not text.isdigit():
            return 411, "a Content-Length is needed"
        if int(text) > options.max_body:
            return 413, f"the body is larger than {options.max_body} bytes"
        if not media_type_accepted(self.headers.get("Content-Type")):
            return 415, ("the body is not an events envelope "
                         "(application/vnd.docker.distribution.events.v1+json)")
        return None

    def _small_body(self) -> bytes:
        # a small body refused is read first (the caller then sees the answer, not a
        # reset), and returned; a larger one is left unread
        text = self.headers.get("Content-Length", "")
        if text.isascii() and text.isdigit() and int(text) <= _DISCARD:
            with contextlib.suppress(OSError):
                return self.rfile.read(int(text))
        return b""

    def _answer(self, status: int, text: str = "", *, authenticate: bool = False) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Connection", "close")
        if authenticate:
            self.send_header("WWW-Authenticate", 'Bearer realm="reginsight-listen"')
        if data:
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)
        self.close_connection = True


class _DeadlineReader(io.RawIOBase):
    """A socket's bytes, each read within ``read_timeout`` and all of them before
    ``deadline`` (a caller trickling a byte at a time cannot hold a connection)."""

    def __init__(self, sock: socket.socket, deadline: float, read_timeout: float) -> None:
        self._sock, self._deadline, self._timeout = sock, deadline, read_timeout

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request took longer than its deadline")
        self._sock.settimeout(min(remaining, self._timeout))
        return self._sock.recv_into(buffer)


def _is_envelope(body: bytes) -> bool:
    # a registry's events, refused: not a scanner's probe
    try:
        return bool(parse_envelope(body, received=""))
    except PullRecordsInvalid:
        return False


def _allowed(client: str, networks: Sequence) -> bool:
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return False
    if getattr(address, "ipv4_mapped", None) is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def _host(client_address: object) -> str:
    with contextlib.suppress(TypeError, IndexError):
        return str(client_address[0])
    return "?"


def _stderr(line: str) -> None:
    print(f"reginsight listen: {line}", file=sys.stderr, flush=True)
