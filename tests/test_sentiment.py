"""Tests for journey_analysis.sentiment: component behaviour, API contracts, accuracy floors vs VADER.

Accuracy is measured on the human-rated sets in ../shared/data/sentiment/ on the ODD rows only: the
lexicon rules and constants were tuned looking at the even rows. The learned model is evaluated
cross-dataset (trained on the other three sets, tested on Amazon snippets).
"""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from journey_analysis import sentiment as S
from journey_analysis.errors import JourneyError

_ROOT = Path(__file__).resolve().parents[1]
# ../shared/data beside the project (a git worktree one level deeper finds it two levels up)
SHARED = next((p for p in (_ROOT.parent / "shared" / "data", _ROOT.parents[1] / "shared" / "data") if p.is_dir()),
              _ROOT.parent / "shared" / "data")
DATA = SHARED / "sentiment"


def test_component_sets_doc_and_sentence_scores():
    nlp = S.get_nlp()
    assert nlp.pipe_names == ["sentencizer", "lemmatizer", "journey_sentiment"]
    doc = nlp("Great phone. But the battery died after a day!")
    sents = list(doc.sents)
    assert len(sents) == 2
    assert sents[0]._.sentiment > 0.2 and sents[1]._.sentiment < -0.2
    assert -1 <= doc._.sentiment <= 1 and doc._.sentiment < 0  # contrast: the later clause weighs more


@pytest.mark.parametrize("pos, neg", [
    ("the service was good", "the service was not good"),
    ("good", "never good"),
    ("The engineer came on time", "The engineer never came"),
    ("sorted in five minutes", "on hold for an hour"),
    ("I got my refund quickly", "still waiting for my refund"),
    ("line works fine", "got cut off twice"),
    ("the technician showed up", "the technician was a no-show"),
    ("thanks 😊", "thanks 😡"),
    ("It was slow, but the staff were lovely", "The staff were lovely, but it was slow"),
])
def test_rules_order_pairs(pos, neg):
    s = S.score([pos, neg])
    assert s.iloc[0] > s.iloc[1], (pos, neg, s.tolist())


def test_intensifiers_caps_exclamation():
    s = S.score(["good", "very good", "VERY GOOD service", "very good!!!", "not bad", "bad"]).to_numpy()
    assert s[0] < s[1] < s[3]
    assert s[2] > s[1]
    assert s[5] < 0 < s[4]
    assert S.score(["couldn't be happier"]).iloc[0] > 0.5
    assert S.score(["cancelled"]).iloc[0] < 0


def test_score_frame_status_index_and_cache(tmp_path):
    idx = [10, 3, 7, 99, 5, 42]
    texts = pd.Series(["great service!!", "", None, "Le service client est très mauvais", "great service!!",
                       "This is a long comment about the line. " * 3000], index=idx)
    f = S.score_frame(texts, cache_path=tmp_path / "cache.csv")
    assert list(f.index) == idx
    assert f["sentiment_status"].tolist() == ["scored", "empty", "empty", "not_english", "scored", "scored"]
    assert f["sentiment"].iloc[0] == f["sentiment"].iloc[4] > 0.5
    assert f["sentiment"].iloc[[1, 2, 3]].isna().all()
    assert f["sentiment"].iloc[5] == 0.0
    assert (tmp_path / "cache.csv").exists()
    S._CACHE.clear()
    g = S.score_frame(texts, cache_path=tmp_path / "cache.csv")  # reloaded from disk
    pd.testing.assert_frame_equal(f, g)
    assert S.score("no").iloc[0] < 0 or S.score("no").iloc[0] == 0  # a bare "no" is scored, not dropped


def test_deterministic():
    t = pd.Series(["on hold for ages, but sorted in the end", "meh", "Rubbish. Never again!!"])
    a = S.score(t)
    S._CACHE.clear()
    pd.testing.assert_series_equal(a, S.score(t))


_VOCAB = {
    "word": "good great bad terrible love hate happy awful slow fast helpful rude brilliant lovely poor fine ok "
            "service engineer refund app broadband the it was is and I my they me".split(),
    "boost": "very really extremely so slightly kinda barely totally quite".split(),
    "neg": "not never no don't didn't isn't can't without hardly nothing".split(),
    "turn": "but however yet although though despite".split(),
    "special": ["better", "happier", "enough", "on hold", "kept on hold", "no-show", "no show", "never came",
                "still waiting", "cut off", "never showed up", "not worth", "worth it", "waste of money",
                "couldn't be happier", "still not working"],
    "punct": [".", ",", "!", "?", "...", ";", "-", "(", ")", "!!", "??", "?!"],
    "other": ["GOOD", "NOT", "TERRIBLE", "Great", "😊", "😡", "👍", ":)", ":(", "10/10", "£29.99", "U.S.", "e.g."],
}


