"""A run's data: every source a config names, as CX teams have them, turned into the three contracts
(:func:`gather` reads them all, cross-checks them and returns :class:`Gathered`).

A source (``data.events``, ``data.customers``, ``data.feedback``) is a path, a table
``{path, id, columns, ...}`` or a list of tables (see :class:`journey_analysis.config.Table`). This
module reads each table, applies its renames (``columns``, before ``id``), makes its ``id`` column the
``customer_id``, fills ``stage`` / ``channel`` / ``source`` / ... from a column or a constant, turns a
wide milestone table (one row per order, a timestamp column per stage) into one event per reached
milestone, links feedback keyed by another id through a ``via`` table, and hands every prepared table
to the loaders of :mod:`journey_analysis.gather` (``load_events`` / ``load_customers`` /
``load_feedback``), which run the same checks as on a plain file. Tables of one source are then unioned.
With ``engine: spark`` the events are read and checked by the Spark engine
(:mod:`journey_analysis.engines.spark`).

Rules (quality-log checks, :data:`journey_analysis.schema.RULES`):

* a blank milestone is "not reached" (no event, not an error);
* ``milestone_out_of_order``: a milestone earlier than the latest reached milestone before it on its
  row (e.g. "carrier before approved") is counted per pair of stages and left out of the events; the
  row and its other milestones are kept, nothing is re-sorted. The time at a stage is the time to the
  next milestone kept on the same row (:func:`milestone_durations` computes it from the wide table);
* ``no_customer``: feedback whose key matches no known customer (the customers table when there is
  one, else the customers with events) and events of ids missing from the customers table are counted
  and left out of the run, so they never become customers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from journey_analysis.config import TABLE_VALUES, Table
from journey_analysis.errors import JourneyError
from journey_analysis.schema import QualityLog

#: The contract an empty event log has (a run on customers or feedback only).
EVENT_COLUMNS = {"row_id": "int64", "customer_id": object, "timestamp": "datetime64[ns, UTC]", "stage": object}


def empty_events() -> pd.DataFrame:
    """An events frame with the contract's columns and no rows (no event log configured)."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in EVENT_COLUMNS.items()})


def _read(table: Table) -> pd.DataFrame:
    from journey_analysis.gather import apply_mapping, read_table

    frame = read_table(table.path, table.encoding)
    return apply_mapping(frame, table.columns, table.path)


def _apply_id(frame: pd.DataFrame, table: Table, kind: str) -> pd.DataFrame:
    """``table.id`` becomes ``customer_id``; a source column already called so must have been renamed."""
    if table.id is None or table.id == "customer_id":
        return frame
    if table.id not in frame.columns:
        raise JourneyError(f"The {kind} table has no column {table.id!r} (its `id:`).", file=table.path,
                           column=table.id, expected=f"one of: {', '.join(map(str, frame.columns))}",
                           fix="Correct `id:` (it names a column after the `columns:` renames).")
    if "customer_id" in frame.columns:
        raise JourneyError(f"The {kind} table already has a column 'customer_id', and `id:` makes {table.id!r} "
                           "the customer_id: there would be two.", file=table.path, column="customer_id",
                           expected="one column that becomes customer_id",
                           fix="Rename the file's own column, e.g. columns: {customer_id: source_customer_id}, "
                               "or use it as the id (id: customer_id).")
    return frame.rename(columns={table.id: "customer_id"})


def _apply_values(frame: pd.DataFrame, table: Table) -> tuple[pd.DataFrame, dict]:
    """Fill stage/channel/source/... from a column of the given name, else the constant; return what was used."""
    used = {}
    for key in TABLE_VALUES:
        value = getattr(table, key)
        if value is None:
            continue
        if value in frame.columns:
            if value != key:
                frame[key] = frame[value]
            used[key] = f"column {value!r}"
        else:
            frame[key] = value
            used[key] = f"constant {value!r}"
    return frame, used


