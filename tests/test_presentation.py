"""Plots (their data, not pixels), the HTML report, and the explorer driven headless."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
import pytest

import reginsight as ri
from tests.images import Pusher
from tests.test_analysis import L1, inventory

SAMPLE = ri.sample()


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_plot_storage_bars_are_exclusive_and_shared_bytes():
    ax = ri.plot_storage(inventory())
    exclusive, shared = ax.containers
    assert [bar.get_width() for bar in exclusive] == [33, 77]  # a, b (largest on top)
    assert [bar.get_width() for bar in shared] == [100, 100]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    assert ax.xaxis.get_major_formatter()(2048, 0) == "2 KiB"


def test_plot_layer_sharing_and_matrix():
    ax = ri.plot_layer_sharing(inventory())
    heights = {label.get_text(): bar.get_height()
               for label, bar in zip(ax.get_xticklabels(), ax.patches, strict=True)}
    assert heights == {"1": 0, "2": 300}  # L1 serves 2 repositories, 300 bytes saved
    ax = ri.plot_sharing_matrix(inventory())
    data = ax.images[0].get_array()
    assert data.tolist() == [[None, 100], [100, None]]  # the diagonal left out of the scale
    assert sorted(t.get_text() for t in ax.texts) == ["100", "100", "B", "B", "—", "—"]


def test_plot_image_age_points_are_tags_an_index_at_its_newest_image_by_repository():
    ax = ri.plot_image_age(inventory())
    points = {c.get_label(): sorted(c.get_offsets()[:, 1].tolist()) for c in ax.collections}
    # multi, an index, is drawn at its newest platform image's time with its own size
    assert points == {"a": [111, 111, 122], "b": [133, 177]}
    assert ax.get_title() == "Image size and age (5 tags)"


def test_byte_axes_step_in_binary_units():
    from reginsight.present._plots import binary_ticks

    mib = 2 ** 20
    assert binary_ticks(0, 15.3 * mib) == [n * 2 * mib for n in range(8)]  # 0, 2 ... 14 MiB
    assert binary_ticks(0, 1500 * 1024) == [n * 256 * 1024 for n in range(6)]
    assert binary_ticks(-15.3 * mib, 3 * mib) == [-12 * mib, -8 * mib, -4 * mib, 0]
    ax = ri.plot_storage(SAMPLE)
    ax.figure.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0] == "0" and all(label.split()[0].isdigit() for label in labels), labels
    assert ri.format_bytes(-0.0) == "0 B" and ri.format_bytes(-0.3) == "0 B"


def test_plot_growth_between_two_inventories():
    before = inventory()
    after = inventory()
    after.tags = after.tags[after.tags["repository"] == "b"].reset_index(drop=True)
    ax = ri.plot_growth(before, after)
    changes = {t.get_text(): bar.get_width()
               for t, bar in zip(ax.get_yticklabels(), ax.patches, strict=True)}
    assert changes == {"a": -133, "b": 0}


def test_plots_draw_on_a_given_axes_and_never_show(monkeypatch):
    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("plt.show called"))
    _, ax = plt.subplots()
    assert ri.plot_storage(SAMPLE, ax=ax) is ax


def test_report_is_self_contained_and_escaped(tmp_path):
    inv = inventory()
    inv.registry = "http://evil.test/<script>alert(1)</script>"
    from reginsight.inventory._frames import build

    inv.errors = build("errors", [("a", "x", "tag", "<img src=x onerror=alert(2)>")])
    path = ri.export_report(inv, tmp_path / "report.html")
    text = path.read_text()
    assert "<script>" not in text and "<img src=x" not in text
    assert "&lt;script&gt;" in text and "&lt;img src=x onerror=alert(2)&gt;" in text
    assert "http://" not in text.replace("http://evil.test", "").replace(
        "http://www.w3.org", "")  # nothing fetched from elsewhere
    assert text.count("data:image/svg+xml;base64,") == 5
    assert "654 B" in text  # logical bytes
    assert L1[:19] in text  # the shared base layer is listed


def test_report_never_contains_credentials(registry_server, tmp_path, prefix):
    Pusher(registry_server.url).image(f"{prefix}/app", "v1")
    secret = "hunter2-not-in-reports"
    with ri.Registry(f"{registry_server.url}", "someone", secret) as reg:
        inv = ri.crawl(reg, f"{prefix}/*", progress=False)
    assert len(inv.tags) == 1
    path = ri.export_report(inv, tmp_path / "r.html")
    inv.save(tmp_path / "saved")
    assert secret not in path.read_text()
    saved = [f for f in (tmp_path / "saved").rglob("*") if f.is_file()]
    assert saved and all(secret.encode() not in f.read_bytes() for f in saved)


# ------------------------------------------------------------- the explorer


def _retagged(inv: ri.Inventory, repository: str, names: dict[str, str]) -> ri.Inventory:
    """``inv`` with some tags of ``repository`` renamed, sorted as a crawl sorts them
    (by their text: v1, v10, v2)."""
    frames = dict(inv.frames())
    tags = frames["tags"].copy()
    chosen = tags["repository"] == repository
    tags["tag"] = tags["tag"].where(~chosen, tags["tag"].map(lambda t: names.get(t, t))
                                    ).astype("string")
    frames["tags"] = tags.sort_values(["repository", "tag"], ignore_index=True)
    retagged = ri.Inventory(registry=inv.registry, taken_at=inv.taken_at, **frames)
    retagged.label = inv.label
    return retagged


#: web/frontend's releases renamed so that text order and version order differ
VERSIONED = _retagged(SAMPLE, "web/frontend", {"1.0.0": "v1", "1.1.0": "v10", "1.2.0": "v2",
                                               "1.3.0": "v9", "1.4.0": "v11"})


def _shown(table) -> pd.DataFrame:
    """The rows an ITable was given, as a frame (what the browser receives)."""
    return table.df


def _def_of(table, column: str) -> dict:
    names = list(table.df.columns)
    return next(d for d in table._dt_args["columnDefs"]
                if d.get("targets") == names.index(column))


def test_explorer_browse_repository_tag_layer():
    explorer = ri.explore(SAMPLE)
    browse = explorer.browse
    assert browse._repository_frame["repository"].iloc[0] == "data/etl"  # largest first
    assert {"repository", "tags", "stored", "exclusive"} <= set(browse._repository_frame)
    explorer.select("platform/base", "latest")
    assert browse.repository == "platform/base" and browse.tag == "latest"
    assert "platforms" in browse.manifest.value and "arm64" in browse.manifest.value
    # an index's platforms are told apart: each has its own positions 0, 1, 2
    layers = browse._layer_frame
    assert sorted(layers["platform"].unique()) == ["linux/amd64", "linux/arm64"]
    assert not layers.duplicated(["platform", "position"]).any()
    base_layer = layers["digest"].iloc[0]
    explorer.select("platform/base", "latest", base_layer)
    sharing = SAMPLE.layers[SAMPLE.layers["digest"] == base_layer]["repository"].nunique()
    assert f"used by {sharing} repositories" in browse.sharing.value
    assert "data/jobs" in browse.sharing.value
    with pytest.raises(KeyError, match="no tag"):
        explorer.select("platform/base", "nope")


def test_explorer_panes_follow_the_repository_picked():
    """The reported bug: pick platform/base:latest, switch to web/api, and the panes
    still showed platform/base:latest."""
    explorer = ri.explore(SAMPLE)
    browse = explorer.browse
    explorer.select("platform/base", "latest")
    assert "platform/base:latest" in browse.manifest.value
    browse.repositories.selected_rows = [list(browse._repository_frame["repository"]).index(
        "web/api")]  # what a click in the table does
    assert browse.repository == "web/api" and browse.tag is None
    assert browse.manifest.value == "" and browse.sharing.value == ""
    assert browse.layers._df.empty and "latest" in browse.tag_choices
    assert "tags of web/api" in browse.titles[browse.tags].value
    browse.tags.selected_rows = [browse.tag_choices.index("latest")]
    assert "web/api:latest" in browse.manifest.value
    assert "platform/base" not in browse.manifest.value


def test_explorer_tables_sort_by_bytes_not_by_their_text():
    explorer = ri.explore(SAMPLE)
    table = explorer.browse.repositories
    columns = list(explorer.browse._repository_frame.columns)
    assert columns[_def_of(table, "stored")["orderData"]] == "stored bytes"
    hidden = next(d for d in table._dt_args["columnDefs"] if d.get("visible") is False)
    assert [columns[i] for i in hidden["targets"]] == [
        "stored bytes", "exclusive bytes", "repository order"]
    assert table._dt_args["select"] == {"style": "single"}
    assert table._dt_args["layout"]["topEnd"] == "search"  # searchable however short


def test_natural_order_compares_numbers_in_names_as_numbers():
    from reginsight.present._tables import natural_key, natural_ranks

    names = ["v10", "v2", "latest", "1.10.0", "v1", "1.9.0", "v01", "1.9.0-rc1", "2025.04"]
    assert sorted(names, key=natural_key) == [
        "1.9.0", "1.9.0-rc1", "1.10.0", "2025.04", "latest", "v01", "v1", "v2", "v10"]
    assert list(natural_ranks(["v10", "v2", None, "v1"])) == [3, 2, 0, 1]


def test_explorer_tags_are_text_in_version_order():
    """DataTables would read a column of "1.0" as numbers (right-aligned, sorted as
    numbers) and sort v10 before v2: tags are declared text, ordered naturally."""
    explorer = ri.explore(VERSIONED)
    explorer.select("web/frontend")
    browse = explorer.browse
    assert [t for t in browse.tag_choices if t.startswith("v")] == [
        "v1", "v2", "v9", "v10", "v11"]  # the table's first order, not the text's
    shown = _shown(browse.tags)
    tag = _def_of(browse.tags, "tag")
    assert tag["type"] == "string"
    ranks = shown.iloc[:, tag["orderData"]]  # what a click on the header sorts by
    assert list(shown["tag"][ranks.argsort()]) == list(shown["tag"])
    hidden = next(d for d in browse.tags._dt_args["columnDefs"] if d.get("visible") is False)
    assert tag["orderData"] in hidden["targets"]
    explorer.select("web/worker")  # its only tag, "1.0", looks like a number
    assert list(_shown(browse.tags)["tag"]) == ["1.0"]
    assert _def_of(browse.tags, "tag")["type"] == "string"
    for column in ("digest", "kind", "referrers"):  # hex digests may be all digits
        assert _def_of(browse.tags, column)["type"] == "string"
    explorer.select("web/worker", "1.0")
    assert _def_of(browse.layers, "layer")["type"] == "string"


def test_explorer_empty_panes_say_what_to_pick():
    inv = ri.Inventory(registry=SAMPLE.registry, taken_at=SAMPLE.taken_at,
                       repositories=[*SAMPLE.tags["repository"].astype(str), "team/empty"],
                       **dict(SAMPLE.frames()))
    explorer = ri.explore(inv)
    browse = explorer.browse
    titles = browse.titles
    assert "pick a repository to see its tags" in titles[browse.tags].value
    assert browse.tags.layout.display == "none" and browse.layers.layout.display == "none"
    explorer.select("web/api")
    assert browse.tags.layout.display is None and "tags of web/api" in titles[browse.tags].value
    assert "pick a tag to see its manifest and layers" in titles[browse.layers].value
    assert browse.layers.layout.display == "none" and browse.sharing.value == ""
    explorer.select("web/api", "v4")
    assert browse.layers.layout.display is None
    assert "pick a layer to see which repositories and tags share it" in browse.sharing.value
    explorer.select("web/api", "v4", browse._layer_frame["digest"].iloc[0])
    assert "is used by" in browse.sharing.value
    explorer.select("team/empty")  # a repository the catalog lists, without tags
    assert "team/empty has no tags and no manifests" in titles[browse.tags].value
    assert browse.tags.layout.display == "none"
    assert titles[browse.layers].value == "<i class='ri-hint'></i>"
    # the Clean up plan too: no table under rules that delete nothing
    explorer.keep_last.value = 10_000
    assert "nothing to delete with these rules" in explorer.cleanup.title.value
    assert explorer.cleanup.table.layout.display == "none"


def test_explorer_buttons_are_as_wide_as_their_labels():
    """ipywidgets' buttons are 148 px wide: "Delete planned tags" showed as "Delete
    planned…". The browser test measures the labels; here, no button has a fixed width."""
    import ipywidgets as widgets

    def every(widget):
        yield widget
        for child in getattr(widget, "children", ()):
            yield from every(child)

    buttons = [w for w in every(ri.explore(SAMPLE, refresh=lambda: SAMPLE))
               if isinstance(w, widgets.Button)]
    assert {b.description for b in buttons} >= {"Delete planned tags", "Yes, delete them",
                                                 "Cancel", "Save plan", "Refresh"}
    assert all(b.layout.width == "auto" for b in buttons), [
        (b.description, b.layout.width) for b in buttons]


