"""Text hygiene for customer feedback: PII redaction and cheap language detection.

Owns :func:`redact` (e-mails, phone numbers, card numbers, IBANs, URLs with secrets and postcodes become
``[EMAIL]``, ``[PHONE]``, ``[CARD]``, ``[IBAN]``, ``[URL]``, ``[POSTCODE]``) and :func:`detect_language`
("en" / "other" / "empty"). Both take one string or a pandas Series and are vectorised with pandas
string methods; only the rare candidate matches run a small Python check (Luhn, IBAN mod-97, digit counts).
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

__all__ = ["redact", "detect_language", "PII_TAGS"]

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
    s = texts.astype("string")
    cand = s.str.contains(_MAYBE, na=False)
    if not cand.any():
        return out
    sub = s[cand]
    for pattern, repl in _STEPS:
        sub = sub.str.replace(pattern, repl, regex=True)
    out = out.astype(object)
    out.loc[cand] = sub.astype(object).to_numpy()
    return out


# ----------------------------------------------------------------------------------------------
# Language detection
# ----------------------------------------------------------------------------------------------
_EN = set("""a about above after again against all am an and any are aren't as at be because been before being
below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during each
few for from further had hadn't has hasn't have haven't having he her here hers herself him himself his how i i'm
i've if in into is isn't it it's its itself just let's me more most my myself no nor not now of off on once only or
other our ours out over own same she should shouldn't so some such than that the their theirs them then there
these they they're this those through to too under until up very was wasn't we we're were weren't what when where
which while who whom why will with won't would wouldn't you you're your yours yourself yet still never ever
again really got get gets thanks thank please ok okay yes yeah lol omg wow love great good bad best worst terrible
awful excellent amazing service staff help helpful thing things time waiting wait hold called call phone still
never came fixed broken slow fast easy hard price money refund order delivery product customer nothing everything
back went told said asked would could should much many well even also did done give gave take took make made
come came go going gone see saw look like know think want need one two three five star plus top new old day week
month year people man today tomorrow yesterday us em ha haha hahaha fun car show weather via quick really sure
right left first last next way work works working use used using buy bought sold pay paid free call im die""".split())
_OTHER = {
    "fr": set("""le la les un une des du de et est sont pas ne je tu il elle nous vous ils elles que qui quoi dans
sur avec pour par ce cette ces mon ma mes ton ta son sa leur très tres mais ou où donc car été être avoir fait
plus bien merci bonjour service client toujours jamais rien aucun après avant chez au aux c'est n'est j'ai
qu'il pourquoi comment aussi encore déjà""".split()),
    "de": set("""der die das den dem des ein eine einer einem einen und ist sind nicht kein keine ich du er sie es
wir ihr mit für auf aus bei nach von zu zum zur im sehr aber oder auch noch schon immer nie nichts war waren
wurde haben hat habe sein wie was warum danke bitte gut schlecht kundenservice leider""".split()),
    "es": set("""el la los las un una unos unas y es son no que de del en con por para muy pero o también ya
siempre nunca nada fue ser estar está están tengo tiene hay gracias hola servicio cliente bueno malo mi mis su
sus lo le les me se como cuando porque aún todavía""".split()),
    "it": set("""il lo la i gli le un una uno e è sono non che di del della dei in con per molto ma o anche già
sempre mai niente nulla stato essere avere ho ha grazie ciao servizio cliente buono cattivo mio mia suo sua come
quando perché ancora questo questa""".split()),
    "nl": set("""de het een en is zijn niet geen ik jij je hij zij wij we jullie met voor op uit bij naar van te
zeer erg heel maar of ook nog al altijd nooit niets was waren werd hebben heeft heb wat waarom dank bedankt
alstublieft goed slecht klantenservice helaas dit dat deze die""".split()),
    "pt": set("""o a os as um uma e é são não que de do da dos das em com por para muito mas ou também já
sempre nunca nada foi ser estar está tenho tem obrigado obrigada olá serviço cliente bom mau meu minha""".split()),
}
_ALL_LANGS = ["en"] + list(_OTHER)
_WORD_LANG_BITS: dict[str, int] = {}
for _bit, _lang in enumerate(_ALL_LANGS):
    for _w in (_EN if _lang == "en" else {w for w in _OTHER[_lang] if len(w) > 1 or w in "éèàòùà"}):
        _WORD_LANG_BITS[_w] = _WORD_LANG_BITS.get(_w, 0) | (1 << _bit)
_NON_ASCII_LETTER = re.compile(r"[À-ÖØ-öø-ÿßœŒ]")


_WORD_OR_SEP = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?|\x00")
_LETTER = re.compile(r"[^\W\d_]")
_ASCII_LETTER = re.compile(r"[a-z]")
_NON_ASCII_LETTER_ANY = re.compile(r"[^\W\d_\x00-\x7f]")  # a letter outside ASCII
_LANG_CHUNK = 20_000  # texts whose words are extracted in one regex pass (bounds memory)


# fast path for texts whose letters are all ASCII: every other character separates words, so
# translate it to a space and split (apostrophes fixed first so the pieces equal the regex's words)
_ASCII_SEP = str.maketrans({chr(c): " " for c in range(128) if not ("a" <= chr(c) <= "z" or chr(c) in "'\x00")})
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_LOOSE_APOSTROPHE = re.compile(r"(?<![a-z])'|'(?![a-z])")       # not between two letters
_SECOND_APOSTROPHE = re.compile(r"(?<![a-z])([a-z]++'[a-z]++)'")  # "a'b'c" -> words "a'b", "c"



def redact_feedback(feedback, column: str = "text"):
    """A copy of a feedback frame with ``column`` passed through :func:`redact`; None (a run without
    feedback) gives None."""
    if feedback is None:
        return None
    return feedback.assign(**{column: redact(feedback[column])})


