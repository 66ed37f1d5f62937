"""The ``reginsight`` command line.

Exit codes: 0 success; 1 a registry, network or file error (message on stderr);
2 bad usage; 3 refused for safety (``rm`` would take other tags, or a tag moved), or
(``gc-preview``) the garbage collector would break tagged images.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import (
    CatalogUnavailable,
    InvalidReference,
    OtherTagsAffected,
    RegistryError,
    TagMoved,
)

if TYPE_CHECKING:
    from .inventory._inventory import Inventory
    from .registry._client import Registry

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3
#: the sample inventory, shipped inside the package (data/sample links to it)
SAMPLE = Path(__file__).resolve().parent / "sample"

EPILOG = """\
examples:
  reginsight report                          report on the bundled sample -> report.html
  reginsight report localhost:5000 -o r.html crawl a registry, then report
  reginsight crawl ghcr.io -u me --password-stdin -o inventory/ --repositories me/app
                                             name repositories where there is no catalog
                                             (GHCR, Docker Hub, GitLab); token on stdin
  reginsight report inventory/               report on a saved inventory
  reginsight ls localhost:5000               list repositories (ls URL REPO: its tags)
  reginsight rm localhost:5000 team/app:old  show what would be deleted (add --yes)
  reginsight report /var/lib/registry        report on the registry's own storage
  reginsight gc-preview s3://bucket/registry what garbage-collect would delete and break