def _wide_to_long(frame: pd.DataFrame, table: Table, log: QualityLog, order: list[str]) -> pd.DataFrame:
    """One event per reached milestone of a wide table, in row order then journey order."""
    from journey_analysis.gather import parse_timestamps

    milestones = {s: table.milestones[s] for s in order if s in table.milestones}
    missing = [c for c in milestones.values() if c not in frame.columns]
    if missing:
        raise JourneyError(f"The milestones name {', '.join(map(repr, missing))}, which the table does not have.",
                           file=table.path, column=missing[0],
                           expected=f"one of: {', '.join(map(str, frame.columns))}",
                           fix="Correct `milestones:` (stage: timestamp column) in the config.")
    if "customer_id" not in frame.columns:
        raise JourneyError("A wide milestone table needs the column that identifies each row's journey.",
                           file=table.path, column="customer_id", expected="`id:` naming the order or case column",
                           fix="Add id: <order or case id column> to the table in the config.")
    times = pd.DataFrame({s: parse_timestamps(frame[c], table.path, c, log, required=False)
                          for s, c in milestones.items()})
    kept = times.copy()
    latest = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")
    latest_stage = pd.Series(None, index=frame.index, dtype=object)
    for s in milestones:  # a handful of columns; every step is vectorised over the rows
        t = times[s]
        early = (t < latest).fillna(False).to_numpy(dtype=bool)
        if early.any():
            for before in latest_stage[early].unique():
                pair = early & (latest_stage == before).to_numpy()
                log.add(table.path, "milestone_out_of_order", int(pair.sum()), np.flatnonzero(pair) + 1,
                        detail=f"{s} before {before}")
            kept.loc[early, s] = pd.NaT
        reached = kept[s].notna().to_numpy()
        latest = latest.mask(reached, kept[s])
        latest_stage = latest_stage.mask(reached, s)
    # the row's other columns ride along on each of its events (a "stage" or "timestamp" of the row, e.g. the
    # current status, is kept as row_stage / row_timestamp: the events' own come from the milestones)
    frame = frame.rename(columns={"stage": "row_stage", "timestamp": "row_timestamp"})
    others = [c for c in frame.columns if c not in set(milestones.values())]
    n, k = len(frame), len(milestones)
    ns = np.column_stack([kept[s].to_numpy(dtype="datetime64[ns]") for s in milestones])  # UTC, NaT kept
    long = pd.DataFrame({"_row": np.repeat(np.arange(n), k),
                         "stage": np.tile(np.array(list(milestones), dtype=object), n),
                         "timestamp": pd.Series(ns.reshape(-1)).dt.tz_localize("UTC")})
    long = long[long["timestamp"].notna()].reset_index(drop=True)
    if long.empty:
        raise JourneyError("The milestone table has no milestone reached on any row (every cell is blank).",
                           file=table.path, column=next(iter(milestones.values())),
                           expected="at least one timestamp", fix="Check the milestone column names and the export.")
    rest = frame[others].iloc[long["_row"].to_numpy()].reset_index(drop=True)
    return pd.concat([rest, long[["stage", "timestamp"]]], axis=1)


def milestone_durations(frame: pd.DataFrame, milestones: dict, order: list[str] | None = None) -> pd.DataFrame:
    """Time at each stage of a wide table under the rules above: one row per table row, one column per
    stage (``<stage>_s``, seconds to the next milestone kept on the row; NaN when not reached or last).

    ``frame`` holds the raw timestamp columns named in ``milestones`` (stage -> column)."""
    order = order or list(milestones)
    t = pd.DataFrame({s: pd.to_datetime(frame[milestones[s]].replace("", None), utc=True, format="ISO8601")
                      for s in order if s in milestones})
    kept = t.copy()
    latest = pd.Series(pd.NaT, index=t.index, dtype="datetime64[ns, UTC]")
    for s in t.columns:
        early = (t[s] < latest).fillna(False)
        kept.loc[early, s] = pd.NaT
        latest = latest.mask(kept[s].notna(), kept[s])
    out = pd.DataFrame(index=t.index)
    nxt = pd.Series(pd.NaT, index=t.index, dtype="datetime64[ns, UTC]")
    for s in reversed(list(t.columns)):
        out[f"{s}_s"] = (nxt - kept[s]).dt.total_seconds()
        nxt = nxt.mask(kept[s].notna(), kept[s])
    return out[[f"{s}_s" for s in t.columns]]


