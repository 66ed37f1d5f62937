"""A readable stream over a blob download that verifies the digest at EOF."""

from __future__ import annotations

import io
from collections.abc import Iterator

from .._errors import DigestMismatch
from ._digest import DigestVerifier


class BlobReader(io.RawIOBase):
    """Binary stream of a blob's bytes, hashed as they are read.

    Reaching EOF checks the digest (and the announced size): a mismatch raises
    DigestMismatch instead of returning the last, bad, chunk as if it were good.
    """

    def __init__(self, chunks: Iterator[bytes], *, digest: str, size: int | None) -> None:
        super().__init__()
        self._chunks = chunks
        self._verifier = DigestVerifier(digest)
        self._pending = memoryview(b"")
        self._eof = False
        self.digest = digest
        #: the size the registry announced (Content-Length), when it did
        self.size = size

    def readable(self) -> bool:
        return True

    @property
    def bytes_read(self) -> int:
        return self._verifier.bytes_seen

    def _fill(self) -> None:
        while not self._pending and not self._eof:
            chunk = next(self._chunks, None)
            if chunk is None:
                self._finish()
            elif chunk:
                self._verifier.update(chunk)
                self._pending = memoryview(chunk)
                if self.size is not None and self._verifier.bytes_seen > self.size:
                    self._mismatch("more bytes than announced")

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("I/O operation on closed blob stream")
        self._fill()
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all with -1), without allocating ``size`` up front:
        ``read(16 MiB)`` of a 300-byte config costs 300 bytes."""
        if self.closed:
            raise ValueError("I/O operation on closed blob stream")
        parts, wanted = [], size if size is not None and size >= 0 else None
        while wanted is None or wanted > 0:
            self._fill()
            if not self._pending:
                break
            take = len(self._pending) if wanted is None else min(wanted, len(self._pending))
            parts.append(self._pending[:take].tobytes())
            self._pending = self._pending[take:]
            if wanted is not None:
                wanted -= take
        return b"".join(parts)

    def readall(self) -> bytes:
        return self.read()

    def _finish(self) -> None:
        self._eof = True
        if self.size is not None and self._verifier.bytes_seen != self.size:
            self._mismatch(f"{self._verifier.bytes_seen} bytes of {self.size} announced")
        self._verifier.verify()

    def _mismatch(self, why: str) -> None:
        self._eof = True
        self._pending = memoryview(b"")
        raise DigestMismatch(
            f"blob {self.digest}: {why}",
            expected=self.digest,
            actual=str(self._verifier.actual),
        )
