"""``reginsight cleanup`` against the real registries (Distribution 2.8 and 3.0): the dry
run deletes nothing and shows full references; a plan written with -o is applied later,
row for row, and a row whose tag moved since is skipped (exit 3); the untagged manifests
a storage scan finds are deleted through the API, and the registry's own garbage collector
then frees exactly the bytes printed; a bad plan file deletes nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

import reginsight as ri
from reginsight._cli import main
from tests import storage_scenario as sc
from tests.images import Pusher
from tests.registry_server import RegistryServer
from tests.versions import VERSIONS

# the oracles plan from a crawl of two repositories, as the command does: it says so
pytestmark = pytest.mark.filterwarnings("ignore::reginsight.PartialInventoryWarning")

RULES = ["--keep-last", "1", "--older-than", "0d", "--protect", ""]
FULL = re.compile(r"@(sha256:[0-9a-f]+)")


def cleanup(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["cleanup", *argv, "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


class Filled:
    """What :func:`filled` pushed: ``app`` (v0 < v1 < v2 = latest) and ``multi`` (an
    index ``all`` over two untagged children, and the newer image ``new``)."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url, self.app, self.multi = url, f"{prefix}/app", f"{prefix}/multi"
        p = Pusher(url)
        try:
            base = b"base " * 3000
            self.images = {tag: p.image(self.app, tag, layers=(base, tag.encode() * 900),
                                        created=f"{day}T00:00:00Z")
                           for tag, day in (("v0", "2024-01-01"), ("v1", "2024-06-01"),
                                            ("v2", "2025-01-01"))}
            p.manifest(self.app, "latest", self.images["v2"].raw, self.images["v2"].media_type)
            amd = p.image(self.multi, None, oci=True, layers=(b"amd" * 700,),
                          created="2024-05-05T00:00:00Z")
            arm = p.image(self.multi, None, oci=True, layers=(b"arm" * 700,),
                          architecture="arm64", created="2024-05-05T00:00:00Z")
            self.index = p.index(self.multi, "all", [
                (amd, {"os": "linux", "architecture": "amd64"}),
                (arm, {"os": "linux", "architecture": "arm64"})])
            self.children = [amd, arm]
            p.image(self.multi, "new", oci=True, layers=(b"new" * 300,),
                    created="2026-11-25T00:00:00Z")
        finally:
            p.close()

    @property
    def scope(self) -> list[str]:
        return ["--repositories", f"{self.app},{self.multi}"]

    def tags(self) -> dict[str, set[str]]:
        with ri.Registry(self.url) as reg:
            return {repo: set(reg.tags(repo)) for repo in (self.app, self.multi)}

    def plan(self) -> pd.DataFrame:
        """What the library plans with RULES: the oracle of the command's output."""
        with ri.Registry(self.url) as reg:
            inv = ri.crawl(reg, [self.app, self.multi], progress=False)
        return ri.plan_cleanup(inv, keep_last=1, older_than=None, protect=None)


@pytest.fixture
def filled(any_registry: RegistryServer, prefix: str) -> Filled:
    return Filled(any_registry.url, prefix)


def _exists(url: str, repository: str, digest: str) -> bool:
    with ri.Registry(url) as reg:
        try:
            reg.manifest_digest(repository, digest)
        except ri.NotFound:
            return False
    return True


def _bytes(out: str, after: str) -> int:
    """The figure ``(N bytes)`` printed on the line that has ``after`` in it."""
    line = next(line for line in out.splitlines() if after in line)
    return int(re.findall(r"\(([\d,]+) bytes\)", line)[-1].replace(",", ""))


