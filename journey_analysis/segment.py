"""Customer segmentation: per-customer features, k-means with k chosen from the data, profiles and names.

This module owns four things:

1. :func:`customer_features`: one numeric row per customer (behaviour, experience, demographics) and a
   report that says, per column, what was done (imputed, indicator added, one-hot levels, rare levels
   grouped, constant or all-missing columns dropped, outcome excluded).
2. :class:`Segmentation` (fit / predict, ``random_state``) and its shortcut :func:`segment_customers`:
   scaling, k-means (``MiniBatchKMeans`` above ``large_n`` rows), ``k="auto"`` chosen by silhouette,
   Calinski-Harabasz and inertia reported per k, stability as adjusted Rand index over bootstrap refits,
   centroids in original units, profiles, readable names.
3. :func:`assign_segments_by_period`: dynamic segments, a transition table between consecutive periods and
   a stability statement.
4. :func:`save` / :func:`load` of a fitted segmentation, and figures with their data twins
   (``plot_k_scores``, ``plot_projection``, ``plot_profiles``, ``plot_sizes`` and ``*_data``).

Design choice: ``customer_features`` returns a plain tuple ``(features, report)``; the features frame is
indexed by ``customer_id`` and holds numeric feature columns plus non-numeric *descriptor* columns (for
example ``worst_stage``) that are never used in distances but are shown in the profiles. The fitted model
is one estimator-like object, :class:`Segmentation`; ``segment_customers(features, ...)`` is
``Segmentation(...).fit(features)``.

scikit-learn, joblib and matplotlib/seaborn are imported inside the functions that use them.
"""
from __future__ import annotations


import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from journey_analysis.engines import dispatch, to_pandas
from journey_analysis.errors import JourneyError
from journey_analysis.formatting import slug as _slug
from journey_analysis.schema import MONEY_COLUMNS

#: Rating scales (min, max) used to normalise ratings to 0-1 (same as ``config.RATING_SCALES``).
RATING_SCALES: dict[str, tuple[float, float]] = {"csat": (1, 5), "stars": (1, 5), "ces": (1, 7), "nps": (0, 10)}

#: A numeric column with more than this share of customers missing gets a ``<col>_missing`` indicator.
MISSING_INDICATOR_SHARE = 0.05
#: Categorical levels held by fewer than this share of customers are grouped into ``"other"``.
RARE_LEVEL_SHARE = 0.01
#: At most this many levels per categorical column are one-hot encoded (the most common); the rest -> other.
MAX_LEVELS = 20
#: Separator between a categorical column and its level in one-hot column names (``plan=premium``).
ONE_HOT_SEP = "="

_SOURCE_ORDER = {"behaviour": 0, "experience": 1, "demographic": 2, "descriptor": 3, "outcome": 4}


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def _cfg(config, dotted: str, default=None):
    """Read ``a.b`` from a RunConfig-like object or a nested dict; ``default`` when absent or None."""
    obj = config
    for part in dotted.split("."):
        if obj is None:
            return default
        obj = obj.get(part) if isinstance(obj, dict) else getattr(obj, part, None)
    return default if obj is None else obj


def _require(frame: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise JourneyError(f"{what} lacks column(s) {missing}", column=missing[0],
                           expected=f"columns {list(columns)}",
                           fix=f"rename the source columns (config data.columns) or pass the right step=; "
                               f"present: {list(frame.columns)[:15]}")


def _varies(s: pd.Series) -> bool:
    """``s.nunique() > 1`` for a numeric or true/false column (missing values left out), from its
    minimum and maximum instead of hashing every value."""
    return bool(s.max() > s.min()) if s.notna().any() else False


def _is_text(s: pd.Series) -> bool:
    return (pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)
            or isinstance(s.dtype, pd.CategoricalDtype))


