"""Tests for journey_analysis.datasets: determinism, contracts, planted truths, frozen copy."""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from journey_analysis.datasets import (SEGMENT_NAMES, STAGES, DemoData, demo_config_path, make_demo,
                                       stage_touchpoints, write_demo)

ROOT = Path(__file__).resolve().parents[1]
FROZEN = ROOT / "data" / "raw" / "demo"
FROZEN_PARAMS = {"n_customers": 5000, "seed": 0}
PII = r"[\w.+-]+@[\w-]+\.[\w.]+|\b07700 900\d{3}\b|\+44 7700 900\d{3}"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def demo() -> DemoData:
    return make_demo(**FROZEN_PARAMS)


@pytest.fixture(scope="module")
def demo_seed1() -> DemoData:
    return make_demo(n_customers=3000, seed=1)


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load(demo_config_path().read_text(encoding="utf-8"))


def _dwell_h(events: pd.DataFrame) -> pd.DataFrame:
    e = events.sort_values(["customer_id", "timestamp", "row_id"])
    nxt = e.groupby("customer_id")["timestamp"].shift(-1)
    return e.assign(dwell_h=(nxt - e["timestamp"]).dt.total_seconds() / 3600)


def _churn_by_onboarding(d: DemoData) -> tuple[float, float]:
    f = d.feedback
    onb = f[(f["stage"] == "onboarding") & (f["rating_type"] == "csat")].groupby("customer_id")["rating"].mean()
    y = d.customers.set_index("customer_id")["churned"].astype("float")
    j = pd.concat([onb.rename("r"), y.rename("y")], axis=1, join="inner").dropna()
    return j.loc[j["r"] <= 2, "y"].mean(), j.loc[j["r"] >= 4, "y"].mean()


def _rating_churn_corr(d: DemoData, stage: str) -> float:
    f = d.feedback
    r = f[(f["stage"] == stage) & f["rating"].notna() & f["customer_id"].notna()].groupby("customer_id")["rating"].mean()
    y = d.customers.set_index("customer_id")["churned"].astype("float")
    j = pd.concat([r.rename("r"), y.rename("y")], axis=1, join="inner").dropna()
    return float(j["r"].corr(j["y"]))


