"""Image references: the grammar of github.com/distribution/reference, Docker Hub rules.

A reference is ``[domain/]path[:tag][@digest]``. Each piece is checked on its
own rather than with one big regular expression, so that an error can say
which piece is wrong. Names reach URLs (``/v2/<name>/manifests/<reference>``),
so anything outside the grammar (``..``, ``%2e``, ``?``, ``#``, whitespace) is
rejected here, before any request is built.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from .._errors import InvalidDigest, InvalidReference
from ._digest import Digest, _show, is_digest, validate_digest
from ._hosts import DOCKER_HUB_ALIASES, DOCKER_HUB_API

#: The API endpoint of Docker Hub, which docker calls ``docker.io``.
DOCKER_HUB_REGISTRY = DOCKER_HUB_API
# Docker Hub keeps official images under library/; "ubuntu" means "library/ubuntu".
_OFFICIAL_PREFIX = "library/"

#: Longest repository path (without domain), as in distribution/reference.
NAME_MAX_LENGTH = 255
#: Longest tag.
TAG_MAX_LENGTH = 128
# No valid reference comes close (253-char host + path + tag + sha512 digest is
# under 800); the cap only keeps pathological input cheap and messages short.
_REFERENCE_MAX_LENGTH = 1024

_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*")
# re.ASCII: without it \w would accept letters and digits of any script.
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"(?P<host>{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
    r"(?::(?P<port>[0-9]+))?"
)
_UPPERCASE = re.compile(r"[A-Z]")


def _not_str(what: str, value: object) -> InvalidReference:
    return InvalidReference(f"{what} must be a str, not {type(value).__name__}")


def _repository_problem(name: str) -> str | None:
    """Why ``name`` is not a repository path, or None if it is one."""
    if not name:
        return "repository name is empty"
    if len(name) > NAME_MAX_LENGTH:
        return f"repository name is {len(name)} characters long, at most {NAME_MAX_LENGTH}"
    for component in name.split("/"):
        if not component:
            return "repository name has an empty path component (leading, trailing or '//')"
        if not _PATH_COMPONENT.fullmatch(component):
            if _UPPERCASE.search(component):
                return "repository names must be lowercase"
            return (
                f"invalid path component {_show(component)}: use [a-z0-9] separated by "
                "'.', '_', '__' or dashes, starting and ending with [a-z0-9]"
            )
    return None


def _tag_problem(tag: str) -> str | None:
    """Why ``tag`` is not a tag, or None if it is one."""
    if not tag:
        return "tag is empty"
    if len(tag) > TAG_MAX_LENGTH:
        return f"tag is {len(tag)} characters long, at most {TAG_MAX_LENGTH}"
    if not _TAG.fullmatch(tag):
        return "a tag is [A-Za-z0-9_] followed by [A-Za-z0-9_.-]"
    return None


def _domain_problem(domain: str) -> str | None:
    """Why ``domain`` is not a registry ``host[:port]``, or None if it is one."""
    match = _DOMAIN.fullmatch(domain)
    if match is None:
        return f"invalid registry domain {_show(domain)}"
    port = match["port"]
    # Beyond the grammar: a port no URL can use is caught here, not at connect time.
    # The length check comes first so int() never sees a huge digit string.
    if port is not None and (len(port) > 5 or not 0 < int(port) <= 65535):
        return f"registry port {_show(port)} is not between 1 and 65535"
    return None


def _validated(what: str, value: object, problem_of: Callable[[str], str | None]) -> str:
    """``value`` if it is a str ``problem_of`` finds nothing wrong with, else raise
    InvalidReference naming ``what`` it should have been."""
    if not isinstance(value, str):
        raise _not_str(what, value)
    problem = problem_of(value)
    if problem is not None:
        raise InvalidReference(f"invalid {what} {_show(value)}: {problem}")
    return value


def validate_repository(name: str) -> str:
    """Return ``name`` if it is a repository path (no domain), else raise InvalidReference."""
    return _validated("repository name", name, _repository_problem)


def validate_tag(tag: str) -> str:
    """Return ``tag`` if it is a valid tag, else raise InvalidReference."""
    return _validated("tag", tag, _tag_problem)


def validate_reference(ref: str) -> str:
    """Return ``ref`` if it is a tag or a digest (the last part of a manifests URL).

    Tags cannot contain ``:``, so anything with one is judged as a digest and
    fails with :class:`InvalidDigest`; anything else fails with InvalidReference.
    """
    if not isinstance(ref, str):
        raise _not_str("manifest reference", ref)
    if is_digest(ref):
        validate_digest(ref)
        return ref
    problem = _tag_problem(ref)
    if problem is not None:
        raise InvalidReference(
            f"invalid manifest reference {_show(ref)}: neither a digest nor a tag ({problem})"
        )
    return ref


@dataclass(frozen=True)
class Reference:
    """A parsed image reference; every field is validated on construction.

    ``repository`` is the path used in ``/v2/<repository>/...`` URLs.
    """

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.registry, str):
            raise _not_str("registry", self.registry)
        problem = _domain_problem(self.registry)
        if problem is not None:
            raise InvalidReference(problem)
        validate_repository(self.repository)
        if self.tag is not None:
            validate_tag(self.tag)
        if self.digest is not None:
            validate_digest(self.digest)

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}{self._suffix()}"

    def _suffix(self) -> str:
        tag = f":{self.tag}" if self.tag is not None else ""
        digest = f"@{self.digest}" if self.digest is not None else ""
        return tag + digest

    @property
    def reference(self) -> str:
        """What to put in ``/v2/<name>/manifests/<reference>``: digest, else tag, else latest."""
        return self.digest or self.tag or "latest"

    @property
    def name(self) -> str:
        """``registry/repository``, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def familiar(self) -> str:
        """The short form docker shows: ``ubuntu:latest`` rather than the full name."""
        if self.registry != DOCKER_HUB_REGISTRY:
            return str(self)
        path = self.repository
        short = path.removeprefix(_OFFICIAL_PREFIX)
        # library/a/b keeps its prefix: docker only shortens official single names.
        if short != path and "/" not in short:
            path = short
        # Unlike docker, keep the registry when the short form would be read back with
        # its first component as a domain ("a.b/c", "localhost/c").
        first, slash, _ = path.partition("/")
        if slash and ("." in first or first == "localhost"):
            return str(self)
        return path + self._suffix()

    def with_tag(self, tag: str) -> Reference:
        """A copy with ``tag``; a digest, if any, is kept and still wins in ``reference``."""
        return replace(self, tag=tag)

    def with_digest(self, digest: str | Digest) -> Reference:
        """A copy pinned to ``digest``; the tag, if any, is kept."""
        if isinstance(digest, Digest):
            digest = str(digest)
        return replace(self, digest=digest)


