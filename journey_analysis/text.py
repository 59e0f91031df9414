"""Text hygiene for customer feedback: PII redaction and language identification.

Owns :func:`redact` (e-mails, phone numbers, card numbers, IBANs, URLs with secrets and postcodes become
``[EMAIL]``, ``[PHONE]``, ``[CARD]``, ``[IBAN]``, ``[URL]``, ``[POSTCODE]``; vectorised with pandas string
methods, only the rare candidate matches run a small Python check: Luhn, IBAN mod-97, digit counts) and
:func:`identify_languages` / :func:`detect_language` (ISO 639-1 code and confidence per text, from
lingua-language-detector restricted to the data's languages, with a stop-word fast path for clear cases;
lingua and spaCy are imported inside the functions).
"""
from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["redact", "redact_feedback", "identify_languages", "detect_language", "chunk_texts", "language_quality", "language_quality_sample",
           "package_file", "lookups_table",
           "PII_TAGS", "GUARD_LANGUAGES"]

PII_TAGS = ("[EMAIL]", "[PHONE]", "[CARD]", "[IBAN]", "[URL]", "[POSTCODE]")

# ----------------------------------------------------------------------------------------------
# Redaction patterns (applied in this order: URL, EMAIL, IBAN, CARD, PHONE, POSTCODE)
# ----------------------------------------------------------------------------------------------
_URL = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>\"']+")
_EMAIL = re.compile(r"(?i)(?<![\w.+-])[a-z0-9][a-z0-9._%+-]*@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_CARD = re.compile(r"(?<![\w.,/:-])\d(?:[ -]?\d){12,18}(?![\w.,/:]?\d)")
# international (+CC ...), UK national (0...), North American ((555) 123-4567, 1-800-555-0199)
_PHONE_INTL = re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(0\))?(?:[ .-]?\(?\d+\)?){2,6}(?![\w.]?\d)")
_PHONE_UK = re.compile(r"(?<![\w.,/:+-])\(?0\d{2,4}\)?[ -]?\d{3,4}[ -]?\d{3,4}(?![\w.,/:]?\d)")
_PHONE_NA = re.compile(r"(?<![\w.,/:+-])(?:1[ .-])?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w.,/:]?\d)")
_POSTCODE_UK = re.compile(r"\b(?:GIR ?0AA|[A-Z]{1,2}\d[A-Z\d]? ?\d[ABD-HJLNP-UW-Z]{2})\b")
_US_STATES = ("AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH "
              "NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY").split()
# ZIP only with context: after "City, ST", as ZIP+4, or after the word zip / zip code / zipcode
_ZIP = re.compile(r"(?i:(\bzip(?:\s?code)?:?\s*))\d{5}(?:-\d{4})?\b"
                  r"|(,\s*(?:" + "|".join(_US_STATES) + r")\s+)\d{5}(?:-\d{4})?\b"
                  r"|\b\d{5}-\d{4}\b")
_URL_SECRET = re.compile(r"(?i)[?#&;][^=\s]+=[^&\s]+|/[A-Za-z0-9_-]*(?:\d[A-Za-z_-]|[A-Za-z_-]\d)[A-Za-z0-9_-]{14,}|//[^/@\s]+:[^/@\s]+@"
                         r"|(?:token|key|secret|password|passwd|pwd|auth|session|sig|signature)[=/]")


def _digits(s: str) -> str:
    return re.sub(r"\D", "", s)


