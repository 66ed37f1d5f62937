"""The byte figures of a :class:`LazyInventory`, computed by DuckDB over Parquet.

The same definitions as the pandas functions (:mod:`._storage`, :mod:`._reclaim`,
:mod:`._disk`), written as SQL that DuckDB streams and spills: reachability through
indexes is a recursive CTE to a fixpoint, "distinct blobs a tag reaches" a DISTINCT
over (manifest, blob) pairs. Digests and repository names become 64-bit ids
(``ri_id``, DuckDB's ``hash``) so joins move integers, not 71-byte strings. Before
any figure, the ids are checked one per name against a second hash of each name,
and salted again on a collision: a wrong figure would need two names to collide in
both 64-bit hashes (about 1 in 10^22 for a registry of 10^8 names). A blob's size
is the largest any row states; pandas takes the first ``blobs`` row and then the
largest layer row, the same number because ``blobs`` holds one row per digest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .._errors import InventoryError
from ._choice import split_choice

if TYPE_CHECKING:
    from ..inventory._lazy import LazyInventory

#: every digest the frames mention, by column: what ``ri_id`` numbers
_DIGESTS = """
    SELECT digest AS d FROM tags UNION ALL SELECT digest FROM manifests
    UNION ALL SELECT config_digest FROM manifests UNION ALL SELECT parent FROM children
    UNION ALL SELECT digest FROM children UNION ALL SELECT manifest FROM layers
    UNION ALL SELECT digest FROM layers UNION ALL SELECT digest FROM blobs"""
#: ... and the repository names, numbered the same way (one check covers both)
_ALL_NAMES = _DIGESTS + """
    UNION ALL SELECT repository FROM tags UNION ALL SELECT repository FROM manifests"""

_SETUP = """
CREATE TEMP TABLE ri_uses AS  -- (manifest, blob it references), distinct
    SELECT ri_id(manifest) AS m, ri_id(digest) AS b FROM layers
        WHERE manifest IS NOT NULL AND digest IS NOT NULL
    UNION SELECT ri_id(digest), ri_id(config_digest) FROM manifests
        WHERE config_digest IS NOT NULL;
CREATE TEMP TABLE ri_blob AS  -- every layer/config blob: size (the largest stated), kind
    SELECT b, max(size)::BIGINT AS size,
           CASE WHEN bool_or(config) THEN 'config' ELSE 'layer' END AS kind
    FROM (SELECT b, 0 AS size, false AS config, true AS used FROM ri_uses
          UNION ALL SELECT ri_id(digest), coalesce(size, 0), false, false FROM blobs
          UNION ALL SELECT ri_id(digest), coalesce(size, 0), false, false FROM layers
          UNION ALL SELECT ri_id(config_digest), 0, true, false FROM manifests
              WHERE config_digest IS NOT NULL)
    GROUP BY b HAVING bool_or(used);
CREATE TEMP TABLE ri_edges AS  -- index -> child manifest, by digest
    SELECT DISTINCT ri_id(parent) AS p, ri_id(digest) AS c FROM children
    WHERE parent IS NOT NULL AND digest IS NOT NULL;
CREATE TEMP TABLE ri_closure AS  -- each index and every manifest it reaches, itself too
    WITH RECURSIVE walk(root, node) AS (
        SELECT DISTINCT p, p FROM ri_edges
        UNION SELECT walk.root, ri_edges.c FROM walk JOIN ri_edges ON ri_edges.p = walk.node)
    SELECT * FROM walk;
CREATE TEMP TABLE ri_repository AS  -- repository names by id
    SELECT DISTINCT ri_id(repository) AS r, repository FROM tags
    UNION SELECT ri_id(repository), repository FROM manifests;
CREATE TEMP TABLE ri_tag_roots AS  -- tags per (repository, digest)
    SELECT ri_id(repository) AS r, ri_id(digest) AS root, count(*) AS tags FROM tags
    GROUP BY ALL;
CREATE TEMP TABLE ri_root_blobs AS  -- the distinct blobs each tagged digest reaches
    SELECT DISTINCT r.root, ri_uses.b
    FROM (SELECT DISTINCT root FROM ri_tag_roots) r
        LEFT JOIN ri_closure c ON c.root = r.root
        JOIN ri_uses ON ri_uses.m = coalesce(c.node, r.root);
CREATE TEMP TABLE ri_root_bytes AS
    SELECT root, sum(size)::BIGINT AS bytes FROM ri_root_blobs JOIN ri_blob USING (b)
    GROUP BY ALL;
