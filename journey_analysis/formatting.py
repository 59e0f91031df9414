"""One formatting layer for every table people read: notebooks, the explorer and report.html.

:func:`display_frame` turns a DataFrame into text cells, :func:`table` into a pandas ``Styler`` (what a
notebook shows), :func:`table_html` into an HTML table (what the report embeds). The rules, by column
name first and dtype second, so that new columns are formatted without being listed here:

* missing (None, NaN, NaT, an empty list) reads "—"; true/false read "yes"/"no"; no index is shown (a
  named index becomes a column first); text is never cut (cells wrap); lists are joined with "; ";
* durations: ``*_s`` (seconds) and ``*_h`` (hours) are shown in hours, the unit the config states its
  expectations in (``*_d``: days), with a precision that follows the size (0.25 h, 3.8 h, 190 h);
* shares (``share_*``, ``*_share``, ``*_share_*``, ``drop_off``, ``reach``, ``*_rate``) as whole percent
  (one decimal under 10 %), ``*_pct`` as percent already;
* ratings (``satisfaction_*``, ``<scale>_mean`` for csat, nps, ces, stars, ``rating*``, targets) with one
  decimal: a mean of a few hundred ratings is not known better than that; sentiment and effects with
  two, signed where they are differences (``*_gap``, ``diff``, ``change``, ``effect``, ``z``);
* counts (``*_n``, ``n``, ``customers``, ``events``, ``rows``, ``rank``...) as integers with separators;
* any other number: three significant digits, never scientific notation (a value below 0.001 reads
  "< 0.001", an exact zero "0");
* an absolute local path reads as its path inside the project (or its file name).

Column names become words for people (:func:`label`): ``dwell_median_h`` -> "dwell median (h)".
"""
from __future__ import annotations

import html
import math
import re
from pathlib import PurePath

import numpy as np
import pandas as pd

MISSING = "—"
#: Rating scales of the feedback contract (``rating_type`` values).
SCALES = ("csat", "nps", "ces", "stars")

_COUNT_NAMES = {"n", "customers", "events", "rows", "count", "comments", "ratings", "rank", "stage_order", "k",
                "segment_customers", "completed", "ends_here", "evidence_n", "n_observed", "size", "sizes",
                "dwell_n", "service_n", "feedback_n", "in_progress_here", "drop_off_customers", "rework_customers"}
_SHARE_NAMES = {"drop_off", "dropoff", "reach", "dropoff_share", "share_over", "share", "rework_share"}
_SIGNED = re.compile(r"(^|_)(gap|diff|change|effect|z|delta|contrib)(_|$)")
_RATING = re.compile(rf"(^|_)(satisfaction|rating|{'|'.join(SCALES)})(_|$)|^target_satisfaction$")
_TWO_DEC = re.compile(r"(^|_)(sentiment|effect|odds_ratio|ratio|score|pain_score|impact|priority|confidence|"
                      r"severity|silhouette|ari|stability)(_|$)")
_ABS_PATH = re.compile(r"^(/|[A-Za-z]:[\\/])[^\s]*[\\/][^\s]*$")

#: Labels for names whose generic label would read badly.
LABELS = {
    "share_customers": "share of customers", "drop_off": "drop-off", "dropoff_share": "drop-off",
    "stage_order": "#", "expected_max_duration_h": "expected max (h)", "dwell_median_h": "dwell median (h)",
    "target_satisfaction": "target satisfaction", "sentiment_mean": "sentiment (mean, -1 to +1)",
    "sentiment_share_negative": "share negative", "satisfaction_mean": "satisfaction (mean)",
    "evidence_n": "evidence (n)", "low_confidence": "low confidence", "low_confidence_reasons": "why low confidence",
    "share_negative": "share negative", "first_rows": "first rows", "n": "n", "k": "k", "csat_mean": "CSAT (mean, 1-5)",
    "nps_mean": "NPS rating (mean, 0-10)", "ces_mean": "CES (mean, 1-7)", "stars_mean": "stars (mean, 1-5)",
    "odds_ratio": "odds ratio", "ci_low": "95% CI low", "ci_high": "95% CI high", "share_over": "share over",
    "min": "min", "max": "max",
}
_UNIT_WORDS = {"s": "h", "h": "h", "d": "d", "days": "d", "pct": "%"}


