"""Step statistics: reach, durations, transitions, drop-off, funnels, paths (variants), bottlenecks.

Owns every number computed from the sequence of a customer's events. One order everywhere: customer
(or journey), timestamp, original row order (`row_id`, else the frame's positional order). The core
is sort + shift + grouped aggregation on integer codes (customer ids and steps are factorised first),
so each function maps onto Spark window functions (`lag`/`lead` over a window partitioned by customer
and ordered by timestamp, row_id) followed by `groupBy().agg()`.

Definitions (equal to pm4py's where pm4py defines the same thing):

* dwell of an event: next event's `timestamp` - this `timestamp` within the same journey; the last
  event of a journey has none (pm4py's directly-follows "performance" time);
* service of an event: `end_timestamp - timestamp`, else `duration_s`; an event with a missing end
  counts as 0 s when `end_timestamp` is the column used (pm4py: "an event without a start counts as 0");
* transition: two consecutive events of one journey (self-loops count, no artificial start/end);
* journey duration: timestamp of the last row - timestamp of the first row, in the order above;
* statistics: median as pandas computes it (mean of the two middle values), p90 by linear
  interpolation (pandas' default), standard deviation with ddof=1 (NaN for a single value).

A journey is a customer's whole history (`case="customer_id"`) unless `session_gap_s=` cuts it
into journeys at every inactivity gap longer than that many seconds (see :func:`cut_sessions`), or
`case=` names another column (e.g. the `journey_id` that :func:`cut_sessions` adds).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from journey_analysis.engines import dispatch
from journey_analysis.errors import JourneyError
from journey_analysis.schema import require_columns

__all__ = [
    "step_stats", "step_tables", "transitions", "start_end_counts", "funnel", "funnel_dropoffs", "variants",
    "journey_durations", "cut_sessions", "bottlenecks", "pair_lifecycle", "event_dwell", "overview", "count_by",
    "TRANSITION_TIMES", "stage_visits", "customer_stage_time", "stage_dwell_summary", "dwell_share_over",
    "segment_stage_tables",
]

TRANSITION_TIMES = ("dwell", "waiting", "waiting_clipped", "end_to_end")
_NS = 1_000_000_000
_END_LABEL = "(end)"


# --------------------------------------------------------------------------------------------
# Preparation: validate, factorise, sort once
# --------------------------------------------------------------------------------------------
@dataclass
class _Log:
    """The events in journey order, as integer arrays (internal)."""

    pos: np.ndarray          # positions into the caller's frame, in sorted order
    case: np.ndarray         # int64 journey codes (sorted rows); journeys are contiguous
    n_cases: int
    step: np.ndarray         # int64 step codes
    step_labels: np.ndarray  # step code -> label
    ts: np.ndarray           # int64 ns UTC
    end: np.ndarray | None   # int64 ns UTC end of the event (interval data), NaT -> ts
    service_s: np.ndarray | None  # float seconds of service, NaN when unknown
    grp: np.ndarray          # int64 by-group code per row (0 when by is None)
    groups: pd.DataFrame     # group code -> by labels (empty columns when by is None)
    first: np.ndarray        # bool: first row of its journey
    last: np.ndarray         # bool: last row of its journey
    case_first_pos: np.ndarray  # sorted-row index of each journey's first row
    case_labels: np.ndarray | None  # journey code -> label (lazily filled when needed)
    raw_step: np.ndarray | None = None  # step codes before collapsing repeats (for rework)
    raw_case: np.ndarray | None = None
    raw_grp: np.ndarray | None = None
    repeats_removed: np.ndarray | None = None  # per kept row: how many repeats were merged into it
    memo: dict = field(default_factory=dict, repr=False)  # arrays several tables share (step_tables)


def _as_list(by) -> list[str]:
    if by is None:
        return []
    if isinstance(by, str):
        return [by]
    return list(by)


def _ts_ns(col: pd.Series, name: str) -> np.ndarray:
    """int64 nanoseconds since the epoch (UTC) of a datetime column; NaT -> min int64."""
    if not pd.api.types.is_datetime64_any_dtype(col.dtype):
        raise JourneyError(
            f"column {name!r} is not a datetime column (dtype {col.dtype})", column=name,
            expected="datetime64[ns, UTC]",
            fix="parse it with pd.to_datetime(..., utc=True) (the loaders do this)")
    if getattr(col.dtype, "tz", None) is not None:
        col = col.dt.tz_convert("UTC")
    # naive datetimes are taken as UTC (the contract says timestamps are UTC)
    return col.to_numpy(dtype="datetime64[ns]").view("int64")


def _object_factorize(v: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``pd.factorize`` of an object array (the same codes and uniques), hashing the objects' addresses
    first: the loaders' text columns hold one Python object per distinct value, so only those few
    objects are then compared by value. None where addresses cannot be read (not 64-bit)."""
    import ctypes

    if ctypes.sizeof(ctypes.c_void_p) != 8:  # pragma: no cover - 32-bit Python
        return None
    v = np.ascontiguousarray(v)
    addr = np.ctypeslib.as_array((ctypes.c_uint64 * len(v)).from_address(v.ctypes.data))  # v's pointers, read only
    pcodes, paddr = pd.factorize(addr)
    first = np.empty(len(paddr), dtype=np.int64)
    first[pcodes[::-1]] = np.arange(len(v) - 1, -1, -1)  # first row of each object
    # equal values held by different objects get one code, in order of first appearance (as pd.factorize)
    vcodes, uniques = pd.factorize(v[first], sort=False, use_na_sentinel=True)
    return vcodes[pcodes], uniques


