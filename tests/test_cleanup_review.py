"""Review of ``reginsight cleanup`` and plan files, against the real registries: what a
plan (made by the tool, or edited by hand) must never take from what stays; bad files
and paths refused with a typed error, nothing written where it was not asked."""

from __future__ import annotations

import pytest

import reginsight as ri
from tests.images import Pushed, Pusher
from tests.registry_server import RegistryServer
from tests.supply_chain import SupplyChain, subject_tag
from tests.test_cli_cleanup import _exists, cleanup

pytestmark = pytest.mark.filterwarnings("ignore::reginsight.PartialInventoryWarning")

RULES = ["--keep-last", "1", "--older-than", "0d", "--protect", ""]


class Signed:
    """``app``: v0 (old, with a cosign signature, an OCI 1.1 SBOM and its referrers
    fallback index) and v1 (newest); ``loose``: an SBOM of v1 with no fallback tag."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url, self.app = url, f"{prefix}/app"
        pusher = Pusher(url)
        try:
            chain = SupplyChain(pusher)
            self.v0 = pusher.image(self.app, "v0", created="2024-01-01T00:00:00Z")
            self.v1 = pusher.image(self.app, "v1", created="2025-01-01T00:00:00Z")
            self.signature = chain.cosign_signature(self.app, self.v0.digest)
            self.sbom = chain.spdx_sbom(self.app, self.v0)
            self.loose = chain.spdx_sbom(self.app, self.v1, fallback=False)
        finally:
            pusher.close()

    def referrers_of_v0(self) -> dict[str, str]:
        return {"signature": self.signature.digest, "sbom": self.sbom.digest,
                "fallback": self.fallback_digest()}

    def fallback_digest(self) -> str:
        with ri.Registry(self.url) as reg:
            return reg.manifest_digest(self.app, subject_tag(self.v0.digest))

    def tag(self, tag: str, image: Pushed) -> None:
        pusher = Pusher(self.url)
        try:
            pusher.manifest(self.app, tag, image.raw, image.media_type)
        finally:
            pusher.close()


@pytest.fixture
def signed(any_registry: RegistryServer, prefix: str) -> Signed:
    return Signed(any_registry.url, prefix)


def test_the_referrers_of_an_image_that_stays_stay(signed, capsys, tmp_path):
    """The plan deletes v0 with its signature, SBOM and fallback index; v0 gains a tag
    before the apply, so v0 stays: so must every referrer of it."""
    plan_file = tmp_path / "plan.csv"
    code, _, err = cleanup(capsys, signed.url, *RULES, "--repositories", signed.app,
                           "-o", str(plan_file))
    assert code == 0, err
    referrers = signed.referrers_of_v0()
    planned = set(ri.load_plan(plan_file).query("action == 'delete'")["digest"])
    assert planned == {signed.v0.digest, *referrers.values()}  # the plan deletes them all
    signed.tag("hotfix", signed.v0)
    code, out, err = cleanup(capsys, signed.url, "--plan", str(plan_file), "--yes",
                             "--repositories", signed.app)
    assert code == 3, out + err
    assert " deleted " not in out
    for what, digest in referrers.items():
        assert _exists(signed.url, signed.app, digest), what
    with ri.Registry(signed.url) as reg:
        assert {subject_tag(signed.v0.digest), subject_tag(signed.v0.digest, ".sig"),
                "v0", "hotfix", "v1"} <= set(reg.tags(signed.app))


def test_an_image_and_its_referrers_still_go_together(signed, capsys):
    """Referrers are decided after their subject: a plan deleting both deletes both."""
    referrers = signed.referrers_of_v0()
    code, out, err = cleanup(capsys, signed.url, *RULES, "--repositories", signed.app,
                             "--yes")
    assert code == 0, out + err
    assert not _exists(signed.url, signed.app, signed.v0.digest)
    for what, digest in referrers.items():
        assert not _exists(signed.url, signed.app, digest), what
    assert _exists(signed.url, signed.app, signed.loose.digest)  # v1's, kept


def test_a_hand_written_row_deleting_a_kept_images_sbom_is_skipped(signed, capsys,
                                                                    tmp_path):
    plan_file = tmp_path / "plan.csv"
    plan_file.write_text("repository,tag,digest,created,action,reason\n"
                         f"{signed.app},,{signed.loose.digest},,delete,untagged\n")
    code, out, err = cleanup(capsys, signed.url, "--plan", str(plan_file), "--yes",
                             "--repositories", signed.app)
    assert code == 3, out + err
    assert f"referrer of {signed.v1.digest}" in out
    assert _exists(signed.url, signed.app, signed.loose.digest)


def test_o_leaves_a_symlink_and_what_it_points_at_alone(signed, capsys, tmp_path):
    """-o onto a symbolic link: the link is not replaced by a file, nor written through
    (to somewhere outside the folder named); nor a dangling one."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    other = ri.save_plan(ri.load_plan(_one_row_plan(signed, tmp_path / "one.csv")),
                         elsewhere / "theirs.csv")
    before = other.read_text()
    here = tmp_path / "here"
    here.mkdir()
    (here / "link.csv").symlink_to(other)
    (here / "dangling.csv").symlink_to(elsewhere / "none.csv")
    tags = set(ri.Registry(signed.url).tags(signed.app))
    for link in ("link.csv", "dangling.csv"):
        code, out, err = cleanup(capsys, signed.url, *RULES, "--repositories", signed.app,
                                 "--yes", "-o", str(here / link))
        assert code == 1 and "symbolic link" in err and out == "", err
        assert (here / link).is_symlink()
    assert other.read_text() == before and not (elsewhere / "none.csv").exists()
    assert sorted(p.name for p in here.iterdir()) == ["dangling.csv", "link.csv"]
    assert set(ri.Registry(signed.url).tags(signed.app)) == tags  # nothing deleted


