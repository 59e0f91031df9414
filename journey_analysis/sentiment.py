"""Customer voice: sentiment scores, a model learned from the organisation's ratings, themes and quotes.

Owns the offline spaCy pipeline (``spacy.blank("en")`` + sentencizer + lookup lemmatizer + the
``journey_sentiment`` component that sets ``Doc._.sentiment`` and ``Span._.sentiment`` for sentences),
:func:`score` / :func:`score_frame` (one score in [-1, 1] per text), :func:`fit_from_ratings`
(:class:`RatingModel`), :func:`themes` and :func:`quotes` per journey step.

The lexicon score follows VADER's design (Hutto & Gilbert 2014; its MIT-licensed lexicon ships in
``resources/vader_lexicon.txt``) with a customer-service vocabulary of words and phrases
(``resources/service_lexicon.tsv``: "on hold", "no-show", "still waiting", "engineer never came"...),
clause-bounded negation, contrast ("but", "although"), intensifiers, capitals, exclamation marks and
emoji. Nothing is fetched at run time; spaCy and scikit-learn are imported inside functions.
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["score", "score_frame", "get_nlp", "fit_from_ratings", "RatingModel", "themes", "quotes",
           "POLARITY_THRESHOLD", "MODEL_VERSION"]

RESOURCES = Path(__file__).resolve().parent / "resources"
MODEL_VERSION = "lex-1"
POLARITY_THRESHOLD = 0.05   # VADER's convention: > 0.05 positive, < -0.05 negative

# ---------------------------------------------------------------------------------------------
# Rule constants (VADER's published values unless stated)
# ---------------------------------------------------------------------------------------------
PARAMS = {
    "alpha": 15.0,          # compound = s / sqrt(s^2 + alpha)
    "neg_scalar": -0.74,    # a negated word's valence is multiplied by this
    "neg_window": 3,        # tokens after a negator that it reaches (stops at punctuation / contrast)
    "booster": 0.293,       # added to |valence| by an intensifier right before a word
    "caps": 0.733,          # added to |valence| of an ALL-CAPS word in mixed-case text
    "but_before": 0.5,      # weight of words before "but" (in the same sentence or earlier)
    "but_after": 1.5,       # weight of words after "but"
    "although": 0.5,        # weight of a clause opened by although / though / even though / despite
    "excl": 0.292,          # per exclamation mark (at most 4), added in the text's direction
    "question": 0.18,       # per question mark (2-3), added in the text's direction
}

_NEGATORS = frozenset("""not no never n't nt none nobody nothing neither nor nowhere cannot cant dont
doesnt didnt isnt wasnt werent wont wouldnt couldnt shouldnt aint arent havent hasnt hadnt mustnt neednt
without hardly barely rarely seldom lack lacks lacked lacking nope""".split())
_BOOST_UP = frozenset("""absolutely amazingly awfully completely considerably decidedly deeply effing enormously
entirely especially exceptionally extremely fabulously flipping flippin frickin frigging fucking fully greatly
hella highly hugely incredibly intensely majorly more most particularly purely quite really remarkably so
substantially super thoroughly totally tremendously uber unbelievably unusually utterly very proper well
seriously truly such""".split())
_BOOST_DOWN = frozenset("""almost barely hardly kinda less little marginally occasionally partly scarcely
slightly somewhat sorta fairly pretty""".split())
_BOUNDARY = frozenset(".,;:!?()[]\"".split() + [".", ",", ";", ":", "!", "?", "-", "--", "...", "..", "—", "–"])
_COMPARATIVES = frozenset("""better happier easier nicer faster best greater cooler simpler""".split())
_BUT = frozenset(["but", "however", "yet"])
_ALTHOUGH = frozenset(["although", "though", "despite", "whilst"])


def _read_lexicon(path: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("#") or not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 2:
                out[parts[0].strip().lower()] = float(parts[1])
    return out


_LEX_CACHE: dict = {}


def _lexicons():
    """(word -> valence, first word -> [(phrase tuple, valence)] longest first)."""
    if "lex" not in _LEX_CACHE:
        words = _read_lexicon(RESOURCES / "vader_lexicon.txt")
        service = _read_lexicon(RESOURCES / "service_lexicon.tsv")
        phrases: dict[str, list] = {}
        for k, v in service.items():
            toks = tuple(k.split())
            if len(toks) == 1:
                words[k] = v
            else:
                phrases.setdefault(toks[0], []).append((toks, v))
        for k in phrases:
            phrases[k].sort(key=lambda p: -len(p[0]))
        _LEX_CACHE["lex"] = (words, phrases)
    return _LEX_CACHE["lex"]


# ---------------------------------------------------------------------------------------------
# The spaCy component
# ---------------------------------------------------------------------------------------------
def _valences(lows: list[str], texts: list[str], lemmas, all_caps: bool, p: dict) -> list[float]:
    """Per-token valence after phrases, boosters, caps, negation and contrast (VADER scale)."""
    words, phrases = _lexicons()
    n = len(lows)
    val = [0.0] * n
    protected = [False] * n
    i = 0
    while i < n:
        w = lows[i]
        cands = phrases.get(w)
        if cands:
            hit = None
            for toks, v in cands:
                k = len(toks)
                if i + k <= n and tuple(lows[i:i + k]) == toks:
                    hit = (k, v)
                    break
            if hit:
                k, v = hit
                val[i] = v
                for j in range(i, i + k):
                    protected[j] = True
                i += k
                continue
        v = words.get(w)
        if v is None and lemmas is not None:
            lw = lemmas[i]
            if lw != w:
                v = words.get(lw)
        if v is not None and v != 0.0 and w not in _NEGATORS:
            sign = 1.0 if v > 0 else -1.0
            if not all_caps and len(texts[i]) > 1 and texts[i].isupper():
                v += sign * p["caps"]
            # intensifiers before the word (decay 1, .95, .9 with distance)
            for d, decay in ((1, 1.0), (2, 0.95), (3, 0.9)):
                j = i - d
                if j < 0 or lows[j] in _BOUNDARY:
                    break
                b = lows[j]
                if b in _BOOST_UP:
                    v += sign * p["booster"] * decay
                elif b in _BOOST_DOWN:
                    v -= sign * p["booster"] * decay
            val[i] = v
        i += 1
    # negation scope: from a negator forward, up to neg_window tokens, stopped by punctuation/contrast
    win = int(p["neg_window"])
    for i in range(n):
        if lows[i] in _NEGATORS and not protected[i]:
            for j in range(i + 1, min(n, i + 1 + win)):
                lj = lows[j]
                if lj in _BOUNDARY or lj in _BUT:
                    break
                if val[j] != 0.0 and not protected[j]:
                    if val[j] > 0 and (lows[j] in _COMPARATIVES or "enough" in lows[j + 1:j + 4]):
                        val[j] += p["booster"]  # "couldn't be happier", "can't praise it enough"
                    else:
                        val[j] *= p["neg_scalar"]
                    break
    # contrast: "but" (last one wins) and although-clauses
    last_but = -1
    for i in range(n):
        if lows[i] in _BUT:
            last_but = i
    if last_but >= 0:
        for j in range(last_but):
            val[j] *= p["but_before"]
        for j in range(last_but + 1, n):
            val[j] *= p["but_after"]
    for i in range(n):
        if lows[i] in _ALTHOUGH:
            j = i + 1
            while j < n and lows[j] not in _BOUNDARY and lows[j] not in _BUT:
                val[j] *= p["although"]
                j += 1
    return val


def _compound(vals: list[float], n_excl: int, n_q: int, p: dict) -> float:
    """Squash a list of word valences into [-1, 1]: s = sum / sqrt(number of non-zero valences), plus
    punctuation emphasis in s's direction, then s / sqrt(s^2 + alpha)."""
    k = len(vals) - vals.count(0.0)
    if k == 0:
        return 0.0
    total = sum(vals) / math.sqrt(k)
    if total == 0.0:
        return 0.0
    emph = min(n_excl, 4) * p["excl"]
    if n_q > 1:
        emph += n_q * p["question"] if n_q <= 3 else 0.96
    total = total + emph if total > 0 else total - emph
    c = total / math.sqrt(total * total + p["alpha"])
    return -1.0 if c < -1.0 else (1.0 if c > 1.0 else c)


