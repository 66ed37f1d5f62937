"""The sample inventory shipped inside the package (``data/sample`` in a checkout links
to it): a real Distribution 2.8 registry's crawl, for trying every function, plot,
the explorer and the report without a registry of one's own."""

from __future__ import annotations

import os
from pathlib import Path

from ._inventory import Inventory

#: where the package keeps it
SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample"
#: what titles, headers and messages call it: its registry URL (a loopback address, as
#: a user's own registry often has) would pass it off as the user's registry
SAMPLE_LABEL = "the bundled sample"


def sample() -> Inventory:
    """The bundled sample inventory: a real Distribution 2.8 registry (9 repositories,
    42 tags: images, multi-arch indexes and what a registry holds beside them), crawled
    once and saved with the package. Its ``label`` is "the bundled sample", which the
    report and the explorer show instead of its registry URL. The notebooks read it
    when no registry is configured (``REGINSIGHT_REGISTRY`` unset).

    It is a crawl through the tag API: what only the registry's storage holds
    (untagged manifests, the blobs of deleted images, unfinished uploads) is not in
    it, so :func:`reginsight.disk_usage`, :func:`reginsight.gc_preview` and
    ``plan_cleanup(..., untagged=True)`` refuse it; they need
    :func:`reginsight.scan_storage`. Each call loads a fresh copy: changing its
    frames changes no later one."""
    inv = Inventory.load(SAMPLE_DIR)
    inv.label = SAMPLE_LABEL
    return inv


def is_sample(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is the bundled sample's folder (also through ``data/sample``)."""
    try:
        return Path(path).resolve() == SAMPLE_DIR
    except OSError:
        return False
