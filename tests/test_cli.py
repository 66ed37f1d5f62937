"""The command line as a script would use it: real processes, real registry."""

from __future__ import annotations

import subprocess
import sys

import reginsight as ri
from tests.conftest import BASIC_PASSWORD, BASIC_USER
from tests.images import Pusher


def run(*args: str, stdin: str | None = None, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reginsight", *args], capture_output=True,
                          text=True, input=stdin, cwd=cwd, timeout=120)


def test_report_without_target_uses_the_sample(tmp_path):
    result = run("report", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "report.html").read_text()
    assert "http://localhost:5000" in html and "data/etl" in html
    assert "wrote report.html" in result.stderr


def test_crawl_then_report_from_the_saved_inventory(registry_server, prefix, tmp_path):
    Pusher(registry_server.url).image(f"{prefix}/app", "v1")
    result = run("crawl", registry_server.url, "-o", str(tmp_path / "inv"),
                 "--repositories", f"{prefix}/*")
    assert result.returncode == 0, result.stderr
    assert "1/1" in result.stderr  # progress on stderr
    assert len(ri.Inventory.load(tmp_path / "inv").tags) == 1
    report = run("report", str(tmp_path / "inv"), "-o", str(tmp_path / "r.html"))
    assert report.returncode == 0 and f"{prefix}/app" in (tmp_path / "r.html").read_text()
    direct = run("report", registry_server.url, "--repositories", f"{prefix}/*",
                 "--no-progress", "-o", str(tmp_path / "direct.html"))
    assert direct.returncode == 0 and "1/1" not in direct.stderr


def test_rm_is_a_dry_run_unless_yes_and_refuses_shared_digests(registry_server, prefix):
    pusher = Pusher(registry_server.url)
    image = pusher.image(f"{prefix}/rm", "old")
    pusher.manifest(f"{prefix}/rm", "alias", image.raw, image.media_type)
    pusher.image(f"{prefix}/rm", "solo")
    dry = run("rm", registry_server.url, f"{prefix}/rm:old")
    assert dry.returncode == 0 and "dry run" in dry.stdout and "alias" in dry.stdout
    refused = run("rm", registry_server.url, f"{prefix}/rm:old", "--yes")
    assert refused.returncode == 3 and "alias" in refused.stderr
    done = run("rm", registry_server.url, f"{prefix}/rm:solo", "--yes")
    assert done.returncode == 0 and f"deleted {prefix}/rm:solo" in done.stdout
    both = run("rm", registry_server.url, f"{prefix}/rm:old", "--yes", "--all-tags-on-digest")
    assert both.returncode == 0
    listing = run("ls", registry_server.url, f"{prefix}/rm")
    assert listing.returncode == 0 and listing.stdout == ""  # no tags left


def test_errors_and_usage_have_their_exit_codes(tmp_path):
    assert run().returncode == 2
    assert run("report", "--bogus").returncode == 2
    unreachable = run("ls", "127.0.0.1:1")
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr
    assert run("report", str(tmp_path)).returncode == 1  # a directory without inventory


def test_password_comes_from_stdin_and_is_never_echoed(basic_registry):
    ok = run("ls", basic_registry.url, "-u", BASIC_USER, "--password-stdin",
             stdin=BASIC_PASSWORD + "\n")
    assert ok.returncode == 0, ok.stderr
    wrong = run("ls", basic_registry.url, "-u", BASIC_USER, "--password-stdin",
                stdin="not-" + BASIC_PASSWORD + "\n")
    assert wrong.returncode == 1 and "refused the credentials" in wrong.stderr
    assert BASIC_PASSWORD not in ok.stdout + ok.stderr + wrong.stdout + wrong.stderr


def test_help_reads_well():
    text = run("--help").stdout
    for word in ("report", "crawl", "ls", "rm", "exit codes", "--password-stdin"):
        assert word in text or word in run("rm", "--help").stdout


def test_the_console_script_is_installed(tmp_path):
    import shutil

    script = shutil.which("reginsight")
    assert script, "pip install -e . puts `reginsight` on PATH (the README's first command)"
    result = subprocess.run([script, "report", "-o", str(tmp_path / "r.html")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and (tmp_path / "r.html").stat().st_size > 10_000
