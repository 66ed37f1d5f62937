"""JSON from servers and files that cannot crash the caller: an object, or None."""

from __future__ import annotations

import json
from typing import Any


def json_object(data: bytes | str) -> dict[str, Any] | None:
    """The JSON object ``data`` holds, or None: not JSON, not an object, not UTF-8, or
    nested deep enough to exhaust the recursion limit (a hostile document can be)."""
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def is_json(data: bytes | str) -> bool:
    """True when ``data`` is any JSON document (an object, ``true``, a list ...)."""
    try:
        json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False
    return True
