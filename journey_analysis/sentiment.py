"""Customer voice: sentiment scores and a model learned from the organisation's ratings (themes and
quotes are :mod:`journey_analysis.themes`).

Owns the offline spaCy pipeline (``spacy.blank("en")`` + sentencizer + lookup lemmatizer + the
``journey_sentiment`` component that sets ``Doc._.sentiment`` and ``Span._.sentiment`` for sentences),
:func:`score` / :func:`score_frame` (one score in [-1, 1] per text), :func:`fit_from_ratings`
(:class:`RatingModel`) and per-language models (:func:`score_feedback`).

The lexicon score follows VADER's design (Hutto & Gilbert 2014; its MIT-licensed lexicon ships in
``resources/vader_lexicon.txt``) with a customer-service vocabulary of words and phrases
(``resources/service_lexicon.tsv``: "on hold", "no-show", "still waiting", "engineer never came"...),
clause-bounded negation, contrast ("but", "although"), intensifiers, capitals, exclamation marks and
emoji. Nothing is fetched at run time; spaCy and scikit-learn are imported inside functions.

Two implementations of one definition: the component (:func:`_valences` / :func:`_compound`, per Doc,
also sentence scores) and the batch scorer behind :func:`score` (:func:`_score_arrays`: the pipeline's
tokenizer only, many texts per call, then the same rules as numpy operations over all tokens of the
batch, in the same floating-point order). Tests hold them equal.
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from journey_analysis.aside import Aside

__all__ = ["score", "score_frame", "score_feedback", "get_nlp", "fit_from_ratings", "RatingModel",
           "fit_language_model", "LanguageModel", "VoiceModels", "language_report", "language_sentence",
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
    """Lexicons keyed by spaCy string hashes (so the component reads token attributes as integers
    with ``Doc.to_array`` instead of building Token objects): (word -> valence, first word -> [(phrase
    hash tuple, valence)] longest first, hashed word sets)."""
    if "lex" not in _LEX_CACHE:
        from spacy.strings import get_string_id as h

        words = _read_lexicon(RESOURCES / "vader_lexicon.txt")
        service = _read_lexicon(RESOURCES / "service_lexicon.tsv")
        phrases: dict[int, list] = {}
        for k, v in service.items():
            toks = k.split()
            if len(toks) == 1:
                words[k] = v
            else:
                phrases.setdefault(h(toks[0]), []).append((tuple(h(t) for t in toks), v))
        for k in phrases:
            phrases[k].sort(key=lambda q: -len(q[0]))
        sets = {name: frozenset(h(w) for w in ws) for name, ws in (
            ("neg", _NEGATORS), ("up", _BOOST_UP), ("down", _BOOST_DOWN), ("bound", _BOUNDARY),
            ("but", _BUT), ("although", _ALTHOUGH), ("comp", _COMPARATIVES))}
        sets["enough"] = h("enough")
        sets["excl"] = h("!")
        sets["q"] = h("?")
        hashed = {h(w): v for w, v in words.items()}
        # inflected forms inherit their lemma's valence (spaCy's English lookup table, installed with
        # spacy-lookups-data), so scoring does not need the lemmatizer to run
        # (the file spaCy's Lookups reads, as a plain dict: a Table would hash it again, more slowly)
        table = {h(form): lemma for form, lemma in _lemma_table("en").items()}
        for form, lemma in table.items():
            if form not in hashed:
                v = hashed.get(h(lemma.lower()))
                if v is not None:
                    hashed[form] = v
        _LEX_CACHE["lex"] = (hashed, phrases, sets)
    return _LEX_CACHE["lex"]


# ---------------------------------------------------------------------------------------------
# The spaCy component
# ---------------------------------------------------------------------------------------------
def _valences(lows: list[int], lemmas, caps, p: dict) -> list[float]:
    """Per-token valence (VADER scale) after phrases, intensifiers, capitals, negation and contrast.

    ``lows``/``lemmas``: spaCy hashes of the lower-cased text and lemma (``lemmas`` may be None);
    ``caps``: the Doc when it mixes cases (then an ALL-CAPS word of 2+ letters is emphasised), else None."""
    words, phrases, S = _lexicons()
    neg, up, down, bound, but = S["neg"], S["up"], S["down"], S["bound"], S["but"]
    n = len(lows)
    val = [0.0] * n
    protected = [False] * n
    booster = p["booster"]
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
            v = words.get(lemmas[i])
        if v and w not in neg:
            sign = 1.0 if v > 0 else -1.0
            if caps is not None:
                tok = caps[i]
                if tok.is_upper and len(tok) > 1:
                    v += sign * p["caps"]
            for d, decay in ((1, 1.0), (2, 0.95), (3, 0.9)):  # intensifiers before the word
                j = i - d
                if j < 0 or lows[j] in bound:
                    break
                b = lows[j]
                if b in up:
                    v += sign * booster * decay
                elif b in down:
                    v -= sign * booster * decay
            val[i] = v
        i += 1
    # negation scope: from a negator forward, up to neg_window tokens, stopped by punctuation/contrast;
    # it flips the first scored word it reaches
    present = set(lows)
    if not any(val) or present.isdisjoint(neg | but | S["although"]):
        return val
    win = int(p["neg_window"])
    comp, enough = S["comp"], S["enough"]
    for i in range(n):
        if lows[i] in neg and not protected[i]:
            for j in range(i + 1, min(n, i + 1 + win)):
                lj = lows[j]
                if lj in bound or lj in but:
                    break
                if val[j] != 0.0 and not protected[j]:
                    if val[j] > 0 and (lj in comp or enough in lows[j + 1:j + 4]):
                        val[j] += booster  # "couldn't be happier", "can't praise it enough"
                    else:
                        val[j] *= p["neg_scalar"]
                    break
    # contrast: words before the last "but" weigh less, words after it more; although-clauses less
    last_but = -1
    for i in range(n):
        if lows[i] in but:
            last_but = i
    if last_but >= 0:
        for j in range(last_but):
            val[j] *= p["but_before"]
        for j in range(last_but + 1, n):
            val[j] *= p["but_after"]
    although = S["although"]
    for i in range(n):
        if lows[i] in although:
            j = i + 1
            while j < n and lows[j] not in bound and lows[j] not in but:
                val[j] *= p["although"]
                j += 1
    return val


def _compound(vals: list[float], n_excl: int, n_q: int, p: dict) -> float:
    """Squash word valences into [-1, 1]: s = sum / sqrt(number of non-zero valences), plus
    punctuation emphasis in s's direction (VADER's), then s / sqrt(s^2 + alpha)."""
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
    """(document score, {sentence start token: sentence score}) for a parsed Doc."""
    from spacy.attrs import IS_ALPHA, IS_UPPER, LEMMA, LOWER, ORTH, SENT_START

    p = PARAMS if p is None else p
    if len(doc) == 0:
        return 0.0, {}
    _, _, S = _lexicons()
    arr = doc.to_array([LOWER, ORTH])
    lows = arr[:, 0].tolist()
    lemmas = doc.to_array(LEMMA).tolist() if doc.has_annotation("LEMMA") else None
    caps = None  # the Doc when capitals can add emphasis: mixed case, not an all-caps text
    if (arr[:, 0] != arr[:, 1]).any():
        ua = doc.to_array([IS_UPPER, IS_ALPHA])
        alpha = ua[:, 1] == 1
        if not (alpha.any() and (ua[alpha, 0] == 1).all()):
            caps = doc
    val = _valences(lows, lemmas, caps, p)
    ex, q = S["excl"], S["q"]
    doc_score = _compound(val, lows.count(ex), lows.count(q), p)
    if not doc.has_annotation("SENT_START"):
        return doc_score, {}
    starts = doc.to_array(SENT_START).tolist()
    bounds = [i for i, s in enumerate(starts) if s == 1 or i == 0] + [len(lows)]
    sents = {}
    for a, b in zip(bounds[:-1], bounds[1:]):
        sl = lows[a:b]
        sents[a] = _compound(val[a:b], sl.count(ex), sl.count(q), p)
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


# ---------------------------------------------------------------------------------------------
# Tokenizer: one regular expression, used by the component (as the pipeline's tokenizer) and by the
# batch scorer (on many texts joined together), so both see the same tokens
# ---------------------------------------------------------------------------------------------
_CHUNK = r"[^\s\x00]"      # a character of a whitespace-separated chunk
_L = r"[^\W\d_]"           # a letter
_TOKEN_CACHE: dict = {}


def _token_re() -> re.Pattern:
    """The token pattern, built once: URLs; emoticons of the lexicon that fill a whole chunk (":)",
    "<3", ":-("); the English contractions spaCy splits ("do|n't", "it|'s", "I|'m", "can|not");
    numbers with inner . , : / ("29.99", "10/10"); runs of letters and digits; "..."; the NUL that
    separates texts in a batch; any other single character (punctuation, each emoji)."""
    if "re" not in _TOKEN_CACHE:
        lex = _read_lexicon(RESOURCES / "vader_lexicon.txt")
        emo = sorted((k for k in lex if len(k) > 1 and not k[0].isalnum() and not any(c.isspace() for c in k)),
                     key=lambda k: (-len(k), k))
        pattern = "|".join([
            r"(?:https?://|www\.)[^\s\x00<>\"']*[^\s\x00<>\"'.,;:!?)\]}]",
            r"\d+(?:[.,:/]\d+)+",
            rf"(?i:can)(?=(?i:not)(?!{_L}))",
            r"[^\W_]++(?!['’])",  # the common case first: a word not followed by an apostrophe
            rf"(?<!{_CHUNK})(?=[^\w\s])(?i:{'|'.join(map(re.escape, emo))})(?!{_CHUNK})",
            rf"(?={_L}+['’]){_L}+(?=(?i:n['’]t)(?!{_L}))",
            rf"(?<={_L})(?i:n['’]t)(?!{_L})",
            rf"(?<={_L})['’](?i:s|m|d|re|ve|ll)(?!{_L})",
            r"[^\W_]+",
            r"\.{2,}",
            r"\x00",
            r"\S",
        ])
        _TOKEN_CACHE["re"] = re.compile(pattern)
    return _TOKEN_CACHE["re"]


def tokenize(text: str) -> list[str]:
    """The tokens of one text (see :func:`_token_re`); whitespace is not a token."""
    return _token_re().findall(text)


class RegexTokenizer:
    """spaCy tokenizer built on :func:`_token_re`: a Doc whose words are the pattern's tokens, each
    followed by a space when whitespace follows it in the text (runs of whitespace become one space)."""

    def __init__(self, vocab):
        self.vocab = vocab

    def __call__(self, text: str):
        from spacy.tokens import Doc

        words, spaces = [], []
        n = len(text)
        for m in _token_re().finditer(text):
            words.append(m.group())
            e = m.end()
            spaces.append(e < n and text[e].isspace())
        return Doc(self.vocab, words=words, spaces=spaces)

    def pipe(self, texts, batch_size=1000):
        for t in texts:
            yield self(t)

    def to_bytes(self, **kw):
        return b""

    def from_bytes(self, data, **kw):
        return self


_NLP: dict = {}


def get_nlp():
    """The shared pipeline (built once per process): blank English with :class:`RegexTokenizer`, sentencizer, lookup lemmatizer
    (tables from spacy-lookups-data, read from the installed package, nothing downloaded) and
    ``journey_sentiment``."""
    if "nlp" not in _NLP:
        import spacy

        _register()
        nlp = spacy.blank("en")
        nlp.tokenizer = RegexTokenizer(nlp.vocab)
        nlp.add_pipe("sentencizer")
        nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
        nlp.add_pipe("journey_sentiment")
        nlp.initialize()
        _NLP["nlp"] = nlp
    return _NLP["nlp"]


# ---------------------------------------------------------------------------------------------
# Vectorised batch scorer: the same rules as _valences/_compound, for many texts at once
# ---------------------------------------------------------------------------------------------
# token flags (bit masks) in the lookup table
_F_NEG, _F_UP, _F_DOWN, _F_BOUND, _F_BUT, _F_ALTH, _F_COMP, _F_ENOUGH, _F_EXCL, _F_Q, _F_PHRASE = (
    1 << b for b in range(11))
_MIX = np.uint64(0x9E3779B97F4A7C15)  # n-gram key: k = k * _MIX + next hash (uint64, wrapping)
_TOKENIZE_CHARS = 1_000_000            # at most this many characters per regex call


def _ngram_keys(cols: list[np.ndarray]) -> np.ndarray:
    key = cols[0].astype(np.uint64)
    for c in cols[1:]:
        key = key * _MIX + c.astype(np.uint64)
    return key


def _tables():
    """Lookup arrays for the batch scorer, built once from :func:`_lexicons`: an index of token hashes
    with their valence and flags (last row: "not found"), per phrase length k the sorted n-gram
    keys with their token hashes and valence, and the sorted keys of all phrases' first two tokens."""
    if "tables" not in _LEX_CACHE:
        words, phrases, S = _lexicons()
        flags: dict[int, int] = {}
        for name, bit in (("neg", _F_NEG), ("up", _F_UP), ("down", _F_DOWN), ("bound", _F_BOUND),
                          ("but", _F_BUT), ("although", _F_ALTH), ("comp", _F_COMP)):
            for hv in S[name]:
                flags[hv] = flags.get(hv, 0) | bit
        for name, bit in (("enough", _F_ENOUGH), ("excl", _F_EXCL), ("q", _F_Q)):
            flags[S[name]] = flags.get(S[name], 0) | bit
        for first in phrases:
            flags[first] = flags.get(first, 0) | _F_PHRASE
        keys = np.array(sorted(set(words) | set(flags)), dtype=np.uint64)
        val = np.array([words.get(int(k), 0.0) for k in keys] + [0.0])
        flg = np.array([flags.get(int(k), 0) for k in keys] + [0], dtype=np.int64)
        by_len: dict[int, tuple] = {}
        for cands in phrases.values():
            for toks, v in cands:
                by_len.setdefault(len(toks), []).append((toks, v))
        ph = {}
        for k, items in by_len.items():
            toks = np.array([t for t, _ in items], dtype=np.uint64).reshape(len(items), k)
            pk = _ngram_keys([toks[:, m] for m in range(k)])
            order = np.argsort(pk, kind="stable")
            ph[k] = (pk[order], toks[order], np.array([v for _, v in items])[order])
        pref2 = np.unique(np.concatenate([_ngram_keys([t[:, 0], t[:, 1]]) for _, t, _ in ph.values()]))
        _LEX_CACHE["tables"] = (pd.Index(keys), val, flg, dict(sorted(ph.items(), reverse=True)), pref2)
    return _LEX_CACHE["tables"]


