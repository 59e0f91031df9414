"""The human-facing outputs of a run: report.html, the run summary, comparisons and reports/index.html.

This module owns:

* :func:`sanitize_html` / :func:`render_markdown`: every piece of notebook output that goes into a
  report passes a whitelist sanitiser (tables, text formatting, inline PNGs only; every other tag,
  attribute, script, style, link or external address is dropped or shown as text) and text nodes are
  redacted with :func:`journey_analysis.text.redact`. A customer comment ``<script>alert(1)</script>``
  therefore shows as text and an e-mail address as ``[EMAIL]``.
* :func:`stage_metrics`: per stage, the figures compared between runs with their standard errors.
* :func:`compare_stage_metrics`: the change between two runs, flagged where it exceeds its uncertainty.
* :func:`check_kpis`: the config's listening posts checked against the journey map.
* :func:`build_run_outputs`: figures, ``journey_map.csv``, ``stage_metrics.json``, ``run.json`` and
  ``report.html`` of a run folder; :func:`write_index`: ``reports/index.html`` listing every run.

Reports are self-contained (figures as base64 PNG, inline CSS, no JavaScript, no external URLs) and
open offline. Templates live in ``journey_analysis/templates/``.
"""
from __future__ import annotations

import base64
import html
import json
import math
import re
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd

TEMPLATES = Path(__file__).resolve().parent / "templates"
#: z for the comparison threshold: a change is flagged when |change| > Z * its standard error.
Z = 1.96
#: Standard error of a median from the interquartile range: se ~= IQR_SE * IQR / sqrt(n)
#: (the boxplot-notch rule, median +/- 1.57 IQR / sqrt(n) as a 95 % interval, divided by 1.96).
IQR_SE = 1.57 / 1.96
OVERALL = "All customers"

# --------------------------------------------------------------------------------------------------
# safe HTML
# --------------------------------------------------------------------------------------------------
_ALLOWED = {"table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption", "colgroup", "col", "div", "span",
            "p", "br", "hr", "b", "strong", "i", "em", "u", "code", "pre", "ul", "ol", "li", "h1", "h2", "h3",
            "h4", "h5", "h6", "blockquote", "sub", "sup", "small", "del", "s", "img", "a", "dl", "dt", "dd"}
_VOID = {"br", "hr", "img", "col"}
_ATTRS = {"class", "colspan", "rowspan", "align", "title", "alt"}
_DATA_PNG = re.compile(r"^data:image/(png|jpeg|gif);base64,[A-Za-z0-9+/=\s]+$")


def _redact_text(text: str) -> str:
    if not text or not re.search(r"@|\d|www\.|https?://", text):
        return text
    from journey_analysis.text import redact

    return redact(text)


class _Sanitizer(HTMLParser):
    def __init__(self, redact: bool):
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.redact = redact
        self.open: list[str] = []
        self.in_style = 0  # pandas' <style scoped> blocks: dropped with their content

    def _attrs(self, tag, attrs) -> str:
        kept = []
        for k, v in attrs:
            k = k.lower()
            v = "" if v is None else v
            if tag == "img" and k == "src" and _DATA_PNG.match(v):
                kept.append(f' src="{html.escape(v, quote=True)}"')
            elif k in _ATTRS and not re.search(r"(?i)javascript:|https?:|url\(", v):
                kept.append(f' {k}="{html.escape(v, quote=True)}"')
        return "".join(kept)

    def handle_starttag(self, tag, attrs):
        if tag == "style":
            self.in_style += 1
            return
        if tag in _ALLOWED and not (tag == "img" and not any(k == "src" and _DATA_PNG.match(v or "") for k, v in attrs)):
            self.out.append(f"<{tag}{self._attrs(tag, attrs)}>")
            if tag not in _VOID:
                self.open.append(tag)
        else:
            self.out.append(html.escape(self.get_starttag_text() or f"<{tag}>"))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag in _ALLOWED and tag not in _VOID and self.open and self.open[-1] == tag:
            self.open.pop()
            self.out.append(f"</{tag}>")

    def handle_endtag(self, tag):
        if tag == "style":
            self.in_style = max(0, self.in_style - 1)
            return
        if tag in _ALLOWED and tag not in _VOID and tag in self.open:
            while self.open:
                t = self.open.pop()
                self.out.append(f"</{t}>")
                if t == tag:
                    break
        elif tag not in _VOID:
            self.out.append(html.escape(f"</{tag}>"))

    def handle_data(self, data):
        if self.in_style:
            return
        self.out.append(html.escape(_redact_text(data) if self.redact else data, quote=False))

    def handle_comment(self, data):
        pass

    def handle_decl(self, decl):
        pass

    def handle_pi(self, data):
        pass

    def unknown_decl(self, data):
        pass

    def result(self) -> str:
        self.close()
        return "".join(self.out) + "".join(f"</{t}>" for t in reversed(self.open))


def sanitize_html(fragment: str, redact: bool = True) -> str:
    """A safe copy of an HTML fragment (for example a pandas table).

    Kept: table and text-formatting tags with the attributes class, colspan, rowspan, align, title,
    alt; ``<img>`` only with a ``data:image/...;base64`` source; ``<a>`` without its href. Everything
    else is shown as text (``<script>alert(1)</script>`` becomes visible text), ``<style>`` blocks
    (pandas' table styles) and comments are dropped,
    unclosed tags are closed. With ``redact=True`` text nodes pass through
    :func:`journey_analysis.text.redact` (e-mails, phones, cards... become tags).
    """
    s = _Sanitizer(redact)
    s.feed(fragment)
    return s.result()


def render_markdown(text: str, redact: bool = True) -> str:
    """Markdown rendered to HTML (raw HTML in the markdown is escaped), then :func:`sanitize_html`."""
    import mistune

    md = mistune.create_markdown(escape=True, plugins=["table", "strikethrough"])
    return sanitize_html(md(text), redact=redact)


