"""The outcome and the columns around it, as segmentation and the analysis both read them: which value
of the outcome is bad (:func:`outcome_is_bad`), which customer columns are identifiers rather than
traits (:func:`id_like`), and the single-feature AUC that flags leakage (:func:`auc`, :data:`LEAKAGE_AUC`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def outcome_is_bad(values: pd.Series, good) -> pd.Series:
    """1.0 where the outcome is not the good value, 0.0 where it is, NaN where the outcome is missing.
    Each distinct value is read once (an outcome has a handful), then mapped back to the rows."""
    v = values
    out = pd.Series(np.nan, index=v.index)
    ok = v.notna()
    codes, uniques = pd.factorize(v[ok])
    uniques = pd.Series(uniques, dtype=object)
    if isinstance(good, bool) or pd.api.types.is_bool_dtype(v) or pd.api.types.is_numeric_dtype(v):
        try:
            num = pd.to_numeric(uniques.map(
                lambda x: {"true": 1.0, "false": 0.0}.get(str(x).strip().lower(), x)), errors="raise").astype(float)
            out[ok] = (num != float(good)).astype(float).to_numpy()[codes]
            return out
        except (ValueError, TypeError):
            pass
    out[ok] = (uniques.astype(str).str.strip().str.lower() != str(good).strip().lower()).astype(float).to_numpy()[codes]
    return out


def to_numbers(values: pd.Series) -> np.ndarray:
    """``pd.to_numeric(values, errors="coerce")`` as floats (NaN where missing or not a number), each
    distinct value parsed once."""
    codes, uniques = pd.factorize(values)
    parsed = pd.Series(pd.to_numeric(pd.Series(uniques), errors="coerce")).to_numpy(dtype=float, na_value=np.nan)
    return np.append(parsed, np.nan)[codes]


#: A column named like this is an identifier, never a driver or a segmentation feature.
ID_NAME = r"(^|[_\s])(id|uuid|guid|key|code_id)$|^(rownames|index|row_?num(ber)?|unnamed:? ?0)$"


#: A single feature whose AUC for the outcome is at least this (or at most 1 - this) is leakage.
LEAKAGE_AUC = 0.95


def id_like(values: pd.Series, name) -> str:
    """Why a customer column is an identifier rather than a trait ("" when it is not): named like an id
    (:data:`ID_NAME`, or camelCase ending in Id/ID such as customerID); whole numbers that are a row number
    (unique and consecutive); text nearly unique per customer (over half as many distinct values as
    customers, more than 40 customers, not numbers)."""
    import re

    name = str(name)
    if re.search(ID_NAME, name, re.I) or re.search(r"[a-z](Id|ID)$", name):
        return "id-like (named like an identifier)"
    v = values.dropna()
    if pd.api.types.is_numeric_dtype(v):
        n, nun = len(v), int(v.nunique())
        num, weight = v.astype(float), None
    else:  # text: each distinct value stripped and parsed once; blanks are missing
        codes, uniques = pd.factorize(v)
        text = pd.Series(uniques, dtype=object).astype(str).str.strip()
        filled = (text != "").to_numpy()
        weight = np.bincount(codes, minlength=len(text))[filled]  # rows holding each distinct value
        n, nun = int(weight.sum()), int(filled.sum())
        num = pd.to_numeric(text[filled], errors="coerce") if n > 40 else None
    if n <= 40:
        return ""
    parsed = num.notna().to_numpy()
    if (parsed.mean() if weight is None else weight[parsed].sum() / n) >= 0.95:
        w = num.dropna()  # (one row per value when nun == n)
        if nun == n and np.allclose(w % 1, 0) and w.max() - w.min() + 1 == len(w):
            return "id-like (a row number: whole numbers, unique and consecutive)"
        return ""
    if nun > 0.5 * n:
        return f"id-like (text nearly unique per customer: {nun} values for {n} customers)"
    return ""


def auc(x: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve of one feature for the outcome (ties share ranks); NaN rows skipped."""
    ok = ~np.isnan(x)
    x, y = x[ok], y[ok]
    n1 = y.sum()
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return 0.5
    # average ranks (scipy.stats.rankdata): tied values share the mean of their positions; the sums
    # are of halves, exact in floating point
    order = np.argsort(x)  # (tied values get the same rank whatever their order)
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    sizes = np.diff(np.r_[starts, len(xs)])
    r = np.empty(len(xs))
    r[order] = np.repeat(starts + (sizes + 1) / 2.0, sizes)
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
