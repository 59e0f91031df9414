"""A run's files, and what the notebooks hand the runner through them.

This module owns:

* :func:`record` / :func:`read_records`: the notebooks' recorder (headline values displayed under the
  mimetype :data:`RECORD_MIME`, read back from an executed notebook by the runner and the tests).
* :func:`show_figure` / :func:`read_figures`: figures displayed as named PNGs, so the runner can write
  ``figures/<name>.png`` and the report embed them.
* :func:`save_artifact` / :func:`load_artifact` / :func:`run_folder` / :func:`resolve_path`: atomic writes
  of the pipeline artifacts (temporary file in the same folder, then ``os.replace``) and reading them
  back; :func:`atomic_write_text` for any text file of a run.

nbformat, matplotlib and IPython are imported inside the functions that use them.
"""
from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from journey_analysis.engines import dispatch
from journey_analysis.errors import JourneyError


#: Mimetype of a recorded headline value: ``{"name": ..., "value": ...}``.
RECORD_MIME = "application/vnd.journey.record+json"


#: Output-metadata key naming a figure displayed with :func:`show_figure`.
FIGURE_KEY = "journey_figure"


REPORT_SKIP_TAGS = frozenset({"remove_cell", "hide", "solution", "exercise", "teaching", "parameters",
                              "injected-parameters"})


def jsonable(value):
    """``value`` turned into plain JSON types (numpy scalars, arrays, Series, timestamps, paths)."""
    def default(o):
        if hasattr(o, "tolist"):          # numpy scalars and arrays, pandas Series / Index
            return o.tolist()
        if hasattr(o, "isoformat"):       # datetime, pandas Timestamp
            return o.isoformat()
        if isinstance(o, (set, frozenset, tuple)):
            return list(o)
        return str(o)

    return json.loads(json.dumps(value, default=default, allow_nan=True).replace("NaN", "null"))


def record(name: str, value) -> None:
    """Display a headline value so it can be read back from the executed notebook.

    The output is a display of mimetype :data:`RECORD_MIME` holding ``{"name": name, "value": value}``
    (value converted to JSON types; NaN becomes null) with a ``text/plain`` twin ``name = value``.
    Use it in the last cell of a notebook (tagged ``remove_cell`` so the report hides it).
    """
    from IPython.display import display

    value = jsonable(value)
    display({RECORD_MIME: {"name": str(name), "value": value}, "text/plain": f"{name} = {value!r}"}, raw=True)


def read_notebook(nb):
    """A notebook (path or NotebookNode) as a NotebookNode (nbformat 4)."""
    import nbformat

    if isinstance(nb, (str, Path)):
        return nbformat.read(str(nb), as_version=4)
    return nb


def read_records(notebook) -> dict:
    """The values recorded with :func:`record` in an executed notebook (path or NotebookNode):
    ``{name: value}``; a name recorded twice keeps the last value."""
    nb = read_notebook(notebook)
    out = {}
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            if RECORD_MIME in data:
                rec = data[RECORD_MIME]
                if isinstance(rec, str):
                    rec = json.loads(rec)
                out[rec["name"]] = rec["value"]
    return out


def show_figure(fig, name: str, dpi: int = 110) -> None:
    """Display a matplotlib figure as a PNG named ``name`` and close it.

    The runner writes every named figure of a run to ``figures/<name>.png`` and embeds it in
    report.html. ``name`` should be a short slug (letters, digits, ``_`` or ``-``). ``fig=None`` (nothing
    to draw, e.g. segmentation skipped) shows nothing.
    """
    if fig is None:
        return
    import io

    from IPython.display import display

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    import matplotlib.pyplot as plt

    plt.close(fig)
    png = base64.b64encode(buf.getvalue()).decode("ascii")
    display({"image/png": png, "text/plain": f"<figure {name}>"}, raw=True, metadata={FIGURE_KEY: str(name)})


def read_figures(notebook, skip_tags=("solution", "exercise")) -> dict[str, bytes]:
    """Named figures (see :func:`show_figure`) of an executed notebook: ``{name: png bytes}``; figures of
    cells tagged with any of ``skip_tags`` (exercise solutions) are left out."""
    nb = read_notebook(notebook)
    out = {}
    for cell in nb.cells:
        if set(cell.get("metadata", {}).get("tags", [])) & set(skip_tags):
            continue
        for o in cell.get("outputs", []):
            name = o.get("metadata", {}).get(FIGURE_KEY)
            if name and "image/png" in o.get("data", {}):
                out[str(name)] = base64.b64decode(o["data"]["image/png"])
    return out


