"""``ri.explore(inv, registry=None)``: ipywidgets explorers of an Inventory.

Browse: a table of repositories; pick one for its tags (digest, size, created,
referrers); pick a tag for its manifest (the platforms of an index) and its layers
per platform; pick a layer for who else shares it. The panes always show the
selected ``repository:tag``, or nothing. Clean up: keep-last / older-than / protect
-> a plan with the bytes it frees -> a delete button, disabled without a registry,
that asks to confirm, runs ``apply_cleanup`` and then shows the inventory as it is
after the deletion. Only that button touches the network.

The tables are itables' ``ITable`` widgets (DataTables): sorted and searched in the
browser, so a keystroke in a search box costs the kernel nothing; the plan's own
inputs are debounced.

Every outside string put into an ``HTML`` widget (a registry's URL, an error, a tag)
passes ``inert`` (printable, then escaped); the descriptions and tab titles, which
Jupyter typesets with MathJax, are this module's own words only.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import pandas as pd

from .._errors import (
    CollectorWouldStop,
    InventoryError,
    PlanError,
    ReginsightError,
    RegistryError,
)
from .._policy import SUGGESTED_POLICY
from .._text import inert
from .._units import count, format_bytes
from ..analysis._disk import VERSION, broken_images, disk_usage, gc_outcomes
from ..analysis._reclaim import PartialInventoryWarning, reclaimable
from ..ops._after import inventory_after
from ..ops._apply import apply_cleanup
from ..ops._plan import CHILD_OF
from ._browse import Browse, html_table
from ._sections import plan_shown

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory
    from ..registry._client import Registry

#: seconds of quiet after the last keystroke before the plan is computed again
DEBOUNCE = 0.4


class Debounced:
    """Call ``action`` once input has been quiet for ``delay`` seconds. In a kernel
    (Jupyter, Voila) an event loop runs and the call waits; without one (a script, a
    test) it happens at once."""

    def __init__(self, action: Callable[[], None], delay: float = DEBOUNCE) -> None:
        self.action, self.delay = action, delay
        self._pending: asyncio.TimerHandle | None = None

    def __call__(self, *_: Any) -> None:
        if self._pending is not None:
            self._pending.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._pending = None
            self.action()
            return
        self._pending = loop.call_later(self.delay, self.action)


def _disk_page(inv: Inventory, collector: str | None) -> str:
    """Where the storage's bytes go, and what garbage-collect would free and break: for
    each registry version where their collectors differ."""
    usage = disk_usage(inv)
    usage["bytes"] = usage["bytes"].map(format_bytes)
    parts = ["<p>where the disk goes:</p>", html_table(usage)]
    try:
        plain = gc_outcomes(inv, collector=collector)
        risky = gc_outcomes(inv, delete_untagged=True, collector=collector)
    except ReginsightError as exc:
        return "".join(parts) + f"<p>{inert(exc)}</p>"
    for name in [n for n in {**plain, **risky} if n] or [None]:
        who = f"{VERSION[name]}: " if name else ""  # a chosen one is named too
        parts.append(f"<p>{who}garbage-collect {_freed(_of(plain, name))}; with "
                     f"--delete-untagged {_freed(_of(risky, name), breaks=True)}</p>")
    if len(plain) > 1 or len(risky) > 1:
        parts.append("<p>Distribution 2.x and 3.x collect differently here, and the storage "
                     "does not say which one runs (<code>registry --version</code>; the "
                     "image registry:2 or registry:3)</p>")
    return "".join(parts)


def _of(outcomes: dict, name: str | None) -> pd.DataFrame | CollectorWouldStop:
    """One collector's outcome: its own, or the one both share."""
    return outcomes[name] if name in outcomes else outcomes[None]


def _freed(outcome: pd.DataFrame | CollectorWouldStop, *, breaks: bool = False) -> str:
    if isinstance(outcome, CollectorWouldStop):
        return f"stops before deleting anything ({inert(outcome.reason)})"
    freed = f"frees {format_bytes(int(outcome['size'].sum()))}"
    if not breaks:
        return freed
    broken = list(broken_images(outcome)["tag"])
    return (f"{freed} and breaks {count(len(broken), 'image')}{': ' if broken else ''}"
            f"{inert(', '.join(broken[:20]))}")