CREATE TEMP TABLE ri_repository_blobs AS  -- distinct (repository, blob) tags reach
    SELECT DISTINCT t.r, rb.b FROM ri_tag_roots t JOIN ri_root_blobs rb USING (root);
CREATE TEMP TABLE ri_holders AS  -- every blob a tag reaches: how many repositories
    SELECT b, count(*) AS repositories FROM ri_repository_blobs GROUP BY ALL;
"""


#: the id of a name (``{suffix}`` salts it after a collision; ``{salt}`` counts them)
_ID = "hash(x{suffix})"


def _strings(kind: pa.DataType) -> pd.StringDtype | None:
    """Arrow strings as pandas' ``string`` (Arrow-backed: no Python object per row)."""
    if kind in (pa.string(), pa.large_string(), pa.string_view()):
        return pd.StringDtype()
    return None


def _frame(con: Any, query: str) -> pd.DataFrame:
    """A query's result as pandas through Arrow: strings stay Arrow strings."""
    return pa.table(con.sql(query)).to_pandas(  # no second copy of a big result
        types_mapper=_strings, split_blocks=True, self_destruct=True)


def _run(con: Any, statements: str) -> None:
    """Run DDL to the end: DuckDB keeps a connection busy until a result is read."""
    con.execute(statements).fetchall()


def _ids(lazy: LazyInventory) -> Any:
    """The connection with ``ri_id`` defined, one id per name (checked)."""
    return lazy.derived("ids", _define_ids)


def _prepared(lazy: LazyInventory) -> Any:
    """The connection with ``ri_id`` and the shared reach tables built (once)."""
    return lazy.derived("reach", _build_reach)


def _build_reach(lazy: LazyInventory) -> Any:
    con = _ids(lazy)
    _run(con, _SETUP)
    return con


def _build_roots(lazy: LazyInventory) -> Any:
    con = _prepared(lazy)
    _run(con, _ROOTS)
    return con


def _build_marks(lazy: LazyInventory) -> Any:
    con = _ids(lazy)  # the collector model needs no reach tables
    _run(con, _MARKS)
    return con


def _define_ids(lazy: LazyInventory) -> Any:
    con = lazy.connection
    # in passes over slices of the ids, a few tens of millions of names each: one
    # pass over a registry of 10^8 layer rows runs out of DuckDB's memory
    rows = sum(lazy.count(name) for name in ("tags", "manifests", "layers", "blobs"))
    passes = 1 + rows // 50_000_000
    for salt in range(8):
        # salt 0 is plain hash(); a collision between two names moves to the next
        _run(con, "CREATE OR REPLACE MACRO ri_id(x) AS "
                  + _ID.format(salt=salt, suffix="" if salt == 0 else f" || '#{salt}'"))
        if not any(_collisions(con, part, passes) for part in range(passes)):
            return con
    raise RuntimeError("no collision-free digest ids")  # pragma: no cover - 8 in a row


def _collisions(con: Any, part: int, passes: int) -> int:
    """How many ids (those ``% passes == part``) two different names map to, told by
    a second hash of each name: integer states, which DuckDB spills."""
    return con.execute(f"""
        SELECT count(*) FROM (
            SELECT id FROM (SELECT ri_id(d) AS id, hash(d || '~check') AS other
                            FROM ({_ALL_NAMES}) WHERE d IS NOT NULL)
            WHERE id % {passes} = {part}
            GROUP BY id HAVING min(other) <> max(other))""").fetchall()[0][0]


#: the columns where layer and config digests are named
_BLOB_DIGESTS = "SELECT digest AS d FROM layers UNION ALL SELECT config_digest FROM manifests"


def _digest_names(ids: str, names: str = _DIGESTS) -> str:
    """SQL giving (b, digest) for the ids ``ids`` (SQL giving a column ``b``), looked
    up in ``names`` (SQL giving a column ``d``) only for the rows a result shows;
    grouped by id and name, keys DuckDB spills."""
    return (f"SELECT b, d AS digest FROM (SELECT ri_id(d) AS b, d FROM ({names}) "
            f"WHERE d IS NOT NULL AND ri_id(d) IN ({ids})) GROUP BY b, d")


