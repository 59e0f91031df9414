"""Reading process-mining event logs (XES, and the CSV exports in ../shared/data/eventlogs) into the
events contract: `customer_id` (str), the step column `activity`, `timestamp` (UTC), `row_id`.

XES is streamed with :func:`xml.etree.ElementTree.iterparse` (plain or gzipped): each trace is
cleared once read, so memory holds the resulting table, not the XML tree.
"""
from __future__ import annotations

import gzip
from pathlib import Path
from xml.etree.ElementTree import iterparse

import numpy as np
import pandas as pd

from journey_analysis.errors import JourneyError

__all__ = ["read_xes", "read_csv_log"]

_XES_TYPES = {"string", "date", "int", "float", "boolean", "id"}
# standard XES keys -> contract names
_EVENT_KEYS = {"concept:name": "activity", "time:timestamp": "timestamp",
               "lifecycle:transition": "lifecycle", "org:resource": "resource"}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _open(path: Path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def _convert(values: list, kind: str, name: str, path: Path) -> pd.Series:
    s = pd.Series(values, dtype=object)
    if kind == "date":
        return pd.to_datetime(s, utc=True, format="ISO8601")
    if kind == "int":
        return pd.to_numeric(s, errors="coerce").astype("Int64")
    if kind == "float":
        return pd.to_numeric(s, errors="coerce")
    if kind == "boolean":
        return s.map(lambda v: None if v is None else str(v).strip().lower() == "true")
    return s


def read_xes(path) -> pd.DataFrame:
    """Read an XES event log (plain or gzip, detected from the content) into an events frame.

    Output columns: `customer_id` (the trace's `concept:name`, str; "trace <n>" when absent),
    `activity` (event `concept:name`), `timestamp` (event `time:timestamp`, UTC), `lifecycle`
    (`lifecycle:transition`, when any event has it), `resource` (`org:resource`, when present),
    other event attributes under their XES key, trace attributes as `case:<key>`, and `row_id`
    (0-based event order in the file). Typed values (date, int, float, boolean) are converted;
    nested (list/container) attributes are skipped. Raises JourneyError for a file that is not
    XES or an event without a timestamp.
    """
    path = Path(path)
    if not path.exists():
        raise JourneyError("event log not found", file=path, fix="check the path")
    cols: dict[str, list] = {}
    kinds: dict[str, str] = {}
    n = 0
    trace_attrs: dict[str, str] = {}
    trace_no = 0
    depth_event = False
    nested = 0
    current: dict[str, str] = {}
    in_trace = False

    def put(row_attrs: dict[str, str]):
        nonlocal n
        for k, v in row_attrs.items():
            col = cols.get(k)
            if col is None:
                col = cols[k] = [None] * n
            col.append(v)
        n += 1
        for k, col in cols.items():
            if len(col) < n:
                col.append(None)

    try:
        with _open(path) as fh:
            for ev, elem in iterparse(fh, events=("start", "end")):
                tag = _local(elem.tag)
                if ev == "start":
                    if tag == "trace":
                        in_trace = True
                        trace_attrs = {}
                        trace_no += 1
                    elif tag == "event":
                        depth_event = True
                        current = {}
                    elif tag in ("list", "container") or (tag in _XES_TYPES and nested):
                        nested += tag in ("list", "container")
                    continue
                # end events
                if tag in ("list", "container"):
                    nested -= 1
                    elem.clear()
                    continue
                if tag in _XES_TYPES and not nested:
                    key = elem.get("key")
                    if key is None:
                        continue
                    val = elem.get("value")
                    if depth_event:
                        name = _EVENT_KEYS.get(key, key)
                        current[name] = val
                        kinds.setdefault(name, tag)
                    elif in_trace:
                        trace_attrs[key] = val
                        name = "customer_id" if key == "concept:name" else f"case:{key}"
                        kinds.setdefault(name, "string" if name == "customer_id" else tag)
                elif tag == "event":
                    depth_event = False
                    if in_trace:
                        row = {("customer_id" if k == "concept:name" else f"case:{k}"): v
                               for k, v in trace_attrs.items()}
                        row.setdefault("customer_id", f"trace {trace_no}")
                        row.update(current)
                        put(row)
                    elem.clear()
                elif tag == "trace":
                    in_trace = False
                    elem.clear()
    except Exception as exc:  # ParseError, OSError, gzip errors
        if isinstance(exc, JourneyError):
            raise
        raise JourneyError(f"cannot read XES: {exc}", file=path,
                           expected="an XES event log (<log><trace><event>...), plain or gzipped",
                           fix="check the file is complete and is XES") from exc
    if n == 0:
        raise JourneyError("no events found in the XES file", file=path,
                           expected="<trace> elements with <event> children")
    out = {}
    for name, values in cols.items():
        kind = "string" if name in ("customer_id", "activity", "lifecycle", "resource") else kinds[name]
        out[name] = _convert(values, kind, name, path)
    df = pd.DataFrame(out)
    if "timestamp" not in df.columns or df["timestamp"].isna().any():
        rows = (np.flatnonzero(df["timestamp"].isna().to_numpy()) + 1 if "timestamp" in df.columns
                else None)
        raise JourneyError("events without time:timestamp", file=path, column="time:timestamp",
                           rows=rows, expected="a <date key=\"time:timestamp\"> in every event")
    if "activity" not in df.columns:
        raise JourneyError("events without concept:name", file=path, column="concept:name")
    first = [c for c in ("customer_id", "activity", "timestamp", "lifecycle") if c in df.columns]
    df = df[first + [c for c in df.columns if c not in first]]
    df["row_id"] = np.arange(n, dtype=np.int64)
    return df


def read_csv_log(path, columns=None, *, interval: bool = False, engine: str = "c") -> pd.DataFrame:
    """Read a CSV event log as exported in ../shared/data/eventlogs into the events contract.

    `case_id` -> `customer_id` (str, "NA" kept as a value), `timestamp` (and `start_timestamp` when
    present) parsed to UTC, `row_id` = 0-based data row. `columns` limits the columns read (e.g.
    ["case_id", "activity", "timestamp"]). `engine="pyarrow"` reads with pyarrow's multithreaded
    parser (several times faster on large files; ISO timestamps parsed natively). With `interval=True` and a `start_timestamp` column, the
    frame is returned as intervals: `timestamp` = start (the complete time when the start is
    missing) and `end_timestamp` = the file's `timestamp` (complete).
    """
    path = Path(path)
    if not path.exists():
        raise JourneyError("event log not found", file=path, fix="check the path")
    try:
        kw = {} if engine == "pyarrow" else {"low_memory": False}
        df = pd.read_csv(path, dtype={"case_id": str}, keep_default_na=False, usecols=columns,
                         engine=engine, **kw)
    except ValueError as exc:
        raise JourneyError(f"cannot read event log: {exc}", file=path,
                           expected="CSV with case_id, activity, timestamp") from exc
    if "case_id" not in df.columns or "timestamp" not in df.columns:
        raise JourneyError("event log lacks case_id or timestamp", file=path,
                           column="case_id" if "case_id" not in df.columns else "timestamp",
                           expected="columns case_id, activity, timestamp")
    df = df.rename(columns={"case_id": "customer_id"})
    for col in ("timestamp", "start_timestamp"):
        if col in df.columns and pd.api.types.is_datetime64_any_dtype(df[col].dtype):
            df[col] = df[col].dt.tz_convert("UTC") if df[col].dt.tz is not None else df[col].dt.tz_localize("UTC")
        elif col in df.columns:
            raw = df[col].replace("", None) if df[col].dtype == object or pd.api.types.is_string_dtype(df[col]) else df[col]
            df[col] = pd.to_datetime(raw, utc=True, format="ISO8601")
    if interval and "start_timestamp" in df.columns:
        end = df["timestamp"]
        df["timestamp"] = df["start_timestamp"].fillna(end)
        df["end_timestamp"] = end
        df = df.drop(columns="start_timestamp")
    df["row_id"] = np.arange(len(df), dtype=np.int64)
    return df