def test_explorer_cleanup_plan_is_sortable_scoped_and_saved_for_the_cli(tmp_path):
    import base64

    explorer = ri.explore(VERSIONED)
    explorer.keep_last.value, explorer.older_than.value, explorer.protect.value = 1, "30d", ""
    rules = {"keep_last": 1, "older_than": "30d", "now": SAMPLE.taken_at}
    everything = ri.plan_cleanup(VERSIONED, **rules)
    assert explorer._plan.equals(everything)
    assert set(explorer._plan["repository"]) > {"web/frontend"}
    # scoped: the picker lists the repositories; one picked plans that one only
    assert explorer.repository.options[0] == ("all repositories", "all repositories")
    assert ("web/frontend", "web/frontend") in explorer.repository.options
    explorer.repository.value = "web/frontend"
    plan = ri.plan_cleanup(VERSIONED, **rules, repositories=["web/frontend"])
    assert explorer._plan.equals(plan) and set(plan["repository"]) == {"web/frontend"}
    doomed = plan[plan["action"] == "delete"]
    summary = explorer.cleanup.summary.value
    assert f"<b>{len(doomed)}</b> of {len(plan)} tags of web/frontend to delete" in summary
    assert f"<b>{ri.format_bytes(plan.attrs['reclaimable_bytes'])}</b>" in summary
    # the table: every row to delete, full digests, in version order, sorted as text
    table = explorer.cleanup.table
    shown = _shown(table)
    assert list(shown["tag"]) == ["stable", "v1", "v2", "v9", "v10"]
    assert set(shown["digest"]) == set(doomed["digest"])
    assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", d) for d in shown["digest"])
    assert _def_of(table, "tag")["type"] == "string"
    assert table._dt_args["select"] == {"style": "api"}  # a click selects text, not rows
    assert ("reginsight cleanup URL --keep-last 1 --older-than 30d --protect &#x27;&#x27; "
            "--repositories web/frontend") in explorer.cleanup.command.value
    # saved as a plan file the command line applies, and offered as a download
    explorer.cleanup.path.value = str(tmp_path / "plan.csv")
    explorer.cleanup.save.click()
    saved = tmp_path / "plan.csv"
    pd.testing.assert_frame_equal(ri.load_plan(saved), plan.reset_index(drop=True),
                                  check_like=True, check_dtype=False)
    words = explorer.cleanup.saved.value
    assert f"reginsight cleanup URL --plan {saved}" in words
    link = re.search(r"href='data:text/csv;base64,([^']+)'", words)
    assert base64.b64decode(link.group(1)) == saved.read_bytes()
    # a file that is no plan is not replaced
    (tmp_path / "notes.csv").write_text("mine\n")
    explorer.cleanup.path.value = str(tmp_path / "notes.csv")
    explorer.cleanup.save.click()
    assert "not a plan file" in explorer.cleanup.saved.value
    assert (tmp_path / "notes.csv").read_text() == "mine\n"


