"""The command line as a script would use it: real processes, real registry."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import reginsight as ri
from tests.conftest import BASIC_PASSWORD, BASIC_USER
from tests.images import Pusher

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "data" / "sample"


def run(*args: str, stdin: str | None = None, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reginsight", *args], capture_output=True,
                          text=True, input=stdin, cwd=cwd, timeout=120)


def test_report_without_target_uses_the_sample(tmp_path):
    result = run("report", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "report.html").read_text()
    assert "the bundled sample" in html and "data/etl" in html
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
    # the refusal names the flag that overrides it, never the Python argument
    assert "--all-tags-on-digest" in refused.stderr
    assert "delete_other_tags" not in refused.stderr
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


def test_version_prints_the_package_version():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"reginsight {ri.__version__}"


def test_rm_needs_a_tag_or_a_digest_never_an_implicit_latest(registry_server, prefix):
    Pusher(registry_server.url).image(f"{prefix}/bare", "latest")
    bare = run("rm", registry_server.url, f"{prefix}/bare", "--yes")
    assert bare.returncode == 2
    assert "REPO:TAG or REPO@DIGEST" in bare.stderr
    assert run("ls", registry_server.url, f"{prefix}/bare").stdout.split() == ["latest"]


def test_rm_by_digest_lists_its_tags_and_refuses_unless_all_tags(registry_server, prefix):
    pusher = Pusher(registry_server.url)
    repo = f"{prefix}/bydigest"
    image = pusher.image(repo, "one")
    pusher.manifest(repo, "two", image.raw, image.media_type)
    pusher.image(repo, "other")
    reference = f"{repo}@{image.digest}"

    dry = run("rm", registry_server.url, reference)
    assert dry.returncode == 0, dry.stderr
    assert f"{repo}:one" in dry.stdout and f"{repo}:two" in dry.stdout
    assert "dry run" in dry.stdout and "other" not in dry.stdout

    refused = run("rm", registry_server.url, reference, "--yes")
    assert refused.returncode == 3
    assert "--all-tags-on-digest" in refused.stderr and f"{repo}:two" in refused.stderr
    assert "delete_other_tags" not in refused.stderr
    assert run("ls", registry_server.url, repo).stdout.split() == ["one", "other", "two"]

    done = run("rm", registry_server.url, reference, "--yes", "--all-tags-on-digest")
    assert done.returncode == 0, done.stderr
    assert f"deleted {reference}" in done.stdout
    assert run("ls", registry_server.url, repo).stdout.split() == ["other"]

    gone = run("rm", registry_server.url, reference)
    assert gone.returncode == 1 and f"not found: {reference}" in gone.stderr


def test_rm_by_digest_of_an_untagged_manifest(registry_server, prefix):
    repo = f"{prefix}/untagged"
    pusher = Pusher(registry_server.url)
    pusher.image(repo, "kept")
    loose = pusher.image(repo, None)
    dry = run("rm", registry_server.url, f"{repo}@{loose.digest}")
    assert dry.returncode == 0 and "no tag points at it" in dry.stdout
    done = run("rm", registry_server.url, f"{repo}@{loose.digest}", "--yes")
    assert done.returncode == 0, done.stderr
    assert run("ls", registry_server.url, repo).stdout.split() == ["kept"]


def test_a_target_that_is_neither_a_directory_nor_a_registry_is_bad_usage(tmp_path):
    missing = run("report", "/no/such/dir", cwd=tmp_path)
    assert missing.returncode == 2
    assert "/no/such/dir: no such directory, and not a registry URL" in missing.stderr
    assert "http(s)://HOST or HOST:PORT" in missing.stderr
    assert "must be http(s)" not in missing.stderr
    assert run("report", "nosuchdir", cwd=tmp_path).returncode == 2  # no dot, no colon
    (tmp_path / "notes.txt").write_text("x")
    a_file = run("report", "notes.txt", cwd=tmp_path)
    assert a_file.returncode == 2 and "not a directory" in a_file.stderr
    assert not (tmp_path / "report.html").exists()
    not_url = run("ls", "nosuchhost")
    assert not_url.returncode == 2 and "not a registry URL" in not_url.stderr


def test_https_to_a_plain_http_registry_hints_at_http(registry_server):
    host = registry_server.url.removeprefix("http://")
    result = run("ls", f"https://{host}")
    assert result.returncode == 1
    assert "the server may speak plain HTTP: try http://" + host in result.stderr


def test_missing_repository_and_tag_read_clearly(registry_server, prefix):
    Pusher(registry_server.url).image(f"{prefix}/here", "v1")
    repository = run("ls", registry_server.url, f"{prefix}/missing")
    assert repository.returncode == 1
    assert f"not found: {prefix}/missing (NAME_UNKNOWN" in repository.stderr
    assert "HTTP 404" in repository.stderr and "failed with" not in repository.stderr
    tag = run("rm", registry_server.url, f"{prefix}/here:missing")
    assert tag.returncode == 1
    assert f"not found: {prefix}/here:missing (manifest unknown, HTTP 404" in tag.stderr
    assert "HEAD" not in tag.stderr


def test_crawl_says_what_it_saved_in_plain_lines(registry_server, prefix, tmp_path):
    Pusher(registry_server.url).image(f"{prefix}/sum", "v1")
    result = run("crawl", registry_server.url, "-o", str(tmp_path / "inv"),
                 "--repositories", f"{prefix}/sum")
    assert result.returncode == 0, result.stderr
    assert re.search(r"saved 1 tag, 1 manifest in 1 repository \(\d[\d.]* [KMG]?i?B stored\) "
                     r"to " + re.escape(str(tmp_path / "inv")), result.stderr), result.stderr
    assert "Inventory(" not in result.stderr
    # stderr is a pipe, not a terminal: plain lines, no carriage-return redraws
    assert "\r" not in result.stderr
    assert re.search(r"^crawl \S+: 1/1 tags", result.stderr, re.MULTILINE), result.stderr


def test_failed_reads_are_counted_on_stderr_and_exit_0(registry_server, prefix, tmp_path):
    Pusher(registry_server.url).image(f"{prefix}/ok", "v1")
    result = run("crawl", registry_server.url, "-o", str(tmp_path / "inv"), "--no-progress",
                 "--repositories", f"{prefix}/ok,{prefix}/absent")
    assert result.returncode == 0, result.stderr
    assert "warning: 1 read failed" in result.stderr
    assert f"{prefix}/absent" in result.stderr and "NAME_UNKNOWN" in result.stderr
    report = run("report", str(tmp_path / "inv"), "-o", str(tmp_path / "r.html"))
    assert report.returncode == 0 and "warning: 1 read failed" in report.stderr


def _freed(html: str) -> str:
    found = re.search(r"<span>cleanup would free</span><b>([^<]+)</b>", html)
    assert found, "the report shows what the cleanup would free"
    return found.group(1)


def test_report_cleanup_policy_flags(tmp_path):
    default = run("report", "-o", str(tmp_path / "default.html"))
    assert default.returncode == 0, default.stderr
    strict = run("report", "-o", str(tmp_path / "strict.html"),
                 "--keep-last", "1", "--older-than", "0d", "--protect", "")
    assert strict.returncode == 0, strict.stderr
    assert _freed((tmp_path / "strict.html").read_text()) != \
        _freed((tmp_path / "default.html").read_text())
    # each flag means what the same argument of plan_cleanup (and the explorer) means
    from reginsight.present._report import report_data

    sample = ri.Inventory.load(SAMPLE_DIR)
    for flags, policy in ((("--keep-last", "0", "--older-than", "", "--protect", ""),
                           {"keep_last": 0, "older_than": None, "protect": None}),
                          (("--keep-last", "2", "--older-than", "400d"),
                           {"keep_last": 2, "older_than": "400d"})):
        done = run("report", "-o", str(tmp_path / "p.html"), *flags)
        assert done.returncode == 0, done.stderr
        expected = dict(report_data(sample, plots=False, **policy)["cards"])
        assert _freed((tmp_path / "p.html").read_text()) == expected["cleanup would free"]
    bad = run("report", "-o", str(tmp_path / "bad.html"), "--older-than", "soon")
    assert bad.returncode == 2 and "--older-than 'soon'" in bad.stderr
    assert "older_than" not in bad.stderr and not (tmp_path / "bad.html").exists()
    assert run("report", "--protect", "(", "-o", str(tmp_path / "b.html")).returncode == 2
    assert run("report", "--keep-last", "-1", "-o", str(tmp_path / "b.html")).returncode == 2
    text = run("report", "--help").stdout
    for flag in ("--keep-last N", "--older-than AGE", "--protect REGEX", "180d"):
        assert flag in text


def test_a_password_in_the_target_is_never_repeated():
    for command in (("report", "bob:s3cr3t@registry.example.com"),
                    ("ls", "bob:s3cr3t@registry"), ("crawl", "bob:s3cr3t@x", "-o", "out")):
        done = run(*command)
        assert done.returncode == 2 and "s3cr3t" not in done.stderr + done.stdout
        assert "--password-stdin" in done.stderr


def test_plain_progress_lines_are_throttled_with_a_final_line():
    import io

    from reginsight.inventory._progress import LineBar

    out = io.StringIO()
    bar = LineBar("crawl r", unit="tag", file=out, interval=3600)
    bar.total = 300
    for _ in range(300):
        bar.update(1)
    bar.refresh()
    assert out.getvalue() == ""  # throttled
    bar.close()
    bar.close()  # once only
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("crawl r: 300/300 tags")
    eager = io.StringIO()
    bar = LineBar("scan s", unit="manifest", file=eager, interval=0)
    bar.update(2)
    assert eager.getvalue() == "scan s: 2 manifests\n" and "\r" not in eager.getvalue()


def test_the_library_says_the_same_to_notebook_users(registry_server, reg, prefix):
    import pytest

    host = registry_server.url.removeprefix("http://")
    with pytest.raises(ri.RegistryUnreachable, match="may speak plain HTTP: try http://"):
        ri.Registry(f"https://{host}")
    with pytest.raises(ri.NotFound, match=rf"^not found: {prefix}/none:v1 \(manifest unknown"):
        reg.manifest_digest(f"{prefix}/none", "v1")
    with pytest.raises(ri.NotFound) as caught:
        reg.tags(f"{prefix}/none")
    assert caught.value.codes == ("NAME_UNKNOWN",) and caught.value.status == 404
    assert str(caught.value).startswith(f"not found: {prefix}/none (NAME_UNKNOWN")


def test_crawl_never_saves_over_a_folder_of_the_users(registry_server, prefix, tmp_path):
    Pusher(registry_server.url).image(f"{prefix}/app", "v1")
    project = tmp_path / "proj"
    (project / "tags").mkdir(parents=True)
    (project / "blobs").mkdir()
    (project / "tags" / "release-notes.txt").write_text("notes")
    (project / "inventory.json").write_text('{"mine":1}')
    before = sorted(str(p.relative_to(project)) for p in project.rglob("*"))
    for output, cwd in (("", project), (str(project), tmp_path)):
        refused = run("crawl", registry_server.url, "-o", output, "--repositories",
                      f"{prefix}/app", cwd=cwd)
        assert refused.returncode == 2, refused.stderr
        assert "save into an empty or new folder" in refused.stderr
        assert "1/1" not in refused.stderr  # refused before the crawl, not after it
    assert sorted(str(p.relative_to(project)) for p in project.rglob("*")) == before
    assert (project / "tags" / "release-notes.txt").read_text() == "notes"
    assert (project / "inventory.json").read_text() == '{"mine":1}'

    # an earlier inventory is replaced, the user's notes beside it kept
    saved = tmp_path / "inv"
    assert run("crawl", registry_server.url, "-o", str(saved), "--repositories",
               f"{prefix}/app").returncode == 0
    (saved / "NOTES.md").write_text("mine")
    Pusher(registry_server.url).image(f"{prefix}/app", "v2")
    again = run("crawl", registry_server.url, "-o", str(saved), "--repositories",
                f"{prefix}/app")
    assert again.returncode == 0, again.stderr
    assert sorted(ri.Inventory.load(saved).tags["tag"]) == ["v1", "v2"]
    assert (saved / "NOTES.md").read_text() == "mine"

    # a save that fails (a file where a folder must be) says where, exit 1
    (tmp_path / "a-file").write_text("x")
    failed = run("crawl", registry_server.url, "-o", str(tmp_path / "a-file" / "inv"),
                 "--repositories", f"{prefix}/app")
    assert failed.returncode == 1, failed.stderr
    assert f"could not be saved to {tmp_path / 'a-file' / 'inv'}" in failed.stderr


def test_a_repository_name_of_255_characters_is_crawled_and_saved(registry_server, prefix,
                                                                   tmp_path):
    """Distribution accepts it; its partition folder would pass the filesystem's 255
    bytes: the crawl is saved, and loads with the exact name."""
    deep = "/".join([prefix, *["a"] * ((255 - len(prefix)) // 2)])
    wide = f"{prefix}/{'b' * (199 - len(prefix))}/{'c' * 54}"
    names = [deep, wide]
    assert [len(name) for name in names] == [255, 255]
    pusher = Pusher(registry_server.url)
    for name in names:
        pusher.image(name, "v1")
    result = run("crawl", registry_server.url, "-o", str(tmp_path / "inv"), "--repositories",
                 ",".join(names))
    assert result.returncode == 0, result.stderr
    loaded = ri.Inventory.load(tmp_path / "inv")
    assert sorted(loaded.tags["repository"].astype(str)) == sorted(names)
    lazy = ri.Inventory.open(tmp_path / "inv")
    assert sorted(ri.storage_by_repository(lazy)["repository"].astype(str)) == sorted(names)


def test_help_of_every_command_loads_no_pandas():
    """--help is instant: the flags and their defaults (the cleanup policy) come from
    modules of the standard library only."""
    from reginsight._cli import COMMANDS

    names = [command.__name__.rsplit("._", 1)[1].replace("gcpreview", "gc-preview")
             for command in COMMANDS]
    script = ("import sys\nfrom reginsight._cli import main\n"
              "for command in sys.argv[1:]:\n"
              "    try:\n        main([command, '--help'])\n"
              "    except SystemExit:\n        pass\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] in "
              "('pandas', 'numpy', 'pyarrow')))")
    done = subprocess.run([sys.executable, "-c", script, *names], capture_output=True,
                          text=True, timeout=120, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert "cleanup" in names and "gc-preview" in names
