"""The outcome and the columns around it, as segmentation and the analysis both read them: which value
of the outcome is bad (:func:`outcome_is_bad`), which customer columns are identifiers rather than
traits (:func:`id_like`), and the single-feature AUC that flags leakage (:func:`auc`, :data:`LEAKAGE_AUC`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd


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
    if not pd.api.types.is_numeric_dtype(v):
        v = v[v.astype(str).str.strip() != ""]  # blanks are missing
    n, nun = len(v), int(v.nunique())
    if n <= 40:
        return ""
    num = pd.to_numeric(v.astype(str).str.strip(), errors="coerce") if not pd.api.types.is_numeric_dtype(v) \
        else v.astype(float)
    if num.notna().mean() >= 0.95:
        w = num.dropna()
        if nun == n and np.allclose(w % 1, 0) and w.max() - w.min() + 1 == len(w):
            return "id-like (a row number: whole numbers, unique and consecutive)"
        return ""
    if nun > 0.5 * n:
        return f"id-like (text nearly unique per customer: {nun} values for {n} customers)"
    return ""


def auc(x: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve of one feature for the outcome (ties share ranks); NaN rows skipped."""
    from scipy.stats import rankdata

    ok = ~np.isnan(x)
    x, y = x[ok], y[ok]
    n1 = y.sum()
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return 0.5
    r = rankdata(x)
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