def test_a_long_plan_lists_its_first_rows_and_saves_them_all(monkeypatch, tmp_path):
    from reginsight.present import _planpanel

    monkeypatch.setattr(_planpanel, "MOST_ROWS", 4)
    explorer = ri.explore(VERSIONED)
    doomed = explorer._plan[explorer._plan["action"] == "delete"]
    assert len(doomed) == 10
    assert "the first 4 of 10 rows" in explorer.cleanup.title.value
    assert list(_shown(explorer.cleanup.table)["tag"]) == [
        "nightly-20250101", "nightly-20250201", "nightly-20250301", "nightly-20250401"]
    explorer.cleanup.path.value = str(tmp_path / "plan.json")
    explorer.cleanup.save.click()
    saved = ri.load_plan(tmp_path / "plan.json")
    assert (saved["action"] == "delete").sum() == 10
    assert "(10 rows to delete; <a download=" in explorer.cleanup.saved.value
    assert "data:application/json;base64," in explorer.cleanup.saved.value


def test_plan_inputs_are_debounced_in_a_kernel():
    """In Jupyter an event loop runs: keystrokes within the delay make one plan, and
    nothing can be deleted while the plan shown is not the one typed."""
    import asyncio

    from reginsight.present._widgets import DEBOUNCE, Debounced

    plans: list[str] = []

    async def typing() -> ri.explore:
        # a registry only to enable the button; nothing is clicked, nothing is sent
        from types import SimpleNamespace

        explorer = ri.explore(SAMPLE, registry=SimpleNamespace(url="http://127.0.0.1:9"))
        compute = explorer.plan_changed.action
        explorer.plan_changed.action = lambda: (plans.append(explorer.older_than.value),
                                                compute())
        assert not explorer.delete.disabled
        for text in ("3", "36", "365", "365d"):
            explorer.older_than.value = text
            assert explorer.delete.disabled and explorer._plan is None
            assert explorer.cleanup.save.disabled
            await asyncio.sleep(DEBOUNCE / 10)
        assert plans == []
        await asyncio.sleep(DEBOUNCE * 2)
        return explorer

    explorer = asyncio.run(typing())
    assert plans == ["365d"]  # one plan, for what was typed last
    expected = ri.plan_cleanup(SAMPLE, keep_last=3, older_than="365d",
                               protect=r"^(latest|stable)$", now=SAMPLE.taken_at)
    assert explorer._plan.equals(expected) and not explorer.delete.disabled
    calls: list[int] = []
    Debounced(lambda: calls.append(2))()  # no loop (a script): at once
    assert calls == [2]


