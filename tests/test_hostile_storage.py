"""Hostile storage trees: every case ends bounded (time, memory), contained (nothing
read from outside the root, nothing written) and typed (an ``errors`` row naming the
path, or an InventoryError), never a hang or a traceback. Each case damages a copy of
a real registry's storage (``storage`` in conftest.py)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reginsight as ri
from reginsight.inventory._layout import blob_path
from tests.deep import nest, unnest

V2 = "docker/registry/v2"
#: no case may take longer than this (a hang is what fails here; seconds on this machine)
TIME_BOUND = 60.0
#: nor allocate more than this in Python objects at its peak
MEMORY_BOUND = 100 * 1024 * 1024
SPARSE = 3 * 1024**3  # 3 GB of holes: 4 KB on disk


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path below ``root`` with its size and time: a loop (rglob recurses), each
    folder opened relative to its parent (paths may pass PATH_MAX)."""
    seen: dict[str, tuple[int, int]] = {}
    stack = [(os.open(root, os.O_RDONLY), str(root))]
    while stack:
        fd, path = stack.pop()
        try:
            with os.scandir(fd) as listing:
                names = [entry.name for entry in listing]
            for name in names:
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                seen[f"{path}/{name}"] = (info.st_size, info.st_mtime_ns)
                if stat.S_ISDIR(info.st_mode):
                    stack.append((os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd),
                                  f"{path}/{name}"))
        finally:
            os.close(fd)
    return seen


def _bounded(call: Callable[[], object]) -> object:
    """``call()`` within :data:`TIME_BOUND`: in a daemon thread, so a hang fails the
    test instead of holding the run (the thread is left blocked, never joined)."""
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["value"] = call()
        except BaseException as exc:  # noqa: BLE001 -- handed to the test thread
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(TIME_BOUND)
    assert not thread.is_alive(), f"still running after {TIME_BOUND} s: it hangs"
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]


def _scan(storage: Path) -> ri.Inventory:
    """scan_storage, bounded in time and memory, and proven read-only."""
    before = _snapshot(storage)
    tracemalloc.start()
    try:
        inv = _bounded(lambda: ri.scan_storage(storage, progress=False))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"{peak:,} bytes at the peak"
    assert _snapshot(storage) == before  # nothing written, nothing moved
    assert isinstance(inv, ri.Inventory)
    return inv


def _repo(storage: Path, name: str) -> Path:
    return storage / V2 / "repositories" / "b" / name


def _refused(inv: ri.Inventory) -> list[tuple[str, str]]:
    rows = inv.errors[inv.errors["stage"] == "path"]
    return list(zip(rows["reference"].astype(str), rows["error"].astype(str), strict=True))


def _a_revision(storage: Path, repo: str = "app") -> Path:
    """A revision folder that holds its link (a deleted manifest leaves its folder
    behind, empty: the registry deletes files, not folders)."""
    return next(folder for folder in sorted(
        (_repo(storage, repo) / "_manifests/revisions/sha256").iterdir())
        if (folder / "link").is_file())


def _assert_gc_refuses(inv: ri.Inventory) -> None:
    with pytest.raises(ri.InventoryError, match="cannot predict garbage-collect"):
        ri.gc_preview(inv)


# ----------------------------------------------------------------- huge files


def _sparse(path: Path, size: int = SPARSE) -> None:
    path.unlink()
    with open(path, "wb") as file:
        file.truncate(size)


def test_a_3_gb_sparse_tag_link_is_refused_unread(storage):
    _sparse(_repo(storage, "app") / "_manifests/tags/latest/current/link")
    inv = _scan(storage)
    row = inv.errors[inv.errors["stage"] == "tag link"]
    assert row["reference"].tolist() == ["latest"]
    assert "3,221,225,472 bytes, more than the 512" in row["error"].iloc[0]
    ri.gc_preview(inv)  # a tag link does not stop a plain collection


def test_a_3_gb_sparse_revision_link_or_manifest_stops_the_preview(storage):
    _sparse(_a_revision(storage) / "link")
    inv = _scan(storage)
    assert "more than the 512" in inv.errors.loc[
        inv.errors["stage"] == "revision link", "error"].iloc[0]
    _assert_gc_refuses(inv)
    tagged = str(inv.tags.loc[inv.tags["tag"] == "solo", "digest"].iloc[0])
    _sparse(storage / V2 / blob_path(tagged))
    inv = _scan(storage)
    assert "more than the 4,194,304" in inv.errors.loc[
        inv.errors["reference"] == tagged, "error"].iloc[0]


