"""``ri.explore(inv, registry=None)``: ipywidgets explorers of an Inventory.

Browse: filter repositories, pick one, see its tags (digest, size, age); pick a tag
for its manifest (platforms of an index) and layers; pick a layer for who else
shares it. Clean up: keep-last / older-than / protect -> a live plan with the bytes
it frees -> a delete button, disabled without a registry, that asks to confirm and
then runs ``apply_cleanup``. Only that button touches the network.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import pandas as pd

from .._errors import PlanError, ReginsightError, RegistryError
from .._units import format_bytes
from ..analysis._disk import broken_images, disk_usage, gc_preview
from ..analysis._history import image_created
from ..analysis._referrers import referrers
from ..analysis._storage import storage_by_repository
from ..inventory._reach import Reach
from ..ops._apply import apply_cleanup
from ..ops._plan import SUGGESTED_POLICY, plan_cleanup

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory
    from ..registry._client import Registry


def _table(frame: pd.DataFrame, *, limit: int = 200) -> str:
    if frame.empty:
        return "<i>none</i>"
    head = "".join(f"<th style='text-align:left;padding:2px 8px'>{html.escape(str(c))}</th>"
                   for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td style='padding:2px 8px'>{html.escape(str(v))}</td>"
                         for v in row) + "</tr>"
        for row in frame.head(limit).itertuples(index=False))
    more = f"<p><i>{len(frame) - limit} more</i></p>" if len(frame) > limit else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _age(created: Any, now: pd.Timestamp) -> str:
    if created is None or pd.isna(created):
        return "age unknown"
    days = (now - created).days
    return f"{days} d" if days < 730 else f"{days / 365.25:.1f} y"


def _disk_page(inv: Inventory) -> str:
    """Where the storage's bytes go, and what garbage-collect would free and break."""
    usage = disk_usage(inv)
    usage["bytes"] = usage["bytes"].map(format_bytes)
    parts = ["<p>where the disk goes:</p>", _table(usage)]
    try:
        plain = gc_preview(inv)
        risky = gc_preview(inv, delete_untagged=True)
    except ReginsightError as exc:
        return "".join(parts) + f"<p>{html.escape(str(exc))}</p>"
    broken = list(broken_images(risky)["tag"])
    parts.append(f"<p>garbage-collect frees {format_bytes(int(plain['size'].sum()))}; with "
                 f"--delete-untagged {format_bytes(int(risky['size'].sum()))} and breaks "
                 f"{len(broken)} tagged images{': ' if broken else ''}"
                 f"{html.escape(', '.join(broken[:20]))}</p>")
    return "".join(parts)


