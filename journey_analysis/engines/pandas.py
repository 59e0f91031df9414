"""The pandas engine (:mod:`journey_analysis.engines`), the default.

The pandas implementations of the per-event statistics stay with the modules that own them
(:mod:`journey_analysis.steps`, :mod:`journey_analysis.segment`, :mod:`journey_analysis.gather`,
decorated with :func:`journey_analysis.engines.dispatch`); this module holds the frame operations
that have no other home: joining labels, testing for rows, collecting.
"""
from __future__ import annotations

import pandas as pd

__all__ = ["attach_labels", "is_empty", "to_pandas"]


def attach_labels(events: pd.DataFrame, labels: pd.Series, name: str = "segment", *,
                  case: str = "customer_id") -> pd.DataFrame:
    """The events of labelled customers with their label in column `name` (`labels`: customer id as
    text -> label); the events of other customers are left out. Keeps the events' index and order."""
    seg = events[case].astype(str).map(labels)
    keep = seg.notna().to_numpy()
    return events.loc[keep].assign(**{name: seg.to_numpy()[keep]})


def is_empty(events: pd.DataFrame) -> bool:
    """Whether the frame has no row."""
    return len(events) == 0


def to_pandas(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame itself (already pandas)."""
    return frame