def parse_reference(text: str, *, default_tag: str | None = "latest") -> Reference:
    """Parse ``[domain/]path[:tag][@digest]`` with docker's normalisation.

    Without a domain, or with ``docker.io``/``index.docker.io``, the registry is
    Docker Hub's ``registry-1.docker.io``, where a one-component path gets the
    ``library/`` prefix. When neither tag nor digest is given, the tag is
    ``default_tag`` (None leaves it unset).
    """
    if not isinstance(text, str):
        raise _not_str("reference", text)
    if not text:
        raise InvalidReference("reference is empty")
    if len(text) > _REFERENCE_MAX_LENGTH:
        raise InvalidReference(
            f"invalid reference {_show(text)}: longer than {_REFERENCE_MAX_LENGTH} characters"
        )
    if default_tag is not None:
        validate_tag(default_tag)

    def fail(problem: str) -> InvalidReference:
        return InvalidReference(f"invalid reference {_show(text)}: {problem}")

    remainder, at, digest = text.partition("@")
    if at:
        try:
            validate_digest(digest)
        except InvalidDigest as exc:
            raise InvalidDigest(f"invalid reference {_show(text)}: {exc}") from None
    else:
        digest = None

    # docker's splitDockerDomain: the first part is a domain only if it looks like one.
    first, slash, rest = remainder.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain, remainder = first, rest
        problem = _domain_problem(domain)
        if problem is not None:
            raise fail(problem)
    else:
        domain = None

    # The domain is gone, and paths cannot contain ':', so a ':' here starts the tag.
    path, colon, tag = remainder.partition(":")
    if colon:
        problem = _tag_problem(tag)
        if problem is not None:
            raise fail(problem)
    else:
        tag = default_tag if digest is None else None

    registry = DOCKER_HUB_REGISTRY if domain is None or domain in DOCKER_HUB_ALIASES else domain
    # registry-1.docker.io written out is Docker Hub too, so it gets the same prefix.
    if registry == DOCKER_HUB_REGISTRY and path and "/" not in path:
        path = _OFFICIAL_PREFIX + path
    problem = _repository_problem(path)
    if problem is not None:
        raise fail(problem)
    return Reference(registry, path, tag, digest)


def split_reference(text: str) -> tuple[str, str]:
    """A reference within one registry: ``team/app:1.0`` -> (``team/app``, ``1.0``);
    ``team/app@sha256:..`` -> (``team/app``, the digest); no tag -> ``latest``. No
    registry host: the Registry object says where."""
    if not isinstance(text, str):
        raise InvalidReference("reference must be a string")
    if "@" in text:
        repository, _, reference = text.partition("@")
    else:
        head, _, last = text.rpartition("/")
        name, sep, tag = last.partition(":")
        repository = f"{head}/{name}" if head else name
        reference = tag if sep else "latest"
    return validate_repository(repository), validate_reference(reference)
