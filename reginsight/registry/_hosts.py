"""What reginsight knows about hosts, in one place: Docker Hub's names, which
network a host is in, which hosts registry traffic must never reach, a URL's
origin, and URLs made safe for messages (no credential, no token)."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit, urlunsplit

#: Docker Hub's API endpoint, which docker calls ``docker.io``.
DOCKER_HUB_API = "registry-1.docker.io"
#: Every name docker accepts for Docker Hub; all mean :data:`DOCKER_HUB_API`.
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", DOCKER_HUB_API})

_DEFAULT_PORTS = {"http": 80, "https": 443}
_PRIVATE_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7",
))
_METADATA_HOSTS = frozenset({
    "metadata", "metadata.google.internal", "metadata.goog", "instance-data",
    "instance-data.ec2.internal",
})


def is_docker_hub(host: str | None) -> bool:
    """True for any of Docker Hub's names (case-insensitive)."""
    return (host or "").lower() in DOCKER_HUB_ALIASES


def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1)."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_class(host: str) -> str | None:
    """'loopback', 'private' or 'public' for an IP literal or localhost; None for a
    DNS name (names are not resolved)."""
    if is_loopback_host(host):
        return "loopback"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if any(address in network for network in _PRIVATE_NETWORKS
           if network.version == address.version):
        return "private"
    return "public"


def unsafe_host_reason(host: str) -> str | None:
    """Why ``host`` must never be contacted, or None when it may be."""
    host = host.strip("[]").lower().rstrip(".")
    if host in _METADATA_HOSTS:
        return "a cloud metadata service"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_link_local or address == ipaddress.ip_address("fd00:ec2::254"):
        return "a link-local address (cloud metadata services live there)"
    if address.is_unspecified or address.is_multicast:
        return "not a host address"
    return None


def _netloc(host: str, port: int | None) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port else host


def origin(url: str) -> str:
    """``scheme://host[:port]``, lower case, the scheme's default port left out: two
    URLs are the same origin exactly when these strings are equal."""
    parts = urlsplit(str(url))
    scheme = parts.scheme.lower()
    port = parts.port
    if port == _DEFAULT_PORTS.get(scheme):
        port = None
    return f"{scheme}://{_netloc((parts.hostname or '').lower(), port)}"


def same_origin(a: str, b: str) -> bool:
    """True when both URLs share scheme, host and port (default ports filled in)."""
    return origin(a) == origin(b)


def redact(url: str) -> str:
    """A URL without user info and query, for messages: no credential, no token."""
    parts = urlsplit(str(url))
    return urlunsplit((parts.scheme, _netloc(parts.hostname or "", parts.port),
                       parts.path, "", ""))


def redact_text(url: str) -> str:
    """A user-given URL (maybe not even a valid one) with any ``user:password@`` part
    cut out, for messages."""
    # greedy up to the last "@" before the path: passwords may hold "/" and "@"
    return re.sub(r"//.*@", "//", url)[:200]
