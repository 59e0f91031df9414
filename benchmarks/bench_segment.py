"""Benchmark: k-means segmentation with k chosen from the data, 1 M customers x 30 features.

Data: seeded Gaussian blobs (sklearn ``make_blobs``, 6 centres, cluster_std 2.5, 30 features), index =
string customer ids. Ours: ``segment_customers(features, k="auto", k_range=(2, 10))`` (above 200k rows: KMeans
with n_init=3 fitted on a seeded 100k-row sample, then every row assigned; silhouette on a seeded 10k sample, Calinski-Harabasz and inertia on all rows,
3 bootstrap refits for stability). Peer, measured in the same run on the same scaled data: plain
``sklearn.cluster.KMeans(n_clusters=k, n_init=1, random_state=0)`` per k (fit only, no scores: the
cheapest thing a user could run per k).

Prints one line per measurement: what, rows x features, our time, the peer's time, ratio, peak memory
(``resource.getrusage`` maximum resident set size of this process, which includes the data).

    .venv/bin/python benchmarks/bench_segment.py [--rows 1000000] [--features 30] [--repeats 3]

With ``--artifacts DIR --config PATH`` it times notebook 03's own path instead, on the artifacts of a
run (``DIR`` = ``data/processed/<run-id>``, e.g. of ``journey run`` on the 100,000-customer demo): the
three inputs read, ``customer_features(events, customers, feedback, config=config)`` and
``try_segment_customers(features, config=config)``, each in wall and CPU seconds (``time.process_time``,
all threads), the chosen k and the adjusted Rand index of the segments against that run's
``segments.parquet``. Peer, same run: plain ``KMeans(n_init=1)`` per k of the config's range on the
same scaled features (fit only).
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

import numpy as np
import pandas as pd


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB on Linux -> GiB


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=30)
    ap.add_argument("--centers", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--k-max", type=int, default=10)
    ap.add_argument("--artifacts", help="a run's processed folder: time notebook 03's path on it")
    ap.add_argument("--config", help="the run config (with --artifacts)")
    args = ap.parse_args()
    if args.artifacts:
        return notebook_path(args)

    from sklearn.cluster import KMeans
    from sklearn.datasets import make_blobs
    from sklearn.metrics import adjusted_rand_score

    from journey_analysis.segment import segment_customers

    n, d = args.rows, args.features
    X, truth = make_blobs(n_samples=n, n_features=d, centers=args.centers, cluster_std=2.5, random_state=0)
    ids = pd.Index([f"c{i:07d}" for i in range(n)], name="customer_id")
    features = pd.DataFrame(X, index=ids, columns=[f"f{j:02d}" for j in range(d)])
    del X
    print(f"data: {n:,} x {d}, {args.centers} planted centres; cores: {os.cpu_count()}; "
          f"peak after data {peak_gb():.2f} GB")

    runs, seg = [], None
    for r in range(args.repeats):
        t0 = time.perf_counter()
        seg = segment_customers(features, k="auto", k_range=(2, args.k_max), random_state=0)
        runs.append(time.perf_counter() - t0)
        print(f"run {r + 1}: fit k=auto 2..{args.k_max}: {runs[-1]:.1f} s, chosen k={seg.k}, "
              f"peak {peak_gb():.2f} GB")
    ours_total = statistics.median(runs)
    ari = adjusted_rand_score(truth, seg.labels.to_numpy())
    Xs = seg.transform_scaled(features)
    print(f"algorithm {seg.algorithm}, n_init {seg._n_init_used}; ARI vs planted {ari:.3f}; "
          f"stability ARI {seg.stability_ari:.3f}; peak after ours {peak_gb():.2f} GB")

    peer = {}
    for k in seg.scores.index:
        t0 = time.perf_counter()
        KMeans(n_clusters=int(k), n_init=1, random_state=0).fit(Xs)
        peer[k] = time.perf_counter() - t0
    print()
    print(f"{'what':<34}{'rows x feat':>14}{'ours s':>9}{'peer s':>9}{'ratio':>7}  silhouette  CH")
    for k, row in seg.scores.iterrows():
        print(f"{f'fit + scores k={k}':<34}{f'{n:,} x {d}':>14}{row['seconds']:>9.2f}{peer[k]:>9.2f}"
              f"{row['seconds'] / peer[k]:>7.2f}  {row['silhouette']:.3f}  {row['calinski_harabasz']:.0f}")
    peer_total = sum(peer.values())
    print(f"{f'total k=auto 2..{args.k_max} (median of {args.repeats})':<34}{f'{n:,} x {d}':>14}"
          f"{ours_total:>9.2f}{peer_total:>9.2f}{ours_total / peer_total:>7.2f}  peak {peak_gb():.2f} GB")
    print("ours includes per-k silhouette (10k sample), CH, inertia, plus stability refits and profiles; "
          "peer = KMeans(n_init=1) fit only")


def notebook_path(args) -> None:
    """Notebook 03's calls on a run's artifacts (see the module docstring)."""
    from pathlib import Path

    def timed(fn):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        return out, time.perf_counter() - t0, time.process_time() - c0

    print(f"load average at start {os.getloadavg()[0]:.1f}; cores: {os.cpu_count()}")
    from journey_analysis import segment
    from journey_analysis.artifacts import load_artifact
    from journey_analysis.config import load_config

    config = load_config(args.config)
    folder = Path(args.artifacts)
    (inputs, t_load, c_load) = timed(lambda: (load_artifact(folder / "events.parquet", config),
                                              load_artifact(folder / "customers.parquet"),
                                              load_artifact(folder / "feedback.parquet")))
    ((features, _), t_feat, c_feat) = timed(lambda: segment.customer_features(*inputs, config=config))
    ((seg, note), t_seg, c_seg) = timed(lambda: segment.try_segment_customers(features, config=config))
    if seg is None:
        print(note)
        return
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score
    Xs = seg.transform_scaled(features)
    t0, c0 = time.perf_counter(), time.process_time()
    for k in seg.scores.index:
        KMeans(n_clusters=int(k), n_init=1, random_state=0).fit(Xs)
    t_peer, c_peer = time.perf_counter() - t0, time.process_time() - c0
    ari = float("nan")
    if (folder / "segments.parquet").exists():
        ref = pd.read_parquet(folder / "segments.parquet").set_index("customer_id")["segment"]
        ari = adjusted_rand_score(ref, seg.labels.reindex(ref.index))
    print(f"{'what':<44}{'rows':>10}{'wall s':>9}{'CPU s':>8}")
    for what, t, c in [("read events, customers, feedback", t_load, c_load),
                       ("customer_features", t_feat, c_feat),
                       (f"try_segment_customers (k {seg.scores.index.min()}..{seg.scores.index.max()})", t_seg, c_seg),
                       ("peer: KMeans(n_init=1) per k, fit only", t_peer, c_peer)]:
        print(f"{what:<44}{len(features):>10,}{t:>9.2f}{c:>8.2f}")
    print(f"chosen k={seg.k} (algorithm {seg.algorithm}); silhouette {seg.scores.loc[seg.k, 'silhouette']:.4f}; "
          f"stability ARI {seg.stability_ari:.4f}; ARI against the run's segments.parquet {ari:.6f}; "
          f"peak {peak_gb():.2f} GB; load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