def test_dry_run_prints_full_references_and_bytes_and_deletes_nothing(filled, capsys):
    before = filled.tags()
    plan = filled.plan()
    doomed = plan[plan["action"] == "delete"]
    # the tags v0, v1 and the index all; its two children with it
    assert set(doomed["tag"].dropna()) == {"v0", "v1", "all"} and len(doomed) == 5
    code, out, err = cleanup(capsys, filled.url, *RULES, *filled.scope)
    assert code == 0, err
    assert out.rstrip().endswith("dry run: nothing deleted; add --yes to delete")
    shown = FULL.findall(out)
    assert shown and all(len(digest) == len("sha256:") + 64 for digest in shown)
    would = [line for line in out.splitlines() if line.strip().startswith("would delete")]
    assert len(would) == 5
    for repository, digest in set(zip(doomed["repository"], doomed["digest"], strict=True)):
        assert sum(f"{repository}@{digest}" in line for line in would) == 1
    v0 = next(line for line in would if "tag v0" in line)
    by_digest, _ = ri.plan_frees(ri.crawl(ri.Registry(filled.url), [filled.app, filled.multi],
                                          progress=False), plan)
    frees = by_digest.set_index("digest")["frees"]
    assert f"frees {ri.format_bytes(int(frees[filled.images['v0'].digest]))}" in v0
    assert _bytes(out, "would free") == plan.attrs["reclaimable_bytes"] > 0
    assert "garbage-collect " not in out  # the commands come after an apply
    assert filled.tags() == before
    for child in filled.children:
        assert _exists(filled.url, filled.multi, child.digest)


def test_a_plan_written_with_o_is_applied_row_for_row(filled, capsys, tmp_path):
    plan_file = tmp_path / "plan.csv"
    code, _, err = cleanup(capsys, filled.url, *RULES, *filled.scope, "-o", str(plan_file))
    assert code == 0 and f"wrote {plan_file}" in err
    saved = ri.load_plan(plan_file)
    expected = filled.plan()
    assert saved[["repository", "tag", "digest", "action"]].equals(
        expected[["repository", "tag", "digest", "action"]])
    before = filled.tags()
    # --repositories scopes a plan file: only app's rows now
    code, out, err = cleanup(capsys, filled.url, "--plan", str(plan_file), "--yes",
                             "--repositories", filled.app)
    assert code == 0, out + err
    assert filled.tags() == {filled.app: {"v2", "latest"}, filled.multi: before[filled.multi]}
    assert not _exists(filled.url, filled.app, filled.images["v0"].digest)
    assert _exists(filled.url, filled.multi, filled.index.digest)
    deleted = [line for line in out.splitlines() if line.strip().startswith("deleted")]
    assert len(deleted) == 2 and all(filled.app + "@sha256:" in line for line in deleted)
    assert "next: run the registry's garbage collector; it frees" in out
    assert "registry garbage-collect /etc/distribution/config.yml" in out  # no --collector:
    assert "docker-registry garbage-collect /etc/docker/registry/config.yml" in out  # both
    # the rest of the plan, later
    code, out, err = cleanup(capsys, filled.url, "--plan", str(plan_file), "--yes",
                             *filled.scope)
    assert code == 0, out + err  # app's rows, applied already, are no refusal
    assert out.count("(no longer exists)") == 2
    assert filled.tags() == {filled.app: {"v2", "latest"}, filled.multi: {"new"}}
    for child in filled.children:  # the index's children went with it: rows of the plan
        assert not _exists(filled.url, filled.multi, child.digest)
    assert _exists(filled.url, filled.app, filled.images["v2"].digest)


def test_a_tag_moved_since_the_plan_is_skipped_and_kept(filled, capsys, tmp_path):
    plan_file = tmp_path / "plan.json"
    assert cleanup(capsys, filled.url, *RULES, *filled.scope, "-o", str(plan_file))[0] == 0
    v0, v2 = filled.images["v0"], filled.images["v2"]
    with ri.Registry(filled.url) as reg:
        reg.put_manifest(filled.app, "v1", reg.manifest(filled.app, "v2"))  # v1 moves
        reg.put_manifest(filled.app, "hotfix", reg.manifest(filled.app, "v0"))  # v0 gains one
    # a dry run says so already, and deletes nothing
    code, out, _ = cleanup(capsys, filled.url, "--plan", str(plan_file), *filled.scope)
    assert code == 0 and out.count("  skipped ") == 2
    code, out, err = cleanup(capsys, filled.url, "--plan", str(plan_file), "--yes",
                             *filled.scope)
    assert code == 3, out + err
    skipped = {line.split()[1]: line for line in out.splitlines()
               if line.strip().startswith("skipped")}
    assert f"(moved to {v2.digest})" in skipped[f"{filled.app}@{filled.images['v1'].digest}"]
    assert "now also tagged hotfix; not in the plan" in skipped[f"{filled.app}@{v0.digest}"]
    assert filled.tags()[filled.app] == {"v0", "v1", "v2", "latest", "hotfix"}
    assert _exists(filled.url, filled.app, v0.digest)
    assert filled.tags()[filled.multi] == {"new"}  # the rest of the plan was applied


