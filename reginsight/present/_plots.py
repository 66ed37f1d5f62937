"""Plots of an Inventory, and of pull records (matplotlib): presentation only, no I/O.

Each function takes ``ax=None`` (a new figure then) and returns the Axes; none
calls ``plt.show()``. Byte axes step in binary units (1, 2, 4 ... MiB) and read in
KiB/MiB/GiB; an inventory with nothing to plot gets a note, not an empty frame.

Names, tags and roles come from a registry or a storage tree: every one shown goes
through :func:`reginsight._text.plot_label` (printable, ``$`` escaped), so none is
typeset as math (a lone ``$`` or ``\\frac`` crashed the drawing) and no control
character, bidi override or lone surrogate reaches a label, an SVG or a PNG. One way
everywhere: tick labels and legend entries are Text objects matplotlib makes itself,
where ``parse_math=False`` cannot be passed.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._text import plot_label
from .._units import _UNITS, count, format_bytes
from ..analysis._history import growth
from ..analysis._referrers import storage_by_role
from ..analysis._storage import layer_sharing, sharing_matrix, storage_by_repository
from ..ops._plan import EPOCH

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ..inventory._inventory import Inventory

#: repositories named on an axis at most; more and the labels overlap
MAX_LABELS = 30
#: a heatmap writes its values in the cells up to this many repositories (the report's 20)
MAX_ANNOTATED = 20


def _legend_label(text: object) -> str:
    """Outside text for a legend entry: :func:`plot_label`, and never starting with "_",
    which matplotlib takes for "leave out of the legend" (a saved inventory may hold
    any name)."""
    label = plot_label(text)
    return f" {label}" if label.startswith("_") else label


def _named_bars(ax: Axes, names: list[str]) -> range:
    """Positions 0..n-1 for horizontal bars, labelled with ``names``. Numbers, not a
    category axis: two names that read the same once made printable (a newline and a
    literal ``\\n``) keep a bar each instead of drawing onto one."""
    positions = range(len(names))
    ax.set_yticks(positions, [plot_label(name) for name in names])
    return positions


def _axes(ax: Axes | None, size: tuple[float, float] = (8, 5)) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=size, layout="constrained")
    return ax


def binary_ticks(low: float, high: float, *, most: int = 8) -> list[float]:
    """Tick positions for a byte axis from ``low`` to ``high``: multiples of a power of
    two of the unit that fits (1, 2, 4 ... MiB; 256, 512, 768 KiB), at most ``most``
    of them (one more where the ends fall on ticks), 0 included when in range."""
    span = high - low
    if not (math.isfinite(low) and math.isfinite(high)) or span <= 0:
        return [low] if math.isfinite(low) else [0.0]
    largest = max(abs(low), abs(high), 1.0)
    unit = 1024.0 ** min(len(_UNITS) - 1, int(math.log(largest, 1024)))
    step = max(1.0, unit * 2.0 ** math.ceil(math.log2(span / unit / most)))
    return [n * step for n in range(math.ceil(low / step), math.floor(high / step) + 1)]


def _tick_label(value: float, _position: Any = None) -> str:
    """A tick's bytes with as many decimals as it needs: "4 MiB", "1.25 MiB", "0"."""
    if not value:
        return "0"  # also -0.0, never "-0 B"
    power = min(len(_UNITS) - 1, int(math.log(abs(value), 1024))) if abs(value) >= 1 else 0
    number = f"{value / 1024.0 ** power:.2f}".rstrip("0").rstrip(".")
    return f"{number} {_UNITS[power]}"


def _cell(value: float) -> list[str]:
    """A heatmap cell's bytes in the units of every other figure, as lines to stack
    (a cell stays narrow): ["6.8", "MiB"], ["0"]; the blank diagonal ["—"]."""
    if np.isnan(value):
        return ["—"]
    return format_bytes(value).split(" ") if value else ["0"]


def _cell_font(ax: Axes, cells: int) -> float:
    """Points for the values of ``cells`` x ``cells`` square cells: "small", or less
    where two lines of it would not fit a cell (the axes' share of the figure, before
    the colorbar and the labels take theirs, over the cells)."""
    from matplotlib.font_manager import FontProperties

    width, height = ax.figure.get_size_inches()
    place = ax.get_position()
    side = min(width * place.width, height * place.height) * 0.85 / cells * 72
    return min(FontProperties(size="small").get_size_in_points(), side / 2.6)


