"""Analysis of the journey map: pain points, moments of truth, expectation gaps, recommendations.

Owns :func:`pain_points` (stages ranked by a transparent weighted score), :func:`moments_of_truth`
(driver analysis of the configured outcome: standardised logistic regression with bootstrap intervals),
:func:`expectation_gaps` (expected versus actual duration and satisfaction), :func:`recommendations`
(impact x reach x confidence, tied to the config's objective), :func:`theme_drivers` (the outcome rate
of customers mentioning a theme against the others), :func:`compare_segments` (segments side
by side, differences marked when larger than their uncertainty) and :func:`test_experience`
(mystery-shopper / test-call observations against the map). Every output row carries its evidence in
numbers and a sentence in words. scikit-learn and scipy are imported inside the functions.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from journey_analysis.errors import JourneyError
from journey_analysis.journey_map import ALL, MIN_N, NEGATIVE_BELOW, map_segment
from journey_analysis.outcome import LEAKAGE_AUC, id_like, outcome_is_bad
from journey_analysis.outcome import auc as _auc

#: Weights of the pain-point score (they sum to 1; every component is scaled to 0-1 first).
PAIN_WEIGHTS: dict[str, float] = {
    "negative_sentiment": 0.25,   # share of scored feedback with sentiment < -0.05
    "below_target": 0.25,         # (target - mean rating) / (scale max - scale min), floored at 0
    "over_time": 0.20,            # median dwell / expected max duration - 1, clipped to [0, 1]
    "drop_off": 0.10,             # share of customers reaching the stage who go no further
    "rework": 0.10,               # share of customers at the stage two or more times
    "volume": 0.10,               # share of customers reaching the stage
}


def _fmt_h(hours: float) -> str:
    if not np.isfinite(hours):
        return "n/a"
    if hours >= 48:
        return f"{hours / 24:.1f} days"
    if hours >= 1:
        return f"{hours:.1f} h"
    return f"{hours * 60:.0f} min"


def _outcome_words(outcome) -> tuple[str, str, str]:
    """Words for an outcome column: (what the odds are of, who has it, what they did), e.g. ("churning",
    "customers who churned", "churned") for churned; ("churn", "customers who churned", "churned") for churn;
    ("being late", "customers who were late", "were late") for is_late; ("late delivery", "customers with late
    delivery", "had late delivery") for late_delivery."""
    o = str(outcome or "the outcome").replace("_", " ").strip()
    low = o.lower()
    if low.endswith("ed") and " " not in o:
        stem = o[:-2]
        if stem.endswith("nn") or stem.endswith("ll") and not o.endswith("lled"):
            stem = stem[:-1]
        return stem + "ing", f"customers who {o}", o
    if low in ("churn", "attrition", "cancel", "cancellation"):
        return low, "customers who churned" if low == "churn" else "customers who cancelled", \
            "churned" if low == "churn" else "cancelled"
    for pre, be in (("is ", "were "), ("has ", "had "), ("was ", "were ")):
        if low.startswith(pre):
            rest = o[len(pre):]
            return ("being " if pre != "has " else "having ") + rest, f"customers who {be}{rest}", be + rest
    return o, f"customers with {o}", f"had {o}"


def _title(stage: str) -> str:
    return str(stage)[:1].upper() + str(stage)[1:]


# ------------------------------------------------------------------------------------------------
# pain points
# ------------------------------------------------------------------------------------------------
def pain_points(journey_map: pd.DataFrame, config, segment: str = ALL, weights: dict | None = None) -> pd.DataFrame:
    """Rank the stages of one segment's map by a transparent pain score.

    Components, each scaled to 0-1 (missing evidence counts 0 and is named in ``not_measured``):
    ``negative_sentiment`` = sentiment_share_negative; ``below_target`` = max(0, target - satisfaction_mean)
    / (scale max - scale min), with the journey's mean satisfaction as target when the config has none;
    ``over_time`` = clip(stage_time_median / expected_max_duration - 1, 0, 1) (time in the stage per visit;
    twice the expectation scores 1); ``drop_off`` (journeys that stopped here before any terminal stage and
    stayed inactive longer than the gap); ``rework`` = rework_share (came back after leaving);
    ``volume`` = share_customers.
    ``pain_score`` = sum(weight x component) with :data:`PAIN_WEIGHTS` (or ``weights``); ``contrib_<c>``
    holds each term. Stages no customer reached are left out. ``evidence_n`` = the observations behind the
    largest contribution (comments, ratings, visits or customers), ``confidence`` = :func:`confidence_from_n`,
    ``thin_evidence`` when evidence_n < 30: such a stage ranks after every well-evidenced one. Output sorted
    by (thin_evidence, score): segment, stage, rank, pain_score, components, contributions, reasons (words and
    numbers, largest first), evidence_n, thin_evidence, confidence, customers, low_confidence, not_measured.
    """
    w = {**PAIN_WEIGHTS, **(weights or {})}
    m = map_segment(journey_map, segment)
    m = m[m["customers"] > 0].copy()
    lo, hi = config.satisfaction.min, config.satisfaction.max
    target = m["target_satisfaction"].fillna(m["satisfaction_mean"].mean())
    comp = pd.DataFrame(index=m.index)
    comp["negative_sentiment"] = m["sentiment_share_negative"]
    comp["below_target"] = ((target - m["satisfaction_mean"]) / (hi - lo)).clip(lower=0)
    comp["over_time"] = (m["duration_ratio"] - 1).clip(0, 1)
    comp["drop_off"] = m["drop_off"]
    comp["rework"] = m["rework_share"]
    comp["volume"] = m["share_customers"]
    comp = comp.apply(pd.to_numeric, errors="coerce").astype(float)
    not_measured = comp.isna().apply(lambda r: ", ".join(c for c in comp.columns if r[c]), axis=1)
    comp = comp.fillna(0.0)
    contrib = comp.mul(pd.Series(w)).add_prefix("contrib_")
    out = pd.DataFrame({"segment": segment, "stage": m["stage"]})
    out["pain_score"] = contrib.sum(axis=1)
    out = pd.concat([out, comp, contrib], axis=1)
    scale = config.satisfaction.rating_type
    reasons = []
    for i, r in m.iterrows():  # one row per stage (a handful), building sentences
        parts = []
        c = contrib.loc[i]
        texts = {
            "contrib_negative_sentiment": f"{r['sentiment_share_negative']:.0%} of comments negative (n={int(r['sentiment_n'])})"
            if r["sentiment_n"] > 0 else None,
            "contrib_below_target": f"{scale} {r['satisfaction_mean']:.2f} against target {target[i]:.1f}"
            f"{'' if pd.notna(r['target_satisfaction']) else ' (journey mean)'} (n={int(r['satisfaction_n'])})"
            if r["satisfaction_n"] > 0 else None,
            "contrib_over_time": f"median time in the stage {_fmt_h(r['stage_time_median_h'])} per visit against "
            f"{_fmt_h(r['expected_max_duration_h'])} expected ({r['stage_time_share_over_expected']:.0%} of "
            f"{int(r['stage_time_n'])} visits over)" if pd.notna(r["duration_ratio"]) else None,
            "contrib_drop_off": f"{r['drop_off']:.0%} stopped here before the journey's end and stayed away"
            if pd.notna(r["drop_off"]) else None,
            "contrib_rework": f"{r['rework_share']:.0%} came back to it after leaving" if pd.notna(r["rework_share"]) else None,
            "contrib_volume": f"reached by {r['share_customers']:.0%} of customers ({int(r['customers'])})",
        }
        for k in c.sort_values(ascending=False).index:
            if c[k] > 0.005 and texts.get(k):
                parts.append(texts[k])
        reasons.append("; ".join(parts))
    out["reasons"] = reasons
    # the observations behind the largest contribution
    n_of = {"contrib_negative_sentiment": m["sentiment_n"], "contrib_below_target": m["satisfaction_n"],
            "contrib_over_time": m["stage_time_n"], "contrib_drop_off": m["customers"],
            "contrib_rework": m["customers"], "contrib_volume": m["customers"]}
    main = contrib.idxmax(axis=1)
    ev_n = pd.Series(0, index=m.index)
    for k, col in n_of.items():  # six components
        ev_n = ev_n.where(main != k, col.fillna(0))
    out["evidence_n"] = ev_n.astype(int)
    out["thin_evidence"] = out["evidence_n"] < MIN_N
    out["confidence"] = confidence_from_n(out["evidence_n"])
    out["customers"] = m["customers"].astype(int)
    out["low_confidence"] = m["low_confidence"]
    out["not_measured"] = not_measured
    out = out.sort_values(["thin_evidence", "pain_score", "stage"], ascending=[True, False, True],
                          kind="stable").reset_index(drop=True)
    out.insert(2, "rank", np.arange(1, len(out) + 1))
    return out


# ------------------------------------------------------------------------------------------------
# moments of truth
# ------------------------------------------------------------------------------------------------


def _logit_ridge(Z: np.ndarray, y: np.ndarray, C: float = 1.0, tol: float = 1e-8, max_iter: int = 50,
                 weight: np.ndarray | None = None, start: np.ndarray | None = None, full: bool = False) -> np.ndarray:
    """L2-penalised logistic regression by Newton-Raphson; returns the coefficients (intercept not returned).

    Minimises sum(log-loss) + ||w||^2 / (2 C) with an unpenalised intercept: the same objective as
    scikit-learn's ``LogisticRegression(C=C)``, solved in numpy (a few Newton steps, milliseconds).
    ``weight``: each row counted that many times (a bootstrap resample as counts of the distinct
    rows: the same objective with fewer rows); ``start``: the Newton start (intercept first; default
    zeros), ``full``: return the intercept as well.
    """
    n, k = Z.shape
    A = np.hstack([np.ones((n, 1)), Z])
    w = np.zeros(k + 1) if start is None else np.array(start, dtype=float)
    pen = np.full(k + 1, 1.0 / C)
    pen[0] = 0.0
    for _ in range(max_iter):
        eta = np.clip(A @ w, -30, 30)
        p = 1.0 / (1.0 + np.exp(-eta))
        r, s = p - y, p * (1 - p)
        if weight is not None:
            r, s = r * weight, s * weight
        grad = A.T @ r + pen * w
        B = A * np.sqrt(s)[:, None]
        H = B.T @ B + np.diag(pen + 1e-9)  # A' diag(s) A as one symmetric product (half the work)
        step = np.linalg.solve(H, grad)
        w -= step
        if np.max(np.abs(step)) < tol:
            break
    return w if full else w[1:]


def _logit_ridge_w(Z: np.ndarray, y: np.ndarray, C: float = 1.0) -> np.ndarray:
    """:func:`_logit_ridge` with the intercept: [intercept, coefficients...]."""
    return _logit_ridge(Z, y, C, full=True)


#: Measures of the customer's experience at a stage that :func:`experience_score` combines.
EXPERIENCE_MEASURES = ("rating", "sentiment")


def customer_stage_features(events: pd.DataFrame, feedback: pd.DataFrame | None, config,
                            step: str = "stage", outcome_stages=()) -> pd.DataFrame:
    """Per customer (rows) and stage: ``<stage>|sentiment``, ``<stage>|rating``, ``<stage>|experience``, ``<stage>|time_log_h``, ``<stage>|reached``.

    sentiment / rating = mean over the customer's feedback at the stage (rating only on the declared
    scale); experience = :func:`experience_score` of those two; time_log_h = log1p(hours the customer spent
    in the stage, summed over the visits that ended, i.e. were followed by another stage:
    :func:`journey_analysis.steps.customer_stage_time`'s closed_time_s; a visit cut off by the end of the
    customer's data counts as no evidence, since its length is the calendar, not the experience, and so
    does a visit followed by one of ``outcome_stages``, the stage the config says the outcome is decided at:
    the time until the decision is its calendar); reached = 1 if the customer has an event there. NaN where
    the customer has no such evidence (see :func:`moments_of_truth` for the rule). Both engines (the
    per-event work runs where the events are).
    """
    from journey_analysis import steps

    t = steps.customer_stage_time(events, step, exclude_next=list(outcome_stages)).set_index(["customer_id", step])
    beh = pd.DataFrame({"reached": 1.0, "time_log_h": np.log1p(t["closed_time_s"].astype(float) / 3600.0)})
    wide = [beh.unstack(step)]
    if feedback is not None and len(feedback) and "customer_id" in feedback.columns and step in feedback.columns:
        fb = feedback[feedback["customer_id"].notna() & feedback[step].notna()].copy()
        fb["customer_id"] = fb["customer_id"].astype(str)
        cols = {}
        if "sentiment" in fb.columns:
            cols["sentiment"] = pd.to_numeric(fb["sentiment"], errors="coerce")
        if "rating" in fb.columns:
            rt = fb["rating_type"].astype(str).str.lower() if "rating_type" in fb.columns else config.satisfaction.rating_type
            cols["rating"] = pd.to_numeric(fb["rating"], errors="coerce").where(rt == config.satisfaction.rating_type.lower())
        if cols:
            v = pd.DataFrame(cols).assign(customer_id=fb["customer_id"], **{step: fb[step]})
            wide.append(v.groupby(["customer_id", step], sort=False).mean().unstack(step))
    X = pd.concat(wide, axis=1)
    # one column order whatever the engine: measures as built, stages in config order (others by name)
    measure = {m: i for i, m in enumerate(dict.fromkeys(X.columns.get_level_values(0)))}
    rank = {s: i for i, s in enumerate(config.stage_names)}
    X = X[sorted(X.columns, key=lambda ks: (measure[ks[0]], rank.get(ks[1], len(rank)), str(ks[1])))]
    X.columns = [f"{s}|{k}" for k, s in X.columns]
    X.index = X.index.astype(str)
    return pd.concat([X, experience_score(X)], axis=1)


def experience_score(X: pd.DataFrame) -> pd.DataFrame:
    """One standardised experience score per customer and stage: ``<stage>|experience``.

    Definition: for each stage, each measure of :data:`EXPERIENCE_MEASURES` present in ``X``
    (``<stage>|rating``, ``<stage>|sentiment``) is z-scored over the customers who have it ((value - mean)
    / sd, ddof=0); the score is the mean of the customer's available z-scores at that stage (one measure
    when only one is available), NaN when the customer has neither. Higher = better experience. Rating and
    sentiment at one stage are strongly correlated; one score keeps a regression from splitting their
    shared effect between two collinear coefficients.
    """
    cols = [c for c in X.columns if c.split("|", 1)[1] in EXPERIENCE_MEASURES]
    if not cols:
        return pd.DataFrame(index=X.index)
    sub = X[cols]
    sd = sub.std(ddof=0).replace(0, np.nan)
    z = (sub - sub.mean()) / sd
    z.columns = pd.MultiIndex.from_tuples([tuple(c.split("|", 1)) for c in cols])
    score = z.T.groupby(level=0, sort=False).mean().T  # mean of the available z-scores (NaN skipped)
    score.columns = [f"{s}|experience" for s in score.columns]
    return score


def customer_touch_features(events: pd.DataFrame, step: str = "stage") -> pd.DataFrame:
    """Per customer: 1.0 when the customer had a touchpoint at a stage (``<stage>|touchpoint:<name>``) or
    used a channel anywhere (``|channel:<name>``), 0.0 otherwise (both engines: counts come from
    :func:`journey_analysis.steps.count_by`)."""
    from journey_analysis.steps import count_by

    parts = []
    if "touchpoint" in events.columns:
        c = count_by(events, ["customer_id", step, "touchpoint"], name="k")
        c = c[c["touchpoint"].notna() & c[step].notna()]
        parts.append(pd.DataFrame({"customer_id": c["customer_id"].astype(str),
                                   "feature": c[step].astype(str) + "|touchpoint:" + c["touchpoint"].astype(str)}))
    if "channel" in events.columns:
        c = count_by(events, ["customer_id", "channel"], name="k")
        c = c[c["channel"].notna()]
        parts.append(pd.DataFrame({"customer_id": c["customer_id"].astype(str),
                                   "feature": "|channel:" + c["channel"].astype(str)}))
    if not parts:
        return pd.DataFrame()
    long = pd.concat(parts, ignore_index=True)
    # the 0/1 table of pd.crosstab(customer, feature).clip(upper=1), from the codes of both (crosstab
    # counts with a Python call per cell)
    rows, customers = pd.factorize(long["customer_id"], sort=True)
    cols, features = pd.factorize(long["feature"], sort=True)
    wide = np.zeros((len(customers), len(features)))
    wide[rows, cols] = 1.0
    return pd.DataFrame(wide, index=pd.Index(customers, name="customer_id"), columns=list(features))


#: Two candidates whose correlation is at least this in absolute value are one effect.
COLLINEAR_R = 0.9
#: Candidates with fewer observations (or, for a yes/no feature, fewer in its smaller group) are not tested.
MIN_TESTED = 10
_YES = {"yes", "y", "true", "1", "t"}
_NO = {"no", "n", "false", "0", "f"}


def _plain(name: str) -> str:
    return str(name).replace("_", " ").strip()


def _as_numbers(s: pd.Series) -> pd.Series:
    """``pd.to_numeric(s, errors="coerce").astype(float)``, parsed once per distinct value (a text column
    has a few levels, not one per customer)."""
    codes, uniques = pd.factorize(s)
    values = pd.to_numeric(pd.Series(uniques), errors="coerce").astype(float).to_numpy()
    return pd.Series(np.where(codes >= 0, values[np.maximum(codes, 0)] if len(values) else np.nan, np.nan),
                     index=s.index)


def attribute_features(customers: pd.DataFrame, exclude=(), min_n: int = MIN_TESTED):
    """Customer attributes as candidate drivers: (features indexed by customer_id, meta, left_out).

    Numeric and true/false columns enter as they are; a yes/no column as 1 for yes; a text column as one
    0/1 column per level with at least ``min_n`` customers, the most frequent level being the reference.
    Left out, with the reason: ``customer_id`` and ``exclude`` (the outcome, declared outcome-derived
    columns), id-like columns (:func:`id_like`), constant columns and columns with
    fewer than ``min_n`` values. ``meta``: feature -> dict(kind, stage, measure, label, binary, source).
    """
    cust = customers.copy()
    cust.index = cust["customer_id"].astype(str)
    cust = cust[~cust.index.duplicated(keep="last")]
    feats, meta, left = {}, {}, []
    for col in cust.columns:  # columns (tens), each vectorised
        if col == "customer_id":
            continue
        s = cust[col]
        if col in exclude:
            left.append((col, "the outcome or a column declared as derived from it"))
            continue
        why = id_like(s, col)
        if why:
            left.append((col, why))
            continue
        n = int(s.notna().sum())
        nun = int(s.nunique(dropna=True))
        if n < min_n:
            left.append((col, f"too few observations ({n})"))
            continue
        if nun <= 1:
            left.append((col, "constant"))
            continue
        low = s.dropna().astype(str).str.strip().str.lower()
        if pd.api.types.is_bool_dtype(s) or (nun == 2 and set(low.unique()) <= _YES | _NO):
            yes = low.isin(_YES).astype(float).reindex(s.index)
            key = f"|{col}"
            feats[key] = yes
            meta[key] = {"kind": "attribute", "stage": None, "measure": str(col), "label": _plain(col),
                         "binary": True, "source": col}
            continue
        num = _as_numbers(s) if not pd.api.types.is_numeric_dtype(s) else s.astype(float)
        if num.notna().sum() == n:  # every value is a number
            key = f"|{col}"
            feats[key] = num.astype(float)
            meta[key] = {"kind": "attribute", "stage": None, "measure": str(col), "label": _plain(col),
                         "binary": nun == 2, "source": col}
            continue
        vc = s.astype(str).where(s.notna()).value_counts()
        levels = [v for v in vc.index[1:] if vc[v] >= min_n]
        small = [v for v in vc.index[1:] if vc[v] < min_n]
        if not levels:
            left.append((col, f"no level besides {vc.index[0]!r} has {min_n} customers"))
            continue
        for v in levels:
            key = f"|{col}={v}"
            feats[key] = (s.astype(str) == v).astype(float).where(s.notna())
            meta[key] = {"kind": "attribute", "stage": None, "measure": f"{col}={v}",
                         "label": f"{_plain(col)}: {v}", "binary": True, "source": col,
                         "reference": f"{_plain(col)}: {vc.index[0]}" + (" (and rare levels)" if small else "")}
    return pd.DataFrame(feats, index=cust.index), meta, left


def confidence_from_interval(effect, ci_low, ci_high, evidence_n) -> np.ndarray:
    """Confidence of a finding from its 95% interval: 2 Phi(|effect| / se) - 1 with se = (ci_high - ci_low)
    / (2 x 1.96), i.e. one minus the two-sided p-value (0.95 when the interval just excludes 0). A finding
    on fewer than :data:`MIN_N` observations (thin evidence) is capped at 0.5."""
    from scipy.stats import norm

    e, lo, hi = (np.asarray(v, dtype=float) for v in (effect, ci_low, ci_high))
    with np.errstate(invalid="ignore", divide="ignore"):
        se = (hi - lo) / (2 * 1.959964)
        c = 2 * norm.cdf(np.abs(e) / se) - 1
    c = np.nan_to_num(c, nan=0.0)
    return np.where(np.asarray(evidence_n, dtype=float) < MIN_N, np.minimum(c, 0.5), c)


def confidence_from_n(n) -> np.ndarray:
    """Confidence of a finding that rests on ``n`` observations without an interval of its own: one minus
    the half-width of the widest 95% interval a share can have at n, relative to 0.5: 1 - 1.96 / sqrt(n)
    (0.64 at n = 30, 0.80 at 100, 0.94 at 1,000), floored at 0 and capped at 0.5 below :data:`MIN_N`."""
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.clip(1 - 1.959964 / np.sqrt(n), 0, 1)
    c = np.nan_to_num(c, nan=0.0)
    return np.where(n < MIN_N, np.minimum(c, 0.5), c)


def _issue_flags(X: pd.DataFrame, config, stage: str, measure: str) -> tuple[pd.Series | None, str]:
    col = f"{stage}|{measure}"
    if col not in X.columns:
        return None, ""
    x = X[col]
    if measure == "sentiment":
        return (x < NEGATIVE_BELOW).where(x.notna()), "had a negative experience (sentiment < -0.05)"
    if measure == "rating":
        try:
            target = config.stage(stage).target_satisfaction
        except KeyError:
            target = None
        t = target if target is not None else (config.satisfaction.min + config.satisfaction.max) / 2
        return (x < t).where(x.notna()), f"rated it below {t:g}"
    if measure == "experience":
        rating, r_text = _issue_flags(X, config, stage, "rating")
        sent, _ = _issue_flags(X, config, stage, "sentiment")
        parts = [f for f in (rating, sent) if f is not None]
        if not parts:
            return None, ""
        known = pd.concat([f.notna() for f in parts], axis=1).any(axis=1)
        poor = pd.concat([f.fillna(False).astype(bool) for f in parts], axis=1).any(axis=1)
        text = " or ".join(t for t, f in ((r_text, rating), ("commented negatively", sent)) if f is not None)
        return poor.where(known), text
    if measure == "time_log_h":
        try:
            exp_h = config.stage(stage).expected_max_duration_h
        except KeyError:
            exp_h = None
        hours = np.expm1(x)
        if exp_h is None:
            exp_h = float(hours.quantile(0.75))
            return (hours > exp_h).where(x.notna()), f"spent over {_fmt_h(exp_h)} there (the top quarter)"
        return (hours > exp_h).where(x.notna()), f"spent over {_fmt_h(exp_h)} there (the expectation)"
    return None, ""


def moments_of_truth(events: pd.DataFrame | None, feedback: pd.DataFrame | None, customers: pd.DataFrame, config,
                     random_state: int = 0, n_boot: int = 0, step: str | None = None,
                     exclude_stages=None, C: float = 1.0, min_n: int = MIN_N,
                     experience: str = "combined", attributes: bool = True, touchpoints: bool = True) -> pd.DataFrame:
    """Driver analysis: what changes the configured outcome, among everything that could matter.

    Outcome: ``customers[config.outcome]``; ``bad`` = 1 when it is not ``config.outcome_good`` (churned).
    Customers with a missing outcome (prospects) are excluded and counted (``attrs["n_excluded_missing_outcome"]``).

    **Candidates** (one model): per stage (:func:`customer_stage_features`, when there are events) the
    experience score (``experience="combined"``: mean of the customer's z-scored rating and sentiment, see
    :func:`experience_score`; ``"separate"``: rating and sentiment as two features), the time in the stage
    (log1p hours over the customer's visits) and reached (0/1, a *control*: customers who left early cannot
    reach later stages); touchpoints per stage and channels (had it: 0/1, :func:`customer_touch_features`);
    customer attributes (:func:`attribute_features`: numeric, yes/no and one 0/1 column per level).
    **Missing-experience rule**: a customer without the evidence gets the mean of those who have it
    (standardised 0), so the coefficient compares customers with evidence; the reached control stays in.

    **Left out, with the reason** (``attrs["candidates"]``, as a table :func:`candidates_table`: every candidate, ``tested`` or not and why):
    fewer than :data:`MIN_TESTED` observations (a yes/no feature: in its smaller group) or no variance;
    the outcome stage's own measures when the config names one (``outcome_stage:``; ``exclude_stages``
    overrides) and any stage whose reach separates the outcome (bad rate among those reaching it below 2%
    or above 98% while the base rate is between 5% and 95%); **leakage**: a single feature whose AUC for
    the outcome is at least :data:`LEAKAGE_AUC` (or at most 1 - it); **collinear** pairs (|r| >=
    :data:`COLLINEAR_R`): the one more correlated with the outcome stays and carries both (``collinear_with``
    names the others, the sentence says so). No stage is assumed to be where the outcome is decided unless
    the config says so: the time before a terminal stage is a candidate like any other.

    Model: features standardised (mean 0, sd 1), L2 logistic regression (``C``) on all customers with an
    outcome; 95% intervals from the inverse Hessian of the fit (Wald), or, with ``n_boot`` > 0, the 2.5 and
    97.5 percentiles of ``n_boot`` bootstrap refits (seeded by ``random_state``). ``effect`` = change in
    log-odds of the bad outcome per +1 sd; ``odds_ratio`` = exp(effect), with its interval on the same scale
    (``odds_ratio_ci_low`` / ``odds_ratio_ci_high`` = exp of ``ci_low`` / ``ci_high``); ``significant`` when
    the interval excludes 0 (the odds ratio's excludes 1). ``evidence_n`` = customers with the evidence (a yes/no feature: the smaller of its two
    groups); ``thin_evidence`` when below :data:`MIN_N`; ``confidence`` = :func:`confidence_from_interval`.

    Output, one row per tested feature, drivers ranked (``rank``: stage experience and time first, the
    moments of truth; then customer attributes; then touchpoints and channels; within each, well-evidenced
    first, then significant, then |effect|; controls have none): rank, kind ("experience", "time", "touchpoint", "channel",
    "attribute", "control"), driver (plain words), stage (None for attributes and channels), measure, role
    ("driver" | "control"), effect, ci_low, ci_high, odds_ratio, odds_ratio_ci_low, odds_ratio_ci_high,
    significant, sign, worse_raises_bad
    (experience: a worse one raises the bad outcome; time: a longer one does; others: having it / more of
    it does), n_observed, evidence_n, thin_evidence, confidence, issue, share_bad_with_issue,
    share_good_with_issue, n_bad_with_evidence, n_good_with_evidence, rate_with_issue, rate_without_issue
    (bad-outcome rate of customers with the issue / of the others), collinear_with, sentence.

    Without an outcome (no ``outcome:`` or no customers file) the result is an empty frame with
    ``attrs["reason"]``. A customers table lacking the named outcome column is an error. ``events=None``
    (a customers-only run) tests the attributes alone.
    """
    step = step or getattr(config, "step", "stage") or "stage"
    if not config.outcome:
        return _no_drivers("No outcome column: no moments of truth (driver analysis needs an outcome; "
                           "set `outcome:` in the config to a binary column of customers, e.g. churned).")
    if customers is None:
        return _no_drivers(f"No customers file, so the outcome {config.outcome!r} is unknown: no moments of truth "
                           "(driver analysis needs an outcome per customer).")
    if config.outcome not in customers.columns:
        raise JourneyError(f"The customers table has no outcome column {config.outcome!r}.", column=config.outcome,
                           fix="Add the column to the customers file, or change `outcome:` in the config.")
    if experience not in ("combined", "separate"):
        raise JourneyError(f"experience must be 'combined' or 'separate', not {experience!r}.",
                           expected="'combined' or 'separate'")
    y_all = outcome_is_bad(customers[config.outcome], config.outcome_good)
    y_all.index = customers["customer_id"].astype(str)
    y_all = y_all[~y_all.index.duplicated(keep="last")]
    n_missing = int(y_all.isna().sum())
    y = y_all.dropna()
    if y.nunique() < 2:
        raise JourneyError(f"The outcome {config.outcome!r} has one value only among customers with an outcome.",
                           column=config.outcome, expected="both good and bad outcomes")
    yy = y.to_numpy(dtype=float)
    base = float(yy.mean())
    outcome_stage = getattr(config, "outcome_stage", None)
    default_excl = ([outcome_stage] if outcome_stage else []) if exclude_stages is None else list(exclude_stages)
    meta: dict = {}
    frames = []
    cand = []  # (feature, kind, stage, label, status, reason)
    F = pd.DataFrame(index=y.index)
    T = pd.DataFrame(index=y.index)
    from journey_analysis.engines import engine_for

    if events is not None and engine_for(events).is_empty(events):
        events = None  # a customers-only run: attributes alone
    if events is not None:
        F = customer_stage_features(events, feedback, config, step, outcome_stages=default_excl).reindex(y.index)
        left_out = ("rating", "sentiment") if experience == "combined" else ("experience",)
        S = F[[c for c in F.columns if c.split("|", 1)[1] not in left_out]]
        for c in S.columns:
            s_, m_ = c.split("|", 1)
            kind = {"reached": "control", "time_log_h": "time"}.get(m_, "experience")
            meta[c] = {"kind": kind, "stage": s_, "measure": m_, "binary": m_ == "reached",
                       "label": f"{_title(s_)}: {_MEASURE_WORDS.get(m_, m_)}"}
        frames.append(S)
        T = customer_touch_features(events, step) if touchpoints else pd.DataFrame()
        if len(T.columns):
            T = T.reindex(y.index).fillna(0.0)
            for c in T.columns:
                s_, m_ = c.split("|", 1)
                what, name = m_.split(":", 1)
                meta[c] = {"kind": what, "stage": s_ or None, "measure": m_, "binary": True,
                           "label": f"{name} (touchpoint at {_title(s_)})" if what == "touchpoint" else f"{name} channel"}
    if attributes:
        excl_cols = {config.outcome, *getattr(getattr(config, "segmentation", None), "exclude", ())}
        A, ameta, aleft = attribute_features(customers, exclude=excl_cols)
        cand += [("|" + c, "attribute", None, _plain(c), "left out", r) for c, r in aleft if c != config.outcome]
        if len(A.columns):
            frames.append(A.reindex(y.index))
            meta.update(ameta)
    X = pd.concat(frames, axis=1) if frames else pd.DataFrame(index=y.index)
    excluded = {s: "the outcome is decided at this stage (its own measures are the decision itself)"
                for s in default_excl}
    if 0.05 < base < 0.95:
        for c in [c for c in X.columns if c.endswith("|reached")]:
            s_ = c.split("|")[0]
            r = X[c].fillna(0) > 0
            if r.sum() >= min_n and s_ not in excluded:
                rate = float(y[r].mean())
                if rate < 0.02 or rate > 0.98:
                    excluded[s_] = f"reaching it separates the outcome ({rate:.0%} bad among those who reach it)"
    status = {}
    XT = pd.concat([X, T], axis=1)
    for c in XT.columns:  # candidates (tens to a few hundred), each a vectorised check
        mt = meta[c]
        if mt["stage"] in excluded:
            status[c] = excluded[mt["stage"]]
            continue
        x = XT[c].to_numpy(dtype=float)
        if mt["kind"] == "control":
            x = np.nan_to_num(x)
            X[c] = x
        obs = ~np.isnan(x)
        n_obs = int(obs.sum())
        if n_obs < MIN_TESTED or np.nanstd(x) == 0:
            status[c] = "constant" if n_obs >= MIN_TESTED else f"too few observations ({n_obs})"
            continue
        if mt["binary"]:
            k = int((x[obs] > 0).sum())
            if min(k, n_obs - k) < MIN_TESTED:
                status[c] = f"too few observations in one group ({min(k, n_obs - k)})"
                continue
        if mt["kind"] != "control":
            auc = _auc(x, yy)
            if max(auc, 1 - auc) >= LEAKAGE_AUC:
                status[c] = f"leakage: alone it predicts the outcome almost perfectly (AUC {max(auc, 1 - auc):.2f})"
                continue
        status[c] = "tested"
    keep = [c for c in X.columns if status[c] == "tested"]
    touch_keep = [c for c in T.columns if status[c] == "tested"]
    X = X[keep]
    n_obs = X.notna().sum()
    X = X.fillna(X.mean())
    mu, sd = X.mean(), X.std(ddof=0)
    Zf = ((X - mu) / sd.replace(0, np.nan)).fillna(0.0)
    # collinear candidates: keep the one most correlated with the outcome, the others join it
    collinear = {c: [] for c in keep}
    if len(keep) > 1:
        with _one_blas_thread():  # narrow products: two spinning BLAS threads took 3 CPU-s, one 0.07
            R = np.corrcoef(Zf.to_numpy(dtype=float).T)
            ry = np.abs(np.nan_to_num([np.corrcoef(Zf[c], yy)[0, 1] for c in keep]))
        controls = [i for i, c in enumerate(keep) if meta[c]["kind"] == "control"]
        order = controls + [i for i in np.argsort(-ry, kind="stable") if i not in controls]
        kept: list[int] = []
        for i in order:  # candidates, not customers
            hit = next((j for j in kept if abs(R[i, j]) >= COLLINEAR_R), None)
            if hit is None:
                kept.append(i)
            else:
                status[keep[i]] = (f"collinear with {meta[keep[hit]]['label']} (r = {R[i, hit]:.2f}): one effect, "
                                   "reported there")
                collinear[keep[hit]].append(f"{meta[keep[i]]['label']} (r = {R[i, hit]:.2f})")
        keep = [keep[i] for i in sorted(kept)]
    for c, st in status.items():
        mt = meta[c]
        cand.append((c, mt["kind"], mt["stage"], mt["label"], "tested" if st == "tested" else "left out",
                     "" if st == "tested" else st))
    candidates = pd.DataFrame(cand, columns=["feature", "kind", "stage", "driver", "status", "reason"])
    candidates["model"] = np.where(candidates["kind"].isin(["touchpoint", "channel"]),
                                   "had it against not (2x2 odds ratio)", "one standardised logistic model")
    if not keep and not touch_keep:
        out = _no_drivers("No candidate driver could be tested (see attrs['candidates'] for why each was left out).")
        out.attrs["candidates"] = _records(candidates)
        return out
    Z = Zf[keep].to_numpy(dtype=float)
    n_obs = n_obs[keep]
    with _one_blas_thread():
        coef, se = _fit_intervals(Z, yy, C) if keep else (np.zeros(0), np.zeros(0))
    lo_, hi_ = coef - 1.959964 * se, coef + 1.959964 * se
    n_used = 0
    if n_boot and n_boot > 0 and keep:
        with _one_blas_thread():
            full = _logit_ridge(Z, yy, C, full=True)
            rng = np.random.default_rng(random_state)
            n = len(yy)
            boots = []
            for _ in range(int(n_boot)):  # resamples (not customers): each is one vectorised fit
                idx = rng.integers(0, n, n)
                if yy[idx].min() == yy[idx].max():
                    continue
                # the resample as counts of its distinct customers, started from the full fit: the same
                # optimum as fitting Z[idx] from zeros, in fewer rows and Newton steps
                counts = np.bincount(idx, minlength=n)
                rows = np.flatnonzero(counts)
                boots.append(_logit_ridge(Z[rows], yy[rows], C, weight=counts[rows].astype(float), start=full))
        if boots:
            B = np.array(boots)
            lo_, hi_ = np.percentile(B, 2.5, axis=0), np.percentile(B, 97.5, axis=0)
            n_used = len(boots)
    # touchpoints and channels, below the stage: had it against not, each on its own (a 2x2 odds ratio with
    # the Haldane correction and its Wald interval); many of them go together, so they are not in the model
    tw = T[touch_keep].to_numpy(dtype=float) > 0 if touch_keep else np.zeros((len(yy), 0), dtype=bool)
    a_ = (tw & (yy == 1)[:, None]).sum(0) + 0.5
    b_ = (tw & (yy == 0)[:, None]).sum(0) + 0.5
    c_ = (~tw & (yy == 1)[:, None]).sum(0) + 0.5
    d_ = (~tw & (yy == 0)[:, None]).sum(0) + 0.5
    t_eff = np.log(a_ * d_ / (b_ * c_))
    t_se = np.sqrt(1 / a_ + 1 / b_ + 1 / c_ + 1 / d_)
    keep_all = keep + touch_keep
    coef = np.concatenate([coef, t_eff])
    lo_ = np.concatenate([lo_, t_eff - 1.959964 * t_se])
    hi_ = np.concatenate([hi_, t_eff + 1.959964 * t_se])
    collinear.update({c: [] for c in touch_keep})
    n_obs = pd.concat([n_obs, pd.Series(len(yy), index=touch_keep)])
    Xraw = pd.concat(frames + [T], axis=1)
    keep = keep_all
    out = pd.DataFrame({"feature": keep, "effect": coef, "ci_low": lo_, "ci_high": hi_,
                        "n_observed": n_obs.to_numpy().astype(int)})
    out["kind"] = [meta[c]["kind"] for c in keep]
    out["driver"] = [meta[c]["label"] for c in keep]
    out["stage"] = [meta[c]["stage"] for c in keep]
    out["measure"] = [meta[c]["measure"] for c in keep]
    out["role"] = np.where(out["kind"] == "control", "control", "driver")
    out["odds_ratio"] = np.exp(out["effect"])
    out["odds_ratio_ci_low"], out["odds_ratio_ci_high"] = np.exp(out["ci_low"]), np.exp(out["ci_high"])
    out["significant"] = (out["ci_low"] > 0) | (out["ci_high"] < 0)
    out["sign"] = np.sign(out["effect"]).astype(int)
    out["worse_raises_bad"] = np.where(out["kind"] == "experience", out["effect"] < 0, out["effect"] > 0)
    out.loc[out["role"] == "control", "worse_raises_bad"] = False
    out["collinear_with"] = ["; ".join(collinear[c]) for c in keep]

    # evidence in shares and rates: customers with the issue (a level, a touchpoint, poor experience...)
    bad = yy == 1
    issue, sb, sg, nb, ng, rw, rwo, ev_n = [], [], [], [], [], [], [], []
    for c, eff in zip(keep, out["effect"]):  # one row per feature (tens), each a vectorised mean
        mt = meta[c]
        x = Xraw[c]
        if mt["kind"] in ("experience", "time"):
            flags, text = _issue_flags(F, config, mt["stage"], mt["measure"])
        elif mt["kind"] == "control":
            flags, text = (x.fillna(0) > 0).astype(float), "reached it"
        elif mt["binary"]:
            flags = (x > 0).astype(float).where(x.notna())
            name = mt["measure"].split(":", 1)[-1]
            text = (f"had {name}" if mt["kind"] == "touchpoint" else f"used the {name} channel"
                    if mt["kind"] == "channel" else mt["label"])
        else:
            q75, q25 = x.quantile(0.75), x.quantile(0.25)
            if eff >= 0:
                flags, text = (x > q75).astype(float).where(x.notna()), f"{mt['label']} above {q75:,.4g}"
                if not (x > q75).any():
                    flags, text = (x >= q75).astype(float).where(x.notna()), f"{mt['label']} {q75:,.4g} or more"
            else:
                flags, text = (x < q25).astype(float).where(x.notna()), f"{mt['label']} below {q25:,.4g}"
                if not (x < q25).any():
                    flags, text = (x <= q25).astype(float).where(x.notna()), f"{mt['label']} {q25:,.4g} or less"
        issue.append(text)
        nobs = int(x.notna().sum()) if mt["kind"] != "control" else len(x)
        if flags is None:
            sb.append(np.nan); sg.append(np.nan); nb.append(0); ng.append(0); rw.append(np.nan); rwo.append(np.nan)
            ev_n.append(nobs)
            continue
        f = flags.to_numpy(dtype=float)
        has = ~np.isnan(f)
        nb.append(int((has & bad).sum())); ng.append(int((has & ~bad).sum()))
        sb.append(np.nanmean(f[has & bad]) if (has & bad).any() else np.nan)
        sg.append(np.nanmean(f[has & ~bad]) if (has & ~bad).any() else np.nan)
        w, wo = has & (f == 1), has & (f == 0)
        rw.append(float(yy[w].mean()) if w.any() else np.nan)
        rwo.append(float(yy[wo].mean()) if wo.any() else np.nan)
        ev_n.append(int(min(w.sum(), wo.sum())) if mt["binary"] else nobs)
    out["issue"], out["share_bad_with_issue"], out["share_good_with_issue"] = issue, sb, sg
    out["n_bad_with_evidence"], out["n_good_with_evidence"] = nb, ng
    out["rate_with_issue"], out["rate_without_issue"] = rw, rwo
    out["evidence_n"] = np.asarray(ev_n, dtype=int)
    out["thin_evidence"] = out["evidence_n"] < MIN_N
    out["confidence"] = confidence_from_interval(out["effect"], out["ci_low"], out["ci_high"], out["evidence_n"])
    out = out.drop(columns="feature")
    drivers = out[out["role"] == "driver"].copy()
    drivers["abs_effect"] = drivers["effect"].abs()
    # moments of truth (a stage's experience or time) first, then who the customers are (attributes), then
    # what happened below the stage (touchpoints, channels: compared directly); within each group the
    # well-evidenced first, then the significant, then by |effect|
    drivers["_group"] = drivers["kind"].map({"experience": 0, "time": 0, "attribute": 1}).fillna(2)
    drivers = drivers.sort_values(["_group", "thin_evidence", "significant", "abs_effect"],
                                  ascending=[True, True, False, False], kind="stable").drop(columns="_group")
    drivers["rank"] = np.arange(1, len(drivers) + 1)
    controls = out[out["role"] == "control"].assign(rank=np.nan)
    res = pd.concat([drivers.drop(columns="abs_effect"), controls], ignore_index=True)
    res["sentence"] = [_driver_sentence(r, config.outcome) for _, r in res.iterrows()]
    res = res[DRIVER_COLUMNS]
    res.attrs.update({
        "outcome": config.outcome, "n_customers": int(len(y)), "n_bad": int(bad.sum()), "base_rate_bad": base,
        "n_excluded_missing_outcome": n_missing, "excluded_stages": excluded, "n_boot": n_used,
        "interval": "bootstrap" if n_used else "wald",
        "missing_rule": "impute the mean of customers with evidence (standardised 0) + reached indicator as control",
        "experience": experience, "candidates": _records(candidates),
    })
    return res


def _records(frame: pd.DataFrame) -> list[dict]:
    """A small table as JSON-safe records (the drivers' attrs travel with the parquet artifact)."""
    return [{k: (None if (not isinstance(v, str) and pd.isna(v)) else v) for k, v in r.items()}
            for r in frame.astype(object).to_dict("records")]


def candidates_table(drivers: pd.DataFrame) -> pd.DataFrame:
    """Every candidate driver of :func:`moments_of_truth` (``drivers.attrs["candidates"]``) as a table:
    feature, kind, stage, driver, status ("tested" | "left out"), reason, model."""
    return pd.DataFrame(drivers.attrs.get("candidates") or [],
                        columns=["feature", "kind", "stage", "driver", "status", "reason", "model"])


def _one_blas_thread():
    """Context: one BLAS thread. The driver models' matrices are narrow (tens of columns): one thread is
    much faster than competing ones (at 91,000 x 26 the Wald fit took 15 CPU-s with two OpenBLAS
    threads on a loaded 2-core machine, 0.3 CPU-s with one)."""
    import contextlib

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(1)


def _fit_intervals(Z: np.ndarray, y: np.ndarray, C: float) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients of :func:`_logit_ridge` and their standard errors from the inverse Hessian of the
    penalised log-likelihood at the solution (Wald)."""
    w = _logit_ridge_w(Z, y, C)
    n, k = Z.shape
    A = np.hstack([np.ones((n, 1)), Z])
    p = 1.0 / (1.0 + np.exp(-np.clip(A @ w, -30, 30)))
    pen = np.full(k + 1, 1.0 / C)
    pen[0] = 0.0
    H = (A * (p * (1 - p))[:, None]).T @ A + np.diag(pen + 1e-9)
    se = np.sqrt(np.clip(np.diag(np.linalg.pinv(H)), 0, None))[1:]
    return w[1:], se


DRIVER_COLUMNS = ["rank", "kind", "driver", "stage", "measure", "role", "effect", "ci_low", "ci_high", "odds_ratio",
                  "odds_ratio_ci_low", "odds_ratio_ci_high", "significant", "sign", "worse_raises_bad", "n_observed", "evidence_n", "thin_evidence", "confidence",
                  "issue", "share_bad_with_issue", "share_good_with_issue", "n_bad_with_evidence",
                  "n_good_with_evidence", "rate_with_issue", "rate_without_issue", "collinear_with", "sentence"]


def _no_drivers(reason: str) -> pd.DataFrame:
    """The empty result of :func:`moments_of_truth` when there is no outcome to explain, with the reason."""
    out = pd.DataFrame({c: pd.Series(dtype=bool if c in ("significant", "worse_raises_bad", "thin_evidence") else
                                      object if c in ("kind", "driver", "stage", "measure", "role", "issue",
                                                      "collinear_with", "sentence") else float)
                        for c in DRIVER_COLUMNS})
    out.attrs["reason"] = reason
    return out


_MEASURE_WORDS = {"sentiment": "sentiment", "rating": "rating", "experience": "experience score",
                  "time_log_h": "time in the stage", "reached": "reaching it"}


def _driver_sentence(r, outcome) -> str:
    ow = _outcome_words(outcome)
    outcome_word, who, past = ow[0], ow[1], ow[2]
    ci = f"95% CI {np.exp(r['ci_low']):.2f}-{np.exp(r['ci_high']):.2f}"
    thin = (f" Thin evidence: {int(r['evidence_n'])} observations." if r.get("thin_evidence") else "")
    also = f" It stands for {r['collinear_with']} too (collinear)." if r.get("collinear_with") else ""
    rates = ""
    if pd.notna(r.get("rate_with_issue")) and pd.notna(r.get("rate_without_issue")):
        rates = f"{r['rate_with_issue']:.0%} {past} against {r['rate_without_issue']:.0%} of the others"
    if r["kind"] in ("experience", "time", "control"):
        stage = _title(r["stage"])
        what = _MEASURE_WORDS.get(r["measure"], r["measure"])
        head = (f"{stage} ({what}): one standard deviation more goes with {r['odds_ratio']:.2f}x the odds of "
                f"{outcome_word} ({ci})")
        if r["role"] == "control":
            return head + "; a control, not a driver (reaching a stage depends on staying)."
        if not r["significant"]:
            return head + "; not distinguishable from no effect." + thin + also
        tail = ""
        if pd.notna(r["share_bad_with_issue"]) and pd.notna(r["share_good_with_issue"]):
            tail = (f"; {r['share_bad_with_issue']:.0%} of {who} {r['issue']}, against "
                    f"{r['share_good_with_issue']:.0%} of the others")
        if r["kind"] == "time":
            verb = "a longer time here raises" if r["worse_raises_bad"] else "a longer time here lowers"
        else:
            verb = "a worse experience here raises" if r["worse_raises_bad"] else "a worse experience here lowers"
        return f"{head}: {verb} {outcome_word}{tail}." + thin + also
    label = r["driver"]
    if r["kind"] in ("touchpoint", "channel"):
        verdict = "" if r["significant"] else "; not distinguishable from no effect"
        return (f"{label[:1].upper() + label[1:]}: {rates} (odds ratio {r['odds_ratio']:.2f}, {ci}; compared "
                f"directly, not in the model){verdict}." + thin)
    per = "per standard deviation " if r["kind"] == "attribute" and not _is_binary_row(r) else ""
    head = f"{label[:1].upper() + label[1:]}: " + (f"customers with {r['issue']}: {rates}; " if per and rates else
                                                    (rates + "; " if rates else ""))
    odds = f"the odds of {outcome_word} are {r['odds_ratio']:.2f}x {per}with the other drivers held equal ({ci})"
    verdict = "" if r["significant"] else "; not distinguishable from no effect"
    return head + odds + verdict + "." + thin + also


def _is_binary_row(r) -> bool:
    return "=" in str(r["measure"]) or r["issue"] == r["driver"]


# ------------------------------------------------------------------------------------------------
# themes as drivers
# ------------------------------------------------------------------------------------------------
THEME_DRIVER_COLUMNS = ["rank", "kind", "theme", "stage", "language", "customers_with", "customers_without",
                        "bad_with", "bad_without", "rate_with", "rate_without", "rate_ratio", "rate_ratio_ci_low",
                        "rate_ratio_ci_high", "odds_ratio", "significant", "evidence_n", "thin_evidence",
                        "confidence", "sentence"]


def theme_drivers(feedback: pd.DataFrame | None, customers: pd.DataFrame | None, config,
                  members: pd.DataFrame | None = None, min_n: int = MIN_TESTED) -> pd.DataFrame:
    """Themes as drivers: the bad-outcome rate of customers whose feedback mentions a theme against the
    customers whose feedback does not.

    Customers compared: those with an outcome (:func:`outcome_is_bad` of ``config.outcome``) and at least
    one comment with text linked to them; a customer mentions a theme when any of their comments does
    (:func:`journey_analysis.themes.theme_members`, or ``members``). Per theme with at least ``min_n``
    customers on each side: ``rate_with`` / ``rate_without``, ``rate_ratio`` = their ratio with a 95%
    Wald interval on the log scale (se = sqrt(1/a - 1/n1 + 1/c - 1/n0); a zero cell gets 0.5 added to
    every cell, Haldane), ``odds_ratio`` (the 2x2 odds ratio with the Haldane correction, as touchpoints
    are compared), ``significant`` when the interval excludes 1, ``evidence_n`` = the smaller group,
    ``thin_evidence`` below :data:`MIN_N`, ``confidence`` = :func:`confidence_from_interval`. ``stage`` is
    where most of its mentions are. Ranked as drivers are: well-evidenced first, then significant, then
    |log rate ratio|; ``kind`` is "theme". Each row has a sentence ("Customers mentioning 'engineer'
    churned 2.3x as often (95% CI 1.9-2.8): 41% against 18% of the other customers with feedback.").
    ``attrs["summary"]``: how many themes go with more / less of the bad outcome beyond chance (thin
    evidence counted), and the sentences of the first three (in rank order) that go with more. Without an outcome or customers: an empty frame
    with ``attrs["reason"]``.
    """
    from scipy import sparse

    from journey_analysis import themes

    empty = pd.DataFrame({c: pd.Series(dtype=bool if c in ("significant", "thin_evidence") else object)
                          for c in THEME_DRIVER_COLUMNS})
    if not getattr(config, "outcome", None) or customers is None or config.outcome not in customers.columns:
        empty.attrs["reason"] = "No outcome per customer: no theme drivers."
        return empty
    if feedback is None or len(feedback) == 0 or "text" not in feedback.columns or "customer_id" not in feedback.columns:
        empty.attrs["reason"] = "No feedback text linked to customers: no theme drivers."
        return empty
    fb = feedback[feedback["customer_id"].notna()].copy()
    fb = fb[fb["text"].astype("string").fillna("").str.strip() != ""]
    if "feedback_id" not in fb.columns:
        fb["feedback_id"] = fb.index.astype(str)
    fb["feedback_id"] = fb["feedback_id"].astype(str)
    y = outcome_is_bad(customers[config.outcome], config.outcome_good)
    y.index = customers["customer_id"].astype(str)
    y = y[~y.index.duplicated(keep="last")].dropna()
    fb["customer_id"] = fb["customer_id"].astype(str)
    fb = fb[y.index.get_indexer(fb["customer_id"]) >= 0]  # isin(y.index): a hash lookup, not a pyarrow scalar per id
    mem = themes.theme_members(fb) if members is None else members
    if fb.empty or mem.empty:
        empty.attrs["reason"] = "No themes in the feedback of customers with an outcome."
        return empty
    j = mem.merge(fb[["feedback_id", "customer_id", *([c for c in ["stage"] if c in fb.columns])]], on="feedback_id")
    cust = pd.Index(fb["customer_id"].unique())
    ci = cust.get_indexer(j["customer_id"])
    tcode, tnames = pd.factorize(j["theme"])
    M = sparse.csr_matrix((np.ones(len(j)), (ci, tcode)), shape=(len(cust), len(tnames)))
    M.data[:] = 1
    M.sum_duplicates()
    M.data[:] = 1
    bad = y.reindex(cust).to_numpy(dtype=float)
    n1 = np.asarray(M.sum(0)).ravel()
    a = bad @ M
    n = len(cust)
    n0 = n - n1
    c = bad.sum() - a
    keep = (n1 >= min_n) & (n0 >= min_n)
    if not keep.any():
        empty.attrs["reason"] = f"No theme mentioned by {min_n} customers or more on each side."
        return empty
    out = pd.DataFrame({"theme": tnames, "customers_with": n1.astype(int), "customers_without": n0.astype(int),
                        "bad_with": a.astype(int), "bad_without": c.astype(int)})[keep].reset_index(drop=True)
    a, c, n1, n0 = (out[k].to_numpy(dtype=float) for k in ("bad_with", "bad_without", "customers_with", "customers_without"))
    zero = (a == 0) | (c == 0) | (a == n1) | (c == n0)
    h = np.where(zero, 0.5, 0.0)
    ah, ch, n1h, n0h = a + h, c + h, n1 + 2 * h, n0 + 2 * h
    out["rate_with"], out["rate_without"] = a / n1, c / n0
    log_rr = np.log((ah / n1h) / (ch / n0h))
    se = np.sqrt(1 / ah - 1 / n1h + 1 / ch - 1 / n0h)
    out["rate_ratio"] = np.exp(log_rr)
    out["rate_ratio_ci_low"], out["rate_ratio_ci_high"] = np.exp(log_rr - 1.959964 * se), np.exp(log_rr + 1.959964 * se)
    out["odds_ratio"] = ((a + 0.5) * (n0 - c + 0.5)) / ((n1 - a + 0.5) * (c + 0.5))
    out["significant"] = (out["rate_ratio_ci_low"] > 1) | (out["rate_ratio_ci_high"] < 1)
    out["evidence_n"] = np.minimum(n1, n0).astype(int)
    out["thin_evidence"] = out["evidence_n"] < MIN_N
    out["confidence"] = confidence_from_interval(log_rr, log_rr - 1.959964 * se, log_rr + 1.959964 * se,
                                                 out["evidence_n"])
    lang = mem.drop_duplicates("theme").set_index("theme")["language"]
    out["language"] = out["theme"].map(lang)
    if "stage" in j.columns:
        st = j.dropna(subset=["stage"]).groupby(["theme", "stage"]).size().rename("n").reset_index()
        st = st.sort_values(["theme", "n", "stage"], ascending=[True, False, True]).drop_duplicates("theme")
        out["stage"] = out["theme"].map(st.set_index("theme")["stage"])
    else:
        out["stage"] = None
    out["kind"] = "theme"
    past = _outcome_words(config.outcome)[2]
    out["_abs"] = np.abs(log_rr)
    out = out.sort_values(["thin_evidence", "significant", "_abs", "theme"], ascending=[True, False, False, True],
                          kind="stable").reset_index(drop=True)
    out["rank"] = np.arange(1, len(out) + 1)
    out["sentence"] = [_theme_sentence(r, past) for r in out.itertuples()]
    out = out[THEME_DRIVER_COLUMNS]
    worse = out[out["significant"] & (out["rate_ratio"] > 1)]
    better = out[out["significant"] & (out["rate_ratio"] < 1)]
    thin = int(worse["thin_evidence"].sum())
    summary = (f"Of {len(out)} themes compared ({n:,} customers with comments), customers mentioning {len(worse)} "
               f"of them {past} more often than the others"
               + (f" ({thin} of these on fewer than {MIN_N} customers: thin evidence)" if thin else "")
               + f" and {len(better)} less often, beyond chance (95% interval).")
    if len(worse):
        summary += "\n\n" + "\n".join("- " + t for t in worse["sentence"].head(3))
    out.attrs.update({"outcome": config.outcome, "n_customers": n, "base_rate_bad": float(bad.mean()),
                      "summary": summary})
    return out


def _theme_sentence(r, past: str) -> str:
    ci = f"95% CI {r.rate_ratio_ci_low:.2f}-{r.rate_ratio_ci_high:.2f}"
    rates = f"{r.rate_with:.0%} against {r.rate_without:.0%} of the other customers with feedback"
    where = f" (mostly at {_title(r.stage)})" if isinstance(r.stage, str) and r.stage else ""
    head = (f"Customers mentioning '{r.theme}'{where} {past} {r.rate_ratio:.1f}x as often ({ci}): {rates}; "
            f"{r.customers_with:,} customers mention it")
    verdict = "" if r.significant else "; not distinguishable from no difference"
    thin = f" Thin evidence: {r.evidence_n} customers." if r.thin_evidence else ""
    return head + verdict + "." + thin


# ------------------------------------------------------------------------------------------------
# expectation gaps
# ------------------------------------------------------------------------------------------------
def expectation_gaps(journey_map: pd.DataFrame, config, segment: str = ALL) -> pd.DataFrame:
    """Expected (config, assumed) versus actual (data) per stage, for duration and satisfaction.

    duration: actual = stage_time_median_h (time in the stage per visit), expected = expected_max_duration_h,
    gap_h = actual - expected, ratio = actual / expected, share_over = share of visits above the expectation; ``flagged`` when
    the median exceeds the expectation. satisfaction: actual = satisfaction_mean (CI), expected =
    target_satisfaction, gap = actual - target; ``flagged`` when the mean is below target, ``significant``
    when the whole 95% CI is below it. ``severity`` (for sorting): ratio - 1 for duration, (target - mean)
    / (target - scale min) for satisfaction. ``evidence_n`` = n; ``confidence`` from the interval: for
    satisfaction 2 Phi(|gap| / se) - 1 with se from the mean's 95% CI; for duration the same for the share of
    visits over the expectation against one half (se = sqrt(0.25 / n)); capped at 0.5 when n < 30
    (``thin_evidence``). Output: segment, stage, kind, expected, actual, gap, ratio, share_over, n, ci_low,
    ci_high, flagged, significant, severity, evidence, low_confidence, evidence_n, thin_evidence, confidence,
    expectation_source.
    """
    m = map_segment(journey_map, segment)
    d = m[m["expected_max_duration_h"].notna() & (m["stage_time_n"] > 0)]
    dur = pd.DataFrame({
        "segment": segment, "stage": d["stage"], "kind": "duration", "expected": d["expected_max_duration_h"],
        "actual": d["stage_time_median_h"], "gap": d["duration_gap_h"], "ratio": d["duration_ratio"],
        "share_over": d["stage_time_share_over_expected"], "n": d["stage_time_n"], "ci_low": np.nan, "ci_high": np.nan})
    dur["flagged"] = dur["actual"] > dur["expected"]
    dur["significant"] = dur["flagged"] & (dur["share_over"] > 0.5) & (dur["n"] >= MIN_N)
    dur["severity"] = dur["ratio"] - 1
    dur["evidence"] = [
        f"{_title(s)}: median time in the stage {_fmt_h(a)} per visit against an expected maximum of {_fmt_h(e)} "
        f"({r:.1f}x; {so:.0%} of {int(n)} visits over it)" for s, a, e, r, so, n in
        zip(dur["stage"], dur["actual"], dur["expected"], dur["ratio"], dur["share_over"], dur["n"])]
    s = m[m["target_satisfaction"].notna() & (m["satisfaction_n"] > 0)]
    lo = config.satisfaction.min
    sat = pd.DataFrame({
        "segment": segment, "stage": s["stage"], "kind": "satisfaction", "expected": s["target_satisfaction"],
        "actual": s["satisfaction_mean"], "gap": s["satisfaction_gap"],
        "ratio": s["satisfaction_mean"] / s["target_satisfaction"], "share_over": np.nan, "n": s["satisfaction_n"],
        "ci_low": s["satisfaction_ci_low"], "ci_high": s["satisfaction_ci_high"]})
    sat["flagged"] = sat["actual"] < sat["expected"]
    sat["significant"] = sat["ci_high"] < sat["expected"]
    sat["severity"] = ((sat["expected"] - sat["actual"]) / (sat["expected"] - lo)).where(sat["expected"] > lo, 0)
    rt = config.satisfaction.rating_type
    sat["evidence"] = [
        f"{_title(st)}: {rt} {a:.2f} (95% CI {cl:.2f}-{ch:.2f}, n={int(n)}) against a target of {e:g}"
        for st, a, cl, ch, n, e in zip(sat["stage"], sat["actual"], sat["ci_low"], sat["ci_high"], sat["n"], sat["expected"])]
    out = pd.concat([x for x in (dur, sat) if len(x)], ignore_index=True) if len(dur) or len(sat) else dur
    out["low_confidence"] = out["n"] < MIN_N
    out["evidence_n"] = out["n"].fillna(0).astype(int)
    out["thin_evidence"] = out["low_confidence"]
    from scipy.stats import norm

    with np.errstate(invalid="ignore", divide="ignore"):
        z_dur = np.abs(out["share_over"] - 0.5) / np.sqrt(0.25 / out["n"])
        z_sat = np.abs(out["gap"]) / ((out["ci_high"] - out["ci_low"]) / (2 * 1.959964))
    conf = np.where(out["kind"] == "duration", 2 * norm.cdf(z_dur) - 1, 2 * norm.cdf(z_sat) - 1)
    conf = np.nan_to_num(conf, nan=0.0)
    out["confidence"] = np.where(out["thin_evidence"], np.minimum(conf, 0.5), conf)
    out["expectation_source"] = "config"
    out = out.sort_values(["flagged", "severity"], ascending=[False, False], kind="stable").reset_index(drop=True)
    return out


# ------------------------------------------------------------------------------------------------
# recommendations
# ------------------------------------------------------------------------------------------------
#: Weights of the impact of a recommendation (pain score, driver effect, expectation gap), each scaled 0-1.
IMPACT_WEIGHTS = {"pain": 0.4, "driver": 0.4, "gap": 0.2}


def _objective_phrase(objective: str) -> str:
    """The lead-in tying a recommendation to the objective: "To reduce churn" when the objective starts
    with a verb ("Reduce churn"), "For fewer late deliveries" otherwise ("Fewer late deliveries")."""
    o = str(objective).strip().rstrip(".")
    if not o:
        return "To improve the journey"
    first = o.split()[0].lower()
    o = o[:1].lower() + o[1:] if not (len(first) > 1 and o.split()[0].isupper()) else o
    return ("To " if first in _VERBS else "For ") + o


#: Objective words read as a verb ("Reduce churn" -> "To reduce churn").
_VERBS = {"reduce", "increase", "improve", "cut", "raise", "lower", "keep", "make", "get", "speed", "grow",
          "retain", "stop", "prevent", "avoid", "boost", "decrease", "shorten", "halve", "double", "win", "help",
          "deliver", "resolve", "close", "convert", "fix", "minimise", "minimize", "maximise", "maximize",
          "understand", "find", "eliminate", "simplify", "limit"}

#: Words for an action at a stage ({stage} is filled in).
_ACTIONS = {"cut the wait": "cut the time customers spend at {stage}", "fix the experience": "fix the experience at {stage}",
            "stop the drop-off": "stop the drop-off at {stage}", "fix it first time": "get {stage} right the first time",
            "look closer at": "look closer at {stage}", "review the experience": "review the experience at {stage}",
            "fix the touchpoint": "fix the {touchpoint} touchpoint at {stage}", "target": "act for customers with {label}"}
#: A measure whose issue is shared by at least this share of customers barely varies: no effect can show.
BARELY_VARIES = 0.85


def recommendations(pain_points: pd.DataFrame, drivers: pd.DataFrame | None, gaps: pd.DataFrame | None,
                    journey_map: pd.DataFrame | None, config, segment: str = ALL, top: int | None = None) -> pd.DataFrame:
    """A prioritised list of actions, each a plain sentence with its evidence, tied to ``config.objective``.

    Candidates: each stage with a significant driver (``drivers`` from :func:`moments_of_truth`: the
    experience, time or a touchpoint there, worse / longer / having it raising the bad outcome), a flagged
    expectation gap or one of the three largest pain scores (a touchpoint, compared directly, only adds
    detail "inside the stage" of a stage with a lever); and each significant customer-attribute driver
    that raises the bad outcome in the model and in the plain rates ("act for customers with ..."). **Significance discipline**:
    ``lever`` is True only when the action rests on a significant driver, and the sentence calls it a lever
    for the outcome; otherwise it is an experience fix and says so, and says why the data cannot show an
    effect when the stage's measure barely varies (at least :data:`BARELY_VARIES` of the customers with
    evidence have the issue) or what the driver's interval was.

    ``impact`` = 0.4 x pain_score / largest pain score + 0.4 x |driver effect| / largest |effect| + 0.2 x
    min(gap severity, 1) (:data:`IMPACT_WEIGHTS`); ``reach`` = share_customers (for an attribute: the share
    of customers with it); ``evidence_n`` = the observations behind the finding it rests on (the driver's,
    else the gap's, else the pain point's); ``confidence`` = that finding's confidence (a driver's or
    satisfaction gap's from its interval, a duration gap's or pain point's from its n; halved for an
    experience fix); ``thin_evidence`` when evidence_n < 30 (confidence then at most 0.5, and ranked after
    every well-evidenced recommendation). ``priority`` = impact x reach x confidence. Output sorted by
    (thin_evidence, priority): rank, segment, stage, action, lever, priority, impact, reach, confidence,
    evidence_n, thin_evidence, evidence, themes, sentence.
    """
    m = map_segment(journey_map, segment).set_index("stage") if journey_map is not None else pd.DataFrame()
    pp = pain_points.set_index("stage") if pain_points is not None and len(pain_points) else \
        pd.DataFrame(columns=["pain_score", "reasons", "evidence_n", "confidence"])
    max_pain = float(pp["pain_score"].max()) if len(pp) else 0.0
    D = drivers if drivers is not None and len(drivers) else pd.DataFrame(columns=DRIVER_COLUMNS)
    if "kind" not in D.columns:  # an older drivers table: stage experience only
        D = D.assign(kind="experience", driver=D["stage"], evidence_n=D.get("n_observed", 0), thin_evidence=False,
                     confidence=0.95, rate_with_issue=np.nan, rate_without_issue=np.nan)
    drv_all = D[D["role"] == "driver"]
    sig = drv_all[drv_all["significant"].astype(bool) & drv_all["worse_raises_bad"].astype(bool)]
    model = drv_all[drv_all["kind"].isin(["experience", "time", "attribute"])]
    max_eff = float(model["effect"].abs().max()) if len(model) else 0.0
    gp = gaps[gaps["flagged"]] if gaps is not None and len(gaps) else pd.DataFrame(columns=["stage"])
    # a touchpoint (compared directly, not in the model) adds detail inside a stage with a lever, never a
    # lever on its own
    stage_sig = sig[sig["stage"].notna() & sig["kind"].isin(["experience", "time", "touchpoint"])]
    stage_sig = stage_sig[stage_sig["stage"].isin(stage_sig.loc[stage_sig["kind"] != "touchpoint", "stage"])]
    stages = list(dict.fromkeys(stage_sig["stage"])) + [s for s in pp.index[:3] if pp.loc[s, "pain_score"] > 0] \
        + list(gp["stage"])
    stages = [s for s in dict.fromkeys(stages) if s in m.index]
    outcome_word, who, past = _outcome_words(config.outcome)
    lead = _objective_phrase(config.objective)
    rows = []
    for s in stages:  # one candidate per stage (a handful)
        r = m.loc[s]
        d = stage_sig[stage_sig["stage"] == s].assign(_below=lambda x: x["kind"] == "touchpoint",
                                                      _abs=lambda x: -x["effect"].abs())
        d = d.sort_values(["_below", "_abs"], kind="stable")
        inside = d[d["kind"] == "touchpoint"]
        g = gp[gp["stage"] == s]
        pain = float(pp.loc[s, "pain_score"]) if s in pp.index else 0.0
        eff = float(abs(d["effect"].iloc[0])) if len(d) else 0.0
        sev = float(min(g["severity"].max(), 1.0)) if len(g) else 0.0
        impact = (IMPACT_WEIGHTS["pain"] * (pain / max_pain if max_pain else 0.0)
                  + IMPACT_WEIGHTS["driver"] * (eff / max_eff if max_eff else 0.0) + IMPACT_WEIGHTS["gap"] * max(sev, 0.0))
        evidence, action, touch = [], None, None
        lever = len(d) > 0
        if lever:
            top_d = d.iloc[0]
            if top_d["kind"] == "touchpoint":
                action, touch = "fix the touchpoint", top_d["measure"].split(":", 1)[1]
            else:
                action = "cut the wait" if top_d["kind"] == "time" else "fix the experience"
            if pd.notna(top_d["rate_with_issue"]) and pd.notna(top_d["rate_without_issue"]):
                evidence.append(f"{top_d['rate_with_issue']:.0%} of customers who {top_d['issue']} {past}, against "
                                f"{top_d['rate_without_issue']:.0%} of the others")
            per = "for those who had it" if top_d["kind"] == "touchpoint" else "per sd"
            evidence.append(f"the odds of {outcome_word} are x{np.exp(abs(top_d['effect'])):.2f} {per} "
                            f"({top_d['driver']}; 95% CI excludes 1)")
            if top_d["kind"] != "touchpoint" and len(inside):
                t_ = inside.iloc[0]
                evidence.insert(1, f"inside the stage, {t_['rate_with_issue']:.0%} of customers who {t_['issue']} "
                                   f"{past}, against {t_['rate_without_issue']:.0%} of the others")
            ev_n, conf = int(top_d["evidence_n"]), float(top_d["confidence"])
        for _, gr in g.iterrows():
            evidence.append(gr["evidence"].split(": ", 1)[-1])
            if action is None:
                action = "cut the wait" if gr["kind"] == "duration" else "fix the experience"
        if s in pp.index and pp.loc[s, "reasons"]:
            if not evidence:
                evidence.append(pp.loc[s, "reasons"].split("; ")[0])
            if action is None:
                main = pp.loc[s, [c for c in pp.columns if c.startswith("contrib_")]].astype(float).idxmax()
                action = {"contrib_over_time": "cut the wait", "contrib_drop_off": "stop the drop-off",
                          "contrib_rework": "fix it first time",
                          # many customers pass through, nothing measured is wrong there (yet)
                          "contrib_volume": "look closer at"}.get(main, "fix the experience")
        action = action or "review the experience"
        if action == "look closer at" and bool(r.get("terminal", False)):
            continue  # many customers end their journey here and nothing measured is wrong: nothing to do
        if not lever:
            if len(g):
                gr = g.iloc[0]
                ev_n, conf = int(gr["evidence_n"]), float(gr["confidence"])
            elif s in pp.index:
                ev_n, conf = int(pp.loc[s, "evidence_n"]), float(pp.loc[s, "confidence"])
            else:
                ev_n, conf = int(r["customers"]), float(confidence_from_n(r["customers"]))
            conf = conf / 2
        thin = ev_n < MIN_N
        conf = min(conf, 0.5) if thin else conf
        reach = float(r["share_customers"]) if pd.notna(r["share_customers"]) else 0.0
        themes = r.get("themes_negative") if isinstance(r.get("themes_negative"), str) else ""
        what = _ACTIONS[action].format(stage=_title(s), touchpoint=touch, label="")
        if lever:
            sentence = f"{lead}: {what}, a lever for {outcome_word}: " + "; ".join(evidence[:3]) + "."
        else:
            sentence = (f"{lead}: {what}; " + "; ".join(evidence[:3]) + ". "
                        + _not_a_lever(drv_all, s, outcome_word))
        if themes:
            sentence += f" Customers mention: {', '.join(t.split(' (')[0] for t in themes.split('; ')[:3])}."
        if thin:
            sentence += f" Thin evidence ({ev_n} observations)."
        rows.append({"stage": s, "action": action, "lever": lever, "impact": impact, "reach": reach,
                     "confidence": conf, "evidence_n": ev_n, "thin_evidence": thin,
                     "priority": impact * reach * conf, "evidence": "; ".join(evidence), "themes": themes,
                     "sentence": sentence})
    # customer attributes and channels that raise the bad outcome: act for those customers
    agree = sig["rate_with_issue"] > sig["rate_without_issue"]  # the plain rates point the same way
    for _, d in sig[(sig["kind"] == "attribute") & agree].iterrows():  # significant drivers (a handful)
        impact = IMPACT_WEIGHTS["driver"] * (abs(d["effect"]) / max_eff if max_eff else 0.0)
        has = d["n_bad_with_evidence"] + d["n_good_with_evidence"]
        reach = float((d["share_bad_with_issue"] * d["n_bad_with_evidence"] + d["share_good_with_issue"]
                       * d["n_good_with_evidence"]) / has) if has else 0.0
        ev_n, conf = int(d["evidence_n"]), float(d["confidence"])
        thin = ev_n < MIN_N
        conf = min(conf, 0.5) if thin else conf
        ev = (f"{d['rate_with_issue']:.0%} of customers with {d['issue']} {past}, against "
              f"{d['rate_without_issue']:.0%} of the others" if pd.notna(d["rate_with_issue"]) else d["sentence"])
        ev += f"; the odds of {outcome_word} are x{np.exp(abs(d['effect'])):.2f} (95% CI excludes 1)"
        sentence = f"{lead}: act for customers with {d['issue']}, a lever for {outcome_word}: {ev}."
        if d.get("collinear_with"):
            sentence += f" ({d['driver']} stands for {d['collinear_with']} too.)"
        rows.append({"stage": None, "action": "target", "lever": True, "impact": impact, "reach": reach,
                     "confidence": conf, "evidence_n": ev_n, "thin_evidence": thin, "priority": impact * reach * conf,
                     "evidence": ev, "themes": "", "sentence": sentence})
    cols = ["stage", "action", "lever", "impact", "reach", "confidence", "evidence_n", "thin_evidence", "priority",
            "evidence", "themes", "sentence"]
    out = pd.DataFrame(rows, columns=cols)
    out = out.sort_values(["thin_evidence", "priority"], ascending=[True, False], kind="stable").reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    out.insert(1, "segment", segment)
    return out.head(top) if top else out


def _not_a_lever(drivers: pd.DataFrame, stage: str, outcome_word: str) -> str:
    """Why an action at ``stage`` is an experience fix rather than a proven lever for the outcome."""
    d = drivers[(drivers["stage"] == stage) & drivers["kind"].isin(["experience", "time"])] if len(drivers) else drivers
    if not len(drivers):
        return "An experience fix: there is no outcome to test it against."
    if not len(d):
        return f"An experience fix: nothing measured here was tested against {outcome_word}."
    d = d.sort_values("effect", key=np.abs, ascending=False).iloc[0]
    n_b, n_g = d["n_bad_with_evidence"], d["n_good_with_evidence"]
    share = ((d["share_bad_with_issue"] * n_b + d["share_good_with_issue"] * n_g) / (n_b + n_g)
             if (n_b + n_g) and pd.notna(d["share_bad_with_issue"]) and pd.notna(d["share_good_with_issue"]) else np.nan)
    if pd.notna(share) and share >= BARELY_VARIES:
        return (f"An experience fix, not a proven lever for {outcome_word}: nearly everyone here {d['issue']} "
                f"({share:.0%}), so the data cannot show whether it changes {outcome_word}.")
    if d["significant"]:
        return (f"An experience fix, not a lever for {outcome_word}: a worse {_MEASURE_WORDS.get(d['measure'], d['measure'])} "
                f"here does not raise it (odds x{d['odds_ratio']:.2f}, 95% CI {np.exp(d['ci_low']):.2f}-{np.exp(d['ci_high']):.2f}).")
    return (f"An experience fix, not a proven lever for {outcome_word}: its driver is not significant "
            f"(odds x{d['odds_ratio']:.2f} per sd, 95% CI {np.exp(d['ci_low']):.2f}-{np.exp(d['ci_high']):.2f}).")


# ------------------------------------------------------------------------------------------------
# segment comparison
# ------------------------------------------------------------------------------------------------
#: Metrics compared between segments: metric -> (kind, n column, sd column or count column).
COMPARE_METRICS = {
    "share_customers": ("proportion", "segment_customers", "customers"),
    "drop_off": ("proportion", "customers", "drop_off_customers"),
    "rework_share": ("proportion", "customers", "rework_customers"),
    "dwell_mean_h": ("mean", "dwell_n", "dwell_std_h"),
    "satisfaction_mean": ("mean", "satisfaction_n", "satisfaction_sd"),
    "sentiment_mean": ("mean", "sentiment_n", "sentiment_sd"),
    "sentiment_share_negative": ("proportion", "sentiment_n", "sentiment_negative_n"),
}


def compare_segments(journey_map: pd.DataFrame, metrics=None, z: float = 1.96) -> pd.DataFrame:
    """The same stage metrics side by side for every segment, each against the rest of the customers.

    For each segment (not "All customers"), stage and metric: ``value`` (the segment), ``rest`` (every
    other customer, derived from the "All customers" row minus the segment: counts for proportions, sums
    and sums of squares for means), ``diff`` = value - rest, ``se`` (two-sample standard error: pooled
    proportion for proportions, sqrt(s1^2/n1 + s2^2/n2) for means), ``z`` = diff / se, ``differs`` when
    |z| > ``z`` (1.96: a two-sided 5% test) and both sides have n >= 2; ``marker`` "+" / "-" / "".
    Use :func:`compare_segments_wide` for one column per segment. Vectorised over the whole map.
    """
    metrics = list(metrics or COMPARE_METRICS)
    allm = journey_map[journey_map["segment"] == ALL].set_index("stage")
    segs = journey_map[journey_map["segment"] != ALL]
    rows = []
    for metric in metrics:  # a handful of metrics, each vectorised over segments x stages
        kind, ncol, aux = COMPARE_METRICS[metric]
        a = allm.reindex(segs["stage"])
        n1 = segs[ncol].to_numpy(float)
        nA = a[ncol].to_numpy(float)
        n2 = nA - n1
        v1 = segs[metric].to_numpy(float)
        if kind == "proportion":
            k1 = segs[aux].to_numpy(float)
            k2 = a[aux].to_numpy(float) - k1
            with np.errstate(invalid="ignore", divide="ignore"):
                v2 = k2 / n2
                p = (k1 + k2) / (n1 + n2)
                se = np.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
        else:
            s1 = segs[aux].to_numpy(float)
            mA, sA = a[metric].to_numpy(float), a[aux].to_numpy(float)
            with np.errstate(invalid="ignore", divide="ignore"):
                sum2 = nA * mA - n1 * v1
                v2 = sum2 / n2
                ss_all = (nA - 1) * sA ** 2 + nA * mA ** 2
                ss1 = (n1 - 1) * np.nan_to_num(s1) ** 2 + n1 * v1 ** 2
                var2 = (ss_all - ss1 - n2 * v2 ** 2) / (n2 - 1)
                se = np.sqrt(s1 ** 2 / n1 + np.clip(var2, 0, None) / n2)
        with np.errstate(invalid="ignore", divide="ignore"):
            zz = (v1 - v2) / se
        ok = (n1 >= 2) & (n2 >= 2) & np.isfinite(zz)
        part = pd.DataFrame({"segment": segs["segment"].to_numpy(), "stage": segs["stage"].to_numpy(),
                             "stage_order": segs["stage_order"].to_numpy(), "metric": metric, "value": v1,
                             "n": n1, "rest": v2, "rest_n": n2, "diff": v1 - v2, "se": se, "z": zz})
        part["differs"] = ok & (np.abs(zz) > z)
        part["marker"] = np.where(part["differs"], np.where(part["diff"] > 0, "+", "-"), "")
        rows.append(part)
    out = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    return out.sort_values(["metric", "stage_order", "segment"], kind="stable").reset_index(drop=True)


def compare_segments_wide(comparison: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One metric of :func:`compare_segments` as stages x segments, values with their marker ("3.1 -")."""
    c = comparison[comparison["metric"] == metric].copy()
    c["cell"] = c["value"].round(3).astype(str) + c["marker"].radd(" ").where(c["marker"] != "", "")
    return c.pivot_table(index=["stage_order", "stage"], columns="segment", values="cell", aggfunc="first") \
        .reset_index(level=0, drop=True)


