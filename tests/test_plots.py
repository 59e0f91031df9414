"""Tests for journey_analysis.plots: figures render headless and their data twins hold the values shown."""
from __future__ import annotations

from functools import lru_cache

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from journey_analysis import analyze, plots  # noqa: E402
from journey_analysis.config import DEMO_CONFIG, load_config  # noqa: E402
from journey_analysis.journey_map import ALL, build_map  # noqa: E402


@lru_cache(maxsize=None)
def run():
    from journey_analysis.datasets import make_demo
    from journey_analysis.gather import link_feedback

    cfg = load_config(DEMO_CONFIG)
    d = make_demo(1500, seed=1)
    fb = link_feedback(d.feedback, d.events)
    # stand-in scores from the rating keep this test fast; sentiment accuracy is tested in test_sentiment
    fb["sentiment"] = ((fb["rating"].fillna(3) - 3) / 2).clip(-1, 1).where(fb["text"].str.len() > 0)
    names = d.truth["segment_names"]
    seg = pd.Series(d.truth["customer_segment"]).map(lambda i: names[i])
    m = build_map(d.events, fb, seg, cfg)
    pp = analyze.pain_points(m, cfg)
    drv = analyze.moments_of_truth(d.events, fb, d.customers, cfg, n_boot=30)
    return cfg, d, m, pp, drv


def _png(fig, path):
    from matplotlib.figure import Figure

    assert isinstance(fig, Figure)
    fig.savefig(path)
    import matplotlib.pyplot as plt

    plt.close(fig)
    assert path.stat().st_size > 10_000
    return path


def test_canvas_data_equals_map_and_renders(tmp_path):
    cfg, d, m, pp, drv = run()
    data = plots.journey_map_canvas_data(m, pain_points=pp, drivers=drv)
    allm = m[m.segment == ALL].set_index("stage")
    assert data["stage"].tolist() == cfg.stage_names
    for col in ("dwell_median_h", "dwell_min_h", "dwell_max_h", "expected_max_duration_h", "satisfaction_mean",
                "sentiment_mean", "sentiment_ci_low", "customers"):
        assert np.allclose(data[col].to_numpy(float), allm.loc[data["stage"], col].to_numpy(float), equal_nan=True), col
    assert data.loc[data["pain_label"] == "PAIN POINT", "stage"].tolist() == [pp.iloc[0]["stage"]]
    top = drv[(drv.role == "driver") & drv.significant].sort_values("rank").iloc[0]
    assert data.loc[data["moment_of_truth"], "stage"].tolist() == [top["stage"]]
    shown = data["quote"].dropna()
    assert len(shown) and shown.str.len().max() <= 110
    assert all(q in " ".join(allm.loc[s, "quotes"]) + " " + str(allm.loc[s, "negative_theme_quote"]) or q.endswith("…")
               for s, q in zip(data.loc[shown.index, "stage"], shown))
    _png(plots.journey_map_canvas(m, pain_points=pp, drivers=drv), tmp_path / "canvas.png")
    seg = sorted(set(m.segment) - {ALL})[0]
    seg_data = plots.journey_map_canvas_data(m, segment=seg)
    assert np.allclose(seg_data["dwell_median_h"], m[m.segment == seg].set_index("stage").loc[seg_data.stage, "dwell_median_h"])
    _png(plots.journey_map_canvas(m, segment=seg), tmp_path / "canvas_seg.png")


def test_pain_point_quote_is_negative_about_its_top_negative_theme():
    """Issue 14, item 5: a pain point's (or negative moment of truth's) quote is a negative comment about the
    stage's top negative theme, not the stage's typical (often positive) comment."""
    cfg, d, m, pp, drv = run()
    data = plots.journey_map_canvas_data(m, pain_points=pp, drivers=drv).set_index("stage")
    allm = m[m.segment == ALL].set_index("stage")
    top = drv[(drv.role == "driver") & drv.significant].sort_values("rank").iloc[0]
    flagged = set(data.index[data["pain_rank"] <= 3]) | ({top["stage"]} if top["worse_raises_bad"] else set())
    assert flagged
    for stage in flagged:
        theme, nq = allm.loc[stage, "top_negative_theme"], allm.loc[stage, "negative_theme_quote"]
        if not isinstance(nq, str):
            continue
        assert theme.lower() in nq.lower()
        assert data.loc[stage, "quote"] == plots._short_quote([nq])
    assert any(isinstance(allm.loc[s, "negative_theme_quote"], str) for s in flagged)


def test_canvas_shows_the_deliverables_lane():
    cfg, d, m, pp, drv = run()
    data = plots.journey_map_canvas_data(m)
    promised = {s.name: "; ".join(s.deliverables) for s in cfg.stages}
    assert data.set_index("stage")["deliverables"].to_dict() == promised
    fig = plots.journey_map_canvas(m)
    texts = " ".join(t.get_text() for ax in fig.axes for t in ax.texts).replace("\n", " ")
    import matplotlib.pyplot as plt

    plt.close(fig)
    assert "What we deliver" in texts
    assert "\u2022 Helpline answered within 5 minutes" in texts and "\u2022 Online checkout" in texts


def test_flow_data_counts(tmp_path):
    cfg, d, *_ = run()
    f = plots.flow_data(d.events, stages=cfg.stage_names)
    assert f["count"].sum() == len(d.events)  # every event leads somewhere or to (end)
    ends = f[f.to_stage == plots.END]["count"].sum()
    assert ends == d.events["customer_id"].nunique()
    assert np.allclose(f.groupby("from_stage")["share_of_from"].sum(), 1.0)
    _png(plots.flow(data=f), tmp_path / "flow.png")


def test_segment_heatmap_drivers_emotion(tmp_path):
    cfg, d, m, pp, drv = run()
    c = analyze.compare_segments(m)
    h = plots.segment_heatmap_data(c, "satisfaction_mean")
    assert set(h["segment"]) == set(d.truth["segment_names"])
    assert np.allclose(h["value"], c[c.metric == "satisfaction_mean"].set_index(["segment", "stage"])
                       .loc[list(zip(h.segment, h.stage)), "value"], equal_nan=True)
    _png(plots.segment_heatmap(c, "satisfaction_mean"), tmp_path / "seg.png")
    dd = plots.drivers_chart_data(drv, top=5)
    assert len(dd) == 5 and dd["rank"].tolist() == [1, 2, 3, 4, 5]
    assert dd.iloc[0]["effect"] == drv.iloc[0]["effect"]
    _png(plots.drivers_chart(drv, outcome="churn"), tmp_path / "drivers.png")
    e = plots.emotion_curve_data(m)
    assert np.allclose(e[e.segment == ALL]["sentiment_mean"], m[(m.segment == ALL) & m.configured]["sentiment_mean"],
                       equal_nan=True)
    _png(plots.emotion_curve(m), tmp_path / "emotion.png")
