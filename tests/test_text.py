"""Tests for journey_analysis.text: PII redaction corpus and language identification (lingua + fast path)."""
import numpy as np
import pandas as pd
import pytest

from journey_analysis.text import detect_language, redact

# (input, expected output) - tricky cases; numbers that are not personal data must survive.
REDACT_CASES = [
    # e-mails
    ("Mail me at jane.doe+test@example.co.uk please", "Mail me at [EMAIL] please"),
    ("JOHN_SMITH@Mail.COM wrote twice", "[EMAIL] wrote twice"),
    ("contact: a.b-c@sub.domain.org.", "contact: [EMAIL]."),
    ("the @ sign and @handle stay", "the @ sign and @handle stay"),
    # phones, UK
    ("Call me on 07700 900123 after 5", "Call me on [PHONE] after 5"),
    ("my number is 07700900123", "my number is [PHONE]"),
    ("landline (020) 7946 0958 anytime", "landline [PHONE] anytime"),
    ("ring 0161-496-0000 now", "ring [PHONE] now"),
    ("Freephone 0800 123 4567.", "Freephone [PHONE]."),
    ("+44 7700 900123 is mine", "[PHONE] is mine"),
    ("+44 (0)20 7946 0958", "[PHONE]"),
    # phones, US and international
    ("call (555) 123-4567 today", "call [PHONE] today"),
    ("555-123-4567 or 555.123.4567", "[PHONE] or [PHONE]"),
    ("dial 1-800-555-0199 for help", "dial [PHONE] for help"),
    ("+1 555 123 4567", "[PHONE]"),
    ("in Paris +33 1 23 45 67 89 ok", "in Paris [PHONE] ok"),
    ("Berlin +49 30 1234567", "Berlin [PHONE]"),
    # cards (Luhn valid) and lookalikes (Luhn invalid)
    ("card 4111 1111 1111 1111 was charged", "card [CARD] was charged"),
    ("card 4111-1111-1111-1111", "card [CARD]"),
    ("amex 378282246310005 ok", "amex [CARD] ok"),
    ("ref 4111111111111112 failed", "ref 4111111111111112 failed"),
    # IBANs
    ("pay to GB82 WEST 1234 5698 7654 32 thanks", "pay to [IBAN] thanks"),
    ("IBAN DE89370400440532013000.", "IBAN [IBAN]."),
    ("code GB00WEST12345698765432 invalid", "code GB00WEST12345698765432 invalid"),
    # URLs
    ("reset at https://acme.com/reset?token=abc123XYZ now", "reset at [URL] now"),
    ("see https://acme.com/t/9fQ2kLm8ZpX4rT7vW1yB/confirm.", "see [URL]."),
    ("https://user:pa55@acme.com/x", "[URL]"),
    ("visit www.acme.com/help for info", "visit www.acme.com/help for info"),
    ("(see https://acme.com/faq)", "(see https://acme.com/faq)"),
    # postcodes
    ("I live at SW1A 1AA in London", "I live at [POSTCODE] in London"),
    ("moved to M1 1AE last year", "moved to [POSTCODE] last year"),
    ("Springfield, IL 62704", "Springfield, IL [POSTCODE]"),
    ("zip code 90210 area", "zip code [POSTCODE] area"),
    ("ZIP: 10001-1234", "ZIP: [POSTCODE]"),
    # things that must stay
    ("It cost £29.99 a month, now $1,234.56", "It cost £29.99 a month, now $1,234.56"),
    ("engineer booked 12/03/2024 at 10:30", "engineer booked 12/03/2024 at 10:30"),
    ("on 2024-03-12 between 14:00-16:00", "on 2024-03-12 between 14:00-16:00"),
    ("order 12345678 still not here", "order 12345678 still not here"),
    ("order #A-1002345 and ticket 98765", "order #A-1002345 and ticket 98765"),
    ("only getting 500 Mbps of 900 Mbps", "only getting 500 Mbps of 900 Mbps"),
    ("5GB plan, 4G and 5G signal", "5GB plan, 4G and 5G signal"),
    ("waited 45 minutes, 3 calls, 2 engineers", "waited 45 minutes, 3 calls, 2 engineers"),
    ("account 12345678, sort code 12-34-56", "account 12345678, sort code 12-34-56"),
    ("version 2.4.1 of the app", "version 2.4.1 of the app"),
    ("12.03.2024 and 1,000,000 customers", "12.03.2024 and 1,000,000 customers"),
    ("room 101, floor 3", "room 101, floor 3"),
    ("in 2023 I paid 1200 in total", "in 2023 I paid 1200 in total"),
    ("", ""),
]