def test_explorer_cleanup_panel_without_registry_cannot_delete():
    explorer = ri.explore(SAMPLE)
    plan = ri.plan_cleanup(SAMPLE, keep_last=3, older_than="180d",
                           protect=r"^(latest|stable)$", now=SAMPLE.taken_at)
    assert ri.format_bytes(plan.attrs["reclaimable_bytes"]) in explorer.cleanup.summary.value
    assert explorer.delete.disabled
    assert "no registry given: explore(inv, registry=reg)" in explorer.cleanup.children[6].value
    explorer.keep_last.value = 1
    fewer = ri.plan_cleanup(SAMPLE, keep_last=1, older_than="180d",
                            protect=r"^(latest|stable)$", now=SAMPLE.taken_at)
    assert f"<b>{(fewer['action'] == 'delete').sum()}</b>" in explorer.cleanup.summary.value
    explorer.older_than.value = "0d"  # as on the command line: no age rule
    assert explorer._plan.equals(ri.plan_cleanup(SAMPLE, keep_last=1,
                                                 protect=r"^(latest|stable)$",
                                                 now=SAMPLE.taken_at))
    explorer.older_than.value = "whenever"
    assert "older_than" in explorer.cleanup.summary.value and explorer.delete.disabled
    assert explorer.cleanup.save.disabled and explorer.cleanup.table.layout.display == "none"


