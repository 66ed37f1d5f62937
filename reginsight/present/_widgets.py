"""``ri.explore(inv, registry=None)``: ipywidgets explorers of an Inventory.

Explore: a table of repositories; pick one for its tags (digest, size, created,
referrers); pick a tag for its manifest (the platforms of an index) and its layers
per platform; pick a layer for who else shares it. The panes always show the
selected ``repository:tag``, or say what to pick. Clean up: keep-last / older-than /
protect, for every repository or one -> a plan with the bytes it frees (a sortable
table, a file the command line applies) -> a delete button, disabled without a
registry, that asks to confirm. Disk (a storage scan): where the bytes go, what
garbage-collect would free and break, and the safe untagged cleanup, planned and
applied the same way.

The explorer reads nothing itself: ``refresh`` is a callable that returns the
inventory as it is now (by default a crawl of the registry given, in the
inventory's scope, or a scan of the storage root), called by the refresh button and
after every delete; ``apply_cleanup`` is the only other I/O.

The tables are itables' ``ITable`` widgets (DataTables, :mod:`._tables`): sorted and
searched in the browser, so a keystroke in a search box costs the kernel nothing;
the plan's own inputs are debounced.

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
)
from .._policy import SUGGESTED_POLICY, policy_flags, policy_from_text
from .._text import inert, printable
from .._units import count, format_bytes
from ..analysis._disk import VERSION, broken_images, disk_usage, gc_outcomes
from ..analysis._reclaim import PartialInventoryWarning
from ..usage._frame import as_pulls
from ._browse import Browse
from ._planpanel import RED, PlanPanel, deletions, wide
from ._sections import plan_shown
from ._tables import html_table, natural_key
from ._usage import PULLS_PLACEHOLDER, pulls_flags, records_line, unknown_use

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory
    from ..registry._client import Registry

#: seconds of quiet after the last keystroke before the plan is computed again
DEBOUNCE = 0.4
#: the repository picker's choice for every repository
EVERY = "all repositories"
#: the Clean up tab's "not pulled for" rule to start from, given pull records
UNPULLED_FOR = "90d"


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


# ------------------------------------------------------------- reading again

def default_refresh(inv: Inventory, registry: Registry | None
                    ) -> Callable[[], Inventory] | None:
    """How the explorer reads ``inv``'s registry again: a storage scan rescans its
    root; a crawl, with ``registry``, crawls it again in the same scope (digests
    already known are not fetched again); else None (nothing to read)."""
    if inv.from_storage:
        from ..inventory._scan import scan_storage

        root = inv.registry
        return lambda: scan_storage(root, progress=False)
    if registry is None:
        return None
    from ..inventory._crawl import crawl
    from ..inventory._selection import filter_of_scope

    wanted, known = filter_of_scope(inv.scope), inv
    return lambda: crawl(registry, wanted, progress=False, since=known)


def _changes(before: Inventory, after: Inventory) -> str:
    """What reading again found, in words: tags new or moved, tags gone."""
    def placed(inv: Inventory) -> set[tuple[str, str, str]]:
        tags = inv.tags
        return set(zip(tags["repository"].astype(str), tags["tag"].astype(str),
                       tags["digest"].astype(str), strict=True))

    old, new = placed(before), placed(after)
    named = {(r, t) for r, t, _ in new}
    gone = {(r, t) for r, t, _ in old} - named
    came = sorted((f"{r}:{t}" for r, t, _ in new - old), key=natural_key)
    if not came and not gone:
        return "no tag changed"
    shown = ", ".join(came[:10]) + (" …" if len(came) > 10 else "")
    return "; ".join(part for part in (
        f"{count(len(came), 'tag')} new or moved ({shown})" if came else "",
        f"{count(len(gone), 'tag')} gone" if gone else "") if part)


# ------------------------------------------------------------- the disk

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


# ------------------------------------------------------------- the explorer

class Explorer(widgets.VBox):
    """The explorer widget; its parts are attributes so code (and tests) can drive it:
    ``select(repository, tag, layer)``; the Clean up tab's rules ``keep_last``,
    ``older_than``, ``protect``, ``repository`` and its plan ``cleanup`` (a
    :class:`PlanPanel`: ``delete``, ``confirm``, ``result``, the last three also
    attributes here); the Disk tab's ``disk`` page and ``untagged`` plan;
    ``reread()``, what the refresh button does. With pull records, the Clean up tab's
    ``unpulled_for`` too."""

    def __init__(self, inv: Inventory, registry: Registry | None = None, *,
                 collector: str | None = None,
                 refresh: Callable[[], Inventory] | None = None,
                 pulls: pd.DataFrame | None = None, pulls_source: str | None = None
                 ) -> None:
        self.registry, self.collector = registry, collector
        self.refresh = refresh
        self.pulls = None if pulls is None else as_pulls(pulls)
        self.pulls_source = pulls_source
        self.browse = Browse(inv, pulls=self.pulls)

        # -- title, refresh
        self.title = widgets.HTML()
        self.refresh_button = widgets.Button(
            description="Refresh", icon="refresh", tooltip="read the registry again",
            layout=wide(display=None if refresh is not None else "none"))
        self.refresh_button.on_click(lambda _: self.reread())
        self.status = widgets.HTML()

        # -- clean up
        self.keep_last = widgets.BoundedIntText(value=SUGGESTED_POLICY["keep_last"], min=0,
                                                max=10_000, description="keep last")
        self.older_than = widgets.Text(value=SUGGESTED_POLICY["older_than"],
                                       description="older than")
        self.protect = widgets.Text(value=SUGGESTED_POLICY["protect"], description="protect")
        # shown with pull records only; empty: no such rule
        self.unpulled_for = widgets.Text(
            value=UNPULLED_FOR if self.pulls is not None else "", description="not pulled for",
            style={"description_width": "initial"},
            layout=widgets.Layout(display=None if self.pulls is not None else "none"))
        self.repository = widgets.Dropdown(options=[(EVERY, EVERY)], value=EVERY,
                                           description="repository")
        self._listing = False
        self.cleanup = PlanPanel(registry, delete_label="Delete planned tags",
                                 collector=collector, on_deleted=self.reread)
        self.delete, self.confirm, self.result = (self.cleanup.delete, self.cleanup.confirm,
                                                  self.cleanup.result)
        self.plan_changed = Debounced(self._show_plan)
        for control in (self.keep_last, self.older_than, self.protect, self.unpulled_for,
                        self.repository):
            control.observe(self._inputs_changed, "value")
        cleanup = widgets.VBox([
            widgets.HBox([self.keep_last, self.older_than, self.protect, self.unpulled_for]),
            self.repository, self.cleanup])

        # -- disk
        self.disk = widgets.HTML()
        self.untagged = PlanPanel(registry, delete_label="Delete untagged manifests",
                                  collector=collector, on_deleted=self.reread)
        pages = [("Explore", self.browse), ("Clean up", cleanup)]
        if inv.from_storage:
            pages.append(("Disk", widgets.VBox([self.disk, widgets.HTML(
                "<p><b>The safe untagged cleanup</b>: delete the manifests no tag reaches "
                "through the registry's API, then run a plain garbage-collect. Unlike "
                "<code>--delete-untagged</code> it keeps every platform of a tagged "
                "multi-arch image.</p>"), self.untagged])))
        self.tabs = widgets.Tab(children=[page for _, page in pages])
        for number, (name, _) in enumerate(pages):
            self.tabs.set_title(number, name)
        super().__init__([widgets.HBox([self.title, self.refresh_button]), self.status,
                          self.tabs])
        self._show(inv)

    @property
    def inv(self) -> Inventory:
        """The inventory shown: after a refresh or a delete, the registry as it is now."""
        return self.browse.inv

    @property
    def _plan(self) -> pd.DataFrame | None:
        """The Clean up plan shown (None while its rules are being typed)."""
        return self.cleanup.plan

    def select(self, repository: str, tag: str | None = None, layer: str | None = None
               ) -> None:
        """Show ``repository`` (and ``tag``, and who shares ``layer``), as clicking
        them does. A tag of ``@sha256:...`` is an untagged manifest."""
        self.browse.select(repository, tag, layer)

    def reread(self) -> bool:
        """Read the registry (or its storage) again through ``refresh`` and show it,
        the picks kept where they still exist. False when it could not be read (the
        reason is shown) or there is nothing to read again."""
        if self.refresh is None:
            return False
        self.refresh_button.disabled = True
        self.status.value = "<i>reading the registry again…</i>"
        before = self.inv
        try:
            inv = self.refresh()
        except (ReginsightError, OSError) as exc:
            self.status.value = RED.format(
                f"could not read it again: {inert(exc)}; what is shown is from "
                f"{before.taken_at:%Y-%m-%d %H:%M:%S UTC}")
            return False
        finally:
            self.refresh_button.disabled = False
        self._show(inv)
        self.status.value = (f"<small>read again {inv.taken_at:%Y-%m-%d %H:%M:%S UTC}: "
                             f"{inert(_changes(before, inv))}</small>")
        return True

    def _show(self, inv: Inventory) -> None:
        self.browse.show(inv)
        self.title.value = (f"<b>{inert(inv.label or inv.registry)}</b>, "
                            f"{'storage read' if inv.from_storage else 'crawled'} "
                            f"{inv.taken_at:%Y-%m-%d %H:%M UTC}: {count(len(inv.tags), 'tag')}"
                            + ("" if self.pulls is None else
                               f"<br><small>{inert(records_line(self.pulls))}</small>"))
        self._repository_choices()
        if self.registry is None:  # the commands shown name the registry read, if any
            self.cleanup.url = self.untagged.url = (
                "URL" if inv.label or inv.from_storage else inv.registry)
        if inv.from_storage:
            self.disk.value = _disk_page(inv, self.collector)
            self._show_untagged()
        self._show_plan()

    # ------------------------------------------------------------- clean up

    def _repository_choices(self) -> None:
        """The picker lists the repositories shown; the one picked stays if it is still
        there. Not a change of the rules: the plan is computed next anyway."""
        names = sorted(self.browse._repository_frame["repository"].astype(str),
                       key=natural_key)
        choices = ((EVERY, EVERY), *((printable(n), n) for n in names))
        if tuple(self.repository.options) == choices:
            return
        picked = self.repository.value
        self._listing = True
        try:
            self.repository.options = choices
            self.repository.value = picked if picked in names else EVERY
        finally:
            self._listing = False

    def _inputs_changed(self, *_: Any) -> None:
        """A keystroke: the plan shown is no longer the one asked for, so nothing can
        be deleted until the new one is computed (after the debounce)."""
        if self._listing:
            return
        self.cleanup.hold()
        self.plan_changed()

    def _show_plan(self) -> None:
        scope = None if self.repository.value == EVERY else self.repository.value
        unpulled = self.unpulled_for.value.strip() if self.pulls is not None else ""
        pull_rule = {"pulls": self.pulls, "unpulled_for": unpulled} if unpulled else {}
        try:
            rules = policy_from_text(keep_last=self.keep_last.value,
                                     older_than=self.older_than.value,
                                     protect=self.protect.value)
            with warnings.catch_warnings():  # said once in the plan's text below
                warnings.simplefilter("ignore", PartialInventoryWarning)
                plan, gc_note = plan_shown(
                    self.inv, collector=self.collector, **rules, **pull_rule,
                    repositories=None if scope is None else [scope], now=self.inv.taken_at)
        except (PlanError, InventoryError) as exc:
            self.cleanup.fail(str(exc))
            return
        doomed = plan[plan["action"] == "delete"]
        # the window the records do not cover: its images are kept, said here
        unknown = unknown_use(self.pulls, unpulled, self.inv.taken_at) if unpulled else ""
        bound = "" if self.inv.complete else (
            " (at most: the inventory does not cover the whole registry)")
        where = "" if scope is None else f" of {inert(scope)}"
        summary = (
            f"<p><b>{int(doomed['tag'].notna().sum())}</b> of "
            f"{count(int(plan['tag'].notna().sum()), 'tag')}{where}"
            f"{_by_digest(doomed)} to delete, freeing "
            f"<b>{format_bytes(plan.attrs['reclaimable_bytes'])}</b> after garbage "
            f"collection{bound}.</p>" + (f"<p>{inert(gc_note)}</p>" if gc_note else "")
            + (f"<p>{inert(unknown)}</p>" if unknown else "")
            + (f"<p><small><code>{PULLS_PLACEHOLDER}</code> in the command below stands for "
               "the pull records "
               "given (the registry's log files or their folder, or the folder reginsight "
               "listen writes)</small></p>" if unpulled and self.pulls_source is None else ""))
        flags = [*policy_flags(rules),
                 *(pulls_flags(unpulled, self.pulls_source) if unpulled else []),
                 *(["--repositories", scope] if scope is not None else [])]
        self.cleanup.show(self.inv, plan, summary=summary, rules=flags,
                          empty="nothing to delete with these rules")

    def _show_untagged(self) -> None:
        """The Disk tab's plan: every manifest no tag reaches, deleted by digest."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PartialInventoryWarning)
                plan, gc_note = plan_shown(self.inv, collector=self.collector, untagged=True)
        except (PlanError, InventoryError) as exc:
            self.untagged.fail(str(exc))
            return
        doomed = plan[plan["action"] == "delete"]
        summary = (
            f"<p><b>{deletions(doomed)}</b> in "
            f"{count(doomed['repository'].nunique(), 'repository')}: deleting them, then a "
            f"plain garbage-collect frees "
            f"<b>{format_bytes(plan.attrs['reclaimable_bytes'])}</b>.</p>"
            + (f"<p>{inert(gc_note)}</p>" if gc_note else "")) if len(doomed) else ""
        self.untagged.show(self.inv, plan, summary=summary,
                           rules=["--untagged", "--storage", self.inv.registry],
                           empty="no untagged manifests: nothing to clean up")


