"""``journey init``: a run configuration drafted from the data files themselves.

:func:`draft_config` reads the files and detects the roles of their columns: the key that becomes
``customer_id``, timestamps, the stage (activity) and channel of long events, the milestone columns
of a wide table (one row per order/case, a timestamp per stage; proposed in their median time order),
feedback's rating (its scale from the values), text and timestamp, and the customers' outcome
candidates (columns with two values). Stages come in observed order (long events: median position
within the journey, then median time since its first event; wide tables: a milestone comes before
another when the median of their difference, on rows holding both, is positive) with the measured
median time at each stage as a comment. The draft is YAML text that validates and runs as written;
the person then writes the objective and the expectations.

Rules of detection (documented, deterministic): a column is a timestamp when at least 90% of its
non-blank values (first 5,000 rows) parse as ISO 8601 date-times and it is not plain numbers; the key
is the first column named like an id (``customer_id``, ``case_id``, ``*_id``, ``id``, ``rownames``,
``case:concept:name``) and otherwise the first column; long events need a text column named like a
stage (``stage``, ``activity``, ``concept:name``, ``event``, ``step``, ``status``) or with few distinct
values; a table with two or more timestamp columns and no such column is wide.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from journey_analysis.errors import JourneyError

_SAMPLE = 5000
_STAGE_NAMES = ("stage", "activity", "concept:name", "event", "step", "status", "activity_name", "event_name")
_ID_NAMES = ("customer_id", "case_id", "case:concept:name", "client_id", "user_id", "account_id", "order_id",
             "ticket_id", "application_id", "id", "rownames")
_TEXT_NAMES = ("text", "comment", "comments", "review", "review_text", "message", "body", "feedback", "verbatim")
_RATING_NAMES = ("rating", "score", "stars", "review_score", "overall_rating", "csat", "nps", "ces")
_BAD_OUTCOME = re.compile(r"churn|cancel|left|lost|default|complain|attrit|drop|declin|reject|fail|lapse", re.I)


def _q(value) -> str:
    """A YAML scalar (JSON strings are valid YAML and quote whatever needs it)."""
    return json.dumps(value, ensure_ascii=False)


def _timestamp_columns(frame: pd.DataFrame) -> list[str]:
    out = []
    head = frame.head(_SAMPLE)
    for col in head.columns:
        s = head[col].astype("string").str.strip()
        s = s[s.notna() & (s != "")]
        if s.empty or pd.to_numeric(s, errors="coerce").notna().all():
            continue
        parsed = pd.to_datetime(s, utc=True, format="ISO8601", errors="coerce")
        if parsed.notna().mean() >= 0.9:
            out.append(col)
    return out


def _id_column(frame: pd.DataFrame, exclude=(), prefer_unique: bool | None = None) -> str:
    cols = [c for c in frame.columns if c not in exclude]
    lower = {c: str(c).lower() for c in cols}
    for name in _ID_NAMES:
        for c in cols:
            if lower[c] == name:
                if prefer_unique is None or frame[c].is_unique == prefer_unique:
                    return c
    for c in cols:
        if lower[c].endswith("_id") or lower[c].endswith(" id"):
            if prefer_unique is None or frame[c].is_unique == prefer_unique:
                return c
    return cols[0]


def _stage_column(frame: pd.DataFrame, exclude) -> str | None:
    cols = [c for c in frame.columns if c not in exclude]
    for name in _STAGE_NAMES:
        for c in cols:
            if str(c).lower() == name:
                return c
    return None


def _channel_column(frame: pd.DataFrame, exclude) -> str | None:
    for c in frame.columns:
        if c not in exclude and "channel" in str(c).lower():
            return c
    return None


def _stage_name(col: str) -> str:
    name = re.sub(r"(_timestamp|_datetime|_date|_time|_at|_ts)$", "", str(col), flags=re.I)
    name = re.sub(r"^(order|case|ticket|application)_", "", name, flags=re.I)
    return name or str(col)


def _hours(seconds) -> str:
    if seconds is None or pd.isna(seconds):
        return "no measured time (last stage or never followed)"
    h = float(seconds) / 3600
    return f"median time at this stage {h:,.1f} h" if h >= 1 else f"median time at this stage {h * 60:,.1f} min"


def _rel(path: Path, out: Path) -> str:
    """The path as the config will read it: relative to the config's folder when possible."""
    path, folder = Path(path).resolve(), Path(out).resolve().parent
    try:
        return str(path.relative_to(folder))
    except ValueError:
        import os

        rel = os.path.relpath(path, folder)
        return rel if not rel.startswith("../../") else str(path)


