"""A crawl through a proxy that makes the real registry misbehave: 429s, 503s, resets,
truncated and slow answers, tampered bytes. Same inventory, or an explicit error row."""

from __future__ import annotations

import email.utils
import hashlib
import json
import threading
import time

import pandas.testing as pdt
import pytest

import reginsight as ri
from reginsight.registry._retry import HostBackoff
from reginsight.registry._retry import time as _retry_time
from tests.fault_proxy import FaultProxy
from tests.hostile import HostileServer, registry_ping
from tests.images import Pusher

PATIENT = ri.RetryPolicy(attempts=8, base=0.005, cap=0.02)


@pytest.fixture(scope="module")
def content(registry_server):
    pusher = Pusher(registry_server.url)
    base = b"base" * 4000
    for n in range(12):
        repo = f"faults/app{n:02d}"
        for t in range(3):
            pusher.image(repo, f"v{t}", layers=(base, f"{repo}{t}".encode() * 500))
    amd = pusher.image("faults/multi", "amd", oci=True)
    arm = pusher.image("faults/multi", "arm", oci=True, architecture="arm64")
    pusher.index("faults/multi", "all", [(amd, {"os": "linux", "architecture": "amd64"}),
                                         (arm, {"os": "linux", "architecture": "arm64"})])
    pusher.close()
    with ri.Registry(registry_server.url) as reg:
        clean = ri.crawl(reg, "faults/*", progress=False)
    assert clean.errors.empty
    return clean


def _crawl(url: str, **options) -> ri.Inventory:
    with ri.Registry(url, retry=PATIENT) as reg:
        return ri.crawl(reg, "faults/*", progress=False, concurrency=8, **options)


def _same(a: ri.Inventory, b: ri.Inventory) -> None:
    for (name, x), (_, y) in zip(a.frames(), b.frames(), strict=True):
        pdt.assert_frame_equal(x, y, obj=name)


def test_crawl_through_ten_percent_faults_equals_the_clean_crawl(registry_server, content):
    with FaultProxy(registry_server.url, rate=0.1, seed=7) as proxy:
        faulty = _crawl(proxy.url)
    _same(faulty, content)
    assert sum(proxy.injected.values()) >= 10
    assert set(proxy.injected) == {"429", "503", "reset", "truncate", "slow"}
    print(f"faults injected over {proxy.requests} requests: {dict(proxy.injected)}")


def test_tampered_manifests_and_blobs_never_enter_a_frame(registry_server, content):
    with FaultProxy(registry_server.url, rate=0.2, tamper=True, seed=3) as proxy:
        with ri.Registry(proxy.url, retry=PATIENT) as reg:
            tampered = ri.crawl(reg, "faults/*", progress=False, concurrency=8)
    assert proxy.injected["tamper"] >= 5
    mismatches = tampered.errors[tampered.errors["error"].str.contains("DigestMismatch")]
    assert len(mismatches) == len(tampered.errors) >= 1
    clean = content.manifests.set_index(["repository", "digest"])
    seen = tampered.manifests.set_index(["repository", "digest"])
    # every value in a row that made it is the clean one: none came from tampered bytes.
    # What failed is unknown (NA) - a config's fields, an index's size, a parent index
    # that could not be read - and has its error row.
    for column in seen.columns:
        known = seen[column].notna().to_numpy()
        assert (seen.loc[known, column].astype(object).to_numpy()
                == clean.loc[seen.index[known], column].astype(object).to_numpy()).all(), column
    for column in ("media_type", "kind", "manifest_size", "config_digest"):
        pdt.assert_series_equal(seen[column].astype(object),
                                clean.loc[seen.index, column].astype(object))
    assert set(tampered.layers["digest"]) <= set(content.layers["digest"])


def test_retries_exhausted_become_error_rows(registry_server, content):
    broken = (lambda path: "/faults/app03/" in path, "503")
    with FaultProxy(registry_server.url, rate=0.0, always=broken) as proxy:
        inv = _crawl(proxy.url)
    assert set(inv.errors["repository"]) == {"faults/app03"}
    assert "HTTP 503" in inv.errors["error"].iloc[0]
    assert "faults/app03" not in set(inv.tags["repository"].astype(str))
    assert len(inv.tags) == len(content.tags) - 3


def test_truncated_blob_downloads_resume_and_are_never_short(registry_server, content):
    digest = content.layers["digest"].astype(str).iloc[0]
    repository = content.layers["repository"].astype(str).iloc[0]
    size = int(content.layers["size"].iloc[0])
    only_blob = (lambda path: f"/blobs/{digest}" in path, "truncate")
    with FaultProxy(registry_server.url, rate=0.0, always=only_blob) as proxy, \
            ri.Registry(proxy.url, retry=PATIENT) as reg:
        with pytest.raises(ri.RegistryUnreachable, match="connection lost"), \
                reg.download_blob(repository, digest) as stream:
            stream.read()  # every answer is cut: it fails, typed, never short
    cuts = iter(range(2))  # the first two answers for the blob are cut, then whole ones
    twice = (lambda path: f"/blobs/{digest}" in path and next(cuts, None) is not None,
             "truncate")
    with FaultProxy(registry_server.url, rate=0.0, always=twice) as proxy, \
            ri.Registry(proxy.url, retry=PATIENT) as reg, \
            reg.download_blob(repository, digest) as stream:
        assert len(stream.read()) == size  # cut answers resumed with Range
    assert proxy.injected["truncate"] == 2