def test_explorer_delete_asks_applies_then_shows_the_registry_after(registry_server, prefix):
    pusher = Pusher(registry_server.url)
    for n, day in enumerate(["2024-01-01", "2024-02-01", "2026-11-01"]):
        pusher.image(f"{prefix}/w", f"v{n}", created=f"{day}T00:00:00Z")
    pusher.close()
    with ri.Registry(registry_server.url) as reg:
        inv = ri.crawl(reg, f"{prefix}/*", progress=False)
        inv.taken_at = pd.Timestamp("2026-11-27", tz="UTC")
        explorer = ri.explore(inv, registry=reg)
        explorer.select(f"{prefix}/w", "v0")
        explorer.keep_last.value, explorer.older_than.value = 1, "30d"
        explorer.protect.value = ""
        assert not explorer.delete.disabled
        plan = explorer._plan
        freed = plan.attrs["reclaimable_bytes"]
        assert f"reginsight cleanup {registry_server.url} --keep-last 1" in \
            explorer.cleanup.command.value
        explorer.delete.click()
        assert "Delete 2 tags" in explorer.result.value
        assert reg.tags(f"{prefix}/w") == ["v0", "v1", "v2"]  # asking deleted nothing
        explorer.confirm.click()
        assert reg.tags(f"{prefix}/w") == ["v2"]
        assert "Deleted 2 tags" in explorer.result.value
        assert f"<b>{ri.format_bytes(freed)}</b> are freed when the registry's garbage " \
               "collector runs" in explorer.result.value
        for config in ("/etc/docker/registry/config.yml", "/etc/distribution/config.yml"):
            # the collector is not known from a crawl: each kind's command
            assert f"registry garbage-collect {config}" in explorer.result.value
        assert "Deleted 2 tags (2 manifests)." in explorer.result.value
        # the explorer reads the registry again: as a fresh crawl sees it
        after = ri.crawl(reg, f"{prefix}/*", progress=False)
    assert list(explorer.inv.tags["tag"]) == ["v2"]
    for name in ("tags", "manifests", "layers", "children"):
        pd.testing.assert_frame_equal(getattr(explorer.inv, name), getattr(after, name))
    assert explorer.browse.tag_choices == ["v2"] and explorer.browse.tag is None
    assert "v0" not in explorer.browse.manifest.value
    assert "<b>0</b> of 1 tag to delete" in explorer.cleanup.summary.value
    assert explorer.delete.disabled and "1 tag" in explorer.title.value
    assert "2 tags gone" in explorer.status.value