def _names_table(con: Any, table: str, ids: str) -> None:
    """Temp table ``table`` (b, digest) of the layer/config blobs ``ids`` names (SQL
    giving a column ``b``). ``blobs`` holds one row per digest, so the names come
    from it without grouping 10^7 strings (which DuckDB cannot hold in 1 GB); the
    layer and config columns fill in any blob it lacks, or all of them when
    ``blobs`` repeats a digest."""
    repeated = con.execute("SELECT count(*) FROM (SELECT ri_id(digest) FROM blobs "
                           "GROUP BY ALL HAVING count(*) > 1)").fetchall()[0][0]
    _run(con, f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT ri_id(digest) AS b, digest "
              f"FROM blobs WHERE {'false' if repeated else 'true'} AND ri_id(digest) IN ({ids})")
    _run(con, f"INSERT INTO {table} "
              + _digest_names(f"{ids} EXCEPT SELECT b FROM {table}", _BLOB_DIGESTS))


def storage_summary(lazy: LazyInventory) -> pd.Series:
    """:func:`reginsight.storage_summary` (same index, dtype and attrs), by DuckDB."""
    con = _prepared(lazy)
    row = con.execute("""
        SELECT (SELECT count(*) FROM ri_repository WHERE r IN (SELECT r FROM ri_tag_roots)),
               (SELECT count(*) FROM tags),
               (SELECT count(*) FROM (SELECT ri_id(digest) FROM manifests GROUP BY ALL)),
               (SELECT count(*) FROM ri_holders),
               (SELECT coalesce(sum(t.tags * r.bytes), 0)
                FROM ri_tag_roots t JOIN ri_root_bytes r USING (root)),
               (SELECT coalesce(sum(size), 0) FROM ri_holders JOIN ri_blob USING (b))
        """).fetchall()[0]
    names = ["repositories", "tags", "manifests", "stored_blobs", "logical_bytes",
             "stored_bytes"]
    figures = pd.Series(dict(zip(names, map(int, row), strict=True)), dtype=np.int64)
    logical, stored = figures["logical_bytes"], figures["stored_bytes"]
    figures.attrs["dedup_ratio"] = int(logical) / int(stored) if stored else float("nan")
    return figures


def storage_by_repository(lazy: LazyInventory) -> pd.DataFrame:
    """:func:`reginsight.storage_by_repository` (same columns, dtypes, order), by DuckDB."""
    con = _prepared(lazy)
    frame = _frame(con, """
        WITH tagged AS (SELECT r, sum(tags) AS tags, sum(tags * coalesce(bytes, 0)) AS logical
                        FROM ri_tag_roots LEFT JOIN ri_root_bytes USING (root) GROUP BY ALL),
             stored AS (SELECT r, sum(size) AS stored,
                               sum(CASE WHEN repositories = 1 THEN size ELSE 0 END) AS exclusive
                        FROM ri_repository_blobs JOIN ri_blob USING (b)
                            JOIN ri_holders USING (b) GROUP BY ALL),
             held AS (SELECT r, count(*) AS manifests FROM (
                          SELECT DISTINCT ri_id(repository) AS r, ri_id(digest) FROM manifests)
                      GROUP BY ALL)
        SELECT repository, tags::BIGINT AS tags, coalesce(manifests, 0)::BIGINT AS manifests,
               logical::BIGINT AS logical_bytes, coalesce(stored, 0)::BIGINT AS stored_bytes,
               coalesce(exclusive, 0)::BIGINT AS exclusive_bytes
        FROM tagged JOIN ri_repository USING (r) LEFT JOIN stored USING (r)
            LEFT JOIN held USING (r)
        WHERE tags > 0""")
    frame["shared_bytes"] = frame["stored_bytes"] - frame["exclusive_bytes"]
    return frame.sort_values(["stored_bytes", "repository"], ascending=[False, True],
                             ignore_index=True)


