"""Benchmark: a whole `journey run` (the five notebooks and the report) on demo data, per size and per notebook.

The user path measured: ``journey demo-data --customers N`` (seed 0, written once per size into
--workdir), then ``journey run --config <configs/demo.yaml pointed at that data> --no-progress`` as its
own process, exactly as a user starts it. While it runs, the process tree (the CLI and each notebook's
kernel) is sampled every --interval seconds with psutil:

* time per notebook: the runner's own wall times (``run.json`` "seconds"), total = the CLI process
  from spawn to exit (report and index written);
* peak memory: the largest sum of PSS over the tree (the CLI, the kernels, the processes they fork; PSS
  splits a page shared by several processes among them, so a forked child's inherited pages count once;
  the RSS sum is in the JSON too), overall and while each notebook ran (its kernel the oldest alive);
* CPU seconds (user + system) of each process at its last sample, per notebook (its kernel and the
  processes it forked) and in total (the tree): on a shared machine they move far less with the load than wall times do;
* load: the 1-minute load average (os.getloadavg) sampled during the run, mean and max, overall and per
  notebook. The machine may be shared: a load above the core count means the times include waiting.

Prints one line per (size, notebook) and the total; writes the same as JSON to
``<workdir>/bench_run.json``. Sizes are customers: 100,000 customers make about 1.26 M events,
800,000 about 10 M.

    .venv/bin/python benchmarks/bench_run.py --sizes 100000,800000 [--workdir /tmp/bench_run] [--keep]

psutil (for the sampling) comes with ipykernel, which every run needs.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ("01_define_objectives", "02_gather", "03_segment", "04_map", "05_analyze")


def journey_cmd() -> list[str]:
    """The `journey` console script of this interpreter's environment (python -m ... as a fallback)."""
    exe = Path(sys.executable).with_name("journey")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "journey_analysis.cli"]


def demo_data(n: int, workdir: Path) -> Path:
    out = workdir / f"demo_{n}"
    if (out / "events.csv.gz").exists() and (out / "feedback.csv.gz").exists():
        return out
    tmp = workdir / f".demo_{n}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run(journey_cmd() + ["demo-data", "--out", str(tmp), "--customers", str(n), "--seed", "0"],
                   check=True, stdout=subprocess.DEVNULL)
    tmp.replace(out)
    return out


def config_for(data: Path, n: int, workdir: Path) -> Path:
    """configs/demo.yaml with its data paths pointed at the generated files; its other relative data
    paths (observations, later period) made absolute, as read from configs/ (nothing else changed)."""
    import yaml

    cfg = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    for slot, value in cfg["data"].items():
        if isinstance(value, str) and not Path(value).is_absolute():
            cfg["data"][slot] = str((ROOT / "configs" / value).resolve())
    for slot in ("events", "customers", "feedback"):
        cfg["data"][slot] = str(data / f"{slot}.csv.gz")
    cfg["name"] = f"bench{n}"
    path = workdir / f"bench_{n}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _tree(proc):
    import psutil

    try:
        return [proc] + proc.children(recursive=True)
    except psutil.Error:
        return [proc]


def _memory(proc) -> tuple[int, int]:
    """(RSS, PSS) of a process in bytes; PSS splits the pages it shares (a forked child's inherited pages,
    shared libraries) among the processes sharing them, so a sum of PSS counts each page once."""
    try:
        full = proc.memory_full_info()
        return full.rss, getattr(full, "pss", full.rss)
    except Exception:  # noqa: BLE001 - no smaps access: RSS alone
        rss = proc.memory_info().rss
        return rss, rss