def _byte_axis(axis: Any) -> None:
    from matplotlib.ticker import FuncFormatter, Locator

    class BinaryLocator(Locator):  # matplotlib imported only when a plot is drawn
        def __call__(self) -> list[float]:
            return self.tick_values(*self.axis.get_view_interval())

        def tick_values(self, vmin: float, vmax: float) -> list[float]:
            return binary_ticks(*sorted((vmin, vmax)))

    axis.set_major_locator(BinaryLocator())
    axis.set_major_formatter(FuncFormatter(_tick_label))


def _nothing(ax: Axes, title: str, what: str) -> Axes:
    """An empty inventory: say so where the plot would be."""
    ax.set_title(title)
    ax.text(0.5, 0.5, what, ha="center", va="center", transform=ax.transAxes, color="#59636e")
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def plot_storage(inv: Inventory, ax: Axes | None = None, *, top: int = 20) -> Axes:
    """Stored bytes per repository, exclusive and shared stacked, the ``top`` largest."""
    ax = _axes(ax)
    frame = storage_by_repository(inv)
    frame = frame[frame["stored_bytes"] > 0].head(min(top, MAX_LABELS)).iloc[::-1]
    if frame.empty:
        return _nothing(ax, "Storage by repository", "no image bytes in this inventory")
    names = _named_bars(ax, frame["repository"].astype(str).tolist())
    ax.barh(names, frame["exclusive_bytes"], label="exclusive", color="#4c72b0")
    ax.barh(names, frame["shared_bytes"], left=frame["exclusive_bytes"], label="shared",
            color="#dd8452")
    _byte_axis(ax.xaxis)
    ax.set_xlabel("stored bytes")
    ax.set_title(f"Storage by repository (top {len(frame)})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the bars, never on one
    return ax


def plot_storage_by_role(inv: Inventory, ax: Axes | None = None) -> Axes:
    """Stored bytes per role (image, index, signature, attestation, sbom, artifact):
    exclusive and shared with other roles stacked, each bar labelled with its bytes
    and manifests (inside a long bar, beside a short one: never past the axes)."""
    ax = _axes(ax, (8, 3.5))
    frame = storage_by_role(inv).iloc[::-1]
    if frame.empty:
        return _nothing(ax, "Storage by role", "no manifests in this inventory")
    names = _named_bars(ax, frame["role"].astype(str).tolist())
    shared = frame["stored_bytes"] - frame["exclusive_bytes"]
    ax.barh(names, frame["exclusive_bytes"], label="only this role", color="#4c72b0")
    ax.barh(names, shared, left=frame["exclusive_bytes"], label="shared with other roles",
            color="#dd8452")
    longest = max(int(frame["stored_bytes"].max()), 1)
    for y, (stored, manifests) in enumerate(zip(frame["stored_bytes"], frame["manifests"],
                                                strict=True)):
        # a role's few KiB next to GiB of images: read, not seen
        label = f"{format_bytes(stored)}, {count(int(manifests), 'manifest')}"
        inside = stored > longest / 2
        ax.annotate(label, (stored, y), xytext=(-4 if inside else 4, 0),
                    textcoords="offset points", va="center", fontsize="small",
                    ha="right" if inside else "left", color="white" if inside else "black")
    _byte_axis(ax.xaxis)
    ax.set_xlim(0, longest * 1.02)
    ax.set_xlabel("stored bytes (config and layer blobs)")
    ax.set_title("Storage by role")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return ax


def plot_layer_sharing(inv: Inventory, ax: Axes | None = None) -> Axes:
    """How many repositories each layer serves, and the bytes sharing saves there.
    Past :data:`MAX_LABELS` bars, the counts are grouped in ranges (1, 2, 3-4, 5-8 ...)."""
    ax = _axes(ax)
    sharing = layer_sharing(inv)
    sharing = sharing[sharing["kind"] == "layer"]
    if sharing.empty:
        return _nothing(ax, "Layer sharing", "no layers in this inventory")
    served = sharing["repositories"].astype("int64")
    if served.nunique() > MAX_LABELS:  # 300 repositories: ranges, not 300 labels
        upper = 2 ** np.ceil(np.log2(served.to_numpy()))
        lower = np.where(upper <= 2, upper, upper // 2 + 1).astype(int)
        bucket = [f"{lo}" if lo == up else f"{lo}-{int(up)}" for lo, up in zip(
            lower, upper, strict=True)]
        sharing = sharing.assign(group=bucket, order=upper)
    else:
        sharing = sharing.assign(group=served.astype(str), order=served)
    grouped = sharing.groupby(["order", "group"]).agg(layers=("digest", "size"),
                                                      saved=("bytes_saved", "sum"))
    labels = grouped.index.get_level_values("group").tolist()
    bars = ax.bar(labels, grouped["saved"], color="#55a868")
    for bar, layers in zip(bars, grouped["layers"], strict=True):
        ax.annotate(count(int(layers), "layer"),
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                    fontsize="small")
    _byte_axis(ax.yaxis)
    ax.set_ylim(0, max(float(grouped["saved"].max()), 1.0) * 1.15)  # room for the counts
    ax.set_xlabel("repositories a layer serves")
    ax.set_ylabel("bytes saved by sharing")
    ax.set_title("Layer sharing")
    return ax


def plot_sharing_matrix(inv: Inventory, ax: Axes | None = None, *, top: int = 20) -> Axes:
    """Heatmap of bytes shared between repositories (the ``top`` storing most). The
    diagonal (each repository's own stored bytes) is left blank so the colours show
    what is shared; up to :data:`MAX_ANNOTATED` repositories the cells carry values."""
    matrix = sharing_matrix(inv, top=min(top, MAX_LABELS))
    ax = _axes(ax, (8, 7))
    if len(matrix) < 2:
        return _nothing(ax, "Bytes shared between repositories",
                        "fewer than two repositories hold image bytes")
    values = matrix.to_numpy(dtype=float, copy=True)
    np.fill_diagonal(values, np.nan)
    shown = np.ma.masked_invalid(values)
    image = ax.imshow(shown, cmap="viridis", vmin=0, vmax=max(float(np.nanmax(values)), 1.0))
    labels = [plot_label(n) for n in matrix.index]
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    if len(labels) <= MAX_ANNOTATED:
        middle = max(float(np.nanmax(values)), 1.0) / 2
        size = _cell_font(ax, len(labels))
        for row in range(len(labels)):
            for column in range(len(labels)):
                value = values[row, column]
                lines = _cell(value)
                colour = "white" if np.isnan(value) or value < middle else "black"
                # one Text a line: number just above the middle, unit just below
                for line, place in zip(lines, ("bottom", "top") if len(lines) == 2
                                       else ("center",), strict=True):
                    ax.text(column, row, line, ha="center", va=place, fontsize=size,
                            color=colour)
    ax.set_facecolor("#59636e")  # the blank diagonal
    colorbar = ax.figure.colorbar(image, ax=ax, fraction=0.05, shrink=0.85)
    _byte_axis(colorbar.ax.yaxis)
    ax.set_title("Bytes shared between repositories (diagonal left out)")
    return ax


def plot_image_age(inv: Inventory, ax: Axes | None = None) -> Axes:
    """Image size against creation time, one point per tag (an index's tag at its
    newest platform image's time), coloured by repository (the 10 with most tags
    named, the others grey)."""
    ax = _axes(ax)
    frame = inv.tags[["repository", "tag", "created", "size"]]  # tag-level, see Inventory
    # a placeholder time (reproducible builds: 1970) is unknown, as plan_cleanup takes it
    frame = frame[(frame["created"] > EPOCH) & frame["size"].notna()]
    if frame.empty:
        return _nothing(ax, "Image size and age", "no tag with a known creation time")
    frame = frame.assign(repository=frame["repository"].astype(str))
    named = frame["repository"].value_counts().index[:10]
    import matplotlib as mpl

    colours = mpl.colormaps["tab10"]
    for number, repository in enumerate(named):
        part = frame[frame["repository"] == repository]
        ax.scatter(part["created"].dt.tz_convert(None), part["size"].astype(float), s=18,
                   alpha=0.8, color=colours(number), label=_legend_label(repository))
    rest = frame[~frame["repository"].isin(named)]
    if len(rest):
        ax.scatter(rest["created"].dt.tz_convert(None), rest["size"].astype(float), s=12,
                   alpha=0.5, color="#999999",
                   label=count(rest["repository"].nunique(), "other repository"))
    _byte_axis(ax.yaxis)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("created")
    ax.set_ylabel("image size")
    ax.set_title(f"Image size and age ({count(len(frame), 'tag')})")
    # beside the axes, where no point hides behind it
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.figure.autofmt_xdate()
    return ax


def plot_growth(before: Inventory, after: Inventory, ax: Axes | None = None, *,
                top: int = 20) -> Axes:
    """Change in stored bytes per repository between two saved inventories."""
    ax = _axes(ax)
    frame = growth(before, after).head(min(top, MAX_LABELS)).iloc[::-1]
    title = f"Growth {before.taken_at:%Y-%m-%d} -> {after.taken_at:%Y-%m-%d}"
    if frame.empty:
        return _nothing(ax, title, "no repositories in either inventory")
    colors = ["#c44e52" if c > 0 else "#55a868" for c in frame["change"]]
    ax.barh(_named_bars(ax, frame["repository"].astype(str).tolist()), frame["change"],
            color=colors)
    ax.axvline(0, color="black", linewidth=0.8)
    _byte_axis(ax.xaxis)
    ax.set_xlabel("change in stored bytes")
    ax.set_title(title)
    return ax



def plot_pulls(pulls: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Manifest pulls per day (UTC) from pull records (:func:`reginsight.read_pulls`):
    GETs and HEADs stacked, refused requests (status 400 and over) left out. The time
    the records do not cover is shaded "no records": no bar there means nothing is
    known, not nothing pulled."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    from ..analysis._pulls import pull_uses
    from ..usage._frame import PULL_METHODS, covered

    ax = _axes(ax, (8, 3.5))
    used = pull_uses(pulls)
    parts = [(start.tz_convert(None), end.tz_convert(None))
             for start, end in covered(pulls.attrs.get("coverage", []))]
    times = used["time"].dt.tz_convert(None)
    days = times.dt.floor("D")
    bounds = [t for part in parts for t in part] + ([times.min(), times.max()] if len(times)
                                                     else [])
    if not bounds:
        return _nothing(ax, "Manifest pulls per day", "no pull records")
    first, end = min(bounds).floor("D"), max(bounds).floor("D") + pd.Timedelta(days=1)
    every = pd.date_range(first, end, freq="D", inclusive="left")
    per_day = used.assign(day=days.to_numpy(), method=used["method"].astype(str)).groupby(
        ["day", "method"]).size().unstack(fill_value=0)
    per_day = per_day.reindex(index=every, columns=list(PULL_METHODS), fill_value=0)
    below = np.zeros(len(every))
    for method, colour in zip(PULL_METHODS, ("#4c72b0", "#dd8452"), strict=True):
        values = per_day[method].to_numpy()
        ax.bar(every, values, width=0.9, bottom=below, align="edge", color=colour,
               label=f"{method} ({int(values.sum()):,})")
        below = below + values
    for number, (start, stop) in enumerate(_uncovered(parts, min(bounds), max(bounds))):
        ax.axvspan(start, stop, color="#d0d7de", linewidth=0, zorder=0,  # behind the bars
                   label="no records" if number == 0 else None)
    locator = AutoDateLocator(maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator, show_offset=False))
    ax.set_xlim(first, end)
    ax.set_ylim(0, max(float(below.max()), 1.0) * 1.05)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("manifest requests")
    ax.set_title(f"Manifest pulls per day, UTC ({count(len(used), 'request')})")
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda n: labels[n] == "no records")  # last
    ax.legend([handles[n] for n in order], [labels[n] for n in order], loc="upper left",
              bbox_to_anchor=(1.0, 1.0))  # beside the bars
    return ax


def _uncovered(parts: list[tuple[pd.Timestamp, pd.Timestamp]], first: pd.Timestamp,
               end: pd.Timestamp) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """The stretches of ``first`` .. ``end`` (the records' first and last time) that
    none of the (sorted, merged) covered ``parts`` holds."""
    gaps, at = [], first
    for start, stop in parts:
        if start > at:
            gaps.append((at, start))
        at = max(at, stop)
    if at < end:
        gaps.append((at, end))
    return gaps
