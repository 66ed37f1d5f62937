"""The full analysis on a synthetic inventory of 1,000,000 layer rows.

    python -m benchmarks.analysis_bench

Times every analysis function once each, in the order a notebook calls them (the
first builds the integer-id reach the rest reuse). Not a test.
"""

from __future__ import annotations

import time

import reginsight as ri
from benchmarks.synthetic import synthetic_inventory


def main() -> None:
    inv = synthetic_inventory()
    print(f"{len(inv.layers):,} layer rows, {len(inv.manifests):,} manifests, "
          f"{inv.tags['repository'].nunique():,} repositories")
    steps = [
        ("storage_summary", lambda: ri.storage_summary(inv)),
        ("storage_by_repository", lambda: ri.storage_by_repository(inv)),
        ("layer_sharing", lambda: ri.layer_sharing(inv)),
        ("sharing_matrix (top 30)", lambda: ri.sharing_matrix(inv)),
        ("plan_cleanup (+ reclaimable)", lambda: ri.plan_cleanup(
            inv, keep_last=3, older_than="180d", protect=r"^latest$")),
    ]
    total = 0.0
    for name, step in steps:
        start = time.perf_counter()
        step()
        elapsed = time.perf_counter() - start
        total += elapsed
        print(f"  {name:30} {elapsed:6.2f} s")
    print(f"  {'full analysis':30} {total:6.2f} s (target < 3 s)")


if __name__ == "__main__":
    main()