def test_a_3_gb_sparse_link_costs_under_100_mb(storage):
    """Peak memory of a whole process (scan and preview) over the same process's
    scan of the undamaged tree: the resident high-water mark, not only Python's."""
    pristine = storage.parent / "pristine"
    shutil.copytree(storage, pristine, symlinks=True)
    _sparse(_repo(storage, "app") / "_manifests/tags/latest/current/link")
    _sparse(_a_revision(storage, "multi") / "link")
    script = (
        "import resource, sys, reginsight as ri\n"
        "def run(root):\n"
        "    inv = ri.scan_storage(root, progress=False)\n"
        "    try: ri.gc_preview(inv)\n"
        "    except ri.InventoryError: pass\n"
        "    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(run(sys.argv[1]), run(sys.argv[2]))\n")
    out = subprocess.run([sys.executable, "-c", script, str(pristine), str(storage)],
                         capture_output=True, text=True, timeout=TIME_BOUND, check=True)
    before, after = (int(kib) for kib in out.stdout.split())
    assert (after - before) * 1024 < 100 * 1024 * 1024, (before, after)


# ----------------------------------------------------------- not regular files


@pytest.mark.parametrize("where", ["tag link", "revision link", "manifest data",
                                   "layer data", "upload startedat", "upload data"])
def test_a_fifo_never_blocks_the_scan(storage, where):
    inv = ri.scan_storage(storage, progress=False)
    tagged = str(inv.tags.loc[inv.tags["tag"] == "solo", "digest"].iloc[0])
    layer = str(inv.layers["digest"].iloc[0])
    upload = next((_repo(storage, "app") / "_uploads").iterdir())
    path = {"tag link": _repo(storage, "app") / "_manifests/tags/latest/current/link",
            "revision link": _a_revision(storage) / "link",
            "manifest data": storage / V2 / blob_path(tagged),
            "layer data": storage / V2 / blob_path(layer),
            "upload startedat": upload / "startedat",
            "upload data": upload / "data"}[where]
    path.unlink()
    os.mkfifo(path)
    damaged = _scan(storage)
    relative = str(path.relative_to(storage / V2))
    assert (relative, "a FIFO where the layout has a file: not read") in _refused(damaged)
    _assert_gc_refuses(damaged)


# ----------------------------------------------------------- symbolic links


def _outside(storage: Path) -> Path:
    """A copy of the whole storage beside it: what a followed link would find."""
    outside = storage.parent / "outside"
    shutil.copytree(storage / V2, outside, symlinks=True)
    return outside


@pytest.mark.parametrize("where", ["blobs", "repositories", "revisions", "current"])
def test_a_link_to_a_folder_outside_is_refused_at_every_depth(storage, where):
    outside = _outside(storage)
    app = _repo(storage, "app") / "_manifests"
    path = {"blobs": storage / V2 / "blobs", "repositories": storage / V2 / "repositories",
            "revisions": app / "revisions", "current": app / "tags/latest/current"}[where]
    target = outside / path.relative_to(storage / V2)
    shutil.rmtree(path)
    os.symlink(target, path)
    inv = _scan(storage)
    assert (str(path.relative_to(storage / V2)), "a symbolic link: not followed") in \
        _refused(inv)
    if where == "blobs":
        assert not inv.blobs["on_disk"].any()  # not one blob read from outside
    if where == "repositories":
        assert len(inv.tags) == 0 and len(inv.manifests) == 0
    if where == "revisions":
        assert "b/app" not in set(inv.manifests["repository"].astype(str))
    if where == "current":
        assert "latest" not in set(inv.tags["tag"].astype(str))
    _assert_gc_refuses(inv)


@pytest.mark.parametrize("component", ["docker", "docker/registry", V2])
def test_a_link_on_the_way_to_the_layout_is_a_typed_error(storage, component):
    moved = storage.parent / "elsewhere"
    shutil.move(storage / component, moved)
    os.symlink(moved, storage / component)
    with pytest.raises(ri.InventoryError, match="is a symbolic link"):
        ri.scan_storage(storage, progress=False)


