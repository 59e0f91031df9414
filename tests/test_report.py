"""report.py on hand-made inputs: ratings averaged per scale, drop-off at the journey's end, the
comparison at display precision, the first screen's findings, the index's trend charts."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from journey_analysis import metrics, narrative, report


def _feedback():
    # usage: CSAT 4 and 2 (mean 3), NPS 9 and 10 (mean 9.5), stars 5; renewal: NPS 0 only
    return pd.DataFrame({
        "stage": ["usage"] * 5 + ["renewal"],
        "rating_type": ["csat", "csat", "nps", "nps", "stars", "nps"],
        "rating": [4.0, 2.0, 9.0, 10.0, 5.0, 0.0],
        "sentiment": [0.5, -0.5, 0.2, 0.4, 0.9, -0.8],
        "sentiment_status": ["scored"] * 6})


def test_sentiment_by_stage_never_mixes_rating_scales():
    t = narrative.sentiment_by_stage(_feedback(), ["usage", "renewal"], rating_type="csat")
    assert "rating_mean" not in t.columns
    assert list(t.columns[:3]) == ["comments", "sentiment_mean", "share_negative"]
    assert list(t.columns[3:5]) == ["csat_mean", "csat_n"]                 # the declared scale first
    assert t.loc["usage", "csat_mean"] == 3.0 and t.loc["usage", "csat_n"] == 2
    assert t.loc["usage", "nps_mean"] == 9.5 and t.loc["usage", "stars_mean"] == 5.0
    assert pd.isna(t.loc["renewal", "csat_mean"]) and t.loc["renewal", "nps_mean"] == 0.0
    assert t["csat_mean"].dropna().between(1, 5).all()                     # a 1-5 mean stays on 1-5
    # the old mixed mean would have been (4 + 2 + 9 + 10 + 5) / 5 = 6.0 on a "1-5" scale
    assert 6.0 not in t.filter(like="_mean").to_numpy()


def test_stage_metrics_no_dropoff_where_ending_is_completion():
    t = pd.Timestamp("2024-01-01", tz="UTC")
    ev = pd.DataFrame({"customer_id": ["a", "a", "b"], "timestamp": [t, t + pd.Timedelta(hours=1), t],
                       "stage": ["s1", "s2", "s1"], "row_id": range(3)})
    m = metrics.stage_metrics(ev, None, ["s1", "s2"]).set_index("stage")
    assert m.loc["s1", "dropoff_share"] == 0.5 and m.loc["s2", "dropoff_share"] == 0.0   # s2 ends the journey
    m = metrics.stage_metrics(ev, None, ["s1", "s2"], terminal=["s1"]).set_index("stage")
    assert m.loc["s1", "dropoff_share"] == 0.0 and m.loc["s2", "dropoff_share"] == 1.0


def test_comparison_at_display_precision_reads_no_change():
    prev = pd.DataFrame({"stage": ["s1", "s2"], "sentiment_mean": [0.41, 0.1], "sentiment_se": [0.01, 0.01],
                         "dwell_median_s": [3600.0, 3600.0], "dwell_median_se_s": [1e-9, 60.0],
                         "dropoff_share": [1.0, 0.2], "dropoff_se": [0.0, 0.01]})
    cur = prev.assign(sentiment_mean=[0.41 + 3.89e-11, 0.3], dwell_median_s=[3600 - 4.25e-9, 7200.0])
    rows = report._comparison_rows(metrics.compare_stage_metrics(cur, prev))
    by = {(r["stage"], r["metric"]): r for r in rows}
    assert by[("s1", "sentiment")]["change"] == "no change" and by[("s1", "sentiment")]["arrow"] == "≈"
    assert by[("s1", "dwell median")]["change"] == "no change"            # not +3.89e-11 / -4.25e-09
    assert by[("s1", "drop-off")]["previous"] == "100%" and by[("s1", "drop-off")]["change"] == "no change"
    assert by[("s2", "sentiment")]["change"] == "+0.20" and by[("s2", "sentiment")]["verdict"] == "better"
    assert by[("s2", "dwell median")]["change"] == "+1 h" and by[("s2", "dwell median")]["current"] == "2 h"
    text = json.dumps(rows, ensure_ascii=False)
    assert "e-" not in text and "nan" not in text.lower()


def test_act_on_lists_the_top_recommendations_with_evidence():
    recs = pd.DataFrame({"rank": [2, 1, 3, 4], "stage": ["support", "purchase", "onboarding", "usage"],
                         "action": ["fix the experience", "cut the wait", "fix the experience", "look closer at"],
                         "reach": [0.486, 0.908, 0.9, 0.5], "confidence": [1.0, 0.6, 0.3, 0.3],
                         "evidence": ["csat 1.74 against a target of 4", "median 8.1 days against 2.0", "x", "y"],
                         "themes": ["hold (59)", None, "", ""], "sentence": ["s"] * 4})
    items = report.act_on(recs)
    assert [i["title"] for i in items] == ["Purchase: cut the wait", "Support: fix the experience",
                                           "Onboarding: fix the experience"]
    assert items[0]["evidence"] == "median 8.1 days against 2.0" and items[0]["reach"] == "reaches 91% of customers"
    found = {"top_pain_point": "support", "top_pain_score": 0.5712, "top_driver": "onboarding: experience",
             "top_driver_stage": "onboarding", "top_driver_sentence": "Better onboarding, less churn."}
    fallback = report.act_on(None, found)
    assert [i["title"] for i in fallback] == ["Pain point: support", "Moment of truth: onboarding: experience"]
    assert fallback[0]["evidence"] == "pain score 0.57"


def test_index_draws_a_trend_per_config_over_all_its_runs(tmp_path):
    for i, (cfg, customers) in enumerate([("demo", 100), ("demo", 120), ("other", 7), ("demo", 90)]):
        folder = tmp_path / f"r{i}"
        folder.mkdir()
        (folder / "run.json").write_text(json.dumps({
            "run_id": f"r{i}", "config_name": cfg, "created_at": f"2024-01-0{i + 1}T00:00:00+00:00",
            "headline": {"customers": customers, "events": customers * 10}, "kpi_breaches": i % 2, "kpis_checked": 2,
            "previous_run": None if i in (0, 2) else "r0", "changes_better": 0, "changes_worse": 0}))
    trends = {t["config"]: t for t in report.config_trends(report.list_runs(tmp_path))}
    assert trends["demo"]["runs"] == 3 and trends["other"]["runs"] == 1
    cust = next(tr for tr in trends["demo"]["trends"] if tr["label"] == "customers")
    assert cust["first"] == "100" and cust["last"] == "90" and cust["svg"].count(",") == 3   # three points
    page = report.write_index(tmp_path).read_text()
    assert page.count('<svg class="spark"') >= 5 and "<script" not in page
    assert "▲ 0 better" not in page and "no change beyond noise" in page
    assert report.sparkline([]) == "" and report.sparkline([None, np.nan]) == ""


def test_report_tables_are_formatted_and_paths_local():
    from journey_analysis.config import PROJECT_ROOT

    q = pd.DataFrame({"file": [str(PROJECT_ROOT / "data" / "raw" / "demo" / "feedback.csv.gz")], "check": ["x"],
                      "rows": [444], "detail": [None]})
    html = report._table_html(q)
    assert str(PROJECT_ROOT) not in html and "data/raw/demo/feedback.csv.gz" in html
    assert "None" not in html and "—" in html and "<th" in html


@pytest.mark.parametrize("metric,value,expected", [("dwell_median_s", 330022.5, "91.7 h"), ("csat_mean", 3.912, "3.9")])
def test_kpi_messages_in_the_unit_of_the_threshold(metric, value, expected):
    jm = pd.DataFrame({"segment": ["All customers"], "stage": ["s"], metric: [value]})
    k = metrics.check_kpis([{"stage": "s", "metric": metric, "max": 1.0, "label": "post"}], jm, None)
    assert expected in k.iloc[0]["message"] and "e+" not in k.iloc[0]["message"]


def test_failed_runs_on_the_index_name_no_absolute_path(tmp_path):
    from journey_analysis.config import PROJECT_ROOT

    f = tmp_path / "failed" / "bad"
    f.mkdir(parents=True)
    msg = (f"02_gather cell 5: JourneyError: file {PROJECT_ROOT}/data/raw/demo/events.csv.gz, column "
           f"timestamp; see /srv/other/place/run.log.")
    (f / "failure.json").write_text(json.dumps({"run_id": "bad", "failed_at": "2024-01-01T00:00:00+00:00",
                                                "message": msg, "notebook": "02_gather.ipynb"}))
    page = report.write_index(tmp_path).read_text()
    assert str(PROJECT_ROOT) not in page and "/srv/other" not in page
    assert "data/raw/demo/events.csv.gz, column timestamp; see run.log." in page


def test_a_breach_that_rounding_would_hide_says_by_how_much():
    """168.04 h against at most 168 h (issue 13: "is 7.0 days, expected at most 7.0 days" read as no breach)."""
    jm = pd.DataFrame({"segment": ["All customers"], "stage": ["carrier"], "stage_time_median_s": [168.04 * 3600]})
    k = metrics.check_kpis([{"stage": "carrier", "metric": "stage_time_median_s", "max": 7 * 86400,
                            "label": "Carrier delivers within 7 days"}], jm, None).iloc[0]
    assert k["status"] == "breach"
    assert "168 h, expected at most 168 h; 0.024% above it" in k["message"], k["message"]
    clear = metrics.check_kpis([{"stage": "carrier", "metric": "stage_time_median_s", "max": 3 * 86400}], jm, None)
    assert "above it" not in clear.iloc[0]["message"]     # a clear breach needs no percentage
