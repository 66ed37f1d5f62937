"""Reach's questions on small inventories, each checked against an answer worked out
here another way: plain Python sets walked from the declared images and indexes,
never from Reach's arrays or its closure.

Two kinds of inventory: one built by hand (two tags on one digest, an index nested in
an index, a loop of indexes, a manifest in two repositories, an untagged referrer, a
repository with no tag) and a few random ones (cycles, shared layers, manifests in
several repositories) drawn from fixed seeds.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

import reginsight as ri
from reginsight.inventory._frames import build
from reginsight.inventory._reach import Reach, Reached

IMG = "application/vnd.oci.image.manifest.v1+json"
IDX = "application/vnd.oci.image.index.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass(frozen=True)
class Spec:
    """An inventory as declared: what each manifest references, where it lies, which
    tags point where. Every digest has a size of its own, so a size names a digest."""

    images: dict[str, tuple[list[str], str]]  # image -> (layers, config)
    indexes: dict[str, list[str]]  # index -> children (images or indexes)
    placed: list[tuple[str, str]]  # (repository, manifest): the manifests rows
    tags: list[tuple[str, str, str]]  # (repository, tag, manifest)
    sizes: dict[str, int]


def _d(name: str) -> str:
    return "sha256:" + name.encode().hex().ljust(64, "0")


def hand_built() -> Spec:
    L1, L2, L3, L4, L5, L6, LR = map(_d, ["L1", "L2", "L3", "L4", "L5", "L6", "LR"])
    C1, C2, C3, C4, C5, C6, CR = map(_d, ["C1", "C2", "C3", "C4", "C5", "C6", "CR"])
    M1, M2, M3, M4, M5, M6, R1 = map(_d, ["M1", "M2", "M3", "M4", "M5", "M6", "R1"])
    I1, I2, I3, I4 = map(_d, ["I1", "I2", "I3", "I4"])
    images = {M1: ([L1, L2], C1), M2: ([L1, L3], C2), M3: ([L4], C3), M4: ([L4, L5], C4),
              M5: ([L2], C5), M6: ([L6], C6), R1: ([LR], CR)}
    # I2 holds I1 (an index in an index); I3 and I4 hold each other (a loop)
    indexes = {I1: [M3, M4], I2: [I1, M5], I3: [I4], I4: [I3, M1]}
    placed = [("app", M1), ("app", M2), ("app", R1),  # R1: a referrer no tag names
              ("base", I2), ("base", I1), ("base", M3), ("base", M4), ("base", M5),
              ("base", M2),  # M2 here too, untagged here
              ("ci", I3), ("ci", I4), ("ci", M1),
              ("bare", M6)]  # a repository with no tag at all
    tags = [("app", "v1", M1), ("app", "v1-again", M1), ("app", "v2", M2),
            ("base", "multi", I2), ("base", "one", M3), ("ci", "loop", I3)]
    names = [*images, *indexes, L1, L2, L3, L4, L5, L6, LR, C1, C2, C3, C4, C5, C6, CR]
    return Spec(images, indexes, placed, tags,
                {d: 1000 * (i + 1) + i for i, d in enumerate(names)})


def randomly_drawn(seed: int) -> Spec:
    rng = np.random.default_rng(seed)
    layers = [_d(f"layer{i}") for i in range(14)]
    images = {_d(f"image{i}"): (sorted(set(rng.choice(layers, rng.integers(1, 4)))),
                                _d(f"config{i}")) for i in range(9)}
    index_names = [_d(f"index{i}") for i in range(4)]
    manifests = [*images, *index_names]
    # children drawn from every manifest: loops and indexes of indexes happen
    indexes = {i: sorted(set(rng.choice(manifests, rng.integers(1, 4)))) for i in index_names}
    repositories = ["r0", "r1", "r2", "r3"]
    placed = sorted({(str(rng.choice(repositories)), m) for m in manifests for _ in range(2)})
    tags = [(r, f"t{n}", m) for n, (r, m) in enumerate(
        placed[i] for i in rng.choice(len(placed), 8, replace=False))]
    names = [*manifests, *layers, *(config for _, config in images.values())]
    sizes = rng.choice(10**6, len(names), replace=False) + 1
    return Spec(images, indexes, placed, tags, dict(zip(names, map(int, sizes), strict=True)))


def inventory(spec: Spec) -> ri.Inventory:
    manifests = [(r, m, IMG, "image", None, "linux", "amd64", None, spec.images[m][1], None,
                  spec.sizes[m], len(spec.images[m][0]), spec.sizes[m], "image", None, None,
                  None) if m in spec.images else
                 (r, m, IDX, "index", None, None, None, None, None, None, spec.sizes[m],
                  len(spec.indexes[m]), spec.sizes[m], "index", None, None, None)
                 for r, m in spec.placed]
    layers = [(r, m, i, layer, spec.sizes[layer], LAYER) for r, m in spec.placed
              if m in spec.images for i, layer in enumerate(spec.images[m][0])]
    children = [(r, m, i, child, IMG, None, None, None, None) for r, m in spec.placed
                if m in spec.indexes for i, child in enumerate(spec.indexes[m])]
    configs = {config for _, config in spec.images.values()}
    kinds = {d: "manifest" if d in spec.images or d in spec.indexes else
             "config" if d in configs else "layer" for d in spec.sizes}
    media = {r_m[1]: IDX if r_m[1] in spec.indexes else IMG for r_m in spec.placed}
    return ri.Inventory(
        registry="http://example.test", taken_at=pd.Timestamp("2026-11-27", tz="UTC"),
        tags=build("tags", [(r, t, m, media[m], None, None) for r, t, m in spec.tags]),
        manifests=build("manifests", manifests), layers=build("layers", layers),
        blobs=build("blobs", [(d, s, kinds[d], 1, 1, None) for d, s in spec.sizes.items()]),
        children=build("children", children), errors=build("errors", []))


class Brute:
    """The answers, by walking the declaration."""

    def __init__(self, spec: Spec, inv: ri.Inventory) -> None:
        self.spec = spec
        # tag rows as the inventory numbers them (sorted by repository, tag)
        self.rows = {(r, t): i for i, (r, t) in enumerate(
            zip(inv.tags["repository"].astype(str), inv.tags["tag"].astype(str),
                strict=True))}
        self.tag = {self.rows[r, t]: (r, m) for r, t, m in spec.tags}

    def manifests_from(self, manifest: str, seen: set[str] | None = None) -> set[str]:
        seen = set() if seen is None else seen
        if manifest not in seen:
            seen.add(manifest)
            for child in self.spec.indexes.get(manifest, []):
                self.manifests_from(child, seen)
        return seen

    def blobs_of(self, manifests: set[str]) -> set[str]:
        return {blob for m in manifests if m in self.spec.images
                for blob in [*self.spec.images[m][0], self.spec.images[m][1]]}

    def tag_manifests(self, row: int) -> set[str]:
        return self.manifests_from(self.tag[row][1])

    def tag_blobs(self, row: int) -> set[str]:
        return self.blobs_of(self.tag_manifests(row))

    def everything(self) -> set[str]:
        return self.blobs_of(set(self.spec.images))


SPECS = {"hand-built": hand_built, **{f"random {seed}": (lambda s=seed: randomly_drawn(s))
                                      for seed in (1, 2, 3, 4)}}


@dataclass(frozen=True)
class Case:
    spec: Spec
    inv: ri.Inventory
    reach: Reach
    brute: Brute


@pytest.fixture(params=list(SPECS))
def case(request) -> Case:
    spec = SPECS[request.param]()
    inv = inventory(spec)
    return Case(spec, inv, Reach.of(inv), Brute(spec, inv))


def _rows(frame: pd.DataFrame) -> set[tuple]:
    return set(frame.astype(object).itertuples(index=False, name=None))


def _no_repeats(frame: pd.DataFrame) -> None:
    assert not frame.duplicated().any()


def test_the_hand_built_inventory_has_what_its_doc_says():
    spec = hand_built()
    brute = Brute(spec, inventory(spec))
    loop = brute.rows["ci", "loop"]
    assert brute.tag_manifests(loop) == {_d("I3"), _d("I4"), _d("M1")}
    multi = brute.rows["base", "multi"]
    assert brute.tag_manifests(multi) == {_d(n) for n in ["I2", "I1", "M3", "M4", "M5"]}
    assert len(set(spec.sizes.values())) == len(spec.sizes)


def test_tags_reaching_blobs(case):
    spec, reach, brute = case.spec, case.reach, case.brute
    a_config = next(iter(spec.images.values()))[1]
    asked = [*sorted(brute.everything())[::2], _d("nothing"), a_config]
    found = reach.tags_reaching_blobs(asked)
    _no_repeats(found)
    assert list(found.columns) == ["tag", "digest"] and found["tag"].dtype == np.int64
    assert _rows(found) == {(row, blob) for row in brute.tag for blob in brute.tag_blobs(row)
                            if blob in asked}
    assert reach.tags_reaching_blobs([]).empty
    assert reach.tags_reaching_blobs(set(asked)).equals(found)  # a set will do


def test_tags_reaching_manifests(case):
    spec, reach, brute = case.spec, case.reach, case.brute
    asked = [*list(spec.indexes)[:2], *list(spec.images)[1::2], "sha256:unknown"]
    found = reach.tags_reaching_manifests(asked)
    _no_repeats(found)
    assert _rows(found) == {(row, m) for row in brute.tag for m in brute.tag_manifests(row)
                            if m in asked}


def test_tags_reaching_placements_only_in_their_own_repository(case):
    spec, reach, brute = case.spec, case.reach, case.brute
    repositories = [*sorted({r for r, _ in spec.placed}), "nowhere"]
    manifests = [*spec.images, *spec.indexes]
    asked = [(r, m) for r in repositories for m in manifests][::3] + spec.placed[:2]
    found = reach.tags_reaching_placements([r for r, _ in asked], [m for _, m in asked])
    _no_repeats(found)
    assert list(found.columns) == ["tag", "repository", "digest"]
    expected = {(row, brute.tag[row][0], m) for row in brute.tag
                for m in brute.tag_manifests(row) if (brute.tag[row][0], m) in asked}
    assert _rows(found) == expected and expected  # the asked pairs hold some


def test_repositories_reaching(case):
    spec, reach, brute = case.spec, case.reach, case.brute
    every = reach.repositories_reaching()
    _no_repeats(every)
    expected = {(brute.tag[row][0], blob, spec.sizes[blob])
                for row in brute.tag for blob in brute.tag_blobs(row)}
    assert _rows(every) == expected
    names = sorted({r for r, _ in spec.placed} | {r for r, _, _ in spec.tags})
    assert list(every["repository"].cat.categories) == names
    assert list(reach.repository_names()) == names
    asked = sorted(brute.everything())[1::3]
    some = reach.repositories_reaching(asked)
    assert _rows(some) == {row for row in expected if row[1] in asked}
    assert (some["digest"].cat.categories == every["digest"].cat.categories).all()


def test_what_tags_reach(case):
    spec, reach, brute = case.spec, case.reach, case.brute
    everyone = sorted(brute.tag)
    for rows in (None, everyone[:1], everyone[1::2], [everyone[-1]] * 3, []):
        chosen = everyone if rows is None else sorted(set(rows))
        blobs = set().union(*(brute.tag_blobs(row) for row in chosen))
        manifests = set().union(*(brute.tag_manifests(row) for row in chosen))
        asked = None if rows is None else np.array(rows, dtype=np.int64)
        assert reach.reached(asked) == Reached(
            manifests=len(manifests), blobs=len(blobs),
            stored_bytes=sum(spec.sizes[b] for b in blobs),
            logical_bytes=sum(spec.sizes[b] for row in chosen for b in brute.tag_blobs(row)))


def test_tag_bytes_and_blobs_by_tag(case):
    spec, inv, reach, brute = case.spec, case.inv, case.reach, case.brute
    assert reach.tag_bytes().dtype == np.int64
    assert list(reach.tag_bytes()) == [sum(spec.sizes[b] for b in brute.tag_blobs(row))
                                       for row in range(len(inv.tags))]
    pairs = reach.blobs_by_tag()
    _no_repeats(pairs)
    configs = {config for _, config in spec.images.values()}
    assert _rows(pairs) == {(row, b, spec.sizes[b], "config" if b in configs else "layer")
                            for row in brute.tag for b in brute.tag_blobs(row)}


def test_reached_blobs_count_their_users(case):
    spec, reach, brute = case.spec, case.reach, case.brute
    found = reach.reached_blobs().set_index("digest")
    assert set(found.index) == set().union(*(brute.tag_blobs(row) for row in brute.tag))
    for blob, row in found.iterrows():
        reaching = [r for r in brute.tag if blob in brute.tag_blobs(r)]
        assert row["size"] == spec.sizes[blob]
        assert row["tags"] == len(reaching)
        assert row["repositories"] == len({brute.tag[r][0] for r in reaching})
        assert row["manifests"] == sum(blob in brute.blobs_of({m}) for m in spec.images)


def test_placements_name_tags_and_what_they_keep(case):
    inv, reach, brute = case.inv, case.reach, case.brute
    repositories, digests = reach.names_of(reach.tag_placements())
    assert list(zip(repositories, digests, strict=True)) == [
        brute.tag[row] for row in range(len(inv.tags))]
    rows = np.array(sorted(brute.tag)[::2], dtype=np.int64)
    assert list(zip(*reach.names_of(reach.tag_placements(rows)), strict=True)) == [
        brute.tag[row] for row in rows]
    tags, placements = reach.placements_reached(rows)
    kept = list(zip(tags, *reach.names_of(placements), strict=True))
    assert len(kept) == len(set(kept))
    assert set(kept) == {(row, brute.tag[row][0], m) for row in rows
                         for m in brute.tag_manifests(row)}


def test_placements_of_names_and_back(case):
    spec, reach = case.spec, case.reach
    pairs = [*spec.placed, ("nowhere", spec.placed[0][1]), (spec.placed[0][0], "sha256:x")]
    placements = reach.placements_of([r for r, _ in pairs], pd.Series([m for _, m in pairs],
                                                                      dtype="string"))
    assert list(placements[-2:]) == [-1, -1]
    assert len(set(placements[:-2])) == len(spec.placed)  # one per pair
    assert list(zip(*reach.names_of(placements[:-2]), strict=True)) == spec.placed


def test_untagged_rows_roots_and_closure(case):
    inv, reach, brute = case.inv, case.reach, case.brute
    kept = {(brute.tag[row][0], m) for row in brute.tag for m in brute.tag_manifests(row)}
    rows = list(zip(inv.manifests["repository"].astype(str), inv.manifests["digest"].astype(str),
                    strict=True))
    assert list(reach.untagged_rows) == [row not in kept for row in rows]
    roots = reach.roots()
    assert list(roots) == sorted(set(roots))
    expected = {brute.tag[row] for row in brute.tag} | {row for row in rows if row not in kept}
    assert set(zip(*reach.names_of(roots), strict=True)) == expected
    some = roots[::2]
    closure = reach.closure(np.concatenate([some, some]))
    assert list(closure) == sorted(set(closure))
    assert set(zip(*reach.names_of(closure), strict=True)) == {
        (r, reached) for r, m in zip(*reach.names_of(some), strict=True)
        for reached in brute.manifests_from(m)}


def test_held_by(case):
    spec, reach, brute = case.spec, case.reach, case.brute
    roots = reach.roots()
    held = reach.held_by(roots)
    assert list(held.columns) == ["root", "item", "size", "blob", "repository"]
    named = dict(zip(spec.sizes.values(), spec.sizes, strict=True))  # a size names a digest
    # an item id is one digest, and a digest one item id
    ids = held.groupby(["blob", "item"])["size"].nunique()
    assert (ids == 1).all()
    assert held.drop_duplicates(["blob", "item"])["size"].is_unique
    names = reach.repository_names()
    for root, repository, manifest in zip(roots, *reach.names_of(roots), strict=True):
        part = held[held["root"] == root]
        assert set(names[part["repository"]]) == {repository}
        manifests = brute.manifests_from(manifest)
        assert sorted((bool(b), named[s]) for b, s in zip(part["blob"], part["size"],
                                                         strict=True)) == sorted(
            [(False, m) for m in manifests] + [(True, b) for b in brute.blobs_of(manifests)])


def test_released(case):
    spec, reach, brute = case.spec, case.reach, case.brute
    every = reach.closure(reach.roots())
    for removed, remaining in ((every[::3], every[1::3]), (every[:2], every[2:]),
                               (every, every[:0]), (every[:0], every)):
        found = reach.released(removed, remaining)
        gone = set(reach.names_of(removed)[1])
        staying = set(reach.names_of(remaining)[1])
        manifests = gone - staying
        blobs = brute.blobs_of(gone) - brute.blobs_of(staying)
        configs = {config for _, config in spec.images.values()}
        assert _rows(found) == (
            {(m, spec.sizes[m], "manifest") for m in manifests}
            | {(b, spec.sizes[b], "config" if b in configs else "layer") for b in blobs})
        assert len(found) == len(manifests) + len(blobs)
        assert list(found["kind"]).count("manifest") == len(manifests)
        assert (found["kind"][:len(manifests)] == "manifest").all()  # manifests first


def test_blobs_referenced_by_groups_of_manifests(case):
    spec, reach, brute = case.spec, case.reach, case.brute
    manifests = [*spec.images, *spec.indexes]
    groups = pd.Series([i % 3 for i in range(len(manifests))] + [1],
                       index=[*manifests, "sha256:unknown"])
    found = reach.blobs_referenced(groups)
    _no_repeats(found)
    expected = {(g, b, spec.sizes[b]) for g in range(3)
                for b in brute.blobs_of({m for m, n in groups.items() if n == g})}
    assert _rows(found) == expected
    assert Counter(found["group"]) == Counter(g for g, _, _ in expected)


def test_a_digest_listed_twice_in_blobs_takes_the_size_of_its_first_row():
    spec = hand_built()
    inv = inventory(spec)
    m1, m2 = _d("M1"), _d("M2")
    first = inv.blobs.copy()
    first.loc[first["digest"] == m2, "size"] = pd.NA  # the first row says nothing
    inv.blobs = pd.concat([first, build("blobs", [(m1, 7, "manifest", 1, 1, None),
                                                  (m2, 8, "manifest", 1, 1, None)])],
                          ignore_index=True)
    reach = Reach.of(inv)
    everything = reach.closure(reach.roots())
    sizes = reach.released(everything, everything[:0]).set_index("digest")["size"]
    assert (sizes[m1], sizes[m2]) == (spec.sizes[m1], 0)
