"""The HTML report as a reader meets it: in Debian's Chromium (driven by Playwright;
the test command installs it, nothing is downloaded), 1400 pixels wide, at 100% zoom.
Each test leaves a full-page screenshot in test-artifacts/ to look at."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import reginsight as ri
from reginsight.ops._plan import PLAN_COLUMNS
from tests.test_browser import FLAGS

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
WIDTH = 1400
#: the smallest text a reader should have to read, in CSS pixels
SMALLEST_PX = 11

#: each plot's width on the page, its natural width, and the smallest text it shows
#: once scaled to that width (its SVG read back from the page)
PLOTS = """() => Promise.all([...document.querySelectorAll('.plots img')].map(async img => {
    const svg = new DOMParser().parseFromString(atob(img.src.split(',')[1]),
                                                'image/svg+xml').documentElement;
    const box = svg.getAttribute('viewBox').split(' ').map(Number);
    const shown = img.getBoundingClientRect().width;
    const sizes = [...svg.querySelectorAll('text')].map(
        t => parseFloat(t.getAttribute('style').match(/font-size: ([\\d.]+)px/)[1]));
    return {alt: img.alt, shown, natural: img.naturalWidth, wide: img.parentElement
            .classList.contains('wide'), smallest: Math.min(...sizes) * shown / box[2]};
}))"""


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        yield browser
        browser.close()


def _report(tmp_path: Path, *target: str) -> Path:
    out = tmp_path / "report.html"
    done = subprocess.run([sys.executable, "-m", "reginsight", "report", *target, "-o",
                           str(out), "--no-progress"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    return out


def _open(chromium, path: Path):
    page = chromium.new_page(viewport={"width": WIDTH, "height": 1000}, accept_downloads=True)
    problems: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, problems, requests


def _readable_plots(page) -> list[dict]:
    """Every plot fills its place on the page, at (about) its drawn size, with no text
    under SMALLEST_PX."""
    content = page.evaluate("() => { const s = getComputedStyle(document.body); "
                            "return document.body.clientWidth - parseFloat(s.paddingLeft)"
                            " - parseFloat(s.paddingRight); }")
    assert content >= 0.85 * WIDTH  # the page uses the window, not a narrow column
    plots = page.evaluate(PLOTS)
    assert len(plots) == 5
    for plot in plots:
        share = plot["shown"] / content
        assert share >= (0.99 if plot["wide"] else 0.48), plot  # its whole place
        assert plot["shown"] >= 0.97 * plot["natural"], plot  # not shrunk to fit
        assert plot["smallest"] >= SMALLEST_PX, plot
    assert sum(not p["wide"] for p in plots) == 2  # one row of two
    return plots


def test_the_sample_report_reads_at_100_percent(chromium, tmp_path):
    page, problems, requests = _open(chromium, _report(tmp_path))
    assert page.title() == "reginsight report: the bundled sample"
    assert "sample" in page.inner_text("h1")
    _readable_plots(page)
    # the plan is on the first screen, after the headline cards
    plan = page.locator("h2", has_text="Cleanup plan")
    assert plan.bounding_box()["y"] < 1000
    assert page.locator(".cards").bounding_box()["y"] < plan.bounding_box()["y"]
    # a digest: short to the eye, whole on hover, whole when clicked and copied
    digest = page.locator("code.digest").first
    full = digest.get_attribute("title")
    assert len(full) == 71 and digest.bounding_box()["width"] < 200
    digest.click()
    assert page.evaluate("() => window.getSelection().toString()") == full
    # a command: one click selects it whole
    command = page.locator("pre code").first
    command.click()
    assert page.evaluate("() => window.getSelection().toString()") == command.inner_text()
    assert command.inner_text().startswith("reginsight cleanup URL --keep-last 3")
    # the plan downloads as the CSV cleanup --plan reads
    with page.expect_download() as download:
        page.get_by_text("Download this plan").click()
    assert download.value.suggested_filename == "reginsight-plan.csv"
    saved = pd.read_csv(io.StringIO(Path(download.value.path()).read_text()), dtype=str,
                        keep_default_na=False)
    sample = ri.sample()
    plan = ri.plan_cleanup(sample, keep_last=3, older_than="180d",
                           protect=r"^(latest|stable)$", now=sample.taken_at)
    assert list(saved.columns) == PLAN_COLUMNS
    assert list(saved["digest"]) == list(plan["digest"])
    assert list(saved["action"]) == list(plan["action"])
    assert problems == []
    assert all(url.startswith(("file:", "data:")) for url in requests)  # self-contained
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-sample.png"), full_page=True)
    page.close()


def test_a_storage_report_reads_at_100_percent(chromium, scenario_storage, tmp_path):
    page, problems, _ = _open(chromium, _report(tmp_path, str(scenario_storage),
                                                "--collector", "2"))
    _readable_plots(page)
    text = page.inner_text("body")
    assert (f"reginsight cleanup URL --untagged --storage {scenario_storage} --collector 2"
            in text)
    assert "cannot see" not in text  # the storage shows it all
    headings = page.locator("h2").all_inner_texts()
    assert headings.index("Cleanup plan") < headings.index("Where the disk goes")
    assert problems == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-storage.png"), full_page=True)
    page.close()


def test_a_narrow_window_scales_the_plots_down_not_out(chromium, tmp_path):
    page = chromium.new_page(viewport={"width": 700, "height": 900})
    page.goto(_report(tmp_path).as_uri())
    page.wait_for_load_state("load")
    widths = page.evaluate("() => [...document.querySelectorAll('.plots img')].map("
                           "i => i.getBoundingClientRect().right)")
    assert widths and max(widths) <= 700
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 700
    page.close()


def test_a_report_with_pull_records_reads_at_100_percent(chromium, tmp_path):
    """What is used: after the plan, which stays on the first screen; the pulls plot as
    wide as the page and readable; a window the records do not cover says unknown."""
    from reginsight.usage._frame import Span, from_frame

    sample = ri.sample()
    now, day = sample.taken_at, pd.Timedelta(days=1)
    tags = sample.tags.astype(str)
    rows = [{"time": now - (n % 50) * day - pd.Timedelta(hours=n % 24),
             "repository": tag.repository, "reference": tag.tag,
             "method": "HEAD" if n % 3 else "GET", "kind": "manifest",
             "client": f"10.0.0.{n % 7}"}
            for n, tag in enumerate(tags.itertuples()) for _ in range(n % 4)]
    frame = pd.DataFrame(rows)
    frame.attrs["coverage"] = [Span("registry.log", now - 120 * day, now)]
    out = ri.export_report(sample, tmp_path / "report.html", pulls=from_frame(frame),
                           pulls_source="/var/log/registry")
    page, problems, requests = _open(chromium, out)
    plan = page.locator("h2", has_text="Cleanup plan")
    assert plan.bounding_box()["y"] < 1000  # still on the first screen
    used = page.locator("h2", has_text="What is used")
    assert used.bounding_box()["y"] > plan.bounding_box()["y"]
    text = page.inner_text("body")
    assert "unknown: the records cover only since" in text  # the 180 days
    assert "--unpulled-for 90d --pulls /var/log/registry" in text
    content = page.evaluate("() => { const s = getComputedStyle(document.body); "
                            "return document.body.clientWidth - parseFloat(s.paddingLeft)"
                            " - parseFloat(s.paddingRight); }")
    plots = {p["alt"]: p for p in page.evaluate(PLOTS)}
    pulls = plots["manifest pulls per day"]
    assert pulls["wide"] and pulls["shown"] >= 0.99 * content
    assert pulls["shown"] >= 0.97 * pulls["natural"]
    assert pulls["smallest"] >= SMALLEST_PX, pulls
    assert len(plots) == 6  # the five of every report, and this one
    assert problems == []
    assert all(url.startswith(("file:", "data:")) for url in requests)
    ARTIFACTS.mkdir(exist_ok=True)
    used.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "report-pulls.png"), full_page=True)
    page.close()