def _codes(values: pd.Series, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Factorise a column of labels; missing labels are an error (ids are strings, never missing)."""
    made = _object_factorize(values.to_numpy()) if values.dtype == object and len(values) > 65536 else None
    codes, uniques = made if made is not None else pd.factorize(values, sort=False, use_na_sentinel=True)
    if (codes < 0).any():
        rows = np.flatnonzero(codes < 0)[:5] + 1
        raise JourneyError(f"column {name!r} has missing values", column=name, rows=rows,
                           expected="a value on every row",
                           fix="fill or drop these rows before computing step statistics")
    return codes.astype(np.int64, copy=False), np.asarray(uniques, dtype=object)


def _case_codes(values: pd.Series, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Codes of the journey id column. Fast path when every id's rows are contiguous (the usual
    export order): compare neighbours instead of hashing every row; else pd.factorize."""
    n = len(values)
    if n > 4096 and not _runs_distinct(values.iloc[:4096]):  # not even the first rows are contiguous
        return _codes(values, name)
    if n > 1 and values.dtype == object:  # Python objects (the loaders' ids): compare neighbours in numpy
        v = values.to_numpy()
        try:
            new = np.empty(n, dtype=bool)
            new[0] = True
            new[1:] = v[1:] != v[:-1]
        except (TypeError, ValueError):  # values that do not compare (pd.NA): hash them instead
            return _codes(values, name)
        firsts = np.flatnonzero(new)
        ids = v[firsts]  # a missing id starts a run of its own, so it is among these
        if not pd.isna(ids).any() and len(pd.unique(ids)) == len(firsts):
            return (np.cumsum(new) - 1).astype(np.int64), ids
        return _codes(values, name)
    if n > 1 and not isinstance(values.dtype, pd.CategoricalDtype) and values.notna().all():
        try:
            import pyarrow as pa
            import pyarrow.compute as pc
        except ImportError:  # pragma: no cover - pyarrow is installed with pandas here
            return _codes(values, name)
        try:
            arr = pa.array(values)
        except (TypeError, ValueError, pa.ArrowException):  # mixed types: hash them instead
            arr = None
        if arr is not None and (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            new = np.empty(n, dtype=bool)
            new[0] = True
            new[1:] = pc.not_equal(arr[1:], arr[:-1]).to_numpy(zero_copy_only=False)
            firsts = np.flatnonzero(new)
            ids = arr.take(pa.array(firsts))
            if pc.count_distinct(ids).as_py() == len(firsts):
                return (np.cumsum(new) - 1).astype(np.int64), np.asarray(ids.to_pandas(), dtype=object)
    return _codes(values, name)


def _runs_distinct(head: pd.Series) -> bool:
    """Whether each value of `head` stands in one run of neighbours (an id's rows together); missing or
    incomparable values: True (the caller's full check decides)."""
    try:
        v = head.to_numpy(dtype=object)
        runs = 1 + int(np.count_nonzero(v[1:] != v[:-1]))
        return bool(pd.isna(v).any()) or runs == len(pd.unique(v))
    except (TypeError, ValueError):
        return True


def _group_codes(frame: pd.DataFrame, by: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """One int code per row for the combination of `by` columns, and the label table."""
    n = len(frame)
    if not by:
        return np.zeros(n, dtype=np.int64), pd.DataFrame(index=pd.RangeIndex(1))
    combined = np.zeros(n, dtype=np.int64)
    parts = []
    for col in by:
        codes, uniques = pd.factorize(frame[col], sort=True, use_na_sentinel=False)
        parts.append((codes.astype(np.int64), uniques))
        combined = combined * len(uniques) + codes
    grp, uniq = pd.factorize(combined, sort=True)
    labels = {}
    rest = uniq.astype(np.int64)
    for col, (_, uniques) in zip(reversed(by), reversed(parts)):
        labels[col] = np.asarray(uniques)[rest % len(uniques)]
        rest = rest // len(uniques)
    groups = pd.DataFrame({col: labels[col] for col in by})
    for col in by:
        if isinstance(frame[col].dtype, pd.CategoricalDtype):
            groups[col] = pd.Categorical(groups[col], categories=frame[col].cat.categories)
    return grp.astype(np.int64), groups


def _check_columns(events: pd.DataFrame, needed: list[str]):
    if not isinstance(events, pd.DataFrame):
        raise JourneyError("events must be a pandas DataFrame", expected="DataFrame",
                           fix="load events with the package's loaders")
    require_columns(events.columns, needed)


def _prepare(events: pd.DataFrame, step: str, by=None, case: str = "customer_id",
             session_gap_s: float | None = None, collapse_repeats: bool = False,
             order: str = "timestamp") -> _Log:
    """Validate, factorise and sort the events (the single sort every function shares)."""
    by = _as_list(by)
    _check_columns(events, [case, "timestamp"] + ([step] if step is not None else []) + by)
    n = len(events)
    ts_start = _ts_ns(events["timestamp"], "timestamp")
    if (ts_start == np.iinfo(np.int64).min).any():
        rows = np.flatnonzero(ts_start == np.iinfo(np.int64).min)[:5] + 1
        raise JourneyError("column 'timestamp' has missing times", column="timestamp", rows=rows,
                           expected="a time on every event", fix="drop or fill these rows")
    end = None
    service = None
    if "end_timestamp" in events.columns:
        end = _ts_ns(events["end_timestamp"], "end_timestamp")
        nat = end == np.iinfo(np.int64).min
        end = np.where(nat, ts_start, end)
        service = (end - ts_start) / _NS
    elif "duration_s" in events.columns:
        dur = pd.to_numeric(events["duration_s"], errors="coerce").to_numpy(dtype=float)
        service = dur
        end = ts_start + np.round(np.nan_to_num(dur) * _NS).astype(np.int64)
    if order == "timestamp":
        key = ts_start
    elif order == "end":
        if end is None:
            raise JourneyError("order='end' needs an end_timestamp or duration_s column",
                               column="end_timestamp", fix="use order='timestamp'")
        key = end
    else:
        raise JourneyError(f"unknown order {order!r}", expected="'timestamp' or 'end'")
    case_codes, case_labels = _case_codes(events[case], case)
    if step is None:
        step_codes, step_labels = np.zeros(n, dtype=np.int64), np.array([""], dtype=object)
    else:
        step_codes, step_labels = _codes(events[step], step)
    if "row_id" in events.columns:
        row = events["row_id"].to_numpy(dtype=np.int64)
    else:
        row = np.arange(n, dtype=np.int64)
    grp, groups = _group_codes(events, by)

    # sort by (case, time, row); skip the sort when the frame is already in that order
    if n > 1:
        dc = np.diff(case_codes)
        dt = np.diff(key)
        dr = np.diff(row)
        ordered = bool(np.all((dc > 0) | ((dc == 0) & ((dt > 0) | ((dt == 0) & (dr > 0))))))
    else:
        ordered = True
    if ordered:
        pos = np.arange(n, dtype=np.int64)
    else:
        pos = np.lexsort((row, key, case_codes)).astype(np.int64)
        case_codes = case_codes[pos]
        key = key[pos]
        step_codes = step_codes[pos]
        ts_start = ts_start[pos]
        grp = grp[pos]
        if end is not None:
            end = end[pos]
        if service is not None:
            service = service[pos]
    if order == "end":
        ts_main = ts_start
    else:
        ts_main = key

    # journeys: cases, optionally cut at inactivity gaps
    new_case = np.empty(n, dtype=bool)
    if n:
        new_case[0] = True
        new_case[1:] = case_codes[1:] != case_codes[:-1]
    if session_gap_s is not None:
        gap_ns = int(round(float(session_gap_s) * _NS))
        brk = np.zeros(n, dtype=bool)
        if n > 1:
            brk[1:] = (ts_main[1:] - ts_main[:-1]) > gap_ns
        new_journey = new_case | brk
        jcode = np.cumsum(new_journey) - 1
        labels = None
    else:
        new_journey = new_case
        jcode = np.cumsum(new_case) - 1 if n else np.zeros(0, dtype=np.int64)
        # journey code -> case label, in order of first appearance in the sorted rows
        labels = case_labels[case_codes[new_case]] if n else np.zeros(0, dtype=object)
    jcode = jcode.astype(np.int64)
    n_cases = int(new_journey.sum())

    log = _Log(pos=pos, case=jcode, n_cases=n_cases, step=step_codes, step_labels=step_labels,
               ts=ts_main, end=end, service_s=service, grp=grp, groups=groups,
               first=new_journey, last=_last_flags(new_journey), case_first_pos=np.flatnonzero(new_journey),
               case_labels=labels)
    if session_gap_s is not None:
        # journey label "customer|n" with n counting journeys of the customer from 1
        first_idx = np.flatnonzero(new_journey)
        cust_of_j = case_codes[first_idx]
        start_of_cust = np.maximum.accumulate(np.where(new_case[first_idx], np.arange(len(first_idx)), 0))
        nth = np.arange(len(first_idx)) - start_of_cust + 1
        log.case_labels = (pd.Series(case_labels[cust_of_j], dtype=object).astype(str) + "|"
                           + pd.Series(nth).astype(str)).to_numpy(dtype=object)
    if collapse_repeats:
        log = _collapse(log)
    return log


def _last_flags(first: np.ndarray) -> np.ndarray:
    last = np.empty_like(first)
    if len(first):
        last[:-1] = first[1:]
        last[-1] = True
    return last


def _collapse(log: _Log) -> _Log:
    """Merge consecutive repeats of a step within a journey into one event.

    The kept event has the first repeat's timestamp and the last repeat's end; its service is the
    sum of the merged services. The un-collapsed step codes are kept for rework counts.
    """
    n = len(log.step)
    keep = np.ones(n, dtype=bool)
    if n > 1:
        keep[1:] = ~((log.step[1:] == log.step[:-1]) & ~log.first[1:])
    run_id = np.cumsum(keep) - 1
    idx = np.flatnonzero(keep)
    runs = len(idx)
    repeats = np.bincount(run_id, minlength=runs) - 1
    end = None
    if log.end is not None:
        # ends are per event; the run ends at the end of its last event (rows are time-ordered)
        last_of_run = np.append(idx[1:] - 1, n - 1) if runs else idx
        end = log.end[last_of_run]
    service = None
    if log.service_s is not None:
        service = np.bincount(run_id, weights=np.nan_to_num(log.service_s), minlength=runs)
        known = np.bincount(run_id, weights=~np.isnan(log.service_s), minlength=runs) > 0
        service = np.where(known, service, np.nan)
    first = log.first[idx]
    return _Log(pos=log.pos[idx], case=log.case[idx], n_cases=log.n_cases, step=log.step[idx],
                step_labels=log.step_labels, ts=log.ts[idx], end=end, service_s=service,
                grp=log.grp[idx], groups=log.groups, first=first, last=_last_flags(first),
                case_first_pos=np.flatnonzero(first), case_labels=log.case_labels,
                raw_step=log.step, raw_case=log.case, raw_grp=log.grp, repeats_removed=repeats)


# --------------------------------------------------------------------------------------------
# Grouped statistics on sorted values (exact pandas median / quantile semantics)
# --------------------------------------------------------------------------------------------
def _grouped_stats(key: np.ndarray, values: np.ndarray, n_keys: int, p90: bool = True) -> dict:
    """count, min, mean, median, p90, max, std (ddof=1), sum of `values` per integer `key`.

    NaN values are ignored. Keys without values get count 0 and NaN statistics. Median and p90
    follow pandas (mean of the two middle values; linear interpolation between order statistics).
    Values are grouped by a stable radix sort on the key; order statistics come from one
    np.partition per non-empty key (O(n) in all), or, for many small groups, from one sort.
    """
    ok = ~np.isnan(values)
    if not ok.all():
        key = key[ok]
        values = values[ok]
    kk = key.astype(np.uint16) if n_keys < 2**16 else key
    order = np.argsort(kk, kind="stable")
    v = values[order]
    count = np.bincount(key, minlength=n_keys)
    start = np.zeros(n_keys, dtype=np.int64)
    np.cumsum(count[:-1], out=start[1:])
    has = count > 0
    nan = np.full(n_keys, np.nan)
    s = np.bincount(key, weights=values, minlength=n_keys)
    mean = np.where(has, s / np.maximum(count, 1), np.nan)
    dev = values - mean[key]
    ss = np.bincount(key, weights=dev * dev, minlength=n_keys)
    std = np.where(count > 1, np.sqrt(ss / np.maximum(count - 1, 1)), np.nan)
    mn, mx, med, q90 = nan.copy(), nan.copy(), nan.copy(), nan.copy()
    nz = np.flatnonzero(has)
    if len(nz):
        mn[nz] = np.minimum.reduceat(v, start[nz])
        mx[nz] = np.maximum.reduceat(v, start[nz])
    if len(nz) > 64 and len(nz) * 5000 > len(values) * np.log2(len(values)):
        # many small groups (variants): one sort by value within key is cheaper than a partition per key
        vs = values[np.lexsort((values, key))]
        c = count[nz]
        s0 = start[nz]
        lo, hi = (c - 1) // 2, c // 2
        med[nz] = (vs[s0 + lo] + vs[s0 + hi]) / 2
        if p90:
            q = 0.9 * (c - 1)
            qlo = np.floor(q).astype(np.int64)
            qhi = np.minimum(qlo + 1, c - 1)
            q90[nz] = vs[s0 + qlo] + (vs[s0 + qhi] - vs[s0 + qlo]) * (q - qlo)
        nz = nz[:0]
    if len(nz):
        for k in nz.tolist():  # loop over groups (steps or step pairs), not rows or customers
            c = int(count[k])
            seg = v[start[k]:start[k] + c]
            lo, hi = (c - 1) // 2, c // 2
            q = 0.9 * (c - 1)
            qlo = int(np.floor(q))
            qhi = min(qlo + 1, c - 1)
            kth = sorted({lo, hi, qlo, qhi}) if p90 else sorted({lo, hi})
            part = np.partition(seg, kth) if c > 1 else seg
            med[k] = (part[lo] + part[hi]) / 2
            if p90:
                q90[k] = part[qlo] + (part[qhi] - part[qlo]) * (q - qlo)
    out = {"n": count, "min": mn, "mean": mean, "median": med, "max": mx, "std": std,
           "sum": np.where(has, s, np.nan)}
    if p90:
        out["p90"] = q90
    return out


def _nunique_per_key(key: np.ndarray, case: np.ndarray, n_keys: int) -> np.ndarray:
    """Number of distinct journeys per integer key (rows sorted by journey)."""
    u, _ = _case_key_counts(key, case, n_keys)
    return np.bincount(u % max(n_keys, 1), minlength=n_keys)


def _case_key_counts(key: np.ndarray, case: np.ndarray, n_keys: int, memo: dict | None = None):
    """Distinct (journey, key) combinations as journey * n_keys + key, and their row counts.

    Rows are sorted by journey, so the combined values are nearly sorted and a stable (timsort)
    sort is fast; no hashing. ``memo``: a log's cache (the same arrays give the same answer).
    """
    if memo is not None:
        tag = ("case_key_counts", id(key), id(case), n_keys)
        if tag not in memo:
            memo[tag] = (key, case, _case_key_counts(key, case, n_keys))  # the arrays kept: ids stay theirs
        return memo[tag][2]
    if len(key) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    n_keys = max(n_keys, 1)
    if (int(case.max()) + 1) * n_keys >= 2**62:  # pragma: no cover - astronomically many keys
        vc = pd.DataFrame({"c": case, "k": key}).value_counts(sort=False)
        return (vc.index.get_level_values("c").to_numpy(np.int64) * 0
                + vc.index.get_level_values("k").to_numpy(np.int64)), vc.to_numpy()
    combo = np.sort(case.astype(np.int64) * n_keys + key, kind="stable")
    new = np.empty(len(combo), dtype=bool)
    new[0] = True
    new[1:] = combo[1:] != combo[:-1]
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, len(combo)))
    return combo[starts], counts


def _with_groups(log: _Log, gcode: np.ndarray, frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix `frame` with the by-columns of each row's group code."""
    if log.groups.shape[1] == 0:
        return frame.reset_index(drop=True)
    g = log.groups.iloc[gcode].reset_index(drop=True)
    return pd.concat([g, frame.reset_index(drop=True)], axis=1)


def _stats_columns(stats: dict, prefix: str, sel: np.ndarray, p90: bool = True,
                   with_sum: bool = False) -> dict:
    cols = {f"{prefix}_n": stats["n"][sel]}
    names = ["min", "mean", "median"] + (["p90"] if p90 else []) + ["max", "std"]
    if with_sum:
        names.append("sum")
    for name in names:
        cols[f"{prefix}_{name}_s"] = stats[name][sel]
    return cols


def _dwell(log: _Log) -> np.ndarray:
    """Seconds from each event's timestamp to the next event's timestamp in the journey (NaN last).
    Made once per log (read only)."""
    d = log.memo.get("dwell")
    if d is None:
        d = np.full(len(log.ts), np.nan)
        if len(log.ts) > 1:
            d[:-1] = (log.ts[1:] - log.ts[:-1]) / _NS
            d[log.last] = np.nan
        log.memo["dwell"] = d
    return d


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
@dispatch
def step_stats(events: pd.DataFrame, step: str = "stage", by=None, *, case: str = "customer_id",
               session_gap_s: float | None = None, collapse_repeats: bool = False,
               inactivity_gap_s: float | None = None, as_of=None,
               order: str = "timestamp", terminal=()) -> pd.DataFrame:
    """One row per step (per `by` group): reach, rework, starts, ends, dwell and service times.

    Input: events in the contract (journey column `case`, `timestamp`, the `step` column, optional
    `end_timestamp` or `duration_s`, optional `row_id`). `by`: column name(s) whose value on each
    event groups the result (prefix columns).

    Output columns: by..., `step`, `customers` (journeys reaching the step), `events`,
    `share_customers` (customers / journeys with any event in the group), `rework_customers`
    (journeys with the step two or more times, counted before any collapse), `repeat_events`
    (events merged away by `collapse_repeats`, 0 otherwise), `starts_here`, `ends_here` (journeys
    whose last event is this step) = `completed` + `in_progress` + `drop_off`, where a journey is
    completed when it has an event at one of the `terminal` steps (a journey end: delivered, closed,
    renewed), else in progress when its last timestamp is within `inactivity_gap_s` (default:
    `session_gap_s`, else none is) of the end of the extract (`as_of`, default the latest timestamp
    in `events`), else a drop-off;
    `dwell_n, dwell_min_s, dwell_mean_s, dwell_median_s, dwell_p90_s, dwell_max_s, dwell_std_s`
    (dwell = next timestamp - this timestamp in the journey; the last event has none) and, when the
    events have `end_timestamp` or `duration_s`, the same `service_*` statistics plus
    `service_sum_s`. Sorted by by..., customers descending, step.
    """
    log = _prepare(events, step, by, case, session_gap_s, collapse_repeats, order)
    return _step_stats(log, step, by, session_gap_s, inactivity_gap_s, as_of, terminal)


def _reached_terminal(log: _Log, terminal) -> np.ndarray:
    """Per journey code: True when the journey has an event at one of the `terminal` steps."""
    terminal = [t for t in (terminal or ()) if t is not None]
    if not terminal or not len(log.step):
        return np.zeros(log.n_cases, dtype=bool)
    is_term = np.isin(log.step_labels.astype(object), np.asarray(terminal, dtype=object))[log.step]
    return np.bincount(log.case, weights=is_term, minlength=log.n_cases) > 0


def _step_stats(log: _Log, step, by, session_gap_s, inactivity_gap_s, as_of, terminal=()) -> pd.DataFrame:
    n_steps = len(log.step_labels)
    n_groups = max(len(log.groups), 1)
    key = log.step if n_groups == 1 else log.grp * n_steps + log.step  # one group: code 0
    n_keys = n_groups * n_steps
    n_events = np.bincount(key, minlength=n_keys)
    raw_key = key if log.raw_step is None else log.raw_grp * n_steps + log.raw_step
    raw_case = log.case if log.raw_case is None else log.raw_case
    # rework: (journey, step) reached twice or more, on the un-collapsed events
    u, cnt = _case_key_counts(raw_key, raw_case, n_keys, log.memo)
    rework = np.bincount(u[cnt >= 2] % n_keys, minlength=n_keys)
    # customers reaching the step (collapsing repeats does not change which steps are reached)
    customers = np.bincount(u % n_keys, minlength=n_keys)
    # journeys per group (with any event in the group)
    journeys_in_group = (_nunique_per_key(log.grp, log.case, n_groups) if n_groups > 1
                         else np.array([log.n_cases]))
    starts = np.bincount(key[log.first], minlength=n_keys)
    ends = np.bincount(key[log.last], minlength=n_keys)
    done = _reached_terminal(log, terminal)[log.case] & log.last
    completed = np.bincount(key[done], minlength=n_keys)
    gap = inactivity_gap_s if inactivity_gap_s is not None else session_gap_s
    if gap is not None and len(log.ts):
        if as_of is None:
            t_end = int(log.ts.max())
        else:
            t = pd.Timestamp(as_of)
            t_end = (t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")).as_unit("ns").value
        open_ = log.last & ~done & (log.ts >= t_end - int(round(float(gap) * _NS)))
        in_progress = np.bincount(key[open_], minlength=n_keys)
    else:
        in_progress = np.zeros(n_keys, dtype=np.int64)
    repeats = (np.zeros(n_keys, dtype=np.int64) if log.repeats_removed is None
               else np.bincount(key, weights=log.repeats_removed, minlength=n_keys).astype(np.int64))
    dwell = _grouped_stats(key, _dwell(log), n_keys)
    sel = np.flatnonzero(n_events > 0)
    cols = {
        "step": log.step_labels[sel % n_steps],
        "customers": customers[sel], "events": n_events[sel],
        "share_customers": customers[sel] / journeys_in_group[sel // n_steps],
        "rework_customers": rework[sel], "repeat_events": repeats[sel],
        "starts_here": starts[sel], "ends_here": ends[sel], "completed": completed[sel],
        "in_progress": in_progress[sel], "drop_off": ends[sel] - completed[sel] - in_progress[sel],
    }
    cols.update(_stats_columns(dwell, "dwell", sel))
    if log.service_s is not None:
        service = _grouped_stats(key, log.service_s, n_keys)
        cols.update(_stats_columns(service, "service", sel, with_sum=True))
    out = pd.DataFrame(cols)
    out = _with_groups(log, sel // n_steps, out).rename(columns={"step": step})
    return _sort(out, _as_list(by), ["customers", step], [False, True])


def step_tables(events: pd.DataFrame, step: str = "stage", by=None, *,
                case: str = "customer_id", session_gap_s: float | None = None,
                collapse_repeats: bool = False, inactivity_gap_s: float | None = None,
                as_of=None, top_variants: int | None = None, terminal=()) -> dict[str, pd.DataFrame]:
    """The step table, transitions and variants from one sort of the events.

    Same results as calling :func:`step_stats`, :func:`transitions` (dwell times) and
    :func:`variants` with the same arguments, but the events are validated, factorised and sorted
    once: use it when you need all three (a journey map does). Returns a dict with keys
    "step_stats", "step_tables", "transitions", "variants".
    """
    log = _prepare(events, step, by, case, session_gap_s, collapse_repeats)
    return {"step_stats": _step_stats(log, step, by, session_gap_s, inactivity_gap_s, as_of, terminal),
            "transitions": _transitions(log, by),
            "variants": _variants(log, by, top_variants, " -> ")}


def _sort(out: pd.DataFrame, by: list[str], cols: list[str], asc: list[bool]) -> pd.DataFrame:
    return out.sort_values(by + cols, ascending=[True] * len(by) + asc, kind="stable",
                           ignore_index=True)


def _pair_times(log: _Log, time: str) -> np.ndarray:
    """Transition time (seconds) from each event to the next in its journey (NaN for the last)."""
    n = len(log.ts)
    if time == "dwell":  # the same seconds as the dwell of step statistics
        return _dwell(log)
    out = np.full(n, np.nan)
    if n < 2:
        return out
    if log.end is None:
        raise JourneyError(f"time={time!r} needs interval data", column="end_timestamp",
                           expected="an end_timestamp or duration_s column",
                           fix="use time='dwell'")
    this_end = log.end[:-1]
    if time == "waiting":
        d = log.ts[1:] - this_end
    elif time == "waiting_clipped":
        d = np.maximum(log.ts[1:], this_end) - this_end
    elif time == "end_to_end":
        d = log.end[1:] - this_end
    else:
        raise JourneyError(f"unknown transition time {time!r}", expected=str(TRANSITION_TIMES))
    out[:-1] = d / _NS
    out[log.last] = np.nan
    return out


@dispatch
def overview(events: pd.DataFrame, step: str = "stage", *, case: str = "customer_id") -> dict:
    """Headline figures of an event log (both engines): `events` (rows), `customers` (distinct
    `case`), `first` and `last` (timestamps, UTC), `steps` (distinct `step` values) and
    `events_without_duration` (None when there is no `duration_s` column)."""
    require_columns(events.columns, [case, "timestamp", step])
    ts = events["timestamp"]
    return {"events": int(len(events)), "customers": int(events[case].nunique()),
            "first": ts.min(), "last": ts.max(), "steps": int(events[step].nunique()),
            "events_without_duration": (int(events["duration_s"].isna().sum()) if "duration_s" in events.columns
                                        else None)}


@dispatch
def count_by(events: pd.DataFrame, keys, *, distinct: str | None = None, name: str = "n") -> pd.DataFrame:
    """Rows (or, with `distinct`, distinct non-missing values of that column) per group of `keys`
    (both engines). A missing key value is a group of its own. Columns: keys..., `name` (int64);
    sorted by the keys (missing last)."""
    keys = _as_list(keys)
    # sort=True gives the groups in key order with missing values last, the order sort_values(keys) gave
    # afterwards (each group once), without sorting the result's text columns again (1.5 of 2.8 CPU-s for
    # notebook 05's touchpoint table at 100,000 customers)
    g = events.groupby(keys, dropna=False, sort=True, observed=True)
    sizes = g[distinct].nunique() if distinct else g.size()
    out = sizes.rename(name).reset_index()
    out[name] = out[name].astype(np.int64)
    return out


@dispatch
def event_dwell(events: pd.DataFrame, step: str = "stage", *, case: str = "customer_id",
                session_gap_s: float | None = None) -> pd.DataFrame:
    """Per event, in journey order (customer, timestamp, row_id): `case` (as text), `step`, `timestamp`,
    `dwell_s` (next event's timestamp - this one in the same journey; NaN for a journey's last event,
    the definition of :func:`step_stats`) and `next_step` (missing for the last event). The index is the
    caller's. For where a per-event value is needed (shares of dwell times over an expectation, customer
    features); the statistics themselves come from :func:`step_stats`. On a Spark DataFrame the
    result is a lazy Spark DataFrame (one row per event) with `row_id` as well: aggregate it there.
    """
    log = _prepare(events, step, case=case, session_gap_s=session_gap_s)
    dwell = _dwell(log)
    code = np.full(len(log.step), -1, dtype=np.int64)  # the next event's step code, -1 for none
    if len(code):
        code[:-1] = log.step[1:]
        code[log.last] = -1
    labels = pd.Series(log.step_labels)
    if labels.dtype == "str":  # text steps: taken from pyarrow-backed strings, no Python objects made
        nxt = labels.array.take(code, allow_fill=True)
    else:
        nxt = np.empty(len(code), dtype=object)
        nxt[code >= 0] = log.step_labels[code[code >= 0]]
        nxt[code < 0] = None
    return pd.DataFrame({case: _taken(events[case].astype(str), log.pos), step: _taken(events[step], log.pos),
                         "timestamp": _taken(events["timestamp"], log.pos), "dwell_s": dwell,
                         "next_step": nxt}, index=events.index[log.pos])


@dispatch
def stage_dwell_summary(events: pd.DataFrame, step: str = "stage") -> pd.DataFrame:
    """Per step (the index): ``customers`` (distinct customers with an event there), ``dwell_n``,
    ``dwell_median_s``, ``dwell_q25_s``, ``dwell_q75_s`` (dwell of :func:`event_dwell`; pandas'
    linear quantiles) and ``last_customers`` (customers whose last event is there)."""
    log = _prepare(events, step)
    n_steps = len(log.step_labels)
    dwell = _dwell(log)
    u, _ = _case_key_counts(log.step, log.case, n_steps, log.memo)
    q = _grouped_quantiles(log.step, dwell, n_steps, (0.5, 0.25, 0.75))
    # every event has a time, so only a customer's last event has no dwell: one per customer
    last = np.bincount(log.step[log.last], minlength=n_steps)
    seen = np.zeros(n_steps, dtype=bool)
    seen[log.step] = True
    first_row = np.full(n_steps, len(log.step), dtype=np.int64)
    np.minimum.at(first_row, log.step, np.arange(len(log.step)))
    order = np.flatnonzero(seen)[np.argsort(first_row[seen], kind="stable")]  # steps in order of first event
    out = pd.DataFrame({"customers": np.bincount(u % max(n_steps, 1), minlength=n_steps)[order],
                        "dwell_n": q["n"][order], "dwell_median_s": q[0.5][order], "dwell_q25_s": q[0.25][order],
                        "dwell_q75_s": q[0.75][order]},
                       index=pd.Index(log.step_labels[order], name=step))
    out["last_customers"] = pd.Series(last[order], index=out.index).where(last[order] > 0)
    return out


def _grouped_quantiles(key: np.ndarray, values: np.ndarray, n_keys: int, qs) -> dict:
    """Count and linear quantiles (pandas' ``quantile``: ``v[i] + (v[i+1] - v[i]) * frac`` at position
    ``q * (n - 1)`` of the sorted values) of `values` per integer `key`, NaN values ignored; NaN for keys
    without values. One sort by (key, value)."""
    ok = ~np.isnan(values)
    key, values = key[ok], values[ok]
    count = np.bincount(key, minlength=n_keys)
    start = np.zeros(n_keys, dtype=np.int64)
    np.cumsum(count[:-1], out=start[1:])
    nz = np.flatnonzero(count)
    pos = {q: q * (count[nz] - 1) for q in qs}
    lo = {q: np.floor(p).astype(np.int64) for q, p in pos.items()}
    hi = {q: np.minimum(lo[q] + 1, count[nz] - 1) for q in qs}
    if n_keys < 2**16 and len(nz) <= 64:  # few keys (steps): values grouped by a radix sort, a partition per key
        vs = values[np.argsort(key.astype(np.uint16), kind="stable")]
        for i, k in enumerate(nz.tolist()):  # loop over keys (steps), not rows
            seg = vs[start[k]:start[k] + count[k]]
            seg[:] = np.partition(seg, sorted({int(d[q][i]) for d in (lo, hi) for q in qs}))
    else:
        vs = values[np.lexsort((values, key))]
    out = {"n": count}
    for q in qs:
        r = np.full(n_keys, np.nan)
        a, b = vs[start[nz] + lo[q]], vs[start[nz] + hi[q]]
        r[nz] = a + (b - a) * (pos[q] - lo[q])
        out[q] = r
    return out


@dispatch
def dwell_share_over(events: pd.DataFrame, step: str, expected_s: dict, labels: pd.Series | None = None, *,
                     overall: str) -> pd.DataFrame:
    """Share of dwell times (:func:`event_dwell`) above the step's expected maximum (`expected_s`:
    step -> seconds; steps without one are left out), per step for all customers (segment `overall`)
    and per (segment, step) for the customers in `labels` (customer id as text -> segment).
    Columns: segment, stage, dwell_share_over_expected."""
    cols = ["segment", "stage", "dwell_share_over_expected"]
    exp = {str(k): float(v) for k, v in expected_s.items() if v is not None and np.isfinite(v)}
    ev = event_dwell(events, step)
    exp_s = ev[step].map(exp)
    ok = (ev["dwell_s"].notna() & exp_s.notna()).to_numpy()
    tmp = ev.loc[ok, ["customer_id", step]].assign(_o=(ev.loc[ok, "dwell_s"] > exp_s[ok]).astype(float))
    out = [tmp.groupby(step)["_o"].mean().rename(cols[2]).reset_index().assign(segment=overall)]
    if labels is not None:
        tmp["segment"] = tmp["customer_id"].map(labels)
        out.append(tmp[tmp["segment"].notna()].groupby(["segment", step])["_o"].mean().rename(cols[2]).reset_index())
    return pd.concat(out, ignore_index=True).rename(columns={step: "stage"})[cols]


def _sub_log(log: _Log, case_grp: np.ndarray, groups: pd.DataFrame) -> _Log:
    """The journeys of `log` with a group (``case_grp``: group code per journey, -1 = left out), grouped
    by it, in the same row order: what preparing those journeys' events ``by`` the group would give
    (whole journeys are kept, so dwell, visits and ends are theirs). Only for logs without collapsed
    repeats."""
    keep = case_grp[log.case] >= 0
    idx = np.flatnonzero(keep)
    first = log.first[idx]
    kept_cases = np.flatnonzero(case_grp >= 0)
    return _Log(pos=log.pos[idx], case=np.cumsum(first) - 1, n_cases=len(kept_cases), step=log.step[idx],
                step_labels=log.step_labels, ts=log.ts[idx], end=None if log.end is None else log.end[idx],
                service_s=None if log.service_s is None else log.service_s[idx], grp=case_grp[log.case[idx]],
                groups=groups, first=first, last=_last_flags(first), case_first_pos=np.flatnonzero(first),
                case_labels=None if log.case_labels is None else log.case_labels[kept_cases])


def _level_counts(log: _Log, codes: np.ndarray, uniques, step: str, col: str) -> pd.DataFrame:
    """Rows per (by group, step, value of `col`) of a log, `col` given as factorised codes of the
    caller's frame (-1 = missing, left out): by..., step, col, k."""
    n_steps, n_lev = len(log.step_labels), max(len(uniques), 1)
    c = codes[log.pos]
    ok = c >= 0
    key = (log.grp[ok] * n_steps + log.step[ok]) * n_lev + c[ok]
    k = np.bincount(key, minlength=max(len(log.groups), 1) * n_steps * n_lev)
    sel = np.flatnonzero(k)
    out = pd.DataFrame({step: log.step_labels[(sel // n_lev) % n_steps], col: np.asarray(uniques, dtype=object)[sel % n_lev],
                        "k": k[sel].astype(np.int64)})
    return _with_groups(log, sel // (n_lev * n_steps), out)


@dispatch
def segment_stage_tables(events: pd.DataFrame, step: str = "stage", labels: pd.Series | None = None, *,
                         overall: str, min_segment_customers: int = 1, case: str = "customer_id",
                         inactivity_gap_s: float | None = None, as_of=None, terminal=(),
                         expected_s: dict | None = None, mix=()) -> dict:
    """Everything a journey map takes from the events, for all customers and per segment, from one
    preparation (validation, factorising, one sort) of the events.

    `labels`: customer id as text -> segment (None: no segments). A segment is tabled when at least
    `min_segment_customers` of its customers have events. Returns a dict of pandas frames, each with a
    ``segment`` column (`overall` for all customers):

    * ``"segment_customers"``: segment, n: customers with events per labelled segment (every segment,
      also those too small to table), sorted by segment;
    * ``"step_stats"``: :func:`step_stats` (with `inactivity_gap_s`, `as_of`, `terminal`) for all
      customers, then ``by="segment"`` over the events of the tabled segments;
    * ``"visits"``: :func:`stage_visits` (with `expected_s`) the same way;
    * ``"dwell_over"``: :func:`dwell_share_over` (segment, stage, dwell_share_over_expected) for all
      customers and the tabled segments;
    * ``"mix"``: per column of `mix` the events have, rows per (segment, step, value) for the
      non-missing values (:func:`count_by` of [step, column], named ``k``).

    The same numbers as calling those functions on the events and on the tabled segments' events
    (``engines.attach_labels``), which is what the Spark engine does.
    """
    log = _prepare(events, step, None, case)
    tkw = (None, inactivity_gap_s, as_of, terminal)  # session_gap_s, inactivity_gap_s, as_of, terminal
    st = [_step_stats(log, step, None, *tkw).assign(segment=overall)]
    vis = [_stage_visits(log, step, None, expected_s).assign(segment=overall)]
    sizes = pd.DataFrame({"segment": pd.Series([], dtype=object), "n": np.zeros(0, dtype=np.int64)})
    sub = None
    if labels is not None:
        seg = pd.Series(log.case_labels, dtype=object).astype(str).map(labels)  # one label per journey
        sizes = seg.dropna().value_counts().rename_axis("segment").rename("n").reset_index()
        sizes = sizes.sort_values("segment", kind="stable", ignore_index=True).astype({"n": np.int64})
        kept = sizes.loc[sizes["n"] >= min_segment_customers, "segment"].to_numpy(dtype=object)
        if len(kept):
            code = pd.Series(np.arange(len(kept)), index=kept)
            case_grp = seg.map(code).fillna(-1).to_numpy(dtype=np.int64)
            sub = _sub_log(log, case_grp, pd.DataFrame({"segment": kept}))
            st.append(_step_stats(sub, step, "segment", *tkw))
            vis.append(_stage_visits(sub, step, "segment", expected_s))
    mix_out = {}
    for col in mix:
        if col in events.columns:
            codes, uniques = pd.factorize(events[col], use_na_sentinel=True)
            parts = [_level_counts(log, codes, uniques, step, col).assign(segment=overall)]
            if sub is not None:
                parts.append(_level_counts(sub, codes, uniques, step, col))
            mix_out[col] = pd.concat(parts, ignore_index=True)
    # dwell over the step's expected maximum (the per-event dwell of event_dwell)
    exp = {str(k): float(v) for k, v in (expected_s or {}).items() if v is not None and np.isfinite(v)}
    e = pd.Series(log.step_labels, dtype=object).astype(str).map(exp).to_numpy(dtype=float)
    over = [_share_over_expected(log, _dwell(log), e, step).assign(segment=overall)]
    if sub is not None:
        over.append(_share_over_expected(sub, _dwell(sub), e, step))
    over = pd.concat(over, ignore_index=True).rename(columns={step: "stage"})
    return {"segment_customers": sizes, "step_stats": pd.concat(st, ignore_index=True),
            "visits": pd.concat(vis, ignore_index=True),
            "dwell_over": over[["segment", "stage", "dwell_share_over_expected"]], "mix": mix_out}


def _share_over_expected(log: _Log, dwell: np.ndarray, exp_by_code: np.ndarray, step: str) -> pd.DataFrame:
    """Share of the dwell times of a log above their step's expected maximum (`exp_by_code`: seconds per
    step code, NaN = none), per (group, step) with such dwell times, sorted by group and step."""
    n_steps = len(log.step_labels)
    e = exp_by_code[log.step]
    ok = ~np.isnan(dwell) & ~np.isnan(e)
    key = log.grp[ok] * n_steps + log.step[ok]
    n_keys = max(len(log.groups), 1) * n_steps
    n = np.bincount(key, minlength=n_keys)
    over = np.bincount(key, weights=dwell[ok] > e[ok], minlength=n_keys)
    sel = np.flatnonzero(n)
    out = _with_groups(log, sel // n_steps, pd.DataFrame({step: log.step_labels[sel % n_steps],
                                                          "dwell_share_over_expected": over[sel] / n[sel]}))
    return out.sort_values(list(log.groups.columns) + [step], kind="stable", ignore_index=True)


def _taken(col: pd.Series, pos: np.ndarray):
    """``col.to_numpy()[pos]`` as a DataFrame types it, without the Python objects: pandas' text and
    UTC date-time columns are taken as they are."""
    if col.dtype == "str" or str(col.dtype) == "datetime64[ns, UTC]":
        return col.array.take(pos)
    return col.to_numpy()[pos]


def _visits(log: _Log):
    """Visits: runs of consecutive events at one step within a journey. Returns (index of each visit's
    first row in the sorted log, stage time in seconds per visit). Stage time = first event of the next
    visit - first event of this visit; for a journey's last visit, the journey's last event - its first."""
    n = len(log.step)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    start = log.first.copy()
    start[1:] |= log.step[1:] != log.step[:-1]
    idx = np.flatnonzero(start)
    t0 = log.ts[idx]
    journey_end = log.ts[log.last][log.case[idx]]  # journeys are contiguous and numbered in order
    nxt = np.empty(len(idx), dtype=np.int64)
    nxt[:-1] = log.ts[idx[1:]]
    nxt[-1] = 0
    last_visit = np.append(log.case[idx[1:]] != log.case[idx[:-1]], True)
    end = np.where(last_visit, journey_end, nxt)
    return idx, (end - t0) / _NS


@dispatch
def stage_visits(events: pd.DataFrame, step: str = "stage", by=None, *, case: str = "customer_id",
                 expected_s: dict | None = None) -> pd.DataFrame:
    """Time in a stage as customers live it: statistics over **visits** per (by..., step).

    A visit is a run of consecutive events of a journey at the same step (several events in a row at
    one stage are one visit). Its **stage time** runs from the visit's first event to the first event
    of the journey's next visit (at another step), or, for the journey's last visit, to the journey's
    last event (a journey cut off by the end of the data is in progress there). This is the duration of
    a step the map, the expectations and the KPIs use; the per-event time to the next event (equal to
    pm4py's directly-follows time) is `dwell` in :func:`step_stats`.

    Output columns: by..., `step`, `visits`, `visit_customers` (journeys with a visit),
    `revisit_customers` (journeys that came back to the step after leaving it: two or more visits;
    this is *rework*), `stage_time_n, stage_time_min_s, stage_time_mean_s, stage_time_median_s,
    stage_time_p90_s, stage_time_max_s, stage_time_std_s` (pandas definitions: median of the two middle
    values, linear p90, ddof=1), and with `expected_s` (step -> seconds) `stage_time_share_over_expected`
    (share of visits longer than the step's expected maximum; NaN where none is given). `by` values are
    those of the visit's first event. Sorted by by..., visits descending, step.
    """
    return _stage_visits(_prepare(events, step, by, case), step, by, expected_s)


def _stage_visits(log: _Log, step, by, expected_s) -> pd.DataFrame:
    idx, t = _visits(log)
    n_steps = len(log.step_labels)
    n_keys = max(len(log.groups), 1) * n_steps
    key = log.grp[idx] * n_steps + log.step[idx]
    visits = np.bincount(key, minlength=n_keys)
    u, cnt = _case_key_counts(key, log.case[idx], n_keys)
    reach = np.bincount(u % n_keys, minlength=n_keys)
    again = np.bincount(u[cnt >= 2] % n_keys, minlength=n_keys)
    st = _grouped_stats(key, t, n_keys)
    sel = np.flatnonzero(visits > 0)
    cols = {"step": log.step_labels[sel % n_steps], "visits": visits[sel], "visit_customers": reach[sel],
            "revisit_customers": again[sel]}
    cols.update(_stats_columns(st, "stage_time", sel))
    if expected_s is not None:
        exp = pd.Series({k: v for k, v in expected_s.items() if v is not None}, dtype=float)
        e = exp.reindex(log.step_labels).to_numpy(dtype=float)[log.step[idx]]
        ok = ~np.isnan(e)
        over = np.bincount(key[ok], weights=(t[ok] > e[ok]), minlength=n_keys)
        n_ok = np.bincount(key[ok], minlength=n_keys)
        with np.errstate(invalid="ignore", divide="ignore"):
            cols["stage_time_share_over_expected"] = np.where(n_ok > 0, over / n_ok, np.nan)[sel]
    out = _with_groups(log, sel // n_steps, pd.DataFrame(cols)).rename(columns={"step": step})
    return _sort(out, _as_list(by), ["visits", step], [False, True])


@dispatch
def customer_stage_time(events: pd.DataFrame, step: str = "stage", *, case: str = "customer_id",
                        exclude_next=()) -> pd.DataFrame:
    """Per (customer, step) with a visit: `visits`, `stage_time_s`, the customer's total stage time
    there (sum over visits, as defined in :func:`stage_visits`), and `closed_time_s`, the same over the
    visits followed by another visit only (NaN when the journey's last visit is the only one there: a
    journey cut off by the end of the data has not finished that visit), leaving out too the visits
    followed by one of the `exclude_next` steps. Columns `case` (text), `step`, visits, stage_time_s,
    closed_time_s; sorted by case, step."""
    log = _prepare(events, step, case=case)
    idx, t = _visits(log)
    n_steps = len(log.step_labels)
    combo = log.case[idx].astype(np.int64) * n_steps + log.step[idx]
    u, inv = np.unique(combo, return_inverse=True)
    labels = log.case_labels
    closed = np.append(log.case[idx[1:]] == log.case[idx[:-1]], False) if len(idx) else np.zeros(0, dtype=bool)
    if len(idx) > 1 and len(exclude_next):
        bad_next = np.isin(log.step_labels.astype(object), np.asarray(list(exclude_next), dtype=object))
        closed[:-1] &= ~bad_next[log.step[idx[1:]]]
    n_closed = np.bincount(inv, weights=closed, minlength=len(u))
    t_closed = np.bincount(inv, weights=np.where(closed, t, 0.0), minlength=len(u))
    out = pd.DataFrame({case: pd.Series(labels[u // n_steps], dtype=object).astype(str).to_numpy(),
                        step: log.step_labels[u % n_steps],
                        "visits": np.bincount(inv, minlength=len(u)).astype(np.int64),
                        "stage_time_s": np.bincount(inv, weights=t, minlength=len(u)),
                        "closed_time_s": np.where(n_closed > 0, t_closed, np.nan)})
    return out.sort_values([case, step], kind="stable", ignore_index=True)


@dispatch
def transitions(events: pd.DataFrame, step: str = "stage", by=None, *, case: str = "customer_id",
                session_gap_s: float | None = None, collapse_repeats: bool = False,
                time: str = "dwell", order: str = "timestamp") -> pd.DataFrame:
    """Directly-follows transitions between consecutive events of a journey, with their times.

    Output: by..., `from_step, to_step, count, customers` (distinct journeys), `mean_s, median_s,
    min_s, max_s, std_s` (ddof=1, NaN for a single pair), `sum_s`, `p90_s`; with interval data also
    `overlaps` (pairs where the next event starts before this one ends, i.e. negative waiting).
    `by` values are taken from the event the transition leaves. Sorted by count descending.

    `time` chooses the transition time, for event i followed by event j (interval data has
    `timestamp` = start and `end_timestamp` = end):

    * "dwell" (default): j.timestamp - i.timestamp;
    * "waiting": j.timestamp - i.end (pm4py's interval DFG, negative when they overlap);
    * "waiting_clipped": max(j.timestamp, i.end) - i.end (overlaps count as 0 waiting);
    * "end_to_end": j.end - i.end (pm4py's complete-to-complete DFG, use with order="end").

    `order="end"` orders events by their end time instead of their timestamp (pm4py orders an
    interval log by the complete time when no start key is given).
    """
    log = _prepare(events, step, by, case, session_gap_s, collapse_repeats, order)
    return _transitions(log, by, time)


def _transitions(log: _Log, by, time: str = "dwell") -> pd.DataFrame:
    d = _pair_times(log, time)
    n_steps = len(log.step_labels)
    n_groups = max(len(log.groups), 1)
    has_next = ~log.last
    src = np.flatnonzero(has_next)
    pair = (log.grp[src] * n_steps + log.step[src]) * n_steps + log.step[src + 1]
    n_keys = n_groups * n_steps * n_steps
    st = _grouped_stats(pair, d[src], n_keys)
    count = np.bincount(pair, minlength=n_keys)
    sel = np.flatnonzero(count > 0)
    cust = _nunique_per_key(pair, log.case[src], n_keys)
    cols = {
        "from_step": log.step_labels[(sel // n_steps) % n_steps],
        "to_step": log.step_labels[sel % n_steps],
        "count": count[sel], "customers": cust[sel],
        "mean_s": st["mean"][sel], "median_s": st["median"][sel], "min_s": st["min"][sel],
        "max_s": st["max"][sel], "std_s": st["std"][sel], "sum_s": st["sum"][sel],
        "p90_s": st["p90"][sel],
    }
    if log.end is not None:
        ov = log.ts[src + 1] < log.end[src]
        cols["overlaps"] = np.bincount(pair[ov], minlength=n_keys)[sel]
    out = _with_groups(log, sel // (n_steps * n_steps), pd.DataFrame(cols))
    return _sort(out, _as_list(by), ["count", "from_step", "to_step"], [False, True, True])


@dispatch
def start_end_counts(events: pd.DataFrame, step: str = "stage", by=None, *,
                     case: str = "customer_id", session_gap_s: float | None = None,
                     collapse_repeats: bool = False, order: str = "timestamp") -> pd.DataFrame:
    """Journeys starting and ending at each step: by..., `step`, `starts`, `ends` (steps with
    neither are omitted). `by` values from the first (starts) / last (ends) event."""
    log = _prepare(events, step, by, case, session_gap_s, collapse_repeats, order)
    n_steps = len(log.step_labels)
    key = log.grp * n_steps + log.step
    n_keys = max(len(log.groups), 1) * n_steps
    starts = np.bincount(key[log.first], minlength=n_keys)
    ends = np.bincount(key[log.last], minlength=n_keys)
    sel = np.flatnonzero((starts > 0) | (ends > 0))
    out = pd.DataFrame({"step": log.step_labels[sel % n_steps], "starts": starts[sel],
                        "ends": ends[sel]})
    out = _with_groups(log, sel // n_steps, out).rename(columns={"step": step})
    return _sort(out, _as_list(by), ["starts", "ends", step], [False, False, True])


def _case_labels(log: _Log) -> np.ndarray:
    return log.case_labels


@dispatch
def journey_durations(events: pd.DataFrame, by=None, *, case: str = "customer_id",
                      session_gap_s: float | None = None, order: str = "timestamp") -> pd.DataFrame:
    """Per journey: `case` (or `journey_id` when cut by `session_gap_s`), by... (value on the first
    event), `first_timestamp`, `last_timestamp`, `duration_s` = last - first row's timestamp in the
    journey order, `events`. Sorted by journey label. `order="end"` uses end times for both."""
    log = _prepare(events, None, by, case, session_gap_s, False, order)
    fidx = log.case_first_pos
    lidx = np.flatnonzero(log.last)
    t = log.ts if order == "timestamp" else log.end
    first_t, last_t = t[fidx], t[lidx]
    label = "journey_id" if session_gap_s is not None else case
    out = pd.DataFrame({
        label: log.case_labels,
        "first_timestamp": pd.to_datetime(first_t, utc=True),
        "last_timestamp": pd.to_datetime(last_t, utc=True),
        "duration_s": (last_t - first_t) / _NS,
        "events": np.diff(np.append(fidx, len(log.ts))),
    })
    out = _with_groups(log, log.grp[fidx], out)
    return out.sort_values(label, kind="stable", ignore_index=True)


@dispatch
def cut_sessions(events: pd.DataFrame, gap_s: float, *, case: str = "customer_id") -> pd.DataFrame:
    """Cut each customer's history into journeys at inactivity gaps longer than `gap_s` seconds.

    Returns a copy of `events` (same row order) with `journey_id` = "<customer>|<n>", n counting the
    customer's journeys from 1 in time order. A new journey starts when the time since the
    customer's previous event (order: customer, timestamp, row_id) is greater than `gap_s`. Pass
    `case="journey_id"` to any function of this module to analyse journeys instead of customers
    (or give those functions `session_gap_s=` directly).
    """
    log = _prepare(events, None, None, case, gap_s)
    jid = np.empty(len(events), dtype=object)
    jid[log.pos] = log.case_labels[log.case]
    out = events.copy()
    out["journey_id"] = jid
    return out


def _variant_ids(log: _Log) -> tuple[np.ndarray, np.ndarray]:
    """Exact variant id per journey by building a trie of step sequences, one level per position.

    Level j holds the distinct prefixes of length j+1; a journey's variant is (its length, its node
    at the last level). Work is one factorize per position over the journeys that long: O(events).
    Returns (variant code per journey, index of a representative journey per variant).
    """
    n = len(log.step)
    n_steps = len(log.step_labels)
    pos_in_case = np.arange(n) - log.case_first_pos[log.case]
    length = np.bincount(log.case, minlength=log.n_cases)
    pk = pos_in_case.astype(np.uint16) if n and pos_in_case.max() < 2**16 else pos_in_case
    by_pos = np.argsort(pk, kind="stable")  # rows grouped by position (radix), cases ascending
    counts = np.bincount(pos_in_case) if n else np.zeros(0, dtype=np.int64)
    node = np.zeros(log.n_cases, dtype=np.int64)  # node of each journey at the current level
    final = np.zeros(log.n_cases, dtype=np.int64)
    offset = 0
    n_nodes = 1  # nodes at the previous level, numbered 0..n_nodes-1
    for j, c in enumerate(counts):  # loop over positions (longest journey), not over journeys
        rows = by_pos[offset:offset + c]
        offset += c
        cases = log.case[rows]
        keys = node[cases] * n_steps + log.step[rows]
        bound = n_nodes * n_steps
        if bound <= 4 * c + 4096:  # few possible prefixes: number them by a table, no hashing
            present = np.zeros(bound, dtype=bool)
            present[keys] = True
            number = np.cumsum(present) - 1
            codes = number[keys]
            n_nodes = int(number[-1]) + 1
        else:
            codes, uniq = pd.factorize(keys)
            n_nodes = len(uniq)
        node[cases] = codes
        ends = length[cases] == j + 1
        final[cases[ends]] = codes[ends]
    vkey = length.astype(np.int64) * (int(final.max()) + 1 if n else 1) + final
    vcode, _ = pd.factorize(vkey)
    rep = np.zeros(int(vcode.max()) + 1 if len(vcode) else 0, dtype=np.int64)
    rep[vcode[::-1]] = np.arange(len(vcode))[::-1]  # first journey of each variant
    return vcode.astype(np.int64), rep


@dispatch
def variants(events: pd.DataFrame, step: str = "stage", top: int | None = None, by=None, *,
             case: str = "customer_id", session_gap_s: float | None = None,
             collapse_repeats: bool = False, sep: str = " -> ",
             order: str = "timestamp") -> pd.DataFrame:
    """Paths through the steps: one row per distinct sequence of steps (per `by` group).

    Output: by..., `variant` (steps joined by " -> "), `length` (events in the path), `customers`
    (journeys taking it), `share` (of the group's journeys), `duration_mean_s`,
    `duration_median_s` (journey duration = last - first timestamp), `has_loop` (a step occurs
    twice or more, including self-loops). Sorted by customers descending then variant; `top` keeps
    the first `top` rows per group. `by` values come from each journey's first event.
    `order="end"` orders events by end time (pm4py's variants of an interval log).
    """
    log = _prepare(events, step, by, case, session_gap_s, collapse_repeats, order)
    return _variants(log, by, top, sep)


def _variants(log: _Log, by, top, sep) -> pd.DataFrame:
    if log.n_cases == 0:
        return pd.DataFrame(columns=_as_list(by) + ["variant", "length", "customers", "share",
                                                    "duration_mean_s", "duration_median_s",
                                                    "has_loop"])
    vcode, rep = _variant_ids(log)
    n_var = len(rep)
    fidx = log.case_first_pos
    lidx = np.flatnonzero(log.last)
    dur = (log.ts[lidx] - log.ts[fidx]) / _NS
    length = np.bincount(log.case, minlength=log.n_cases)
    # loops: a (journey, step) pair seen twice
    n_steps = len(log.step_labels)
    loop_case = np.zeros(log.n_cases, dtype=bool)
    u, cnt = _case_key_counts(log.step, log.case, n_steps, log.memo)
    loop_case[u[cnt >= 2] // n_steps] = True
    g = log.grp[fidx]
    n_groups = max(len(log.groups), 1)
    key = g * n_var + vcode
    n_keys = n_groups * n_var
    st = _grouped_stats(key, dur, n_keys, p90=False)
    sel = np.flatnonzero(st["n"] > 0)
    # path strings: built once per distinct path (not per journey) from integer step codes
    path = _path_strings(log, rep, length, sep)
    per_group = np.bincount(g, minlength=n_groups)
    var_of_sel = sel % n_var
    out = pd.DataFrame({
        "variant": path[var_of_sel], "length": length[rep[var_of_sel]],
        "customers": st["n"][sel], "share": st["n"][sel] / per_group[sel // n_var],
        "duration_mean_s": st["mean"][sel], "duration_median_s": st["median"][sel],
        "has_loop": loop_case[rep[var_of_sel]],
    })
    out = _with_groups(log, sel // n_var, out)
    byl = _as_list(by)
    out = _sort(out, byl, ["customers", "variant"], [False, True])
    if top is not None:
        out = (out.groupby(byl, sort=False, dropna=False).head(top) if byl else out.head(top))
        out = out.reset_index(drop=True)
    return out


def _path_strings(log: _Log, rep: np.ndarray, length: np.ndarray, sep: str) -> np.ndarray:
    """" -> "-joined step names of each variant's representative journey.

    One str.join per distinct variant over a slice of integer codes (a few microseconds each);
    the per-journey work (which variant a journey takes) is vectorised in :func:`_variant_ids`.
    """
    names = [str(x) for x in log.step_labels]
    codes = log.step.tolist() if len(rep) * 8 > len(log.step) else None
    starts = log.case_first_pos[rep].tolist()
    lens = length[rep].tolist()
    out = np.empty(len(rep), dtype=object)
    if codes is None:  # few variants: gather only their rows
        lens_a = length[rep]
        offs = np.arange(int(lens_a.sum())) - np.repeat(np.cumsum(lens_a) - lens_a, lens_a)
        rows = np.repeat(log.case_first_pos[rep], lens_a) + offs
        codes = log.step[rows].tolist()
        starts = np.concatenate(([0], np.cumsum(lens)[:-1])).tolist()
    for i, (s0, n) in enumerate(zip(starts, lens)):  # loop over distinct variants
        out[i] = sep.join([names[c] for c in codes[s0:s0 + n]])
    return out


def _funnel_core(events, steps, by, case, session_gap_s, within, step):
    steps = list(steps)
    if len(steps) < 1:
        raise JourneyError("funnel needs at least one step", expected="steps=[first, ...]")
    log = _prepare(events, step, by, case, session_gap_s)
    labels = {str(s): i for i, s in enumerate(log.step_labels)}
    missing = [s for s in steps if str(s) not in labels]
    if missing:
        raise JourneyError(f"funnel steps not found in column {step!r}: {missing}", column=step,
                           expected=f"values among {sorted(labels)[:20]}",
                           fix="check spelling of steps=")
    n = len(log.step)
    nc = log.n_cases
    big = np.iinfo(np.int64).max
    idx = np.arange(n, dtype=np.int64)
    reached_at = []  # per funnel step: sorted-row index where each journey reached it (big = never)
    prev = None
    entry_ts = None
    within_ns = None if within is None else int(round(float(within) * _NS))
    for code in (labels[str(s)] for s in steps):  # loop over funnel steps (a handful)
        rows = idx[log.step == code]
        cases = log.case[rows]
        if prev is not None:
            ok = rows > prev[cases]
            if within_ns is not None:
                ok &= (log.ts[rows] - entry_ts[cases]) <= within_ns
            rows, cases = rows[ok], cases[ok]
        at = np.full(nc, big, dtype=np.int64)
        np.minimum.at(at, cases, rows)
        if prev is None:
            entry_ts = np.where(at < big, log.ts[np.minimum(at, n - 1)], 0)
        reached_at.append(at)
        prev = at
    return log, steps, reached_at, entry_ts


@dispatch
def funnel(events: pd.DataFrame, steps, by=None, within: float | None = None, *,
           step: str = "stage", case: str = "customer_id",
           session_gap_s: float | None = None) -> pd.DataFrame:
    """An ordered funnel through `steps`.

    A journey enters at its first event of `steps[0]`; it reaches step k when it has an event of
    `steps[k]` after (in journey order) the event where it reached step k-1, and, with `within`
    seconds, no later than `within` seconds after entry. Output, one row per funnel step (and `by`
    group, value of the journey's first event): by..., `position` (1-based), `step`, `entered`
    (journeys reaching it), `converted` (journeys reaching the next step; NaN for the last),
    `dropped` (entered - converted), `conversion_from_start` (entered / entered at step 1),
    `conversion_from_previous` (entered / entered at the previous step), time to reach this step
    from the previous one and from entry (`from_previous_mean_s`, `_median_s`, `_p90_s`,
    `from_start_mean_s`, `from_start_median_s`), and `dropped_top_next` (the most common next step
    of those who dropped, see :func:`funnel_dropoffs`).
    """
    log, steps, reached, _ = _funnel_core(events, steps, by, case, session_gap_s, within, step)
    big = np.iinfo(np.int64).max
    n_groups = max(len(log.groups), 1)
    g = log.grp[log.case_first_pos]
    frames = []
    entry = reached[0]
    drops = _dropoff_table(log, steps, reached, by)
    for k, at in enumerate(reached):  # loop over funnel steps
        got = at < big
        entered = np.bincount(g[got], minlength=n_groups)
        nxt = reached[k + 1] < big if k + 1 < len(reached) else None
        converted = (np.bincount(g[nxt], minlength=n_groups).astype(float) if nxt is not None
                     else np.full(n_groups, np.nan))
        first_entered = np.bincount(g[entry < big], minlength=n_groups)
        prev_entered = (np.bincount(g[reached[k - 1] < big], minlength=n_groups) if k else entered)
        if k:
            prev_at = reached[k - 1]
            dt_prev = np.where(got, (log.ts[np.where(got, at, 0)] - log.ts[np.where(got, prev_at, 0)]) / _NS,
                               np.nan)
            dt_start = np.where(got, (log.ts[np.where(got, at, 0)] - log.ts[np.where(got, entry, 0)]) / _NS,
                                np.nan)
        else:
            dt_prev = np.where(got, 0.0, np.nan)
            dt_start = dt_prev
        sp = _grouped_stats(g, dt_prev, n_groups)
        ss = _grouped_stats(g, dt_start, n_groups, p90=False)
        with np.errstate(invalid="ignore", divide="ignore"):
            frames.append(pd.DataFrame({
                "_g": np.arange(n_groups), "position": k + 1, "step": steps[k],
                "entered": entered, "converted": converted, "dropped": entered - converted,
                "conversion_from_start": entered / first_entered,
                "conversion_from_previous": entered / prev_entered,
                "from_previous_mean_s": sp["mean"], "from_previous_median_s": sp["median"],
                "from_previous_p90_s": sp["p90"],
                "from_start_mean_s": ss["mean"], "from_start_median_s": ss["median"],
            }))
    out = pd.concat(frames, ignore_index=True)
    top = (drops.sort_values(["customers", "next_step"], ascending=[False, True], kind="stable")
           .drop_duplicates(["_g", "position"]))
    top = top.assign(dropped_top_next=top["next_step"].astype(str) + " (" + top["customers"].astype(str) + ")")
    out = out.merge(top[["_g", "position", "dropped_top_next"]], on=["_g", "position"], how="left")
    out = out.sort_values(["_g", "position"], kind="stable")
    res = _with_groups(log, out["_g"].to_numpy(), out.drop(columns="_g"))
    return res.rename(columns={"step": step})


def _dropoff_table(log: _Log, steps, reached, by) -> pd.DataFrame:
    big = np.iinfo(np.int64).max
    n = len(log.step)
    g = log.grp[log.case_first_pos]
    parts = []
    for k in range(len(reached) - 1):  # loop over funnel steps
        at = reached[k]
        dropped = np.flatnonzero((at < big) & (reached[k + 1] == big))
        row = at[dropped]
        has_next = ~log.last[row]
        nxt = np.where(has_next, log.step[np.minimum(row + 1, n - 1)], -1)
        parts.append(pd.DataFrame({"_g": g[dropped], "position": k + 1, "nxt": nxt}))
    if not parts:
        return pd.DataFrame({"_g": [], "position": [], "next_step": [], "customers": []})
    d = pd.concat(parts, ignore_index=True)
    vc = d.groupby(["_g", "position", "nxt"], sort=True).size().rename("customers").reset_index()
    labels = np.append(log.step_labels.astype(object), _END_LABEL)
    vc["next_step"] = labels[vc["nxt"].to_numpy()]  # -1 -> "(end)"
    return vc.drop(columns="nxt")


@dispatch
def funnel_dropoffs(events: pd.DataFrame, steps, by=None, within: float | None = None, *,
                    step: str = "stage", case: str = "customer_id",
                    session_gap_s: float | None = None) -> pd.DataFrame:
    """Where the journeys that stopped in the funnel went next.

    For each funnel step k (except the last) and journeys that reached step k but not k+1: the step
    of their event right after the one where they reached step k ("(end)" if there is none).
    Output: by..., `position`, `step` (funnel step k), `next_step`, `customers`, `share` (of the
    journeys dropped at that position). Sorted by position then customers descending.
    """
    log, steps, reached, _ = _funnel_core(events, steps, by, case, session_gap_s, within, step)
    d = _dropoff_table(log, steps, reached, by)
    if len(d) == 0:
        return pd.DataFrame(columns=_as_list(by) + ["position", step, "next_step", "customers", "share"])
    d["step"] = np.asarray(steps, dtype=object)[d["position"].to_numpy() - 1]
    d["share"] = d["customers"] / d.groupby(["_g", "position"])["customers"].transform("sum")
    d = d.sort_values(["_g", "position", "customers", "next_step"],
                      ascending=[True, True, False, True], kind="stable")
    res = _with_groups(log, d["_g"].to_numpy(), d[["position", "step", "next_step", "customers", "share"]])
    return res.rename(columns={"step": step})


def bottlenecks(events: pd.DataFrame, step: str = "stage", by=None, *, case: str = "customer_id",
                session_gap_s: float | None = None, collapse_repeats: bool = False,
                top: int | None = None) -> pd.DataFrame:
    """Steps and transitions ranked by the time they hold customers.

    One row per step (its dwell: time to the next event) and per transition (`from_step` ->
    `to_step`, directly-follows time): by..., `kind` ("step" | "transition"), `from_step`,
    `to_step` (empty for steps), `count`, `median_s`, `p90_s`, `mean_s`, `total_s` (count x mean =
    the total time contributed), `share_total` (of the group's total over all rows of that kind),
    and `rank_median`, `rank_p90`, `rank_total` (1 = slowest/largest, within group and kind).
    Sorted by by..., kind, rank_total. `top` keeps the first rows per group and kind.
    """
    byl = _as_list(by)
    st = step_stats(events, step, by, case=case, session_gap_s=session_gap_s,
                    collapse_repeats=collapse_repeats)
    st = st[st["dwell_n"] > 0]
    s = pd.DataFrame({**{c: st[c] for c in byl}, "kind": "step", "from_step": st[step],
                      "to_step": "", "count": st["dwell_n"], "median_s": st["dwell_median_s"],
                      "p90_s": st["dwell_p90_s"], "mean_s": st["dwell_mean_s"],
                      "total_s": st["dwell_mean_s"] * st["dwell_n"]})
    tr = transitions(events, step, by, case=case, session_gap_s=session_gap_s,
                     collapse_repeats=collapse_repeats)
    t = pd.DataFrame({**{c: tr[c] for c in byl}, "kind": "transition",
                      "from_step": tr["from_step"], "to_step": tr["to_step"], "count": tr["count"],
                      "median_s": tr["median_s"], "p90_s": tr["p90_s"], "mean_s": tr["mean_s"],
                      "total_s": tr["sum_s"]})
    out = pd.concat([s, t], ignore_index=True)
    keys = byl + ["kind"]
    grp = out.groupby(keys, sort=False, dropna=False)
    out["share_total"] = out["total_s"] / grp["total_s"].transform("sum")
    for col, name in (("median_s", "rank_median"), ("p90_s", "rank_p90"), ("total_s", "rank_total")):
        out[name] = grp[col].rank(method="min", ascending=False).astype("Int64")
    out = out.sort_values(keys + ["rank_total", "from_step", "to_step"], kind="stable",
                          ignore_index=True)
    if top is not None:
        out = out.groupby(keys, sort=False, dropna=False).head(top).reset_index(drop=True)
    return out


# --------------------------------------------------------------------------------------------
# Lifecycle logs
# --------------------------------------------------------------------------------------------
def _fifo_match(is_open: np.ndarray, is_close: np.ndarray, grp_start: np.ndarray):
    """FIFO matching of openers and closers within contiguous groups (rows in time order).

    A closer is matched when an opener of its group is waiting; openers are consumed oldest first,
    so the m-th matched closer of a group pairs with the m-th opener of that group. Vectorised
    with the reflection identity: queue_t = X_t - min(0, min_{s<=t} X_s), X = openers - closers.
    Returns (matched closer mask, opener row index for each row, -1 when unmatched).
    """
    n = len(is_open)
    grp_id = np.cumsum(grp_start) - 1
    x = is_open.astype(np.int64) - is_close.astype(np.int64)
    cum = pd.Series(x).groupby(grp_id).cumsum().to_numpy()
    runmin = pd.Series(cum).groupby(grp_id).cummin().to_numpy()
    queue = cum - np.minimum(runmin, 0)
    queue_before = np.where(grp_start, 0, np.concatenate(([0], queue[:-1])))
    matched = is_close & (queue_before > 0)
    # m-th matched closer of a group <-> m-th opener of the group
    m_close = pd.Series(matched.astype(np.int64)).groupby(grp_id).cumsum().to_numpy()
    m_open = pd.Series(is_open.astype(np.int64)).groupby(grp_id).cumsum().to_numpy()
    open_rows = np.flatnonzero(is_open)
    # global rank of (group, m) for openers
    key_open = grp_id[open_rows] * (n + 1) + m_open[open_rows]
    partner = np.full(n, -1, dtype=np.int64)
    mrows = np.flatnonzero(matched)
    key_close = grp_id[mrows] * (n + 1) + m_close[mrows]
    loc = np.searchsorted(key_open, key_close)
    partner[mrows] = open_rows[loc]
    return matched, partner


def pair_lifecycle(events: pd.DataFrame, step: str = "stage", *, lifecycle: str = "lifecycle",
                   case: str = "customer_id") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pair lifecycle rows (SCHEDULE / START / COMPLETE) into one interval per COMPLETE.

    Within each (journey, step), in the order (timestamp, row_id): START rows are paired with
    COMPLETE rows first-in-first-out (a COMPLETE takes the oldest unpaired START, if any), and
    SCHEDULE rows with START rows the same way. Lifecycle values are compared case-insensitively;
    other values (suspend, resume, ate_abort, ...) are ignored and counted.

    Returns `(intervals, orphans)`:

    * intervals: the COMPLETE rows (all their columns) with
      `end_timestamp` = the COMPLETE time, `timestamp` = the paired START time (the COMPLETE time
      when there is none: an atomic event), `schedule_timestamp` (NaT if none) and `paired`
      (True when a START was found), `row_id` = the START row's row_id (the COMPLETE's when
      unpaired; the COMPLETE's is kept in `complete_row_id`), rows ordered by that row_id: an
      interval sits where it starts. Ready for service time (end - start) and waiting time;
    * orphans: per step, `complete_without_start`, `start_without_complete`,
      `schedule_without_start`, `other_lifecycle` rows, `intervals`.
    """
    _check_columns(events, [case, step, "timestamp", lifecycle])
    ev = events
    if "row_id" not in ev.columns:
        ev = ev.assign(row_id=np.arange(len(ev), dtype=np.int64))
    ts = _ts_ns(ev["timestamp"], "timestamp")
    cc, _ = _codes(ev[case], case)
    sc, step_labels = _codes(ev[step], step)
    row = ev["row_id"].to_numpy(dtype=np.int64)
    life = ev[lifecycle].astype(str).str.lower().to_numpy()
    order = np.lexsort((row, ts, sc, cc))
    c, s, t, lf = cc[order], sc[order], ts[order], life[order]
    n = len(order)
    gstart = np.ones(n, dtype=bool)
    if n > 1:
        gstart[1:] = (c[1:] != c[:-1]) | (s[1:] != s[:-1])
    is_s = lf == "schedule"
    is_st = lf == "start"
    is_c = lf == "complete"
    c_matched, c_partner = _fifo_match(is_st, is_c, gstart)
    st_matched, st_partner = _fifo_match(is_s, is_st, gstart)
    comp = np.flatnonzero(is_c)
    start_t = np.where(c_matched[comp], t[np.maximum(c_partner[comp], 0)], t[comp])
    sched_row = np.where(c_matched[comp], st_partner[np.maximum(c_partner[comp], 0)], -1)
    sched_t = t[np.maximum(sched_row, 0)]
    # each interval sits at its START row (the COMPLETE row when unpaired): row_id and output order
    start_row = np.where(c_matched[comp], c_partner[comp], comp)
    start_rowid = row[order[start_row]]
    orig = order[comp]
    back = np.lexsort((row[orig], start_rowid))
    out = ev.iloc[orig[back]].copy()
    out["end_timestamp"] = pd.to_datetime(t[comp][back], utc=True)
    out["timestamp"] = pd.to_datetime(start_t[back], utc=True)
    sched = sched_t[back].view("datetime64[ns]").copy()
    sched[sched_row[back] < 0] = np.datetime64("NaT")
    out["schedule_timestamp"] = pd.to_datetime(sched, utc=True)
    out["paired"] = c_matched[comp][back]
    out["complete_row_id"] = out["row_id"].to_numpy()
    out["row_id"] = start_rowid[back]
    out = out.reset_index(drop=True)
    k = len(step_labels)
    started_matched = np.zeros(n, dtype=bool)
    started_matched[c_partner[c_matched]] = True
    orphans = pd.DataFrame({
        step: step_labels,
        "intervals": np.bincount(s[is_c], minlength=k),
        "complete_without_start": np.bincount(s[is_c & ~c_matched], minlength=k),
        "start_without_complete": np.bincount(s[is_st & ~started_matched], minlength=k),
        "schedule_without_start": np.bincount(s[is_s], minlength=k)
        - np.bincount(s[st_matched], minlength=k),
        "other_lifecycle": np.bincount(s[~(is_s | is_st | is_c)], minlength=k),
    })
    return out, orphans.sort_values(step, ignore_index=True)