def _prepare(table: Table, kind: str, log: QualityLog, stages: list[str]) -> tuple[pd.DataFrame, dict]:
    frame = _apply_id(_read(table), table, kind)
    frame, used = _apply_values(frame, table)
    if table.milestones is not None:
        n_rows = len(frame)
        frame = _wide_to_long(frame, table, log, stages or list(table.milestones))
        used["shape"] = f"wide: {n_rows:,} rows x {len(table.milestones)} milestone columns -> {len(frame):,} events"
    return frame, used


def _via_map(feedback: pd.DataFrame, table: Table, tables_of) -> pd.Series:
    """customer_id for each feedback row, looked up through ``table.via`` by the feedback's key (``table.id``)."""
    key = table.id
    via = table.via
    if isinstance(via, str) and via in ("events", "customers"):
        vias = tables_of(via)
        if len(vias) != 1:
            raise JourneyError(f"via: {via} needs data.{via} to be one table.", file=table.path,
                               fix="Give via a table {path, id} holding both keys.")
        via = vias[0]
    elif not isinstance(via, Table):
        via = Table(path=via)
    if via.milestones is not None:
        via = via.model_copy(update={"milestones": None})
    frame = _apply_id(_read(via), via, "via")
    if "customer_id" not in frame.columns or key not in frame.columns:
        raise JourneyError(f"The via table must hold both keys: the feedback's {key!r} and the customer id.",
                           file=via.path, column=key if key not in frame.columns else "customer_id",
                           expected=f"columns {key!r} and customer_id (or `id:` naming it); found: "
                                    f"{', '.join(map(str, frame.columns))}",
                           fix="Point via at a table with both keys, e.g. via: {path: orders.csv, id: customer_unique_id}.")
    pairs = frame[[key, "customer_id"]].astype(str).drop_duplicates()
    clash = pairs[key].duplicated(keep=False)
    if clash.any():
        k = pairs.loc[clash, key].iloc[0]
        raise JourneyError(f"The via table maps {int(pairs.loc[clash, key].nunique())} {key!r} value(s) to more "
                           f"than one customer (e.g. {k!r}).", file=via.path, column=key,
                           expected=f"each {key} belongs to one customer", fix="Check the via table's keys.")
    lookup = pairs.set_index(key)["customer_id"]
    return feedback[key].astype(str).map(lookup)


def load_source(kind: str, tables: list[Table], log: QualityLog, config=None, tables_of=None):
    """Read, prepare, check and union the tables of one source; returns (frame, notes).

    ``notes`` describes each table for ``journey validate`` (file, rows, what filled stage/channel/...).
    """
    from journey_analysis import gather as G

    frames, notes = [], []
    stages = list(config.stage_names) if config is not None else []
    offset = 0
    for t in tables:
        frame, used = _prepare(t, kind, log, stages)
        if kind == "events":
            out = G.load_events(t.path, None, stages=stages or None, step=config.step if config else "stage",
                                log=log, encoding=t.encoding, duplicates=config.data.duplicates if config else "drop",
                                frame=frame)
            out["row_id"] = out["row_id"] + offset
            offset = int(out["row_id"].max()) + 1 if len(out) else offset
        elif kind == "customers":
            out = G.load_customers(t.path, None, log=log, encoding=t.encoding, frame=frame)
        else:
            if t.via is not None:
                if t.id is None:
                    raise JourneyError("via: needs the feedback's key, given as id: (e.g. id: order_id).",
                                       file=t.path, fix="Add id: <the key the feedback shares with the via table>.")
                # the table's id is the key into the via table, not the customer id
                frame = _read(t)
                frame, used = _apply_values(frame, t)
                if "customer_id" in frame.columns:
                    raise JourneyError("The feedback table already has a column 'customer_id' and is linked via "
                                       "another table.", file=t.path, column="customer_id",
                                       fix="Rename it (columns: {customer_id: other_name}) or drop via.")
                if t.id not in frame.columns:
                    raise JourneyError(f"The feedback table has no column {t.id!r} (its `id:`).", file=t.path,
                                       column=t.id, expected=f"one of: {', '.join(map(str, frame.columns))}",
                                       fix="Correct `id:`.")
                frame["customer_id"] = _via_map(frame, t, tables_of)
                n_miss = int(frame["customer_id"].isna().sum())
                used["via"] = f"customer_id through {Path(str(getattr(t.via, 'path', t.via))).name}"
                if n_miss:
                    miss = frame["customer_id"].isna().to_numpy()
                    log.add(t.path, "via_unmatched", n_miss, np.flatnonzero(miss) + 1,
                            detail=f"{t.id} not in the via table")
                    frame = frame.loc[~miss].reset_index(drop=True)
            scales = None
            if config is not None:
                scales = {config.satisfaction.rating_type: (config.satisfaction.min, config.satisfaction.max)}
            out = G.load_feedback(t.path, None, log=log, encoding=t.encoding, scales=scales, frame=frame)
            if len(tables) > 1 and "feedback_id" not in frame.columns:  # made ids stay unique in a union
                out["feedback_id"] = f"F{len(frames) + 1}-" + (out["row_id"] + 1).astype(str)
        notes.append({"kind": kind, "file": str(t.path), "rows": int(len(out)), **used})
        frames.append(out)
    if not frames:
        return None, notes
    if len(frames) == 1:
        return frames[0], notes
    union = pd.concat(frames, ignore_index=True, sort=False)
    if kind == "customers":
        from journey_analysis.schema import validate

        validate(union, "customers", file=" + ".join(Path(str(t.path)).name for t in tables))
    if kind == "feedback":
        union["row_id"] = np.arange(len(union), dtype="int64")
    return union, notes