def layer_sharing(lazy: LazyInventory) -> pd.DataFrame:
    """:func:`reginsight.layer_sharing` (same columns, dtypes, order), by DuckDB.

    Built a table at a time, one join each: several hash tables of 10^7 blobs in one
    pipeline do not fit a small memory limit, one at a time spills."""
    con = _prepared(lazy)
    _run(con, """
        CREATE OR REPLACE TEMP TABLE ri_sharing AS  -- tags that reach each blob
            SELECT rb.b, sum(t.tags)::BIGINT AS tags
            FROM ri_root_blobs rb JOIN (SELECT root, sum(tags) AS tags FROM ri_tag_roots
                                        GROUP BY ALL) t USING (root)
            GROUP BY ALL;
        CREATE OR REPLACE TEMP TABLE ri_sharing AS  -- + repositories
            SELECT s.*, h.repositories::BIGINT AS repositories
            FROM ri_sharing s JOIN ri_holders h USING (b);
        CREATE OR REPLACE TEMP TABLE ri_sharing AS  -- + manifests that reference it
            SELECT s.*, u.manifests::BIGINT AS manifests
            FROM ri_sharing s JOIN (SELECT b, count(*) AS manifests FROM ri_uses
                                    GROUP BY ALL) u USING (b);
        CREATE OR REPLACE TEMP TABLE ri_sharing AS  -- + size and kind
            SELECT s.*, ri_blob.size, ri_blob.kind FROM ri_sharing s JOIN ri_blob USING (b);
        """)
    _names_table(con, "ri_sharing_names", "SELECT b FROM ri_sharing")
    return _frame(con, """
        SELECT names.digest, size, kind, repositories, manifests, tags,
               (size * greatest(manifests - 1, 0))::BIGINT AS bytes_saved
        FROM ri_sharing JOIN ri_sharing_names names USING (b)
        ORDER BY bytes_saved DESC, names.digest""")


def _register_chosen(con: Any, tags: Any) -> None:
    """The chosen tags as ``ri_chosen_tags_frame`` (repository, tag) and the digests
    chosen by NA-tag rows as ``ri_chosen_digests_frame`` (repository, digest)."""
    tagged, by_digest = split_choice(tags)
    con.register("ri_chosen_tags_frame", tagged)
    con.register("ri_chosen_digests_frame", by_digest)


_ROOTS = """
CREATE TEMP TABLE ri_tag_place AS SELECT DISTINCT r, root AS m FROM ri_tag_roots;
CREATE TEMP TABLE ri_roots AS  -- tags, and manifest rows no tag reaches
    SELECT * FROM ri_tag_place UNION (
        SELECT DISTINCT ri_id(repository), ri_id(digest) FROM manifests EXCEPT
        SELECT t.r, coalesce(c.node, t.m) FROM ri_tag_place t
            LEFT JOIN ri_closure c ON c.root = t.m);
CREATE TEMP TABLE ri_every AS SELECT DISTINCT p.r, coalesce(c.node, p.m) AS m
    FROM ri_roots p LEFT JOIN ri_closure c ON c.root = p.m;
"""

#: what one choice deletes (the roots above are the inventory's, built once)
_PLACEMENTS = """
CREATE OR REPLACE TEMP TABLE ri_explicit AS
    SELECT ri_id(t.repository) AS r, ri_id(t.digest) AS m FROM tags t
        JOIN ri_chosen_tags_frame USING (repository, tag)
    UNION SELECT ri_id(repository), ri_id(digest) FROM ri_chosen_digests_frame;
CREATE OR REPLACE TEMP TABLE ri_kept AS SELECT DISTINCT p.r, coalesce(c.node, p.m) AS m
    FROM (SELECT * FROM ri_roots EXCEPT SELECT * FROM ri_explicit) p
        LEFT JOIN ri_closure c ON c.root = p.m;
CREATE OR REPLACE TEMP TABLE ri_gone AS SELECT * FROM ri_every EXCEPT SELECT * FROM ri_kept;
"""


def _check_every_repository_visited(lazy: LazyInventory) -> None:
    """The DuckDB model is a plain run that visits every repository and reads every
    manifest, which both collectors are on nearly every storage; where they are not
    (a repository without ``_layers``: 2.x never visits it, 3.x stops; a schema1
    manifest: 3.x stops), say so rather than pick one."""
    odd = lazy.sql("""
        SELECT (SELECT count(*) FROM manifests WHERE kind = 'schema1'),
               (SELECT count(DISTINCT m.repository) FROM manifests m WHERE NOT EXISTS (
                    SELECT 1 FROM folders f WHERE f.repository = m.repository
                    AND f.folder = '_layers'))""").fetchall()[0]
    if any(odd):
        raise InventoryError(
            f"out of core, what garbage collection frees is modelled for a run that "
            f"visits every repository and reads every manifest; here {odd[0]:,} schema1 "
            f"manifests and {odd[1]:,} repositories without _layers (or no folders "
            "recorded: saved by an older reginsight) make Distribution 2.x and 3.x "
            "differ: load the inventory in memory (Inventory.load) and say "
            "which collector runs (collector=)")


