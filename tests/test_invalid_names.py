"""Names a registry lists that break the name grammar: one of them must not cost the
crawl everything else. The real registry holds the repositories; what the catalog or
a tag list serves beside them comes from a proxy that adds entries to the real answer
(tests/dialect_proxy.py), or from folders planted in the storage of a registry of the
test's own, which Distribution 2.8 lists as they are. Every test checks what was read,
the errors rows, and that no request was ever built from an invalid name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pandas.testing as pdt
import pytest

import reginsight as ri
from tests.dialect_proxy import Dialect, DialectProxy, Reply
from tests.images import Pusher
from tests.registry_server import RegistryServer

GRAMMAR = "breaks the repository-name grammar"


def _catalog_adding(prefix: str, extra: list[object]) -> Dialect:
    """The real catalog, cut to the test's own repositories (other tests share the
    registry), with ``extra`` entries on its first page."""

    def after(method: str, path: str, reply: Reply) -> Reply:
        status, headers, body = reply
        if not path.startswith("/v2/_catalog") or status != 200:
            return reply
        names = [n for n in json.loads(body)["repositories"] if n.startswith(prefix + "/")]
        if "last=" not in path:
            names += extra
        return status, headers, json.dumps({"repositories": names}).encode()

    return Dialect("catalog with invalid names", after=after)


def _tags_adding(repository: str, extra: list[object]) -> Dialect:
    """The real tag list of ``repository``, with ``extra`` entries."""

    def after(method: str, path: str, reply: Reply) -> Reply:
        status, headers, body = reply
        if path.split("?")[0] != f"/v2/{repository}/tags/list" or status != 200:
            return reply
        doc = json.loads(body)
        doc["tags"] = [*doc["tags"], *extra]
        return status, headers, json.dumps(doc).encode()

    return Dialect("tag list with invalid tags", after=after)


def _only_valid_paths(proxy: DialectProxy, repositories: list[str]) -> None:
    """Every request the proxy saw was the ping, the catalog, or under a valid
    repository: none carried an invalid name."""
    strays = [(method, path) for method, path in proxy.seen
              if path != "/v2/" and not path.startswith("/v2/_catalog")
              and not any(path.startswith(f"/v2/{repo}/") for repo in repositories)]
    assert strays == []


@pytest.fixture
def two(registry_server, prefix) -> list[str]:
    """Two repositories under the test's prefix, two tags and one tag."""
    pusher = Pusher(registry_server.url)
    pusher.image(f"{prefix}/a", "v1")
    pusher.image(f"{prefix}/a", "v2")
    pusher.image(f"{prefix}/b", "v1")
    pusher.close()
    return [f"{prefix}/a", f"{prefix}/b"]


def _pairs(inventory: ri.Inventory) -> list[tuple[str, str]]:
    return sorted(zip(inventory.tags["repository"].astype(str), inventory.tags["tag"],
                      strict=True))


def test_an_invalid_name_in_the_catalog_is_an_errors_row_and_the_rest_is_read(
        registry_server, prefix, two, tmp_path):
    extra = ["../../escape", f"{prefix}/Upper", f"{prefix}/%2e%2e/x", "x" * 300, 7, "",
             "clear\x1b[2J"]
    with DialectProxy(registry_server.url, dialects=(_catalog_adding(prefix, extra),)
                      ) as proxy, ri.Registry(proxy.url) as reg:
        inventory = ri.crawl(reg, progress=False)
        _only_valid_paths(proxy, two)
    assert _pairs(inventory) == [(two[0], "v1"), (two[0], "v2"), (two[1], "v1")]
    assert inventory.repositories == tuple(two)
    errors = inventory.errors.astype({"repository": str})
    shown = list(errors["repository"])
    # as listed where that is safe to show; cut when long; a number is no name
    cut = "x" * 100 + "... (300 characters)"
    assert sorted(shown) == sorted(["../../escape", f"{prefix}/Upper", f"{prefix}/%2e%2e/x",
                                    cut, "<not a string: 7>", "<empty>",
                                    "clear\\x1b[2J"])  # a terminal escape, escaped
    assert set(errors["reference"]) == {""} and set(errors["stage"]) == {"catalog"}
    assert all(GRAMMAR in error and "not read" in error for error in errors["error"])
    # no shown name passes for a repository a reader could look for
    for name in shown:
        with pytest.raises(ri.InvalidReference):
            ri.parse_reference(f"registry.example/{name}:v1")
    # the rows survive a save: no name reaches a path
    inventory.save(tmp_path / "inv")
    assert sorted(os.listdir(tmp_path)) == ["inv"]
    pdt.assert_frame_equal(ri.Inventory.load(tmp_path / "inv").errors, inventory.errors)