_TRUE = {"true", "1", "1.0", "yes", "y", "t"}
_FALSE = {"false", "0", "0.0", "no", "n", "f"}


def normalise_outcome(customers: pd.DataFrame, config, file) -> pd.DataFrame:
    """The outcome column checked and written so that ``outcome_good`` names its good value.

    Accepted: booleans, 1/0, True/False, Yes/No (any case) or any two labels; missing outcomes
    (prospects) stay missing. ``outcome_good`` is matched ignoring case, and ``true``/``false``
    (YAML also reads yes/no so) match 1/0 and yes/no. A third value, or an ``outcome_good`` that is
    none of the values, is a :class:`JourneyError` naming it. Written back: with a true/false
    ``outcome_good`` the column becomes boolean (the good value = ``outcome_good``); with a text
    ``outcome_good`` it becomes text, the good value spelled as ``outcome_good``. Returns a copy."""
    col = customers[config.outcome]
    text = col.astype("string").str.strip().str.lower()
    present = text.notna() & (text != "")
    labels = list(pd.unique(text[present]))
    if not labels:
        raise JourneyError(f"The outcome column {config.outcome!r} is empty.", file=file, column=config.outcome,
                           expected="two values (e.g. yes/no)", fix="Choose another `outcome:` column.")
    if len(labels) > 2:
        third = labels[2]
        rows = np.flatnonzero(text.eq(third).fillna(False).to_numpy())[:5] + 1
        raise JourneyError(f"The outcome column {config.outcome!r} has more than two values "
                           f"({', '.join(map(repr, labels[:5]))}); {third!r} is a third one.",
                           file=file, column=config.outcome, rows=rows,
                           expected="two values: the good one (outcome_good) and the other",
                           fix="Correct those rows, or choose a two-valued `outcome:` column.")
    good = config.outcome_good
    if isinstance(good, bool) or (isinstance(good, int) and good in (0, 1)):
        match = _TRUE if bool(good) else _FALSE
    else:
        match = {str(good).strip().lower()}
        if match <= _TRUE or match <= _FALSE:
            match = _TRUE if match <= _TRUE else _FALSE
    good_labels = [v for v in labels if v in match]
    if not good_labels:
        raise JourneyError(f"outcome_good {good!r} is not a value of the outcome column {config.outcome!r} "
                           f"(values: {', '.join(map(repr, labels))}).", file=file, column=config.outcome,
                           expected=f"outcome_good: one of {', '.join(labels)}",
                           fix=f"Set outcome_good: to the good value (e.g. outcome_good: {labels[0]}).")
    is_good = text.isin(good_labels)
    out = customers.copy()
    if isinstance(good, bool) or (isinstance(good, int) and good in (0, 1)):
        out[config.outcome] = pd.Series(np.where(is_good, bool(good), not bool(good)), index=col.index,
                                        dtype="boolean").where(present, pd.NA)
    else:
        out[config.outcome] = col.astype("string").str.strip().where(~is_good, str(good)).astype(object).where(present, None)
    return out


