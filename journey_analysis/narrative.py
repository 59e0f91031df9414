"""What the notebooks say: the sentences and small tables of each chapter, built from the numbers
(objectives, the data and the customers' voice, segments, the map, findings), and what a run without
customers, feedback, events or an outcome could not do (:func:`limitations`).

Each function takes what a notebook already has (the config, frames, a fitted model) and returns a
string of Markdown, a dict or a small DataFrame; the computations themselves live in the modules that
own them.
"""
from __future__ import annotations

import pandas as pd

from journey_analysis.journey_map import ALL


def objectives_summary(config) -> dict:
    """What ``objectives.json`` holds: name, journey, title, objective, outcome (+ its good value),
    step column, satisfaction scale, stages with expectations and deliverables, KPIs, channels."""
    return {
        "name": config.name, "journey": config.journey, "title": config.title, "objective": config.objective,
        "outcome": config.outcome, "outcome_good": config.outcome_good, "step": config.step,
        "satisfaction": config.satisfaction.model_dump(),
        "stages": [s.model_dump() for s in config.stages],
        "kpis": [k.model_dump() for k in config.kpis], "channels": list(config.channels),
    }


def stages_table(config) -> pd.DataFrame:
    """The configured stages in order: stage, description, customer expectation, expected dwell (h),
    target satisfaction, deliverables and touchpoints (joined as text)."""
    f = config.stages_frame()
    f["deliverables"] = f["deliverables"].map(", ".join)
    f["touchpoints"] = f["touchpoints"].map(", ".join)
    cols = ["stage_order", "stage", "description", "expectation", "expected_max_duration_h", "target_satisfaction",
            "deliverables", "touchpoints"]
    return f[cols]


def kpi_table(config) -> pd.DataFrame:
    """The configured listening posts: label, stage, metric, min, max (empty frame when none)."""
    return pd.DataFrame([k.model_dump() for k in config.kpis], columns=["label", "stage", "metric", "min", "max"])


def objectives_markdown(config) -> str:
    """Two or three sentences stating the journey, the objective, the outcome and the stages."""
    good = {False: "false", True: "true"}.get(config.outcome_good, config.outcome_good)
    outcome = (f"Success is measured on the customers' **{config.outcome}** column (the good value is "
               f"`{good}`)." if config.outcome else "No outcome column is configured, so drivers cannot be "
                                                    "ranked against an outcome.")
    n_exp = sum(bool(s.expectation) for s in config.stages)
    n_dur = sum(s.expected_max_duration_h is not None for s in config.stages)
    return (f"This map follows the **{config.journey}** journey ({config.title or config.name}). "
            f"Objective: *{config.objective}*. {outcome} The journey is outlined in "
            f"**{len(config.stages)} stages** ({' → '.join(config.stage_names)}); {n_exp} carry a customer "
            f"expectation in words and {n_dur} an expected maximum duration, and {len(config.kpis)} "
            f"listening post{'s' if len(config.kpis) != 1 else ''} (KPIs) will be checked on every run.")


#: What a run without customers or feedback cannot do, in the words the notebooks and the report use.
NO_FEEDBACK = "No feedback: no sentiment, satisfaction, themes or quotes."


NO_RATINGS = ("Feedback without ratings: no satisfaction figures and no model learned from ratings "
              "(sentiment comes from the words alone).")


NO_CUSTOMERS = "No customer attributes: segments from behaviour only."


NO_EVENTS = ("No event log: the stages, touchpoints, channels, time in stage, the journey map, pain points, "
             "expectation gaps and stage drivers need events and were not computed; what this run shows comes "
             "from the customer table and the feedback alone.")


NO_OUTCOME = "No outcome column: no moments of truth (driver analysis needs an outcome)."


