"""One self-contained HTML report of an Inventory: summary -> template -> file.

A pure function gathers the figures (:func:`report_data`); a Jinja template with
autoescape renders them; plots are embedded as base64 SVG images. Nothing is
fetched when the file is opened, and every string from the registry is escaped.
"""

from __future__ import annotations

import base64
import io
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .._errors import ReginsightError
from .._units import format_bytes
from .._version import __version__
from ..analysis._reclaim import PartialInventoryWarning
from ..analysis._referrers import images_without, referrers, storage_by_role
from ..analysis._storage import layer_sharing, storage_by_repository, storage_summary
from ..ops._plan import SUGGESTED_POLICY, plan_cleanup
from ._plots import (
    plot_image_age,
    plot_layer_sharing,
    plot_sharing_matrix,
    plot_storage,
    plot_storage_by_role,
)

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory



def _column(name: str, *, num: bool = False, code: bool = False) -> dict[str, Any]:
    return {"name": name, "num": num, "code": code}


def _svg(plot: Any, inv: Inventory) -> str:
    import matplotlib.pyplot as plt

    ax = plot(inv)
    buffer = io.BytesIO()
    try:
        ax.figure.savefig(buffer, format="svg")
    finally:
        plt.close(ax.figure)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


def report_data(inv: Inventory, *, top: int = 20, plots: bool = True) -> dict[str, Any]:
    """Everything the report shows, as plain values (strings escaped by the template)."""
    summary = storage_summary(inv)
    by_repo = storage_by_repository(inv).head(top)
    sharing = layer_sharing(inv)
    shared = sharing[sharing["repositories"] > 1].head(top)
    with warnings.catch_warnings():  # said in the table's note instead
        warnings.simplefilter("ignore", PartialInventoryWarning)
        plan = plan_cleanup(inv, **SUGGESTED_POLICY, now=inv.taken_at)
    partial = "" if inv.complete else (
        f" An upper bound: the inventory covers {inv.scope or 'the catalog'} with "
        f"{len(inv.errors)} errors, and blobs shared with what it does not see look free.")
    doomed = plan[plan["action"] == "delete"]
    cards = [
        ("repositories", f"{summary['repositories']:,}"),
        ("tags", f"{summary['tags']:,}"),
        ("manifests", f"{summary['manifests']:,}"),
        ("stored", format_bytes(summary["stored_bytes"])),
        ("logical (pull every tag)", format_bytes(summary["logical_bytes"])),
        ("dedup ratio", f"{summary['dedup_ratio']:.2f}x"),
        ("cleanup would free", format_bytes(plan.attrs["reclaimable_bytes"])),
        ("errors", f"{len(inv.errors):,}"),
    ]
    tables = [
        {"title": f"Top {len(by_repo)} repositories by stored bytes", "note": "",
         "columns": [_column("repository"), _column("tags", num=True),
                     _column("stored", num=True), _column("exclusive", num=True),
                     _column("shared", num=True), _column("logical", num=True)],
         "rows": [(r.repository, r.tags, format_bytes(r.stored_bytes),
                   format_bytes(r.exclusive_bytes), format_bytes(r.shared_bytes),
                   format_bytes(r.logical_bytes)) for r in by_repo.itertuples()]},
        {"title": f"Top {len(shared)} shared layers", "note": "bytes saved: size x (images "
         "using it - 1), what one copy per image would cost on top",
         "columns": [_column("digest", code=True), _column("kind"), _column("size", num=True),
                     _column("repositories", num=True), _column("images", num=True),
                     _column("bytes saved", num=True)],
         "rows": [(r.digest[:19], r.kind, format_bytes(r.size), r.repositories, r.manifests,
                   format_bytes(r.bytes_saved)) for r in shared.itertuples()]},
        {"title": f"Cleanup candidates ({len(doomed)} tags)",
         "note": "suggested policy: keep the 3 newest images per repository, delete only "
         "images older than 180 days, never latest or stable; tags on one digest go "
         f"together. Frees {format_bytes(plan.attrs['reclaimable_bytes'])} after garbage "
         f"collection.{partial}",
         "columns": [_column("repository"), _column("tag"), _column("digest", code=True),
                     _column("created"), _column("reason")],
         "rows": [(r.repository, r.tag, r.digest[:19],
                   "" if r.created is None or str(r.created) == "NaT"
                   else f"{r.created:%Y-%m-%d}", r.reason)
                  for r in doomed.head(100).itertuples()]},
        {"title": f"Errors ({len(inv.errors)})", "note": "what could not be read",
         "columns": [_column("repository"), _column("reference"), _column("stage"),
                     _column("error")],
         "rows": [tuple(str(v) for v in row) for row in
                  inv.errors.head(100).itertuples(index=False)]},
    ]
    role_cards, role_tables = _supply_chain_sections(inv, top)
    cards += role_cards
    tables[1:1] = role_tables  # after the repositories
    if inv.from_storage:
        disk_cards, disk_tables = _disk_sections(inv, top)
        cards = disk_cards + cards
        tables = disk_tables + tables
    figures = []
    if plots:
        figures = [("storage by repository", _svg(plot_storage, inv)),
                   ("storage by role", _svg(plot_storage_by_role, inv)),
                   ("layer sharing", _svg(plot_layer_sharing, inv)),
                   ("shared bytes between repositories", _svg(plot_sharing_matrix, inv)),
                   ("image size and age", _svg(plot_image_age, inv))]
    return {"registry": inv.registry, "taken_at": f"{inv.taken_at:%Y-%m-%d %H:%M UTC}",
            "source": "storage read" if inv.from_storage else "crawled",
            "version": __version__, "cards": cards, "tables": tables, "plots": figures}