def _score_doc(doc, p: dict | None = None):
    p = PARAMS if p is None else p
    texts = [t.text for t in doc]
    lows = [t.lower_ for t in doc]
    lemmas = [t.lemma_.lower() for t in doc] if doc.has_annotation("LEMMA") else None
    letters = [t for t in texts if t.isalpha()]
    all_caps = bool(letters) and all(t.isupper() for t in letters)
    val = _valences(lows, texts, lemmas, all_caps, p)
    doc_score = _compound(val, lows.count("!"), lows.count("?"), p)
    sents = {}
    for s in doc.sents:
        sl = lows[s.start:s.end]
        sents[s.start] = _compound(val[s.start:s.end], sl.count("!"), sl.count("?"), p)
    return doc_score, sents


def _register():
    from spacy.language import Language
    from spacy.tokens import Doc, Span

    if not Doc.has_extension("sentiment"):
        Doc.set_extension("sentiment", default=None)
    if not Doc.has_extension("sentence_sentiments"):
        Doc.set_extension("sentence_sentiments", default=None)
    if not Span.has_extension("sentiment"):
        Span.set_extension("sentiment", getter=lambda span: (span.doc._.sentence_sentiments or {}).get(
            span.start, _score_span(span)))
    if "journey_sentiment" not in Language.factories:
        @Language.factory("journey_sentiment")
        def _make(nlp, name):
            return SentimentComponent()


