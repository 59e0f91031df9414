"""Themes as subjects (journey_analysis.themes): hand-made cases, the demo, and real comments in three
languages (SemEval-2014 restaurant sentences, B2W Portuguese reviews, GermEval German rail feedback)."""
from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from journey_analysis import themes as T
from journey_analysis.text import lookups_table
from journey_analysis.errors import JourneyError

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data")
SENT = SHARED / "sentiment"

FB = pd.DataFrame({
    "feedback_id": [f"f{i}" for i in range(10)],
    "stage": ["install"] * 5 + ["support"] * 5,
    "text": ["The engineer never came, call me on 07700 900123", "Engineer never came and I am still waiting",
             "Great engineer, quick install!", "Quick install, great engineer and very friendly",
             "Great engineer, quick install!",
             "Support was rude and unhelpful", "I was cut off twice and still waiting. Awful.",
             "Lovely support staff, sorted it quickly", "Support staff sorted it quickly, lovely people",
             "Il servizio è pessimo"],
    "rating": [1, 1, 5, 5, 5, 1, 1, 5, 5, 1], "rating_type": "csat",
})


def test_members_trace_every_count():
    m = T.theme_members(FB)
    assert list(m.columns) == ["feedback_id", "theme", "language"]
    assert not m.duplicated(["feedback_id", "theme"]).any()
    eng = set(m.loc[m.theme == "engineer", "feedback_id"])
    assert eng == {"f0", "f1", "f2", "f3", "f4"}
    assert not m.theme.str.lower().isin(["great", "quick", "friendly", "lovely", "phone", "07700"]).any()
    th = T.themes(FB, by="stage", members=m)
    assert list(th.columns) == ["stage", "theme", "mentions", "share", "sentiment_mean", "share_negative",
                                "negative_n", "positive_n", "quotes"]
    row = th[(th.stage == "install") & (th.theme == "engineer")].iloc[0]
    assert row["mentions"] == 5 and row["share"] == 1.0 and row["negative_n"] == 2
    # every count is the number of member rows of that stage
    j = m.merge(FB[["feedback_id", "stage"]], on="feedback_id")
    counts = j.groupby(["stage", "theme"]).size()
    assert all(counts[(r.stage, r.theme)] == r.mentions for r in th.itertuples())
    assert all("07700" not in q for qs in th["quotes"] for q in qs)
    overall = T.themes(FB, members=m)
    assert "stage" not in overall.columns and overall.iloc[0]["theme"] == "engineer"


def test_empty_and_missing():
    assert T.theme_members(None).empty and T.theme_members(FB.iloc[0:0]).empty
    assert T.themes(FB.drop(columns="text")).empty
    assert T.theme_members(pd.DataFrame({"text": ["", None]})).empty


def test_quotes_redacted_deduplicated_short():
    q = T.quotes(FB, by="stage", n=3)
    assert list(q.columns) == ["stage", "polarity", "quote", "sentiment", "feedback_id"]
    assert not q["quote"].str.contains("07700").any()
    assert q["quote"].str.contains(r"\[PHONE\]").any()
    ip = q[(q.stage == "install") & (q.polarity == "positive")]
    assert len(ip) == 2  # the repeated "Great engineer, quick install!" appears once
    assert (q["quote"].str.len() <= 200).all()
    assert "f9" not in set(q.feedback_id)  # not English: not scored, not quoted
    lq = T.quotes(pd.DataFrame({"stage": ["x"], "feedback_id": ["1"], "text": ["The wait was terrible. " * 30]}))
    assert len(lq.quote.iloc[0]) <= 200 and lq.quote.iloc[0].endswith(".")
    with pytest.raises(JourneyError):
        T.quotes(FB, by="segment")


def test_quotes_typical_not_extreme():
    fb = pd.DataFrame({"stage": "s", "feedback_id": [str(i) for i in range(5)],
                       "text": ["good", "good service overall", "AMAZING!!! best ever!!!", "fine, good enough", "nice"]})
    assert T.quotes(fb, n=1)["feedback_id"].iloc[0] != "2"


def test_stage_voice_negative_theme_quote():
    v = T.stage_voice(FB.assign(segment="All"), ["segment", "stage"], n_quotes=2)
    inst = v.set_index("stage").loc["install"]
    assert inst["top_negative_theme"] == "engineer"
    assert inst["themes_negative"].startswith("engineer (2)")
    assert "never came" in inst["negative_theme_quote"] and "07700" not in inst["negative_theme_quote"]
    assert len(inst["quotes"]) == 2


