"""LocalStore.read, the one place a storage scan reads a local file, on files swapped
after the listing: what the listing saw no longer holds when the read comes, so each
read itself must refuse what is not a regular file below the root (a FIFO, a device,
a link, a folder on the way swapped for a link), cap its bytes, and leave no
descriptor open. Real files in a temporary folder; no registry needed."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from reginsight._errors import InventoryError
from reginsight.inventory._localstore import LocalStore, _read_open

TOP = "docker/registry/v2"
#: a hang is what fails here (seconds)
TIME_BOUND = 60.0


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    links = tmp_path / "root" / TOP / "repositories/a/_manifests/revisions/sha256/ab"
    links.mkdir(parents=True)
    (links / "link").write_bytes(b"sha256:" + b"ab" * 32)
    local = LocalStore(str(tmp_path / "root"), TOP)
    assert local.exists()
    return local


def _read(store: LocalStore, path: str, limit: int = 512) -> bytes | Exception:
    """One read, in a daemon thread: a read that blocks fails the test, not the run."""
    result: list[bytes | Exception] = []
    thread = threading.Thread(target=lambda: result.extend(
        content for _, content in store.read([path], limit=limit)), daemon=True)
    thread.start()
    thread.join(TIME_BOUND)
    assert not thread.is_alive(), f"read of {path} still blocked after {TIME_BOUND} s"
    return result[0]


def _link(store: LocalStore) -> Path:
    return Path(store.top) / "repositories/a/_manifests/revisions/sha256/ab/link"


@pytest.mark.parametrize("size", [0, 1, 511, 512])
def test_a_regular_file_up_to_the_limit_is_read_whole(store, size):
    path = _link(store)
    path.write_bytes((bytes(range(256)) * 2)[:size])
    assert _read(store, str(path)) == (bytes(range(256)) * 2)[:size]


def test_a_file_past_the_limit_is_refused_unread(store):
    path = _link(store)
    path.write_bytes(b"z" * 513)
    refused = _read(store, str(path))
    assert isinstance(refused, InventoryError)
    assert "513 bytes, more than the 512" in str(refused)


def test_a_fifo_put_where_the_listing_saw_a_file_is_refused_without_blocking(store):
    path = _link(store)
    path.unlink()
    os.mkfifo(path)
    refused = _read(store, str(path))
    assert isinstance(refused, InventoryError)
    assert str(refused) == "a FIFO where the layout has a file: not read"


def test_a_symbolic_link_put_where_the_listing_saw_a_file_is_not_followed(store, tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"sha256:" + b"cd" * 32)
    path = _link(store)
    path.unlink()
    os.symlink(secret, path)
    refused = _read(store, str(path))
    assert isinstance(refused, InventoryError)
    assert str(refused) == "a symbolic link: not followed"


def test_a_folder_on_the_way_swapped_for_a_link_out_of_the_storage_is_caught(store,
                                                                             tmp_path):
    revisions = Path(store.top) / "repositories/a/_manifests/revisions"
    outside = tmp_path / "outside"
    shutil.copytree(revisions, outside)
    (outside / "sha256/ab/link").write_bytes(b"sha256:" + b"ef" * 32)
    shutil.rmtree(revisions)
    os.symlink(outside, revisions)
    refused = _read(store, str(revisions / "sha256/ab/link"))
    assert isinstance(refused, InventoryError)
    assert "reached through a symbolic link, out of the storage" in str(refused)


def test_a_device_is_refused_before_it_is_opened_for_reading():
    device = LocalStore("/", "dev")  # a store whose top holds devices
    assert device.exists()
    refused = _read(device, "/dev/null")
    assert isinstance(refused, InventoryError)
    assert str(refused) == "a device where the layout has a file: not read"


def test_a_file_that_grew_since_it_was_looked_at_is_read_up_to_the_limit(tmp_path):
    path = tmp_path / "grown"
    path.write_bytes(b"g" * 200_000)  # well past what one read past its size asks for
    fd = os.open(path, os.O_RDONLY)
    try:
        assert _read_open(fd, 10, 300_000) == b"g" * 200_000  # fstat said 10 bytes
        os.lseek(fd, 0, os.SEEK_SET)
        with pytest.raises(InventoryError, match="more than the 100,000"):
            _read_open(fd, 10, 100_000)
    finally:
        os.close(fd)


def test_reads_leave_no_descriptor_open(store, tmp_path):
    path = _link(store)
    fifo = path.parent / "fifo"
    os.mkfifo(fifo)
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    for _ in range(50):
        contents = dict(store.read([str(path), str(fifo), str(path.parent / "absent")],
                                   limit=512))
        assert contents[str(path)] == path.read_bytes()
        assert isinstance(contents[str(fifo)], InventoryError)
        assert isinstance(contents[str(path.parent / "absent")], FileNotFoundError)
        abandoned = store.read([str(path)] * 100, limit=512)  # read ahead, then dropped
        next(abandoned)
        abandoned.close()  # a caller that stops early
    if before is not None:
        assert len(os.listdir("/proc/self/fd")) == before


def test_many_files_come_back_in_order_each_as_one_read_says(store):
    """Past a chunk, files are read ahead by threads: the same answers, in order, a
    large file (past what is read ahead) and every refusal included."""
    folder = _link(store).parent
    paths, expected = [], []
    for n in range(300):
        path = folder / f"f{n}"
        if n % 50 == 7:
            os.mkfifo(path)
            expected.append("a FIFO where the layout has a file: not read")
        elif n % 50 == 8:
            os.symlink(folder / "f0", path)
            expected.append("a symbolic link: not followed")
        elif n % 50 == 9:
            expected.append(FileNotFoundError)  # listed, gone since
        elif n % 50 == 10:
            path.write_bytes(b"L" * 3_000_000)  # read when its turn comes
            expected.append(b"L" * 3_000_000)
        elif n % 50 == 11:
            path.write_bytes(b"T" * 4_000_001)
            expected.append("4,000,001 bytes, more than the 4,000,000")
        else:
            path.write_bytes(f"file {n}".encode())
            expected.append(f"file {n}".encode())
        paths.append(str(path))
    result: list[tuple[str, bytes | Exception]] = []
    thread = threading.Thread(target=lambda: result.extend(
        store.read(paths, limit=4_000_000)), daemon=True)
    thread.start()
    thread.join(TIME_BOUND)
    assert not thread.is_alive(), "reading ahead blocked"
    assert [path for path, _ in result] == paths
    for (path, content), want in zip(result, expected, strict=True):
        if isinstance(want, bytes):
            assert content == want, path
        elif isinstance(want, str):
            assert isinstance(content, InventoryError) and want in str(content), path
        else:
            assert isinstance(content, want), path
