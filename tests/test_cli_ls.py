"""``reginsight ls URL [REPO] -l`` on the real registries (2.8 and 3.0): per tag its
size, creation time, full digest and platforms, in aligned columns, inert."""

from __future__ import annotations

import json
import re

import httpx

from reginsight._cli import main
from reginsight._units import format_bytes
from tests.dialect_proxy import Dialect, DialectProxy
from tests.images import Pushed, Pusher
from tests.supply_chain import SupplyChain
from tests.test_cli import run

HEADER = ["TAG", "SIZE", "CREATED", "DIGEST", "PLATFORMS"]


def _fixed(n: int) -> bytes:
    return b"\x07" * n


def _blobs(pushed: Pushed) -> dict[str, int]:
    """Digest -> size of the config and layers an image manifest names (as sent)."""
    doc = json.loads(pushed.raw)
    return {entry["digest"]: entry["size"] for entry in (doc["config"], *doc["layers"])}


def _index_bytes(*children: Pushed) -> int:
    """The distinct blobs of every manifest an index lists (attestations too)."""
    return sum({d: s for child in children for d, s in _blobs(child).items()}.values())


def _cells(line: str) -> list[str]:
    """A line's columns: separated by two spaces or more (a size holds one)."""
    return re.split(r" {2,}", line.strip())


def _columns_line_up(lines: list[str]) -> None:
    header = lines[0]
    digest_at, size_ends = header.index("DIGEST"), header.index("SIZE") + len("SIZE")
    for line in lines[1:]:
        assert line == line.rstrip()  # the last column is not padded
        cells = _cells(line)
        digest = cells[-2]
        assert line.index(digest) == digest_at, line  # left-aligned under its header
        size = cells[-4]
        assert line.index(size) + len(size) == size_ends, line  # numbers: on the right


def _scene(url: str, repo: str) -> dict[str, Pushed]:
    pusher = Pusher(url)
    chain = SupplyChain(pusher, noise=_fixed)
    shared = _fixed(3000)
    amd = pusher.image(repo, None, layers=(shared, b"a" * 5000), oci=True,
                       created="2026-03-01T10:00:00Z")
    arm = pusher.image(repo, None, layers=(shared, b"b" * 4000), oci=True,
                       architecture="arm64", variant="v8", created="2026-03-02T11:30:00Z")
    s390x = pusher.image(repo, None, layers=(b"s" * 1000,), oci=True, architecture="s390x",
                         created="2025-06-01T00:00:00Z")
    multi = chain.buildx_index(repo, "1.0", [
        (amd, {"os": "linux", "architecture": "amd64"}),
        (arm, {"os": "linux", "architecture": "arm64", "variant": "v8"})])
    nested = pusher.index(repo, "nested", [(multi, {}), (s390x, {"os": "linux",
                                                                  "architecture": "s390x"})])
    # an index declaring no platform for its child: the child's own config says it
    undeclared = pusher.index(repo, "undeclared", [(s390x, {})])
    big = pusher.image(repo, "1.0-amd64", layers=(b"c" * 2_000_000,),
                       created="2025-12-24T08:15:00Z")
    timeless = pusher.image(repo, "latest", layers=(b"d" * 1200,), created=None)
    chart = chain.helm_chart(repo, "0.1.0")
    # platform names are the registry's text: control characters and bidi overrides
    hostile = pusher.index(repo, "hostile", [(amd, {"os": "linux\x1b[2J",
                                                    "architecture": "amd\u202e64"})])
    return {"multi": multi, "amd": amd, "arm": arm, "s390x": s390x, "nested": nested,
            "undeclared": undeclared, "big": big, "timeless": timeless, "chart": chart,
            "hostile": hostile}


def test_long_listing_of_a_repository(any_registry, prefix):
    repo = f"{prefix}/app"
    scene = _scene(any_registry.url, repo)
    listed = run("ls", any_registry.url, repo, "-l")
    assert listed.returncode == 0 and listed.stderr == "", listed.stderr
    lines = listed.stdout.splitlines()
    assert _cells(lines[0]) == HEADER
    rows = {cells[0]: cells[1:] for cells in map(_cells, lines[1:])}
    assert list(rows) == ["0.1.0", "1.0", "1.0-amd64", "hostile", "latest", "nested",
                          "undeclared"]  # every tag, as plain ls lists them
    assert run("ls", any_registry.url, repo).stdout.split() == list(rows)
    multi_children = [scene["amd"], scene["arm"],
                      *_attestations(any_registry.url, repo, scene["multi"])]
    assert rows["1.0"] == [
        format_bytes(_index_bytes(*multi_children)), "2026-03-02T11:30:00Z",  # the newest
        scene["multi"].digest, "linux/amd64,linux/arm64/v8"]  # no unknown/unknown
    assert rows["1.0-amd64"] == ["1.9 MiB", "2025-12-24T08:15:00Z", scene["big"].digest,
                                 "linux/amd64"]
    assert rows["latest"] == [format_bytes(sum(_blobs(scene["timeless"]).values())), "-",
                              scene["timeless"].digest, "linux/amd64"]
    assert rows["nested"] == [
        format_bytes(_index_bytes(*multi_children, scene["s390x"])), "2026-03-02T11:30:00Z",
        scene["nested"].digest, "linux/amd64,linux/arm64/v8,linux/s390x"]
    assert rows["undeclared"][2:] == [scene["undeclared"].digest, "linux/s390x"]
    assert rows["0.1.0"] == [format_bytes(sum(_blobs(scene["chart"]).values())), "-",
                             scene["chart"].digest, "-"]  # a Helm chart: no platform
    assert rows["hostile"][3] == r"linux\x1b[2J/amd\u202e64"
    assert "\x1b" not in listed.stdout and "\u202e" not in listed.stdout
    _columns_line_up(lines)


