"""The explorer's Explore tab: repositories -> tags -> manifest and layers -> sharing.

Each table is an itables ``ITable`` (sorting and search in the browser, see
:mod:`._tables`); picking a row fills the next pane and empties the ones after it, so
no pane ever shows a tag other than the one selected, and an empty pane says what to
pick to fill it.

Names, tags, media types and messages come from a registry or a storage tree: what
goes into an ``HTML`` widget passes :func:`inert` (printable, then HTML-escaped), the
tables' text :func:`printable` (itables escapes HTML itself, ``allow_html=False``
below whatever its global option says). Outside text is never put in a ``Label``,
``HTMLMath`` or a widget's description: those are typeset by MathJax, where ``$x$``
would become math.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import numpy as np
import pandas as pd

from .._text import inert
from ..analysis._history import image_created
from ..analysis._referrers import referrers
from ..analysis._storage import (
    layer_sharing,
    repositories_without_tags,
    storage_by_repository,
)
from ..inventory._reach import Reach
from ..usage._frame import covered_since
from ._tables import columns, fill, grid, html_table, natural_key
from ._usage import last_pull_words

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory

#: the tag table's columns (``last_pulled`` and ``pulls_30d`` only with pull records);
#: value and manifest are not shown (what a pick names, the full digest)
TAG_COLUMNS = ["tag", "digest", "kind", "size_bytes", "created", "last_pulled", "pulls_30d",
               "referrers", "value", "manifest"]
PULL_COLUMNS = ["last_pulled", "pulls_30d"]
#: how a tag row with no pull time sorts among times: "never" first, then the unknown
NEVER, UNKNOWN = -2, -1


class Browse(widgets.VBox):
    """Repositories, tags, manifest, layers, sharing: each pane follows the one before.
    With ``pulls`` (pull records), the tag table tells when each image was last
    pulled and how often in the 30 days before the inventory was read."""

    def __init__(self, inv: Inventory, *, pulls: pd.DataFrame | None = None) -> None:
        self.pulls = pulls
        self.repositories, self.tags, self.layers = grid(), grid(), grid()
        # what each table lists, above it (itables' caption does not follow updates)
        self.titles = {table: widgets.HTML() for table in (self.repositories, self.tags,
                                                           self.layers)}
        self.manifest = widgets.HTML()
        self.sharing = widgets.HTML()
        self.repositories.observe(lambda _: self._on_repository(), "selected_rows")
        self.tags.observe(lambda _: self._on_tag(), "selected_rows")
        self.layers.observe(lambda _: self._on_layer(), "selected_rows")
        super().__init__([self.titles[self.repositories], self.repositories,
                          self.titles[self.tags], self.tags, self.manifest,
                          self.titles[self.layers], self.layers, self.sharing])
        self.inv = inv
        self._repository_frame = pd.DataFrame(columns=["repository"])
        self._tag_frame = pd.DataFrame(columns=["value", "manifest"])
        self._layer_frame = pd.DataFrame(columns=["digest"])

    # ------------------------------------------------------------- state

    def show(self, inv: Inventory) -> None:
        """Show ``inv`` (a new one after a delete): keep the repository and tag picked
        if they are still there."""
        keep = (self.repository, self.tag)
        self.inv = inv
        self._prepare()
        self._set(self.repositories, self._repository_frame, self._repository_defs,
                  caption="repositories", empty="no repositories in this inventory")
        repository, tag = keep
        if repository not in set(self._repository_frame["repository"]):
            self._on_repository()  # nothing picked: empty panes
            return
        self.select(repository)
        if tag in self.tag_choices:
            self._pick(self.tags, self.tag_choices.index(tag), self._on_tag)

    def _prepare(self) -> None:
        inv = self.inv
        by_repository = storage_by_repository(inv)
        frame = by_repository[["repository", "tags", "stored_bytes", "exclusive_bytes"]]
        tagless = sorted(set(repositories_without_tags(inv)["repository"])
                         - set(frame["repository"].astype(str)))
        if tagless:
            frame = pd.concat([frame, pd.DataFrame({
                "repository": tagless, "tags": 0, "stored_bytes": 0, "exclusive_bytes": 0})],
                ignore_index=True)
        self._repository_frame, self._repository_defs = columns(
            frame.astype({"repository": str}),
            sizes={"stored_bytes": "stored", "exclusive_bytes": "exclusive"},
            text=["repository"])
        self._manifests = inv.manifests.drop_duplicates(["repository", "digest"]).set_index(
            ["repository", "digest"])
        self._created = image_created(inv)  # an index: its newest child
        self._referrers = referrers(inv)
        self._roles_about = self._referrer_roles()
        self._untagged = Reach.of(inv).untagged_rows  # by manifests row
        self._sharing = layer_sharing(inv).set_index("digest")["repositories"]
        if self.pulls is not None:
            from ..analysis._pulls import image_use

            self._use = image_use(inv, self.pulls, now=inv.taken_at)
            self._since = covered_since(self.pulls, inv.taken_at)

    @property
    def repository(self) -> str | None:
        rows = self.repositories.selected_rows
        return str(self._repository_frame["repository"].iloc[rows[0]]) if rows else None

    @property
    def tag(self) -> str | None:
        """The tag picked; ``@sha256:...`` for an untagged manifest."""
        rows = self.tags.selected_rows
        return str(self._tag_frame["value"].iloc[rows[0]]) if rows else None

    @property
    def tag_choices(self) -> list[str]:
        """The tags listed for the repository picked, ``@sha256:...`` for untagged
        manifests, in the table's own order."""
        return [str(v) for v in self._tag_frame["value"]]

    def select(self, repository: str, tag: str | None = None, layer: str | None = None
               ) -> None:
        """Pick ``repository``, then ``tag`` and ``layer`` (a digest), as clicks do."""
        names = list(self._repository_frame["repository"])
        if repository not in names:
            raise KeyError(f"no repository {repository!r} in this inventory")
        self._pick(self.repositories, names.index(repository), self._on_repository)
        if tag is None:
            return
        values = list(self._tag_frame["value"])
        if tag not in values:
            raise KeyError(f"no tag {tag!r} in {repository}")
        self._pick(self.tags, values.index(tag), self._on_tag)
        if layer is not None:
            digests = list(self._layer_frame["digest"])
            if layer not in digests:
                raise KeyError(f"no layer {layer!r} in {repository}:{tag}")
            self._pick(self.layers, digests.index(layer), self._on_layer)

    @staticmethod
    def _pick(table: Any, row: int, then: Any) -> None:
        """Select ``row``: the table's observer fills the next pane; picked already,
        fill it again (a fresh pane, as a click gives)."""
        if table.selected_rows == [row]:
            then()
        else:
            table.selected_rows = [row]

    def _set(self, table: Any, frame: pd.DataFrame, defs: list[dict] | None = None, *,
             caption: str, empty: str) -> None:
        """New rows, nothing selected; the title above says what the table lists, or
        with no rows what to pick."""
        fill(table, self.titles[table], frame, defs, caption=caption, empty=empty)

    # ------------------------------------------------------------- panes

    def _referrer_roles(self) -> dict[tuple[str, str], list[str]]:
        """(repository, digest) -> the roles of the referrers about it or, for an
        index, about its platform images: "signed, sbom"."""
        about: dict[tuple[str, str], set[str]] = {}
        for row in self._referrers.itertuples(index=False):
            if row.role != "index":  # a fallback tag's index lists referrers, it is none
                about.setdefault((row.repository, row.subject), set()).add(row.role)
        children = self.inv.children
        for repository, index, child in zip(children["repository"].astype(str),
                                            children["parent"],
                                            children["digest"], strict=True):
            found = about.get((repository, str(child)))
            if found:
                about.setdefault((repository, str(index)), set()).update(found)
        return {key: sorted("signed" if r == "signature" else r for r in roles)
                for key, roles in about.items()}

    def _facts(self, repository: str, digest: str) -> pd.Series | None:
        try:
            return self._manifests.loc[(repository, digest)]
        except KeyError:
            return None

    def _tags_of(self, repository: str) -> pd.DataFrame:
        """The repository's tags in natural order (v2 before v10), then its untagged
        manifests."""
        tags = self.inv.tags[self.inv.tags["repository"] == repository]
        rows = sorted(((str(t.tag), str(t.tag), str(t.digest))
                       for t in tags.itertuples(index=False)),
                      key=lambda row: natural_key(row[0]))
        manifests = self.inv.manifests
        untagged = manifests[(manifests["repository"] == repository).to_numpy()
                             & self._untagged]
        rows += [("(untagged)", f"@{m.digest}", str(m.digest))
                 for m in untagged.itertuples(index=False)]
        records = []
        for shown, value, digest in rows:
            facts = self._facts(repository, digest)
            created = self._created.get((repository, digest))
            pulled = self._pulled(repository, digest, created)
            about = ""
            if facts is not None and not pd.isna(facts["subject"]):
                about = f"{facts['role']} of {str(facts['subject'])[7:19]}"
            records.append({
                "tag": shown, "digest": digest[7:19],
                "kind": "?" if facts is None else str(facts["role"]),
                "size_bytes": None if facts is None or pd.isna(facts["size"])
                else int(facts["size"]),
                "created": "" if created is None or pd.isna(created)
                else f"{created:%Y-%m-%d}", **pulled,
                "referrers": about or ", ".join(self._roles_about.get((repository, digest),
                                                                      [])),
                "value": value, "manifest": digest})
        return pd.DataFrame(records, columns=self._tag_columns)

    @property
    def _tag_columns(self) -> list[str]:
        if self.pulls is None:
            return [c for c in TAG_COLUMNS if c not in PULL_COLUMNS]
        return [*TAG_COLUMNS, "last_pulled rank"]

    def _pulled(self, repository: str, digest: str, created: object) -> dict[str, object]:
        """The pull columns of a tag row: its image's last pull in words (ordered by the
        hidden ``last_pulled rank``: its time, never and unknown first), pulls_30d."""
        if self.pulls is None:
            return {}
        try:
            use = self._use.loc[(repository, digest)]
        except KeyError:
            use = pd.Series({"last_pulled": pd.NaT, "pulls_30d": 0})
        last = use["last_pulled"]
        words = last_pull_words(last, None if created is None else created, self._since)
        return {"last_pulled": words, "pulls_30d": int(use["pulls_30d"]),
                "last_pulled rank": NEVER if words == "never" else UNKNOWN if pd.isna(last)
                else int(pd.Timestamp(last).value)}

    def _on_repository(self) -> None:
        repository = self.repository
        self._tag_frame = (self._tags_of(repository) if repository is not None
                           else self._tags_of_nothing())
        shown, defs = columns(self._tag_frame.drop(columns=["value", "manifest"]),
                              sizes={"size_bytes": "size"},
                              text=["tag", "digest", "kind", "referrers"],
                              ranked={"last_pulled": "last_pulled rank"}
                              if self.pulls is not None else None)
        self._set(self.tags, shown, defs, caption=f"tags of {repository}",
                  empty="pick a repository to see its tags" if repository is None
                  else f"{repository} has no tags and no manifests")
        self._on_tag()

    def _tags_of_nothing(self) -> pd.DataFrame:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in self._tag_columns})

    def _on_tag(self) -> None:
        repository, value = self.repository, self.tag
        self._layer_frame = pd.DataFrame(columns=["digest"])
        if repository is None or value is None:
            self.manifest.value = ""
            self._set(self.layers, pd.DataFrame(columns=["layer"]), caption="layers",
                      empty="pick a tag to see its manifest and layers"
                      if repository is not None and self.tag_choices else "")
            self._on_layer()
            return
        digest = str(self._tag_frame["manifest"].iloc[self.tags.selected_rows[0]])
        name = f"{repository}@{digest}" if value.startswith("@") else f"{repository}:{value}"
        self.manifest.value, manifests = self._manifest_pane(
            repository, digest, name + (" (untagged)" if value.startswith("@") else ""))
        self._layer_frame = self._layers_of(repository, manifests)
        shown, defs = columns(self._layer_frame.drop(columns="digest"),
                              sizes={"size_bytes": "size"}, text=["platform", "layer"])
        self._set(self.layers, shown, defs, caption=f"layers of {name}",
                  empty=f"{name} lists no layers")
        self._on_layer()

    def _manifest_pane(self, repository: str, digest: str, name: str) -> tuple[str, list[str]]:
        facts = self._facts(repository, digest)
        kind = str(facts["kind"]) if facts is not None else "unknown"
        media_type = facts["media_type"] if facts is not None else ""
        parts = [f"<p><b>{inert(name)}</b><br><code>{inert(digest)}</code>"
                 f"<br>{inert(media_type)} ({inert(kind)})</p>"]
        manifests = [digest]
        if kind == "index":
            children = self.inv.children[(self.inv.children["repository"] == repository)
                                         & (self.inv.children["parent"]
                                            == digest)]
            platforms = children[["os", "architecture", "variant", "digest"]].astype(
                "string").fillna("")
            parts.append("<p>platforms:</p>" + html_table(platforms))
            manifests = [str(d) for d in children["digest"]]
        about = self._referrers[(self._referrers["repository"] == repository)
                                & self._referrers["subject"].isin([digest, *manifests])]
        if len(about):
            shown = about[["role", "artifact_type", "subject", "digest", "tags"]].fillna("")
            shown = shown.assign(subject=shown["subject"].str[:19], digest=shown["digest"]
                                 .str[:19]).rename(columns={"subject": "about"})
            parts.append("<p>referrers (signatures, SBOMs, attestations about it):</p>"
                         + html_table(shown))
        if facts is not None and not pd.isna(facts["subject"]):
            parts.append(f"<p>a {inert(facts['role'])} about "
                         f"<code>{inert(facts['subject'])}</code></p>")
        return "".join(parts), manifests

    def _layers_of(self, repository: str, manifests: list[str]) -> pd.DataFrame:
        """One row per (platform image, layer): an index's platforms stay apart."""
        layers = self.inv.layers[(self.inv.layers["repository"] == repository)
                                 & self.inv.layers["manifest"].isin(manifests)]
        platform = {}
        for digest in manifests:
            facts = self._facts(repository, digest)
            parts = [] if facts is None else [str(facts[k]) for k in (
                "os", "architecture", "variant") if not pd.isna(facts[k])]
            platform[digest] = "/".join(parts) or digest[7:19]
        order = {digest: n for n, digest in enumerate(manifests)}
        frame = pd.DataFrame({
            "platform": [platform[str(m)] for m in layers["manifest"]],
            "position": layers["position"].astype("int64").to_numpy(),
            "layer": [str(d)[7:19] for d in layers["digest"]],
            "size_bytes": layers["size"].to_numpy(),
            "repositories": [int(self._sharing.get(str(d), 1)) for d in layers["digest"]],
            "digest": layers["digest"].astype(str).to_numpy(),
            "_order": [order[str(m)] for m in layers["manifest"]]})
        return frame.sort_values(["_order", "position"], ignore_index=True).drop(
            columns="_order")

    def _on_layer(self) -> None:
        rows = self.layers.selected_rows
        if not rows or self._layer_frame.empty:
            self.sharing.value = "" if self._layer_frame.empty else (
                "<i class='ri-hint'>pick a layer to see which repositories and tags "
                "share it</i>")
            return
        digest = str(self._layer_frame["digest"].iloc[rows[0]])
        # the tags whose images reach it, through any index
        tag_rows = np.unique(Reach.of(self.inv).tags_reaching_blobs([digest])["tag"])
        everyone = self.inv.tags.iloc[tag_rows][["repository", "tag"]].astype(str)
        everyone = everyone.sort_values(["repository", "tag"])
        others = everyone[everyone["repository"] != self.repository]
        self.sharing.value = (
            f"<p>layer <code>{inert(digest)}</code> is used by "
            f"{everyone['repository'].nunique()} repositories and {len(everyone)} tags; "
            f"other repositories: {others['repository'].nunique()}</p>"
            + html_table(everyone))