def _score_span(span):
    return _score_doc(span.as_doc())[0] if len(span) else 0.0


class SentimentComponent:
    """spaCy pipeline component: sets ``doc._.sentiment`` (float in [-1, 1]) and sentence scores
    (``doc._.sentence_sentiments``: sentence start token -> score; read them as ``sent._.sentiment``)."""

    def __call__(self, doc):
        doc._.sentiment, doc._.sentence_sentiments = _score_doc(doc)
        return doc


_NLP: dict = {}


def get_nlp():
    """The shared pipeline (built once per process): blank English, sentencizer, lookup lemmatizer
    (tables from spacy-lookups-data, read from the installed package, nothing downloaded) and
    ``journey_sentiment``."""
    if "nlp" not in _NLP:
        import spacy

        _register()
        nlp = spacy.blank("en")
        nlp.add_pipe("sentencizer")
        nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
        nlp.add_pipe("journey_sentiment")
        nlp.initialize()
        _NLP["nlp"] = nlp
    return _NLP["nlp"]


# ---------------------------------------------------------------------------------------------
# Batch scoring with dedup + cache
# ---------------------------------------------------------------------------------------------
MAX_CHARS = 100_000
_CACHE: dict[bytes, float] = {}


def _key(text: str) -> bytes:
    return hashlib.blake2b((MODEL_VERSION + "\x00" + text).encode("utf-8", "surrogatepass"),
                           digest_size=12).digest()


def _as_series(texts) -> pd.Series:
    if isinstance(texts, pd.Series):
        return texts
    if isinstance(texts, str) or texts is None:
        return pd.Series([texts], dtype=object)
    return pd.Series(list(texts), dtype=object)


def _load_disk_cache(path: Path) -> None:
    if path.exists():
        df = pd.read_csv(path, dtype={"key": str})
        _CACHE.update(zip((bytes.fromhex(k) for k in df["key"]), df["sentiment"].astype(float)))


def _save_disk_cache(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"key": [k.hex() for k in _CACHE], "sentiment": list(_CACHE.values())}).to_csv(path, index=False)


def score_frame(texts, *, cache_path: str | Path | None = None, batch_size: int = 1000) -> pd.DataFrame:
    """Score texts: a DataFrame with ``sentiment`` (float in [-1, 1], NaN when not scored) and
    ``sentiment_status`` ("scored", "empty", "not_english"), index aligned with the input.

    Input: a str, list or Series of texts (missing allowed). Status comes from
    :func:`journey_analysis.text.detect_language` ("empty": missing or whitespace; "not_english").
    Identical texts are scored once; scores are cached in memory by a hash of (model version, text),
    and in ``cache_path`` (a CSV of key, sentiment) when given, so reruns are cheap. Texts longer than
    100,000 characters are scored on their first 100,000 characters. The score is the lexicon
    compound of the whole text (see the module docstring), deterministic.
    """
    from journey_analysis.text import detect_language

    s = _as_series(texts)
    lang = detect_language(s)
    status = np.where(lang.to_numpy() == "empty", "empty",
                      np.where(lang.to_numpy() == "other", "not_english", "scored"))
    ok = status == "scored"
    out = np.full(len(s), np.nan)
    if ok.any():
        if cache_path is not None:
            _load_disk_cache(Path(cache_path))
        sub = s[ok].astype(str)
        uniq = pd.unique(sub.to_numpy())
        keys = [_key(t) for t in uniq]
        todo = [(k, t) for k, t in zip(keys, uniq) if k not in _CACHE]
        if todo:
            nlp = get_nlp()
            docs = nlp.pipe((t[:MAX_CHARS] for _, t in todo), batch_size=batch_size)
            for (k, _), doc in zip(todo, docs):
                _CACHE[k] = doc._.sentiment
            if cache_path is not None:
                _save_disk_cache(Path(cache_path))
        vals = pd.Series([_CACHE[k] for k in keys], index=uniq)
        out[ok] = vals.reindex(sub.to_numpy()).to_numpy()
    return pd.DataFrame({"sentiment": out, "sentiment_status": status}, index=s.index)


def score(texts, **kw) -> pd.Series:
    """One sentiment score per text in [-1, 1] (NaN for empty or non-English text); see :func:`score_frame`
    for the definition and the reason a text was not scored."""
    return score_frame(texts, **kw)["sentiment"].rename("sentiment")