def _token_arrays(texts: list[str], batch_size: int = 1000):
    """Tokenise texts with :func:`_token_re`, all at once (see :func:`_chunk_token_arrays`)."""
    from journey_analysis.text import chunk_texts

    return _chunk_token_arrays(*chunk_texts(texts), len(texts))


def _chunk_token_arrays(occ: np.ndarray, chunks: list[str], n: int):
    """The tokens of ``n`` texts given as chunks (:func:`journey_analysis.text.chunk_texts`: chunk ids
    in text order, 0 after each text; the distinct chunks): (distinct-token id of every token, in text
    order; attributes of the distinct tokens, columns LOWER, ORTH, IS_UPPER, IS_ALPHA, LENGTH as spaCy
    hashes and flags; tokens per text).

    No token spans whitespace, so a text's tokens are its chunks' tokens in order, and only the
    distinct chunks that occur are tokenised: an ASCII chunk of letters and digits is one token
    (:func:`_token_re` matches it whole, unless it starts with "cannot"); the others go through the
    pattern (joined by NUL, in pieces of at most ``_TOKENIZE_CHARS`` characters). Token attributes
    are computed once per distinct token."""
    from spacy.strings import get_string_id as h

    if not n:
        return np.zeros(0, dtype=np.intp), np.zeros((0, 5), dtype=np.uint64), np.zeros(0, dtype=np.int64)
    tok, ut, per_text = _chunk_tokens(occ, chunks, n)
    u = len(ut)
    lower = list(map(str.lower, ut))
    attrs = np.empty((u, 5), dtype=np.uint64)
    attrs[:, 0] = np.fromiter(map(h, lower), dtype=np.uint64, count=u)
    same = np.fromiter(map(str.__eq__, lower, ut), dtype=bool, count=u)
    attrs[:, 1] = attrs[:, 0]
    attrs[~same, 1] = np.fromiter(map(h, (t for t, sm in zip(ut, same.tolist()) if not sm)), dtype=np.uint64,
                                  count=int(u - same.sum()))
    attrs[:, 2] = np.fromiter(map(str.isupper, ut), dtype=bool, count=u)
    attrs[:, 3] = np.fromiter(map(str.isalpha, ut), dtype=bool, count=u)
    attrs[:, 4] = np.fromiter(map(len, ut), dtype=np.int64, count=u)
    return tok, attrs, per_text


