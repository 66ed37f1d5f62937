"""reginsight: container registries (Docker Registry HTTP API V2 / OCI Distribution)
read into pandas for analysis in Jupyter.

    import reginsight as ri
    reg = ri.Registry("https://registry.example.com")
    reg.tags("team/app")
"""

__version__ = "0.1.0"

from . import schema1
from ._client import Registry
from ._copy import copy
from ._credentials import Credentials
from ._digest import Digest, DigestVerifier, parse_digest
from ._errors import (
    AuthenticationError,
    CredentialsError,
    DigestMismatch,
    ErrorDetail,
    InvalidDigest,
    InvalidReference,
    ManifestInvalid,
    NotARegistry,
    NotFound,
    PermissionDenied,
    PlanError,
    ProtocolViolation,
    RateLimited,
    RegistryError,
    RegistryUnreachable,
    ResponseError,
    TooLarge,
    UnsafeAddress,
    UnsupportedOperation,
)
from ._manifest import (
    Descriptor,
    ImageIndex,
    ImageManifest,
    Manifest,
    Platform,
    Schema1Manifest,
    parse_manifest,
)
from ._reference import Reference, parse_reference
from ._retry import NO_RETRY, RateLimit, RetryPolicy
from ._tagdelete import OtherTagsAffected, TagDeletion, TagMoved, delete_tag, tags_pointing_at

# pandas-backed names load on first use: `import reginsight` stays light
_LAZY = {
    "Inventory": "._inventory",
    "InventoryError": "._inventory",
    "crawl": "._crawl",
    "load_tags": "._crawl",
    "load_manifests": "._crawl",
    "load_layers": "._crawl",
    "storage_summary": "._analysis",
    "storage_by_repository": "._analysis",
    "layer_sharing": "._analysis",
    "sharing_matrix": "._analysis",
    "reclaimable": "._analysis",
    "reclaimable_blobs": "._analysis",
    "PartialInventoryWarning": "._analysis",
    "tag_blobs": "._analysis",
    "plan_cleanup": "._cleanup",
    "apply_cleanup": "._cleanup",
    "CleanupStopped": "._cleanup",
    "plot_storage": "._plots",
    "plot_layer_sharing": "._plots",
    "plot_sharing_matrix": "._plots",
    "plot_image_age": "._plots",
    "plot_growth": "._plots",
    "format_bytes": "._units",
    "export_report": "._report",
    "explore": "._widgets",
}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'reginsight' has no attribute {name!r}")


__all__ = [
    *_LAZY,
    "AuthenticationError",
    "Credentials",
    "CredentialsError",
    "Descriptor",
    "Digest",
    "DigestMismatch",
    "DigestVerifier",
    "ErrorDetail",
    "ImageIndex",
    "ImageManifest",
    "InvalidDigest",
    "InvalidReference",
    "Manifest",
    "ManifestInvalid",
    "NO_RETRY",
    "NotARegistry",
    "NotFound",
    "OtherTagsAffected",
    "PermissionDenied",
    "Platform",
    "PlanError",
    "ProtocolViolation",
    "RateLimit",
    "RateLimited",
    "Reference",
    "Registry",
    "RegistryError",
    "RegistryUnreachable",
    "ResponseError",
    "RetryPolicy",
    "Schema1Manifest",
    "TagDeletion",
    "TagMoved",
    "TooLarge",
    "UnsafeAddress",
    "UnsupportedOperation",
    "__version__",
    "copy",
    "delete_tag",
    "parse_digest",
    "parse_manifest",
    "parse_reference",
    "schema1",
    "tags_pointing_at",
]