def _png_tag(b64: str, alt: str = "figure") -> str:
    b64 = re.sub(r"\s", "", b64)
    return f'<img class="figure" alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def notebook_html(notebook, skip_tags=None, skip_figures=()) -> str:
    """The report body of one executed notebook: markdown cells and outputs, no code.

    Cells tagged with any of ``skip_tags`` (default :data:`journey_analysis.runner.REPORT_SKIP_TAGS`:
    parameters, solution, exercise, teaching, remove_cell, hide) are left out; so are recorded values,
    widget views, stderr and errors. Outputs: PNG figures embedded; HTML (tables) and markdown
    sanitised and redacted; plain text escaped. Figures named in ``skip_figures`` (shown elsewhere in the
    report, like the journey map at the top) become a one-line pointer to where they are.
    """
    from journey_analysis.runner import RECORD_MIME, REPORT_SKIP_TAGS, _notebook

    nb = _notebook(notebook)
    skip = set(REPORT_SKIP_TAGS if skip_tags is None else skip_tags)
    parts: list[str] = []
    for cell in nb.cells:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if tags & skip:
            continue
        if cell.get("cell_type") == "markdown":
            parts.append(f'<div class="md">{render_markdown(cell.get("source", ""), redact=False)}</div>')
            continue
        if cell.get("cell_type") != "code":
            continue
        for o in cell.get("outputs", []):
            kind = o.get("output_type")
            if kind == "stream":
                if o.get("name") == "stdout" and o.get("text", "").strip():
                    parts.append(f'<pre class="out">{html.escape(_redact_text(o["text"]))}</pre>')
                continue
            if kind not in ("display_data", "execute_result"):
                continue
            data = o.get("data", {})
            if RECORD_MIME in data or "application/vnd.jupyter.widget-view+json" in data:
                continue
            if "image/png" in data:
                name = o.get("metadata", {}).get("journey_figure", "figure")
                if name in skip_figures:
                    parts.append(f'<p class="meta">The {html.escape(str(name).replace("_", " "))} is shown '
                                 f'<a href="#summary">at the top of this report</a>.</p>')
                    continue
                parts.append(f'<div class="fig">{_png_tag(data["image/png"], alt=str(name))}</div>')
            elif "text/html" in data:
                src = data["text/html"]
                src = "".join(src) if isinstance(src, list) else src
                parts.append(f'<div class="out">{sanitize_html(src)}</div>')
            elif "text/markdown" in data:
                src = data["text/markdown"]
                src = "".join(src) if isinstance(src, list) else src
                parts.append(f'<div class="out md">{render_markdown(src)}</div>')
            elif "text/plain" in data:
                txt = data["text/plain"]
                txt = "".join(txt) if isinstance(txt, list) else txt
                parts.append(f'<pre class="out">{html.escape(_redact_text(txt))}</pre>')
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------------
# per-stage figures, comparisons, KPIs
# --------------------------------------------------------------------------------------------------
def stage_metrics(events: pd.DataFrame, feedback: pd.DataFrame | None, stages, step: str = "stage",
                  rating_type: str | None = None, terminal=None) -> pd.DataFrame:
    """Per stage, the figures a run is compared on, each with its standard error.

    Columns: ``stage``, ``stage_order`` (config order; stages not configured follow), ``customers``
    (distinct customers with an event at the stage), ``dwell_median_s`` (median over events at the stage
    of next event's timestamp - this timestamp, same customer, order (customer_id, timestamp, row_id);
    a customer's last event has none), ``dwell_median_se_s`` (``IQR_SE * IQR / sqrt(n)``), ``dwell_n``,
    ``dropoff_share`` (share of the stage's customers whose last event is at this stage; 0 at a stage
    where ending is completion: the ``terminal`` stages, or the last of ``stages`` when none are given,
    as on the journey map), ``dropoff_se`` (sqrt(p(1-p)/n)), ``sentiment_mean``,
    ``sentiment_se`` (sd / sqrt(n)), ``sentiment_n`` (scored feedback at the stage),
    ``satisfaction_mean``, ``satisfaction_se``, ``satisfaction_n`` (ratings of ``rating_type``).
    """
    from journey_analysis.steps import stage_dwell_summary

    stages = list(stages)
    out = stage_dwell_summary(events, step)
    iqr = out.pop("dwell_q75_s") - out.pop("dwell_q25_s")
    last_customers = out.pop("last_customers")
    out = out[["customers", "dwell_median_s", "dwell_n"]]
    out["dwell_median_se_s"] = IQR_SE * iqr / np.sqrt(out["dwell_n"].where(out["dwell_n"] > 0))
    p = (last_customers.reindex(out.index).fillna(0) / out["customers"]).astype(float)
    completion = list(terminal or []) or stages[-1:]
    p = p.where(~out.index.isin(completion), 0.0)
    out["dropoff_share"] = p
    out["dropoff_se"] = np.sqrt(p * (1 - p) / out["customers"])
    for col in ("sentiment_mean", "sentiment_se", "sentiment_n", "satisfaction_mean", "satisfaction_se",
                "satisfaction_n"):
        out[col] = np.nan
    if feedback is not None and len(feedback) and "stage" in feedback.columns:
        fb = feedback[feedback["stage"].notna()]
        if "sentiment" in fb.columns:
            s = fb.groupby("stage")["sentiment"].agg(["mean", "std", "count"])
            out["sentiment_mean"] = s["mean"].reindex(out.index)
            out["sentiment_se"] = (s["std"] / np.sqrt(s["count"])).reindex(out.index)
            out["sentiment_n"] = s["count"].reindex(out.index)
        if rating_type and {"rating", "rating_type"} <= set(fb.columns):
            r = fb[fb["rating_type"] == rating_type].groupby("stage")["rating"].agg(["mean", "std", "count"])
            out["satisfaction_mean"] = r["mean"].reindex(out.index)
            out["satisfaction_se"] = (r["std"] / np.sqrt(r["count"])).reindex(out.index)
            out["satisfaction_n"] = r["count"].reindex(out.index)
    out.index.name = "stage"
    out = out.reset_index()
    rank = {s: i for i, s in enumerate(stages)}
    out["stage_order"] = out["stage"].map(rank).fillna(len(stages)).astype(int)
    out = out.sort_values(["stage_order", "stage"]).reset_index(drop=True)
    first = ["stage", "stage_order", "customers"]
    return out[first + [c for c in out.columns if c not in first]]


#: Compared metrics: (column, se column, label, higher is better, unit divisor, unit).
COMPARED = (
    ("sentiment_mean", "sentiment_se", "sentiment", True, 1.0, ""),
    ("satisfaction_mean", "satisfaction_se", "satisfaction", True, 1.0, ""),
    ("dwell_median_s", "dwell_median_se_s", "dwell median", False, 3600.0, " h"),
    ("dropoff_share", "dropoff_se", "drop-off", False, 0.01, " %"),
)


def compare_stage_metrics(current: pd.DataFrame, previous: pd.DataFrame | None, z: float = Z) -> pd.DataFrame:
    """Per stage and metric, the change from ``previous`` to ``current`` (both from :func:`stage_metrics`).

    Columns: ``stage``, ``metric``, ``previous``, ``current``, ``change`` (current - previous),
    ``change_se`` (sqrt(se_prev^2 + se_cur^2)), ``significant`` (|change| > z * change_se, z = 1.96 by
    default; a change with unknown uncertainty is never significant), ``direction`` ("up", "down",
    "same"), ``verdict`` ("better", "worse" or "no clear change"), ``unit``, ``scale`` (divide by it to
    display). Empty when there is no previous run.
    """
    cols = ["stage", "metric", "previous", "current", "change", "change_se", "significant", "direction",
            "verdict", "unit", "scale"]
    if previous is None or previous.empty or current.empty:
        return pd.DataFrame(columns=cols)
    cur = current.set_index("stage")
    prev = previous.set_index("stage").reindex(cur.index)
    frames = []
    for col, se, label, higher_better, scale, unit in COMPARED:
        if col not in cur.columns or col not in prev.columns:
            continue
        c = cur[col].astype(float)
        p = prev[col].astype(float)
        change = c - p
        change_se = np.sqrt(cur[se].astype(float) ** 2 + prev[se].astype(float) ** 2)
        sig = (change.abs() > z * change_se) & change_se.notna() & change.notna()
        direction = np.where(change > 0, "up", np.where(change < 0, "down", "same"))
        good = (change > 0) == higher_better
        verdict = np.where(sig, np.where(good, "better", "worse"), "no clear change")
        frames.append(pd.DataFrame({"stage": cur.index, "metric": label, "previous": p.to_numpy(),
                                    "current": c.to_numpy(), "change": change.to_numpy(),
                                    "change_se": change_se.to_numpy(), "significant": sig.to_numpy(),
                                    "direction": direction, "verdict": verdict, "unit": unit, "scale": scale}))
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
    return out[out["previous"].notna() | out["current"].notna()].reset_index(drop=True)


