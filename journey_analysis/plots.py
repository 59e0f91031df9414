"""Figures of the journey map and its analysis, each a ``<name>_data()`` table plus a thin ``<name>()`` renderer.

Owns the journey map canvas (:func:`journey_map_canvas`), the flow between stages with drop-off
(:func:`flow`), the segment comparison heatmap (:func:`segment_heatmap`), the driver chart
(:func:`drivers_chart`) and the emotion curve (:func:`emotion_curve`). Every number a figure shows is a
column of its ``*_data`` frame (tests compare the two); renderers compute nothing, import matplotlib
inside the function, work under the Agg backend and return the Figure (no ``plt.show()``). Quotes
shown come from the map, whose quotes are PII-redacted.
"""
from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from journey_analysis.errors import JourneyError
from journey_analysis.journey_map import ALL, map_segment

_RED, _GREEN, _AMBER, _BLUE, _GREY = "#c0392b", "#2e8b57", "#e39b1b", "#2c6fbb", "#8a8f98"
_INK = "#1f2a36"


def _fmt_h(hours: float) -> str:
    if hours is None or not np.isfinite(hours):
        return "n/a"
    if hours >= 48:
        return f"{hours / 24:.1f} d"
    if hours >= 1:
        return f"{hours:.1f} h"
    return f"{hours * 60:.0f} min"


def _short_quote(quotes, limit: int = 110) -> str | None:
    if not isinstance(quotes, (list, tuple, np.ndarray)) or len(quotes) == 0:
        return None
    # characters outside the Basic Multilingual Plane (emoji) have no glyph in the default font: dropped
    qs = ["".join(ch for ch in str(q) if ord(ch) <= 0xFFFF).strip() for q in quotes if isinstance(q, str)]
    qs = [q for q in qs if q]
    if not qs:
        return None
    fitting = [q for q in qs if len(q) <= limit]
    q = fitting[0] if fitting else qs[0]
    return q if len(q) <= limit else q[: limit - 1].rsplit(" ", 1)[0] + "…"


def _overlaps(a, b, pad: float = 0.5) -> bool:
    """True when two display-space boxes (x0, y0, x1, y1) overlap (by more than ``pad`` px)."""
    return a[0] < b[2] - pad and b[0] < a[2] - pad and a[1] < b[3] - pad and b[1] < a[3] - pad


def _box(ax, x0, y0, x1, y1, grow: float = 0.0):
    """Data-space rectangle -> display-space box (x0, y0, x1, y1), grown by ``grow`` px."""
    (a, b), (c, d) = ax.transData.transform([(x0, y0), (x1, y1)])
    return (min(a, c) - grow, min(b, d) - grow, max(a, c) + grow, max(b, d) + grow)


def _place(ax, renderer, taken: list, candidates, text: str, **kw):
    """Draw ``text`` at the first candidate whose box overlaps nothing in ``taken`` (marks and labels
    already placed) and stays inside the axes; the last candidate when none is free. A candidate is
    ``(x, y, dx_pt, dy_pt, ha, va)`` (data point plus an offset in points). Returns the Text; its box
    joins ``taken``."""
    inside = ax.get_window_extent(renderer).extents
    t = None
    for k, (x, y, dx, dy, ha, va) in enumerate(candidates):
        if t is not None:
            t.remove()
        t = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, **kw)
        e = t.get_window_extent(renderer).extents
        fits = e[0] >= inside[0] - 1 and e[2] <= inside[2] + 1 and e[1] >= inside[1] - 1 and e[3] <= inside[3] + 1
        if fits and not any(_overlaps(e, o) for o in taken):
            break
    taken.append(tuple(t.get_window_extent(renderer).extents))
    return t


def _segment_boxes(ax, xs, ys, step_px: float = 3.0, grow: float = 1.5) -> list:
    """Small display-space boxes along a polyline (data coordinates), so labels can avoid the line itself."""
    pts = ax.transData.transform(np.column_stack([xs, ys]))
    out = []
    for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:]):
        k = max(1, int(np.hypot(x1 - x0, y1 - y0) / step_px))
        for t in np.linspace(0, 1, k + 1):
            x, y = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
            out.append((x - grow, y - grow, x + grow, y + grow))
    return out


def _separators(ax, renderer, n: int) -> list:
    """Boxes of the column separators (x = j - 0.5) of a lane, so that labels stay in their column."""
    y0, y1 = ax.get_window_extent(renderer).extents[[1, 3]]
    xs = ax.transData.transform(np.column_stack([np.arange(1, n) - 0.5, np.zeros(n - 1)]))[:, 0] if n > 1 else []
    return [(x - 1.5, y0, x + 1.5, y1) for x in xs]


def _dot_box(ax, x, y, size_pt2: float, dpi: float):
    cx, cy = ax.transData.transform((x, y))
    r = np.sqrt(size_pt2) / 2 * dpi / 72 + 1
    return (cx - r, cy - r, cx + r, cy + r)


