"""Benchmark: what `journey run` does first (load the events with every check, then step statistics,
transitions and variants) on BPIC-2012 replicated x1, x10, x100 (new customer ids per copy).

The user path measured, each side as a WHOLE PROCESS (interpreter start and imports included; the
parent times the child from spawn to exit, so nothing is left out):

* ours:  ``journey_analysis.gather.load_events(path, duplicates="keep")`` (the loader every run uses:
         the events contract, every check, the quality log; duplicates kept as pm4py keeps them) +
         ``steps.step_tables`` (step statistics, transitions, variants from one sort), this project's venv;
* pm4py: pandas.read_csv + pm4py.format_dataframe + activity counts, start/end activities and rework
         per activity (the step table) + discover_dfg + discover_performance_dfg (transitions with
         times) + get_variants; run with the benchmark venv (`.venv-bench`: pm4py is AGPL and never a
         dependency of the package);
* naive: the same read, sort, then groupby(customer).apply of a Python function per customer.

The file is the whole BPIC-2012 CSV (case_id, activity, timestamp, resource, amount_req, reg_date),
as a user's export would be. Prints one line per measurement: what, events, our seconds (median of
--repeat runs), the peer's, ratio peer/ours, events per second, peak RSS, and the load average
(os.getloadavg, 1 minute) before and after: the machine may be shared, so compare ratios measured in
the same run. The parts inside a process (import, load, tables) are printed as well.

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
if not BASE.exists():  # a git worktree next to the repository: the data sit beside the main checkout
    BASE = Path("/work/shared/data/eventlogs/bpic2012.csv.gz")
BENCH_PY = ROOT / ".venv-bench" / "bin" / "python"
# process: the whole child process (spawn to exit), measured by the parent
PARTS = ("process", "import", "load", "tables")


def make_csv(k: int, workdir: Path) -> Path:
    """The BPIC-2012 CSV (every column) replicated k times, copy r with case ids '<id>_r'."""
    import pandas as pd

    out = workdir / f"bpic2012_full_x{k}.csv"
    if out.exists():
        return out
    base = pd.read_csv(BASE, dtype=str, keep_default_na=False)
    cols = list(base.columns)

    def quoted(s):
        need = s.str.contains('[,"\n]', regex=True)
        return s.where(~need, '"' + s.str.replace('"', '""', regex=False) + '"')

    rest = pd.Series("", index=base.index)
    for c in cols[1:]:
        rest = rest + "," + quoted(base[c])
    tmp = out.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(",".join(cols) + "\n")
        for r in range(k):  # one vectorised block per copy
            fh.write("\n".join(quoted(base[cols[0]]) + f"_{r}" + rest) + "\n")
    tmp.replace(out)
    return out


# ------------------------------------------------------------------------------------------
# The three contenders, each run as `python bench_steps.py --run <who> <csv>` in a subprocess
# ------------------------------------------------------------------------------------------
def run_ours(path: str, t_start: float) -> dict:
    sys.path.insert(0, str(ROOT))
    from journey_analysis import steps as S
    from journey_analysis.gather import load_events
    from journey_analysis.schema import QualityLog

    t0 = time.perf_counter()
    log = QualityLog()
    ev = load_events(path, duplicates="keep", log=log)
    t1 = time.perf_counter()
    tables = S.step_tables(ev, step="stage")  # step statistics, transitions, variants from one sort
    t2 = time.perf_counter()
    return {"events": len(ev), "import": t0 - t_start, "load": t1 - t0, "tables": t2 - t1,
            "check": [len(tables["step_stats"]), len(tables["transitions"]), len(tables["variants"]),
                      len(log.entries)]}


def run_pm4py(path: str, t_start: float) -> dict:
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
    dfg, _, _ = pm4py.discover_dfg(df)
    perf, _, _ = pm4py.discover_performance_dfg(df)
    var = pm4py.get_variants(df)
    t2 = time.perf_counter()
    return {"events": len(df), "import": t0 - t_start, "load": t1 - t0, "tables": t2 - t1,
            "check": [len(acts), len(perf), len(var), len(starts), len(ends), len(rework), len(dfg)]}


def run_naive(path: str, t_start: float) -> dict:
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
    pairs = per.explode(["pairs", "dwell"]).dropna(subset=["pairs"])
    tr = pairs.groupby("pairs")["dwell"].agg(["count", "mean", "median", "min", "max", "std", "sum"])
    acts = per["acts"].explode().value_counts()
    var = per["path"].value_counts()
    t2 = time.perf_counter()
    return {"events": len(df), "import": t0 - t_start, "load": t1 - t0, "tables": t2 - t1,
            "check": [len(acts), len(tr), len(var)]}


def _child(who: str, path: str, t_start: float):
    import resource

    res = {"ours": run_ours, "pm4py": run_pm4py, "naive": run_naive}[who](path, t_start)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(res))


def measure(who: str, path: Path, timeout: float) -> dict | None:
    """One whole child process; 'process' = spawn to exit as the parent sees it, load = 1-min load average."""
    py = str(BENCH_PY) if who == "pm4py" else sys.executable
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    try:
        p = subprocess.run([py, __file__, "--run", who, str(path), repr(time.time())], capture_output=True,
                           text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"timeout": timeout}
    wall = time.perf_counter() - t0
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            res = json.loads(line[7:])
            res.update(process=wall, loadavg=(load0 + os.getloadavg()[0]) / 2)
            return res
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
    ap.add_argument("--run", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.run:
        who, path, spawned = a.run
        # the child's own clock starts at interpreter start: imports are counted from the spawn
        _child(who, path, time.perf_counter() - (time.time() - float(spawned)))
        return
    os.environ["BENCH_PEER_READ"] = a.peer_read
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    have_pm4py = BENCH_PY.exists()
    if not have_pm4py:
        print(f"note: {BENCH_PY} missing: pm4py not measured (make bench-env)")
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          f"median of {a.repeat} runs; ours = gather.load_events (every check) + steps.step_tables; "
          f"peer = pm4py (read: {a.peer_read}; ratio = pm4py/ours), naive = groupby-apply (ratio = naive/ours); "
          "process = the whole process, interpreter start and imports included")
    hdr = (f"{'what':30s} {'events':>11s} {'ours_s':>8s} {'peer_s':>8s} {'ratio':>7s} {'events/s':>11s} "
           f"{'peak_MB':>8s} {'load':>5s}")
    print(hdr)
    for k in (int(s) for s in a.sizes.split(",")):
        t = time.perf_counter()
        path = make_csv(k, work)
        print(f"# x{k}: {path} ready in {time.perf_counter() - t:.1f} s", flush=True)
        ours = [measure("ours", path, a.timeout) for _ in range(a.repeat)]
        med = {key: statistics.median(r[key] for r in ours) for key in PARTS}
        n = ours[0]["events"]
        rss = max(r["peak_rss_mb"] for r in ours)
        load = statistics.mean(r["loadavg"] for r in ours)
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
            peers[who] = ({key: statistics.median(r[key] for r in runs) for key in PARTS},
                          max(r["peak_rss_mb"] for r in runs), statistics.mean(r["loadavg"] for r in runs))
        for part in PARTS:
            for who, (pm, prss, pload) in peers.items():
                label = f"x{k} {part} vs {who}"
                ratio = pm[part] / med[part] if med[part] > 0 else float("nan")
                print(f"{label:30s} {n:11,d} {med[part]:8.2f} {pm[part]:8.2f} {ratio:7.1f} "
                      f"{n / med[part]:11,.0f} {rss if part == 'process' else float('nan'):8.0f} {load:5.1f}"
                      + (f"  (peer peak {prss:.0f} MB, load {pload:.1f})" if part == "process" else ""), flush=True)
            if not peers:
                label = f"x{k} {part}"
                print(f"{label:30s} {n:11,d} {med[part]:8.2f} {'-':>8s} {'-':>7s} "
                      f"{n / med[part]:11,.0f} {rss if part == 'process' else float('nan'):8.0f} {load:5.1f}",
                      flush=True)


if __name__ == "__main__":
    main()
