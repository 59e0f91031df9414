"""The ``journey`` command: demo data, data validation, pipeline runs, student copies.

Exit codes: 0 success; 1 bad input or a failed run (the message says what to do); 2 wrong usage
of the command itself. Bad input never shows a traceback unless ``--debug`` is given.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from journey_analysis.errors import JourneyError

EXIT_OK, EXIT_BAD_INPUT, EXIT_USAGE = 0, 1, 2

_DESCRIPTION = """\
Customer journey mapping, reproducibly: from raw touchpoint events, customer records and feedback
to a journey map per segment, its pain points, moments of truth and what to fix first.

Typical use:
  journey demo-data --out data/raw/demo        write the seeded demo data set
  journey init --events FILE --out configs/my.yaml  draft a config from your own files
  journey validate --config configs/demo.yaml  check the data before a run
  journey run --config configs/demo.yaml       run the five notebooks, write reports/<run-id>/
"""

_EPILOG = "Exit codes: 0 ok, 1 bad input or failed run, 2 wrong usage. Add --debug for tracebacks."


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="journey", description=_DESCRIPTION, epilog=_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser("demo-data", help="write the seeded demo data set (broadband company, planted truths)",
                       description="Write events, customers, feedback and truth.json for a fictional broadband "
                                   "company. The same seed gives byte-identical files.")
    d.add_argument("--out", required=True, type=Path, help="folder to write into (created if missing)")
    d.add_argument("--customers", type=int, default=5000, help="number of customers (default 5000)")
    d.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    d.add_argument("--journey", choices=("renewal", "complaint"), default="renewal",
                   help="renewal: the worked example (default); complaint: the practice journey "
                        "(configs/complaint.yaml, data/raw/complaint)")
    d.add_argument("--period", type=int, default=0,
                   help="renewal only: 0 the extract year (default), 1 a year later (the living map)")

    v = sub.add_parser("validate", help="check the data named in a config and print a data-quality summary",
                       description="Load and check the events, customers and feedback named in a config, "
                                   "with every check a run depends on (KPI metric names, segmentation "
                                   "features and population). "
                                   "Exit 0 when the data is usable, 1 when it is not (or, with --strict, "
                                   "when doubtful rows were found).")
    v.add_argument("--config", required=True, type=Path, help="run configuration (YAML)")
    v.add_argument("--strict", action="store_true", help="exit 1 when any doubtful rows are found")

    r = sub.add_parser("run", help="run the five notebooks with papermill and write the report",
                       description="Run 01_define_objectives .. 05_analyze on a config into "
                                   "reports/<run-id>/ (atomic: a failed run leaves the last good report).")
    r.add_argument("--config", required=True, type=Path, help="run configuration (YAML)")
    r.add_argument("--run-id", default=None, help="run id (default: <config name>-<UTC time>)")
    r.add_argument("--reports", type=Path, default=None, help="reports folder (default: reports/)")
    r.add_argument("--processed", type=Path, default=None, help="artifacts folder (default: data/processed/)")
    r.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="extra notebook parameter (repeatable), e.g. --param n_customers=500")
    r.add_argument("--no-progress", action="store_true", help="no progress bars (for cron logs)")

    i = sub.add_parser("init", help="draft a config from your data files (columns, stages, scales detected)",
                       description="Read the files, detect the roles of their columns (key, timestamps, stage, "
                                   "channel, milestones of a wide table, rating and its scale, text, outcome "
                                   "candidates) and write a config that validates and runs as written. Then "
                                   "write the objective and the expectations.")
    i.add_argument("--events", type=Path, default=None, help="events: long (one row per interaction) or wide "
                                                             "(one row per order/case, a timestamp per milestone)")
    i.add_argument("--customers", type=Path, default=None, help="customers: one row per customer (attributes, outcome)")
    i.add_argument("--feedback", type=Path, default=None, help="feedback: surveys, reviews, comments")
    i.add_argument("--out", type=Path, required=True, help="the config to write, e.g. configs/my_journey.yaml")
    i.add_argument("--name", default=None, help="config name (default: the file name of --out)")
    i.add_argument("--force", action="store_true", help="overwrite --out if it exists")

    s = sub.add_parser("student", help="write copies of the notebooks without solution cells",
                       description="Copy notebooks/*.ipynb to OUT, removing cells tagged 'solution'.")
    s.add_argument("--out", type=Path, required=True, help="folder for the student copies")
    s.add_argument("--run-id", default=None,
                   help="the student's run id (default: student-<user name>); it also sets their data sample")
    return p


def _version() -> str:
    from journey_analysis import __version__

    return f"journey-analysis {__version__}"


def _demo_data(args) -> int:
    from journey_analysis.datasets import write_demo

    paths = write_demo(args.out, n_customers=args.customers, seed=args.seed, period=args.period,
                       journey=args.journey)
    for name, path in paths.items():
        print(f"{name:>10}: {path}")
    return EXIT_OK


def _validate(args) -> int:
    from journey_analysis.config import load_config
    from journey_analysis.sources import gather, quality_summary

    from journey_analysis.metrics import validate_kpis

    config = load_config(args.config)
    g = gather(config)
    validate_kpis(config)
    from journey_analysis.segment import customer_features

    customer_features(g.events, g.customers, g.feedback, config=config)  # segmentation settings the run uses
    summary = quality_summary(g)
    print(f"Data for '{config.name}' ({config.title or config.journey}):")
    for n in g.sources:
        how = "; ".join(f"{k}: {v}" for k, v in n.items() if k not in ("kind", "file", "rows"))
        rows = "" if n.get("rows") is None else f", {n['rows']:,} rows read"
        print(f"  {n['kind']:<9} {Path(n['file']).name}{rows}{' (' + how + ')' if how else ''}")
    for fig, val in summary.itertuples(index=False):
        print(f"  {fig:<40} {val}")
    q = g.quality
    from journey_analysis.text import language_quality_sample

    lq = language_quality_sample(g.feedback)  # what the run's quality table will say about languages
    if len(lq):
        print(f"\nLanguages of the comments (a seeded sample of {lq.attrs['sampled']:,} of {lq.attrs['with_text']:,} "
              "with text; the run identifies every comment):")
        for e in lq.itertuples(index=False):
            where = f" (rows {e.first_rows}{', ...' if e.rows > 5 else ''})" if e.first_rows else ""
            print(f"  - {e.rows:,} {e.check.replace('_', ' ')}{' [' + e.detail + ']' if e.detail else ''}{where}")
    if len(q):
        print("\nDoubtful rows and what was done with them:")
        for e in q.itertuples(index=False):
            where = f" (rows {e.first_rows}{', ...' if e.rows > 5 else ''})" if e.first_rows else ""
            detail = f" [{e.detail}]" if e.detail else ""
            print(f"  - {Path(e.file).name}: {e.rows:,} {e.check.replace('_', ' ')}{detail}{where}: {e.rule}")
    doubtful = g.log.warnings
    if args.strict and doubtful:
        print(f"\nNot clean: {doubtful:,} doubtful row(s) (--strict).", file=sys.stderr)
        return EXIT_BAD_INPUT
    print("\nUsable." + (f" {doubtful:,} doubtful row(s) handled as described above." if doubtful else ""))
    return EXIT_OK


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _run(args) -> int:
    import signal

    from journey_analysis.runner import run_pipeline

    signal.signal(signal.SIGTERM, _interrupt)  # a killed scheduled run cleans up like Ctrl-C

    params = {}
    for item in args.param:
        if "=" not in item:
            raise JourneyError(f"--param expects KEY=VALUE, got {item!r}.", fix="For example --param n_customers=500.")
        key, value = item.split("=", 1)
        import yaml

        params[key] = yaml.safe_load(value)
    result = run_pipeline(args.config, run_id=args.run_id, reports_dir=args.reports,
                          processed_dir=args.processed, extra_parameters=params,
                          progress=not args.no_progress)
    print(f"Report: {result.report}")
    return EXIT_OK


def _init(args) -> int:
    from journey_analysis.draft import write_draft

    if not (args.events or args.customers or args.feedback):
        print("journey init: give at least one of --events, --customers, --feedback", file=sys.stderr)
        return EXIT_USAGE
    path = write_draft(args.out, args.events, args.customers, args.feedback, name=args.name, force=args.force)
    print(f"Drafted {path}. Next: read it, write the objective and expectations, then\n"
          f"  journey validate --config {path}\n  journey run --config {path}")
    return EXIT_OK


def _student(args) -> int:
    from journey_analysis.runner import write_student_notebooks

    for path in write_student_notebooks(args.out, run_id=args.run_id):
        print(path)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``journey`` console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    handler = {"demo-data": _demo_data, "validate": _validate, "run": _run, "init": _init,
               "student": _student}[args.command]
    try:
        return handler(args)
    except JourneyError as exc:
        if args.debug:
            raise
        print(f"journey {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected failure: one line, and how to see more
        if args.debug:
            raise
        print(f"journey {args.command}: unexpected error: {type(exc).__name__}: {exc}\n"
              "  Run again with --debug for the traceback, and please report it.", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