def _varied_texts(n=400, seed=0):
    """Seeded word soups that exercise every rule (phrases, negation windows, boosters, caps, contrast,
    punctuation, emoji, odd whitespace), plus hand-picked edge cases."""
    rng = np.random.default_rng(seed)
    kinds, weights = list(_VOCAB), np.array([6, 2, 2, 1.5, 2, 2, 1])
    out = []
    for _ in range(n):
        parts = []
        for kind in rng.choice(kinds, rng.integers(1, 26), p=weights / weights.sum()):
            parts.append(_VOCAB[kind][rng.integers(len(_VOCAB[kind]))])
        seps = rng.choice([" ", " ", " ", "", "  ", "\n"], len(parts))
        text = "".join(p + s for p, s in zip(parts, seps))
        r = rng.random()
        text = text.upper() if r < 0.1 else (" " + text if r < 0.15 else text)
        out.append(text)
    return out + [" b", "  good  ", "\nGOOD\n", "good\n", "a \n good", "NOT GOOD AT ALL", "not   good",
                  "not not good", "never not bad", "can't praise it enough", "not better", "NOT better",
                  "Not bad at all!!!", "kept on hold on hold", "although good, bad. Though terrible but great",
                  "good\x00bad", "good\u3000bad", "\u3000good", "good\t\tbad", "?", "good????", "word " * 3000,
                  "cannot", "I cannot stand it", "CANNOT recommend", "Cannot5 good", "cannots good", "cannot's bad",
                  "abc123 good 123abc", "Ünd good", "good\x85bad\u2028great"]


def test_batch_scores_equal_component_scores():
    """The vectorised batch scorer (score/score_frame) and the spaCy component (Doc._.sentiment, full
    pipeline) compute the same definition: they must agree on every text, chunking included."""
    texts = _varied_texts()
    nlp = S.get_nlp()
    ref = np.array([doc._.sentiment for doc in nlp.pipe(texts)])
    assert np.abs(ref).max() > 0.5 and (ref < -0.05).sum() > 50 and (ref > 0.05).sum() > 50  # varied
    for batch_size in (1000, 7):  # one tokenizer call, and many calls / blocks
        np.testing.assert_allclose(S._score_texts(texts, batch_size=batch_size), ref, rtol=0, atol=1e-9)
    S._CACHE.clear()
    f = S.score_frame(texts)
    scored = (f["sentiment_status"] == "scored").to_numpy()
    assert scored.mean() > 0.9
    np.testing.assert_allclose(f["sentiment"].to_numpy()[scored], ref[scored], rtol=0, atol=1e-9)


def test_fit_from_ratings_small_and_errors():
    texts = pd.Series(["great engineer quick install", "engineer never came", "on hold for an hour",
                       "lovely staff sorted it", "still waiting for a refund", "brilliant service"] * 8)
    ratings = pd.Series([5, 1, 1, 5, 1, 5] * 8)
    m = S.fit_from_ratings(texts, ratings, scale=(1, 5), n_splits=3)
    assert set(m.cv_report.index) == {"lexicon", "blended"}
    assert {"pearson_r", "accuracy_3class", "macro_f1_3class", "accuracy_2class", "n"} <= set(m.cv_report.columns)
    p = m.predict(["engineer never came", "", "brilliant staff"])
    assert p.iloc[0] < 0 < p.iloc[2] and np.isnan(p.iloc[1])
    assert ((p.dropna() >= -1) & (p.dropna() <= 1)).all()
    with pytest.raises(JourneyError):
        S.fit_from_ratings(texts, ratings * 3, scale=(1, 5))
    with pytest.raises(JourneyError):
        S.fit_from_ratings(texts[:5], ratings)


# ---------------------------------------------------------------------------------------------
# Accuracy floors against VADER on the shared human-rated sets (held-out rows)
# ---------------------------------------------------------------------------------------------
def _load_gt(name):
    return pd.read_csv(DATA / name, sep="\t", header=None, names=["id", "y", "text"], quoting=3)


