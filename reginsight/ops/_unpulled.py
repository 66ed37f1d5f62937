"""The cleanup rule "not pulled for a while": which images pull records show in use
within the window, and what to do when the records do not cover it. Pure: no I/O."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from .._errors import PlanError
from .._policy import age_limit
from ..analysis._pulls import image_use
from ..usage._frame import coverage_gap, from_frame

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory


@dataclass(frozen=True)
class UnpulledRule:
    """``unpulled_for`` over these records: ``use`` per (repository, digest) as
    :func:`reginsight.analysis._pulls.image_use` gives it, the window's ``start``, and
    ``gap``: why the records do not cover the window (None: they do)."""

    use: pd.DataFrame
    label: str
    start: pd.Timestamp
    gap: str | None

    def _found(self, frame: pd.DataFrame) -> pd.DataFrame:
        keys = pd.MultiIndex.from_arrays([frame["repository"].astype(object),
                                          frame["digest"].astype(object)])
        return self.use.reindex(keys).reset_index(drop=True)

    def reasons(self, frame: pd.DataFrame, image: object) -> Iterator[tuple[object, object]]:
        """(mask, reason) pairs keeping the rows of ``frame`` (repository, digest,
        created) in use within the window, or of unknown use."""
        found = self._found(frame)
        for column, verb in (("last_pulled", "pulled"), ("last_pushed", "pushed")):
            when = found[column]
            yield ((when >= self.start).fillna(False).to_numpy(),
                   f"{verb} " + when.dt.strftime("%Y-%m-%d").fillna("") + f", within {self.label}")
        created = pd.Series(frame["created"]).reset_index(drop=True)
        yield (created >= self.start).fillna(False).to_numpy(), f"created within {self.label}"
        if self.gap is not None:
            yield image, f"no pull record within {self.label}, but {self.gap}: unknown, not unused"

    def spare_untagged(self, rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The untagged delete ``rows`` split into those still deleted and keep rows
        for the ones pulled (by digest) within the window."""
        when = self._found(rows)["last_pulled"]
        pulled = (when >= self.start).fillna(False).to_numpy()
        kept = rows[pulled].copy()
        kept["action"] = pd.array(["keep"] * len(kept), dtype="string")
        kept["reason"] = pd.array(("pulled " + when[pulled].dt.strftime("%Y-%m-%d")
                                   + f", within {self.label}").to_numpy(), dtype="string")
        return rows[~pulled], kept


def unpulled_rule(inv: Inventory, pulls: pd.DataFrame | None,
                  unpulled_for: str | dt.timedelta | None, now: pd.Timestamp
                  ) -> UnpulledRule | None:
    """The rule for ``plan_cleanup(pulls=, unpulled_for=)``; None when neither is given."""
    if pulls is None and unpulled_for is None:
        return None
    if pulls is None:
        raise PlanError(f"unpulled_for={unpulled_for!r} needs pulls= (reginsight.read_pulls): "
                        "without records, nothing is known to be unused")
    window = age_limit(unpulled_for) if unpulled_for is not None else None
    if window is None:
        raise PlanError("pulls= needs unpulled_for= (a window such as '90d'): which images "
                        "to call unused")
    records = pulls if "coverage" in pulls.attrs else from_frame(pulls)
    start = now - pd.Timedelta(window)
    label = unpulled_for.strip() if isinstance(unpulled_for, str) else _spoken(window)
    return UnpulledRule(image_use(inv, records, now=now), label, start,
                        coverage_gap(records, start, now))


def _spoken(window: dt.timedelta) -> str:
    """A timedelta as the flags write ages: 90d, 12h, 30m, else seconds."""
    seconds = window.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size:.0f}{unit}"
    return f"{seconds:g}s"
