"""The report and the explorer as a person meets them: in a real browser (Debian's
Chromium driven by Playwright; the test command installs it, nothing is downloaded)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# as the probe of this machine kind does: no sandbox (root), no background traffic
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "chromium missing: run scripts/test.sh, which installs it"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


def _page(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 1600})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return page, problems


def test_report_renders_without_console_errors(browser, tmp_path):
    result = subprocess.run([sys.executable, "-m", "reginsight", "report", "-o",
                             str(tmp_path / "report.html")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    page, problems = _page(browser)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto((tmp_path / "report.html").as_uri())
    page.wait_for_load_state("load")
    assert page.title() == "reginsight report: the bundled sample"
    widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")
    assert len(widths) == 5 and all(w > 0 for w in widths)  # every plot decoded
    assert "data/etl" in page.inner_text("table")
    assert problems == []
    assert all(url.startswith(("file:", "data:")) for url in requests)  # self-contained
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    page.close()


#: lab extensions installed beside Voila that it cannot load: jupytext's fails in Voila
#: with a console error of its own, which would hide the explorer's
UNLOADABLE = ["jupyterlab-jupytext"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(directory: Path, source: list[str]):
    """Voila serving a one-cell notebook of ``source``; yields its URL."""
    notebook = {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {},
                           "outputs": [], "source": source}],
                "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                            "language": "python"}},
                "nbformat": 4, "nbformat_minor": 5}
    (directory / "explore.ipynb").write_text(json.dumps(notebook))
    port = _free_port()
    env = {**os.environ, "JUPYTER_PLATFORM_DIRS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "voila", "explore.ipynb", "--no-browser", f"--port={port}",
         "--Voila.ip=127.0.0.1", "--show_tracebacks=True",
         f"--VoilaConfiguration.extension_denylist={UNLOADABLE!r}"],
        cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            assert process.poll() is None, process.stdout.read().decode()
            time.sleep(0.2)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def voila(tmp_path):
    yield from _serve(tmp_path, [
        "import reginsight as ri\n",
        "ri.explore(ri.sample())"])


#: the explorer's three tables, in page order
TABLES = {"repositories": 0, "tags": 1, "layers": 2}


def _table(page, which: str):
    return page.locator("table.dataTable").nth(TABLES[which])


def _title(page, text: str) -> None:
    """Wait for the title above a table to say ``text``."""
    page.wait_for_selector(f"b.ri-title:text-is({json.dumps(text)})", timeout=20_000)


def _click_row(page, which: str, first_cell: str) -> None:
    _table(page, which).locator("tbody tr", has=page.locator(
        "td:first-child", has_text=first_cell)).first.click()


def _cells(page, which: str, column: int = 0) -> list[str]:
    return _table(page, which).locator(
        f"tbody tr td:nth-child({column + 1})").all_inner_texts()


def _hint(page, text: str) -> None:
    """Wait for an empty pane to say ``text`` (what to pick to fill it)."""
    page.wait_for_selector(f"i.ri-hint:text-is({json.dumps(text)})", timeout=20_000)


def _open(page, url: str) -> None:
    page.goto(url, timeout=90_000)
    page.wait_for_selector("b.ri-title:text-is('repositories')", timeout=90_000)
    page.wait_for_selector("table.dataTable tbody td", timeout=20_000)


def _left_aligned(page, cell) -> bool:
    """The cell's text starts at its left padding, as text does (a number would end
    at the right)."""
    return cell.evaluate("""td => {
        const range = document.createRange();
        range.selectNodeContents(td);
        const text = range.getBoundingClientRect(), box = td.getBoundingClientRect();
        const pad = parseFloat(getComputedStyle(td).paddingLeft);
        return getComputedStyle(td).textAlign !== 'right'
            && Math.abs(text.left - box.left - pad) < 2 && box.right - text.right > 8;
    }""")


def _clipped_buttons(page) -> list[str]:
    """The labels of the buttons shown whose text does not fit them ("Delete planned…")."""
    return page.eval_on_selector_all(
        "button.jupyter-button", """buttons => buttons
            .filter(b => b.offsetParent !== null && b.scrollWidth > b.clientWidth)
            .map(b => b.textContent.trim())""")


def _visible_buttons(page) -> list[str]:
    return page.eval_on_selector_all(
        "button.jupyter-button", "bs => bs.filter(b => b.offsetParent !== null)"
        ".map(b => b.textContent.trim())")


def test_explorer_in_voila_follows_the_repository_picked(browser, voila):
    page, problems = _page(browser)
    failed: list[str] = []
    page.on("requestfailed", lambda r: failed.append(r.url))
    _open(page, voila)
    # nothing picked yet: the empty panes say what to pick, not "No data available"
    _hint(page, "pick a repository to see its tags")
    assert "No data available" not in page.inner_text("body")
    assert _table(page, "tags").is_hidden() and _table(page, "layers").is_hidden()
    # a tag that looks like a number ("1.0", web/worker's only tag) is text: left-aligned
    _click_row(page, "repositories", "web/worker")
    _title(page, "tags of web/worker")
    _hint(page, "pick a tag to see its manifest and layers")
    assert _cells(page, "tags") == ["1.0"]
    cell = _table(page, "tags").locator("tbody td").first
    assert _left_aligned(page, cell)
    assert "dt-type-numeric" not in (cell.get_attribute("class") or "")
    size = _table(page, "tags").locator("tbody td").nth(5)  # bytes stay numbers
    assert size.evaluate("td => getComputedStyle(td).textAlign") == "right"
    _click_row(page, "repositories", "platform/base")
    _title(page, "tags of platform/base")
    assert "2026.10-amd64" in _cells(page, "tags")
    _click_row(page, "tags", "latest")
    page.wait_for_selector("text=platforms:", timeout=20_000)
    _title(page, "layers of platform/base:latest")
    _hint(page, "pick a layer to see which repositories and tags share it")
    # an index's platforms apart: each platform lists its own positions
    platforms = _cells(page, "layers", 0)
    assert sorted(set(platforms)) == ["linux/amd64", "linux/arm64"]
    _click_row(page, "layers", "linux/amd64")
    page.wait_for_selector("text=is used by", timeout=20_000)
    assert "data/jobs" in page.inner_text("body")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer.png"), full_page=True)

    # the reported bug: search, switch to web/api, and the panes keep platform/base
    page.locator(".dt-search input").first.fill("web")
    page.wait_for_function("() => document.querySelectorAll("
                           "'table.dataTable')[0].querySelectorAll('tbody tr').length === 4")
    _click_row(page, "repositories", "web/api")
    _title(page, "tags of web/api")
    _hint(page, "pick a tag to see its manifest and layers")
    body = page.inner_text("body")
    assert "platform/base:latest" not in body and "is used by" not in body
    _click_row(page, "tags", "v4")
    page.wait_for_selector("text=web/api:v4", timeout=20_000)
    pane = page.inner_text("body")
    assert "platform/base:latest" not in pane
    assert "referrers (signatures, SBOMs, attestations about it)" in pane
    assert "application/vnd.dev.cosign.simplesigning.v1+json" in pane
    assert "application/spdx+json" in pane
    tags = dict(zip(_cells(page, "tags", 0), _cells(page, "tags", 4), strict=True))
    assert tags["v4"] == "attestation, sbom, signed"
    # sorted by bytes, not by text: click "size" twice (descending)
    # (itables sorts from the header's arrows; the header's text stays selectable)
    header = _table(page, "tags").locator("th", has_text="size").locator(".dt-column-order")
    header.click()
    header.click()
    page.wait_for_timeout(300)
    sizes = _cells(page, "tags", 5)
    assert sizes[0].endswith("MiB") and sizes[-1].endswith(" B"), sizes
    page.screenshot(path=str(ARTIFACTS / "explorer-switched.png"), full_page=True)
    # Voila's page asks a CDN for MathJax; there is no internet here, and nothing of
    # the explorer's own comes from anywhere but the local Voila server
    offsite = [url for url in failed if not url.startswith(voila)]
    assert all(url.startswith("https://cdn") for url in offsite), offsite
    own = [p for p in problems if "ERR_NAME_NOT_RESOLVED" not in p]
    assert own == [], own
    page.close()


def _plan_table(page):
    """The Clean up tab's table (the fourth DataTable: after the Explore tab's three)."""
    return page.locator("table.dataTable").nth(3)


def _plan_tags(page) -> list[str]:
    return _plan_table(page).locator("tbody tr td:nth-child(2)").all_inner_texts()


def _plan_order(page, tags: list[str]) -> None:
    """Wait for the plan's rows to list ``tags`` in this order."""
    page.wait_for_function(
        "tags => Array.from(document.querySelectorAll('table.dataTable')[3]"
        ".querySelectorAll('tbody tr td:nth-child(2)')).map(td => td.textContent)"
        ".join() === tags.join()", arg=tags, timeout=20_000)