def test_redaction_corpus():
    assert len(REDACT_CASES) >= 40
    s = pd.Series([c[0] for c in REDACT_CASES], index=range(100, 100 + len(REDACT_CASES)))
    got = redact(s)
    assert list(got.index) == list(s.index)
    bad = [(i, o, e) for (i, e), o in zip(REDACT_CASES, got) if o != e]
    assert not bad, bad


def test_redact_str_and_missing():
    assert redact("call 07700 900123") == "call [PHONE]"
    s = pd.Series(["x@y.com", None, float("nan")], name="text")
    out = redact(s)
    assert out.iloc[0] == "[EMAIL]" and pd.isna(out.iloc[1]) and pd.isna(out.iloc[2])
    assert out.name == "text"


ENGLISH = [
    "great service!!", "no", "ok", "meh", "gr8 ppl, fast fix lol", "👍", ":)", "Refund please",
    "The engineer never came and I was on hold for an hour", "Shocking. Cut off twice this week.",
    "I waited three days for the router and nobody called me back", "The app keeps logging me out",
    "Lovely staff in the shop, they sorted my contract in ten minutes", "Why is my bill higher this month?",
    "The installer was on time and very polite", "I have been a customer for years and this is the worst",
    "Broadband drops every evening, it is not what I pay for", "Thanks for fixing it so quickly",
    "It was fine, nothing special", "Support chat was useless, the agent did not read my messages",
]
# as in real feedback, other languages are a small minority: 100 more distinct English comments
ENGLISH += [f"{a} {b}" for a in ("Honestly,", "Overall", "To be fair", "Sadly", "Well,")
            for b in ENGLISH[8:]]
LANG_CASES = [(t, "en") for t in ENGLISH] + [
    ("Le service client est très mauvais, je suis déçu", "fr"), ("Très bien, merci pour tout", "fr"),
    ("Der Techniker ist nie gekommen", "de"), ("Sehr gut, danke!", "de"),
    ("El servicio es muy malo y nadie me ayuda", "es"), ("Il servizio è pessimo, non tornerò", "it"),
    ("De monteur is nooit gekomen", "nl"), ("サービスがとても良かった", "ja"),
]


def test_identify_languages_mixed_feedback():
    """English-majority feedback with a few comments in other languages: each gets its language, short
    English texts and emoji the data's main language, empty text no language."""
    from journey_analysis.text import identify_languages

    s = pd.Series([c[0] for c in LANG_CASES] + ["", "   ", None], index=range(100, 100 + len(LANG_CASES) + 3))
    got = identify_languages(s)
    assert list(got.index) == list(s.index)
    assert list(got.columns) == ["language", "language_confidence", "language_rule"]
    want = [c[1] for c in LANG_CASES]
    bad = [(t, g, w) for t, g, w in zip(s, got["language"], want) if g != w]
    assert not bad, bad
    assert got["language"].iloc[-3:].isna().all() and got["language_rule"].iloc[-3:].eq("empty").all()
    assert got["language_confidence"].iloc[:-3].between(0, 1).all()
    assert set(got["language_rule"].iloc[:-3]) <= {"fast", "lingua", "lingua_all", "short", "no_letters"}
    assert got.attrs["languages"] and next(iter(got.attrs["languages"])) == "en"
    assert detect_language("no").iloc[0] == "en"
    pd.testing.assert_frame_equal(got, identify_languages(s))  # deterministic


def test_identify_languages_configured_and_errors():
    from journey_analysis.errors import JourneyError
    from journey_analysis.text import identify_languages

    got = identify_languages(["O produto veio estragado", "Entrega rápida, recomendo", "ok", "The box was damaged"],
                             languages=["pt", "en"])
    assert got["language"].tolist() == ["pt", "pt", "pt", "en"] or got["language"].tolist()[:2] == ["pt", "pt"]
    assert got.attrs["languages"] == {"pt": 0.5, "en": 0.5}
    assert got["language"].iloc[3] == "en"
    with pytest.raises(JourneyError, match="unknown language"):
        identify_languages(["x"], languages=["english"])


_ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
SHARED = next((p for p in (_ROOT.parent / "shared" / "data", _ROOT.parents[1] / "shared" / "data") if p.is_dir()),
              _ROOT.parent / "shared" / "data")