# ------------------------------------------------------------------------------------- determinism
def test_same_seed_gives_byte_identical_files_and_other_seed_differs(tmp_path):
    a = write_demo(tmp_path / "a", n_customers=300, seed=7)
    b = write_demo(tmp_path / "b", n_customers=300, seed=7)
    c = write_demo(tmp_path / "c", n_customers=300, seed=8)
    assert set(a) == {"events", "customers", "feedback", "truth", "observations"}
    for key in a:
        assert _sha(a[key]) == _sha(b[key]), key
    for key in ("events", "customers", "feedback"):
        assert _sha(a[key]) != _sha(c[key]), key
    assert a["events"].name == "events.csv.gz"
    assert a["events"].read_bytes()[:2] == b"\x1f\x8b"          # gzip
    truth_text = a["truth"].read_text(encoding="utf-8")
    assert truth_text == json.dumps(json.loads(truth_text), sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def test_same_seed_gives_identical_frames():
    a, b = make_demo(400, seed=3), make_demo(400, seed=3)
    for name in ("events", "customers", "feedback"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    assert a.truth == b.truth


def test_make_demo_is_fast():
    start = time.perf_counter()
    make_demo(5000, seed=2)
    assert time.perf_counter() - start < 5.0   # about 1 s on the 2-core CI machine; 3 s budget + slack


def test_too_few_customers_is_a_clear_error():
    from journey_analysis.errors import JourneyError
    with pytest.raises(JourneyError, match="at least 50"):
        make_demo(10)


# --------------------------------------------------------------------------------------- contracts
def test_events_follow_the_contract(demo):
    e = demo.events
    assert list(e.columns) == ["customer_id", "timestamp", "stage", "touchpoint", "channel", "journey",
                               "duration_s", "row_id"]
    assert str(e["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert e["customer_id"].dtype == object and e["customer_id"].str.fullmatch(r"C\d{5}").all()
    assert e["row_id"].dtype == np.int64 and (e["row_id"].to_numpy() == np.arange(len(e))).all()
    assert e["timestamp"].is_monotonic_increasing                      # export order
    assert e["timestamp"].max() < pd.Timestamp(demo.truth["extract_end"])
    assert e["timestamp"].min() >= pd.Timestamp(demo.truth["extract_end"]) - pd.Timedelta(days=365)
    assert set(e["stage"]) == set(STAGES)
    assert (e["journey"] == "renewal").all()
    assert (e["duration_s"].dropna() > 0).all()
    assert e["duration_s"].isna().mean() < 0.1
    # within a customer, stages never go back in the configured order
    s = e.sort_values(["customer_id", "timestamp", "row_id"])
    code = s["stage"].map({name: i for i, name in enumerate(STAGES)})
    assert (code.groupby(s["customer_id"]).diff().dropna() >= 0).all()
    # touchpoints belong to their stage
    tp = stage_touchpoints()
    assert all(set(g["touchpoint"]) <= set(tp[st]) for st, g in e.groupby("stage"))


def test_customers_follow_the_contract(demo):
    c = demo.customers
    assert list(c.columns) == ["customer_id", "age", "region", "plan", "tenure_months", "monthly_value",
                               "signup_channel", "churned"]
    assert c["customer_id"].is_unique and len(c) == 5000 and c["customer_id"].iloc[0] == "C00001"
    assert set(demo.events["customer_id"]) == set(c["customer_id"])
    assert str(c["churned"].dtype) == "boolean"
    assert set(c["plan"]) == {"basic", "fibre", "fibre_plus"}
    assert c["age"].between(18, 92).all() and (c["tenure_months"] >= 0).all() and (c["monthly_value"] > 0).all()
    # prospects (no purchase) have no outcome and no signup channel
    buyers = set(demo.events.loc[demo.events["stage"] == "purchase", "customer_id"])
    prospect = ~c["customer_id"].isin(buyers)
    assert 0.04 < prospect.mean() < 0.15
    assert c.loc[prospect, "churned"].isna().all() and c.loc[~prospect, "churned"].notna().all()
    assert c.loc[prospect, "signup_channel"].isna().all()
    assert 0.12 < c["churned"].mean() < 0.35
    assert "segment" not in " ".join(c.columns)                      # truth stays out of the data


def test_feedback_follows_the_contract(demo):
    f = demo.feedback
    assert list(f.columns) == ["feedback_id", "customer_id", "timestamp", "stage", "touchpoint", "channel",
                               "source", "rating_type", "rating", "text"]
    assert f["feedback_id"].is_unique
    assert str(f["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert set(f["source"]) == {"survey", "review", "social", "chat", "call"}
    assert set(f["stage"].dropna()) <= set(STAGES)
    scales = {"csat": (1, 5), "nps": (0, 10), "stars": (1, 5)}
    for rtype, (lo, hi) in scales.items():
        r = f.loc[f["rating_type"] == rtype, "rating"]
        assert len(r) > 0 and r.between(lo, hi).all() and (r == r.round()).all(), rtype
    assert set(f.loc[f["rating_type"] == "nps", "stage"]) == {"usage", "renewal"}
    assert f.loc[f["source"].isin(["social", "chat", "call"]), "rating"].isna().all()
    assert f.loc[f["source"].isin(["review", "social"]), "stage"].isna().all()
    assert f.loc[f["source"] == "survey", "stage"].notna().all()
    assert 0.02 < f["customer_id"].isna().mean() < 0.1                  # anonymous reviews and posts
    assert 0 < f["timestamp"].isna().sum() < 0.01 * len(f)
    known = f["customer_id"].dropna()
    assert known.isin(demo.customers["customer_id"]).all()
    assert (f["text"] == "").any() and f["text"].notna().all()


def test_config_describes_the_demo(config, demo):
    assert [s["name"] for s in config["stages"]] == list(STAGES)
    tp = stage_touchpoints()
    for s in config["stages"]:
        assert s["touchpoints"] == tp[s["name"]]
    assert set(demo.events["channel"]) <= set(config["channels"])
    assert config["outcome"] == "churned" and config["satisfaction"]["rating_type"] == "csat"
    purchase = next(s for s in config["stages"] if s["name"] == "purchase")
    assert purchase["expected_max_duration_h"] == demo.truth["expectation_gap"]["expected_max_duration_h"] == 48
    for key in ("events", "customers", "feedback"):
        assert (demo_config_path().parent / config["data"][key]).resolve() == (FROZEN / f"{key}.csv.gz").resolve()


def test_config_loads_with_the_package_loader():
    config_mod = pytest.importorskip("journey_analysis.config")
    cfg = config_mod.load_config(demo_config_path())
    assert list(cfg.stage_names) == list(STAGES)
    assert cfg.data.events.exists()


# ---------------------------------------------------------------------------------- planted truths
@pytest.mark.parametrize("which", ["demo", "demo_seed1"])
def test_pain_point_is_support(which, request):
    d = request.getfixturevalue(which)
    f = d.feedback
    csat = f[f["rating_type"] == "csat"].groupby("stage")["rating"].mean()
    assert csat.idxmin() == "support" and csat["support"] < 2.3            # target 4.0
    assert (csat.drop("support") > 3.5).all()
    scaled = np.where(f["rating_type"] == "nps", f["rating"] / 10, (f["rating"] - 1) / 4)
    low = pd.Series(scaled < 0.4, index=f.index)[f["rating"].notna()].groupby(f["stage"]).mean()
    assert low.idxmax() == "support" and low["support"] > 0.6 and low.drop("support").max() < 0.3
    e = _dwell_h(d.events)
    sup = e[e["stage"] == "support"]
    contacts = sup.groupby("customer_id").size()
    assert contacts.mean() > 2.0                                            # repeated contacts
    service = e.groupby("stage")["duration_s"].median()
    assert service.idxmax() == "support" and service["support"] > 25 * 60
    assert sup["dwell_h"].median() > 24                                     # KPI: support wait < 24 h fails


@pytest.mark.parametrize("which", ["demo", "demo_seed1"])
def test_expectation_gap_is_purchase(which, request, config):
    d = request.getfixturevalue(which)
    dwell = _dwell_h(d.events).groupby("stage")["dwell_h"].median()
    expected = {s["name"]: s.get("expected_max_duration_h") for s in config["stages"]}
    assert 150 < dwell["purchase"] < 250                                    # ~8 days vs 48 h
    ratio = {s: dwell[s] / h for s, h in expected.items() if h}
    assert max(ratio, key=ratio.get) == "purchase" and ratio["purchase"] > 3
    within = [s for s, r in ratio.items() if s not in ("purchase", "support")]
    assert all(ratio[s] < 1 for s in within), ratio
    assert ratio["support"] < ratio["purchase"] / 2


@pytest.mark.parametrize("which", ["demo", "demo_seed1"])
def test_moment_of_truth_is_onboarding(which, request):
    d = request.getfixturevalue(which)
    bad, good = _churn_by_onboarding(d)
    assert bad > 0.4 and good < 0.16 and bad > 3 * good
    corr = {s: _rating_churn_corr(d, s) for s in ("purchase", "onboarding", "usage", "support", "renewal")}
    assert corr["onboarding"] < -0.3                                        # better onboarding, less churn
    assert min(corr, key=corr.get) == "onboarding"
    assert abs(corr["support"]) < abs(corr["onboarding"]) / 2


def test_truth_dict(demo):
    t = demo.truth
    assert set(t) == {"seed", "n_customers", "extract_end", "n_segments", "segment_names", "pain_point",
                      "moment_of_truth", "expectation_gap", "customer_segment"}
    assert t["pain_point"] == "support"
    assert t["moment_of_truth"] == {"stage": "onboarding", "direction": "negative"}
    assert t["expectation_gap"] == {"stage": "purchase", "expected_max_duration_h": 48}
    assert t["n_segments"] == 4 and t["segment_names"] == list(SEGMENT_NAMES)
    seg = pd.Series(t["customer_segment"])
    assert list(seg.index) == list(demo.customers["customer_id"]) and set(seg) == {0, 1, 2, 3}
    assert seg.value_counts(normalize=True).min() > 0.15


@pytest.mark.parametrize("which", ["demo", "demo_seed1"])
def test_kmeans_recovers_the_segments(which, request):
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score
    from sklearn.preprocessing import StandardScaler

    d = request.getfixturevalue(which)
    e = d.events
    group = e["channel"].map({"website": "digital", "app": "digital", "webchat": "digital", "email": "digital",
                              "text": "digital", "social": "digital", "helpline": "phone", "store": "store"})
    shares = pd.crosstab(e["customer_id"], group, normalize="index")
    x = d.customers.set_index("customer_id")[["age", "monthly_value", "tenure_months"]].join(shares)
    x["n_events"] = e.groupby("customer_id").size()
    x["n_support"] = e[e["stage"] == "support"].groupby("customer_id").size()
    x = x.fillna(0)
    labels = KMeans(4, n_init=4, random_state=0).fit_predict(StandardScaler().fit_transform(x))
    truth = pd.Series(d.truth["customer_segment"]).reindex(x.index)
    assert adjusted_rand_score(truth, labels) >= 0.8


# ---------------------------------------------------------------------------------------- texts
def test_texts_are_varied_consistent_and_sometimes_personal(demo):
    f = demo.feedback
    text = f.loc[f["text"] != "", "text"]
    assert text.nunique() > 2000                                            # hundreds of phrasings at least
    pii = text.str.contains(PII, regex=True)
    assert 0.02 < pii.mean() < 0.045
    foreign = text.str.contains(r"\b(?:très|sehr|muy|rien|niemand|nadie|gracias|merci|danke)\b", case=False, regex=True)
    assert 0.004 < foreign.mean() < 0.02
    assert text.str.contains(r"\bbut\b|although", regex=True).mean() > 0.05        # mixed feelings
    assert text.str.contains(r"\bnot\b|n't|never", regex=True).mean() > 0.2        # negation
    assert text.str.contains(r"teh |becuase|realy|enginer|appointmnet|reccomend", regex=True).any()  # typos
    assert text.str.contains("[\U0001F300-\U0001FAFF]", regex=True).any()             # a few emoji
    rated = f[(f["text"] != "") & (f["rating_type"] == "csat")]
    bad_words = r"useless|never showed|no-show|on hold|botched|nightmare|confusing|crashed|not fixed"
    neg_share_low = rated.loc[rated["rating"] <= 2, "text"].str.contains(bad_words, regex=True).mean()
    neg_share_high = rated.loc[rated["rating"] >= 4, "text"].str.contains(bad_words, regex=True).mean()
    assert neg_share_low > 0.3 and neg_share_high < 0.02


# ----------------------------------------------------------------------------------- frozen copy
def test_frozen_copy_equals_write_demo_output(tmp_path):
    if not FROZEN.is_dir():
        pytest.fail(f"frozen demo data missing: {FROZEN}")
    paths = write_demo(tmp_path, **FROZEN_PARAMS)
    for key, p in paths.items():
        assert _sha(p) == _sha(FROZEN / p.name), f"{p.name} differs: regenerate data/raw/demo (see its README)"
    total = sum(p.stat().st_size for p in FROZEN.iterdir() if p.name != "README.md")
    assert total <= 2_000_000
    truth = json.loads((FROZEN / "truth.json").read_text(encoding="utf-8"))
    assert truth["seed"] == FROZEN_PARAMS["seed"] and truth["n_customers"] == FROZEN_PARAMS["n_customers"]
    assert "write_demo" in (FROZEN / "README.md").read_text(encoding="utf-8")


def test_frozen_files_read_back_as_written(demo):
    e = pd.read_csv(FROZEN / "events.csv.gz", dtype={"customer_id": str}, keep_default_na=False)
    assert len(e) == len(demo.events) and list(e.columns) == list(demo.events.columns[:-1])
    ts = pd.to_datetime(e["timestamp"], utc=True)
    assert (ts.to_numpy() == demo.events["timestamp"].to_numpy()).all()
    c = pd.read_csv(FROZEN / "customers.csv.gz", dtype={"customer_id": str}, keep_default_na=False)
    assert set(c["churned"]) == {"True", "False", ""}


# ------------------------------------------------------------------------ later period, complaint journey
def test_later_period_plants_one_change_and_shifts_the_window(tmp_path):
    from journey_analysis.datasets import ACTIVATION_MEDIAN_D, EXTRACT_END, WINDOW_DAYS

    now, later = make_demo(n_customers=1500, seed=3), make_demo(n_customers=1500, seed=3, period=1)
    assert later.events["timestamp"].min() >= EXTRACT_END > now.events["timestamp"].max()
    assert later.events["timestamp"].max() < EXTRACT_END + pd.Timedelta(days=WINDOW_DAYS)
    assert later.truth["changed"]["stage"] == "purchase" and later.truth["expectation_gap"] is None
    assert "period" not in now.truth and now.truth["expectation_gap"]["stage"] == "purchase"
    med = {}
    for name, d in (("now", now), ("later", later)):
        dw = _dwell_h(d.events)
        med[name] = dw.loc[dw["stage"] == "purchase", "dwell_h"].median() / 24
    assert med["now"] == pytest.approx(ACTIVATION_MEDIAN_D[0], rel=0.1)
    assert med["later"] == pytest.approx(ACTIVATION_MEDIAN_D[1], rel=0.15)
    # everything else is drawn as before (same seed: the same people in the same segments)
    assert now.truth["customer_segment"] == later.truth["customer_segment"]
    paths = write_demo(tmp_path, n_customers=300, seed=1, period=1)
    assert "observations" not in paths          # the mystery-shopper sheet belongs to the extract period


def test_frozen_later_period_and_observations_equal_write_demo_output(tmp_path):
    from journey_analysis.datasets import demo_observations

    paths = write_demo(tmp_path, n_customers=2000, seed=1, period=1)
    for p in paths.values():
        assert _sha(p) == _sha(ROOT / "data" / "raw" / "demo_later" / p.name), f"demo_later/{p.name} differs (see README)"
    obs = pd.read_csv(FROZEN / "observations.csv")
    assert list(obs.columns) == ["stage", "channel", "when", "wait_min", "who", "notes"]
    assert len(obs) == len(demo_observations()) and set(obs["stage"]) <= set(STAGES)


@pytest.fixture(scope="module")
def complaint():
    from journey_analysis.datasets import make_complaint

    return make_complaint(n_customers=2000, seed=0)


def test_complaint_journey_has_its_own_stages_channels_and_contracts(complaint):
    from journey_analysis.datasets import COMPLAINT_SEGMENT_NAMES, COMPLAINT_STAGES, make_complaint

    cfg = yaml.safe_load((ROOT / "configs" / "complaint.yaml").read_text(encoding="utf-8"))
    assert [s["name"] for s in cfg["stages"]] == list(COMPLAINT_STAGES)
    assert set(complaint.events["stage"]) == set(COMPLAINT_STAGES) and not set(COMPLAINT_STAGES) & set(STAGES)
    assert set(complaint.events["channel"]) <= set(cfg["channels"])
    touch = {t for s in cfg["stages"] for t in s["touchpoints"]}
    assert set(complaint.events["touchpoint"]) <= touch
    assert complaint.events["customer_id"].str.match(r"^K\d{5}$").all()
    e = complaint.events
    assert (e.sort_values(["timestamp", "row_id"])["row_id"].to_numpy() == np.arange(len(e))).all()
    assert complaint.customers["customer_id"].is_unique and complaint.customers["escalated"].isna().any()
    assert set(complaint.feedback["source"]) == {"survey", "social"}
    assert complaint.truth["segment_names"] == list(COMPLAINT_SEGMENT_NAMES)
    again = make_complaint(n_customers=2000, seed=0)
    pd.testing.assert_frame_equal(again.events, complaint.events)
    pd.testing.assert_frame_equal(again.feedback, complaint.feedback)


def test_complaint_planted_truths_are_recovered(complaint):
    from journey_analysis import analyze, sentiment
    from journey_analysis.config import load_config
    from journey_analysis.gather import link_feedback
    from journey_analysis.journey_map import build_map

    cfg = load_config(ROOT / "configs" / "complaint.yaml")
    d = complaint
    fb = link_feedback(d.feedback, d.events)
    fb["sentiment"] = sentiment.score(fb["text"]).to_numpy()
    names = d.truth["segment_names"]
    m = build_map(d.events, fb, pd.Series(d.truth["customer_segment"]).map(lambda i: names[i]), cfg)
    pain = analyze.pain_points(m, cfg)
    assert pain.iloc[0]["stage"] == d.truth["pain_point"] == "investigate"
    drv = analyze.moments_of_truth(d.events, fb, d.customers, cfg, n_boot=50)
    top = drv.iloc[0]
    assert (top["stage"], top["measure"]) == (d.truth["moment_of_truth"]["stage"], "experience") == ("raise", "experience")
    assert top["significant"] and top["odds_ratio_ci_high"] < 1          # a better first contact, fewer escalations
    gaps = analyze.expectation_gaps(m, cfg)
    flagged = gaps[gaps["flagged"] & (gaps["kind"] == "duration")]
    assert d.truth["expectation_gap"]["stage"] in set(flagged["stage"])


def test_frozen_complaint_copy_equals_write_demo_output(tmp_path):
    paths = write_demo(tmp_path, n_customers=2000, seed=0, journey="complaint")
    assert set(paths) == {"events", "customers", "feedback", "truth"}
    for p in paths.values():
        assert _sha(p) == _sha(ROOT / "data" / "raw" / "complaint" / p.name), f"complaint/{p.name} differs"


def test_demo_data_command_writes_the_complaint_journey_and_refuses_its_later_period(tmp_path, capsys):
    from journey_analysis.cli import main

    assert main(["demo-data", "--out", str(tmp_path / "c"), "--journey", "complaint", "--customers", "200"]) == 0
    assert pd.read_csv(tmp_path / "c" / "events.csv.gz")["journey"].eq("complaint").all()
    capsys.readouterr()
    assert main(["demo-data", "--out", str(tmp_path / "d"), "--journey", "complaint", "--period", "1"]) == 1
    err = capsys.readouterr().err
    assert "one period only" in err and "Traceback" not in err
