"""The HTML report's figures and states: the cleanup policy, what each deletion frees,
sharing by name, errors, an empty registry, repositories without tags; and what a
reader acts on: full digests, the plan as a download, the cleanup commands, what a
crawl cannot see, the sample named as such, --repositories for every TARGET, the
wording of counts and sums, the plots at the size they are shown."""

from __future__ import annotations

import base64
import io
import re
import shlex
import subprocess
import sys
import warnings
from html.parser import HTMLParser
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
import pytest

import reginsight as ri
from reginsight.inventory._frames import build, empty
from reginsight.inventory._subset import selected
from reginsight.ops._frees import plan_frees
from reginsight.ops._plan import PLAN_COLUMNS
from reginsight.present import _report
from reginsight.present._report import render_report, report_data
from tests.conftest import BASIC_PASSWORD, BASIC_USER
from tests.images import Pusher
from tests.test_analysis import L1, MX, MY, inventory

SAMPLE = ri.Inventory.load(Path(__file__).resolve().parent.parent / "data" / "sample")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def _tables(data: dict) -> list[dict]:
    return data["cleanup"]["tables"] + data["disk"] + data["tables"]


def _table(data: dict, title_start: str) -> dict:
    return next(t for t in _tables(data) if t["title"].startswith(title_start))


def _card(data: dict, label: str) -> str:
    return dict(data["cards"])[label]


