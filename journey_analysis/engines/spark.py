"""The Spark engine (:mod:`journey_analysis.engines`): the per-event operations of
:mod:`journey_analysis.steps`, :mod:`journey_analysis.segment`, :mod:`journey_analysis.gather` and the
run computed on a PySpark DataFrame, returning the same small pandas frames.

This module owns the Spark session (:func:`get_spark`), reading and checking events from a data lake
(:func:`read_events_spark`, :func:`load_events_spark`: Parquet directories, partitioned or not, and
CSV), the Spark versions of ``step_stats``, ``transitions``, ``start_end_counts``, ``funnel``,
``funnel_dropoffs``, ``variants``, ``journey_durations`` and the other operations the seam names,
the per-customer behaviour of the features (:func:`customer_behaviour`) and the assignment step of
k-means at scale (:func:`assign_segments_spark`, used by :func:`journey_analysis.segment.segment_spark`).
It imports only the layers below it (reading, schema, formatting, config, errors), never a private
name. PySpark is an optional extra (``pip install journey-analysis[spark]``): nothing here imports it
at module import time.

How the numbers are made (same definitions as :mod:`journey_analysis.steps`):

* order: a window partitioned by journey (``case``, or the customer when cut into sessions) and
  ordered by (timestamp, row_id) (``order="end"``: by (end time, row_id)). Times are carried as
  int64 nanoseconds since the epoch (Spark timestamps hold microseconds, so sub-microsecond digits
  of a pandas timestamp are not representable on Spark);
* dwell = ``lead(timestamp) - timestamp`` in that window (none for the last event), transitions =
  (``step``, ``lead(step)``) pairs, journey duration = timestamp of the last row - of the first row;
* exact aggregates: ``count``, ``count(DISTINCT)``, ``min``, ``max``, ``sum``, ``avg``,
  ``stddev_samp`` (ddof=1, NaN for one value), median and p90 with Spark's exact ``percentile``
  (linear interpolation between the two closest ranks: the mean of the two middle values for the
  median, like pandas; pandas' ``quantile(0.9)`` for p90). No statistic is approximate. Sums and
  means add in another order than numpy, so they agree to about 1e-12 relative, not bit for bit;
* results are collected with ``toPandas`` (they are one row per step, transition, variant or
  journey) and sorted in pandas exactly as :mod:`journey_analysis.steps` sorts.

Options of the pandas functions that change the order or cut journeys (``by``, ``case``,
``session_gap_s``, ``collapse_repeats``, ``order``, ``time``, ``within``, ``inactivity_gap_s``,
``as_of``, ``top``, ``sep``) are supported with the same meaning.
"""
from __future__ import annotations

from functools import reduce
from pathlib import Path

import numpy as np
import pandas as pd

from journey_analysis.engines import is_spark_frame
from journey_analysis.errors import JourneyError

__all__ = [
    "get_spark", "read_events_spark", "load_events_spark", "to_spark", "step_stats", "transitions",
    "start_end_counts", "cut_sessions", "funnel", "funnel_dropoffs", "variants", "journey_durations",
    "customer_behaviour", "assign_segments_spark", "sample_rows",
]

_NS = 1_000_000_000
_END_LABEL = "(end)"
#: Settings applied to every session built by :func:`get_spark` unless the config overrides them.
DEFAULT_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}
#: Extra defaults in local mode only (a cluster keeps its own): few shuffle partitions for 2 cores.
LOCAL_CONF = {"spark.sql.shuffle.partitions": "8", "spark.driver.memory": "2g"}
_MISSING_MARK = "JOURNEY_MISSING:"


# --------------------------------------------------------------------------------------------
# Session and input
# --------------------------------------------------------------------------------------------
def _require_pyspark():
    try:
        import pyspark  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise JourneyError("the Spark engine needs PySpark, which is not installed",
                           expected="pyspark >= 3.5 and Java 17",
                           fix="pip install 'journey-analysis[spark]' (or set engine: pandas)") from exc


def _spark_settings(config) -> dict:
    """The `spark:` settings of a RunConfig, of a dict with a "spark" key, or a dict of settings."""
    if config is None:
        return {}
    if hasattr(config, "spark"):
        return dict(config.spark or {})
    if isinstance(config, dict):
        inner = config.get("spark")
        return dict(inner) if isinstance(inner, dict) else dict(config)
    raise JourneyError(f"cannot read Spark settings from {type(config).__name__}",
                       expected="a RunConfig or a dict of spark.* settings")


