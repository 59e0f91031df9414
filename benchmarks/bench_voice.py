"""Benchmark: customer voice in other languages, ours (``score_feedback``) vs a plain baseline, same run.

Sets (../shared/data/sentiment, evaluation only, never copied): ``b2w_10k.csv`` (Brazilian Portuguese
product reviews, ``review_text``, ``overall_rating`` 1-5 stars) and ``germeval2017_de_{dev,test}.tsv``
(German rail customer feedback, document sentiment negative / neutral / positive -> 1 / 2 / 3).

Protocol (seeded): rows with text and a rating; half of the ratings are hidden (random, seed 0). The
whole frame, visible ratings only, goes through ``score_feedback`` as a run would (language found from
the data, no languages configured); the hidden half is scored by the model learned from the visible
half. Baseline: TF-IDF over character 2-5-grams (char_wb, sublinear tf, min_df=2) + ridge (alpha 1),
fitted on the visible half, predicting the hidden half. Printed per set: Spearman of each with the
hidden truth, the share of hidden texts scored, the share of rows whose language was identified
(a language other than "und"), the language found, and seconds (wall time, under whatever load the
machine has).

Run: .venv/bin/python benchmarks/bench_voice.py [--n 0 (all rows)] [--seed 0]
"""
from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = next((p for p in (ROOT.parent / "shared" / "data", ROOT.parents[1] / "shared" / "data") if p.is_dir()),
              ROOT.parent / "shared" / "data")


def load_sets(n: int = 0) -> dict[str, tuple[pd.DataFrame, tuple]]:
    """name -> (frame with text, truth; rating scale)."""
    d = SHARED / "sentiment"
    b2w = pd.read_csv(d / "b2w_10k.csv", usecols=["review_text", "overall_rating"])
    b2w = b2w.rename(columns={"review_text": "text", "overall_rating": "truth"}).dropna()
    ge = pd.concat([pd.read_csv(d / f, sep="\t", header=None, quoting=csv.QUOTE_NONE, usecols=[1, 3])
                    for f in ("germeval2017_de_dev.tsv", "germeval2017_de_test.tsv")], ignore_index=True)
    ge.columns = ["text", "sentiment"]
    ge["truth"] = ge["sentiment"].map({"negative": 1, "neutral": 2, "positive": 3})
    ge = ge.dropna(subset=["text", "truth"])[["text", "truth"]]
    out = {"b2w (pt, stars 1-5)": (b2w.reset_index(drop=True), (1, 5)),
           "germeval2017 (de, neg/neu/pos)": (ge.reset_index(drop=True), (1, 3))}
    if n:
        out = {k: (v.head(n), s) for k, (v, s) in out.items()}
    return out


def evaluate(df: pd.DataFrame, scale, seed: int = 0) -> dict:
    """Hide half the ratings, score through score_feedback, compare with the char-n-gram ridge baseline."""
    from scipy.stats import spearmanr
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import Ridge

    from journey_analysis.sentiment import score_feedback

    rng = np.random.default_rng(seed)
    hidden = rng.random(len(df)) < 0.5
    fb = pd.DataFrame({"feedback_id": [f"f{i}" for i in range(len(df))], "text": df["text"].to_numpy(),
                       "rating": np.where(hidden, np.nan, df["truth"].to_numpy(dtype=float)), "rating_type": "stars"})
    t0 = time.perf_counter()
    out, models = score_feedback(fb, "stars", scale)
    secs = time.perf_counter() - t0
    truth = df["truth"].to_numpy(dtype=float)
    ours = out["sentiment"].to_numpy(dtype=float)
    scored = ~np.isnan(ours[hidden])
    rho_ours = float(spearmanr(np.nan_to_num(ours[hidden]), truth[hidden]).statistic)
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True)
    Xv = vec.fit_transform(df["text"][~hidden].astype(str))
    base = Ridge(alpha=1.0).fit(Xv, truth[~hidden]).predict(vec.transform(df["text"][hidden].astype(str)))
    rho_base = float(spearmanr(base, truth[hidden]).statistic)
    lang = out["language"]
    identified = float((lang.notna() & lang.ne("und")).mean())
    return {"n": len(df), "n_hidden": int(hidden.sum()), "spearman_ours": rho_ours, "spearman_baseline": rho_base,
            "share_hidden_scored": float(scored.mean()), "share_language_identified": identified,
            "main_language": lang.value_counts().index[0], "seconds": secs,
            "cv_report": None if models is None else models.cv_report}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=0, help="rows per set (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print("set | rows | hidden | spearman ours | spearman baseline | hidden scored | language identified | "
          "language | ours_s")
    for name, (df, scale) in load_sets(a.n).items():
        r = evaluate(df, scale, a.seed)
        print(f"{name} | {r['n']} | {r['n_hidden']} | {r['spearman_ours']:.3f} | {r['spearman_baseline']:.3f} | "
              f"{r['share_hidden_scored']:.1%} | {r['share_language_identified']:.1%} | {r['main_language']} | "
              f"{r['seconds']:.1f} | load {os.getloadavg()[0]:.1f}", flush=True)
        if r["cv_report"] is not None:
            print(r["cv_report"].to_string())


if __name__ == "__main__":
    main()