# --------------------------------------------------------------------------------------------
# A run's data: every source of the config read, checked against each other and logged
# --------------------------------------------------------------------------------------------
@dataclass
class Gathered:
    """Everything a run reads: normalised frames and the data-quality log.

    ``events`` is never None: without an event log it is an empty frame in the events contract
    (:func:`empty_events`). ``sources`` describes each table read (file, rows,
    what filled stage/channel/source), for ``journey validate``; ``has_events`` says whether an event
    log was configured."""

    events: pd.DataFrame  # a Spark DataFrame with engine: spark
    customers: pd.DataFrame | None
    feedback: pd.DataFrame | None
    log: QualityLog = field(default_factory=QualityLog)
    sources: list = field(default_factory=list)
    has_events: bool = True

    @property
    def quality(self) -> pd.DataFrame:
        return self.log.frame()


def _label(files) -> str:
    files = [str(f) for f in files]
    return files[0] if len(files) == 1 else " + ".join(Path(f).name for f in files)


def _check_rating_type(feedback: pd.DataFrame, config, log: QualityLog, file) -> None:
    """Ratings whose ``rating_type`` is not the configured one: an error when no rating is of the configured
    type (every satisfaction figure would be missing), else counted (``other_rating_type``)."""
    if "rating" not in feedback.columns or "rating_type" not in feedback.columns:
        return
    want = config.satisfaction.rating_type.lower()
    rated = feedback["rating"].notna().to_numpy()
    kind = feedback["rating_type"].astype("string").str.strip().str.lower()
    other = rated & (kind != want).fillna(True).to_numpy()
    if rated.any() and other[rated].all():
        found = kind[rated].value_counts()
        listed = ", ".join(f"{k!r} ({v:,} rows)" for k, v in found.items())
        raise JourneyError(f"No rating in the feedback is of the configured type {want!r}: the file's rating_type "
                           f"values are {listed}, so every satisfaction figure would be missing.", file=file,
                           column="rating_type", expected=f"rating_type {want!r} (satisfaction.rating_type)",
                           fix=f"Set satisfaction: {{rating_type: {found.index[0]}, min: ..., max: ...}} to the "
                               "file's scale, or map the right column.")
    if other.any():
        names = ", ".join(sorted(kind[other].dropna().unique())[:5])
        log.add(file, "other_rating_type", int(other.sum()), np.flatnonzero(other) + 1, severity="info",
                detail=names)


