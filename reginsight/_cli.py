"""The ``reginsight`` command line.

Exit codes: 0 success, 1 a registry error (message on stderr), 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._client import Registry
from ._errors import RegistryError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reginsight",
        description="Read a container registry (Docker Registry API V2 / OCI Distribution).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    ls = commands.add_parser(
        "ls", help="list repositories, or the tags of one repository",
        description="List the repositories of a registry, or the tags of REPO.",
    )
    ls.add_argument("url", metavar="URL", help="registry, e.g. localhost:5000 or ghcr.io")
    ls.add_argument("repository", metavar="REPO", nargs="?", help="list this repository's tags")
    ls.add_argument("--username", "-u", help="user name (password from --password-stdin)")
    ls.add_argument("--password-stdin", action="store_true",
                    help="read the password from standard input")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
    try:
        with Registry(args.url, args.username, password) as reg:
            names = reg.tags(args.repository) if args.repository else reg.repositories()
    except RegistryError as exc:
        print(f"reginsight: {exc}", file=sys.stderr)
        return 1
    for name in names:
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
