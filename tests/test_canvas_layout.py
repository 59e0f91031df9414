"""The journey map canvas and the segment heatmap, read from what is drawn: no label overlaps a mark or
another label (boxes of the drawn text against the drawn dots, lines, dashes and bars), stage names fit
their header box, and the heatmap colours only significant differences on a scale centred on zero."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402
from matplotlib.container import BarContainer  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

from journey_analysis import plots  # noqa: E402
from test_plots import run  # noqa: E402  (the 1,500-customer demo map, built once)


def _sample(points, step=2.0):
    out = []
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
        k = max(1, int(np.hypot(x1 - x0, y1 - y0) / step))
        out += [(x0 + t * (x1 - x0), y0 + t * (y1 - y0)) for t in np.linspace(0, 1, k + 1)]
    return out


def _marks(ax, dpi):
    """Boxes (display px) of every mark drawn in ``ax``: dots, line and dash segments, error bars, bars."""
    boxes = []
    for c in ax.collections:
        if isinstance(c, PathCollection):                               # scatter dots
            offs = c.get_offset_transform().transform(c.get_offsets())
            sizes = np.resize(c.get_sizes(), len(offs))
            for (x, y), s in zip(offs, sizes):
                r = np.sqrt(s) / 2 * dpi / 72
                boxes.append((x - r, y - r, x + r, y + r))
        elif isinstance(c, LineCollection):                             # hlines, vlines, error bars, dashes
            tr = c.get_transform()
            for seg in c.get_segments():
                pts = tr.transform(seg)
                boxes += [(x - 1, y - 1, x + 1, y + 1) for x, y in _sample(pts)]
    for line in ax.lines:                                               # curves, zero lines, error-bar caps
        pts = line.get_transform().transform(line.get_xydata())
        pts = pts[np.isfinite(pts).all(axis=1)]
        if line.get_linestyle() not in ("None", "", " ") and len(pts) > 1:
            boxes += [(x - 1, y - 1, x + 1, y + 1) for x, y in _sample(pts)]
        elif line.get_marker() not in (None, "None", ""):
            r = line.get_markersize() / 2 * dpi / 72
            boxes += [(x - r, y - 1, x + r, y + 1) for x, y in pts]
    for cont in ax.containers:
        if isinstance(cont, BarContainer):
            boxes += [tuple(p.get_window_extent().extents) for p in cont.patches]
    return boxes


def _hit(a, b, pad=0.5):
    return a[0] < b[2] - pad and b[0] < a[2] - pad and a[1] < b[3] - pad and b[1] < a[3] - pad


def _texts(fig):
    r = fig.canvas.get_renderer()
    out = []
    for ax in fig.axes:
        for t in ax.texts:
            if t.get_visible() and t.get_text().strip():
                out.append((ax, t, tuple(t.get_window_extent(r).extents)))
    return out


def _collisions(fig):
    fig.canvas.draw()
    texts = _texts(fig)
    problems = []
    for i, (ax, t, box) in enumerate(texts):
        for ax2, t2, box2 in texts[i + 1:]:
            if _hit(box, box2):
                problems.append(f"label {t.get_text()!r} overlaps label {t2.get_text()!r}")
        for m in _marks(ax, fig.dpi):
            if _hit(box, m):
                problems.append(f"label {t.get_text()!r} overlaps a mark at {tuple(round(v) for v in m)}")
                break
    fw, fh = fig.canvas.get_width_height()
    for ax, t, (x0, y0, x1, y1) in texts:
        if x1 > fw + 1 or y0 < -1 or y1 > fh + 1:
            problems.append(f"label {t.get_text()!r} is cut at the figure's edge")
    header = fig.axes[0]
    boxes = [p.get_window_extent().extents for p in header.patches if isinstance(p, FancyBboxPatch)]
    for t in header.texts:
        if t.get_color() == "white":                               # the stage name in its dark box
            e = t.get_window_extent(fig.canvas.get_renderer()).extents
            if not any(b[0] <= e[0] and e[2] <= b[2] and b[1] <= e[1] and e[3] <= b[3] for b in boxes):
                problems.append(f"stage name {t.get_text()!r} does not fit its header box")
    return problems


def test_demo_canvas_has_no_overlapping_labels():
    cfg, d, m, pp, drv = run()
    fig = plots.journey_map_canvas(m, pain_points=pp, drivers=drv)
    problems = _collisions(fig)
    plt.close(fig)
    assert not problems, problems[:10]


def _hard_case():
    """Values chosen to collide with the old layout: ratings at the target dash, medians at the expected
    maximum, a long stage name, a stage without ratings or feedback."""
    stages = ["take in charge ticket", "wait", "resolve", "close"]
    n = len(stages)
    data = pd.DataFrame({
        "stage": stages, "stage_order": range(n), "customers": [1000, 900, 800, 700],
        "share_customers": [1.0, 0.9, 0.8, 0.7], "drop_off": [0.1, 0.0, 0.2, 0.0],
        "touchpoints": ["a long touchpoint name, another touchpoint"] * n, "channels": ["webchat 50%, phone 50%"] * n,
        "deliverables": ["a promise; another promise"] * n,
        "dwell_median_h": [3.8 * 24, 24.0, 0.5, np.nan], "dwell_min_h": [1.0, 0.1, 0.01, np.nan],
        "dwell_max_h": [900.0, 400.0, 30.0, np.nan], "dwell_p90_h": [400.0, 100.0, 5.0, np.nan],
        "expected_max_duration_h": [3.8 * 24, 24.0, 0.5, 48.0], "over_expectation": [False, False, False, False],
        "satisfaction_mean": [4.1, 4.3, 4.0, np.nan], "satisfaction_ci_low": [3.9, 4.2, 3.8, np.nan],
        "satisfaction_ci_high": [4.3, 4.4, 4.2, np.nan], "satisfaction_n": [40, 200, 30, 0],
        "target_satisfaction": [4.1, 4.3, 4.0, 4.0],
        "sentiment_mean": [0.02, -0.01, 0.6, np.nan], "sentiment_ci_low": [-0.1, -0.1, 0.5, np.nan],
        "sentiment_ci_high": [0.1, 0.1, 0.7, np.nan], "sentiment_n": [40, 50, 60, 0],
        "sentiment_share_negative": [0.3, 0.3, 0.1, np.nan], "pain_rank": [1, 2, np.nan, np.nan],
        "pain_score": [0.5, 0.3, np.nan, np.nan], "pain_label": ["PAIN POINT", "pain #2", "", ""],
        "moment_of_truth": [True, False, False, False], "driver_effect": [0.3, np.nan, np.nan, np.nan],
        "quote": ["it took ages and nobody called me back about the ticket", None, "great", None],
        "low_confidence": [False, False, True, True], "missing": ["", "", "", "no feedback"]})
    return data


def test_hard_case_canvas_has_no_overlapping_labels():
    fig = plots.journey_map_canvas(None, data=_hard_case(), title="A long title for a hard case")
    problems = _collisions(fig)
    plt.close(fig)
    assert not problems, problems[:10]


def _comparison():
    rows = []
    for i, stage in enumerate(["a", "b", "c"]):
        for seg, diff, differs in (("s1", 0.04, False), ("s2", -0.30, True), ("s3", 0.01, False)):
            rows.append({"stage": stage, "stage_order": i, "segment": seg, "metric": "sentiment_mean", "value": 0.2 + diff,
                         "n": 50, "rest": 0.2, "diff": diff if stage != "c" else diff / 10, "z": 3.0 if differs else 0.5,
                         "differs": differs and stage != "c", "marker": ("-" if diff < 0 else "+") if differs else ""})
    return pd.DataFrame(rows)


def test_heatmap_colours_only_significant_cells_on_a_meaningful_scale():
    c = _comparison()
    d = plots.segment_heatmap_data(c, "sentiment_mean")
    assert d.loc[~d["differs"], "colour_diff"].isna().all()                 # not significant: not coloured
    assert (d.loc[~d["differs"], "marker"] == "").all() and (d.loc[d["differs"], "marker"] == "-").all()
    assert d["scale_limit"].iloc[0] == pytest.approx(0.30)                 # largest significant difference
    quiet = c.assign(differs=False, diff=c["diff"] / 10)
    assert plots.segment_heatmap_data(quiet, "sentiment_mean")["scale_limit"].iloc[0] == \
        plots.MEANINGFUL_DIFF["sentiment_mean"]                            # small noise never looks deep
    fig = plots.segment_heatmap(c, "sentiment_mean")
    im = fig.axes[0].images[0]
    lo, hi = im.get_clim()
    assert lo == -hi                                                       # centred on zero
    assert int(np.ma.count(im.get_array())) == int(d["differs"].sum())    # only significant cells coloured
    plt.close(fig)


def test_no_canvas_when_no_customer_reached_a_stage():
    empty = _hard_case().assign(customers=0)
    assert plots.journey_map_canvas(None, data=empty) is None
    assert plots.journey_map_canvas(None, data=_hard_case().iloc[:0]) is None