def _supply_chain_sections(inv: Inventory, top: int
                           ) -> tuple[list[tuple[str, str]], list[dict]]:
    """Storage by role, orphaned referrers, and the images no signature is about."""
    roles = storage_by_role(inv)
    refs = referrers(inv)
    orphaned = refs[refs["orphaned"]]
    unsigned = images_without(inv, "signature")
    tables = [{
        "title": "Storage by role", "note": "distinct config and layer blobs the role's "
        "manifests reference; a blob two roles use counts in both, and in neither's "
        "exclusive bytes. Signatures, SBOMs and attestations are kept and deleted with "
        "the image they are about.",
        "columns": [_column("role"), _column("manifests", num=True),
                    _column("stored", num=True), _column("exclusive", num=True)],
        "rows": [(r.role, f"{r.manifests:,}", format_bytes(r.stored_bytes),
                  format_bytes(r.exclusive_bytes)) for r in roles.itertuples()]}]
    if len(orphaned):
        tables.append({
            "title": f"Orphaned referrers ({len(orphaned)})",
            "note": "their subject is gone from the repository; "
            "plan_cleanup(inv, orphans=True) deletes them",
            "columns": [_column("repository"), _column("role"), _column("subject", code=True),
                        _column("digest", code=True), _column("tags")],
            "rows": [(r.repository, r.role, r.subject[:19], r.digest[:19], r.tags)
                     for r in orphaned.head(top).itertuples()]})
    signed = int((refs["role"] == "signature").sum())
    tables.append({
        "title": f"Images without a signature ({len(unsigned)} tags)",
        "note": "tags of images and indexes that no signature (cosign, Notation, sigstore) "
        "is about, directly or through a platform image" + (
            "" if signed else "; this registry holds no signatures at all") + (
            f"; the first {top} shown" if len(unsigned) > top else ""),
        "columns": [_column("repository"), _column("tag"), _column("digest", code=True),
                    _column("role")],
        "rows": [(r.repository, r.tag, r.digest[:19], r.role)
                 for r in unsigned.head(top).itertuples()]})
    cards = [("signatures, SBOMs, attestations", f"{len(refs):,}"),
             ("tags without a signature", f"{len(unsigned):,}")]
    return cards, tables


_MEANING = {
    "tagged": "reached by a tag, through indexes too",
    "untagged": "only manifests no tag reaches use them (a moved tag left them behind)",
    "unreferenced": "no manifest uses them: deleted manifests, unused uploads; "
                    "garbage-collect frees these",
    "uploads": "data of unfinished uploads (garbage-collect does not touch them)",
}