def test_o_in_a_missing_folder_is_a_usage_error_before_the_crawl(signed, capsys, tmp_path):
    code, out, err = cleanup(capsys, signed.url, *RULES, "--repositories", signed.app,
                             "--yes", "-o", str(tmp_path / "no" / "plan.csv"))
    assert code == 2 and "no such folder" in err and out == "", err
    assert not (tmp_path / "no").exists()
    with pytest.raises(ri.PlanError, match="no such folder"):
        ri.save_plan(ri.load_plan(_one_row_plan(signed, tmp_path / "one.csv")),
                     tmp_path / "no" / "plan.csv")
    assert _exists(signed.url, signed.app, signed.v0.digest)


def _one_row_plan(signed: Signed, path):
    path.write_text("repository,tag,digest,created,action,reason\n"
                    f"{signed.app},v1,{signed.v1.digest},,keep,newest\n")
    return path


def test_a_json_row_naming_a_field_twice_is_refused(signed, capsys, tmp_path):
    """`"action": "keep", ..., "action": "delete"`: JSON readers take either; a plan
    whose rows become DELETEs says which, once."""
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(
        f'[{{"repository": "{signed.app}", "tag": "v0", "digest": "{signed.v0.digest}", '
        '"created": null, "action": "keep", "reason": "pinned", "action": "delete"}]\n')
    code, out, err = cleanup(capsys, signed.url, "--plan", str(plan_file), "--yes",
                             "--repositories", signed.app)
    assert code == 1 and out == "" and "'action' twice" in err, out + err
    assert _exists(signed.url, signed.app, signed.v0.digest)


def test_an_interrupted_apply_says_what_it_deleted_and_what_it_did_not(signed, capsys,
                                                                       monkeypatch):
    """Ctrl-C after the first DELETE: the rows done, the one cut short and those never
    attempted are all listed, and nothing after the interruption is sent."""
    real_delete = ri.Registry.delete_manifest
    sent: list[str] = []

    def delete_then_interrupt(reg, repository, digest):
        if sent:
            raise KeyboardInterrupt
        sent.append(digest)
        real_delete(reg, repository, digest)

    monkeypatch.setattr(ri.Registry, "delete_manifest", delete_then_interrupt)
    code, out, err = cleanup(capsys, signed.url, *RULES, "--repositories", signed.app,
                             "--yes")
    assert code == 1 and "interrupted (Ctrl-C)" in err, out + err
    assert "stopped: interrupted" in out and "registry refused" not in out
    assert sent == [signed.v0.digest] and not _exists(signed.url, signed.app, sent[0])
    assert "unchecked" in out and "not attempted" in out
    for what, digest in signed.referrers_of_v0().items():  # cut short or never sent
        assert _exists(signed.url, signed.app, digest), what