def _chunk_tokens(occ: np.ndarray, chunks: list[str], n: int):
    """The tokens of ``n`` (at least one) texts given as chunks (see :func:`_chunk_token_arrays`):
    (distinct-token id of every token, in text order; the distinct tokens as strings; tokens per text)."""
    from operator import methodcaller

    pat = _token_re()
    present = np.zeros(len(chunks), dtype=bool)
    present[occ] = True
    present[0] = True
    used = np.flatnonzero(present)  # used[0] = 0: the end of a text, no tokens
    occ = (np.cumsum(present) - 1)[occ]
    ul = [chunks[i] for i in used.tolist()]
    m = len(ul)
    one = (np.fromiter(map(str.isascii, ul), dtype=bool, count=m)
           & np.fromiter(map(str.isalnum, ul), dtype=bool, count=m))
    one[one] = ~np.fromiter(map(methodcaller("startswith", "cannot"), map(str.lower, (ul[i] for i in np.flatnonzero(one).tolist()))),
                            dtype=bool, count=int(one.sum()))
    one_ix, many_ix = np.flatnonzero(one), np.flatnonzero(~one)
    many = [ul[i] for i in many_ix.tolist()]
    lens = np.fromiter(map(len, many), dtype=np.int64, count=len(many))
    cum = np.concatenate([[0], np.cumsum(lens + 1)])
    toks: list[str] = [ul[i] for i in one_ix.tolist()]
    a, mm = 0, len(many)
    while a < mm:
        b = int(max(a + 1, np.searchsorted(cum, cum[a] + _TOKENIZE_CHARS, side="right") - 1))
        b = min(b, mm)
        toks.extend(pat.findall("\x00".join(many[a:b])))
        toks.append("\x00")
        a = b
    tcodes, utok = pd.factorize(pd.Series(toks, dtype=object))
    ut = utok.tolist()
    # tokens of each used chunk, chunk by chunk
    n1 = len(one_ix)
    mcodes = tcodes[n1:]
    is_nul = mcodes == utok.get_loc("\x00")
    owner = (np.cumsum(is_nul) - is_nul)[~is_nul]    # which of `many` each of their tokens belongs to
    per_many = np.bincount(owner, minlength=mm)
    per_chunk = np.zeros(m, dtype=np.int64)
    per_chunk[one_ix] = 1
    per_chunk[many_ix] = per_many
    first = np.cumsum(per_chunk) - per_chunk
    chunk_tok = np.empty(int(per_chunk.sum()), dtype=np.intp)
    chunk_tok[first[one_ix]] = tcodes[:n1]
    rank = np.arange(len(owner)) - (np.cumsum(per_many) - per_many)[owner]
    chunk_tok[first[many_ix][owner] + rank] = mcodes[~is_nul]
    # every chunk occurrence in text order -> its chunk's tokens
    end = occ == 0
    doc = np.cumsum(end) - end
    k = per_chunk[occ]
    idx = np.arange(int(k.sum())) + np.repeat(first[occ] - (np.cumsum(k) - k), k)
    return chunk_tok[idx], ut, np.bincount(doc, weights=k, minlength=n).astype(np.int64)


def _score_arrays(codes: np.ndarray, attrs: np.ndarray, counts: np.ndarray, p: dict | None = None) -> np.ndarray:
    """Document scores for many tokenised texts at once; the same definition, operations and order of
    floating-point operations as :func:`_valences` + :func:`_compound` (without lemmas), so results
    equal the component's ``Doc._.sentiment`` on a Doc without a lemmatizer.

    ``codes``: the tokens of all texts, in order, as rows of ``attrs`` (the distinct tokens, columns
    LOWER, ORTH, IS_UPPER, IS_ALPHA, LENGTH); ``counts``: tokens per text. Vectorised: table lookups
    once per distinct token; phrase matches by n-gram keys; intensifier, negation and clause rules by
    shifts within a text; sums per text in token order (as Python's ``sum``)."""
    p = PARAMS if p is None else p
    n_docs, N = len(counts), len(codes)
    out = np.zeros(n_docs)
    if N == 0:
        return out
    keys, valtab, flagtab, phr, pref2 = _tables()
    low_u = attrs[:, 0]
    starts = np.concatenate([[0], np.cumsum(counts)])
    d = np.repeat(np.arange(n_docs), counts)
    gpos = np.arange(N)
    end = starts[1:][d]                      # one past the last token of the token's text
    pos = gpos - starts[:-1][d]              # position within the text
    ix = keys.get_indexer(low_u)  # hash table lookup per distinct token; -1 (not found) -> the last, empty row
    ix[ix < 0] = len(keys)
    F = flagtab[ix][codes]
    W = valtab[ix][codes]

    # phrases: longest match at each start, then greedy left-to-right without overlaps
    val = np.zeros(N)
    protected = np.zeros(N, dtype=bool)
    cand = np.flatnonzero(F & _F_PHRASE)
    cand = cand[cand + 2 <= end[cand]]
    if len(cand):  # keep starts whose first two tokens begin some phrase
        key2 = _ngram_keys([low_u[codes[cand]], low_u[codes[cand + 1]]])
        cand = cand[pref2[np.minimum(np.searchsorted(pref2, key2), len(pref2) - 1)] == key2]
    if len(cand):
        best_len = np.zeros(len(cand), dtype=np.int64)
        best_val = np.zeros(len(cand))
        for k, (pk, ptoks, pv) in phr.items():   # longest first
            ok = np.flatnonzero((best_len == 0) & (cand + k <= end[cand]))
            if not len(ok):
                continue
            c = cand[ok]
            lc = [low_u[codes[c + m]] for m in range(k)]
            key = _ngram_keys(lc)
            j = np.minimum(np.searchsorted(pk, key), len(pk) - 1)
            hit = pk[j] == key
            for m in range(k):
                hit &= ptoks[j, m] == lc[m]
            best_len[ok[hit]] = k
            best_val[ok[hit]] = pv[j[hit]]
        m = best_len > 0
        ms, me, mv = cand[m], cand[m] + best_len[m], best_val[m]
        taken = np.zeros(len(ms), dtype=bool)
        undecided = np.ones(len(ms), dtype=bool)
        while undecided.any():  # rounds = longest chain of overlapping matches (usually 1)
            prev_alive = np.maximum.accumulate(np.concatenate([[-1], np.where(taken | undecided, me, -1)[:-1]]))
            prev_taken = np.maximum.accumulate(np.concatenate([[-1], np.where(taken, me, -1)[:-1]]))
            take = undecided & (prev_alive <= ms)
            reject = undecided & (prev_taken > ms)
            taken |= take
            undecided &= ~(take | reject)
        ms, me, mv = ms[taken], me[taken], mv[taken]
        protected = np.cumsum(np.bincount(ms, minlength=N + 1) - np.bincount(me, minlength=N + 1))[:N] > 0
        val[ms] = mv

    # words: valence, capitals, intensifiers
    s = np.flatnonzero((W != 0.0) & ~protected & ((F & _F_NEG) == 0))
    if len(s):
        v = W[s]
        sign = np.where(v > 0, 1.0, -1.0)
        lower_differs = np.bincount(d, weights=(attrs[:, 0] != attrs[:, 1])[codes], minlength=n_docs) > 0
        alpha_u = attrs[:, 3] == 1
        n_alpha = np.bincount(d, weights=alpha_u[codes], minlength=n_docs)
        n_alpha_upper = np.bincount(d, weights=(alpha_u & (attrs[:, 2] == 1))[codes], minlength=n_docs)
        caps_doc = lower_differs & ~((n_alpha > 0) & (n_alpha_upper == n_alpha))
        cs = codes[s]
        caps = caps_doc[d[s]] & (attrs[cs, 2] == 1) & (attrs[cs, 4] > 1)
        v = np.where(caps, v + sign * p["caps"], v)
        alive = np.ones(len(s), dtype=bool)
        for dist, decay in ((1, 1.0), (2, 0.95), (3, 0.9)):
            j = np.maximum(s - dist, 0)
            alive &= (pos[s] >= dist) & ((F[j] & _F_BOUND) == 0)
            inc = sign * p["booster"] * decay
            v = np.where(alive & ((F[j] & _F_UP) != 0), v + inc,
                         np.where(alive & ((F[j] & _F_DOWN) != 0), v - inc, v))
        val[s] = v

    # negation: each negator flips the first scored word within the window (stops at punctuation/contrast)
    negs = np.flatnonzero(((F & _F_NEG) != 0) & ~protected)
    if len(negs):
        scored = (val != 0.0) & ~protected
        alive = np.ones(len(negs), dtype=bool)
        target = np.full(len(negs), -1)
        for dist in range(1, int(p["neg_window"]) + 1):
            j = negs + dist
            alive &= j < end[negs]
            jj = np.where(alive, j, 0)
            alive &= (F[jj] & (_F_BOUND | _F_BUT)) == 0
            hit = alive & scored[jj]
            target[hit] = j[hit]
            alive &= ~hit
        t = target[target >= 0]  # in negator order; a word reached by several negators takes each in turn
        if len(t):
            order = np.argsort(t, kind="stable")
            ts = t[order]
            first = np.concatenate([[True], ts[1:] != ts[:-1]])
            rank = np.arange(len(ts)) - np.maximum.accumulate(np.where(first, np.arange(len(ts)), 0))
            for r in range(int(rank.max()) + 1):
                tt = ts[rank == r]
                boost = (F[tt] & _F_COMP) != 0
                for dist in (1, 2, 3):
                    jn = np.minimum(tt + dist, N - 1)
                    boost |= (tt + dist < end[tt]) & ((F[jn] & _F_ENOUGH) != 0)
                cur = val[tt]
                val[tt] = np.where((cur > 0) & boost, cur + p["booster"], cur * p["neg_scalar"])

    # contrast: before the text's last "but" x but_before, after it x but_after
    buts = np.flatnonzero(F & _F_BUT)
    if len(buts):
        last = np.full(n_docs, -1)
        np.maximum.at(last, d[buts], buts)
        lb = last[d]
        val = np.where((lb >= 0) & (gpos < lb), val * p["but_before"],
                       np.where((lb >= 0) & (gpos > lb), val * p["but_after"], val))
    # although-clauses: each although/though... before a word in its clause multiplies it once
    alth = (F & _F_ALTH) != 0
    if alth.any():
        marker = ((F & (_F_BOUND | _F_BUT)) != 0) | (pos == 0)
        seg_start = np.maximum.accumulate(np.where(marker, gpos, 0))
        excl_cum = np.cumsum(alth) - alth
        n_before = excl_cum - excl_cum[seg_start]
        for c in range(1, int(n_before.max()) + 1):
            val = np.where(n_before >= c, val * p["although"], val)

    # compound per text: sum of non-zero valences in token order / sqrt(count), punctuation, squash
    nz = np.flatnonzero(val != 0.0)
    k = np.bincount(d[nz], minlength=n_docs)
    sums = np.zeros(n_docs)
    if len(nz):
        vnz = val[nz]
        off = np.concatenate([[0], np.cumsum(k)[:-1]])
        by_k = np.argsort(-k, kind="stable")
        neg_k_sorted = -k[by_k]
        for r in range(int(k.max())):  # sequential sums, as Python's sum(); rounds = most words in a text
            docs = by_k[:np.searchsorted(neg_k_sorted, -r, side="left")]
            sums[docs] += vnz[off[docs] + r]
    n_excl = np.bincount(d, weights=(F & _F_EXCL) != 0, minlength=n_docs).astype(np.int64)
    n_q = np.bincount(d, weights=(F & _F_Q) != 0, minlength=n_docs).astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        base = sums / np.sqrt(k)
        emph = np.minimum(n_excl, 4) * p["excl"]
        emph = np.where(n_q > 1, emph + np.where(n_q <= 3, n_q * p["question"], 0.96), emph)
        total = np.where(base > 0, base + emph, base - emph)
        c = np.clip(total / np.sqrt(total * total + p["alpha"]), -1.0, 1.0)
    return np.where((k == 0) | (base == 0.0), 0.0, c)