def _real_sets(n=800):
    import csv

    d = SHARED / "sentiment"
    pt = pd.read_csv(d / "b2w_10k.csv", usecols=["review_text"])["review_text"].dropna().drop_duplicates().head(n)
    de = pd.concat([pd.read_csv(d / f, sep="\t", header=None, quoting=csv.QUOTE_NONE, usecols=[1])[1]
                    for f in ("germeval2017_de_dev.tsv", "germeval2017_de_test.tsv")]).dropna().drop_duplicates().head(n)
    en = pd.read_csv(d / "tweets_GroundTruth.txt", sep="\t", header=None, quoting=3)[2].drop_duplicates().head(n)
    return {"pt": pt.reset_index(drop=True), "de": de.str[:1000].reset_index(drop=True), "en": en.reset_index(drop=True)}


def test_identify_languages_on_real_feedback():
    """Portuguese reviews, German rail feedback and English tweets: the sample finds the language, at
    least 98% of the texts get it, and the stop-word fast path agrees with lingua wherever it decides."""
    from journey_analysis.text import _detector, identify_languages

    for code, texts in _real_sets().items():
        got = identify_languages(texts)
        assert next(iter(got.attrs["languages"])) == code, (code, got.attrs)
        share = got["language"].eq(code).mean()
        assert share >= 0.98, (code, share, got["language"].value_counts().head())
        fast = got["language_rule"].eq("fast")
        assert fast.mean() > 0.4, (code, fast.mean())
        # lingua with the candidates and six neighbours, on 200 of the fast-path texts
        pool = tuple(sorted(set(got.attrs["languages"]) | {"en", "de", "pt", "es", "fr", "it", "nl"}))
        some = texts[fast].iloc[:200]
        ref = _detector(pool).detect_languages_in_parallel_of(some.tolist())
        ref = pd.Series([r.iso_code_639_1.name.lower() if r else "und" for r in ref], index=some.index)
        decided = ref != "und"
        agree = (ref[decided] == got.loc[some.index[decided], "language"]).mean()
        assert agree >= 0.98 and decided.mean() > 0.9, (code, agree, decided.mean())


def test_chunk_texts_same_as_str_split():
    """chunk_texts (pyarrow's whitespace split, deduplicated) gives each text's str.split() chunks, NUL as
    whitespace, every Python whitespace character included; texts pyarrow cannot encode take the
    Python path with the same result."""
    import sys

    from journey_analysis.text import chunk_texts

    spaces = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()] + ["\x00"]
    rng = np.random.default_rng(3)
    alphabet = spaces + list("ab,'.!😀éİΣ")
    texts = ["".join(rng.choice(alphabet, rng.integers(0, 14))) for _ in range(3000)] + ["", " ", "\x00", "x"]
    for case in (texts, texts[:50] + ["bad \udcff surrogate", "ok"], [], ["only"]):
        occ, uniq = chunk_texts(case)
        assert uniq[0] == "" and "" not in uniq[1:] and len(set(uniq)) == len(uniq)
        assert (occ == 0).sum() == len(case)
        got, cur = [], []
        for c in occ.tolist():
            if c == 0:
                got.append(cur)
                cur = []
            else:
                cur.append(uniq[c])
        assert got == [t.replace("\x00", " ").split() for t in case]


def test_word_stats_per_chunk_equal_per_text():
    """The stop-word counts read once per distinct chunk equal a plain per-text count (lower-case the
    text, cut it into words, count the words that are stop words of exactly one language)."""
    import re

    from journey_analysis.text import GUARD_LANGUAGES, _stop_bits, _word_stats

    texts = [t for s in _real_sets(300).values() for t in s] + ["İSTANBUL Straße ΣΑΣ", "the\x00and", "", "123 ²"]
    hits, letters = _word_stats(texts, GUARD_LANGUAGES)
    bits = _stop_bits(GUARD_LANGUAGES)
    for i, t in enumerate(texts):
        words = re.findall(r"[^\W\d_]+", t.replace("\x00", " ").lower())
        want = np.zeros(len(GUARD_LANGUAGES), dtype=np.int64)
        for w in words:
            b = bits.get(w, 0)
            if b and b & (b - 1) == 0:
                want[b.bit_length() - 1] += 1
        assert letters[i] == sum(map(len, words)), t
        assert (hits[i] == want).all(), t