def _load_uci(name):
    raw = (DATA / name).read_text(encoding="utf-8", errors="replace")
    rows = [line.rpartition("\t") for line in raw.replace("\r\n", "\r").replace("\n", "\r").split("\r") if line.strip()]
    return pd.DataFrame({"text": [r[0] for r in rows], "y": [int(r[2]) for r in rows]})


@pytest.fixture(scope="module")
def sets():
    if not DATA.exists():
        pytest.skip(f"shared human-rated sentiment sets not found at {DATA}")
    return {"tweets": _load_gt("tweets_GroundTruth.txt"),
            "amazon_snippets": _load_gt("amazonReviewSnippets_GroundTruth.txt"),
            "amazon_cells": _load_uci("amazon_cells_labelled.txt"), "yelp": _load_uci("yelp_labelled.txt")}


def _cls3(x, t):
    return np.where(x > t, 1, np.where(x < -t, -1, 0))


def _metrics(name, p, y):
    from sklearn.metrics import accuracy_score, f1_score

    p = np.nan_to_num(np.asarray(p, float))  # unscored (flagged non-English) counts as neutral
    if name in ("tweets", "amazon_snippets"):  # human mean in [-4, 4]; |mean| <= 0.5 is neutral
        return {"r": np.corrcoef(p, y)[0, 1], "f1": f1_score(_cls3(y, 0.5), _cls3(p, 0.05), average="macro")}
    pred = (p > 0.05).astype(int)  # UCI 0/1 labels: positive iff score > 0.05 (VADER's threshold)
    return {"acc": accuracy_score(y, pred), "f1": f1_score(y, pred, average="macro")}


def test_accuracy_beats_vader_on_held_out_rows(sets):
    vs = pytest.importorskip("vaderSentiment.vaderSentiment")
    vader = vs.SentimentIntensityAnalyzer()
    report = {}
    for name, df in sets.items():
        held = df.iloc[1::2].reset_index(drop=True)  # odd rows: never looked at while tuning
        ours = _metrics(name, S.score(held["text"]).to_numpy(), held["y"].to_numpy())
        theirs = _metrics(name, [vader.polarity_scores(t)["compound"] for t in held["text"]], held["y"].to_numpy())
        report[name] = (ours, theirs)
    print(report)
    for name, (ours, theirs) in report.items():
        main = "r" if "r" in ours else "acc"
        assert ours[main] >= theirs[main], (name, ours, theirs)
        # macro-F1: at least VADER's, except tweets where we trail by < 0.01 (documented)
        assert ours["f1"] >= theirs["f1"] - (0.01 if name == "tweets" else 0.0), (name, ours, theirs)
    assert report["amazon_snippets"][0]["r"] >= 0.65
    assert report["tweets"][0]["r"] >= 0.87


def test_learned_model_cross_dataset(sets):
    unit = {"tweets": lambda d: d["y"] / 4, "amazon_cells": lambda d: d["y"] * 2.0 - 1, "yelp": lambda d: d["y"] * 2.0 - 1}
    train = pd.concat([pd.DataFrame({"text": sets[k]["text"], "y": f(sets[k])}) for k, f in unit.items()],
                      ignore_index=True)
    m = S.fit_from_ratings(train["text"], train["y"], scale=(-1, 1), n_splits=2)
    assert m.wins and m.cv_report.loc["blended", "pearson_r"] > m.cv_report.loc["lexicon", "pearson_r"]
    test = sets["amazon_snippets"]
    r = np.corrcoef(m.predict(test["text"]).fillna(0).to_numpy(), test["y"].to_numpy())[0, 1]
    assert r >= 0.68  # lexicon alone ~0.655, VADER 0.590 on the same rows


def test_score_feedback_uses_learned_model_only_for_unrated_text_and_only_when_it_wins():
    from journey_analysis.datasets import make_demo
    from journey_analysis.sentiment import score_feedback

    fb = make_demo(1500, seed=0).feedback
    out, models = score_feedback(fb, "csat", (1, 5), min_rated=200)
    assert models is not None and models.wins
    model = models.english
    assert model.cv_report.loc["blended", "pearson_r"] > model.cv_report.loc["lexicon", "pearson_r"]
    rated = out["rating"].notna() & (out["sentiment_status"] == "scored")
    assert (out.loc[rated, "sentiment_source"] == "lexicon").all()          # ratings stay independent
    assert (out.loc[rated, "sentiment"] == S.score(out.loc[rated, "text"])).all()
    learned = out["sentiment_source"] == "learned"
    assert learned.any() and out.loc[learned, "rating"].isna().all()
    assert out.loc[out["sentiment_status"] != "scored", "sentiment_source"].eq("none").all()
    # too few ratings: lexicon only, no model
    few, none_model = score_feedback(fb.head(50), "csat", (1, 5), min_rated=200)
    assert none_model is None and set(few["sentiment_source"]) <= {"lexicon", "none"}