# ---------------------------------------------------------------------------------------------
# Real comments
# ---------------------------------------------------------------------------------------------
def _semeval():
    root = ET.parse(SHARED / "themes" / "semeval2014_restaurants_train.xml").getroot()
    rows = [(s.get("id"), s.find("text").text, [c.get("category") for c in s.iter("aspectCategory")])
            for s in root.iter("sentence")]
    return pd.DataFrame(rows, columns=["feedback_id", "text", "categories"])


def test_semeval_themes_are_subjects_of_their_category():
    """The SemEval criteria of issue 14 (benchmarks/bench_themes.py prints the figures)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_themes", ROOT / "benchmarks" / "bench_themes.py")
    bt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bt)
    r = bt.evaluate(_semeval())
    assert r["ours"]["opinion_words"] <= 1
    assert r["ours"]["mean_lift"] >= 1.5 * r["baseline"]["mean_lift"]
    assert set(r["categories_5pct"]) == {"food", "service", "price", "ambience", "anecdotes/miscellaneous"}
    assert set(r["categories_5pct"]) <= set(r["ours"]["main_categories"])
    t = r["ours"]["table"].set_index("theme")
    assert t.loc["atmosphere", "main"] == "ambience"  # atmosphere, ambience and ambiance: one theme


def test_fixed_phrases_are_not_themes():
    """Nouns of fixed phrases name no subject: a plural never used in the singular nor after "the"/"my"
    ("on hold for ages", "no complaints"), and a noun inside an expression WordNet lists as an adverb
    ("four times"); the same words used as subjects stay."""
    texts = (["I was on hold for ages"] * 3 + ["Quick install. No complaints"] * 3 + ["I had to call four times"] * 3
             + ["The speeds are slow"] * 3 + ["the time it took was long"] * 2 + ["My complaint was ignored"] * 2)
    fb = pd.DataFrame({"feedback_id": [str(i) for i in range(len(texts))], "text": texts, "language": "en"})
    m = T.theme_members(fb)
    themes = set(m["theme"])
    assert not {"ages", "times"} & themes
    assert {"hold", "speeds", "time", "complaints"} <= themes | {"complaint"}
    assert set(m.loc[m.theme == "time", "feedback_id"]) == {"12", "13"}  # not the "four times" comments
    terms = pd.DataFrame(m.attrs["terms"]).set_index("term")
    assert terms.loc["age", "reason"].startswith("fixed phrase")
    alone = T.theme_members(fb.iloc[:6])  # "complaints" only in "no complaints": a fixed phrase
    assert not {"ages", "complaints"} & set(alone["theme"])


def test_english_synonyms_are_one_theme():
    """Words whose most frequent WordNet sense is one synset are one theme, labelled by the most used;
    words that only share a rarer sense stay apart."""
    texts = (["The atmosphere was noisy"] * 3 + ["Loved the ambience"] * 2 + ["the ambiance is dark"] * 2
             + ["Our waiter forgot us"] * 3 + ["the server was slow"] * 2 + ["The price was fair"] * 2 + ["the cost is high"] * 2)
    fb = pd.DataFrame({"feedback_id": [str(i) for i in range(len(texts))], "text": texts, "language": "en"})
    m = T.theme_members(fb)
    cat = pd.DataFrame(m.attrs["themes"]).set_index("theme")
    assert set(cat.loc["atmosphere", "members"].split(", ")) == {"atmosphere", "ambience", "ambiance"}
    assert cat.loc["atmosphere", "mentions"] == 7
    assert cat.loc["waiter", "members"] == "waiter, server"
    assert set(m.loc[m.theme == "waiter", "feedback_id"]) == {"7", "8", "9", "10", "11"}
    assert {"price", "cost"} <= set(cat.index)  # price and cost share only price's second sense
    de = T.theme_members(fb.assign(language="de", text=["Der Zug", "Die Bahn"] * 8))
    assert set(de["theme"]) == {"Zug", "Bahn"}  # no synonym table for German: forms only


def test_two_word_names_are_one_theme():
    """A two-word name customers write as a unit is one theme labelled by the name (its forms of one lemma
    pair together); the word bound to it is no theme of its own, the other word keeps its comments. Not
    names: a comment's capitalised first words ("Montag Abend war ..."), lower-case phrases ("wine list")."""
    de = (["Ich fahre mit der Deutschen Bahn"] * 3 + ["Die Deutsche Bahn ist zu spät"] * 3 + ["Die Bahn kommt nie"] * 4
          + ["Montag Abend war der Zug voll"] * 4 + ["Der Service war gut"] * 2 + ["Der Zug war leer"])
    fb = pd.DataFrame({"feedback_id": [str(i) for i in range(len(de))], "text": de, "language": "de"})
    m = T.theme_members(fb)
    assert not m.duplicated(["feedback_id", "theme"]).any()
    cat = pd.DataFrame(m.attrs["themes"]).set_index("theme")
    assert cat.loc["Deutsche Bahn", "mentions"] == 6
    assert set(m.loc[m.theme == "Deutsche Bahn", "feedback_id"]) == {str(i) for i in range(6)}
    assert cat.loc["Bahn", "mentions"] == 10  # "Bahn" keeps the comments of the name
    assert "Deutsche" not in cat.index and "Montag Abend" not in cat.index
    terms = pd.DataFrame(m.attrs["terms"])
    assert terms.set_index("label").loc["Deutsche", "reason"] == "part of the name 'Deutsche Bahn'"
    assert terms.set_index("label").loc["Montag", "kept"]  # a subject word (capitalised), not bound to a name
    en = (["I ordered from Pad Thai Express"] * 3 + ["the pad thai was cold"] + ["the Pad Thai was great"] * 2
          + ["The wine list is long"] * 3 + ["the wine was cheap"] * 3 + ["We love the list of wines"])
    m = T.theme_members(pd.DataFrame({"feedback_id": [str(i) for i in range(len(en))], "text": en, "language": "en"}))
    themes = set(m["theme"])
    assert "Pad Thai" in themes and "wine list" not in themes and "wine" in themes
    assert set(m.loc[m.theme == "Pad Thai", "feedback_id"]) == {str(i) for i in range(6)}