def _luhn_ok(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = ord(ch) - 48
        if i % 2 == parity:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _url_repl(m: re.Match) -> str:
    url = m.group(0)
    trail = ""
    while url and url[-1] in ".,;:!?)]}":  # sentence punctuation after a URL is not part of it
        trail = url[-1] + trail
        url = url[:-1]
    return ("[URL]" if _URL_SECRET.search(url) else url) + trail


def _iban_repl(m: re.Match) -> str:
    s = m.group(0).replace(" ", "")
    if not 15 <= len(s) <= 34:
        return m.group(0)
    moved = s[4:] + s[:4]
    num = "".join(str(int(c, 36)) for c in moved)
    return "[IBAN]" if int(num) % 97 == 1 else m.group(0)


def _card_repl(m: re.Match) -> str:
    d = _digits(m.group(0))
    return "[CARD]" if 13 <= len(d) <= 19 and _luhn_ok(d) else m.group(0)


def _phone_intl_repl(m: re.Match) -> str:
    return "[PHONE]" if 8 <= len(_digits(m.group(0))) <= 15 else m.group(0)


def _phone_uk_repl(m: re.Match) -> str:
    return "[PHONE]" if len(_digits(m.group(0))) in (10, 11) else m.group(0)


def _zip_repl(m: re.Match) -> str:
    return (m.group(1) or m.group(2) or "") + "[POSTCODE]"


_STEPS = (
    (_URL, _url_repl), (_EMAIL, "[EMAIL]"), (_IBAN, _iban_repl), (_CARD, _card_repl),
    (_PHONE_INTL, _phone_intl_repl), (_PHONE_NA, "[PHONE]"), (_PHONE_UK, _phone_uk_repl),
    (_POSTCODE_UK, "[POSTCODE]"), (_ZIP, _zip_repl),
)
# cheap pre-filter: texts without '@', a digit run or 'www'/'http' cannot contain PII we redact
_MAYBE = re.compile(r"@|\d|(?i:www\.|https?://)")


def redact(texts):
    """Replace personal data in free text with tags; everything else is left exactly as it was.

    Input: a str or a pandas Series of str (missing values stay missing). Output: the same type
    (a Series keeps its index and name).

    What is replaced, in this order:

    - ``[URL]``: an http(s):// or www. address that carries a secret: a query or fragment parameter
      (``?a=b``), a path segment of 16+ characters mixing letters and digits (a token), user:password@,
      or a path/parameter named token, key, secret, password, auth, session, sig. Plain addresses
      (``www.example.com/help``) stay.
    - ``[EMAIL]``: name@domain.tld.
    - ``[IBAN]``: two letters, two check digits, 11-30 letters/digits (spaces allowed), passing the
      ISO 13616 mod-97 check.
    - ``[CARD]``: 13-19 digits, optionally grouped by spaces or dashes, passing the Luhn check.
    - ``[PHONE]``: +country numbers with 8-15 digits; UK national numbers (0 + 9-10 digits, spaces or
      dashes, optional brackets round the area code); North American (555) 123-4567, 555-123-4567,
      555.123.4567, 1-800-555-0199.
    - ``[POSTCODE]``: UK postcodes in capitals (SW1A 1AA, M1 1AE, GIR 0AA); US ZIP codes only with
      context (``Springfield, IL 62704``, ZIP+4 ``62704-1234``, after "zip"/"zip code").

    Left alone by design: prices (£29.99, $1,234.56), dates (12/03/2024, 2024-03-12), times (10:30),
    order and account numbers below 13 digits or failing Luhn, speeds and sizes (500 Mbps, 5GB).
    """
    if texts is None:
        return None
    if isinstance(texts, str):
        return redact(pd.Series([texts], dtype=object)).iloc[0]
    if not isinstance(texts, pd.Series):
        from journey_analysis.errors import JourneyError
        raise JourneyError("redact() takes a str or a pandas Series of str",
                           expected="str or pd.Series", fix="wrap lists with pd.Series(...)")
    out = texts.copy()
    # each distinct text once (feedback repeats its texts), spread back to the rows by its code
    codes, uniq = texts.astype("string").factorize()
    s = pd.Series(uniq, dtype="string")
    cand_u = s.str.contains(_MAYBE, na=False).to_numpy(dtype=bool)
    if not cand_u.any():
        return out
    sub = s[cand_u]
    for pattern, repl in _STEPS:
        sub = sub.str.replace(pattern, repl, regex=True)
    red = np.empty(len(uniq), dtype=object)
    red[cand_u] = sub.astype(object).to_numpy()
    cand = np.append(cand_u, False)[codes]  # code -1 (missing): never a candidate
    out = out.astype(object)
    out.loc[cand] = red[codes[cand]]
    return out


# ----------------------------------------------------------------------------------------------
# Language identification (lingua-language-detector, restricted, with a stop-word fast path)
# ----------------------------------------------------------------------------------------------
#: Languages whose spaCy stop-word lists back the fast path and guard it: a text showing stop words of
#: one of them that is not a candidate goes to lingua with that language added to the candidates.
GUARD_LANGUAGES = ("en", "de", "fr", "es", "it", "pt", "nl", "sv", "da", "nb", "pl", "tr", "ro", "ca", "fi",
                   "hu", "cs", "id")
SAMPLE_SIZE = 100          # distinct texts of the data that lingua reads with all its languages
SAMPLE_MIN_LETTERS = 15    # only texts this long go into the sample (shorter ones mislead lingua)
SAMPLE_MIN_SHARE = 0.05    # a language is a candidate when this share of the sample (and 2+ texts) shows it
FAST_MIN_HITS = 2          # fast path: this many stop words exclusive to one candidate...
FAST_DOMINANCE = 3         # ... and this many times the exclusive stop words of all other languages
SHORT_LETTERS = 10         # texts with fewer letters that lingua cannot tell take the main language
MIN_CONFIDENCE = 0.5       # lingua path: below this (prior-weighted) confidence the language is "und"
GUARD_PRIOR = 0.01         # prior weight of a guard language the sample did not show
_WORD_OR_NUL = re.compile(r"[^\W\d_]+|\x00")
_LETTER = re.compile(r"[^\W\d_]")
_ACCENTED = re.compile(r"[À-ÖØ-öø-ɏ]")
_LATIN_LETTER = re.compile(r"[A-Za-zÀ-ÖØ-öø-ɏ]")
_LANG_CACHE: dict = {}


def lingua_languages() -> dict:
    """ISO 639-1 code (lower case) -> lingua Language, for every language lingua ships."""
    if "codes" not in _LANG_CACHE:
        from lingua import Language

        _LANG_CACHE["codes"] = {lang.iso_code_639_1.name.lower(): lang for lang in Language.all()}
    return _LANG_CACHE["codes"]


def _detector(codes: tuple[str, ...], low_accuracy: bool = False):
    """A lingua detector for these languages (all of lingua's when ``codes`` is empty), built once."""
    from journey_analysis.aside import in_child

    if in_child():  # lingua's thread pool does not survive a fork (the caller then does the work itself)
        raise RuntimeError("language identification in a forked process")
    key = ("det", codes, low_accuracy)
    if key not in _LANG_CACHE:
        from lingua import LanguageDetectorBuilder

        langs = lingua_languages()
        b = (LanguageDetectorBuilder.from_languages(*[langs[c] for c in codes]) if codes
             else LanguageDetectorBuilder.from_all_languages())
        _LANG_CACHE[key] = (b.with_low_accuracy_mode() if low_accuracy else b).build()
    return _LANG_CACHE[key]


def stop_words(code: str) -> frozenset:
    """spaCy's stop words for a language (empty when spaCy has none). The list is read from spaCy's
    ``lang/<code>/stop_words.py`` alone, without importing the language's whole pipeline (tokenizer
    exceptions, punctuation rules), which costs seconds per language."""
    key = ("stopwords", code)
    if key not in _LANG_CACHE:
        import importlib.util
        from pathlib import Path

        words: frozenset = frozenset()
        spec = importlib.util.find_spec("spacy")
        path = Path(spec.origin).parent / "lang" / code / "stop_words.py" if spec and spec.origin else None
        try:
            if path is not None and path.is_file():
                ns: dict = {}
                exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), ns)  # a module of literals
                words = frozenset(ns.get("STOP_WORDS", ()))
            else:
                from spacy.util import get_lang_class

                words = frozenset(get_lang_class(code).Defaults.stop_words)
        except Exception:  # a language spaCy does not know: no fast path for it
            words = frozenset()
        _LANG_CACHE[key] = words
    return _LANG_CACHE[key]


