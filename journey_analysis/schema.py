"""The data contracts (events, customers, feedback) and the data-quality log.

``validate_events`` / ``validate_customers`` / ``validate_feedback`` check a normalised frame with
pandera and turn every failure into one :class:`JourneyError` (file, column, first rows, what was
expected, what to do). :class:`QualityLog` collects the doubtful rows that are kept and handled by a
documented rule (duplicates, negative durations, unknown stages, ...) so the report can say how many
and why.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from journey_analysis.errors import JourneyError

#: Columns of events whose per-customer sum is the ``monetary`` feature (first one present).
MONEY_COLUMNS = ("revenue", "value", "amount", "monetary")

#: Required columns per contract (after the column mapping).
REQUIRED = {
    "events": ("customer_id", "timestamp", "stage"),
    "customers": ("customer_id",),
    "feedback": (),
}

#: What each doubtful-row rule does; the report quotes these sentences.
RULES = {
    "exact_duplicate": "kept once (later identical copies removed)",
    "negative_duration": "service duration set to missing for these rows (the events are kept)",
    "unknown_stage": "kept; they count in step statistics but appear in no configured stage of the map",
    "before_customer_created": "kept as they are; check the customers' creation dates",
    "formula_cell": "kept as text; prefixed with ' when written to CSV so spreadsheets do not run them",
    "bad_rating": "rating set to missing for these rows (the feedback text is kept)",
    "rating_out_of_scale": "rating set to missing for these rows (the feedback text is kept)",
    "long_text": "kept in full in the raw data; analysis uses the first 5,000 characters",
    "feedback_unlinked": "kept; counted in overall figures but in no stage",
    "feedback_linked": "stage taken from the customer's last step at or before the feedback time",
    "missing_timestamp": "kept; cannot be linked to a step by time",
    "naive_timestamp": "read as UTC (the file mixes values with and without a time-zone offset)",
    "unknown_customer": "left out of the run: these events' ids are not in the customers table (no phantom customers)",
    "no_customer": "left out of the run: their customer id matches no known customer (the raw file keeps them)",
    "via_unmatched": "left out of the run: their key is not in the via table, so they match no customer",
    "milestone_out_of_order": "the milestone is left out of the events (the row and its other milestones are "
                              "kept, nothing is re-sorted); the stage before it is timed to the next milestone kept",
    "other_rating_type": "kept; satisfaction uses only ratings of the configured rating_type",
    "blank_numeric": "kept as missing (blank cells of a numeric column)",
    "language": "identified once per distinct text (lingua restricted to the data's languages; clear stop words "
                "skip it); a mixed text leans to the data's main language (lingua's confidence weighted by the mix)",
    "language_short_text": "a text of fewer than 10 letters that lingua cannot tell, or without letters, takes the "
                           "data's main language (its share as the confidence)",
    "language_undetermined": "kept, language 'und'; scored only where a lexicon or model of no language applies",
}

MAX_TEXT_CHARS = 5000


@dataclass
class QualityLog:
    """Doubtful rows found while loading: what, where, how many, the first rows, the rule applied."""

    entries: list[dict] = field(default_factory=list)

    def add(self, file, check: str, n: int, rows=(), severity: str = "warning", detail: str = "") -> None:
        """Record ``n`` rows of ``file`` failing ``check`` (``rows``: 1-based data rows, first few kept)."""
        if n <= 0:
            return
        self.entries.append({
            "file": str(file), "check": check, "severity": severity, "rows": int(n),
            "first_rows": ", ".join(str(int(r)) for r in list(rows)[:5]),
            "rule": RULES.get(check, ""), "detail": detail,
        })

    def frame(self) -> pd.DataFrame:
        """The log as a DataFrame (file, check, severity, rows, first_rows, rule, detail)."""
        cols = ["file", "check", "severity", "rows", "first_rows", "rule", "detail"]
        return pd.DataFrame(self.entries, columns=cols)

    @property
    def warnings(self) -> int:
        return sum(e["rows"] for e in self.entries if e["severity"] == "warning")


def _data_rows(index) -> list[int]:
    """1-based data-row numbers (the header is row 0) for positional indices."""
    return [int(i) + 1 for i in list(index)[:5]]


def _raise_from_pandera(exc, file, kind: str) -> None:
    cases = exc.failure_cases
    first = cases.iloc[0]
    column = first.get("column")
    check = str(first.get("check"))
    bad = cases[(cases["column"] == column) & (cases["check"].astype(str) == check)]
    rows = [int(i) + 1 for i in bad["index"].dropna().head(5)]
    values = ", ".join(repr(v) for v in bad["failure_case"].head(5))
    raise JourneyError(
        f"The {kind} data breaks its contract: column {column!r} fails {check} "
        f"in {len(bad)} row(s) (values: {values}).",
        file=file, column=column, rows=rows,
        expected=EXPECTED.get((kind, column), "see the data contracts in the README"),
        fix="Correct those rows in the source file or map the right column with `columns:` in the config.",
    )


EXPECTED = {
    ("events", "customer_id"): "a non-empty customer id on every row",
    ("events", "timestamp"): "a date-time on every row (ISO 8601, e.g. 2024-05-01T10:00:00+01:00)",
    ("events", "stage"): "a non-empty stage name on every row",
    ("customers", "customer_id"): "one row per customer with a unique, non-empty id",
}


def _pandera():
    """Import pandera quietly (it imports pyspark.pandas when pyspark is installed, which warns on pandas 3)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        import pandera.errors
        import pandera.pandas as pa
    return pa, pandera.errors


