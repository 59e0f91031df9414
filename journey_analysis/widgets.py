"""Interactive explorers for JupyterLab (ipywidgets), with a static fallback for headless runs.

Owns :func:`stage_view_data` (what the explorer shows for one segment and stage, as DataFrames),
:func:`explorer` (pick a segment and a stage -> its map row, durations, themes and quotes) and
:func:`show_explorer`, which shows the explorer when ``interactive`` is true and a widget-capable kernel
is running, and otherwise displays the same information as static tables (papermill and nbconvert keep
tables; widget views do not survive conversion). Nothing here ever fails a headless run: without
ipywidgets or a kernel it falls back to the static view. ipywidgets and IPython are imported inside
the functions.
"""
from __future__ import annotations

import html

import pandas as pd

#: The segment holding every customer (same name as ``journey_analysis.journey_map.ALL``).
ALL = "All customers"

_ROW_FIELDS = (
    ("customers", "customers"), ("share_customers", "share of the segment"), ("drop_off", "drop-off"),
    ("touchpoints", "touchpoints"), ("channels", "channels"), ("expectation", "expectation (config)"),
    ("satisfaction_mean", "satisfaction (mean)"), ("satisfaction_n", "ratings"),
    ("target_satisfaction", "target satisfaction"), ("sentiment_mean", "sentiment (mean)"),
    ("sentiment_share_negative", "share negative"), ("sentiment_n", "scored comments"),
    ("low_confidence", "low confidence"), ("missing", "what the data does not show"),
)
_DURATIONS = (("dwell", "dwell (to next step)"), ("service", "service (the interaction itself)"))


def widgets_available() -> bool:
    """True when ipywidgets imports and code runs in a Jupyter kernel (not plain Python)."""
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


def _segments(journey_map: pd.DataFrame) -> list[str]:
    segs = journey_map["segment"].astype(str).drop_duplicates().tolist() if "segment" in journey_map else [ALL]
    return [ALL] + [s for s in segs if s != ALL] if ALL in segs else segs


def _stages(journey_map: pd.DataFrame) -> list[str]:
    m = journey_map
    if "configured" in m.columns and m["configured"].any():
        m = m[m["configured"]]
    order = "stage_order" if "stage_order" in m.columns else "stage"
    return m.sort_values(order)["stage"].astype(str).drop_duplicates().tolist()


def stage_view_data(journey_map: pd.DataFrame, segment: str = ALL, stage: str | None = None) -> dict:
    """What the explorer shows for one (segment, stage) of a journey map (from ``build_map``).

    Returns ``{"row": DataFrame (field, value) of the map row's key lanes, "durations": DataFrame
    (kind, n, median_h, p90_h, min_h, max_h, expected_max_h), "themes": DataFrame (polarity, themes),
    "quotes": list of str, "row_text": the same (field, value) with each value formatted for people by
    :func:`journey_analysis.formatting.format_value` in its column's unit ("—" when missing)}``.
    ``stage=None`` takes the first stage. Unknown names raise KeyError.
    """
    stage = stage or _stages(journey_map)[0]
    m = journey_map
    if "segment" in m.columns:
        m = m[m["segment"].astype(str) == str(segment)]
    row = m[m["stage"].astype(str) == str(stage)]
    if row.empty:
        raise KeyError(f"no map row for segment {segment!r} and stage {stage!r}")
    r = row.iloc[0]
    fields = [(label, r[c]) for c, label in _ROW_FIELDS if c in r.index]
    durations = pd.DataFrame([{
        "kind": label, "n": r.get(f"{pre}_n"), "median_h": r.get(f"{pre}_median_h"), "p90_h": r.get(f"{pre}_p90_h"),
        "min_h": r.get(f"{pre}_min_h"), "max_h": r.get(f"{pre}_max_h"),
        "expected_max_h": r.get("expected_max_duration_h") if pre == "dwell" else None,
    } for pre, label in _DURATIONS if f"{pre}_median_h" in r.index])
    themes = pd.DataFrame({"polarity": ["negative", "positive"],
                           "themes": [r.get("themes_negative") or "", r.get("themes_positive") or ""]})
    quotes = r.get("quotes")
    quotes = [str(q) for q in quotes] if quotes is not None and len(quotes) else []
    from journey_analysis.formatting import format_value

    text = [(label, format_value(r[c], c)) for c, label in _ROW_FIELDS if c in r.index]
    return {"row": pd.DataFrame(fields, columns=["field", "value"]).astype({"value": object}),
            "row_text": pd.DataFrame(text, columns=["field", "value"]),
            "durations": durations, "themes": themes, "quotes": quotes}


