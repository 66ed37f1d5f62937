"""What a caller chose to delete, read one way for pandas and for DuckDB."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from .._errors import PlanError

#: (repository, tag) pairs, or a frame with repository and tag columns (a plan's delete
#: rows); a row whose tag is NA chooses the manifest at its ``digest`` instead
Chosen = Iterable[tuple[str, str]] | pd.DataFrame


def split_choice(tags: Chosen) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The chosen tags, columns repository and tag, and the manifests chosen by digest
    (NA-tag rows), columns repository and digest; both object columns of str."""
    try:
        if isinstance(tags, pd.DataFrame):
            untagged = tags["tag"].isna().to_numpy()
            tagged = tags.loc[~untagged, ["repository", "tag"]]
            by_digest = (tags.loc[untagged, ["repository", "digest"]] if untagged.any()
                         else pd.DataFrame(columns=["repository", "digest"]))
        else:
            tagged = pd.DataFrame([(str(r), str(t)) for r, t in tags],
                                  columns=["repository", "tag"])
            by_digest = pd.DataFrame(columns=["repository", "digest"])
    except (KeyError, TypeError, ValueError):
        raise PlanError("tags: give (repository, tag) pairs or a frame with those columns"
                        ) from None
    return (tagged.astype(str).astype(object).reset_index(drop=True),
            by_digest.astype(str).astype(object).reset_index(drop=True))