@pytest.mark.parametrize("version", list(VERSIONS))
def test_untagged_cleanup_then_garbage_collect_frees_the_bytes_printed(version, tmp_path,
                                                                       capsys):
    server = sc.server(version, tmp_path / "registry").start()
    try:
        pusher = Pusher(server.url)
        try:
            scenario = sc.build(pusher, "u")
        finally:
            pusher.close()
        root = str(server.storage)
        with ri.Registry(server.url) as reg:
            tags = {repo: set(reg.tags(repo)) for repo in ("u/app", "u/multi")}
        plan_file = tmp_path / "untagged.csv"
        code, out, err = cleanup(capsys, server.url, "--untagged", "--storage", root,
                                 "-o", str(plan_file))
        assert code == 0, err
        planned = set(FULL.findall(out))
        # the two images 'latest' left behind; never the index's untagged children
        assert len(planned) == 2 and planned <= scenario.untagged
        assert not planned & {child.digest for child in scenario.children}
        assert "(untagged)" in out and "keeps 3 tags" in out
        in_all = _bytes(out, "in all")
        # the saved plan: a crawl cannot see its rows, so it says their bytes are missing;
        # read with the storage, the same figures
        code, out, err = cleanup(capsys, server.url, "--plan", str(plan_file))
        assert code == 0, err
        assert set(FULL.findall(out)) == planned and out.count("would delete") == 2
        assert "not counted: 2 manifests the crawl does not hold" in out
        code, out, err = cleanup(capsys, server.url, "--plan", str(plan_file), "--storage",
                                 root)
        assert code == 0 and _bytes(out, "in all") == in_all and "not counted" not in out
        code, out, err = cleanup(capsys, server.url, "--untagged", "--storage", root,
                                 "--yes", "--collector", version[0])
        assert code == 0, out + err
        assert set(FULL.findall(out)) == planned
        if version == "3.0":
            assert "registry garbage-collect /etc/distribution/config.yml" in out
            assert "docker-registry" not in out
        else:
            assert "sudo docker-registry garbage-collect /etc/docker/registry/config.yml" in out
            assert "/etc/distribution" not in out
        printed = _bytes(out, "in all")  # what the deletions release, and the loose blobs
        assert _bytes(out, "it frees") < printed
        before = sc.blob_bytes(server.storage)
        server.stop()
        server.garbage_collect()
        after = sc.blob_bytes(server.storage)
        assert sum(size for digest, size in before.items() if digest not in after) == printed
        assert not planned & set(after)
        server.start()
        with ri.Registry(server.url) as reg:  # every tag, every child of the index, pulls
            assert {repo: set(reg.tags(repo)) for repo in tags} == tags
            for child in scenario.children:
                for layer in reg.manifest("u/multi", child.digest).layers:
                    with reg.download_blob("u/multi", layer.digest) as stream:
                        stream.read()
    finally:
        server.stop()


def _short_digests(path: Path) -> None:
    text = path.read_text()
    path.write_text(re.sub(r"(sha256:[0-9a-f]{12})[0-9a-f]{52}", r"\1", text))


