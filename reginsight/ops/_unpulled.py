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
from ..analysis._pulls import image_use, manifest_members
from ..usage._frame import as_pulls, coverage_gap

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
            yield image, self._unknown

    def spare_untagged(self, inv: Inventory, rows: pd.DataFrame
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The untagged delete ``rows`` split into those still deleted and keep rows:
        the ones pulled (by digest) within the window, every one of them when the
        records do not cover it (their use unknown), and whatever a kept one reaches
        (a kept index keeps all its platform images)."""
        when = self._found(rows)["last_pulled"]
        pulled = (when >= self.start).fillna(False).to_numpy()
        reasons = pd.Series(pd.NA, index=rows.index, dtype="string")
        reasons[pulled] = ("pulled " + when[pulled].dt.strftime("%Y-%m-%d")
                           + f", within {self.label}").to_numpy()
        if self.gap is not None:
            reasons[~pulled] = self._unknown
        kept_keys = rows.loc[reasons.notna().to_numpy(), ["repository", "digest"]].astype(object)
        if len(kept_keys):
            members = manifest_members(inv).merge(
                kept_keys.rename(columns={"digest": "root"}), on=["repository", "root"])
            members = members[members["member"] != members["root"]]
            held = members.drop_duplicates(["repository", "member"]).set_index(
                ["repository", "member"])["root"]
            keys = pd.MultiIndex.from_arrays([rows["repository"].astype(object),
                                              rows["digest"].astype(object)])
            by = pd.Series(held.reindex(keys).to_numpy(), index=rows.index, dtype="string")
            reasons = reasons.fillna("referenced by kept index " + by)
        spared = reasons.notna().to_numpy()
        kept = rows[spared].copy()
        kept["action"] = pd.array(["keep"] * len(kept), dtype="string")
        kept["reason"] = pd.array(reasons[spared].to_numpy(), dtype="string")
        return rows[~spared], kept

    @property
    def _unknown(self) -> str:
        return f"no pull record within {self.label}, but {self.gap}: unknown, not unused"


def unpulled_rule(inv: Inventory, pulls: pd.DataFrame | None,
                  unpulled_for: str | dt.timedelta | None, now: pd.Timestamp
                  ) -> UnpulledRule | None:
    """The rule for ``plan_cleanup(pulls=, unpulled_for=)``; None when neither is given."""
    if pulls is None and unpulled_for is None:
        return None
    if pulls is None:
        raise PlanError(f"unpulled_for={unpulled_for!r} needs pulls= (reginsight.read_pulls): "
                        "without records, nothing is known to be unused")
    try:
        window = age_limit(unpulled_for) if unpulled_for is not None else None
    except PlanError as exc:
        raise PlanError(str(exc).replace("older_than=", "unpulled_for=")) from None
    if window is None:
        raise PlanError("pulls= needs unpulled_for= (a window such as '90d'): which images "
                        "to call unused")
    records = as_pulls(pulls)
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