# --------------------------------------------------------------------------------------------------
# what kind of value a column holds
# --------------------------------------------------------------------------------------------------
def slug(value) -> str:
    """`value` as a name part: lower case, runs of anything but letters and digits -> ``_``
    (``"Web Chat"`` -> ``web_chat``); ``blank`` when nothing is left."""
    s = re.sub(r"[^0-9a-zA-Z]+", "_", str(value).strip().lower()).strip("_")
    return s or "blank"


def kind(column: str, series: pd.Series | None = None) -> str:
    """The display kind of a column, from its name (then its dtype): one of ``seconds``, ``hours``,
    ``days``, ``share``, ``pct``, ``count``, ``rating``, ``signed``, ``two``, ``bool``, ``number``,
    ``text``."""
    c = str(column).lower()
    dtype = series.dtype if series is not None else None
    if dtype is not None and pd.api.types.is_bool_dtype(dtype):
        return "bool"
    numeric = dtype is None or pd.api.types.is_numeric_dtype(dtype)
    if dtype is not None and not numeric:
        return "text"
    if c.endswith("_se_s") or c.endswith("_s") and not c.endswith("_ids"):
        return "seconds"
    if c.endswith("_h") or "_h_" in c:
        return "signed_hours" if _SIGNED.search(c) else "hours"
    if c.endswith("_d") or c.endswith("_days"):
        return "days"
    if c.endswith("_pct") or c.startswith("pct_"):
        return "pct"
    if c in ("ci_low", "ci_high"):
        return "signed"
    if re.search(r"_(se|sd|std)$", c) and not c.startswith("share"):
        inner = kind(re.sub(r"_(se|sd|std)$", "", c), None)
        return "share" if inner == "share" else "spread"
    base = re.sub(r"_(ci_low|ci_high|low|high)$", "", c)
    if (base in _SHARE_NAMES or base.startswith("share_") or base.endswith("_share") or "_share_" in base
            or base.endswith("_rate")):
        return "share"
    if c in _COUNT_NAMES or c.endswith("_n") or c.startswith("n_") or c.endswith("_count"):
        return "count"
    if _SIGNED.search(c) and not _TWO_DEC.search(base.replace("effect", "")) or c in ("z", "diff", "change"):
        return "signed" if not _RATING.search(c) else "signed_rating"
    if _RATING.search(base):
        return "rating"
    if base in ("sentiment", "sentiment_mean", "ci_low", "ci_high"):
        return "signed"
    if _TWO_DEC.search(base):
        return "two"
    if dtype is not None and pd.api.types.is_integer_dtype(dtype):
        return "count"
    return "number"


