"""Tests for journey_analysis.analyze on the demo data (planted truths, two seeds) and hand-made maps."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from journey_analysis import analyze
from journey_analysis.config import DEMO_CONFIG, load_config
from journey_analysis.journey_map import ALL, build_map

SEEDS = (0, 7)


@lru_cache(maxsize=None)
def demo_run(seed: int, n: int = 2000):
    """Demo data -> linked, scored feedback -> map (true segments) -> pain points, drivers, gaps."""
    from journey_analysis import sentiment
    from journey_analysis.datasets import make_demo
    from journey_analysis.gather import link_feedback

    cfg = load_config(DEMO_CONFIG)
    d = make_demo(n, seed=seed)
    fb = link_feedback(d.feedback, d.events)
    fb["sentiment"] = sentiment.score(fb["text"]).to_numpy()
    names = d.truth["segment_names"]
    seg = pd.Series(d.truth["customer_segment"]).map(lambda i: names[i])
    m = build_map(d.events, fb, seg, cfg)
    pp = analyze.pain_points(m, cfg)
    drv = analyze.moments_of_truth(d.events, fb, d.customers, cfg, random_state=0, n_boot=100)
    gaps = analyze.expectation_gaps(m, cfg)
    return cfg, d, fb, m, pp, drv, gaps


@pytest.mark.parametrize("seed", SEEDS)
def test_planted_pain_point_ranks_first(seed):
    cfg, d, _, m, pp, _, _ = demo_run(seed)
    assert pp.iloc[0]["stage"] == d.truth["pain_point"] == "support"
    top = pp.iloc[0]
    assert top["pain_score"] > 1.3 * pp.iloc[1]["pain_score"]
    assert "comments negative" in top["reasons"] and "against target" in top["reasons"]
    assert pp["rank"].tolist() == list(range(1, len(pp) + 1))
    # the score is the documented weighted sum of its components
    comps = pp[list(analyze.PAIN_WEIGHTS)].mul(pd.Series(analyze.PAIN_WEIGHTS)).sum(axis=1)
    assert np.allclose(comps, pp["pain_score"])


@pytest.mark.parametrize("seed", SEEDS)
def test_planted_moment_of_truth_is_top_driver(seed):
    cfg, d, _, _, _, drv, _ = demo_run(seed)
    truth = d.truth["moment_of_truth"]
    top = drv.iloc[0]
    assert top["rank"] == 1 and top["role"] == "driver"
    assert top["stage"] == truth["stage"] == "onboarding"
    assert top["measure"] == "experience"  # rating and sentiment combined into one score
    assert drv.attrs["experience"] == "combined" and not drv["measure"].isin(["rating", "sentiment"]).any()
    # direction "negative": a worse onboarding experience raises churn (better rating -> lower odds)
    assert truth["direction"] == "negative" and top["effect"] < 0 and top["ci_high"] < 0
    # one scale for effect sizes: the odds ratio's interval is exp of the log-odds interval and excludes 1
    assert np.allclose(drv[["odds_ratio_ci_low", "odds_ratio_ci_high"]], np.exp(drv[["ci_low", "ci_high"]]))
    assert top["odds_ratio_ci_low"] < top["odds_ratio"] < top["odds_ratio_ci_high"] < 1
    assert top["significant"] and top["worse_raises_bad"]
    assert top["share_bad_with_issue"] > 2 * top["share_good_with_issue"]
    # prospects (no outcome) are excluded and reported; the outcome stage is excluded (reverse causality)
    assert drv.attrs["n_excluded_missing_outcome"] == int(d.customers["churned"].isna().sum()) > 0
    assert drv.attrs["n_customers"] == int(d.customers["churned"].notna().sum())
    assert "renewal" in drv.attrs["excluded_stages"] and "renewal" not in set(drv["stage"])
    assert drv.loc[drv["role"] == "control", "rank"].isna().all()
    assert "odds of churning" in top["sentence"]


def test_experience_score_by_hand():
    X = pd.DataFrame({"s|rating": [1.0, 3.0, 5.0, np.nan], "s|sentiment": [np.nan, -0.5, 0.5, 0.0],
                      "s|dwell_log_h": [1.0, 2.0, 3.0, 4.0], "t|reached": [1.0, 1.0, np.nan, 1.0]},
                     index=["a", "b", "c", "d"])
    e = analyze.experience_score(X)
    assert list(e.columns) == ["s|experience"]  # only stages with rating or sentiment
    # rating z (ddof=0): mean 3, sd sqrt(8/3) -> a -1.2247, b 0, c 1.2247; sentiment z: mean 0, sd sqrt(1/6)
    zr = (X["s|rating"] - 3) / np.sqrt(8 / 3)
    zs = X["s|sentiment"] / np.sqrt(1 / 6)
    expect = [zr["a"], (zr["b"] + zs["b"]) / 2, (zr["c"] + zs["c"]) / 2, zs["d"]]  # mean of the available ones
    assert np.allclose(e["s|experience"], expect)
    assert e.loc["a", "s|experience"] == pytest.approx(-np.sqrt(1.5))


def test_separate_measures_still_available():
    cfg, d, fb, *_ = demo_run(0)
    drv = analyze.moments_of_truth(d.events, fb, d.customers, cfg, n_boot=5, experience="separate")
    assert {"rating", "sentiment"} <= set(drv["measure"]) and "experience" not in set(drv["measure"])
    with pytest.raises(Exception, match="combined"):
        analyze.moments_of_truth(d.events, fb, d.customers, cfg, n_boot=2, experience="both")


@pytest.mark.parametrize("seed", SEEDS)
def test_planted_expectation_gap_flagged(seed):
    cfg, d, _, m, _, _, gaps = demo_run(seed)
    truth = d.truth["expectation_gap"]
    row = gaps[(gaps["stage"] == truth["stage"]) & (gaps["kind"] == "duration")].iloc[0]
    assert row["flagged"] and row["significant"]
    assert row["expected"] == truth["expected_max_duration_h"]
    assert row["actual"] > 2 * row["expected"]  # median about 8 days against 48 h
    mrow = m[(m.segment == ALL) & (m.stage == "purchase")].iloc[0]
    assert row["actual"] == pytest.approx(mrow["dwell_median_h"])
    assert gaps.iloc[0]["stage"] == "purchase"  # the largest gap comes first
    assert (gaps["expectation_source"] == "config").all()


def test_recommendations_tied_to_objective():
    cfg, d, _, m, pp, drv, gaps = demo_run(0)
    rec = analyze.recommendations(pp, drv, gaps, m, cfg)
    assert rec.iloc[0]["stage"] == "onboarding"  # moment of truth, 90% reach
    assert set(rec["stage"].head(3)) == {"onboarding", "purchase", "support"}
    assert rec["sentence"].str.startswith("To reduce churn in the first year: ").all()
    assert "% of customers who churned" in rec.iloc[0]["sentence"]
    assert np.allclose(rec["priority"], rec["impact"] * rec["reach"] * rec["confidence"])
    assert rec["priority"].is_monotonic_decreasing


def test_compare_segments_marks_real_differences():
    cfg, d, _, m, *_ = demo_run(0)
    c = analyze.compare_segments(m)
    assert set(c["segment"]) == set(d.truth["segment_names"])
    # support contacts differ by segment by design (45% to 85%): the reach at support differs somewhere
    sup = c[(c.metric == "share_customers") & (c.stage == "support")]
    assert sup["differs"].any()
    # the "rest" is the population minus the segment: check one proportion by hand
    r = sup.iloc[0]
    allrow = m[(m.segment == ALL) & (m.stage == "support")].iloc[0]
    segrow = m[(m.segment == r["segment"]) & (m.stage == "support")].iloc[0]
    expect_rest = (allrow["customers"] - segrow["customers"]) / (allrow["segment_customers"] - segrow["segment_customers"])
    assert r["rest"] == pytest.approx(expect_rest)
    wide = analyze.compare_segments_wide(c, "share_customers")
    assert list(wide.columns) == sorted(d.truth["segment_names"])


def test_compare_segments_equal_groups_do_not_differ():
    rows = []
    for seg, cust in ((ALL, 200), ("x", 100), ("y", 100)):
        rows.append({"segment": seg, "stage": "s", "stage_order": 0, "segment_customers": cust, "customers": cust // 2,
                     "share_customers": 0.5, "drop_off": 0.1, "drop_off_customers": cust // 10, "rework_share": 0.0,
                     "rework_customers": 0, "dwell_mean_h": 2.0, "dwell_n": cust, "dwell_std_h": 1.0,
                     "satisfaction_mean": 4.0, "satisfaction_n": cust, "satisfaction_sd": 1.0, "sentiment_mean": 0.1,
                     "sentiment_n": cust, "sentiment_sd": 0.5, "sentiment_share_negative": 0.2,
                     "sentiment_negative_n": cust // 5})
    c = analyze.compare_segments(pd.DataFrame(rows))
    assert not c["differs"].any()
    assert np.allclose(c.loc[c.metric == "satisfaction_mean", "rest"], 4.0)


def test_test_experience_flags_differences():
    cfg, d, _, m, *_ = demo_run(0)
    sup = m[(m.segment == ALL) & (m.stage == "support")].iloc[0]
    obs = pd.DataFrame({
        "stage": ["support", "support", "nowhere"], "channel": ["helpline", "carrier pigeon", "store"],
        "when": ["2025-05-01 10:00"] * 3, "wait_s": [sup["service_median_s"], 50 * sup["service_p90_s"], 60],
        "who": ["agent", "agent", "-"], "notes": ["", "", ""]})
    out = analyze.test_experience(obs, m)
    assert out["differs"].tolist() == [False, True, True]
    assert out.loc[0, "map_reference"] == "service" and out.loc[0, "ratio_to_median"] == pytest.approx(1.0)
    assert "over the map's p90" in out.loc[1, "flags"] and "carrier pigeon" in out.loc[1, "flags"]
    assert out.loc[2, "flags"] == "stage not in the map"
    assert out.loc[0, "finding"] == "Test at Support (helpline): consistent with the map."


def test_outcome_is_bad_and_errors():
    s = pd.Series([True, False, None, "true", "0"], dtype=object)
    assert analyze.outcome_is_bad(s, False).tolist()[:2] == [1.0, 0.0]
    assert np.isnan(analyze.outcome_is_bad(s, False).iloc[2])
    assert analyze.outcome_is_bad(pd.Series(["stay", "leave"]), "stay").tolist() == [0.0, 1.0]
    cfg, d, fb, *_ = demo_run(0)
    with pytest.raises(Exception, match="no outcome column"):
        analyze.moments_of_truth(d.events, fb, d.customers.drop(columns="churned"), cfg, n_boot=2)


def test_logit_matches_scikit_learn():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    Z = rng.normal(size=(400, 4))
    y = (rng.uniform(size=400) < 1 / (1 + np.exp(-(Z @ [1.0, -0.5, 0.0, 0.3])))).astype(float)
    ours = analyze._logit_ridge(Z, y, C=1.0)
    ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=1000).fit(Z, y).coef_[0]
    assert np.allclose(ours, ref, atol=1e-5)
