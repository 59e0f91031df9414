"""The journey map: one tidy table, one row per (segment, stage), built from behaviour and the voice of the customer.

Owns :func:`build_map` (and the small helpers it uses). Every number carries its evidence: ``*_n`` counts,
95% confidence intervals (``*_ci_low`` / ``*_ci_high``), ``low_confidence`` flags when n < 30, the
config's expectations marked as assumed (``expectation_source = "config"``), and a ``missing`` sentence
saying what the data does not show (for example "no feedback at this stage"). A stage with no feedback
keeps its behavioural numbers.

Behaviour numbers come from one place, :func:`journey_analysis.steps.step_stats` (for all customers and
``by="segment"``, with :func:`~journey_analysis.steps.stage_visits`, the touchpoint / channel counts and the
dwell over expectation, all from one sort of the events: :func:`journey_analysis.steps.segment_stage_tables`),
so the map and the step statistics cannot disagree:

- order of events: (customer_id, timestamp, row_id); without ``row_id`` the frame's positional order.
- ``customers``, ``share_customers``, ``events``, ``ends_here``, ``dwell_*`` and ``service_*`` (n, min,
  max, mean, median, p90, std in seconds): steps' columns and definitions (dwell = next event's timestamp
  - this one within a customer, pm4py's directly-follows time; the customer's last event has none);
  ``several_events_customers`` = steps' ``rework_customers`` (two or more events at the stage).
- **time in the stage** (``stage_time_*``, n, min, max, mean, median, p90, std, from
  :func:`journey_analysis.steps.stage_visits`): per customer *visit* (consecutive events at the stage),
  from its first event to the first event of the next stage (or the journey's last event). This is the
  duration the expectations, gaps and KPIs use; ``visits``; ``rework_customers`` = customers who came back
  to the stage after leaving it (two or more visits), ``rework_share`` = rework_customers / customers.
  The ``_h`` copies are seconds / 3600.
- journey ends (see :func:`build_map`): ``completed`` (journeys that reached a terminal stage, counted
  where they end), ``in_progress_here`` and ``drop_off_customers``; ``drop_off`` is a share with a
  Wilson 95% interval.
- ``satisfaction_*``: ratings of ``config.satisfaction.rating_type`` only (the one declared scale):
  mean, sd, n, 95% CI = mean +- t(0.975, n-1) * sd / sqrt(n).
- ``sentiment_*``: feedback ``sentiment`` in [-1, 1]: mean, n, CI as above; ``sentiment_share_negative``
  = share of scored feedback with sentiment < :data:`NEGATIVE_BELOW` (Wilson 95% interval).
- ``duration_gap_h`` = stage_time_median_h - expected_max_duration_h; ``duration_ratio`` = their ratio;
  ``stage_time_share_over_expected`` = share of visits longer than the expectation
  (``dwell_share_over_expected``: the same for the per-event dwell).
- ``needs_review`` / ``review_reasons``: the rows a person should look at (see :func:`_review`).
- ``satisfaction_gap`` = satisfaction_mean - target_satisfaction (negative = below target).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from journey_analysis.aside import Aside
from journey_analysis.errors import JourneyError

#: Name of the segment that holds every customer.
ALL = "All customers"
#: Evidence below this many observations is flagged as low confidence.
MIN_N = 30
#: Sentiment below this value counts as negative (VADER's convention).
NEGATIVE_BELOW = -0.05
#: Sentiment above this value counts as positive.
POSITIVE_ABOVE = 0.05
#: Number of touchpoints / channels named per stage.
TOP_LEVELS = 3
_STATS = ("n", "min", "max", "mean", "median", "p90", "std")
#: steps.step_stats column -> map column, where the names differ.
_STEP_RENAMES = {"in_progress": "in_progress_here", "drop_off": "drop_off_customers",
                 "rework_customers": "several_events_customers"}


# ------------------------------------------------------------------------------------------------
# inputs
# ------------------------------------------------------------------------------------------------
def segment_labels(segments, customer_ids=None) -> pd.Series | None:
    """Normalise ``segments`` to a Series customer_id (str) -> segment name (str), or None.

    Accepts None, a Series indexed by customer_id (names or numbers), a DataFrame with ``customer_id``
    and ``segment_name`` or ``segment``, or a fitted segmentation with ``labels`` and ``names``.
    """
    if segments is None:
        return None
    if hasattr(segments, "labels") and not isinstance(segments, (pd.Series, pd.DataFrame)):
        names = getattr(segments, "names", {}) or {}
        lab = segments.labels
        segments = lab.map(lambda v: names.get(v, f"Segment {v}")) if names else lab
    if isinstance(segments, pd.DataFrame):
        frame = segments
        if "customer_id" not in frame.columns:
            frame = frame.reset_index()
        col = next((c for c in ("segment_name", "segment") if c in frame.columns), None)
        if col is None or "customer_id" not in frame.columns:
            raise JourneyError("The segments table needs columns customer_id and segment_name (or segment).",
                               column="segment_name", expected="customer_id, segment_name",
                               fix="Pass segments.parquet from 03_segment, or a Series customer_id -> segment.")
        segments = frame.set_index("customer_id")[col]
    if not isinstance(segments, pd.Series):
        raise JourneyError(f"segments must be None, a Series or a DataFrame, not {type(segments).__name__}.",
                           fix="Pass segments.parquet from 03_segment, or a Series customer_id -> segment.")
    s = segments.copy()
    s.index = s.index.astype(str)
    if pd.api.types.is_numeric_dtype(s):
        s = "Segment " + s.astype("Int64").astype(str)
    s = s.astype(object).where(s.notna(), None).dropna().astype(str)
    s = s[~s.index.duplicated(keep="last")]
    if (s == ALL).any():
        raise JourneyError(f"A segment may not be called {ALL!r}: that name is the whole population.",
                           column="segment_name", fix="Rename the segment.")
    s.name = "segment"
    return s


def journey_ends(config) -> list[str]:
    """The stages where a journey is complete: those marked ``terminal: true`` in the config; when no
    stage is marked, the last configured stage (the journey's natural end)."""
    ends = list(getattr(config, "terminal_stages", []) or [])
    return ends or list(config.stage_names[-1:])  # no stages at all: a customers-only run


def map_segment(journey_map: pd.DataFrame, segment: str = ALL) -> pd.DataFrame:
    """The rows of one segment of a map from :func:`build_map`, in stage order (a new 0..n-1 index).

    Raises :class:`~journey_analysis.errors.JourneyError` when the frame is not a map (no ``segment``
    column) or has no such segment (the message lists the segments it has).
    """
    if "segment" not in journey_map.columns:
        raise JourneyError("This is not a journey map (no 'segment' column).", column="segment",
                           fix="Build it with journey_analysis.journey_map.build_map.")
    m = journey_map[journey_map["segment"] == segment]
    if m.empty and len(journey_map):  # an empty map (no event log) has no segment at all
        raise JourneyError(f"The journey map has no segment {segment!r}.", column="segment",
                           expected=", ".join(map(str, journey_map["segment"].unique())))
    return m.sort_values("stage_order", kind="stable").reset_index(drop=True)


def lead_with_finding_quotes(journey_map: pd.DataFrame, pain_points: pd.DataFrame | None = None,
                             drivers: pd.DataFrame | None = None) -> pd.DataFrame:
    """The map with the quote that matches each finding first (issue 14, item 5).

    A (segment, stage) row is flagged when it is a pain point (rank 1-3 in ``pain_points``, of its
    ``segment``; the whole map when ``pain_points`` has no segment column) or the negative moment of
    truth (the stage of the top significant driver of ``drivers`` whose worse experience or longer time
    raises the bad outcome, ``worse_raises_bad``; every segment). On a flagged row with a
    ``negative_theme_quote`` (a negative comment about its top negative theme), ``quotes`` starts with
    that quote (not repeated, as many quotes as before) and ``quote`` is it; other rows are unchanged.
    Returns a new frame (the input is not modified); ``attrs["finding_quotes"]`` counts the rows changed.
    """
    m = journey_map.copy()
    if m.empty or "negative_theme_quote" not in m.columns or "quotes" not in m.columns:
        m.attrs["finding_quotes"] = 0
        return m
    flagged = np.zeros(len(m), dtype=bool)
    if pain_points is not None and len(pain_points):
        pp = pain_points[pd.to_numeric(pain_points["rank"], errors="coerce") <= 3]
        keys = ["segment", "stage"] if "segment" in pp.columns else ["stage"]
        hit = m[keys].merge(pp[keys].drop_duplicates().assign(_hit=True), on=keys, how="left")["_hit"]
        flagged |= hit.fillna(False).to_numpy(dtype=bool)
    if drivers is not None and len(drivers) and {"role", "significant", "rank", "stage"} <= set(drivers.columns):
        d = drivers[(drivers["role"] == "driver") & drivers["significant"].astype(bool)].sort_values("rank")
        if len(d) and bool(d.iloc[0].get("worse_raises_bad", False)):
            flagged |= (m["stage"] == d.iloc[0]["stage"]).to_numpy()
    nq = m["negative_theme_quote"]
    pick = flagged & nq.map(lambda q: isinstance(q, str) and q != "").to_numpy(dtype=bool)
    if pick.any():
        idx = np.flatnonzero(pick)
        old = m["quotes"].iloc[idx]
        lead = nq.iloc[idx]
        new = [([q] + [x for x in list(o) if x != q])[:max(len(o), 1)]  # the flagged rows (a few stages)
               for q, o in zip(lead, (v if isinstance(v, (list, np.ndarray)) else [] for v in old))]
        col = m["quotes"].tolist()
        for i, v in zip(idx, new):
            col[i] = v
        m["quotes"] = col
        if "quote" in m.columns:
            m.loc[m.index[idx], "quote"] = lead.to_numpy()
    m.attrs["finding_quotes"] = int(pick.sum())
    return m


def _check_events(events: pd.DataFrame, step: str) -> None:
    for col in ("customer_id", "timestamp", step):
        if col not in events.columns:
            raise JourneyError(f"The events table has no column {col!r}.", column=col,
                               expected="customer_id, timestamp and the step column",
                               fix="Load events with journey_analysis.gather.load_events, or pass step= the step column.")


def _t975(n) -> np.ndarray:
    from scipy import stats

    n = np.asarray(n, dtype=float)
    out = np.full(n.shape, np.nan)
    ok = n >= 2
    out[ok] = stats.t.ppf(0.975, n[ok] - 1)
    return out


def _mean_ci(frame: pd.DataFrame, prefix: str) -> pd.DataFrame:
    half = _t975(frame[f"{prefix}_n"]) * frame[f"{prefix}_sd"] / np.sqrt(frame[f"{prefix}_n"])
    frame[f"{prefix}_ci_low"] = frame[f"{prefix}_mean"] - half
    frame[f"{prefix}_ci_high"] = frame[f"{prefix}_mean"] + half
    return frame


def wilson(k, n, z: float = 1.96):
    """Wilson score 95% interval for a proportion k/n (arrays); NaN where n == 0."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        den = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / den
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return centre - half, centre + half


def _share_text(counts: pd.DataFrame, keys: list[str], col: str) -> pd.DataFrame:
    """Top levels of ``col`` per group as text ("helpline 62%, webchat 30%") plus the top level and share,
    from ``counts`` (keys..., col, k: rows per non-missing level, :func:`journey_analysis.steps.segment_stage_tables`)."""
    counts = counts[counts[col].notna()].reset_index(drop=True)
    if counts.empty:
        return pd.DataFrame(columns=keys + [f"{col}s", f"top_{col}", f"top_{col}_share"]).set_index(keys)
    counts["share"] = counts["k"] / counts.groupby(keys, sort=False)["k"].transform("sum")
    counts = counts.sort_values(keys + ["k", col], ascending=[True] * len(keys) + [False, True])
    counts["rank"] = counts.groupby(keys, sort=False).cumcount()
    top = counts[counts["rank"] < TOP_LEVELS].copy()
    top["label"] = top[col].astype(str) + " " + (100 * top["share"]).round().astype(int).astype(str) + "%"
    text = top.groupby(keys, sort=False)["label"].agg(", ".join).rename(f"{col}s")
    first = counts[counts["rank"] == 0].set_index(keys)
    return pd.concat([text, first[col].rename(f"top_{col}"), first["share"].rename(f"top_{col}_share")], axis=1)


def _behaviour(tables: dict, step: str) -> pd.DataFrame:
    """Behaviour per (segment, stage) from :func:`journey_analysis.steps.segment_stage_tables` (its
    :func:`~journey_analysis.steps.step_stats` and :func:`~journey_analysis.steps.stage_visits` for all
    customers and ``by="segment"``), steps' columns renamed to the map's (:data:`_STEP_RENAMES`), plus the
    touchpoint / channel shares (map-only)."""
    out = tables["step_stats"].rename(columns=_STEP_RENAMES)
    visits = tables["visits"].drop(columns="visit_customers")
    out = out.merge(visits.rename(columns={"revisit_customers": "rework_customers"}), on=["segment", step], how="left")
    for col in ("touchpoint", "channel"):
        if col in tables["mix"]:
            mix = _share_text(tables["mix"][col], ["segment", step], col).reset_index()
            out = out.merge(mix, on=["segment", step], how="left")
    return out.drop(columns=["starts_here", "repeat_events", "service_sum_s"], errors="ignore")


def _voice(fb: pd.DataFrame, keys: list[str], rating_type: str) -> pd.DataFrame:
    g = fb.groupby(keys, sort=False, observed=True)
    out = pd.DataFrame({"feedback_n": g.size()})
    if "text" in fb.columns:
        txt = fb["text"].fillna("").astype(str).str.strip() != ""
        out["feedback_text_n"] = fb.assign(_t=txt).groupby(keys, sort=False, observed=True)["_t"].sum()
    if "rating" in fb.columns:
        rt = fb["rating_type"].astype(str).str.lower() if "rating_type" in fb.columns else pd.Series(rating_type, index=fb.index)
        r = pd.to_numeric(fb["rating"], errors="coerce").where(rt == rating_type.lower())
        gr = fb.assign(_r=r).groupby(keys, sort=False, observed=True)["_r"]
        out["satisfaction_mean"] = gr.mean()
        out["satisfaction_sd"] = gr.std(ddof=1)
        out["satisfaction_n"] = gr.count()
    if "sentiment" in fb.columns:
        s = pd.to_numeric(fb["sentiment"], errors="coerce")
        tmp = fb.assign(_s=s, _neg=(s < NEGATIVE_BELOW).where(s.notna()), _pos=(s > POSITIVE_ABOVE).where(s.notna()))
        gs = tmp.groupby(keys, sort=False, observed=True)
        out["sentiment_mean"] = gs["_s"].mean()
        out["sentiment_sd"] = gs["_s"].std(ddof=1)
        out["sentiment_n"] = gs["_s"].count()
        out["sentiment_negative_n"] = gs["_neg"].sum()
        out["sentiment_share_negative"] = out["sentiment_negative_n"] / out["sentiment_n"].replace(0, np.nan)
        out["sentiment_share_positive"] = gs["_pos"].sum() / out["sentiment_n"].replace(0, np.nan)
    return out


def _themes_quotes(fb: pd.DataFrame, step: str, segs: list[str], n_quotes: int) -> pd.DataFrame:
    """Themes (negative / positive) and up to ``n_quotes`` redacted quotes per (segment, stage), from
    :func:`journey_analysis.themes.stage_voice`; the themes are found once on all the feedback
    (:func:`journey_analysis.themes.theme_members`) and counted per segment."""
    from journey_analysis import themes

    cols = ["segment", "stage", "themes_negative", "themes_positive", "top_negative_theme", "quotes",
            "negative_theme_quote"]
    if fb is None or fb.empty or "text" not in fb.columns:
        return pd.DataFrame(columns=cols)
    fb = fb.rename(columns={step: "stage"}) if step != "stage" else fb
    fb = fb[fb["text"].fillna("").astype(str).str.strip() != ""]
    if fb.empty:
        return pd.DataFrame(columns=cols)
    if "feedback_id" not in fb.columns:
        fb = fb.assign(feedback_id=np.arange(len(fb)).astype(str))
    members = themes.theme_members(fb)
    # stage_voice reads only these columns (members given): the copies it makes stay narrow
    fb = fb[["feedback_id", "text", "stage", "segment"] + (["sentiment"] if "sentiment" in fb.columns else [])]
    parts = [fb.assign(segment=ALL)]
    if len(segs) > 1:
        parts.append(fb[fb["segment"].isin(segs[1:])])
    return themes.stage_voice(pd.concat(parts, ignore_index=True), ["segment", "stage"], members=members,
                              n_quotes=n_quotes)[cols]


# ------------------------------------------------------------------------------------------------
# the map
# ------------------------------------------------------------------------------------------------
def build_map(events: pd.DataFrame, feedback: pd.DataFrame | None, segments, config, step: str = "stage",
              n_quotes: int = 3, min_segment_customers: int = 1, inactivity_gap_h: float | None = None,
              as_of=None) -> pd.DataFrame:
    """Build the journey map: one row per (segment, stage), "All customers" first, stages in config order.

    Inputs: ``events`` (events contract), ``feedback`` (feedback contract with ``sentiment`` when scored;
    may be None), ``segments`` (None, Series customer_id -> segment, segments table or a fitted
    segmentation; see :func:`segment_labels`), ``config`` (:class:`~journey_analysis.config.RunConfig`),
    ``step`` (the step column; stages seen in the data but not configured come after the configured
    ones, with ``configured`` False). Feedback without a customer only counts for "All customers".

    Behaviour (reach, rework, dwell, service, ends) is :func:`journey_analysis.steps.step_stats` for all
    customers and ``by="segment"``, so it equals the step statistics exactly. **Journey ends**: a customer
    whose last event is at a stage ends there (``ends_here``). A journey that reached a terminal stage
    (:func:`journey_ends`: ``terminal: true`` in the config, else the last configured stage) is
    ``completed``, never a drop-off. Of the others, those whose last event is within ``inactivity_gap_h``
    hours (default ``config.session_gap_h``; None: nobody) of the extract's end (``as_of``, default the
    latest timestamp in ``events``, the same for every segment) may still go on: ``in_progress_here``.
    The rest stopped before any terminal stage and have been inactive longer than the gap:
    ``drop_off_customers``; ``drop_off`` = drop_off_customers / customers with a Wilson 95% interval.
    ``terminal`` marks the terminal stages.

    Output columns (see the module docstring for the definitions): segment, stage, stage_order, configured,
    segment_customers, customers, share_customers, events, several_events_customers, visits,
    rework_customers, rework_share, ends_here, completed, in_progress_here, drop_off_customers, drop_off,
    drop_off_ci_low/high, terminal, stage_time_{n,min,max,mean,median,p90,std}_s and ``_h``,
    stage_time_share_over_expected, dwell_{n,min,max,mean,median,p90,std}_s and ``_h``, service_* likewise, touchpoints/channels (text), top_channel(+_share), feedback_n,
    satisfaction_{mean,sd,n,ci_low,ci_high}, satisfaction_scale, sentiment_{mean,sd,n,ci_low,ci_high,
    share_negative,share_negative_ci_low/high,share_positive}, themes_negative, themes_positive,
    top_negative_theme, quotes (list of redacted strings), quote (the first), negative_theme_quote (a
    negative quote about the top negative theme, see :func:`journey_analysis.themes.stage_voice`), expectation, deliverables, expected_max_duration_h,
    target_satisfaction, expectation_source ("config" = assumed, not measured), duration_gap_h,
    duration_ratio, dwell_share_over_expected, satisfaction_gap, satisfaction_below_target (CI entirely
    below target), low_confidence (bool), low_confidence_reasons, missing (text), needs_review,
    review_reasons.

    The themes and quotes are found in a forked process (:class:`journey_analysis.aside.Aside`) while the
    behaviour lanes are computed: the same code on the same inputs, so the same map.
    """
    from journey_analysis import steps

    if events is not None:
        _check_events(events, step)
    facts = steps.overview(events, step) if events is not None else {"events": 0}
    if facts["events"] == 0 and getattr(getattr(config, "data", None), "events", "") is not None:
        raise JourneyError("The events table is empty: a journey map needs at least one event.",
                           fix="Check the events file and its filters.")
    labels = segment_labels(segments)
    fb = None
    if feedback is not None and len(feedback) and step in feedback.columns:
        fb = feedback[feedback[step].notna()].copy()
        fb["customer_id"] = fb["customer_id"].astype(object).where(fb["customer_id"].notna(), None) \
            if "customer_id" in fb.columns else None
        fb["segment"] = fb["customer_id"].map(labels) if labels is not None else None
    # the themes and quotes (about half the map's work) are found in a forked process meanwhile, for the
    # segments the labels name; used when those are the map's segments (else found again below)
    voice_segs = [ALL] + (sorted(pd.unique(labels.dropna()).tolist()) if labels is not None else [])
    voice_job = Aside(_themes_quotes, fb, step, voice_segs, n_quotes) if fb is not None and len(fb) else None
    gap_h = inactivity_gap_h if inactivity_gap_h is not None else getattr(config, "session_gap_h", None)
    as_of = facts["last"] if as_of is None else as_of
    configured = list(config.stage_names)
    terminal = journey_ends(config)
    sf = config.stages_frame().set_index("stage")
    exp_s = (pd.to_numeric(sf["expected_max_duration_h"], errors="coerce") * 3600.0).dropna().to_dict()
    # one pass over the events (one sort) for every behaviour lane, all customers and per segment
    tables = steps.segment_stage_tables(
        events, step, labels, overall=ALL, min_segment_customers=min_segment_customers,
        inactivity_gap_s=None if gap_h is None else float(gap_h) * 3600.0, as_of=as_of, terminal=list(terminal),
        expected_s=exp_s, mix=("touchpoint", "channel"))
    sizes = tables["segment_customers"].set_index("segment")["n"]
    seg_names = [ALL] + sorted(sizes[sizes >= min_segment_customers].index.tolist())
    seg_total = {ALL: facts["customers"], **{k: int(v) for k, v in sizes.items()}}
    beh = _behaviour(tables, step)
    beh = beh.rename(columns={step: "stage"})

    # full grid: every segment x every stage (configured first, then unconfigured by reach)
    beh_all = beh[beh["segment"] == ALL]
    extra = [s for s in beh_all.sort_values(["customers", "stage"], ascending=[False, True])["stage"]
             if s not in configured]
    stages = configured + extra
    grid = pd.MultiIndex.from_product([seg_names, stages], names=["segment", "stage"]).to_frame(index=False)
    grid["stage_order"] = grid["stage"].map({s: i for i, s in enumerate(stages)})
    grid["configured"] = grid["stage"].isin(configured)
    m = grid.merge(beh, on=["segment", "stage"], how="left")
    m["segment_customers"] = m["segment"].map(seg_total).astype("int64")
    for c in ("customers", "events", "rework_customers", "several_events_customers", "visits", "ends_here",
              "completed", "in_progress_here", "drop_off_customers", "dwell_n", "stage_time_n", "service_n"):
        m[c] = m[c].fillna(0).astype("int64") if c in m.columns else 0
    for c in _STATS[1:]:
        if f"service_{c}_s" not in m.columns:  # no end_timestamp / duration_s in the events
            m[f"service_{c}_s"] = np.nan
    m["share_customers"] = m["share_customers"].fillna(0.0)
    m["rework_share"] = m["rework_customers"] / m["customers"].replace(0, np.nan)
    m["terminal"] = m["stage"].isin(terminal)
    m["drop_off"] = m["drop_off_customers"] / m["customers"].replace(0, np.nan)
    m["drop_off_ci_low"], m["drop_off_ci_high"] = wilson(m["drop_off_customers"], m["customers"])
    for pre in ("dwell", "stage_time", "service"):
        for st in ("min", "max", "mean", "median", "p90", "std"):
            m[f"{pre}_{st}_h"] = m[f"{pre}_{st}_s"] / 3600.0

    # voice of the customer
    rating_type = config.satisfaction.rating_type
    voice_cols = ["feedback_n"]
    if fb is not None and len(fb):
        vparts = [_voice(fb, [step], rating_type).reset_index().assign(segment=ALL)]
        if labels is not None:
            fbs = fb[fb["segment"].isin(seg_names[1:])]
            if len(fbs):
                vparts.append(_voice(fbs, ["segment", step], rating_type).reset_index())
        voice = pd.concat(vparts, ignore_index=True).rename(columns={step: "stage"})
        voice_cols = [c for c in voice.columns if c not in ("segment", "stage")]
        m = m.merge(voice, on=["segment", "stage"], how="left")
        if seg_names == voice_segs:
            tq = voice_job.result()
        else:
            voice_job.cancel()
            tq = _themes_quotes(fb, step, seg_names, n_quotes)
        m = m.merge(tq, on=["segment", "stage"], how="left")
    for c in ("feedback_n", "feedback_text_n", "satisfaction_n", "sentiment_n", "sentiment_negative_n"):
        m[c] = m[c].fillna(0).astype("int64") if c in m.columns else 0
    for c in ("satisfaction_mean", "satisfaction_sd", "sentiment_mean", "sentiment_sd", "sentiment_share_negative",
              "sentiment_share_positive"):
        if c not in m.columns:
            m[c] = np.nan
    for c in ("themes_negative", "themes_positive", "top_negative_theme", "negative_theme_quote"):
        if c not in m.columns:
            m[c] = None
        m[c] = m[c].astype(object).where(m[c].notna(), None)
    if "quotes" not in m.columns:
        m["quotes"] = None
    m["quotes"] = [q if isinstance(q, list) else [] for q in m["quotes"]]
    m["quote"] = [q[0] if q else None for q in m["quotes"]]
    m = _mean_ci(m, "satisfaction")
    m = _mean_ci(m, "sentiment")
    m["sentiment_share_negative_ci_low"], m["sentiment_share_negative_ci_high"] = wilson(
        m["sentiment_negative_n"], m["sentiment_n"])
    lo, hi = config.satisfaction.min, config.satisfaction.max
    m["satisfaction_scale"] = f"{rating_type} {lo:g}-{hi:g}"
    m[f"{rating_type.lower()}_mean"] = m["satisfaction_mean"]  # alias named after the scale (KPIs use it)

    # expectations from the config (assumed, not measured)
    m["expectation"] = m["stage"].map(sf["expectation"]).where(m["configured"], None)
    m["deliverables"] = m["stage"].map(sf["deliverables"].map(lambda d: "; ".join(d) if d else "")).where(m["configured"], None)
    m["expected_max_duration_h"] = pd.to_numeric(m["stage"].map(sf["expected_max_duration_h"]), errors="coerce")
    m["target_satisfaction"] = pd.to_numeric(m["stage"].map(sf["target_satisfaction"]), errors="coerce")
    m["expectation_source"] = np.where(m["configured"], "config", "none")

    # gaps
    m["duration_gap_h"] = m["stage_time_median_h"] - m["expected_max_duration_h"]
    m["duration_ratio"] = m["stage_time_median_h"] / m["expected_max_duration_h"]
    m = m.merge(tables["dwell_over"], on=["segment", "stage"], how="left")
    m["satisfaction_gap"] = m["satisfaction_mean"] - m["target_satisfaction"]
    m["satisfaction_below_target"] = (m["satisfaction_ci_high"] < m["target_satisfaction"]).fillna(False)

    # evidence flags and what is missing
    m = _flags(m, "channel" in events.columns, fb, rating_type)
    m = _review(m)
    m = m.sort_values(["segment", "stage_order"], key=lambda s: s.map({n: i for i, n in enumerate(seg_names)})
                      if s.name == "segment" else s, kind="stable").reset_index(drop=True)
    lead = ["segment", "stage", "stage_order", "configured", "segment_customers", "customers", "share_customers"]
    return m[lead + [c for c in m.columns if c not in lead]]


def _flags(m: pd.DataFrame, has_channel: bool, fb, rating_type: str) -> pd.DataFrame:
    has_service = bool(m["service_n"].sum() > 0)
    checks = {  # evidence name -> n column
        "customers": "customers", "stage time": "stage_time_n", "satisfaction": "satisfaction_n",
        "sentiment": "sentiment_n",
    }
    reasons = pd.Series([[] for _ in range(len(m))], index=m.index)
    for name, col in checks.items():
        low = (m[col] > 0) & (m[col] < MIN_N)
        for i in np.flatnonzero(low.to_numpy()):
            reasons.iat[i] = reasons.iat[i] + [f"{name} n={int(m[col].iat[i])} < {MIN_N}"]
    m["low_confidence_reasons"] = reasons.map("; ".join)
    m["low_confidence"] = reasons.map(bool)
    missing = pd.Series([[] for _ in range(len(m))], index=m.index)

    def add(mask, text):
        for i in np.flatnonzero(np.asarray(mask, dtype=bool)):
            missing.iat[i] = missing.iat[i] + [text]

    add(m["customers"] == 0, "no customer reached this stage")
    add((m["customers"] > 0) & (m["dwell_n"] == 0), "no dwell time (no customer moved on from this stage)")
    if not has_service:
        add(np.ones(len(m)), "no service durations in the data (no end_timestamp or duration_s)")
    if not has_channel:
        add(np.ones(len(m)), "no channel column in the events")
    if fb is None or len(fb) == 0:
        add(np.ones(len(m)), "no feedback at this stage (no feedback data)")
    else:
        add(m["feedback_n"] == 0, "no feedback at this stage")
        add((m["feedback_n"] > 0) & (m["satisfaction_n"] == 0), f"no {rating_type} ratings at this stage")
        if "sentiment" not in fb.columns:
            add(m["feedback_n"] > 0, "feedback not scored for sentiment")
        else:
            add((m["feedback_n"] > 0) & (m["sentiment_n"] == 0), "no scored feedback text at this stage")
    add(~m["configured"], "stage not in the config (no expectation)")
    add(m["configured"] & m["expected_max_duration_h"].isna(), "no expected duration in the config")
    add(m["configured"] & m["target_satisfaction"].isna(), "no target satisfaction in the config")
    m["missing"] = missing.map("; ".join)
    return m


#: An unconfigured stage reached by at least this share of a segment's customers is worth a look.
REVIEW_UNCONFIGURED_SHARE = 0.05


def _review(m: pd.DataFrame) -> pd.DataFrame:
    """``needs_review`` and ``review_reasons``: the rows a person should look at before trusting the
    map, not every row with something missing. A row is flagged when (1) a stage seen in the data but
    not in the config is reached by at least :data:`REVIEW_UNCONFIGURED_SHARE` of the segment; (2) a
    configured stage is reached by no customer (All customers only); (3) a gap is shown on thin
    evidence: stage time over its expectation with fewer than :data:`MIN_N` visits, or satisfaction
    below target with fewer than :data:`MIN_N` ratings; (4) a configured stage reached by at least
    :data:`MIN_N` customers has no stage time at all. What a whole data set lacks (no channel column,
    no feedback) is said once in ``missing`` and in the report, not as a reason on every row."""
    reasons = pd.Series([[] for _ in range(len(m))], index=m.index)

    def add(mask, texts):
        for i in np.flatnonzero(np.asarray(mask, dtype=bool)):
            t = texts if isinstance(texts, str) else texts.iat[i]
            reasons.iat[i] = reasons.iat[i] + [t]

    add(~m["configured"] & (m["share_customers"] >= REVIEW_UNCONFIGURED_SHARE),
        "stage not in the config, reached by " + (100 * m["share_customers"]).round().astype(int).astype(str)
        + "% of customers")
    add(m["configured"] & (m["customers"] == 0) & (m["segment"] == ALL), "configured stage no customer reached")
    add((m["duration_ratio"] > 1) & (m["stage_time_n"] < MIN_N),
        "over its expected time on " + m["stage_time_n"].astype(str) + " visits only")
    add((m["satisfaction_gap"] < 0) & (m["satisfaction_n"] > 0) & (m["satisfaction_n"] < MIN_N),
        "below target on " + m["satisfaction_n"].astype(str) + " ratings only")
    add(m["configured"] & (m["customers"] >= MIN_N) & (m["stage_time_n"] == 0), "no stage time")
    m["review_reasons"] = reasons.map("; ".join)
    m["needs_review"] = reasons.map(bool)
    return m