def _attestations(url: str, repo: str, index: Pushed) -> list[Pushed]:
    """The attestation manifests a buildx index lists, as the registry serves them."""
    found = []
    for entry in json.loads(index.raw)["manifests"]:
        if entry.get("annotations", {}).get("vnd.docker.reference.type"):
            raw = httpx.get(f"{url}/v2/{repo}/manifests/{entry['digest']}",
                            headers={"Accept": entry["mediaType"]}).content
            found.append(Pushed(repo, entry["digest"], entry["digest"], entry["mediaType"],
                                raw))
    return found


def test_one_image_exactly(any_registry, prefix):
    repo = f"{prefix}/one"
    image = Pusher(any_registry.url).image(repo, "v1", layers=(b"x" * 1000,))
    size = format_bytes(sum(_blobs(image).values()))
    listed = run("ls", any_registry.url, repo, "-l")
    assert listed.stdout == (
        f"TAG  {' ' * (len(size) - 4)}SIZE  CREATED               DIGEST{' ' * 67}PLATFORMS\n"
        f"v1   {size}  2026-01-02T03:04:05Z  {image.digest}  linux/amd64\n")


def test_long_listing_of_the_registry_names_repositories(any_registry, prefix):
    pusher = Pusher(any_registry.url)
    web = pusher.image(f"{prefix}/web", "v1")
    api = pusher.image(f"{prefix}/api", "v2", architecture="arm64")
    listed = run("ls", any_registry.url, "-l")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert _cells(lines[0]) == ["REPOSITORY", *HEADER]
    ours = [_cells(line) for line in lines[1:] if line.startswith(f"{prefix}/")]
    assert [(cells[0], cells[1], cells[4], cells[5]) for cells in ours] == [
        (f"{prefix}/api", "v2", api.digest, "linux/arm64"),
        (f"{prefix}/web", "v1", web.digest, "linux/amd64")]
    _columns_line_up(lines)


def test_a_missing_repository_and_an_empty_one(any_registry, any_reg, prefix):
    missing = run("ls", any_registry.url, f"{prefix}/missing", "-l")
    assert missing.returncode == 1 and missing.stdout == ""
    assert f"not found: {prefix}/missing (NAME_UNKNOWN" in missing.stderr
    image = Pusher(any_registry.url).image(f"{prefix}/emptied", "v1")
    any_reg.delete_manifest(f"{prefix}/emptied", image.digest)
    emptied = run("ls", any_registry.url, f"{prefix}/emptied", "-l")
    plain = run("ls", any_registry.url, f"{prefix}/emptied")
    assert (emptied.returncode, emptied.stdout) == (plain.returncode, plain.stdout)


def _gone(tag: str) -> Dialect:
    """A tag listed, then deleted before its manifest is read (404 MANIFEST_UNKNOWN)."""
    body = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN",
                                   "message": "manifest unknown"}]}).encode()
    return Dialect("tag gone", before=lambda method, path: (
        (404, {"Content-Type": "application/json"}, body)
        if path.split("?")[0].endswith(f"/manifests/{tag}") else None))


def test_a_tag_that_cannot_be_read_is_listed_and_warned_about(any_registry, prefix,
                                                              capsys):
    repo = f"{prefix}/app"
    pusher = Pusher(any_registry.url)
    kept = pusher.image(repo, "kept")
    pusher.image(repo, "gone")
    with DialectProxy(any_registry.url, dialects=(_gone("gone"),)) as proxy:
        assert main(["ls", proxy.url, repo, "-l"]) == 0
    out, err = capsys.readouterr()
    rows = [_cells(line) for line in out.splitlines()[1:]]
    assert rows == [["gone", "-", "-", "-", "-"],
                    ["kept", rows[1][1], "2026-01-02T03:04:05Z", kept.digest, "linux/amd64"]]
    assert err.startswith("reginsight: warning: 1 ") and f"{repo}:gone" in err
    assert "MANIFEST_UNKNOWN" in err or "manifest unknown" in err
