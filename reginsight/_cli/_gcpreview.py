"""``reginsight gc-preview ROOT``: what the registry's garbage-collect would delete,
and the images it would break, for each collector where they differ."""

from __future__ import annotations

import argparse

from .._errors import CollectorWouldStop
from ._options import collector, collector_option, storage_options
from ._output import EXIT_OK, EXIT_REFUSED, message, name
from ._targets import scan, shown


def add(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "gc-preview", help="what the registry's garbage-collect would delete, and break",
        description="Read the registry's storage at ROOT (read-only) and print what "
                    "the registry's `garbage-collect` would delete, and the images it "
                    "would break. Distribution 2.x and 3.x collect differently and the "
                    "storage does not say which one writes it: without --collector, "
                    "both are shown where they differ. Exit 3 if it would break any "
                    "image or stop before deleting anything.")
    parser.add_argument("root", metavar="ROOT", help="folder holding docker/registry/v2, or "
                                                     "an fsspec URL (s3://bucket/root)")
    parser.add_argument("--delete-untagged", action="store_true",
                        help="model garbage-collect --delete-untagged")
    collector_option(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    storage_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from .._units import count, format_bytes
    from ..analysis._disk import VERSION, disk_usage, gc_outcomes

    inv = scan(args, args.root)
    for row in disk_usage(inv).itertuples(index=False):
        what = count(row.blobs, "upload" if row.category == "uploads" else "blob")
        print(f"{row.category:>13}  {what:>16}{format_bytes(row.bytes):>12}")
    if len(inv.errors):
        print(f"{len(inv.errors)} problems in the storage (see scan_storage(...).errors)")
    command = "garbage-collect" + (" --delete-untagged" if args.delete_untagged else "")
    chosen = collector(args)
    outcomes = gc_outcomes(inv, delete_untagged=args.delete_untagged, collector=chosen)
    harmful = False
    for collector_name, outcome in outcomes.items():
        harmful |= print_outcome(
            outcome, f"{VERSION[collector_name]} {command}" if collector_name else command)
    if len(outcomes) > 1:
        print("\nthe two collectors differ here, and the storage does not say which one "
              "runs: give --collector 2 or --collector 3 (`registry --version` on the "
              "registry's host; the image tag registry:2 or registry:3)")
    elif chosen is None:
        print("(the same on Distribution 2.x and 3.x)")
    if harmful and args.delete_untagged:
        print("\n" + safe_untagged_cleanup(args))
    return EXIT_REFUSED if harmful else EXIT_OK


def safe_untagged_cleanup(args: argparse.Namespace) -> str:
    """The command that deletes the untagged manifests without breaking an image: by
    digest through the API, each checked, then a plain garbage-collect."""
    flags = f" --collector {args.collector}" if args.collector else ""
    options = " (and the same --storage-option flags)" if args.storage_option else ""
    return (f"safe instead: reginsight cleanup URL --untagged --storage {shown(args.root)}"
            f"{flags}{options}, URL being this registry's address: a dry run that lists "
            "the untagged manifests no tagged image needs; add --yes to delete them "
            "through the API, then run a plain garbage-collect (no --delete-untagged)")


def print_outcome(outcome: object, command: str) -> bool:
    """Print one collector's outcome; True when it would break images or stop."""
    from .._units import count, format_bytes
    from ..analysis._disk import broken_images

    if isinstance(outcome, CollectorWouldStop):
        print(f"\n{command} would STOP before deleting anything: {message(outcome.reason)}")
        return True
    blobs = outcome[outcome["kind"] != "revision"]
    print(f"\n{command} would delete {count(len(blobs), 'blob')}, "
          f"{format_bytes(int(blobs['size'].sum()))}")
    broken = broken_images(outcome)
    if broken.empty:
        return False
    print(f"it would BREAK {count(len(broken), 'image')} (their pulls would fail):")
    for row in broken.itertuples(index=False):
        print(f"  {name(row.tag)}: loses {row.lost} blobs/revisions "
              f"({message(row.reason)})")
    return True
