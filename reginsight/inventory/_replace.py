"""Saving over a folder without losing a file: what a save may replace, and how.

A save (:func:`check_save_target` first, and :func:`check_replaceable` again before
the swap) writes into a missing or empty folder, or replaces an earlier inventory
there, and moves or deletes only what reginsight writes: ``inventory.json``, the
frames' folders (``part-*.parquet`` files and ``repository=`` folders of them) and
format 1's ``NAME.parquet``; what an interrupted save left (``.staging-XXXXXXXX``,
``.replaced-XXXXXXXX``) is cleared. Anything else in the folder is the user's: left
beside the inventory, or, inside what a save would replace, a reason to refuse. The
new dataset is staged beside the old one and swapped in (:func:`stage`,
:func:`swap_in`).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

from .._errors import InventoryError
from ._dataset import FORMAT_VERSION, PARTITION_COLUMN, read_meta
from ._frames import FRAME_NAMES

_STAGING, _REPLACED = ".staging-", ".replaced-"
#: what tempfile.mkdtemp names with those prefixes: 8 of [a-z0-9_]
_LEFTOVER = re.compile(r"\.(staging|replaced)-[a-z0-9_]{8}")
#: the files write_frame writes (``part`` is the caller's)
_PART = re.compile(r"part-.+\.parquet")
#: format 1's one file per frame
_FORMAT_1 = tuple(f"{name}.parquet" for name in FRAME_NAMES)
_ELSEWHERE = "save into an empty or new folder"


def check_save_target(path: str | os.PathLike[str]) -> Path:
    """The folder ``path`` names, if a save may write there: missing, empty (but for
    what an interrupted save left), or an earlier reginsight inventory holding only
    what reginsight writes (files of the user's beside it stay). InventoryError
    otherwise, before anything is created or changed: :meth:`Inventory.save` calls
    this first, a command can call it before a long crawl."""
    return save_target(path)[0]


def save_target(path: str | os.PathLike[str]) -> tuple[Path, list[str]]:
    """:func:`check_save_target`'s folder, and what a save there removes besides the
    entries it writes: format 1's ``NAME.parquet`` files, when the earlier inventory
    is of format 1."""
    if not os.fspath(path):  # Path("") would be the working directory
        raise InventoryError(f"an empty path is no folder to save into: {_ELSEWHERE}")
    directory = Path(path)
    if not directory.exists() and not directory.is_symlink():
        return directory, []
    if not directory.is_dir():
        raise InventoryError(f"{directory} is not a folder: {_ELSEWHERE}")
    everything = list(directory.iterdir())
    entries = {entry.name: entry for entry in everything if not _leftover(entry)}
    if not entries:
        return directory, []
    meta = directory / "inventory.json"
    if "inventory.json" in entries:
        if meta.is_symlink():  # a link is never reginsight's, whatever it points at
            _refuse(directory, "its inventory.json is a link")
        if not meta.is_file():
            _refuse(directory, "its inventory.json is no file")
        try:
            version = read_meta(directory)["version"]
        except InventoryError:
            _refuse(directory, "its inventory.json is not that of a reginsight inventory "
                               "this version reads")
    else:
        version = _interrupted(everything, entries)
        if version is None:
            _refuse(directory, "no inventory.json")
    stale = list(_FORMAT_1) if version == 1 else []
    check_replaceable(directory, stale)
    return directory, stale


def check_replaceable(directory: Path, stale: Iterable[str]) -> None:
    """InventoryError unless the entries a save into ``directory`` replaces (the
    frames' folders, inventory.json, ``stale``) hold only what reginsight writes."""
    for name in [*FRAME_NAMES, "inventory.json", *stale]:
        entry = directory / name
        stray = _stray(entry) if entry.exists() or entry.is_symlink() else None
        if stray is not None:
            raise InventoryError(
                f"{directory} holds a reginsight inventory, but reginsight did not write "
                f"{stray}: a save would delete it. Move it out, or {_ELSEWHERE}")


def _interrupted(everything: list[Path], entries: dict[str, Path]) -> int | None:
    """The format of the inventory a save stopped mid-swap was replacing, None when
    nothing shows one. Its inventory.json goes aside first and comes back last: it
    lies in a ``.replaced-`` leftover; a first save into an empty folder leaves only
    frames beside its leftovers."""
    for leftover in everything:
        if leftover.name.startswith(_REPLACED) and _leftover(leftover):
            try:
                return int(read_meta(leftover)["version"])
            except InventoryError:
                continue
    if len(entries) < len(everything) and set(entries) <= {*FRAME_NAMES, *_FORMAT_1}:
        return 1 if set(entries) & set(_FORMAT_1) else FORMAT_VERSION
    return None


def _refuse(directory: Path, why: str) -> NoReturn:
    raise InventoryError(f"{directory} is not empty and holds no reginsight inventory "
                         f"to replace ({why}): {_ELSEWHERE}")


def _leftover(entry: Path) -> bool:
    """A folder an interrupted save left (a staged dataset, or the entries it replaced)."""
    return bool(_LEFTOVER.fullmatch(entry.name)) and entry.is_dir() and not entry.is_symlink()


def _is_part(entry: Path) -> bool:
    return bool(_PART.fullmatch(entry.name)) and entry.is_file() and not entry.is_symlink()


def _stray(entry: Path) -> Path | None:
    """The first thing in ``entry`` (a frame's folder, inventory.json or format 1's
    file) that
    reginsight did not write; None when it holds only reginsight's files. A link is
    never reginsight's."""
    if entry.suffix in (".parquet", ".json"):  # format 1's file, inventory.json
        return None if entry.is_file() and not entry.is_symlink() else entry
    if entry.is_symlink() or not entry.is_dir():
        return entry
    for inner in sorted(entry.iterdir()):
        if _is_part(inner):
            continue
        if not (inner.name.startswith(f"{PARTITION_COLUMN}=") and inner.is_dir()
                and not inner.is_symlink()):
            return inner
        stray = next((f for f in sorted(inner.iterdir()) if not _is_part(f)), None)
        if stray is not None:
            return stray
    return None


def stage(directory: Path) -> Path:
    """A fresh directory inside ``directory`` (created) to write a new dataset into
    (what an interrupted save left there is removed first). Call
    :func:`check_save_target` before: this creates and clears without asking."""
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in directory.iterdir():
        if _leftover(leftover):
            _remove(leftover)
    return Path(tempfile.mkdtemp(dir=directory, prefix=_STAGING))


def swap_in(directory: Path, staged: Path, names: Iterable[str], stale: Iterable[str] = ()
            ) -> None:
    """Move each of ``names`` from ``staged`` into ``directory``, replacing what is
    there, then delete ``stale`` entries and ``staged``. The first name (the file
    that says the directory holds an inventory) goes aside first and comes in last,
    so an interrupted swap leaves no inventory that looks whole; a swap that fails
    puts the earlier entries back. Whatever sits at a name (a directory, a file, a
    planted link) is moved aside, never followed: nothing outside ``directory`` is
    written or deleted."""
    names = list(names)
    trash = Path(tempfile.mkdtemp(dir=directory, prefix=_REPLACED))
    moved: list[str] = []
    try:
        for name in [*names, *stale]:
            old = directory / name
            if old.is_symlink() or old.exists():
                os.replace(old, trash / name)
                moved.append(name)
        for name in [*names[1:], *names[:1]]:
            os.replace(staged / name, directory / name)
    except BaseException:
        for name in reversed(moved):  # the earlier save, as it was
            if (directory / name).is_symlink() or (directory / name).exists():
                _remove(directory / name)
            os.replace(trash / name, directory / name)
        raise
    finally:
        _remove(trash)
        discard(staged)


def discard(staged: Path) -> None:
    """Delete a staged dataset that will not be used."""
    _remove(staged)


def _remove(path: Path) -> None:
    """Delete a file, a link (not what it points at) or a directory tree (rmtree does
    not follow the links inside)."""
    if path.is_symlink() or not path.is_dir():
        path.unlink()
    else:
        shutil.rmtree(path)