def _draft_events(path: Path, out: Path, lines: list[str]) -> tuple[list[tuple[str, str]], set]:
    """Write the data.events block; return [(stage, comment)] in journey order and the events' ids."""
    from journey_analysis.gather import read_table

    frame = read_table(path)
    ts_cols = _timestamp_columns(frame)
    if not ts_cols:
        raise JourneyError("No column of the events file holds date-times.", file=path,
                           expected="a timestamp column (ISO 8601), or one per milestone",
                           fix="Export the times as ISO 8601 (2024-05-01T10:00:00Z), or pass the file as --customers.")
    stage_col = _stage_column(frame, ts_cols)
    if stage_col is None and len(ts_cols) == 1:  # long, stage = the text column with fewest distinct values
        cands = [c for c in frame.columns if c not in ts_cols and frame[c].nunique() <= max(100, len(frame) // 50)
                 and frame[c].nunique() > 1]
        stage_col = min(cands, key=lambda c: frame[c].nunique()) if cands else None
    if stage_col is not None:  # long events
        ts = next((c for c in ts_cols if str(c).lower() in ("timestamp", "time", "ts", "time:timestamp")), ts_cols[0])
        key = _id_column(frame, exclude=(stage_col, *ts_cols), prefer_unique=False)
        channel = _channel_column(frame, (key, stage_col, *ts_cols))
        renames = {}
        if ts != "timestamp":
            renames[ts] = "timestamp"
        if stage_col != "stage":
            renames[stage_col] = "stage"
        if channel and channel != "channel":
            renames[channel] = "channel"
        for c in frame.columns:  # columns that would collide with a contract name after the renames
            if c in renames.values() and c not in renames:
                renames[c] = f"source_{c}"
        if "customer_id" in frame.columns and key != "customer_id":
            renames["customer_id"] = "source_customer_id"
        lines += ["  events:", f"    path: {_q(_rel(path, out))}", f"    id: {_q(key)}   # the column that becomes customer_id"]
        if renames:
            lines.append("    columns: {" + ", ".join(f"{_q(k)}: {_q(v)}" for k, v in renames.items()) + "}")
        ev = pd.DataFrame({"customer_id": frame[key].astype(str), "stage": frame[stage_col].astype(str),
                           "timestamp": pd.to_datetime(frame[ts], utc=True, format="ISO8601", errors="coerce")})
        ev = ev[ev["timestamp"].notna()]
        ev["row"] = np.arange(len(ev))
        ev = ev.sort_values(["customer_id", "timestamp", "row"], kind="stable")
        g = ev.groupby("customer_id", sort=False)["timestamp"]
        ev["since_start_s"] = (ev["timestamp"] - g.transform("min")).dt.total_seconds()
        ev["dwell_s"] = (g.shift(-1) - ev["timestamp"]).dt.total_seconds()
        pos = ev.groupby("customer_id", sort=False).cumcount()
        ev["position"] = pos / ev.groupby("customer_id", sort=False)["row"].transform("size").sub(1).clip(lower=1)
        by = ev.groupby("stage", sort=False).agg(order=("position", "median"), since=("since_start_s", "median"),
                                                 first=("row", "min"), dwell=("dwell_s", "median"), n=("row", "size"))
        by = by.sort_values(["order", "since", "first"])
        stages = [(s, f"{_hours(r.dwell)}; {int(r.n):,} events") for s, r in by.iterrows()]
        return stages, set(ev["customer_id"].unique())
    # wide milestone table
    key = _id_column(frame, exclude=ts_cols, prefer_unique=True)
    t = {c: pd.to_datetime(frame[c].replace("", None), utc=True, format="ISO8601", errors="coerce") for c in ts_cols}
    # c comes before d when the median of (d - c) over the rows holding both is positive; most "befores" first
    before = {c: sum(bool((t[d] - t[c]).dt.total_seconds().median() > 0) for d in ts_cols if d != c) for c in ts_cols}
    order = sorted(ts_cols, key=lambda c: (-before[c], ts_cols.index(c)))
    names, seen = {}, set()
    for c in order:
        n = _stage_name(c)
        n = n if n not in seen else str(c)
        seen.add(n)
        names[c] = n
    from journey_analysis.sources import milestone_durations

    durations = milestone_durations(frame, {names[c]: c for c in order}, [names[c] for c in order])
    lines += ["  events:   # a wide table: one row per journey, one timestamp column per milestone",
              f"    path: {_q(_rel(path, out))}", f"    id: {_q(key)}   # the column that becomes customer_id"]
    if "customer_id" in frame.columns and key != "customer_id":
        lines.append(f"    columns: {{\"customer_id\": \"source_customer_id\"}}")
    lines.append("    milestones:   # stage: timestamp column, in the order of their median time")
    for c in order:
        lines.append(f"      {_q(names[c])}: {_q(c)}")
    stages = [(names[c], f"{_hours(durations[f'{names[c]}_s'].median())}; reached on "
                          f"{int(frame[c].astype(str).str.strip().ne('').sum()):,} rows") for c in order]
    return stages, set(frame[key].astype(str))


def _draft_customers(path: Path, out: Path, lines: list[str], ids: set) -> tuple[str | None, object, list[str]]:
    from journey_analysis.gather import read_table

    frame = read_table(path)
    key = _id_column(frame, prefer_unique=True)
    if ids:  # the column whose values meet the events' ids most
        overlap = {c: frame[c].astype(str).isin(ids).mean() for c in frame.columns if frame[c].is_unique}
        if overlap and max(overlap.values()) > 0:
            key = max(overlap, key=overlap.get)
    lines += ["  customers:", f"    path: {_q(_rel(path, out))}", f"    id: {_q(key)}   # the column that becomes customer_id"]
    if "customer_id" in frame.columns and key != "customer_id":
        lines.append("    columns: {\"customer_id\": \"source_customer_id\"}")
    two = []
    for c in frame.columns:
        if c == key:
            continue
        v = frame[c].astype(str).str.strip().str.lower()
        labels = sorted(set(v[v != ""]))
        if len(labels) == 2:
            two.append((c, labels))
    if not two:
        return None, None, []
    named = [t for t in two if _BAD_OUTCOME.search(str(t[0]))]
    col, labels = (named or two)[0]
    truthy = {"yes", "true", "1", "y", "t"}
    if set(labels) <= truthy | {"no", "false", "0", "n", "f"}:
        good = not _BAD_OUTCOME.search(str(col))  # churned: yes is bad; renewed: yes is good
    else:
        counts = frame[col].astype(str).str.strip().str.lower().value_counts()
        good = counts.index[0]  # the more frequent label
    return col, good, [c for c, _ in two]


def _draft_feedback(path: Path, out: Path, lines: list[str], ids: set) -> tuple[str, float, float] | None:
    from journey_analysis.gather import read_table

    frame = read_table(path)
    ts_cols = _timestamp_columns(frame)
    key = None
    if ids:
        overlap = {c: frame[c].astype(str).isin(ids).mean() for c in frame.columns if c not in ts_cols}
        best = max(overlap, key=overlap.get) if overlap else None
        key = best if best is not None and overlap[best] > 0 else None
    if key is None:
        key = _id_column(frame, exclude=ts_cols)
    lower = {str(c).lower(): c for c in frame.columns}
    rating = next((lower[n] for n in _RATING_NAMES if n in lower), None)
    text_cands = [c for c in frame.columns if c not in (key, rating, *ts_cols)
                  and pd.to_numeric(frame[c].replace("", None), errors="coerce").isna().mean() > 0.9]
    text = next((lower[n] for n in _TEXT_NAMES if n in lower), None)
    if text is None and text_cands:
        text = max(text_cands, key=lambda c: frame[c].astype(str).str.len().mean())
    renames = {}
    if ts_cols and ts_cols[0] != "timestamp":
        renames[ts_cols[0]] = "timestamp"
    if rating and rating != "rating":
        renames[rating] = "rating"
    if text and text != "text":
        renames[text] = "text"
    for c in frame.columns:
        if c in renames.values() and c not in renames:
            renames[c] = f"source_{c}"
    if "customer_id" in frame.columns and key != "customer_id":
        renames["customer_id"] = "source_customer_id"
    scale = None
    if rating is not None and "rating_type" in frame.columns:  # the file names its scales: the most common one
        from journey_analysis.config import RATING_SCALES

        kinds = frame.loc[frame[rating].astype(str).str.strip() != "", "rating_type"].astype(str).str.strip().str.lower()
        kinds = kinds[kinds.isin(list(RATING_SCALES))].value_counts()
        if len(kinds):
            lo, hi = RATING_SCALES[kinds.index[0]]
            scale = (kinds.index[0], float(lo), float(hi))
    if rating is not None and scale is None:
        r = pd.to_numeric(frame[rating].replace("", None), errors="coerce").dropna()
        if len(r):
            lo, hi = float(r.min()), float(r.max())
            kind = "nps" if lo >= 0 and hi > 7 else "ces" if hi > 5 else "stars" if "star" in str(rating).lower() else "csat"
            lo = 0.0 if kind == "nps" else 1.0
            hi = {"nps": 10.0, "ces": 7.0}.get(kind, 5.0)
            scale = (kind, lo, hi)
    lines += ["  feedback:", f"    path: {_q(_rel(path, out))}", f"    id: {_q(key)}   # the column that becomes customer_id"]
    if renames:
        lines.append("    columns: {" + ", ".join(f"{_q(k)}: {_q(v)}" for k, v in renames.items()) + "}")
    if scale:
        has_type = "rating_type" in frame.columns
        if not has_type:
            lines.append(f"    rating_type: {_q(scale[0])}   # every rating is on this scale")
    return scale


def draft_config(out, events=None, customers=None, feedback=None, name: str | None = None) -> str:
    """The YAML text of a run configuration drafted from the files (see the module docstring)."""
    if not (events or customers or feedback):
        raise JourneyError("journey init needs at least one data file.", fix="Pass --events, --customers or --feedback.")
    out = Path(out)
    name = name or re.sub(r"[^A-Za-z0-9_.-]", "_", out.stem) or "journey"
    if not re.match(r"^[A-Za-z0-9]", name):
        name = "j" + name
    data: list[str] = ["data:"]
    stages: list[tuple[str, str]] = []
    ids: set = set()
    if events:
        stages, ids = _draft_events(Path(events), out, data)
    outcome = good = None
    cands: list[str] = []
    if customers:
        outcome, good, cands = _draft_customers(Path(customers), out, data, ids)
        if not ids:
            from journey_analysis.gather import read_table

            frame = read_table(Path(customers))
            ids = set(frame[_id_column(frame, prefer_unique=True)].astype(str))
    scale = _draft_feedback(Path(feedback), out, data, ids) if feedback else None
    lines = [f"# Drafted by journey init from the data files; read it, then write the objective, the",
             "# expectations (expected_max_duration_h, target_satisfaction) and the touchpoints.",
             f"name: {_q(name)}", "journey: other", f"title: {_q(name.replace('_', ' '))}",
             "objective: \"Describe the decision this journey map informs (drafted by journey init)\""]
    if outcome is not None:
        other = [c for c in cands if c != outcome]
        lines.append(f"outcome: {_q(outcome)}" + (f"   # other two-valued columns: {', '.join(other)}" if other else ""))
        lines.append(f"outcome_good: {_q(good) if not isinstance(good, bool) else str(good).lower()}"
                     "   # the good value of the outcome")
    lines += data
    if scale:
        lines.append(f"satisfaction: {{rating_type: {_q(scale[0])}, min: {scale[1]:g}, max: {scale[2]:g}}}   "
                     "# from the ratings' values")
    if stages:
        lines.append("stages:   # in observed order")
        for s, comment in stages:
            lines.append(f"  - name: {_q(s)}   # {comment}")
    return "\n".join(lines) + "\n"


def write_draft(out, events=None, customers=None, feedback=None, name=None, force: bool = False) -> Path:
    """Write :func:`draft_config` to ``out`` (atomically; an existing file only with ``force``)."""
    from journey_analysis.artifacts import atomic_write_text

    out = Path(out)
    if out.exists() and not force:
        raise JourneyError("The config file already exists.", file=out, fix="Choose another --out, or add --force.")
    text = draft_config(out, events, customers, feedback, name)
    return atomic_write_text(out, text)