class Explorer(widgets.VBox):
    """The explorer widget; its parts are attributes so code (and tests) can drive it."""

    def __init__(self, inv: Inventory, registry: Registry | None = None) -> None:
        self.inv, self.registry = inv, registry
        self.now = inv.taken_at
        sizes = storage_by_repository(inv).set_index("repository")["stored_bytes"]
        self._stored = {str(k): int(v) for k, v in sizes.items()}
        self._manifests = inv.manifests.set_index(["repository", "digest"])
        self._created = image_created(inv)  # an index: its newest child
        self._referrers = referrers(inv)
        self._roles_about = self._referrer_roles()
        self._untagged = Reach.of(inv).untagged_rows  # by manifests row

        # -- browse
        self.filter = widgets.Text(placeholder="filter repositories", description="filter")
        self.repositories = widgets.Select(description="repository", rows=10,
                                           layout=widgets.Layout(width="95%"))
        self.tags = widgets.Select(description="tag", rows=10,
                                   layout=widgets.Layout(width="95%"))
        self.manifest = widgets.HTML()
        self.layers = widgets.Select(description="layer", rows=8,
                                     layout=widgets.Layout(width="95%"))
        self.sharing = widgets.HTML()
        self.filter.observe(lambda _: self._show_repositories(), "value")
        self.repositories.observe(lambda _: self._show_tags(), "value")
        self.tags.observe(lambda _: self._show_manifest(), "value")
        self.layers.observe(lambda _: self._show_sharing(), "value")
        browse = widgets.VBox([self.filter, self.repositories, self.tags, self.manifest,
                               self.layers, self.sharing])

        # -- clean up
        self.keep_last = widgets.BoundedIntText(value=SUGGESTED_POLICY["keep_last"], min=0,
                                                max=10_000,
                                                description="keep last")
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
        for control in (self.keep_last, self.older_than, self.protect):
            control.observe(lambda _: self._show_plan(), "value")
        self.delete.on_click(lambda _: self._ask())
        self.confirm.on_click(lambda _: self._apply())
        self.cancel.on_click(lambda _: self._ask(show=False))
        where = (f"deletes from {html.escape(registry.url)}" if registry is not None
                 else "no registry given: explore(inv, registry=reg) to delete")
        cleanup = widgets.VBox([
            widgets.HBox([self.keep_last, self.older_than, self.protect]), self.plan_view,
            widgets.HTML(f"<small>{where}</small>"),
            widgets.HBox([self.delete, self.confirm, self.cancel]), self.result])

        pages = [("Explore", browse), ("Clean up", cleanup)]
        if inv.from_storage:
            pages.append(("Disk", widgets.HTML(_disk_page(inv))))
        tabs = widgets.Tab(children=[page for _, page in pages])
        for number, (name, _) in enumerate(pages):
            tabs.set_title(number, name)
        title = widgets.HTML(f"<b>{html.escape(inv.registry)}</b>, "
                             f"{'storage read' if inv.from_storage else 'crawled'} "
                             f"{inv.taken_at:%Y-%m-%d %H:%M UTC}: {len(inv.tags)} tags")
        super().__init__([title, tabs])
        self._plan: pd.DataFrame | None = None
        self._show_repositories()
        self._show_plan()

    # ------------------------------------------------------------- browse

    def _show_repositories(self) -> None:
        needle = self.filter.value.strip().lower()
        names = sorted(self._stored, key=lambda n: (-self._stored[n], n))
        self.repositories.options = [(f"{n}  ({format_bytes(self._stored[n])})", n)
                                     for n in names if needle in n.lower()]

    def _referrer_roles(self) -> dict[tuple[str, str], list[str]]:
        """(repository, digest) -> the roles of the referrers about it or, for an
        index, about its platform images: "signed, sbom"."""
        about: dict[tuple[str, str], set[str]] = {}
        for row in self._referrers.itertuples(index=False):
            if row.role != "index":  # a fallback tag's index lists referrers, it is none
                about.setdefault((row.repository, row.subject), set()).add(row.role)
        children = self.inv.children
        for repository, index, child in zip(children["repository"].astype(str),
                                            children["index"], children["digest"], strict=True):
            found = about.get((repository, str(child)))
            if found:
                about.setdefault((repository, str(index)), set()).update(found)
        return {key: sorted("signed" if r == "signature" else r for r in roles)
                for key, roles in about.items()}

    def _label(self, repository: str, digest: str) -> str:
        """What a tag list entry says besides its name: size, age, referrers."""
        facts = self._facts(repository, digest)
        size = format_bytes(facts["size"]) if facts is not None and not pd.isna(
            facts["size"]) else "?"
        if facts is not None and not pd.isna(facts["subject"]):
            return f"{str(digest)[7:19]}  {size}  {facts['role']} of {facts['subject'][7:19]}"
        age = _age(self._created.get((repository, digest)), self.now)
        roles = self._roles_about.get((repository, digest))
        return (f"{str(digest)[7:19]}  {size}  {age}"
                + (f"  [{', '.join(roles)}]" if roles else ""))

    def _show_tags(self) -> None:
        repository = self.repositories.value
        tags = self.inv.tags[self.inv.tags["repository"] == repository]
        options = [(f"{row.tag}  {self._label(repository, row.digest)}", row.tag)
                   for row in tags.itertuples(index=False)]
        # the manifests no tag reaches (on disk, or referrers the API listed): "@digest"
        manifests = self.inv.manifests
        untagged = manifests[(manifests["repository"] == repository).to_numpy()
                             & self._untagged]
        for row in untagged.sort_values("created", ascending=False).itertuples(index=False):
            options.append((f"<untagged>  {self._label(repository, row.digest)}",
                            f"@{row.digest}"))
        self.tags.options = options
        if not options:
            self.manifest.value, self.layers.options, self.sharing.value = "", [], ""

    def _facts(self, repository: str, digest: str) -> pd.Series | None:
        try:
            return self._manifests.loc[(repository, digest)]
        except KeyError:
            return None

    def _show_manifest(self) -> None:
        repository, tag = self.repositories.value, self.tags.value
        if tag is None:
            return
        if tag.startswith("@"):  # an untagged manifest (a tag never holds "@")
            digest, name = tag[1:], f"{repository} (untagged)"
            media_type = self._facts(repository, digest)["media_type"]
        else:
            row = self.inv.tags[(self.inv.tags["repository"] == repository)
                                & (self.inv.tags["tag"] == tag)].iloc[0]
            digest, name, media_type = str(row["digest"]), f"{repository}:{tag}", row["media_type"]
        facts = self._facts(repository, digest)
        kind = str(facts["kind"]) if facts is not None else "unknown"
        parts = [f"<p><b>{html.escape(name)}</b> "
                 f"<code>{html.escape(digest)}</code><br>{html.escape(str(media_type))}"
                 f" ({html.escape(kind)})</p>"]
        manifests = [digest]
        if kind == "index":
            children = self.inv.children[(self.inv.children["repository"] == repository)
                                         & (self.inv.children["index"] == digest)]
            platforms = children[["os", "architecture", "variant", "digest"]].astype(
                "string").fillna("")
            parts.append("<p>platforms:</p>" + _table(platforms))
            manifests = [str(d) for d in children["digest"]]
        about = self._referrers[(self._referrers["repository"] == repository)
                                & self._referrers["subject"].isin([digest, *manifests])]
        if len(about):
            shown = about[["role", "artifact_type", "subject", "digest", "tags"]].fillna("")
            shown = shown.assign(subject=shown["subject"].str[:19], digest=shown["digest"]
                                 .str[:19]).rename(columns={"subject": "about"})
            parts.append("<p>referrers (signatures, SBOMs, attestations about it):</p>"
                         + _table(shown))
        if facts is not None and not pd.isna(facts["subject"]):
            parts.append(f"<p>a {html.escape(str(facts['role']))} about "
                         f"<code>{html.escape(str(facts['subject']))}</code></p>")
        self.manifest.value = "".join(parts)
        layers = self.inv.layers[(self.inv.layers["repository"] == repository)
                                 & self.inv.layers["manifest"].isin(manifests)]
        self.layers.options = [
            (f"{layer.position}: {str(layer.digest)[7:19]}  "
             f"{format_bytes(layer.size) if not pd.isna(layer.size) else '?'}",
             str(layer.digest))
            for layer in layers.drop_duplicates("digest").itertuples(index=False)]

    def _show_sharing(self) -> None:
        digest = self.layers.value
        if digest is None:
            self.sharing.value = ""
            return
        users = self.inv.layers[self.inv.layers["digest"] == digest][["repository", "manifest"]]
        tagged = self.inv.tags.merge(users.rename(columns={"manifest": "digest"}),
                                     on=["repository", "digest"])
        via_index = self.inv.children.merge(users.rename(columns={"manifest": "digest"}),
                                            on=["repository", "digest"])
        tagged_index = self.inv.tags.merge(
            via_index[["repository", "index"]].rename(columns={"index": "digest"}),
            on=["repository", "digest"])
        everyone = pd.concat([tagged, tagged_index])[["repository", "tag"]].astype(str)
        everyone = everyone.drop_duplicates().sort_values(["repository", "tag"])
        others = everyone[everyone["repository"] != self.repositories.value]
        self.sharing.value = (
            f"<p>layer <code>{html.escape(digest)}</code> is used by "
            f"{everyone['repository'].nunique()} repositories and {len(everyone)} tags; "
            f"other repositories: {others['repository'].nunique()}</p>" + _table(everyone))

    # ------------------------------------------------------------- clean up

    def _show_plan(self) -> None:
        try:
            plan = plan_cleanup(self.inv, keep_last=self.keep_last.value,
                                older_than=self.older_than.value.strip() or None,
                                protect=self.protect.value or None, now=self.now)
        except PlanError as exc:
            self._plan = None
            self.plan_view.value = f"<p style='color:#b00'>{html.escape(str(exc))}</p>"
            self.delete.disabled = True
            return
        self._plan = plan
        doomed = plan[plan["action"] == "delete"]
        self.plan_view.value = (
            f"<p><b>{len(doomed)}</b> of {len(plan)} tags to delete, freeing "
            f"<b>{format_bytes(plan.attrs['reclaimable_bytes'])}</b> after garbage "
            f"collection.</p>" + _table(doomed.assign(
                created=doomed["created"].dt.strftime("%Y-%m-%d"))))
        self.delete.disabled = self.registry is None or doomed.empty
        self._ask(show=False)

    def _ask(self, *, show: bool = True) -> None:
        display = None if show else "none"
        self.confirm.layout.display = display
        self.cancel.layout.display = display
        if show and self._plan is not None:
            count = int((self._plan["action"] == "delete").sum())
            self.result.value = (f"<p>Delete {count} tags from "
                                 f"{html.escape(self.registry.url)}? This cannot be undone.</p>")

    def _apply(self) -> None:
        self._ask(show=False)
        if self.registry is None or self._plan is None:
            return
        try:
            outcome = apply_cleanup(self.registry, self._plan, dry_run=False)
        except RegistryError as exc:
            outcome = getattr(exc, "result", None)
            self.result.value = f"<p style='color:#b00'>{html.escape(str(exc))}</p>" + (
                _table(outcome) if outcome is not None else "")
            return
        self.result.value = "<p>done:</p>" + _table(outcome)
        self.delete.disabled = True


def explore(inv: Inventory, registry: Registry | None = None) -> Explorer:
    """An explorer widget for ``inv``; with ``registry``, its cleanup panel can delete."""
    return Explorer(inv, registry)
