"""The figures a run is judged on: per-stage metrics with their standard errors, the configured KPIs
checked against them and the map, and the change since the previous run or in a later period.

* :func:`stage_metrics`: per stage, the figures compared between runs, each with its standard error.
* :func:`compare_stage_metrics`: the change between two runs, flagged where it exceeds its uncertainty;
  :func:`later_period_comparison`: the same against a later period's data (the living map).
* :func:`check_kpis`: the config's listening posts checked against the journey map and the metrics;
  :func:`kpi_metric_names` / :func:`validate_kpis`: which metric names a KPI may use (``journey validate``).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from journey_analysis.errors import JourneyError
from journey_analysis.journey_map import ALL


#: z for the comparison threshold: a change is flagged when |change| > Z * its standard error.
Z = 1.96


#: Standard error of a median from the interquartile range: se ~= IQR_SE * IQR / sqrt(n)
#: (the boxplot-notch rule, median +/- 1.57 IQR / sqrt(n) as a 95 % interval, divided by 1.96).
IQR_SE = 1.57 / 1.96


def stage_metrics(events: pd.DataFrame, feedback: pd.DataFrame | None, stages, step: str = "stage",
                  rating_type: str | None = None, terminal=None) -> pd.DataFrame:
    """Per stage, the figures a run is compared on, each with its standard error.

    Columns: ``stage``, ``stage_order`` (config order; stages not configured follow), ``customers``
    (distinct customers with an event at the stage), ``dwell_median_s`` (median over events at the stage
    of next event's timestamp - this timestamp, same customer, order (customer_id, timestamp, row_id);
    a customer's last event has none), ``dwell_median_se_s`` (``IQR_SE * IQR / sqrt(n)``), ``dwell_n``,
    ``dropoff_share`` (share of the stage's customers whose last event is at this stage; 0 at a stage
    where ending is completion: the ``terminal`` stages, or the last of ``stages`` when none are given,
    as on the journey map), ``dropoff_se`` (sqrt(p(1-p)/n)), ``sentiment_mean``,
    ``sentiment_se`` (sd / sqrt(n)), ``sentiment_n`` (scored feedback at the stage),
    ``satisfaction_mean``, ``satisfaction_se``, ``satisfaction_n`` (ratings of ``rating_type``).
    """
    from journey_analysis.steps import stage_dwell_summary

    stages = list(stages)
    out = stage_dwell_summary(events, step)
    iqr = out.pop("dwell_q75_s") - out.pop("dwell_q25_s")
    last_customers = out.pop("last_customers")
    out = out[["customers", "dwell_median_s", "dwell_n"]]
    out["dwell_median_se_s"] = IQR_SE * iqr / np.sqrt(out["dwell_n"].where(out["dwell_n"] > 0))
    p = (last_customers.reindex(out.index).fillna(0) / out["customers"]).astype(float)
    completion = list(terminal or []) or stages[-1:]
    p = p.where(~out.index.isin(completion), 0.0)
    out["dropoff_share"] = p
    out["dropoff_se"] = np.sqrt(p * (1 - p) / out["customers"])
    for col in ("sentiment_mean", "sentiment_se", "sentiment_n", "satisfaction_mean", "satisfaction_se",
                "satisfaction_n"):
        out[col] = np.nan
    if feedback is not None and len(feedback) and "stage" in feedback.columns:
        fb = feedback[feedback["stage"].notna()]
        if "sentiment" in fb.columns:
            s = fb.groupby("stage")["sentiment"].agg(["mean", "std", "count"])
            out["sentiment_mean"] = s["mean"].reindex(out.index)
            out["sentiment_se"] = (s["std"] / np.sqrt(s["count"])).reindex(out.index)
            out["sentiment_n"] = s["count"].reindex(out.index)
        if rating_type and {"rating", "rating_type"} <= set(fb.columns):
            r = fb[fb["rating_type"] == rating_type].groupby("stage")["rating"].agg(["mean", "std", "count"])
            out["satisfaction_mean"] = r["mean"].reindex(out.index)
            out["satisfaction_se"] = (r["std"] / np.sqrt(r["count"])).reindex(out.index)
            out["satisfaction_n"] = r["count"].reindex(out.index)
    out.index.name = "stage"
    out = out.reset_index()
    rank = {s: i for i, s in enumerate(stages)}
    out["stage_order"] = out["stage"].map(rank).fillna(len(stages)).astype(int)
    out = out.sort_values(["stage_order", "stage"]).reset_index(drop=True)
    first = ["stage", "stage_order", "customers"]
    return out[first + [c for c in out.columns if c not in first]]


#: Compared metrics: (column, se column, label, higher is better, unit divisor, unit).
COMPARED = (
    ("sentiment_mean", "sentiment_se", "sentiment", True, 1.0, ""),
    ("satisfaction_mean", "satisfaction_se", "satisfaction", True, 1.0, ""),
    ("dwell_median_s", "dwell_median_se_s", "dwell median", False, 3600.0, " h"),
    ("dropoff_share", "dropoff_se", "drop-off", False, 0.01, " %"),
)


def compare_stage_metrics(current: pd.DataFrame, previous: pd.DataFrame | None, z: float = Z) -> pd.DataFrame:
    """Per stage and metric, the change from ``previous`` to ``current`` (both from :func:`stage_metrics`).

    Columns: ``stage``, ``metric``, ``previous``, ``current``, ``change`` (current - previous),
    ``change_se`` (sqrt(se_prev^2 + se_cur^2)), ``significant`` (|change| > z * change_se, z = 1.96 by
    default; a change with unknown uncertainty is never significant), ``direction`` ("up", "down",
    "same"), ``verdict`` ("better", "worse" or "no clear change"), ``unit``, ``scale`` (divide by it to
    display). Empty when there is no previous run.
    """
    cols = ["stage", "metric", "previous", "current", "change", "change_se", "significant", "direction",
            "verdict", "unit", "scale"]
    if previous is None or previous.empty or current.empty:
        return pd.DataFrame(columns=cols)
    cur = current.set_index("stage")
    prev = previous.set_index("stage").reindex(cur.index)
    frames = []
    for col, se, label, higher_better, scale, unit in COMPARED:
        if col not in cur.columns or col not in prev.columns:
            continue
        c = cur[col].astype(float)
        p = prev[col].astype(float)
        change = c - p
        change_se = np.sqrt(cur[se].astype(float) ** 2 + prev[se].astype(float) ** 2)
        sig = (change.abs() > z * change_se) & change_se.notna() & change.notna()
        direction = np.where(change > 0, "up", np.where(change < 0, "down", "same"))
        good = (change > 0) == higher_better
        verdict = np.where(sig, np.where(good, "better", "worse"), "no clear change")
        frames.append(pd.DataFrame({"stage": cur.index, "metric": label, "previous": p.to_numpy(),
                                    "current": c.to_numpy(), "change": change.to_numpy(),
                                    "change_se": change_se.to_numpy(), "significant": sig.to_numpy(),
                                    "direction": direction, "verdict": verdict, "unit": unit, "scale": scale}))
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
    return out[out["previous"].notna() | out["current"].notna()].reset_index(drop=True)


def _in_folder(source, folder: Path):
    """A configured data source (path, table or tables) with each file taken from ``folder`` under the same
    file name (a table keeps its mapping; a ``via`` table keeps its own file)."""
    from journey_analysis.config import Table

    if source is None:
        return None
    if isinstance(source, tuple):
        return tuple(_in_folder(t, folder) for t in source)
    if isinstance(source, Table):
        return source.model_copy(update={"path": folder / Path(str(source.path)).name})
    return folder / Path(str(source)).name


def later_period_comparison(config, current: pd.DataFrame | None) -> pd.DataFrame:
    """The living map: what changed in a later period of the same journey.

    ``config.data.later_period`` names a folder holding the same data files (same file names) for a
    later period. They go through the steps of a run (:func:`journey_analysis.sources.gather` with every
    check, redaction, sentiment scoring), their :func:`stage_metrics` are computed, and
    :func:`compare_stage_metrics` compares them with ``current`` (this run's stage metrics): "previous"
    is this run, "current" the later period; a change is called only beyond 1.96 standard errors.
    Without a later period (or without ``current``) the result is empty with ``attrs["reason"]``;
    otherwise ``attrs`` has ``later_customers`` and ``later_events``.
    """
    from journey_analysis.errors import JourneyError
    from journey_analysis.sources import gather
    from journey_analysis.sentiment import score_feedback
    from journey_analysis.steps import overview
    from journey_analysis.text import redact_feedback

    folder = config.data.later_period
    if folder is None or current is None:
        out = compare_stage_metrics(pd.DataFrame(), None).astype({"significant": bool})
        out.attrs["reason"] = ("No later period in the configuration (data.later_period): the next run of the same "
                               "configuration is compared with this one in its report." if folder is None else
                               "This run has no stage figures to compare.")
        return out
    folder = Path(folder)
    if not folder.is_dir():
        raise JourneyError("The later period's folder does not exist.", file=folder,
                           expected="a folder with the same data files as this run (events, customers, feedback)",
                           fix="Create it, or remove data.later_period from the configuration.")
    files = {k: _in_folder(getattr(config.data, k), folder) for k in ("events", "customers", "feedback")}
    later = config.model_copy(update={"data": config.data.model_copy(
        update={**files, "observations": None, "later_period": None})})
    g = gather(later)
    lo, hi = config.satisfaction.min, config.satisfaction.max
    feedback, _ = score_feedback(redact_feedback(g.feedback), config.satisfaction.rating_type, (lo, hi))
    metrics = stage_metrics(g.events, feedback, config.stage_names, step=config.step,
                            rating_type=config.satisfaction.rating_type)
    out = compare_stage_metrics(metrics, current)
    facts = overview(g.events, config.step)
    out.attrs.update(later_customers=int(facts["customers"]), later_events=int(facts["events"]))
    return out


def _overall_rows(journey_map: pd.DataFrame | None) -> pd.DataFrame | None:
    if journey_map is None or journey_map.empty or "stage" not in journey_map.columns:
        return None
    jm = journey_map
    for col in ("segment_name", "segment"):
        if col in jm.columns and (jm[col].astype(str) == ALL).any():
            return jm[jm[col].astype(str) == ALL]
    if "segment" in jm.columns:
        return None
    return jm


def check_kpis(kpis, journey_map: pd.DataFrame | None, metrics: pd.DataFrame | None,
               rating_type: str | None = None) -> pd.DataFrame:
    """Each configured KPI (listening post) checked against the run.

    The value is the KPI's ``metric`` column at its ``stage`` in the journey map's "All customers" rows;
    when the map has no such column, the same-named column of :func:`stage_metrics` (``<rating_type>_mean``
    is read as ``satisfaction_mean``). Columns: ``label``, ``stage``, ``metric``, ``value``, ``min``,
    ``max``, ``status`` ("ok", "breach" or "unknown" when the value cannot be found or is missing),
    ``message`` (a sentence for the top of the report).
    """
    rows = []
    overall = _overall_rows(journey_map)
    m = metrics.set_index("stage") if metrics is not None and not metrics.empty else None
    for k in kpis or ():
        k = k if isinstance(k, dict) else k.model_dump()
        metric, stage = k["metric"], k["stage"]
        label = k.get("label") or f"{stage} {metric}"
        value = None
        if overall is not None and metric in overall.columns:
            v = overall.loc[overall["stage"].astype(str) == stage, metric]
            value = v.iloc[0] if len(v) else None
        if value is None and m is not None:
            col = metric
            if metric not in m.columns and rating_type and metric == f"{rating_type}_mean":
                col = "satisfaction_mean"
            if col in m.columns and stage in m.index:
                value = m.at[stage, col]
        value = None if value is None or pd.isna(value) else float(value)
        lo, hi = k.get("min"), k.get("max")
        from journey_analysis.formatting import format_value, number

        from journey_analysis.formatting import label as words

        show = (lambda v, _m=metric: format_value(v, _m))
        what = re.sub(r" \([^)]*\)$", "", words(metric))     # "dwell median", "CSAT": the unit is in the value
        if value is None:
            status, msg = "unknown", f"{label}: no value for {what} at stage {stage} in this run."
        elif (lo is not None and value < lo) or (hi is not None and value > hi):
            limit = lo if lo is not None and value < lo else hi
            bound = f"at least {show(lo)}" if limit is lo else f"at most {show(hi)}"
            if show(value) == show(limit):  # a breach that rounding would hide: say by how much, in percent
                side = "below" if limit is lo else "above"
                gap = f"{number(abs(value - limit) / abs(limit) * 100, 2)}%" if limit else number(abs(value - limit), 2)
                bound += f"; {gap} {side} it"
            status, msg = "breach", f"{label}: {what} at {stage} is {show(value)}, expected {bound}."
        else:
            status, msg = "ok", f"{label}: {what} at {stage} is {show(value)} (within threshold)."
        rows.append({"label": label, "stage": stage, "metric": metric, "value": value, "min": lo, "max": hi,
                     "status": status, "message": msg})
    return pd.DataFrame(rows, columns=["label", "stage", "metric", "value", "min", "max", "status", "message"])


def kpi_metric_names(config) -> list[str]:
    """The metric names a KPI may use in this run: the numeric columns of the journey map and of the
    per-stage metrics (:func:`stage_metrics`), and ``<rating_type>_mean``.

    Found by building both on a probe of one customer passing every configured stage (the columns do not
    depend on the data), so the list is what a run computes."""
    from journey_analysis.journey_map import build_map

    stages = config.stage_names or ["stage"]
    probe = pd.DataFrame({"row_id": np.arange(len(stages), dtype="int64"), "customer_id": "probe",
                          "timestamp": pd.date_range("2024-01-01", periods=len(stages), freq="h", tz="UTC"),
                          "stage": stages, "channel": "web"})
    fb = pd.DataFrame({"feedback_id": ["F1"], "customer_id": ["probe"], "stage": [stages[0]],
                       "rating_type": [config.satisfaction.rating_type], "rating": [config.satisfaction.max],
                       "text": ["fine"], "sentiment": [0.5], "sentiment_status": ["scored"], "stage_source": ["given"]})
    names = set()
    for frame in (build_map(probe, fb, None, config), stage_metrics(probe, fb, stages,
                                                                    rating_type=config.satisfaction.rating_type)):
        names |= {c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])
                  and not pd.api.types.is_bool_dtype(frame[c])}
    names.add(f"{config.satisfaction.rating_type.lower()}_mean")
    return sorted(names - {"stage_order"})


def validate_kpis(config) -> None:
    """Every ``kpis:`` metric is one a run computes (:func:`kpi_metric_names`); else a JourneyError listing them."""
    if not config.kpis:
        return
    valid = kpi_metric_names(config)
    bad = [k.metric for k in config.kpis if k.metric not in valid]
    if bad:
        raise JourneyError(f"KPI metric(s) {', '.join(map(repr, bad))} are not computed by a run "
                           f"(rating_type {config.satisfaction.rating_type!r}).", file=config.path, column="kpis",
                           expected=f"one of: {', '.join(valid)}",
                           fix="Correct `metric:` in kpis: (e.g. satisfaction_mean, dwell_median_h, drop_off).")
