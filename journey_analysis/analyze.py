"""Analysis of the journey map: pain points, moments of truth, expectation gaps, recommendations.

Owns :func:`pain_points` (stages ranked by a transparent weighted score), :func:`moments_of_truth`
(driver analysis of the configured outcome: standardised logistic regression with bootstrap intervals),
:func:`expectation_gaps` (expected versus actual duration and satisfaction), :func:`recommendations`
(impact x reach x confidence, tied to the config's objective), :func:`compare_segments` (segments side
by side, differences marked when larger than their uncertainty) and :func:`test_experience`
(mystery-shopper / test-call observations against the map). Every output row carries its evidence in
numbers and a sentence in words. scikit-learn and scipy are imported inside the functions.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from journey_analysis.errors import JourneyError
from journey_analysis.journey_map import ALL, MIN_N, NEGATIVE_BELOW, _event_dwell, map_segment

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


def _outcome_words(outcome) -> tuple[str, str]:
    """("churning", "customers who churned") for outcome "churned"; generic words otherwise."""
    o = str(outcome or "the outcome").replace("_", " ")
    if o.endswith("ed") and " " not in o:
        stem = o[:-2]
        if stem.endswith("nn") or stem.endswith("ll") and not o.endswith("lled"):
            stem = stem[:-1]
        return stem + "ing", f"customers who {o}"
    return f"the bad outcome ({o})", f"customers with the bad outcome ({o})"


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
    ``over_time`` = clip(dwell_median / expected_max_duration - 1, 0, 1) (twice the expectation scores 1);
    ``drop_off``; ``rework`` = rework_share; ``volume`` = share_customers.
    ``pain_score`` = sum(weight x component) with :data:`PAIN_WEIGHTS` (or ``weights``); ``contrib_<c>``
    holds each term. Stages no customer reached are left out. Output sorted by score: segment, stage, rank,
    pain_score, components, contributions, reasons (words and numbers, largest first), evidence_n,
    low_confidence, not_measured.
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
            "contrib_over_time": f"median time here {_fmt_h(r['dwell_median_h'])} against {_fmt_h(r['expected_max_duration_h'])} "
            f"expected ({r['dwell_share_over_expected']:.0%} over)" if pd.notna(r["duration_ratio"]) else None,
            "contrib_drop_off": f"{r['drop_off']:.0%} go no further" if pd.notna(r["drop_off"]) else None,
            "contrib_rework": f"{r['rework_share']:.0%} came back two or more times" if pd.notna(r["rework_share"]) else None,
            "contrib_volume": f"reached by {r['share_customers']:.0%} of customers ({int(r['customers'])})",
        }
        for k in c.sort_values(ascending=False).index:
            if c[k] > 0.005 and texts.get(k):
                parts.append(texts[k])
        reasons.append("; ".join(parts))
    out["reasons"] = reasons
    out["evidence_n"] = m["feedback_n"].astype(int)
    out["customers"] = m["customers"].astype(int)
    out["low_confidence"] = m["low_confidence"]
    out["not_measured"] = not_measured
    out = out.sort_values(["pain_score", "stage"], ascending=[False, True], kind="stable").reset_index(drop=True)
    out.insert(2, "rank", np.arange(1, len(out) + 1))
    return out


# ------------------------------------------------------------------------------------------------
# moments of truth
# ------------------------------------------------------------------------------------------------
def outcome_is_bad(values: pd.Series, good) -> pd.Series:
    """1.0 where the outcome is not the good value, 0.0 where it is, NaN where the outcome is missing."""
    v = values
    out = pd.Series(np.nan, index=v.index)
    ok = v.notna()
    if isinstance(good, bool) or pd.api.types.is_bool_dtype(v) or pd.api.types.is_numeric_dtype(v):
        try:
            num = pd.to_numeric(v[ok].astype(object).map(
                lambda x: {"true": 1.0, "false": 0.0}.get(str(x).strip().lower(), x)), errors="raise").astype(float)
            out[ok] = (num != float(good)).astype(float)
            return out
        except (ValueError, TypeError):
            pass
    out[ok] = (v[ok].astype(str).str.strip().str.lower() != str(good).strip().lower()).astype(float)
    return out


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


#: Measures of the customer's experience at a stage that :func:`experience_score` combines.
EXPERIENCE_MEASURES = ("rating", "sentiment")


def customer_stage_features(events: pd.DataFrame, feedback: pd.DataFrame | None, config,
                            step: str = "stage", outcome_stages=()) -> pd.DataFrame:
    """Per customer (rows) and stage: ``<stage>|sentiment``, ``<stage>|rating``, ``<stage>|experience``, ``<stage>|dwell_log_h``, ``<stage>|reached``.

    sentiment / rating = mean over the customer's feedback at the stage (rating only on the declared
    scale); experience = :func:`experience_score` of those two; dwell_log_h = log1p(median dwell hours of
    the customer's events at the stage), leaving out dwell times whose next step is one of
    ``outcome_stages`` (the time until the outcome decision is calendar, not experience); reached = 1 if
    the customer has an event there. NaN where the customer has no such evidence (see
    :func:`moments_of_truth` for the rule).
    """
    from journey_analysis.spark import is_spark_frame

    if is_spark_frame(events):  # per-event dwell stays on Spark; one row per customer and stage comes back
        from journey_analysis.spark import customer_stage_dwell

        median_s = customer_stage_dwell(events, step, outcome_stages).set_index(["customer_id", step])["dwell_median_s"]
    else:
        ev = _event_dwell(events, step)
        ev.loc[ev["next_step"].isin(list(outcome_stages)).to_numpy(), "dwell_s"] = np.nan
        median_s = ev.groupby(["customer_id", step], sort=False)["dwell_s"].median()
    beh = pd.DataFrame({"reached": 1.0, "dwell_log_h": np.log1p(median_s / 3600.0)})
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
    if measure == "dwell_log_h":
        try:
            exp_h = config.stage(stage).expected_max_duration_h
        except KeyError:
            exp_h = None
        hours = np.expm1(x)
        if exp_h is None:
            exp_h = float(hours.quantile(0.75))
            return (hours > exp_h).where(x.notna()), f"spent over {_fmt_h(exp_h)} there (top quarter)"
        return (hours > exp_h).where(x.notna()), f"spent over {_fmt_h(exp_h)} there (the expectation)"
    return None, ""


def moments_of_truth(events: pd.DataFrame, feedback: pd.DataFrame | None, customers: pd.DataFrame, config,
                     random_state: int = 0, n_boot: int = 200, step: str | None = None,
                     exclude_stages=None, C: float = 1.0, min_n: int = MIN_N,
                     experience: str = "combined") -> pd.DataFrame:
    """Driver analysis: which stage's experience changes the configured outcome most.

    Outcome: ``customers[config.outcome]``; ``bad`` = 1 when it is not ``config.outcome_good`` (churned).
    Customers with a missing outcome (prospects) are excluded and counted (``attrs["n_excluded_missing_outcome"]``).

    Features (:func:`customer_stage_features`), per stage: the **experience score** (``experience=
    "combined"``, the default: mean of the customer's available z-scored rating and sentiment at the stage,
    see :func:`experience_score`; ``"separate"`` puts mean rating and mean sentiment in the model as two
    features instead, which splits their shared effect because they are collinear), log1p dwell hours and
    reached (0/1). **Missing-experience rule**: a customer without that evidence
    (did not reach the stage or gave no feedback there) gets the mean of the customers who have it, so the
    standardised value is 0 and the coefficient measures differences among customers with evidence; the
    ``reached`` indicator stays in the model as a control. Features with fewer than ``min_n`` observed
    customers or no variance are dropped.

    **Reverse causality rule**: the stage where the outcome is realised (by default the last configured
    stage, e.g. renewal, whose experience is the decision itself) and any stage whose reach separates the
    outcome almost perfectly (bad-outcome rate among those reaching it below 2% or above 98% while the base
    rate is between 5% and 95%) are excluded; ``exclude_stages`` overrides the default. ``reached``
    indicators are controls, not drivers: customers who left early cannot reach later stages.

    Model: features standardised (mean 0, sd 1), L2 logistic regression (``C``), fitted on all customers
    with an outcome; ``n_boot`` bootstrap resamples of customers (seeded by ``random_state``) give the
    2.5 and 97.5 percentiles. ``effect`` = change in log-odds of the bad outcome per +1 sd of the feature;
    ``odds_ratio`` = exp(effect), with its interval on the same scale (``odds_ratio_ci_low`` /
    ``odds_ratio_ci_high`` = exp of ``ci_low`` / ``ci_high``). ``significant`` when the interval excludes 0
    (the odds ratio's interval excludes 1).

    Output, one row per feature, experience drivers first ranked by |effect| (``rank``; controls have
    none): stage, measure, role ("driver" | "control"), effect, ci_low, ci_high, odds_ratio,
    odds_ratio_ci_low, odds_ratio_ci_high, significant,
    sign (+1 raises the bad outcome), worse_raises_bad (True when a worse experience raises the bad
    outcome), n_observed, issue, share_bad_with_issue, share_good_with_issue, sentence.

    Without an outcome (no ``outcome:`` in the config, or no customers file) the analysis cannot be done:
    the result is an empty frame with these columns and ``attrs["reason"]``, the sentence saying why
    (:func:`journey_analysis.report.findings` reports it). A customers table lacking the named outcome
    column is an error.
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
    y_all = outcome_is_bad(customers[config.outcome], config.outcome_good)
    y_all.index = customers["customer_id"].astype(str)
    y_all = y_all[~y_all.index.duplicated(keep="last")]
    n_missing = int(y_all.isna().sum())
    y = y_all.dropna()
    if y.nunique() < 2:
        raise JourneyError(f"The outcome {config.outcome!r} has one value only among customers with an outcome.",
                           column=config.outcome, expected="both good and bad outcomes")
    default_excl = config.stage_names[-1:] if exclude_stages is None else list(exclude_stages)
    if experience not in ("combined", "separate"):
        raise JourneyError(f"experience must be 'combined' or 'separate', not {experience!r}.",
                           expected="'combined' or 'separate'")
    F = customer_stage_features(events, feedback, config, step, outcome_stages=default_excl).reindex(y.index)
    left_out = ("rating", "sentiment") if experience == "combined" else ("experience",)
    X = F[[c for c in F.columns if c.split("|", 1)[1] not in left_out]]
    base = float(y.mean())
    excluded = {}
    for s in default_excl:
        excluded[s] = "the outcome is realised at this stage (its experience is the decision itself)"
    reach_cols = [c for c in X.columns if c.endswith("|reached")]
    if 0.05 < base < 0.95:
        for c in reach_cols:
            s = c.split("|")[0]
            r = X[c].fillna(0) > 0
            if r.sum() >= min_n and s not in excluded:
                rate = float(y[r].mean())
                if rate < 0.02 or rate > 0.98:
                    excluded[s] = f"reaching it separates the outcome ({rate:.0%} bad among those who reach it)"
    keep = [c for c in X.columns if c.split("|")[0] not in excluded]
    X = X[keep]
    X[[c for c in X.columns if c.endswith("|reached")]] = X[[c for c in X.columns if c.endswith("|reached")]].fillna(0.0)
    n_obs = X.notna().sum()
    X = X.loc[:, (n_obs >= min_n) & (X.std() > 0)]
    n_obs = n_obs[X.columns]
    X = X.fillna(X.mean())
    X = X.loc[:, X.std() > 0]
    n_obs = n_obs[X.columns]
    mu, sd = X.mean(), X.std(ddof=0)
    Z = ((X - mu) / sd).to_numpy(dtype=float)
    yy = y.to_numpy(dtype=float)


    import contextlib

    try:  # small matrices: one BLAS thread is much faster than many competing ones
        from threadpoolctl import threadpool_limits
        limit = threadpool_limits(1)
    except Exception:  # pragma: no cover - threadpoolctl ships with scikit-learn
        limit = contextlib.nullcontext()
    with limit:
        full = _logit_ridge(Z, yy, C, full=True)
        coef = full[1:]
        rng = np.random.default_rng(random_state)
        n = len(yy)
        boots = []
        for _ in range(int(n_boot)):  # resamples (not customers): each is one vectorised fit
            idx = rng.integers(0, n, n)
            if yy[idx].min() == yy[idx].max():
                continue
            # the resample as counts of its distinct customers (about 63% of them), started from the
            # full fit: the same optimum as fitting Z[idx] from zeros, in fewer rows and Newton steps
            counts = np.bincount(idx, minlength=n)
            rows = np.flatnonzero(counts)
            boots.append(_logit_ridge(Z[rows], yy[rows], C, weight=counts[rows].astype(float), start=full))
    B = np.array(boots) if boots else np.full((1, len(coef)), np.nan)
    lo_, hi_ = np.nanpercentile(B, 2.5, axis=0), np.nanpercentile(B, 97.5, axis=0)
    out = pd.DataFrame({"feature": X.columns, "effect": coef, "ci_low": lo_, "ci_high": hi_, "n_observed": n_obs.to_numpy()})
    out["stage"] = out["feature"].str.split("|").str[0]
    out["measure"] = out["feature"].str.split("|").str[1]
    out["role"] = np.where(out["measure"] == "reached", "control", "driver")
    out["odds_ratio"] = np.exp(out["effect"])
    out["odds_ratio_ci_low"], out["odds_ratio_ci_high"] = np.exp(out["ci_low"]), np.exp(out["ci_high"])
    out["significant"] = (out["ci_low"] > 0) | (out["ci_high"] < 0)
    out["sign"] = np.sign(out["effect"]).astype(int)
    better_is_higher = out["measure"].isin(["sentiment", "rating", "experience"])
    out["worse_raises_bad"] = np.where(better_is_higher, out["effect"] < 0, out["effect"] > 0)
    out.loc[out["role"] == "control", "worse_raises_bad"] = False

    # evidence in shares: bad-outcome vs good-outcome customers with the issue (among those with evidence)
    bad = y.to_numpy() == 1
    issue, sb, sg, nb, ng = [], [], [], [], []
    for _, r in out.iterrows():  # one row per feature (tens), each a vectorised mean
        flags, text = _issue_flags(F, config, r["stage"], r["measure"])
        issue.append(text)
        if flags is None:
            sb.append(np.nan); sg.append(np.nan); nb.append(0); ng.append(0)
            continue
        f = flags.to_numpy(dtype=float)
        has = ~np.isnan(f)
        nb.append(int((has & bad).sum())); ng.append(int((has & ~bad).sum()))
        sb.append(np.nanmean(f[has & bad]) if (has & bad).any() else np.nan)
        sg.append(np.nanmean(f[has & ~bad]) if (has & ~bad).any() else np.nan)
    out["issue"], out["share_bad_with_issue"], out["share_good_with_issue"] = issue, sb, sg
    out["n_bad_with_evidence"], out["n_good_with_evidence"] = nb, ng
    out = out.drop(columns="feature")
    drivers = out[out["role"] == "driver"].copy()
    drivers["abs_effect"] = drivers["effect"].abs()
    drivers = drivers.sort_values(["significant", "abs_effect"], ascending=[False, False], kind="stable")
    drivers["rank"] = np.arange(1, len(drivers) + 1)
    controls = out[out["role"] == "control"].assign(rank=np.nan)
    res = pd.concat([drivers.drop(columns="abs_effect"), controls], ignore_index=True)
    res["sentence"] = [_driver_sentence(r, config.outcome) for _, r in res.iterrows()]
    cols = ["rank", "stage", "measure", "role", "effect", "ci_low", "ci_high", "odds_ratio", "odds_ratio_ci_low",
            "odds_ratio_ci_high", "significant", "sign",
            "worse_raises_bad", "n_observed", "issue", "share_bad_with_issue", "share_good_with_issue",
            "n_bad_with_evidence", "n_good_with_evidence", "sentence"]
    res = res[cols]
    res.attrs.update({
        "outcome": config.outcome, "n_customers": int(len(y)), "n_bad": int(bad.sum()), "base_rate_bad": base,
        "n_excluded_missing_outcome": n_missing, "excluded_stages": excluded, "n_boot": len(boots),
        "missing_rule": "impute the mean of customers with evidence (standardised 0) + reached indicator as control",
        "experience": experience,
    })
    return res


DRIVER_COLUMNS = ["rank", "stage", "measure", "role", "effect", "ci_low", "ci_high", "odds_ratio", "odds_ratio_ci_low",
                  "odds_ratio_ci_high", "significant",
                  "sign", "worse_raises_bad", "n_observed", "issue", "share_bad_with_issue", "share_good_with_issue",
                  "n_bad_with_evidence", "n_good_with_evidence", "sentence"]


def _no_drivers(reason: str) -> pd.DataFrame:
    """The empty result of :func:`moments_of_truth` when there is no outcome to explain, with the reason."""
    out = pd.DataFrame({c: pd.Series(dtype=bool if c in ("significant", "worse_raises_bad") else
                                      object if c in ("stage", "measure", "role", "issue", "sentence") else float)
                        for c in DRIVER_COLUMNS})
    out.attrs["reason"] = reason
    return out


_MEASURE_WORDS = {"sentiment": "sentiment", "rating": "rating", "experience": "experience score",
                  "dwell_log_h": "time spent", "reached": "reaching it"}


def _driver_sentence(r, outcome) -> str:
    stage = _title(r["stage"])
    what = _MEASURE_WORDS.get(r["measure"], r["measure"])
    outcome_word, who = _outcome_words(outcome)
    ci = f"95% CI {np.exp(r['ci_low']):.2f}-{np.exp(r['ci_high']):.2f}"
    head = (f"{stage} ({what}): one standard deviation more goes with {r['odds_ratio']:.2f}x the odds of "
            f"{outcome_word} ({ci})")
    if r["role"] == "control":
        return head + "; a control, not a driver (reaching a stage depends on staying)."
    if not r["significant"]:
        return head + "; not distinguishable from no effect."
    tail = ""
    if pd.notna(r["share_bad_with_issue"]) and pd.notna(r["share_good_with_issue"]):
        tail = (f"; {r['share_bad_with_issue']:.0%} of {who} {r['issue']}, against "
                f"{r['share_good_with_issue']:.0%} of the others")
    verb = "a worse experience here raises" if r["worse_raises_bad"] else "a worse experience here lowers"
    return f"{head}: {verb} {outcome_word}{tail}."


# ------------------------------------------------------------------------------------------------
# expectation gaps
# ------------------------------------------------------------------------------------------------
def expectation_gaps(journey_map: pd.DataFrame, config, segment: str = ALL) -> pd.DataFrame:
    """Expected (config, assumed) versus actual (data) per stage, for duration and satisfaction.

    duration: actual = dwell_median_h, expected = expected_max_duration_h, gap_h = actual - expected,
    ratio = actual / expected, share_over = share of dwell times above the expectation; ``flagged`` when
    the median exceeds the expectation. satisfaction: actual = satisfaction_mean (CI), expected =
    target_satisfaction, gap = actual - target; ``flagged`` when the mean is below target, ``significant``
    when the whole 95% CI is below it. ``severity`` (for sorting): ratio - 1 for duration, (target - mean)
    / (target - scale min) for satisfaction. Output: segment, stage, kind, expected, actual, gap, ratio,
    share_over, n, ci_low, ci_high, flagged, significant, low_confidence, expectation_source, evidence.
    """
    m = map_segment(journey_map, segment)
    d = m[m["expected_max_duration_h"].notna() & (m["dwell_n"] > 0)]
    dur = pd.DataFrame({
        "segment": segment, "stage": d["stage"], "kind": "duration", "expected": d["expected_max_duration_h"],
        "actual": d["dwell_median_h"], "gap": d["duration_gap_h"], "ratio": d["duration_ratio"],
        "share_over": d["dwell_share_over_expected"], "n": d["dwell_n"], "ci_low": np.nan, "ci_high": np.nan})
    dur["flagged"] = dur["actual"] > dur["expected"]
    dur["significant"] = dur["flagged"] & (dur["share_over"] > 0.5) & (dur["n"] >= MIN_N)
    dur["severity"] = dur["ratio"] - 1
    dur["evidence"] = [
        f"{_title(s)}: median time {_fmt_h(a)} against an expected maximum of {_fmt_h(e)} "
        f"({r:.1f}x; {so:.0%} of {int(n)} waits over it)" for s, a, e, r, so, n in
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
    out["expectation_source"] = "config"
    out = out.sort_values(["flagged", "severity"], ascending=[False, False], kind="stable").reset_index(drop=True)
    return out


# ------------------------------------------------------------------------------------------------
# recommendations
# ------------------------------------------------------------------------------------------------
#: Weights of the impact of a recommendation (pain score, driver effect, expectation gap), each scaled 0-1.
IMPACT_WEIGHTS = {"pain": 0.4, "driver": 0.4, "gap": 0.2}


def _objective_phrase(objective: str) -> str:
    o = str(objective).strip().rstrip(".")
    return "To " + (o[:1].lower() + o[1:]) if o else "To improve the journey"


def recommendations(pain_points: pd.DataFrame, drivers: pd.DataFrame | None, gaps: pd.DataFrame | None,
                    journey_map: pd.DataFrame, config, segment: str = ALL, top: int | None = None) -> pd.DataFrame:
    """A prioritised list of actions, each a plain sentence with its evidence, tied to ``config.objective``.

    One candidate per stage with a problem: the stage's significant experience drivers (``drivers`` from
    :func:`moments_of_truth`, worse experience raising the bad outcome), its flagged expectation gaps and
    its pain score. ``impact`` = 0.4 x pain_score / largest pain score + 0.4 x |driver effect| / largest
    |effect| + 0.2 x min(gap severity, 1) (:data:`IMPACT_WEIGHTS`); ``reach`` = share_customers; ``confidence`` = 1.0 when the evidence has n >= 30
    and is significant (driver CI excluding 0 or gap CI below target / most waits over), 0.6 when only
    n >= 30, 0.3 when low confidence. ``priority`` = impact x reach x confidence. The action word follows
    the main issue: time -> "cut the wait", rating / sentiment -> "fix the experience", drop-off ->
    "stop the drop-off", rework -> "fix it first time", volume alone -> "look closer at". Output sorted by priority: rank, stage, action, priority, impact, reach,
    confidence, evidence, themes, sentence.
    """
    m = map_segment(journey_map, segment).set_index("stage")
    pp = pain_points.set_index("stage") if len(pain_points) else pd.DataFrame(columns=["pain_score"])
    max_pain = float(pp["pain_score"].max()) if len(pp) else 0.0
    drv = pd.DataFrame()
    if drivers is not None and len(drivers):
        drv = drivers[(drivers["role"] == "driver") & drivers["significant"] & drivers["worse_raises_bad"]].copy()
    max_eff = float(drivers.loc[drivers["role"] == "driver", "effect"].abs().max()) if drivers is not None and len(drivers) else 0.0
    gp = gaps[gaps["flagged"]] if gaps is not None and len(gaps) else pd.DataFrame(columns=["stage"])
    stages = list(dict.fromkeys(list(drv["stage"]) if len(drv) else [])) + \
        [s for s in pp.index[:3] if pp.loc[s, "pain_score"] > 0] + list(gp["stage"])
    stages = [s for s in dict.fromkeys(stages) if s in m.index]
    outcome_word, who = _outcome_words(config.outcome)
    rows = []
    for s in stages:  # one candidate per stage (a handful)
        r = m.loc[s]
        d = drv[drv["stage"] == s].sort_values("effect", key=np.abs, ascending=False) if len(drv) else drv
        g = gp[gp["stage"] == s]
        pain = float(pp.loc[s, "pain_score"]) if s in pp.index else 0.0
        eff = float(abs(d["effect"].iloc[0])) if len(d) else 0.0
        sev = float(min(g["severity"].max(), 1.0)) if len(g) else 0.0
        impact = (IMPACT_WEIGHTS["pain"] * (pain / max_pain if max_pain else 0.0)
                  + IMPACT_WEIGHTS["driver"] * (eff / max_eff if max_eff else 0.0) + IMPACT_WEIGHTS["gap"] * max(sev, 0.0))
        evidence, action = [], None
        if len(d):
            top_d = d.iloc[0]
            action = {"dwell_log_h": "cut the wait", "rating": "fix the experience", "sentiment": "fix the experience",
                      "experience": "fix the experience"}.get(
                top_d["measure"], "fix the experience")
            if pd.notna(top_d["share_bad_with_issue"]):
                evidence.append(f"{top_d['share_bad_with_issue']:.0%} of {who} {top_d['issue']}, "
                                f"against {top_d['share_good_with_issue']:.0%} of the others")
            evidence.append(f"the odds of {outcome_word} are x{np.exp(-abs(top_d['effect'])):.2f} per sd better "
                            f"{_MEASURE_WORDS.get(top_d['measure'], top_d['measure'])} (95% CI excludes 1)")
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
        sig = (len(d) > 0) or bool(g["significant"].any() if len(g) else False)
        n_ok = int(r["customers"]) >= MIN_N and not (bool(r["low_confidence"]) and not sig)
        confidence = 1.0 if (sig and n_ok) else (0.6 if n_ok else 0.3)
        reach = float(r["share_customers"]) if pd.notna(r["share_customers"]) else 0.0
        themes = r.get("themes_negative") if isinstance(r.get("themes_negative"), str) else ""
        sentence = f"{_objective_phrase(config.objective)}: {action} at {_title(s)}; " + "; ".join(evidence[:3]) + "."
        if themes:
            sentence += f" Customers mention: {', '.join(t.split(' (')[0] for t in themes.split('; ')[:3])}."
        rows.append({"stage": s, "action": action, "impact": impact, "reach": reach, "confidence": confidence,
                     "priority": impact * reach * confidence, "evidence": "; ".join(evidence), "themes": themes,
                     "sentence": sentence})
    out = pd.DataFrame(rows, columns=["stage", "action", "impact", "reach", "confidence", "priority", "evidence",
                                      "themes", "sentence"])
    out = out.sort_values("priority", ascending=False, kind="stable").reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    out.insert(1, "segment", segment)
    return out.head(top) if top else out


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