def test_explorer_refresh_reads_the_registry_again_in_the_inventory_s_scope(
        any_registry, prefix):
    """A tag pushed after the explorer opened shows after Refresh; a repository
    outside the crawl's scope stays out, a regex scope included."""
    pusher = Pusher(any_registry.url)
    pusher.image(f"{prefix}/app", "v1", created="2026-01-01T00:00:00Z")
    try:
        with ri.Registry(any_registry.url) as reg:
            inv = ri.crawl(reg, re.compile(f"^{prefix}/a"), progress=False)
            explorer = ri.explore(inv, registry=reg)
            assert explorer.refresh_button.layout.display is None
            explorer.select(f"{prefix}/app", "v1")
            pusher.image(f"{prefix}/app", "v10", created="2026-02-01T00:00:00Z")
            pusher.image(f"{prefix}/app", "v2", created="2026-03-01T00:00:00Z")
            pusher.image(f"{prefix}/other", "v1")  # outside the scope
            assert explorer.browse.tag_choices == ["v1"]
            explorer.refresh_button.click()
    finally:
        pusher.close()
    assert explorer.browse.tag_choices == ["v1", "v2", "v10"]
    assert explorer.browse.tag == "v1"  # the picks stay
    assert set(explorer.browse._repository_frame["repository"]) == {f"{prefix}/app"}
    assert explorer.inv.scope == inv.scope
    assert (f"2 tags new or moved ({prefix}/app:v2, {prefix}/app:v10)"
            in explorer.status.value)
    assert "3 tags" in explorer.title.value


