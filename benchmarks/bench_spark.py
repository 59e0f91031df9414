"""Benchmark: the Spark engine (local[2]) against the pandas engine on BPIC-2012 replicated x10 and x100.

Data: ../shared/data/eventlogs/bpic2012.csv.gz (164,506 events, 13,087 cases) replicated k times with new
case ids ("<copy>_<case>") and row_id = copy * n + row; written once to Parquet under /tmp (row groups of
1 M rows), so both engines read the same columnar file.

Work measured, the same for both engines, in a fresh subprocess each (so peak memory is the run's own):
read the Parquet file + ``step_stats`` + ``transitions`` + ``variants`` (step = activity).
* pandas: ``pd.read_parquet`` + journey_analysis.steps;
* Spark: ``read_events_spark`` + journey_analysis.engines.spark (session start timed separately).
Peak memory = the largest sum of resident memory of the run's process tree (Python and, for Spark, the
JVM it launches), sampled every 0.1 s with psutil. Results are checked equal (rtol 1e-9) at every size.

Prints one line per measurement: what, events, pandas time, Spark time, ratio Spark/pandas, peak memory of
each; then how time grows from x10 to x100.

``--work run`` measures what ``engine: spark`` does in a run instead: gathering (the loader with the whole
contract and every doubtful-row check: ``gather.load_events`` against ``spark.load_events_spark``) and
the journey map (``journey_map.build_map``, every activity a configured stage with an expected maximum
of 24 h, no feedback or segments), results checked equal.

    .venv/bin/python benchmarks/bench_spark.py [--sizes 10 100] [--repeats 1] [--driver-memory 6g] [--work steps|run]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "eventlogs" / "bpic2012.csv.gz"
OUT = Path(os.environ.get("BENCH_SPARK_DIR", "/tmp/journey_bench_spark"))


def make_parquet(k: int) -> Path:
    """BPIC-2012 x k with new case ids, written once."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from journey_analysis.eventlog import read_csv_log

    path = OUT / f"bpic2012_x{k}.parquet"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    base = read_csv_log(DATA, columns=["case_id", "activity", "timestamp"])
    n = len(base)
    ids = base["customer_id"].to_numpy(dtype=object)
    tmp = path.with_suffix(".tmp")
    writer = None
    for copy in range(k):  # k copies, written as they are made (memory: one copy at a time)
        part = pd.DataFrame({
            "customer_id": pd.Series(ids).radd(f"{copy}_").to_numpy(dtype=object),
            "activity": base["activity"].to_numpy(dtype=object),
            "timestamp": base["timestamp"].to_numpy(),
            "row_id": np.arange(copy * n, (copy + 1) * n, dtype=np.int64),
        })
        table = pa.Table.from_pandas(part, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table, row_group_size=1_000_000)
    writer.close()
    tmp.rename(path)
    return path


def run_config(path: Path) -> Path:
    """A run config for the replicated log: every activity a stage (expected at most 24 h)."""
    import pandas as pd
    import yaml

    cfg = OUT / f"{path.stem}.yaml"
    acts = sorted(pd.read_parquet(path, columns=["activity"])["activity"].unique())
    cfg.write_text(yaml.safe_dump({"name": path.stem, "journey": "query", "step": "stage", "objective": "benchmark",
                                   "data": {"events": str(path)},
                                   "stages": [{"name": a, "expected_max_duration_h": 24} for a in acts]}))
    return cfg


def run_child(engine: str, path: Path, driver_memory: str, work: str = "steps") -> dict:
    """Run one engine in a subprocess, sampling the RSS of its process tree."""
    import psutil

    cmd = [sys.executable, __file__, "--child", engine, "--path", str(path), "--driver-memory", driver_memory,
           "--work", work]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    peak = [0]
    done = threading.Event()

    def sample():
        p = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                rss = p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))
                peak[0] = max(peak[0], rss)
            except psutil.Error:
                pass
            time.sleep(0.1)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, _ = proc.communicate()
    done.set()
    th.join()
    if proc.returncode != 0:
        raise SystemExit(f"{engine} run failed (exit {proc.returncode})")
    res = json.loads(out.strip().splitlines()[-1])
    res["peak_gb"] = peak[0] / 1024 ** 3
    return res