# ---------------------------------------------------------------------------------------------
# Other languages: models learned from the organisation's ratings (benchmarks/bench_voice.py has the
# full sets; here a seeded subset of each, same protocol)
# ---------------------------------------------------------------------------------------------
def _bench_voice():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_voice", _ROOT / "benchmarks" / "bench_voice.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name, n", [("b2w (pt, stars 1-5)", 2000), ("germeval2017 (de, neg/neu/pos)", 1600)])
def test_other_language_scored_from_hidden_ratings_at_least_baseline(name, n):
    """Half the ratings hidden; score_feedback scores the hidden half with the model learned from the
    visible half: at least the char-n-gram + ridge baseline's Spearman, 95%+ scored, language on 90%+."""
    bv = _bench_voice()
    df, scale = bv.load_sets(n)[name]
    r = bv.evaluate(df, scale, seed=0)
    print(name, {k: v for k, v in r.items() if k != "cv_report"})
    assert r["share_hidden_scored"] >= 0.95 and r["share_language_identified"] >= 0.90
    assert r["spearman_ours"] >= r["spearman_baseline"] - 0.005, r
    rep = r["cv_report"].reset_index()
    assert rep["language"].tolist() == [name.split("(")[1][:2]] and rep["used"].all()


def test_score_feedback_cross_fits_rated_texts_and_reports_unscored_languages():
    """A language with ratings: every rated text's score comes from a model that did not see it (changing
    a text's own rating leaves its score unchanged); a language with neither lexicon nor ratings is
    counted as not scored; English keeps the lexicon."""
    bv = _bench_voice()
    df, _ = bv.load_sets(600)["b2w (pt, stars 1-5)"]
    fb = pd.DataFrame({"feedback_id": [f"p{i}" for i in range(len(df))], "text": df["text"].to_numpy(),
                       "rating": df["truth"].to_numpy(dtype=float), "rating_type": "stars"})
    extra = pd.DataFrame({"feedback_id": ["e1", "e2", "x1"], "text": ["The delivery never came, still waiting",
                          "Great product, arrived early", "Der Techniker ist nie gekommen und niemand hat mir geholfen"],
                          "rating": [np.nan] * 3, "rating_type": "stars"})
    fb = pd.concat([fb, extra], ignore_index=True)
    out, models = S.score_feedback(fb, "stars", (1, 5), min_rated=200)
    pt = out["language"].eq("pt")
    assert pt.mean() > 0.95
    assert out.loc[pt & fb["rating"].notna(), "sentiment_source"].eq("learned_cv").all()
    assert models.languages["pt"].used and models.cv_report.loc[("pt",), "spearman"].iloc[0] > 0.4
    e = out.set_index("feedback_id")
    assert e.loc["e1", "sentiment_source"] == "lexicon" and e.loc["e1", "sentiment"] < 0 < e.loc["e2", "sentiment"]
    assert e.loc["x1", "language"] == "de" and e.loc["x1", "sentiment_status"] == "not_scored"
    rep = S.language_report(out)
    assert rep.loc["de", "how"] == "not scored" and rep.loc["de", "feedback_n"] == 1
    assert rep.loc["pt", "how"] == "learned from ratings" and rep.loc["pt", "share_scored"] == 1.0
    assert "German (1)" in S.language_sentence(out)
    # cross-fitting: flipping one rated text's own rating does not move its score
    i = int(np.flatnonzero(pt & fb["rating"].eq(5))[0])
    flipped = fb.copy()
    flipped.loc[i, "rating"] = 1.0
    out2, _ = S.score_feedback(flipped, "stars", (1, 5), min_rated=200)
    assert out2["sentiment"].iloc[i] == out["sentiment"].iloc[i]


