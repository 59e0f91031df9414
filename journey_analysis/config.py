"""Project paths and the run configuration.

Paths are derived from the package's location (the project root is the folder above
``journey_analysis/``), so they are the same from a notebook, a test or the ``journey`` command.
The run configuration is a YAML file read with ``yaml.safe_load`` and validated into a frozen
:class:`RunConfig`; anything wrong becomes one :class:`~journey_analysis.errors.JourneyError`
naming the file, the key and what was expected.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from journey_analysis.errors import JourneyError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = PROJECT_ROOT / "data"
RAW_DIR = DATA_DIR / "raw"
PROCESSED_DIR = DATA_DIR / "processed"
REPORTS_DIR = PROJECT_ROOT / "reports"
CONFIGS_DIR = PROJECT_ROOT / "configs"
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
DEMO_CONFIG = CONFIGS_DIR / "demo.yaml"

#: Known rating types and their scales (min, max). Ratings outside their scale are rejected.
RATING_SCALES: dict[str, tuple[float, float]] = {
    "csat": (1, 5),
    "stars": (1, 5),
    "ces": (1, 7),
    "nps": (0, 10),
}

_STRICT = ConfigDict(extra="forbid", frozen=True)
#: A storage URI (s3a://, gs://, abfss://, hdfs://, file://, ...) rather than a local path.
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(path) -> bool:
    """True for a storage URI such as ``s3a://lake/events/`` (read by the Spark engine only)."""
    return isinstance(path, str) and bool(_URI.match(path))


class Stage(BaseModel):
    """One stage of the journey, with what customers expect and what the organisation delivers."""

    model_config = _STRICT
    name: str = Field(min_length=1)
    description: str = ""
    expectation: str = ""
    expected_max_duration_h: float | None = Field(default=None, gt=0)
    target_satisfaction: float | None = None
    deliverables: tuple[str, ...] = ()
    touchpoints: tuple[str, ...] = ()
    #: a stage where the journey is complete (delivered, closed, renewed): reaching it is completion, not drop-off
    terminal: bool = False


#: The fields of a table source that name a constant or a column (a column of that name if the table has
#: one, else the value itself for every row).
TABLE_VALUES = ("stage", "channel", "source", "touchpoint", "journey", "rating_type")


class Table(BaseModel):
    """One source table: a file, the column that becomes ``customer_id`` and how columns map.

    ``columns`` renames source columns (``{source_name: new_name}``) and is applied before ``id``;
    ``id`` names the column that becomes ``customer_id`` (a source column already called
    ``customer_id`` must then be renamed). ``milestones`` (events only) reads a wide table: one row per
    order/case, ``{stage: timestamp column}`` in journey order. ``stage``, ``channel``, ``source``,
    ``touchpoint``, ``journey`` and ``rating_type`` each give a column of that name or, when the table
    has no such column, a constant for every row. ``via`` (feedback only) links feedback keyed by
    another id (an order) to customers through a table holding both keys.
    """

    model_config = _STRICT
    path: Path | str
    id: str | None = Field(default=None, min_length=1)
    columns: dict[str, str] = Field(default_factory=dict)
    milestones: dict[str, str] | None = None
    stage: str | None = None
    channel: str | None = None
    source: str | None = None
    touchpoint: str | None = None
    journey: str | None = None
    rating_type: str | None = None
    via: Table | Path | str | None = None
    encoding: str | None = None

    @field_validator("milestones")
    @classmethod
    def _some_milestones(cls, m):
        if m is not None and not m:
            raise ValueError("milestones needs at least one stage: timestamp column")
        if m is not None:
            cols = list(m.values())
            repeated = sorted({c for c in cols if cols.count(c) > 1})
            if repeated:
                raise ValueError(f"one timestamp column per stage; used twice: {', '.join(repeated)}")
        return m


#: What ``data.events`` / ``customers`` / ``feedback`` accept: a path, a table, or a list of tables.
Source = Path | str | Table | tuple[Table, ...]


