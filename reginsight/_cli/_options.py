"""Flags that several commands share, each beside the function that reads it back:
connection, crawl, storage, collector and cleanup policy."""

from __future__ import annotations

import argparse
from typing import Any

from .._errors import InvalidReference, PlanError
from .._policy import SUGGESTED_POLICY, policy_from_text
from ._output import UsageError, whole

#: requests in flight at most: each is a thread and a connection; past this a crawl
#: only queues in the registry (or trips its rate limit)
MAX_CONCURRENCY = 1024


def connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument("-u", "--username", help="user name (password: --password-stdin)")
    group.add_argument("--password-stdin", action="store_true",
                       help="read the password (or token) from standard input")
    group.add_argument("--ca", metavar="PEM", help="CA bundle to verify TLS with")
    group.add_argument("--insecure", action="store_true",
                       help="do not verify TLS certificates (only when you must)")


def repositories_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repositories", metavar="NAMES", action="append",
                        help='only these repositories: names ("team/app", read directly, '
                             'so registries without a catalog work) or globs ("team/*", '
                             "matched against the catalog); comma-separated or repeated")


def repositories(values: list[str] | None) -> list[str] | None:
    """``--repositories a,b --repositories "team/*"`` as one list (None: all)."""
    if not values:
        return None
    from ..inventory._selection import is_glob
    from ..registry._reference import validate_repository

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


def crawl_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--concurrency", type=whole(1, MAX_CONCURRENCY), default=32,
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


def storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE",
                        help="an fsspec option for a storage URL, e.g. "
                             "endpoint_url=http://127.0.0.1:9000 (repeatable)")


def storage_option_values(args: argparse.Namespace) -> dict[str, str]:
    options = {}
    for pair in args.storage_option:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--storage-option {pair!r}: give KEY=VALUE")
        options[key] = value
    return options


def collector_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--collector", choices=("2", "3"),
                        help="the storage's registry version, whose garbage-collect is "
                             "modelled: 2 (the registry:2 image, Debian's docker-registry) "
                             "or 3 (registry:3); none: each where they differ")


def collector(args: argparse.Namespace) -> str | None:
    return args.collector and f"distribution-{args.collector}"


def policy_options(parser: argparse.ArgumentParser, *, what: str) -> None:
    """--keep-last, --older-than, --protect: ``what`` says what they decide."""
    policy = parser.add_argument_group(
        "cleanup policy", f"{what}: an image is deleted when no rule keeps it. "
        "--older-than 0d or '' turns the age rule off, --protect '' the protection; "
        "--keep-last 0 keeps no image for being new")
    policy.add_argument("--keep-last", type=whole(0), metavar="N",
                        default=SUGGESTED_POLICY["keep_last"],
                        help="keep the newest N images of each repository (default: "
                             "%(default)s)")
    policy.add_argument("--older-than", metavar="AGE", default=SUGGESTED_POLICY["older_than"],
                        help="keep images newer than AGE, e.g. 90d, 26w, 12h (default: "
                             "%(default)s)")
    policy.add_argument("--protect", metavar="REGEX", default=SUGGESTED_POLICY["protect"],
                        help="keep tags matching REGEX (default: %(default)s)")


def policy(args: argparse.Namespace) -> dict[str, Any]:
    """plan_cleanup's rules from the policy flags, checked before anything is read."""
    try:
        return policy_from_text(keep_last=args.keep_last, older_than=args.older_than,
                                protect=args.protect)
    except PlanError as exc:
        raise UsageError(flag_words(exc)) from None


def flag_words(exc: PlanError) -> str:
    """A plan_cleanup complaint in the words of the command line: ``older_than='x'``
    becomes ``--older-than 'x'``."""
    text = str(exc)
    for argument, flag in (("keep_last=", "--keep-last "), ("older_than=", "--older-than "),
                           ("protect=", "--protect ")):
        text = text.replace(argument, flag)
    return text
