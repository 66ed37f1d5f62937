"""The concurrent S3 listing's walk as a pure protocol unit: against an in-memory
ListObjectsV2 (prefix, delimiter, StartAfter, continuation, page size, both ways S3
flavours treat the folder holding StartAfter), every key is found exactly once, and a
large tree costs far fewer requests than pages and far fewer dependent rounds."""

from __future__ import annotations

import asyncio
import bisect

import fsspec.asyn
from hypothesis import given, settings
from hypothesis import strategies as st

from reginsight.inventory._s3store import S3Store

ROOT = "r/docker/registry/v2/"


class MemoryS3:
    """ListObjectsV2 over a sorted list of keys. ``keep_start_folder``: whether a
    delimiter listing after a key still returns the folder that key is in (AWS rolls
    up only keys after StartAfter; moto drops folders sorting before it)."""

    def __init__(self, keys: list[str], *, keep_start_folder: bool) -> None:
        self.keys = sorted(set(keys))
        self.keep = keep_start_folder
        self.loop = fsspec.asyn.get_loop()
        self.calls = 0

    async def _call_s3(self, method: str, *, Bucket: str, Prefix: str = "",
                       Delimiter: str | None = None, StartAfter: str = "",
                       ContinuationToken: str | None = None, MaxKeys: int = 1000,
                       **other: object) -> dict:
        if method != "list_objects_v2":
            return {}  # no unfinished uploads
        self.calls += 1
        await asyncio.sleep(0)
        after = ContinuationToken or StartAfter
        index = max(bisect.bisect_left(self.keys, Prefix),
                    bisect.bisect_right(self.keys, after) if after else 0)
        contents, folders, last = [], [], None
        if Delimiter and StartAfter and self.keep and not ContinuationToken:
            rest = StartAfter[len(Prefix):]
            if StartAfter.startswith(Prefix) and Delimiter in rest:
                folder = Prefix + rest.split(Delimiter, 1)[0] + Delimiter
                if index < len(self.keys) and self.keys[index].startswith(folder):
                    folders.append(folder)
                    last = folder
                    index = bisect.bisect_left(self.keys, folder[:-1] + chr(ord(Delimiter) + 1))
        while index < len(self.keys) and len(contents) + len(folders) < MaxKeys:
            key = self.keys[index]
            if not key.startswith(Prefix):
                break
            rest = key[len(Prefix):]
            if Delimiter and Delimiter in rest:
                folder = Prefix + rest.split(Delimiter, 1)[0] + Delimiter
                folders.append(folder)
                last = folder
                index = bisect.bisect_left(self.keys, folder[:-1] + chr(ord(Delimiter) + 1))
            else:
                contents.append({"Key": key, "Size": 1})
                last = key
                index += 1
        more = index < len(self.keys) and self.keys[index].startswith(Prefix)
        answer = {"Contents": contents, "CommonPrefixes": [{"Prefix": f} for f in folders],
                  "IsTruncated": more}
        if more:
            # a token the next page starts after: past the whole of a folder just given
            answer["NextContinuationToken"] = (last + "\U0010ffff"
                                               if last.endswith(Delimiter or "\0") else last)
        return answer


def _walk(keys: list[str], page_keys: int, keep: bool) -> tuple[list[str], int]:
    s3 = MemoryS3(keys, keep_start_folder=keep)
    store = S3Store(s3, "bucket/r/docker/registry/v2", "s3://bucket/r", page_keys=page_keys)
    found: list[str] = []
    store._run(store._walk_all(lambda page: found.extend(k["Key"] for k in page)))
    return found, s3.calls


_names = st.sampled_from(["a", "b", "a-b", "a.b", "a0", "ab", "z", "_x", "_layers",
                          "sha256", "0a", "link", "data", "x/y"])
_keys = st.lists(st.lists(_names, min_size=1, max_size=6).map("/".join), max_size=120)


@settings(max_examples=300, deadline=None)
@given(_keys, st.integers(1, 7), st.booleans())
def test_every_key_is_found_exactly_once(tails, page_keys, keep):
    keys = [ROOT + area + "/" + tail for tail in tails for area in ("blobs", "repositories")]
    found, _ = _walk(keys, page_keys, keep)
    assert sorted(found) == sorted(set(keys))


def test_a_large_tree_costs_few_requests():
    """30,000 blobs and 1,000 repositories of 45 keys: one listing of 1,000 keys a page
    would be 75 pages in a row; the walk makes about twice that many requests, most of
    them concurrent (not one per folder: that would be over 1,250)."""
    keys = [f"{ROOT}blobs/sha256/{h[:2]}/{h}/data"
            for n in range(30_000) for h in [f"{(n * 2654435761) % 16**8:08x}" * 8]]
    keys += [f"{ROOT}repositories/team{r % 10}/app{r:04d}/_manifests/revisions/sha256/"
             f"{k:064x}/link" for r in range(1000) for k in range(45)]
    for keep in (False, True):
        found, calls = _walk(keys, 1000, keep)
        assert sorted(found) == sorted(set(keys))
        assert calls < 2.5 * len(set(keys)) / 1000, calls


class PagedUploads:
    """ListMultipartUploads and ListParts, a page of two at a time (moto answers all
    uploads in one page whatever MaxUploads says)."""

    def __init__(self, uploads: dict[str, list[int]]) -> None:
        self.uploads = sorted(uploads.items())
        self.loop = fsspec.asyn.get_loop()

    async def _call_s3(self, method: str, **params: object) -> dict:
        if method == "list_multipart_uploads":
            after = params.get("KeyMarker") or ""
            rest = [(key, parts) for key, parts in self.uploads
                    if key > after and key.startswith(params["Prefix"])]
            page = rest[:2]
            answer = {"Uploads": [{"Key": key, "UploadId": f"id-{key}"} for key, _ in page],
                      "IsTruncated": len(rest) > 2}
            if len(rest) > 2:
                answer.update(NextKeyMarker=page[-1][0], NextUploadIdMarker="x")
            return answer
        parts = dict(self.uploads)[params["Key"]]
        start = params["PartNumberMarker"]
        page = parts[start:start + 2]
        return {"Parts": [{"Size": size} for size in page],
                "IsTruncated": start + 2 < len(parts), "NextPartNumberMarker": start + 2}


def test_every_unfinished_upload_and_part_is_counted_page_by_page():
    uploads = {f"r/docker/registry/v2/repositories/o/_uploads/u{n}/data": [10] * n
               for n in range(7)}
    uploads["elsewhere/data"] = [1]
    store = S3Store(PagedUploads(uploads), "bucket/r/docker/registry/v2", "s3://bucket/r")
    assert store.multipart_sizes() == {f"bucket/{key}": sum(parts)
                                       for key, parts in uploads.items()
                                       if key.startswith("r/")}
