"""Benchmark: themes as subjects (``themes.theme_members``) against a plain word count, same run.

Quality, on SemEval-2014 Task 4 restaurant sentences (../shared/data/themes, 3,041 sentences annotated
with aspect categories food / service / price / ambience / anecdotes-miscellaneous; evaluation only,
never copied): the 15 largest themes (by sentences mentioning them) of ours and of the baseline (the
15 words in most sentences, spaCy's English stop words removed, letters only, 3+ letters). For each
theme: its **main category** (the category most of its sentences carry) and its **lift** = the share of
its sentences in that category / the category's share of all sentences. Printed: the mean lift of the
15, the categories that are the main category of at least one of them (goal: every category with 5%
of the sentences or more), and how many of the 15 are opinion words (in VADER's lexicon with
|valence| >= 1, or an evaluative word of the list below; goal: at most one).

Speed, the user path of notebook 04: ``theme_members`` on the demo feedback at 100,000 customers
(``journey demo-data --customers 100000 --seed 0``, made once under /tmp/bench_run as bench_run.py
does), against the baseline's word count (``CountVectorizer`` fit on the same texts), wall and CPU
seconds, one warm-up call first (resource tables loaded), median of 3; and the map's voice lanes as
``build_map`` makes them (``theme_members`` once, ``stage_voice`` on All customers and 4 seeded segments;
sentiment from ``score_frame``, outside the timing).

Also printed: the 15 largest themes on B2W (Portuguese) and GermEval (German), to read, and the two-word
names (``themes._two_word_names``) found on each set.

Run: .venv/bin/python benchmarks/bench_themes.py [--customers 100000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import csv
import os
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = next((p for p in (ROOT.parent / "shared" / "data", ROOT.parents[1] / "shared" / "data") if p.is_dir()),
              ROOT.parent / "shared" / "data")
CATEGORIES = ["food", "service", "price", "ambience", "anecdotes/miscellaneous"]
#: Evaluative words counted as opinion words besides VADER's lexicon (|valence| >= 1).
EVALUATIVE = set("""great good bad nice best better worst delicious amazing excellent awesome wonderful terrible
horrible awful fantastic friendly fresh tasty perfect lovely love like recommend worth decent average fine poor
rude slow fast quick cheap expensive overpriced reasonable attentive happy disappointed""".split())


def semeval() -> pd.DataFrame:
    root = ET.parse(SHARED / "themes" / "semeval2014_restaurants_train.xml").getroot()
    rows = [(s.get("id"), s.find("text").text, [c.get("category") for c in s.iter("aspectCategory")])
            for s in root.iter("sentence")]
    return pd.DataFrame(rows, columns=["feedback_id", "text", "categories"])


def _opinion_words() -> set:
    from journey_analysis.sentiment import RESOURCES

    lex = pd.read_csv(RESOURCES / "vader_lexicon.txt", sep="\t", header=None, usecols=[0, 1], quoting=3,
                      names=["w", "v"], keep_default_na=False)
    return set(lex.loc[pd.to_numeric(lex["v"], errors="coerce").abs() >= 1.0, "w"].str.lower()) | EVALUATIVE


def _score(sets: list[tuple[str, np.ndarray]], Y: np.ndarray, opinion: set) -> dict:
    """sets: (label, boolean mask of the sentences mentioning it), largest first."""
    base = Y.mean(0)
    rows = []
    for label, mask in sets:
        share = Y[mask].mean(0)
        j = int(np.argmax(share))
        rows.append({"theme": label, "n": int(mask.sum()), "main": CATEGORIES[j], "share": float(share[j]),
                     "lift": float(share[j] / base[j]), "opinion": label.lower() in opinion})
    t = pd.DataFrame(rows)
    return {"table": t, "mean_lift": float(t["lift"].mean()), "main_categories": sorted(set(t["main"])),
            "opinion_words": int(t["opinion"].sum())}


def evaluate(df: pd.DataFrame, top: int = 15) -> dict:
    """Ours (theme_members) and the word-count baseline on sentences with ``categories`` lists."""
    from sklearn.feature_extraction.text import CountVectorizer

    from journey_analysis.text import stop_words
    from journey_analysis.themes import theme_members

    Y = np.array([[c in cs for c in CATEGORIES] for cs in df["categories"]], dtype=float)
    opinion = _opinion_words()
    m = theme_members(df.assign(language="en"))
    cat = pd.DataFrame(m.attrs["themes"]).head(top)
    ids = df["feedback_id"].astype(str).to_numpy()
    ours = [(t, np.isin(ids, m.loc[m["theme"] == t, "feedback_id"].to_numpy())) for t in cat["theme"]]
    cv = CountVectorizer(stop_words=sorted(stop_words("en")), token_pattern=r"(?u)\b[^\W\d_]{3,}\b", binary=True)
    X = cv.fit_transform(df["text"]).tocsc()
    df_ = np.asarray(X.sum(0)).ravel()
    order = np.argsort(-df_, kind="stable")[:top]
    words = cv.get_feature_names_out()
    base = [(words[i], X[:, i].toarray().ravel() > 0) for i in order]
    shares = Y.mean(0)
    return {"ours": _score(ours, Y, opinion), "baseline": _score(base, Y, opinion),
            "categories_5pct": [c for c, s in zip(CATEGORIES, shares) if s >= 0.05]}


def _load(name: str) -> pd.DataFrame:
    d = SHARED / "sentiment"
    if name == "b2w":
        b = pd.read_csv(d / "b2w_10k.csv", usecols=["review_text"]).rename(columns={"review_text": "text"})
        return b.assign(language="pt")
    g = pd.concat([pd.read_csv(d / f"germeval2017_de_{p}.tsv", sep="\t", header=None, quoting=csv.QUOTE_NONE,
                               usecols=[1]).set_axis(["text"], axis=1) for p in ("dev", "test")], ignore_index=True)
    return g.assign(language="de")


def speed(customers: int, repeat: int) -> dict:
    import importlib.util

    from sklearn.feature_extraction.text import CountVectorizer

    from journey_analysis.themes import theme_members

    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "bench_run.py")
    br = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(br)
    data = br.demo_data(customers, Path("/tmp/bench_run"))
    fb = pd.read_csv(data / "feedback.csv.gz", dtype=str, keep_default_na=False)
    from journey_analysis.sentiment import score_frame
    from journey_analysis.themes import stage_voice

    fb = fb.assign(language="en", sentiment=score_frame(fb["text"])["sentiment"].to_numpy(),
                   segment=np.random.default_rng(0).choice(["a", "b", "c", "d"], len(fb)))
    theme_members(fb.head(2000))  # warm-up: resource tables and imports

    def lane():  # what build_map does for its voice lanes: members once, then All customers + 4 segments
        m = theme_members(fb)
        return stage_voice(pd.concat([fb.assign(segment="All customers"), fb], ignore_index=True),
                           ["segment", "stage"], members=m)

    res = {"rows": len(fb), "texts": int((fb["text"] != "").sum())}
    for name, fn in (("ours", lambda: theme_members(fb)), ("lane", lane),
                     ("baseline", lambda: CountVectorizer(binary=True).fit_transform(fb["text"]))):
        walls, cpus = [], []
        for _ in range(repeat):
            t, c = time.perf_counter(), time.process_time()
            fn()
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
        res[name] = (float(np.median(walls)), float(np.median(cpus)))
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from journey_analysis.themes import theme_members

    print(f"# bench_themes, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    r = evaluate(semeval())
    print(f"# SemEval-2014 restaurants, 3,041 sentences; categories with >= 5%: {', '.join(r['categories_5pct'])}")
    for name in ("ours", "baseline"):
        s = r[name]
        missing = sorted(set(r["categories_5pct"]) - set(s["main_categories"]))
        print(f"{name:9s} mean lift of the 15 largest {s['mean_lift']:.2f}; main categories covered "
              f"{len(s['main_categories'])}/{len(r['categories_5pct'])} (missing: {', '.join(missing) or 'none'}); "
              f"opinion words {s['opinion_words']}")
        print("          " + "; ".join(f"{t.theme} ({t.n}, {t.main.split('/')[0]} x{t.lift:.1f}{', opinion' if t.opinion else ''})"
                                       for t in s["table"].itertuples()))
    print(f"# lift ours / baseline: {r['ours']['mean_lift'] / r['baseline']['mean_lift']:.2f}x")
    for name in ("semeval", "b2w", "germeval"):
        m = theme_members(semeval().assign(language="en") if name == "semeval" else _load(name))
        cat = pd.DataFrame(m.attrs["themes"])
        if name != "semeval":
            print(f"# {name}: " + "; ".join(f"{t.theme} ({t.mentions})" for t in cat.head(15).itertuples()))
        print(f"# {name}, two-word names (comments, rank among {len(cat)} themes): " + "; ".join(
            f"{t.theme} ({t.mentions}, #{i + 1})" for i, t in enumerate(cat.itertuples()) if " " in t.theme))
    sp = speed(args.customers, args.repeat)
    (w, c), (lw, lc), (bw, bc) = sp["ours"], sp["lane"], sp["baseline"]
    print(f"theme_members, demo {args.customers:,} customers ({sp['rows']:,} feedback rows, {sp['texts']:,} with text): "
          f"{w:.2f} s wall, {c:.2f} CPU-s; word count baseline {bw:.2f} s, {bc:.2f} CPU-s; ratio {w / bw:.1f}x (CPU "
          f"{c / bc:.1f}x); load {os.getloadavg()[0]:.1f}")
    print(f"the map's voice lanes (theme_members + stage_voice on All customers and 4 segments): {lw:.2f} s wall, "
          f"{lc:.2f} CPU-s; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
