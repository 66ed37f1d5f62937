"""A cleanup plan in the explorer: what it deletes (a sortable table, full digests to
copy), a file ``reginsight cleanup URL --plan FILE`` applies later, and a delete
button that asks to confirm first.

The Clean up tab (keep-last / older-than / protect) and the Disk tab (the untagged
manifests a storage scan finds) each have one. The confirmed delete is this module's
only network I/O: :func:`reginsight.apply_cleanup` through the registry the explorer
was given. What the registry holds afterwards is for the explorer to read again
(``on_deleted``), the way its refresh does.
"""

from __future__ import annotations

import base64
import shlex
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import ipywidgets as widgets
import numpy as np
import pandas as pd

from .._errors import PlanError, RegistryError
from .._text import inert
from .._units import count, format_bytes
from ..analysis._gc import RUN_COLLECTOR
from ..analysis._reclaim import PartialInventoryWarning, reclaimable
from ..ops._apply import apply_cleanup
from ..ops._plan import CHILD_OF
from ..ops._planfile import save_plan
from ._tables import READ_ONLY, columns, fill, grid, html_table, natural_ranks

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory
    from ..registry._client import Registry

#: rows of a plan the table lists at most (each goes to the browser at every change of
#: the rules); the file Save plan writes has them all
MOST_ROWS = 5_000
#: a saved plan larger than this gets no download link (its file is there)
MOST_DOWNLOAD_BYTES = 8 * 1024 * 1024

RED = "<p style='color:#b00'>{}</p>"


def wide(**options: object) -> widgets.Layout:
    """A button's layout: as wide as its label, never cut to "Delete planned…"."""
    return widgets.Layout(width="auto", **options)


def command(*words: str) -> str:
    """A command line as HTML code, each word quoted for a POSIX shell."""
    return f"<code>{inert(' '.join(shlex.quote(w) for w in words))}</code>"


def deletions(doomed: pd.DataFrame) -> str:
    """What a plan's delete rows delete, in words: "2 tags", "2 tags and 3 untagged
    manifests", "1 tag, 1 untagged manifest and 2 platforms of deleted indexes"."""
    tags = int(doomed["tag"].notna().sum())
    rows = doomed[doomed["tag"].isna()]
    children = int(rows["reason"].astype(str).str.startswith(CHILD_OF).sum())
    untagged = len(rows) - children
    parts = ([count(tags, "tag")] if tags or not len(rows) else []) + (
        [count(untagged, "untagged manifest")] if untagged else []) + (
        [f"{count(children, 'platform')} of deleted indexes"] if children else [])
    return " and ".join([", ".join(parts[:-1]), parts[-1]] if len(parts) > 1 else parts)


def collect_next(collector: str | None) -> str:
    """What to run once manifests are deleted, as HTML: a plain garbage-collect (never
    --delete-untagged) of ``collector``'s registry, or of each kind when not known."""
    kinds = [collector] if collector in RUN_COLLECTOR else list(RUN_COLLECTOR)
    ways = " or ".join(f"{command(*argv)} ({inert(where)})"
                       for kind in kinds for where, argv in RUN_COLLECTOR[kind])
    return (f"next, run a plain garbage-collect where the registry runs, read-only or "
            f"stopped: {ways}; not with <code>--delete-untagged</code>")


