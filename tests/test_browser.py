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
         "--Voila.ip=127.0.0.1", "--show_tracebacks=True"],
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
        f"ri.explore(ri.Inventory.load({str(ROOT / 'data/sample')!r}))"])


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


def _open(page, url: str) -> None:
    page.goto(url, timeout=90_000)
    page.wait_for_selector("b.ri-title:text-is('repositories')", timeout=90_000)
    page.wait_for_selector("table.dataTable tbody td", timeout=20_000)


def test_explorer_in_voila_follows_the_repository_picked(browser, voila):
    page, problems = _page(browser)
    failed: list[str] = []
    page.on("requestfailed", lambda r: failed.append(r.url))
    _open(page, voila)
    _click_row(page, "repositories", "platform/base")
    _title(page, "tags of platform/base")
    assert "2026.10-amd64" in _cells(page, "tags")
    _click_row(page, "tags", "latest")
    page.wait_for_selector("text=platforms:", timeout=20_000)
    _title(page, "layers of platform/base:latest")
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
    _title(page, "layers: pick a tag")
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


def test_explorer_in_voila_deletes_then_lists_what_is_left(browser, registry_server, prefix,
                                                           tmp_path):
    from tests.images import Pusher

    pusher = Pusher(registry_server.url)
    for n, day in enumerate(["2024-01-01", "2024-02-01", "2026-11-01"]):
        pusher.image(f"{prefix}/w", f"v{n}", created=f"{day}T00:00:00Z")
    pusher.close()
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
        assert sorted(_cells(page, "tags")) == ["v0", "v1", "v2"]
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
        page.wait_for_selector("text=2 of 3 tags to delete", timeout=20_000)
        page.get_by_role("button", name="Delete planned tags").click()
        page.get_by_role("button", name="Yes, delete them").click()
        page.wait_for_selector("text=Deleted 2 tags", timeout=30_000)
        assert "freed when the registry's garbage collector runs" in page.inner_text("body")
        page.wait_for_selector("text=0 of 1 tags to delete", timeout=20_000)
        page.screenshot(path=str(ARTIFACTS / "explorer-deleted.png"), full_page=True)
        with __import__("reginsight").Registry(registry_server.url) as reg:
            assert reg.tags(f"{prefix}/w") == ["v2"]
        page.get_by_role("tab", name="Explore").click()
        _title(page, f"tags of {prefix}/w")  # still picked, now with what is left
        page.wait_for_function("() => document.querySelectorAll('table.dataTable')[1]"
                               ".querySelectorAll('tbody tr').length === 1")
        assert _cells(page, "tags") == ["v2"]
        assert "1 tags" in page.inner_text("body")
        page.screenshot(path=str(ARTIFACTS / "explorer-after-delete.png"), full_page=True)
        assert [p for p in problems if "ERR_NAME_NOT_RESOLVED" not in p] == []
        page.close()
    finally:
        server.close()