def limitations(config, customers: pd.DataFrame | None, feedback: pd.DataFrame | None,
                segmentation_note: str | None = None) -> list[str]:
    """Plain sentences saying what this run could not do and why, one per missing input:
    no feedback (:data:`NO_FEEDBACK`), feedback without a rating of the declared scale (:data:`NO_RATINGS`),
    no customers file (:data:`NO_CUSTOMERS`), no outcome (:data:`NO_OUTCOME`; no ``outcome:`` in the config,
    or no customers file to read it from), plus ``segmentation_note`` (e.g. segmentation skipped) when given.
    No event log in the config (customers or feedback only) adds :data:`NO_EVENTS` first.
    Empty list: nothing is missing."""
    out = []
    data = getattr(config, "data", None)
    if data is not None and getattr(data, "events", "") is None:
        out.append(NO_EVENTS)
    if feedback is None or not len(feedback):
        out.append(NO_FEEDBACK)
    else:
        rt = getattr(getattr(config, "satisfaction", None), "rating_type", None)
        rated = feedback["rating"].notna() if "rating" in feedback.columns else pd.Series(False, index=feedback.index)
        if rt and "rating_type" in feedback.columns:
            rated &= feedback["rating_type"].astype("string").str.lower().eq(rt).fillna(False)
        if not rated.any():
            out.append(NO_RATINGS)
    if customers is None:
        out.append("No customer attributes." if segmentation_note else NO_CUSTOMERS)
    if not getattr(config, "outcome", None):
        out.append(NO_OUTCOME)
    elif customers is None:
        out.append(f"No customers file, so no outcome column {config.outcome!r}: no moments of truth "
                   "(driver analysis needs an outcome).")
    if segmentation_note:
        out.append(segmentation_note)
    return out


def limitations_markdown(items: list[str]) -> str:
    """The :func:`limitations` as a short markdown list under a heading sentence ("" when none)."""
    if not items:
        return "Every input was given: customers, feedback with ratings, and an outcome."
    return "**What this run could not do, and why:**\n\n" + "\n".join(f"- {t}" for t in items)


def data_markdown(events: pd.DataFrame, customers: pd.DataFrame | None, feedback: pd.DataFrame | None,
                  quality: pd.DataFrame | None = None) -> str:
    """Sentences describing the gathered data: events, customers, period, feedback, doubtful rows; a run
    without a customers file or feedback says so (:data:`NO_CUSTOMERS`, :data:`NO_FEEDBACK`)."""
    from journey_analysis.steps import overview

    o = overview(events, "stage")
    n_cust, n_events, first, last = o["customers"], o["events"], o["first"], o["last"]
    per = n_events / max(n_cust, 1)
    if n_events:
        parts = [f"We have **{n_events:,} events** from **{n_cust:,} customers** "
                 f"({per:.1f} per customer) between {first:%d %b %Y} and {last:%d %b %Y}."]
    else:
        parts = [f"**{NO_EVENTS}**"]
    if customers is not None:
        parts.append(f"The customer file holds {len(customers):,} customers.")
    else:
        parts.append(f"**{NO_CUSTOMERS}**")
    if feedback is None:
        parts.append(f"**{NO_FEEDBACK}**")
    elif not len(feedback):
        parts.append("The feedback file has no rows: no sentiment, satisfaction, themes or quotes.")
    if feedback is not None and len(feedback):
        has_text = int((feedback["text"].fillna("").str.strip().str.len() > 0).sum())
        rated = int(feedback["rating"].notna().sum()) if "rating" in feedback.columns else 0
        parts.append(f"Customers left **{len(feedback):,} pieces of feedback**: {has_text:,} with words and "
                     f"{rated:,} with a rating.")
    if quality is not None and len(quality):
        warn = quality[quality["severity"] == "warning"]
        if len(warn):
            top = warn.sort_values("rows", ascending=False).iloc[0]
            parts.append(f"{int(warn['rows'].sum()):,} rows were doubtful (most often: "
                         f"{top['check'].replace('_', ' ')}, {int(top['rows']):,} rows); the table below says "
                         f"what was done with each.")
        else:
            parts.append("No doubtful rows were found.")
    return " ".join(parts)


def touchpoints_table(events: pd.DataFrame, stages, column: str = "channel", step: str = "stage") -> pd.DataFrame:
    """Events per stage (rows, configured order) and ``column`` (channel or touchpoint), with each
    stage's share of customers (``share_customers`` = distinct customers at the stage / all customers)."""
    from journey_analysis.steps import count_by, overview

    if column not in events.columns:
        column = step
    counts = count_by(events, [step] if column == step else [step, column])
    level = counts[column].astype(object).where(counts[column].notna(), "(missing)")
    t = pd.crosstab(counts[step], level, values=counts["n"], aggfunc="sum").fillna(0).astype("int64")
    t = t.reindex([s for s in stages if s in t.index] + [s for s in t.index if s not in stages])
    reach = count_by(events, [step], distinct="customer_id").set_index(step)["n"]
    t["share_customers"] = (reach / overview(events, step)["customers"]).round(3)
    return t


