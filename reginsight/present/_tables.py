"""The explorer's tables: itables ``ITable`` widgets (DataTables), sorted and searched
in the browser, and what they need to show a registry's data as a reader expects.

DataTables guesses each column's type from its cells: a column of "1.0" is numeric,
right-aligned and sorted as numbers. Tags and names are text whatever they look like,
so :func:`columns` declares them ``string`` (left-aligned) and orders them by a hidden
rank column in natural order (v2 before v10, 1.9 before 1.10); byte columns show
"4.1 MiB" and are ordered by a hidden column of their bytes. A table with no rows is
hidden and the title above it says what to pick instead (:func:`fill`), not a header
over "No data available in table".

Cells are outside text: made printable here, escaped by itables (``allow_html=False``
below, whatever a notebook set as itables' global option).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd

from .._text import inert, printable
from .._units import format_bytes

PAGE = 10
#: DataTables options of every table. The search box shows however short the table
#: (itables drops the default controls when the rows fit on one page)
OPTIONS = {"select": {"style": "single"}, "showIndex": False, "pageLength": PAGE,
           "allow_html": False,
           "maxBytes": 0,  # every row: itables would otherwise sample a long table
           "classes": "display compact nowrap",
           "layout": {"topStart": None, "topEnd": "search", "bottomStart": "info",
                      "bottomEnd": "paging"}}
#: a table whose rows are only read (and copied): a click selects nothing
READ_ONLY = {**OPTIONS, "select": {"style": "api"}}

_DIGITS = re.compile(r"(\d+)")


def grid(**options: Any) -> Any:
    from itables.widget import ITable

    return ITable(**{**OPTIONS, **options})


def natural_key(text: str) -> tuple[Any, ...]:
    """Sort key of ``text`` with its digit runs compared as numbers: ``v2`` before
    ``v10``, ``1.9.0`` before ``1.10.0``; equal keys ("v01", "v1") by their text."""
    parts = _DIGITS.split(text)  # text, digits, text, ...: the same kind at each place
    return (tuple(int(p) if n % 2 else p.casefold() for n, p in enumerate(parts)), text)


def natural_ranks(values: Iterable[Any]) -> np.ndarray:
    """Each value's place in natural order (0 first; equal values share one); NA and ""
    first. Each distinct value is keyed once."""
    texts = [v if isinstance(v, str) else "" if pd.isna(v) else str(v) for v in values]
    codes, distinct = pd.factorize(pd.Series(texts, dtype=object), sort=False)
    order = sorted(range(len(distinct)), key=lambda n: natural_key(distinct[n]))
    ranks = np.empty(len(distinct), dtype="int64")
    ranks[order] = np.arange(len(distinct))
    return ranks[codes]


def columns(frame: pd.DataFrame, *, sizes: dict[str, str] | None = None,
            text: Iterable[str] = (), ranked: dict[str, str] | None = None
            ) -> tuple[pd.DataFrame, list[dict]]:
    """``frame`` as a table shows it, and its DataTables ``columnDefs``.

    ``sizes`` maps byte columns to the name they are shown under ("4.1 MiB", "?" when
    unknown), right-aligned as numbers are and ordered by a hidden ``<name> bytes``
    column. ``text`` columns are declared text (left-aligned, never numbers) and
    ordered naturally by a hidden ``<name> order`` column. ``ranked`` maps a column
    shown as words (a time, "never") to the column of ``frame`` it is ordered by
    (numbers), hidden."""
    shown = frame.copy()
    hidden: list[tuple[str, str]] = []
    for source, name in (sizes or {}).items():
        raw = shown[source].astype("Int64")
        shown[name] = [format_bytes(v) if not pd.isna(v) else "?" for v in raw]
        shown[f"{name} bytes"] = raw.fillna(-1).astype("int64")
        hidden.append((name, f"{name} bytes"))
    shown = shown.drop(columns=[c for c in sizes or {} if c not in (sizes or {}).values()])
    text = list(text)
    for name in text:
        shown[f"{name} order"] = natural_ranks(shown[name])
        hidden.append((name, f"{name} order"))
    for name, rank in (ranked or {}).items():
        shown[rank] = shown.pop(rank)  # after the columns shown, as the others
        hidden.append((name, rank))
    order = list(shown.columns)
    defs: list[dict] = [{"targets": order.index(name), "orderData": order.index(rank),
                         **({"type": "string"} if name in text or name in (ranked or {})
                            else {"className": "dt-right"})}
                        for name, rank in hidden]
    defs.append({"targets": [order.index(rank) for _, rank in hidden],
                 "visible": False, "searchable": False})
    return shown, defs


def printable_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its strings printable, for an itables table (which escapes the
    HTML itself); numbers and missing values stay as they are."""
    names = frame.select_dtypes(include=["object", "string", "category"]).columns
    return frame.assign(**{name: [printable(v) if isinstance(v, str) else v
                                  for v in frame[name]] for name in names})


def fill(table: Any, title: widgets.HTML, frame: pd.DataFrame, defs: list[dict] | None = None,
         *, caption: str, empty: str, options: dict[str, Any] = OPTIONS) -> None:
    """New rows in ``table``, nothing selected; ``title`` says what it lists. No rows:
    the table is hidden and ``title`` says ``empty`` (what to pick to fill it)."""
    if not frame.empty:  # shown before its rows come: DataTables sizes columns as it draws
        table.layout.display = None
    table.update(printable_cells(frame), selected_rows=[], **options, columnDefs=defs or [])
    if frame.empty:
        table.layout.display = "none"
    # last: a title that says what the table lists follows the rows it lists
    title.value = (f"<i class='ri-hint'>{inert(empty)}</i>" if frame.empty
                   else f"<b class='ri-title'>{inert(caption)}</b>")


def html_table(frame: pd.DataFrame, *, limit: int = 200) -> str:
    """A small static table (the platforms of an index, a result), escaped."""
    if frame.empty:
        return "<i>none</i>"
    head = "".join(f"<th style='text-align:left;padding:2px 8px'>{inert(c)}</th>"
                   for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td style='padding:2px 8px'>{inert(v)}</td>"
                                    for v in row) + "</tr>"
                   for row in frame.head(limit).itertuples(index=False))
    more = f"<p><i>{len(frame) - limit} more</i></p>" if len(frame) > limit else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"
