"""The sans-I/O core of the registry protocol: nothing here touches the network.

Each verb is a pair of pure functions: one builds a :class:`Request`, the other
reads the :class:`Answer` (status, headers, body) into a result or a typed error
(:func:`check` -> :func:`decipher_error`, the one place an answer becomes an
exception). The I/O shell, :class:`reginsight.Registry`, sends one and feeds the
other; another shell (async, or a test without a server) reuses every line.

==================  ===========================================  ==============================
verb                build                                        interpret
==================  ===========================================  ==============================
ping                ping_request                                 interpret_ping
catalog page        catalog_page                                 interpret_catalog_page
tags page           tags_page                                    interpret_tags_page
manifest GET        get_manifest                                 interpret_manifest
manifest HEAD       head_manifest                                interpret_manifest_head
manifest PUT        put_manifest                                 interpret_put_manifest
manifest DELETE     delete_manifest                              interpret_delete
tag DELETE (OCI)    untag                                        interpret_untag
blob HEAD           head_blob                                    interpret_has_blob / _blob_size
blob GET            get_blob                                     interpret_blob_start, resume_skip
upload start        start_upload                                 interpret_start_upload
upload chunk        patch_chunk                                  interpret_patch, accepted_offset
upload status       upload_status                                interpret_upload_status
upload finish       finish_upload                                interpret_finish_upload
upload cancel       cancel_upload                                interpret_delete
blob mount          mount_blob                                   interpret_mount
referrers (OCI 1.1) referrers                                    interpret_referrers
==================  ===========================================  ==============================
"""

from ._base import RegistryURL, check_ping, interpret_ping, parse_registry_url, ping_request
from ._blobs import (
    MountResult,
    UploadProgress,
    accepted_offset,
    cancel_upload,
    finish_upload,
    get_blob,
    head_blob,
    interpret_blob_size,
    interpret_blob_start,
    interpret_finish_upload,
    interpret_has_blob,
    interpret_mount,
    interpret_patch,
    interpret_start_upload,
    interpret_upload_status,
    mount_blob,
    patch_chunk,
    resume_skip,
    start_upload,
    upload_status,
)
from ._challenges import Challenge, parse_challenges
from ._links import next_link
from ._listing import (
    LIST_PAGE_LIMIT,
    LISTING_TIME,
    MAX_PAGES,
    PAGE_SIZE,
    InvalidEntry,
    Listing,
    Page,
    Paging,
    catalog_page,
    check_page_size,
    interpret_catalog_page,
    interpret_tags_page,
    smaller_page,
    tags_page,
)
from ._manifests import (
    DOCKER_CONTENT_DIGEST,
    MANIFEST_LIMIT,
    announced_digest,
    delete_manifest,
    get_manifest,
    head_manifest,
    interpret_delete,
    interpret_manifest,
    interpret_manifest_head,
    interpret_put_manifest,
    interpret_untag,
    put_manifest,
    untag,
)
from ._message import (
    SMALL_BODY_LIMIT,
    Answer,
    ErrorCode,
    Request,
    check,
    decimal,
    decipher_error,
    parse_error_body,
    parse_retry_after,
)
from ._paths import blob_path, manifest_path, tags_path, with_query
from ._ratelimit import RateLimit, parse_rate_limit
from ._referrers import fallback_tag, interpret_referrers, referrers
from ._scopes import CATALOG_SCOPE, merge_scopes, repository_scope

__all__ = [
    "CATALOG_SCOPE", "DOCKER_CONTENT_DIGEST", "LISTING_TIME", "LIST_PAGE_LIMIT",
    "MANIFEST_LIMIT", "MAX_PAGES", "PAGE_SIZE", "SMALL_BODY_LIMIT", "Answer", "Challenge",
    "ErrorCode",
    "InvalidEntry", "Listing", "MountResult", "Page", "Paging", "RateLimit", "RegistryURL",
    "Request", "UploadProgress", "accepted_offset", "announced_digest", "blob_path",
    "cancel_upload", "catalog_page", "check", "check_page_size", "check_ping", "decimal",
    "decipher_error",
    "delete_manifest", "fallback_tag", "finish_upload", "get_blob", "get_manifest",
    "head_blob", "head_manifest", "interpret_blob_size", "interpret_blob_start",
    "interpret_catalog_page", "interpret_delete", "interpret_finish_upload",
    "interpret_has_blob", "interpret_manifest", "interpret_manifest_head", "interpret_mount",
    "interpret_patch", "interpret_ping", "interpret_put_manifest", "interpret_referrers",
    "interpret_start_upload", "interpret_tags_page", "interpret_untag",
    "interpret_upload_status", "manifest_path", "merge_scopes", "mount_blob", "next_link",
    "parse_challenges", "parse_error_body", "parse_rate_limit", "parse_registry_url",
    "parse_retry_after", "patch_chunk", "ping_request", "put_manifest", "referrers",
    "repository_scope", "resume_skip", "smaller_page", "start_upload", "tags_page",
    "tags_path", "untag", "upload_status", "with_query",
]
