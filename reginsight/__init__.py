"""reginsight: container registries (Docker Registry HTTP API V2 / OCI Distribution)
read into pandas for analysis in Jupyter.

    import reginsight as ri
    reg = ri.Registry("https://registry.example.com")
    reg.tags("team/app")

The package is layered, imports pointing down only (checked by import-linter, see
pyproject.toml)::

    _cli        the ``reginsight`` command line, one module per command
    present     plots, the explorer widget, the HTML report (no network I/O)
    ops         copy, delete_tag/delete_digest, cleanup plans and applying them
    analysis    pure DataFrame -> DataFrame/Series functions
    inventory   the facts model, one reachability, crawl -> frames -> Parquet
    usage       pull records (beside inventory): registry logs and the listener's
                events -> one frame
    registry    Registry (the I/O shell), auth, transport, the sans-I/O protocol
                core, manifests, references, digests, hosts
    _artifacts  roles of manifests (signature, sbom, ...) and the subject conventions
    _policy     the cleanup policy's words: suggested rules, ages, the protect regex
    _errors, _mediatypes, _json, _units, _version   no project imports

Every public name is re-exported here; pandas-backed ones load on first use so that
``import reginsight`` stays light.
"""

from . import schema1
from ._errors import (
    AuthenticationError,
    BreaksIndex,
    CatalogUnavailable,
    CleanupStopped,
    CollectorsDiffer,
    CollectorWouldStop,
    CredentialsError,
    DeadlineExceeded,
    DigestMismatch,
    ErrorDetail,
    InvalidDigest,
    InvalidReference,
    InventoryError,
    ListingTooLong,
    ManifestInvalid,
    NotARegistry,
    NotFound,
    OtherTagsAffected,
    PermissionDenied,
    PlanError,
    ProtocolViolation,
    PullRecordsInvalid,
    RateLimited,
    RateLimitWarning,
    ReginsightError,
    RegistryError,
    RegistryUnreachable,
    ResponseError,
    SignatureInvalid,
    TagMoved,
    TooLarge,
    UnsafeAddress,
    UnsupportedOperation,
)
from ._units import format_bytes
from ._version import __version__
from .ops._copy import copy
from .ops._tagdelete import (
    DigestDeletion,
    TagDeletion,
    delete_digest,
    delete_tag,
    tags_pointing_at,
)
from .registry._client import Registry
from .registry._credentials import Credentials
from .registry._digest import Digest, DigestVerifier, is_digest, parse_digest
from .registry._manifest import (
    Descriptor,
    ImageIndex,
    ImageManifest,
    Manifest,
    Platform,
    Schema1Manifest,
    parse_manifest,
)
from .registry._reference import Reference, parse_reference
from .registry._retry import NO_RETRY, RetryPolicy
from .registry.protocol import RateLimit

# pandas-backed names load on first use: `import reginsight` stays light
_LAZY = {
    "Inventory": "inventory._inventory",
    "LazyInventory": "inventory._lazy",
    "crawl": "inventory._crawl",
    "load_tags": "inventory._crawl",
    "load_manifests": "inventory._crawl",
    "load_layers": "inventory._crawl",
    "scan_storage": "inventory._scan",
    "sample": "inventory._sample",
    "disk_usage": "analysis._disk",
    "disk_blobs": "analysis._disk",
    "gc_preview": "analysis._disk",
    "broken_images": "analysis._disk",
    "storage_summary": "analysis._storage",
    "storage_by_repository": "analysis._storage",
    "repositories_without_tags": "analysis._storage",
    "layer_sharing": "analysis._storage",
    "sharing_matrix": "analysis._storage",
    "tag_blobs": "analysis._storage",
    "reclaimable": "analysis._reclaim",
    "reclaimable_blobs": "analysis._reclaim",
    "PartialInventoryWarning": "analysis._reclaim",
    "referrers": "analysis._referrers",
    "storage_by_role": "analysis._referrers",
    "images_without": "analysis._referrers",
    "image_created": "analysis._history",
    "image_ages": "analysis._history",
    "growth": "analysis._history",
    "plan_cleanup": "ops._plan",
    "plan_frees": "ops._frees",
    "apply_cleanup": "ops._apply",
    "plan_csv": "ops._planfile",
    "save_plan": "ops._planfile",
    "load_plan": "ops._planfile",
    "plot_storage": "present._plots",
    "plot_layer_sharing": "present._plots",
    "plot_storage_by_role": "present._plots",
    "plot_sharing_matrix": "present._plots",
    "plot_image_age": "present._plots",
    "plot_growth": "present._plots",
    "plot_pulls": "present._plots",
    "export_report": "present._report",
    "explore": "present._widgets",
    "read_pulls": "usage._read",
    "last_pulled": "analysis._pulls",
    "unpulled_bytes": "analysis._pulls",
    "sample_access_log": "inventory._samplelog",
}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'reginsight' has no attribute {name!r}")


def __dir__() -> list[str]:
    """What tab completion offers: the loaded names and the lazily loaded ones."""
    return sorted({*globals(), *_LAZY})


__all__ = [
    *_LAZY,
    "NO_RETRY",
    "AuthenticationError",
    "BreaksIndex",
    "CatalogUnavailable",
    "CleanupStopped",
    "Credentials",
    "CredentialsError",
    "DeadlineExceeded",
    "Descriptor",
    "Digest",
    "DigestDeletion",
    "DigestMismatch",
    "DigestVerifier",
    "ErrorDetail",
    "ImageIndex",
    "ImageManifest",
    "InvalidDigest",
    "InvalidReference",
    "InventoryError",
    "CollectorsDiffer",
    "CollectorWouldStop",
    "ListingTooLong",
    "Manifest",
    "ManifestInvalid",
    "NotARegistry",
    "NotFound",
    "OtherTagsAffected",
    "PermissionDenied",
    "Platform",
    "PlanError",
    "PullRecordsInvalid",
    "ProtocolViolation",
    "RateLimit",
    "RateLimitWarning",
    "RateLimited",
    "Reference",
    "ReginsightError",
    "Registry",
    "RegistryError",
    "RegistryUnreachable",
    "ResponseError",
    "RetryPolicy",
    "Schema1Manifest",
    "SignatureInvalid",
    "TagDeletion",
    "TagMoved",
    "TooLarge",
    "UnsafeAddress",
    "UnsupportedOperation",
    "__version__",
    "copy",
    "delete_digest",
    "delete_tag",
    "format_bytes",
    "is_digest",
    "parse_digest",
    "parse_manifest",
    "parse_reference",
    "schema1",
    "tags_pointing_at",
]
