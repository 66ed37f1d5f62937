"""Byte counts for people: binary units, as registries and docker report sizes."""

from __future__ import annotations

from typing import Any

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(value: float, _position: Any = None) -> str:
    """1536 -> '1.5 KiB'. (The unused second argument lets matplotlib use it as a
    tick formatter.)"""
    value = float(value)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{round(value) or 0} B"  # never "-0 B"
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} {_UNITS[-1]}"


def count(number: int, noun: str) -> str:
    """3, 'image' -> '3 images'; 1 -> '1 image'; 2, 'repository' -> '2 repositories'
    (nouns with a regular plural)."""
    if number == 1:
        return f"1 {noun}"
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "o", "u"):
        return f"{number:,} {noun[:-1]}ies"
    return f"{number:,} {noun}s"
