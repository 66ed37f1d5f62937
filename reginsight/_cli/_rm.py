"""``reginsight rm URL REPO:TAG|REPO@DIGEST``: delete one tag, or one manifest by
digest; a dry run unless ``--yes``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from .._errors import InvalidReference, OtherTagsAffected
from ._options import connection_options
from ._output import EXIT_OK, EXIT_REFUSED, UsageError, name, tags_shown
from ._targets import registry

if TYPE_CHECKING:
    from ..registry._client import Registry


def add(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
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
    parser.add_argument("url", metavar="URL")
    parser.add_argument("reference", metavar="REPO:TAG|REPO@DIGEST")
    parser.add_argument("--yes", action="store_true", help="really delete")
    parser.add_argument("--all-tags-on-digest", action="store_true",
                    help="also delete the tags that share the digest")
    parser.add_argument("--break-indexes", action="store_true",
                    help="delete even a platform of a tagged multi-arch image (that image "
                         "then fails to pull)")
    connection_options(parser)
    parser.set_defaults(run=run)


def _rm_reference(text: str) -> tuple[str, str]:
    """(repository, tag or digest) from ``REPO:TAG`` or ``REPO@DIGEST``; a bare REPO
    is refused rather than taken as :latest."""
    from ..registry._reference import split_reference

    if "@" not in text and ":" not in text.rpartition("/")[2]:
        raise UsageError(f"rm {text}: give REPO:TAG or REPO@DIGEST (no implicit :latest)")
    try:
        return split_reference(text)
    except InvalidReference as exc:
        raise UsageError(f"rm {text}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    from ..registry._digest import is_digest

    repository, reference = _rm_reference(args.reference)
    with registry(args, args.url) as reg:
        if is_digest(reference):
            return _rm_digest(args, reg, repository, reference)
        return _rm_tag(args, reg, repository, reference)


def _rm_tag(args: argparse.Namespace, reg: Registry, repository: str, tag: str) -> int:
    from ..ops._holders import holders_now
    from ..ops._tagdelete import delete_tag

    if not args.yes:
        digest = reg.manifest_digest(repository, tag)
        _, keeps = holders_now(reg, repository, digest)
        others = [t for t in keeps.tags if t != tag]
        print(f"would delete {name(f'{repository}:{tag}')} ({name(digest)})")
        if keeps.indexes:
            print(f"its digest is a platform of {_indexes_shown(repository, keeps.indexes)}: "
                  "a registry with tag deletion (Distribution 3) removes the tag only; "
                  "one without it (2.8) would break that image: refused unless "
                  "--break-indexes")
        if others:
            print(f"on registries without tag deletion this also removes: "
                  f"{', '.join(map(name, others))} (refused unless --all-tags-on-digest)")
        print("with --yes: the OCI tag delete where the registry serves it (Distribution "
              "3: that tag only), else the manifest by digest after these checks (2.8)")
        print("dry run: nothing deleted; add --yes to delete")
        return EXIT_OK
    try:
        done = delete_tag(reg, repository, tag, delete_other_tags=args.all_tags_on_digest,
                          break_indexes=args.break_indexes)
    except OtherTagsAffected as exc:  # the library's advice is a Python argument
        print(f"reginsight: refused: deleting {name(f'{repository}:{tag}')} would also "
              f"remove {tags_shown(repository, exc.tags)} (this registry deletes "
              "tags by their digest); "
              "nothing deleted: add --all-tags-on-digest to delete them too",
              file=sys.stderr)
        return EXIT_REFUSED
    print(f"deleted {tags_shown(repository, done.removed)} ({name(done.digest)})")
    print(_tag_method(repository, tag, done.digest, done.method))
    _warn_lost(repository, done.lost)
    return EXIT_OK


def _tag_method(repository: str, tag: str, digest: str, method: str) -> str:
    """Which DELETE removed the tag: they take different things (a tag, a manifest)."""
    if method == "tag":
        return (f"method: the OCI tag delete (DELETE /v2/{name(repository)}/manifests/"
                f"{name(tag)}, as Distribution 3 serves it): only that tag is gone, its "
                "manifest stays")
    return (f"method: the manifest deleted by digest (DELETE /v2/{name(repository)}/"
            f"manifests/{name(digest)}): this registry has no tag delete (as "
            "Distribution 2.8), and that removes every tag on the digest; checked first "
            "that no tagged index references it and that it takes no tag unasked")


def _warn_lost(repository: str, lost: tuple[str, ...]) -> None:
    if lost:
        print(f"reginsight: warning: also gone: {tags_shown(repository, lost)}"
              " (moved onto the digest between the check and the deletion)", file=sys.stderr)


def _rm_digest(args: argparse.Namespace, reg: Registry, repository: str, digest: str
               ) -> int:
    from ..ops._holders import holders_now
    from ..ops._tagdelete import delete_digest

    reg.manifest_digest(repository, digest)  # a missing manifest: NotFound, said clearly
    if not args.yes:
        _, keeps = holders_now(reg, repository, digest)
        print(f"would delete {name(f'{repository}@{digest}')}")
        if keeps.indexes:
            print(f"it is a platform of {_indexes_shown(repository, keeps.indexes)}, which "
                  "would break: refused unless --break-indexes")
        shown = tags_shown(repository, keeps.tags)
        print(f"and with it the tags pointing at it: {shown} (refused unless "
              "--all-tags-on-digest)" if keeps.tags else "no tag points at it")
        print("dry run: nothing deleted; add --yes to delete")
        return EXIT_OK
    try:
        done = delete_digest(reg, repository, digest, delete_tags=args.all_tags_on_digest,
                             break_indexes=args.break_indexes)
    except OtherTagsAffected as exc:
        shown = tags_shown(repository, exc.tags)
        print(f"reginsight: refused: deleting {name(f'{repository}@{digest}')} would also "
              f"remove the tags {shown}; nothing deleted: add --all-tags-on-digest to "
              "delete them too", file=sys.stderr)
        return EXIT_REFUSED
    shown = tags_shown(repository, done.removed)
    print(f"deleted {name(f'{repository}@{digest}')}"
          + (f" and the tags {shown}" if shown else ""))
    if done.broken:
        print(f"broke {_indexes_shown(repository, done.broken)}")
    _warn_lost(repository, done.lost)
    return EXIT_OK


def _indexes_shown(repository: str, tags: tuple[str, ...]) -> str:
    return f"the tagged index{'es' if len(tags) > 1 else ''} " + tags_shown(repository, tags)