def _score_texts(texts: list[str], batch_size: int = 1000) -> np.ndarray:
    """Document scores for texts (already cut to ``MAX_CHARS``), vectorised over the batch."""
    from journey_analysis.text import chunk_texts

    return _score_chunks(*chunk_texts(texts), np.arange(len(texts)), batch_size)


def _score_chunks(occ: np.ndarray, chunks: list[str], rows: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Document scores of the texts ``rows`` of texts given as chunks
    (:func:`journey_analysis.text.chunk_texts`), vectorised over blocks of texts."""
    out = np.zeros(len(rows))
    if not len(rows):
        return out
    ends = np.flatnonzero(occ == 0)  # the end marker of each text
    begins = np.concatenate([[0], ends[:-1] + 1])
    block = max(batch_size, 1) * 20  # texts scored together (bounds memory: ~100 bytes per token)
    for a in range(0, len(rows), block):
        r = rows[a:a + block]
        k = ends[r] + 1 - begins[r]  # chunk occurrences of each text, its end marker included
        take = np.arange(int(k.sum())) + np.repeat(begins[r] - (np.cumsum(k) - k), k)
        out[a:a + block] = _score_arrays(*_chunk_token_arrays(occ[take], chunks, len(r)))
    return out


# ---------------------------------------------------------------------------------------------
# Batch scoring with dedup + cache
# ---------------------------------------------------------------------------------------------
MAX_CHARS = 100_000
_CACHE: dict[str, float] = {}        # text -> score, in this process (MODEL_VERSION is fixed per process)
_DISK_CACHE: dict[bytes, float] = {}  # _key(text) -> score, read from cache files


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
        _DISK_CACHE.update(zip((bytes.fromhex(k) for k in df["key"]), df["sentiment"].astype(float)))


def _save_disk_cache(path: Path) -> None:
    """Write every score known to this process (read from cache files or computed) to ``path``."""
    _DISK_CACHE.update(zip(map(_key, _CACHE), _CACHE.values()))
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"key": [k.hex() for k in _DISK_CACHE], "sentiment": list(_DISK_CACHE.values())}).to_csv(path, index=False)


LANGUAGE_CHARS = 1_000  # language identification reads the first 1,000 characters of a text


def score_frame(texts, *, languages=None, cache_path: str | Path | None = None, batch_size: int = 1000) -> pd.DataFrame:
    """Score texts with the English lexicon: a DataFrame with ``sentiment`` (float in [-1, 1], NaN when
    not scored), ``sentiment_status`` ("scored", "empty", "not_english"), ``language`` and
    ``language_confidence``, index aligned with the input.

    Input: a str, list or Series of texts (missing allowed); ``languages``: the languages the texts may
    be in (None: from a sample of the texts). The language of each distinct text comes from
    :func:`journey_analysis.text.identify_languages` (on its first 1,000 characters); texts identified
    as English are scored ("empty": missing or whitespace; "not_english": any other language or "und").
    Identical texts are identified and scored once; scores are cached in memory by text (for this
    process), and in ``cache_path`` (a CSV of key = a hash of (model version, text), sentiment) when
    given, so reruns are cheap.
    Texts longer than 100,000 characters are scored on their first 100,000 characters. The score is
    the lexicon compound of the whole text (see the module docstring), deterministic, and equals
    ``get_nlp()(text)._.sentiment``. ``batch_size`` is kept for compatibility (the tokenizer reads up
    to 1,000,000 characters per call).
    """
    from journey_analysis.text import as_strings, chunk_texts, identify_languages

    s = _as_series(texts)
    strs, _ = as_strings(s)  # missing -> "" (labelled "empty")
    codes, uniq = pd.factorize(np.array(strs, dtype=object))  # identical texts: identified and scored once
    u = uniq.tolist()
    head = [t[:LANGUAGE_CHARS] for t in u]
    # one cut into whitespace chunks serves language identification and, for texts of at most
    # LANGUAGE_CHARS characters, the tokenizer
    chunks = chunk_texts(head)
    lf = identify_languages(head, languages, chunks=chunks)
    lang = lf["language"].to_numpy(dtype=object)
    status_u = np.where(lf["language_rule"].to_numpy() == "empty", "empty",
                        np.where(lang == "en", "scored", "not_english"))
    todo_u = np.flatnonzero(status_u == "scored")
    vals_u = np.full(len(uniq), np.nan)
    if len(todo_u):
        if cache_path is not None:
            _load_disk_cache(Path(cache_path))
        keys = [u[i] for i in todo_u.tolist()]
        if cache_path is not None:  # scores of earlier runs, by a hash of (model version, text)
            for t in keys:
                if t not in _CACHE and (v := _DISK_CACHE.get(_key(t))) is not None:
                    _CACHE[t] = v
        cached = np.fromiter(map(_CACHE.__contains__, keys), dtype=bool, count=len(keys))
        todo = todo_u[~cached]
        if len(todo):
            # the document score needs neither sentences nor lemmas (inflections are in the lexicon):
            # tokens only, then the component's rules vectorised over the whole batch
            lens = np.fromiter((len(u[i]) for i in todo.tolist()), dtype=np.int64, count=len(todo))
            short, long = todo[lens <= LANGUAGE_CHARS], todo[lens > LANGUAGE_CHARS]
            vals_new = np.zeros(len(todo))
            vals_new[lens <= LANGUAGE_CHARS] = _score_chunks(*chunks, short, batch_size=batch_size)
            vals_new[lens > LANGUAGE_CHARS] = _score_texts([u[i][:MAX_CHARS] for i in long.tolist()],
                                                           batch_size=batch_size)
            _CACHE.update(zip((keys[j] for j in np.flatnonzero(~cached).tolist()), vals_new.tolist()))
            if cache_path is not None:
                _save_disk_cache(Path(cache_path))
        vals_u[todo_u] = np.fromiter(map(_CACHE.__getitem__, keys), dtype=float, count=len(keys))
    out = pd.DataFrame({"sentiment": vals_u[codes], "sentiment_status": status_u[codes],
                        "language": lang[codes], "language_confidence": lf["language_confidence"].to_numpy()[codes]},
                       index=s.index)
    out.attrs["languages"] = lf.attrs.get("languages", {})
    return out


def score(texts, **kw) -> pd.Series:
    """One sentiment score per text in [-1, 1] (NaN for empty or non-English text); see :func:`score_frame`
    for the definition and the reason a text was not scored."""
    return score_frame(texts, **kw)["sentiment"].rename("sentiment")


# ---------------------------------------------------------------------------------------------
# Learning from ratings
# ---------------------------------------------------------------------------------------------
def _lemma_strings(texts: list[str]) -> list[str]:
    """Lower-cased lemmas joined by spaces (punctuation kept as tokens), the text the blended model's
    n-grams are read from: the same strings as the pipeline's lookup lemmas of each token
    (``get_nlp()``), computed once per distinct token (see :func:`_lemma_tokens`)."""
    tok, doc, n = _lemma_tokens(texts, words=False)
    parts = np.split(tok.astype(object), np.cumsum(np.bincount(doc, minlength=n))[:-1])
    return [" ".join(p) for p in parts]


#: Word pattern of the blended model's n-grams, read from the lemma strings (scikit-learn's default
#: with inner apostrophes: "n't", "'s" -> "s"); punctuation is not a word.
_WORD_PATTERN = r"(?u)\b\w[\w']*\b"


def _lemma_tokens(texts: list[str], words: bool = True):
    """The lemma tokens of many texts at once: :func:`_token_re`'s tokens (read from each distinct
    whitespace chunk once, :func:`journey_analysis.text.chunk_texts` and :func:`_chunk_tokens`: no
    token spans whitespace, a NUL counts as whitespace), then, once per distinct token, the lookup
    lemma of spaCy's English tables (the pipeline's lemmatizer: ``table.get(text, text)``) lower-cased.
    ``words``: split each lemma further into the words of :data:`_WORD_PATTERN` (what the n-grams
    count; punctuation drops out). Returns (token strings, the text each belongs to, number of texts)."""
    from journey_analysis.text import chunk_texts

    n = len(texts)
    if not n:
        return np.zeros(0, dtype=object), np.zeros(0, dtype=np.int64), 0
    codes, ut, per_text = _chunk_tokens(*chunk_texts(texts), n)
    table = _lemma_table("en")
    lem = [(table.get(t, t) or t).lower() for t in ut]
    doc = np.repeat(np.arange(n, dtype=np.int64), per_text)
    if not words:
        return np.array(lem, dtype=object)[codes], doc, n
    word_re = re.compile(_WORD_PATTERN)
    split = [word_re.findall(x) for x in lem]
    k = np.fromiter(map(len, split), dtype=np.int64, count=len(split))
    flat = np.array([w for ws in split for w in ws], dtype=object)
    start = np.concatenate([[0], np.cumsum(k)[:-1]])
    rep = k[codes]
    pos = np.repeat(start[codes] - (np.cumsum(rep) - rep), rep) + np.arange(int(rep.sum()))
    return flat[pos], np.repeat(doc, rep), n


def _ngram_counts(texts: list[str]):
    """Counts of the blended model's word uni- and bigrams (:func:`_lemma_tokens`) per text, as
    scikit-learn's ``CountVectorizer(ngram_range=(1, 2), token_pattern=_WORD_PATTERN)`` counts them on
    :func:`_lemma_strings`. Returns (csr matrix texts x terms, the terms as an object array)."""
    from scipy.sparse import csr_matrix

    w, doc, n = _lemma_tokens(texts)
    wc, wu = pd.factorize(pd.Series(w, dtype=object))
    pair = np.flatnonzero(doc[1:] == doc[:-1])
    pc, pu = pd.factorize(wc[pair].astype(np.int64) * len(wu) + wc[pair + 1])
    wu = np.asarray(wu, dtype=object)
    bigrams = (wu[pu // max(len(wu), 1)] + " " + wu[pu % max(len(wu), 1)]) if len(pu) else np.zeros(0, dtype=object)
    terms = np.concatenate([wu, bigrams]).astype(object)
    rows = np.concatenate([doc, doc[pair]])
    cols = np.concatenate([wc, pc + len(wu)])
    m = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, len(terms)))
    m.sum_duplicates()
    return m, terms


@dataclass
class _Tfidf:
    """TF-IDF of word n-gram counts, as scikit-learn's ``TfidfVectorizer(sublinear_tf=True, min_df=2)``
    (smooth idf, l2 norm; vocabulary sorted): ``terms`` (sorted) and their ``idf``."""
    terms: pd.Index
    idf: np.ndarray

    @classmethod
    def fit(cls, counts, terms, rows=None, min_df: int = 2) -> tuple["_Tfidf", np.ndarray]:
        """Learn from ``counts[rows]``; returns (the fitted model, the columns of ``counts`` it keeps, in its order)."""
        c = counts if rows is None else counts[rows]
        df = np.bincount(c.indices, minlength=c.shape[1])
        cols = np.flatnonzero(df >= min_df)
        if not len(cols):
            raise ValueError("After pruning, no terms remain. Try a lower min_df or a higher max_df.")
        cols = cols[np.argsort(terms[cols].astype(str), kind="stable")]
        idf = np.log((1 + c.shape[0]) / (1 + df[cols])) + 1.0
        return cls(pd.Index(terms[cols]), idf), cols

    def weigh(self, counts):
        """TF-IDF rows from counts whose columns are already this model's terms."""
        from sklearn.preprocessing import normalize

        x = counts.astype(np.float64).tocsr(copy=True)
        x.data = np.log(x.data) + 1.0
        x = x.multiply(self.idf[None, :]).tocsr()
        return normalize(x, norm="l2", copy=False)

    def transform(self, texts: list[str]):
        from scipy.sparse import csr_matrix

        counts, terms = _ngram_counts(texts)
        at = self.terms.get_indexer(terms)
        keep = at >= 0
        c = counts.tocoo()
        ok = keep[c.col]
        m = csr_matrix((c.data[ok], (c.row[ok], at[c.col[ok]])), shape=(counts.shape[0], len(self.terms)))
        return self.weigh(m)


