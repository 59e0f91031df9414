"""Benchmark: step statistics on BPIC-2012 replicated x1, x10, x100 (new customer ids per copy).

Per size, end to end (read CSV + step statistics + transitions + variants), each in its own
subprocess so peak memory (max RSS) is that run's alone:

* ours:  journey_analysis.eventlog.read_csv_log (pyarrow engine) + steps.step_stats +
         steps.transitions + steps.variants (this project's venv);
* pm4py: the same read, pm4py.format_dataframe, activity counts + start/end activities + rework
         per activity (the step table), discover_performance_dfg (transitions with times),
         get_variants; run with the benchmark venv (`.venv-bench`, pm4py is AGPL and never a
         runtime dependency);
* naive: the same read, sort, then groupby(customer).apply of a Python function per customer.

Prints one line per measurement: what, events, seconds (median of --repeat runs), peer seconds,
ratio peer/ours, events per second, peak RSS. Replicated CSVs are written once to --workdir.

    .venv/bin/python benchmarks/bench_steps.py --sizes 1,10,100 [--repeat 3] [--no-peer-above 10]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT.parent / "shared" / "data" / "eventlogs" / "bpic2012.csv.gz"
BENCH_PY = ROOT / ".venv-bench" / "bin" / "python"
COLUMNS = ["case_id", "activity", "timestamp"]
# all_three: ours = steps.step_tables (one sort for the three tables); total = read + all_three;
# total_separate = read + the three functions called one by one
PARTS = ("read", "step_stats", "transitions", "variants", "all_three", "total", "total_separate")


def make_csv(k: int, workdir: Path) -> Path:
    """BPIC-2012 (case_id, activity, timestamp) replicated k times, copy r with ids '<id>_r'."""
    import pandas as pd

    out = workdir / f"bpic2012_x{k}.csv"
    if out.exists():
        return out
    base = pd.read_csv(BASE, dtype=str, keep_default_na=False, usecols=COLUMNS)[COLUMNS]
    rest = ("," + base["activity"].map(lambda a: f'"{a}"' if "," in a else a) + "," + base["timestamp"])
    tmp = out.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(",".join(COLUMNS) + "\n")
        for r in range(k):  # one vectorised block per copy
            fh.write("\n".join(base["case_id"] + f"_{r}" + rest) + "\n")
    tmp.replace(out)
    return out


# ------------------------------------------------------------------------------------------
# The three contenders, each run as `python bench_steps.py --run <who> <csv>` in a subprocess
# ------------------------------------------------------------------------------------------
def run_ours(path: str) -> dict:
    sys.path.insert(0, str(ROOT))
    from journey_analysis import steps as S
    from journey_analysis.eventlog import read_csv_log

    t0 = time.perf_counter()
    ev = read_csv_log(path, engine="pyarrow")
    t1 = time.perf_counter()
    tables = S.step_tables(ev, step="activity")  # the three tables from one sort
    t2 = time.perf_counter()
    st = S.step_stats(ev, step="activity")  # and each on its own
    t3 = time.perf_counter()
    tr = S.transitions(ev, step="activity")
    t4 = time.perf_counter()
    va = S.variants(ev, step="activity")
    t5 = time.perf_counter()
    return {"events": len(ev), "read": t1 - t0, "step_stats": t3 - t2, "transitions": t4 - t3,
            "variants": t5 - t4, "all_three": t2 - t1, "total": (t1 - t0) + (t2 - t1),
            "total_separate": (t1 - t0) + (t5 - t2),
            "check": [len(st), len(tr), len(va), len(tables["variants"])]}


def run_pm4py(path: str) -> dict:
    import pandas as pd
    import pm4py

    t0 = time.perf_counter()
    if os.environ.get("BENCH_PEER_READ") == "arrow":  # helped: timestamps parsed by pyarrow
        df = pd.read_csv(path, dtype={"case_id": str}, keep_default_na=False, engine="pyarrow")
    else:  # pm4py's documented way: pandas reads, format_dataframe parses and sorts
        df = pd.read_csv(path, dtype={"case_id": str}, keep_default_na=False)
    df = pm4py.format_dataframe(df, case_id="case_id", activity_key="activity",
                                timestamp_key="timestamp")
    t1 = time.perf_counter()
    acts = pm4py.get_event_attribute_values(df, "concept:name")
    starts = pm4py.get_start_activities(df)
    ends = pm4py.get_end_activities(df)
    rework = pm4py.get_rework_cases_per_activity(df)
    t2 = time.perf_counter()
    dfg, _, _ = pm4py.discover_dfg(df)
    perf, _, _ = pm4py.discover_performance_dfg(df)
    t3 = time.perf_counter()
    var = pm4py.get_variants(df)
    t4 = time.perf_counter()
    return {"events": len(df), "read": t1 - t0, "step_stats": t2 - t1, "transitions": t3 - t2,
            "variants": t4 - t3, "all_three": t4 - t1, "total": t4 - t0, "total_separate": t4 - t0,
            "check": [len(acts), len(perf), len(var), len(starts), len(ends), len(rework), len(dfg)]}


def run_naive(path: str) -> dict:
    import numpy as np
    import pandas as pd

    t0 = time.perf_counter()
    df = pd.read_csv(path, dtype={"case_id": str}, keep_default_na=False, engine="pyarrow")
    df["row_id"] = np.arange(len(df))
    df = df.sort_values(["case_id", "timestamp", "row_id"], kind="stable")
    t1 = time.perf_counter()

    def per_customer(g):  # what a first attempt looks like: a Python function per customer
        acts = g["activity"].tolist()
        dt = g["timestamp"].diff().dt.total_seconds().shift(-1)
        return pd.Series({"path": " -> ".join(acts), "pairs": list(zip(acts[:-1], acts[1:])),
                          "dwell": dt.tolist()[:-1], "acts": acts})

    per = df.groupby("case_id", sort=False).apply(per_customer)
    t2 = time.perf_counter()
    pairs = per.explode(["pairs", "dwell"]).dropna(subset=["pairs"])
    tr = pairs.groupby("pairs")["dwell"].agg(["count", "mean", "median", "min", "max", "std", "sum"])
    acts = per["acts"].explode().value_counts()
    t3 = time.perf_counter()
    var = per["path"].value_counts()
    t4 = time.perf_counter()
    return {"events": len(df), "read": t1 - t0, "step_stats": t2 - t1, "transitions": t3 - t2,
            "variants": t4 - t3, "all_three": t4 - t1, "total": t4 - t0, "total_separate": t4 - t0,
            "check": [len(acts), len(tr), len(var)]}


def _child(who: str, path: str):
    import resource

    res = {"ours": run_ours, "pm4py": run_pm4py, "naive": run_naive}[who](path)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(res))


def measure(who: str, path: Path, timeout: float) -> dict | None:
    py = str(BENCH_PY) if who == "pm4py" else sys.executable
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    try:
        p = subprocess.run([py, __file__, "--run", who, str(path)], capture_output=True, text=True,
                           timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"timeout": timeout}
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{who} failed:\n{p.stderr[-3000:]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1,10,100")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (median reported)")
    ap.add_argument("--workdir", default="/tmp/bench_steps")
    ap.add_argument("--no-peer-above", type=int, default=10,
                    help="skip pm4py above this replication factor (it takes minutes)")
    ap.add_argument("--no-naive-above", type=int, default=1,
                    help="skip the groupby-apply above this factor (x1 already takes ~1 min)")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--peer-read", choices=("pandas", "arrow"), default="pandas",
                    help="pm4py's read: pandas (its documented way, default) or pyarrow engine")
    ap.add_argument("--run", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.run:
        _child(*a.run)
        return
    os.environ["BENCH_PEER_READ"] = a.peer_read
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    have_pm4py = BENCH_PY.exists()
    if not have_pm4py:
        print(f"note: {BENCH_PY} missing: pm4py not measured (python -m venv .venv-bench && "
              ".venv-bench/bin/pip install pandas pyarrow pm4py)")
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} {os.cpu_count()} cores; median of {a.repeat} runs; "
          f"peer = pm4py (read: {a.peer_read}; ratio = pm4py/ours), naive = groupby-apply "
          "(ratio = naive/ours)")
    hdr = f"{'what':34s} {'events':>11s} {'ours_s':>8s} {'peer_s':>8s} {'ratio':>7s} {'events/s':>11s} {'peak_MB':>8s}"
    print(hdr)
    for k in (int(s) for s in a.sizes.split(",")):
        t = time.perf_counter()
        path = make_csv(k, work)
        print(f"# x{k}: {path} ready in {time.perf_counter() - t:.1f} s", flush=True)
        ours = [measure("ours", path, a.timeout) for _ in range(a.repeat)]
        med = {key: statistics.median(r[key] for r in ours) for key in
               PARTS}
        n = ours[0]["events"]
        rss = max(r["peak_rss_mb"] for r in ours)
        peers = {}
        for who, limit in (("pm4py", a.no_peer_above), ("naive", a.no_naive_above)):
            if who == "pm4py" and not have_pm4py:
                continue
            if k > limit:
                print(f"# x{k}: {who} skipped (above --no-{'peer' if who == 'pm4py' else 'naive'}-above {limit})")
                continue
            n_runs = 1 if who == "naive" or k > 10 else a.repeat  # naive: a single reference run
            runs = [measure(who, path, a.timeout) for _ in range(n_runs)]
            if any("timeout" in r for r in runs):
                print(f"# x{k}: {who} timed out after {a.timeout:.0f} s")
                continue
            peers[who] = ({key: statistics.median(r[key] for r in runs) for key in med},
                          max(r["peak_rss_mb"] for r in runs))
        for part in PARTS:
            for who, (pm, prss) in peers.items():
                label = f"x{k} {part} vs {who}"
                ratio = pm[part] / med[part] if med[part] > 0 else float("nan")
                print(f"{label:34s} {n:11,d} {med[part]:8.2f} {pm[part]:8.2f} {ratio:7.1f} "
                      f"{n / med[part]:11,.0f} {rss if part == 'total' else float('nan'):8.0f}"
                      + (f"  (peer peak {prss:.0f} MB)" if part == "total" else ""), flush=True)
            if not peers:
                label = f"x{k} {part}"
                print(f"{label:34s} {n:11,d} {med[part]:8.2f} {'-':>8s} {'-':>7s} "
                      f"{n / med[part]:11,.0f} {rss if part == 'total' else float('nan'):8.0f}", flush=True)


if __name__ == "__main__":
    main()
