"""The human-facing outputs of a run: report.html, the run summary and reports/index.html (what the
notebooks display: :mod:`journey_analysis.narrative`; the figures runs are compared on:
:mod:`journey_analysis.metrics`).

This module owns:

* :func:`sanitize_html` / :func:`render_markdown`: every piece of notebook output that goes into a
  report passes a whitelist sanitiser (tables, text formatting, inline PNGs only; every other tag,
  attribute, script, style, link or external address is dropped or shown as text) and text nodes are
  redacted with :func:`journey_analysis.text.redact`. A customer comment ``<script>alert(1)</script>``
  therefore shows as text and an e-mail address as ``[EMAIL]``.
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

import pandas as pd

from journey_analysis.metrics import COMPARED, Z, check_kpis, compare_stage_metrics
from journey_analysis.narrative import limitations

TEMPLATES = Path(__file__).resolve().parent / "templates"

# --------------------------------------------------------------------------------------------------
# safe HTML
# --------------------------------------------------------------------------------------------------
_ALLOWED = {"table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption", "colgroup", "col", "div", "span",
            "p", "br", "hr", "b", "strong", "i", "em", "u", "code", "pre", "ul", "ol", "li", "h1", "h2", "h3",
            "h4", "h5", "h6", "blockquote", "sub", "sup", "small", "del", "s", "img", "a", "dl", "dt", "dd"}
_VOID = {"br", "hr", "img", "col"}
_ATTRS = {"class", "colspan", "rowspan", "align", "title", "alt"}
_DATA_PNG = re.compile(r"^data:image/(png|jpeg|gif);base64,[A-Za-z0-9+/=\s]+$")


_MAYBE_PII = re.compile(r"@|\d|www\.|https?://")


def _redact_text(text: str) -> str:
    if not text or not _MAYBE_PII.search(text):
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
        self.pending: list[tuple[int, str]] = []  # (position in out, text) redacted together in result()

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
        if self.redact and data and _MAYBE_PII.search(data):
            self.pending.append((len(self.out), data))  # redacted in result(), all at once
            self.out.append("")
            return
        self.out.append(html.escape(data, quote=False))

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
        if self.pending:  # one vectorised redact() for every text node of the fragment (the same per text)
            from journey_analysis.text import redact

            done = redact(pd.Series([t for _, t in self.pending], dtype=object))
            for (i, _), t in zip(self.pending, done):
                self.out[i] = html.escape(t, quote=False)
            self.pending = []
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

    Cells tagged with any of ``skip_tags`` (default :data:`journey_analysis.artifacts.REPORT_SKIP_TAGS`:
    parameters, solution, exercise, teaching, remove_cell, hide) are left out; so are recorded values,
    widget views, stderr and errors. Outputs: PNG figures embedded; HTML (tables) and markdown
    sanitised and redacted; plain text escaped. Figures named in ``skip_figures`` (shown elsewhere in the
    report, like the journey map at the top) become a one-line pointer to where they are.
    """
    from journey_analysis.artifacts import RECORD_MIME, REPORT_SKIP_TAGS, read_notebook

    nb = read_notebook(notebook)
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


def _read_frame(path: Path, columns=None) -> pd.DataFrame | None:
    """A parquet artifact (None when missing or unreadable); ``columns``: only those of them it has (the
    rows all the same)."""
    try:
        if not path.exists():
            return None
        if columns is not None:
            import pyarrow.parquet as pq

            have = set(pq.read_schema(path).names)
            columns = [c for c in columns if c in have]
        return pd.read_parquet(path, columns=columns)
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
    from journey_analysis.artifacts import atomic_write_text, read_figures, read_notebook, read_records, save_artifact

    folder, processed = Path(folder), Path(processed)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    records: dict = {}
    figures: dict[str, bytes] = {}
    notebooks = [(Path(p), read_notebook(p)) for p in executed]  # each read (and validated) once
    for _, nb in notebooks:
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
    feedback = _read_frame(processed / "feedback.parquet", columns=["rating", "rating_type"])  # what limitations reads
    metrics = _read_frame(processed / "stage_metrics.parquet")  # 04_map's, computed on the run's engine
    metrics = pd.DataFrame() if metrics is None else metrics
    atomic_write_text(folder / "stage_metrics.json", metrics.to_json(orient="records", indent=2))

    missing = limitations(config, _read_frame(processed / "customers.parquet", columns=[]), feedback,
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
    for nb_path, nb in notebooks:
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

    from journey_analysis.artifacts import atomic_write_text

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