def run(*args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reginsight", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


class _Page(HTMLParser):
    """The text a reader sees (no plot, no style), and each element's attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        self._skip += tag in ("style", "title")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("style", "title")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)


def _page(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def _words(html: str) -> str:
    return " ".join(" ".join(_page(html).text).split())


def _download_text(html: str) -> str:
    """The file the report's download link holds."""
    links = [a for tag, a in _page(html).elements if tag == "a" and "download" in a]
    assert len(links) == 1, links
    uri = links[0]["href"]
    assert uri.startswith("data:text/csv;base64,")
    return base64.b64decode(uri.split(",", 1)[1]).decode()


def _download(html: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(_download_text(html)), dtype=str, keep_default_na=False)


def _commands(html: str) -> list[str]:
    found = re.findall(r"<pre><code>(.*?)</code></pre>", html, re.S)
    import html as markup

    return [markup.unescape(c) for c in found]


# ------------------------------------------------------------- the figures


def test_policy_options_change_the_plan_and_the_note():
    default = report_data(SAMPLE, plots=False)
    plan = ri.plan_cleanup(SAMPLE, keep_last=3, older_than="180d",
                           protect=r"^(latest|stable)$", now=SAMPLE.taken_at)
    assert _card(default, "cleanup would free") == ri.format_bytes(
        plan.attrs["reclaimable_bytes"])
    strict = report_data(SAMPLE, plots=False, keep_last=1, older_than=None, protect=None)
    harsh = ri.plan_cleanup(SAMPLE, keep_last=1, now=SAMPLE.taken_at)
    assert _card(strict, "cleanup would free") == ri.format_bytes(
        harsh.attrs["reclaimable_bytes"])
    assert harsh.attrs["reclaimable_bytes"] > plan.attrs["reclaimable_bytes"]
    assert strict["cleanup"]["policy"].startswith(
        "Keep the 1 newest images per repository; tags on one digest")
    nothing = report_data(SAMPLE, plots=False, keep_last=None, older_than=None, protect=None)
    assert _card(nothing, "cleanup would free") == "0 B"
    assert nothing["cleanup"]["tables"] == [] and nothing["cleanup"]["commands"] == []
    with pytest.raises(ri.PlanError):
        report_data(SAMPLE, plots=False, older_than="whenever")


def test_what_each_deletion_frees_adds_up_per_repository_and_in_all():
    plan = ri.plan_cleanup(SAMPLE, keep_last=1, now=SAMPLE.taken_at)
    by_digest, by_repository = plan_frees(SAMPLE, plan)
    doomed = plan[plan["action"] == "delete"]
    assert len(by_digest) == doomed.groupby(["repository", "digest"]).ngroups
    for row in by_digest.itertuples():  # each figure: that digest alone, by definition
        alone = doomed[(doomed["repository"] == row.repository)
                       & (doomed["digest"] == row.digest)]
        assert row.frees == ri.reclaimable(SAMPLE, alone)
        assert set(row.tags.split(", ")) == set(alone["tag"])
    for row in by_repository.itertuples():
        assert row.frees == ri.reclaimable(SAMPLE, doomed[doomed["repository"]
                                                          == row.repository])
        part = by_digest[by_digest["repository"] == row.repository]["frees"].sum()
        assert part <= row.frees  # layers two deleted images share: only with both
    # no blob is shared across repositories by the deleted images here: they add up
    assert by_repository["frees"].sum() == plan.attrs["reclaimable_bytes"]
    assert list(by_digest["frees"]) == sorted(by_digest["frees"], reverse=True)
    data = report_data(SAMPLE, plots=False, keep_last=1, older_than=None, protect=None)
    rows = _table(data, "Cleanup by repository")["rows"]
    assert rows[-1] == ("all repositories", f"{len(by_digest):,}",
                        f"{int(doomed['tag'].notna().sum()):,}",
                        ri.format_bytes(plan.attrs["reclaimable_bytes"]))
    candidates = _table(data, "Cleanup candidates")
    assert [c["name"] for c in candidates["columns"]] == [
        "repository", "tags", "digest", "created", "frees", "reason"]
    assert candidates["rows"][0][4] == ri.format_bytes(by_digest["frees"].iloc[0])


def test_a_blob_two_deleted_images_share_counts_with_both_not_either():
    inv = inventory()  # a: x, x2 -> MX (L1 L2 C1); y -> MY (L1 L3 C2); b keeps L1
    plan = ri.plan_cleanup(inv, keep_last=0, protect=["b:z", "b:multi"], now=inv.taken_at)
    by_digest, by_repository = plan_frees(inv, plan)
    frees = dict(zip(by_digest["digest"], by_digest["frees"], strict=True))
    assert frees == {MX: 10 + 1 + 500, MY: 20 + 2 + 501}  # L1 stays: b reaches it
    assert by_repository.set_index("repository").loc["a", "frees"] == 1034
    assert by_digest.set_index("digest").loc[MX, "tags"] == "x, x2"


def test_shared_layers_are_named_by_the_repositories_using_them():
    data = report_data(inventory(), plots=False)
    shared = _table(data, "Top 1 shared layer")
    assert shared["title"] == "Top 1 shared layer"  # one: singular
    assert shared["columns"][0]["name"] == "used by"
    assert shared["rows"][0][0] == "a, b" and shared["rows"][0][-1] == L1
    sample = _table(report_data(SAMPLE, plots=False), "Top ")
    assert all(re.fullmatch(r"[a-z/]+(, [a-z/]+)+", row[0]) for row in sample["rows"])


def test_errors_get_a_banner_that_counts_them():
    inv = inventory()
    inv.errors = build("errors", [("a", "v9", "tag", "NotFound: manifest unknown"),
                                  ("b", "", "tags", "RegistryUnreachable: timed out")])
    html = render_report(inv, plots=False)
    banner = re.search(r'<div class="banner error" role="alert">(.*?)</div>', html, re.S)
    assert banner and banner.group(1).startswith("2 reads failed")
    assert "a v9, tag: NotFound: manifest unknown" in banner.group(1)
    assert 'class="banner error' not in render_report(inventory(), plots=False)


def test_an_empty_registry_renders_cleanly(recwarn):
    frames = {name: empty(name) for name, _ in SAMPLE.frames()}
    inv = ri.Inventory(registry="http://empty.test", taken_at=SAMPLE.taken_at, **frames)
    data = report_data(inv)
    assert data["plots"] == []  # no blank axes
    assert _card(data, "dedup ratio") == "-" and _card(data, "stored (what tags reach)") == "0 B"
    assert any(kind == "info" and "no tags" in text for kind, text in data["banners"])
    html = render_report(inv)
    assert "nan" not in html.lower().replace("nanosecond", "") and "-0 B" not in html
    assert "Under this policy nothing is deleted." in _words(html)
    assert [str(w.message) for w in recwarn] == []
    for plot in (ri.plot_storage, ri.plot_layer_sharing, ri.plot_sharing_matrix,
                 ri.plot_image_age, ri.plot_storage_by_role):
        ax = plot(inv)  # a note where the plot would be, and no warning
        assert ax.texts and not ax.get_xticks().size
    assert [str(w.message) for w in recwarn] == []


def test_repositories_without_tags_are_listed():
    inv = inventory()
    manifests = inv.manifests.astype({"repository": "string"})
    tagless = manifests[manifests["repository"] == "a"].assign(repository="gone")
    inv.manifests = pd.concat([manifests, tagless], ignore_index=True).astype(
        {"repository": "category"})
    table = _table(report_data(inv, plots=False), "Repositories without tags")
    assert table["rows"] == [("gone", "2")]


def test_a_crawled_repository_whose_tags_are_all_deleted_is_listed(registry_server, prefix,
                                                                   tmp_path):
    pusher = Pusher(registry_server.url)
    pusher.image(f"{prefix}/kept", "v1")
    gone = pusher.image(f"{prefix}/emptied", "v1")
    pusher.close()
    with ri.Registry(registry_server.url) as reg:
        reg.delete_manifest(f"{prefix}/emptied", gone.digest)
        inv = ri.crawl(reg, f"{prefix}/*", progress=False)
        named = ri.crawl(reg, [f"{prefix}/kept", f"{prefix}/never"], progress=False)
    assert list(inv.tags["repository"].unique()) == [f"{prefix}/kept"]
    assert inv.repositories == (f"{prefix}/emptied", f"{prefix}/kept")  # the catalog lists it
    inv = ri.Inventory.load(inv.save(tmp_path / "saved"))
    assert inv.repositories == (f"{prefix}/emptied", f"{prefix}/kept")
    table = _table(report_data(inv, plots=False), "Repositories without tags")
    assert table["rows"] == [(f"{prefix}/emptied", "0")]
    # a named repository that does not exist is an error, not a repository without tags
    assert len(named.errors) == 1
    assert not any(t["title"].startswith("Repositories without tags")
                   for t in _tables(report_data(named, plots=False)))
    listed = set(ri.explore(named).browse._repository_frame["repository"])
    assert listed == {f"{prefix}/kept"}
    assert f"{prefix}/emptied" in set(ri.explore(inv).browse._repository_frame["repository"])


# ------------------------------------------------------------- 1: act on it


def test_every_digest_is_whole_in_the_page_on_hover_and_when_copied():
    plan = ri.plan_cleanup(SAMPLE, keep_last=3, older_than="180d",
                           protect=r"^(latest|stable)$", now=SAMPLE.taken_at)
    html = render_report(SAMPLE, plots=False)
    elements = _page(html).elements
    copyable = [a["title"] for tag, a in elements
                if tag == "code" and a.get("class") == "digest"]
    assert copyable and all(DIGEST.fullmatch(d) for d in copyable)
    doomed = set(plan.loc[plan["action"] == "delete", "digest"])
    assert doomed <= set(copyable)
    # the element holds the whole digest too (CSS shortens it): a copy takes all of it
    for digest in doomed:
        assert f'<code class="digest" title="{digest}">{digest}</code>' in html
    # no digest cut to 12 hex characters anywhere in the text
    text = _words(html)
    assert not re.search(r"sha256:[0-9a-f]{12}(?![0-9a-f])", text)


def test_the_plan_downloads_as_the_csv_cleanup_reads():
    plan = ri.plan_cleanup(SAMPLE, keep_last=1, now=SAMPLE.taken_at)
    html = render_report(SAMPLE, plots=False, keep_last=1, older_than=None, protect=None)
    csv = _download(html)
    assert list(csv.columns) == PLAN_COLUMNS
    expected = plan[PLAN_COLUMNS].astype(str).replace({"<NA>": ""}).reset_index(drop=True)
    assert csv[["repository", "tag", "digest", "action", "reason"]].equals(
        expected[["repository", "tag", "digest", "action", "reason"]])
    assert csv["digest"].map(lambda d: bool(DIGEST.fullmatch(d))).all()
    assert 'download="reginsight-plan.csv"' in html
    assert f"{len(plan)} rows" in _words(html)


def _report_parser():
    import argparse

    from reginsight import _cli

    parser = _cli.parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices["report"]


@pytest.mark.parametrize("rules", [
    {},  # the suggested policy
    {"keep_last": 1, "older_than": None, "protect": None},
    {"keep_last": None, "older_than": "30d", "protect": "^v1$"},
    {"keep_last": 0, "older_than": "400d", "protect": "it's"},
], ids=["suggested", "keep-1", "age-only", "quote"])
def test_the_cleanup_command_says_exactly_the_policy_the_report_planned(rules):
    from reginsight._cli._options import policy

    html = render_report(SAMPLE, plots=False, **rules)  # loaded by path: no sample label
    commands = _commands(html)
    by_policy = [c for c in commands if "--keep-last" in c]
    assert len(by_policy) == 1, commands
    words = shlex.split(by_policy[0])
    assert words[:3] == ["reginsight", "cleanup", "http://localhost:5000"]
    # the flags, read as the command line reads the report's (the same policy flags)
    parsed = policy(_report_parser().parse_args(words[3:]))
    wanted = {"keep_last": 3, "older_than": "180d", "protect": r"^(latest|stable)$",
              **rules}
    plan = ri.plan_cleanup(SAMPLE, now=SAMPLE.taken_at, **parsed)
    planned = ri.plan_cleanup(SAMPLE, now=SAMPLE.taken_at, **wanted)
    decided = ["repository", "tag", "digest", "action"]  # the same deletions, and bytes
    pd.testing.assert_frame_equal(plan[decided], planned[decided])
    assert plan.attrs == planned.attrs
    assert plan["action"].eq("delete").any()
    assert "reginsight cleanup http://localhost:5000 --plan reginsight-plan.csv" in commands
    # a plan that deletes nothing has nothing to apply
    assert _commands(render_report(SAMPLE, plots=False, keep_last=None,
                                   older_than=None)) == []


def test_a_storage_report_gives_the_untagged_cleanup_command(scenario_storage):
    scan = ri.scan_storage(scenario_storage, progress=False)
    html = render_report(scan, plots=False, collector="distribution-2")
    commands = _commands(html)
    untagged = ri.plan_cleanup(scan, untagged=True, collector="distribution-2")
    frees = ri.format_bytes(untagged.attrs["reclaimable_bytes"])
    assert (f"reginsight cleanup URL --untagged --storage {scan.registry} --collector 2"
            in commands)
    text = _words(html)
    assert f"The 2 untagged manifests ({frees} freed after garbage-collect)" in text
    assert "URL stands for your registry's address" in text
    # the command names the URL given, and the storage as scanned
    given = render_report(scan, plots=False, collector="distribution-2",
                          registry_url="https://u:p@registry.example")
    assert (f"reginsight cleanup https://registry.example --untagged --storage "
            f"{scan.registry} --collector 2") in _commands(given)
    assert "u:p@" not in given


def test_the_commands_name_the_url_as_given_and_never_its_credentials(basic_registry,
                                                                       prefix, tmp_path):
    import httpx

    pusher = Pusher(basic_registry.url, auth=httpx.BasicAuth(BASIC_USER, BASIC_PASSWORD))
    for month in range(1, 6):
        pusher.image(f"{prefix}/app", f"v{month}", created=f"2025-0{month}-01T00:00:00Z")
    pusher.close()
    host = basic_registry.url.split("://", 1)[1]
    secret_url = f"http://{BASIC_USER}:{BASIC_PASSWORD}@{host}"
    out = tmp_path / "r.html"
    done = run("report", secret_url, "--repositories", f"{prefix}/app", "--no-progress",
               "-o", str(out))
    assert done.returncode == 0, done.stderr
    html = out.read_text()
    assert BASIC_PASSWORD not in html and f"{BASIC_USER}:" not in html
    assert BASIC_PASSWORD not in done.stderr + done.stdout
    commands = _commands(html)
    assert (f"reginsight cleanup {basic_registry.url} --keep-last 3 --older-than 180d "
            f"--protect '^(latest|stable)$' --repositories {prefix}/app") in commands
    assert f"reginsight cleanup {basic_registry.url} --plan reginsight-plan.csv" in commands
    # a bare HOST:PORT stays as it was typed
    bare = subprocess.run([sys.executable, "-m", "reginsight", "report", host, "-u",
                           BASIC_USER, "--password-stdin", "--repositories", f"{prefix}/app",
                           "--no-progress", "-o", str(out)], input=BASIC_PASSWORD + "\n",
                          capture_output=True, text=True, timeout=300)
    assert bare.returncode == 0, bare.stderr
    html = out.read_text()
    assert f"reginsight cleanup {host} --plan reginsight-plan.csv" in _commands(html)
    assert BASIC_PASSWORD not in html


# ------------------------------------------------------------- 2: what a crawl cannot see


def test_a_crawl_says_what_it_cannot_see_and_how_to_see_it(scenario_storage):
    for inv in (inventory(), SAMPLE):
        banners = [text for kind, text in report_data(inv, plots=False)["banners"]]
        said = next(b for b in banners if "cannot see" in b)
        for words in ("untagged manifests a moved tag left behind",
                      "blobs of deleted manifests", "abandoned uploads",
                      "reginsight report STORAGE_ROOT"):
            assert words in said
    scan = ri.scan_storage(scenario_storage, progress=False)
    assert not any("cannot see" in text for _, text in report_data(
        scan, plots=False, collector="distribution-2")["banners"])


# ------------------------------------------------------------- 3: the sample


def test_the_sample_is_titled_as_the_sample(tmp_path):
    done = run("report", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "wrote report.html (the bundled sample, 42 tags)" in done.stderr
    html = (tmp_path / "report.html").read_text()
    assert "<title>reginsight report: the bundled sample</title>" in html
    assert re.search(r"<h1>Registry report: the bundled sample <span class=\"badge\">sample"
                     r"</span></h1>", html)
    assert "localhost:5000" not in html  # the sample's address would pass as the reader's
    banner = next(t for k, t in report_data(ri.sample(), plots=False)["banners"]
                  if k == "sample")
    assert "It is not your registry" in banner
    assert all(c.split()[2] == "URL" for c in _commands(html))
    # loaded by path, it is the sample still
    done = run("report", str(Path(ri.__file__).parent / "sample"), "-o", "s.html", cwd=tmp_path)
    assert "(the bundled sample, 42 tags)" in done.stderr


# ------------------------------------------------------------- 4: --repositories


def test_selected_is_what_a_crawl_of_those_repositories_gives(any_registry, prefix):
    pusher = Pusher(any_registry.url)
    base = b"a base layer both share" * 50
    a = pusher.image(f"{prefix}/a", "v1", layers=(base, b"a's own" * 30))
    pusher.image(f"{prefix}/a", "v2", layers=(base,))
    amd = pusher.image(f"{prefix}/b", None, layers=(base, b"amd" * 40))
    arm = pusher.image(f"{prefix}/b", None, layers=(b"arm" * 40,), architecture="arm64")
    pusher.index(f"{prefix}/b", "multi", [(amd, {"os": "linux", "architecture": "amd64"}),
                                          (arm, {"os": "linux", "architecture": "arm64"})])
    for blob in (a.config, *a.layers):  # a's image, mounted into c
        mounted = pusher.http.post(f"/v2/{prefix}/c/blobs/uploads/",
                                   params={"mount": blob, "from": f"{prefix}/a"})
        assert mounted.status_code == 201, mounted.text
    pusher.manifest(f"{prefix}/c", "copy", a.raw, a.media_type)
    pusher.image(f"{prefix}/c", "own", layers=(base, b"c" * 99))
    pusher.close()
    with ri.Registry(any_registry.url) as reg:
        everything = ri.crawl(reg, f"{prefix}/*", progress=False)
        for wanted in ([f"{prefix}/a", f"{prefix}/b"], [f"{prefix}/c"]):
            crawled = ri.crawl(reg, wanted, progress=False)
            part = selected(everything, wanted)
            for name, frame in crawled.frames():
                pd.testing.assert_frame_equal(getattr(part, name), frame, obj=name)
            assert part.repositories == crawled.repositories
            assert f"{prefix}/*" in part.scope and ", ".join(wanted) in part.scope
    assert int(everything.blobs.set_index("digest").loc[a.config, "repositories"]) == 2
    with pytest.raises(ri.InventoryError, match="not in this inventory"):
        selected(everything, [f"{prefix}/nope"])
    with pytest.raises(ri.InventoryError, match="nothing/"):
        selected(everything, ["nothing/*"])


def test_repositories_from_a_saved_inventory_scope_the_report_and_keep_figures_exact(
        tmp_path):
    wanted = ["web/api", "web/frontend"]
    data = report_data(SAMPLE, plots=False, repositories=wanted, keep_last=1,
                       older_than=None, protect=None)
    shown = {row[0] for row in _table(data, "Repositories by stored bytes")["rows"]}
    assert shown == set(wanted)
    assert _card(data, "tags") == str(int(SAMPLE.tags["repository"].isin(wanted).sum()))
    plan = ri.plan_cleanup(SAMPLE, keep_last=1, repositories=wanted, now=SAMPLE.taken_at)
    # what the cleanup frees is counted against the whole registry: exact, not an upper
    # bound (a blob another repository uses stays)
    assert _card(data, "cleanup would free") == ri.format_bytes(plan.attrs["reclaimable_bytes"])
    assert {row[0] for row in _table(data, "Cleanup by repository")["rows"][:-1]} <= set(wanted)
    assert any("Only web/api, web/frontend shown" in t for _, t in data["banners"])
    html = render_report(SAMPLE, plots=False, repositories=wanted)
    assert any(c.endswith("--repositories web/api,web/frontend") for c in _commands(html))
    csv = _download(html)
    assert set(csv["repository"]) <= set(wanted)
    # the command line, on a saved inventory (and on the sample without TARGET)
    SAMPLE.save(tmp_path / "inv")
    for target in (str(tmp_path / "inv"), None):
        out = tmp_path / "r.html"
        done = run("report", *([target] if target else []), "--repositories", "web/*",
                   "-o", str(out))
        assert done.returncode == 0, done.stderr
        text = _words(out.read_text())
        assert "data/etl" not in text and "web/worker" in text
        web = int(SAMPLE.tags["repository"].str.startswith("web/").sum())
        assert f", only web/*: {web} tags)" in done.stderr
    refused = run("report", str(tmp_path / "inv"), "--repositories", "web/api,nope/x",
                  "-o", str(tmp_path / "no.html"))
    assert refused.returncode == 2 and "nope/x" in refused.stderr
    assert not (tmp_path / "no.html").exists()


def test_repositories_from_a_storage_root_scope_the_tables_not_the_disk(scenario_storage,
                                                                        tmp_path):
    scan = ri.scan_storage(scenario_storage, progress=False)
    whole = report_data(scan, plots=False, collector="distribution-2")
    part = report_data(scan, plots=False, collector="distribution-2",
                       repositories=["b/multi"])
    for label in ("on disk", "garbage-collect frees"):  # the collector works on it all
        assert _card(part, label) == _card(whole, label)
    assert _table(part, "Where the disk goes") == {
        **_table(whole, "Where the disk goes"),
        "note": _table(whole, "Where the disk goes")["note"] + "; the whole storage's"}
    assert _table(part, "What garbage-collect") == _table(whole, "What garbage-collect")
    assert {r[0] for r in _table(part, "Repositories by stored bytes")["rows"]} == {"b/multi"}
    assert _table(whole, "Largest untagged manifests")["title"].endswith("(of 2)")
    assert _table(part, "Largest untagged manifests")["title"].endswith("(of 0)")
    assert "whole storage's" in next(t for k, t in part["banners"] if t.startswith("Only"))
    app = render_report(scan, plots=False, collector="distribution-2",
                        repositories=["b/app"])
    assert (f"reginsight cleanup URL --untagged --storage {scan.registry} --collector 2 "
            "--repositories b/app") in _commands(app)
    done = run("report", str(scenario_storage), "--repositories", "b/multi", "--no-progress",
               "--collector", "2", "-o", str(tmp_path / "r.html"))
    assert done.returncode == 0, done.stderr
    assert "b/app" not in _words((tmp_path / "r.html").read_text()).replace(
        "Largest untagged", "")


def test_repositories_from_a_registry_are_crawled_and_the_commands_apply_the_plan(
        any_registry, prefix, tmp_path):
    """The report of a registry, then each command it prints, run as printed: each
    dry run deletes what the report planned and frees what it said; --yes deletes it."""
    pusher = Pusher(any_registry.url)
    for repo in ("in", "out"):
        for month in range(1, 6):
            pusher.image(f"{prefix}/{repo}", f"v{month}", created=f"2025-0{month}-01T00:00:00Z")
    pusher.close()
    out = tmp_path / "r.html"
    done = run("report", any_registry.url, "--repositories", f"{prefix}/in",
               "--no-progress", "-o", str(out))
    assert done.returncode == 0, done.stderr
    html = out.read_text()
    assert f"{prefix}/out" not in html and f"{prefix}/in" in html
    commands = _commands(html)
    assert len(commands) == 2 and commands[0].endswith(f"--repositories {prefix}/in")
    plan = _download(html)
    assert set(plan["repository"]) == {f"{prefix}/in"}
    doomed = {f"{r}@{d}" for r, d, a in zip(plan["repository"], plan["digest"], plan["action"],
                                            strict=True) if a == "delete"}
    assert len(doomed) == 2  # v1 and v2: not among the 3 newest, older than 180d
    freed = re.search(r"<span>cleanup would free</span><b>([^<]+)</b>", html).group(1)
    # saved as a browser saves the download (tests/test_report_browser.py clicks it)
    (tmp_path / "reginsight-plan.csv").write_text(_download_text(html))
    for command in commands:
        dry = run(*shlex.split(command)[1:], "--no-progress", cwd=tmp_path)
        assert dry.returncode == 0, dry.stdout + dry.stderr
        would = {word for line in dry.stdout.splitlines()
                 if line.strip().startswith("would delete") for word in line.split()
                 if "@sha256:" in word}
        assert would == doomed, dry.stdout
        line = next(line for line in dry.stdout.splitlines() if "would free" in line)
        assert ri.format_bytes(int(re.findall(r"\(([\d,]+) bytes\)", line)[-1].replace(
            ",", ""))) == freed
    applied = run(*shlex.split(commands[1])[1:], "--yes", "--no-progress", cwd=tmp_path)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    with ri.Registry(any_registry.url) as reg:
        assert set(reg.tags(f"{prefix}/in")) == {"v3", "v4", "v5"}
        assert len(reg.tags(f"{prefix}/out")) == 5


# ------------------------------------------------------------- 6: wording and layout


def test_parts_say_they_add_up_only_when_they_do():
    adds = report_data(SAMPLE, plots=False)  # the suggested policy: they add up
    for title in ("Cleanup by repository", "Cleanup candidates"):
        note = _table(adds, title)["note"]
        assert "these add up to the total" in note and "not the total" not in note
    by_digest, by_repository = plan_frees(SAMPLE, ri.plan_cleanup(
        SAMPLE, keep_last=0, now=SAMPLE.taken_at))
    total = ri.plan_cleanup(SAMPLE, keep_last=0, now=SAMPLE.taken_at).attrs[
        "reclaimable_bytes"]
    assert by_digest["frees"].sum() < by_repository["frees"].sum() < total
    apart = report_data(SAMPLE, plots=False, keep_last=0, older_than=None, protect=None)
    assert (f"these add up to {ri.format_bytes(by_digest['frees'].sum())}, not the total"
            in _table(apart, "Cleanup candidates")["note"])
    assert (f"these add up to {ri.format_bytes(by_repository['frees'].sum())}, not the total"
            in _table(apart, "Cleanup by repository")["note"])


_PLURAL_OF_ONE = re.compile(r"(?<![\d.,])1 (images|tags|uploads|manifests|layers|rows|blobs|"
                            r"repositories|errors|reads|shared layers)\b")


def test_one_is_singular_everywhere(scenario_storage):
    inv = inventory()
    inv.errors = build("errors", [("a", "v9", "tag", "NotFound: manifest unknown")])
    scan = ri.scan_storage(scenario_storage, progress=False)
    for html in (render_report(inv, keep_last=1, older_than=None, protect=None),
                 render_report(scan, collector="distribution-2"),
                 render_report(scan, collector="distribution-2", repositories=["b/multi"])):
        for text in _page(html).text:  # each run of text on its own: not a card's
            assert not _PLURAL_OF_ONE.search(text), text  # figure and the next label
        for uri in re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', html):
            svg = base64.b64decode(uri).decode()
            assert not _PLURAL_OF_ONE.search(svg), _PLURAL_OF_ONE.search(svg)
    assert "1 upload " in _words(render_report(scan, plots=False,
                                               collector="distribution-2"))


def test_the_role_table_is_told_against_the_stored_card(scenario_storage):
    scan = ri.scan_storage(scenario_storage, progress=False)
    data = report_data(scan, plots=False, collector="distribution-2")
    stored = ri.storage_summary(scan)["stored_bytes"]
    note = _table(data, "Storage by role")["note"]
    # the untagged revisions hold blobs no tag reaches: the roles' total is more
    assert _card(data, "stored (what tags reach)") == ri.format_bytes(stored)
    assert f"{ri.format_bytes(stored)} that tags reach (the \"stored\" card)" in note
    assert "untagged ones too" in note
    sample = _table(report_data(SAMPLE, plots=False), "Storage by role")["note"]
    assert "the \"stored\" card's figure" in sample  # all of the sample's are tagged


def test_no_signature_table_when_the_registry_holds_no_signatures():
    data = report_data(inventory(), plots=False)
    assert not any(t["title"].startswith("Images without a signature") for t in _tables(data))
    line = _table(data, "Signatures")
    assert line["rows"] == [] and "holds no signatures" in line["note"]
    html = render_report(inventory(), plots=False)
    after = html.split("holds no signatures")[1]
    assert "None." not in after[:80]
    signed = report_data(SAMPLE, plots=False)  # the sample holds signatures
    assert _table(signed, "Images without a signature")["rows"]


def test_the_plan_comes_right_after_the_headline_cards():
    html = render_report(SAMPLE)
    cards = html.index('<div class="cards">')
    plan = html.index("<h2>Cleanup plan</h2>")
    others = [m.start() for m in re.finditer(r"<h2>|<img ", html) if m.start() != plan]
    assert cards < plan < min(o for o in others if o > cards)
    assert html.index("reginsight cleanup") < html.index("<img ")


#: the smallest text a plot may show, in CSS pixels, at the size the report shows it
SMALLEST_PX = 11


def _drawn(plot, inv, size):
    with plt.rc_context(_report.READABLE):
        figure, ax = plt.subplots(figsize=size, layout="constrained")
        plot(inv, ax=ax)
        figure.canvas.draw()
    return figure, ax


@pytest.mark.parametrize("which", ["sample", "twenty"])
def test_plots_at_the_report_s_size_keep_every_label_inside_and_readable(which):
    from matplotlib.text import Text

    inv = SAMPLE if which == "sample" else _twenty()
    figures = _report._figures(inv)
    sizes = {f["title"]: f for f in figures}
    plots = {"storage by repository": ri.plot_storage,
             "storage by role": ri.plot_storage_by_role,
             "layer sharing": ri.plot_layer_sharing,
             "shared bytes between repositories": ri.plot_sharing_matrix,
             "image size and age": ri.plot_image_age}
    assert set(sizes) == set(plots)
    for title, plot in plots.items():
        width = _report._WIDE if sizes[title]["wide"] else _report._HALF
        size = next(s for t, p, s in _specs(inv) if t == title)
        assert size[0] == width
        figure, ax = _drawn(plot, inv, size)
        renderer = figure.canvas.get_renderer()
        box = figure.bbox
        inside = ax.get_window_extent(renderer)
        for text in figure.findobj(Text):
            if not text.get_text() or not text.get_visible():
                continue
            extent = text.get_window_extent(renderer)
            # the figure is drawn at 96 px an inch in the page: points * 96/72 = px
            assert text.get_fontsize() * 96 / 72 >= SMALLEST_PX, (title, text.get_text())
            assert (extent.x0 >= box.x0 - 1 and extent.x1 <= box.x1 + 1
                    and extent.y0 >= box.y0 - 1 and extent.y1 <= box.y1 + 1), (
                        title, text.get_text())
            if text in ax.texts:  # a bar's label, a cell's value: inside its axes
                assert (extent.x0 >= inside.x0 - 1 and extent.x1 <= inside.x1 + 1
                        and extent.y0 >= inside.y0 - 1 and extent.y1 <= inside.y1 + 1), (
                            title, text.get_text())
        plt.close(figure)
    halves = [n for n, f in enumerate(figures) if not f["wide"]]
    assert len(halves) == 2 and halves[1] == halves[0] + 1  # side by side, in one row


def _specs(inv):
    """(title, plot, size) as the report draws them."""
    calls = []
    original = _report._svg
    try:
        _report._svg = lambda plot, inv, size: calls.append((plot, size)) or ""
        figures = _report._figures(inv)
    finally:
        _report._svg = original
    return [(f["title"], plot, size) for f, (plot, size) in zip(figures, calls, strict=True)]


def _twenty() -> ri.Inventory:
    """The sample with its repositories copied under 20 names: a full heatmap."""
    inv = ri.sample()
    tags, manifests, layers = [], [], []
    for n in range(3):
        rename = {name: f"team{n}/{name.split('/')[1]}" for name in
                  inv.tags["repository"].cat.categories}
        tags.append(inv.tags.assign(repository=inv.tags["repository"].astype(str).map(
            lambda r, m=rename: m.get(r, r))))
        manifests.append(inv.manifests.assign(
            repository=inv.manifests["repository"].astype(str).map(
                lambda r, m=rename: m.get(r, r))))
        layers.append(inv.layers.assign(repository=inv.layers["repository"].astype(str).map(
            lambda r, m=rename: m.get(r, r))))
    children = inv.children
    copies = [children.assign(repository=children["repository"].astype(str).map(
        lambda r, n=n: f"team{n}/{r.split('/')[1]}")) for n in range(3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ri.Inventory(
            registry="http://twenty.test", taken_at=inv.taken_at,
            tags=pd.concat(tags, ignore_index=True).astype({"repository": "category"}),
            manifests=pd.concat(manifests, ignore_index=True).astype(
                {"repository": "category"}),
            layers=pd.concat(layers, ignore_index=True).astype({"repository": "category"}),
            blobs=inv.blobs,
            children=pd.concat(copies, ignore_index=True).astype({"repository": "category"}),
            errors=inv.errors)


def test_heatmap_cells_say_binary_units():
    ax = ri.plot_sharing_matrix(SAMPLE)
    ax.figure.canvas.draw()
    renderer = ax.figure.canvas.get_renderer()
    cells: dict[tuple[float, float], list] = {}
    for text in ax.texts:
        cells.setdefault(text.get_position(), []).append(text)
    read = set()
    for lines in cells.values():  # top to bottom, as a reader reads the cell
        lines.sort(key=lambda t: -t.get_window_extent(renderer).y0)
        read.add(" ".join(t.get_text() for t in lines))
    assert {"6.8 MiB", "15.4 MiB", "3.7 MiB", "0", "—"} == read
    plt.close(ax.figure)
