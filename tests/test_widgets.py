"""widgets.py: the explorer's data for one segment and stage, the static fallback, headless safety."""
from __future__ import annotations

import pandas as pd
import pytest

from journey_analysis import widgets


@pytest.fixture()
def jm():
    return pd.DataFrame({
        "segment": ["All customers", "All customers", "quiet"], "stage": ["support", "awareness", "support"],
        "stage_order": [1, 0, 1], "configured": [True, True, True], "customers": [10, 12, 4],
        "share_customers": [0.8, 1.0, 0.5], "drop_off": [0.1, 0.0, 0.2], "dwell_n": [9, 12, 3],
        "dwell_median_h": [30.0, 2.0, 50.0], "dwell_p90_h": [60.0, 4.0, 70.0], "dwell_min_h": [1.0, 0.5, 2.0],
        "dwell_max_h": [90.0, 5.0, 80.0], "expected_max_duration_h": [24.0, 48.0, 24.0],
        "satisfaction_mean": [2.5, 4.5, 2.0], "sentiment_mean": [-0.4, 0.3, -0.6],
        "themes_negative": ["on hold (3)", "", "engineer (2)"], "themes_positive": ["", "clear (2)", ""],
        "quotes": [["<script>alert(1)</script> still waiting"], [], ["no show"]],
        "quote": ["<script>alert(1)</script> still waiting", None, "no show"]})


def test_stage_view_data(jm):
    v = widgets.stage_view_data(jm, "All customers", "support")
    row = v["row"].set_index("field")["value"]
    assert row["customers"] == 10 and row["satisfaction (mean)"] == 2.5
    d = v["durations"].set_index("kind")
    assert d.loc["dwell (to next step)", "median_h"] == 30.0 and d.loc["dwell (to next step)", "expected_max_h"] == 24.0
    assert v["themes"].set_index("polarity").loc["negative", "themes"] == "on hold (3)"
    assert v["quotes"] == ["<script>alert(1)</script> still waiting"]
    assert widgets.stage_view_data(jm, "quiet", "support")["quotes"] == ["no show"]
    assert widgets.stage_view_data(jm, "All customers")["row"].set_index("field")["value"]["customers"] == 12  # first stage
    with pytest.raises(KeyError):
        widgets.stage_view_data(jm, "nobody", "support")


def test_quotes_are_escaped():
    out = widgets._quotes_html(["<script>alert(1)</script>"])
    assert "<script>" not in out and "&lt;script&gt;" in out


def test_overview_table_in_stage_order(jm):
    t = widgets.overview_table(jm, "All customers")
    assert t["stage"].tolist() == ["awareness", "support"]


def test_headless_shows_static_table(jm, capsys):
    assert widgets.widgets_available() is False          # plain Python, no kernel
    widgets.show_explorer(jm, interactive=True)           # falls back, does not raise
    assert "awareness" in capsys.readouterr().out


def test_explorer_builds_widget(jm):
    pytest.importorskip("ipywidgets")
    box = widgets.explorer(jm, "quiet", "support")
    seg_dd, st_dd = box.children[0].children
    assert seg_dd.options[0] == "All customers" and seg_dd.value == "quiet" and st_dd.value == "support"
    st_dd.value = "awareness"                             # re-renders without error


def test_live_explorer_comes_with_a_rerun_note_and_formatted_tables(jm, monkeypatch):
    pytest.importorskip("ipywidgets")
    import IPython.display

    shown = []
    monkeypatch.setattr(widgets, "widgets_available", lambda: True)
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.extend(objs))
    widgets.show_explorer(jm, interactive=True, segment="All customers", stage="awareness")
    kinds = [type(o).__name__ for o in shown]
    note = next(i for i, o in enumerate(shown) if kinds[i] == "Markdown" and o.data == widgets.RERUN_NOTE)
    assert kinds[note + 1] == "VBox" and "run this cell" in widgets.RERUN_NOTE      # the note just above it
    assert "Table" in kinds                                    # the explorer's panes use the formatter
    v = widgets.stage_view_data(jm.assign(satisfaction_mean=[2.5, float("nan"), 2.0]), "All customers", "awareness")
    text = " ".join(v["row_text"]["value"])
    assert "nan" not in text.lower() and "None" not in text and "100%" in text and "—" in text
