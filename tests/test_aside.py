"""aside.Aside: a function computed in a forked process gives the caller's result, whatever goes wrong."""
from __future__ import annotations

import os
import sys

import numpy as np
import pandas as pd
import psutil
import pytest

from journey_analysis import aside
from journey_analysis.errors import JourneyError

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks on Linux only")


def _pid_and_sum(frame):
    return os.getpid(), frame["x"].sum()


def _fails(message):
    raise JourneyError(message, column="x", fix="fix it")


@linux
def test_the_function_runs_in_a_child_on_the_inherited_inputs():
    frame = pd.DataFrame({"x": np.arange(1_000_000)})
    job = aside.Aside(_pid_and_sum, frame)
    assert job.forked
    pid, total = job.result()
    assert pid != os.getpid() and total == frame["x"].sum()
    assert not psutil.Process().children(recursive=True)


@linux
def test_an_error_is_raised_by_the_caller_with_its_traceback():
    job = aside.Aside(_fails, "bad column")
    with pytest.raises(JourneyError, match="bad column") as info:
        job.result()
    assert any(f.name == "_fails" for f in info.traceback)     # raised here, not re-raised from a pickle
    assert not psutil.Process().children(recursive=True)


@linux
def test_a_child_that_dies_or_cannot_send_its_result_is_replaced_by_the_caller():
    died = aside.Aside(os._exit, 3)   # the child exits at once; the caller would then exit too: not called
    died._call = (_pid_and_sum, (pd.DataFrame({"x": [1, 2]}),), {})
    assert died.result() == (os.getpid(), 3)
    unpicklable = aside.Aside(lambda: (lambda: 1))           # a lambda's result cannot be pickled
    assert unpicklable.result()() == 1


def test_no_fork_inside_a_child_nor_where_the_platform_has_none(monkeypatch):
    monkeypatch.setattr(aside, "_CHILD", True)
    job = aside.Aside(_pid_and_sum, pd.DataFrame({"x": [4]}))
    assert not job.forked and job.result() == (os.getpid(), 4)
    monkeypatch.setattr(aside, "_CHILD", False)
    monkeypatch.setattr(sys, "platform", "darwin")
    assert not aside.Aside(sum, [1]).forked


@linux
def test_language_identification_refuses_to_run_in_a_child():
    """lingua's thread pool does not survive a fork: inside a child, language identification raises (so
    the caller does it) instead of waiting forever."""
    from journey_analysis.text import identify_languages

    def languages(texts):
        out = identify_languages(pd.Series(texts))
        return out["language"].tolist(), out["language_rule"].tolist(), aside.in_child()

    texts = ["The engineer never came and nobody called", "Verspätung, Zugausfall, Chaos"]
    here = languages(texts)
    assert here == (["en", "de"], ["fast", "lingua"], False)     # the second one is lingua's
    job = aside.Aside(languages, texts)
    assert job.forked and job.result() == here          # computed here after the child refused


@linux
def test_a_cancelled_or_forgotten_job_leaves_no_process():
    import time

    job = aside.Aside(time.sleep, 30)
    assert job.forked
    job.cancel()
    assert not job.forked and not psutil.Process().children(recursive=True)
    forgotten = aside.Aside(time.sleep, 30)
    del forgotten
    assert not psutil.Process().children(recursive=True)