def _ids_in(ids: pd.Series, pool: pd.Series) -> pd.Series:
    """``ids.isin(pool)`` (missing matches missing), by pyarrow's hash kernel when both columns are text
    (each id compared as its UTF-8 bytes, as Python compares the strings); pandas' otherwise."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        hit = pc.is_in(pa.array(ids.to_numpy(), type=pa.large_string(), from_pandas=True),
                       value_set=pa.array(pool.to_numpy(), type=pa.large_string(), from_pandas=True),
                       skip_nulls=False)
    except (pa.ArrowException, TypeError, ValueError, UnicodeError):  # ids that are not all text
        return ids.isin(pool)
    return pd.Series(hit.to_numpy(zero_copy_only=False), index=ids.index)


def gather(config) -> Gathered:
    """Load, normalise and cross-check the data named in a :class:`~journey_analysis.config.RunConfig`.

    Each source is read by :mod:`journey_analysis.sources` (paths, tables with a key, lists of tables,
    wide milestone tables, feedback linked ``via`` another table) and checked by this module's loaders.
    Without an event log the events are an empty frame in the contract. Keys that match no known
    customer (the customers table when there is one, else the customers with events) are counted
    (``no_customer``) and left out, so they never become customers. With ``engine: spark`` the events
    are read and checked on Spark (:func:`journey_analysis.engines.spark.load_events_spark`: same contract,
    checks and rules) and stay a Spark DataFrame; customers and feedback are read with pandas.
    """
    from journey_analysis.gather import link_feedback, load_events, load_feedback

    log = QualityLog()
    on_spark = config.engine == "spark"
    tables_of = config.data.tables
    ev_tables = tables_of("events")
    ev_file = _label(t.path for t in ev_tables) if ev_tables else None
    notes: list = []
    if on_spark and not (len(ev_tables) == 1 and ev_tables[0].milestones is None and _spark_reads(ev_tables[0])):
        # lists of tables, wide milestone tables, constant or column values: shaped and checked by the
        # sources layer with the pandas rules (the same quality log), then handed to Spark as events
        from journey_analysis.engines import spark

        events, n = load_source("events", ev_tables, log, config, tables_of)
        notes += n
        events = spark.to_spark(events, spark.get_spark(config=config)).persist()
    elif on_spark:
        from journey_analysis.engines import spark

        t = ev_tables[0]
        session = spark.get_spark(config=config)
        if t.id and t.id != "customer_id" and "customer_id" not in t.columns:
            head, _ = spark.read_source(t.path, session)
            if "customer_id" in head.columns:
                _apply_id(pd.DataFrame(columns=list(head.columns)), t, "events")  # raises the two-ids message
        events = spark.load_events_spark(t.path, spark_mapping(t), stages=config.stage_names,
                                         step=config.step, log=log, duplicates=config.data.duplicates,
                                         spark=session)
        notes.append({"kind": "events", "file": str(t.path), "rows": int(events.count())})  # persisted: cheap
    elif ev_tables:
        if len(ev_tables) == 1 and ev_tables[0].milestones is None and _plain(ev_tables[0]):
            t = ev_tables[0]
            events = load_events(t.path, t.columns or None, stages=config.stage_names, step=config.step, log=log,
                                 encoding=t.encoding, duplicates=config.data.duplicates)
            notes.append({"kind": "events", "file": str(t.path), "rows": int(len(events))})
        else:
            events, n = load_source("events", ev_tables, log, config, tables_of)
            notes += n
    else:
        events = empty_events()
    customers = feedback = None
    cu_tables = tables_of("customers")
    if cu_tables:
        cu_file = _label(t.path for t in cu_tables)
        customers, n = load_source("customers", cu_tables, log, config, tables_of)
        notes += n
        if config.outcome and config.outcome not in customers.columns:
            raise JourneyError(f"The outcome column {config.outcome!r} named in the config is not in the customers file.",
                               file=cu_file, column=config.outcome,
                               expected=f"one of: {', '.join(customers.columns)}",
                               fix="Correct `outcome:` in the config or add the column.")
        if config.outcome:
            customers = normalise_outcome(customers, config, cu_file)
        if ev_tables and on_spark:
            spark.check_customers_spark(events, customers, log, ev_file)
            if any(e["check"] == "unknown_customer" for e in log.entries):
                events = spark.keep_customers(events, customers)
        elif ev_tables:
            unknown = ~_ids_in(events["customer_id"], customers["customer_id"])
            log.add(ev_file, "unknown_customer", int(unknown.sum()), events.loc[unknown, "row_id"] + 1)
            if unknown.any():
                events = events.loc[~unknown.to_numpy()].reset_index(drop=True)
            if "created_at" in customers.columns:
                created = events["customer_id"].map(customers.set_index("customer_id")["created_at"])
                early = (events["timestamp"] < created).to_numpy()
                log.add(ev_file, "before_customer_created", int(early.sum()),
                        events.loc[early, "row_id"] + 1)
    elif config.outcome:
        raise JourneyError(f"The config names an outcome ({config.outcome!r}) but no customers table holds it.",
                           file=config.path, column=config.outcome, expected="data.customers with that column",
                           fix="Add data.customers, or remove `outcome:`.")
    fb_tables = tables_of("feedback")
    if fb_tables:
        fb_file = _label(t.path for t in fb_tables)
        if len(fb_tables) == 1 and _plain(fb_tables[0]):
            t = fb_tables[0]
            scales = {config.satisfaction.rating_type: (config.satisfaction.min, config.satisfaction.max)}
            feedback = load_feedback(t.path, t.columns or None, log=log, scales=scales, encoding=t.encoding)
            notes.append({"kind": "feedback", "file": str(t.path), "rows": int(len(feedback))})
        else:
            feedback, n = load_source("feedback", fb_tables, log, config, tables_of)
            notes += n
        _check_rating_type(feedback, config, log, fb_file)
        if "customer_id" in feedback.columns and (customers is not None or ev_tables):
            has_id = feedback["customer_id"].notna()
            if customers is not None:
                known = _ids_in(feedback["customer_id"], customers["customer_id"])
            elif on_spark:
                known = spark.ids_known(events, feedback["customer_id"])
            else:
                known = _ids_in(feedback["customer_id"], events["customer_id"])
            phantom = (has_id & ~known).to_numpy()
            log.add(fb_file, "no_customer", int(phantom.sum()), feedback.loc[phantom, "row_id"] + 1,
                    detail="feedback rows whose customer id matches no known customer")
            if phantom.any():
                feedback = feedback.loc[~phantom].reset_index(drop=True)
        if ev_tables:
            feedback = link_feedback(feedback, events, step="stage", log=log, file=fb_file)
        else:
            feedback = feedback.copy()
            feedback["stage_source"] = np.where(feedback["stage"].notna(), "given", "unlinked") \
                if "stage" in feedback.columns else "unlinked"
            if "stage" not in feedback.columns:
                feedback["stage"] = None
    return Gathered(events, customers, feedback, log, notes, has_events=bool(ev_tables))


def _plain(t) -> bool:
    """A table that is just a file and its renames (read by the plain loaders, as before tables existed)."""
    from journey_analysis.config import TABLE_VALUES

    return t.id is None and t.via is None and t.milestones is None and all(getattr(t, k) is None for k in TABLE_VALUES)


def _spark_reads(t) -> bool:
    """A table the Spark loader reads itself: a file or folder with renames and an ``id`` (no constants)."""
    from journey_analysis.config import TABLE_VALUES

    return t.via is None and all(getattr(t, k) is None for k in TABLE_VALUES)


def spark_mapping(t) -> dict:
    """The column mapping that reads a ``{path, id, columns}`` table on Spark: the renames, then ``id`` ->
    ``customer_id`` (the Spark engine reads such tables; lists, milestones and constants it refuses)."""
    mapping = dict(t.columns)
    if t.id and t.id != "customer_id":
        src = next((k for k, v in mapping.items() if v == t.id), t.id)
        mapping[src] = "customer_id"
    return mapping


def quality_summary(g: Gathered) -> pd.DataFrame:
    """One table a person reads before trusting the data: figure, value (as text)."""
    from journey_analysis.steps import overview

    if g.has_events:
        o = overview(g.events, "stage")
        rows = [
            ("events", f"{o['events']:,}"),
            ("customers with events", f"{o['customers']:,}"),
            ("first event", str(o["first"])),
            ("last event", str(o["last"])),
            ("stages seen", f"{o['steps']:,}"),
        ]
        if o["events_without_duration"] is not None:
            rows.append(("events without a service duration", f"{o['events_without_duration']:,}"))
    else:
        rows = [("events", "none (no event log in the config)")]
    if g.customers is not None:
        rows.append(("customers in customer file", f"{len(g.customers):,}"))
    if g.feedback is not None:
        fb = g.feedback
        rows += [("feedback rows", f"{len(fb):,}"),
                 ("feedback with text", f"{int((fb['text'].str.len() > 0).sum()):,}"),
                 ("feedback linked to a stage by time", f"{int((fb['stage_source'] == 'linked').sum()):,}"),
                 ("feedback not linked to a stage", f"{int((fb['stage_source'] == 'unlinked').sum()):,}"),
                 ("feedback without a customer", f"{int(fb['customer_id'].isna().sum()) if 'customer_id' in fb else len(fb):,}")]
    by_check = g.log.frame().groupby("check")["rows"].sum() if g.log.entries else pd.Series(dtype=int)
    for check in ("exact_duplicate", "unknown_stage", "negative_duration", "before_customer_created",
                  "rating_out_of_scale", "bad_rating", "formula_cell", "unknown_customer", "no_customer",
                  "via_unmatched", "milestone_out_of_order", "other_rating_type"):
        rows.append((check.replace("_", " "), f"{int(by_check.get(check, 0)):,}"))
    return pd.DataFrame(rows, columns=["figure", "value"])
