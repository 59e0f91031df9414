"""formatting.py: every table people read goes through one set of rules (units, rounding, missing, labels)."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from journey_analysis import formatting as F
from journey_analysis.config import PROJECT_ROOT


def test_missing_values_read_as_a_dash_never_nan_none_nat():
    f = pd.DataFrame({"stage": ["a", None], "dwell_median_h": [np.nan, 2.0], "when": [pd.NaT, pd.Timestamp("2024-01-02")],
                      "quotes": [[], ["hi"]], "flag": pd.array([True, None], dtype="boolean")})
    out = F.display_frame(f)
    text = " ".join(out.astype(str).to_numpy().ravel())
    assert not re.search(r"\b(NaN|nan|None|NaT|<NA>)\b", text)
    assert out.iloc[0].tolist() == ["a", F.MISSING, F.MISSING, F.MISSING, "yes"]
    assert out.iloc[1].tolist() == [F.MISSING, "2 h", "2024-01-02", "hi", F.MISSING]


def test_units_follow_the_name_durations_in_hours():
    assert F.format_value(86400.0, "dwell_median_s") == "24 h"          # KPI thresholds stated in seconds
    assert F.format_value(330022.5, "dwell_median_s") == "91.7 h"
    assert F.format_value(191.579444, "dwell_median_h") == "192 h"
    assert F.format_value(3.8, "dwell_median_h") == "3.8 h"
    assert F.format_value(0.25, "wait_h") == "0.25 h"
    assert F.format_value(-61.5, "duration_gap_h") == "-61.5 h" and F.format_value(22.4, "duration_gap_h") == "+22.4 h"
    assert F.format_value(100, "dwell_median_h", duration_unit="auto") == "4.2 d"


def test_shares_ratings_sentiment_counts():
    assert F.format_value(0.634286, "share_customers") == "63%"
    assert F.format_value(0.092, "drop_off") == "9.2%" and F.format_value(1.0, "drop_off") == "100%"
    assert F.format_value(0.004, "sentiment_share_negative_ci_low") == "0.4%"
    assert F.format_value(12.5, "reply_pct") == "12.5%"
    assert F.format_value(4.1234, "csat_mean") == "4.1" and F.format_value(3.75, "satisfaction_mean") == "3.8"
    assert F.format_value(-2.262, "satisfaction_gap") == "-2.3"
    assert F.format_value(0.4163, "sentiment_mean") == "+0.42"
    assert F.format_value(12345, "evidence_n") == "12,345" and F.format_value(7.0, "customers") == "7"
    assert F.format_value(True, "low_confidence") == "yes"


def test_no_scientific_notation_and_no_noise():
    for v in (3.89e-11, -4.25e-09, 1e-5, 123456789.123, 0.000123):
        s = F.format_value(v, "whatever")
        assert "e" not in s.lower(), s
    assert F.number(0.0) == "0" and F.number(191.579444) == "192" and F.number(0.634286) == "0.634"
    assert F.change_text(0.41, 0.41 + 3.89e-11, "sentiment_mean") == "no change"
    assert F.change_text(100.0, 100.0 - 4.25e-9 * 3600, "dwell_median_s") == "no change"
    assert F.change_text(0.2, 0.3, "drop_off") == "+10 pts"
    assert F.change_text(0.2, 0.3, "drop_off", significant=False) == "no change"
    assert F.change_text(3600.0, 7200.0, "dwell_median_s") == "+1 h"


def test_index_becomes_a_column_and_labels_are_for_people():
    f = pd.DataFrame({"share_customers": [0.5], "dwell_p90_h": [3.0], "csat_mean": [4.0]},
                     index=pd.Index(["support"], name="stage"))
    out = F.display_frame(f)
    assert list(out.columns) == ["stage", "share of customers", "dwell p90 (h)", "CSAT (mean, 1-5)"]
    html = F.table_html(f)
    assert "<th" in html and "support" in html and 'class="num"' in html
    assert F.table(f).to_html().count("support") == 1


def test_full_text_is_kept_and_escaped():
    long = "word " * 60 + "<script>x</script>"
    html = F.table_html(pd.DataFrame({"sentence": [long]}))
    assert "word " * 59 in html and "<script>" not in html and "&lt;script&gt;" in html
    styled = F.table(pd.DataFrame({"sentence": [long]})).to_html()
    assert "word " * 59 in styled and "white-space: normal" in styled


def test_rows_of_mixed_kinds_follow_their_kind_or_metric():
    gaps = pd.DataFrame({"kind": ["duration", "satisfaction"], "expected": [48.0, 4.0], "actual": [194.05, 1.7378],
                         "gap": [146.05, -2.2622]})
    out = F.display_frame(gaps)
    assert out["expected"].tolist() == ["48 h", "4.0"]
    assert out["actual"].tolist() == ["194 h", "1.7"]
    assert out["gap"].tolist() == ["+146 h", "-2.3"]
    kpis = pd.DataFrame({"metric": ["dwell_median_s", "csat_mean"], "value": [330022.5, 3.91], "min": [None, 4.0],
                         "max": [86400.0, None]})
    out = F.display_frame(kpis)
    assert out["value"].tolist() == ["91.7 h", "3.9"] and out["max"].tolist() == ["24 h", F.MISSING]


def test_absolute_local_paths_are_shown_inside_the_project():
    f = pd.DataFrame({"file": [str(PROJECT_ROOT / "data" / "raw" / "demo" / "events.csv.gz"), "/elsewhere/x/y.csv"]})
    assert F.display_frame(f)["file"].tolist() == ["data/raw/demo/events.csv.gz", "y.csv"]


def test_new_columns_are_formatted_by_their_name():
    f = pd.DataFrame({"time_in_stage_median_s": [7200.0], "share_terminal": [0.25], "confidence": ["high"],
                      "evidence_n": [np.int64(31)], "wait_p90_h": [1.23456]})
    assert F.display_frame(f).iloc[0].tolist() == ["2 h", "25%", "high", "31", "1.2 h"]