def test_the_root_itself_may_be_a_link(storage, tmp_path):
    alias = tmp_path / "alias"
    os.symlink(storage, alias)
    assert _refused(_scan(alias)) == []


# ----------------------------------------------------------------- odd names


def _mkdir_bytes(parent: Path, name: bytes) -> Path:
    path = os.fsencode(parent) + b"/" + name
    os.mkdir(path)
    return Path(os.fsdecode(path))


def test_folder_names_that_are_not_utf8_are_refused_or_escaped(storage, tmp_path):
    repos = storage / V2 / "repositories" / "b"
    shutil.copytree(_repo(storage, "app"), Path(os.fsdecode(os.fsencode(repos) + b"/\xffx")))
    tags = _repo(storage, "multi") / "_manifests/tags"
    shutil.copytree(tags / "v1", Path(os.fsdecode(os.fsencode(tags) + b"/v\xff")))
    uploads = _repo(storage, "app") / "_uploads"
    upload = next(uploads.iterdir())
    shutil.copytree(upload, Path(os.fsdecode(os.fsencode(uploads) + b"/up\xfe")))
    inv = _scan(storage)
    refused = dict(_refused(inv))
    assert refused["repositories/b/\\xffx"].startswith("not a valid repository name")
    assert refused["repositories/b/multi/_manifests/tags/v\\xff"].startswith(
        "not a valid tag")
    assert "up\\xfe" in set(inv.uploads["uuid"].astype(str))  # its bytes still counted
    assert set(inv.tags["repository"].astype(str)) == {"b/app", "b/multi"}
    saved = inv.save(tmp_path / "inv")  # every name in the frames can be written
    assert ri.Inventory.load(saved).errors.equals(inv.errors)


def test_a_name_matplotlib_would_typeset_is_refused_and_the_report_renders(storage,
                                                                         tmp_path):
    shutil.copytree(_repo(storage, "app"), storage / V2 / "repositories" / r"m$\frac$x")
    inv = _scan(storage)
    assert r"repositories/m$\frac$x" in dict(_refused(inv))
    out = subprocess.run([sys.executable, "-m", "reginsight", "report", str(storage),
                          "-o", str(tmp_path / "r.html")], capture_output=True, text=True,
                         timeout=TIME_BOUND)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr


def test_1500_nested_folders_stop_at_the_depth_no_name_reaches(storage):
    nest(storage / V2 / "repositories", "d", 1500)
    try:
        inv = _scan(storage)
    finally:  # shutil.rmtree recurses: pytest's cleanup of the temp dir would fail
        unnest(storage / V2 / "repositories", "d")
    (path, why), = [(p, w) for p, w in _refused(inv) if "deeper" in w]
    assert path == "repositories/" + "/".join(["d"] * 129)
    assert why.startswith("deeper than 128 components")


# ------------------------------------------------- generated combinations

DAMAGES = ("sparse tag link", "sparse revision link", "fifo link", "fifo blob",
           "link blobs", "link revisions", "link current", "bad repository name",
           "bad tag name", "deep folders", "dollar name", "empty link", "garbage link")