def _schema(kind: str):
    pa, _ = _pandera()

    nonempty = pa.Check(lambda s: s.astype(str).str.strip().str.len() > 0, element_wise=False,
                        name="non-empty")
    if kind == "events":
        return pa.DataFrameSchema({
            "customer_id": pa.Column(nullable=False, checks=nonempty),
            "timestamp": pa.Column("datetime64[ns, UTC]", nullable=False, coerce=False),
            "stage": pa.Column(nullable=False, checks=nonempty),
        }, strict=False)
    if kind == "customers":
        return pa.DataFrameSchema({
            "customer_id": pa.Column(nullable=False, unique=True, checks=nonempty),
        }, strict=False)
    return pa.DataFrameSchema({}, strict=False)


def _holds(frame: pd.DataFrame, kind: str, text: dict | None = None, factors: dict | None = None) -> bool:
    """Whether ``frame`` certainly passes :func:`_schema` (checked with vectorised column tests).

    ``text`` may give pyarrow-backed copies of object columns (same values); ``factors`` the same
    columns as integer codes (``.codes``, -1 where missing) into their distinct values (``.uniques``,
    a pyarrow string array), tested once per distinct value. When this says no, pandera checks the
    frame and writes the message.
    """
    text = text or {}
    factors = factors or {}
    if kind == "feedback":  # no column rules
        return True
    for col in ("customer_id",) + (("stage",) if kind == "events" else ()):
        f = factors.get(col)
        if f is not None:
            import numpy as np
            import pyarrow.compute as pc

            if len(f.codes) and int(f.codes.min()) < 0:
                return False
            counts = np.bincount(f.codes, minlength=len(f.uniques))
            filled = pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(f.uniques)), 0).to_numpy(zero_copy_only=False)
            if not filled[counts > 0].all():
                return False
            if kind == "customers" and (counts > 1).any():
                return False
            continue
        s = frame[col]
        if s.isna().any():
            return False
        t = text.get(col, s)
        if not (t.astype(str).str.strip().str.len() > 0).all():
            return False
        if kind == "customers" and t.duplicated().any():
            return False
    if kind == "events":
        ts = frame["timestamp"]
        if str(ts.dtype) != "datetime64[ns, UTC]" or ts.isna().any():
            return False
    return True


def validate(frame: pd.DataFrame, kind: str, file="(DataFrame)", text: dict | None = None,
             factors: dict | None = None) -> pd.DataFrame:
    """Check a normalised ``kind`` frame ("events", "customers", "feedback") against its contract.

    Raises :class:`JourneyError` on the first failing column with its first rows; returns the frame.
    ``text``: optional pyarrow-backed copies of its object columns (same values), and ``factors``
    the same as codes into distinct values (see :func:`_holds`), for speed.
    """
    missing = [c for c in REQUIRED[kind] if c not in frame.columns]
    if missing:
        raise JourneyError(
            f"The {kind} data has no column {', '.join(map(repr, missing))}.", file=file, column=missing[0],
            expected=f"columns {', '.join(REQUIRED[kind])} (found: {', '.join(map(str, frame.columns)) or 'none'})",
            fix="Rename the column in the file, or map it in the config: data: columns: "
                f"{kind}: {{your_name: {missing[0]}}}.")
    if _holds(frame, kind, text, factors):
        return frame
    import warnings

    _, pandera_errors = _pandera()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            _schema(kind).validate(frame.reset_index(drop=True), lazy=True)
    except pandera_errors.SchemaErrors as exc:
        _raise_from_pandera(exc, file, kind)
    return frame


def validate_events(frame, file="(DataFrame)"):
    """Check an events frame (see :func:`validate`)."""
    return validate(frame, "events", file)


def validate_customers(frame, file="(DataFrame)"):
    """Check a customers frame (see :func:`validate`)."""
    return validate(frame, "customers", file)


def validate_feedback(frame, file="(DataFrame)"):
    """Check a feedback frame (see :func:`validate`)."""
    return validate(frame, "feedback", file)


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells starting with = + - @ (spreadsheet formulas) are prefixed with '.

    Use before writing any CSV a person may open in a spreadsheet (CSV injection).
    """
    out = frame.copy()
    for col in out.columns:
        s = out[col]
        if s.dtype == object or pd.api.types.is_string_dtype(s):
            text = s.astype("string")
            mask = (text.str.match(r"^[=+@\t\r]", na=False) | text.str.match(r"^-[^\d.]", na=False)).to_numpy()
            if mask.any():
                out[col] = s.astype(object)
                out.loc[mask, col] = "'" + text[mask].astype(str)
    return out


def require_columns(columns, needed: list[str]) -> None:
    """Raise :class:`JourneyError` naming the first of `needed` that is not in `columns` (both engines)."""
    missing = [c for c in needed if c not in columns]
    if missing:
        raise JourneyError(f"events lack column(s) {missing}", column=missing[0],
                           expected=f"columns {needed}",
                           fix="rename the columns (config data.columns) or pass step=/case=")