def test_explorer_refresh_is_a_callable_and_says_when_it_fails():
    from reginsight.inventory._selection import filter_of_scope

    assert ri.explore(SAMPLE).refresh_button.layout.display == "none"  # nothing to read
    assert not ri.explore(SAMPLE).reread()
    answers = [VERSIONED]
    explorer = ri.explore(SAMPLE, refresh=lambda: answers.pop())
    explorer.select("web/frontend", "latest")
    assert explorer.reread() and explorer.inv is VERSIONED
    assert explorer.browse.tag == "latest" and "v10" in explorer.browse.tag_choices
    assert "5 tags new or moved (web/frontend:v1, web/frontend:v2" in explorer.status.value
    assert "5 tags gone" in explorer.status.value

    def unreachable():
        raise ri.RegistryUnreachable("cannot reach the registry at http://127.0.0.1:9")

    explorer.refresh = unreachable
    explorer.refresh_button.click()
    assert "could not read it again: cannot reach the registry" in explorer.status.value
    assert explorer.inv is VERSIONED and not explorer.refresh_button.disabled
    # a crawl's recorded scope, as a crawl asked for it
    assert filter_of_scope(None) is None
    assert filter_of_scope("team/app") == ["team/app"]
    assert filter_of_scope("a/b, team/*") == ["a/b", "team/*"]
    assert filter_of_scope("^team/(a|b)$") == [re.compile("^team/(a|b)$")]


@pytest.fixture(params=["2.8", "3.0"])
def storage_registry(request, tmp_path):
    """A registry of its own, its storage holding untagged manifests (a moved tag),
    a blob no manifest uses and an abandoned upload: tests/storage_scenario.py."""
    from tests import storage_scenario as sc

    server = sc.server(request.param, tmp_path / "registry").start()
    pusher = Pusher(server.url)
    try:
        scenario = sc.build(pusher, "d")
    finally:
        pusher.close()
    yield server, scenario, sc.collector(request.param)
    server.stop()