def _damage(storage: Path, outside: Path, damage: str) -> None:
    app, multi = _repo(storage, "app"), _repo(storage, "multi")

    def replace_with_link(path: Path) -> None:
        if path.is_symlink() or not path.exists():
            return  # an earlier damage got there first
        target = outside / path.relative_to(storage / V2)
        shutil.rmtree(path)
        os.symlink(target, path)

    def first_file(folder: Path, name: str) -> Path | None:
        return next((p for p in sorted(folder.rglob(name)) if p.is_file()
                     and not p.is_symlink()), None) if folder.is_dir() else None

    if damage.startswith(("sparse", "fifo", "empty", "garbage")):
        folder = {"tag link": app / "_manifests/tags", "revision link":
                  multi / "_manifests/revisions", "link": app / "_manifests",
                  "blob": storage / V2 / "blobs"}[damage.split(" ", 1)[1]]
        path = first_file(folder, "data" if damage.endswith("blob") else "link")
        if path is None:
            return
        path.unlink()
        if damage.startswith("sparse"):
            with open(path, "wb") as file:
                file.truncate(SPARSE)
        elif damage.startswith("fifo"):
            os.mkfifo(path)
        else:
            path.write_bytes(b"" if damage.startswith("empty") else b"\x00../../etc")
    elif damage == "link blobs":
        replace_with_link(storage / V2 / "blobs")
    elif damage == "link revisions":
        replace_with_link(app / "_manifests/revisions")
    elif damage == "link current":
        replace_with_link(multi / "_manifests/tags/v1/current")
    elif damage == "bad repository name":
        _mkdir_bytes(storage / V2 / "repositories", b"B\xff")
    elif damage == "bad tag name":
        if (multi / "_manifests/tags/solo").is_dir():
            shutil.copytree(multi / "_manifests/tags/solo", multi / "_manifests/tags/-x",
                            symlinks=True, dirs_exist_ok=True)
    elif damage == "deep folders":
        if not (storage / V2 / "repositories/z").exists():
            nest(storage / V2 / "repositories", "z", 300)
    elif damage == "dollar name":
        (storage / V2 / "repositories" / "a$b$/_layers").mkdir(parents=True, exist_ok=True)


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(damages=st.lists(st.sampled_from(DAMAGES), min_size=1, max_size=5, unique=True))
def test_any_combination_of_damages_is_bounded_contained_and_typed(
        scenario_storage, tmp_path_factory, damages):
    work = tmp_path_factory.mktemp("combo")
    storage = work / "storage"
    shutil.copytree(scenario_storage, storage, symlinks=True)
    outside = work / "outside"
    shutil.copytree(storage / V2, outside, symlinks=True)
    # a canary only a followed link can reach: a tag and a blob the root never had
    canary = outside / "repositories/b/app/_manifests/tags/canary/current"
    canary.mkdir(parents=True)
    (canary / "link").write_text("sha256:" + "c" * 64)
    for damage in damages:
        _damage(storage, outside, damage)
    start = time.monotonic()
    inv = _scan(storage)
    assert time.monotonic() - start < TIME_BOUND
    assert "canary" not in set(inv.tags["tag"].astype(str))
    try:
        ri.gc_preview(inv)
    except ri.InventoryError as exc:
        assert "cannot predict" in str(exc)
    inv.save(work / "inv")  # whatever the names held, the inventory can be written


# ------------------------------------------------------ an object store (fsspec)


def test_an_object_store_reads_capped_and_checks_names(storage):
    """The same bounds on an fsspec store (S3's stand-in here: fsspec's memory
    filesystem): a huge link object is read only up to the cap (a ranged read), odd
    key names are refused, and the rest of the scan is whole."""
    import fsspec

    memory = fsspec.filesystem("memory")
    root = f"/hostile-{os.getpid()}"
    try:
        for path in sorted(storage.rglob("*")):
            if path.is_file():
                memory.pipe(f"{root}/{path.relative_to(storage)}", path.read_bytes())
        top = f"{root}/{V2}/repositories/b"
        memory.pipe(f"{top}/app/_manifests/tags/latest/current/link", b"sha256:" + b"a" * 10**7)
        link = next(p for p in memory.find(f"{top}/multi/_manifests/revisions"))
        memory.pipe(f"{top}/Upper/_manifests/revisions/{link.split('revisions/')[1]}",
                    memory.cat(link))
        memory.pipe(f"{top}/{'/'.join(['z'] * 200)}/_layers/sha256/{'b' * 64}/link", b"")
        inv = _bounded(lambda: ri.scan_storage(f"memory://{root}", progress=False))
    finally:
        memory.rm(root, recursive=True)
    tag_link = inv.errors[inv.errors["stage"] == "tag link"]
    assert tag_link["reference"].tolist() == ["latest"]
    assert "more than the 512" in tag_link["error"].iloc[0]
    refused = dict(_refused(inv))
    assert refused["repositories/b/Upper"].startswith("not a valid repository name")
    assert any(path.startswith("repositories/b/z/z/") for path in refused)
    assert set(inv.tags["tag"].astype(str)) == {"v1", "solo"}  # b/multi's, whole
    assert set(inv.manifests["repository"].astype(str)) == {"b/app", "b/multi"}


