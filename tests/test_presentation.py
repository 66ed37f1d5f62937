"""Plots (their data, not pixels), the HTML report, and the explorer driven headless."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
import pytest

import reginsight as ri
from tests.images import Pusher
from tests.test_analysis import L1, inventory

SAMPLE = ri.Inventory.load(Path(__file__).resolve().parent.parent / "data" / "sample")


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
    assert sorted(t.get_text() for t in ax.texts) == ["100", "100", "—", "—"]


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
    frame = explorer.browse._repository_frame
    columns = list(frame.columns)
    defs = table._dt_args["columnDefs"]
    stored = next(d for d in defs if d.get("targets") == columns.index("stored"))
    assert columns[stored["orderData"]] == "stored bytes"
    hidden = next(d for d in defs if d.get("visible") is False)
    assert [columns[i] for i in hidden["targets"]] == ["stored bytes", "exclusive bytes"]
    assert table._dt_args["select"] == {"style": "single"}
    assert table._dt_args["layout"]["topEnd"] == "search"  # searchable however short


def test_explorer_shows_an_image_s_referrers_under_it():
    explorer = ri.explore(SAMPLE)
    explorer.select("web/api")
    tags = explorer.browse._tag_frame.set_index("value")
    assert tags.loc["v4", "referrers"] == "attestation, sbom, signed"
    assert tags.loc["v3", "referrers"] == ""  # nothing is about v3
    v4 = SAMPLE.tags.set_index(["repository", "tag"]).loc[("web/api", "v4"), "digest"]
    signature_tag = v4.replace(":", "-") + ".sig"
    assert tags.loc[signature_tag, "referrers"] == f"signature of {v4[7:19]}"
    explorer.select("web/api", "v4")
    pane = explorer.browse.manifest.value
    assert "referrers" in pane
    for role in ("signature", "attestation", "sbom"):
        assert f"<td style='padding:2px 8px'>{role}</td>" in pane
    explorer.select("web/api", signature_tag)
    assert f"a signature about <code>{v4}</code>" in explorer.browse.manifest.value
    # buildx attestations of the platform images count for the index
    explorer.select("web/worker")
    tags = explorer.browse._tag_frame.set_index("value")
    assert tags.loc["1.0", "referrers"] == "attestation"


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
    assert ri.format_bytes(plan.attrs["reclaimable_bytes"]) in explorer.plan_view.value
    assert explorer.delete.disabled
    explorer.keep_last.value = 1
    fewer = ri.plan_cleanup(SAMPLE, keep_last=1, older_than="180d",
                            protect=r"^(latest|stable)$", now=SAMPLE.taken_at)
    assert f"<b>{(fewer['action'] == 'delete').sum()}</b>" in explorer.plan_view.value
    explorer.older_than.value = "whenever"
    assert "older_than" in explorer.plan_view.value and explorer.delete.disabled


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
        explorer.delete.click()
        assert "Delete 2 tags" in explorer.result.value
        assert reg.tags(f"{prefix}/w") == ["v0", "v1", "v2"]  # asking deleted nothing
        explorer.confirm.click()
        assert reg.tags(f"{prefix}/w") == ["v2"]
        assert "Deleted 2 tags" in explorer.result.value
        assert f"<b>{ri.format_bytes(freed)}</b> are freed when the registry's garbage " \
               "collector runs" in explorer.result.value
        # the explorer shows the registry as it is now, as a fresh crawl sees it
        after = ri.crawl(reg, f"{prefix}/*", progress=False)
    assert list(explorer.inv.tags["tag"]) == ["v2"]
    for name in ("tags", "manifests", "layers", "children"):
        pd.testing.assert_frame_equal(getattr(explorer.inv, name), getattr(after, name))
    assert explorer.browse.tag_choices == ["v2"] and explorer.browse.tag is None
    assert "v0" not in explorer.browse.manifest.value
    assert "<b>0</b> of 1 tags to delete" in explorer.plan_view.value
    assert explorer.delete.disabled and "1 tags" in explorer.title.value
