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
    assert page.title() == "reginsight report: http://localhost:5000"
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


@pytest.fixture
def voila(tmp_path):
    notebook = {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {},
                           "outputs": [], "source": [
                               "import reginsight as ri\n",
                               f"ri.explore(ri.Inventory.load({str(ROOT / 'data/sample')!r}))"]}],
                "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                            "language": "python"}},
                "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "explore.ipynb").write_text(json.dumps(notebook))
    port = _free_port()
    env = {**os.environ, "JUPYTER_PLATFORM_DIRS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "voila", "explore.ipynb", "--no-browser", f"--port={port}",
         "--Voila.ip=127.0.0.1", "--show_tracebacks=True"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
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


def _select(page, label: str, first_word: str | None = None) -> str:
    """Pick, in the ipywidgets Select described ``label``, the option whose text starts
    with ``first_word`` (the first option when None); return that option's text."""
    widget = page.locator(".widget-select", has=page.locator("label", has_text=label))
    texts = widget.locator("option").all_inner_texts()
    index = 0 if first_word is None else next(
        i for i, text in enumerate(texts) if text.split()[0] == first_word)
    widget.locator("select").select_option(index=index)
    return texts[index]


def test_explorer_in_voila_repository_tag_layer(browser, voila):
    page, problems = _page(browser)
    failed: list[str] = []
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.goto(voila, timeout=90_000)
    page.wait_for_selector(".widget-select select", timeout=90_000)
    _select(page, "repository", "platform/base")
    page.wait_for_selector("text=2026.10-amd64", timeout=20_000)
    _select(page, "tag", "latest")
    page.wait_for_selector("text=platforms:", timeout=20_000)
    _select(page, "layer")
    page.wait_for_selector("text=is used by", timeout=20_000)
    assert "data/jobs" in page.inner_text("body")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer.png"), full_page=True)
    # an image's signature, SBOM and attestation are shown under it
    _select(page, "repository", "web/api")
    page.wait_for_function("() => [...document.querySelectorAll('option')]"
                           ".some(o => o.textContent.startsWith('v4'))", timeout=20_000)
    label = _select(page, "tag", "v4")
    assert label.replace("\xa0", " ").endswith("[attestation, sbom, signed]")
    # v4's own pane (platform/base:latest's had a signature too): its SBOM's type
    page.wait_for_selector("text=application/spdx+json", timeout=20_000)
    pane = page.inner_text("body")
    assert "referrers (signatures, SBOMs, attestations about it)" in pane
    assert "application/vnd.dev.cosign.simplesigning.v1+json" in pane
    assert "application/vnd.dsse.envelope.v1+json" in pane
    page.screenshot(path=str(ARTIFACTS / "explorer-referrers.png"), full_page=True)
    # Voila's page asks a CDN for MathJax; there is no internet here, and nothing of
    # the explorer's own comes from anywhere but the local Voila server
    offsite = [url for url in failed if not url.startswith(voila)]
    assert all(url.startswith("https://cdn") for url in offsite), offsite
    own = [p for p in problems if "ERR_NAME_NOT_RESOLVED" not in p]
    assert own == [], own
    assert len(problems) - len(own) == len(offsite)
    page.close()