def _fit_header(ax, renderer, j: float, text: str, box_w: float, **kw):
    """The stage name in its header box: one line at the largest size that fits, else two lines."""
    words = str(text).upper()
    (x0, _), (x1, _) = ax.transData.transform([(j - box_w / 2, 0), (j + box_w / 2, 0)])
    room = (x1 - x0) - 8
    t = None
    for size in (12.5, 11.5, 10.5):
        for lines in (1, 2):
            width = next(w for w in range(max(1, len(words) // 2), len(words) + 1) if len(textwrap.wrap(words, w)) <= 2)
            label = words if lines == 1 else "\n".join(textwrap.wrap(words, width))
            if t is not None:
                t.remove()
            t = ax.text(j, 0.74, label, ha="center", va="center", fontsize=size if lines == 1 else size - 1.5, **kw)
            if t.get_window_extent(renderer).width <= room:
                return t
    return t


# ------------------------------------------------------------------------------------------------
# journey map canvas
# ------------------------------------------------------------------------------------------------
def journey_map_canvas_data(journey_map: pd.DataFrame, segment: str = ALL, pain_points: pd.DataFrame | None = None,
                            drivers: pd.DataFrame | None = None, configured_only: bool = True) -> pd.DataFrame:
    """One row per stage (columns of the canvas), with every value the canvas shows.

    Columns: stage, stage_order, customers, share_customers, drop_off, touchpoints, channels,
    deliverables (what the organisation promises at the stage, from the config: assumed), dwell_median_h,
    dwell_min_h, dwell_max_h, dwell_p90_h, expected_max_duration_h, over_expectation,
    satisfaction_mean, satisfaction_ci_low, satisfaction_ci_high, satisfaction_n, target_satisfaction,
    sentiment_mean, sentiment_ci_low, sentiment_ci_high, sentiment_n, sentiment_share_negative,
    pain_rank, pain_score, pain_label ("PAIN POINT" for rank 1, "pain #2" / "pain #3"),
    moment_of_truth (True for the stage of the top significant driver), driver_effect, quote (short,
    redacted: the stage's typical comment; on a pain point (rank 1-3) or a negative moment of truth (a
    worse experience or a longer time raises the bad outcome) a negative comment about the stage's top
    negative theme, the map's ``negative_theme_quote``, when it has one), low_confidence, missing. ``configured_only`` keeps the configured stages (the journey).
    """
    m = map_segment(journey_map, segment)
    if configured_only and m["configured"].any():
        m = m[m["configured"]]
    cols = ["stage", "stage_order", "customers", "share_customers", "drop_off", "dwell_median_h", "dwell_min_h",
            "dwell_max_h", "dwell_p90_h", "expected_max_duration_h", "satisfaction_mean", "satisfaction_ci_low",
            "satisfaction_ci_high", "satisfaction_n", "target_satisfaction", "sentiment_mean", "sentiment_ci_low",
            "sentiment_ci_high", "sentiment_n", "sentiment_share_negative", "low_confidence", "missing"]
    out = m[cols].copy()
    out["touchpoints"] = m["touchpoints"] if "touchpoints" in m.columns else None
    out["channels"] = m["channels"] if "channels" in m.columns else None
    out["deliverables"] = m["deliverables"] if "deliverables" in m.columns else None
    out["over_expectation"] = out["dwell_median_h"] > out["expected_max_duration_h"]
    out["quote"] = [_short_quote(q) for q in m["quotes"]]
    out["pain_rank"] = np.nan
    out["pain_score"] = np.nan
    if pain_points is not None and len(pain_points):
        pp = pain_points[pain_points["segment"] == segment] if "segment" in pain_points.columns else pain_points
        pp = pp.set_index("stage")
        out["pain_rank"] = out["stage"].map(pp["rank"])
        out["pain_score"] = out["stage"].map(pp["pain_score"])
    out["pain_label"] = np.select([out["pain_rank"] == 1, out["pain_rank"] == 2, out["pain_rank"] == 3],
                                  ["PAIN POINT", "pain #2", "pain #3"], default="")
    out["moment_of_truth"] = False
    out["driver_effect"] = np.nan
    if drivers is not None and len(drivers):
        d = drivers[(drivers["role"] == "driver") & drivers["significant"]].sort_values("rank")
        if len(d):
            top = d.iloc[0]
            out["moment_of_truth"] = out["stage"] == top["stage"]
            out.loc[out["moment_of_truth"], "driver_effect"] = top["effect"]
            negative_mot = out["moment_of_truth"] & bool(top.get("worse_raises_bad", False))
        else:
            negative_mot = pd.Series(False, index=out.index)
    else:
        negative_mot = pd.Series(False, index=out.index)
    # a pain point or a negative moment of truth is illustrated by a negative comment about its top
    # negative theme (the map's negative_theme_quote), not by the stage's typical comment
    if "negative_theme_quote" in m.columns:
        flagged = ((out["pain_rank"] <= 3) | negative_mot).to_numpy()
        nq = m["negative_theme_quote"].to_numpy()
        has = np.array([isinstance(q, str) and q != "" for q in nq], dtype=bool)
        pick = flagged & has
        out.loc[pick, "quote"] = [_short_quote([q]) for q in nq[pick]]
    return out.reset_index(drop=True)


def journey_map_canvas(journey_map: pd.DataFrame, segment: str = ALL, pain_points: pd.DataFrame | None = None,
                       drivers: pd.DataFrame | None = None, title: str | None = None, data: pd.DataFrame | None = None):
    """Draw the journey map as a wall canvas: stages as columns, lanes as rows; returns the Figure.

    Lanes: stage header (customers, share, drop-off), touchpoints and channels, what the organisation
    delivers at the stage (the config's deliverables, marked assumed), time at the stage (median
    with min-max whiskers on a log scale, the expected maximum as a red dash), satisfaction (mean with 95%
    CI against the target), the emotion curve (mean sentiment with its 95% band), pain points and the
    moment of truth, one short quote. ``data`` may be passed to draw a prepared
    :func:`journey_map_canvas_data` frame. None (nothing to draw; ``show_figure`` shows nothing) when no
    customer reached any stage, as in a run without events.
    """
    import matplotlib
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    d = journey_map_canvas_data(journey_map, segment, pain_points, drivers) if data is None else data
    if d.empty or not (d["customers"].fillna(0) > 0).any():
        return None      # no customer reached a stage (e.g. a customers-only run): an empty wall would mislead
    n = len(d)
    x = np.arange(n)
    dpi = 110
    width = max(12.0, 2.5 * n + 2.2)
    fig = plt.figure(figsize=(width, 14.8), dpi=dpi, facecolor="white")
    heights = [1.05, 1.35, 1.2, 1.7, 1.45, 1.9, 0.55, 1.55]
    gs = fig.add_gridspec(len(heights), 1, height_ratios=heights, hspace=0.12, left=0.125, right=0.985,
                          top=0.93, bottom=0.02)
    axes = [fig.add_subplot(gs[i]) for i in range(len(heights))]
    renderer = fig.canvas.get_renderer()   # labels are placed from their drawn size (no overlaps)
    lane_names = ["Stage", "Touchpoints\n& channels", "What we deliver\n(config, assumed)", "Time at stage\n(median, min-max;\nred = expected max)",
                  "Satisfaction\n(mean, 95% CI;\ndash = target)", "Emotion curve\n(sentiment, 95% band)",
                  "Pain points &\nmoment of truth", "In their words"]
    for i, ax in enumerate(axes):
        ax.set_xlim(-0.5, n - 0.5)
        for j in range(n):
            ax.axvspan(j - 0.5, j + 0.5, color="#f4f6f9" if j % 2 == 0 else "white", zorder=0, lw=0)
        for j in range(1, n):
            ax.axvline(j - 0.5, color="#d5dbe3", lw=0.8, zorder=0.5)
        ax.set_xticks([])
        for side in ("top", "right", "bottom"):
            ax.spines[side].set_visible(False)
        ax.spines["left"].set_color("#d5dbe3")
        ax.text(-0.02, 0.5, lane_names[i], transform=ax.transAxes, ha="right", va="center", fontsize=10,
                fontweight="bold", color=_INK)
    text_axes = [axes[0], axes[1], axes[2], axes[6], axes[7]]
    for ax in text_axes:
        ax.set_ylim(0, 1)
        ax.set_yticks([])

    # lane 0: header
    ax = axes[0]
    for j, r in d.iterrows():
        ax.add_patch(FancyBboxPatch((j - 0.46, 0.52), 0.92, 0.44, boxstyle="round,pad=0.01,rounding_size=0.05",
                                    fc=_INK, ec="none", zorder=2))
        _fit_header(ax, renderer, j, str(r["stage"]), 0.92, color="white", fontweight="bold", zorder=3)
        sub = f"{int(r['customers']):,} customers ({r['share_customers']:.0%})"
        ax.text(j, 0.34, sub, ha="center", va="center", fontsize=9.5, color=_INK)
        if pd.notna(r["drop_off"]) and r["drop_off"] > 0:
            ax.text(j, 0.1, f"drop-off {r['drop_off']:.0%}", ha="center", va="center", fontsize=9,
                    color=_RED if r["drop_off"] >= 0.1 else _GREY)

    # lane 1: touchpoints and channels
    ax = axes[1]
    for j, r in d.iterrows():
        tp = r["touchpoints"] if isinstance(r["touchpoints"], str) else "-"
        ch = r["channels"] if isinstance(r["channels"], str) else "-"
        ax.text(j, 0.93, "\n".join(textwrap.wrap(tp, 26)[:3]), ha="center", va="top", fontsize=8.6, color=_INK)
        ax.text(j, 0.28, "\n".join(textwrap.wrap(ch, 26)[:2]), ha="center", va="top", fontsize=8.6,
                color=_BLUE, style="italic")

    # lane 2: deliverables (the organisation's side of each stage, from the config)
    ax = axes[2]
    for j, r in d.iterrows():
        dl = [x.strip() for x in r["deliverables"].split(";") if x.strip()] if isinstance(r["deliverables"], str) else []
        lines = [ln for item in dl[:3] for ln in textwrap.wrap("\u2022 " + item, 28)[:2]]
        ax.text(j, 0.93, "\n".join(lines[:5]) if lines else "-", ha="center", va="top", fontsize=8.4,
                color=_INK if lines else _GREY)

    # lane 3: duration (log hours)
    ax = axes[3]
    med = d["dwell_median_h"].to_numpy(float)
    lo = np.clip(d["dwell_min_h"].to_numpy(float), 1 / 60, None)
    hi = np.clip(d["dwell_max_h"].to_numpy(float), 1 / 60, None)
    medc = np.clip(med, 1 / 60, None)
    ok = np.isfinite(med)
    ax.set_yscale("log")
    ax.vlines(x[ok], lo[ok], hi[ok], color=_GREY, lw=1.6, zorder=2)
    ax.hlines(lo[ok], x[ok] - 0.08, x[ok] + 0.08, color=_GREY, lw=1.6, zorder=2)
    ax.hlines(hi[ok], x[ok] - 0.08, x[ok] + 0.08, color=_GREY, lw=1.6, zorder=2)
    over = d["over_expectation"].fillna(False).to_numpy(bool)
    ax.scatter(x[ok], medc[ok], s=90, zorder=4, color=np.where(over[ok], _RED, _BLUE), edgecolor="white", lw=1.2)
    exp = d["expected_max_duration_h"].to_numpy(float)
    e_ok = np.isfinite(exp)
    ax.hlines(exp[e_ok], x[e_ok] - 0.32, x[e_ok] + 0.32, color=_RED, lw=2.4, linestyles="--", zorder=3)
    ticks = [1 / 60, 1, 24, 24 * 7, 24 * 30, 24 * 365]
    labels = ["1 min", "1 h", "1 d", "1 wk", "1 mo", "1 yr"]
    allv = np.concatenate([lo[ok], hi[ok], exp[e_ok]]) if ok.any() else np.array([1.0])
    ymin, ymax = max(1 / 60, np.nanmin(allv) / 1.8), np.nanmax(allv) * 1.8
    ax.set_ylim(ymin, ymax)
    keep = [(t, lab) for t, lab in zip(ticks, labels) if ymin <= t <= ymax]
    ax.set_yticks([t for t, _ in keep], [lab for _, lab in keep], fontsize=8.5)
    ax.minorticks_off()
    ax.grid(axis="y", color="#e3e7ee", lw=0.6, zorder=0.6)
    taken = _separators(ax, renderer, n) + [_dot_box(ax, x[j], medc[j], 90, dpi) for j in np.flatnonzero(ok)]
    taken += [b for j in np.flatnonzero(ok) for b in _segment_boxes(ax, [x[j], x[j]], [lo[j], hi[j]])]
    taken += [_box(ax, x[j] - 0.32, exp[j], x[j] + 0.32, exp[j], grow=2.5) for j in np.flatnonzero(e_ok)]
    taken += [_box(ax, x[j] - 0.08, v, x[j] + 0.08, v, grow=1.5) for j in np.flatnonzero(ok) for v in (lo[j], hi[j])]
    for j in np.flatnonzero(ok):
        xj, yj = x[j], medc[j]
        cands = [(xj, yj, 9, 0, "left", "center"), (xj, yj, -9, 0, "right", "center"),
                 (xj + 0.34, yj, 2, 0, "left", "center"), (xj - 0.34, yj, -2, 0, "right", "center"),
                 (xj, yj, 9, 12, "left", "bottom"), (xj, yj, 9, -12, "left", "top"),
                 (xj, yj, -9, 12, "right", "bottom"), (xj, yj, -9, -12, "right", "top"),
                 (xj + 0.34, yj, 2, 14, "left", "bottom"), (xj + 0.34, yj, 2, -14, "left", "top")]
        _place(ax, renderer, taken, cands, _fmt_h(med[j]), fontsize=9.5, fontweight="bold",
               color=_RED if over[j] else _INK, zorder=5)

    # lane 4: satisfaction
    ax = axes[4]
    sat = d["satisfaction_mean"].to_numpy(float)
    s_ok = np.isfinite(sat)
    tgt = d["target_satisfaction"].to_numpy(float)
    below = s_ok & np.isfinite(tgt) & (sat < tgt)
    smin = np.nanmin(np.concatenate([d["satisfaction_ci_low"].to_numpy(float), tgt, [1.0]]))
    smax = np.nanmax(np.concatenate([d["satisfaction_ci_high"].to_numpy(float), tgt, [5.0]]))
    base = np.floor(min(smin, 1.0))
    ax.bar(x[s_ok], sat[s_ok] - base, bottom=base, width=0.5, color=np.where(below[s_ok], _RED, _GREEN), alpha=0.85,
           zorder=2)
    err = np.vstack([sat - d["satisfaction_ci_low"].to_numpy(float), d["satisfaction_ci_high"].to_numpy(float) - sat])
    ax.errorbar(x[s_ok], sat[s_ok], yerr=np.nan_to_num(err[:, s_ok]), fmt="none", ecolor=_INK, capsize=4, lw=1.2,
                zorder=3)
    t_ok = np.isfinite(tgt)
    ax.hlines(tgt[t_ok], x[t_ok] - 0.34, x[t_ok] + 0.34, color=_INK, lw=2, linestyles="--", zorder=4)
    for j in np.flatnonzero(~s_ok):
        ax.text(x[j], (base + smax) / 2, "no ratings", ha="center", va="center", fontsize=9, color=_GREY,
                style="italic")
    ax.set_ylim(base, np.ceil(smax) + 0.2)
    ax.tick_params(axis="y", labelsize=8.5)
    ci_lo, ci_hi = d["satisfaction_ci_low"].to_numpy(float), d["satisfaction_ci_high"].to_numpy(float)
    taken = _separators(ax, renderer, n) + [_box(ax, x[j] - 0.25, base, x[j] + 0.25, sat[j], grow=1)
                                            for j in np.flatnonzero(s_ok)]
    taken += [_box(ax, x[j] - 0.34, tgt[j], x[j] + 0.34, tgt[j], grow=2.5) for j in np.flatnonzero(t_ok)]
    taken += [_box(ax, x[j] - 0.06, ci_lo[j], x[j] + 0.06, ci_hi[j], grow=1.5) for j in np.flatnonzero(s_ok)
              if np.isfinite(ci_lo[j]) and np.isfinite(ci_hi[j])]
    taken += [t.get_window_extent(renderer).extents for t in ax.texts]
    for j in np.flatnonzero(s_ok):
        xj, top_j = x[j], ci_hi[j] if np.isfinite(ci_hi[j]) else sat[j]
        hi_y = max(top_j, tgt[j] if np.isfinite(tgt[j]) else top_j)
        cands = [(xj, hi_y, 0, 4, "center", "bottom"), (xj + 0.36, sat[j], 0, 0, "left", "center"),
                 (xj - 0.36, sat[j], 0, 0, "right", "center"), (xj, base, 0, 3, "center", "bottom"),
                 (xj + 0.36, base, 0, 3, "left", "bottom"), (xj - 0.36, base, 0, 3, "right", "bottom")]
        _place(ax, renderer, taken, cands, f"{sat[j]:.1f} (n={int(d['satisfaction_n'].iat[j])})", fontsize=9,
               color=_RED if below[j] else _INK, fontweight="bold", zorder=5)

    # lane 5: emotion curve
    ax = axes[5]
    sm = d["sentiment_mean"].to_numpy(float)
    slo, shi = d["sentiment_ci_low"].to_numpy(float), d["sentiment_ci_high"].to_numpy(float)
    ax.axhspan(0, 1.05, color=_GREEN, alpha=0.05, zorder=0.4)
    ax.axhspan(-1.05, 0, color=_RED, alpha=0.05, zorder=0.4)
    ax.axhline(0, color=_GREY, lw=0.9, zorder=1)
    ax.fill_between(x, np.where(np.isfinite(slo), slo, np.nan), np.where(np.isfinite(shi), shi, np.nan),
                    color=_BLUE, alpha=0.18, zorder=2, lw=0)
    m_ok = np.isfinite(sm)
    ax.plot(x[m_ok], sm[m_ok], color=_BLUE, lw=2.6, zorder=3)
    cmap = matplotlib.colormaps["RdYlGn"]
    ax.scatter(x[m_ok], sm[m_ok], s=150, c=[cmap((v + 1) / 2) for v in sm[m_ok]], edgecolor=_INK, lw=1, zorder=4)
    for j in np.flatnonzero(~m_ok):
        ax.text(x[j], 0.5, "no feedback", ha="center", va="center", fontsize=9, color=_GREY, style="italic")
    ax.set_ylim(-1.05, 1.05)
    taken = _separators(ax, renderer, n) + [_dot_box(ax, x[j], sm[j], 150, dpi) for j in np.flatnonzero(m_ok)]
    taken += _segment_boxes(ax, x[m_ok], sm[m_ok], grow=2.5) if m_ok.sum() > 1 else []
    taken += _segment_boxes(ax, [-0.5, n - 0.5], [0, 0], step_px=6, grow=1)
    taken += [t.get_window_extent(renderer).extents for t in ax.texts]
    for j in np.flatnonzero(m_ok):
        xj, yj = x[j], sm[j]
        up = [(xj, yj, 0, 10, "center", "bottom"), (xj, yj, 0, -10, "center", "top")]
        cands = (up if yj >= 0 else up[::-1]) + [(xj, yj, 10, 0, "left", "center"), (xj, yj, -10, 0, "right", "center"),
                                                 (xj, yj, 10, 12, "left", "bottom"), (xj, yj, -10, 12, "right", "bottom"),
                                                 (xj, yj, 10, -12, "left", "top"), (xj, yj, -10, -12, "right", "top")]
        _place(ax, renderer, taken, cands, f"{sm[j]:+.2f}", fontsize=9.5, fontweight="bold", color=_INK, zorder=5)
    ax.set_yticks([-1, 0, 1], ["-1\nnegative", "0", "+1\npositive"], fontsize=8.5)

    # lane 6: pain points and moment of truth
    ax = axes[6]
    for j, r in d.iterrows():
        tags = []
        if r["pain_label"]:
            tags.append((r["pain_label"], _RED if r["pain_label"] == "PAIN POINT" else _AMBER))
        if r["moment_of_truth"]:
            tags.append(("MOMENT OF TRUTH", "#6c3483"))
        for k, (lab, col) in enumerate(tags):
            yy = 0.5 if len(tags) == 1 else (0.74 - 0.48 * k)
            ax.text(j, yy, lab, ha="center", va="center", fontsize=9.5, fontweight="bold", color="white",
                    bbox=dict(boxstyle="round,pad=0.3", fc=col, ec="none"))
        if not tags and bool(r["low_confidence"]):
            ax.text(j, 0.5, "low confidence (n < 30)", ha="center", va="center", fontsize=8.5, color=_GREY)

    # lane 7: quotes
    ax = axes[7]
    for j, r in d.iterrows():
        q = r["quote"]
        if isinstance(q, str) and q:
            ax.text(j, 0.95, "\u201c" + "\n".join(textwrap.wrap(q, 27)[:5]) + "\u201d", ha="center", va="top",
                    fontsize=9, style="italic", color=_INK)
        else:
            ax.text(j, 0.5, "no quote", ha="center", va="center", fontsize=9, color=_GREY, style="italic")

    seg_txt = "" if segment == ALL else f" | segment: {segment}"
    fig.suptitle(title or f"Customer journey map: {segment}", x=0.125, ha="left",
                 fontsize=17, fontweight="bold", color=_INK, y=0.985)
    fig.text(0.125, 0.952, f"Stages left to right; expectations and targets from the config (assumed); "
             f"sentiment in [-1, 1]{seg_txt}", fontsize=10, color=_GREY, ha="left")
    return fig


# ------------------------------------------------------------------------------------------------
# flow between stages
# ------------------------------------------------------------------------------------------------
END = "(end)"


def flow_data(events: pd.DataFrame, step: str = "stage", stages=None) -> pd.DataFrame:
    """Transitions between steps with drop-off: one row per (from_stage, to_stage), ``to_stage`` END for ends.

    Definition: consecutive events of a customer in the order (customer_id, timestamp, row_id); a
    customer's last event counts as a transition to "(end)" (:func:`journey_analysis.steps.transitions`;
    the events at a stage that are a customer's last = events there - transitions out of it, the ends of
    :func:`~journey_analysis.steps.start_end_counts`). Columns: from_stage, to_stage, count,
    customers (distinct), share_of_from (count / all transitions out of from_stage). ``stages`` fixes
    the order (others after, by volume).
    """
    from journey_analysis import steps

    tr = steps.transitions(events, step=step)
    vol = steps.count_by(events, step)
    out_n = tr.groupby("from_step", sort=False)["count"].sum()
    ends = vol.assign(ends=vol["n"] - vol[step].map(out_n).fillna(0).astype(np.int64).to_numpy())
    ends = ends[ends["ends"] > 0]
    out = pd.concat([
        pd.DataFrame({"from_stage": tr["from_step"], "to_stage": tr["to_step"], "count": tr["count"],
                      "customers": tr["customers"]}),
        # each customer ends once: customers ending at a stage = the count of (end) transitions
        pd.DataFrame({"from_stage": ends[step], "to_stage": END, "count": ends["ends"], "customers": ends["ends"]}),
    ], ignore_index=True)
    out["share_of_from"] = out["count"] / out.groupby("from_stage")["count"].transform("sum")
    order = list(stages or [])
    vol = vol.sort_values(["n", step], ascending=[False, True], kind="stable")
    order += [s for s in vol[step] if s not in order]
    pos = {s: i for i, s in enumerate(order + [END])}
    out["from_order"] = out["from_stage"].map(pos)
    out["to_order"] = out["to_stage"].map(pos)
    return out.sort_values(["from_order", "to_order"]).reset_index(drop=True)


def flow(events: pd.DataFrame | None = None, step: str = "stage", stages=None, data: pd.DataFrame | None = None,
         title: str = "Where customers go next (share of transitions out of each stage)"):
    """Transition heatmap: rows = from stage, columns = next stage and "(end)" (drop-off); cells = share_of_from."""
    import matplotlib.pyplot as plt

    d = flow_data(events, step, stages) if data is None else data
    rows = d.drop_duplicates("from_stage").sort_values("from_order")["from_stage"].tolist()
    cols = d.drop_duplicates("to_stage").sort_values("to_order")["to_stage"].tolist()
    mat = d.pivot(index="from_stage", columns="to_stage", values="share_of_from").reindex(index=rows, columns=cols)
    cnt = d.pivot(index="from_stage", columns="to_stage", values="count").reindex(index=rows, columns=cols)
    fig, ax = plt.subplots(figsize=(1.0 * len(cols) + 3.5, 0.62 * len(rows) + 2.2), dpi=110)
    im = ax.imshow(mat.to_numpy(float), cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for i in range(len(rows)):
        for j in range(len(cols)):
            v = mat.iat[i, j]
            if np.isfinite(v):
                ax.text(j, i, f"{v:.0%}\n{int(cnt.iat[i, j]):,}", ha="center", va="center", fontsize=8,
                        color="white" if v > 0.55 else _INK)
    ax.set_xticks(range(len(cols)), cols, rotation=35, ha="right", fontsize=9)
    ax.set_yticks(range(len(rows)), rows, fontsize=9)
    if END in cols:
        ax.axvline(cols.index(END) - 0.5, color=_RED, lw=2)
    ax.set_xlabel("next stage ((end) = the customer's last event: drop-off or completion)")
    ax.set_ylabel("from stage")
    ax.set_title(title, fontsize=12, fontweight="bold", loc="left")
    fig.colorbar(im, ax=ax, fraction=0.03, label="share of transitions out of the row's stage")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------
# segment heatmap
# ------------------------------------------------------------------------------------------------
#: A difference between a segment and the rest that matters, per metric of ``compare_segments``: the
#: colour scale of :func:`segment_heatmap` reaches full colour no sooner than this (so that small,
#: insignificant differences never look deep red or blue).
MEANINGFUL_DIFF = {"sentiment_mean": 0.2, "satisfaction_mean": 0.5, "share_customers": 0.1, "drop_off": 0.05,
                   "rework_share": 0.1, "sentiment_share_negative": 0.1}


def segment_heatmap_data(comparison: pd.DataFrame, metric: str = "satisfaction_mean") -> pd.DataFrame:
    """One metric of :func:`journey_analysis.analyze.compare_segments`: stage, segment, value, diff, z,
    differs, marker, plus what the heatmap draws: ``colour_diff`` (diff where the difference is
    significant, ``differs``; NaN elsewhere: not coloured) and ``scale_limit`` (the colour scale runs
    from -limit to +limit, centred on zero: the larger of :data:`MEANINGFUL_DIFF` for the metric (for
    durations a quarter of the median of the rest) and the largest significant |diff|)."""
    c = comparison[comparison["metric"] == metric]
    if c.empty:
        raise JourneyError(f"The comparison has no metric {metric!r}.", column="metric",
                           expected=", ".join(comparison["metric"].unique()))
    out = c[["stage", "stage_order", "segment", "metric", "value", "n", "rest", "diff", "z", "differs", "marker"]] \
        .sort_values(["stage_order", "segment"]).reset_index(drop=True)
    sig = out["differs"].fillna(False).astype(bool)
    out["colour_diff"] = out["diff"].where(sig)
    meaningful = MEANINGFUL_DIFF.get(metric)
    if meaningful is None:
        rest = out["rest"].abs().median()
        meaningful = 0.25 * rest if pd.notna(rest) and rest > 0 else 1.0
    big = out["colour_diff"].abs().max()
    out["scale_limit"] = float(max(meaningful, big if pd.notna(big) else 0.0))
    out["marker"] = out["marker"].where(sig, "")
    return out


def segment_heatmap(comparison: pd.DataFrame | None = None, metric: str = "satisfaction_mean",
                    data: pd.DataFrame | None = None):
    """Heatmap stages x segments: only the cells whose difference from the other customers is
    significant are coloured (red below, blue above, centred on zero, the scale from
    :func:`segment_heatmap_data`'s ``scale_limit``) and marked + / -; the others show their value in
    grey on white. None (nothing to draw) when there are no segments to compare."""
    if data is None and (comparison is None or comparison.empty):
        return None
    import matplotlib.pyplot as plt

    d = segment_heatmap_data(comparison, metric) if data is None else data
    stages = d.drop_duplicates("stage").sort_values("stage_order")["stage"].tolist()
    segs = sorted(d["segment"].unique())
    val = d.pivot(index="stage", columns="segment", values="value").reindex(index=stages, columns=segs)
    col = d.pivot(index="stage", columns="segment", values="colour_diff").reindex(index=stages, columns=segs)
    mark = d.pivot(index="stage", columns="segment", values="marker").reindex(index=stages, columns=segs)
    lim = float(d["scale_limit"].iloc[0])
    fig, ax = plt.subplots(figsize=(2.0 * len(segs) + 3.5, 0.55 * len(stages) + 2.4), dpi=110)
    cmap = plt.get_cmap("RdBu").with_extremes(bad="white")
    im = ax.imshow(np.ma.masked_invalid(col.to_numpy(float)), cmap=cmap, vmin=-lim, vmax=lim, aspect="auto")
    from journey_analysis.formatting import format_value

    for i in range(len(stages)):
        for j in range(len(segs)):
            v = val.iat[i, j]
            if np.isfinite(v):
                m = mark.iat[i, j] if isinstance(mark.iat[i, j], str) else ""
                c = col.iat[i, j]
                dark = np.isfinite(c) and abs(c) > 0.6 * lim
                ax.text(j, i, f"{format_value(v, metric)} {m}".strip(), ha="center", va="center", fontsize=9,
                        fontweight="bold" if m else "normal",
                        color="white" if dark else (_INK if m else _GREY))
    ax.set_xticks(range(len(segs)), segs, rotation=20, ha="right", fontsize=9)
    ax.set_yticks(range(len(stages)), stages, fontsize=9)
    n_sig = int(np.isfinite(col.to_numpy(float)).sum())
    ax.set_title(f"{metric} by segment: {n_sig} of {int(np.isfinite(val.to_numpy(float)).sum())} cells differ "
                 f"significantly from the other customers\n(coloured and marked +/-; white = no clear difference)",
                 fontsize=10.5, fontweight="bold", loc="left")
    fig.colorbar(im, ax=ax, fraction=0.03, label=f"segment - rest (scale ±{format_value(lim, metric).lstrip('+')})")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------
# drivers
# ------------------------------------------------------------------------------------------------
def drivers_chart_data(drivers: pd.DataFrame, top: int = 12) -> pd.DataFrame:
    """The ``top`` experience drivers of :func:`journey_analysis.analyze.moments_of_truth` by rank.

    Columns: label ("stage: measure"), stage, measure, effect, ci_low, ci_high, odds_ratio, significant,
    worse_raises_bad, rank.
    """
    d = drivers[drivers["role"] == "driver"].sort_values("rank").head(top).copy()
    d["label"] = (d["driver"].astype(str) if "driver" in d.columns else
                  d["stage"].astype(str) + ": " + d["measure"].replace({"dwell_log_h": "time spent"}).astype(str))
    return d[["rank", "label", "stage", "measure", "effect", "ci_low", "ci_high", "odds_ratio", "significant",
              "worse_raises_bad"]].reset_index(drop=True)


def drivers_chart(drivers: pd.DataFrame | None = None, outcome: str = "the outcome", top: int = 12,
                  data: pd.DataFrame | None = None):
    """Horizontal effect chart: log-odds per sd with 95% bootstrap intervals; red = worse experience raises the bad outcome."""
    import matplotlib.pyplot as plt

    d = drivers_chart_data(drivers, top) if data is None else data
    d = d.iloc[::-1]
    y = np.arange(len(d))
    fig, ax = plt.subplots(figsize=(9.5, 0.45 * len(d) + 2.0), dpi=110)
    col = np.where(~d["significant"], _GREY, np.where(d["worse_raises_bad"], _RED, _GREEN))
    ax.barh(y, d["effect"], color=col, alpha=0.85, height=0.6)
    ax.errorbar(d["effect"], y, xerr=[d["effect"] - d["ci_low"], d["ci_high"] - d["effect"]], fmt="none",
                ecolor=_INK, capsize=3, lw=1)
    ax.axvline(0, color=_INK, lw=1)
    ax.set_yticks(y, d["label"], fontsize=9.5)
    ax.set_xlabel(f"change in log-odds of {outcome} per +1 sd of the feature (95% bootstrap CI)")
    ax.set_title(f"Moments of truth: what moves {outcome}\n(red: a worse experience raises it; grey: not significant)",
                 fontsize=11, fontweight="bold", loc="left")
    ax.grid(axis="x", color="#e3e7ee", lw=0.6)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------
# emotion curve
# ------------------------------------------------------------------------------------------------
def emotion_curve_data(journey_map: pd.DataFrame, segments=None, configured_only: bool = True) -> pd.DataFrame:
    """Sentiment per stage (mean, 95% CI, n) for "All customers" and the given segments (None = all)."""
    m = journey_map
    if configured_only and m["configured"].any():
        m = m[m["configured"]]
    if segments is not None:
        m = m[m["segment"].isin([ALL] + list(segments))]
    return m[["segment", "stage", "stage_order", "sentiment_mean", "sentiment_ci_low", "sentiment_ci_high",
              "sentiment_n", "sentiment_share_negative"]].sort_values(["segment", "stage_order"]).reset_index(drop=True)


def emotion_curve(journey_map: pd.DataFrame | None = None, segments=None, data: pd.DataFrame | None = None):
    """Emotion curve: mean sentiment per stage with a 95% band, one line per segment ("All customers" bold)."""
    import matplotlib.pyplot as plt

    d = emotion_curve_data(journey_map, segments) if data is None else data
    stages = d.drop_duplicates("stage").sort_values("stage_order")["stage"].tolist()
    pos = {s: i for i, s in enumerate(stages)}
    fig, ax = plt.subplots(figsize=(max(8, 1.5 * len(stages) + 2), 4.8), dpi=110)
    ax.axhline(0, color=_GREY, lw=0.9)
    for seg, g in d.groupby("segment", sort=False):
        xs = g["stage"].map(pos).to_numpy()
        main = seg == ALL
        ax.plot(xs, g["sentiment_mean"], marker="o", lw=3 if main else 1.5, color=_INK if main else None,
                label=seg, zorder=3 if main else 2)
        if main:
            ax.fill_between(xs, g["sentiment_ci_low"], g["sentiment_ci_high"], color=_BLUE, alpha=0.15, lw=0)
    ax.set_xticks(range(len(stages)), stages, fontsize=10)
    ax.set_ylim(-1, 1)
    ax.set_ylabel("mean sentiment (-1 to +1)")
    ax.set_title("Emotion curve along the journey", fontsize=12, fontweight="bold", loc="left")
    ax.legend(fontsize=8.5, frameon=False, loc="lower left")
    fig.tight_layout()
    return fig