def _disk_sections(inv: Inventory, top: int) -> tuple[list[tuple[str, str]], list[dict]]:
    """Cards and tables only a storage scan can give: where the disk goes, and what
    the registry's garbage collector would delete and break."""
    from ..analysis._disk import broken_images, disk_usage, gc_preview

    usage = disk_usage(inv)
    total = int(usage["bytes"].sum())
    cards = [("on disk", format_bytes(total))]
    tables = [{
        "title": "Where the disk goes", "note": "every byte under blobs/ and _uploads, "
        "by what still uses it",
        "columns": [_column("category"), _column("blobs", num=True), _column("bytes", num=True),
                    _column("share", num=True), _column("meaning")],
        "rows": [(r.category, f"{r.blobs:,}", format_bytes(r.bytes),
                  f"{r.bytes / total:.0%}" if total else "-", _MEANING[r.category])
                 for r in usage.itertuples()]}]
    try:
        plain, untagged = gc_preview(inv), gc_preview(inv, delete_untagged=True)
    except ReginsightError as exc:
        tables.append({"title": "Garbage collection", "note": str(exc), "columns": [],
                       "rows": []})
        return cards, tables
    broken = broken_images(untagged)
    cards.append(("garbage-collect frees", format_bytes(int(plain["size"].sum()))))
    tables.append({
        "title": "What garbage-collect would do",
        "note": "modelled on Distribution 2.x; --delete-untagged also deletes the children "
        "of tagged multi-platform indexes. The safe way to free untagged manifests: "
        "plan_cleanup(inv, untagged=True), apply_cleanup, then a plain garbage-collect.",
        "columns": [_column("command", code=True), _column("blobs", num=True),
                    _column("frees", num=True), _column("breaks")],
        "rows": [(command, f"{int((frame['kind'] != 'revision').sum()):,}",
                  format_bytes(int(frame["size"].sum())), breaks)
                 for command, frame, breaks in (
                     ("garbage-collect", plain, "nothing"),
                     ("garbage-collect --delete-untagged", untagged,
                      f"{len(broken)} tagged images" if len(broken) else "nothing"))]})
    if len(broken):
        tables.append({
            "title": f"Images --delete-untagged would break ({len(broken)})",
            "note": "their pulls fail afterwards: a child manifest or its blobs are gone",
            "columns": [_column("tag"), _column("blobs and revisions lost", num=True),
                        _column("bytes lost", num=True)],
            "rows": [(r.tag, f"{r.lost:,}", format_bytes(r.bytes))
                     for r in broken.head(top).itertuples(index=False)]})
    manifests = inv.manifests[~inv.manifests["tagged"]].sort_values(
        ["size", "digest"], ascending=[False, True], na_position="last").head(top)
    tables.append({
        "title": f"Largest untagged manifests (of {int((~inv.manifests['tagged']).sum()):,})",
        "note": "manifests no tag reaches; their blobs count as untagged above",
        "columns": [_column("repository"), _column("digest", code=True), _column("kind"),
                    _column("created"), _column("size", num=True)],
        "rows": [(r.repository, r.digest[:19], r.kind,
                  "" if pd.isna(r.created) else f"{r.created:%Y-%m-%d}",
                  "" if pd.isna(r.size) else format_bytes(int(r.size)))
                 for r in manifests.itertuples()]})
    return cards, tables


def render_report(inv: Inventory, **options: Any) -> str:
    """The report as one HTML string."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("reginsight.present", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined)
    environment.globals["zip"] = zip
    return environment.get_template("report.html.j2").render(**report_data(inv, **options))


def export_report(inv: Inventory, path: str | os.PathLike[str], **options: Any) -> Path:
    """Write the report to ``path`` (one self-contained HTML file) and return the path."""
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "svg") and "inline" not in \
            matplotlib.get_backend():
        matplotlib.use("Agg")  # no window for a file; inline backends are left alone
    target = Path(path)
    target.write_text(render_report(inv, **options), encoding="utf-8")
    return target