def _in_order(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` in natural order of its repository, then tag (v2 before v10)."""
    order = np.lexsort((natural_ranks(frame["tag"]), natural_ranks(frame["repository"])))
    return frame.iloc[order].reset_index(drop=True)


def _deletions(doomed: pd.DataFrame) -> pd.DataFrame:
    """The delete rows as the table lists them: natural order (v2 before v10), a day
    for the time, "" for the tag of a manifest deleted by digest."""
    shown = pd.DataFrame({
        "repository": doomed["repository"].astype(str).to_numpy(),
        "tag": doomed["tag"].astype(object).where(doomed["tag"].notna(), "").to_numpy(),
        "digest": doomed["digest"].astype(str).to_numpy(),
        "created": doomed["created"].dt.strftime("%Y-%m-%d").fillna("").to_numpy(),
        "reason": doomed["reason"].astype(str).to_numpy()})
    shown = _in_order(shown)
    return shown.drop(columns="tag") if (shown["tag"] == "").all() else shown


class PlanPanel(widgets.VBox):
    """One plan shown and applied. The explorer calls :meth:`show` with each new plan,
    :meth:`hold` while its rules are being typed, :meth:`fail` when they make none.
    ``url`` names the registry in the commands shown (``URL`` when not known)."""

    def __init__(self, registry: Registry | None, *, delete_label: str,
                 collector: str | None, on_deleted: Callable[[], None]) -> None:
        self.registry, self.collector, self.on_deleted = registry, collector, on_deleted
        self.url = registry.url if registry is not None else "URL"
        self.summary = widgets.HTML()
        self.title = widgets.HTML()
        self.table = grid(**READ_ONLY)
        self.command = widgets.HTML()
        self.path = widgets.Text(value="plan.csv", description="save as",
                                 layout=widgets.Layout(width="22em"))
        self.save = widgets.Button(description="Save plan", icon="download", layout=wide())
        self.saved = widgets.HTML()
        self.delete = widgets.Button(description=delete_label, button_style="danger",
                                     icon="trash", disabled=True, layout=wide())
        self.confirm = widgets.Button(description="Yes, delete them", button_style="danger",
                                      layout=wide(display="none"))
        self.cancel = widgets.Button(description="Cancel", layout=wide(display="none"))
        self.result = widgets.HTML()
        self.save.on_click(lambda _: self._save())
        self.delete.on_click(lambda _: self.ask())
        self.confirm.on_click(lambda _: self._apply())
        self.cancel.on_click(lambda _: self.ask(show=False))
        where = (f"deletes from {inert(registry.url)}" if registry is not None
                 else "no registry given: explore(inv, registry=reg) to delete from here")
        self.saving = widgets.HBox([self.path, self.save])
        super().__init__([
            self.summary, self.title, self.table, self.command, self.saving, self.saved,
            widgets.HTML(f"<small>{where}</small>"),
            widgets.HBox([self.delete, self.confirm, self.cancel]), self.result])
        self.plan: pd.DataFrame | None = None
        self.inv: Inventory | None = None
        self._applying = False

    @property
    def doomed(self) -> pd.DataFrame:
        """The plan's delete rows (none while no plan is shown)."""
        if self.plan is None:
            return pd.DataFrame(columns=["repository", "tag", "digest", "action"])
        return self.plan[self.plan["action"] == "delete"]

    def show(self, inv: Inventory, plan: pd.DataFrame, *, summary: str,
             rules: Sequence[str], empty: str) -> None:
        """``plan`` (:func:`reginsight.plan_cleanup`'s frame, of ``inv``): ``summary``
        (HTML) above a table of what it deletes, or ``empty`` when nothing; ``rules``
        the ``reginsight cleanup`` flags that plan it again."""
        self.inv, self.plan = inv, plan
        doomed = self.doomed
        self.summary.value = summary
        rows = _deletions(doomed)
        caption = "what it deletes (full digests; click a column to sort)"
        if len(rows) > MOST_ROWS:
            caption = (f"what it deletes: the first {MOST_ROWS:,} of {len(rows):,} rows (full "
                       "digests; click a column to sort them; Save plan writes every row)")
            rows = rows.head(MOST_ROWS)
        shown, defs = columns(rows, text=[c for c in ("repository", "tag", "digest", "reason")
                                          if c in rows.columns])
        fill(self.table, self.title, shown, defs, caption=caption, empty=empty,
             options=READ_ONLY)
        self.command.value = (
            f"<p>From the command line (a dry run; <code>--yes</code> deletes): "
            f"{command('reginsight', 'cleanup', self.url, *rules)}</p>")
        self.saved.value = ""
        self.save.disabled = False
        self.saving.layout.display = "none" if doomed.empty else None  # nothing to apply
        self.delete.disabled = self.registry is None or doomed.empty
        self.ask(show=False)

    def hold(self) -> None:
        """The rules changed: the plan shown is not the one asked for, so nothing can be
        deleted or saved until :meth:`show` gives the new one."""
        self.plan = None
        self.delete.disabled = self.save.disabled = True
        self.ask(show=False)

    def fail(self, message: str) -> None:
        """No plan: ``message`` says why."""
        self.hold()
        self.summary.value = RED.format(inert(message))
        fill(self.table, self.title, pd.DataFrame(columns=["repository"]), caption="",
             empty="", options=READ_ONLY)
        self.command.value = ""

    # ------------------------------------------------------------- save

    def _save(self) -> None:
        """Write the plan where ``path`` says (.csv or .json), tell how to apply it, and
        offer it as a download."""
        if self.plan is None:
            return
        try:
            target = save_plan(self.plan, Path(self.path.value.strip()).expanduser()).resolve()
        except (PlanError, OSError) as exc:
            self.saved.value = RED.format(inert(exc))
            return
        data = target.read_bytes() if target.stat().st_size <= MOST_DOWNLOAD_BYTES else None
        kind = "text/csv" if target.suffix.lower() == ".csv" else "application/json"
        link = "" if data is None else (  # the browser may be on another machine
            f"; <a download='{inert(target.name)}' href='data:{kind};base64,"
            f"{base64.b64encode(data).decode()}' style='text-decoration:underline'>"
            f"download {inert(target.name)}</a>")
        self.saved.value = (
            f"<p>saved <code>{inert(target)}</code> ({count(len(self.doomed), 'row')} to "
            f"delete{link}). Apply it later (a dry run; <code>--yes</code> deletes; rows "
            f"whose tags moved since are refused): "
            f"{command('reginsight', 'cleanup', self.url, '--plan', str(target))}</p>")

    # ------------------------------------------------------------- delete

    def ask(self, *, show: bool = True) -> None:
        """Show (or hide) the confirm and cancel buttons, and what a yes deletes."""
        display = None if show else "none"
        self.confirm.layout.display = display
        self.cancel.layout.display = display
        if show and self.plan is not None and self.registry is not None:
            doomed = self.doomed
            self.result.value = (f"<p>Delete {deletions(doomed)} from "
                                 f"{inert(self.registry.url)}? This cannot be undone.</p>")

    def _apply(self) -> None:
        if self._applying or self.registry is None or self.plan is None:
            return  # a second click while deleting, or a plan being recomputed
        self._applying, self.confirm.disabled = True, True
        try:
            self._delete(self.plan)
        finally:
            self._applying, self.confirm.disabled = False, False

    def _delete(self, plan: pd.DataFrame) -> None:
        self.ask(show=False)
        try:
            outcome = apply_cleanup(self.registry, plan, dry_run=False)
            failure = ""
        except RegistryError as exc:  # stopped part way: what was done is in its result
            outcome = getattr(exc, "result", None)
            failure = RED.format(inert(exc))
        done = (outcome[outcome["status"] == "deleted"] if outcome is not None
                else pd.DataFrame(columns=["repository", "digest"]))
        deleted = plan[(plan["action"] == "delete") & pd.MultiIndex.from_frame(
            plan[["repository", "digest"]].astype(str)).isin(pd.MultiIndex.from_frame(
                done[["repository", "digest"]].astype(str)))]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PartialInventoryWarning)
            freed = (reclaimable(self.inv, deleted, collector=plan.attrs.get("collector"))
                     if len(deleted) else 0)
        self.result.value = failure + (
            f"<p>Deleted {deletions(deleted)}"
            + (f" ({count(deleted['digest'].nunique(), 'manifest')})"
               if deleted["tag"].notna().any() else "") + ". "
            f"Their <b>{format_bytes(freed)}</b> are freed when the registry's garbage "
            f"collector runs: {collect_next(plan.attrs.get('collector') or self.collector)}"
            ". Until then the blobs stay on disk.</p>"
            + (_unsure(outcome) if outcome is not None else "")
            + (html_table(_in_order(outcome)) if outcome is not None else ""))
        self.on_deleted()


def _unsure(outcome: pd.DataFrame) -> str:
    """Rows not deleted (a tag moved, a failure): where they point now is not known
    until the registry is read again."""
    lost = outcome[outcome["status"] == "lost"]
    others = outcome[~outcome["status"].isin(["deleted", "lost"])]
    words = "" if others.empty else (
        f"<p>{len(others)} rows were not deleted (skipped, with the reason, or failed; "
        "see below).</p>")
    return words + ("" if lost.empty else RED.format(
        f"{len(lost)} tags not in the plan disappeared while it was applied (the rows "
        "marked lost): pushed onto a deleted digest after its last check, or deleted by "
        "someone else."))