def _stop_bits(codes: tuple[str, ...]) -> dict[str, int]:
    """Lower-cased stop word -> bit mask of the languages in ``codes`` (spaCy's lists) that have it."""
    key = ("stop", codes)
    if key not in _LANG_CACHE:
        bits: dict[str, int] = {}
        for b, code in enumerate(codes):
            words = stop_words(code)
            for w in words:
                for part in _WORD_OR_NUL.findall(w.lower()):
                    bits[part] = bits.get(part, 0) | (1 << b)
        _LANG_CACHE[key] = bits
    return _LANG_CACHE[key]


def chunk_texts(texts: list[str]) -> tuple[np.ndarray, list[str]]:
    """The whitespace-separated chunks of texts, for passes that read each distinct chunk once (no word
    or token spans whitespace; a NUL inside a text counts as whitespace): (id of every chunk in text
    order, with id 0 after each text; the distinct chunks, id 0 being ""). Split and deduplicated by
    pyarrow (``utf8_split_whitespace``: the same whitespace as ``str.split``, tested on every code
    point); only the distinct chunks become Python strings. Texts pyarrow cannot encode (lone
    surrogates) take ``str.split`` and ``pd.factorize``, with the same result."""
    n = len(texts)
    if not n:
        return np.zeros(0, dtype=np.intp), [""]
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        arr = pa.array(texts, type=pa.large_string())
    except (UnicodeEncodeError, pa.ArrowException):
        joined = " \x00 ".join(t.replace("\x00", " ") for t in texts)
        codes, uniq = pd.factorize(np.array(("\x00 " + joined + " \x00").split(), dtype=object))
        ul = uniq.tolist()
        ul[0] = ""
        return codes[1:], ul
    if pc.any(pc.match_substring(arr, "\x00")).as_py():
        arr = pc.replace_substring(arr, "\x00", " ")
    pieces = pc.utf8_split_whitespace(arr)
    flat = pc.list_flatten(pieces)
    keep = pc.not_equal(pc.binary_length(flat), 0)  # pyarrow keeps empty pieces at the ends; str.split does not
    parent = pc.list_parent_indices(pieces).filter(keep).to_numpy().astype(np.intp)
    enc = pc.dictionary_encode(flat.filter(keep))
    codes = enc.indices.to_numpy().astype(np.intp) + 1
    occ = np.zeros(len(codes) + n, dtype=np.intp)
    occ[np.arange(len(codes)) + parent] = codes  # each text's chunks, then its end marker (0)
    return occ, [""] + enc.dictionary.to_pylist()