def voice_markdown(feedback: pd.DataFrame | None) -> str:
    """Sentences on the scored feedback: how many scored, the share negative, the most negative stage."""
    if feedback is None:
        return NO_FEEDBACK
    if not len(feedback) or "sentiment" not in feedback.columns:
        return "There is no feedback text to score in this data."
    from journey_analysis.sentiment import language_sentence

    scored = feedback[feedback["sentiment_status"] == "scored"]
    languages = language_sentence(feedback)
    if scored.empty:
        return f"None of the {len(feedback):,} pieces of feedback had text we could score. {languages}".strip()
    neg = float((scored["sentiment"] < -0.05).mean())
    by = scored.groupby("stage")["sentiment"].agg(["mean", "count"])
    by = by[by["count"] >= 5]
    worst = (f" The most negative stage is **{by['mean'].idxmin()}** (mean sentiment {by['mean'].min():+.2f} over "
             f"{int(by.loc[by['mean'].idxmin(), 'count']):,} comments)." if len(by) else "")
    return (f"{len(scored):,} of {len(feedback):,} pieces of feedback were scored; {neg:.0%} read negative "
            f"(score below -0.05)." + worst + (f" {languages}" if languages else ""))


def sentiment_by_stage(feedback: pd.DataFrame, stages, rating_type: str | None = None) -> pd.DataFrame:
    """Per stage (configured order): ``comments`` (scored texts), ``sentiment_mean``, ``share_negative``
    (score < -0.05), then for each rating scale in the feedback (``rating_type``: csat 1-5, nps 0-10,
    ces 1-7, stars 1-5) ``<scale>_mean`` and ``<scale>_n``: every mean is of ratings of one scale, never
    of several scales together. The declared ``rating_type`` comes first; feedback without a
    ``rating_type`` column is read as of the declared scale. No feedback (None): an empty table."""
    if feedback is None or "sentiment_status" not in feedback.columns:
        return pd.DataFrame(columns=["comments", "sentiment_mean", "share_negative"],
                            index=pd.Index([], name="stage"))
    scored = feedback[feedback["sentiment_status"] == "scored"]
    out = scored.groupby("stage").agg(comments=("sentiment", "size"), sentiment_mean=("sentiment", "mean"),
                                      share_negative=("sentiment", lambda s: float((s < -0.05).mean())))
    if "rating" in feedback.columns:
        rated = feedback[feedback["rating"].notna() & feedback["stage"].notna()]
        if "rating_type" in rated.columns:
            scale = rated["rating_type"].astype("string").str.lower().fillna(rating_type or "rating")
        else:
            scale = pd.Series(rating_type or "rating", index=rated.index)
        by = rated.assign(scale=scale.to_numpy()).groupby(["stage", "scale"])["rating"].agg(["mean", "count"])
        wide = by.unstack("scale")
        scales = sorted(wide.columns.get_level_values("scale").unique(), key=lambda t: (t != rating_type, t))
        for t in scales:
            out[f"{t}_mean"] = wide[("mean", t)]
            out[f"{t}_n"] = wide[("count", t)].astype("Int64")
    order = [s for s in stages if s in out.index] + [s for s in out.index if s not in stages]
    return out.reindex(order)


def voice_model_report(voice_model, feedback: pd.DataFrame | None):
    """What notebook 02 shows about learning from ratings: the model's cross-validated figures
    (``voice_model.cv_report``), or a sentence saying why there is none (no feedback, no ratings, too few)."""
    if voice_model is not None:
        return voice_model.cv_report
    if feedback is None:
        return NO_FEEDBACK
    if "rating" not in feedback.columns or not feedback["rating"].notna().any():
        return "The feedback has no ratings to learn from: lexicon only."
    return "Too few rated comments to learn from: lexicon only."


def segments_frame(segmentation) -> pd.DataFrame | None:
    """The ``segments.parquet`` table of a fitted segmentation: customer_id (str), segment (int, 0 =
    largest) and segment_name; None when segmentation was skipped (``segmentation=None``)."""
    if segmentation is None:
        return None
    labels = segmentation.labels
    names = getattr(segmentation, "names", {}) or {}
    out = pd.DataFrame({"customer_id": labels.index.astype(str), "segment": labels.to_numpy().astype("int64")})
    out["segment_name"] = out["segment"].map(names).fillna("Segment " + out["segment"].astype(str))
    return out