# --------------------------------------------------------------------------------------------------
# 1. features
# --------------------------------------------------------------------------------------------------
def _customer_codes(ids: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Each row's position in the sorted distinct customer ids (-1 where missing) and those ids
    (``pd.factorize(ids, sort=True)``), computed once: every per-customer aggregate then groups by
    integers, not by text. Rows already in customer order (events are) take one comparison of
    neighbours instead of hashing and sorting."""
    if len(ids) > 1 and pd.api.types.is_string_dtype(ids.dtype) and not ids.hasnans:
        import pyarrow as pa
        import pyarrow.compute as pc
        arr = pa.array(ids.to_numpy(dtype=object)) if not hasattr(ids.array, "_pa_array") \
            else ids.array._pa_array.combine_chunks()
        a, b = arr[1:], arr[:-1]
        if pc.all(pc.greater_equal(a, b)).as_py():
            new = np.r_[True, pc.not_equal(a, b).to_numpy(zero_copy_only=False)]
            codes = np.cumsum(new) - 1
            return codes, pd.Index(ids[new], name="customer_id").astype(ids.dtype)
    codes, uniques = pd.factorize(ids, sort=True)
    return codes, pd.Index(uniques, name="customer_id")


@dispatch(op="customer_behaviour")
def _behaviour(events, step, purchase_stage, support_stage, as_of, notes):
    """Behaviour features per customer from events (vectorised: one factorisation of the customer ids,
    then bincounts and groupbys on integer codes; on Spark:
    :func:`journey_analysis.engines.spark.customer_behaviour`)."""
    _require(events, ["customer_id", "timestamp", step], "events")
    ts = events["timestamp"]
    if not pd.api.types.is_datetime64_any_dtype(ts):
        raise JourneyError("events.timestamp is not a datetime column", column="timestamp",
                           expected="datetime64[ns, UTC]", fix="load events with journey_analysis.gather")
    codes, index = _customer_codes(events["customer_id"])
    keep = codes >= 0  # rows without a customer id are left out (as a groupby on the ids does)
    ev = events if keep.all() else events.loc[keep]
    codes, ts = codes[keep], ev["timestamp"]
    m = len(index)

    def per_customer(series: pd.Series) -> pd.Series:
        return series.set_axis(index) if len(series) == m else series.reindex(range(m)).set_axis(index)

    s_codes, s_uniques = pd.factorize(ev[step])
    n_s = max(len(s_uniques), 1)
    seen = np.zeros(m * n_s, dtype=bool)  # (customer, stage) pairs that occur
    seen[codes[s_codes >= 0].astype(np.int64) * n_s + s_codes[s_codes >= 0]] = True
    out = pd.DataFrame({"n_events": np.bincount(codes, minlength=m).astype(float),
                        "n_stages": seen.reshape(m, n_s).sum(axis=1).astype(float)}, index=index)
    by_customer = ts.groupby(codes, sort=True)
    first_ts, last_ts = per_customer(by_customer.min()), per_customer(by_customer.max())

    stages = set(s_uniques)
    if purchase_stage in stages:
        buy = s_codes == list(s_uniques).index(purchase_stage)
        first_buy = per_customer(ts[buy].groupby(codes[buy], sort=True).min())
        out["time_to_purchase_s"] = (first_buy - first_ts).dt.total_seconds()
    else:
        notes["time_to_purchase_s"] = ("behaviour", "skipped", f"no stage {purchase_stage!r} in the data")
    if support_stage in stages:
        support = s_codes == list(s_uniques).index(support_stage)
        out["support_contacts"] = np.bincount(codes[support], minlength=m).astype(float)
    else:
        notes["support_contacts"] = ("behaviour", "skipped", f"no stage {support_stage!r} in the data")

    if "channel" in ev.columns:
        # blank or missing channels are "unknown"; the text is cleaned once per distinct channel
        c_codes, c_uniques = pd.factorize(ev["channel"])
        names = pd.Series(c_uniques).astype("string").str.strip().replace("", "unknown").tolist() + ["unknown"]
        l_codes, labels = pd.factorize(pd.Series(names), sort=True)
        col = l_codes[np.where(c_codes >= 0, c_codes, len(names) - 1)]
        used = np.flatnonzero(np.bincount(col, minlength=len(labels)))  # channels that occur (sorted names)
        col = np.searchsorted(used, col)
        counts = np.bincount(codes.astype(np.int64) * len(used) + col, minlength=m * len(used))
        counts = counts.reshape(m, len(used)).astype(float)
        shares = pd.DataFrame(counts / counts.sum(axis=1, keepdims=True), index=index,
                              columns=[f"share_channel_{_slug(c)}" for c in np.asarray(labels)[used]])
        shares = shares.T.groupby(level=0).sum().T  # channels that slug to the same name are merged
        out = out.join(shares)
    else:
        notes["share_channel_*"] = ("behaviour", "skipped", "events have no channel column")

    as_of = last_ts.max() if as_of is None else pd.Timestamp(as_of)
    out["recency_days"] = (as_of - last_ts).dt.total_seconds() / 86400.0
    utc = ts.dt.tz_convert("UTC") if ts.dt.tz is not None else ts
    month = (utc.dt.year * 12 + utc.dt.month).to_numpy(dtype=float, na_value=np.nan)
    has = ~np.isnan(month)
    lo = month[has].min() if has.any() else 0.0
    span = int(month[has].max() - lo + 1) if has.any() else 1
    if m * span <= 50_000_000:  # (customer, month) pairs that occur
        seen = np.zeros(m * span, dtype=bool)
        seen[codes[has].astype(np.int64) * span + (month[has] - lo).astype(np.int64)] = True
        n_months = pd.Series(seen.reshape(m, span).sum(axis=1), index=index)
    else:
        n_months = per_customer(pd.Series(month).groupby(codes, sort=True).nunique())
    out["frequency_per_month"] = out["n_events"] / n_months

    money = next((c for c in MONEY_COLUMNS if c in ev.columns and pd.api.types.is_numeric_dtype(ev[c])), None)
    if money is not None:
        out["monetary"] = per_customer(ev[money].groupby(codes, sort=True).sum(min_count=1)).astype(float)
        notes["monetary"] = ("behaviour", "kept", f"sum of events.{money} per customer")
    return out


def _experience(feedback, step, default_rating_type, notes):
    """Experience features (n_feedback, sentiment_mean, rating_<type>_01) and the worst_stage descriptor."""
    fb = feedback.loc[feedback["customer_id"].notna()] if "customer_id" in feedback.columns else feedback.iloc[:0]
    if fb.empty:
        notes["experience"] = ("experience", "skipped", "no feedback with a customer_id")
        return pd.DataFrame(index=pd.Index([], name="customer_id")), None
    codes, index = _customer_codes(fb["customer_id"])  # (grouped by integer codes, not by text)
    m_ids = len(index)

    def per_customer(series: pd.Series) -> pd.Series:
        return series.reindex(range(m_ids)).set_axis(index)

    out = pd.DataFrame({"n_feedback": np.bincount(codes, minlength=m_ids).astype(float)}, index=index)
    worst = None
    if "sentiment" in fb.columns:
        sent = pd.to_numeric(fb["sentiment"], errors="coerce")
        out["sentiment_mean"] = per_customer(sent.groupby(codes, sort=True).mean())
        stage_col = "stage" if "stage" in fb.columns else (step if step in fb.columns else None)
        if stage_col is not None:
            s_codes, s_names = pd.factorize(fb[stage_col], sort=True)  # code order = name order
            ok = (sent.notna().to_numpy() & (s_codes >= 0))
            per = (pd.DataFrame({"c": codes[ok], "stage": s_codes[ok], "s": sent.to_numpy()[ok]})
                   .groupby(["c", "stage"], sort=False)["s"].mean().reset_index()
                   .sort_values(["c", "s", "stage"], kind="mergesort")
                   .drop_duplicates("c"))
            worst = pd.Series(np.asarray(s_names, dtype=object)[per["stage"].to_numpy()],
                              index=index[per["c"].to_numpy()], name="worst_stage", dtype=object)
    if "rating" in fb.columns:
        rating = pd.to_numeric(fb["rating"], errors="coerce")
        rtype = (fb["rating_type"].astype("string").str.strip().str.lower()
                 if "rating_type" in fb.columns else pd.Series(pd.NA, index=fb.index, dtype="string"))
        if default_rating_type:
            rtype = rtype.fillna(str(default_rating_type).lower())
        for rt in sorted(rtype.dropna().unique()):
            if rt not in RATING_SCALES:
                notes[f"rating_{_slug(rt)}_01"] = ("experience", "skipped", f"unknown rating_type {rt!r}")
                continue
            lo, hi = RATING_SCALES[rt]
            m = ((rtype == rt) & rating.notna()).to_numpy(dtype=bool, na_value=False)
            norm = ((rating[m] - lo) / (hi - lo)).clip(0, 1)
            out[f"rating_{rt}_01"] = per_customer(norm.groupby(codes[m], sort=True).mean())
    return out, worst


def _demographics(customers, exclude, notes, levels_ref=None):
    """Numeric columns as they are; text columns one-hot with rare levels grouped into ``other``.

    Text columns whose non-blank values are >= 95 % numbers are parsed as numbers (blanks -> missing).
    Returns (numeric frame, levels dict {column: [levels]}).
    """
    from journey_analysis.outcome import id_like, to_numbers

    cust = customers.set_index("customer_id")
    num, levels = {}, {}
    n = max(len(cust), 1)
    for col in cust.columns:
        if col in exclude:
            continue
        s = cust[col]
        if levels_ref is None:  # (a fitted segmentation's columns are what they are)
            why = id_like(s, col)
            if why:
                notes[col] = ("demographic", "excluded id-like", why + ": never a feature")
                continue
        if pd.api.types.is_bool_dtype(s):
            num[col] = s.astype(float)
            continue
        if pd.api.types.is_datetime64_any_dtype(s) or isinstance(s.dtype, pd.PeriodDtype):
            notes[col] = ("demographic", "skipped datetime", "dates are not used as features")
            continue
        if pd.api.types.is_numeric_dtype(s):
            num[col] = s.astype(float)
            continue
        text = s.astype("string").str.strip()
        blank = text.isna() | (text == "")
        parsed = pd.Series(to_numbers(text.where(~blank)), index=text.index)
        if (levels_ref is None or col not in levels_ref) and (~blank).any() \
                and parsed.notna().sum() >= 0.95 * (~blank).sum():
            num[col] = parsed
            notes[col] = ("demographic", "parsed as numeric",
                          f"{int(blank.sum())} blank, {int((~blank & parsed.isna()).sum())} not a number")
            continue
        text = text.where(~blank, "missing")
        if levels_ref is not None:
            if col not in levels_ref:
                continue
            keep = [lv for lv in levels_ref[col] if lv != "other"]
        else:
            counts = text.value_counts()
            keep = [lv for lv in counts.index[:MAX_LEVELS] if counts[lv] / n >= RARE_LEVEL_SHARE]
        grouped = sorted(set(text.unique()) - set(keep))
        text = text.where(text.isin(keep), "other")
        lv = list(levels_ref[col]) if levels_ref is not None else sorted(text.unique())
        levels[col] = lv
        for level in lv:
            num[f"{col}{ONE_HOT_SEP}{level}"] = (text == level).astype(float)
        detail = f"one-hot levels: {', '.join(map(str, lv))}"
        if grouped:
            detail += f"; grouped into other: {', '.join(map(str, grouped[:10]))}" + (" ..." if len(grouped) > 10 else "")
        notes[col] = ("demographic", "one-hot", detail)
    return pd.DataFrame(num, index=cust.index), levels


def customer_features(events: pd.DataFrame, customers: pd.DataFrame | None = None,
                      feedback: pd.DataFrame | None = None, config=None, step: str | None = None, *,
                      outcome: str | None = None, purchase_stage: str = "purchase",
                      support_stage: str = "support", as_of=None, reference: "Segmentation | None" = None,
                      population: str = "all", behaviour=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row of features per customer, and a report of what was done with every column.

    Inputs follow the data contracts (events, customers, feedback). ``config`` (a ``RunConfig`` or dict)
    gives ``step``, ``outcome``, ``segmentation.features`` / ``.outcome_as_feature`` and the satisfaction
    ``rating_type`` used for feedback rows without one. Customers are the union of ``customers`` and
    ``events`` ids.

    Features (per customer; all floats):

    * behaviour: ``n_events``; ``n_stages`` (distinct steps); ``time_to_purchase_s`` = first event at
      ``purchase_stage`` - first event (missing if never); ``support_contacts`` = events at
      ``support_stage``; ``share_channel_<x>`` = share of the customer's events on channel x;
      ``recency_days`` = (``as_of``, default the last event of the extract) - last event;
      ``frequency_per_month`` = n_events / distinct calendar months (UTC) with an event; ``monetary`` =
      sum of events' revenue/value/amount when present. Customers without events: counts and shares 0,
      the rest missing.
    * experience (feedback linked to a customer): ``n_feedback``; ``sentiment_mean``;
      ``rating_<type>_01`` = mean of (rating - scale min) / (scale max - scale min) per rating_type
      (csat 1-5, stars 1-5, ces 1-7 where high = more effort, nps 0-10). ``worst_stage`` = the stage with
      the lowest mean sentiment (ties: first stage name) is a *descriptor* column: not numeric, never
      used in distances, shown in profiles.
    * demographics: every customers column except ``customer_id`` and the outcome: numbers and booleans
      as they are; text that is >= 95 % numbers is parsed (blanks -> missing); other text is one-hot
      encoded as ``<col>=<level>`` with blanks as level ``missing``, levels held by < 1 % of customers
      (or beyond the 20 most common) grouped into ``other``; dates skipped.

    Missing values (rule): a numeric column missing for every customer is dropped; otherwise missing
    values are set to the column median, and when more than 5 % are missing a 0/1 column
    ``<col>_missing`` is added. Then columns with a single value are dropped. The outcome
    (``outcome`` or ``config.outcome``) is excluded unless ``segmentation.outcome_as_feature``.
    ``segmentation.features`` (names of feature columns, or of source columns such as ``plan`` for all
    its one-hot columns) keeps only those.

    ``population``: ``"all"`` (default) or ``"purchasers"``: only customers with an event at
    ``purchase_stage`` (then ``time_to_purchase_s`` is never missing). On the demo data prospects who
    never buy form their own group that dominates k="auto" (k=2: buyers vs prospects); segmenting
    purchasers recovers the planted segments.

    ``reference``: a fitted :class:`Segmentation`. Then the features are built for *new* customers to
    predict: same one-hot levels (unknown levels -> ``other``), same columns in the same order, missing
    values filled with the fitted medians, nothing dropped.

    Returns ``(features, report)``: ``features`` indexed by ``customer_id`` (sorted); ``report`` one row
    per column with ``column, source, action, n_missing, detail``.
    """
    step = step or _cfg(config, "step", "stage")
    outcome = outcome or _cfg(config, "outcome")
    purchase_stage = _cfg(config, "segmentation.purchase_stage", purchase_stage)
    support_stage = _cfg(config, "segmentation.support_stage", support_stage)
    population = _cfg(config, "segmentation.population", population)
    outcome_as_feature = bool(_cfg(config, "segmentation.outcome_as_feature", False))
    rating_type = _cfg(config, "satisfaction.rating_type")
    notes: dict[str, tuple[str, str, str]] = {}
    sources: dict[str, str] = {}

    customers, feedback = to_pandas(customers), to_pandas(feedback)  # collected when they are Spark frames
    if behaviour is not None:  # (per-customer behaviour frame, notes) computed elsewhere, e.g. on Spark
        beh, beh_notes = behaviour
        beh = beh.copy()
        notes.update(beh_notes)
    else:
        beh = _behaviour(events, step, purchase_stage, support_stage, as_of, notes)
    sources.update({c: "behaviour" for c in beh.columns})
    exp, worst = (_experience(feedback, step, rating_type, notes) if feedback is not None
                  else (pd.DataFrame(index=pd.Index([], name="customer_id")), None))
    sources.update({c: "experience" for c in exp.columns})
    exclude = {"customer_id"}
    for col in _cfg(config, "segmentation.exclude", ()) or ():
        exclude.add(col)
        if customers is not None and col in customers.columns:
            notes[col] = ("outcome", "excluded (segmentation.exclude)",
                          "declared in segmentation.exclude (derived from the outcome): never a feature")
    if outcome and not outcome_as_feature:
        exclude.add(outcome)
        if customers is not None and outcome in customers.columns:
            notes[outcome] = ("outcome", "excluded outcome",
                              "the outcome is never a feature (set segmentation.outcome_as_feature to use it)")
    if customers is not None:
        _require(customers, ["customer_id"], "customers")
        dem, levels = _demographics(customers, exclude, notes,
                                    None if reference is None else reference.levels)
        if dem.index.has_duplicates:
            dup = dem.index[dem.index.duplicated()].unique()
            raise JourneyError("customers has repeated customer_id values", column="customer_id",
                               rows=list(dup[:5]), expected="one row per customer",
                               fix="deduplicate the customers table")
    else:
        dem, levels = pd.DataFrame(index=pd.Index([], name="customer_id")), {}
    sources.update({c: "demographic" for c in dem.columns})

    ids = beh.index.union(dem.index).union(exp.index)
    ids.name = "customer_id"
    raw = pd.concat([beh.reindex(ids), exp.reindex(ids), dem.reindex(ids)], axis=1)
    zero_fill = ["n_events", "n_stages", "support_contacts", "n_feedback"] + \
        [c for c in raw.columns if c.startswith("share_channel_")]
    for c in zero_fill:
        if c in raw.columns:
            raw[c] = raw[c].fillna(0.0)
    if population not in ("all", "purchasers"):
        raise JourneyError(f"unknown population {population!r}", expected="'all' or 'purchasers'")
    if population == "purchasers":
        if "time_to_purchase_s" not in raw.columns:
            raise JourneyError(f"population='purchasers' but no event is at stage {purchase_stage!r}",
                               column=step, expected=f"events at stage {purchase_stage!r}",
                               fix="pass purchase_stage= with the stage name of a purchase, or population='all'")
        raw = raw.loc[raw["time_to_purchase_s"].notna()]
        ids = raw.index
        notes["population"] = ("behaviour", "rows kept", f"{len(ids)} customers with a {purchase_stage!r} event")
    descriptors = pd.DataFrame(index=ids)
    if worst is not None:
        descriptors["worst_stage"] = worst.reindex(ids)

    if reference is not None:
        return _features_like(raw, descriptors, reference)

    rows = []
    n = max(len(raw), 1)
    feats = {}
    for col in raw.columns:
        s = raw[col]
        n_miss = int(s.isna().sum())
        src = sources.get(col, "demographic")
        parent = col.split(ONE_HOT_SEP)[0] if ONE_HOT_SEP in col else None
        if n_miss == len(s):
            rows.append((col, src, "dropped all missing", n_miss, ""))
            continue
        action, detail = "kept", notes.get(col, ("", "", ""))[2]
        if n_miss:
            med = float(s.median())
            s = s.fillna(med)
            action = f"imputed median ({n_miss})"
            detail = (detail + "; " if detail else "") + f"median {med:.6g}"
            if n_miss / n > MISSING_INDICATOR_SHARE:
                feats[col] = s
                ind = raw[col].isna().astype(float)
                rows.append((col, src, action + " + indicator", n_miss, detail))
                if ind.nunique() > 1:
                    feats[f"{col}_missing"] = ind
                    rows.append((f"{col}_missing", src, "added missing indicator", 0,
                                 f"1 where {col} was missing ({n_miss / n:.1%} > {MISSING_INDICATOR_SHARE:.0%})"))
                continue
        if not _varies(s):
            rows.append((col, src, "dropped constant", n_miss, f"single value {float(s.iloc[0]):g}" if len(s) else ""))
            continue
        if parent is not None:
            action, detail = "one-hot", f"1 where {parent} is {col.split(ONE_HOT_SEP, 1)[1]!r}"
        feats[col] = s
        rows.append((col, src, action, n_miss, detail))
    feats, merged_rows = _merge_identical(feats)
    rows = [r for r in rows if r[0] not in merged_rows] + list(merged_rows.values())
    if outcome and customers is not None and outcome in customers.columns and not outcome_as_feature:
        feats, leak_rows = _drop_leakage(feats, customers, outcome, _cfg(config, "outcome_good", False), ids)
        rows = [r for r in rows if r[0] not in leak_rows] + list(leak_rows.values())
    for col, (src, action, detail) in notes.items():
        if col not in raw.columns:
            rows.append((col, src, action, 0, detail))
    features = pd.DataFrame(feats, index=ids)

    selected = _cfg(config, "segmentation.features")
    if selected:
        keep = []
        for name in selected:
            hit = [c for c in features.columns
                   if c == name or c.split(ONE_HOT_SEP)[0] == name or c == f"{name}_missing"]
            if not hit and name not in descriptors.columns:
                raise JourneyError(f"segmentation.features names {name!r}, which is not a feature",
                                   column=name, expected=f"one of {list(features.columns)}",
                                   fix="fix the name in the config (segmentation.features) or set it to null")
            keep += [c for c in hit if c not in keep]
        for c in features.columns:
            if c not in keep:
                rows.append((c, sources.get(c.split(ONE_HOT_SEP)[0], sources.get(c, "")), "not selected", 0,
                             "not in segmentation.features"))
        rows = [r for r in rows if not (r[0] in features.columns and r[0] not in keep and r[2] != "not selected")]
        features = features[keep]
    for c in descriptors.columns:
        features[c] = descriptors[c]
        rows.append((c, "descriptor", "descriptor", int(descriptors[c].isna().sum()),
                     "not numeric: not used in distances, shown in profiles"))
    report = pd.DataFrame(rows, columns=["column", "source", "action", "n_missing", "detail"])
    report["order"] = report["source"].map(_SOURCE_ORDER).fillna(9)
    report = report.sort_values(["order"], kind="mergesort").drop(columns="order").reset_index(drop=True)
    return features, report


def _merge_identical(feats: dict) -> tuple[dict, dict]:
    """One-hot columns with identical values (a level repeated across columns, e.g. "No internet service"
    in seven service columns) become one: the first is kept, the report says which it stands for."""
    onehot = [c for c in feats if ONE_HOT_SEP in c]
    if len(onehot) < 2:
        return feats, {}
    first: dict = {}
    merged: dict[str, list[str]] = {}
    for c in onehot:  # columns, not customers; each hashed once
        key = hash(np.asarray(feats[c], dtype=float).tobytes())
        if key in first and np.array_equal(np.asarray(feats[first[key]]), np.asarray(feats[c])):
            merged.setdefault(first[key], []).append(c)
        else:
            first.setdefault(key, c)
    rows = {}
    for keep, others in merged.items():
        for c in others:
            feats.pop(c)
            rows[c] = (c, "demographic", "merged", 0, f"identical to {keep} (the same customers): one feature")
        rows[keep] = (keep, "demographic", "one-hot, merged",
                      0, f"1 where {keep.split(ONE_HOT_SEP)[0]} is {keep.split(ONE_HOT_SEP, 1)[1]!r}; stands for "
                      + ", ".join(others))
    return feats, rows


def _drop_leakage(feats: dict, customers: pd.DataFrame, outcome: str, good, ids) -> tuple[dict, dict]:
    """Features that alone predict the outcome almost perfectly (AUC >= ``outcome.LEAKAGE_AUC``, or <= 1 -
    it) are the outcome in disguise: dropped and reported as leakage."""
    from journey_analysis.outcome import LEAKAGE_AUC, outcome_is_bad
    from journey_analysis.outcome import auc as _auc

    y = outcome_is_bad(customers[outcome], good)
    y.index = customers["customer_id"].astype(str)
    y = y[~y.index.duplicated(keep="last")].reindex(ids.astype(str))
    ok = y.notna().to_numpy()
    rows = {}
    if ok.sum() < 10 or y[ok].nunique() < 2:
        return feats, rows
    yy = y.to_numpy()[ok]
    for c in list(feats):  # features (tens), each one rank-based AUC
        auc = _auc(np.asarray(feats[c], dtype=float)[ok], yy)
        if max(auc, 1 - auc) >= LEAKAGE_AUC:
            feats.pop(c)
            rows[c] = (c, "outcome", "dropped leakage", 0,
                       f"alone it predicts {outcome} almost perfectly (AUC {max(auc, 1 - auc):.2f}): the outcome in disguise")
    return feats, rows


def segment_outcomes(segmentation: "Segmentation", customers: pd.DataFrame | None, config=None,
                     outcome: str | None = None, good=None) -> pd.DataFrame:
    """Each segment's size and outcome rate: segment, name, customers, share, outcome_n (customers with an
    outcome), outcome_rate (share with the bad outcome, i.e. not ``outcome_good``; NaN without an outcome),
    and the overall rate as ``attrs["overall_rate"]``."""
    from journey_analysis.outcome import outcome_is_bad

    lab = segmentation.labels
    names = getattr(segmentation, "names", {}) or {}
    out = pd.DataFrame({"segment": range(segmentation.k)})
    out["name"] = out["segment"].map(lambda k: names.get(k, f"Segment {k}"))
    cnt = lab.value_counts()
    out["customers"] = out["segment"].map(cnt).fillna(0).astype(int)
    out["share"] = out["customers"] / max(len(lab), 1)
    outcome = outcome or _cfg(config, "outcome")
    good = _cfg(config, "outcome_good", False) if good is None else good
    out["outcome_n"], out["outcome_rate"] = 0, np.nan
    out.attrs["overall_rate"] = None
    if outcome and customers is not None and outcome in customers.columns:
        y = outcome_is_bad(customers[outcome], good)
        y.index = customers["customer_id"].astype(str)
        y = y[~y.index.duplicated(keep="last")].reindex(lab.index.astype(str))
        g = pd.DataFrame({"segment": lab.to_numpy(), "y": y.to_numpy()}).groupby("segment")["y"]
        out["outcome_n"] = out["segment"].map(g.count()).fillna(0).astype(int)
        out["outcome_rate"] = out["segment"].map(g.mean())
        out.attrs["overall_rate"] = float(y.mean()) if y.notna().any() else None
    out.attrs["outcome"] = outcome
    return out


def _features_like(raw: pd.DataFrame, descriptors: pd.DataFrame, ref: "Segmentation"):
    """Build exactly ``ref.feature_names`` from raw features (reference mode of customer_features)."""
    out = {}
    n_filled = {}
    for name in ref.feature_names:
        if name in raw.columns:
            s = raw[name]
        elif name.endswith("_missing") and name[:-8] in raw.columns:
            s = raw[name[:-8]].isna().astype(float)
        else:
            s = pd.Series(np.nan, index=raw.index)
        n_filled[name] = int(s.isna().sum())
        out[name] = s.fillna(ref.fill_values[name])
    features = pd.DataFrame(out, index=raw.index)
    for c in ref.descriptor_names:
        features[c] = descriptors[c] if c in descriptors.columns else np.nan
    report = pd.DataFrame({"column": list(n_filled), "source": "reference",
                           "action": ["filled with fitted median" if v else "kept" for v in n_filled.values()],
                           "n_missing": list(n_filled.values()), "detail": ""})
    return features, report


# --------------------------------------------------------------------------------------------------
# 2. segmentation
# --------------------------------------------------------------------------------------------------
_WORDS = {
    "age": ("older", "younger"),
    "tenure_months": ("long-standing", "new"),
    "monthly_value": ("high value", "low value"),
    "monetary": ("high spend", "low spend"),
    "revenue": ("high value", "low value"),
    "n_events": ("many steps", "few steps"),
    "n_stages": ("many stages", "few stages"),
    "support_contacts": ("support-heavy", "self-service"),
    "recency_days": ("lapsed", "recent"),
    "frequency_per_month": ("frequent", "occasional"),
    "time_to_purchase_s": ("slow to buy", "quick to buy"),
    "sentiment_mean": ("happy", "unhappy"),
    "n_feedback": ("vocal", "quiet"),
    "rating_ces_01": ("high effort", "low effort"),
}


def _word(feature: str, sign: int) -> str | None:
    """A short readable word for a feature being above (sign>0) or below (sign<0) the population."""
    feature = str(feature)
    if feature in _WORDS:
        return _WORDS[feature][0 if sign > 0 else 1]
    if feature.startswith("share_channel_"):
        return feature[len("share_channel_"):].replace("_", " ") if sign > 0 else None
    if ONE_HOT_SEP in feature:
        col, level = feature.split(ONE_HOT_SEP, 1)
        if sign < 0:
            return None
        return f"{col.replace('_', ' ')} {level}" if level in ("other", "missing") or level.isdigit() else level
    if feature.endswith("_missing"):
        base = feature[:-8]
        if base == "time_to_purchase_s":
            return "no purchase" if sign > 0 else "bought"
        return f"no {base.replace('_', ' ')}" if sign > 0 else None
    if feature.startswith("rating_"):
        return "satisfied" if sign > 0 else "dissatisfied"
    return f"{'high' if sign > 0 else 'low'} {feature.replace('_', ' ')}"


def _names_from(diff: pd.DataFrame, n_words: int = 3, min_abs: float = 0.3) -> dict[int, str]:
    """Readable names from the largest standardized differences; made unique by adding words."""
    ranked = {}
    for seg, row in diff.iterrows():  # one row per segment (k <= a few dozen)
        order = row.abs().sort_values(ascending=False, kind="mergesort")
        words = []
        for feat in order.index:
            if abs(row[feat]) < min_abs:
                break
            w = _word(feat, int(np.sign(row[feat])))
            if w and w not in words:
                words.append(w)
        ranked[seg] = words or ["typical"]
    names = {seg: ", ".join(w[:n_words]) for seg, w in ranked.items()}
    extra = n_words
    while len(set(names.values())) < len(names) and extra < 8:
        extra += 1
        names = {seg: ", ".join(w[:extra]) for seg, w in ranked.items()}
    seen: dict[str, int] = {}
    for seg in list(names):
        base = names[seg]
        seen[base] = seen.get(base, 0) + 1
        if seen[base] > 1:
            names[seg] = f"{base} ({seen[base]})"
    return names


class _SampledKMeans:
    """KMeans (Lloyd) fitted on a seeded sample of rows, then every row assigned to its nearest centre;
    ``inertia_`` is over all rows. Used above ``large_n`` rows when ``large_algorithm="sample"``."""

    def __init__(self, n_clusters, n_init, random_state, fit_rows):
        self.n_clusters, self.n_init, self.random_state, self.fit_rows = n_clusters, n_init, random_state, fit_rows

    def fit(self, X):
        from sklearn.cluster import KMeans
        idx = np.sort(np.random.default_rng(self.random_state).choice(len(X), self.fit_rows, replace=False))
        self._km = KMeans(n_clusters=self.n_clusters, n_init=self.n_init, random_state=self.random_state,
                          algorithm="elkan").fit(X[idx])
        self.cluster_centers_ = self._km.cluster_centers_
        self.labels_ = self._km.predict(X)
        self.inertia_ = -float(self._km.score(X))
        return self

    def predict(self, X):
        return self._km.predict(X)


def _kmeans(k, n, random_state, n_init, large_n, batch_size, large_algorithm="sample", fit_rows=100_000):
    from sklearn.cluster import KMeans, MiniBatchKMeans
    if n > large_n and large_algorithm == "minibatch":
        return MiniBatchKMeans(n_clusters=k, n_init=n_init, random_state=random_state, batch_size=batch_size,
                               max_no_improvement=10)
    if n > large_n:
        return _SampledKMeans(k, n_init, random_state, min(n, fit_rows))
    # Elkan's exact bounds give the same iterations (same centres, labels and inertia) as Lloyd, in
    # about 0.7x the time on customer features (measured at 91,345 x 41)
    return KMeans(n_clusters=k, n_init=n_init, random_state=random_state, algorithm="elkan")


class Segmentation:
    """k-means customer segments with k chosen from the data (estimator-like: ``fit`` / ``predict``).

    Parameters: ``k`` ("auto" or an int); ``k_range`` (inclusive (min, max) tried when auto);
    ``random_state``; ``names`` (dict segment -> name, or list, overriding generated names);
    ``sample_size`` (rows used for the silhouette, seeded, when there are more); ``n_init`` (k-means
    restarts; default 10 up to 20,000 rows, else 3; when not given and above 20,000 rows the k search
    makes one k-means++ start per k, as scikit-learn's ``n_init="auto"``, and the chosen k is refitted
    with the 3 starts: the same fit, labels and scores at that k as a search with 3 starts per k, in a
    third of the search's time); ``large_n`` and ``large_algorithm``: above
    ``large_n`` rows, ``"sample"`` (default) fits KMeans on a seeded ``fit_sample_size``-row sample and
    assigns every row to its nearest centre (inertia and Calinski-Harabasz still on all rows), while
    ``"minibatch"`` uses MiniBatchKMeans with ``batch_size`` on all rows. Measured on 1 M x 30 on a loaded
    2-core machine, MiniBatchKMeans took 40-53 s wall per k against 3-7 s for the sampled KMeans at the
    same inertia (MiniBatchKMeans' many small OpenMP steps suffer from shared cores); ``n_stability`` (bootstrap refits for the ARI);
    ``log_transform`` ("auto": log1p for numeric columns that are >= 0, have a maximum above 1, more
    than two values and skewness > 1, i.e. counts and money but not shares or 0/1 columns; or False).

    Method: numeric feature columns (non-numeric descriptor columns are kept for the profiles only) ->
    log1p where chosen -> standardised with the fitted mean and sd (ddof=0) -> k-means per k (Elkan's
    algorithm: the same result as Lloyd's, faster on these data). For each k:
    ``silhouette`` (Euclidean, on a seeded sample of ``sample_size`` rows when larger), ``calinski_harabasz``
    (all rows), ``inertia`` (all rows, scaled space), ``seconds`` (wall) and ``cpu_seconds`` (CPU time of the
    fit's thread; the k are fitted side by side on the cores, each fit on one thread, so that the result does
    not depend on the number of cores; the silhouettes of all k come from one pass over the distances,
    their time shared equally among the k).
    ``k="auto"`` takes the largest silhouette (ties: smaller k). Segments are numbered by size, 0 = largest.

    Attributes after ``fit``: ``labels`` (Series by customer_id, name "segment"), ``k``, ``scores``
    (DataFrame indexed by k), ``centroids`` (cluster centres mapped back to original units: inverse
    scaling then expm1 where log1p was used), ``differences`` (segments x features: mean of the
    standardised feature in the segment, i.e. (segment mean - population mean) / population sd on the
    transformed scale), ``profiles`` (per segment: name, size, share, top_features, descriptor modes),
    ``names`` (dict), ``stability`` (ARI per bootstrap refit), ``stability_ari`` (their mean),
    ``feature_names``, ``descriptor_names``, ``transforms``, ``fill_values``, ``levels``, ``algorithm``.

    Stability: each refit draws a bootstrap sample (with replacement; at most 50,000 rows) with seed
    ``random_state + 1 + i``, fits the same k with that seed, predicts the evaluation rows (all rows, or a
    seeded 50,000 when larger) and compares with the fitted labels by adjusted Rand index.
    """

    def __init__(self, k="auto", k_range=(2, 8), random_state: int = 0, names=None, sample_size: int = 10_000,
                 n_init: int | None = None, large_n: int = 200_000, batch_size: int = 8192,
                 n_stability: int = 3, log_transform="auto", large_algorithm: str = "sample",
                 fit_sample_size: int = 100_000):
        if large_algorithm not in ("sample", "minibatch"):
            raise JourneyError(f"unknown large_algorithm {large_algorithm!r}", expected="'sample' or 'minibatch'")
        self.k_param, self.k_range, self.random_state = k, tuple(k_range), random_state
        self.names_param, self.sample_size, self.n_init = names, sample_size, n_init
        self.large_n, self.batch_size, self.n_stability = large_n, batch_size, n_stability
        self.log_transform = log_transform
        self.large_algorithm, self.fit_sample_size = large_algorithm, fit_sample_size

    # -- preparation -------------------------------------------------------------------------------
    def _numeric(self, features: pd.DataFrame) -> pd.DataFrame:
        num = [c for c in features.columns if pd.api.types.is_numeric_dtype(features[c])
               or pd.api.types.is_bool_dtype(features[c])]
        return features[num]

    def _transform(self, features: pd.DataFrame) -> np.ndarray:
        X = np.array(self._align(features), dtype=np.float64, copy=True)
        if self._log_idx.size:
            X[:, self._log_idx] = np.log1p(np.clip(X[:, self._log_idx], 0, None))
        X -= self._mean
        X /= self._sd
        return X

    def _align(self, features: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.feature_names if c not in features.columns]
        X = features.reindex(columns=self.feature_names)
        if missing or X.isna().any().any():
            X = X.fillna(pd.Series(self.fill_values))
        return X.astype(float)

    # -- fit ---------------------------------------------------------------------------------------
    def fit(self, features: pd.DataFrame) -> "Segmentation":
        """Fit on ``features`` (rows = customers, index = customer_id). Returns self."""

        if not isinstance(features, pd.DataFrame) or features.empty:
            raise JourneyError("segmentation needs a non-empty features DataFrame",
                               expected="customer_features(...)[0]", fix="build features with customer_features")
        num = self._numeric(features)
        self.descriptor_names = [c for c in features.columns if c not in num.columns]
        if num.shape[1] == 0:
            raise JourneyError("no numeric feature columns to segment on", expected="numeric columns",
                               fix="check segmentation.features in the config")
        const = [c for c in num.columns if not _varies(num[c])]
        num = num.drop(columns=const)
        self.dropped_constant = const
        n = len(num)
        k_lo, k_hi = self.k_range
        ks = list(range(k_lo, k_hi + 1)) if self.k_param == "auto" else [int(self.k_param)]
        if min(ks) < 2 or max(ks) >= n:
            raise JourneyError(f"cannot make {max(ks)} segments from {n} customers", expected="2 <= k < customers",
                               fix="lower k / k_max or give more customers")
        self.feature_names = list(num.columns)
        self.fill_values = num.median().fillna(0.0).to_dict()
        self.levels = {}
        for c in self.feature_names:
            if isinstance(c, str) and ONE_HOT_SEP in c:
                col, level = c.split(ONE_HOT_SEP, 1)
                self.levels.setdefault(col, []).append(level)

        X0 = np.array(num.fillna(pd.Series(self.fill_values)), dtype=np.float64, copy=True)
        log_cols = []
        if self.log_transform == "auto":
            mins, maxs = X0.min(axis=0), X0.max(axis=0)
            skew = pd.DataFrame(X0[: min(n, 200_000)]).skew().to_numpy()
            nun = num.iloc[: min(n, 200_000)].nunique().to_numpy()
            log_cols = [i for i in range(X0.shape[1])
                        if mins[i] >= 0 and maxs[i] > 1 and nun[i] > 2 and skew[i] > 1]
        self._log_idx = np.array(log_cols, dtype=int)
        if log_cols:
            X0[:, self._log_idx] = np.log1p(X0[:, self._log_idx])
        self._mean = X0.mean(axis=0)
        sd = X0.std(axis=0)
        self._sd = np.where(sd > 0, sd, 1.0)
        X0 -= self._mean
        X0 /= self._sd
        X = X0
        self.transforms = pd.DataFrame({"feature": self.feature_names,
                                        "log1p": [i in log_cols for i in range(len(self.feature_names))],
                                        "mean": self._mean, "sd": self._sd})

        n_init = self.n_init or (10 if n <= 20_000 else 3)
        self._n_init_used = n_init
        # the k search: above 20,000 rows (n_init not given) one k-means++ start per k (scikit-learn's
        # n_init="auto"); the chosen k is then refitted with n_init starts (see _fit_scaled)
        self._search_n_init = n_init if (self.n_init or n <= 20_000 or len(ks) == 1) else 1
        self.algorithm = ("KMeans" if n <= self.large_n else "MiniBatchKMeans" if self.large_algorithm == "minibatch"
                          else f"KMeans on a seeded {min(n, self.fit_sample_size):,}-row sample, all rows assigned")
        import sklearn.cluster  # noqa: F401  (loads OpenMP before the thread limit below, so it applies)
        import sklearn.metrics  # noqa: F401
        from threadpoolctl import threadpool_limits
        # every k-means fit on one thread (OpenMP start-up and spin-waits cost more than the work on
        # shared cores, and the result does not depend on the number of cores); independent fits run side
        # by side (_side_by_side)
        with threadpool_limits(limits=1):
            self._fit_scaled(X, features, ks, n, n_init)
        return self

    def _fit_scaled(self, X, features, ks, n, n_init):
        from sklearn.metrics import adjusted_rand_score
        rng = np.random.default_rng(self.random_state)
        sil_idx = np.sort(rng.choice(n, self.sample_size, replace=False)) if n > self.sample_size else None
        ev_idx = np.sort(rng.choice(n, 50_000, replace=False)) if n > 50_000 else np.arange(n)  # stability
        Xs = X if sil_idx is None else X[sil_idx]
        total_ss = float(((X - X.mean(axis=0)) ** 2).sum())

        def fit_k(k, starts):
            t0, c0 = time.perf_counter(), time.thread_time()
            model = _kmeans(k, n, self.random_state, starts, self.large_n, self.batch_size,
                            self.large_algorithm, self.fit_sample_size).fit(X)
            lab = model.labels_
            ch = _calinski_harabasz(X, lab, total_ss) if len(np.unique(lab)) > 1 else np.nan
            return model, [k, np.nan, float(ch), float(model.inertia_), time.perf_counter() - t0,
                           time.thread_time() - c0]

        def add_silhouettes(rows, labelings):
            # silhouettes of several labelings from one pass over the pairwise distances of the (sampled)
            # rows, on every core (the same values as on one); its time is shared equally among them
            from threadpoolctl import threadpool_limits
            t0, c0 = time.perf_counter(), time.process_time()
            with threadpool_limits(limits=os.cpu_count() or 1, user_api="blas"):
                sils = _silhouettes(Xs, [lab if sil_idx is None else lab[sil_idx] for lab in labelings])
            wall, cpu = (time.perf_counter() - t0) / len(rows), (time.process_time() - c0) / len(rows)
            for row, sil in zip(rows, sils):
                row[1], row[4], row[5] = float(sil), row[4] + wall, row[5] + cpu

        # the k search: one fit per k, side by side on the cores (each fit on one thread, so its result
        # does not depend on how many cores there are)
        fits = _side_by_side(lambda k: fit_k(k, self._search_n_init), ks)
        models = {k: model for k, (model, _) in zip(ks, fits)}
        rows = [row for _, row in fits]
        add_silhouettes(rows, [models[k].labels_ for k in ks])
        scores = pd.DataFrame(rows, columns=["k", "silhouette", "calinski_harabasz", "inertia", "seconds",
                                            "cpu_seconds"])
        best = int(scores.sort_values(["silhouette", "k"], ascending=[False, True], kind="mergesort")["k"].iloc[0]) \
            if self.k_param == "auto" else ks[0]

        # the chosen k refitted with n_init starts (when the search made fewer) and the stability refits:
        # each bootstrap sample (with replacement; at most 50,000 rows) is fitted with the same k
        m = min(n, 50_000)

        def stability_fit(i):
            seed = self.random_state + 1 + i
            boot = np.random.default_rng(seed).choice(n, m, replace=True)
            return seed, _kmeans(best, m, seed, n_init, self.large_n, self.batch_size).fit(X[boot])

        tasks = ([("refit", None)] if self._search_n_init != n_init else []) + \
            [("stability", i) for i in range(self.n_stability)]
        done = _side_by_side(lambda t: fit_k(best, n_init) if t[0] == "refit" else stability_fit(t[1]), tasks)
        if tasks and tasks[0][0] == "refit":
            # (the same fit as a search with n_init starts per k); its row of scores is the refit's
            # (silhouette recomputed only when its labels changed)
            search = models[best]
            models[best], row = done.pop(0)
            i = ks.index(best)
            row[4] += rows[i][4]
            row[5] += rows[i][5]
            if np.array_equal(search.labels_, models[best].labels_):
                row[1] = rows[i][1]
            else:
                add_silhouettes([row], [models[best].labels_])
            scores.iloc[i, :] = row
        scores["chosen"] = scores["k"] == best
        self.scores = scores.set_index("k")
        self.k = best
        model = models[best]

        # number segments by size (0 = largest; ties by the original cluster number)
        counts = np.bincount(model.labels_, minlength=best)
        order = np.lexsort((np.arange(best), -counts))
        remap = np.empty(best, dtype=int)
        remap[order] = np.arange(best)
        self._model, self._remap = model, remap
        labels = remap[model.labels_]
        self.labels = pd.Series(labels, index=features.index, name="segment")

        # stability: the bootstrap refits against the fitted labels on the evaluation rows
        stab = [(i, seed, m, float(adjusted_rand_score(labels[ev_idx], refit.predict(X[ev_idx]))))
                for i, (seed, refit) in enumerate(done)]
        self.stability = pd.DataFrame(stab, columns=["run", "seed", "sample_rows", "ari"])
        self.stability_ari = float(self.stability["ari"].mean()) if stab else float("nan")

        # centroids (original units), differences, profiles, names
        centers = model.cluster_centers_[order] * self._sd + self._mean
        if self._log_idx.size:
            centers[:, self._log_idx] = np.expm1(centers[:, self._log_idx])
        self.centroids = pd.DataFrame(centers, columns=self.feature_names,
                                      index=pd.Index(range(best), name="segment"))
        sums = np.zeros((best, X.shape[1]))
        np.add.at(sums, labels, X)
        cnt = np.bincount(labels, minlength=best)
        self.differences = pd.DataFrame(sums / cnt[:, None], columns=self.feature_names,
                                        index=pd.Index(range(best), name="segment"))
        names = _names_from(self.differences)
        override = self.names_param or {}
        if isinstance(override, (list, tuple)):
            override = dict(enumerate(override))
        for key, val in dict(override).items():
            if int(key) in names and val:
                names[int(key)] = str(val)
        self.names = names
        prof = pd.DataFrame({"name": pd.Series(names), "size": cnt, "share": cnt / n},
                            index=pd.Index(range(best), name="segment"))
        top = []
        for seg in range(best):  # k rows, not customers
            row = self.differences.loc[seg]
            idx = row.abs().sort_values(ascending=False, kind="mergesort").index[:5]
            top.append("; ".join(f"{f} {row[f]:+.2f} sd" for f in idx))
        prof["top_features"] = top
        for c in self.descriptor_names:
            d = pd.DataFrame({"segment": labels, "v": features[c].to_numpy()}).dropna()
            if len(d):
                vc = d.groupby(["segment", "v"]).size().rename("n").reset_index() \
                    .sort_values(["segment", "n", "v"], ascending=[True, False, True], kind="mergesort") \
                    .drop_duplicates("segment").set_index("segment")
                prof[f"{c}_most_common"] = vc["v"]
                prof[f"{c}_share"] = vc["n"] / prof["size"]
        self.profiles = prof

    # -- predict -----------------------------------------------------------------------------------
    def predict(self, features: pd.DataFrame) -> pd.Series:
        """Segment of each row of ``features`` (columns aligned by name; absent or missing values take the
        fitted median; build new customers' features with ``customer_features(..., reference=self)`` so
        one-hot levels match). Returns a Series named "segment" with the same index."""
        X = self._transform(features)
        return pd.Series(self._remap[self._model.predict(X)], index=features.index, name="segment")

    def transform_scaled(self, features: pd.DataFrame) -> np.ndarray:
        """Features in the fitted scaled space (log1p where chosen, standardised), rows as given."""
        return self._transform(features)

    def __repr__(self) -> str:
        k = getattr(self, "k", None)
        return f"Segmentation(k={k if k is not None else self.k_param!r}, random_state={self.random_state})"


def _side_by_side(fn, items: list) -> list:
    """``[fn(item) for item in items]`` on up to ``os.cpu_count()`` threads, each k-means fit on one
    OpenMP and one BLAS thread (scikit-learn's k-means loops release the GIL): every result is what one
    thread gives, whatever the number of cores, in the order of ``items``."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    workers = min(len(items), os.cpu_count() or 1)
    if workers <= 1:
        with threadpool_limits(limits=1):
            return [fn(item) for item in items]

    def one(item):
        with threadpool_limits(limits=1, user_api="openmp"):  # (the OpenMP setting is per thread)
            return fn(item)

    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, items))


def _calinski_harabasz(X: np.ndarray, labels: np.ndarray, total_ss: float | None = None) -> float:
    """``sklearn.metrics.calinski_harabasz_score(X, labels)`` (equal to rounding, about 1e-13): the
    cluster means from one matrix product, the within-cluster dispersion as the total sum of squares
    about the mean (``total_ss``, computed once for every k when given) minus the between-cluster one."""
    uniq, codes = np.unique(labels, return_inverse=True)
    n, m = len(X), len(uniq)
    counts = np.bincount(codes, minlength=m)
    onehot = np.zeros((n, m))
    onehot[np.arange(n), codes] = 1.0
    mean = X.mean(axis=0)
    means = (onehot.T @ X) / counts[:, None]
    extra = float((counts * ((means - mean) ** 2).sum(axis=1)).sum())
    if total_ss is None:
        total_ss = float(((X - mean) ** 2).sum())
    intra = max(total_ss - extra, 0.0)
    return 1.0 if intra == 0.0 else extra * (n - m) / (intra * (m - 1.0))


def _silhouettes(X: np.ndarray, labelings: list[np.ndarray]) -> list[float]:
    """``sklearn.metrics.silhouette_score(X, labels)`` for several labelings of the same rows (NaN for a
    labeling with one cluster), the Euclidean distances computed once in chunks (sklearn's
    ``pairwise_distances_chunked``) instead of once per labeling; per-cluster sums as a matrix product."""
    from sklearn.metrics import pairwise_distances_chunked

    n = len(X)
    enc = []
    for lab in labelings:
        _, codes = np.unique(lab, return_inverse=True)
        freqs = np.bincount(codes)
        enc.append((codes, freqs) if 1 < len(freqs) < n else None)
    live = [e for e in enc if e is not None]
    if not live:
        return [float("nan")] * len(labelings)
    # every labeling's one-hot columns side by side: one product per chunk of distances for all of them
    offsets = np.cumsum([0] + [len(freqs) for _, freqs in live])
    onehot = np.zeros((n, offsets[-1]))
    for (codes, _), off in zip(live, offsets):
        onehot[np.arange(n), off + codes] = 1.0

    def reduce(D, start):
        out = []
        rows = np.arange(len(D))
        sums = D @ onehot  # distance sums from each row to each cluster of every labeling
        for (codes, freqs), off, end in zip(live, offsets[:-1], offsets[1:]):
            dist = sums[:, off:end]
            own = codes[start:start + len(D)]
            intra = dist[rows, own]
            dist[rows, own] = np.inf
            out += [intra, (dist / freqs).min(axis=1)]
        return tuple(out)

    parts = list(zip(*pairwise_distances_chunked(X, reduce_func=reduce, working_memory=256)))
    res = []
    for i, (codes, freqs) in enumerate(live):
        intra = np.concatenate(parts[2 * i]) / (freqs - 1).take(codes, mode="clip")
        inter = np.concatenate(parts[2 * i + 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            s = (inter - intra) / np.maximum(intra, inter)
        res.append(float(np.mean(np.nan_to_num(s))))
    scores = iter(res)
    return [next(scores) if e is not None else float("nan") for e in enc]


def segment_customers(features: pd.DataFrame, k="auto", k_range=(2, 8), random_state: int = 0, names=None,
                      sample_size: int = 10_000, config=None, **kwargs) -> Segmentation:
    """Fit a :class:`Segmentation` on ``features``; ``config.segmentation`` (k, k_min, k_max, names,
    random_state) overrides the defaults when given. Returns the fitted object."""
    if config is not None:
        k = _cfg(config, "segmentation.k", k)
        k_range = (_cfg(config, "segmentation.k_min", k_range[0]), _cfg(config, "segmentation.k_max", k_range[1]))
        random_state = _cfg(config, "segmentation.random_state", random_state)
        names = names or _cfg(config, "segmentation.names") or None
    return Segmentation(k=k, k_range=k_range, random_state=random_state, names=names,
                        sample_size=sample_size, **kwargs).fit(features)


#: Below these, :func:`try_segment_customers` skips segmentation (one map for all customers).
MIN_SEGMENT_FEATURES = 2
MIN_SEGMENT_CUSTOMERS = 20


def try_segment_customers(features: pd.DataFrame, config=None, min_features: int = MIN_SEGMENT_FEATURES,
                          min_customers: int = MIN_SEGMENT_CUSTOMERS, **kwargs) -> tuple[Segmentation | None, str | None]:
    """:func:`segment_customers` when the data allow it, else a plain reason instead of an error.

    Skipped (returns ``(None, reason)``) when fewer than ``min_features`` numeric feature columns vary
    between customers ("Segmentation skipped: too few features ..."), when there are fewer than
    ``min_customers`` customers, or when the fit itself refuses the data (its message is the reason).
    Otherwise ``(fitted Segmentation, None)``. A run without segments maps all customers as one group.
    """
    from journey_analysis.errors import JourneyError

    n = 0 if features is None else len(features)
    if n < min_customers:
        return None, (f"Segmentation skipped: too few customers ({n:,}; at least {min_customers} needed): "
                      "one map for all customers.")
    num = features.select_dtypes(include=["number", "bool"])
    usable = [c for c in num.columns if _varies(num[c])]
    if len(usable) < min_features:
        return None, (f"Segmentation skipped: too few features ({len(usable)} that vary between customers; "
                      f"at least {min_features} needed): one map for all customers.")
    try:
        return segment_customers(features, config=config, **kwargs), None
    except JourneyError as exc:
        return None, f"Segmentation skipped: {exc.args[0] if exc.args else exc}: one map for all customers."


# --------------------------------------------------------------------------------------------------
# 3. dynamic segments
# --------------------------------------------------------------------------------------------------
@dataclass
class DynamicSegments:
    """Segments per period: ``assignments`` (customer_id, period, segment, name), ``transitions``
    (from_segment, to_segment, from_name, to_name, customers, share; summed over consecutive period pairs,
    share = customers / customers in from_segment that are also active next period),
    ``transitions_by_period`` (same with period_from, period_to), ``stay`` (per segment: share staying)
    and ``statement`` (sentences)."""
    assignments: pd.DataFrame
    transitions: pd.DataFrame
    transitions_by_period: pd.DataFrame
    stay: pd.DataFrame
    statement: str


def assign_segments_by_period(events: pd.DataFrame, customers: pd.DataFrame | None,
                              feedback: pd.DataFrame | None, segmentation: Segmentation, period: str = "M",
                              config=None, step: str | None = None, window: str = "cumulative",
                              stable_share: float = 0.8, **feature_kwargs) -> DynamicSegments:
    """Assign customers to segments at the end of every period and count how they move.

    ``period``: a pandas period alias on UTC time ("M", "Q", "W"...). ``window``:

    * ``"cumulative"`` (default): features from every event and feedback up to the period's end, i.e. the
      segmentation re-run as of that date; every customer with an event so far is assigned. The last
      period reproduces ``segmentation.predict`` on the full data.
    * ``"period"``: features from that period's events and feedback only; customers active in the period
      are assigned. Counts are then per period, so they are lower than in a model fitted on the whole
      history: use it with a segmentation fitted on per-period features.

    Recency is measured to the period's end (the last event of the extract for the last period; feedback
    without a timestamp counts in every cumulative window); demographics are unchanged. Moves are counted between
    consecutive periods for customers assigned in both. A segment is called stable when at least
    ``stable_share`` of its customers stay in it."""
    if window not in ("cumulative", "period"):
        raise JourneyError(f"unknown window {window!r}", expected="'cumulative' or 'period'")
    step = step or _cfg(config, "step", "stage")
    _require(events, ["customer_id", "timestamp"], "events")
    ts = events["timestamp"]
    naive = ts.dt.tz_convert("UTC").dt.tz_localize(None) if ts.dt.tz is not None else ts
    per = naive.dt.to_period(period)
    fb_per = None
    if feedback is not None and "timestamp" in feedback.columns:
        fts = feedback["timestamp"]
        fnaive = fts.dt.tz_convert("UTC").dt.tz_localize(None) if fts.dt.tz is not None else fts
        fb_per = fnaive.dt.to_period(period)
    parts = []
    for p in sorted(per.dropna().unique()):  # one iteration per period, not per customer
        if window == "period":
            ev = events.loc[per == p]
            fb = feedback.loc[fb_per == p] if fb_per is not None else None
        else:
            ev = events.loc[per <= p]
            fb = feedback.loc[fb_per.isna() | (fb_per <= p)] if fb_per is not None else None
        end = pd.Timestamp(p.end_time).tz_localize("UTC") if ts.dt.tz is not None else pd.Timestamp(p.end_time)
        end = min(end, ts.max())  # recency to the period's end, or to the extract's end in the last period
        cust = customers[customers["customer_id"].isin(ev["customer_id"].unique())] if customers is not None else None
        f, _ = customer_features(ev, cust, fb, config, step, as_of=end, reference=segmentation, **feature_kwargs)
        f = f.loc[f.index.isin(ev["customer_id"].unique())]
        lab = segmentation.predict(f)
        parts.append(pd.DataFrame({"customer_id": lab.index, "period": str(p), "segment": lab.to_numpy()}))
    cols = ["customer_id", "period", "segment"]
    assign = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)
    assign["name"] = assign["segment"].map(segmentation.names)
    periods = sorted(assign["period"].unique())
    nxt = dict(zip(periods[:-1], periods[1:]))
    a = assign[["customer_id", "period", "segment"]].copy()
    a["period_to"] = a["period"].map(nxt)
    b = assign[["customer_id", "period", "segment"]].rename(columns={"period": "period_to", "segment": "to_segment"})
    pairs = a.dropna(subset=["period_to"]).merge(b, on=["customer_id", "period_to"], how="inner") \
        .rename(columns={"period": "period_from", "segment": "from_segment"})
    by_period = pairs.groupby(["period_from", "period_to", "from_segment", "to_segment"]).size() \
        .rename("customers").reset_index()
    by_period["share"] = by_period["customers"] / by_period.groupby(["period_from", "period_to", "from_segment"])[
        "customers"].transform("sum")
    trans = pairs.groupby(["from_segment", "to_segment"]).size().rename("customers").reset_index()
    trans["share"] = trans["customers"] / trans.groupby("from_segment")["customers"].transform("sum")
    trans.insert(2, "from_name", trans["from_segment"].map(segmentation.names))
    trans.insert(3, "to_name", trans["to_segment"].map(segmentation.names))
    stay = trans.assign(stay=trans["from_segment"] == trans["to_segment"]) \
        .groupby("from_segment").apply(lambda d: pd.Series({
            "customers": d["customers"].sum(), "share_stay": d.loc[d["stay"], "customers"].sum() / d["customers"].sum()}),
            include_groups=False) if len(trans) else pd.DataFrame(columns=["customers", "share_stay"])
    stay.index.name = "segment"
    if len(stay):
        stay["name"] = stay.index.map(segmentation.names)
        stay["stable"] = stay["share_stay"] >= stable_share
        overall = float(trans.loc[trans["from_segment"] == trans["to_segment"], "customers"].sum()
                        / trans["customers"].sum())
        sentences = [f"Across {len(periods)} periods ({period}), {overall:.0%} of customers active in two "
                     f"consecutive periods stayed in their segment."]
        for seg, r in stay.iterrows():
            word = "stable" if r["stable"] else "not stable"
            sentences.append(f"Segment {seg} ({r['name']}) is {word}: {r['share_stay']:.0%} of "
                             f"{int(r['customers'])} stay from one period to the next.")
        statement = " ".join(sentences)
    else:
        statement = f"No customer is active in two consecutive periods ({len(periods)} period(s)): no transitions."
    return DynamicSegments(assign, trans, by_period, stay, statement)


# --------------------------------------------------------------------------------------------------
# 4. persistence
# --------------------------------------------------------------------------------------------------
def save(segmentation: Segmentation | None, path) -> Path | None:
    """Write a fitted segmentation with joblib. ``path``: a file, or a folder (e.g. the run's processed
    folder) which gets ``segmentation.joblib``. Returns the file path. Written to a temporary name and
    moved into place. ``segmentation=None`` (segmentation skipped) writes nothing and returns None."""
    if segmentation is None:
        return None
    import joblib
    path = Path(path)
    if path.is_dir() or not path.suffix:
        path.mkdir(parents=True, exist_ok=True)
        path = path / "segmentation.joblib"
    tmp = path.with_name(path.name + ".tmp")
    joblib.dump(segmentation, tmp)
    tmp.replace(path)
    return path


def load(path) -> Segmentation:
    """Read a segmentation written by :func:`save` (file or folder holding ``segmentation.joblib``)."""
    import joblib
    path = Path(path)
    if path.is_dir():
        path = path / "segmentation.joblib"
    if not path.exists():
        raise JourneyError("no saved segmentation", file=str(path), fix="run the 03_segment step first")
    obj = joblib.load(path)
    if not isinstance(obj, Segmentation):
        raise JourneyError("file does not hold a Segmentation", file=str(path), expected="segment.save output")
    return obj


def predict(segmentation: Segmentation, new_features: pd.DataFrame) -> pd.Series:
    """Segments for new customers (see :meth:`Segmentation.predict`)."""
    return segmentation.predict(new_features)


# --------------------------------------------------------------------------------------------------
# 5. figures (data twin + thin renderer)
# --------------------------------------------------------------------------------------------------
def plot_k_scores_data(segmentation: Segmentation) -> pd.DataFrame:
    """Scores per k: k, silhouette, calinski_harabasz, inertia, seconds, cpu_seconds, chosen."""
    return segmentation.scores.reset_index()


def plot_k_scores(segmentation: Segmentation):
    """Three panels (silhouette, Calinski-Harabasz, inertia) against k, the chosen k marked."""
    if segmentation is None:  # segmentation skipped: nothing to draw
        return None
    import matplotlib.pyplot as plt
    d = plot_k_scores_data(segmentation)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for ax, col, title in zip(axes, ["silhouette", "calinski_harabasz", "inertia"],
                              ["Silhouette (higher is better)", "Calinski-Harabasz (higher is better)",
                               "Inertia (elbow)"]):
        ax.plot(d["k"], d[col], marker="o", color="#4c72b0")
        ch = d[d["chosen"]]
        ax.scatter(ch["k"], ch[col], s=120, facecolors="none", edgecolors="#c44e52", linewidths=2, zorder=3)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("k (segments)")
        ax.set_xticks(d["k"])
    fig.tight_layout()
    return fig


def plot_projection_data(segmentation: Segmentation, features: pd.DataFrame, sample_size: int = 5000,
                         random_state: int = 0) -> pd.DataFrame:
    """First two principal components of the scaled features (PCA fitted on a seeded sample of at most
    ``sample_size`` customers): customer_id, pc1, pc2, segment, name; ``attrs['explained_variance_ratio']``."""
    from sklearn.decomposition import PCA
    f = features if len(features) <= sample_size else features.sample(sample_size, random_state=random_state)
    X = segmentation.transform_scaled(f)
    pca = PCA(n_components=2, random_state=random_state).fit(X)
    pc = pca.transform(X)
    lab = segmentation.predict(f)
    out = pd.DataFrame({"customer_id": f.index, "pc1": pc[:, 0], "pc2": pc[:, 1], "segment": lab.to_numpy()})
    out["name"] = out["segment"].map(segmentation.names)
    out.attrs["explained_variance_ratio"] = pca.explained_variance_ratio_.tolist()
    return out


def plot_projection(segmentation: Segmentation, features: pd.DataFrame, sample_size: int = 5000,
                    random_state: int = 0):
    """Scatter of the PCA projection coloured by segment."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    d = plot_projection_data(segmentation, features, sample_size, random_state)
    evr = d.attrs.get("explained_variance_ratio", [np.nan, np.nan])
    d = d.assign(segment_label=d["segment"].astype(str) + ": " + d["name"])
    fig, ax = plt.subplots(figsize=(6.5, 5))
    sns.scatterplot(data=d, x="pc1", y="pc2", hue="segment_label", s=10, alpha=0.6, ax=ax, linewidth=0)
    ax.set_xlabel(f"PC1 ({evr[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({evr[1]:.0%} of variance)")
    ax.legend(title="segment", fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def plot_profiles_data(segmentation: Segmentation, top: int = 12) -> pd.DataFrame:
    """Long table of standardized differences for the ``top`` features with the largest absolute
    difference in any segment: segment, name, feature, std_diff."""
    diff = segmentation.differences
    keep = diff.abs().max().sort_values(ascending=False, kind="mergesort").index[:top]
    out = diff[keep].stack().rename("std_diff").reset_index().rename(columns={"level_1": "feature"})
    out.columns = ["segment", "feature", "std_diff"]
    out.insert(1, "name", out["segment"].map(segmentation.names))
    return out


def plot_profiles(segmentation: Segmentation, top: int = 12):
    """Heatmap: features x segments, colour = standardized difference from the population (sd units)."""
    if segmentation is None:  # segmentation skipped: nothing to draw
        return None
    import matplotlib.pyplot as plt
    import seaborn as sns
    d = plot_profiles_data(segmentation, top)
    d = d.assign(segment_label=d["segment"].astype(str) + ": " + d["name"])
    order = d["feature"].drop_duplicates().tolist()
    m = d.pivot(index="feature", columns="segment_label", values="std_diff").loc[order]
    fig, ax = plt.subplots(figsize=(1.6 * m.shape[1] + 3, 0.38 * m.shape[0] + 1.5))
    lim = max(1.0, float(np.nanmax(np.abs(m.to_numpy()))))
    sns.heatmap(m, cmap="RdBu_r", center=0, vmin=-lim, vmax=lim, annot=True, fmt=".1f", ax=ax,
                cbar_kws={"label": "difference from population (sd)"})
    ax.set_xlabel("")
    ax.set_ylabel("")
    fig.tight_layout()
    return fig


def plot_sizes_data(segmentation: Segmentation) -> pd.DataFrame:
    """segment, name, customers, share_customers."""
    p = segmentation.profiles
    return pd.DataFrame({"segment": p.index, "name": p["name"].to_numpy(), "customers": p["size"].to_numpy(),
                         "share_customers": p["share"].to_numpy()})


def plot_sizes(segmentation: Segmentation):
    """Horizontal bars: customers per segment, labelled with the share."""
    if segmentation is None:  # segmentation skipped: nothing to draw
        return None
    import matplotlib.pyplot as plt
    d = plot_sizes_data(segmentation)
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(d) + 1.2))
    labels = d["segment"].astype(str) + ": " + d["name"]
    ax.barh(labels, d["customers"], color="#4c72b0")
    for y, (c, s) in enumerate(zip(d["customers"], d["share_customers"])):
        ax.text(c, y, f" {s:.0%}", va="center", fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("customers")
    fig.tight_layout()
    return fig


def segment_spark(features_sdf, k="auto", k_range=(2, 8), random_state: int = 0, *,
                  sample_size: int = 200_000, id_col: str = "customer_id", config=None, **kwargs):
    """k-means segmentation when the customers are too many for one machine.

    `features_sdf`: a Spark DataFrame, one row per customer (`id_col` + numeric feature columns),
    e.g. ``to_spark(customer_features(...)[0].reset_index())`` or features built on Spark. Method:
    a seeded uniform sample of about `sample_size` customers (Spark ``sample(fraction, seed)``) is
    collected and fitted with :func:`segment_customers` (the same scaling, k choice, stability,
    profiles and names as the pandas engine); then *every* customer is assigned to its nearest centre
    on Spark (:func:`journey_analysis.engines.spark.assign_segments_spark`). Returns
    ``(segmentation, assignments_sdf)``; the segmentation's `labels` cover the sample only.
    See docs/spark.md for why this rather than MLlib's KMeans.
    """
    from journey_analysis.engines import spark

    pdf, n = spark.sample_rows(features_sdf, sample_size, random_state, id_col)
    seg = segment_customers(pdf, k=k, k_range=k_range, random_state=random_state, config=config, **kwargs)
    seg.sample_rows = len(pdf)
    seg.population_rows = n
    return seg, spark.assign_segments_spark(seg, features_sdf, id_col=id_col)
