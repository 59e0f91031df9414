"""Benchmark: sentiment scoring on real, distinct review text, wall time, ours vs vaderSentiment in the same run.

The texts are the human-rated sets in ../shared/data/sentiment (deduplicated: every text distinct):
"english" = tweets, Amazon snippets, Amazon phone and Yelp sentences (9,880 texts, ~78 characters);
"all languages" = those plus the Portuguese B2W reviews and the German GermEval rail feedback (24,800
texts; ours identifies each text's language and scores the English ones with the lexicon; VADER scores
every text as if it were English).

Paths measured (each the one a user runs):
- ``score`` = ``journey_analysis.sentiment.score``: language identification (lingua restricted to the
  sample's languages + the stop-word fast path) + dedup + the vectorised lexicon scorer;
- ``score_feedback`` = what notebook 02 runs on a feedback frame of those texts without ratings
  (the same plus the per-row columns and the language report's inputs).
VADER: ``SentimentIntensityAnalyzer().polarity_scores(text)["compound"]`` for every text.

Wall time (time.perf_counter) after a warm-up call on the same texts (lingua's models for the data's
languages, the lexicon and the token pattern loaded once per process; that first call's time is printed
too, ``ours_first_call_s``); our in-memory score cache is cleared before every run, so no score is
reused from an earlier run. Median of --repeats runs; ratio = our throughput / VADER's. Lingua uses both cores
for the texts that reach it; VADER is single-threaded: wall time is what a user waits. Peak memory:
tracemalloc in a separate, untimed run (Python allocations only).

Run: .venv/bin/python benchmarks/bench_sentiment.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import time
import tracemalloc
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = next((p for p in (ROOT.parent / "shared" / "data", ROOT.parents[1] / "shared" / "data") if p.is_dir()),
              ROOT.parent / "shared" / "data")
D = SHARED / "sentiment"


def _gt(name):
    return pd.read_csv(D / name, sep="\t", header=None, names=["id", "y", "text"], quoting=3)["text"]


def _uci(name):
    raw = (D / name).read_text(encoding="utf-8", errors="replace")
    return pd.Series([ln.rpartition("\t")[0] for ln in raw.replace("\r\n", "\r").replace("\n", "\r").split("\r")
                      if ln.strip()])


def load_texts() -> dict[str, list[str]]:
    en = pd.concat([_gt("tweets_GroundTruth.txt"), _gt("amazonReviewSnippets_GroundTruth.txt"),
                    _uci("amazon_cells_labelled.txt"), _uci("yelp_labelled.txt")])
    pt = pd.read_csv(D / "b2w_10k.csv", usecols=["review_text"])["review_text"]
    de = pd.concat([pd.read_csv(D / f, sep="\t", header=None, quoting=csv.QUOTE_NONE, usecols=[1])[1]
                    for f in ("germeval2017_de_dev.tsv", "germeval2017_de_test.tsv")])
    en = en.dropna().drop_duplicates()
    allt = pd.concat([en, pt, de]).dropna().drop_duplicates()
    return {"english": en.tolist(), "all languages": allt.tolist()}


def run(texts: list[str], path: str, repeats: int):
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from journey_analysis import sentiment as S

    vader = SentimentIntensityAnalyzer()
    s = pd.Series(texts)
    fb = pd.DataFrame({"feedback_id": [f"f{i}" for i in range(len(texts))], "text": texts})

    def ours():
        if path == "score":
            S.score(s)
        else:
            S.score_feedback(fb)

    S._CACHE.clear()
    t0 = time.perf_counter()
    ours()  # warm-up: loads lingua's models for these languages, the lexicon, the token pattern
    cold = time.perf_counter() - t0
    o, v = [], []
    for _ in range(repeats):
        S._CACHE.clear()
        t0 = time.perf_counter()
        ours()
        o.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        [vader.polarity_scores(t)["compound"] for t in texts]
        v.append(time.perf_counter() - t0)
    S._CACHE.clear()
    tracemalloc.start()
    ours()
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return statistics.median(o), statistics.median(v), peak, cold


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    sets = load_texts()
    print("what | texts | n_texts (all distinct) | ours_s | vader_s | ours_texts_per_s | vader_texts_per_s | ratio | ours_peak_mb | ours_first_call_s")
    for name, texts in sets.items():
        for path in ("score", "score_feedback"):
            o, v, mem, cold = run(texts, path, a.repeats)
            print(f"sentiment {path}, wall time | {name} | {len(texts)} | {o:.2f} | {v:.2f} | {len(texts) / o:,.0f} | "
                  f"{len(texts) / v:,.0f} | {v / o:.2f}x | {mem:.0f} | {cold:.2f} | load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