def segments_markdown(segmentation, note: str | None = None) -> str:
    """Sentences on a fitted segmentation: k and how it was chosen, sizes and names, stability; when
    segmentation was skipped (``segmentation=None``), ``note`` (the reason from
    :func:`journey_analysis.segment.try_segment_customers`)."""
    if segmentation is None:
        return note or "Segmentation skipped: one map for all customers."
    sizes = pd.Series(segmentation.labels).value_counts().sort_index()
    names = getattr(segmentation, "names", {}) or {}
    total = int(sizes.sum())
    listing = "; ".join(f"**{names.get(k, f'Segment {k}')}** ({v / total:.0%})" for k, v in sizes.items())
    how = ("chosen from the data (the largest silhouette between "
           f"{segmentation.k_range[0]} and {segmentation.k_range[1]})" if segmentation.k_param == "auto"
           else "fixed in the configuration")
    ari = getattr(segmentation, "stability_ari", None)
    stab = ""
    if ari is not None and not pd.isna(ari):
        word = "very stable" if ari >= 0.9 else "fairly stable" if ari >= 0.7 else "not stable"
        stab = (f" Refitting on bootstrap samples gives an adjusted Rand index of {ari:.2f}: the segments are "
                f"{word}{'' if ari >= 0.7 else '; treat them as a rough grouping'}.")
    return (f"The {total:,} customers fall into **{segmentation.k} segments**, a number {how}: {listing}."
            + stab)


def _h(hours: float) -> str:
    if hours is None or pd.isna(hours):
        return "–"
    return f"{hours * 60:.0f} min" if hours < 1 else f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def map_markdown(journey_map: pd.DataFrame, segment: str = ALL) -> str:
    """Sentences read off one segment's journey map (configured stages): where sentiment is lowest,
    where the wait is furthest over its expectation, where most customers drop off, and how much of the
    map rests on thin evidence (``low_confidence``)."""
    m = journey_map[journey_map["segment"].astype(str) == segment] if "segment" in journey_map else journey_map
    if "configured" in m.columns and m["configured"].any():
        m = m[m["configured"]]
    m = m[m["customers"] > 0]
    if m.empty:
        return f"No customer of {segment} reached a configured stage."
    parts = [f"For **{segment}** the map covers {len(m)} stages reached by customers."]
    s = m.dropna(subset=["sentiment_mean"])
    if len(s):
        w = s.loc[s["sentiment_mean"].idxmin()]
        parts.append(f"Feelings are lowest at **{w['stage']}** (mean sentiment {w['sentiment_mean']:+.2f}, "
                     f"{w.get('sentiment_share_negative', float('nan')):.0%} of comments negative).")
    if "duration_ratio" in m.columns and m["duration_ratio"].notna().any():
        d = m.loc[m["duration_ratio"].idxmax()]
        verdict = "over" if d["duration_ratio"] > 1 else "within"
        took = d["stage_time_median_h"] if "stage_time_median_h" in d.index else d["dwell_median_h"]
        parts.append(f"The time in a stage furthest from its expectation is at **{d['stage']}**: median {_h(took)} per visit "
                     f"against an expected maximum of {_h(d['expected_max_duration_h'])} ({verdict}).")
    if "drop_off" in m.columns and m["drop_off"].notna().any() and m["drop_off"].max() > 0:
        o = m.loc[m["drop_off"].idxmax()]
        parts.append(f"The largest drop-off is at **{o['stage']}**: {o['drop_off']:.0%} of those who reach it stop there "
                     "before the journey's end and stay away.")
    if "feedback_n" in m.columns and not m["feedback_n"].fillna(0).astype(float).any():
        parts.append("No feedback reached the map: no sentiment, satisfaction, themes or quotes; the map "
                     "shows behaviour only (the `missing` column says what is missing at each stage).")
    if "low_confidence" in m.columns:
        n_low = int(m["low_confidence"].sum())
        parts.append(f"{n_low} of {len(m)} stages rest on thin evidence (fewer than 30 observations somewhere)."
                     if n_low else "Every stage has at least 30 observations behind its figures.")
    return " ".join(parts)


def later_period_table(later: pd.DataFrame) -> pd.DataFrame:
    """The stage figures of :func:`journey_analysis.metrics.later_period_comparison` that changed beyond
    their uncertainty, in the units people read (each value divided by its ``scale``: dwell in hours,
    drop-off in %)."""
    changed = later[later["significant"]]
    shown = changed.assign(**{c: changed[c] / changed["scale"] for c in ("previous", "current", "change")})
    return shown[["stage", "metric", "previous", "current", "change", "verdict"]]


