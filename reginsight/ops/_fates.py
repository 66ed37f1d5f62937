"""Referrers follow their subjects: a signature, SBOM or attestation is kept while the
manifest it is about stays, and deleted with it. Pure: no I/O."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..analysis._referrers import manifest_roles

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory

Placement = tuple[str, str]  # (repository, digest)


def short(digest: str) -> str:
    """``sha256:`` and the first 12 hex digits, as docker prints image ids."""
    algorithm, _, hex_digits = digest.partition(":")
    return f"{algorithm}:{hex_digits[:12]}"


class ReferrerFates:
    """What becomes of each referrer once ``removed`` manifests are deleted.

    ``of(repository, digest)`` gives ("keep" | "delete", reason). A referrer goes when
    its subject is removed, or when that subject is a referrer that goes. One whose
    subject the repository does not hold is orphaned: deleted only when ``orphans``
    (or, for an untagged one, when untagged manifests are being deleted), and never
    when another repository holds the subject (cosign's ``COSIGN_REPOSITORY`` keeps
    signatures apart from their images).
    """

    def __init__(self, inv: Inventory, removed: set[Placement], *, orphans: bool) -> None:
        roles = manifest_roles(inv)
        self.subject: dict[Placement, str] = roles["subject"].dropna().to_dict()
        self.held: set[Placement] = set(roles.index)
        self.holders: dict[str, set[str]] = {}
        for repository, digest in self.held:
            self.holders.setdefault(digest, set()).add(repository)
        self.removed = removed
        self.orphans = orphans
        self._known: dict[tuple[Placement, bool], tuple[str, str]] = {}

    def of(self, repository: str, digest: str, *, untagged: bool = False
           ) -> tuple[str, str]:
        return self._fate((repository, digest), untagged, set())

    def _fate(self, key: Placement, untagged: bool, visiting: set[Placement]
              ) -> tuple[str, str]:
        if (key, untagged) in self._known:
            return self._known[(key, untagged)]
        repository, _ = key
        subject = self.subject[key]
        target = (repository, subject)
        named = f"referrer of {short(subject)}"
        if target not in self.held:
            elsewhere = sorted(self.holders.get(subject, set()) - {repository})
            if elsewhere:
                fate = ("keep", f"{named}, held in {elsewhere[0]}")
            elif self.orphans or untagged:
                fate = ("delete", f"orphaned {named}")
            else:
                fate = ("keep", f"orphaned {named}; orphans=True deletes it")
        elif target in self.removed:
            fate = ("delete", named)
        elif target in self.subject and target not in visiting:  # about a referrer
            fate = (self._fate(target, False, visiting | {key})[0], named)
        else:
            fate = ("keep", named)
        self._known[(key, untagged)] = fate
        return fate