def source_tables(source, columns: dict | None = None) -> list[Table]:
    """A configured source as a list of :class:`Table` (a plain path becomes one table whose renames are
    ``columns``, the config's ``data.columns.<kind>``); ``None`` gives an empty list."""
    if source is None:
        return []
    if isinstance(source, Table):
        return [source]
    if isinstance(source, tuple):
        return list(source)
    return [Table(path=source, columns=dict(columns or {}))]


class DataPaths(BaseModel):
    """Where the raw data is (resolved against the config file's folder) and how columns map.

    Each of ``events``, ``customers`` and ``feedback`` is a path, a :class:`Table` or a list of tables
    (unioned into one contract); at least one of them is needed. ``columns`` maps the columns of a
    source given as a plain path (a table has its own ``columns``).
    """

    model_config = _STRICT
    events: Source | None = None  # a local path, a storage URI (engine: spark only), a table or tables
    customers: Source | None = None
    feedback: Source | None = None
    #: mystery-shopper / test-contact observations (stage, channel, when, wait_min or wait_s, who, notes),
    #: compared with the map in notebook 05 (``analyze.test_experience``)
    observations: Path | None = None
    #: a folder with the same files (same names) for a later period: notebook 05 shows what changed (the
    #: living map). Runs of the same config are also compared with the previous run in every report.
    later_period: Path | None = None
    columns: dict[Literal["events", "customers", "feedback"], dict[str, str]] = Field(default_factory=dict)
    duplicates: Literal["drop", "keep"] = "drop"

    @field_validator("events", "customers", "feedback", mode="before")
    @classmethod
    def _list_to_tuple(cls, v):
        if isinstance(v, list):
            if not v:
                raise ValueError("an empty list of tables; give at least one table or leave the key out")
            return tuple(v)
        return v

    @model_validator(mode="after")
    def _something(self):
        if self.events is None and self.customers is None and self.feedback is None:
            raise ValueError("no data: give at least one of events, customers, feedback")
        for kind in ("events", "customers", "feedback"):
            src = getattr(self, kind)
            if kind in self.columns and self.columns[kind] and not isinstance(src, (Path, str)):
                raise ValueError(f"data.columns.{kind} applies to a source given as a path; "
                                 f"data.{kind} is a table: put the renames in its own columns:")
            for t in source_tables(src):
                if t.milestones is not None and kind != "events":
                    raise ValueError(f"milestones: only an events table can be wide (data.{kind})")
                if t.via is not None and kind != "feedback":
                    raise ValueError(f"via: only feedback is linked through another table (data.{kind})")
        return self

    def tables(self, kind: str) -> list[Table]:
        """The ``kind`` source ("events", "customers", "feedback") as a list of tables (empty if absent)."""
        return source_tables(getattr(self, kind), self.columns.get(kind))

    def files(self, kind: str) -> list:
        """The files of the ``kind`` source."""
        return [t.path for t in self.tables(kind)]


class Satisfaction(BaseModel):
    """The one declared rating scale used for satisfaction in the map."""

    model_config = _STRICT
    rating_type: str = "csat"
    min: float = 1
    max: float = 5

    @model_validator(mode="after")
    def _ordered(self):
        if not self.min < self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        return self


class Segmentation(BaseModel):
    """Settings for k-means segmentation (see ``journey_analysis.segment``)."""

    model_config = _STRICT
    k: int | Literal["auto"] = "auto"
    k_min: int = Field(default=2, ge=2)
    k_max: int = Field(default=8, ge=2)
    features: tuple[str, ...] | None = None
    names: dict[int, str] = Field(default_factory=dict)
    random_state: int = 0
    outcome_as_feature: bool = False
    #: customer columns never used as segmentation features (columns derived from the outcome, e.g.
    #: late_delivery or review_score when the outcome is a late or badly reviewed order)
    exclude: tuple[str, ...] = ()
    #: who is segmented: everyone, or only customers with an event at ``purchase_stage``
    population: Literal["all", "purchasers"] = "all"
    purchase_stage: str = "purchase"
    support_stage: str = "support"

    @model_validator(mode="after")
    def _range(self):
        if self.k_min > self.k_max:
            raise ValueError(f"k_min ({self.k_min}) must not exceed k_max ({self.k_max})")
        return self


