"""Content digests (``algorithm:hex``): parsing, computing, and verifying a stream.

The OCI grammar allows any ``algorithm ":" encoded``, but a digest reginsight
cannot recompute is worthless for verification, so only the algorithms in
:data:`SUPPORTED_ALGORITHMS` are accepted, with exactly their length of
lowercase hex (uppercase would make two spellings of one digest).
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from .._errors import DigestMismatch, InvalidDigest

if TYPE_CHECKING:
    from collections.abc import Callable

#: Algorithm name -> number of lowercase hex characters of its encoded part.
SUPPORTED_ALGORITHMS = MappingProxyType({"sha256": 64, "sha512": 128})

_CONSTRUCTORS: dict[str, Callable[[], hashlib._Hash]] = {
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}

# OCI image-spec descriptor grammar; checked before the algorithm is looked up
# so that the message can tell "malformed" from "unsupported".
_ALGORITHM = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*")
_ENCODED = re.compile(r"[a-zA-Z0-9=_-]+")
_LOWER_HEX = re.compile(r"[0-9a-f]+")

_SHOW_LIMIT = 80


def _show(value: str, limit: int = _SHOW_LIMIT) -> str:
    """``repr`` of a value for a message, cut so a huge input cannot flood logs."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} chars)"


def _problem(algorithm: str, encoded: str) -> str | None:
    """Why ``algorithm:encoded`` is not an acceptable digest, or None if it is."""
    if not algorithm:
        return "the algorithm before ':' is empty"
    if not _ALGORITHM.fullmatch(algorithm):
        return f"malformed algorithm {_show(algorithm)}"
    if not encoded:
        return "the encoded part after ':' is empty"
    if not _ENCODED.fullmatch(encoded):
        return "the encoded part may only contain [a-zA-Z0-9=_-]"
    expected_length = SUPPORTED_ALGORITHMS.get(algorithm)
    if expected_length is None:
        supported = ", ".join(SUPPORTED_ALGORITHMS)
        return f"unsupported algorithm {algorithm!r} (supported: {supported})"
    if len(encoded) != expected_length:
        return f"{algorithm} needs {expected_length} hex characters, got {len(encoded)}"
    if not _LOWER_HEX.fullmatch(encoded):
        if _LOWER_HEX.fullmatch(encoded.lower()):
            return "hex must be lowercase"
        return "the encoded part is not hexadecimal"
    return None


@dataclass(frozen=True)
class Digest:
    """A validated content digest, e.g. ``sha256:`` followed by 64 hex characters."""

    algorithm: str
    hex: str

    def __post_init__(self) -> None:
        # Validating here keeps every Digest instance trustworthy, however it was built.
        if not isinstance(self.algorithm, str) or not isinstance(self.hex, str):
            raise InvalidDigest(
                "digest algorithm and hex must be str, not "
                f"{type(self.algorithm).__name__} and {type(self.hex).__name__}"
            )
        problem = _problem(self.algorithm, self.hex)
        if problem is not None:
            raise InvalidDigest(f"invalid digest {_show(str(self))}: {problem}")

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``algorithm:hex``; raise :class:`InvalidDigest` saying why it is bad."""
        if not isinstance(text, str):
            raise InvalidDigest(f"digest must be a str, not {type(text).__name__}")
        if not text:
            raise InvalidDigest("digest is empty")
        algorithm, sep, encoded = text.partition(":")
        if not sep:
            raise InvalidDigest(f"invalid digest {_show(text)}: expected 'algorithm:hex'")
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        """The digest of ``data`` (bytes-like) computed with ``algorithm``."""
        hasher = cls._new_hasher(algorithm)
        hasher.update(data)
        return cls(algorithm, hasher.hexdigest())

    def hasher(self) -> hashlib._Hash:
        """A fresh hashlib object for this digest's algorithm."""
        return self._new_hasher(self.algorithm)

    @staticmethod
    def _new_hasher(algorithm: str) -> hashlib._Hash:
        # isinstance first: an unhashable argument would make the lookup raise TypeError.
        if not isinstance(algorithm, str) or algorithm not in _CONSTRUCTORS:
            supported = ", ".join(SUPPORTED_ALGORITHMS)
            raise InvalidDigest(
                f"unsupported digest algorithm {algorithm!r} (supported: {supported})"
            )
        return _CONSTRUCTORS[algorithm]()


def parse_digest(text: str) -> Digest:
    """Parse ``algorithm:hex`` into a :class:`Digest` (same as :meth:`Digest.parse`)."""
    return Digest.parse(text)


def is_digest(reference: str) -> bool:
    """True when a manifest reference names a digest, not a tag: a tag never holds ':'.
    (Whether the digest is well formed is :func:`validate_digest`'s question.)"""
    return ":" in reference


def validate_digest(text: str) -> str:
    """Return the canonical form of a digest string, or raise :class:`InvalidDigest`."""
    return _canonical(text) if isinstance(text, str) else str(Digest.parse(text))


@functools.lru_cache(maxsize=1 << 16)
def _canonical(text: str) -> str:
    # remembered: a registry names its shared base layers thousands of times
    return str(Digest.parse(text))


class DigestVerifier:
    """Hash a stream while it is read, then check it against the expected digest.

    ::

        verifier = DigestVerifier(expected)
        for chunk in body:
            verifier.update(chunk)
        verifier.verify()  # raises DigestMismatch
    """

    def __init__(self, expected: str | Digest) -> None:
        self.expected = expected if isinstance(expected, Digest) else Digest.parse(expected)
        self._hasher = self.expected.hasher()
        self._bytes_seen = 0

    def __repr__(self) -> str:
        return f"DigestVerifier(expected={str(self.expected)!r}, bytes_seen={self._bytes_seen})"

    def update(self, chunk: bytes) -> None:
        """Feed the next chunk of the stream."""
        self._hasher.update(chunk)
        # Counted after hashing, so a rejected (non-bytes) chunk does not skew the count;
        # nbytes, not len(), because a memoryview's len counts items, not bytes.
        self._bytes_seen += memoryview(chunk).nbytes

    @property
    def bytes_seen(self) -> int:
        """Number of bytes fed so far."""
        return self._bytes_seen

    @property
    def actual(self) -> Digest:
        """Digest of the bytes fed so far (hexdigest does not finalise the hasher)."""
        return Digest(self.expected.algorithm, self._hasher.hexdigest())

    def verify(self) -> None:
        """Raise :class:`DigestMismatch` unless the bytes fed hash to the expected digest."""
        actual = self.actual
        if actual != self.expected:
            raise DigestMismatch(
                f"content does not match its digest: expected {self.expected}, "
                f"got {actual} over {self._bytes_seen} bytes",
                expected=str(self.expected),
                actual=str(actual),
            )