def _in_folder(source, folder: Path):
    """A configured data source (path, table or tables) with each file taken from ``folder`` under the same
    file name (a table keeps its mapping; a ``via`` table keeps its own file)."""
    from journey_analysis.config import Table

    if source is None:
        return None
    if isinstance(source, tuple):
        return tuple(_in_folder(t, folder) for t in source)
    if isinstance(source, Table):
        return source.model_copy(update={"path": folder / Path(str(source.path)).name})
    return folder / Path(str(source)).name


def later_period_comparison(config, current: pd.DataFrame | None) -> pd.DataFrame:
    """The living map: what changed in a later period of the same journey.

    ``config.data.later_period`` names a folder holding the same data files (same file names) for a
    later period. They go through the steps of a run (:func:`journey_analysis.gather.gather` with every
    check, redaction, sentiment scoring), their :func:`stage_metrics` are computed, and
    :func:`compare_stage_metrics` compares them with ``current`` (this run's stage metrics): "previous"
    is this run, "current" the later period; a change is called only beyond 1.96 standard errors.
    Without a later period (or without ``current``) the result is empty with ``attrs["reason"]``;
    otherwise ``attrs`` has ``later_customers`` and ``later_events``.
    """
    from journey_analysis.errors import JourneyError
    from journey_analysis.gather import gather
    from journey_analysis.sentiment import score_feedback
    from journey_analysis.steps import overview
    from journey_analysis.text import redact_feedback

    folder = config.data.later_period
    if folder is None or current is None:
        out = compare_stage_metrics(pd.DataFrame(), None).astype({"significant": bool})
        out.attrs["reason"] = ("No later period in the configuration (data.later_period): the next run of the same "
                               "configuration is compared with this one in its report." if folder is None else
                               "This run has no stage figures to compare.")
        return out
    folder = Path(folder)
    if not folder.is_dir():
        raise JourneyError("The later period's folder does not exist.", file=folder,
                           expected="a folder with the same data files as this run (events, customers, feedback)",
                           fix="Create it, or remove data.later_period from the configuration.")
    files = {k: _in_folder(getattr(config.data, k), folder) for k in ("events", "customers", "feedback")}
    later = config.model_copy(update={"data": config.data.model_copy(
        update={**files, "observations": None, "later_period": None})})
    g = gather(later)
    lo, hi = config.satisfaction.min, config.satisfaction.max
    feedback, _ = score_feedback(redact_feedback(g.feedback), config.satisfaction.rating_type, (lo, hi))
    metrics = stage_metrics(g.events, feedback, config.stage_names, step=config.step,
                            rating_type=config.satisfaction.rating_type)
    out = compare_stage_metrics(metrics, current)
    facts = overview(g.events, config.step)
    out.attrs.update(later_customers=int(facts["customers"]), later_events=int(facts["events"]))
    return out


def _overall_rows(journey_map: pd.DataFrame | None) -> pd.DataFrame | None:
    if journey_map is None or journey_map.empty or "stage" not in journey_map.columns:
        return None
    jm = journey_map
    for col in ("segment_name", "segment"):
        if col in jm.columns and (jm[col].astype(str) == OVERALL).any():
            return jm[jm[col].astype(str) == OVERALL]
    if "segment" in jm.columns:
        return None
    return jm


def check_kpis(kpis, journey_map: pd.DataFrame | None, metrics: pd.DataFrame | None,
               rating_type: str | None = None) -> pd.DataFrame:
    """Each configured KPI (listening post) checked against the run.

    The value is the KPI's ``metric`` column at its ``stage`` in the journey map's "All customers" rows;
    when the map has no such column, the same-named column of :func:`stage_metrics` (``<rating_type>_mean``
    is read as ``satisfaction_mean``). Columns: ``label``, ``stage``, ``metric``, ``value``, ``min``,
    ``max``, ``status`` ("ok", "breach" or "unknown" when the value cannot be found or is missing),
    ``message`` (a sentence for the top of the report).
    """
    rows = []
    overall = _overall_rows(journey_map)
    m = metrics.set_index("stage") if metrics is not None and not metrics.empty else None
    for k in kpis or ():
        k = k if isinstance(k, dict) else k.model_dump()
        metric, stage = k["metric"], k["stage"]
        label = k.get("label") or f"{stage} {metric}"
        value = None
        if overall is not None and metric in overall.columns:
            v = overall.loc[overall["stage"].astype(str) == stage, metric]
            value = v.iloc[0] if len(v) else None
        if value is None and m is not None:
            col = metric
            if metric not in m.columns and rating_type and metric == f"{rating_type}_mean":
                col = "satisfaction_mean"
            if col in m.columns and stage in m.index:
                value = m.at[stage, col]
        value = None if value is None or pd.isna(value) else float(value)
        lo, hi = k.get("min"), k.get("max")
        from journey_analysis.formatting import format_value, number

        from journey_analysis.formatting import label as words

        show = (lambda v, _m=metric: format_value(v, _m))
        what = re.sub(r" \([^)]*\)$", "", words(metric))     # "dwell median", "CSAT": the unit is in the value
        if value is None:
            status, msg = "unknown", f"{label}: no value for {what} at stage {stage} in this run."
        elif (lo is not None and value < lo) or (hi is not None and value > hi):
            limit = lo if lo is not None and value < lo else hi
            bound = f"at least {show(lo)}" if limit is lo else f"at most {show(hi)}"
            if show(value) == show(limit):  # a breach that rounding would hide: say by how much, in percent
                side = "below" if limit is lo else "above"
                gap = f"{number(abs(value - limit) / abs(limit) * 100, 2)}%" if limit else number(abs(value - limit), 2)
                bound += f"; {gap} {side} it"
            status, msg = "breach", f"{label}: {what} at {stage} is {show(value)}, expected {bound}."
        else:
            status, msg = "ok", f"{label}: {what} at {stage} is {show(value)} (within threshold)."
        rows.append({"label": label, "stage": stage, "metric": metric, "value": value, "min": lo, "max": hi,
                     "status": status, "message": msg})
    return pd.DataFrame(rows, columns=["label", "stage", "metric", "value", "min", "max", "status", "message"])


# --------------------------------------------------------------------------------------------------
# runs and the index
# --------------------------------------------------------------------------------------------------
#: Recorded names shown as headline figures (index and report), in this order, with their labels.
HEADLINES = (("n_customers", "customers"), ("n_events", "events"), ("n_feedback", "feedback"),
             ("k", "segments"), ("top_pain_point", "top pain point"), ("top_driver", "top driver"),
             ("top_recommendation", "first recommendation"))