@dataclass
class RatingModel:
    """A domain sentiment model learned from rated feedback (see :func:`fit_from_ratings`).

    ``cv_report``: cross-validated figures, one row per model ("lexicon", "blended") with columns
    ``pearson_r``, ``accuracy_3class``, ``macro_f1_3class``, ``accuracy_2class``, ``n``.
    ``wins``: True when the blended model beats the lexicon on cross-validated Pearson r by at least
    0.01 and does not lose 3-class accuracy; only then should it replace the lexicon for unrated text.
    """
    vectorizer: object
    model: object
    scale: tuple
    cv_report: pd.DataFrame
    wins: bool
    random_state: int = 0
    meta: dict = field(default_factory=dict)

    def _features(self, texts: pd.Series, languages=None, lex=None):
        from scipy.sparse import csr_matrix, hstack

        if lex is None:
            lex = score(texts, languages=languages).fillna(0.0).to_numpy()
        X = self.vectorizer.transform(texts.fillna("").astype(str).tolist())
        return hstack([X, csr_matrix(lex.reshape(-1, 1) * _LEX_WEIGHT)]).tocsr(), lex

    def predict(self, texts, languages=None) -> pd.Series:
        """Scores in [-1, 1] for texts (index kept); NaN where :func:`score` gives NaN (empty, not English).
        ``languages``: as in :func:`score_frame` (``["en"]`` when the texts are known to be English)."""
        s = _as_series(texts)
        return self._predict(s, score(s, languages=languages))

    def _predict(self, s: pd.Series, base: pd.Series) -> pd.Series:
        """:meth:`predict` given the texts' lexicon scores ``base`` (aligned); identical texts once."""
        codes, uniq = pd.factorize(s.fillna("").astype(str))
        first = np.unique(codes, return_index=True)[1]
        X, _ = self._features(pd.Series(uniq, dtype=object), lex=base.fillna(0.0).to_numpy()[first])
        pred = np.clip(self.model.predict(X), -1.0, 1.0)[codes]
        pred[base.isna().to_numpy()] = np.nan
        return pd.Series(pred, index=s.index, name="sentiment")


