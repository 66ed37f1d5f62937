"""Analysis past memory, side by side in one run: pandas (Inventory.load) vs DuckDB
(Inventory.open) on the same saved inventories, 1M, 10M and 100M layer rows.

    python -m benchmarks.outofcore_bench [--rows 1000000 10000000 100000000]

Each size is written by :mod:`benchmarks.large` (cached under --work), then each engine
runs in its own process (peak RSS from the kernel, ``wait4``): open or load, then
storage_summary, storage_by_repository, layer_sharing and reclaimable of deleting the
non-latest tags of every tenth repository; each result is written to disk and dropped
before the next step. Where both engines ran, their results are compared exactly.
pandas is not run where it cannot fit (--pandas-max rows). Prints figures and ratios;
not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pandas.testing as pdt

STEPS = ("open", "storage_summary", "storage_by_repository", "layer_sharing", "reclaimable")
#: the deletion both engines price: every tag but latest, in every tenth repository
CHOSEN_SQL = ("SELECT repository, tag FROM tags WHERE tag <> 'latest' "
              "AND repository LIKE '%0'")


def child(engine: str, path: str, out: str, memory_limit: str) -> None:
    import reginsight as ri

    timings: dict[str, float] = {}
    start = time.perf_counter()
    if engine == "pandas":
        inv = ri.Inventory.load(path)
        tags = inv.tags
        chosen = tags.loc[(tags["tag"] != "latest")
                          & tags["repository"].astype(str).str.endswith("0"),
                          ["repository", "tag"]]
    else:
        spill = Path(out) / "spill"
        inv = ri.Inventory.open(path, memory_limit=memory_limit, temp_directory=spill)
        chosen = inv.sql(CHOSEN_SQL).df()
    timings["open"] = time.perf_counter() - start
    for step in STEPS[1:]:
        start = time.perf_counter()
        if step == "reclaimable":
            value = ri.reclaimable_blobs(inv, chosen)
        else:
            value = getattr(ri, step)(inv)
        timings[step] = time.perf_counter() - start
        # kept for the comparison, then dropped: the next step does not hold it
        frame = value.to_frame("value") if isinstance(value, pd.Series) else value
        frame.to_parquet(Path(out) / f"{step}.parquet")
        del value, frame
    (Path(out) / "timings.json").write_text(json.dumps(timings))


def _run(engine: str, path: Path, out: Path, memory_limit: str) -> tuple[dict, int]:
    out.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.outofcore_bench", "--child", engine, str(path),
         str(out), "--memory-limit", memory_limit],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise RuntimeError(f"{engine} on {path} failed ({status})")
    timings = json.loads((out / "timings.json").read_text())
    return timings, usage.ru_maxrss * 1024


def _same(a: Path, b: Path) -> bool:
    for step in STEPS[1:]:
        pdt.assert_frame_equal(pd.read_parquet(a / f"{step}.parquet"),
                               pd.read_parquet(b / f"{step}.parquet"), obj=step)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+",
                        default=[1_000_000, 10_000_000, 100_000_000])
    parser.add_argument("--pandas-max", type=int, default=10_000_000)
    parser.add_argument("--memory-limit", default="1500MB", help="DuckDB's")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ri-large")
    parser.add_argument("--child", nargs=3, metavar=("ENGINE", "PATH", "OUT"))
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.memory_limit)
        return
    from benchmarks.large import write_large

    lines = []
    for rows in args.rows:
        path = args.work / f"layers-{rows}"
        if not (path / "inventory.json").exists():
            start = time.perf_counter()
            write_large(path, layer_rows=rows, repositories=max(1000, rows // 5000))
            print(f"wrote {rows:,} layer rows in {time.perf_counter() - start:.0f} s",
                  flush=True)
        results: dict[str, tuple[dict, int]] = {}
        engines = ["duckdb"] + (["pandas"] if rows <= args.pandas_max else [])
        with tempfile.TemporaryDirectory(dir=args.work) as scratch:
            for engine in engines:
                results[engine] = _run(engine, path, Path(scratch) / engine, args.memory_limit)
                timings, peak = results[engine]
                print(f"{rows:>12,} {engine:7} total {sum(timings.values()):7.1f} s  "
                      f"peak {peak / 2**30:5.2f} GiB  "
                      + "  ".join(f"{k} {v:.1f}" for k, v in timings.items()), flush=True)
            same = len(engines) > 1 and _same(Path(scratch) / "duckdb", Path(scratch) / "pandas")
        duck_total = sum(results["duckdb"][0].values())
        if "pandas" in results:
            pandas_total = sum(results["pandas"][0].values())
            lines.append(f"| {rows:,} | {pandas_total:.1f} s, "
                         f"{results['pandas'][1] / 2**30:.2f} GiB | {duck_total:.1f} s, "
                         f"{results['duckdb'][1] / 2**30:.2f} GiB | "
                         f"{duck_total / pandas_total:.2f} | {'equal' if same else '-'} |")
        else:
            lines.append(f"| {rows:,} | (does not fit) | {duck_total:.1f} s, "
                         f"{results['duckdb'][1] / 2**30:.2f} GiB | - | - |")
    print("\n| layer rows | pandas: time, peak RSS | DuckDB: time, peak RSS | "
          "DuckDB / pandas time | results |\n|---:|---:|---:|---:|---|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