def _untagged(doomed: pd.DataFrame) -> str:
    """The words for a plan's rows that delete by digest (tag NA): " and N untagged
    manifests", " and N platforms of deleted indexes", or nothing."""
    by_digest = doomed[doomed["tag"].isna()]
    children = int(by_digest["reason"].astype(str).str.startswith(CHILD_OF).sum())
    untagged = len(by_digest) - children
    return ((f" and {untagged} untagged manifests" if untagged else "")
            + (f" and {children} platforms of deleted indexes" if children else ""))


class Explorer(widgets.VBox):
    """The explorer widget; its parts are attributes so code (and tests) can drive it:
    ``select(repository, tag, layer)``, ``keep_last``/``older_than``/``protect``,
    ``delete``/``confirm`` buttons."""

    def __init__(self, inv: Inventory, registry: Registry | None = None, *,
                 collector: str | None = None) -> None:
        self.registry, self.collector = registry, collector
        self.browse = Browse(inv)

        # -- clean up
        self.keep_last = widgets.BoundedIntText(value=SUGGESTED_POLICY["keep_last"], min=0,
                                                max=10_000, description="keep last")
        self.older_than = widgets.Text(value=SUGGESTED_POLICY["older_than"],
                                       description="older than")
        self.protect = widgets.Text(value=SUGGESTED_POLICY["protect"], description="protect")
        self.plan_view = widgets.HTML()
        self.delete = widgets.Button(description="Delete planned tags", button_style="danger",
                                     icon="trash", disabled=True)
        self.confirm = widgets.Button(description="Yes, delete them", button_style="danger",
                                      layout=widgets.Layout(display="none"))
        self.cancel = widgets.Button(description="Cancel", layout=widgets.Layout(display="none"))
        self.result = widgets.HTML()
        self.plan_changed = Debounced(self._show_plan)
        for control in (self.keep_last, self.older_than, self.protect):
            control.observe(self._inputs_changed, "value")
        self.delete.on_click(lambda _: self._ask())
        self.confirm.on_click(lambda _: self._apply())
        self.cancel.on_click(lambda _: self._ask(show=False))
        where = (f"deletes from {inert(registry.url)}" if registry is not None
                 else "no registry given: explore(inv, registry=reg) to delete")
        cleanup = widgets.VBox([
            widgets.HBox([self.keep_last, self.older_than, self.protect]), self.plan_view,
            widgets.HTML(f"<small>{where}</small>"),
            widgets.HBox([self.delete, self.confirm, self.cancel]), self.result])

        self.disk = widgets.HTML()
        pages = [("Explore", self.browse), ("Clean up", cleanup)]
        if inv.from_storage:
            pages.append(("Disk", self.disk))
        self.tabs = widgets.Tab(children=[page for _, page in pages])
        for number, (name, _) in enumerate(pages):
            self.tabs.set_title(number, name)
        self.title = widgets.HTML()
        super().__init__([self.title, self.tabs])
        self._plan: pd.DataFrame | None = None
        self._applying = False
        self._show(inv)

    @property
    def inv(self) -> Inventory:
        """The inventory shown: after a delete, the registry as it is now."""
        return self.browse.inv

    def select(self, repository: str, tag: str | None = None, layer: str | None = None
               ) -> None:
        """Show ``repository`` (and ``tag``, and who shares ``layer``), as clicking
        them does. A tag of ``@sha256:...`` is an untagged manifest."""
        self.browse.select(repository, tag, layer)

    def _show(self, inv: Inventory) -> None:
        self.browse.show(inv)
        self.title.value = (f"<b>{inert(inv.registry)}</b>, "
                            f"{'storage read' if inv.from_storage else 'crawled'} "
                            f"{inv.taken_at:%Y-%m-%d %H:%M UTC}: {len(inv.tags)} tags")
        if inv.from_storage:
            self.disk.value = _disk_page(inv, self.collector)
        self._show_plan()

    # ------------------------------------------------------------- clean up

    def _inputs_changed(self, *_: Any) -> None:
        """A keystroke: the plan shown is no longer the one asked for, so nothing can
        be deleted until the new one is computed (after the debounce)."""
        self._plan = None
        self.delete.disabled = True
        self._ask(show=False)
        self.plan_changed()

    def _show_plan(self) -> None:
        try:
            with warnings.catch_warnings():  # said once in the plan's text below
                warnings.simplefilter("ignore", PartialInventoryWarning)
                plan, gc_note = plan_shown(
                    self.inv, collector=self.collector, keep_last=self.keep_last.value,
                    older_than=self.older_than.value.strip() or None,
                    protect=self.protect.value or None, now=self.inv.taken_at)
        except (PlanError, InventoryError) as exc:
            self._plan = None
            self.plan_view.value = f"<p style='color:#b00'>{inert(exc)}</p>"
            self.delete.disabled = True
            return
        self._plan = plan
        doomed = plan[plan["action"] == "delete"]
        bound = "" if self.inv.complete else (
            " (at most: the inventory does not cover the whole registry)")
        self.plan_view.value = (
            f"<p><b>{int(doomed['tag'].notna().sum())}</b> of "
            f"{int(plan['tag'].notna().sum())} tags{_untagged(doomed)} to delete, freeing "
            f"<b>{format_bytes(plan.attrs['reclaimable_bytes'])}</b> after garbage "
            f"collection{bound}.</p>" + (f"<p>{inert(gc_note)}</p>" if gc_note else "")
            + html_table(doomed.assign(
                created=doomed["created"].dt.strftime("%Y-%m-%d"))))
        self.delete.disabled = self.registry is None or doomed.empty
        self._ask(show=False)

    def _ask(self, *, show: bool = True) -> None:
        display = None if show else "none"
        self.confirm.layout.display = display
        self.cancel.layout.display = display
        if show and self._plan is not None:
            doomed = self._plan[self._plan["action"] == "delete"]
            self.result.value = (f"<p>Delete {int(doomed['tag'].notna().sum())} tags"
                                 f"{_untagged(doomed)} from "
                                 f"{inert(self.registry.url)}? This cannot be undone.</p>")

    def _apply(self) -> None:
        if self._applying or self.registry is None or self._plan is None:
            return  # a second click while deleting, or a plan being recomputed
        self._applying, self.confirm.disabled = True, True
        try:
            self._delete(self._plan)
        finally:
            self._applying, self.confirm.disabled = False, False

    def _delete(self, plan: pd.DataFrame) -> None:
        self._ask(show=False)
        try:
            outcome = apply_cleanup(self.registry, plan, dry_run=False)
            failure = ""
        except RegistryError as exc:  # stopped part way: what was done is in its result
            outcome = getattr(exc, "result", None)
            failure = f"<p style='color:#b00'>{inert(exc)}</p>"
        done = (outcome[outcome["status"] == "deleted"] if outcome is not None
                else pd.DataFrame(columns=["repository", "digest"]))
        deleted = plan[(plan["action"] == "delete") & pd.MultiIndex.from_frame(
            plan[["repository", "digest"]].astype(str)).isin(pd.MultiIndex.from_frame(
                done[["repository", "digest"]].astype(str)))]
        before = self.inv
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PartialInventoryWarning)
            freed = (reclaimable(before, deleted, collector=plan.attrs.get("collector"))
                     if len(deleted) else 0)
        self.result.value = failure + (
            f"<p>Deleted {int(deleted['tag'].notna().sum())} tags "
            f"({deleted['digest'].nunique()} manifests). Their "
            f"<b>{format_bytes(freed)}</b> are freed when the registry's garbage collector "
            "runs (<code>registry garbage-collect CONFIG</code>); until then the blobs "
            "stay on disk.</p>" + (self._unsure(outcome) if outcome is not None else "")
            + (html_table(outcome.sort_values(["repository", "tag"]))
               if outcome is not None else ""))
        try:
            self._show(inventory_after(before, deleted))
        except ReginsightError as exc:
            self.result.value += f"<p style='color:#b00'>{inert(exc)}</p>"

    @staticmethod
    def _unsure(outcome: pd.DataFrame) -> str:
        """Rows not deleted (a tag moved, a failure): where they point now is not
        known here, so the lists below may be off for them."""
        lost = outcome[outcome["status"] == "lost"]
        others = outcome[~outcome["status"].isin(["deleted", "lost"])]
        words = "" if others.empty else (
            f"<p>{len(others)} rows were not deleted (skipped, with the reason, or failed; "
            "see below): crawl again to see them as the registry has them now.</p>")
        return words + ("" if lost.empty else (
            f"<p style='color:#b00'>{len(lost)} tags not in the plan disappeared while it "
            "was applied (the rows marked lost): pushed onto a deleted digest after its "
            "last check, or deleted by someone else.</p>"))


def explore(inv: Inventory, registry: Registry | None = None, *,
            collector: str | None = None) -> Explorer:
    """An explorer widget for ``inv``; with ``registry``, its cleanup panel can delete.
    ``collector``: for a storage scan, the registry's garbage collector
    (``"distribution-2"`` or ``"distribution-3"``, as :func:`reginsight.gc_preview`);
    None shows each where they differ."""
    return Explorer(inv, registry, collector=collector)