def _one_blas_thread():
    """Context: one BLAS thread for the ridge fits (sparse matrices; the dense work is on vectors, where
    threads only wait: the English model at 100,000 demo customers took 10.1 CPU-s with two OpenBLAS
    threads on a loaded 2-core machine, 4.1 with one)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)


#: At most this many rated English texts teach the blended model (a seeded sample beyond it): at
#: 100,000 its cross-validated accuracy has long stopped moving, and a run's time stays bounded.
MAX_FIT_TEXTS = 100_000
_LEX_WEIGHT = 3.0  # scale of the lexicon column among TF-IDF features (ridge penalises it less)


def _to_unit(ratings: pd.Series, scale) -> np.ndarray:
    lo, hi = scale
    return (2.0 * (ratings.astype(float).to_numpy() - lo) / (hi - lo)) - 1.0


def _class3(x: np.ndarray, t: float) -> np.ndarray:
    return np.where(x > t, 1, np.where(x < -t, -1, 0))


def fit_from_ratings(texts, ratings, scale=(1, 5), random_state: int = 0, n_splits: int = 5,
                     alpha: float = 1.0, languages=None, max_texts: int | None = MAX_FIT_TEXTS) -> RatingModel:
    """Learn a domain model from texts with ratings and say whether it beats the lexicon.

    Inputs: texts and ratings (same length; rows with a missing rating, empty or non-English text
    are dropped), the rating scale (lo, hi) mapped linearly to [-1, 1].
    Model: TF-IDF over lemma uni- and bigrams (sublinear tf, min_df=2) plus the lexicon score as
    one extra column, fed to a ridge regression (``alpha``); predictions clipped to [-1, 1].
    ``cv_report``: ``n_splits``-fold cross-validation (shuffled with ``random_state``) of the lexicon
    alone and of the blended model: Pearson r with the rating on [-1, 1]; 3-class accuracy and macro-F1
    (rating classes: |x| <= 1/3 of the half-range neutral, i.e. 2-4 of 1-5 stars -> 3 neutral only;
    model classes: VADER's +-0.05); 2-class accuracy on the polar ratings (model > 0 is positive).
    ``languages``: passed to :func:`score_frame` (``["en"]`` when the texts are known to be English).
    ``max_texts``: with more usable rated texts than this, the model is learned and cross-validated on
    a sample of that many (seeded with ``random_state``; None: all); ``meta`` holds ``n_rated`` and
    ``n_fitted``. Identical texts are tokenised once; the TF-IDF (:class:`_Tfidf`) equals
    scikit-learn's ``TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)`` on the lemma
    strings, fitted on each fold's training texts.
    """
    from sklearn.linear_model import Ridge
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import KFold
    from scipy.sparse import csr_matrix, hstack

    from journey_analysis.errors import JourneyError

    t = _as_series(texts).reset_index(drop=True)
    r = _as_series(ratings).reset_index(drop=True)
    if len(t) != len(r):
        raise JourneyError("texts and ratings differ in length", expected="one rating per text",
                           fix="pass two aligned columns of the same frame")
    lo, hi = scale
    rr = pd.to_numeric(r, errors="coerce")
    out_of_range = rr.notna() & ((rr < lo) | (rr > hi))
    if out_of_range.any():
        raise JourneyError(f"ratings outside the scale {scale}", column="rating",
                           rows=list(np.flatnonzero(out_of_range.to_numpy()) + 1),
                           expected=f"values in [{lo}, {hi}]", fix="pass the right scale=(lo, hi)")
    lex_all = score_frame(t, languages=languages)
    keep = rr.notna().to_numpy() & (lex_all["sentiment_status"] == "scored").to_numpy()
    if keep.sum() < 4 * n_splits:
        raise JourneyError(f"too few rated English texts to learn from ({int(keep.sum())})",
                           expected=f"at least {4 * n_splits}", fix="collect more rated feedback")
    t, y = t[keep].astype(str).reset_index(drop=True), _to_unit(rr[keep], scale)
    lex = lex_all["sentiment"].to_numpy()[keep]
    n_rated = len(y)
    if max_texts is not None and n_rated > max_texts:  # a seeded sample of the rated texts
        pick = np.sort(np.random.default_rng(random_state).choice(n_rated, size=max_texts, replace=False))
        t, y, lex = t.iloc[pick].reset_index(drop=True), y[pick], lex[pick]
    codes, uniq = pd.factorize(t)  # identical texts tokenised once
    counts_u, terms = _ngram_counts(uniq.tolist())
    counts = counts_u[codes]
    lexcol = csr_matrix(lex[:, None] * _LEX_WEIGHT)

    def features(tf, cols, rows):
        return hstack([tf.weigh(counts[rows][:, cols]), lexcol[rows]]).tocsr()

    pred = np.zeros(len(y))
    with _one_blas_thread():
        for tr, te in KFold(n_splits, shuffle=True, random_state=random_state).split(y):
            tf, cols = _Tfidf.fit(counts, terms, tr)
            mdl = Ridge(alpha=alpha).fit(features(tf, cols, tr), y[tr])
            pred[te] = np.clip(mdl.predict(features(tf, cols, te)), -1, 1)
    ycls = _class3(y, 1 / 3)
    polar = ycls != 0
    rows = []
    for name, p in (("lexicon", lex), ("blended", pred)):
        pc = _class3(p, POLARITY_THRESHOLD)
        rows.append({"model": name, "pearson_r": float(np.corrcoef(p, y)[0, 1]) if np.std(p) > 0 else 0.0,
                     "accuracy_3class": accuracy_score(ycls, pc),
                     "macro_f1_3class": f1_score(ycls, pc, average="macro"),
                     "accuracy_2class": accuracy_score(ycls[polar] > 0, p[polar] > 0) if polar.any() else np.nan,
                     "n": int(len(y))})
    rep = pd.DataFrame(rows).set_index("model")
    wins = bool(rep.loc["blended", "pearson_r"] >= rep.loc["lexicon", "pearson_r"] + 0.01
                and rep.loc["blended", "accuracy_3class"] >= rep.loc["lexicon", "accuracy_3class"])
    vec, cols = _Tfidf.fit(counts, terms)
    with _one_blas_thread():
        mdl = Ridge(alpha=alpha).fit(features(vec, cols, slice(None)), y)
    return RatingModel(vectorizer=vec, model=mdl, scale=tuple(scale), cv_report=rep, wins=wins,
                       random_state=random_state, meta={"n_rated": n_rated, "n_fitted": int(len(y))})


#: Below this cross-validated Spearman correlation a language's learned model is not used.
MIN_LANGUAGE_SPEARMAN = 0.1
#: Characters of a text the language models read.
MODEL_CHARS = 2_000


def _lemma_table(lang: str):
    """spaCy's lookup lemma table for ``lang`` (from spacy-lookups-data, the file spaCy's lookup
    lemmatizer reads; :func:`text.lookups_table`), loaded once as a plain dict form -> lemma; {} when none."""
    key = ("lemma", lang)
    if key not in _LEX_CACHE:
        from journey_analysis.text import lookups_table

        _LEX_CACHE[key] = lookups_table(lang, "lemma_lookup") or {}
    return _LEX_CACHE[key]


class _LazyPattern:
    """``re.compile(pattern, flags)`` for spaCy's French ``TOKEN_MATCH``, without compiling it whole.

    ``spacy.lang.fr`` compiles, when imported, one pattern of about 270 anchored alternatives, most
    with Unicode letter classes: 4 CPU-s, whatever the texts. Here :meth:`match` first tries a
    *relaxed* pattern, the same alternatives with each letter class replaced by ``.`` (it matches
    every string the real one matches, and compiles in milliseconds); only when it matches are the
    alternatives that it matched compiled, one at a time, and tried. The answer is truthy exactly when
    the whole pattern's ``match`` would be (the alternation matches when one of its alternatives
    does; spaCy only tests ``token_match(s)`` for truth). Any other use compiles the whole pattern."""

    def __init__(self, pattern, flags, compile_):
        self.pattern, self.flags, self._compile = pattern, flags, compile_
        self._full = self._parts = None

    def _whole(self):
        if self._full is None:
            self._full = self._compile(self.pattern, self.flags)
        return self._full

    def match(self, string, *args):
        if self._full is None and not args:
            if self._parts is None:
                self._parts = _relaxed_alternatives(self.pattern, self.flags) or False
            if self._parts:
                relaxed, alts, exact = self._parts
                if relaxed.match(string) is None:
                    return None
                for i, (loose, alt) in enumerate(alts):
                    if loose.match(string) is not None:
                        if i not in exact:
                            exact[i] = self._compile("(?iu)(?:" + alt + ")")
                        hit = exact[i].match(string)
                        if hit is not None:
                            return hit
                return None
        return self._whole().match(string, *args)

    def __getattr__(self, name):  # anything else: the compiled pattern
        return getattr(self._whole(), name)


def _relaxed_alternatives(pattern: str, flags):
    """For spaCy's French ``TOKEN_MATCH`` pattern (``"(?iu)"`` and the alternatives of
    ``spacy.lang.fr.tokenizer_exceptions._regular_exp``): (the relaxed alternation, [(relaxed
    alternative, alternative)], {}), see :class:`_LazyPattern`; None when the pattern is not built that
    way or an alternative has a capturing group or a back-reference (then the pattern is compiled whole).

    A letter class is a ``[...]`` whose content is spaCy's ``ALPHA`` or ``ALPHA_LOWER``, or French
    ``HYPHENS + ALPHA_LOWER + ELISION``: letters, hyphens and apostrophes, never a line break, so
    ``.`` matches every character it matches (in any case)."""
    import re
    import sys

    mod = sys.modules.get("spacy.lang.fr.tokenizer_exceptions")
    punct = sys.modules.get("spacy.lang.fr.punctuation")
    chars = sys.modules.get("spacy.lang.char_classes")
    alts = getattr(mod, "_regular_exp", None)
    if not alts or punct is None or chars is None or flags or \
            pattern != "(?iu)" + "|".join("(?:{})".format(m) for m in alts):
        return None
    letters = {"[" + chars.ALPHA + "]", "[" + chars.ALPHA_LOWER + "]",
               "[" + punct.HYPHENS + chars.ALPHA_LOWER + punct.ELISION + "]"}
    if any(len(c) < 3 or "\n" in c or "\\n" in c or c.startswith("[^") for c in letters):
        return None
    # longest first, so that a class containing another's text is replaced whole
    cls = re.compile("|".join(re.escape(c) for c in sorted(letters, key=len, reverse=True)))
    loose = []
    for m in alts:
        if re.search(r"\((?!\?)|\\\d", m):  # a capturing group or a back-reference
            return None
        loose.append(cls.sub(".", m))
    relaxed = re.compile("(?iu)" + "|".join("(?:{})".format(m) for m in loose))
    return relaxed, [(re.compile("(?iu)(?:" + lm + ")"), m) for lm, m in zip(loose, alts)], {}


def _blank(lang: str):
    """``spacy.blank(lang)``; for French, with the tokenizer's ``token_match`` compiled on first need
    (:class:`_LazyPattern`: the same tokens, without 4 CPU-s of regular-expression compiling when
    the texts hold no hyphen)."""
    import sys

    import spacy

    if lang == "fr" and "spacy.lang.fr" not in sys.modules:
        import importlib
        import re

        real = re.compile

        def lazy(pattern, flags=0):
            if sys._getframe(1).f_globals.get("__name__") == "spacy.lang.fr.tokenizer_exceptions":
                return _LazyPattern(pattern, flags, real)
            return real(pattern, flags)

        re.compile = lazy
        try:
            importlib.import_module("spacy.lang.fr")
        finally:
            re.compile = real
    return spacy.blank(lang)


def _spacy_words(texts: list[str], lang: str) -> list[str]:
    """Lower-cased lemmas (spaCy's lookup table for ``lang`` when spacy-lookups-data has one, else the
    lower-cased token) of ``spacy.blank(lang)``'s tokens, joined by spaces; punctuation kept as tokens
    so word pairs stop at it. A language spaCy does not know falls back to its multi-language tokenizer."""
    try:
        nlp = _blank(lang)
    except Exception:
        nlp = _blank("xx")
    lemma = _lemma_table(lang)
    codes, uniq = pd.factorize(pd.Series(texts, dtype=object))  # identical texts tokenised once
    out = []
    for doc in nlp.tokenizer.pipe(uniq.tolist(), batch_size=1000):
        words = []
        for t in doc:
            if t.is_space:
                continue
            low = t.lower_
            lem = lemma.get(low) if lemma else None
            words.append(lem.lower() if isinstance(lem, str) else low)
        out.append(" ".join(words))
    return np.array(out, dtype=object)[codes].tolist()


@dataclass
class LanguageModel:
    """A sentiment model for one language learned from the organisation's ratings (see
    :func:`fit_language_model`): ``oof`` = cross-fitted predictions for the rated texts (each from a
    model that never saw its rating), ``predictions`` = those and the final model's for the unrated
    texts (aligned with the texts it was fitted on), ``cv_report`` = the oof agreement with the ratings."""
    language: str
    vectorizers: tuple
    model: object
    scale: tuple
    oof: np.ndarray
    predictions: np.ndarray
    cv_report: dict
    used: bool

    def predict(self, texts) -> np.ndarray:
        """Scores in [-1, 1] for texts of this language (from the model fitted on every rated text)."""
        X = _language_features(self.vectorizers, [str(t)[:MODEL_CHARS] for t in texts], self.language)
        return np.clip(self.model.predict(X), -1.0, 1.0)


def _language_features(vectorizers, texts: list[str], lang: str):
    from scipy.sparse import hstack

    char_vec, word_vec = vectorizers
    return hstack([char_vec.transform(texts), word_vec.transform(_spacy_words(texts, lang))]).tocsr()


def fit_language_model(texts, ratings, language: str, scale=(1, 5), *, random_state: int = 0,
                       n_splits: int = 5, alpha: float = 1.0) -> LanguageModel:
    """Learn a sentiment model for one language from the rated ones among ``texts``, with cross-fitting.

    ``texts``: every text of the language; ``ratings``: aligned, missing for unrated texts.
    Features: TF-IDF over character n-grams (2-5 within word boundaries, sublinear tf, min_df=2) and
    over word uni- and bigrams of ``spacy.blank(language)`` tokens, lemmatised with spaCy's lookup
    table when spacy-lookups-data ships one (min_df=2); vocabularies and idf are learned from all the
    texts (no rating is used for them). Model: ridge regression (``alpha``) of the rating mapped
    linearly from ``scale`` to [-1, 1]; predictions clipped to [-1, 1]. Cross-fitting: ``n_splits``
    folds of the rated texts (shuffled with ``random_state``); each rated text's prediction comes
    from the model fitted on the other folds (``oof``); unrated texts get the model fitted on all rated
    texts (``predictions`` holds both, aligned with ``texts``). ``cv_report``: Spearman and Pearson
    correlation of ``oof`` with the ratings, 3-class accuracy (as :func:`fit_from_ratings`), ``n``.
    ``used``: cross-validated Spearman at least :data:`MIN_LANGUAGE_SPEARMAN`.
    """
    from scipy.sparse import hstack
    from scipy.stats import spearmanr
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold

    from journey_analysis.errors import JourneyError

    t = [str(x)[:MODEL_CHARS] for x in _as_series(texts).tolist()]
    r = pd.to_numeric(_as_series(ratings), errors="coerce").reset_index(drop=True)
    if len(r) != len(t):
        raise JourneyError("texts and ratings differ in length", expected="one rating (or missing) per text",
                           fix="pass two aligned columns of the same frame")
    rated = r.notna().to_numpy()
    if rated.sum() < 4:
        raise JourneyError(f"too few rated {language} texts to learn from ({int(rated.sum())})",
                           expected="at least 4", fix="collect more rated feedback")
    y = _to_unit(r[rated], scale)
    char_vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True,
                               lowercase=True, max_features=300_000, dtype=np.float32)
    word_vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, token_pattern=r"\S+",
                               lowercase=False, max_features=300_000, dtype=np.float32)
    X_all = hstack([char_vec.fit_transform(t), word_vec.fit_transform(_spacy_words(t, language))]).tocsr()
    X = X_all[rated]
    oof = np.zeros(len(y))
    folds = min(n_splits, max(2, len(y) // 2))
    with _one_blas_thread():
        for tr, te in KFold(folds, shuffle=True, random_state=random_state).split(y):
            oof[te] = np.clip(Ridge(alpha=alpha).fit(X[tr], y[tr]).predict(X[te]), -1, 1)
        model = Ridge(alpha=alpha).fit(X, y)
    pred = np.empty(len(t))
    pred[rated] = oof
    if (~rated).any():
        pred[~rated] = np.clip(model.predict(X_all[~rated]), -1, 1)
    ycls = _class3(y, 1 / 3)
    ok = np.std(oof) > 0 and np.std(y) > 0
    rho = float(spearmanr(oof, y).statistic) if ok else 0.0
    rep = {"spearman": rho, "pearson_r": float(np.corrcoef(oof, y)[0, 1]) if ok else 0.0,
           "accuracy_3class": float((_class3(oof, POLARITY_THRESHOLD) == ycls).mean()), "n": int(len(y))}
    return LanguageModel(language=language, vectorizers=(char_vec, word_vec), model=model, scale=tuple(scale),
                         oof=oof, predictions=pred, cv_report=rep, used=rho >= MIN_LANGUAGE_SPEARMAN)


@dataclass
class VoiceModels:
    """What :func:`score_feedback` learned: ``english`` (the blended English model, :class:`RatingModel`,
    or None), ``languages`` (language -> :class:`LanguageModel`) and ``cv_report`` (one row per
    language that was scored: how, and its accuracy against the ratings)."""
    english: RatingModel | None
    languages: dict
    cv_report: pd.DataFrame

    @property
    def wins(self) -> bool:
        """True when some learned model scores texts (English blended model that won, or a language model)."""
        return bool((self.english is not None and self.english.wins) or any(m.used for m in self.languages.values()))


def score_feedback(feedback: pd.DataFrame | None, rating_type: str = "csat", scale=(1, 5), *, languages=None,
                   min_rated: int = 200, random_state: int = 0,
                   max_fit_texts: int | None = MAX_FIT_TEXTS) -> tuple[pd.DataFrame | None, VoiceModels | None]:
    """Score every feedback text in the language it is written in.

    Per row: ``language`` and ``language_confidence`` (:func:`journey_analysis.text.identify_languages`,
    restricted to ``languages`` when given, else to the languages a sample of the texts shows),
    ``sentiment`` in [-1, 1], ``sentiment_status`` ("scored", "empty", "not_scored") and
    ``sentiment_source``:

    - English: the lexicon ("lexicon") for every text. With at least ``min_rated`` rated English texts
      (``rating`` of ``rating_type`` on ``scale``), :func:`fit_from_ratings` learns a blended model and,
      only when it wins, scores the English texts **without** a rating ("learned"); rated texts keep the
      lexicon score, so text and rating stay independent evidence. With more than ``max_fit_texts``
      rated English texts the model is learned (and cross-validated) on a sample of that many, seeded
      with ``random_state`` (None: on all of them).
    - Any other language with at least ``min_rated`` rated texts: :func:`fit_language_model` learns from
      them; rated texts get their cross-fitted out-of-fold prediction ("learned_cv": no text's score
      comes from its own rating), unrated texts the model fitted on all of them ("learned"). A model
      whose cross-validated Spearman is below :data:`MIN_LANGUAGE_SPEARMAN` is not used.
    - A language with neither the lexicon nor a usable model: not scored ("not_scored", source "none"),
      counted by :func:`language_report`.

    When both an English model and models of other languages are learned, the other languages' are fitted
    in a forked process (Linux) while this one fits the English model: the same code on the same inputs,
    so the same models and scores, on two cores (refitted here if that process fails).

    Returns (a copy of ``feedback`` with these columns, :class:`VoiceModels` or None when no model was
    learned). ``feedback=None`` (a run without feedback) gives ``(None, None)``.
    """
    if feedback is None:
        return None, None
    out = feedback.drop(columns=["sentiment", "sentiment_status", "sentiment_source", "language",
                                 "language_confidence"], errors="ignore")
    scored = score_frame(out["text"].fillna(""), languages=languages)
    out = out.join(scored)
    status = out["sentiment_status"].to_numpy(dtype=object).copy()
    status[status == "not_english"] = "not_scored"
    out["sentiment_status"] = status
    out["sentiment_source"] = np.where(status == "scored", "lexicon", "none").astype(object)
    lang = out["language"].to_numpy(dtype=object)
    if "rating" in out.columns:
        kind = (out["rating_type"].astype("string").str.lower().eq(str(rating_type).lower()).fillna(False).to_numpy()
                if "rating_type" in out.columns else np.ones(len(out), dtype=bool))
        rating = pd.to_numeric(out["rating"], errors="coerce")
        lo, hi = scale
        rated = kind & rating.notna().to_numpy() & (rating.ge(lo) & rating.le(hi)).fillna(False).to_numpy()
    else:
        rating = pd.Series(np.nan, index=out.index)
        rated = np.zeros(len(out), dtype=bool)
    has_text = out["sentiment_status"].ne("empty").to_numpy()
    english = None
    en_rated = rated & (lang == "en") & has_text
    langs = pd.Series(lang[has_text & rated], dtype=object).value_counts()
    codes = [c for c, n_rated in langs.items() if c not in ("en", "und") and n_rated >= min_rated]
    rows_of = {c: has_text & (lang == c) for c in codes}
    jobs = [(out.loc[rows_of[c], "text"], rating[rows_of[c]].where(rated[rows_of[c]]), c) for c in codes]
    others = None
    if en_rated.sum() >= min_rated:
        # the other languages' models are fitted in a forked process meanwhile, when there is one
        others = Aside(_fit_language_models, jobs, scale, random_state) if jobs else None
        english = fit_from_ratings(out.loc[en_rated, "text"], rating[en_rated], scale=scale, random_state=random_state,
                                   languages=["en"], max_texts=max_fit_texts)  # already identified as English
        unrated = ~rated & (lang == "en") & has_text & out["rating"].isna().to_numpy()
        if english.wins and unrated.any():  # the lexicon scores of these texts are already in out
            out.loc[unrated, "sentiment"] = english._predict(out.loc[unrated, "text"],
                                                             out.loc[unrated, "sentiment"]).to_numpy()
            out.loc[unrated, "sentiment_source"] = "learned"
    models = others.result() if others is not None else _fit_language_models(jobs, scale, random_state)
    for code, m in models.items():
        rows = rows_of[code]
        if not m.used:
            continue
        out.loc[rows, "sentiment"] = m.predictions
        out.loc[rows, "sentiment_source"] = np.where(rated[rows], "learned_cv", "learned")
        out.loc[rows, "sentiment_status"] = "scored"
    if english is None and not models:
        return out, None
    return out, VoiceModels(english=english, languages=models, cv_report=_accuracy_report(out, rating, rated, english, models))


def _fit_language_models(jobs, scale, random_state) -> dict:
    """:func:`fit_language_model` for each (texts, ratings, language) of ``jobs``, in order."""
    return {code: fit_language_model(t, r, code, scale=scale, random_state=random_state) for t, r, code in jobs}


def _accuracy_report(out, rating, rated, english, models) -> pd.DataFrame:
    """Per scored language: how it was scored and how well the scores agree with the ratings."""
    rows = []
    if english is not None:
        rep = english.cv_report
        rows.append({"language": "en", "model": "lexicon", "n_rated": int(rep.loc["lexicon", "n"]),
                     "spearman": np.nan, "pearson_r": rep.loc["lexicon", "pearson_r"],
                     "accuracy_3class": rep.loc["lexicon", "accuracy_3class"], "used": True})
        rows.append({"language": "en", "model": "blended (cross-validated)", "n_rated": int(rep.loc["blended", "n"]),
                     "spearman": np.nan, "pearson_r": rep.loc["blended", "pearson_r"],
                     "accuracy_3class": rep.loc["blended", "accuracy_3class"], "used": bool(english.wins)})
    for code, m in models.items():
        rows.append({"language": code, "model": "learned from ratings (cross-fitted)", "n_rated": m.cv_report["n"],
                     "spearman": m.cv_report["spearman"], "pearson_r": m.cv_report["pearson_r"],
                     "accuracy_3class": m.cv_report["accuracy_3class"], "used": m.used})
    return pd.DataFrame(rows).set_index(["language", "model"]).round(3)


def language_report(feedback: pd.DataFrame | None) -> pd.DataFrame:
    """The language mix of scored feedback and what was done with each language: one row per language
    (most feedback first; "und" = undetermined) with ``feedback_n`` (rows with text), ``share``,
    ``scored_n``, ``share_scored``, ``how`` ("English lexicon", "English lexicon + learned",
    "learned from ratings", "not scored") and ``confidence_median``. Empty text is left out."""
    cols = ["feedback_n", "share", "scored_n", "share_scored", "how", "confidence_median"]
    if feedback is None or "language" not in feedback.columns:
        return pd.DataFrame(columns=cols, index=pd.Index([], name="language"))
    fb = feedback[feedback["sentiment_status"].ne("empty")]
    if fb.empty:
        return pd.DataFrame(columns=cols, index=pd.Index([], name="language"))
    src = fb["sentiment_source"].astype(str)
    g = fb.assign(_scored=fb["sentiment_status"].eq("scored"), _lex=src.eq("lexicon"),
                  _learned=src.str.startswith("learned")).groupby("language", dropna=False)
    out = pd.DataFrame({"feedback_n": g.size(), "scored_n": g["_scored"].sum().astype("int64"),
                        "confidence_median": g["language_confidence"].median()})
    lex, learned = g["_lex"].any(), g["_learned"].any()
    out["how"] = np.where(lex & learned, "English lexicon + learned", np.where(lex, "English lexicon",
                          np.where(learned, "learned from ratings", "not scored")))
    out["share"] = out["feedback_n"] / out["feedback_n"].sum()
    out["share_scored"] = out["scored_n"] / out["feedback_n"]
    out = out.sort_values(["feedback_n"], ascending=False, kind="stable").rename_axis("language")
    return out[cols].round(3)


_LANGUAGE_NAMES = {"en": "English", "pt": "Portuguese", "de": "German", "fr": "French", "es": "Spanish",
                   "it": "Italian", "nl": "Dutch", "und": "undetermined"}


def language_name(code) -> str:
    """A language's English name from its ISO 639-1 code (lingua's name for codes outside the short list)."""
    if code in _LANGUAGE_NAMES:
        return _LANGUAGE_NAMES[code]
    try:
        from journey_analysis.text import lingua_languages

        return lingua_languages()[code].name.title()
    except Exception:
        return str(code)


def language_sentence(feedback: pd.DataFrame | None, min_rated: int = 200) -> str:
    """What was done about languages, in one or two sentences built from :func:`language_report`: the mix
    and, per language, how it was scored; languages left unscored with their counts and the reason."""
    rep = language_report(feedback)
    if rep.empty:
        return ""
    done, left = [], []
    for code, r in rep.iterrows():
        name = language_name(code)
        if r["how"] == "not scored":
            left.append(f"{name} ({int(r['feedback_n']):,})")
        else:
            how = {"English lexicon": "the English lexicon", "English lexicon + learned":
                   "the English lexicon, and a model learned from the ratings for unrated comments",
                   "learned from ratings": "a model learned from its own ratings (cross-fitted)"}[r["how"]]
            done.append(f"{name} {r['share']:.0%} ({int(r['feedback_n']):,} comments, scored with {how})")
    out = "Languages: " + "; ".join(done) + "." if done else "No language of the feedback could be scored."
    if left:
        out += (f" Not scored (no lexicon and fewer than {min_rated} rated comments to learn from): "
                + ", ".join(left) + ".")
    return out
