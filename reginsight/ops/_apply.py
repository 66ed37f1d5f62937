"""Carry out a cleanup plan against the registry: a dry run unless told otherwise.

These are the lines that delete user data, one decision at a time. Each digest is
deleted only if, read again immediately before its DELETE, exactly the plan's tags
point at it, no tagged index references it and, for a referrer (a signature, an SBOM),
its subject is not staying; otherwise it is skipped, with the reason. After a real
apply the planned repositories' tags are listed once more and every tag that went
without being planned is reported.

What remains: between that last read and the DELETE (one request, plus the read
itself), a tag pushed onto the digest goes with it. If that tag existed at one of
the reads (moved onto the digest), the final listing reports it as ``lost``; a tag
created and deleted inside that window is not seen at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from .. import _mediatypes as mt
from .._artifacts import subject_of_tag
from .._errors import CleanupStopped, NotFound, PlanError, RegistryError, UnsupportedOperation
from ._holders import Holders, IndexReach, TagState, listed_tags, tag_descriptors

if TYPE_CHECKING:
    from ..registry._client import Registry
    from ..registry._manifest import Descriptor

RESULT_COLUMNS = ["repository", "tag", "digest", "status", "detail"]
_Row = tuple[str, str, str, str, str]


@dataclass(frozen=True)
class Deletion:
    """One digest a plan deletes, with the plan's ``tags`` on it (none: an untagged
    manifest, deleted by digest)."""

    repository: str
    digest: str
    tags: frozenset[str]
    reason: str = "untagged"  # the plan's, for one without tags (an index's child ...)


def deletions(plan: pd.DataFrame) -> list[Deletion]:
    """The ``delete`` rows of a plan, one :class:`Deletion` per (repository, digest)."""
    missing = {"repository", "tag", "digest", "action"} - set(getattr(plan, "columns", ()))
    if missing:
        raise PlanError(f"a plan needs the columns of plan_cleanup; missing {sorted(missing)}")
    doomed = plan[plan["action"] == "delete"]
    if "reason" not in doomed:
        doomed = doomed.assign(reason=pd.NA)
    return [Deletion(str(repository), str(digest), frozenset(part["tag"].dropna().astype(str)),
                     str(next(iter(part["reason"].dropna()), "untagged")))
            for (repository, digest), part in doomed.groupby(["repository", "digest"],
                                                             sort=True)]


def apply_cleanup(reg: Registry, plan: pd.DataFrame, *, dry_run: bool = True) -> pd.DataFrame:
    """Carry out the ``delete`` rows of a plan: by default only say what would happen.

    Immediately before each digest's DELETE the repository's tags are read again
    (a tag listing and a HEAD per tag). The digest is skipped, with the reason, when
    a planned tag has moved or gone, when a tag the plan did not choose now points
    at it, when a tagged index references it (a platform of a multi-arch image), or
    when it is a referrer (its manifest's ``subject``, or a tag ``sha256-<hex>[.sig]``)
    of a manifest that stays: a signature or SBOM goes with its image, never without.
    Only what the plan lists is deleted: rows with no tag (an index's children, which
    :func:`reginsight.plan_cleanup` lists with the index; untagged manifests with
    ``untagged=True``) delete a manifest by digest under the same checks; indexes go
    first, before the manifests they reference, and referrers after their subjects. A
    405 (deletion disabled) raises CleanupStopped at once, with the result so far, and
    no further request is made; so does an interruption (Ctrl-C: ``interrupted`` True,
    the digest being checked or deleted then marked ``unchecked``).

    After a real apply the planned repositories' tags are listed once more: a tag
    seen during the apply, not in the plan and gone now is a ``lost`` row (it was
    moved onto a digest between its last check and the DELETE, or someone else
    deleted it).

    Columns: repository, tag, digest, status (would delete / deleted / skipped /
    failed / not attempted / lost / unchecked), detail (all string). Index children
    and untagged manifests appear with an empty tag.
    """
    return _Apply(reg, dry_run=dry_run).run(deletions(plan))


class _Stopped(Exception):
    """The registry refused a DELETE with 405: nothing more may be sent."""


class _Unread(Exception):
    """The tags (or an index) could not be read again: what holds the digest is not
    known, so it is not deleted."""


class _Apply:
    """One apply run: what it read, what it deleted, the rows it reports."""

    def __init__(self, reg: Registry, *, dry_run: bool) -> None:
        self.reg, self.dry_run = reg, dry_run
        self.done = "would delete" if dry_run else "deleted"
        self.indexes = IndexReach(reg)
        self.rows: list[_Row] = []
        self.deleted: set[tuple[str, str]] = set()
        self.seen: dict[str, dict[str, str]] = {}  # repository -> tag -> digest, as read
        # (repository, digest) -> the digests it is about; a str: why that is unknown
        self.subjects: dict[tuple[str, str], frozenset[str] | str] = {}

    def run(self, work: list[Deletion]) -> pd.DataFrame:
        work = self._in_order(work)
        for number, item in enumerate(work):
            try:
                if item.tags:
                    self._tagged(item)
                else:
                    self._untagged(item)
            except _Unread as exc:
                for tag in sorted(item.tags) or [""]:
                    self._row(item, tag, "skipped", f"not deleted: {exc}")
            except _Stopped as stop:
                self.rows += [(later.repository, tag, later.digest, "not attempted",
                               "stopped: deletion refused")
                              for later in work[number + 1:] for tag in sorted(later.tags) or [""]]
                raise CleanupStopped(f"{self.reg.url} refused to delete ({stop}); stopped, "
                                     "nothing more was sent", result=_result(self.rows)
                                     ) from None
            except KeyboardInterrupt:  # what was done must still be said
                if (item.repository, item.digest) not in self.deleted:
                    self.rows += [(item.repository, tag, item.digest, "unchecked",
                                   "interrupted while it was checked or deleted: list its "
                                   "tags to see whether it is gone")
                                  for tag in sorted(item.tags) or [""]]
                self.rows += [(later.repository, tag, later.digest, "not attempted",
                               "stopped: interrupted")
                              for later in work[number + 1:] for tag in sorted(later.tags) or [""]]
                raise CleanupStopped("interrupted (Ctrl-C); stopped, nothing more was sent",
                                     result=_result(self.rows), interrupted=True) from None
        if not self.dry_run:
            self._report_lost(work)
        return _result(self.rows)

    def _in_order(self, work: list[Deletion]) -> list[Deletion]:
        """Indexes first, an index before the indexes it reaches (more below it comes
        first), so that a child goes only once nothing planned still lists it; and a
        referrer after its subject (whose fate decides its own)."""
        planned = {(item.repository, item.digest) for item in work}
        for item in work:
            self.subjects[(item.repository, item.digest)] = self._read_subjects(item)
        depth = {key: self._depth(key, planned, len(work)) for key in planned}
        below: dict[tuple[str, str], int] = {}
        for repository in sorted({item.repository for item in work}):
            try:
                for found in self._tags_now(repository).values():
                    key = (repository, found.digest)
                    if key in planned and mt.is_index(found.media_type):
                        below[key] = len(self._reach(repository, found)) - 1
            except _Unread:
                continue  # its items are checked, and skipped if still unreadable, one by one
        return sorted(work, key=lambda item: (
            depth[(item.repository, item.digest)], (item.repository, item.digest) not in below,
            -below.get((item.repository, item.digest), 0), item.repository, item.digest))

    def _read_subjects(self, item: Deletion) -> frozenset[str] | str:
        """The digests ``item`` is about: its manifest's subject, and those its tags
        name by convention; why not, when its manifest cannot be read."""
        about = {found[0] for tag in item.tags if (found := subject_of_tag(tag))}
        try:
            subject = self.reg.manifest(item.repository, item.digest).subject
        except NotFound:  # gone already: about nothing that could stay
            subject = None
        except RegistryError as exc:
            return f"its manifest could not be read to see what it is about ({exc})"
        return frozenset(about | ({subject.digest} if subject else set()))

    def _depth(self, key: tuple[str, str], planned: set[tuple[str, str]], most: int) -> int:
        """How many planned subjects lie above ``key`` (a signature of a signature: 2);
        a loop ends at ``most``."""
        depth, seen = 0, {key}
        while depth < most:
            about = self.subjects.get(key)
            above = sorted(d for d in about if (key[0], d) in planned) if isinstance(
                about, frozenset) else []
            if not above or (key[0], above[0]) in seen:
                break
            key = (key[0], above[0])
            seen.add(key)
            depth += 1
        return depth

    def _subject_stays(self, item: Deletion, now: TagState) -> str:
        """Why a referrer must stay: its subject stays (tagged, or a tagged index's
        child); "" for a manifest about nothing, or whose subjects go."""
        about = self.subjects.get((item.repository, item.digest), frozenset())
        if isinstance(about, str):
            raise _Unread(about)
        for subject in sorted(about):
            if (item.repository, subject) in self.deleted:
                continue
            keeps = self._holders(item.repository, subject, now)
            held = [*keeps.tags, *(f"through index {tag}" for tag in keeps.indexes)]
            if held:
                return (f"referrer of {subject}, which stays (tagged {', '.join(held)}): it "
                        "goes with its subject, not without it")
        return ""

    def _tags_now(self, repository: str) -> TagState:
        """The repository's tags as they are now; in a dry run, less those on digests
        the run would have deleted already."""
        try:
            now = tag_descriptors(self.reg, repository)
        except RegistryError as exc:
            raise _Unread(f"the tags of {repository} could not be read again ({exc})"
                          ) from None
        self.seen.setdefault(repository, {}).update(
            {tag: found.digest for tag, found in now.items()})
        if self.dry_run:
            now = {tag: found for tag, found in now.items()
                   if (repository, found.digest) not in self.deleted}
        return now

    def _tagged(self, item: Deletion) -> None:
        """A digest the plan deletes through its tags."""
        repository, digest = item.repository, item.digest
        now = self._tags_now(repository)  # every read first: one that fails skips it whole
        keeps = self._holders(repository, digest, now)
        on_digest = set(keeps.tags)
        for tag in sorted(item.tags - on_digest):
            moved = now.get(tag)
            self._row(item, tag, "skipped",
                      f"moved to {moved.digest}" if moved else "no longer exists")
        still_planned = sorted(on_digest & item.tags)
        skip = _why_kept(repository, keeps, planned=item.tags)
        if not skip and still_planned:
            skip = self._subject_stays(item, now)
        if skip or not still_planned:
            for tag in still_planned:
                self._row(item, tag, "skipped", skip)
            return
        self._delete(item, still_planned, "")

    def _untagged(self, item: Deletion) -> None:
        """A manifest the plan deletes by digest (an index's child, an untagged one):
        unless it gained a tag, or a tagged index references it."""
        now = self._tags_now(item.repository)
        keeps = self._holders(item.repository, item.digest, now)
        skip = _why_kept(item.repository, keeps, planned=frozenset()) or self._subject_stays(
            item, now)
        if skip:
            self._row(item, "", "skipped", skip)
        else:
            self._delete(item, [""], item.reason)

    def _holders(self, repository: str, digest: str, now: TagState) -> Holders:
        try:
            return self.indexes.holders(repository, digest, now)
        except RegistryError as exc:
            raise _Unread(f"an index of {repository} could not be read ({exc})") from None

    def _reach(self, repository: str, index: Descriptor) -> set[str]:
        try:
            return self.indexes.reach(repository, (index.digest, index.media_type))
        except RegistryError as exc:
            raise _Unread(f"index {index.digest} could not be read ({exc})") from None

    def _delete(self, item: Deletion, tags: list[str], detail: str) -> bool:
        """DELETE the digest (unless a dry run) and report a row per tag; False when
        it failed. A 405 raises _Stopped after reporting."""
        failure = None
        if not self.dry_run:
            try:
                self.reg.delete_manifest(item.repository, item.digest)
            except NotFound:  # gone already: what we wanted, said
                detail = f"{detail}; already gone" if detail else "already gone"
            except UnsupportedOperation as exc:
                if exc.status == 405:
                    for tag in tags:
                        self._row(item, tag, "failed", str(exc))
                    raise _Stopped(str(exc)) from None
                failure = str(exc)
            except RegistryError as exc:  # 403, an outage: this one failed, others may not
                failure = str(exc)
        for tag in tags:
            self._row(item, tag, "failed" if failure else self.done, failure or detail)
        if failure:
            return False
        self.deleted.add((item.repository, item.digest))
        return True

    def _report_lost(self, work: list[Deletion]) -> None:
        """List the planned repositories once more: every tag seen during the apply,
        not planned and gone now, is reported."""
        planned = {(item.repository, tag) for item in work for tag in item.tags}
        for repository in sorted({item.repository for item in work}):
            try:
                listed = set(listed_tags(self.reg, repository))
            except RegistryError as exc:
                self.rows.append((repository, "", "", "unchecked",
                                  f"could not list its tags after the apply: {exc}"))
                continue
            for tag, digest in sorted(self.seen.get(repository, {}).items()):
                if tag not in listed and (repository, tag) not in planned:
                    self.rows.append((repository, tag, digest, "lost",
                                      "not in the plan, gone after the apply: moved onto a "
                                      "deleted digest after its last check, or deleted by "
                                      "someone else"))

    def _row(self, item: Deletion, tag: str, status: str, detail: str) -> None:
        self.rows.append((item.repository, tag, item.digest, status, detail))


def _why_kept(repository: str, keeps: Holders, *, planned: frozenset[str]) -> str:
    """Why a digest must stay: a tag the plan did not choose, or a tagged index that
    references it; "" when nothing does."""
    extra = sorted(set(keeps.tags) - planned)
    if extra:
        return (f"digest now also tagged {', '.join(extra)}; not in the plan" if planned
                else f"now tagged {', '.join(extra)}; not in the plan")
    if keeps.indexes:
        shown = ", ".join(f"{repository}:{tag}" for tag in keeps.indexes)
        return f"referenced by tagged index {shown}: deleting it would break that image"
    return ""


def _result(rows: list[_Row]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=RESULT_COLUMNS).astype("string")
