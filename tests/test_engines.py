"""The engine seam (journey_analysis.engines): one interface, chosen from the data's type."""
from __future__ import annotations

import importlib
import inspect

import pandas as pd
import pytest

from journey_analysis import engines
from journey_analysis.engines import pandas as pandas_engine
from journey_analysis.engines import spark as spark_engine
from journey_analysis.errors import JourneyError


def test_engine_chosen_from_the_frame_and_from_the_config_name():
    assert engines.engine_for(pd.DataFrame({"a": [1]})) is pandas_engine
    assert engines.engine_for(None) is pandas_engine
    assert engines.get("spark") is spark_engine and engines.get("pandas") is pandas_engine
    with pytest.raises(JourneyError, match="unknown engine 'dask'"):
        engines.get("dask")
    assert not engines.is_spark_frame(pd.DataFrame())


def test_every_engine_has_the_frame_operations():
    for op in engines.FRAME_OPERATIONS:
        for module in (pandas_engine, spark_engine):
            assert callable(getattr(module, op, None)), f"{module.__name__} lacks {op}"


@pytest.mark.parametrize("op", sorted(engines.DISPATCHED))
def test_dispatched_operations_have_a_pandas_owner_and_a_spark_twin(op):
    owner = importlib.import_module(engines.DISPATCHED[op])
    decorated = [f for _, f in inspect.getmembers(owner, callable) if getattr(f, "engine_operation", None) == op]
    assert len(decorated) == 1, f"{owner.__name__} has {len(decorated)} functions dispatching {op!r}"
    twin = getattr(spark_engine, op, None)
    assert callable(twin), f"the Spark engine lacks {op}"
    # the same positional parameters, so dispatching passes the arguments through unchanged
    ours = [p for p in inspect.signature(inspect.unwrap(decorated[0])).parameters.values()
            if p.kind == p.POSITIONAL_OR_KEYWORD]
    theirs = [p for p in inspect.signature(twin).parameters.values() if p.kind == p.POSITIONAL_OR_KEYWORD]
    assert len(ours) == len(theirs), (op, ours, theirs)


def test_pandas_frame_operations():
    ev = pd.DataFrame({"customer_id": ["a", "b", "a", "c"], "x": [1, 2, 3, 4]}, index=[10, 11, 12, 13])
    got = pandas_engine.attach_labels(ev, pd.Series({"a": "s1", "c": "s2"}), "segment")
    assert list(got.index) == [10, 12, 13] and list(got["segment"]) == ["s1", "s1", "s2"]
    assert pandas_engine.is_empty(ev.iloc[:0]) and not pandas_engine.is_empty(ev)
    assert engines.to_pandas(ev) is ev and engines.to_pandas(None) is None


def test_dispatch_runs_the_pandas_function_for_pandas_frames():
    calls = []

    @engines.dispatch(op="count_by")
    def mine(frame, keys):
        calls.append(keys)
        return len(frame)

    assert mine(pd.DataFrame({"k": [1, 2]}), "k") == 2 and calls == ["k"]
    assert mine.engine_operation == "count_by" and mine.__name__ == "mine"
