"""Which manifest each manifest is about: the ``subject`` of signatures, SBOMs and
attestations, from every place a registry records it. Pure, over the facts model.

Sources, first one wins (DESIGN.md): the manifest's own OCI 1.1 ``subject`` field;
the referrers API (``GET /v2/<name>/referrers/<digest>`` listed it); the referrers
fallback tag ``sha256-<hex>`` (the index it names, and that index's entries, are
about that digest); cosign's tags ``sha256-<hex>.sig|.att|.sbom``; buildx's
attestation entries of an index (``vnd.docker.reference.digest``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .._artifacts import subject_of_tag
from ._facts import ManifestInfo

#: subject sources, first one wins
SOURCES = ("subject", "referrers API", "fallback tag", "cosign tag", "buildx annotation")
_RANK = {source: rank for rank, source in enumerate(SOURCES)}

Placement = tuple[str, str]  # (repository, digest)


def subjects(*, rows: Mapping[str, Iterable[str]], infos: Mapping[str, ManifestInfo],
             tags: Iterable[tuple[str, str, str]],
             referrers: Iterable[tuple[str, str, str]] = ()
             ) -> dict[Placement, tuple[str, str]]:
    """``(repository, digest) -> (subject, source)`` for the manifests in ``rows``
    (repository -> digests held) that are about another one.

    ``tags``: (repository, tag, digest); ``referrers``: (repository, subject,
    referrer digest) as the referrers API listed them.
    """
    held = {repo: set(digests) for repo, digests in rows.items()}
    found: dict[Placement, tuple[str, str]] = {}

    def offer(repo: str, digest: str, subject: str | None, source: str) -> None:
        if subject is None or subject == digest or digest not in held.get(repo, ()):
            return
        known = found.get((repo, digest))
        if known is None or _RANK[source] < _RANK[known[1]]:
            found[(repo, digest)] = (subject, source)

    for repo, digests in held.items():
        for digest in digests:
            info = infos.get(digest)
            if info is None:
                continue
            offer(repo, digest, info.subject, "subject")
            for child in info.children:
                offer(repo, child.digest, child.subject, "buildx annotation")
    for repo, subject, digest in referrers:
        offer(repo, digest, subject, "referrers API")
    for repo, tag, digest in tags:
        named = subject_of_tag(tag)
        if named is None:
            continue
        subject, source = named
        offer(repo, digest, subject, source)
        info = infos.get(digest)
        if source == "fallback tag" and info is not None:
            for child in info.children:  # the fallback index lists the referrers
                offer(repo, child.digest, subject, source)
    return found
