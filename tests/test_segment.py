"""Tests for journey_analysis.segment: features (hand-made answers, messy table report), k-means on the
demo data against planted segments, predict / save / load, dynamic segments, figures' data twins."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from journey_analysis import segment as sg
from journey_analysis.errors import JourneyError

T0 = pd.Timestamp("2024-01-01T00:00:00Z")


def _events(rows):
    ev = pd.DataFrame(rows, columns=["customer_id", "hours", "stage", "channel"])
    ev["timestamp"] = T0 + pd.to_timedelta(ev.pop("hours"), unit="h")
    return ev


@pytest.fixture(scope="module")
def tiny():
    ev = _events([
        ("a", 0, "awareness", "website"), ("a", 24, "purchase", "website"), ("a", 48, "support", "helpline"),
        ("a", 24 * 40, "support", "helpline"),
        ("b", 0, "awareness", "store"), ("b", 10, "awareness", "store"),
        ("NA", 0, "awareness", "email"), ("NA", 2, "purchase", "website"),
    ])
    customers = pd.DataFrame({"customer_id": ["a", "b", "NA", "z"], "age": [30, 40, 50, 60],
                              "churned": [True, False, False, True]})
    fb = pd.DataFrame({"feedback_id": ["1", "2", "3", "4", "5"], "customer_id": ["a", "a", "a", "b", None],
                       "stage": ["purchase", "support", "support", "awareness", "support"],
                       "rating_type": ["csat", "nps", "csat", None, "csat"], "rating": [5, 0, 3, 4, 1],
                       "sentiment": [0.5, -0.8, -0.2, 0.1, -1.0]})
    return ev, customers, fb


def test_features_hand_made(tiny):
    ev, customers, fb = tiny
    f, rep = sg.customer_features(ev, customers, fb, outcome="churned")
    assert list(f.index) == ["NA", "a", "b", "z"]  # "NA" is an id, not missing; z has no events
    a = f.loc["a"]
    assert a["n_events"] == 4 and a["n_stages"] == 3 and a["support_contacts"] == 2
    assert a["time_to_purchase_s"] == 24 * 3600
    assert a["share_channel_helpline"] == 0.5 and a["share_channel_website"] == 0.5
    assert f.loc["NA", "time_to_purchase_s"] == 2 * 3600
    # recency to the last event of the extract (a's event at 40 days)
    assert f.loc["b", "recency_days"] == pytest.approx(40 - 10 / 24)
    assert a["recency_days"] == 0
    # a: events in January and February -> 4 events / 2 months
    assert a["frequency_per_month"] == 2.0 and f.loc["b", "frequency_per_month"] == 2.0
    # customer without events: counts and shares 0
    assert f.loc["z", "n_events"] == 0 and f.loc["z", "share_channel_store"] == 0
    # ratings: csat (5 -> 1.0, 3 -> 0.5) mean 0.75; nps 0 -> 0; b's rating has no type (no config) -> unused
    assert a["rating_csat_01"] == 0.75
    assert a["sentiment_mean"] == pytest.approx((0.5 - 0.8 - 0.2) / 3)
    # worst stage: support mean -0.5 < purchase 0.5; a descriptor, kept as text
    assert f.loc["a", "worst_stage"] == "support" and f.loc["b", "worst_stage"] == "awareness"
    assert "churned" not in f.columns
    assert rep.set_index("column").loc["churned", "action"] == "excluded outcome"
    # time_to_purchase missing for b and z (50 %): median imputed + indicator
    r = rep.set_index("column")
    assert r.loc["time_to_purchase_s", "action"] == "imputed median (2) + indicator"
    assert f.loc["b", "time_to_purchase_s"] == pytest.approx(13 * 3600)  # median of 2 h and 24 h
    assert f["time_to_purchase_s_missing"].tolist() == [0, 0, 1, 1]


def test_feature_selection_and_outcome_as_feature(tiny):
    ev, customers, fb = tiny
    cfg = {"outcome": "churned", "segmentation": {"features": ["age", "n_events", "churned"],
                                                   "outcome_as_feature": True}}
    f, rep = sg.customer_features(ev, customers, fb, config=cfg)
    assert [c for c in f.columns if c != "worst_stage"] == ["age", "n_events", "churned"]
    assert (rep["action"] == "not selected").sum() > 5
    with pytest.raises(JourneyError, match="not a feature"):
        sg.customer_features(ev, customers, fb, config={"segmentation": {"features": ["shoe_size"]}})


def test_messy_customer_table_report():
    rng = np.random.default_rng(1)
    n = 400
    ids = [f"c{i}" for i in range(n)]
    ev = pd.DataFrame({"customer_id": np.repeat(ids, 2), "stage": "awareness", "channel": "website",
                       "timestamp": T0 + pd.to_timedelta(np.arange(2 * n), unit="h")})
    income = (20000 + rng.integers(0, 50000, n)).astype(str).astype(object)
    income[:40] = ""          # 10 % blanks in a numeric column read as text
    tenure = rng.integers(1, 60, n).astype(float)
    tenure[:8] = np.nan       # 2 % missing: imputed, no indicator
    region = rng.choice(["north", "south", "east"], n).astype(object)
    region[:2] = "atlantis"   # 0.5 %: rare -> other
    region[2:6] = ""          # 1 %: blank -> level "missing"
    customers = pd.DataFrame({"customer_id": ids, "income": income, "tenure_months": tenure, "region": region,
                              "country": "UK", "score": 7.0, "joined": pd.Timestamp("2020-01-01", tz="UTC")})
    f, rep = sg.customer_features(ev, customers)
    r = rep.set_index("column")
    assert r.loc["income", "action"] == "imputed median (40) + indicator"
    assert "40 blank" in r.loc["income", "detail"]
    assert f["income_missing"].sum() == 40
    assert f["income"].isna().sum() == 0
    assert r.loc["tenure_months", "action"] == "imputed median (8)"
    assert "tenure_months_missing" not in f.columns
    assert r.loc["score", "action"] == "dropped constant"
    assert r.loc["country=UK", "action"] == "dropped constant" and "country=UK" not in f.columns
    assert "grouped into other: atlantis" in r.loc["region", "detail"]
    assert {"region=east", "region=north", "region=south", "region=missing", "region=other"} <= set(f.columns)
    assert f["region=other"].sum() == 2 and f["region=missing"].sum() == 4
    assert r.loc["joined", "action"] == "skipped datetime"
    # behaviour columns constant here (every customer 2 events, one stage, one channel) -> dropped
    assert r.loc["n_events", "action"] == "dropped constant"
    assert not f.drop(columns=[c for c in f.columns if not pd.api.types.is_numeric_dtype(f[c])]).isna().any().any()
    seg = sg.segment_customers(f, k=3)
    assert seg.labels.nunique() == 3 and len(seg.labels) == n


def _blobs(n=600, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, n)
    centers = np.array([[0, 0, 0], [6, 0, 3], [0, 6, -3]], dtype=float)
    X = centers[truth] + rng.normal(0, 1, (n, 3))
    f = pd.DataFrame(X, columns=["age", "monthly_value", "sentiment_mean"],
                     index=pd.Index([f"c{i}" for i in range(n)], name="customer_id"))
    return f, truth


def test_segmentation_on_blobs_scores_profiles_names():
    f, truth = _blobs()
    seg = sg.segment_customers(f, k="auto", k_range=(2, 6))
    assert seg.k == 3 and adjusted_rand_score(truth, seg.labels) > 0.95
    assert list(seg.scores.index) == [2, 3, 4, 5, 6] and seg.scores.loc[3, "chosen"]
    assert seg.scores["silhouette"].idxmax() == 3
    sizes = seg.profiles["size"].tolist()
    assert sizes == sorted(sizes, reverse=True) and sum(sizes) == len(f)  # 0 = largest
    assert seg.profiles["share"].sum() == pytest.approx(1.0)
    assert seg.stability_ari > 0.95
    # centroids in original units: close to the segment means
    means = f.groupby(seg.labels).mean()
    np.testing.assert_allclose(seg.centroids.to_numpy(), means.to_numpy(), atol=1e-6)
    # differences: (segment mean - population mean) / population sd
    z = (f - f.mean()) / f.std(ddof=0)
    np.testing.assert_allclose(seg.differences.to_numpy(), z.groupby(seg.labels).mean().to_numpy(), atol=1e-9)
    assert len(set(seg.names.values())) == 3
    hi_value = int(seg.centroids["monthly_value"].idxmax())
    assert "high value" in seg.names[hi_value]
    # same seed, same labels; config names override
    seg2 = sg.segment_customers(f, k="auto", k_range=(2, 6), names={0: "Core"})
    pd.testing.assert_series_equal(seg.labels, seg2.labels)
    assert seg2.names[0] == "Core" and seg2.names[1] == seg.names[1]


def test_large_data_paths_and_errors():
    f, truth = _blobs(3000)
    seg = sg.Segmentation(k="auto", k_range=(2, 4), large_n=1000, fit_sample_size=800, sample_size=500).fit(f)
    assert seg.k == 3 and seg.algorithm.startswith("KMeans on a seeded 800-row sample")
    assert adjusted_rand_score(truth, seg.labels) > 0.95
    mb = sg.Segmentation(k=3, large_n=1000, large_algorithm="minibatch", batch_size=256).fit(f)
    assert mb.algorithm == "MiniBatchKMeans" and adjusted_rand_score(truth, mb.labels) > 0.95
    with pytest.raises(JourneyError, match="cannot make"):
        sg.segment_customers(f.iloc[:3], k=3)
    with pytest.raises(JourneyError, match="non-empty"):
        sg.segment_customers(f.iloc[:0])


@pytest.fixture(scope="module")
def demo():
    datasets = pytest.importorskip("journey_analysis.datasets")
    return datasets.make_demo(2000, seed=0)


@pytest.fixture(scope="module")
def demo_fit(demo):
    cfg = {"outcome": "churned", "satisfaction": {"rating_type": "csat"}}
    f, rep = sg.customer_features(demo.events, demo.customers, demo.feedback, config=cfg, population="purchasers")
    return cfg, f, rep, sg.segment_customers(f, k="auto", k_range=(2, 8), random_state=0)


def test_demo_finds_planted_segments(demo, demo_fit):
    _, f, rep, seg = demo_fit
    truth = pd.Series(demo.truth["customer_segment"]).reindex(f.index)
    assert seg.k == demo.truth["n_segments"]
    ari = adjusted_rand_score(truth, seg.labels)
    assert ari >= 0.8, ari
    assert "churned" not in f.columns
    # same seed -> same labels
    again = sg.segment_customers(f, k="auto", k_range=(2, 8), random_state=0)
    pd.testing.assert_series_equal(seg.labels, again.labels)


def test_predict_save_load_reference_features(demo, demo_fit, tmp_path):
    cfg, f, _, seg = demo_fit
    f2, rep2 = sg.customer_features(demo.events, demo.customers, demo.feedback, config=cfg,
                                    population="purchasers", reference=seg)
    assert list(f2.columns) == seg.feature_names + seg.descriptor_names
    pd.testing.assert_series_equal(seg.predict(f2), seg.labels)
    path = sg.save(seg, tmp_path)
    assert path.name == "segmentation.joblib"
    back = sg.load(tmp_path)
    pd.testing.assert_series_equal(back.predict(f), seg.labels)
    # new customers with an unseen level and a missing column still get a segment
    new = f.iloc[:5].drop(columns=["age"])
    assert sg.predict(back, new).between(0, seg.k - 1).all()
    with pytest.raises(JourneyError, match="no saved segmentation"):
        sg.load(tmp_path / "nope")


def test_dynamic_segments(demo, demo_fit):
    cfg, f, _, seg = demo_fit
    buyers = demo.customers[demo.customers["customer_id"].isin(f.index)]
    ev = demo.events[demo.events["customer_id"].isin(f.index)]
    dyn = sg.assign_segments_by_period(ev, buyers, demo.feedback, seg, period="Q", config=cfg)
    last = dyn.assignments[dyn.assignments["period"] == dyn.assignments["period"].max()]
    # cumulative window: the last period is the static segmentation (recency to the extract end)
    agree = (last.set_index("customer_id")["segment"].reindex(seg.labels.index) == seg.labels).mean()
    assert agree > 0.95
    t = dyn.transitions
    assert set(t.columns) >= {"from_segment", "to_segment", "customers", "share"}
    np.testing.assert_allclose(t.groupby("from_segment")["share"].sum(), 1.0)
    assert "stayed in their segment" in dyn.statement
    assert dyn.stay["share_stay"].between(0, 1).all()


def test_figures_and_data_twins(demo_fit):
    _, f, _, seg = demo_fit
    d = sg.plot_k_scores_data(seg)
    assert d["chosen"].sum() == 1 and list(d["k"]) == list(range(2, 9))
    p = sg.plot_projection_data(seg, f, sample_size=300)
    assert len(p) == 300 and {"pc1", "pc2", "segment", "name"} <= set(p.columns)
    prof = sg.plot_profiles_data(seg, top=5)
    assert len(prof) == 5 * seg.k
    sizes = sg.plot_sizes_data(seg)
    assert sizes["customers"].sum() == len(f) and sizes["share_customers"].sum() == pytest.approx(1)
    for fig in (sg.plot_k_scores(seg), sg.plot_projection(seg, f, 300), sg.plot_profiles(seg), sg.plot_sizes(seg)):
        assert fig.axes
        matplotlib.pyplot.close(fig)


def test_features_describe_customers_not_ids_outcomes_or_repeats():
    """Ids (named or nearly unique), the outcome, declared outcome-derived columns and a feature that is the
    outcome in disguise are never features; a level repeated across one-hot columns becomes one feature;
    each segment's size and outcome rate are shown."""
    from journey_analysis.config import RunConfig

    rng = np.random.default_rng(3)
    n = 300
    ids = [f"c{i:03d}" for i in range(n)]
    internet = rng.choice(["fibre", "dsl", "No internet service"], n, p=[0.4, 0.3, 0.3])
    svc = lambda: np.where(internet == "No internet service", "No internet service", rng.choice(["Yes", "No"], n))  # noqa: E731
    churned = rng.uniform(size=n) < np.where(internet == "fibre", 0.4, 0.1)
    customers = pd.DataFrame({
        "customer_id": ids, "customerID": [f"X-{i}" for i in range(n)], "order_ref": [f"R{i:05d}" for i in range(n)],
        "rownum": np.arange(1, n + 1), "tenure": rng.integers(1, 72, n), "internet": internet,
        "online_security": svc(), "tech_support": svc(), "streaming": svc(),
        "churned": churned, "late_review": np.where(churned, 1.0, 0.0) + rng.normal(0, 0.01, n),
        "refund": rng.uniform(size=n)})
    ev = _events([(c, h, "awareness", "website") for c in ids for h in (0, 5)])
    cfg = RunConfig(name="t", objective="Keep customers", outcome="churned", outcome_good=False,
                    data={"events": "/tmp/none.csv"}, stages=[{"name": "awareness"}],
                    segmentation={"exclude": ["refund"], "k": 2})
    f, rep = sg.customer_features(ev, customers, config=cfg)
    r = rep.set_index("column")
    for col in ("customerID", "order_ref", "rownum"):
        assert r.loc[col, "action"] == "excluded id-like" and not any(c.startswith(col) for c in f.columns)
    assert r.loc["refund", "action"] == "excluded (segmentation.exclude)" and "refund" not in f.columns
    assert r.loc["churned", "action"] == "excluded outcome"
    assert r.loc["late_review", "action"] == "dropped leakage" and "late_review" not in f.columns
    # "No internet service" is one feature, not four
    repeated = [c for c in f.columns if c.endswith("=No internet service")]
    assert len(repeated) == 1 and "stands for" in r.loc[repeated[0], "detail"]
    assert r.loc["tech_support=No internet service", "action"] == "merged"
    seg = sg.segment_customers(f, k=2, random_state=0)
    out = sg.segment_outcomes(seg, customers, cfg)
    assert out["customers"].sum() == n and np.isclose(out["share"].sum(), 1)
    assert (out["outcome_n"] == out["customers"]).all() and out["outcome_rate"].between(0, 1).all()
    assert np.isclose((out["outcome_rate"] * out["customers"]).sum() / n, churned.mean())
    assert all("early leavers" not in name for name in seg.names.values())