@pytest.mark.parametrize(("name", "damage", "words"), [
    ("short.csv", _short_digests, "is shortened; the plan needs full digests"),
    ("columns.csv", lambda p: p.write_text(p.read_text().replace("digest,", "sha,", 1)),
     "missing the plan columns ['digest']"),
    ("garbage.csv", lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff"), "not UTF-8"),
    ("list.json", lambda p: p.write_text(json.dumps({"rows": []})), "a list of row objects"),
    ("plan.txt", lambda p: None, "a plan file is .csv or .json"),
])
def test_a_bad_plan_file_deletes_nothing(filled, capsys, tmp_path, name, damage, words):
    path = tmp_path / name
    ri.save_plan(filled.plan(), path.with_suffix(".json" if name.endswith(".json")
                                                  else ".csv"))
    if path.suffix == ".txt":
        path.write_text(path.with_suffix(".csv").read_text())
    damage(path)
    before = filled.tags()
    code, out, err = cleanup(capsys, filled.url, "--plan", str(path), "--yes", *filled.scope)
    assert code == 1 and out == ""
    assert err.startswith("reginsight: ") and err.count("\n") == 1 and words in err
    assert filled.tags() == before


def test_what_a_plan_file_says_is_printed_inert(filled, capsys, tmp_path):
    plan = filled.plan()
    plan["reason"] = "\x1b]0;owned\x07\x1b[2J\u202eevil"
    path = ri.save_plan(plan, tmp_path / "plan.csv")
    code, out, _ = cleanup(capsys, filled.url, "--plan", str(path), *filled.scope)
    assert code == 0 and out.count("\\x1b]0;owned\\x07") == 5
    assert not any(c in out for c in "\x1b\x07\u202e")


@pytest.mark.parametrize(("argv", "words"), [
    (["--plan", "p.csv", "--keep-last", "3"], "--plan FILE is applied as it is: --keep-last"),
    (["--plan", "p.csv", "--untagged", "--orphans"], "--untagged, --orphans would plan another"),
    (["--untagged"], "--untagged needs --storage ROOT"),
    (["--older-than", "soon"], "--older-than 'soon'"),
    (["-o", "plan.html"], "-o plan.html: a plan file is .csv or .json"),
])
def test_flags_that_contradict_are_refused_before_anything_is_read(filled, capsys, argv,
                                                                   words):
    before = filled.tags()
    code, out, err = cleanup(capsys, filled.url, *argv, "--yes", *filled.scope)
    assert code == 2 and words in err and out == ""
    assert filled.tags() == before


def test_o_never_replaces_a_file_that_is_not_a_plan(filled, capsys, tmp_path):
    precious = tmp_path / "budget.csv"
    precious.write_text("month,amount\n1,1200\n")
    before = filled.tags()
    code, _, err = cleanup(capsys, filled.url, *RULES, *filled.scope, "--yes", "-o",
                           str(precious))
    assert code == 1 and "is not a plan file: not replaced" in err
    assert precious.read_text() == "month,amount\n1,1200\n" and filled.tags() == before


def test_a_storage_that_is_not_the_registrys_is_refused(filled, scenario_storage, capsys):
    before = filled.tags()
    code, out, err = cleanup(capsys, filled.url, "--untagged", "--storage",
                             str(scenario_storage), "--yes")
    assert code == 2 and "does not look like the storage of" in err and out == ""
    assert filled.tags() == before


@pytest.mark.parametrize("version", list(VERSIONS))
def test_deletion_disabled_stops_and_says_what_was_done(version, tmp_path, capsys):
    server = sc.server(version, tmp_path / "nodelete",
                       {"storage": {"delete": {"enabled": False}}}).start()
    try:
        filled = Filled(server.url, "d")
        code, out, err = cleanup(capsys, server.url, *RULES, "--yes")
        assert code == 1
        assert "stopped: the registry refused to delete" in out
        assert "  failed " in out and "  not attempted " in out and "  deleted " not in out
        assert "refused to delete" in err and err.count("\n") == 1
        assert filled.tags()[filled.app] == {"v0", "v1", "v2", "latest"}
    finally:
        server.stop()