def test_sample_stops_early_only_when_the_outcome_is_english_alone(monkeypatch):
    """The language sample stops reading once English alone is certain: the candidates and weights are
    those of reading the whole sample, on English tweets and on mixes with 2%, 5% and 8% Portuguese."""
    import journey_analysis.text as T

    sets = _real_sets(800)
    en, pt = sets["en"].tolist(), sets["pt"].tolist()
    mixes = {"en": en, "en+2%pt": en + pt[:16], "en+5%pt": en + pt[:42], "en+8%pt": en + pt[:70]}
    read, real = [], T._detector

    class Counting:
        def __init__(self, d):
            self.d = d

        def detect_languages_in_parallel_of(self, texts):
            read.append(len(texts))
            return self.d.detect_languages_in_parallel_of(texts)

    def whole(texts, shown, n, scale):  # the reference: lingua reads every sample text
        found = real((), low_accuracy=True).detect_languages_in_parallel_of(texts)
        return pd.Series([f.iso_code_639_1.name.lower() if f else None for f in found], dtype=object)

    for name, texts in mixes.items():
        u = list(dict.fromkeys(texts))
        hits, letters = T._word_stats(u, T.GUARD_LANGUAGES)
        read.clear()
        with monkeypatch.context() as m:
            m.setattr(T, "_detector", lambda *a, **k: Counting(real(*a, **k)))
            got = T._sample_mix(u, letters, hits, T.GUARD_LANGUAGES, 100, 0)
        with monkeypatch.context() as m:
            m.setattr(T, "_sample_languages", whole)
            want = T._sample_mix(u, letters, hits, T.GUARD_LANGUAGES, 100, 0)
        assert got == want, (name, got, want)
        if name == "en":
            assert got == {"en": 1.0} and 0 < sum(read) < 100  # stopped early
        if name == "en+8%pt":
            assert set(got) == {"en", "pt"} and sum(read) == 100  # read to the end


def test_language_quality_rows_of_the_quality_table():
    from journey_analysis.text import identify_languages, language_quality

    t = pd.Series(["The engineer never came and nobody called", "ok", ":)", "O produto chegou no prazo, muito bom",
                   "", None, "Der Zug war zu spät, wie immer"])
    q = language_quality(pd.concat([t.rename("text"), identify_languages(t)], axis=1))
    assert list(q.columns) == ["file", "check", "severity", "rows", "first_rows", "rule", "detail"]
    lang = q[q.check == "language"]
    assert lang["detail"].iloc[0] == "en: 60.0% of the comments with text" and lang["rows"].sum() == 5
    short = q[q.check == "language_short_text"].iloc[0]
    assert short["first_rows"] == "3" and "main language" in short["rule"]
    assert language_quality(pd.DataFrame({"text": ["x"]})).empty


def test_language_quality_sample_is_the_run_rule_on_a_seeded_sample():
    """What `journey validate` shows: the run's language rows on a seeded sample, row numbers of the file."""
    from journey_analysis.text import identify_languages, language_quality, language_quality_sample

    t = pd.Series(["The engineer never came and nobody called", "ok", ":)", "O produto chegou no prazo, muito bom",
                   "", None, "Der Zug war zu spät, wie immer"])
    full = language_quality_sample(pd.DataFrame({"text": t}), n=10)
    run = language_quality(pd.concat([t.rename("text"), identify_languages(t)], axis=1))
    pd.testing.assert_frame_equal(full, run)  # everything read: exactly the run's rows
    assert full.attrs == {"sampled": 5, "with_text": 5}
    many = pd.DataFrame({"text": ["The delivery was late again and the driver was rude"] * 2500
                         + ["O produto chegou quebrado e ninguém respondeu"] * 1000 + [":)"] * 500})
    a = language_quality_sample(many, n=400)
    assert a.equals(language_quality_sample(many, n=400)) and a.attrs == {"sampled": 400, "with_text": 4000}
    lang = a[a.check == "language"].set_index("detail")["rows"]
    assert lang.sum() == 400 and lang.index[0].startswith("en: 7") and lang.index[1].startswith("pt: 2")
    short = a[a.check == "language_short_text"].iloc[0]
    assert 20 < short["rows"] < 80
    assert all(int(r) > 3500 for r in short["first_rows"].split(", "))  # rows of the feedback, not of the sample
    assert language_quality_sample(pd.DataFrame({"text": ["", None]})).empty
    assert language_quality_sample(None).empty