def test_an_empty_storage_previews_and_reports(tmp_path):
    root = tmp_path / "empty"
    (root / V2).mkdir(parents=True)
    inv = _scan(root)
    assert inv.blobs["on_disk"].dtype == bool and inv.manifests["tagged"].dtype == bool
    assert len(ri.gc_preview(inv, delete_untagged=True)) == 0
    out = subprocess.run([sys.executable, "-m", "reginsight", "report", str(root), "-o",
                          str(tmp_path / "r.html")], capture_output=True, text=True,
                         timeout=TIME_BOUND)
    assert out.returncode == 0, out.stderr


# ---------------------------------------- what cannot be listed is said, not skipped


@pytest.mark.parametrize("where", ["revisions", "current", "repositories"])
def test_a_file_where_the_layout_has_a_folder_is_refused(storage, where):
    app = _repo(storage, "app") / "_manifests"
    path = {"revisions": app / "revisions", "current": app / "tags/latest/current",
            "repositories": storage / V2 / "repositories"}[where]
    shutil.rmtree(path)
    path.write_text("not a folder")
    inv = _scan(storage)
    why = [w for p, w in _refused(inv) if p.startswith(str(path.relative_to(storage / V2)))]
    assert why and why[0].startswith("a file where the layout has a folder")
    _assert_gc_refuses(inv)  # the collector would stop there: no figure is honest


def test_a_path_too_long_to_open_is_refused_not_skipped(storage):
    """Past PATH_MAX a folder cannot be opened by its path: before, the repository
    below vanished silently and gc_preview predicted deleting its tagged image."""
    fd = os.open(storage / V2 / "repositories", os.O_RDONLY)
    try:
        for _ in range(21):
            os.mkdir("d" * 200, dir_fd=fd)
            inner = os.open("d" * 200, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        os.mkdir("_manifests", dir_fd=fd)
    finally:
        os.close(fd)
    inv = _scan(storage)
    assert any("File name too long" in why for _, why in _refused(inv))
    _assert_gc_refuses(inv)


def test_an_unreadable_tag_link_stops_only_the_untagged_preview(storage):
    """--delete-untagged reads every tag's link and stops on one it cannot read; a
    plain collection never reads them."""
    (_repo(storage, "app") / "_manifests/tags/latest/current/link").write_bytes(b"junk")
    inv = _scan(storage)
    ri.gc_preview(inv)
    with pytest.raises(ri.InventoryError, match="cannot predict garbage-collect"):
        ri.gc_preview(inv, delete_untagged=True)


def test_a_blob_under_another_fan_out_folder_is_no_blob(storage):
    """Where a read of the digest would not go, so nothing there is counted or read
    (through fsspec's local listing too, which follows what it is asked to read)."""
    inv = ri.scan_storage(storage, progress=False)
    digest = str(inv.tags.loc[inv.tags["tag"] == "solo", "digest"].iloc[0])
    hexa = digest.split(":")[1]
    prefix = storage / V2 / "blobs/sha256" / hexa[:2]
    outside = storage.parent / "outside-prefix"
    shutil.move(prefix, outside)
    os.symlink(outside, prefix)
    decoy = storage / V2 / "blobs/sha256" / ("00" if hexa[:2] != "00" else "01") / hexa
    decoy.mkdir(parents=True)
    (decoy / "data").write_bytes((outside / hexa / "data").read_bytes())
    for root in (str(storage), f"local://{storage}"):
        damaged = _bounded(lambda root=root: ri.scan_storage(root, progress=False))
        assert digest not in set(damaged.blobs.loc[damaged.blobs["on_disk"], "digest"])
        assert not damaged.errors["error"].str.contains("DigestMismatch").any()
        assert any(why == "a symbolic link: not followed" for _, why in _refused(damaged))


def test_an_object_store_that_cannot_be_reached_is_a_typed_error():
    """A closed port on loopback: botocore's error (or s3fs's TypeError for an option
    it does not know) comes back as one InventoryError naming the store."""
    options = {"endpoint_url": "http://127.0.0.1:9", "key": "k", "secret": "s",
               "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2}}
    with pytest.raises(ri.InventoryError, match="s3://bucket/root"):
        _bounded(lambda: ri.scan_storage("s3://bucket/root", storage_options=options,
                                         progress=False))
    with pytest.raises(ri.InventoryError, match="cannot"):
        _bounded(lambda: ri.scan_storage("s3://bucket/root", progress=False,
                                         storage_options={**options, "bogus_option": 1}))
