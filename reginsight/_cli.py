"""The ``reginsight`` command line.

Targets: a registry is ``http(s)://HOST[:PORT]`` or a bare ``HOST[:PORT]`` (one with a
dot or a colon, or ``localhost``; plain HTTP only for loopback hosts); a saved
inventory or a storage root is an existing directory; ``s3://``, ``gs://``... are
storage roots. Anything else is refused as bad usage, before any request is sent.

What came from a registry, a storage tree or a saved inventory (names, tags, error
messages, the registry URL an inventory.json names) is printed through
:func:`._text.printable`: no control character of theirs reaches the terminal.

Exit codes: 0 success (also when some reads failed: a crawl or report then warns on
stderr with their count); 1 a registry, network or file error, a saved inventory that
cannot be read (one line on stderr, never a traceback); 2 bad usage, including a
TARGET that is neither an existing directory nor a registry URL, a reference without
tag or digest, a cleanup flag that cannot be understood, a number flag out of range;
3 refused for safety (``rm`` would take other tags, break a tagged multi-arch image,
or a tag moved), or
(``gc-preview``) the garbage collector would break tagged images.
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import (
    BreaksIndex,
    CatalogUnavailable,
    CollectorWouldStop,
    InvalidReference,
    InventoryError,
    OtherTagsAffected,
    PlanError,
    ReginsightError,
    TagMoved,
)
from ._text import printable
from ._version import __version__

if TYPE_CHECKING:
    from .inventory._inventory import Inventory
    from .registry._client import Registry

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3
#: the sample inventory, shipped inside the package (data/sample links to it)
SAMPLE = Path(__file__).resolve().parent / "sample"

#: how much of an outside message or name a line shows (a registry's error body can be
#: long); the rest is counted, not printed
MESSAGE_LIMIT, NAME_LIMIT = 1000, 300
#: requests in flight at most: each is a thread and a connection; past this a crawl
#: only queues in the registry (or trips its rate limit)
MAX_CONCURRENCY = 1024

#: the report's cleanup policy by default: ops._plan.SUGGESTED_POLICY (a test checks it;
#: written out here so that --help and --version need no pandas)
POLICY_DEFAULTS = {"keep_last": 3, "older_than": "180d", "protect": r"^(latest|stable)$"}

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
file error or an unreadable saved inventory (one line, never a traceback), 2 usage
(also a number flag out of range), 3 refused for safety (rm would take other tags or
break a tagged multi-arch image; gc-preview would break images).
"""


def _name(text: object) -> str:
    """A name or tag from outside, as a line shows it: inert, and not too long."""
    return printable(text, limit=NAME_LIMIT)


def _message(text: object) -> str:
    """An error message (which quotes what a registry or a file said), inert."""
    return printable(text, limit=MESSAGE_LIMIT)


def _tags(repository: str, tags: Sequence[str]) -> str:
    return ", ".join(_name(f"{repository}:{tag}") for tag in tags)