def _quotes_html(quotes: list[str]) -> str:
    if not quotes:
        return "<p><i>No quotes at this stage.</i></p>"
    return "<ul>" + "".join(f"<li>&ldquo;{html.escape(q)}&rdquo;</li>" for q in quotes) + "</ul>"


def overview_table(journey_map: pd.DataFrame, segment: str = ALL) -> pd.DataFrame:
    """The static view: one row per configured stage of ``segment`` with customers, drop-off, dwell
    median (h), satisfaction, sentiment, negative themes and the first quote."""
    m = journey_map
    if "segment" in m.columns:
        m = m[m["segment"].astype(str) == str(segment)]
    if "configured" in m.columns and m["configured"].any():
        m = m[m["configured"]]
    cols = [c for c in ("stage", "customers", "drop_off", "dwell_median_h", "satisfaction_mean", "sentiment_mean",
                        "themes_negative", "quote") if c in m.columns]
    return m.sort_values("stage_order")[cols].reset_index(drop=True) if "stage_order" in m else m[cols]


def explorer(journey_map: pd.DataFrame, segment: str = ALL, stage: str | None = None):
    """An ipywidgets box: two dropdowns (segment, stage) and the chosen map row, durations, themes and
    quotes (customer text escaped). Returns the widget; display it in a notebook."""
    import ipywidgets as w
    from IPython.display import HTML, display

    from journey_analysis.formatting import table

    segs, stages = _segments(journey_map), _stages(journey_map)
    seg_dd = w.Dropdown(options=segs, value=segment if segment in segs else segs[0], description="Segment")
    st_dd = w.Dropdown(options=stages, value=stage if stage in stages else stages[0], description="Stage")
    out = w.Output()

    def render(*_):
        out.clear_output(wait=True)
        with out:
            try:
                v = stage_view_data(journey_map, seg_dd.value, st_dd.value)
            except KeyError as exc:
                display(HTML(f"<p>{html.escape(str(exc))}</p>"))
                return
            display(table(v["row_text"]))
            display(table(v["durations"]))
            display(table(v["themes"]))
            display(HTML(_quotes_html(v["quotes"])))

    seg_dd.observe(render, names="value")
    st_dd.observe(render, names="value")
    render()
    return w.VBox([w.HBox([seg_dd, st_dd]), out])


def show_explorer(journey_map: pd.DataFrame, interactive: bool = True, segment: str = ALL,
                  stage: str | None = None) -> None:
    """Show the explorer when ``interactive`` and widgets are available, else the static
    :func:`overview_table` of ``segment`` (what a report keeps), through the formatting layer. Never
    raises for a missing widget front end. Above the explorer a visible note (:data:`RERUN_NOTE`) says
    that a saved notebook reopened later needs this cell re-run: widget views do not outlive the kernel
    that drew them ("Error displaying widget: model not found")."""
    from IPython.display import Markdown, display

    from journey_analysis.formatting import table

    if interactive and widgets_available():
        try:
            box = explorer(journey_map, segment, stage)
            display(Markdown(RERUN_NOTE))
            display(box)
            return
        except Exception:  # a broken widget install must not stop the notebook: fall back
            pass
    display(table(overview_table(journey_map, segment)))


#: Shown above the live explorer: what to do when the notebook is reopened without its kernel.
RERUN_NOTE = ("*Interactive explorer: pick a segment and a stage. It lives in the running kernel; in a saved "
              "notebook reopened later it reads \"Error displaying widget\" or shows nothing: run this cell "
              "again (or the notebook from the top).*")
