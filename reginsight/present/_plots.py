"""Plots of an Inventory (matplotlib): presentation only, no I/O.

Each function takes ``ax=None`` (a new figure then) and returns the Axes; none
calls ``plt.show()``. Byte axes read in KiB/MiB/GiB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._units import format_bytes
from ..analysis._history import growth, image_ages
from ..analysis._referrers import storage_by_role
from ..analysis._storage import layer_sharing, sharing_matrix, storage_by_repository

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ..inventory._inventory import Inventory

def _axes(ax: Axes | None, size: tuple[float, float] = (8, 5)) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=size, layout="constrained")
    return ax


def _byte_axis(axis: Any) -> None:
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(format_bytes))


def plot_storage(inv: Inventory, ax: Axes | None = None, *, top: int = 20) -> Axes:
    """Stored bytes per repository, exclusive and shared stacked, the ``top`` largest."""
    ax = _axes(ax)
    frame = storage_by_repository(inv).head(top).iloc[::-1]
    names = frame["repository"].astype(str).tolist()
    ax.barh(names, frame["exclusive_bytes"], label="exclusive", color="#4c72b0")
    ax.barh(names, frame["shared_bytes"], left=frame["exclusive_bytes"], label="shared",
            color="#dd8452")
    _byte_axis(ax.xaxis)
    ax.set_xlabel("stored bytes")
    ax.set_title(f"Storage by repository (top {len(frame)})")
    ax.legend(loc="lower right")
    return ax


def plot_storage_by_role(inv: Inventory, ax: Axes | None = None) -> Axes:
    """Stored bytes per role (image, index, signature, attestation, sbom, artifact):
    exclusive and shared with other roles stacked, manifests counted at each bar."""
    ax = _axes(ax, (8, 3.5))
    frame = storage_by_role(inv).iloc[::-1]
    names = frame["role"].astype(str).tolist()
    shared = frame["stored_bytes"] - frame["exclusive_bytes"]
    ax.barh(names, frame["exclusive_bytes"], label="only this role", color="#4c72b0")
    ax.barh(names, shared, left=frame["exclusive_bytes"], label="shared with other roles",
            color="#dd8452")
    for y, (stored, count) in enumerate(zip(frame["stored_bytes"], frame["manifests"],
                                            strict=True)):
        ax.annotate(f" {format_bytes(stored)}, {count} manifests", (stored, y), va="center",
                    fontsize=8)  # a role's few KiB next to GiB of images: read, not seen
    _byte_axis(ax.xaxis)
    ax.set_xlabel("stored bytes (config and layer blobs)")
    ax.set_title("Storage by role")
    ax.legend(loc="lower right")
    ax.margins(x=0.3)
    return ax


def plot_layer_sharing(inv: Inventory, ax: Axes | None = None) -> Axes:
    """How many repositories each layer serves, and the bytes sharing saves there."""
    ax = _axes(ax)
    sharing = layer_sharing(inv)
    sharing = sharing[sharing["kind"] == "layer"]
    grouped = sharing.groupby("repositories").agg(layers=("digest", "size"),
                                                   saved=("bytes_saved", "sum"))
    bars = ax.bar(grouped.index.astype(str), grouped["saved"], color="#55a868")
    for bar, count in zip(bars, grouped["layers"], strict=True):
        ax.annotate(f"{count} layers", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)
    _byte_axis(ax.yaxis)
    ax.set_xlabel("repositories a layer serves")
    ax.set_ylabel("bytes saved by sharing")
    ax.set_title("Layer sharing")
    return ax


def plot_sharing_matrix(inv: Inventory, ax: Axes | None = None, *, top: int = 20) -> Axes:
    """Heatmap of bytes shared between repositories (the ``top`` storing most)."""
    matrix = sharing_matrix(inv, top=top)
    ax = _axes(ax, (7, 6))
    image = ax.imshow(matrix.to_numpy(dtype=float), cmap="viridis")
    labels = [str(n) for n in matrix.index]
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    colorbar = ax.figure.colorbar(image, ax=ax)
    _byte_axis(colorbar.ax.yaxis)
    ax.set_title("Bytes shared between repositories")
    return ax


def plot_image_age(inv: Inventory, ax: Axes | None = None) -> Axes:
    """Image size against creation time, one point per tag."""
    ax = _axes(ax)
    frame = image_ages(inv)
    ax.scatter(frame["created"].dt.tz_convert(None), frame["size"].astype(float), s=12,
               alpha=0.7, color="#8172b3")
    _byte_axis(ax.yaxis)
    ax.set_xlabel("created")
    ax.set_ylabel("image size")
    ax.set_title(f"Image size and age ({len(frame)} tags)")
    ax.figure.autofmt_xdate()
    return ax


def plot_growth(before: Inventory, after: Inventory, ax: Axes | None = None, *,
                top: int = 20) -> Axes:
    """Change in stored bytes per repository between two saved inventories."""
    ax = _axes(ax)
    frame = growth(before, after).head(top).iloc[::-1]
    colors = ["#c44e52" if c > 0 else "#55a868" for c in frame["change"]]
    ax.barh(frame["repository"].astype(str), frame["change"], color=colors)
    ax.axvline(0, color="black", linewidth=0.8)
    _byte_axis(ax.xaxis)
    ax.set_xlabel("change in stored bytes")
    ax.set_title(f"Growth {before.taken_at:%Y-%m-%d} -> {after.taken_at:%Y-%m-%d}")
    return ax