def _chunk_docs(occ: np.ndarray) -> np.ndarray:
    """The text of every chunk occurrence of :func:`chunk_texts` (its end marker included)."""
    end = occ == 0
    return np.cumsum(end) - end


def _word_stats(texts: list[str], codes: tuple[str, ...], chunks=None) -> tuple[np.ndarray, np.ndarray]:
    """For texts: (per text and language of ``codes``, how many of its lower-cased words are stop words
    of that language only, among ``codes``; letters per text). Words (``[^\\W\\d_]+``) never span
    whitespace, so only the distinct chunks (:func:`chunk_texts`, or ``chunks`` when the caller has
    them) are lower-cased and cut into words (a chunk of letters only is one word; the others go
    through the word pattern, joined by NUL) and their words looked up; a text's counts are the sums
    over its chunks."""
    n = len(texts)
    hits = np.zeros((n, len(codes)), dtype=np.int64)
    if not n:
        return hits, np.zeros(0, dtype=np.int64)
    occ, ul = chunk_texts(texts) if chunks is None else chunks
    bits = _stop_bits(codes)
    L = len(codes)
    # NUL is neither cased nor case-ignorable: lower-casing the joined chunks lower-cases each one
    low = "\x00".join(ul).lower().split("\x00")
    m = len(low)
    one = np.fromiter(map(str.isalpha, low), dtype=bool, count=m)  # all letters: the chunk is one word
    one_ix, many_ix = np.flatnonzero(one), np.flatnonzero(~one)
    w_many = _WORD_OR_NUL.findall("\x00".join([low[i] for i in many_ix.tolist()]) + "\x00")
    words = [low[i] for i in one_ix.tolist()] + w_many
    k = len(words)
    is_nul = np.zeros(k, dtype=bool)
    is_nul[len(one_ix):] = np.fromiter(map("\x00".__eq__, w_many), dtype=bool, count=len(w_many))
    nul_m = is_nul[len(one_ix):]
    owner = np.concatenate([one_ix, many_ix[np.cumsum(nul_m) - nul_m]])  # the chunk of each word
    wb = np.fromiter(map(bits.get, words, itertools.repeat(0)), dtype=np.int64, count=k)
    wlen = np.fromiter(map(len, words), dtype=np.int64, count=k)
    c_letters = np.bincount(owner[~is_nul], weights=wlen[~is_nul], minlength=m)
    doc = _chunk_docs(occ)
    letters = np.bincount(doc, weights=c_letters[occ], minlength=n).astype(np.int64)
    single = ~is_nul & (wb > 0) & ((wb & (wb - 1)) == 0)  # exactly one language has the word
    if single.any():
        sc = owner[single]
        order = np.argsort(sc, kind="stable")
        lang = np.log2(wb[single][order]).astype(np.int64)  # single-language words, chunk by chunk
        per_chunk = np.bincount(sc, minlength=m)
        first = np.cumsum(per_chunk) - per_chunk
        kk = per_chunk[occ]
        sel = kk > 0
        occ_s, kk = occ[sel], kk[sel]
        idx = np.arange(int(kk.sum())) + np.repeat(first[occ_s] - (np.cumsum(kk) - kk), kk)
        hits = np.bincount(np.repeat(doc[sel], kk) * L + lang[idx], minlength=n * L).reshape(n, L).astype(np.int64)
    return hits, letters