def _by_digest(doomed: pd.DataFrame) -> str:
    """" and N untagged manifests ..." for the rows a plan deletes by digest."""
    rows = doomed[doomed["tag"].isna()]
    return "" if rows.empty else " and " + deletions(rows)


def explore(inv: Inventory, registry: Registry | None = None, *,
            collector: str | None = None,
            refresh: Callable[[], Inventory] | None = None,
            pulls: pd.DataFrame | None = None, pulls_source: str | None = None) -> Explorer:
    """An explorer widget for ``inv``; with ``registry``, its cleanup panels can delete.

    ``collector``: for a storage scan, the registry's garbage collector
    (``"distribution-2"`` or ``"distribution-3"``, as :func:`reginsight.gc_preview`);
    None shows each where they differ. ``refresh``: a callable returning the
    inventory as it is now, called by the Refresh button and after each delete.
    None: a storage scan rescans its root (pass your own for a root that needs
    ``storage_options``), a crawl given ``registry`` crawls it again in the same
    scope; with neither there is no Refresh button.

    ``pulls``: pull records (:func:`reginsight.read_pulls`): the tag table gains
    last_pulled (a time; "never" when the records cover all the time since the image
    was created, "not since <day>" when they start later, "unknown" when they end
    before the inventory was read) and pulls_30d (the 30 days before it was read),
    and the Clean up tab a "not pulled for" rule (90d; empty: none), as
    ``plan_cleanup(pulls=, unpulled_for=)``. ``pulls_source``: the records as the
    command line names them (``--pulls SOURCE`` in the commands shown; None: PULLS).
    """
    return Explorer(inv, registry, collector=collector,
                    refresh=refresh if refresh is not None else default_refresh(inv, registry),
                    pulls=pulls, pulls_source=pulls_source)