def _rows(page, table: int, count: int) -> None:
    page.wait_for_function(f"() => document.querySelectorAll('table.dataTable')[{table}]"
                           f".querySelectorAll('tbody tr').length === {count}",
                           timeout=30_000)


def test_explorer_in_voila_sorts_deletes_and_refreshes(browser, registry_server, prefix,
                                                       tmp_path):
    """Against a real registry: the plan sorted by a click on its header (v2 before
    v10), the full button labels, the delete asked then applied, and a tag pushed
    after the explorer opened shown by Refresh."""
    import reginsight as ri
    from tests.images import Pusher

    pusher = Pusher(registry_server.url)
    for tag, day in [("v1", "2024-01-01"), ("v10", "2024-02-01"), ("v2", "2024-03-01"),
                     ("v9", "2026-11-01")]:
        pusher.image(f"{prefix}/w", tag, created=f"{day}T00:00:00Z")
    source = ["import pandas as pd\n", "import reginsight as ri\n",
              f"reg = ri.Registry({registry_server.url!r})\n",
              f"inv = ri.crawl(reg, {prefix + '/*'!r}, progress=False)\n",
              "inv.taken_at = pd.Timestamp('2026-11-27', tz='UTC')\n",
              "ri.explore(inv, registry=reg)"]
    server = _serve(tmp_path, source)
    url = next(server)
    try:
        page, problems = _page(browser)
        _open(page, url)
        _click_row(page, "repositories", f"{prefix}/w")
        _title(page, f"tags of {prefix}/w")
        assert _cells(page, "tags") == ["v1", "v2", "v9", "v10"]  # versions, not text
        page.get_by_role("tab", name="Clean up").click()
        keep = page.locator(".widget-inline-hbox", has=page.locator("label",
                                                                     has_text="keep last"))
        keep.locator("input").fill("1")
        keep.locator("input").press("Enter")
        older = page.locator(".widget-inline-hbox", has=page.locator("label",
                                                                      has_text="older than"))
        older.locator("input").fill("30d")
        protect = page.locator(".widget-inline-hbox", has=page.locator("label",
                                                                        has_text="protect"))
        protect.locator("input").fill("")
        page.wait_for_selector("text=3 of 4 tags to delete", timeout=20_000)
        # the plan of the last input (the command line says so), not one before it
        page.wait_for_function("() => document.body.innerText.includes(\"--protect ''\")",
                               timeout=20_000)
        _rows(page, 3, 3)
        assert _plan_tags(page) == ["v1", "v2", "v10"]
        # sorted by a click on the header's arrows, in version order both ways
        header = _plan_table(page).locator("th", has_text="tag").locator(".dt-column-order")
        header.click()  # ascending: as it came
        header.click()  # descending
        _plan_order(page, ["v10", "v2", "v1"])  # as text: v2, v10, v1
        header.click()
        _plan_order(page, ["v1", "v2", "v10"])
        digests = _plan_table(page).locator("tbody tr td:nth-child(3)").all_inner_texts()
        assert all(len(d) == 71 for d in digests), digests  # sha256: and 64 hex, whole
        # every button shows its whole label
        assert {"Delete planned tags", "Save plan", "Refresh"} <= set(_visible_buttons(page))
        assert _clipped_buttons(page) == []
        page.screenshot(path=str(ARTIFACTS / "explorer-plan.png"), full_page=True)
        page.get_by_role("button", name="Delete planned tags").click()
        page.wait_for_selector("text=Delete 3 tags from", timeout=20_000)
        assert _clipped_buttons(page) == []  # "Yes, delete them", "Cancel" too
        assert {"Yes, delete them", "Cancel"} <= set(_visible_buttons(page))
        with ri.Registry(registry_server.url) as reg:  # asking deleted nothing
            assert sorted(reg.tags(f"{prefix}/w")) == ["v1", "v10", "v2", "v9"]
        page.get_by_role("button", name="Yes, delete them").click()
        page.wait_for_selector("text=Deleted 3 tags", timeout=30_000)
        assert "freed when the registry's garbage collector runs" in page.inner_text("body")
        page.wait_for_selector("text=0 of 1 tag to delete", timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "explorer-deleted.png"), full_page=True)
        with ri.Registry(registry_server.url) as reg:
            assert reg.tags(f"{prefix}/w") == ["v9"]
        page.get_by_role("tab", name="Explore").click()
        _title(page, f"tags of {prefix}/w")  # still picked, now with what is left
        _rows(page, 1, 1)
        assert _cells(page, "tags") == ["v9"]
        assert "1 tag" in page.inner_text("body")
        # pushed after the explorer opened: Refresh reads the registry again
        pusher.image(f"{prefix}/w", "v11", created="2026-11-26T00:00:00Z")
        page.get_by_role("button", name="Refresh").click()
        page.wait_for_selector(f"text=1 tag new or moved ({prefix}/w:v11)", timeout=30_000)
        _rows(page, 1, 2)
        assert _cells(page, "tags") == ["v9", "v11"]
        page.screenshot(path=str(ARTIFACTS / "explorer-refreshed.png"), full_page=True)
        assert [p for p in problems if "ERR_NAME_NOT_RESOLVED" not in p] == []
        page.close()
    finally:
        pusher.close()
        server.close()


