"""Benchmark: sentiment scoring throughput, ours (journey_analysis.sentiment.score) vs vaderSentiment.

50,000 generated customer-service feedback texts (templates x stages x details; seed 0), two variants:
"unique" (every text distinct) and "with_duplicates" (drawn Zipf-like from 2,000 distinct texts, as real
survey comments repeat). Each is scored by both tools in the same run; one line per measurement: what,
n texts, our seconds, VADER's seconds, texts/s each, ratio (ours / VADER throughput), peak memory (MB,
tracemalloc, ours, in a separate untimed run). Times are CPU seconds of this process
(time.process_time, single process), so other jobs on the shared 2-core machine do not distort the ratio.
Median of --repeats runs. Our in-memory cache is cleared before every run, so the
figure includes deduplication but no cache hits from earlier runs. Ours = language detection + dedup +
the vectorised batch scorer (tokenizer on joined texts, numpy rules), i.e. what score() does.

Run: .venv/bin/python benchmarks/bench_sentiment.py [--n 50000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

import numpy as np
import pandas as pd

OPEN = ["", "Honestly, ", "To be fair ", "Well, ", "Overall ", "Sadly ", "As usual, ", "OMG ", "Tbh "]
SUBJ = ["the engineer", "the installer", "customer service", "the app", "the helpline", "my broadband",
        "the router", "the webchat agent", "the billing team", "the technician", "the delivery", "the new plan"]
PRED_POS = ["was brilliant", "sorted it quickly", "was really helpful", "arrived on time", "works great",
            "was friendly and polite", "fixed everything first time", "went above and beyond"]
PRED_NEG = ["never came", "kept me on hold for an hour", "was rude", "cut me off twice", "is still not working",
            "cancelled my appointment again", "overcharged me", "keeps dropping", "was a no-show"]
TAIL = ["", ".", "!", "!!", " :(", " :)", " 👍", " 😡", ", but the refund is still pending.",
        ", although the price went up.", " and I want a refund.", " - would recommend.", " Never again."]
DETAIL = ["", " on {d} March", " after {h} hours", " (order {o})", " for {m} minutes", " this week", " at {h}pm"]


def make_texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    pos = rng.random(n) < 0.5
    preds = np.where(pos, rng.choice(PRED_POS, n), rng.choice(PRED_NEG, n))
    parts = [rng.choice(OPEN, n), rng.choice(SUBJ, n), preds, rng.choice(DETAIL, n), rng.choice(TAIL, n)]
    d, h, o, m = (rng.integers(1, 29, n), rng.integers(1, 12, n), rng.integers(10**6, 10**8, n), rng.integers(5, 90, n))
    out = []
    for a, s, p, det, t, di, hi, oi, mi in zip(*parts, d, h, o, m):
        txt = f"{a}{s} {p}{det.format(d=di, h=hi, o=oi, m=mi)}{t}"
        out.append(txt[0].upper() + txt[1:])
    return out


def with_duplicates(unique: list[str], n: int, k: int = 2000, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    pool = unique[:k]
    w = 1.0 / np.arange(1, k + 1)
    return [pool[i] for i in rng.choice(k, n, p=w / w.sum())]


def run(texts: list[str], repeats: int):
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from journey_analysis import sentiment as S

    S.get_nlp()
    S._lexicons()
    S.score(["warm up the pipeline"])
    vader = SentimentIntensityAnalyzer()
    s = pd.Series(texts)
    ours, theirs = [], []
    for _ in range(repeats):
        S._CACHE.clear()
        t0 = time.process_time()
        S.score(s)
        ours.append(time.process_time() - t0)
        t0 = time.process_time()
        [vader.polarity_scores(t)["compound"] for t in texts]
        theirs.append(time.process_time() - t0)
    # peak memory in a separate run: tracemalloc slows Python down several-fold, so it is not timed
    S._CACHE.clear()
    tracemalloc.start()
    S.score(s)
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return statistics.median(ours), statistics.median(theirs), peak


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    unique = make_texts(a.n)
    variants = {"unique": unique, "with_duplicates": with_duplicates(unique, a.n)}
    print("what | n_texts | n_distinct | ours_s | vader_s | ours_texts_per_s | vader_texts_per_s | ratio | ours_peak_mb")
    for name, texts in variants.items():
        o, v, mem = run(texts, a.repeats)
        print(f"sentiment score ({name}) | {len(texts)} | {len(set(texts))} | {o:.2f} | {v:.2f} | "
              f"{len(texts) / o:,.0f} | {len(texts) / v:,.0f} | {v / o:.2f}x | {mem:.0f}")


if __name__ == "__main__":
    main()