def test_a_crawl_of_a_pattern_reports_only_the_invalid_names_it_covers(
        registry_server, prefix, two):
    extra = ["../../escape", f"{prefix}/Upper"]
    with DialectProxy(registry_server.url, dialects=(_catalog_adding(prefix, extra),)
                      ) as proxy, ri.Registry(proxy.url) as reg:
        inventory = ri.crawl(reg, f"{prefix}/*", progress=False)
        _only_valid_paths(proxy, two)
        listed = subprocess.run([sys.executable, "-m", "reginsight", "ls", proxy.url],
                                capture_output=True, text=True, timeout=60)
    # `ls` lists the valid names and warns of the others
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == two
    assert "the catalog lists ../../escape, not a repository name" in listed.stderr
    assert _pairs(inventory) == [(two[0], "v1"), (two[0], "v2"), (two[1], "v1")]
    assert list(inventory.errors["repository"].astype(str)) == [f"{prefix}/Upper"]


def test_repositories_still_refuses_a_catalog_with_an_invalid_name(
        registry_server, prefix, two):
    """A user's own ``reg.repositories()`` keeps its contract (every name it returns
    can be asked for); ``reg.catalog()`` sets the invalid ones apart."""
    with DialectProxy(registry_server.url, dialects=(
            _catalog_adding(prefix, ["../../escape"]),)) as proxy, \
            ri.Registry(proxy.url) as reg:
        with pytest.raises(ri.ProtocolViolation, match="invalid repository name"):
            reg.repositories()
        listing = reg.catalog()
    assert listing.names == tuple(two)
    assert [entry.shown for entry in listing.invalid] == ["../../escape"]


def test_an_invalid_tag_costs_its_repository_not_the_crawl(registry_server, prefix, two):
    """A tag list with an invalid tag: that repository is one errors row (which tag
    list cannot be trusted), every other repository is read, no request names the tag."""
    with DialectProxy(registry_server.url, dialects=(
            _catalog_adding(prefix, []), _tags_adding(two[0], ["../../x"]))) as proxy, \
            ri.Registry(proxy.url) as reg:
        inventory = ri.crawl(reg, progress=False)
        assert not any("../" in path or "%2e" in path.lower() for _, path in proxy.seen)
        assert proxy.count("GET", f"/v2/{two[0]}/manifests/") == 0
    assert _pairs(inventory) == [(two[1], "v1")]
    errors = inventory.errors.astype({"repository": str})
    assert list(zip(errors["repository"], errors["stage"], strict=True)) == [(two[0], "tags")]
    assert "invalid tag" in errors["error"].iloc[0] and "../../x" in errors["error"].iloc[0]


# -------------------------------------------- a real catalog that lists bad names


PLANTED = ["Upper", "%2e%2e", "sp ace"]


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Iterator[RegistryServer]:
    """A registry of this module's own (its catalog would show in every whole-catalog
    crawl of the shared one): ``good/app`` and ``good/web`` pushed, and folders planted
    beside them in its storage that Distribution 2.8 lists as repositories."""
    server = RegistryServer(tmp_path_factory.mktemp("planted")).start()
    try:
        pusher = Pusher(server.url)
        pusher.image("good/app", "v1")
        pusher.image("good/web", "v1")
        pusher.close()
        for name in PLANTED:
            (server.storage / "docker/registry/v2/repositories/good" / name / "_layers"
             ).mkdir(parents=True)
        yield server
    finally:
        server.stop()


def test_names_planted_in_storage_are_errors_rows(planted):
    with DialectProxy(planted.url) as proxy, ri.Registry(proxy.url) as reg:
        listing = reg.catalog()
        assert {entry.shown for entry in listing.invalid} == {f"good/{n}" for n in PLANTED}
        inventory = ri.crawl(reg, progress=False)
        _only_valid_paths(proxy, ["good/app", "good/web"])
    assert _pairs(inventory) == [("good/app", "v1"), ("good/web", "v1")]
    errors = inventory.errors.astype({"repository": str})
    assert sorted(errors["repository"]) == sorted(f"good/{n}" for n in PLANTED)
    assert set(errors["stage"]) == {"catalog"}


def test_the_distributed_crawl_gives_the_same_rows(planted):
    import distributed  # the dask extra: scripts/test.sh installs it

    with DialectProxy(planted.url) as proxy, ri.Registry(proxy.url) as reg, \
            distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                     dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        sharded = ri.crawl(reg, progress=False, cluster=client)
        _only_valid_paths(proxy, ["good/app", "good/web"])
        single = ri.crawl(reg, progress=False)
    for (name, x), (_, y) in zip(sharded.frames(), single.frames(), strict=True):
        pdt.assert_frame_equal(x, y, obj=name)
    assert len(sharded.errors) == len(PLANTED)
