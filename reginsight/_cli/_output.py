"""What every command prints with: exit codes, inert names and messages, the usage
error, the warning about failed reads."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .._text import printable

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3

#: how much of an outside message or name a line shows (a registry's error body can be
#: long); the rest is counted, not printed
MESSAGE_LIMIT, NAME_LIMIT = 1000, 300


class UsageError(Exception):
    """Bad command-line input found after parsing (exit 2)."""


def name(text: object) -> str:
    """A name or tag from outside, as a line shows it: inert, and not too long."""
    return printable(text, limit=NAME_LIMIT)


def message(text: object) -> str:
    """An error message (which quotes what a registry or a file said), inert."""
    return printable(text, limit=MESSAGE_LIMIT)


def tags_shown(repository: str, tags: Sequence[str]) -> str:
    return ", ".join(name(f"{repository}:{tag}") for tag in tags)


def whole(least: int, most: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: a whole number from ``least`` to ``most``; anything else
    is a usage error (exit 2) before anything runs."""
    wanted = (f"a whole number from {least} to {most}" if most is not None
              else f"a whole number of {least} or more")

    def parse(text: str) -> int:
        # ASCII digits only: int() also takes " 5", "+3", "1_000" and "٣"
        value = int(text) if re.fullmatch(r"[0-9]{1,9}", text) else None
        if value is None or value < least or (most is not None and value > most):
            raise argparse.ArgumentTypeError(f"'{printable(text, limit=40)}': give {wanted}")
        return value

    return parse


def warn_errors(inv: Inventory) -> None:
    """What could not be read must not pass unnoticed: its count, and the first."""
    failed = inv.failed_reads()
    if failed is None:
        return
    count, where, first = failed
    print(f"reginsight: warning: {count} (the inventory's errors frame); the first, "
          f"{name(where)} ({name(first['stage'])}): {message(first['error'])}",
          file=sys.stderr)