def run_once(cfg: Path, n: int, workdir: Path, interval: float) -> dict:
    """One `journey run`, sampled every ``interval`` s. A notebook's kernel is a direct child of the CLI
    (started while the notebook before it runs); the processes it forks (aside.Aside) are its children.
    A sample belongs to the notebook whose kernel is the oldest alive (the one running: the next one is
    waiting); a notebook's CPU seconds are its kernel's and its forks'."""
    import psutil

    run_id = f"bench{n}-{time.strftime('%Y%m%dT%H%M%S')}"
    reports, processed = workdir / "reports", workdir / "processed"
    cmd = journey_cmd() + ["run", "--config", str(cfg), "--run-id", run_id, "--reports", str(reports),
                           "--processed", str(processed), "--no-progress"]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    root = psutil.Process(p.pid)
    samples = []  # (t, total_rss, load, running kernel pid or None, total_pss)
    kernels = {}  # pid -> create_time, for the notebook kernels (one per notebook, in order)
    cpu = {}  # pid -> CPU seconds (user + system) at its last sample: load-robust, unlike wall time
    parent = {}  # pid -> parent pid
    is_kernel = {}  # pid -> whether it is a notebook's kernel
    while p.poll() is None:
        total = total_pss = 0
        alive = []
        for proc in _tree(root):
            try:
                rss, pss = _memory(proc)
                c = proc.cpu_times()
                cpu[proc.pid] = c.user + c.system
                if proc.pid not in parent:  # read once per process: the sampler's own cost stays small
                    parent[proc.pid] = proc.ppid()
                    is_kernel[proc.pid] = parent[proc.pid] == root.pid and "ipykernel" in " ".join(proc.cmdline())
                total += rss
                total_pss += pss
                if is_kernel[proc.pid]:
                    kernels.setdefault(proc.pid, proc.create_time())
                    alive.append(proc.pid)
            except psutil.Error:
                continue
        running = min(alive, key=kernels.get) if alive else None
        samples.append((time.perf_counter() - t0, total, os.getloadavg()[0], running, total_pss))
        time.sleep(interval)
    wall = time.perf_counter() - t0
    out = p.stdout.read()
    if p.returncode != 0:
        raise RuntimeError(f"journey run failed ({p.returncode}):\n{out[-3000:]}")
    run = json.loads((reports / run_id / "run.json").read_text())
    seconds = run.get("seconds", {})
    order = [pid for pid, _ in sorted(kernels.items(), key=lambda kv: kv[1])]
    per_nb = {}
    for i, stem in enumerate(NOTEBOOKS):
        pid = order[i] if i < len(order) and len(order) == len(NOTEBOOKS) else None
        rows = [s for s in samples if s[3] == pid] if pid is not None else []
        forks = [q for q, pp in parent.items() if pp == pid]
        per_nb[stem] = {"seconds": seconds.get(stem),
                        "peak_mb": max((s[4] for s in rows), default=float("nan")) / 2 ** 20,
                        "peak_rss_mb": max((s[1] for s in rows), default=float("nan")) / 2 ** 20,
                        "cpu_s": cpu.get(pid, float("nan")) + sum(cpu[q] for q in forks),
                        "forks": len(forks),
                        "load_mean": sum(s[2] for s in rows) / len(rows) if rows else float("nan")}
    loads = [s[2] for s in samples] or [os.getloadavg()[0]]
    facts = {}
    nb02 = reports / run_id / "02_gather.ipynb"
    if nb02.exists():
        sys.path.insert(0, str(ROOT))
        from journey_analysis.artifacts import read_records

        rec = read_records(nb02)
        facts = {k: rec.get(k) for k in ("n_events", "n_customers", "n_feedback")}
    return {"customers": n, **facts, "run_id": run_id, "wall_s": wall, "runner_total_s": seconds.get("total"),
            "peak_mb": max((s[4] for s in samples), default=0) / 2 ** 20,
            "peak_rss_mb": max((s[1] for s in samples), default=0) / 2 ** 20, "cpu_s": sum(cpu.values()),
            "load_mean": sum(loads) / len(loads), "load_max": max(loads), "cores": os.cpu_count(),
            "notebooks": per_nb, "reports": str(reports / run_id), "processed": str(processed / run_id)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,800000", help="customers per run, comma-separated")
    ap.add_argument("--workdir", default="/tmp/bench_run")
    ap.add_argument("--interval", type=float, default=0.25, help="seconds between memory/load samples")
    ap.add_argument("--keep", action="store_true", help="keep the run's report and artifacts")
    a = ap.parse_args()
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          "user path: journey demo-data --customers N, then journey run --config <demo config on that data>; "
          "peak = largest sum of PSS (resident pages, shared ones split among their processes) over the CLI, "
          "its kernels and their forked processes; load = 1-min load average during the step")
    print(f"{'customers':>10s} {'events':>11s} {'step':22s} {'seconds':>8s} {'cpu_s':>8s} {'peak_MB':>8s} {'load':>5s}")
    results = []
    for n in (int(s) for s in a.sizes.split(",")):
        t = time.perf_counter()
        data = demo_data(n, work)
        print(f"# {n:,} customers: demo data in {data} ({time.perf_counter() - t:.0f} s)", flush=True)
        res = run_once(config_for(data, n, work), n, work, a.interval)
        results.append(res)
        ev = res.get("n_events") or 0
        for stem, r in res["notebooks"].items():
            print(f"{n:10,d} {ev:11,d} {stem:22s} {r['seconds'] or float('nan'):8.1f} {r['cpu_s']:8.1f} {r['peak_mb']:8.0f} "
                  f"{r['load_mean']:5.1f}", flush=True)
        print(f"{n:10,d} {ev:11,d} {'total (journey run)':22s} {res['wall_s']:8.1f} {res['cpu_s']:8.1f} {res['peak_mb']:8.0f} "
              f"{res['load_mean']:5.1f}  (load max {res['load_max']:.1f})", flush=True)
        if not a.keep:
            shutil.rmtree(res["processed"], ignore_errors=True)
            shutil.rmtree(res["reports"], ignore_errors=True)
    if len(results) > 1:
        lo, hi = results[0], results[-1]
        f = hi["customers"] / lo["customers"]
        print(f"# growth x{f:g} customers: time x{hi['wall_s'] / lo['wall_s']:.1f}, "
              f"peak memory x{hi['peak_mb'] / lo['peak_mb']:.1f}")
    (work / "bench_run.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