def child_run(engine: str, path: str, driver_memory: str) -> None:
    """Gather + map, as a run does them; prints a JSON line with timings, the map saved for comparison."""
    from journey_analysis.config import load_config
    from journey_analysis.journey_map import build_map

    config = load_config(run_config(Path(path)))
    t0 = time.perf_counter()
    res = {"session_s": 0.0}
    if engine == "pandas":
        from journey_analysis.gather import load_events
        events = load_events(path, {"activity": "stage"}, stages=config.stage_names)
    else:
        from journey_analysis.engines import spark as SP
        spark = SP.get_spark("local[2]", {"spark.driver.memory": driver_memory, "spark.sql.shuffle.partitions": "8"})
        res["session_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        events = SP.load_events_spark(path, {"activity": "stage"}, stages=config.stage_names, spark=spark)
    res["gather_s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    m = build_map(events, None, None, config)
    res["map_s"] = time.perf_counter() - t1
    res["total_s"] = time.perf_counter() - t0
    res["events"] = int(m["events"].sum())
    out = Path(OUT) / f"result_run_{engine}_{Path(path).stem}"
    out.mkdir(parents=True, exist_ok=True)
    m.drop(columns=["quotes"]).to_parquet(out / "journey_map.parquet")
    res["results"] = str(out)
    print(json.dumps(res))


def child(engine: str, path: str, driver_memory: str, work: str = "steps") -> None:
    """One measured run; prints a JSON line with timings and a digest of the results."""
    import warnings
    warnings.simplefilter("ignore")
    if work == "run":
        return child_run(engine, path, driver_memory)
    t0 = time.perf_counter()
    res = {}
    if engine == "pandas":
        import pandas as pd

        from journey_analysis import steps as S
        ev = pd.read_parquet(path)
        res["read_s"] = time.perf_counter() - t0
        mod, data = S, ev
    else:
        from journey_analysis.engines import spark as SP
        spark = SP.get_spark("local[2]", {"spark.driver.memory": driver_memory,
                                          "spark.sql.shuffle.partitions": "8"})
        res["session_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        data = SP.read_events_spark(path, spark)
        res["read_s"] = time.perf_counter() - t0
        mod = SP
    t1 = time.perf_counter()
    st = mod.step_stats(data, step="activity")
    res["step_stats_s"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    tr = mod.transitions(data, step="activity")
    res["transitions_s"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    va = mod.variants(data, step="activity")
    res["variants_s"] = time.perf_counter() - t1
    res["total_s"] = time.perf_counter() - t0
    res["events"] = int(st["events"].sum())
    out = Path(OUT) / f"result_{engine}_{Path(path).stem}"
    out.mkdir(parents=True, exist_ok=True)
    st.to_parquet(out / "step_stats.parquet")
    tr.to_parquet(out / "transitions.parquet")
    va.to_parquet(out / "variants.parquet")
    res["results"] = str(out)
    print(json.dumps(res))


def same_results(a: str, b: str) -> bool:
    import numpy as np
    import pandas as pd
    names = ("journey_map",) if (Path(a) / "journey_map.parquet").exists() else ("step_stats", "transitions", "variants")
    for name in names:
        x = pd.read_parquet(Path(a) / f"{name}.parquet")
        y = pd.read_parquet(Path(b) / f"{name}.parquet")
        if list(x.columns) != list(y.columns) or len(x) != len(y):
            return False
        for c in x.columns:
            if pd.api.types.is_float_dtype(x[c]):
                # std of identical values: numpy's two-pass gives ~1e-13 s, Spark's stddev_samp 0
                atol = 1e-6 if c.endswith("std_s") else 0
                if not np.allclose(x[c], y[c], rtol=1e-9, atol=atol, equal_nan=True):
                    return False
            elif not ((x[c].astype(str).to_numpy() == y[c].astype(str).to_numpy())
                      | (x[c].isna() & y[c].isna()).to_numpy()).all():
                return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--driver-memory", default="6g")
    ap.add_argument("--work", choices=["steps", "run"], default="steps")
    ap.add_argument("--child")
    ap.add_argument("--path")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.path, args.driver_memory, args.work)
        return
    parts = ("read_s", "step_stats_s", "transitions_s", "variants_s", "total_s") if args.work == "steps" \
        else ("gather_s", "map_s", "total_s")
    print(f"machine: {os.cpu_count()} cores; Spark local[2], driver memory {args.driver_memory}")
    print("what | events | pandas s | spark s (session s) | spark/pandas | pandas peak GB | spark peak GB | equal")
    totals = {}
    for k in args.sizes:
        path = make_parquet(k)
        for r in range(args.repeats):
            p = run_child("pandas", path, args.driver_memory, args.work)
            s = run_child("spark", path, args.driver_memory, args.work)
            eq = same_results(p["results"], s["results"])
            totals.setdefault(k, []).append((p, s))
            for part in parts:
                print(f"x{k} {part[:-2]} | {p['events']:,} | {p[part]:.1f} | {s[part]:.1f}"
                      + (f" ({s['session_s']:.1f})" if part == "total_s" else "")
                      + f" | {s[part] / max(p[part], 1e-9):.1f} | {p['peak_gb']:.2f} | {s['peak_gb']:.2f} | {eq}",
                      flush=True)
    ks = sorted(totals)
    if len(ks) >= 2:
        a, b = ks[0], ks[-1]
        import statistics
        pa_ = statistics.median(p["total_s"] for p, _ in totals[a])
        pb = statistics.median(p["total_s"] for p, _ in totals[b])
        sa = statistics.median(s["total_s"] for _, s in totals[a])
        sb = statistics.median(s["total_s"] for _, s in totals[b])
        print(f"growth x{a} -> x{b} ({b / a:.0f}x the events): pandas {pb / pa_:.1f}x time, "
              f"Spark {sb / sa:.1f}x time")


if __name__ == "__main__":
    main()