def validation_table(journey_map: pd.DataFrame) -> pd.DataFrame:
    """Rows of the map (every segment) a person should check before trusting it: the map's ``needs_review``
    rows (see ``journey_map._review``: unconfigured stages many reach, stages no one reached, gaps on thin
    evidence), else (older maps) low confidence or something missing. Columns: segment, stage, customers,
    feedback_n, review_reasons (or low_confidence_reasons), missing."""
    if "needs_review" in journey_map.columns:
        cols = [c for c in ("segment", "stage", "customers", "feedback_n", "review_reasons", "missing")
                if c in journey_map.columns]
        return journey_map.loc[journey_map["needs_review"].astype(bool), cols].reset_index(drop=True)
    cols = [c for c in ("segment", "stage", "customers", "feedback_n", "low_confidence_reasons", "missing")
            if c in journey_map.columns]
    flag = pd.Series(False, index=journey_map.index)
    if "low_confidence" in journey_map.columns:
        flag |= journey_map["low_confidence"].astype(bool)
    if "missing" in journey_map.columns:
        flag |= journey_map["missing"].fillna("").astype(str).str.len() > 0
    return journey_map.loc[flag, cols].reset_index(drop=True)


def findings(pain: pd.DataFrame, drivers: pd.DataFrame | None, gaps: pd.DataFrame | None,
             recs: pd.DataFrame | None, kpis: pd.DataFrame | None = None, limitations: list[str] | None = None) -> dict:
    """The headline figures of an analysis (``findings.json``):

    ``top_pain_point`` (stage ranked 1 by ``pain_points``) and its ``top_pain_score``; ``top_driver``
    ("stage: measure" of the best-ranked *significant* experience driver from ``moments_of_truth``, None
    when none is significant) with ``top_driver_stage`` and ``top_driver_sentence``;
    ``n_significant_drivers``; ``n_gaps_flagged`` (expectation gaps flagged); ``top_recommendation``
    (sentence of the rank-1 recommendation); ``n_recommendations``; ``n_kpi_breaches``;
    ``no_drivers_reason`` (why there is no driver analysis, from ``drivers.attrs["reason"]`` of
    ``moments_of_truth``; None when it ran); ``limitations`` (the sentences of :func:`limitations`, when given).
    """
    out: dict = {}
    p = pain.sort_values("rank") if len(pain) else pain
    out["top_pain_point"] = str(p.iloc[0]["stage"]) if len(p) else None
    out["top_pain_score"] = float(p.iloc[0]["pain_score"]) if len(p) else None
    out["pain_ranking"] = p["stage"].astype(str).tolist() if len(p) else []
    out["no_drivers_reason"] = (drivers.attrs.get("reason") if drivers is not None else
                                "No driver analysis was run.")
    d = pd.DataFrame() if drivers is None or drivers.empty else drivers
    if len(d):
        d = d[(d["role"] == "driver") & d["significant"].astype(bool)].sort_values("rank")
    out["n_significant_drivers"] = int(len(d))
    out["top_driver"] = ((str(d.iloc[0]["driver"]) if "driver" in d.columns else
                          f"{d.iloc[0]['stage']}: {d.iloc[0]['measure']}") if len(d) else None)
    out["top_driver_stage"] = (str(d.iloc[0]["stage"]) if pd.notna(d.iloc[0]["stage"]) else None) if len(d) else None
    out["top_driver_sentence"] = str(d.iloc[0]["sentence"]) if len(d) else None
    out["n_gaps_flagged"] = int(gaps["flagged"].astype(bool).sum()) if gaps is not None and len(gaps) else 0
    r = recs.sort_values("rank") if recs is not None and len(recs) else None
    out["top_recommendation"] = str(r.iloc[0]["sentence"]) if r is not None else None
    out["n_recommendations"] = int(len(recs)) if recs is not None else 0
    out["n_kpi_breaches"] = int((kpis["status"] == "breach").sum()) if kpis is not None and len(kpis) else 0
    out["limitations"] = list(limitations or [])
    return out


def findings_markdown(f: dict) -> str:
    """The findings as a short paragraph (pain point, moment of truth, first recommendation)."""
    parts = []
    if f.get("top_pain_point"):
        parts.append(f"The biggest pain point is **{f['top_pain_point']}** (pain score {f['top_pain_score']:.2f}).")
    if f.get("top_driver"):
        parts.append(f"The moment of truth, the experience that moves the outcome most, is **{f['top_driver']}**: "
                     f"{f['top_driver_sentence']}")
    elif f.get("no_drivers_reason"):
        parts.append(f["no_drivers_reason"])
    else:
        parts.append("No stage's experience is clearly linked to the outcome (no driver's interval excludes zero).")
    if f.get("top_recommendation"):
        parts.append(f"First recommendation: {f['top_recommendation']}")
    text = " ".join(parts)
    if f.get("limitations"):
        text += "\n\n" + limitations_markdown(f["limitations"])
    return text