def _run_metas(folder: Path, name: str) -> list[dict]:
    """The readable ``<run folder>/<name>`` JSON files under ``folder``, each with its ``folder`` name;
    temporary (``.tmp-*``) and ``failed`` folders are skipped, unreadable files ignored."""
    metas = []
    for p in Path(folder).glob(f"*/{name}"):
        if p.parent.name.startswith(".") or p.parent.name == "failed":
            continue
        try:
            meta = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        metas.append({**meta, "folder": p.parent.name})
    return metas


def list_runs(reports_dir) -> list[dict]:
    """Every complete run under ``reports_dir`` (its ``run.json``), newest first."""
    runs = _run_metas(reports_dir, "run.json")
    return sorted(runs, key=lambda r: (r.get("created_at", ""), r.get("run_id", "")), reverse=True)


def previous_run(reports_dir, config_name: str, before: str | None = None) -> dict | None:
    """The latest complete run of the same config (created before ``before``, ISO time), or None."""
    for r in list_runs(reports_dir):
        if r.get("config_name") == config_name and (before is None or r.get("created_at", "") < before):
            return r
    return None


def _env():
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = _fmt
    return env


def _fmt(value, column: str = "") -> str:
    """A value for a page (:func:`journey_analysis.formatting.format_value`; ``column`` names its kind)."""
    from journey_analysis.formatting import format_value

    return format_value(value, column)


#: Compared metric label -> the column it is read from (for formatting in the column's unit).
_COMPARED_COLUMN = {label: col for col, _, label, *_ in COMPARED}


def _comparison_rows(comp: pd.DataFrame) -> list[dict]:
    """The comparison at display precision: values in the metric's unit; "no change" when the change is
    within noise (not significant) or both runs read the same once rounded; arrows only for the rest."""
    from journey_analysis.formatting import change_text, format_value

    rows = []
    for r in comp.itertuples(index=False):
        col = _COMPARED_COLUMN.get(r.metric, r.metric)
        change = change_text(r.previous, r.current, col, significant=bool(r.significant))
        moved = change not in ("no change", "—")
        arrow = {"up": "▲", "down": "▼"}.get(r.direction, "") if moved else "≈"
        verdict = r.verdict if moved else "no change"
        noise = Z * r.change_se if pd.notna(r.change_se) else None
        rows.append({"stage": r.stage, "metric": r.metric, "previous": format_value(r.previous, col),
                     "current": format_value(r.current, col), "change": change,
                     "uncertainty": ("±" + format_value(noise, col).lstrip("+")) if noise is not None else "—",
                     "arrow": arrow, "css": {"better": "better", "worse": "worse"}.get(verdict, "same"),
                     "verdict": verdict})
    return rows


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8")) if Path(path).exists() else None
    except (OSError, ValueError):
        return None