def test_b2w_portuguese_themes_name_subjects():
    b = pd.read_csv(SENT / "b2w_10k.csv", usecols=["review_text"]).rename(columns={"review_text": "text"})
    b = b.assign(language="pt", feedback_id=b.index.astype(str))
    m = T.theme_members(b)
    cat = pd.DataFrame(m.attrs["themes"])
    top = cat["theme"].str.lower().head(12).tolist()
    assert {"produto", "entrega", "prazo"} <= set(top)
    opinion = {"ótimo", "ótima", "bom", "boa", "ruim", "excelente", "recomendo", "péssimo", "gostei", "perfeito"}
    assert not opinion & set(cat["theme"].str.lower().head(30))
    # the retailer's name is one theme; "Americanas" alone and "loja" (store) stay themes
    names = [t for t in cat["theme"] if " " in t]
    assert names == ["Lojas Americanas"]
    assert {"Americanas", "loja"} <= set(cat["theme"])
    # no synonym table for Portuguese: MultiWordNet's shared senses were measured and left out (README);
    # words it would have joined wrongly stay apart
    words = ["máquina", "motor", "esposa", "marido", "resolução", "escolha", "filme", "película"]
    terms = pd.DataFrame(m.attrs["terms"]).set_index("term")
    assert terms.loc[words, "theme"].notna().all() and terms.loc[words, "theme"].nunique() == len(words)


def test_germeval_german_themes_name_subjects():
    parts = [pd.read_csv(SENT / f"germeval2017_de_{p}.tsv", sep="\t", header=None, quoting=csv.QUOTE_NONE,
                         usecols=[1]).set_axis(["text"], axis=1) for p in ("dev", "test")]
    g = pd.concat(parts, ignore_index=True).assign(language="de")
    cat = pd.DataFrame(T.theme_members(g).attrs["themes"])
    top = cat["theme"].head(30).tolist()
    assert {"Bahn", "Zug", "S-Bahn"} <= set(top)
    assert not {"fahren", "gut", "schlecht", "toll", "super"} & {t.lower() for t in top}
    assert "Verspätung" in cat["theme"].head(60).tolist()
    # "Deutsche Bahn" (and "Deutschen Bahn") is one theme; "Deutsche" is no theme of its own
    assert top.index("Deutsche Bahn") <= 2 and "Deutsche" not in set(cat["theme"])
    names = set(t for t in cat["theme"] if " " in t)
    assert {"DB Regio", "DB Navigator", "Lokführergewerkschaft GDL", "Süddeutsche Zeitung"} <= names
    assert len(names) <= 15