def test_explorer_in_voila_disk_tab_deletes_the_untagged_manifests(browser, tmp_path):
    """A storage scan's Disk tab against a real registry and its storage: the safe
    untagged cleanup planned, asked, applied, and the storage read again."""
    import reginsight as ri
    from tests import storage_scenario as sc
    from tests.images import Pusher

    registry = sc.server("3.0", tmp_path / "registry").start()
    try:
        pusher = Pusher(registry.url)
        try:
            sc.build(pusher, "d")
        finally:
            pusher.close()
        untagged = ri.scan_storage(registry.storage, progress=False).manifests
        assert (~untagged["tagged"]).sum() == 2
        source = ["import reginsight as ri\n",
                  f"scan = ri.scan_storage({str(registry.storage)!r}, progress=False)\n",
                  f"reg = ri.Registry({registry.url!r})\n",
                  "ri.explore(scan, registry=reg, collector='distribution-3')"]
        (tmp_path / "notebook").mkdir()
        server = _serve(tmp_path / "notebook", source)
        url = next(server)
        try:
            page, problems = _page(browser)
            _open(page, url)
            page.get_by_role("tab", name="Disk").click()
            page.wait_for_selector("text=2 untagged manifests", timeout=20_000)
            body = page.inner_text("body")
            assert "where the disk goes" in body and "The safe untagged cleanup" in body
            assert f"reginsight cleanup {registry.url} --untagged --storage" in body
            assert _clipped_buttons(page) == []
            page.get_by_role("button", name="Delete untagged manifests").click()
            page.wait_for_selector("text=Delete 2 untagged manifests from", timeout=20_000)
            assert _clipped_buttons(page) == []
            left = ri.scan_storage(registry.storage, progress=False).manifests
            assert (~left["tagged"]).sum() == 2  # asking deleted nothing
            page.screenshot(path=str(ARTIFACTS / "explorer-disk.png"), full_page=True)
            page.get_by_role("button", name="Yes, delete them").click()
            page.wait_for_selector("text=Deleted 2 untagged manifests", timeout=30_000)
            page.wait_for_selector("text=no untagged manifests: nothing to clean up",
                                   timeout=30_000)
            page.wait_for_selector("text=: no tag changed", timeout=30_000)  # read again
            body = page.inner_text("body")
            assert "registry garbage-collect /etc/distribution/config.yml" in body
            page.screenshot(path=str(ARTIFACTS / "explorer-disk-cleaned.png"), full_page=True)
            assert [p for p in problems if "ERR_NAME_NOT_RESOLVED" not in p] == []
            page.close()
        finally:
            server.close()
        assert ri.scan_storage(registry.storage, progress=False).manifests["tagged"].all()
    finally:
        registry.stop()