def _read_frame(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_parquet(path) if path.exists() else None
    except Exception:
        return None


def _table_html(frame: pd.DataFrame | None, max_rows: int = 30) -> str:
    """A table for the report through :func:`journey_analysis.formatting.table_html` (units, "—" for
    missing, no index, paths inside the project), then sanitised and redacted."""
    from journey_analysis.formatting import table_html

    if frame is None or frame.empty:
        return ""
    return sanitize_html(table_html(frame, max_rows=max_rows))


def act_on(recs: pd.DataFrame | None, found: dict | None = None, n: int = 3) -> list[dict]:
    """The ``n`` findings a manager should act on, for the report's first screen: the top recommendations
    (``recommendations.parquet``, by rank), each ``{"title": "Stage: action", "evidence": ..., "reach":
    "91% of customers", "confidence": ..., "themes": ...}``; without recommendations, the top pain point
    and moment of truth of ``found`` (``findings.json``)."""
    from journey_analysis.formatting import format_value, is_missing

    out = []
    if recs is not None and len(recs):
        for r in recs.sort_values("rank").head(n).to_dict("records"):
            title = f"{str(r.get('stage', '')).capitalize()}: {r.get('action', 'look closer')}"
            conf = r.get("confidence")
            out.append({"title": title, "evidence": r.get("evidence") or r.get("sentence") or "",
                        "reach": f"reaches {format_value(r.get('reach'), 'reach')} of customers"
                        if not is_missing(r.get("reach")) else "",
                        "confidence": "" if is_missing(conf) else f"confidence {format_value(conf, 'confidence')}",
                        "themes": "" if is_missing(r.get("themes")) else f"customers mention {r.get('themes')}"})
    found = found or {}
    if not out and found.get("top_pain_point"):
        out.append({"title": f"Pain point: {found['top_pain_point']}", "evidence":
                    f"pain score {format_value(found.get('top_pain_score'), 'pain_score')}", "reach": "",
                    "confidence": "", "themes": ""})
    if len(out) < n and found.get("top_driver") and not any((found.get("top_driver_stage") or "?").lower()
                                                               in o["title"].lower() for o in out):
        out.append({"title": f"Moment of truth: {found['top_driver']}", "evidence": found.get("top_driver_sentence") or "",
                    "reach": "", "confidence": "", "themes": ""})
    return out[:n]


def _run_files(folder: Path) -> list[dict]:
    """The files of a run folder a reader may open, as relative links: notebooks, figures, tables, logs."""
    order = {".ipynb": 0, ".png": 1, ".csv": 2, ".json": 3, ".log": 4}
    files = [p for p in Path(folder).rglob("*") if p.is_file() and p.name != "report.html"
             and not p.name.startswith(".") and p.suffix in order]
    files.sort(key=lambda p: (order[p.suffix], p.as_posix()))
    return [{"href": p.relative_to(folder).as_posix(), "name": p.relative_to(folder).as_posix()} for p in files]


def build_run_outputs(folder, executed, config, run_id: str, processed, reports_dir, seconds=None) -> dict:
    """Write a run's human-facing files into ``folder`` (the run being built) and return a summary.

    Writes ``figures/<name>.png`` (every figure the notebooks showed with ``show_figure``),
    ``journey_map.csv`` (from ``journey_map.parquet``, spreadsheet formulas neutralised),
    ``stage_metrics.json``, ``kpis.json``, ``run.json`` and ``report.html``. Returns
    ``{"records", "headline", "kpis", "comparison", "previous"}``.
    """
    from journey_analysis.runner import atomic_write_text, read_figures, read_records, save_artifact

    folder, processed = Path(folder), Path(processed)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    records: dict = {}
    figures: dict[str, bytes] = {}
    for nb in executed:
        records.update(read_records(nb))
        figures.update(read_figures(nb))
    fig_dir = folder / "figures"
    fig_dir.mkdir(exist_ok=True)
    for name, png in figures.items():
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        (fig_dir / f"{safe}.png").write_bytes(png)

    journey_map = _read_frame(processed / "journey_map.parquet")
    if journey_map is not None:
        save_artifact(journey_map, folder / "journey_map.csv")
    feedback = _read_frame(processed / "feedback.parquet")
    metrics = _read_frame(processed / "stage_metrics.parquet")  # 04_map's, computed on the run's engine
    metrics = pd.DataFrame() if metrics is None else metrics
    atomic_write_text(folder / "stage_metrics.json", metrics.to_json(orient="records", indent=2))

    missing = limitations(config, _read_frame(processed / "customers.parquet"), feedback,
                          segmentation_note=records.get("segmentation_note"))

    prev = previous_run(reports_dir, config.name, before=created)
    prev_metrics = None
    if prev is not None:
        p = Path(reports_dir) / prev["folder"] / "stage_metrics.json"
        if p.exists():
            prev_metrics = pd.read_json(p, orient="records")
    comparison = compare_stage_metrics(metrics, prev_metrics)
    kpis = check_kpis(config.kpis, journey_map, metrics, rating_type=config.satisfaction.rating_type)
    atomic_write_text(folder / "kpis.json", kpis.to_json(orient="records", indent=2))

    headline = {label: records[key] for key, label in HEADLINES if key in records}
    n_better = int((comparison["verdict"] == "better").sum()) if len(comparison) else 0
    n_worse = int((comparison["verdict"] == "worse").sum()) if len(comparison) else 0
    summary = {
        "run_id": run_id, "config_name": config.name, "config_path": str(config.path), "title": config.title,
        "journey": config.journey, "objective": config.objective, "created_at": created,
        "headline": headline, "kpi_breaches": int((kpis["status"] == "breach").sum()),
        "kpis_checked": int(len(kpis)), "previous_run": prev["run_id"] if prev else None,
        "changes_better": n_better, "changes_worse": n_worse, "seconds": seconds or {},
        "figures": sorted(figures), "limitations": missing,
    }
    atomic_write_text(folder / "run.json", json.dumps(summary, indent=2, ensure_ascii=False, default=str))

    chapters = []
    from journey_analysis.runner import _notebook

    for nb_path in executed:
        nb = _notebook(nb_path)
        title = next((c.get("source", "").splitlines()[0].lstrip("# ").strip() for c in nb.cells
                      if c.get("cell_type") == "markdown" and c.get("source", "").startswith("# ")), Path(nb_path).stem)
        chapters.append({"id": Path(nb_path).stem, "title": title,
                         "html": notebook_html(nb, skip_figures=("journey_map",) if "journey_map" in figures else ())})
    found = _read_json(processed / "findings.json")
    findings_now = act_on(_read_frame(processed / "recommendations.parquet"), found)
    from markupsafe import Markup

    env = _env()
    page = env.get_template("report.html.j2").render(
        summary=summary, config=config, headline=headline, limitations=missing,
        breaches=kpis[kpis["status"] == "breach"].to_dict("records"),
        unknown_kpis=kpis[kpis["status"] == "unknown"].to_dict("records"),
        ok_kpis=kpis[kpis["status"] == "ok"].to_dict("records"),
        previous=prev, comparison=_comparison_rows(comparison[comparison["significant"]]) if len(comparison) else [],
        comparison_all=_comparison_rows(comparison) if len(comparison) else [],
        map_png=Markup(_png_tag(base64.b64encode(figures["journey_map"]).decode(), "journey map"))
        if "journey_map" in figures else None,
        chapters=[{"id": c["id"], "title": c["title"], "html": Markup(c["html"])} for c in chapters],
        act_on=findings_now, files=_run_files(folder) + [{"href": "report.html", "name": "report.html"}],
        map_file="figures/journey_map.png" if "journey_map" in figures else None,
        index_href="../index.html",
        quality=Markup(_table_html(_read_frame(processed / "quality.parquet"))),
    )
    atomic_write_text(folder / "report.html", page)
    return {"records": records, "headline": headline, "kpis": kpis, "comparison": comparison, "previous": prev}


def sparkline(values, width: int = 120, height: int = 26) -> str:
    """An inline SVG line of ``values`` (oldest first; missing values skipped), the last point marked:
    no script, no external address. "" when no value is a number."""
    pts = [(i, float(v)) for i, v in enumerate(values) if isinstance(v, (int, float)) and not isinstance(v, bool)
           and math.isfinite(float(v))]
    if not pts:
        return ""
    n = max(len(values) - 1, 1)
    lo, hi = min(v for _, v in pts), max(v for _, v in pts)
    span = (hi - lo) or 1.0
    xy = [(2 + (width - 4) * i / n, height - 3 - (height - 6) * ((v - lo) / span if hi > lo else 0.5)) for i, v in pts]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    lx, ly = xy[-1]
    return (f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="trend over {len(values)} runs"><polyline fill="none" stroke="#2c6fbb" stroke-width="1.5" '
            f'points="{line}"/><circle cx="{lx:.1f}" cy="{ly:.1f}" r="2.5" fill="#1f2a36"/></svg>')


#: Headline figures drawn as trends on the index (label in run.json's headline, or a run.json key).
TRENDS = (("customers", "customers"), ("events", "events"), ("feedback", "feedback"), ("segments", "segments"),
          ("kpi_breaches", "listening posts breached"))


def config_trends(runs: list[dict]) -> list[dict]:
    """Per config (newest run first), its headline figures over all its runs, oldest to newest:
    ``{"config", "runs", "latest", "trends": [{"label", "last", "first", "svg"}]}``."""
    from journey_analysis.formatting import format_value

    by: dict[str, list[dict]] = {}
    for r in sorted(runs, key=lambda r: (r.get("created_at", ""), r.get("run_id", ""))):
        by.setdefault(r.get("config_name", "?"), []).append(r)
    out = []
    for name, rs in by.items():
        trends = []
        for key, label in TRENDS:
            vals = [r.get(key) if key == "kpi_breaches" else (r.get("headline") or {}).get(key) for r in rs]
            if not any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
                continue
            trends.append({"label": label, "first": format_value(vals[0], "n"), "last": format_value(vals[-1], "n"),
                           "svg": sparkline(vals)})
        out.append({"config": name, "runs": len(rs), "latest": rs[-1], "trends": trends})
    return sorted(out, key=lambda t: t["latest"].get("created_at", ""), reverse=True)


def write_index(reports_dir) -> Path:
    """Rewrite ``reports_dir/index.html``: per config, its headline figures over all its runs as small
    trend charts (inline SVG); then every complete run (newest first) with its headline figures, KPI
    breaches and changes against the previous run of its config ("no change" when none is beyond
    noise); and the failed runs."""
    from markupsafe import Markup

    from journey_analysis.runner import atomic_write_text

    reports_dir = Path(reports_dir)
    runs = list_runs(reports_dir)
    from journey_analysis.formatting import local_paths_in

    failed = sorted(_run_metas(reports_dir / "failed", "failure.json"),
                    key=lambda r: r.get("failed_at", ""), reverse=True)
    for f in failed:   # a message may name the machine's files: shown inside the project (or by name)
        f["message"] = local_paths_in(f.get("message", ""))
    labels = [label for _, label in HEADLINES]
    trends = config_trends(runs)
    for t in trends:
        for tr in t["trends"]:
            tr["svg"] = Markup(tr["svg"])
        t["by_label"] = {tr["label"]: tr for tr in t["trends"]}
    trend_labels = [label for _, label in TRENDS if any(label in t["by_label"] for t in trends)]
    page = _env().get_template("index.html.j2").render(
        runs=runs, failed=failed, labels=labels, trends=trends, trend_labels=trend_labels,
        generated=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return atomic_write_text(reports_dir / "index.html", page)


# --------------------------------------------------------------------------------------------------
# sentences and small tables for the notebooks (results in words, built from the numbers)
# --------------------------------------------------------------------------------------------------
def objectives_summary(config) -> dict:
    """What ``objectives.json`` holds: name, journey, title, objective, outcome (+ its good value),
    step column, satisfaction scale, stages with expectations and deliverables, KPIs, channels."""
    return {
        "name": config.name, "journey": config.journey, "title": config.title, "objective": config.objective,
        "outcome": config.outcome, "outcome_good": config.outcome_good, "step": config.step,
        "satisfaction": config.satisfaction.model_dump(),
        "stages": [s.model_dump() for s in config.stages],
        "kpis": [k.model_dump() for k in config.kpis], "channels": list(config.channels),
    }


def stages_table(config) -> pd.DataFrame:
    """The configured stages in order: stage, description, customer expectation, expected dwell (h),
    target satisfaction, deliverables and touchpoints (joined as text)."""
    f = config.stages_frame()
    f["deliverables"] = f["deliverables"].map(", ".join)
    f["touchpoints"] = f["touchpoints"].map(", ".join)
    cols = ["stage_order", "stage", "description", "expectation", "expected_max_duration_h", "target_satisfaction",
            "deliverables", "touchpoints"]
    return f[cols]


def kpi_table(config) -> pd.DataFrame:
    """The configured listening posts: label, stage, metric, min, max (empty frame when none)."""
    return pd.DataFrame([k.model_dump() for k in config.kpis], columns=["label", "stage", "metric", "min", "max"])


def objectives_markdown(config) -> str:
    """Two or three sentences stating the journey, the objective, the outcome and the stages."""
    good = {False: "false", True: "true"}.get(config.outcome_good, config.outcome_good)
    outcome = (f"Success is measured on the customers' **{config.outcome}** column (the good value is "
               f"`{good}`)." if config.outcome else "No outcome column is configured, so drivers cannot be "
                                                    "ranked against an outcome.")
    n_exp = sum(bool(s.expectation) for s in config.stages)
    n_dur = sum(s.expected_max_duration_h is not None for s in config.stages)
    return (f"This map follows the **{config.journey}** journey ({config.title or config.name}). "
            f"Objective: *{config.objective}*. {outcome} The journey is outlined in "
            f"**{len(config.stages)} stages** ({' → '.join(config.stage_names)}); {n_exp} carry a customer "
            f"expectation in words and {n_dur} an expected maximum duration, and {len(config.kpis)} "
            f"listening post{'s' if len(config.kpis) != 1 else ''} (KPIs) will be checked on every run.")


#: What a run without customers or feedback cannot do, in the words the notebooks and the report use.
NO_FEEDBACK = "No feedback: no sentiment, satisfaction, themes or quotes."
NO_RATINGS = ("Feedback without ratings: no satisfaction figures and no model learned from ratings "
              "(sentiment comes from the words alone).")
NO_CUSTOMERS = "No customer attributes: segments from behaviour only."
NO_EVENTS = ("No event log: the stages, touchpoints, channels, time in stage, the journey map, pain points, "
             "expectation gaps and stage drivers need events and were not computed; what this run shows comes "
             "from the customer table and the feedback alone.")
NO_OUTCOME = "No outcome column: no moments of truth (driver analysis needs an outcome)."


def limitations(config, customers: pd.DataFrame | None, feedback: pd.DataFrame | None,
                segmentation_note: str | None = None) -> list[str]:
    """Plain sentences saying what this run could not do and why, one per missing input:
    no feedback (:data:`NO_FEEDBACK`), feedback without a rating of the declared scale (:data:`NO_RATINGS`),
    no customers file (:data:`NO_CUSTOMERS`), no outcome (:data:`NO_OUTCOME`; no ``outcome:`` in the config,
    or no customers file to read it from), plus ``segmentation_note`` (e.g. segmentation skipped) when given.
    No event log in the config (customers or feedback only) adds :data:`NO_EVENTS` first.
    Empty list: nothing is missing."""
    out = []
    data = getattr(config, "data", None)
    if data is not None and getattr(data, "events", "") is None:
        out.append(NO_EVENTS)
    if feedback is None or not len(feedback):
        out.append(NO_FEEDBACK)
    else:
        rt = getattr(getattr(config, "satisfaction", None), "rating_type", None)
        rated = feedback["rating"].notna() if "rating" in feedback.columns else pd.Series(False, index=feedback.index)
        if rt and "rating_type" in feedback.columns:
            rated &= feedback["rating_type"].astype("string").str.lower().eq(rt).fillna(False)
        if not rated.any():
            out.append(NO_RATINGS)
    if customers is None:
        out.append("No customer attributes." if segmentation_note else NO_CUSTOMERS)
    if not getattr(config, "outcome", None):
        out.append(NO_OUTCOME)
    elif customers is None:
        out.append(f"No customers file, so no outcome column {config.outcome!r}: no moments of truth "
                   "(driver analysis needs an outcome).")
    if segmentation_note:
        out.append(segmentation_note)
    return out


def limitations_markdown(items: list[str]) -> str:
    """The :func:`limitations` as a short markdown list under a heading sentence ("" when none)."""
    if not items:
        return "Every input was given: customers, feedback with ratings, and an outcome."
    return "**What this run could not do, and why:**\n\n" + "\n".join(f"- {t}" for t in items)


def data_markdown(events: pd.DataFrame, customers: pd.DataFrame | None, feedback: pd.DataFrame | None,
                  quality: pd.DataFrame | None = None) -> str:
    """Sentences describing the gathered data: events, customers, period, feedback, doubtful rows; a run
    without a customers file or feedback says so (:data:`NO_CUSTOMERS`, :data:`NO_FEEDBACK`)."""
    from journey_analysis.steps import overview

    o = overview(events, "stage")
    n_cust, n_events, first, last = o["customers"], o["events"], o["first"], o["last"]
    per = n_events / max(n_cust, 1)
    if n_events:
        parts = [f"We have **{n_events:,} events** from **{n_cust:,} customers** "
                 f"({per:.1f} per customer) between {first:%d %b %Y} and {last:%d %b %Y}."]
    else:
        parts = [f"**{NO_EVENTS}**"]
    if customers is not None:
        parts.append(f"The customer file holds {len(customers):,} customers.")
    else:
        parts.append(f"**{NO_CUSTOMERS}**")
    if feedback is None:
        parts.append(f"**{NO_FEEDBACK}**")
    elif not len(feedback):
        parts.append("The feedback file has no rows: no sentiment, satisfaction, themes or quotes.")
    if feedback is not None and len(feedback):
        has_text = int((feedback["text"].fillna("").str.strip().str.len() > 0).sum())
        rated = int(feedback["rating"].notna().sum()) if "rating" in feedback.columns else 0
        parts.append(f"Customers left **{len(feedback):,} pieces of feedback**: {has_text:,} with words and "
                     f"{rated:,} with a rating.")
    if quality is not None and len(quality):
        warn = quality[quality["severity"] == "warning"]
        if len(warn):
            top = warn.sort_values("rows", ascending=False).iloc[0]
            parts.append(f"{int(warn['rows'].sum()):,} rows were doubtful (most often: "
                         f"{top['check'].replace('_', ' ')}, {int(top['rows']):,} rows); the table below says "
                         f"what was done with each.")
        else:
            parts.append("No doubtful rows were found.")
    return " ".join(parts)


def touchpoints_table(events: pd.DataFrame, stages, column: str = "channel", step: str = "stage") -> pd.DataFrame:
    """Events per stage (rows, configured order) and ``column`` (channel or touchpoint), with each
    stage's share of customers (``share_customers`` = distinct customers at the stage / all customers)."""
    from journey_analysis.steps import count_by, overview

    if column not in events.columns:
        column = step
    counts = count_by(events, [step] if column == step else [step, column])
    level = counts[column].astype(object).where(counts[column].notna(), "(missing)")
    t = pd.crosstab(counts[step], level, values=counts["n"], aggfunc="sum").fillna(0).astype("int64")
    t = t.reindex([s for s in stages if s in t.index] + [s for s in t.index if s not in stages])
    reach = count_by(events, [step], distinct="customer_id").set_index(step)["n"]
    t["share_customers"] = (reach / overview(events, step)["customers"]).round(3)
    return t


def voice_markdown(feedback: pd.DataFrame | None) -> str:
    """Sentences on the scored feedback: how many scored, the share negative, the most negative stage."""
    if feedback is None:
        return NO_FEEDBACK
    if not len(feedback) or "sentiment" not in feedback.columns:
        return "There is no feedback text to score in this data."
    from journey_analysis.sentiment import language_sentence

    scored = feedback[feedback["sentiment_status"] == "scored"]
    languages = language_sentence(feedback)
    if scored.empty:
        return f"None of the {len(feedback):,} pieces of feedback had text we could score. {languages}".strip()
    neg = float((scored["sentiment"] < -0.05).mean())
    by = scored.groupby("stage")["sentiment"].agg(["mean", "count"])
    by = by[by["count"] >= 5]
    worst = (f" The most negative stage is **{by['mean'].idxmin()}** (mean sentiment {by['mean'].min():+.2f} over "
             f"{int(by.loc[by['mean'].idxmin(), 'count']):,} comments)." if len(by) else "")
    return (f"{len(scored):,} of {len(feedback):,} pieces of feedback were scored; {neg:.0%} read negative "
            f"(score below -0.05)." + worst + (f" {languages}" if languages else ""))


def sentiment_by_stage(feedback: pd.DataFrame, stages, rating_type: str | None = None) -> pd.DataFrame:
    """Per stage (configured order): ``comments`` (scored texts), ``sentiment_mean``, ``share_negative``
    (score < -0.05), then for each rating scale in the feedback (``rating_type``: csat 1-5, nps 0-10,
    ces 1-7, stars 1-5) ``<scale>_mean`` and ``<scale>_n``: every mean is of ratings of one scale, never
    of several scales together. The declared ``rating_type`` comes first; feedback without a
    ``rating_type`` column is read as of the declared scale. No feedback (None): an empty table."""
    if feedback is None or "sentiment_status" not in feedback.columns:
        return pd.DataFrame(columns=["comments", "sentiment_mean", "share_negative"],
                            index=pd.Index([], name="stage"))
    scored = feedback[feedback["sentiment_status"] == "scored"]
    out = scored.groupby("stage").agg(comments=("sentiment", "size"), sentiment_mean=("sentiment", "mean"),
                                      share_negative=("sentiment", lambda s: float((s < -0.05).mean())))
    if "rating" in feedback.columns:
        rated = feedback[feedback["rating"].notna() & feedback["stage"].notna()]
        if "rating_type" in rated.columns:
            scale = rated["rating_type"].astype("string").str.lower().fillna(rating_type or "rating")
        else:
            scale = pd.Series(rating_type or "rating", index=rated.index)
        by = rated.assign(scale=scale.to_numpy()).groupby(["stage", "scale"])["rating"].agg(["mean", "count"])
        wide = by.unstack("scale")
        scales = sorted(wide.columns.get_level_values("scale").unique(), key=lambda t: (t != rating_type, t))
        for t in scales:
            out[f"{t}_mean"] = wide[("mean", t)]
            out[f"{t}_n"] = wide[("count", t)].astype("Int64")
    order = [s for s in stages if s in out.index] + [s for s in out.index if s not in stages]
    return out.reindex(order)


def voice_model_report(voice_model, feedback: pd.DataFrame | None):
    """What notebook 02 shows about learning from ratings: the model's cross-validated figures
    (``voice_model.cv_report``), or a sentence saying why there is none (no feedback, no ratings, too few)."""
    if voice_model is not None:
        return voice_model.cv_report
    if feedback is None:
        return NO_FEEDBACK
    if "rating" not in feedback.columns or not feedback["rating"].notna().any():
        return "The feedback has no ratings to learn from: lexicon only."
    return "Too few rated comments to learn from: lexicon only."


def segments_frame(segmentation) -> pd.DataFrame | None:
    """The ``segments.parquet`` table of a fitted segmentation: customer_id (str), segment (int, 0 =
    largest) and segment_name; None when segmentation was skipped (``segmentation=None``)."""
    if segmentation is None:
        return None
    labels = segmentation.labels
    names = getattr(segmentation, "names", {}) or {}
    out = pd.DataFrame({"customer_id": labels.index.astype(str), "segment": labels.to_numpy().astype("int64")})
    out["segment_name"] = out["segment"].map(names).fillna("Segment " + out["segment"].astype(str))
    return out


def segments_markdown(segmentation, note: str | None = None) -> str:
    """Sentences on a fitted segmentation: k and how it was chosen, sizes and names, stability; when
    segmentation was skipped (``segmentation=None``), ``note`` (the reason from
    :func:`journey_analysis.segment.try_segment_customers`)."""
    if segmentation is None:
        return note or "Segmentation skipped: one map for all customers."
    sizes = pd.Series(segmentation.labels).value_counts().sort_index()
    names = getattr(segmentation, "names", {}) or {}
    total = int(sizes.sum())
    listing = "; ".join(f"**{names.get(k, f'Segment {k}')}** ({v / total:.0%})" for k, v in sizes.items())
    how = ("chosen from the data (the largest silhouette between "
           f"{segmentation.k_range[0]} and {segmentation.k_range[1]})" if segmentation.k_param == "auto"
           else "fixed in the configuration")
    ari = getattr(segmentation, "stability_ari", None)
    stab = ""
    if ari is not None and not pd.isna(ari):
        word = "very stable" if ari >= 0.9 else "fairly stable" if ari >= 0.7 else "not stable"
        stab = (f" Refitting on bootstrap samples gives an adjusted Rand index of {ari:.2f}: the segments are "
                f"{word}{'' if ari >= 0.7 else '; treat them as a rough grouping'}.")
    return (f"The {total:,} customers fall into **{segmentation.k} segments**, a number {how}: {listing}."
            + stab)


def _h(hours: float) -> str:
    if hours is None or pd.isna(hours):
        return "–"
    return f"{hours * 60:.0f} min" if hours < 1 else f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def map_markdown(journey_map: pd.DataFrame, segment: str = OVERALL) -> str:
    """Sentences read off one segment's journey map (configured stages): where sentiment is lowest,
    where the wait is furthest over its expectation, where most customers drop off, and how much of the
    map rests on thin evidence (``low_confidence``)."""
    m = journey_map[journey_map["segment"].astype(str) == segment] if "segment" in journey_map else journey_map
    if "configured" in m.columns and m["configured"].any():
        m = m[m["configured"]]
    m = m[m["customers"] > 0]
    if m.empty:
        return f"No customer of {segment} reached a configured stage."
    parts = [f"For **{segment}** the map covers {len(m)} stages reached by customers."]
    s = m.dropna(subset=["sentiment_mean"])
    if len(s):
        w = s.loc[s["sentiment_mean"].idxmin()]
        parts.append(f"Feelings are lowest at **{w['stage']}** (mean sentiment {w['sentiment_mean']:+.2f}, "
                     f"{w.get('sentiment_share_negative', float('nan')):.0%} of comments negative).")
    if "duration_ratio" in m.columns and m["duration_ratio"].notna().any():
        d = m.loc[m["duration_ratio"].idxmax()]
        verdict = "over" if d["duration_ratio"] > 1 else "within"
        took = d["stage_time_median_h"] if "stage_time_median_h" in d.index else d["dwell_median_h"]
        parts.append(f"The time in a stage furthest from its expectation is at **{d['stage']}**: median {_h(took)} per visit "
                     f"against an expected maximum of {_h(d['expected_max_duration_h'])} ({verdict}).")
    if "drop_off" in m.columns and m["drop_off"].notna().any() and m["drop_off"].max() > 0:
        o = m.loc[m["drop_off"].idxmax()]
        parts.append(f"The largest drop-off is at **{o['stage']}**: {o['drop_off']:.0%} of those who reach it stop there "
                     "before the journey's end and stay away.")
    if "feedback_n" in m.columns and not m["feedback_n"].fillna(0).astype(float).any():
        parts.append("No feedback reached the map: no sentiment, satisfaction, themes or quotes; the map "
                     "shows behaviour only (the `missing` column says what is missing at each stage).")
    if "low_confidence" in m.columns:
        n_low = int(m["low_confidence"].sum())
        parts.append(f"{n_low} of {len(m)} stages rest on thin evidence (fewer than 30 observations somewhere)."
                     if n_low else "Every stage has at least 30 observations behind its figures.")
    return " ".join(parts)


def validation_table(journey_map: pd.DataFrame) -> pd.DataFrame:
    """Rows of the map (every segment) a person should check before trusting it: the map's ``needs_review``
    rows (see ``journey_map._review``: unconfigured stages many reach, stages no one reached, gaps on thin
    evidence), else (older maps) low confidence or something missing. Columns: segment, stage, customers,
    feedback_n, review_reasons (or low_confidence_reasons), missing."""
    if "needs_review" in journey_map.columns:
        cols = [c for c in ("segment", "stage", "customers", "feedback_n", "review_reasons", "missing")
                if c in journey_map.columns]
        return journey_map.loc[journey_map["needs_review"].astype(bool), cols].reset_index(drop=True)
    cols = [c for c in ("segment", "stage", "customers", "feedback_n", "low_confidence_reasons", "missing")
            if c in journey_map.columns]
    flag = pd.Series(False, index=journey_map.index)
    if "low_confidence" in journey_map.columns:
        flag |= journey_map["low_confidence"].astype(bool)
    if "missing" in journey_map.columns:
        flag |= journey_map["missing"].fillna("").astype(str).str.len() > 0
    return journey_map.loc[flag, cols].reset_index(drop=True)


def findings(pain: pd.DataFrame, drivers: pd.DataFrame | None, gaps: pd.DataFrame | None,
             recs: pd.DataFrame | None, kpis: pd.DataFrame | None = None, limitations: list[str] | None = None) -> dict:
    """The headline figures of an analysis (``findings.json``):

    ``top_pain_point`` (stage ranked 1 by ``pain_points``) and its ``top_pain_score``; ``top_driver``
    ("stage: measure" of the best-ranked *significant* experience driver from ``moments_of_truth``, None
    when none is significant) with ``top_driver_stage`` and ``top_driver_sentence``;
    ``n_significant_drivers``; ``n_gaps_flagged`` (expectation gaps flagged); ``top_recommendation``
    (sentence of the rank-1 recommendation); ``n_recommendations``; ``n_kpi_breaches``;
    ``no_drivers_reason`` (why there is no driver analysis, from ``drivers.attrs["reason"]`` of
    ``moments_of_truth``; None when it ran); ``limitations`` (the sentences of :func:`limitations`, when given).
    """
    out: dict = {}
    p = pain.sort_values("rank") if len(pain) else pain
    out["top_pain_point"] = str(p.iloc[0]["stage"]) if len(p) else None
    out["top_pain_score"] = float(p.iloc[0]["pain_score"]) if len(p) else None
    out["pain_ranking"] = p["stage"].astype(str).tolist() if len(p) else []
    out["no_drivers_reason"] = (drivers.attrs.get("reason") if drivers is not None else
                                "No driver analysis was run.")
    d = pd.DataFrame() if drivers is None or drivers.empty else drivers
    if len(d):
        d = d[(d["role"] == "driver") & d["significant"].astype(bool)].sort_values("rank")
    out["n_significant_drivers"] = int(len(d))
    out["top_driver"] = ((str(d.iloc[0]["driver"]) if "driver" in d.columns else
                          f"{d.iloc[0]['stage']}: {d.iloc[0]['measure']}") if len(d) else None)
    out["top_driver_stage"] = (str(d.iloc[0]["stage"]) if pd.notna(d.iloc[0]["stage"]) else None) if len(d) else None
    out["top_driver_sentence"] = str(d.iloc[0]["sentence"]) if len(d) else None
    out["n_gaps_flagged"] = int(gaps["flagged"].astype(bool).sum()) if gaps is not None and len(gaps) else 0
    r = recs.sort_values("rank") if recs is not None and len(recs) else None
    out["top_recommendation"] = str(r.iloc[0]["sentence"]) if r is not None else None
    out["n_recommendations"] = int(len(recs)) if recs is not None else 0
    out["n_kpi_breaches"] = int((kpis["status"] == "breach").sum()) if kpis is not None and len(kpis) else 0
    out["limitations"] = list(limitations or [])
    return out


def findings_markdown(f: dict) -> str:
    """The findings as a short paragraph (pain point, moment of truth, first recommendation)."""
    parts = []
    if f.get("top_pain_point"):
        parts.append(f"The biggest pain point is **{f['top_pain_point']}** (pain score {f['top_pain_score']:.2f}).")
    if f.get("top_driver"):
        parts.append(f"The moment of truth, the experience that moves the outcome most, is **{f['top_driver']}**: "
                     f"{f['top_driver_sentence']}")
    elif f.get("no_drivers_reason"):
        parts.append(f["no_drivers_reason"])
    else:
        parts.append("No stage's experience is clearly linked to the outcome (no driver's interval excludes zero).")
    if f.get("top_recommendation"):
        parts.append(f"First recommendation: {f['top_recommendation']}")
    text = " ".join(parts)
    if f.get("limitations"):
        text += "\n\n" + limitations_markdown(f["limitations"])
    return text