# ------------------------------------------------------------------------------------------------
# testing the experience
# ------------------------------------------------------------------------------------------------
def test_experience(observations: pd.DataFrame, journey_map: pd.DataFrame, segment: str = ALL,
                    factor: float = 2.0) -> pd.DataFrame:
    """Compare mystery-shopper / test-call observations with what the map says.

    ``observations``: one row per test, columns ``stage``, ``channel``, ``when`` (date-time or text),
    ``wait_s`` (how long until an answer, seconds; ``wait_min`` or ``wait_h`` accepted), ``who`` (whom
    they dealt with), ``notes``. Compared with the map's row for the stage: the reference time is the
    service median where the data has service times (how long an interaction takes), else the dwell
    median; flags: "stage not in the map", "channel not seen in the data at this stage", "wait over the
    map's p90", "wait over {factor}x the map's median", "wait under the map's median / {factor}"
    (the data may overstate the wait), "over the expected maximum in the config". Output: observations
    plus map_reference ("service" | "dwell"), map_median_s, map_p90_s, ratio_to_median, map_channels,
    expected_max_s, flags (text), differs (bool), finding (sentence).
    """
    if observations is None or len(observations) == 0:
        raise JourneyError("No test observations given.", expected="a table with stage, channel, when, wait_s, who, notes",
                           fix="Record at least one mystery-shopper visit or test call.")
    obs = observations.copy()
    if "stage" not in obs.columns:
        raise JourneyError("The observations have no 'stage' column.", column="stage",
                           expected="stage, channel, when, wait_s, who, notes")
    if "wait_s" not in obs.columns:
        if "wait_min" in obs.columns:
            obs["wait_s"] = pd.to_numeric(obs["wait_min"], errors="coerce") * 60
        elif "wait_h" in obs.columns:
            obs["wait_s"] = pd.to_numeric(obs["wait_h"], errors="coerce") * 3600
        else:
            obs["wait_s"] = np.nan
    obs["wait_s"] = pd.to_numeric(obs["wait_s"], errors="coerce")
    for c in ("channel", "when", "who", "notes"):
        if c not in obs.columns:
            obs[c] = None
    m = map_segment(journey_map, segment).set_index("stage")
    known = obs["stage"].isin(m.index)
    ref = m.reindex(obs["stage"])
    use_service = ref["service_n"].fillna(0).to_numpy() > 0
    obs["map_reference"] = np.where(known, np.where(use_service, "service", "dwell"), None)
    obs["map_median_s"] = np.where(use_service, ref["service_median_s"], ref["dwell_median_s"])
    obs["map_p90_s"] = np.where(use_service, ref["service_p90_s"], ref["dwell_p90_s"])
    obs["ratio_to_median"] = obs["wait_s"] / obs["map_median_s"]
    obs["map_channels"] = ref["channels"].to_numpy() if "channels" in ref.columns else None
    obs["expected_max_s"] = (ref["expected_max_duration_h"] * 3600).to_numpy()
    ch = obs["channel"].astype(str).str.lower()
    seen = pd.Series([isinstance(mc, str) and c in [x.rsplit(" ", 1)[0].lower() for x in mc.split(", ")]
                      for c, mc in zip(ch, obs["map_channels"])], index=obs.index)
    flags = []
    for i in range(len(obs)):  # observations are a handful of test calls
        f = []
        o = obs.iloc[i]
        if not known.iloc[i]:
            f.append("stage not in the map")
        else:
            if o["channel"] is not None and isinstance(o["map_channels"], str) and not seen.iloc[i]:
                f.append(f"channel {o['channel']} not among the main channels in the data ({o['map_channels']})")
            w, med, p90 = o["wait_s"], o["map_median_s"], o["map_p90_s"]
            if pd.notna(w) and pd.notna(med):
                if pd.notna(p90) and w > p90:
                    f.append(f"wait {_fmt_h(w / 3600)} is over the map's p90 ({_fmt_h(p90 / 3600)})")
                elif w > factor * med:
                    f.append(f"wait {_fmt_h(w / 3600)} is over {factor:g}x the map's median ({_fmt_h(med / 3600)})")
                elif med > 0 and w < med / factor:
                    f.append(f"wait {_fmt_h(w / 3600)} is under half the map's median ({_fmt_h(med / 3600)}): "
                             "the data may overstate this wait, or the test was lucky")
            if pd.notna(w) and pd.notna(o["expected_max_s"]) and w > o["expected_max_s"]:
                f.append(f"over the expected maximum in the config ({_fmt_h(o['expected_max_s'] / 3600)})")
        flags.append("; ".join(f))
    obs["flags"] = flags
    obs["differs"] = obs["flags"] != ""
    obs["finding"] = [
        (f"Test at {_title(s)} ({c}): " + (fl if fl else "consistent with the map") + ".")
        for s, c, fl in zip(obs["stage"], obs["channel"], obs["flags"])]
    return obs