credentials: --username/--password-stdin, else ~/.docker/config.json (auths and
credential helpers), else anonymous. exit codes: 0 ok, 1 error, 2 usage, 3 refused.
"""


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
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE",
                        help="an fsspec option for a storage URL, e.g. "
                             "endpoint_url=http://127.0.0.1:9000 (repeatable)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reginsight", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="What is in a container registry, what it costs, what a cleanup frees.",
        epilog=EPILOG)
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
    _crawl_options(report)
    _storage_options(report)
    _connection_options(report)

    gc = commands.add_parser(
        "gc-preview", help="what the registry's garbage-collect would delete, and break",
        description="Read the registry's storage at ROOT (read-only) and print what "
                    "`docker-registry garbage-collect` (Distribution 2.x) would delete, "
                    "and the tags whose images it would break. Exit 3 if it would break "
                    "any.")
    gc.add_argument("root", metavar="ROOT", help="folder holding docker/registry/v2, or "
                                                 "an fsspec URL (s3://bucket/root)")
    gc.add_argument("--delete-untagged", action="store_true",
                    help="model garbage-collect --delete-untagged")
    gc.add_argument("--no-progress", action="store_true", help="no progress bar")
    _storage_options(gc)

    crawl = commands.add_parser("crawl", help="crawl a registry into a saved inventory",
                                description="Crawl URL and save the inventory (Parquet).")
    crawl.add_argument("url", metavar="URL")
    crawl.add_argument("-o", "--output", required=True, metavar="DIR")
    _crawl_options(crawl)
    _connection_options(crawl)

    ls = commands.add_parser("ls", help="list repositories, or the tags of one",
                             description="List the repositories of URL, or the tags of REPO.")
    ls.add_argument("url", metavar="URL", help="e.g. localhost:5000 or ghcr.io")
    ls.add_argument("repository", metavar="REPO", nargs="?")
    _connection_options(ls)

    rm = commands.add_parser(
        "rm", help="delete one tag (dry run unless --yes)",
        description="Delete REPO:TAG and nothing else. Registries without tag deletion "
                    "delete the digest, and with it every tag on it: then the other tags "
                    "are listed and the deletion refused unless --all-tags-on-digest.")
    rm.add_argument("url", metavar="URL")
    rm.add_argument("reference", metavar="REPO:TAG")
    rm.add_argument("--yes", action="store_true", help="really delete")
    rm.add_argument("--all-tags-on-digest", action="store_true",
                    help="also delete the other tags that share the digest")
    _connection_options(rm)
    return parser


def _registry(args: argparse.Namespace, url: str) -> Registry:
    from .registry._client import Registry

    password = sys.stdin.readline().rstrip("\r\n") if args.password_stdin else None
    return Registry(url, args.username, password, verify=args.ca or True,
                    insecure=args.insecure)


def _crawl(args: argparse.Namespace, url: str) -> Inventory:
    from .inventory._crawl import crawl

    with _registry(args, url) as reg:
        return crawl(reg, _repositories(args.repositories), concurrency=args.concurrency,
                     progress=not args.no_progress)


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


def _is_storage(target: str) -> bool:
    """A storage root: an fsspec URL (s3://, gs://, az://, file://...) or a folder
    holding docker/registry/v2."""
    if "://" in target and not target.startswith(("http://", "https://")):
        return True
    return (Path(target) / "docker" / "registry" / "v2").is_dir()


def _scan(args: argparse.Namespace, root: str) -> Inventory:
    from .inventory._scan import scan_storage

    options = {}
    for pair in args.storage_option:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--storage-option {pair!r}: give KEY=VALUE")
        options[key] = value
    return scan_storage(root, storage_options=options, progress=not args.no_progress)


class UsageError(Exception):
    """Bad command-line input found after parsing."""


def _gc_preview(args: argparse.Namespace) -> int:
    from ._units import format_bytes
    from .analysis._disk import broken_images, disk_usage, gc_preview

    inv = _scan(args, args.root)
    for row in disk_usage(inv).itertuples(index=False):
        unit = "uploads" if row.category == "uploads" else "blobs"
        print(f"{row.category:>13}  {row.blobs:>8} {unit:<8}{format_bytes(row.bytes):>12}")
    preview = gc_preview(inv, delete_untagged=args.delete_untagged)
    blobs = preview[preview["kind"] != "revision"]
    command = "garbage-collect" + (" --delete-untagged" if args.delete_untagged else "")
    print(f"\n{command} would delete {len(blobs)} blobs, {format_bytes(int(blobs['size'].sum()))}")
    broken = broken_images(preview)
    if len(inv.errors):
        print(f"{len(inv.errors)} problems in the storage (see scan_storage(...).errors)")
    if broken.empty:
        return EXIT_OK
    print(f"\nit would BREAK {len(broken)} tagged images (their pulls would fail):")
    for row in broken.itertuples(index=False):
        print(f"  {row.tag}: loses {row.lost} blobs/revisions ({row.reason})")
    print("\nsafe instead: ri.plan_cleanup(ri.scan_storage(ROOT), untagged=True), "
          "ri.apply_cleanup(reg, plan, dry_run=False), then a plain garbage-collect")
    return EXIT_REFUSED


def _report(args: argparse.Namespace) -> int:
    from .inventory._inventory import Inventory
    from .present._report import export_report

    target = args.target
    if target is None:
        if not (SAMPLE / "inventory.json").exists():
            print(f"reginsight: the sample inventory is missing ({SAMPLE})", file=sys.stderr)
            return EXIT_ERROR
        inv = Inventory.load(SAMPLE)
    elif _is_storage(target):
        inv = _scan(args, target)
    elif Path(target).is_dir():
        inv = Inventory.load(target)
    else:
        inv = _crawl(args, target)
    path = export_report(inv, args.output)
    print(f"wrote {path} ({inv.registry}, {len(inv.tags)} tags)", file=sys.stderr)
    _warn_errors(inv)
    return EXIT_OK


def _warn_errors(inv: Inventory) -> None:
    """What could not be read must not pass unnoticed: its count, and the first."""
    if inv.errors.empty:
        return
    first = inv.errors.iloc[0]
    where = " ".join(str(part) for part in (first["repository"], first["reference"]) if part)
    count = f"{len(inv.errors)} read{'s' if len(inv.errors) > 1 else ''} failed"
    print(f"reginsight: warning: {count} (the inventory's errors frame); the first, "
          f"{where} ({first['stage']}): {first['error']}", file=sys.stderr)


def _rm(args: argparse.Namespace) -> int:
    from .ops._tagdelete import delete_tag, tags_pointing_at
    from .registry._digest import is_digest
    from .registry._reference import split_reference

    repository, tag = split_reference(args.reference)
    if is_digest(tag):
        print("reginsight: rm takes REPO:TAG, not a digest", file=sys.stderr)
        return EXIT_USAGE
    with _registry(args, args.url) as reg:
        if not args.yes:
            digest = reg.manifest_digest(repository, tag)
            sharing = tags_pointing_at(reg, repository, digest)
            others = [t for t in sharing if t != tag]
            print(f"would delete {repository}:{tag} ({digest})")
            if others:
                print(f"on registries without tag deletion this also removes: "
                      f"{', '.join(others)} (refused unless --all-tags-on-digest)")
            print("dry run: nothing deleted; add --yes to delete")
            return EXIT_OK
        done = delete_tag(reg, repository, tag, delete_other_tags=args.all_tags_on_digest)
    print(f"deleted {', '.join(f'{repository}:{t}' for t in done.removed)} "
          f"({done.digest}, by {done.method})")
    return EXIT_OK


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
    print(f"reginsight: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        if args.command == "report":
            return _report(args)
        if args.command == "crawl":
            inv = _crawl(args, args.url)
            inv.save(args.output)
            print(f"saved {inv!r} to {args.output}", file=sys.stderr)
            _warn_errors(inv)
            return EXIT_OK
        if args.command == "gc-preview":
            return _gc_preview(args)
        if args.command == "ls":
            with _registry(args, args.url) as reg:
                names = reg.tags(args.repository) if args.repository else reg.repositories()
            for name in names:
                print(name)
            return EXIT_OK
        return _rm(args)
    except UsageError as exc:
        print(f"reginsight: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CatalogUnavailable as exc:
        print(f"reginsight: {exc}\n  {_catalog_hint(args, exc)}", file=sys.stderr)
        return EXIT_ERROR
    except (OtherTagsAffected, TagMoved) as exc:
        print(f"reginsight: refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except RegistryError as exc:
        print(f"reginsight: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        print(f"reginsight: {exc.strerror or exc}: {exc.filename or ''}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