# --------------------------------------------------------------------------------------------------
# one value
# --------------------------------------------------------------------------------------------------
def is_missing(value) -> bool:
    """True for None, NaN, NaT, pd.NA and empty strings / lists."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, (float, np.floating)):
        return math.isnan(value)
    if isinstance(value, (list, tuple, np.ndarray)):
        return len(value) == 0
    if isinstance(value, str):
        return not value.strip()
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def number(v: float, digits: int = 3) -> str:
    """``v`` with ``digits`` significant digits (at least 0 decimals), thousands separators, never in
    scientific notation; 0 < |v| < 0.001 reads "< 0.001"."""
    v = float(v)
    if v == 0:
        return "0"
    if abs(v) < 0.001:
        return "< 0.001" if v > 0 else "> -0.001"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(v)))))
    s = f"{v:,.{decimals}f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def hours(h: float, unit: str = "h") -> str:
    """A duration given in hours, shown in ``unit`` ("h" or "d"; "auto": min under 1 h, days from 48 h)."""
    h = float(h)
    if unit == "auto":
        if abs(h) < 1:
            return f"{h * 60:.0f} min"
        unit = "d" if abs(h) >= 48 else "h"
    if unit == "d":
        return f"{number(h / 24, 2 if abs(h) < 240 else 3)} d"
    return f"{number(h, 2 if abs(h) < 10 else 3)} h"


def share(p: float) -> str:
    """A share in [0, 1] as percent: whole percent, one decimal under 10 % (0.4 %), "0%" and "100%" exact."""
    pct = float(p) * 100
    if pct == 0 or abs(pct) >= 10 or abs(round(pct) - pct) < 1e-9:
        return f"{pct:.0f}%"
    return f"{pct:.1f}%"


def _signed(s: str, v: float) -> str:
    return ("+" + s) if v > 0 and not s.startswith("+") else s


def format_value(value, column: str = "", series_kind: str | None = None, duration_unit: str = "h") -> str:
    """One cell as text by the rules of the module (``column`` names the kind; ``series_kind`` overrides)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        items = [format_value(v, column, "text") for v in value if not is_missing(v)]
        return "; ".join(items) if items else MISSING
    if is_missing(value):
        return MISSING
    k = series_kind or kind(column, None)
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (pd.Timestamp, np.datetime64)) or hasattr(value, "isoformat"):
        ts = pd.Timestamp(value)
        return f"{ts:%Y-%m-%d %H:%M}" if (ts.hour or ts.minute) else f"{ts:%Y-%m-%d}"
    if isinstance(value, (pd.Timedelta, np.timedelta64)):
        return hours(pd.Timedelta(value).total_seconds() / 3600, duration_unit)
    if isinstance(value, str) or not isinstance(value, (int, float, np.integer, np.floating)):
        s = str(value)
        return local_path(s) if _ABS_PATH.match(s.strip()) else s
    v = float(value)
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if k == "seconds":
        return hours(v / 3600, duration_unit)
    if k == "hours":
        return hours(v, duration_unit)
    if k == "signed_hours":
        return _signed(hours(v, duration_unit), v)
    if k == "signed_seconds":
        return _signed(hours(v / 3600, duration_unit), v)
    if k == "days":
        return f"{number(v, 2 if abs(v) < 10 else 3)} d"
    if k == "share":
        return share(v)
    if k == "pct":
        return f"{number(v, 2 if abs(v) < 10 else 3)}%"
    if k == "count":
        return f"{v:,.0f}" if abs(v - round(v)) < 1e-9 else number(v)
    if k == "rating":
        return f"{v:.1f}"
    if k == "spread":
        return number(v, 2)
    if k == "signed_rating":
        return _signed(f"{v:.1f}", v) if round(v, 1) != 0 else "0.0"
    if k == "signed":
        s = f"{v:.2f}"
        return "0.00" if s in ("0.00", "-0.00") else _signed(s, v)
    if k == "two":
        return f"{v:.2f}" if abs(v) < 1000 else number(v)
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    return number(v, 2 if abs(v) < 1 else 3)


def local_path(path: str) -> str:
    """An absolute path as its path inside the project (``data/raw/demo/x.csv``), else its file name."""
    from journey_analysis.config import PROJECT_ROOT

    p = PurePath(path)
    try:
        return p.relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return p.name


_PATHS_IN_TEXT = re.compile(r"(?<![\w.~:/])(/[^\s'\"`,;:()<>]+/[^\s'\"`,;:()<>]*[^\s'\"`,;:()<>.])")


def local_paths_in(text: str) -> str:
    """``text`` with every absolute local path in it shown as by :func:`local_path` (for messages)."""
    return _PATHS_IN_TEXT.sub(lambda m: local_path(m.group(1)), str(text))


# --------------------------------------------------------------------------------------------------
# column names
# --------------------------------------------------------------------------------------------------
def label(column) -> str:
    """A column name for people: known names from :data:`LABELS`; else underscores become spaces and a
    unit suffix a bracket (``dwell_p90_h`` -> "dwell p90 (h)", ``wait_s`` -> "wait (h)", shown in hours)."""
    c = str(column)
    if c in LABELS:
        return LABELS[c]
    parts = c.split("_")
    unit = ""
    if len(parts) > 1 and parts[-1] in _UNIT_WORDS:
        unit = f" ({_UNIT_WORDS[parts.pop()]})"
    spread = {"se": "standard error", "sd": "sd", "std": "sd"}
    if len(parts) > 1 and parts[-1] in spread:
        parts[-2] += ","
        parts[-1] = spread[parts[-1]]
    words = " ".join(parts)
    words = re.sub(r"\bci low\b", "95% CI low", words)
    words = re.sub(r"\bci high\b", "95% CI high", words)
    words = re.sub(r"^share ", "share of ", words) if words.startswith("share ") and len(parts) == 2 else words
    for scale in SCALES:
        words = re.sub(rf"\b{scale}\b", scale.upper(), words)
    return words + unit