def resolve_path(path) -> Path:
    """A notebook parameter path made absolute.

    Absolute paths are kept; a relative path is read from the current folder when it exists there,
    else from ``notebooks/`` (so the defaults ``"../configs/demo.yaml"`` work whether a notebook is
    run from ``notebooks/``, from the repository root, or by papermill/nbval).
    """
    from journey_analysis.config import NOTEBOOKS_DIR

    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    here = Path.cwd() / p
    return here.resolve() if here.exists() else (NOTEBOOKS_DIR / p).resolve()


def run_folder(processed_dir, run_id: str) -> Path:
    """The artifacts folder of a run, ``<processed_dir>/<run_id>/`` (created when missing; a relative
    ``processed_dir`` is resolved with :func:`resolve_path`)."""
    folder = resolve_path(processed_dir) / str(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _atomic_write_bytes(path: Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically: temporary file in the same folder, then os.replace."""
    return _atomic_write_bytes(Path(path), text.encode("utf-8"))


@dispatch
def save_artifact(obj, path) -> Path:
    """Write one pipeline artifact atomically and return its path.

    By suffix: ``.parquet`` (a DataFrame, index kept only when it is named), ``.json`` (JSON types;
    numpy and timestamps converted), ``.csv`` (a DataFrame, spreadsheet formulas neutralised, no index),
    ``.joblib`` (any picklable object), anything else (str written as text). The file appears complete
    or not at all: it is written to ``.<name>.tmp-<pid>`` next to it, then moved with ``os.replace``.

    ``obj=None`` (the run has no such data, e.g. no customers file or no feedback) removes any stale
    ``path`` and writes the marker ``<name>.absent`` instead, so that :func:`load_artifact` returns None.
    A Spark DataFrame (``engine: spark``) is written by Spark as a Parquet directory at ``path``, also
    atomically (:func:`journey_analysis.engines.spark.save_artifact`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    absent = _absent_marker(path)
    if obj is None:
        if path.is_dir():
            import shutil

            shutil.rmtree(path)
        path.unlink(missing_ok=True)
        _atomic_write_bytes(absent, b"no such data in this run\n")
        return absent
    absent.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = obj
            keep_index = any(n is not None for n in frame.index.names)
            frame.to_parquet(tmp, index=keep_index)
        elif suffix == ".json":
            tmp.write_text(json.dumps(jsonable(obj), indent=2, ensure_ascii=False), encoding="utf-8")
        elif suffix == ".csv":
            from journey_analysis.schema import neutralise_formulas

            neutralise_formulas(obj).to_csv(tmp, index=False)
        elif suffix == ".joblib":
            import joblib

            joblib.dump(obj, tmp)
        else:
            tmp.write_bytes(obj if isinstance(obj, bytes) else str(obj).encode("utf-8"))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _absent_marker(path: Path) -> Path:
    return path.with_name(f"{path.name}.absent")


def load_artifact(path, config=None):
    """Read an artifact written by :func:`save_artifact` (Parquet, JSON, CSV, joblib; else text).

    Returns None when the earlier stage saved None (the run has no such data: marker ``<name>.absent``).
    A missing file raises :class:`JourneyError` saying which notebook to run first. A Parquet
    directory (the Spark engine's events) is read lazily with Spark, in the session the run config
    `config` describes (its ``spark:`` settings; :func:`journey_analysis.engines.spark.get_spark`).
    """
    path = Path(path)
    if not path.exists() and _absent_marker(path).exists():
        return None
    if not path.exists():
        raise JourneyError("An artifact of an earlier stage is missing.", file=path,
                           fix="Run the earlier notebooks first (or `journey run`), with the same run_id "
                               "and processed_dir parameters.")
    suffix = path.suffix.lower()
    if suffix == ".parquet" and path.is_dir():
        from journey_analysis.engines import get

        return get("spark").read_events(path, config=config)
    if suffix == ".parquet":
        import pandas as pd

        return pd.read_parquet(path)
    if suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    if suffix == ".csv":
        import pandas as pd

        return pd.read_csv(path, keep_default_na=False)
    if suffix == ".joblib":
        import joblib

        return joblib.load(path)
    return path.read_text(encoding="utf-8")
