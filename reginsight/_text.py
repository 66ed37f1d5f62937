"""Text that came from outside (a registry, a storage tree, a saved inventory) made
inert for where it is shown. A name or a message may hold anything: control
characters that move a terminal's cursor or retitle its window, bidi overrides that
reorder what a reader sees, ``$`` that matplotlib would typeset as math. HTML is
escaped by the report's template itself (jinja2 autoescape)."""

from __future__ import annotations

import html
import unicodedata


def printable(text: object, *, limit: int | None = None) -> str:
    """``text`` for a terminal or a log: every character that is not printable
    (control, format such as bidi overrides, separators other than the space,
    unpaired surrogates of an undecodable file name) as a Python escape, so nothing
    it holds acts on the terminal and nothing is hidden. Cut past ``limit``
    characters, saying how long it was."""
    text = str(text)
    if not text.isprintable():
        text = "".join(_escaped(char) for char in text)
    if limit is not None and len(text) > limit:
        text = f"{text[:limit]}... ({len(text)} characters)"
    return text


def _escaped(char: str) -> str:
    if char.isprintable():
        return char
    if unicodedata.category(char) == "Cs":  # a surrogate escape of an undecodable byte
        return f"\\x{ord(char) - 0xDC00:02x}" if 0xDC80 <= ord(char) <= 0xDCFF else \
            f"\\u{ord(char):04x}"
    return repr(char)[1:-1] if char not in "'\"" else char


def inert(text: object) -> str:
    """``text`` for HTML: printable, then escaped."""
    return html.escape(printable(text))


def plot_label(text: object) -> str:
    """``text`` for a matplotlib label: printable, with ``$`` escaped so mathtext
    never parses it (an odd number of ``$`` would crash the plot, an even number
    typeset what lies between)."""
    return printable(text).replace("$", r"\$")
