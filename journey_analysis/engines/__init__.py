"""The engine seam: the per-event operations that differ between pandas and Spark, chosen once from
the data's type.

An engine is a module with the same operations (:data:`OPERATIONS`): :mod:`journey_analysis.engines.pandas`
(pandas frames, the default) and :mod:`journey_analysis.engines.spark` (PySpark DataFrames).
:func:`engine_for` picks the engine of a frame and :func:`get` an engine by the name a config gives
(``engine: pandas | spark``). Modules above the seam call these and never test a frame's type.

The pandas implementation of most operations stays with the module that owns the computation
(:mod:`journey_analysis.steps` for step statistics, :mod:`journey_analysis.segment` for the
per-customer behaviour, :mod:`journey_analysis.gather` for linking feedback): such a function is
decorated with :func:`dispatch`, so a Spark frame handed to it runs the Spark engine's operation of
the same name instead (same arguments, same pandas result). Nothing here imports pyspark: a frame
can only be a Spark frame once pyspark has been imported by whoever made it.
"""
from __future__ import annotations

import functools
import importlib
import sys

__all__ = ["ENGINES", "FRAME_OPERATIONS", "DISPATCHED", "OPERATIONS", "engine_for", "get", "is_spark_frame", "to_pandas", "dispatch"]

#: Engine names as a config says them -> the module implementing them.
ENGINES = {"pandas": "journey_analysis.engines.pandas", "spark": "journey_analysis.engines.spark"}

#: Operations every engine module defines itself (tested): the frame operations of the seam.
FRAME_OPERATIONS = ("attach_labels", "is_empty", "to_pandas")

#: Operations whose pandas implementation lives with the module that owns the computation, decorated
#: with :func:`dispatch` (operation -> that module); the Spark engine defines each of them (tested).
DISPATCHED = {
    **{op: "journey_analysis.steps" for op in (
        "step_stats", "transitions", "start_end_counts", "cut_sessions", "funnel", "funnel_dropoffs",
        "variants", "journey_durations", "event_dwell", "overview", "count_by", "stage_visits",
        "customer_stage_time", "stage_dwell_summary", "dwell_share_over", "segment_stage_tables")},
    "customer_behaviour": "journey_analysis.segment",
    "last_step_before": "journey_analysis.gather",
    "subsample_customers": "journey_analysis.runner",
    "save_artifact": "journey_analysis.artifacts",
}

#: Everything the seam names.
OPERATIONS = FRAME_OPERATIONS + tuple(DISPATCHED)


def is_spark_frame(obj) -> bool:
    """True when `obj` is a PySpark DataFrame (classic or Spark Connect). Never imports pyspark."""
    if "pyspark" not in sys.modules:
        return False
    mod = type(obj).__module__ or ""
    if not mod.startswith("pyspark."):
        return False
    from pyspark.sql import DataFrame
    return isinstance(obj, DataFrame)


def get(name: str = "pandas"):
    """The engine module for a config's ``engine:`` value ("pandas" or "spark")."""
    from journey_analysis.errors import JourneyError

    if name not in ENGINES:
        raise JourneyError(f"unknown engine {name!r}", column="engine", expected=" or ".join(ENGINES),
                           fix="Set engine: pandas (default) or engine: spark in the config.")
    return importlib.import_module(ENGINES[name])


def engine_for(frame):
    """The engine that computes on `frame`: Spark for a PySpark DataFrame, else pandas."""
    return get("spark" if is_spark_frame(frame) else "pandas")


def to_pandas(frame):
    """`frame` as a pandas DataFrame (a Spark frame collected); None stays None."""
    return None if frame is None else engine_for(frame).to_pandas(frame)


def dispatch(fn=None, *, op: str | None = None):
    """Decorator for the pandas implementation of engine operation `op` (default: the function's name).

    Called with a frame of another engine as its first argument, that engine's `op` runs instead with
    the same arguments; with a pandas frame the decorated function itself runs.
    """
    def wrap(func):
        name = op or func.__name__

        @functools.wraps(func)
        def run(frame, *args, **kwargs):
            if is_spark_frame(frame):
                return getattr(get("spark"), name)(frame, *args, **kwargs)
            return func(frame, *args, **kwargs)

        run.engine_operation = name
        return run

    return wrap(fn) if fn is not None else wrap
