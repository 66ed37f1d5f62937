"""``reginsight listen --addr HOST:PORT -o DIR``: the endpoint a registry's
``notifications:`` config posts its events to, storing them in an event folder that
``read_pulls`` reads."""

from __future__ import annotations

import argparse
import ipaddress
import os
import stat
import sys

from .._text import printable
from ._output import EXIT_OK, UsageError, message, whole

#: the environment variable holding the shared secret (never a command-line argument:
#: argv is visible to every user of the machine)
SECRET_VARIABLE = "REGINSIGHT_LISTEN_SECRET"  # noqa: S105 (its name, not a secret)
#: a secret shorter than this is guessable
SECRET_MINIMUM = 16


def add(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "listen", help="receive a registry's notifications (pulls, pushes) into a folder",
        description="Serve the endpoint a registry's `notifications:` config posts its "
                    "events to, and store every event in DIR (a journal, compacted to "
                    "Parquet) for `read_pulls(DIR)` and `--pulls DIR`. A batch is "
                    "acknowledged only once it is on disk: the registry resends what is "
                    "not, so a crash loses nothing. The registry must send the shared "
                    "secret (headers: {Authorization: [Bearer SECRET]}); the listener "
                    f"reads it from ${SECRET_VARIABLE} or --secret-file, and refuses to "
                    "start without one unless it listens on loopback only. SIGTERM or "
                    "Ctrl-C: stop accepting, finish the requests under way, compact, "
                    "exit 0. See docs/listener.md for the registry's config.")
    parser.add_argument("--addr", required=True, metavar="HOST:PORT",
                        help="address to listen on (127.0.0.1:5080; [::1]:5080; "
                             "0.0.0.0:5080 for every interface; port 0: any free port)")
    parser.add_argument("-o", "--output", required=True, metavar="DIR",
                        help="the event folder (created if missing; an existing one must "
                             "be an event folder or empty)")
    parser.add_argument("--secret-file", metavar="FILE",
                        help=f"file holding the shared secret (else ${SECRET_VARIABLE})")
    parser.add_argument("--path", default="/events",
                        help="the URL path the registry posts to (default /events)")
    parser.add_argument("--allow", action="append", default=[], metavar="CIDR",
                        help="accept callers from this network only (repeatable; "
                             "default: any caller with the secret)")
    parser.add_argument("--max-body", type=whole(1024, 256 * 2 ** 20), metavar="BYTES",
                        default=4 * 2 ** 20,
                        help="largest request body accepted, 413 beyond (default 4 MiB; a "
                             "registry posts about 1 KiB an event)")
    parser.add_argument("--compact-every", type=whole(1, 10_000_000), metavar="EVENTS",
                        default=100_000,
                        help="compact the journal to Parquet after this many events "
                             "(default 100000; also at every stop and start)")
    parser.add_argument("--heartbeat", type=whole(1, 3600), metavar="SECONDS", default=30,
                        help="how often the run records that it is alive (default 30): "
                             "the end of the time its records cover if it dies unseen")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from .._errors import PullRecordsInvalid
    from ..usage._listener import Listener, ListenerOptions, Secret
    from ..usage._store import open_store

    host, port = address(args.addr)
    secret = read_secret(args.secret_file)
    try:
        options = ListenerOptions(
            host=host, port=port, secret=Secret(secret) if secret is not None else None,
            path=args.path if args.path.startswith("/") else "/" + args.path,
            allow=tuple(network(text) for text in args.allow), max_body=args.max_body,
            heartbeat=float(args.heartbeat))
    except PullRecordsInvalid as exc:
        raise UsageError(str(exc)) from None
    store = open_store(args.output, segment_events=args.compact_every)
    try:
        listener = Listener(store, options)
    except BaseException:
        store.close()
        raise
    who = ("callers with the secret" if secret is not None else
           "ANY caller (no secret; allowed because the address is loopback only)")
    if options.allow:
        who += " from " + ", ".join(str(n) for n in options.allow)
    print(f"reginsight listen: listening on {listener.url} (the registry's notifications "
          f"url), accepting {who}", flush=True)
    print(f"reginsight listen: writing events to {printable(os.path.abspath(args.output))}",
          flush=True)
    listener.serve_until_signalled()
    return EXIT_OK


def address(text: str) -> tuple[str, int]:
    """HOST and PORT of ``--addr`` (``[v6]:port`` for IPv6); a usage error otherwise."""
    host, colon, port = text.rpartition(":")
    if not colon or not port.isascii() or not port.isdigit() or int(port) > 65535 or not host:
        raise UsageError(f"--addr {printable(text, limit=80)!r}: give HOST:PORT "
                         "(127.0.0.1:5080, [::1]:5080)")
    if host.startswith("[") != host.endswith("]") or (":" in host and not host.startswith("[")):
        raise UsageError(f"--addr {printable(text, limit=80)!r}: an IPv6 address goes in "
                         "brackets ([::1]:5080)")
    return host.strip("[]") if host.startswith("[") else host, int(port)


def network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """One ``--allow`` network; a usage error when it is not an address or a CIDR."""
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise UsageError(f"--allow {printable(text, limit=80)!r}: give an address or a "
                         "network (10.0.0.0/8, 192.168.1.7, fd00::/8)") from None


def read_secret(secret_file: str | None) -> str | None:
    """The shared secret, from ``secret_file`` or the environment; None when neither
    gives one. Never echoed: errors name the file or the variable, not the value."""
    from_environment = os.environ.get(SECRET_VARIABLE)
    if secret_file is not None and from_environment:
        raise UsageError(f"both --secret-file and ${SECRET_VARIABLE} give a secret: give one")
    if secret_file is not None:
        try:
            with open(secret_file, "rb") as file:
                mode = os.fstat(file.fileno()).st_mode
                data = file.read(4097)
        except OSError as exc:
            raise UsageError(f"--secret-file {printable(secret_file, limit=200)}: "
                             f"{message(exc.strerror or exc)}") from None
        if len(data) > 4096:
            raise UsageError("--secret-file: longer than 4096 bytes; is it the right file?")
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            print(f"reginsight listen: warning: {printable(secret_file, limit=200)} can be "
                  "read by other users (chmod 600 it)", file=sys.stderr)
        try:
            secret = data.decode("ascii").strip()
        except UnicodeDecodeError:
            raise UsageError("--secret-file: the secret must be ASCII") from None
        where = "--secret-file"
    elif from_environment:
        secret, where = from_environment.strip(), f"${SECRET_VARIABLE}"
    else:
        return None
    if (len(secret) < SECRET_MINIMUM or not secret.isascii() or not secret.isprintable()
            or " " in secret):
        raise UsageError(f"{where}: the secret must be {SECRET_MINIMUM} or more printable "
                         "ASCII characters without spaces (openssl rand -hex 32 makes one)")
    return secret