def test_demo_themes(demo_feedback):
    fb = demo_feedback
    m = T.theme_members(fb)
    words = set(m["theme"].str.lower())
    assert not words & {"leave", "happen", "great", "good", "bad", "happy", "quick", "easy"}
    assert not words & {"ages", "complaints", "times"}  # "hold for ages", "no complaints", "call four times"
    v = T.stage_voice(fb.assign(segment="All"), ["segment", "stage"], members=m).set_index("stage")
    neg_support = v.loc["support", "themes_negative"]
    assert "hold" in neg_support and "agent" in neg_support
    assert v.loc["onboarding", "top_negative_theme"] == "engineer"
    q = v.loc["onboarding", "negative_theme_quote"].lower()
    assert "engineer" in q


@pytest.fixture(scope="module")
def demo_feedback():
    from journey_analysis import sentiment

    fb = pd.read_csv(ROOT / "data" / "raw" / "demo" / "feedback.csv.gz", keep_default_na=False, dtype=str)
    fb = fb[fb["text"] != ""].reset_index(drop=True)
    fb["sentiment"] = sentiment.score_frame(fb["text"])["sentiment"].to_numpy()
    return fb


def _count_vectorizer(texts):
    from sklearn.feature_extraction.text import CountVectorizer

    cv = CountVectorizer(lowercase=False, token_pattern=T._TOKEN, ngram_range=(1, 2), binary=True, dtype=np.int32)
    return cv.fit_transform(texts).tocsc(), cv.get_feature_names_out()


def test_word_matrix_is_count_vectorizers():
    """The words-and-word-pairs matrix equals scikit-learn's CountVectorizer (lowercase=False, the token
    pattern, ngram_range=(1, 2), binary) entry for entry, terms in the same order: on real comments in
    three languages (SemEval, B2W, GermEval; apostrophes, hyphens, accents, digits, empty texts), and when
    a text holds the NUL the one-pass tokenizer joins texts with (then one pass per text)."""
    b2w = pd.read_csv(SENT / "b2w_10k.csv", usecols=["review_text"], nrows=3000)["review_text"]
    ge = pd.read_csv(SENT / "germeval2017_de_dev.tsv", sep="\t", header=None, quoting=csv.QUOTE_NONE, usecols=[1])[1]
    sets = [_semeval()["text"], b2w, ge]
    sets += [pd.Series(["", "The engineer's van", "", "ok", "!!", "", "rock-solid  Wi-Fi’s 4G router"]),
             pd.Series(["one\x00two three", "four\x00", "", "five six"])]
    for texts in sets:
        texts = texts.fillna("").astype(str).tolist()
        X0, v0 = _count_vectorizer(texts)
        X1, v1 = T._word_matrix(texts)
        assert list(v1) == list(v0)
        assert X1.dtype == X0.dtype and X1.shape == X0.shape
        assert np.array_equal(X1.indptr, X0.indptr) and np.array_equal(X1.indices, X0.indices)
        assert np.array_equal(X1.data, X0.data)
    X, v = T._word_matrix(["", "123 !!"])
    assert X.shape == (2, 0) and len(v) == 0
    assert T.theme_members(pd.DataFrame({"text": ["123", "!!"], "language": "en"})).empty


def test_lookup_tables_are_spacys():
    """The lemma tables and WordNet's word lists are read from spacy-lookups-data's files as spaCy reads them."""
    from spacy.lookups import load_language_data, load_lookups
    from spacy.util import registry

    for lang in T.LEMMA_TABLES:
        assert lookups_table(lang, "lemma_lookup") == load_language_data(registry.lookups.get(lang)["lemma_lookup"])
    t = load_lookups("en", ["lemma_index"]).get_table("lemma_index")
    ours = lookups_table("en", "lemma_index")
    for p in ("noun", "verb", "adj", "adv"):
        assert ours[p] == t.get(p)
    assert lookups_table("xx", "lemma_lookup") is None