class KPI(BaseModel):
    """A listening post: a stage metric with a threshold; each breach is flagged in the report."""

    model_config = _STRICT
    stage: str
    metric: str
    min: float | None = None
    max: float | None = None
    label: str = ""

    @model_validator(mode="after")
    def _bound(self):
        if self.min is None and self.max is None:
            raise ValueError("a KPI needs a min or a max threshold")
        return self


class RunConfig(BaseModel):
    """A validated run configuration. Build it with :func:`load_config`."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    journey: str = "other"
    title: str = ""
    objective: str = Field(min_length=1)
    outcome: str | None = None
    outcome_good: bool | int | str | None = False
    step: str = "stage"
    data: DataPaths
    satisfaction: Satisfaction = Field(default_factory=Satisfaction)
    session_gap_h: float | None = Field(default=None, gt=0)
    stages: tuple[Stage, ...] = ()
    channels: tuple[str, ...] = ()
    segmentation: Segmentation = Field(default_factory=Segmentation)
    kpis: tuple[KPI, ...] = ()
    #: the stage where the outcome is decided, if the config says so; only that stage's own measures
    #: are then left out of the drivers (see journey_analysis.analyze)
    outcome_stage: str | None = None
    engine: Literal["pandas", "spark"] = "pandas"
    spark: dict[str, Any] = Field(default_factory=dict)
    path: Path | None = None

    @field_validator("stages")
    @classmethod
    def _unique_stages(cls, stages):
        names = [s.name for s in stages]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"stage names must be unique; repeated: {', '.join(repeated)}")
        return stages

    @model_validator(mode="after")
    def _stages_with_events(self):
        if self.data.events is not None and not self.stages:
            raise ValueError("stages: an event log needs its stages in journey order (journey init drafts them "
                             "from the data)")
        for t in self.data.tables("events"):
            unknown = [s for s in (t.milestones or {}) if s not in self.stage_names]
            if unknown:
                raise ValueError(f"milestones name stages that are not configured: {', '.join(unknown)} "
                                 f"(stages: {', '.join(self.stage_names)})")
        return self

    @model_validator(mode="after")
    def _spark_shapes(self):
        """Shapes the Spark engine cannot run are refused here (so ``journey validate`` says so before a
        run): no event log, and feedback linked ``via: events``. Lists of tables, wide milestone tables and
        constant values are shaped with pandas and then handed to Spark (see ``sources.gather``)."""
        if self.engine != "spark":
            return self
        ev = self.data.events
        why = None
        if ev is None:
            why = ("there is no event log (customers or feedback only): the Spark engine distributes the events; "
                   "run this config with engine: pandas")
        fb = self.data.tables("feedback")
        if why is None and any(isinstance(t.via, str) and t.via == "events" for t in fb):
            why = "data.feedback is linked via: events; on Spark give via a table {path, id} instead"
        if why:
            raise ValueError(f"engine: spark cannot read this data shape: {why}")
        return self

    @model_validator(mode="after")
    def _remote_needs_spark(self):
        if isinstance(self.data.events, str) and is_uri(self.data.events) and self.engine != "spark":
            raise ValueError(f"data.events is a storage URI ({self.data.events}); only the Spark engine reads "
                             "remote storage: set engine: spark, or copy the files to a local folder")
        return self

    @model_validator(mode="after")
    def _kpi_stages(self):
        unknown = [k.stage for k in self.kpis if k.stage not in self.stage_names]
        if unknown:
            raise ValueError(f"KPIs name stages that are not configured: {', '.join(unknown)}")
        return self

    @model_validator(mode="after")
    def _outcome_stage_known(self):
        if self.outcome_stage is not None and self.outcome_stage not in self.stage_names:
            raise ValueError(f"outcome_stage {self.outcome_stage!r} is not a configured stage "
                             f"(stages: {', '.join(self.stage_names)})")
        return self

    @property
    def terminal_stages(self) -> list[str]:
        """Names of the stages marked ``terminal: true`` (journey complete), in journey order."""
        return [s.name for s in self.stages if s.terminal]

    @property
    def stage_names(self) -> list[str]:
        """Stage names in journey order."""
        return [s.name for s in self.stages]

    def stage(self, name: str) -> Stage:
        """The configured stage called ``name``."""
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def stages_frame(self):
        """The configured stages as a DataFrame (one row per stage, in order) for joins and display."""
        import pandas as pd

        rows = [s.model_dump() for s in self.stages]
        frame = pd.DataFrame(rows, columns=list(Stage.model_fields))  # no stages (customers only): no rows
        frame.insert(0, "stage_order", range(len(rows)))
        return frame.rename(columns={"name": "stage"})


def _format_validation_error(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"  - {where}: unknown key")
        elif e["type"] == "missing":
            lines.append(f"  - {where}: required key is missing")
        else:
            lines.append(f"  - {where}: {e['msg']} (got {e.get('input')!r})"[:300])
    return "\n".join(lines)


def _resolve_path(value, folder: Path, uri_ok: bool = False):
    if uri_ok and is_uri(str(value)):
        return str(value)  # a URI stays as written (Spark reads it)
    p = Path(str(value)).expanduser()
    return p if p.is_absolute() else (folder / p).resolve()


def _resolve_source(value, folder: Path, uri_ok: bool = False):
    """A source as written in the YAML with its paths (also in tables, lists and ``via``) made absolute."""
    if value is None or value == "" or value == []:
        return None if value in (None, "") else value
    if isinstance(value, list):
        return [_resolve_source(v, folder, uri_ok) for v in value]
    if isinstance(value, dict):
        out = dict(value)
        if out.get("path"):
            out["path"] = _resolve_path(out["path"], folder, uri_ok)
        if out.get("via") is not None and not (isinstance(out["via"], str) and out["via"] in ("events", "customers")):
            out["via"] = _resolve_source(out["via"], folder)
        return out
    if isinstance(value, (str, Path)):
        return _resolve_path(value, folder, uri_ok)
    return value


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a run configuration (YAML).

    Relative data paths are resolved against the folder of the config file. Raises
    :class:`JourneyError` naming the file and every offending key (unknown keys, repeated stages,
    wrong types, missing required keys).
    """
    import yaml

    path = Path(path)
    if not path.exists():
        raise JourneyError("Config file not found.", file=path,
                           fix="Check the path; the demo config is configs/demo.yaml.")
    if path.is_dir():
        raise JourneyError("Expected a YAML config file but found a directory.", file=path,
                           fix="Pass the .yaml file itself, e.g. configs/demo.yaml.")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise JourneyError("Config file is not UTF-8 text.", file=path,
                           fix="Save it as UTF-8.") from exc
    except yaml.YAMLError as exc:
        raise JourneyError(f"Config file is not valid YAML: {exc}", file=path,
                           fix="Fix the YAML syntax (indentation, colons, quotes).") from exc
    if not isinstance(raw, dict):
        raise JourneyError("Config file must hold a mapping of keys (name, objective, stages, data, ...).",
                           file=path, expected="a YAML mapping", fix="See configs/demo.yaml for an example.")
    data = raw.get("data")
    if isinstance(data, dict):
        data = dict(data)
        for key in ("events", "customers", "feedback"):
            data[key] = _resolve_source(data.get(key), path.parent, uri_ok=key == "events")
        for key in ("observations", "later_period"):
            if data.get(key):
                data[key] = _resolve_path(data[key], path.parent)
        raw = {**raw, "data": data}
    try:
        return RunConfig(**raw, path=path.resolve())
    except ValidationError as exc:
        raise JourneyError("Config file is not valid:\n" + _format_validation_error(exc), file=path,
                           fix="Correct the keys listed above; see configs/demo.yaml and the README's config reference.") from None


Table.model_rebuild()
DataPaths.model_rebuild()
RunConfig.model_rebuild()