def test_explorer_disk_tab_plans_and_applies_the_safe_untagged_cleanup(storage_registry):
    from tests import storage_scenario as sc

    server, scenario, collector = storage_registry
    scan = ri.scan_storage(server.storage, progress=False)
    usage = ri.disk_usage(scan).set_index("category")["bytes"]
    untagged = set(scan.manifests.loc[~scan.manifests["tagged"], "digest"])
    assert len(untagged) == 2
    # without a registry: planned, and it says what deleting needs
    alone = ri.explore(scan, collector=collector)
    assert alone.tabs.titles == ("Explore", "Clean up", "Disk")
    assert alone.untagged.delete.disabled
    assert "no registry given" in alone.untagged.children[6].value
    with ri.Registry(server.url) as reg:
        explorer = ri.explore(scan, registry=reg, collector=collector)
        panel = explorer.untagged
        assert panel.plan.equals(ri.plan_cleanup(scan, untagged=True, collector=collector))
        assert set(_shown(panel.table)["digest"]) == untagged  # full digests
        assert "tag" not in _shown(panel.table)  # none has a tag
        assert (f"<b>2 untagged manifests</b> in 1 repository: deleting them, then a plain "
                f"garbage-collect frees <b>{ri.format_bytes(usage['untagged'])}</b>"
                in panel.summary.value)
        assert (f"reginsight cleanup {server.url} --untagged --storage {server.storage}"
                in panel.command.value)
        assert panel.delete.description == "Delete untagged manifests"
        panel.delete.click()  # asks first
        assert "Delete 2 untagged manifests from" in panel.result.value
        assert panel.confirm.layout.display is None
        assert set(ri.scan_storage(server.storage, progress=False).manifests.loc[
            lambda m: ~m["tagged"], "digest"]) == untagged  # nothing deleted yet
        panel.confirm.click()
    assert "Deleted 2 untagged manifests. " in panel.result.value
    # what to run next: that registry's plain garbage-collect, the other's not
    config = {"distribution-2": "/etc/docker/registry/config.yml",
              "distribution-3": "/etc/distribution/config.yml"}
    ours, other = config.pop(collector), config.popitem()[1]
    assert f"docker exec REGISTRY registry garbage-collect {ours}" in panel.result.value
    assert other not in panel.result.value
    assert f"<b>{ri.format_bytes(usage['untagged'])}</b> are freed" in panel.result.value
    # the storage read again: nothing untagged left, and the disk page says so
    assert explorer.inv.manifests["tagged"].all()
    assert "no untagged manifests: nothing to clean up" in panel.title.value
    assert panel.delete.disabled and "storage read again" not in explorer.status.value
    assert "read again" in explorer.status.value
    after = ri.disk_usage(explorer.inv).set_index("category")["bytes"]
    assert after["untagged"] == 0
    # and the plain garbage-collect frees what the tab said, breaking nothing tagged
    before = sc.blob_bytes(server.storage)
    server.stop()
    server.garbage_collect()
    after_gc = sc.blob_bytes(server.storage)
    assert sum(before.values()) - sum(after_gc.values()) == (
        usage["untagged"] + usage["unreferenced"])
    assert scenario.tagged <= set(after_gc)


def test_a_plan_the_explorer_saves_is_applied_by_the_command_line(registry_server, prefix,
                                                                  tmp_path, capsys):
    """Save plan, then the command it prints (with --yes): the same tags go, and the
    explorer's Refresh shows what is left."""
    from reginsight._cli import main

    pusher = Pusher(registry_server.url)
    for tag, day in [("v1", "2024-01-01"), ("v10", "2024-02-01"), ("v2", "2026-11-20")]:
        pusher.image(f"{prefix}/app", tag, created=f"{day}T00:00:00Z")
    pusher.close()
    with ri.Registry(registry_server.url) as reg:
        inv = ri.crawl(reg, f"{prefix}/*", progress=False)
        explorer = ri.explore(inv, registry=reg)
        explorer.keep_last.value, explorer.older_than.value = 1, "30d"
        explorer.protect.value = ""
        explorer.cleanup.path.value = str(tmp_path / "plan.csv")
        explorer.cleanup.save.click()
        command = re.search(r"<code>(reginsight cleanup [^<]+--plan [^<]+)</code>",
                            explorer.cleanup.saved.value).group(1)
        assert command == f"reginsight cleanup {registry_server.url} --plan {tmp_path}/plan.csv"
        code = main([*command.split()[1:], "--yes", "--no-progress"])
        out = capsys.readouterr().out
        assert code == 0, out
        assert reg.tags(f"{prefix}/app") == ["v2"]
        for tag in ("v1", "v10"):
            digest = inv.tags.set_index("tag").loc[tag, "digest"]
            assert f"deleted {prefix}/app@{digest}" in " ".join(out.split())
        assert explorer.reread() and explorer.browse.inv.tags["tag"].tolist() == ["v2"]
    assert "2 tags gone" in explorer.status.value