def _whole(least: int, most: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: a whole number from ``least`` to ``most``; anything else
    is a usage error (exit 2) before anything runs."""
    wanted = (f"a whole number from {least} to {most}" if most is not None
              else f"a whole number of {least} or more")

    def whole(text: str) -> int:
        # ASCII digits only: int() also takes " 5", "+3", "1_000" and "٣"
        value = int(text) if re.fullmatch(r"[0-9]{1,9}", text) else None
        if value is None or value < least or (most is not None and value > most):
            raise argparse.ArgumentTypeError(f"'{printable(text, limit=40)}': give {wanted}")
        return value

    return whole


def _connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument("-u", "--username", help="user name (password: --password-stdin)")
    group.add_argument("--password-stdin", action="store_true",
                       help="read the password (or token) from standard input")
    group.add_argument("--ca", metavar="PEM", help="CA bundle to verify TLS with")
    group.add_argument("--insecure", action="store_true",
                       help="do not verify TLS certificates (only when you must)")


def _crawl_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repositories", metavar="NAMES", action="append",
                        help='only these repositories: names ("team/app", read directly, '
                             'so registries without a catalog work) or globs ("team/*", '
                             "matched against the catalog); comma-separated or repeated")
    parser.add_argument("--concurrency", type=_whole(1, MAX_CONCURRENCY), default=32,
                        metavar="N",
                        help=f"requests in flight, 1 to {MAX_CONCURRENCY} (with --scheduler: "
                             "per shard, and a worker runs one shard per thread; default: "
                             "%(default)s)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="shard the crawl over a Dask cluster, e.g. tcp://host:8786 "
                             "(pip install 'reginsight[dask]')")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress on stderr (a bar on a terminal, else a plain "
                             "line every few seconds)")


def _storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE",
                        help="an fsspec option for a storage URL, e.g. "
                             "endpoint_url=http://127.0.0.1:9000 (repeatable)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reginsight", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="What is in a container registry, what it costs, what a cleanup frees.",
        epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"reginsight {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    report = commands.add_parser(
        "report", help="write an HTML report (of the bundled sample by default)",
        description="Write one self-contained HTML report. TARGET is a registry URL "
                    "(crawled first), a saved inventory directory, or a registry's "
                    "storage root (a folder holding docker/registry/v2, or an fsspec "
                    "URL such as s3://bucket/root: then the report shows where the disk "
                    "goes); without TARGET, the sample inventory shipped with the "
                    "package (data/sample).")
    report.add_argument("target", metavar="TARGET", nargs="?")
    report.add_argument("-o", "--output", default="report.html", help="default: report.html")
    policy = report.add_argument_group(
        "cleanup policy", "what the report's \"cleanup would free\" estimates: delete what "
        "none of these rules keeps (--older-than 0d or '' and --protect '' turn those "
        "rules off; --keep-last 0 keeps no image for being new, as in plan_cleanup and "
        "the explorer)")
    policy.add_argument("--keep-last", type=_whole(0), metavar="N",
                        default=POLICY_DEFAULTS["keep_last"],
                        help="keep the newest N images of each repository (default: "
                             "%(default)s)")
    policy.add_argument("--older-than", metavar="AGE", default=POLICY_DEFAULTS["older_than"],
                        help="keep images newer than AGE, e.g. 90d, 26w, 12h (default: "
                             "%(default)s)")
    policy.add_argument("--protect", metavar="REGEX", default=POLICY_DEFAULTS["protect"],
                        help="keep tags matching REGEX (default: %(default)s)")
    _crawl_options(report)
    _storage_options(report)
    _collector_option(report)
    _connection_options(report)

    gc = commands.add_parser(
        "gc-preview", help="what the registry's garbage-collect would delete, and break",
        description="Read the registry's storage at ROOT (read-only) and print what "
                    "the registry's `garbage-collect` would delete, and the images it "
                    "would break. Distribution 2.x and 3.x collect differently and the "
                    "storage does not say which one writes it: without --collector, "
                    "both are shown where they differ. Exit 3 if it would break any "
                    "image or stop before deleting anything.")
    gc.add_argument("root", metavar="ROOT", help="folder holding docker/registry/v2, or "
                                                 "an fsspec URL (s3://bucket/root)")
    gc.add_argument("--delete-untagged", action="store_true",
                    help="model garbage-collect --delete-untagged")
    _collector_option(gc)
    gc.add_argument("--no-progress", action="store_true", help="no progress bar")
    _storage_options(gc)

    crawl = commands.add_parser("crawl", help="crawl a registry into a saved inventory",
                                description="Crawl URL and save the inventory (Parquet).")
    crawl.add_argument("url", metavar="URL")
    crawl.add_argument("-o", "--output", required=True, metavar="DIR",
                       help="a new or empty folder, or an earlier saved inventory to "
                            "replace (a folder holding other files is refused)")
    _crawl_options(crawl)
    _connection_options(crawl)

    ls = commands.add_parser("ls", help="list repositories, or the tags of one",
                             description="List the repositories of URL, or the tags of REPO.")
    ls.add_argument("url", metavar="URL", help="e.g. localhost:5000 or ghcr.io")
    ls.add_argument("repository", metavar="REPO", nargs="?")
    _connection_options(ls)

    rm = commands.add_parser(
        "rm", help="delete one tag, or one manifest by digest (dry run unless --yes)",
        description="Delete REPO:TAG and nothing else. Registries without tag deletion "
                    "delete the digest, and with it every tag on it: then the other tags "
                    "are listed and the deletion refused (exit 3) unless "
                    "--all-tags-on-digest. REPO@DIGEST deletes that manifest: the tags "
                    "pointing at it are listed, and it is refused while any does unless "
                    "--all-tags-on-digest. A manifest that a tagged index references (a "
                    "platform of a multi-arch image) is never deleted: by digest, or by a "
                    "tag on a registry without tag deletion, it is refused (exit 3) unless "
                    "--break-indexes. A bare REPO is refused: no implicit :latest. After "
                    "a deletion of REPO:TAG a line says which method was used: the OCI tag "
                    "delete (Distribution 3: that tag only) or the manifest by digest.")
    rm.add_argument("url", metavar="URL")
    rm.add_argument("reference", metavar="REPO:TAG|REPO@DIGEST")
    rm.add_argument("--yes", action="store_true", help="really delete")
    rm.add_argument("--all-tags-on-digest", action="store_true",
                    help="also delete the tags that share the digest")
    rm.add_argument("--break-indexes", action="store_true",
                    help="delete even a platform of a tagged multi-arch image (that image "
                         "then fails to pull)")
    _connection_options(rm)
    return parser


#: a bare registry host: name or IPv4 or [IPv6], an optional port, an optional "/"
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)"
                   r"(?::[0-9]+)?/?")


def _looks_like_registry(target: str) -> bool:
    """``http(s)://...``, or a bare ``HOST[:PORT]`` as docker tells a registry from a
    path: with a dot or a colon, or ``localhost``."""
    if target.startswith(("http://", "https://")):
        return True
    if "://" in target or not _HOST.fullmatch(target):
        return False
    return "." in target or ":" in target or target.rstrip("/") == "localhost"


NOT_A_REGISTRY = "not a registry URL (give http(s)://HOST or HOST:PORT)"


def _shown(target: str) -> str:
    """A target as a message may repeat it: never a ``user:password@`` part."""
    from .registry._hosts import redact_text

    shown = redact_text(target) if "://" in target else target.rsplit("@", 1)[-1]
    if shown != target:
        shown += " (credentials go in -u NAME --password-stdin, never in the URL)"
    return shown


def _registry(args: argparse.Namespace, url: str) -> Registry:
    from .registry._client import Registry
    from .registry.protocol import parse_registry_url

    if not _looks_like_registry(url):
        raise UsageError(f"{_shown(url)}: {NOT_A_REGISTRY}")
    try:
        parse_registry_url(url)
    except InvalidReference as exc:
        raise UsageError(str(exc)) from None
    password = sys.stdin.readline().rstrip("\r\n") if args.password_stdin else None
    return Registry(url, args.username, password, verify=args.ca or True,
                    insecure=args.insecure)


def _crawl(args: argparse.Namespace, url: str) -> Inventory:
    from .inventory._crawl import crawl

    options = {"concurrency": args.concurrency, "progress": not args.no_progress}
    with _registry(args, url) as reg:
        if not args.scheduler:
            return crawl(reg, _repositories(args.repositories), **options)
        try:
            from distributed import Client
        except ImportError:
            raise UsageError("--scheduler needs Dask: pip install 'reginsight[dask]'"
                             ) from None
        with Client(args.scheduler, timeout=30) as client:
            return crawl(reg, _repositories(args.repositories), cluster=client, **options)


def _check_repository(name: str) -> None:
    from .registry._reference import validate_repository

    try:
        validate_repository(name)
    except InvalidReference as exc:
        raise UsageError(str(exc)) from None


def _repositories(values: list[str] | None) -> list[str] | None:
    """``--repositories a,b --repositories "team/*"`` as one list (None: all)."""
    if not values:
        return None
    from .inventory._selection import is_glob
    from .registry._reference import validate_repository

    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    if not names:
        raise UsageError("--repositories: give at least one name or glob")
    for name in names:
        if not is_glob(name):
            try:
                validate_repository(name)
            except InvalidReference as exc:
                raise UsageError(f"--repositories {name!r}: {exc}") from None
    return names


def _target_kind(target: str) -> str:
    """What a report TARGET is: "registry", "storage" or "inventory".

    ``http(s)://`` is a registry and any other ``scheme://`` a storage root (fsspec);
    an existing directory is a storage root when it holds docker/registry/v2, else a
    saved inventory; a bare ``HOST[:PORT]`` is a registry. Anything else (a path that
    does not exist, a file) is a UsageError, before any request is sent."""
    if "://" in target:
        return "registry" if target.startswith(("http://", "https://")) else "storage"
    path = Path(target)
    if path.is_dir():
        return "storage" if (path / "docker" / "registry" / "v2").is_dir() else "inventory"
    if path.exists():
        raise UsageError(f"{target}: not a directory (give a saved inventory's directory, "
                         "a storage root or a registry URL)")
    if _looks_like_registry(target):
        return "registry"
    raise UsageError(f"{_shown(target)}: no such directory, and {NOT_A_REGISTRY}")


def _scan(args: argparse.Namespace, root: str) -> Inventory:
    from .inventory._scan import scan_storage

    options = {}
    for pair in args.storage_option:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--storage-option {pair!r}: give KEY=VALUE")
        options[key] = value
    return scan_storage(root, storage_options=options, progress=not args.no_progress)


def _collector_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--collector", choices=("2", "3"),
                        help="the storage's registry version, whose garbage-collect is "
                             "modelled: 2 (the registry:2 image, Debian's docker-registry) "
                             "or 3 (registry:3); none: each where they differ")


def _collector(args: argparse.Namespace) -> str | None:
    return args.collector and f"distribution-{args.collector}"


class UsageError(Exception):
    """Bad command-line input found after parsing."""


def _gc_preview(args: argparse.Namespace) -> int:
    from ._units import format_bytes
    from .analysis._disk import VERSION, disk_usage, gc_outcomes

    inv = _scan(args, args.root)
    for row in disk_usage(inv).itertuples(index=False):
        unit = "uploads" if row.category == "uploads" else "blobs"
        print(f"{row.category:>13}  {row.blobs:>8} {unit:<8}{format_bytes(row.bytes):>12}")
    if len(inv.errors):
        print(f"{len(inv.errors)} problems in the storage (see scan_storage(...).errors)")
    command = "garbage-collect" + (" --delete-untagged" if args.delete_untagged else "")
    collector = _collector(args)
    outcomes = gc_outcomes(inv, delete_untagged=args.delete_untagged, collector=collector)
    harmful = False
    for name, outcome in outcomes.items():
        harmful |= _print_outcome(outcome, f"{VERSION[name]} {command}" if name else command)
    if len(outcomes) > 1:
        print("\nthe two collectors differ here, and the storage does not say which one "
              "runs: give --collector 2 or --collector 3 (`registry --version` on the "
              "registry's host; the image tag registry:2 or registry:3)")
    elif collector is None:
        print("(the same on Distribution 2.x and 3.x)")
    if harmful and args.delete_untagged:
        print("\nsafe instead: ri.plan_cleanup(ri.scan_storage(ROOT), untagged=True), "
              "ri.apply_cleanup(reg, plan, dry_run=False), then a plain garbage-collect")
    return EXIT_REFUSED if harmful else EXIT_OK


def _print_outcome(outcome: object, command: str) -> bool:
    """Print one collector's outcome; True when it would break images or stop."""
    from ._units import count, format_bytes
    from .analysis._disk import broken_images

    if isinstance(outcome, CollectorWouldStop):
        print(f"\n{command} would STOP before deleting anything: {_message(outcome.reason)}")
        return True
    blobs = outcome[outcome["kind"] != "revision"]
    print(f"\n{command} would delete {count(len(blobs), 'blob')}, "
          f"{format_bytes(int(blobs['size'].sum()))}")
    broken = broken_images(outcome)
    if broken.empty:
        return False
    print(f"it would BREAK {count(len(broken), 'image')} (their pulls would fail):")
    for row in broken.itertuples(index=False):
        print(f"  {_name(row.tag)}: loses {row.lost} blobs/revisions "
              f"({_message(row.reason)})")
    return True


def _policy(args: argparse.Namespace) -> dict[str, object]:
    """The report's cleanup rules from --keep-last/--older-than/--protect: 0d or '' is
    no age rule, '' no protection; --keep-last N means what keep_last=N does."""
    older_than = args.older_than.strip() or None
    if older_than is not None and re.fullmatch(r"0+(?:\.0*)?\s*[smhdw]?", older_than):
        older_than = None  # older than nothing: every image, as with no age rule
    if older_than is not None:
        from .ops._plan import _age_limit  # checked now, not after a long crawl

        try:
            _age_limit(older_than)
        except PlanError as exc:
            raise UsageError(_flag_words(exc)) from None
    protect = args.protect or None
    if protect is not None:
        try:
            re.compile(protect)
        except re.error as exc:
            raise UsageError(f"--protect {protect!r}: not a regular expression: {exc}"
                             ) from None
    return {"keep_last": args.keep_last, "older_than": older_than,
            "protect": protect}


def _flag_words(exc: PlanError) -> str:
    """A plan_cleanup complaint in the words of the command line: ``older_than='x'``
    becomes ``--older-than 'x'``."""
    text = str(exc)
    for argument, flag in (("keep_last=", "--keep-last "), ("older_than=", "--older-than "),
                           ("protect=", "--protect ")):
        text = text.replace(argument, flag)
    return text


def _report(args: argparse.Namespace) -> int:
    from .inventory._inventory import Inventory
    from .present._report import export_report

    target = args.target
    policy = _policy(args)
    if target is None:
        if not (SAMPLE / "inventory.json").exists():
            print(f"reginsight: the sample inventory is missing ({SAMPLE})", file=sys.stderr)
            return EXIT_ERROR
        inv = Inventory.load(SAMPLE)
    else:
        kind = _target_kind(target)
        if kind == "storage":
            inv = _scan(args, target)
        elif kind == "inventory":
            inv = Inventory.load(target)
        else:
            inv = _crawl(args, target)
    try:
        path = export_report(inv, args.output, collector=_collector(args), **policy)
    except PlanError as exc:  # the policy flags, read by plan_cleanup
        raise UsageError(_flag_words(exc)) from None
    print(f"wrote {printable(path)} ({_name(inv.registry)}, {len(inv.tags)} tags)",
          file=sys.stderr)
    _warn_errors(inv)
    return EXIT_OK


def _crawl_and_save(args: argparse.Namespace) -> int:
    """``crawl URL -o DIR``: DIR is checked before the crawl (an empty path, or a folder
    that holds files and no inventory, is refused before a request is sent)."""
    from .inventory._dataset import utf8_path
    from .inventory._replace import check_save_target

    try:
        utf8_path(args.output)  # pyarrow writes UTF-8 names only: said before the crawl
    except InventoryError as exc:
        raise UsageError(f"-o {exc}") from None
    try:
        check_save_target(args.output)
    except InventoryError as exc:
        raise UsageError(f"-o {args.output!r}: {exc}") from None
    inv = _crawl(args, args.url)
    try:
        inv.save(args.output)
    except (InventoryError, OSError) as exc:
        reason = exc if isinstance(exc, InventoryError) else f"{exc.strerror or exc}"
        print(f"reginsight: the crawl could not be saved to {printable(args.output)}: "
              f"{_message(reason)}; "
              "what was there before is as it was", file=sys.stderr)
        return EXIT_ERROR
    print(_saved(inv, args.output), file=sys.stderr)
    _warn_errors(inv)
    return EXIT_OK


def _saved(inv: Inventory, output: str) -> str:
    """``saved 42 tags, 38 manifests in 9 repositories (1.2 GiB stored) to DIR``."""
    from ._units import format_bytes
    from .analysis._storage import storage_summary

    summary = storage_summary(inv)

    def count(key: str, one: str, many: str) -> str:
        n = int(summary[key])
        return f"{n:,} {one if n == 1 else many}"

    return (f"saved {count('tags', 'tag', 'tags')}, "
            f"{count('manifests', 'manifest', 'manifests')} in "
            f"{count('repositories', 'repository', 'repositories')} "
            f"({format_bytes(summary['stored_bytes'])} stored) to {printable(output)}")


def _warn_errors(inv: Inventory) -> None:
    """What could not be read must not pass unnoticed: its count, and the first."""
    failed = inv.failed_reads()
    if failed is None:
        return
    count, where, first = failed
    print(f"reginsight: warning: {count} (the inventory's errors frame); the first, "
          f"{_name(where)} ({_name(first['stage'])}): {_message(first['error'])}",
          file=sys.stderr)


def _rm_reference(text: str) -> tuple[str, str]:
    """(repository, tag or digest) from ``REPO:TAG`` or ``REPO@DIGEST``; a bare REPO
    is refused rather than taken as :latest."""
    from .registry._reference import split_reference

    if "@" not in text and ":" not in text.rpartition("/")[2]:
        raise UsageError(f"rm {text}: give REPO:TAG or REPO@DIGEST (no implicit :latest)")
    try:
        return split_reference(text)
    except InvalidReference as exc:
        raise UsageError(f"rm {text}: {exc}") from None


def _rm(args: argparse.Namespace) -> int:
    from .registry._digest import is_digest

    repository, reference = _rm_reference(args.reference)
    with _registry(args, args.url) as reg:
        if is_digest(reference):
            return _rm_digest(args, reg, repository, reference)
        return _rm_tag(args, reg, repository, reference)


def _rm_tag(args: argparse.Namespace, reg: Registry, repository: str, tag: str) -> int:
    from .ops._holders import holders_now
    from .ops._tagdelete import delete_tag

    if not args.yes:
        digest = reg.manifest_digest(repository, tag)
        _, keeps = holders_now(reg, repository, digest)
        others = [t for t in keeps.tags if t != tag]
        print(f"would delete {_name(f'{repository}:{tag}')} ({_name(digest)})")
        if keeps.indexes:
            print(f"its digest is a platform of {_indexes_shown(repository, keeps.indexes)}: "
                  "a registry with tag deletion (Distribution 3) removes the tag only; "
                  "one without it (2.8) would break that image: refused unless "
                  "--break-indexes")
        if others:
            print(f"on registries without tag deletion this also removes: "
                  f"{', '.join(map(_name, others))} (refused unless --all-tags-on-digest)")
        print("with --yes: the OCI tag delete where the registry serves it (Distribution "
              "3: that tag only), else the manifest by digest after these checks (2.8)")
        print("dry run: nothing deleted; add --yes to delete")
        return EXIT_OK
    try:
        done = delete_tag(reg, repository, tag, delete_other_tags=args.all_tags_on_digest,
                          break_indexes=args.break_indexes)
    except OtherTagsAffected as exc:  # the library's advice is a Python argument
        print(f"reginsight: refused: deleting {_name(f'{repository}:{tag}')} would also "
              f"remove {_tags(repository, exc.tags)} (this registry deletes "
              "tags by their digest); "
              "nothing deleted: add --all-tags-on-digest to delete them too",
              file=sys.stderr)
        return EXIT_REFUSED
    print(f"deleted {_tags(repository, done.removed)} ({_name(done.digest)})")
    print(_tag_method(repository, tag, done.digest, done.method))
    _warn_lost(repository, done.lost)
    return EXIT_OK


def _tag_method(repository: str, tag: str, digest: str, method: str) -> str:
    """Which DELETE removed the tag: they take different things (a tag, a manifest)."""
    if method == "tag":
        return (f"method: the OCI tag delete (DELETE /v2/{_name(repository)}/manifests/"
                f"{_name(tag)}, as Distribution 3 serves it): only that tag is gone, its "
                "manifest stays")
    return (f"method: the manifest deleted by digest (DELETE /v2/{_name(repository)}/"
            f"manifests/{_name(digest)}): this registry has no tag delete (as "
            "Distribution 2.8), and that removes every tag on the digest; checked first "
            "that no tagged index references it and that it takes no tag unasked")


def _warn_lost(repository: str, lost: tuple[str, ...]) -> None:
    if lost:
        print(f"reginsight: warning: also gone: {_tags(repository, lost)}"
              " (moved onto the digest between the check and the deletion)", file=sys.stderr)


def _rm_digest(args: argparse.Namespace, reg: Registry, repository: str, digest: str
               ) -> int:
    from .ops._holders import holders_now
    from .ops._tagdelete import delete_digest

    reg.manifest_digest(repository, digest)  # a missing manifest: NotFound, said clearly
    if not args.yes:
        _, keeps = holders_now(reg, repository, digest)
        print(f"would delete {_name(f'{repository}@{digest}')}")
        if keeps.indexes:
            print(f"it is a platform of {_indexes_shown(repository, keeps.indexes)}, which "
                  "would break: refused unless --break-indexes")
        shown = _tags(repository, keeps.tags)
        print(f"and with it the tags pointing at it: {shown} (refused unless "
              "--all-tags-on-digest)" if keeps.tags else "no tag points at it")
        print("dry run: nothing deleted; add --yes to delete")
        return EXIT_OK
    try:
        done = delete_digest(reg, repository, digest, delete_tags=args.all_tags_on_digest,
                             break_indexes=args.break_indexes)
    except OtherTagsAffected as exc:
        shown = _tags(repository, exc.tags)
        print(f"reginsight: refused: deleting {_name(f'{repository}@{digest}')} would also "
              f"remove the tags {shown}; nothing deleted: add --all-tags-on-digest to "
              "delete them too", file=sys.stderr)
        return EXIT_REFUSED
    shown = _tags(repository, done.removed)
    print(f"deleted {_name(f'{repository}@{digest}')}"
          + (f" and the tags {shown}" if shown else ""))
    if done.broken:
        print(f"broke {_indexes_shown(repository, done.broken)}")
    _warn_lost(repository, done.lost)
    return EXIT_OK


def _indexes_shown(repository: str, tags: tuple[str, ...]) -> str:
    return f"the tagged index{'es' if len(tags) > 1 else ''} " + _tags(repository, tags)


def _catalog_hint(args: argparse.Namespace, refused: CatalogUnavailable) -> str:
    from .inventory._selection import is_glob

    if args.command == "ls":
        hint = "reginsight ls URL REPO lists one repository's tags"
    else:
        globs = [name for name in _repositories(getattr(args, "repositories", None)) or []
                 if is_glob(name)]
        hint = (f"globs ({', '.join(globs)}) need the catalog; " if globs else "") + (
            "name the repositories: --repositories NAME[,NAME...], e.g. "
            "--repositories library/alpine,team/app")
    if refused.status == 401 and not args.username:
        hint += "\n  or give credentials (-u NAME --password-stdin): the catalog may need them"
    return hint


def _show_warning(message: Warning | str, category: type[Warning], filename: str,
                  lineno: int, file: object = None, line: str | None = None) -> None:
    # a warning on the command line is news for the user, not a source location
    print(f"reginsight: warning: {_message(message)}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # the command itself, owning its streams
        _tolerant_streams()
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _run(args)


def _tolerant_streams() -> None:
    """Characters the terminal's encoding lacks (a name in a UTF-8 registry, shown on a
    C locale) printed as escapes, not a UnicodeEncodeError halfway through a listing."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def _run(args: argparse.Namespace) -> int:
    try:
        if args.command == "report":
            return _report(args)
        if args.command == "crawl":
            return _crawl_and_save(args)
        if args.command == "gc-preview":
            return _gc_preview(args)
        if args.command == "ls":
            if args.repository:
                _check_repository(args.repository)
            with _registry(args, args.url) as reg:
                listing = None if args.repository else reg.catalog()
                names = reg.tags(args.repository) if listing is None else listing.names
            for name in names:
                print(_name(name))
            for entry in listing.invalid if listing is not None else ():
                print(f"reginsight: warning: the catalog lists {_name(entry.shown)}, not a "
                      f"repository name ({_message(entry.problem)}); left out",
                      file=sys.stderr)
            return EXIT_OK
        return _rm(args)
    except UsageError as exc:
        print(f"reginsight: {_message(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except CatalogUnavailable as exc:
        print(f"reginsight: {_message(exc)}\n  {_catalog_hint(args, exc)}", file=sys.stderr)
        return EXIT_ERROR
    except BreaksIndex as exc:
        print(f"reginsight: refused: {_message(exc)}: add --break-indexes to delete it "
              "anyway (those images then fail to pull)", file=sys.stderr)
        return EXIT_REFUSED
    except (OtherTagsAffected, TagMoved) as exc:
        print(f"reginsight: refused: {_message(exc)}", file=sys.stderr)
        return EXIT_REFUSED
    except ReginsightError as exc:  # every other error of ours: one line, no traceback
        print(f"reginsight: {_message(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        print(f"reginsight: {_message(exc.strerror or exc)}: {printable(exc.filename or '')}",
              file=sys.stderr)
        return EXIT_ERROR
    except UnicodeEncodeError as exc:  # a file name of another encoding, past our checks
        print(f"reginsight: {printable(exc.object, limit=NAME_LIMIT)}: a name that is not "
              "UTF-8 (bytes of another encoding) where one must be: rename it",
              file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