def get_spark(master: str | None = None, config=None, app_name: str = "journey-analysis"):
    """A SparkSession for the Spark engine (the active one is reused by ``getOrCreate``).

    `master`: e.g. "local[2]" (default when nothing else says), "spark://host:7077", "yarn",
    "k8s://...". Otherwise `spark.master` from the run config's `spark:` mapping (`config` = a
    RunConfig, a dict with a "spark" key, or a dict of settings), else the SPARK_MASTER
    environment variable, else "local[2]". Every other `spark.*` key of the mapping is passed to the
    builder. Always sets `spark.sql.session.timeZone=UTC` (all times in this package are UTC) and
    Arrow transfer for ``toPandas``; in local mode also 8 shuffle partitions and 2 GB driver memory
    unless the config says otherwise. The driver logs errors only (resources/log4j2-spark.properties,
    unless the config sets ``spark.driver.extraJavaOptions``; ``spark.log.level`` sets the level
    after start, default FATAL: failures reach Python as exceptions).
    """
    _require_pyspark()
    import os
    import warnings

    from pyspark.sql import SparkSession

    # PySpark 4 warns that it does not fully support pandas 3 on every Arrow transfer; the engines'
    # equality tests are what we rely on, so the warnings only clutter notebooks and reports
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=r"pyspark\.")

    settings = _spark_settings(config)
    master = master or settings.pop("spark.master", None) or os.environ.get("SPARK_MASTER") or "local[2]"
    settings.pop("spark.master", None)
    conf = dict(DEFAULT_CONF)
    if str(master).startswith("local"):
        conf.update(LOCAL_CONF)
    log4j = Path(__file__).resolve().parent.parent / "resources" / "log4j2-spark.properties"
    conf["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile={log4j.as_uri()}"  # quiet start-up
    conf.update({str(k): str(v) for k, v in settings.items()})
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # no Java, a wrong JAVA_HOME, an unreachable master
        raise JourneyError(f"Spark could not start ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}).",
                           column="spark.master", expected=f"a reachable Spark master ({master}) and Java 17 or 21",
                           fix="Check `java -version` and JAVA_HOME, and spark.master in the config's spark: "
                               "settings; or use engine: pandas.") from None
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    spark.sparkContext.setLogLevel(conf.get("spark.log.level", "FATAL"))  # our errors say what failed
    return spark


def _session(spark=None):
    if spark is not None:
        return spark
    _require_pyspark()
    from pyspark.sql import SparkSession
    active = SparkSession.getActiveSession()
    return active if active is not None else get_spark()


def _ts_column(sdf, name: str):
    """A Spark timestamp expression for column `name` (strings parsed as ISO 8601; naive = UTC)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T
    dtype = sdf.schema[name].dataType
    if isinstance(dtype, T.TimestampType):
        return F.col(name)
    if isinstance(dtype, T.TimestampNTZType):
        # naive wall times are UTC by contract; the session time zone is UTC
        return F.col(name).cast("timestamp")
    if isinstance(dtype, T.StringType):  # a value that does not parse becomes missing (try_cast)
        return F.when(F.trim(F.col(name)) == "", None).otherwise(F.trim(F.col(name)).try_cast("timestamp"))
    if isinstance(dtype, T.DateType):
        return F.col(name).cast("timestamp")
    raise JourneyError(f"column {name!r} is not a time (Spark type {dtype.simpleString()})", column=name,
                       expected="timestamp or ISO 8601 text", fix="write times as timestamps or ISO 8601")


def _with_row_id(sdf, spark):
    """Add `row_id` = 0-based position in the order Spark reads the partitions (exact, no Python).

    monotonically_increasing_id() is (partition index << 33) + position in the partition; the
    partitions' row counts (one small job) turn it into consecutive positions.
    """
    from pyspark.sql import functions as F
    sdf = sdf.withColumn("_mid", F.monotonically_increasing_id())
    sdf = sdf.withColumn("_pid", F.shiftright(F.col("_mid"), 33))
    counts = _collect(sdf.groupBy("_pid").count().toPandas).sort_values("_pid")
    if counts.empty:
        return sdf.withColumn("row_id", F.lit(None).cast("long")).drop("_mid", "_pid")
    offsets = counts.assign(_off=counts["count"].cumsum() - counts["count"])[["_pid", "_off"]]
    off = spark.createDataFrame(offsets.astype("int64"))
    sdf = sdf.join(F.broadcast(off), "_pid", "left")
    sdf = sdf.withColumn("row_id", (F.col("_off") + F.col("_mid")
                                    - F.shiftleft(F.col("_pid"), 33)).cast("long"))
    return sdf.drop("_mid", "_pid", "_off")


def _csv_reader(spark, sep: str = ","):
    return (spark.read.option("header", "true").option("inferSchema", "false").option("sep", sep)
            .option("escape", '"').option("multiLine", "false").option("mode", "FAILFAST"))


def _read_parquet(spark, targets: list[str]):
    """spark.read.parquet, with a JourneyError for a path that is not there and for nanosecond times."""
    try:
        return spark.read.parquet(*targets)
    except Exception as exc:
        text = str(exc)
        if "PATH_NOT_FOUND" in text:
            raise JourneyError("events not found", file=targets[0],
                               fix="check the path or URI (data.events in the config)") from None
        if "TIMESTAMP(NANOS" in text:
            raise JourneyError("Spark cannot read Parquet times stored in nanoseconds.", file=targets[0],
                               expected="Parquet timestamps in microseconds or milliseconds",
                               fix="Write the files again with microsecond times; from pandas: "
                                   "to_parquet(..., coerce_timestamps='us', allow_truncated_timestamps=True).") from None
        raise


def read_source(path_or_dir, spark, fmt: str | None = None):
    """The rows of a Parquet file/directory, CSV file(s) or a list of them, as read (CSV: every
    column as text, an empty field missing; files one by one in name order). Returns (frame, paths).

    Storage URIs (``s3a://``, ``gs://``, ``abfss://``, ``hdfs://``, ``file://``...) go to Spark as they
    are: Parquet unless the name ends in .csv(.gz|.bz2), CSV comma-separated (nothing is read ahead
    of Spark, so no delimiter sniffing or local checks)."""
    from journey_analysis.config import is_uri
    from journey_analysis.reading import check_path, read_head, sniff_delimiter

    items = list(path_or_dir) if isinstance(path_or_dir, (list, tuple)) else [path_or_dir]
    if any(is_uri(p) for p in items):
        targets = [str(p) for p in items]
        fmt = fmt or ("csv" if targets[0].lower().endswith((".csv", ".csv.gz", ".csv.bz2")) else "parquet")
        if fmt == "csv":
            sdf = _collect(lambda: _csv_reader(spark).csv(targets))
        elif fmt == "parquet":
            sdf = _read_parquet(spark, targets)
        else:
            raise JourneyError(f"unknown format {fmt!r}", expected="'parquet' or 'csv'")
        return sdf, targets
    paths = [Path(p) for p in items]
    for p in paths:
        if not p.exists():
            raise JourneyError("events not found", file=p, fix="check the path (data.events in the config)")
        if p.is_dir() and not any(q.is_file() and not q.name.startswith(("_", ".")) for q in p.rglob("*")):
            raise JourneyError("The directory has no data files.", file=p,
                               expected="Parquet files (partitioned key=value/ folders or not) or CSV files",
                               fix="Point data.events to the folder holding the files, or to one file.")
    if fmt is None:
        first = paths[0]
        names = [first.name] if first.is_file() else [q.name for q in first.rglob("*") if q.is_file()]
        is_csv = any(n.endswith((".csv", ".csv.gz", ".csv.bz2")) for n in names) and \
            not any(n.endswith(".parquet") for n in names)
        fmt = "csv" if is_csv else "parquet"
    if fmt == "csv":
        files = []
        for p in paths:
            files += sorted(q for q in p.rglob("*.csv*") if q.is_file()) if p.is_dir() else [p]
        for f in files:
            check_path(f)  # the pandas loader's messages for an empty file
        sep = sniff_delimiter(read_head(files[0]).decode("utf-8", errors="replace"))
        reader = _csv_reader(spark, sep)
        parts = [reader.csv(str(f)) for f in files]
        sdf = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), parts)
        clean = [str(c).strip().lstrip("\ufeff") for c in sdf.columns]
        if clean != sdf.columns:
            sdf = sdf.toDF(*clean)
    elif fmt == "parquet":
        sdf = _read_parquet(spark, [str(p) for p in paths])
    else:
        raise JourneyError(f"unknown format {fmt!r}", expected="'parquet' or 'csv'")
    return sdf, paths


def read_events_spark(path_or_dir, spark=None, columns: dict | None = None, *, fmt: str | None = None,
                      interval: bool = False, step: str | None = None):
    """Read events with Spark into the events contract, lazily (nothing is collected).

    `path_or_dir`: a Parquet file or directory (partitioned ``key=value/`` folders become columns),
    a CSV file (``.csv``, ``.csv.gz``), a directory of CSV files, or a list of such paths. `fmt`
    ("parquet" | "csv") overrides the guess from the name. `columns`: source name -> contract name
    (like the config's ``data.columns.events``).

    Normalised to the contract: `case_id` -> `customer_id` when there is no `customer_id`;
    `customer_id` as string (CSV is read with every column as text: ids keep leading zeros, "NA"
    and "None" stay ids; an empty field is missing); `timestamp`, `end_timestamp` and
    `start_timestamp` parsed as UTC timestamps (ISO 8601 text; naive times are UTC). With
    `interval=True` and a `start_timestamp` column (the shared interval logs), `timestamp` =
    start (the complete time when there is none) and `end_timestamp` = the file's `timestamp`.

    `row_id`: kept when present (our gather stage writes it to Parquet: the order of ties is then
    the original file order). Otherwise it is the 0-based position in the order Spark reads the
    data: for CSV, files are read one by one in name order and each file front to back, so it is the
    row position in the concatenated files (exact, like pandas); for Parquet without `row_id` Spark
    packs files by size, so it is a stable order for the same files but not their name order: write
    `row_id` when you export events if ties in timestamp matter.
    """
    from pyspark.sql import functions as F

    spark = _session(spark)
    sdf, paths = read_source(path_or_dir, spark, fmt)
    if columns:
        for src, dst in columns.items():
            if src in sdf.columns and src != dst:
                sdf = sdf.withColumnRenamed(src, dst)
    if "customer_id" not in sdf.columns and "case_id" in sdf.columns:
        sdf = sdf.withColumnRenamed("case_id", "customer_id")
    missing = [c for c in ("customer_id", "timestamp") if c not in sdf.columns]
    if missing:
        raise JourneyError(f"events lack column(s) {missing}", file=paths[0], column=missing[0],
                           expected="customer_id (or case_id) and timestamp",
                           fix="map the source names with columns={source: contract}")
    if step is not None and step not in sdf.columns:
        raise JourneyError(f"events lack the step column {step!r}", file=paths[0], column=step,
                           expected=f"one of {sdf.columns[:15]}")
    sdf = sdf.withColumn("customer_id", F.col("customer_id").cast("string"))
    for col in ("timestamp", "end_timestamp", "start_timestamp"):
        if col in sdf.columns:
            sdf = sdf.withColumn(col, _ts_column(sdf, col))
    if interval and "start_timestamp" in sdf.columns:
        sdf = (sdf.withColumn("end_timestamp", F.col("timestamp"))
               .withColumn("timestamp", F.coalesce(F.col("start_timestamp"), F.col("timestamp")))
               .drop("start_timestamp"))
    if "duration_s" in sdf.columns:
        sdf = sdf.withColumn("duration_s", F.col("duration_s").cast("double"))
    if "row_id" in sdf.columns:
        sdf = sdf.withColumn("row_id", F.col("row_id").cast("long"))
    else:
        sdf = _with_row_id(sdf, spark)
    return sdf


def to_spark(events: pd.DataFrame, spark=None, *, add_row_id: bool = True):
    """A pandas frame as a Spark DataFrame (for tests and small data): times as UTC timestamps,
    categoricals and text as strings, and for events (`add_row_id`) `row_id` from the positional
    order when absent. Use ``add_row_id=False`` for frames that are not events (features)."""
    spark = _session(spark)
    ev = events.copy()
    if add_row_id and "row_id" not in ev.columns:
        ev["row_id"] = np.arange(len(ev), dtype=np.int64)
    for c in ev.columns:
        s = ev[c]
        if isinstance(s.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(s.dtype):
            ev[c] = s.astype(object).where(s.notna(), None)
        elif pd.api.types.is_datetime64_any_dtype(s.dtype):
            ev[c] = (s.dt.tz_convert("UTC") if s.dt.tz is not None else s.dt.tz_localize("UTC")).astype(
                "datetime64[us, UTC]")
    return spark.createDataFrame(ev)


# --------------------------------------------------------------------------------------------
# Gathering on Spark (engine: spark): the events contract and its doubtful-row rules
# --------------------------------------------------------------------------------------------
#: Text that a spreadsheet would run as a formula (the rule of journey_analysis.gather).
_FORMULA = r"^([=+@]|-[^0-9.])"
_NOT_TEXT = {"row_id", "timestamp", "end_timestamp", "start_timestamp", "duration_s"}


def _is_blank(col):
    from pyspark.sql import functions as F
    return col.isNull() | (F.trim(col.cast("string")) == "")


def _first_rows(flagged, flag: str, value: str | None = None, n: int = 5):
    """1-based data rows (row_id + 1) of the first `n` rows where `flag` holds, in file order, and
    their `value` (text)."""
    from pyspark.sql import functions as F
    sel = [F.col("row_id")] + ([F.col(value).cast("string").alias("_val")] if value else [])
    got = flagged.filter(F.col(flag)).select(*sel).orderBy("row_id").limit(n).collect()
    return [int(r["row_id"]) + 1 for r in got], ([r["_val"] for r in got] if value else [])


def load_events_spark(path, columns: dict | None = None, stages=None, step: str = "stage", log=None,
                      duplicates: str = "drop", spark=None, fmt: str | None = None):
    """:func:`journey_analysis.gather.load_events` on Spark: the same contract, checks and rules.

    Reads a Parquet file or directory (partitioned or not) or CSV file(s) (see
    :func:`read_events_spark`), maps columns like the pandas loader (``columns``, then ``case_id`` ->
    ``customer_id``, ``activity`` -> ``stage``), and checks every row in one Spark job:

    * fatal (:class:`JourneyError` with the first rows and values): a required column missing, a
      blank ``customer_id``, ``stage`` or ``timestamp``, a time that does not parse (Spark reads ISO
      8601 with or without an offset; naive = UTC), a ``duration_s`` column mostly not numbers;
    * doubtful rows, logged in `log` with the same checks and rules as pandas: ``naive_timestamp``
      (the column mixes values with and without an offset), ``bad_rating`` (a duration that is not a
      number: set missing), ``negative_duration`` (set missing), ``formula_cell``,
      ``exact_duplicate`` (identical rows but ``row_id``: later copies removed unless
      ``duplicates="keep"``), ``unknown_stage``.

    ``row_id`` is kept when the source has it (events we wrote to Parquet), else it is the 0-based
    position in the order Spark reads the rows (exact for CSV). Returns a lazy Spark DataFrame
    (persisted: the checks and later stages read the same rows); nothing is collected but the
    counts and the first rows of each failing check.
    """
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from journey_analysis.reading import OFFSET
    from journey_analysis.schema import EXPECTED, REQUIRED, QualityLog, validate

    log = QualityLog() if log is None else log
    spark = _session(spark)
    sdf, _ = read_source(path, spark, fmt)
    for src, dst in (columns or {}).items():
        if src in sdf.columns and src != dst:
            sdf = sdf.withColumnRenamed(src, dst)
    if "case_id" in sdf.columns and "customer_id" not in sdf.columns:
        sdf = sdf.withColumnRenamed("case_id", "customer_id")
    if "activity" in sdf.columns and "stage" not in sdf.columns and step in ("stage", "activity"):
        sdf = sdf.withColumn("stage", F.col("activity"))
    if step != "stage" and step in sdf.columns and "stage" not in sdf.columns:
        sdf = sdf.withColumn("stage", F.col(step))
    if any(c not in sdf.columns for c in REQUIRED["events"]):
        validate(pd.DataFrame(columns=sdf.columns), "events", path)  # the loaders' missing-column message
    if "duration" in sdf.columns and "duration_s" not in sdf.columns:
        sdf = sdf.withColumnRenamed("duration", "duration_s")
    sdf = (sdf.withColumn("row_id", F.col("row_id").cast("long")) if "row_id" in sdf.columns
           else _with_row_id(sdf, spark))
    sdf = sdf.select("row_id", *[F.col(c).cast("string").alias(c) if c in ("customer_id", "stage") else F.col(c)
                                 for c in sdf.columns if c != "row_id"])

    # per-row flags, computed with the parsed values in one select
    flags: dict[str, object] = {"_f_customer": _is_blank(F.col("customer_id")), "_f_stage": _is_blank(F.col("stage"))}
    values, raws = {}, {}
    times = [c for c in ("timestamp", "end_timestamp", "start_timestamp") if c in sdf.columns]
    for col in times:
        raw = F.col(col)
        if isinstance(sdf.schema[col].dataType, T.StringType):
            text = F.trim(raw)
            blank = raw.isNull() | (text == "")
            values[col] = F.when(~blank, text.try_cast("timestamp"))
            raws[f"_raw_{col}"] = raw
            flags[f"_f_{col}_bad"] = ~blank & values[col].isNull()
            flags[f"_f_{col}_naive"] = ~blank & ~text.rlike(OFFSET)
            flags[f"_f_{col}_set"] = ~blank
        else:
            values[col] = _ts_column(sdf, col)
            blank = values[col].isNull()
        flags[f"_f_{col}_blank"] = blank
    if "duration_s" in sdf.columns:
        raw = F.col("duration_s")
        if isinstance(sdf.schema["duration_s"].dataType, T.StringType):
            text = F.trim(raw)
            blank = raw.isNull() | (text == "")
            num = F.when(~blank, F.regexp_replace(text, ",", ".").try_cast("double"))
            flags["_f_duration_bad"] = ~blank & num.isNull()
            flags["_f_duration_set"] = ~blank
        else:
            num = F.when(~F.isnan(raw.cast("double")), raw.cast("double"))
        values["duration_s"] = num
    if "end_timestamp" in sdf.columns:
        svc = (F.unix_micros(values["end_timestamp"]) - F.unix_micros(values["timestamp"])) / F.lit(1e6)
        values["duration_s"] = F.coalesce(values["duration_s"], svc) if "duration_s" in values else svc
    if "duration_s" in values:
        flags["_f_negative"] = F.coalesce(values["duration_s"] < 0, F.lit(False))
        values["duration_s"] = F.when(~flags["_f_negative"], values["duration_s"])
    text_cols = [c for c, t in sdf.dtypes if t == "string" and c not in _NOT_TEXT]
    formula = [F.coalesce(F.col(c).rlike(_FORMULA), F.lit(False)) for c in text_cols]
    # Spark decodes CSV as UTF-8 and turns bytes that are not UTF-8 into U+FFFD
    mangled = [F.coalesce(F.col(c).contains("\ufffd"), F.lit(False)) for c, t in sdf.dtypes if t == "string"]
    flags["_f_encoding"] = reduce(lambda a, b: a | b, mangled) if mangled else F.lit(False)
    flags["_f_formula"] = reduce(lambda a, b: a | b, formula) if formula else F.lit(False)
    out_cols = [values.get(c, F.col(c)).alias(c) for c in sdf.columns]
    if "duration_s" in values and "duration_s" not in sdf.columns:
        out_cols.append(values["duration_s"].alias("duration_s"))
    flagged = sdf.select(*out_cols, *[f.alias(n) for n, f in flags.items()], *[r.alias(n) for n, r in raws.items()])
    content = [c for c in flagged.columns if c != "row_id" and not c.startswith(("_f_", "_raw_"))]
    flagged = flagged.withColumn("_f_dup", F.row_number().over(
        Window.partitionBy(*content).orderBy("row_id")) > 1)
    kept = ~F.col("_f_dup") if duplicates == "drop" else F.lit(True)
    known = list(stages) if stages is not None else None
    flagged = flagged.withColumn("_f_unknown", kept & ~F.col("stage").isin(known) if known is not None else F.lit(False))
    flagged = flagged.persist(StorageLevel.MEMORY_AND_DISK)
    names = [c for c in flagged.columns if c.startswith("_f_")]
    n = _collect(flagged.agg(F.count(F.lit(1)).alias("_rows"),
                             *[F.sum(F.col(c).cast("long")).alias(c) for c in names]).collect)[0].asDict()
    n = {k: int(v or 0) for k, v in n.items()}
    if n["_rows"] == 0:
        flagged.unpersist()
        raise JourneyError("The events data has a header but no data rows.", file=path,
                           expected="at least one data row", fix="Check the export; it may have been filtered to nothing.")

    def fail(message, column, flag, expected, fix, value=None):
        rows, vals = _first_rows(flagged, flag, value)
        flagged.unpersist()
        if vals:
            message = message.replace("{values}", ", ".join(repr(v) for v in vals[:3]))
        raise JourneyError(message, file=path, column=column, rows=rows, expected=expected, fix=fix)

    if n["_f_encoding"]:
        fail("The file is not UTF-8 text: Spark read bytes that are not UTF-8 (shown as \ufffd).", None,
             "_f_encoding", "UTF-8 text (with or without a byte-order mark)",
             "Re-save the file as UTF-8 (in Excel: 'CSV UTF-8'); the Spark engine reads UTF-8 only.")
    for col in times:  # the order of gather.parse_timestamps: unparseable, then blank (required only)
        if n.get(f"_f_{col}_bad"):
            fail(f"{n[f'_f_{col}_bad']} value(s) in column {col!r} are not date-times ({{values}}).", col,
                 f"_f_{col}_bad", "ISO 8601 date-times, e.g. 2024-05-01T10:00:00Z or 2024-05-01 10:00:00+01:00",
                 "Correct those cells, or map the right column in the config.", value=f"_raw_{col}")
        if col == "timestamp" and n["_f_timestamp_blank"]:
            fail(f"{n['_f_timestamp_blank']} row(s) have no value in column 'timestamp'.", col, "_f_timestamp_blank",
                 "a date-time on every row", "Fill in the missing date-times or remove those rows from the export.")
        naive = n.get(f"_f_{col}_naive", 0)
        if 0 < naive < n.get(f"_f_{col}_set", 0):
            log.add(path, "naive_timestamp", naive, _first_rows(flagged, f"_f_{col}_naive")[0], detail=col)
    if n.get("_f_duration_bad"):
        if n["_f_duration_bad"] > 0.5 * max(1, n["_f_duration_set"]):
            fail("Column 'duration_s' should hold numbers, but most values do not.", "duration_s",
                 "_f_duration_bad", "numbers", "Map the right column in the config, or correct the export.")
        log.add(path, "bad_rating", n["_f_duration_bad"], _first_rows(flagged, "_f_duration_bad")[0],
                detail="duration_s: not a number")
    for check, flag, detail in (("negative_duration", "_f_negative", ""), ("formula_cell", "_f_formula", ""),
                                ("exact_duplicate", "_f_dup", "kept (duplicates: keep)" if duplicates == "keep" else "")):
        if n.get(flag):
            log.add(path, check, n[flag], _first_rows(flagged, flag)[0], detail=detail)
    for col, flag in (("customer_id", "_f_customer"), ("stage", "_f_stage")):
        if n[flag]:
            fail(f"The events data breaks its contract: {n[flag]} row(s) have no value in column {col!r}.", col,
                 flag, EXPECTED[("events", col)],
                 "Correct those rows in the source file or map the right column with `columns:` in the config.")
    if n["_f_unknown"]:
        found = flagged.filter(F.col("_f_unknown")).select("stage").distinct().orderBy("stage").limit(5).collect()
        log.add(path, "unknown_stage", n["_f_unknown"], _first_rows(flagged, "_f_unknown")[0],
                detail=", ".join(str(r["stage"]) for r in found))
    events = flagged.filter(~F.col("_f_dup")) if duplicates == "drop" else flagged
    return events.drop(*names, *raws)


def check_customers_spark(events, customers: pd.DataFrame, log, file) -> None:
    """The events-against-customers checks of :func:`journey_analysis.sources.gather` with the events
    on Spark: ``unknown_customer`` (events of ids not in the customers file) and, when the customers
    have ``created_at``, ``before_customer_created``; both kept and logged, with their first rows."""
    from pyspark.sql import functions as F

    spark = events.sparkSession
    has_created = "created_at" in customers.columns
    cust = pd.DataFrame({"customer_id": customers["customer_id"].astype(str).to_numpy()})
    schema = "customer_id string"
    if has_created:
        cust["created_at"] = customers["created_at"].astype("datetime64[us, UTC]").to_numpy()
        cust["created_at"] = cust["created_at"].astype(object).where(cust["created_at"].notna(), None)
        schema += ", created_at timestamp"
    cust_sdf = spark.createDataFrame(cust, schema=schema).withColumn("_known", F.lit(True))
    j = events.select("customer_id", "timestamp", "row_id").join(cust_sdf, "customer_id", "left")
    j = j.withColumn("_f_unknown", F.col("_known").isNull())
    j = j.withColumn("_f_early", F.coalesce(F.col("timestamp") < F.col("created_at"), F.lit(False))
                     if has_created else F.lit(False)).persist()
    try:
        n = j.agg(F.sum(F.col("_f_unknown").cast("long")).alias("u"),
                  F.sum(F.col("_f_early").cast("long")).alias("e")).collect()[0]
        if n["u"]:
            log.add(file, "unknown_customer", int(n["u"]), _first_rows(j, "_f_unknown")[0])
        if n["e"]:
            log.add(file, "before_customer_created", int(n["e"]), _first_rows(j, "_f_early")[0])
    finally:
        j.unpersist()


def last_step_before(events, need: pd.DataFrame, keys: list[str], step: str = "stage") -> pd.Series:
    """The stage of each feedback row in `need` (its `keys` and `timestamp`) by
    :func:`journey_analysis.gather.link_feedback`'s rule, with the events on Spark: the customer's last
    event at or before the feedback time (equal times: the later row of the file). Only the events of
    customers in `need` are read. Returns a Series on `need`'s index (None: no earlier event)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spark = events.sparkSession
    fb = pd.DataFrame({k: need[k].astype(str).to_numpy() for k in keys})
    fb["timestamp"] = need["timestamp"].astype("datetime64[us, UTC]").to_numpy()
    fb["_fb"] = np.arange(len(need), dtype=np.int64)
    schema = ", ".join(f"`{k}` string" for k in keys) + ", timestamp timestamp, _fb long"
    fb_sdf = spark.createDataFrame(fb, schema=schema)
    ev = (events.join(fb_sdf.select(*keys).distinct(), keys, "left_semi")
          .select(*keys, "timestamp", "row_id", F.col(step).cast("string").alias("_l"),
                  F.lit(0).alias("_kind"), F.lit(None).cast("long").alias("_fb")))
    rows = fb_sdf.select(*keys, "timestamp", F.lit(None).cast("long").alias("row_id"),
                         F.lit(None).cast("string").alias("_l"), F.lit(1).alias("_kind"), "_fb")
    w = (Window.partitionBy(*keys).orderBy("timestamp", "_kind", "row_id")
         .rowsBetween(Window.unboundedPreceding, Window.currentRow))
    linked = (ev.unionByName(rows).withColumn("_linked", F.last("_l", ignorenulls=True).over(w))
              .filter(F.col("_kind") == 1).select("_fb", "_linked"))
    got = _to_pandas(linked).set_index("_fb")["_linked"].reindex(np.arange(len(need)))
    return pd.Series(got.astype(object).where(got.notna(), None).to_numpy(), index=need.index)


def keep_customers(events, customers: pd.DataFrame):
    """Spark events without the rows of ids missing from the customers table (rule ``unknown_customer``)."""
    spark = events.sparkSession
    ids = spark.createDataFrame(pd.DataFrame({"customer_id": customers["customer_id"].astype(str).to_numpy()}),
                                schema="customer_id string")
    return events.join(ids, "customer_id", "left_semi").select(*events.columns)


def ids_known(events, ids: pd.Series) -> pd.Series:
    """For each id of ``ids`` (pandas), whether the Spark events have that customer (one semi-join)."""
    spark = events.sparkSession
    distinct = pd.DataFrame({"customer_id": pd.unique(ids.dropna().astype(str))})
    if distinct.empty:
        return pd.Series(False, index=ids.index)
    sdf = spark.createDataFrame(distinct, schema="customer_id string")
    found = sdf.join(events.select("customer_id").distinct(), "customer_id", "left_semi").toPandas()
    return ids.astype(str).isin(set(found["customer_id"])) & ids.notna()


# --------------------------------------------------------------------------------------------
# Preparation: one window per journey
# --------------------------------------------------------------------------------------------
def _as_list(by) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def _ns(col):
    from pyspark.sql import functions as F
    return F.unix_micros(col) * F.lit(1000)


def _check(sdf, needed: list[str]):
    if not is_spark_frame(sdf):
        raise JourneyError("events must be a PySpark DataFrame here", expected="pyspark.sql.DataFrame",
                           fix="use journey_analysis.steps for pandas frames")
    from journey_analysis.schema import require_columns

    require_columns(sdf.columns, needed)


def _prepare(sdf, step, by=None, case="customer_id", session_gap_s=None, collapse_repeats=False,
             order="timestamp", validate=True):
    """Columns `_c` (case), `_j` (journey label), `_s` (step), `_b0..` (by), `_t` (start ns),
    `_k` (order key ns), `_r` (row id), `_e` (end ns, when interval data), `_v` (service s), `_rep`
    (repeats merged), then window columns `_nt`, `_ns`, `_ne` (next event's start, step, end),
    `_first`, `_last`, `_i` (position in the customer's order). Returns (frame, info dict)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    byl = _as_list(by)
    _check(sdf, [case, "timestamp"] + ([step] if step is not None else []) + byl)
    cols = sdf.columns
    has_end = "end_timestamp" in cols
    has_dur = (not has_end) and "duration_s" in cols
    t = _ns(_ts_column(sdf, "timestamp"))
    sel = [F.col(case).cast("string").alias("_c"), t.alias("_t")]
    sel.append((F.col(step).cast("string") if step is not None else F.lit("")).alias("_s"))
    sel += [F.col(b).alias(f"_b{i}") for i, b in enumerate(byl)]
    sel.append(F.col("row_id").cast("long").alias("_r") if "row_id" in cols
               else F.monotonically_increasing_id().alias("_r"))
    if has_end:
        sel.append(_ns(_ts_column(sdf, "end_timestamp")).alias("_e0"))
    elif has_dur:
        sel.append(F.col("duration_s").cast("double").alias("_d0"))
    ev = sdf.select(*sel)
    if has_end:
        ev = ev.withColumn("_e", F.coalesce(F.col("_e0"), F.col("_t"))).drop("_e0")
        ev = ev.withColumn("_v", (F.col("_e") - F.col("_t")) / F.lit(float(_NS)))
    elif has_dur:
        d = F.when(F.isnan("_d0"), None).otherwise(F.col("_d0"))
        ev = ev.withColumn("_v", d).drop("_d0")
        ev = ev.withColumn("_e", F.col("_t") + F.round(F.coalesce(F.col("_v"), F.lit(0.0))
                                                        * F.lit(float(_NS))).cast("long"))
    if order == "timestamp":
        ev = ev.withColumn("_k", F.col("_t"))
    elif order == "end":
        if not (has_end or has_dur):
            raise JourneyError("order='end' needs an end_timestamp or duration_s column",
                               column="end_timestamp", fix="use order='timestamp'")
        ev = ev.withColumn("_k", F.col("_e"))
    else:
        raise JourneyError(f"unknown order {order!r}", expected="'timestamp' or 'end'")
    if validate:  # checked inside the first job that reads the rows (no extra pass)
        for col, name in (("_c", case), ("_t", "timestamp"), ("_s", step)):
            msg = F.lit(f"{_MISSING_MARK}{name}{_MISSING_MARK}")
            ev = ev.withColumn(col, F.when(F.col(col).isNull(), F.raise_error(msg)).otherwise(F.col(col)))
    w = Window.partitionBy("_c").orderBy("_k", "_r")
    if session_gap_s is not None:
        gap_ns = int(round(float(session_gap_s) * _NS))
        brk = (F.col("_t") - F.lag("_t").over(w)) > F.lit(gap_ns)
        ev = ev.withColumn("_brk", F.coalesce(brk, F.lit(False)).cast("int"))
        ev = ev.withColumn("_jn", F.sum("_brk").over(w.rowsBetween(Window.unboundedPreceding, 0)) + 1)
        ev = ev.withColumn("_j", F.concat_ws("|", F.col("_c"), F.col("_jn").cast("string"))).drop("_brk")
        jkey = "_jn"
    else:
        ev = ev.withColumn("_j", F.col("_c"))
        jkey = None
    info = {"by": byl, "has_end": has_end or has_dur, "jkey": jkey}
    if collapse_repeats:
        ev = _collapse(ev, w, jkey)
    else:
        ev = ev.withColumn("_rep", F.lit(0).cast("long"))
    ev = _window_cols(ev, w, jkey, has_end or has_dur)
    return ev, info


def _window_cols(ev, w, jkey, has_end):
    from pyspark.sql import functions as F
    nt = F.lead("_t").over(w)
    same = F.lit(True) if jkey is None else (F.lead(jkey).over(w) == F.col(jkey))
    prev_same = F.lit(True) if jkey is None else (F.lag(jkey).over(w) == F.col(jkey))
    ev = ev.withColumn("_last", nt.isNull() | ~F.coalesce(same, F.lit(False)))
    ev = ev.withColumn("_first", F.lag("_t").over(w).isNull() | ~F.coalesce(prev_same, F.lit(False)))
    ev = ev.withColumn("_nt", F.when(~F.col("_last"), nt))
    ev = ev.withColumn("_ns", F.when(~F.col("_last"), F.lead("_s").over(w)))
    if has_end:
        ev = ev.withColumn("_ne", F.when(~F.col("_last"), F.lead("_e").over(w)))
    ev = ev.withColumn("_i", F.row_number().over(w))
    return ev


def _collapse(ev, w, jkey):
    """Merge consecutive repeats of a step within a journey (first repeat's start, last repeat's
    end, summed service, `_rep` = repeats merged). Un-collapsed rows stay available as `_raw`."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    same_j = F.lit(True) if jkey is None else (F.lag(jkey).over(w) == F.col(jkey))
    keep = F.lag("_s").over(w).isNull() | (F.lag("_s").over(w) != F.col("_s")) | ~F.coalesce(same_j, F.lit(False))
    ev = ev.withColumn("_keep", keep.cast("int"))
    ev = ev.withColumn("_run", F.sum("_keep").over(w.rowsBetween(Window.unboundedPreceding, 0)))
    keys = ["_c", "_run"]
    first_cols = [c for c in ev.columns if c not in ("_keep", "_run", "_e", "_v")]
    order = F.struct("_k", "_r")
    aggs = [F.min_by(c, order).alias(c) for c in first_cols if c not in keys]
    aggs.append(F.count(F.lit(1)).alias("_n"))
    if "_e" in ev.columns:
        aggs.append(F.max_by("_e", order).alias("_e"))
        aggs.append(F.sum("_v").alias("_v"))
    out = ev.groupBy(*keys).agg(*aggs)
    return out.withColumn("_rep", (F.col("_n") - 1).cast("long")).drop("_n", "_run")


def _stats_aggs(col: str, prefix: str, p90: bool = True, with_sum: bool = False, sum_first=False):
    """Spark aggregates named like steps' `_stats_columns` (n, min, mean, median, p90, max, std)."""
    from pyspark.sql import functions as F
    c = F.col(col)
    out = [F.count(c).alias(f"{prefix}_n"), F.min(c).alias(f"{prefix}_min_s"),
           F.avg(c).alias(f"{prefix}_mean_s"), F.percentile(c, F.lit(0.5)).alias(f"{prefix}_median_s")]
    if p90:
        out.append(F.percentile(c, F.lit(0.9)).alias(f"{prefix}_p90_s"))
    out += [F.max(c).alias(f"{prefix}_max_s"), F.stddev_samp(c).alias(f"{prefix}_std_s")]
    if with_sum:
        out.append(F.sum(c).alias(f"{prefix}_sum_s"))
    return out


def _by_cols(info) -> list[str]:
    return [f"_b{i}" for i in range(len(info["by"]))]


def _collect(action):
    """Run a Spark action; a missing value flagged by `_prepare` becomes a JourneyError."""
    try:
        return action()
    except Exception as exc:  # Py4J / Spark exceptions carry the raise_error message
        text = str(exc)
        if "Malformed CSV record" in text:  # mode FAILFAST: a line with another number of fields
            import re

            file = re.search(r"reading file (\S+?)\.?\s", text)
            record = re.search(r"Malformed CSV record: ([^\n]*?)(?: SQLSTATE|\n|$)", text)
            raise JourneyError("The file could not be read as a table: a line has another number of fields"
                               + (f" ({record.group(1)[:120]!r})" if record else "") + ".",
                               file=file.group(1).removeprefix("file://") if file else None,
                               expected="the same number of delimited fields on every line",
                               fix="Quote fields that contain the delimiter, or fix that line.") from None
        if _MISSING_MARK not in text:
            raise
        name = text.split(_MISSING_MARK)[1]
        raise JourneyError(f"column {name!r} has missing values", column=name,
                           expected="a value on every event",
                           fix="fill or drop these rows before computing step statistics") from None


def _to_pandas(sdf) -> pd.DataFrame:
    """Collect a (small) result; text columns get pandas' default string dtype like the pandas engine."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        out = _collect(sdf.toPandas)
    return out.infer_objects()


def _rename_by(out: pd.DataFrame, info) -> pd.DataFrame:
    return out.rename(columns={f"_b{i}": b for i, b in enumerate(info["by"])})


def _sort(out: pd.DataFrame, by: list[str], cols: list[str], asc: list[bool]) -> pd.DataFrame:
    return out.sort_values(by + cols, ascending=[True] * len(by) + asc, kind="stable", ignore_index=True)


def _float(out: pd.DataFrame, cols) -> pd.DataFrame:
    for c in cols:
        if c in out.columns:
            out[c] = pd.to_numeric(out[c]).astype(float)
    return out


def _int(out: pd.DataFrame, cols) -> pd.DataFrame:
    for c in cols:
        if c in out.columns:
            out[c] = out[c].fillna(0).astype(np.int64)
    return out


def _stat_names(prefix, p90=True, with_sum=False):
    names = ["min", "mean", "median"] + (["p90"] if p90 else []) + ["max", "std"] + (["sum"] if with_sum else [])
    return [f"{prefix}_{n}_s" for n in names]


# --------------------------------------------------------------------------------------------
# Public API (same outputs as journey_analysis.steps)
# --------------------------------------------------------------------------------------------
def step_stats(events, step: str = "stage", by=None, *, case: str = "customer_id",
               session_gap_s: float | None = None, collapse_repeats: bool = False,
               inactivity_gap_s: float | None = None, as_of=None, order: str = "timestamp",
               terminal=()) -> pd.DataFrame:
    """:func:`journey_analysis.steps.step_stats` on a Spark DataFrame (same columns, same
    definitions, same sort). Dwell and service statistics per (by..., step) are Spark aggregates
    (`percentile` exact for median and p90, `stddev_samp`); `customers` = count(DISTINCT journey);
    `rework_customers` = journeys with two or more raw events of the step."""
    from pyspark.sql import functions as F

    ev, info = _prepare(events, step, by, case, session_gap_s, collapse_repeats, order)
    bys = _by_cols(info)
    keys = bys + ["_s"]
    ev = ev.withColumn("_dw", (F.col("_nt") - F.col("_t")) / F.lit(float(_NS)))
    term = [str(t) for t in (terminal or ()) if t is not None]
    if term:  # a journey with an event at a terminal step is complete
        from pyspark.sql import Window

        ev = ev.withColumn("_done", F.max(F.col("_s").isin(term).cast("int")).over(Window.partitionBy("_j")) > 0)
    else:
        ev = ev.withColumn("_done", F.lit(False))
    gap = inactivity_gap_s if inactivity_gap_s is not None else session_gap_s
    if gap is not None:
        if as_of is not None:
            ts = pd.Timestamp(as_of)
            t_end = (ts.tz_localize("UTC") if ts.tzinfo is None else ts).value
        else:
            t_end = int(_collect(ev.agg(F.max("_t")).collect)[0][0])
        thr = t_end - int(round(float(gap) * _NS))
        in_prog = F.sum((F.col("_last") & ~F.col("_done") & (F.col("_t") >= F.lit(thr))).cast("long"))
    else:
        in_prog = F.lit(0).cast("long")
    aggs = [F.count(F.lit(1)).alias("events"),
            F.sum("_rep").alias("repeat_events"),
            F.sum(F.col("_first").cast("long")).alias("starts_here"),
            F.sum(F.col("_last").cast("long")).alias("ends_here"),
            F.sum((F.col("_last") & F.col("_done")).cast("long")).alias("completed"), in_prog.alias("in_progress")]
    aggs += _stats_aggs("_dw", "dwell")
    if info["has_end"]:
        aggs += _stats_aggs("_v", "service", with_sum=True)
    # rework on the un-collapsed events, journeys per group
    raw, _ = (_prepare(events, step, by, case, session_gap_s, False, order, validate=False)
              if collapse_repeats else (ev, info))
    ev = _collect(ev.persist)  # the windowed rows feed three small aggregations
    raw = _collect(raw.persist) if collapse_repeats else ev
    try:
        main = _to_pandas(ev.groupBy(*keys).agg(*aggs))
        per_j = raw.groupBy(*keys, "_j").count()
        rework = _to_pandas(per_j.groupBy(*keys).agg(  # customers = journeys with the step
            F.count(F.lit(1)).alias("customers"),
            F.sum((F.col("count") >= 2).cast("long")).alias("rework_customers")))
        if collapse_repeats:  # reach on the collapsed rows (by values of the kept events)
            reach = _to_pandas(ev.groupBy(*keys, "_j").count().groupBy(*keys).agg(
                F.count(F.lit(1)).alias("customers")))
            rework = reach.merge(rework.drop(columns="customers"), on=keys, how="left")
        per_group = _to_pandas(per_j.groupBy(*bys).agg(F.countDistinct("_j").alias("_jg")))
    finally:
        ev.unpersist()
        raw.unpersist()
    out = main.merge(rework, on=keys, how="left")
    out = out.merge(per_group, on=bys, how="left") if bys else out.assign(_jg=int(per_group["_jg"].iloc[0]))
    out = _int(out, ["events", "customers", "rework_customers", "repeat_events", "starts_here",
                     "ends_here", "completed", "in_progress", "dwell_n", "service_n"])
    out["share_customers"] = out["customers"] / out["_jg"]
    out["drop_off"] = out["ends_here"] - out["completed"] - out["in_progress"]
    cols = bys + ["_s", "customers", "events", "share_customers", "rework_customers", "repeat_events",
                  "starts_here", "ends_here", "completed", "in_progress", "drop_off", "dwell_n"] + _stat_names("dwell")
    if info["has_end"]:
        cols += ["service_n"] + _stat_names("service", with_sum=True)
    out = _float(out[cols], _stat_names("dwell") + _stat_names("service", with_sum=True))
    out = _rename_by(out.rename(columns={"_s": step}), info)
    return _sort(out, info["by"], ["customers", step], [False, True])


def _pair_time(time: str, info):
    from pyspark.sql import functions as F
    if time == "dwell":
        d = F.col("_nt") - F.col("_t")
    else:
        if not info["has_end"]:
            raise JourneyError(f"time={time!r} needs interval data", column="end_timestamp",
                               expected="an end_timestamp or duration_s column", fix="use time='dwell'")
        if time == "waiting":
            d = F.col("_nt") - F.col("_e")
        elif time == "waiting_clipped":
            d = F.greatest(F.col("_nt"), F.col("_e")) - F.col("_e")
        elif time == "end_to_end":
            d = F.col("_ne") - F.col("_e")
        else:
            raise JourneyError(f"unknown transition time {time!r}",
                               expected="dwell, waiting, waiting_clipped, end_to_end")
    return d / F.lit(float(_NS))


def transitions(events, step: str = "stage", by=None, *, case: str = "customer_id",
                session_gap_s: float | None = None, collapse_repeats: bool = False,
                time: str = "dwell", order: str = "timestamp") -> pd.DataFrame:
    """:func:`journey_analysis.steps.transitions` on a Spark DataFrame: (`_s`, `lead(_s)`) pairs
    of each journey window, grouped; exact `percentile` for median and p90."""
    from pyspark.sql import functions as F

    ev, info = _prepare(events, step, by, case, session_gap_s, collapse_repeats, order)
    bys = _by_cols(info)
    pairs = ev.where(~F.col("_last")).withColumn("_d", _pair_time(time, info))
    c = F.col("_d")
    aggs = [F.count(F.lit(1)).alias("count"), F.countDistinct("_j").alias("customers"),
            F.avg(c).alias("mean_s"), F.percentile(c, F.lit(0.5)).alias("median_s"),
            F.min(c).alias("min_s"), F.max(c).alias("max_s"), F.stddev_samp(c).alias("std_s"),
            F.sum(c).alias("sum_s"), F.percentile(c, F.lit(0.9)).alias("p90_s")]
    if info["has_end"]:
        aggs.append(F.sum((F.col("_nt") < F.col("_e")).cast("long")).alias("overlaps"))
    out = _to_pandas(pairs.groupBy(*bys, F.col("_s").alias("from_step"),
                                   F.col("_ns").alias("to_step")).agg(*aggs))
    out = _int(out, ["count", "customers", "overlaps"])
    out = _float(out, ["mean_s", "median_s", "min_s", "max_s", "std_s", "sum_s", "p90_s"])
    out = _rename_by(out, info)
    return _sort(out, info["by"], ["count", "from_step", "to_step"], [False, True, True])


def start_end_counts(events, step: str = "stage", by=None, *, case: str = "customer_id",
                     session_gap_s: float | None = None, collapse_repeats: bool = False,
                     order: str = "timestamp") -> pd.DataFrame:
    """:func:`journey_analysis.steps.start_end_counts` on a Spark DataFrame."""
    from pyspark.sql import functions as F
    ev, info = _prepare(events, step, by, case, session_gap_s, collapse_repeats, order)
    bys = _by_cols(info)
    out = _to_pandas(ev.where(F.col("_first") | F.col("_last")).groupBy(*bys, "_s").agg(
        F.sum(F.col("_first").cast("long")).alias("starts"), F.sum(F.col("_last").cast("long")).alias("ends")))
    out = _int(out, ["starts", "ends"])
    out = _rename_by(out.rename(columns={"_s": step}), info)
    return _sort(out, info["by"], ["starts", "ends", step], [False, False, True])


def _journeys(ev, info, sep=None, with_path=False):
    """One row per journey: `_j`, by values of its first event, `_t0`/`_t1` (first/last start in
    journey order), `_e0`/`_e1` (ends), `_len`; with_path: `_steps` (array) and `_loop`."""
    from pyspark.sql import functions as F
    bys = _by_cols(info)
    order = F.struct("_k", "_r")
    aggs = [F.min_by(F.col(b), order).alias(b) for b in bys]
    aggs += [F.min_by("_t", order).alias("_t0"), F.max_by("_t", order).alias("_t1"),
             F.count(F.lit(1)).alias("_len")]
    if info["has_end"]:
        aggs += [F.min_by("_e", order).alias("_e0"), F.max_by("_e", order).alias("_e1")]
    if with_path:
        arr = F.array_sort(F.collect_list(F.struct("_k", "_r", "_s")))
        aggs.append(F.transform(arr, lambda x: x["_s"]).alias("_steps"))
    j = ev.groupBy("_j").agg(*aggs)
    if with_path:
        j = j.withColumn("_loop", F.size(F.array_distinct("_steps")) < F.size("_steps"))
    return j


def variants(events, step: str = "stage", top: int | None = None, by=None, *, case: str = "customer_id",
             session_gap_s: float | None = None, collapse_repeats: bool = False, sep: str = " -> ",
             order: str = "timestamp") -> pd.DataFrame:
    """:func:`journey_analysis.steps.variants` on a Spark DataFrame: per journey the steps in order
    (`array_sort` of `collect_list(struct(key, row_id, step))`), grouped by that array (so two
    paths are the same variant exactly when their steps are, whatever `sep` is), joined with
    `concat_ws(sep)`; duration median with the exact `percentile`."""
    from pyspark.sql import functions as F

    ev, info = _prepare(events, step, by, case, session_gap_s, collapse_repeats, order)
    bys = _by_cols(info)
    j = _journeys(ev, info, with_path=True).withColumn("_dur", (F.col("_t1") - F.col("_t0")) / F.lit(float(_NS)))
    agg = j.groupBy(*bys, "_steps").agg(
        F.count(F.lit(1)).alias("customers"), F.first("_len").alias("length"),
        F.avg("_dur").alias("duration_mean_s"), F.percentile("_dur", F.lit(0.5)).alias("duration_median_s"),
        F.first("_loop").alias("has_loop"))
    agg = agg.withColumn("variant", F.concat_ws(sep, "_steps")).drop("_steps")
    out = _to_pandas(agg)
    if bys:
        per_group = out.groupby(bys, dropna=False)["customers"].transform("sum")
    else:
        per_group = out["customers"].sum()
    out = _int(out, ["customers", "length"])
    out["share"] = out["customers"] / per_group
    out["has_loop"] = out["has_loop"].astype(bool)
    out = _float(out, ["duration_mean_s", "duration_median_s"])
    out = out[bys + ["variant", "length", "customers", "share", "duration_mean_s", "duration_median_s", "has_loop"]]
    out = _rename_by(out, info)
    out = _sort(out, info["by"], ["customers", "variant"], [False, True])
    if top is not None:
        byl = info["by"]
        out = (out.groupby(byl, sort=False, dropna=False).head(top) if byl else out.head(top)).reset_index(drop=True)
    return out


def journey_durations(events, by=None, *, case: str = "customer_id", session_gap_s: float | None = None,
                      order: str = "timestamp") -> pd.DataFrame:
    """:func:`journey_analysis.steps.journey_durations` on a Spark DataFrame (one row per journey,
    collected to pandas: first and last time in journey order, duration, events)."""
    ev, info = _prepare(events, None, by, case, session_gap_s, False, order)
    bys = _by_cols(info)
    j = _journeys(ev, info)
    a, b = ("_t0", "_t1") if order == "timestamp" else ("_e0", "_e1")
    out = _to_pandas(j.select("_j", *bys, a, b, "_len"))
    label = "journey_id" if session_gap_s is not None else case
    first = out[a].to_numpy(dtype=np.int64)
    last = out[b].to_numpy(dtype=np.int64)
    res = pd.DataFrame({
        label: out["_j"].to_numpy(dtype=object),
        "first_timestamp": pd.to_datetime(first, utc=True),
        "last_timestamp": pd.to_datetime(last, utc=True),
        "duration_s": (last - first) / _NS,
        "events": out["_len"].astype(np.int64),
    })
    if bys:
        res = pd.concat([_rename_by(out[bys], info), res], axis=1)
    return res.sort_values(label, kind="stable", ignore_index=True)


def cut_sessions(events, gap_s: float, *, case: str = "customer_id"):
    """:func:`journey_analysis.steps.cut_sessions` on Spark: `events` (a Spark DataFrame) with
    `journey_id` = "<customer>|<n>", a new journey after a gap longer than `gap_s` seconds between
    consecutive events of the customer (order: timestamp, row_id). Returns a Spark DataFrame (lazy)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    _check(events, [case, "timestamp"])
    ts = _ns(_ts_column(events, "timestamp"))
    r = F.col("row_id") if "row_id" in events.columns else F.monotonically_increasing_id()
    ev = events.withColumn("_t", ts).withColumn("_r", r)
    w = Window.partitionBy(case).orderBy("_t", "_r")
    brk = F.coalesce((F.col("_t") - F.lag("_t").over(w)) > F.lit(int(round(float(gap_s) * _NS))), F.lit(False))
    n = F.sum(brk.cast("int")).over(w.rowsBetween(Window.unboundedPreceding, 0)) + 1
    return ev.withColumn("journey_id", F.concat_ws("|", F.col(case).cast("string"), n.cast("string"))) \
        .drop("_t", "_r")


# --------------------------------------------------------------------------------------------
# Funnel
# --------------------------------------------------------------------------------------------
def _funnel_journeys(events, steps, by, case, session_gap_s, within, step):
    """Per journey (Spark): by values of its first event and, per funnel step k, `_a{k}` = struct
    (position `_i`, start `_t`, next step) of the event where it reached step k (null: never)."""
    from pyspark.sql import functions as F

    steps = list(steps)
    if len(steps) < 1:
        raise JourneyError("funnel needs at least one step", expected="steps=[first, ...]")
    ev, info = _prepare(events, step, by, case, session_gap_s)
    present = {r[0] for r in _collect(ev.select("_s").distinct().collect)}
    missing = [s for s in steps if str(s) not in present]
    if missing:
        raise JourneyError(f"funnel steps not found in column {step!r}: {missing}", column=step,
                           expected=f"values among {sorted(present)[:20]}", fix="check spelling of steps=")
    ev = ev.withColumn("_nx", F.when(F.col("_last"), F.lit(_END_LABEL)).otherwise(F.col("_ns")))
    ev = _collect(ev.persist)
    bys = _by_cols(info)
    order = F.struct("_k", "_r")
    j = (ev.groupBy("_j").agg(*[F.min_by(F.col(b), order).alias(b) for b in bys]) if bys
         else ev.select("_j").distinct())
    within_ns = None if within is None else int(round(float(within) * _NS))
    prev = None
    for k, s in enumerate(steps):  # loop over funnel steps (a handful)
        cand = ev.where(F.col("_s") == F.lit(str(s))).select("_j", "_i", "_t", "_nx")
        if prev is not None:
            cand = cand.join(prev, "_j")
            cond = F.col("_i") > F.col("_pi")
            if within_ns is not None:
                cond = cond & ((F.col("_t") - F.col("_t0")) <= F.lit(within_ns))
            cand = cand.where(cond)
        reached = cand.groupBy("_j").agg(F.min(F.struct("_i", "_t", "_nx")).alias(f"_a{k}"))
        j = j.join(reached, "_j", "left")
        nxt = reached.select("_j", F.col(f"_a{k}._i").alias("_pi"), F.col(f"_a{k}._t").alias("_tk"))
        if prev is None:
            nxt = nxt.withColumn("_t0", F.col("_tk"))
        else:
            nxt = nxt.join(prev.select("_j", "_t0"), "_j")
        prev = nxt.drop("_tk")
    j = _collect(j.persist)  # small (one row per journey) and read by every funnel aggregate
    return j, info, steps, ev


def funnel(events, steps, by=None, within: float | None = None, *, step: str = "stage",
           case: str = "customer_id", session_gap_s: float | None = None) -> pd.DataFrame:
    """:func:`journey_analysis.steps.funnel` on a Spark DataFrame (same columns and definitions;
    time statistics with Spark's exact `percentile`)."""
    from pyspark.sql import functions as F

    j, info, steps, ev = _funnel_journeys(events, steps, by, case, session_gap_s, within, step)
    bys = _by_cols(info)
    try:
        groups = _to_pandas(ev.select(*bys).distinct()) if bys else pd.DataFrame(index=[0])
        rows = []
        for k in range(len(steps)):  # loop over funnel steps
            a = F.col(f"_a{k}._t")
            prev_t = F.col(f"_a{k - 1}._t") if k else a
            dprev = (a - prev_t) / F.lit(float(_NS))
            dstart = (a - F.col("_a0._t")) / F.lit(float(_NS))
            sel = j.where(F.col(f"_a{k}").isNotNull()).select(*bys, dprev.alias("_dp"), dstart.alias("_ds"))
            conv = (F.sum(F.col(f"_a{k + 1}").isNotNull().cast("long")) if k + 1 < len(steps) else F.lit(None))
            agg = j.where(F.col(f"_a{k}").isNotNull()).groupBy(*bys).agg(
                F.count(F.lit(1)).alias("entered"), conv.cast("double").alias("converted"))
            st = sel.groupBy(*bys).agg(
                F.avg("_dp").alias("from_previous_mean_s"),
                F.percentile("_dp", F.lit(0.5)).alias("from_previous_median_s"),
                F.percentile("_dp", F.lit(0.9)).alias("from_previous_p90_s"),
                F.avg("_ds").alias("from_start_mean_s"),
                F.percentile("_ds", F.lit(0.5)).alias("from_start_median_s"))
            part = agg.join(st, bys, "left") if bys else agg.crossJoin(st)
            rows.append(part.withColumn("position", F.lit(k + 1)))
        stats = _to_pandas(reduce(lambda x, y: x.unionByName(y), rows))
        drops = _dropoffs(j, steps, bys)
    finally:
        ev.unpersist()
        j.unpersist()
    grid = groups.merge(pd.DataFrame({"position": np.arange(1, len(steps) + 1)}), how="cross")
    if not bys:
        grid = grid.drop(columns=[c for c in grid.columns if c != "position"])
    out = grid.merge(stats, on=bys + ["position"], how="left")
    out["entered"] = out["entered"].fillna(0).astype(np.int64)
    last = out["position"] == len(steps)
    out["converted"] = np.where(last, np.nan, pd.to_numeric(out["converted"]).fillna(0.0).astype(float))
    out["dropped"] = out["entered"] - out["converted"]
    out["step"] = np.asarray([str(s) for s in steps], dtype=object)[out["position"].to_numpy() - 1]
    key = bys if bys else None
    first = (out[out["position"] == 1].set_index(bys)["entered"] if bys
             else out.loc[out["position"] == 1, "entered"].iloc[0])
    with np.errstate(invalid="ignore", divide="ignore"):
        if bys:
            idx = pd.MultiIndex.from_frame(out[bys]) if len(bys) > 1 else pd.Index(out[bys[0]])
            out["conversion_from_start"] = out["entered"].to_numpy() / first.reindex(idx).to_numpy()
        else:
            out["conversion_from_start"] = out["entered"] / first
        out = out.sort_values(bys + ["position"], kind="stable", ignore_index=True)
        prev_entered = (out.groupby(bys, dropna=False)["entered"].shift(1) if bys
                        else out["entered"].shift(1))
        prev_entered = prev_entered.where(out["position"] > 1, out["entered"])
        out["conversion_from_previous"] = out["entered"] / prev_entered.astype(float)
    out["conversion_from_start"] = out["conversion_from_start"].astype(float)
    out["conversion_from_previous"] = out["conversion_from_previous"].astype(float)
    if len(drops):
        top = (drops.sort_values(["customers", "next_step"], ascending=[False, True], kind="stable")
               .drop_duplicates(bys + ["position"]))
        top = top.assign(dropped_top_next=top["next_step"].astype(str) + " ("
                         + top["customers"].astype(str) + ")")
        out = out.merge(top[bys + ["position", "dropped_top_next"]], on=bys + ["position"], how="left")
    else:
        out["dropped_top_next"] = np.nan
    del key
    cols = bys + ["position", "step", "entered", "converted", "dropped", "conversion_from_start",
                  "conversion_from_previous", "from_previous_mean_s", "from_previous_median_s",
                  "from_previous_p90_s", "from_start_mean_s", "from_start_median_s", "dropped_top_next"]
    out = _float(out[cols], ["from_previous_mean_s", "from_previous_median_s", "from_previous_p90_s",
                             "from_start_mean_s", "from_start_median_s"])
    out = _sort(out, bys, ["position"], [True])
    return _rename_by(out.rename(columns={"step": step}), info)


def _dropoffs(j, steps, bys) -> pd.DataFrame:
    """by..., position, next_step, customers for journeys reaching step k but not k+1 (pandas)."""
    from pyspark.sql import functions as F
    parts = []
    for k in range(len(steps) - 1):  # loop over funnel steps
        d = j.where(F.col(f"_a{k}").isNotNull() & F.col(f"_a{k + 1}").isNull())
        parts.append(d.groupBy(*bys, F.col(f"_a{k}._nx").alias("next_step")).agg(
            F.count(F.lit(1)).alias("customers")).withColumn("position", F.lit(k + 1)))
    if not parts:
        return pd.DataFrame(columns=bys + ["position", "next_step", "customers"])
    out = _to_pandas(reduce(lambda x, y: x.unionByName(y), parts))
    return _int(out, ["customers", "position"])


def funnel_dropoffs(events, steps, by=None, within: float | None = None, *, step: str = "stage",
                    case: str = "customer_id", session_gap_s: float | None = None) -> pd.DataFrame:
    """:func:`journey_analysis.steps.funnel_dropoffs` on a Spark DataFrame."""
    j, info, steps, ev = _funnel_journeys(events, steps, by, case, session_gap_s, within, step)
    bys = _by_cols(info)
    try:
        d = _dropoffs(j, steps, bys)
    finally:
        ev.unpersist()
        j.unpersist()
    if len(d) == 0:
        return pd.DataFrame(columns=info["by"] + ["position", step, "next_step", "customers", "share"])
    d["step"] = np.asarray([str(s) for s in steps], dtype=object)[d["position"].to_numpy() - 1]
    tot = d.groupby(bys + ["position"], dropna=False)["customers"].transform("sum")
    d["share"] = d["customers"] / tot
    d = d.sort_values(bys + ["position", "customers", "next_step"],
                      ascending=[True] * len(bys) + [True, False, True], kind="stable", ignore_index=True)
    d = d[bys + ["position", "step", "next_step", "customers", "share"]]
    return _rename_by(d.rename(columns={"step": step}), info)


# --------------------------------------------------------------------------------------------
# Customer features and k-means at scale
# --------------------------------------------------------------------------------------------
def customer_behaviour(events, step, purchase_stage, support_stage, as_of, notes):
    """The behaviour block of :func:`journey_analysis.segment.customer_features` (its ``_behaviour``)
    with the heavy per-customer aggregation on Spark; the arithmetic on the (one row per customer)
    result is the same pandas code as segment's, so the numbers are identical. Returns the frame
    indexed by customer_id; what was skipped or kept is added to `notes`."""
    from pyspark.sql import functions as F

    from journey_analysis.formatting import slug
    from journey_analysis.schema import MONEY_COLUMNS

    _check(events, ["customer_id", "timestamp", step])
    cols = events.columns
    ts = _ts_column(events, "timestamp")
    s = F.col(step).cast("string")
    money = None
    for c in MONEY_COLUMNS:
        if c in cols:
            from pyspark.sql import types as T
            if isinstance(events.schema[c].dataType, T.NumericType):
                money = c
            break
    ev = events.select(F.col("customer_id").cast("string").alias("customer_id"), ts.alias("_ts"),
                       s.alias("_s"), *([F.col("channel").cast("string").alias("_ch")] if "channel" in cols else []),
                       *([F.col(money).cast("double").alias("_m")] if money else []))
    month = F.year("_ts") * 12 + F.month("_ts")
    aggs = [F.count(F.lit(1)).alias("n_events"), F.countDistinct("_s").alias("n_stages"),
            F.min(_ns(F.col("_ts"))).alias("_first"), F.max(_ns(F.col("_ts"))).alias("_last"),
            (F.min(F.when(F.col("_s") == F.lit(purchase_stage), _ns(F.col("_ts"))))
             - F.min(_ns(F.col("_ts")))).alias("_buy"),  # exact ns difference (nulls -> float)
            F.sum((F.col("_s") == F.lit(support_stage)).cast("long")).alias("_support"),
            F.countDistinct(month).alias("_months")]
    if money:
        aggs.append(F.sum(F.when(~F.isnan("_m"), F.col("_m"))).alias("_money"))
    per = _to_pandas(ev.groupBy("customer_id").agg(*aggs)).set_index("customer_id").sort_index()
    per.index = per.index.astype(object)
    out = pd.DataFrame({"n_events": per["n_events"].astype(float), "n_stages": per["n_stages"].astype(float)},
                       index=pd.Index(per.index, name="customer_id"))
    last_ts = pd.to_datetime(per["_last"].astype(np.int64), utc=True)
    if per["_buy"].notna().any():
        out["time_to_purchase_s"] = pd.to_numeric(per["_buy"]).astype(float) / _NS  # = Timedelta.total_seconds
    else:
        notes["time_to_purchase_s"] = ("behaviour", "skipped", f"no stage {purchase_stage!r} in the data")
    if (per["_support"] > 0).any():
        out["support_contacts"] = per["_support"].astype(float)
    else:
        notes["support_contacts"] = ("behaviour", "skipped", f"no stage {support_stage!r} in the data")
    if "channel" in cols:
        ch = F.coalesce(F.trim(F.col("_ch")), F.lit(""))
        ch = F.when(ch == "", F.lit("unknown")).otherwise(ch)
        cnt = _to_pandas(ev.groupBy("customer_id", ch.alias("_c")).count())
        tab = cnt.pivot_table(index="customer_id", columns="_c", values="count", aggfunc="sum", fill_value=0)
        tab.index = tab.index.astype(object)
        shares = tab.div(tab.sum(axis=1), axis=0).reindex(out.index)
        shares.columns = [f"share_channel_{slug(c)}" for c in shares.columns]
        shares = shares.T.groupby(level=0).sum().T
        out = out.join(shares)
    else:
        notes["share_channel_*"] = ("behaviour", "skipped", "events have no channel column")
    as_of = last_ts.max() if as_of is None else pd.Timestamp(as_of)
    out["recency_days"] = (as_of - last_ts).dt.total_seconds() / 86400.0
    out["frequency_per_month"] = out["n_events"] / per["_months"].astype(float)
    if money is not None:
        out["monetary"] = per["_money"].astype(float)
        notes["monetary"] = ("behaviour", "kept", f"sum of events.{money} per customer")
    return out


def to_pandas(frame) -> pd.DataFrame:
    """A Spark DataFrame collected to pandas (with the engine's error messages)."""
    return _to_pandas(frame)


def is_empty(events) -> bool:
    """Whether the Spark events have no row (one small job)."""
    return bool(_collect(events.isEmpty))


def assign_segments_spark(segmentation, features_sdf, id_col: str = "customer_id"):
    """Assign every row of a Spark features frame to its segment with a fitted
    :class:`journey_analysis.segment.Segmentation`, in Spark SQL (no Python UDF): missing values ->
    fitted medians, log1p where the fit used it, standardised with the fitted mean and sd, nearest
    centre (Euclidean; ties to the lower cluster number, like scikit-learn), renumbered by size as
    the fit did. Returns a Spark DataFrame (`id_col`, `segment`)."""
    from pyspark.sql import functions as F

    seg = segmentation
    centers = np.asarray(seg._model.cluster_centers_, dtype=float)
    log_idx = set(int(i) for i in seg._log_idx)
    z = []
    for i, name in enumerate(seg.feature_names):
        x = (F.col(f"`{name}`").cast("double") if name in features_sdf.columns
             else F.lit(None).cast("double"))
        x = F.coalesce(F.when(~F.isnan(x), x), F.lit(float(seg.fill_values[name])))
        if i in log_idx:
            x = F.log1p(F.greatest(x, F.lit(0.0)))
        z.append((x - F.lit(float(seg._mean[i]))) / F.lit(float(seg._sd[i])))
    dists = []
    for c in range(centers.shape[0]):
        terms = [(zi - F.lit(float(centers[c, i]))) ** 2 for i, zi in enumerate(z)]
        dists.append(reduce(lambda a, b: a + b, terms))
    sdf = features_sdf.select(F.col(id_col), *[d.alias(f"_d{c}") for c, d in enumerate(dists)])
    best = F.least(*[F.col(f"_d{c}") for c in range(len(dists))]) if len(dists) > 1 else F.col("_d0")
    label = None
    for c in reversed(range(len(dists))):  # first minimum wins
        hit = F.col(f"_d{c}") == best
        value = F.lit(int(seg._remap[c]))
        label = value if label is None else F.when(hit, value).otherwise(label)
    return sdf.select(F.col(id_col), label.cast("int").alias("segment"))


def sample_rows(features_sdf, sample_size: int, random_state: int = 0, id_col: str = "customer_id"):
    """A seeded uniform sample of about `sample_size` rows (Spark ``sample(fraction, seed)``; all rows
    when there are fewer) collected to pandas, indexed by `id_col` (sorted), and the number of rows."""
    if not is_spark_frame(features_sdf):
        raise JourneyError("segment_spark needs a Spark DataFrame of features",
                           expected="pyspark.sql.DataFrame", fix="use segment.segment_customers for pandas")
    n = features_sdf.count()
    frac = min(1.0, float(sample_size) / max(n, 1))
    sample = features_sdf if frac >= 1.0 else features_sdf.sample(False, frac, seed=int(random_state))
    return _to_pandas(sample).set_index(id_col).sort_index(), int(n)


# --------------------------------------------------------------------------------------------
# The map, the analysis and the run on Spark: per-event values stay on Spark, summaries come back
# --------------------------------------------------------------------------------------------
def event_dwell(events, step: str = "stage", *, case: str = "customer_id", session_gap_s: float | None = None):
    """:func:`journey_analysis.steps.event_dwell` on Spark, as a lazy Spark DataFrame (it has one row
    per event, so it is not collected): `case`, `step`, `timestamp`, `row_id`, `dwell_s` (next event's
    timestamp - this one in the journey, null for the last) and `next_step` (null for the last). An
    action on it raises the `_prepare` check (a missing id, time or step) as a JourneyError when
    run through :func:`_collect`."""
    from pyspark.sql import functions as F

    ev, _ = _prepare(events, step, None, case, session_gap_s)
    return ev.select(F.col("_c").alias(case), F.col("_s").alias(step),
                     F.timestamp_micros(F.expr("_t div 1000")).alias("timestamp"), F.col("_r").alias("row_id"),
                     ((F.col("_nt") - F.col("_t")) / F.lit(float(_NS))).alias("dwell_s"),
                     F.col("_ns").alias("next_step"))


def _utc(value):
    """A timestamp collected from Spark (naive, in the session's UTC) as a UTC pandas Timestamp."""
    if value is None or pd.isna(value):
        return pd.NaT
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def overview(events, step: str = "stage", *, case: str = "customer_id") -> dict:
    """:func:`journey_analysis.steps.overview` on Spark: one aggregation over the events."""
    from pyspark.sql import functions as F

    from journey_analysis.schema import require_columns

    require_columns(events.columns, [case, "timestamp", step])
    aggs = [F.count(F.lit(1)).alias("events"), F.countDistinct(case).alias("customers"),
            F.min("timestamp").alias("first"), F.max("timestamp").alias("last"), F.countDistinct(step).alias("steps")]
    if "duration_s" in events.columns:
        aggs.append(F.sum(F.col("duration_s").isNull().cast("long")).alias("events_without_duration"))
    row = _collect(events.agg(*aggs).collect)[0].asDict()
    out = {k: int(row[k] or 0) for k in ("events", "customers", "steps")}
    out.update(first=_utc(row["first"]), last=_utc(row["last"]),
               events_without_duration=int(row["events_without_duration"] or 0) if "duration_s" in events.columns else None)
    return out


def count_by(events, keys, *, distinct: str | None = None, name: str = "n") -> pd.DataFrame:
    """:func:`journey_analysis.steps.count_by` on Spark (rows, or distinct `distinct` values, per
    group of `keys`; a missing key is a group), collected and sorted like the pandas engine."""
    from pyspark.sql import functions as F

    keys = _as_list(keys)
    agg = F.countDistinct(distinct) if distinct else F.count(F.lit(1))
    out = _to_pandas(events.groupBy(*keys).agg(agg.alias(name)))
    out[name] = out[name].astype(np.int64)
    return out.sort_values(keys, kind="stable", ignore_index=True)


def attach_labels(events, labels: pd.Series, name: str = "segment", *, case: str = "customer_id"):
    """The events of labelled customers with their label in column `name` (an inner join with the
    pandas Series `labels`: customer id as text -> label). Lazy."""
    spark = events.sparkSession
    lab = pd.DataFrame({case: labels.index.astype(str), name: labels.astype(str).to_numpy()})
    lab_sdf = spark.createDataFrame(lab, schema=f"`{case}` string, `{name}` string")
    return events.join(lab_sdf, case, "inner")


def dwell_share_over(events, step: str, expected_s: dict, labels: pd.Series | None = None, *,
                     overall: str) -> pd.DataFrame:
    """Share of dwell times above the stage's expected maximum (seconds, `expected_s`: step ->
    seconds), per stage for all customers (segment `overall`) and per (segment, stage) for the
    customers in `labels` (customer id -> segment; :func:`journey_analysis.steps.dwell_share_over`).
    Returns pandas: segment, stage, dwell_share_over_expected."""
    from pyspark.sql import functions as F

    exp = {str(k): float(v) for k, v in expected_s.items() if v is not None and np.isfinite(v)}
    cols = ["segment", "stage", "dwell_share_over_expected"]
    if not exp:
        return pd.DataFrame(columns=cols)
    ev = event_dwell(events, step).filter(F.col(step).isin(list(exp)) & F.col("dwell_s").isNotNull())
    lookup = F.create_map(*[x for k, v in exp.items() for x in (F.lit(k), F.lit(v))])
    ev = ev.withColumn("_o", (F.col("dwell_s") > lookup[F.col(step)]).cast("double"))
    parts = [_to_pandas(ev.groupBy(step).agg(F.avg("_o").alias(cols[2]))).assign(segment=overall)]
    if labels is not None:
        seg = attach_labels(ev, labels, "segment")
        parts.append(_to_pandas(seg.groupBy("segment", step).agg(F.avg("_o").alias(cols[2]))))
    out = pd.concat(parts, ignore_index=True).rename(columns={step: "stage"})
    out[cols[2]] = out[cols[2]].astype(float)
    return out[cols]


def segment_stage_tables(events, step: str = "stage", labels: pd.Series | None = None, *, overall: str,
                         min_segment_customers: int = 1, case: str = "customer_id",
                         inactivity_gap_s: float | None = None, as_of=None, terminal=(),
                         expected_s: dict | None = None, mix=()) -> dict:
    """:func:`journey_analysis.steps.segment_stage_tables` on Spark: the operations above on the events
    and on the tabled segments' events (:func:`attach_labels`), collected as pandas frames."""
    kw = {"step": step, "case": case, "inactivity_gap_s": inactivity_gap_s, "as_of": as_of, "terminal": list(terminal)}
    sizes = pd.DataFrame({"segment": pd.Series([], dtype=object), "n": np.zeros(0, dtype=np.int64)})
    ev_seg = kept = None
    if labels is not None:
        ev_seg = attach_labels(events, labels, "segment", case=case)
        sizes = count_by(ev_seg, "segment", distinct=case)
        small = sizes.loc[sizes["n"] < min_segment_customers, "segment"]
        kept = labels[~labels.isin(small)]
        if not (sizes["n"] >= min_segment_customers).any():
            ev_seg = kept = None
        elif len(small):
            ev_seg = attach_labels(events, kept, "segment", case=case)
    st = [step_stats(events, **kw).assign(segment=overall)]
    vis = [stage_visits(events, step, case=case, expected_s=expected_s).assign(segment=overall)]
    mix_out = {}
    for col in mix:
        if col in events.columns:
            parts = [count_by(events, [step, col], name="k").assign(segment=overall)]
            if ev_seg is not None:
                parts.append(count_by(ev_seg, ["segment", step, col], name="k"))
            counts = pd.concat(parts, ignore_index=True)
            mix_out[col] = counts[counts[col].notna()].reset_index(drop=True)
    if ev_seg is not None:
        st.append(step_stats(ev_seg, by="segment", **kw))
        vis.append(stage_visits(ev_seg, step, by="segment", case=case, expected_s=expected_s))
    return {"segment_customers": sizes, "step_stats": pd.concat(st, ignore_index=True),
            "visits": pd.concat(vis, ignore_index=True),
            "dwell_over": dwell_share_over(events, step, expected_s or {}, kept, overall=overall), "mix": mix_out}


def customer_stage_dwell(events, step: str = "stage", outcome_stages=()) -> pd.DataFrame:
    """Per (customer, stage) with an event there: the median dwell in seconds of the customer's events
    at the stage, leaving out dwell times whose next step is one of `outcome_stages` (NaN when none
    is left): the input of :func:`journey_analysis.analyze.customer_stage_features`. Pandas frame
    customer_id, step, dwell_median_s (one row per customer and stage reached)."""
    from pyspark.sql import functions as F

    ev = event_dwell(events, step)
    out = list(outcome_stages)
    if out:
        ev = ev.withColumn("dwell_s", F.when(~F.coalesce(F.col("next_step").isin(out), F.lit(False)), F.col("dwell_s")))
    got = _to_pandas(ev.groupBy("customer_id", step).agg(F.percentile("dwell_s", F.lit(0.5)).alias("dwell_median_s")))
    got["dwell_median_s"] = got["dwell_median_s"].astype(float)
    return got


def stage_dwell_summary(events, step: str = "stage") -> pd.DataFrame:
    """Per step: customers, dwell_n, dwell_median_s, dwell_q25_s, dwell_q75_s (exact percentiles) and
    last_customers (customers with a last event there): the input of
    :func:`journey_analysis.metrics.stage_metrics` (:func:`journey_analysis.steps.stage_dwell_summary`).
    Indexed by step."""
    from pyspark.sql import functions as F

    ev = event_dwell(events, step)
    d = F.col("dwell_s")
    got = _to_pandas(ev.groupBy(step).agg(
        F.countDistinct("customer_id").alias("customers"), F.count(d).alias("dwell_n"),
        F.percentile(d, F.lit(0.5)).alias("dwell_median_s"), F.percentile(d, F.lit(0.25)).alias("dwell_q25_s"),
        F.percentile(d, F.lit(0.75)).alias("dwell_q75_s"),
        F.countDistinct(F.when(d.isNull(), F.col("customer_id"))).alias("last_customers")))
    got = _int(got, ["customers", "dwell_n", "last_customers"])
    return _float(got, ["dwell_median_s", "dwell_q25_s", "dwell_q75_s"]).set_index(step)


def subsample_customers(events, customers=None, feedback=None, n_customers: int | None = None,
                        random_state: int = 0):
    """:func:`journey_analysis.runner.subsample_customers` with the events on Spark: the `n_customers`
    customers with the smallest seeded hash (``xxhash64(customer_id, random_state)``; ties by id), so
    the same seed gives the same sample on any cluster. It is not the pandas engine's sample (numpy's
    generator over the sorted ids): use it for quick runs, not to compare engines."""
    from pyspark.sql import functions as F

    if n_customers is None:
        return events, customers, feedback
    ids = events.select("customer_id").distinct()
    picked = (ids.orderBy(F.xxhash64(F.col("customer_id"), F.lit(int(random_state))), "customer_id")
              .limit(int(n_customers)).collect())
    keep = [r["customer_id"] for r in picked]
    if len(keep) < int(n_customers):  # fewer customers than asked: everyone
        return events, customers, feedback
    spark = events.sparkSession
    keep_sdf = spark.createDataFrame(pd.DataFrame({"customer_id": keep}), schema="customer_id string")
    events = events.join(keep_sdf, "customer_id", "left_semi")
    keep = set(keep)
    if customers is not None:
        customers = customers[customers["customer_id"].isin(keep)].reset_index(drop=True)
    if feedback is not None:
        feedback = feedback[feedback["customer_id"].isin(keep) | feedback["customer_id"].isna()].reset_index(drop=True)
    return events, customers, feedback


def save_artifact(events, path) -> Path:
    """:func:`journey_analysis.runner.save_artifact` for the Spark engine's events: a Parquet directory
    at `path` written by Spark (:func:`write_parquet_dir`); a stale ``<name>.absent`` marker is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_name(f"{path.name}.absent").unlink(missing_ok=True)
    return write_parquet_dir(events, path)


def read_events(path, config=None):
    """A Parquet directory written by :func:`save_artifact`, read lazily in the session the run config
    `config` describes (:func:`get_spark`)."""
    return get_spark(config=config).read.parquet(str(path))


def write_parquet_dir(events, path) -> Path:
    """Write a Spark DataFrame as a Parquet directory, atomically on a local or mounted file system:
    written to ``.<name>.tmp-<pid>`` beside `path`, then renamed over it (the old copy is renamed
    aside first and removed after), so `path` is either the old or the new complete data."""
    import os
    import shutil

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _collect(lambda: events.write.mode("overwrite").parquet(str(tmp)))
        if path.is_dir():
            os.replace(path, old)
        elif path.exists():
            path.unlink()
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return path


def _visits_spark(events, step, by=None, case="customer_id"):
    """One row per visit (a run of consecutive events of a customer at one step): `_c`, `_s`, by
    columns (of the visit's first event), `_st` (stage time in seconds, the definition of
    :func:`journey_analysis.steps.stage_visits`). Lazy."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ev, info = _prepare(events, step, by, case)
    w = Window.partitionBy("_c").orderBy("_k", "_r")
    start = F.col("_first") | (F.lag("_s").over(w) != F.col("_s"))
    ev = ev.withColumn("_vs", F.coalesce(start, F.lit(True)).cast("int"))
    ev = ev.withColumn("_run", F.sum("_vs").over(w.rowsBetween(Window.unboundedPreceding, 0)))
    ev = ev.withColumn("_tend", F.max("_t").over(Window.partitionBy("_c")))
    bys = _by_cols(info)
    order = F.struct("_k", "_r")
    v = ev.groupBy("_c", "_run").agg(F.min_by("_s", order).alias("_s"), F.min_by("_t", order).alias("_t0"),
                                     F.max("_tend").alias("_tend"), *[F.min_by(b, order).alias(b) for b in bys])
    wv = Window.partitionBy("_c").orderBy("_run")
    v = v.withColumn("_closed", F.lead("_t0").over(wv).isNotNull())
    v = v.withColumn("_st", (F.coalesce(F.lead("_t0").over(wv), F.col("_tend")) - F.col("_t0")) / F.lit(float(_NS)))
    return v, info


def stage_visits(events, step: str = "stage", by=None, *, case: str = "customer_id",
                 expected_s: dict | None = None) -> pd.DataFrame:
    """:func:`journey_analysis.steps.stage_visits` on a Spark DataFrame (same columns and definitions;
    exact percentiles)."""
    from pyspark.sql import functions as F

    v, info = _visits_spark(events, step, by, case)
    bys = _by_cols(info)
    keys = bys + ["_s"]
    aggs = [F.count(F.lit(1)).alias("visits")] + _stats_aggs("_st", "stage_time")
    if expected_s is not None:
        exp = {str(k): float(x) for k, x in expected_s.items() if x is not None and np.isfinite(x)}
        if exp:
            lookup = F.create_map(*[x for k, val in exp.items() for x in (F.lit(k), F.lit(val))])
            aggs.append(F.avg((F.col("_st") > lookup[F.col("_s")]).cast("double")).alias("stage_time_share_over_expected"))
        else:
            aggs.append(F.lit(None).cast("double").alias("stage_time_share_over_expected"))
    v = _collect(v.persist)
    try:
        main = _to_pandas(v.groupBy(*keys).agg(*aggs))
        per_c = v.groupBy(*keys, "_c").count()
        reach = _to_pandas(per_c.groupBy(*keys).agg(F.count(F.lit(1)).alias("visit_customers"),
                                                     F.sum((F.col("count") >= 2).cast("long")).alias("revisit_customers")))
    finally:
        v.unpersist()
    out = main.merge(reach, on=keys, how="left")
    out = _int(out, ["visits", "visit_customers", "revisit_customers", "stage_time_n"])
    names = _stat_names("stage_time")
    cols = keys + ["visits", "visit_customers", "revisit_customers", "stage_time_n"] + names
    if expected_s is not None:
        cols.append("stage_time_share_over_expected")
    out = _float(out[cols], names + ["stage_time_share_over_expected"])
    out = _rename_by(out.rename(columns={"_s": step}), info)
    return _sort(out, info["by"], ["visits", step], [False, True])


def customer_stage_time(events, step: str = "stage", *, case: str = "customer_id", exclude_next=()) -> pd.DataFrame:
    """:func:`journey_analysis.steps.customer_stage_time` on a Spark DataFrame: one pandas row per
    (customer, step) with a visit."""
    from pyspark.sql import functions as F

    from pyspark.sql import Window

    v, _ = _visits_spark(events, step, None, case)
    excl = [str(x) for x in exclude_next]
    if excl:
        nxt = F.lead("_s").over(Window.partitionBy("_c").orderBy("_run"))
        v = v.withColumn("_closed", F.col("_closed") & ~F.coalesce(nxt.isin(excl), F.lit(False)))
    out = _to_pandas(v.groupBy("_c", "_s").agg(F.count(F.lit(1)).alias("visits"), F.sum("_st").alias("stage_time_s"),
                                               F.sum(F.when(F.col("_closed"), F.col("_st"))).alias("closed_time_s")))
    out = out.rename(columns={"_c": case, "_s": step})
    out[case] = out[case].astype(str)
    out = _float(_int(out, ["visits"]), ["stage_time_s", "closed_time_s"])
    return out[[case, step, "visits", "stage_time_s", "closed_time_s"]].sort_values([case, step], kind="stable",
                                                                                     ignore_index=True)