def reclaimable_blobs(lazy: LazyInventory, tags: Any) -> pd.DataFrame:
    """What :func:`reginsight.reclaimable_blobs` gives (the caller warns when the
    inventory is partial): the collector model on a storage scan, else the roots'."""
    con = lazy.derived("roots", _build_roots)
    _register_chosen(con, tags)
    _run(con, _PLACEMENTS)
    if lazy.from_storage:
        _check_every_repository_visited(lazy)
        lazy.derived("marks", _build_marks)
        return _freed_after(con)
    frame = _frame(con, f"""
        WITH state AS (  -- each manifest: kept somewhere, deleted somewhere
                 SELECT m, bool_or(kept) AS kept, bool_or(NOT kept) AS deleted
                 FROM (SELECT m, true AS kept FROM ri_kept
                       UNION ALL SELECT m, false FROM ri_gone) GROUP BY m),
             freed_manifests AS (SELECT m AS b FROM state WHERE deleted AND NOT kept),
             freed AS (  -- referenced by a deleted manifest and by no kept one
                 SELECT ri_uses.b FROM ri_uses JOIN state USING (m) GROUP BY ri_uses.b
                 HAVING bool_or(state.deleted) AND NOT bool_or(state.kept)),
             sizes AS (SELECT ri_id(digest) AS b, max(size) AS size FROM blobs GROUP BY ALL),
             names AS ({_digest_names("SELECT b FROM freed_manifests "
                                      "UNION SELECT b FROM freed")})
        SELECT names.digest, coalesce(sizes.size, 0)::BIGINT AS size, 'manifest' AS kind
            FROM freed_manifests JOIN names USING (b) LEFT JOIN sizes USING (b)
        UNION ALL
        SELECT names.digest, ri_blob.size, ri_blob.kind
            FROM freed JOIN ri_blob USING (b) JOIN names USING (b)
        ORDER BY digest""")
    return _typed(frame)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """digest, size, kind as the pandas functions type them (an empty result too)."""
    return frame.astype({"digest": "string", "size": "int64", "kind": "string"})


_MARKS = """
CREATE TEMP TABLE ri_marks AS  -- what the collector marks from a manifest
    SELECT ri_id(digest) AS f, ri_id(digest) AS t FROM manifests
    UNION SELECT ri_id(digest), ri_id(config_digest) FROM manifests
        WHERE config_digest IS NOT NULL
    UNION SELECT ri_id(manifest), ri_id(digest) FROM layers
    UNION SELECT ri_id(parent), ri_id(digest) FROM children;
CREATE TEMP TABLE ri_disk AS
    SELECT ri_id(digest) AS b, digest, coalesce(size, 0)::BIGINT AS size, kind
    FROM blobs WHERE on_disk;
"""


_ALL_ROWS = "SELECT ri_id(digest) FROM manifests"
_TAGGED_ROWS = "SELECT ri_id(digest) FROM manifests WHERE tagged"
_ROWS_LEFT = ("SELECT ri_id(row.digest) FROM manifests row ANTI JOIN ri_gone g "
              "ON g.r = ri_id(row.repository) AND g.m = ri_id(row.digest)")


def _marked(rows: str) -> str:
    """SQL: the ids the collector marks from the manifests rows ``rows`` (SQL giving
    their digest ids): each manifest, its config and layers, an index's children."""
    return f"SELECT DISTINCT t FROM ri_marks WHERE f IN ({rows})"


def _freed_after(con: Any) -> pd.DataFrame:
    frame = _frame(con, f"""
        SELECT digest, size, kind FROM ri_disk
        WHERE b IN ({_marked(_ALL_ROWS)}) AND b NOT IN ({_marked(_ROWS_LEFT)})
        ORDER BY digest""")
    return _typed(frame)


def disk_categories(lazy: LazyInventory) -> tuple[dict[str, tuple[int, int]], tuple[int, int]]:
    """For :func:`reginsight.disk_usage`: (blobs, bytes) per disk category, and (count,
    bytes) of the unfinished uploads."""
    con = lazy.derived("marks", _build_marks)
    by_category = {category: (int(blobs), int(size)) for category, blobs, size in con.execute(f"""
        SELECT CASE WHEN b IN ({_marked(_TAGGED_ROWS)}) THEN 'tagged'
                    WHEN b IN ({_marked(_ALL_ROWS)}) THEN 'untagged'
                    ELSE 'unreferenced' END, count(*), sum(size)::BIGINT
        FROM ri_disk GROUP BY ALL""").fetchall()}
    count, size = con.execute(
        "SELECT count(*), coalesce(sum(size), 0)::BIGINT FROM uploads").fetchall()[0]
    return by_category, (int(count), int(size))