# --------------------------------------------------------------------------------------------------
# whole tables
# --------------------------------------------------------------------------------------------------
def _with_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The index as columns when it means something (named, or not a plain range)."""
    f = frame
    if isinstance(f, pd.Series):
        f = f.to_frame(name=f.name if f.name is not None else "value")
    idx = f.index
    plain = isinstance(idx, pd.RangeIndex) and idx.name is None
    if not plain:
        names = [n if n is not None else ("" if len(idx.names) == 1 else f"level_{i}")
                 for i, n in enumerate(idx.names)]
        f = f.copy()
        f.index = f.index.set_names(names) if len(names) > 1 else f.index.rename(names[0] or "item")
        f = f.reset_index()
    else:
        f = f.reset_index(drop=True)
    return f


def _row_kinds(frame: pd.DataFrame) -> dict:
    """Per-row kinds where a ``kind`` / ``metric`` column says what ``expected``/``actual``/``value``... hold."""
    out = {}
    key = next((c for c in ("kind", "metric") if c in frame.columns), None)
    if key is None:
        return out
    by = frame[key].astype(str).map(lambda k: "hours" if k in ("duration", "time") else
                                    "rating" if k == "satisfaction" else "signed" if k == "sentiment"
                                    else kind(k, None) if k not in ("nan", "None") else "number")
    for col in ("expected", "actual", "value", "rest", "previous", "current", "min", "max", "ci_low", "ci_high"):
        if col in frame.columns:
            out[col] = by
    for col in ("gap", "diff", "change"):
        if col in frame.columns:
            out[col] = by.map(lambda k: "signed_rating" if k == "rating" else "signed_hours" if k == "hours"
                             else "signed_seconds" if k == "seconds" else "signed")
    return out


def display_frame(frame, labels: dict | None = None, duration_unit: str = "h", max_rows: int | None = None) -> pd.DataFrame:
    """``frame`` as a table of text cells (see the module rules): index as columns, column names for
    people (``labels`` overrides :func:`label`), at most ``max_rows`` rows (None: all)."""
    f = _with_columns(frame)
    if max_rows is not None:
        f = f.head(max_rows)
    per_row = _row_kinds(f)
    cols = {}
    for c in f.columns:
        s = f[c]
        if c in per_row:
            kinds = per_row[c]
            cols[c] = [format_value(v, str(c), k, duration_unit) for v, k in zip(s.tolist(), kinds.tolist())]
        else:
            k = kind(str(c), s) if s.dtype != object else "text_or_number"
            if k == "text_or_number":
                cols[c] = [format_value(v, str(c), None if isinstance(v, (int, float, np.number)) and not
                                        isinstance(v, bool) else "text", duration_unit) for v in s.tolist()]
            else:
                cols[c] = [format_value(v, str(c), k, duration_unit) for v in s.tolist()]
    out = pd.DataFrame(cols, index=pd.RangeIndex(len(f)))
    names = [(labels or {}).get(c, label(c)) for c in f.columns]
    seen = {n: names.count(n) for n in names}
    out.columns = [n if seen[n] == 1 else str(c) for n, c in zip(names, f.columns)]  # unique, for Styler
    return out


def _numeric_columns(frame: pd.DataFrame) -> list:
    f = _with_columns(frame)
    return [i for i, c in enumerate(f.columns) if pd.api.types.is_numeric_dtype(f[c].dtype)
            and not pd.api.types.is_bool_dtype(f[c].dtype)]


TABLE_CSS = [
    {"selector": "", "props": "border-collapse: collapse; font-size: 0.9em;"},
    {"selector": "th", "props": "text-align: left; vertical-align: bottom; padding: 0.25em 0.6em; "
                                "border-bottom: 1px solid #bbb; white-space: normal;"},
    {"selector": "td", "props": "text-align: left; vertical-align: top; padding: 0.25em 0.6em; "
                                "white-space: normal; overflow-wrap: anywhere; max-width: 38em; "
                                "border-bottom: 1px solid #eee;"},
    {"selector": "td.num", "props": "text-align: right; white-space: nowrap;"},
    {"selector": "caption", "props": "caption-side: top; text-align: left; font-weight: bold;"},
]


class Table:
    """What :func:`table` returns: shown as a styled HTML table in Jupyter (``_repr_html_``, the pandas
    ``Styler`` in :attr:`styler`) and as aligned text elsewhere (``repr``); :attr:`data` holds the
    text cells."""

    def __init__(self, data: pd.DataFrame, styler, caption: str | None = None):
        self.data, self.styler, self.caption = data, styler, caption

    def _repr_html_(self) -> str:
        return self.styler.to_html()

    def to_html(self) -> str:
        return self.styler.to_html()

    def __repr__(self) -> str:
        body = self.data.to_string(index=False) if len(self.data.columns) else MISSING
        return f"{self.caption}\n{body}" if self.caption else body


def table(frame, caption: str | None = None, labels: dict | None = None, duration_unit: str = "h",
          max_rows: int | None = None):
    """A :class:`Table` of :func:`display_frame` for notebooks (a pandas Styler inside): no index,
    numbers right-aligned (class ``num``), text wrapped, never cut; ``caption`` above. ``None`` or a
    sentence (str) is shown as Markdown."""
    if frame is None or isinstance(frame, str):
        from IPython.display import Markdown

        return Markdown(frame or MISSING)
    shown = display_frame(frame, labels=labels, duration_unit=duration_unit, max_rows=max_rows)
    nums = _numeric_columns(frame)
    classes = pd.DataFrame([["num" if j in nums else "" for j in range(shown.shape[1])]] * len(shown),
                           index=shown.index, columns=shown.columns)
    st = shown.style.hide(axis="index").set_td_classes(classes).set_table_styles(TABLE_CSS)
    if caption:
        st = st.set_caption(caption)
    return Table(shown, st, caption)


def table_html(frame, caption: str | None = None, labels: dict | None = None, duration_unit: str = "h",
               max_rows: int | None = None, css_class: str = "table") -> str:
    """:func:`display_frame` as a plain HTML table (escaped text, class ``num`` on number cells, no
    index), for the report. "" for None or an empty frame."""
    if frame is None or (hasattr(frame, "empty") and frame.empty):
        return ""
    shown = display_frame(frame, labels=labels, duration_unit=duration_unit, max_rows=max_rows)
    nums = set(_numeric_columns(frame))
    head = "".join(f'<th class="num">{html.escape(c)}</th>' if j in nums else f"<th>{html.escape(c)}</th>"
                   for j, c in enumerate(shown.columns))
    body = "".join("<tr>" + "".join(f'<td class="num">{html.escape(v)}</td>' if j in nums else
                                    f"<td>{html.escape(v)}</td>" for j, v in enumerate(row)) + "</tr>"
                   for row in shown.itertuples(index=False))
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f'<table class="{css_class}">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


# --------------------------------------------------------------------------------------------------
# changes between runs
# --------------------------------------------------------------------------------------------------
def change_text(previous, current, column: str, significant: bool = True, duration_unit: str = "h") -> str:
    """The change from ``previous`` to ``current`` at display precision: "no change" when both read the
    same once formatted or the change is within noise (``significant`` false), else the signed change
    in the column's unit ("+2.3 h"; shares in percentage points: "-4 pts")."""
    if is_missing(previous) or is_missing(current):
        return MISSING
    a, b = format_value(previous, column, duration_unit=duration_unit), format_value(current, column,
                                                                                   duration_unit=duration_unit)
    if a == b or not significant:
        return "no change"
    d = float(current) - float(previous)
    k = kind(column, None)
    if k == "share":
        return _signed(f"{d * 100:.0f}", d) + " pts" if abs(d * 100) >= 9.95 else _signed(f"{d * 100:.1f}", d) + " pts"
    text = format_value(d, column, "signed_rating" if k == "rating" else None, duration_unit)
    return text if text.startswith(("+", "-")) or d == 0 else _signed(text, d)
