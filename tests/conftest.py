"""Fixtures: one real registry per test session, unique repository prefixes per test."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import reginsight as ri
from tests import storage_scenario as sc
from tests.images import Pusher
from tests.registry_server import RegistryServer
from tests.versions import registry_of, version_of

ON_CI = os.environ.get("CI") == "true"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Under CI=true a skipped test is a failure: a real-registry test that did not
    run proves nothing."""
    outcome = yield
    _fail_skips(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    _fail_skips(outcome.get_result())  # a module skipped whole, as it is collected


def _fail_skips(report: pytest.TestReport | pytest.CollectReport) -> None:
    if ON_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where every test must run: {report.longrepr}"


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same retry rules, shorter waits: tests meet many deliberate failures."""
    from reginsight.registry import _retry

    monkeypatch.setattr(_retry, "DEFAULT_POLICY", _retry.RetryPolicy(base=0.01, cap=0.05))


@pytest.fixture(scope="session")
def registry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """The shared real registry: delete enabled, schema1 accepted, plain HTTP on loopback."""
    server = RegistryServer(tmp_path_factory.mktemp("registry")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def registry_v3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """The shared real Distribution 3 registry (upstream v3.0.0): delete enabled, the
    OCI tag delete served, no schema1."""
    server = registry_of("3.0", tmp_path_factory.mktemp("registry-v3")).start()
    try:
        yield server
    finally:
        server.stop()


#: The real registries every crawl, read, write and cleanup test runs on: Debian's
#: Distribution 2.8 and upstream v3.0.0, one process each per session.
REGISTRY_VERSIONS = {"2.8": "registry_server", "3.0": "registry_v3"}


@pytest.fixture(scope="session", params=list(REGISTRY_VERSIONS))
def any_registry(request: pytest.FixtureRequest) -> RegistryServer:
    """Each real registry in turn (ids "2.8" and "3.0"): the session's shared server of
    that version, started the first time a test asks for it."""
    return request.getfixturevalue(REGISTRY_VERSIONS[request.param])


@pytest.fixture
def any_reg(any_registry: RegistryServer) -> Iterator[ri.Registry]:
    """A client of :func:`any_registry`."""
    with ri.Registry(any_registry.url) as client:
        yield client


@pytest.fixture(scope="session")
def registry_version(any_registry: RegistryServer) -> str:
    """The version of :func:`any_registry`: "2.8" or "3.0" (a test of what differs)."""
    return version_of(any_registry)


@pytest.fixture(scope="session")
def scenario_storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real registry's storage holding everything the tag API hides
    (tests/storage_scenario.py, prefix ``b``), the registry stopped: copy it to damage it."""
    server = RegistryServer(tmp_path_factory.mktemp("scenario")).start()
    pusher = Pusher(server.url)
    try:
        sc.build(pusher, "b")
    finally:
        pusher.close()
        server.stop()
    return server.storage


@pytest.fixture
def storage(scenario_storage: Path, tmp_path: Path) -> Path:
    """A copy of :func:`scenario_storage` of this test's own, to damage."""
    copy = tmp_path / "storage"
    shutil.copytree(scenario_storage, copy, symlinks=True)
    return copy


BASIC_USER, BASIC_PASSWORD = "alice", "s3cret-Pa55word"


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A second real registry, behind htpasswd (bcrypt) Basic auth."""
    import subprocess

    workdir = tmp_path_factory.mktemp("basic-registry")
    htpasswd = subprocess.run(["htpasswd", "-Bbn", BASIC_USER, BASIC_PASSWORD],
                              capture_output=True, text=True, check=True).stdout
    (workdir / "htpasswd").write_text(htpasswd)
    server = RegistryServer(workdir, overrides={
        "auth": {"htpasswd": {"realm": "reginsight-test", "path": str(workdir / "htpasswd")}},
    }).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def prefix() -> str:
    """A repository prefix no other test uses, so tests share one registry safely."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def reg(registry_server: RegistryServer) -> Iterator[ri.Registry]:
    with ri.Registry(registry_server.url) as client:
        yield client
