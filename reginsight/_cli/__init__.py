"""The ``reginsight`` command line.

One module per command (``_report``, ``_crawl``, ``_gcpreview``, ``_ls``, ``_rm``,
``_cleanup``, ``_listen``),
each a builder that adds its parser and a handler set with ``set_defaults(run=...)``;
flags several share are in ``_options`` (the pull records' in ``_pulls``), what TARGET
names in ``_targets``. Here:
the parser made of them, and the mapping of errors to exit codes.

What came from a registry, a storage tree or a saved inventory (names, tags, error
messages, the registry URL an inventory.json names) is printed through
:func:`._text.printable`: no control character of theirs reaches the terminal.

Exit codes: 0 success (also when some reads failed: a crawl or report then warns on
stderr with their count); 1 a registry, network or file error, a saved inventory that
cannot be read, a plan file that is not a valid plan, a cleanup that failed or was
stopped by the registry (one line on stderr, never a traceback); 2 bad usage, including a
TARGET that is neither an existing directory nor a registry URL, a reference without
tag or digest, a cleanup flag that cannot be understood, a number flag out of range;
3 refused for safety (``rm`` would take other tags, break a tagged multi-arch image,
or a tag moved; ``cleanup --yes`` skipped a row because a tag moved, a tag it did not
choose or a tagged index holds the digest), or (``gc-preview``) the garbage collector
would break tagged images.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from .._errors import (
    BreaksIndex,
    CatalogUnavailable,
    OtherTagsAffected,
    ReginsightError,
    TagMoved,
)
from .._text import printable
from .._version import __version__
from . import _cleanup, _crawl, _gcpreview, _listen, _ls, _report, _rm
from ._options import MAX_CONCURRENCY, repositories
from ._output import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    MESSAGE_LIMIT,
    NAME_LIMIT,
    UsageError,
    message,
)

__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_REFUSED", "EXIT_USAGE", "MAX_CONCURRENCY",
           "MESSAGE_LIMIT", "main"]

#: one module per command, each adding its parser with ``set_defaults(run=handler)``
COMMANDS = (_report, _crawl, _gcpreview, _ls, _rm, _cleanup, _listen)

EPILOG = """\
examples:
  reginsight report                          report on the bundled sample -> report.html
  reginsight report localhost:5000 -o r.html crawl a registry, then report
  reginsight crawl ghcr.io -u me --password-stdin -o inventory/ --repositories me/app
                                             name repositories where there is no catalog
                                             (GHCR, Docker Hub, GitLab); token on stdin
  reginsight report inventory/ --keep-last 5 --older-than 26w
                                             report on a saved inventory, with the
                                             cleanup policy the report estimates
  reginsight ls localhost:5000               list repositories (ls URL REPO: its tags)
  reginsight cleanup localhost:5000 --keep-last 5 --older-than 26w -o plan.csv
                                             the cleanup plan, full digests and bytes
                                             (a dry run; --yes deletes), saved
  reginsight cleanup localhost:5000 --plan plan.csv --yes
                                             apply a saved plan (rows whose tags moved
                                             since are skipped), then garbage-collect
  reginsight cleanup localhost:5000 --untagged --storage /var/lib/registry
                                             the untagged manifests no tagged image needs
  reginsight rm localhost:5000 team/app:old  show what would be deleted (add --yes)
  reginsight rm localhost:5000 team/app@sha256:...
                                             delete a manifest by digest (with --yes)
  reginsight report /var/lib/registry        report on the registry's own storage
  reginsight gc-preview s3://bucket/registry what garbage-collect would delete and break

targets: http(s)://HOST[:PORT] or HOST[:PORT] is a registry; an existing directory is
a saved inventory or a storage root (docker/registry/v2 inside); s3:// gs:// ... are
storage roots.
credentials: --username/--password-stdin, else ~/.docker/config.json (auths and
credential helpers), else anonymous.
exit codes: 0 ok (failed reads are warned about on stderr), 1 registry, network or
file error, an unreadable saved inventory or plan file, a deletion that failed (one
line, never a traceback), 2 usage (also a number flag out of range), 3 refused for
safety (rm would take other tags or break a tagged multi-arch image; cleanup --yes
skipped a row whose tags moved; gc-preview would break images).
"""


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="reginsight", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="What is in a container registry, what it costs, what a cleanup frees.",
        epilog=EPILOG)
    top.add_argument("--version", action="version", version=f"reginsight {__version__}")
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add(commands)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # the command itself, owning its streams
        _tolerant_streams()
    top = parser()
    args = top.parse_args(argv)
    if args.command is None:
        top.print_help()
        return EXIT_USAGE
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    """The command's handler; every error it raises as an exit code and one line."""
    try:
        return args.run(args)
    except UsageError as exc:
        print(f"reginsight: {message(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except CatalogUnavailable as exc:
        print(f"reginsight: {message(exc)}\n  {_catalog_hint(args, exc)}", file=sys.stderr)
        return EXIT_ERROR
    except BreaksIndex as exc:
        print(f"reginsight: refused: {message(exc)}: add --break-indexes to delete it "
              "anyway (those images then fail to pull)", file=sys.stderr)
        return EXIT_REFUSED
    except (OtherTagsAffected, TagMoved) as exc:
        print(f"reginsight: refused: {message(exc)}", file=sys.stderr)
        return EXIT_REFUSED
    except ReginsightError as exc:  # every other error of ours: one line, no traceback
        print(f"reginsight: {message(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        print(f"reginsight: {message(exc.strerror or exc)}: {printable(exc.filename or '')}",
              file=sys.stderr)
        return EXIT_ERROR
    except UnicodeEncodeError as exc:  # a file name of another encoding, past our checks
        print(f"reginsight: {printable(exc.object, limit=NAME_LIMIT)}: a name that is not "
              "UTF-8 (bytes of another encoding) where one must be: rename it",
              file=sys.stderr)
        return EXIT_ERROR


def _catalog_hint(args: argparse.Namespace, refused: CatalogUnavailable) -> str:
    """What to do without a catalog: the command's own hint, else name repositories."""
    from ..inventory._selection import is_glob

    hint = getattr(args, "catalog_hint", None)
    if hint is None:
        globs = [name for name in repositories(getattr(args, "repositories", None)) or []
                 if is_glob(name)]
        hint = (f"globs ({', '.join(globs)}) need the catalog; " if globs else "") + (
            "name the repositories: --repositories NAME[,NAME...], e.g. "
            "--repositories library/alpine,team/app")
    if refused.status == 401 and not getattr(args, "username", None):
        hint += "\n  or give credentials (-u NAME --password-stdin): the catalog may need them"
    return hint


def _show_warning(warning: Warning | str, category: type[Warning], filename: str,
                  lineno: int, file: object = None, line: str | None = None) -> None:
    # a warning on the command line is news for the user, not a source location
    print(f"reginsight: warning: {message(warning)}", file=sys.stderr)


def _tolerant_streams() -> None:
    """Characters the terminal's encoding lacks (a name in a UTF-8 registry, shown on a
    C locale) printed as escapes, not a UnicodeEncodeError halfway through a listing."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
