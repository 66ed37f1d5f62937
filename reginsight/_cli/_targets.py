"""What a TARGET names, and getting an inventory of it: a registry (crawled), a saved
inventory (loaded), a registry's storage root (scanned), or the bundled sample.

A registry is ``http(s)://HOST[:PORT]`` or a bare ``HOST[:PORT]`` (one with a dot or a
colon, or ``localhost``; plain HTTP only for loopback hosts); a saved inventory or a
storage root is an existing directory; ``s3://``, ``gs://``... are storage roots.
Anything else is refused as bad usage, before any request is sent."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import InvalidReference
from ._options import repositories, storage_option_values
from ._output import UsageError

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory
    from ..registry._client import Registry

#: a bare registry host: name or IPv4 or [IPv6], an optional port, an optional "/"
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)"
                   r"(?::[0-9]+)?/?")

NOT_A_REGISTRY = "not a registry URL (give http(s)://HOST or HOST:PORT)"


def looks_like_registry(target: str) -> bool:
    """``http(s)://...``, or a bare ``HOST[:PORT]`` as docker tells a registry from a
    path: with a dot or a colon, or ``localhost``."""
    if target.startswith(("http://", "https://")):
        return True
    if "://" in target or not _HOST.fullmatch(target):
        return False
    return "." in target or ":" in target or target.rstrip("/") == "localhost"


def shown(target: str) -> str:
    """A target as a message may repeat it: never a ``user:password@`` part."""
    from ..registry._hosts import redact_text

    text = redact_text(target) if "://" in target else target.rsplit("@", 1)[-1]
    if text != target:
        text += " (credentials go in -u NAME --password-stdin, never in the URL)"
    return text


def registry(args: argparse.Namespace, url: str) -> Registry:
    """The Registry at ``url``, with the connection flags (a password from stdin)."""
    from ..registry._client import Registry
    from ..registry.protocol import parse_registry_url

    if not looks_like_registry(url):
        raise UsageError(f"{shown(url)}: {NOT_A_REGISTRY}")
    try:
        parse_registry_url(url)
    except InvalidReference as exc:
        raise UsageError(str(exc)) from None
    password = sys.stdin.readline().rstrip("\r\n") if args.password_stdin else None
    return Registry(url, args.username, password, verify=args.ca or True,
                    insecure=args.insecure)


def check_repository(name: str) -> None:
    from ..registry._reference import validate_repository

    try:
        validate_repository(name)
    except InvalidReference as exc:
        raise UsageError(str(exc)) from None


def crawl(args: argparse.Namespace, url: str) -> Inventory:
    """A crawl of ``url`` by a client of its own, closed after."""
    with registry(args, url) as reg:
        return crawl_with(args, reg)


def crawl_with(args: argparse.Namespace, reg: Registry) -> Inventory:
    """A crawl by ``reg`` (a command that deletes afterwards reads the password once)."""
    from ..inventory._crawl import crawl

    options = {"concurrency": args.concurrency, "progress": not args.no_progress}
    if not args.scheduler:
        return crawl(reg, repositories(args.repositories), **options)
    try:
        from distributed import Client
    except ImportError:
        raise UsageError("--scheduler needs Dask: pip install 'reginsight[dask]'") from None
    with Client(args.scheduler, timeout=30) as client:
        return crawl(reg, repositories(args.repositories), cluster=client, **options)


def scan(args: argparse.Namespace, root: str) -> Inventory:
    from ..inventory._scan import scan_storage

    return scan_storage(root, storage_options=storage_option_values(args),
                        progress=not args.no_progress)


def target_kind(target: str) -> str:
    """What a TARGET is: "registry", "storage" or "inventory".

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
    if looks_like_registry(target):
        return "registry"
    raise UsageError(f"{shown(target)}: no such directory, and {NOT_A_REGISTRY}")


def inventory_of(args: argparse.Namespace, target: str | None) -> Inventory:
    """The inventory of TARGET (None: the bundled sample): crawled, scanned or loaded."""
    from ..inventory._inventory import Inventory
    from ..inventory._sample import is_sample, sample

    if target is None:
        return sample()
    kind = target_kind(target)
    if kind == "storage":
        return scan(args, target)
    if kind == "inventory":
        return sample() if is_sample(target) else Inventory.load(target)
    return crawl(args, target)