def _words_ascii(big: str) -> list[str]:
    """The regex words of NUL-separated lower-cased texts without non-ASCII letters, and the NULs."""
    if not big.isascii():
        big = _NON_ASCII.sub(" ", big)
    big = big.translate(_ASCII_SEP)
    if "'" in big:
        big = _LOOSE_APOSTROPHE.sub(" ", big)
        if "'" in big:
            big = _SECOND_APOSTROPHE.sub(r"\1 ", big)
    return big.split()


def _language_hits(strs: list[str], ascii_letters: np.ndarray | None = None) -> np.ndarray:
    """Stop-word hits per text and language (rows: texts, columns: ``_ALL_LANGS``) for lower-cased
    texts: the texts are joined by NUL (a non-word character, so words never cross texts; NULs inside
    texts are blanked first) and cut into words in one pass (regex, or translate + split when
    ``ascii_letters`` says a text's letters are all ASCII); each word maps to its language bits by a dict."""
    n = len(strs)
    hits = np.zeros((n, len(_ALL_LANGS)), dtype=np.int64)
    lookup = dict(_WORD_LANG_BITS)
    lookup["\x00"] = -1  # the separator
    get = lookup.get
    fast = np.zeros(n, dtype=bool) if ascii_letters is None else ascii_letters
    for group in (np.flatnonzero(fast), np.flatnonzero(~fast)):
        for a in range(0, len(group), _LANG_CHUNK):
            rows = group[a:a + _LANG_CHUNK]
            part = [strs[i] for i in rows]
            big = " \x00 ".join(part)
            if big.count("\x00") != len(part) - 1:
                big = " \x00 ".join(t.replace("\x00", " ") for t in part)
            words = _words_ascii(big) if fast[rows[0]] else _WORD_OR_SEP.findall(big)
            bits = np.array([get(w, 0) for w in words], dtype=np.int64)
            doc = rows[np.cumsum(bits == -1)]
            found = bits > 0
            bits, doc = bits[found], doc[found]
            for b in range(len(_ALL_LANGS)):
                on = ((bits >> b) & 1).astype(bool)
                hits[:, b] += np.bincount(doc[on], minlength=n)
    return hits


def detect_language(texts) -> pd.Series:
    """Tell English comments from others, cheaply: "en", "other" or "empty" per text.

    Input: a str, list or Series of texts. Output: a Series (index of the input Series) of
    "en" / "other" / "empty".

    Definition: "empty" when the text is missing or only whitespace. Otherwise the lower-cased words
    (runs of letters, optionally with one inner apostrophe: ``[^\\W\\d_]+(?:'[^\\W\\d_]+)?``) are looked
    up in small stop-word lists (English plus French, German, Spanish, Italian, Dutch,
    Portuguese; the English list also holds common feedback words such as "great", "service").
    A text is "other" when some other language has more hits than English, or when hits tie (also
    0-0) and the text has at least one Latin letter with an accent (é, ü, ñ, ß...) or its letters are
    mostly non-Latin scripts. Everything else, including texts without letters (":)", "10/10", emoji),
    is "en" and gets scored.

    Cost: one regex pass over all texts joined together and one hash lookup for all words; the accent
    and script checks run only on texts with letters outside ASCII.
    """
    if isinstance(texts, str) or texts is None:
        s = pd.Series([texts], dtype=object)
    elif isinstance(texts, pd.Series):
        s = texts
    else:
        s = pd.Series(list(texts), dtype=object)
    out, _ = _detect(s)
    return pd.Series(out, index=s.index, dtype=object, name="language")


def _as_strings(s: pd.Series) -> tuple[list[str], np.ndarray]:
    """(texts as Python str, "" where missing; missing mask); non-str values become str(value)."""
    vals = s.to_numpy(dtype=object)
    missing = pd.isna(vals)
    strs = [v if type(v) is str else ("" if m else str(v)) for v, m in zip(vals.tolist(), missing.tolist())]
    return strs, missing


def _detect(s: pd.Series) -> tuple[np.ndarray, list[str]]:
    """detect_language's labels as an array, and the texts as Python str ("" where missing)."""
    strs, missing = _as_strings(s)
    return _labels(strs, missing), strs


def _labels(strs: list[str], missing: np.ndarray | None = None) -> np.ndarray:
    """detect_language's labels for Python strings (``missing``: rows that were missing)."""
    empty = (False if missing is None else missing) | np.fromiter((not t.strip() for t in strs), dtype=bool, count=len(strs))
    low = [t.lower() for t in strs]
    # only texts with letters outside ASCII can have accents or other scripts (emoji alone cannot)
    wide = np.fromiter((not t.isascii() and _NON_ASCII_LETTER_ANY.search(t) is not None for t in low),
                       dtype=bool, count=len(low))
    hits = _language_hits(low, ~wide)
    en = hits[:, 0]
    other = hits[:, 1:].max(axis=1) if len(_ALL_LANGS) > 1 else np.zeros_like(en)
    accented = np.zeros(len(strs), dtype=bool)
    non_latin = np.zeros(len(strs), dtype=bool)
    rows = np.flatnonzero(wide)
    if len(rows):
        sub = pd.Series([low[i] for i in rows], dtype=object)
        accented[rows] = sub.str.contains(_NON_ASCII_LETTER).to_numpy(dtype=bool)
        n_letters = sub.str.count(_LETTER).to_numpy()
        non_latin[rows] = (n_letters > 0) & (sub.str.count(_ASCII_LETTER).to_numpy() < 0.5 * n_letters)
    is_other = (other > en) | ((other == en) & (accented | non_latin)) | (non_latin & (en < 2))
    return np.where(empty, "empty", np.where(is_other, "other", "en"))
