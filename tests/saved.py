"""Inventories as earlier versions saved them: format version 1, one Parquet file per
frame. Tests that older saves keep loading write them with this."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

import reginsight as ri


def save_version_1(inv: ri.Inventory, path: Path,
                   edit: Callable[[str, pd.DataFrame], pd.DataFrame] = lambda _, f: f) -> Path:
    """Write ``inv`` as format version 1 did; ``edit(name, frame)`` may first drop or
    rename columns as an older version had them."""
    path.mkdir(parents=True, exist_ok=True)
    for name, frame in inv.frames():
        edit(name, frame).to_parquet(path / f"{name}.parquet")
    (path / "inventory.json").write_text(json.dumps({
        "format": "reginsight-inventory", "version": 1, "registry": inv.registry,
        "taken_at": inv.taken_at.isoformat(), "scope": inv.scope, "reginsight": "0.1.0"}))
    return path