def _clear(hits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(column of the language with most exclusive stop words, whether it is clear: at least
    ``FAST_MIN_HITS`` of them and ``FAST_DOMINANCE`` times those of all other languages together)."""
    if not hits.shape[1]:
        return np.zeros(len(hits), dtype=np.int64), np.zeros(len(hits), dtype=bool)
    top = hits.argmax(axis=1)
    th = hits[np.arange(len(hits)), top]
    return top, (th >= FAST_MIN_HITS) & (th >= FAST_DOMINANCE * (hits.sum(axis=1) - th))


def _sample_mix(strs: list[str], letters: np.ndarray, hits: np.ndarray, codes: tuple[str, ...], size: int,
                random_state: int) -> dict[str, float]:
    """The languages of the data, with their shares (largest first): texts whose stop words show a
    language (clearly, :func:`_clear`, or at least one exclusive stop word more than of any other
    language) count for it; of the others, a seeded sample of up to ``size`` texts with
    at least ``SAMPLE_MIN_LETTERS`` letters is read by lingua with all its languages (low-accuracy
    mode), each detection standing for its share of those texts (the sample is skipped when they are
    fewer than ``SAMPLE_MIN_SHARE`` of the texts). A language counts with at least that share and 2
    texts; when none does, the largest one; English when there is no text with letters."""
    n = len(strs)
    if not n:
        return {"en": 1.0}
    top, clear = _clear(hits)
    # clear texts count for their language; texts with some stop words of one language more than of any
    # other, for that one; lingua reads a sample of the rest (no stop word of any listed language)
    best = hits[np.arange(n), top]
    second = np.sort(hits, axis=1)[:, -2] if hits.shape[1] > 1 else np.zeros(n, dtype=np.int64)
    shown = clear | ((best >= 1) & (best > second))
    counts = pd.Series(np.array(codes, dtype=object)[top[shown]], dtype=object).value_counts().astype(float)
    pool = np.flatnonzero(~shown & (letters >= SAMPLE_MIN_LETTERS))
    if len(pool) >= max(1, SAMPLE_MIN_SHARE * n):
        rng = np.random.default_rng(random_state)
        pick = np.sort(rng.choice(pool, min(size, len(pool)), replace=False))
        det = _sample_languages([strs[i] for i in pick], counts, n, len(pool) / len(pick))
        if det is None:  # English alone, whatever the unread texts hold
            return {"en": 1.0}
        counts = counts.add(det.value_counts() * (len(pool) / len(pick)), fill_value=0.0)
    if not len(counts):
        counts = pd.Series({"en": 0.0})
    share = (counts / n).sort_values(ascending=False, kind="stable")
    keep = counts[share.index][(share >= SAMPLE_MIN_SHARE) & (counts[share.index] >= (2 if n >= 40 else 1))]
    if not len(keep):
        keep = counts[share.index].iloc[:1]
    if "en" not in keep.index:  # English (the lexicon's language) is always a candidate
        keep["en"] = 0.0
    prior = (keep + 1.0) / (keep.sum() + len(keep))  # Laplace-smoothed shares
    return {k: float(v) for k, v in prior.items()}


SAMPLE_STEP = 10  # sample texts lingua reads per call once English alone is in sight


def _sample_languages(texts: list[str], shown: pd.Series, n: int, scale: float) -> pd.Series | None:
    """Lingua's language (all languages, low-accuracy mode; None when it has none) of each sample text,
    or None when the sample's outcome is English alone before every text is read: texts are read in
    order, first as many as could still lift another language to ``SAMPLE_MIN_SHARE``, then
    ``SAMPLE_STEP`` at a time, and reading stops once English is surely kept (its share so far) and
    no other language can reach that share even if every unread text were in it. The candidates are
    then English alone (prior 1), exactly what the whole sample gives. ``shown``: counts from stop
    words; ``scale``: texts each sample text stands for."""
    det = _detector((), low_accuracy=True)
    k = len(texts)
    limit = SAMPLE_MIN_SHARE * n * (1 - 1e-9)  # a margin against rounding in the shares
    min_count = 2 if n >= 40 else 1
    other = max((float(v) for c, v in shown.items() if c != "en"), default=0.0)
    first = k if other >= limit else max(0, k - int((limit - other) / scale))
    found: list = []
    while True:
        end = min(k, max(first, len(found) + SAMPLE_STEP))
        found.extend(det.detect_languages_in_parallel_of(texts[len(found):end]))
        codes = pd.Series([f.iso_code_639_1.name.lower() if f is not None else None for f in found], dtype=object)
        if len(found) >= k:
            return codes
        c = shown.add(codes.value_counts() * scale, fill_value=0.0)
        en = float(c.get("en", 0.0))
        top_other = max((float(v) for code, v in c.items() if code != "en"), default=0.0)
        unread = k - len(found)
        if en >= SAMPLE_MIN_SHARE * n * (1 + 1e-9) and en >= min_count and top_other + unread * scale < limit:
            return None


def _lingua_posterior(texts: list[str], pool: list[str], prior: dict,
                      low_accuracy: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(language, confidence) per text from lingua restricted to ``pool``: lingua's confidence values
    times the prior weights (``prior``, :data:`GUARD_PRIOR` for languages not in it), renormalised
    (the prior alone when lingua gives nothing); "und" below :data:`MIN_CONFIDENCE`. One language:
    that language, confidence 1, without asking lingua."""
    if len(pool) == 1:
        return np.full(len(texts), pool[0], dtype=object), np.ones(len(texts))
    weights = np.array([prior.get(c, GUARD_PRIOR) for c in pool])
    values = _detector(tuple(sorted(pool)), low_accuracy).compute_language_confidence_values_in_parallel(texts)
    col = {c: j for j, c in enumerate(pool)}
    lens = [len(v) for v in values]
    cols = [col[v.language.iso_code_639_1.name.lower()] for vals in values for v in vals]
    vals = [v.value for vals in values for v in vals]
    m = np.zeros((len(texts), len(pool)))
    if cols:
        m[np.repeat(np.arange(len(texts)), lens), np.array(cols)] = vals
    post = m * weights
    tot = post.sum(axis=1, keepdims=True)
    post = np.where(tot > 0, post / np.where(tot > 0, tot, 1.0), weights / weights.sum())
    best = post.argmax(axis=1)
    pc = post[np.arange(len(texts)), best]
    return np.where(pc >= MIN_CONFIDENCE, np.array(pool, dtype=object)[best], "und"), pc


def identify_languages(texts, languages=None, *, sample_size: int = SAMPLE_SIZE, random_state: int = 0,
                       chunks=None) -> pd.DataFrame:
    """The language of every text: ISO 639-1 code, confidence and the rule that decided it.

    Input: a str, list or Series of texts; ``languages``: the codes the data may hold (from the config),
    or None to take them from a sample of the data. Output: a DataFrame (index of the input) with
    ``language`` (e.g. "en", "pt"; "und" when undetermined; missing for empty text),
    ``language_confidence`` (0-1) and ``language_rule``; ``.attrs["languages"]`` holds the candidate
    languages with their prior weights. ``chunks``: :func:`chunk_texts` of the same texts when the caller
    already has them (used when the texts are distinct; the result is the same either way).

    Rules, per distinct text (identical texts are identified once):

    - ``empty``: missing or only whitespace -> language missing, confidence NaN.
    - Candidates: ``languages`` when given, else the data's mix (:func:`_sample_mix`: stop words, then
      lingua with all its 75 languages on a seeded sample of up to 100 distinct texts of 15+ letters
      that show no stop word; languages of at least 5% of the texts, and English always). Their prior
      weights are the Laplace-smoothed shares (equal when configured).
    - ``fast`` (clear cases): at least 2 words that are stop words (spaCy's lists) of one candidate
      only (among the candidates and the guard languages, :data:`GUARD_LANGUAGES`), and at least 3
      times as many as the words that are stop words of one other language only -> that candidate,
      confidence 1.
    - ``no_letters`` (emoji, digits, ":)"): the candidate with the largest prior, confidence = its prior.
    - ``lingua``: everything else goes to lingua restricted to the candidates, plus the guard languages
      whose exclusive stop words (2 or more; 1 in English-only data) outnumber the candidates' in the
      text, or, when English is the only
      candidate, plus every guard language (low-accuracy mode) for a text with accented letters and no
      English stop word (for these two, lingua alone decides: equal weights); texts whose letters are
      mostly not Latin add lingua's languages of every script (low-accuracy mode). Lingua's confidence
      values are multiplied by the prior weights and renormalised: for short or mixed texts, where
      lingua's values are close, the data's main language wins. The language is the largest; below 0.5
      it is "und" (undetermined). With one candidate and no guard language in sight, every text with
      letters is that candidate (confidence 1).
    - ``short``: a text of fewer than 10 letters ("ok", "no", "great!") that lingua leaves "und" takes
      the candidate with the largest weight, confidence = that weight.
    """
    s = _as_series_text(texts)
    strs, _ = as_strings(s)
    codes_t, uniq = pd.factorize(pd.Series(strs, dtype=object))
    u = uniq.tolist()
    n = len(u)
    lang = np.full(n, None, dtype=object)
    conf = np.full(n, np.nan)
    rule = np.full(n, "empty", dtype=object)
    known = lingua_languages()
    configured = list(dict.fromkeys(str(c).lower() for c in languages)) if languages else []
    bad = [c for c in configured if c not in known]
    if bad:
        from journey_analysis.errors import JourneyError
        raise JourneyError(f"unknown language code(s) {bad}", expected="ISO 639-1 codes lingua knows "
                           "(en, pt, de, fr, es...)", fix="correct the languages list")
    codes = tuple(GUARD_LANGUAGES) + tuple(c for c in configured if c not in GUARD_LANGUAGES)
    hits, letters = _word_stats(u, codes, chunks if chunks is not None and len(u) == len(strs) else None)
    empty = np.fromiter((not t.strip() for t in u), dtype=bool, count=n)
    if configured:
        prior = {c: 1.0 / len(configured) for c in configured}
    else:
        prior = _sample_mix(u, letters, hits, codes, sample_size, random_state)
    cand = list(prior)
    main = cand[0]
    nol = np.flatnonzero(~empty & (letters == 0))
    lang[nol], conf[nol], rule[nol] = main, prior[main], "no_letters"
    text_rows = np.flatnonzero(~empty & (letters > 0))
    th = hits[text_rows]
    top, clear = _clear(th)
    col_lang = np.array(codes, dtype=object)
    is_cand = np.isin(col_lang, cand)
    fast = clear & is_cand[top]
    fr = text_rows[fast]
    lang[fr], conf[fr], rule[fr] = col_lang[top[fast]], 1.0, "fast"
    rest = text_rows[~fast]
    if len(rest):
        rh = th[~fast]
        sub = [u[i] for i in rest.tolist()]
        non_latin = np.zeros(len(rest), dtype=bool)
        wide = np.flatnonzero([not t.isascii() for t in sub])
        if len(wide):
            ws = pd.Series([sub[i] for i in wide], dtype=object)
            non_latin[wide] = ws.str.count(_LATIN_LETTER).to_numpy() < 0.5 * letters[rest][wide]
        # a text that shows another language (2+ of its exclusive stop words, or 1 in a text of SHORT_LETTERS
        # letters or more when English is the only candidate; more than of any candidate)
        # goes to lingua with those languages added; a text with accented letters and no stop word of a
        # candidate, with every guard language added; the others with the candidates only
        other_cols = np.flatnonzero(~is_cand)
        strong = np.zeros(len(rest), dtype=bool)
        gtop = np.zeros(len(rest), dtype=np.int64)
        cmax = rh[:, np.flatnonzero(is_cand)].max(axis=1) if is_cand.any() else np.zeros(len(rest), dtype=np.int64)
        if len(other_cols):
            gtop = other_cols[rh[:, other_cols].argmax(axis=1)]
            gbest = rh[np.arange(len(rh)), gtop]
            english_only = set(cand) <= {"en"}
            strong = (((gbest >= 2) | ((gbest >= 1) & (letters[rest] >= SHORT_LETTERS) & english_only))
                      & (gbest > cmax) & ~non_latin)
        accented = np.zeros(len(rest), dtype=bool)
        if len(wide):
            accented[wide] = ws.str.contains(_ACCENTED).to_numpy(dtype=bool)
        # accents are a sign of another language only where every candidate writes without them (English)
        accented &= (cmax == 0) & ~strong & ~non_latin & (set(cand) <= {"en"})
        every = cand + [g for g in codes if g not in cand]
        flat = {c: 1.0 for c in every}  # a text that showed another language: lingua alone decides
        groups = [(np.flatnonzero(~strong & ~non_latin & ~accented), cand, prior, False),
                  (np.flatnonzero(accented), every, flat, True)]
        for j in np.unique(gtop[strong]) if strong.any() else []:  # one small detector per shown language
            groups.append((np.flatnonzero(strong & (gtop == j)), cand + [codes[j]], flat, False))
        for group, pool, weights, low_acc in groups:
            if len(group):
                lang[rest[group]], conf[rest[group]] = _lingua_posterior([sub[i] for i in group.tolist()], pool, weights,
                                                                         low_accuracy=low_acc)
                rule[rest[group]] = "lingua"
        # short texts ("ok", "no", "great!") that lingua cannot tell: the data's main language
        short = rest[(letters[rest] < SHORT_LETTERS) & (lang[rest] == "und")]
        lang[short], conf[short], rule[short] = main, prior[main], "short"
        other = np.flatnonzero(non_latin)
        if len(other):
            found = _detector((), low_accuracy=True).compute_language_confidence_values_in_parallel(
                [sub[i] for i in other])
            top_v = [vals[0] if vals else None for vals in found]
            lang[rest[other]] = [v.language.iso_code_639_1.name.lower() if v is not None and v.value >= MIN_CONFIDENCE
                                 else "und" for v in top_v]
            conf[rest[other]] = [v.value if v is not None else 0.0 for v in top_v]
            rule[rest[other]] = "lingua_all"
    out = pd.DataFrame({"language": lang[codes_t], "language_confidence": conf[codes_t],
                        "language_rule": rule[codes_t]}, index=s.index)
    out.attrs["languages"] = dict(prior)
    return out


def detect_language(texts, languages=None, **kw) -> pd.Series:
    """The ISO 639-1 code of each text ("und" undetermined, missing for empty text); see
    :func:`identify_languages` for the rules."""
    return identify_languages(texts, languages, **kw)["language"]


def _as_series_text(texts) -> pd.Series:
    if isinstance(texts, pd.Series):
        return texts
    if isinstance(texts, str) or texts is None:
        return pd.Series([texts], dtype=object)
    return pd.Series(list(texts), dtype=object)


def as_strings(s: pd.Series) -> tuple[list[str], np.ndarray]:
    """(texts as Python str, "" where missing; missing mask); non-str values become str(value)."""
    vals = s.to_numpy(dtype=object)
    missing = pd.isna(vals)
    strs = [v if type(v) is str else ("" if m else str(v)) for v, m in zip(vals.tolist(), missing.tolist())]
    return strs, missing


def redact_feedback(feedback, column: str = "text"):
    """A copy of a feedback frame with ``column`` passed through :func:`redact`; None (a run without
    feedback) gives None."""
    if feedback is None:
        return None
    return feedback.assign(**{column: redact(feedback[column])})


def language_quality(feedback: pd.DataFrame | None, file: str = "feedback") -> pd.DataFrame:
    """The language mix as rows of the run's data-quality table (the columns of
    :meth:`journey_analysis.schema.QualityLog.frame`, severity "info"): one ``language`` row per language
    (most comments first; ``rows`` = comments with text in it, ``detail`` = its share), then
    ``language_short_text`` (texts the short-text rule decided: ``language_rule`` "short" or
    "no_letters") and ``language_undetermined`` ("und"), each with the rule applied. Empty when the
    feedback has no ``language`` column (it is identified when feedback is scored)."""
    from journey_analysis.schema import QualityLog

    log = QualityLog()
    if feedback is None or "language" not in feedback.columns:
        return log.frame()
    lang = feedback["language"]
    has = lang.notna()
    n = int(has.sum())
    counts = lang[has].astype(str).value_counts()
    counts = counts.reindex(sorted(counts.index, key=lambda c: (-counts[c], c)))
    for code, k in counts.items():  # languages, not rows
        if code != "und":
            log.add(file, "language", int(k), severity="info", detail=f"{code}: {k / n:.1%} of the comments with text")
    rule = feedback["language_rule"].astype(str) if "language_rule" in feedback.columns else pd.Series("", index=feedback.index)
    short = (has & rule.isin(["short", "no_letters"])).to_numpy()
    log.add(file, "language_short_text", int(short.sum()), np.flatnonzero(short) + 1, severity="info")
    und = (lang == "und").fillna(False).to_numpy(dtype=bool)
    log.add(file, "language_undetermined", int(und.sum()), np.flatnonzero(und) + 1, severity="info",
            detail=f"{und.sum() / max(n, 1):.1%} of the comments with text")
    return log.frame()


#: Comments ``journey validate`` reads (a seeded sample) to show the language mix the run would use.
VALIDATE_SAMPLE = 2_000


def language_quality_sample(feedback: pd.DataFrame | None, n: int = VALIDATE_SAMPLE, random_state: int = 0,
                            file: str = "feedback") -> pd.DataFrame:
    """The language rows of the quality table as ``journey validate`` shows them, without scoring anything:
    :func:`language_quality` on a seeded sample of up to ``n`` comments with text, each redacted and
    identified by :func:`identify_languages` on its first 1,000 characters (the run's rules; the
    candidate languages come from that sample). ``rows`` count the sampled comments (shares in
    ``detail`` are of the sample), ``first_rows`` are row numbers of the feedback; ``attrs["sampled"]`` and
    ``attrs["with_text"]`` say how many comments were read of how many with text. Empty when there is
    no text."""
    from journey_analysis.schema import QualityLog

    if feedback is None or len(feedback) == 0 or "text" not in feedback.columns:
        return QualityLog().frame()
    text = feedback["text"].astype("string").fillna("")
    pos = np.flatnonzero((text.str.strip() != "").to_numpy(dtype=bool))
    if len(pos) == 0:
        return QualityLog().frame()
    take = pos if len(pos) <= n else np.sort(np.random.default_rng(random_state).choice(pos, n, replace=False))
    head = redact(text.iloc[take].astype(str).str.slice(0, 1_000).reset_index(drop=True))
    lf = identify_languages(head)
    frame = pd.DataFrame({"language": pd.Series(None, index=range(len(feedback)), dtype=object),
                          "language_rule": pd.Series("", index=range(len(feedback)), dtype=object)})
    frame.iloc[take, 0] = lf["language"].to_numpy(dtype=object)
    frame.iloc[take, 1] = lf["language_rule"].to_numpy(dtype=object)
    q = language_quality(frame, file)
    q.attrs.update({"sampled": len(take), "with_text": len(pos)})
    return q


def package_file(package: str, *parts: str) -> Path | None:
    """A data file an installed package ships (``<package folder>/<parts...>``), located without importing
    the package; None when the package or the file is absent."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)
    return path if path.is_file() else None


def lookups_table(lang: str, table: str) -> dict | None:
    """A table of spacy-lookups-data (``data/<lang>_<table>.json``, else its ``.json.gz``, what spaCy's
    ``load_language_data`` reads) as a dict, read without importing spaCy (about 1.2 CPU-s); None when the
    package or the table is absent."""
    import gzip
    import json

    try:
        path = package_file("spacy_lookups_data", "data", f"{lang}_{table}.json")
        if path is not None:
            with open(path, encoding="utf-8") as fh:
                return json.load(fh)
        gz = package_file("spacy_lookups_data", "data", f"{lang}_{table}.json.gz")
        if gz is not None:
            with gzip.open(gz, "rt", encoding="utf-8") as fh:
                return json.load(fh)
    except (OSError, ValueError):
        return None
    return None