def test_retry_after_is_honoured_in_both_forms():
    forms = {"seconds": lambda: "1",
             "http-date": lambda: email.utils.formatdate(time.time() + 2, usegmt=True)}
    for form in forms.values():
        calls = []

        def route(seen, calls=calls, form=form):
            calls.append(time.monotonic())
            if len(calls) == 1:  # the date is made when served: it has 1 s resolution
                return 429, {"Retry-After": form()}, b""
            return 200, {"Docker-Distribution-API-Version": "registry/2.0"}, b"{}"

        with HostileServer(routes={"/v2/": route}) as server:
            ri.Registry(server.url, retry=ri.RetryPolicy(base=0.01)).close()
        assert len(calls) == 2 and calls[1] - calls[0] >= 0.9


def test_backoff_is_shared_by_every_thread_of_a_host():
    backoff = HostBackoff(ri.RetryPolicy(base=0.01))
    told = time.monotonic()
    backoff.failure("registry.test", 0.3)  # one request was told to wait 0.3 s
    woke = []

    def other_request():
        backoff.wait("registry.test")
        woke.append(time.monotonic())

    threads = [threading.Thread(target=other_request) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # however late a thread started, none went before the host's time was up
    assert len(woke) == 4 and min(woke) - told >= 0.29
    slept = []
    original, _retry_time.sleep = _retry_time.sleep, slept.append
    try:
        backoff.wait("elsewhere.test")  # another host is not held back at all
    finally:
        _retry_time.sleep = original
    assert slept == []


def test_a_body_that_cannot_be_replayed_is_never_retried():
    routes = {"/v2/": registry_ping, "/v2/a/manifests/t": lambda seen: (503, {}, b"")}
    with HostileServer(routes=routes) as server, ri.Registry(server.url) as reg:
        once = reg._http.send(reg._http.build_request(
            "PUT", f"{server.url}/v2/a/manifests/t", content=iter([b"a stream, once"])))
        assert once.status_code == 503
        assert [r.method for r in server.requests].count("PUT") == 1
        again = reg._http.send(reg._http.build_request(
            "PUT", f"{server.url}/v2/a/manifests/t", content=b"bytes can go again"))
        assert again.status_code == 503
        assert [r.method for r in server.requests].count("PUT") == 1 + 4


def test_rate_limit_headers_are_exposed():
    headers = {"Docker-Distribution-API-Version": "registry/2.0",
               "RateLimit-Limit": "100;w=21600", "RateLimit-Remaining": "76;w=21600"}
    with HostileServer(routes={"/v2/": lambda seen: (200, headers, b"{}")}) as server, \
            ri.Registry(server.url) as reg:
        assert reg.rate_limit == ri.RateLimit(limit=100, remaining=76, window=21600)


def test_a_refused_pull_holds_back_pulls_only():
    backoff = HostBackoff(ri.RetryPolicy(base=0.01))
    pulls = backoff.pulls_lane("hub.test")
    backoff.failure(pulls, 0.2)  # a manifest GET was told to wait
    slept = []
    original, _retry_time.sleep = _retry_time.sleep, slept.append
    try:
        backoff.wait("hub.test")  # a HEAD or a blob download: goes at once
        assert slept == [] and backoff.waited == 0
        backoff.wait("hub.test", pulls)  # another manifest GET: waits its turn
    finally:
        _retry_time.sleep = original
    assert len(slept) == 1 and 0.1 < slept[0] <= 0.2 and backoff.waited == slept[0]


def test_the_budget_warning_comes_once_per_spell_on_every_client():
    spent, back = {"ratelimit-remaining": "0"}, {"ratelimit-remaining": "9"}
    with pytest.warns(ri.RateLimitWarning) as said:
        for _ in range(2):  # two clients: Python's once-per-line filter must not hide one
            backoff = HostBackoff(ri.RetryPolicy())
            backoff.observe("hub.test", spent)
            backoff.observe("hub.test", spent)  # the same spell: no second warning
        backoff.observe("hub.test", back)
        backoff.observe("hub.test", spent)  # a new spell
    assert len(said) == 3


def test_a_pull_refused_with_a_reset_waits_that_long_and_gets_through():
    raw = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                 "digest": "sha256:" + "a" * 64, "size": 2},
                      "layers": []}).encode()
    served = []

    def manifest(seen):
        served.append(seen.method)
        if len(served) == 1:  # the IETF draft's way: no Retry-After, a reset in 1 s
            return 429, {"RateLimit-Remaining": "0", "RateLimit-Reset": "1"}, b""
        return 200, {"Content-Type": "application/vnd.oci.image.manifest.v1+json",
                     "Docker-Content-Digest": "sha256:" + hashlib.sha256(raw).hexdigest()}, raw

    routes = {"/v2/": registry_ping, "/v2/a/manifests/t": manifest}
    with HostileServer(routes=routes) as server, \
            ri.Registry(server.url, retry=ri.RetryPolicy()) as reg:
        with pytest.warns(ri.RateLimitWarning):
            assert reg.manifest("a", "t").digest.startswith("sha256:")
        assert served == ["GET", "GET"] and 0.5 < reg._transport.backoff.waited <= 1.0