def test_other_languages_fitted_in_a_forked_process_give_the_same_scores(monkeypatch):
    """With English and another rated language, the other language's model is fitted in a forked process
    (journey_analysis.aside) while the English one is fitted here: the scores and reports are those of
    fitting both here, also when the forked process fails (refitted here); no process is left behind."""
    import os

    import psutil

    from journey_analysis import aside
    from journey_analysis.datasets import make_demo

    bv = _bench_voice()
    df, _ = bv.load_sets(600)["b2w (pt, stars 1-5)"]
    en = make_demo(1500, seed=0).feedback
    pt = pd.DataFrame({"feedback_id": [f"p{i}" for i in range(len(df))], "text": df["text"].to_numpy(),
                       "rating": df["truth"].to_numpy(dtype=float), "rating_type": "csat"})
    fb = pd.concat([en, pt], ignore_index=True)
    forked = []

    class Spy(aside.Aside):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            forked.append(self.forked)

    monkeypatch.setattr(S, "Aside", Spy)
    out, models = S.score_feedback(fb, "csat", (1, 5), min_rated=200)
    assert forked == [True] and models.english is not None and models.languages["pt"].used
    class Here:  # everything fitted in this process
        def __init__(self, fn, *a):
            self.call = (fn, a)
            forked.append(False)

        def result(self):
            return self.call[0](*self.call[1])

    monkeypatch.setattr(S, "Aside", Here)
    here, here_models = S.score_feedback(fb, "csat", (1, 5), min_rated=200)
    monkeypatch.setattr(S, "Aside", Spy)
    assert forked == [True, False]
    conf = "language_confidence"   # lingua's parallel sums vary by ~1e-16 between runs
    pd.testing.assert_frame_equal(out.drop(columns=conf), here.drop(columns=conf), check_exact=True)
    assert np.allclose(out[conf], here[conf], rtol=0, atol=1e-12, equal_nan=True)
    pd.testing.assert_frame_equal(models.cv_report, here_models.cv_report)
    parent, fit = os.getpid(), S._fit_language_models

    def fails_in_the_child(*a):
        if os.getpid() != parent:
            raise MemoryError("child")
        return fit(*a)

    monkeypatch.setattr(S, "_fit_language_models", fails_in_the_child)
    again, _ = S.score_feedback(fb, "csat", (1, 5), min_rated=200)
    assert forked == [True, False, True]
    pd.testing.assert_frame_equal(again.drop(columns=conf), here.drop(columns=conf), check_exact=True)
    assert not psutil.Process().children(recursive=True)


def test_french_tokenizer_without_its_compiled_pattern_gives_spacys_tokens():
    """spaCy's French ``token_match`` answered by the relaxed alternatives (S._LazyPattern) is truthy
    exactly when the compiled pattern matches, and the tokenizer splits text as spaCy's own does."""
    import subprocess
    import sys

    # a fresh interpreter: French must not be imported yet for the lazy pattern to be installed
    code = r'''
import random, re, sys
import spacy
from journey_analysis import sentiment as S
nlp = S._blank("fr")
lazy = nlp.tokenizer.token_match.__self__
assert isinstance(lazy, S._LazyPattern) and lazy._full is None
texts = ["Tout s'est bien passé, merci beaucoup.", "Très déçu, personne ne m'a aidé aujourd'hui.",
         "Le technicien est-il venu ? Peut-être après-midi, au-delà du rendez-vous.",
         "Un anti-virus, un saut-de-ski, pet-en-l'air, entr'abat, grand'mère, z'yeutent et prud'hommes.",
         "Qu'est-ce que c'est ? Est-ce l'abonnement ? ch'tiis AUJOURD'HUI rock-and-roll"]
mod = sys.modules["spacy.lang.fr.tokenizer_exceptions"]
words = {w for t in texts for w in t.split()} | set(mod.TOKENIZER_EXCEPTIONS)
rng = random.Random(0)
for _ in range(20000):
    words.add("".join(rng.choice("abceéèàçio'’-‐ZRE") for _ in range(rng.randint(1, 12))))
for m in mod._regular_exp:  # strings shaped like each alternative
    w = re.sub(r"\[[^\]]*\][+*]?|\^|\$|\?", "", m).replace("(:l)", "")
    words.update([w, w + "e", "x" + w, w.upper(), w.replace("-", "'")])
lazy_tokens = [[t.text for t in d] for d in nlp.tokenizer.pipe(texts)]
assert lazy._full is None  # never compiled whole
full = re.compile(lazy.pattern, lazy.flags)
bad = [w for w in words if bool(lazy.match(w)) != bool(full.match(w))]
assert not bad, bad[:5]
assert sum(bool(full.match(w)) for w in words) > 50  # the comparison includes matching strings
ref = spacy.blank("fr")
ref.tokenizer.token_match = full.match
assert [[t.text for t in d] for d in ref.tokenizer.pipe(texts)] == lazy_tokens
print("ok", len(words))
'''
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("ok")