def test_explorer_in_voila_shows_when_each_tag_was_last_pulled(browser, tmp_path):
    """With pull records: the tag table's last_pulled (a time, never, not since a day),
    sorted by time from its header, and the Clean up tab's "not pulled for" rule."""
    source = ["import pandas as pd\n", "import reginsight as ri\n",
              "from reginsight.usage._frame import Span, from_frame\n",
              "inv = ri.sample()\n", "now, day = inv.taken_at, pd.Timedelta(days=1)\n",
              "frame = pd.DataFrame({'time': [now - 2 * day, now - 10 * day],\n",
              "    'repository': ['web/api'] * 2, 'reference': ['v2', 'v3'],\n",
              "    'method': ['GET', 'HEAD'], 'kind': ['manifest'] * 2})\n",
              "frame.attrs['coverage'] = [Span('registry.log', now - 60 * day, now)]\n",
              "ri.explore(inv, pulls=from_frame(frame))"]
    server = _serve(tmp_path, source)
    url = next(server)
    try:
        page, problems = _page(browser)
        _open(page, url)
        assert "Pull records: 2 manifest pulls" in page.inner_text("body")
        _click_row(page, "repositories", "web/api")
        _title(page, "tags of web/api")
        headers = _table(page, "tags").locator("thead th").all_inner_texts()
        column = [h.strip() for h in headers].index("last_pulled")
        pulled = dict(zip(_cells(page, "tags", 0), _cells(page, "tags", column), strict=True))
        assert pulled["v2"] == "2026-11-25 12:00" and pulled["v3"] == "2026-11-17 12:00"
        assert pulled["latest"] == "never"  # created within the records
        assert pulled["v1"] == "not since 2026-09-28"
        cell = _table(page, "tags").locator("tbody tr", has=page.locator(
            "td:first-child", has_text="v2")).locator(f"td:nth-child({column + 1})")
        assert _left_aligned(page, cell)
        # sorted by time from the header, not by the words: newest first when descending
        header = _table(page, "tags").locator("th", has_text="last_pulled").locator(
            ".dt-column-order")
        header.click()
        header.click()
        page.wait_for_timeout(300)
        order = _cells(page, "tags", column)
        assert order[:2] == ["2026-11-25 12:00", "2026-11-17 12:00"], order
        assert order[-1] == "never", order
        page.screenshot(path=str(ARTIFACTS / "explorer-pulls.png"), full_page=True)
        page.get_by_role("tab", name="Clean up").click()
        box = page.locator(".widget-inline-hbox", has=page.locator(
            "label", has_text="not pulled for"))
        assert box.locator("input").input_value() == "90d"
        page.wait_for_selector("text=--unpulled-for 90d --pulls PULLS", timeout=20_000)
        assert _clipped_buttons(page) == []
        page.screenshot(path=str(ARTIFACTS / "explorer-pulls-plan.png"), full_page=True)
        assert [p for p in problems if "ERR_NAME_NOT_RESOLVED" not in p] == []
        page.close()
    finally:
        server.close()
