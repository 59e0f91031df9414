"""The seeded demo data set: a fictional broadband company with planted, known truths.

This module owns :func:`make_demo` (build the three contract frames plus the truth in memory),
:func:`write_demo` (write them as gzip CSV files that are byte-identical for the same seed, plus
``truth.json``) and :func:`demo_config_path` (the run configuration that describes the demo journey,
``configs/demo.yaml``).

The world ("Brightline Broadband", fictional): people hear of the company (awareness), compare plans
(consideration), buy (purchase), get connected (onboarding), use the service (usage), contact support
(support, contacts can repeat) and decide at the end of their 3-month introductory deal whether to stay
(renewal). Prospects drop off after consideration; some customers cancel right after onboarding.

Planted truths (returned as ``DemoData.truth`` and written to ``truth.json``):

* four behavioural segments ("young digital self-servers", "families on fibre plus",
  "older phone-first", "price-sensitive switchers"), separated in age, monthly value, tenure,
  channel mix, number of events and number of support contacts;
* pain point = ``support``: long waits between repeated contacts, long service times, CSAT far below
  target, most negative comments;
* moment of truth = ``onboarding``: a bad installation (engineer no-show, botched install) raises the
  churn probability far more than anything else (better onboarding experience -> lower churn);
* expectation gap = ``purchase``: the wait from purchase to the first onboarding step (activation) has
  a median of about 8 days against ``expected_max_duration_h: 48`` in ``configs/demo.yaml``.

Everything is vectorised with numpy (no loop over customers or rows); texts are composed from
templates by vectorised choice and string concatenation. Same seed -> identical frames and files.
"""
from __future__ import annotations

import gzip
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

#: End of the extract (exclusive): every event and feedback timestamp is before it.
EXTRACT_END = pd.Timestamp("2025-07-01T00:00:00Z")
#: Length of the extract window in days (it starts ``WINDOW_DAYS`` before :data:`EXTRACT_END`).
WINDOW_DAYS = 365
#: The configured stage order (must equal the stage names of ``configs/demo.yaml``).
STAGES = ("awareness", "consideration", "purchase", "onboarding", "usage", "support", "renewal")
SEGMENT_NAMES = ("young digital self-servers", "families on fibre plus", "older phone-first",
                 "price-sensitive switchers")
PLANS = ("basic", "fibre", "fibre_plus")
REGIONS = ("London", "South East", "South West", "Midlands", "North", "Scotland", "Wales")
#: Every channel used in events and feedback.
CHANNELS = ("website", "app", "webchat", "email", "text", "social", "tv", "helpline", "store", "engineer")
JOURNEY = "renewal"
EXPECTED_PURCHASE_H = 48
#: Median activation wait (days from purchase to the first onboarding step): in the extract period, and in
#: every later period (``make_demo(period=1, ...)``), after the company fixed activation.
ACTIVATION_MEDIAN_D = (8.0, 1.5)

# ---------------------------------------------------------------- segment parameters (index = segment)
_SEG_SHARE = np.array([0.30, 0.25, 0.25, 0.20])
_AGE = np.array([[27, 3.5], [42, 4], [69, 5], [33, 4]], dtype=float)
_MODE_P = np.array([[0.92, 0.03, 0.05],      # digital, phone, store
                    [0.55, 0.37, 0.08],
                    [0.08, 0.80, 0.12],
                    [0.25, 0.10, 0.65]])
_PLAN_P = np.array([[0.55, 0.45, 0.0], [0.0, 0.25, 0.75], [0.70, 0.30, 0.0], [0.65, 0.35, 0.0]])
_PLAN_PRICE = np.array([30.0, 40.0, 55.0])
_P_PROSPECT = np.array([0.08, 0.05, 0.06, 0.18])
_P_AWARE2 = np.array([0.6, 0.3, 0.2, 0.5])        # chance of a second awareness touch
_LAM_CONSID = np.array([1.0, 1.0, 0.6, 2.5])       # extra consideration events
_LAM_USAGE = np.array([3.0, 7.0, 0.8, 2.0])        # extra usage events
_P_SUPPORT = np.array([0.45, 0.75, 0.85, 0.65])    # any support contact
_LAM_SUPPORT = np.array([0.8, 1.8, 3.0, 1.5])      # extra (repeated) support contacts
_BASE_CHURN = np.array([0.14, 0.07, 0.05, 0.30])   # churn at renewal after a good onboarding
_P_BAD_ONBOARDING = 0.22
_P_EARLY_CHURN = (0.02, 0.35)                      # cancel right after onboarding: good, bad
_RENEWAL_CHURN_BAD_ONBOARDING = 0.25               # added churn probability at renewal
_RENEWAL_CHURN_BAD_SUPPORT = 0.06                  # added when the support experience was very bad

# ------------------------------------------------- touchpoints: stage -> mode -> [(touchpoint, channel)]
_TOUCH = {
    "awareness": ([("social ad", "social"), ("search ad", "website"), ("comparison site", "website"),
                   ("email offer", "email")],
                  [("tv ad", "tv"), ("sales call", "helpline")],
                  [("shop window", "store"), ("store promotion", "store")]),
    "consideration": ([("price page", "website"), ("speed checker", "website"), ("sales chat", "webchat"),
                       ("reviews page", "website")],
                      [("sales call", "helpline")],
                      [("store demo", "store")]),
    "purchase": ([("online checkout", "website")], [("phone order", "helpline")], [("store sale", "store")]),
    "onboarding": ([("router setup", "app")], [("setup call", "helpline")], [("setup help", "store")]),
    "usage": ([("app", "app"), ("online account", "website"), ("bill email", "email"), ("usage alert", "text")],
              [("billing call", "helpline")],
              [("store visit", "store")]),
    "support": ([("webchat", "webchat"), ("help centre", "website"), ("fault report", "app")],
                [("helpline call", "helpline")],
                [("store support", "store")]),
    "renewal_stay": ([("online renewal", "website")], [("retention call", "helpline")],
                     [("store renewal", "store")]),
    "renewal_leave": ([("cancellation form", "website")], [("cancellation call", "helpline")],
                      [("cancellation request", "store")]),
}
_FIXED_TOUCH = {"installation visit": "engineer", "missed appointment": "engineer", "renewal offer": "email"}

#: Median service duration (seconds) per touchpoint; lognormal with sigma 0.5. NaN: not measured.
_DURATION_S = {
    "social ad": 20, "search ad": 30, "comparison site": 240, "email offer": 40, "tv ad": 30,
    "sales call": 540, "shop window": 60, "store promotion": 300, "price page": 180, "speed checker": 90,
    "sales chat": 600, "reviews page": 240, "store demo": 1200, "online checkout": 420, "phone order": 900,
    "store sale": 1500, "installation visit": 2400, "missed appointment": np.nan, "router setup": 500,
    "setup call": 600, "setup help": 600, "app": 240, "online account": 300, "bill email": 30,
    "usage alert": 10, "billing call": 600, "store visit": 900, "webchat": 2100, "help centre": 1200,
    "fault report": 900, "helpline call": 2400, "store support": 1800, "renewal offer": np.nan,
    "online renewal": 300, "retention call": 900, "store renewal": 1200, "cancellation form": 300,
    "cancellation call": 1200, "cancellation request": 900,
}


def stage_touchpoints() -> dict[str, list[str]]:
    """Touchpoints used per stage, in a stable order (what ``configs/demo.yaml`` lists)."""
    out = {}
    for s in STAGES:
        if s == "renewal":
            groups = [("renewal offer", "email")] + [t for k in ("renewal_stay", "renewal_leave")
                                                     for m in _TOUCH[k] for t in m]
        elif s == "onboarding":
            groups = [("missed appointment", "engineer"), ("installation visit", "engineer")] + \
                [t for m in _TOUCH[s] for t in m]
        else:
            groups = [t for m in _TOUCH[s] for t in m]
        out[s] = list(dict.fromkeys(t for t, _ in groups))
    return out


@dataclass
class DemoData:
    """The demo data set: three frames in the data contracts and the planted truth.

    ``events`` (customer_id, timestamp UTC, stage, touchpoint, channel, journey, duration_s, row_id),
    ``customers`` (customer_id, age, region, plan, tenure_months, monthly_value, signup_channel,
    churned as nullable boolean: missing for prospects), ``feedback`` (feedback_id, customer_id,
    timestamp, stage, touchpoint, channel, source, rating_type, rating, text) and ``truth`` (dict,
    see :func:`make_demo`).
    """

    events: pd.DataFrame
    customers: pd.DataFrame
    feedback: pd.DataFrame
    truth: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- helpers
def _expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group index and position within group for groups of the given sizes."""
    counts = np.asarray(counts, dtype=np.int64)
    idx = np.repeat(np.arange(counts.size), counts)
    starts = np.cumsum(counts) - counts
    pos = np.arange(idx.size) - np.repeat(starts, counts)
    return idx, pos


def _group_cumsum(x: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Cumulative sum of ``x`` restarted at each group (groups are consecutive, of sizes ``counts``)."""
    cs = np.cumsum(x)
    starts = np.cumsum(counts) - counts
    before = np.concatenate([[0.0], cs])[starts]
    return cs - np.repeat(before, counts)


def _lognormal(rng, median, sigma, size):
    return np.asarray(median, dtype=float) * np.exp(sigma * rng.standard_normal(size))


def _pick(rng, options, size) -> np.ndarray:
    """Vectorised uniform choice from a list of strings (object array)."""
    arr = np.array(options, dtype=object)
    return arr[rng.integers(0, len(arr), size)]


def _choose_rows(rng, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row from a matrix of row probabilities."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(probs.shape[0])[:, None]
    return np.minimum((u > cum).sum(axis=1), probs.shape[1] - 1)


class _Blocks:
    """Collects event blocks (numpy arrays) before they become one frame."""

    def __init__(self, stages=STAGES):
        self.parts = []
        self.stages = tuple(stages)

    def add(self, cust, t, stage, touch, channel, order):
        self.parts.append((cust, t, np.full(cust.size, self.stages.index(stage)), touch, channel, order))

    def arrays(self):
        return [np.concatenate([p[i] for p in self.parts]) for i in range(6)]


def _by_mode(rng, key: str, mode: np.ndarray, table=None) -> tuple[np.ndarray, np.ndarray]:
    """Touchpoint and channel per event, chosen within the event's channel mode (``table``: the
    journey's touchpoints per stage and mode, :data:`_TOUCH` by default)."""
    touch = np.empty(mode.size, dtype=object)
    chan = np.empty(mode.size, dtype=object)
    for m, opts in enumerate((_TOUCH if table is None else table)[key]):
        sel = mode == m
        k = rng.integers(0, len(opts), int(sel.sum()))
        touch[sel] = np.array([o[0] for o in opts], dtype=object)[k]
        chan[sel] = np.array([o[1] for o in opts], dtype=object)[k]
    return touch, chan


# ------------------------------------------------------------------------------------------------ texts
_POS = {
    "awareness": ["your ad caught my eye", "the offer on the comparison site looked really good",
                  "a friend recommended you and I'm glad she did", "the prices were clear from the start",
                  "the advert was honest about speeds and prices"],
    "consideration": ["the price page was clear and easy to compare", "the speed checker was spot on",
                      "the sales chat answered all my questions", "the guy in the store explained every plan patiently",
                      "choosing a plan was easy", "there were no hidden fees as far as I could see"],
    "purchase": ["checkout took two minutes", "ordering online was quick and painless",
                 "the sales rep on the phone was friendly and quick", "signing up in the store was easy",
                 "the contract was simple to understand", "payment went through without a hitch"],
    "onboarding": ["the engineer turned up on time and was really friendly", "fast install",
                   "installation was quick and tidy", "the router was set up in ten minutes",
                   "the technician explained everything", "everything worked on day one",
                   "the setup guide in the app was dead easy"],
    "usage": ["the speeds are great", "streaming works perfectly even in the evenings",
              "the app is handy for checking my bill", "the connection has been rock solid",
              "the wifi reaches every room", "gaming with no lag at all"],
    "support": ["the agent fixed my problem on the first call", "the webchat sorted it quickly",
                "support called me back as promised", "the lady on the helpline was lovely and solved it",
                "the fault was fixed the same day"],
    "renewal": ["the renewal offer was fair", "they matched a competitor's price", "renewing was easy",
                "I got a loyalty discount without asking", "the new deal is good value"],
}
_NEG = {
    "awareness": ["the ads are everywhere and tell you nothing", "the prices in the advert were misleading",
                  "I got spammed with offer emails", "the leaflet promised speeds I never saw"],
    "consideration": ["the price page is confusing", "I couldn't work out which plan I needed",
                      "the speed checker said one thing and sales said another",
                      "the sales chat kept pushing the most expensive plan", "there are hidden fees everywhere",
                      "the store staff didn't know the plans"],
    "purchase": ["checkout crashed twice", "the sales rep rushed me through the contract",
                 "I was charged a set-up fee nobody mentioned", "the order confirmation never arrived",
                 "it took ages to get an activation date"],
    "onboarding": ["the engineer never showed up", "the engineer was a no-show and nobody told me",
                   "the installation was botched", "the router keeps dropping",
                   "I took a day off work for an appointment that didn't happen",
                   "the technician left cables everywhere", "it took three visits to get connected"],
    "usage": ["the connection drops every evening", "speeds are nowhere near what was promised",
              "the app keeps logging me out", "the bill was wrong again", "the wifi is patchy upstairs"],
    "support": ["I waited over an hour on hold", "the helpline kept me on hold for ages",
                "I had to call four times about the same fault", "nobody ever calls back",
                "the webchat agent just pasted scripts", "every agent tells me something different",
                "the fault is still not fixed after two weeks", "I was passed from one department to another",
                "support is useless"],
    "renewal": ["the renewal price nearly doubled", "they wanted more money for the same service",
                "cancelling was a nightmare", "the retention team was pushy", "the loyalty penalty is a joke"],
}
_OPEN = {
    "neg": ["", "", "", "Honestly, ", "Really disappointed: ", "Not impressed. ", "Ugh, ", "Sorry but ",
            "Worst experience ever. ", "Where do I start... ", "Absolutely fuming, ", "Well, "],
    "mix": ["", "", "Mixed feelings. ", "Hmm, ", "So-so. ", "Well, ", "Not sure what to think, "],
    "pos": ["", "", "", "Honestly, ", "Have to say ", "Great experience: ", "Happy customer here, ",
            "Just wanted to say ", "Pleasantly surprised, ", "Credit where it's due, "],
}
_CLOSE = {
    "neg": ["", "", " Not happy.", " Not happy at all.", " Would not recommend.", " Thinking of leaving.",
            " Never again.", " Sort it out!", " I'm not impressed.", " Can't believe this is acceptable.",
            " Very poor."],
    "mix": ["", "", " Could be better.", " Not terrible, not great.", " We'll see.", " Fingers crossed.",
            " Room for improvement."],
    "pos": ["", "", " Thanks!", " Would recommend.", " No complaints.", " Can't fault it.", " Keep it up.",
            " Really happy.", " Not bad at all."],
}
_TYPOS = [("because", "becuase"), ("really", "realy"), ("the ", "teh "), ("engineer", "enginer"),
          ("appointment", "appointmnet"), ("waited", "waitied"), ("recommend", "reccomend"),
          ("definitely", "definately"), ("quick", "quik"), ("nobody", "nobdy")]
_SLANG = {"neg": [" smh", " tbh", " ffs", " ngl this is rubbish"], "mix": [" tbh", " ngl", " meh"],
          "pos": [" tbh", " lol", " ngl", " cheers"]}
_EMOJI = {"neg": [" 😡", " 👎", " 🙄"], "mix": [" 🤷", " 😐"], "pos": [" 🙂", " 👍", " 🎉"]}
_FOREIGN = {
    "neg": ["Très déçu, personne ne m'a aidé.", "Service nul, j'ai attendu des heures.",
            "Sehr enttäuscht, niemand hat mir geholfen.", "Schlechter Service, ich habe stundenlang gewartet.",
            "Muy decepcionado, nadie me ayudó.", "Servicio pésimo, esperé horas."],
    "pos": ["Très content du service, rien à redire.", "Tout s'est bien passé, merci beaucoup.",
            "Alles bestens, sehr zufrieden.", "Schneller und freundlicher Service, danke.",
            "Todo perfecto, muy contento con el servicio.", "Servicio rápido y amable, gracias."],
}
_NAMES = ["john", "sarah", "mike", "emma", "dave", "lucy", "raj", "chloe", "tom", "aisha", "gary", "megan"]
_DOMAINS = ["example.com", "example.org", "mail.example.net"]


def _compose_texts(rng, stage: np.ndarray, score: np.ndarray, stages=STAGES, pos=None,
                   neg=None) -> tuple[np.ndarray, np.ndarray]:
    """Free-text comments consistent with ``score`` (0 = worst, 1 = best) about ``stage``.

    Returns (texts, polarity) where polarity is "neg" (< 0.4), "mix" or "pos" (> 0.6).
    Composition: opener + clause (+ second clause) + closer; mixed feelings join a positive and a
    negative clause with "but" / "although"; then typos, lower case, slang, emoji, PII (about 3%) and
    another language (about 1%) are applied to random subsets. ``stages``, ``pos`` and ``neg`` (clauses
    per stage; :data:`_POS` / :data:`_NEG` by default) let another journey use its own words.
    """
    pos_clauses, neg_clauses = (_POS if pos is None else pos), (_NEG if neg is None else neg)
    n = stage.size
    pol = np.where(score < 0.4, "neg", np.where(score > 0.6, "pos", "mix")).astype(object)
    text = np.empty(n, dtype=object)
    text[:] = ""
    for s in stages:
        for p in ("neg", "mix", "pos"):
            sel = np.flatnonzero((stage == s) & (pol == p))
            if sel.size == 0:
                continue
            m = sel.size
            opener = _pick(rng, _OPEN[p], m)
            closer = _pick(rng, _CLOSE[p], m)
            if p == "mix":
                pos_c = _pick(rng, pos_clauses[s], m)
                neg_c = _pick(rng, neg_clauses[s], m)
                flip = rng.random(m) < 0.35
                body = np.where(flip, neg_c + ", although " + pos_c, pos_c + " but " + neg_c)
            else:
                pool = np.array(neg_clauses[s] if p == "neg" else pos_clauses[s], dtype=object)
                i = rng.integers(0, len(pool), m)
                j = (i + 1 + rng.integers(0, len(pool) - 1, m)) % len(pool)
                two = rng.random(m) < 0.35
                joiner = _pick(rng, [", and ", ". Also ", " and "], m)
                second = np.where(two, joiner + pool[j], "")
                body = pool[i] + second
            text[sel] = opener + body + "." + closer
    s = pd.Series(text, dtype=object)
    # capitalise the first letter, and after an opener ending in ". "
    s = s.str[0].str.upper() + s.str[1:]
    s = s.str.replace(r"(\. )([a-z])", lambda mm: mm.group(1) + mm.group(2).upper(), regex=True)
    out = s.to_numpy(dtype=object).copy()

    # typos: two passes over random ~10% subsets
    for _ in range(2):
        sel = np.flatnonzero(rng.random(n) < 0.10)
        k = rng.integers(0, len(_TYPOS), sel.size)
        for t, (a, b) in enumerate(_TYPOS):
            rows = sel[k == t]
            out[rows] = pd.Series(out[rows], dtype=object).str.replace(a, b, n=1, regex=False).to_numpy(dtype=object)
    lower = rng.random(n) < 0.15
    out[lower] = pd.Series(out[lower], dtype=object).str.lower().str.rstrip(".").to_numpy(dtype=object)
    shout = (rng.random(n) < 0.15) & (pol == "neg")
    out[shout] = pd.Series(out[shout], dtype=object).str.replace(r"[.!]$", "!!!", regex=True).to_numpy(dtype=object)
    for p in ("neg", "mix", "pos"):
        sl = np.flatnonzero((rng.random(n) < 0.08) & (pol == p))
        out[sl] = out[sl] + _pick(rng, _SLANG[p], sl.size)
        em = np.flatnonzero((rng.random(n) < 0.04) & (pol == p))
        out[em] = out[em] + _pick(rng, _EMOJI[p], em.size)
    # PII: e-mail addresses or (fictional, Ofcom drama-range) phone numbers
    pii = np.flatnonzero(rng.random(n) < 0.03)
    m = pii.size
    email = (_pick(rng, _NAMES, m) + _pick(rng, [".", "_", ""], m) + _pick(rng, _NAMES, m)
             + pd.Series(rng.integers(1, 99, m)).astype(str).to_numpy(dtype=object) + "@" + _pick(rng, _DOMAINS, m))
    digits = pd.Series(rng.integers(0, 1000, m)).astype(str).str.zfill(3).to_numpy(dtype=object)
    phone = np.where(rng.random(m) < 0.5, "07700 900" + digits, "+44 7700 900" + digits)
    kind = rng.integers(0, 5, m)
    tail = np.select([kind == 0, kind == 1, kind == 2, kind == 3],
                     [" Email me at " + email, " You can reach me on " + email + ".",
                      " My number is " + phone + " if anyone cares.", " Call me back on " + phone + "!"],
                     " (" + email + ")")
    out[pii] = out[pii] + tail
    # another language (French / German / Spanish)
    foreign = np.flatnonzero(rng.random(n) < 0.01)
    good = score[foreign] > 0.5
    out[foreign] = np.where(good, _pick(rng, _FOREIGN["pos"], foreign.size), _pick(rng, _FOREIGN["neg"], foreign.size))
    return out, pol


def _rating(rng, q: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Rating on [lo, hi] from experience quality q in [0, 1] with a little noise (whole numbers)."""
    r = np.rint(lo + np.clip(q + 0.07 * rng.standard_normal(q.size), 0, 1) * (hi - lo))
    return np.clip(r, lo, hi)


# ------------------------------------------------------------------------------------------- generator
def make_demo(n_customers: int = 5000, seed: int = 0, period: int = 0) -> DemoData:
    """Build the demo data set in memory.

    Inputs: ``n_customers`` (people in the customers file, prospects included; at least 50),
    ``seed`` (numpy ``default_rng`` seed; same seed -> identical frames) and ``period`` (0: the extract
    year ending at :data:`EXTRACT_END`; 1, 2...: that many years later, for the living map). One planted
    change in later periods: the company fixed activation, so the purchase -> onboarding wait has a median
    of ``ACTIVATION_MEDIAN_D[1]`` (1.5 days) instead of 8; everything else is drawn as before, so
    other differences between periods are chance. Use another seed for a later period (new customers).

    Returns :class:`DemoData` with ``events`` (sorted as exported: by timestamp, ties in journey order;
    ``row_id`` = row position), ``customers`` (sorted by id) and ``feedback`` (sorted by timestamp,
    missing timestamps last) and ``truth``: ``seed``, ``n_customers``, ``extract_end`` (ISO, exclusive),
    ``n_segments``, ``segment_names``, ``pain_point`` ("support"), ``moment_of_truth`` ({"stage":
    "onboarding", "direction": "negative"}: a better onboarding experience lowers churn),
    ``expectation_gap`` ({"stage": "purchase", "expected_max_duration_h": 48}) and
    ``customer_segment`` ({customer_id: segment index into ``segment_names``}). A later period adds
    ``period`` and ``changed`` ({"stage": "purchase", "metric": "dwell_median_s", "direction": "better"})
    and has no expectation gap (``expectation_gap`` None).
    """
    from journey_analysis.errors import JourneyError

    if int(n_customers) < 50:
        raise JourneyError(f"n_customers must be at least 50, got {n_customers}",
                           expected="an integer >= 50", fix="ask for more customers, e.g. --customers 2000")
    n = int(n_customers)
    rng = np.random.default_rng(seed)
    seg = _choose_rows(rng, np.tile(_SEG_SHARE, (n, 1)))
    width = max(5, len(str(n)))
    ids = pd.Series(np.arange(1, n + 1)).astype(str).str.zfill(width).radd("C").to_numpy(dtype=object)
    blocks = _Blocks()

    def modes(cust):
        return _choose_rows(rng, _MODE_P[seg[cust]])

    # awareness
    k_a = 1 + (rng.random(n) < _P_AWARE2[seg])
    t0 = rng.uniform(0, WINDOW_DAYS - 15, n)
    c, pos = _expand(k_a)
    gaps = np.where(pos == 0, 0.0, _lognormal(rng, 1.5, 0.8, c.size))
    t = t0[c] + _group_cumsum(gaps, k_a)
    touch, chan = _by_mode(rng, "awareness", modes(c))
    blocks.add(c, t, "awareness", touch, chan, 0 * 100 + pos)
    last = t0 + np.bincount(c, weights=gaps, minlength=n)

    # consideration
    k_c = 1 + rng.poisson(_LAM_CONSID[seg])
    c, pos = _expand(k_c)
    gaps = np.where(pos == 0, _lognormal(rng, 2.0, 0.7, c.size), _lognormal(rng, 1.2, 0.8, c.size))
    t = last[c] + _group_cumsum(gaps, k_c)
    touch, chan = _by_mode(rng, "consideration", modes(c))
    blocks.add(c, t, "consideration", touch, chan, 100 + pos)
    last = last + np.bincount(c, weights=gaps, minlength=n)

    # purchase (prospects stop after consideration)
    prospect = rng.random(n) < _P_PROSPECT[seg]
    buyers = np.flatnonzero(~prospect)
    t_purchase = np.full(n, np.nan)
    t_purchase[buyers] = last[buyers] + _lognormal(rng, 1.0, 0.7, buyers.size)
    pmode = np.full(n, -1)
    pmode[buyers] = modes(buyers)
    touch, chan = _by_mode(rng, "purchase", pmode[buyers])
    signup_channel = np.full(n, None, dtype=object)
    signup_channel[buyers] = chan
    blocks.add(buyers, t_purchase[buyers], "purchase", touch, chan, np.full(buyers.size, 200))

    # onboarding: [missed appointment] -> installation visit -> setup; activation wait ~ 8 days median
    bad = np.zeros(n, dtype=bool)
    bad[buyers] = rng.random(buyers.size) < _P_BAD_ONBOARDING
    k_o = np.where(prospect, 0, 2 + bad)
    c, pos = _expand(k_o)
    kind = np.where(bad[c], pos, pos + 1)          # 0 missed, 1 visit, 2 setup
    activation = _lognormal(rng, ACTIVATION_MEDIAN_D[min(int(period), 1)], 0.3, c.size)
    gaps = np.select([kind == 0, (kind == 1) & ~bad[c], kind == 1],
                     [activation, activation, rng.uniform(3, 6, c.size)],
                     _lognormal(rng, 0.125, 0.6, c.size))
    t = t_purchase[c] + _group_cumsum(gaps, k_o[k_o > 0]) if c.size else np.array([])
    setup_touch, setup_chan = _by_mode(rng, "onboarding", modes(c))
    touch = np.where(kind == 0, "missed appointment", np.where(kind == 1, "installation visit", setup_touch))
    chan = np.where(kind == 2, setup_chan, "engineer")
    blocks.add(c, t, "onboarding", touch.astype(object), chan.astype(object), 300 + pos)
    last_onb = np.full(n, np.nan)
    last_onb[buyers] = t_purchase[buyers] + np.bincount(c, weights=gaps, minlength=n)[buyers]

    # churn right after onboarding (the moment of truth)
    early = np.zeros(n, dtype=bool)
    early[buyers] = rng.random(buyers.size) < np.where(bad[buyers], _P_EARLY_CHURN[1], _P_EARLY_CHURN[0])
    t_early_churn = last_onb + rng.uniform(2, 14, n)
    cont = np.flatnonzero(~prospect & ~early)

    # usage
    k_u = np.zeros(n, dtype=np.int64)
    k_u[cont] = 1 + rng.poisson(_LAM_USAGE[seg[cont]])
    c, pos = _expand(k_u)
    gaps = np.where(pos == 0, _lognormal(rng, 1.0, 0.6, c.size), rng.exponential(6.0, c.size))
    t = last_onb[c] + _group_cumsum(gaps, k_u[k_u > 0])
    touch, chan = _by_mode(rng, "usage", modes(c))
    blocks.add(c, t, "usage", touch, chan, 400 + pos)
    last = last_onb + np.bincount(c, weights=gaps, minlength=n)

    # support (repeated contacts = rework)
    has_sup = np.zeros(n, dtype=bool)
    has_sup[cont] = rng.random(cont.size) < _P_SUPPORT[seg[cont]]
    k_s = np.where(has_sup, 1 + rng.poisson(_LAM_SUPPORT[seg]), 0)
    c, pos = _expand(k_s)
    gaps = np.where(pos == 0, _lognormal(rng, 12.0, 0.7, c.size), _lognormal(rng, 2.5, 0.8, c.size))
    t_sup = last[c] + _group_cumsum(gaps, k_s[k_s > 0])
    touch, chan = _by_mode(rng, "support", modes(c))
    blocks.add(c, t_sup, "support", touch, chan, 500 + pos)
    last = last + np.bincount(c, weights=gaps, minlength=n)
    sup_pos = pos

    # experience quality per customer and stage (0 worst .. 1 best)
    def q(mu, sd):
        return np.clip(mu + sd * rng.standard_normal(n), 0, 1)

    quality = {"awareness": q(0.72, 0.12), "consideration": q(0.76, 0.12), "purchase": q(0.82, 0.10),
               "onboarding": np.where(bad, q(0.15, 0.10), q(0.85, 0.10)),
               "usage": np.clip(q(0.74, 0.12) - 0.3 * bad, 0, 1), "support": q(0.25, 0.13)}

    # renewal: offer at the end of the 3-month introductory deal, then stay or leave
    p_leave = np.clip(_BASE_CHURN[seg] + _RENEWAL_CHURN_BAD_ONBOARDING * bad
                      + _RENEWAL_CHURN_BAD_SUPPORT * (has_sup & (quality["support"] < 0.2)), 0, 0.95)
    leave = np.zeros(n, dtype=bool)
    leave[cont] = rng.random(cont.size) < p_leave[cont]
    quality["renewal"] = np.clip(q(0.66, 0.16) - 0.10 * leave, 0, 1)   # the offer, only loosely tied to leaving
    t_offer = np.maximum(t_purchase + 90 + 7 * rng.standard_normal(n), last + _lognormal(rng, 5.0, 0.5, n))
    t_resp = t_offer + _lognormal(rng, 3.0, 0.6, n)
    blocks.add(cont, t_offer[cont], "renewal", np.full(cont.size, "renewal offer", dtype=object),
               np.full(cont.size, "email", dtype=object), np.full(cont.size, 600))
    rmode = modes(cont)
    st_touch, st_chan = _by_mode(rng, "renewal_stay", rmode)
    lv_touch, lv_chan = _by_mode(rng, "renewal_leave", rmode)
    lv = leave[cont]
    blocks.add(cont, t_resp[cont], "renewal", np.where(lv, lv_touch, st_touch), np.where(lv, lv_chan, st_chan),
               np.full(cont.size, 601))

    # ---------------------------------------------------------------- assemble events, cut at extract end
    cust, t, stage_code, touch, chan, order = blocks.arrays()
    sup_flag = stage_code == STAGES.index("support")
    contact_no = np.zeros(cust.size, dtype=np.int64)
    contact_no[sup_flag] = order[sup_flag] - 500
    keep = t < WINDOW_DAYS
    cust, t, stage_code, touch, chan, order, contact_no = (a[keep] for a in
                                                           (cust, t, stage_code, touch, chan, order, contact_no))
    start = _window_start(period)
    sec = np.floor(t * 86400.0).astype(np.int64)
    dur_median = pd.Series(touch, dtype=object).map(_DURATION_S).to_numpy(dtype=float)
    duration = np.round(_lognormal(rng, dur_median, 0.5, touch.size))
    o = np.lexsort((order, cust, sec))
    cust, sec, stage_code, touch, chan, duration, order, contact_no, t = (
        a[o] for a in (cust, sec, stage_code, touch, chan, duration, order, contact_no, t))
    stage_names = np.array(STAGES, dtype=object)
    events = pd.DataFrame({
        "customer_id": ids[cust],
        "timestamp": (start + pd.to_timedelta(sec, unit="s")).astype("datetime64[ns, UTC]"),
        "stage": stage_names[stage_code],
        "touchpoint": touch,
        "channel": chan,
        "journey": JOURNEY,
        "duration_s": duration,
    })
    for col in ("customer_id", "stage", "touchpoint", "channel", "journey"):
        events[col] = events[col].astype(object)
    events["row_id"] = np.arange(len(events), dtype=np.int64)

    # ------------------------------------------------------------------------------------- customers
    age = np.clip(np.rint(_AGE[seg, 0] + _AGE[seg, 1] * rng.standard_normal(n)), 18, 92).astype(np.int64)
    plan = _choose_rows(rng, _PLAN_P[seg])
    price = _PLAN_PRICE[plan]
    extras = np.select([seg == 0, seg == 1, seg == 2], [rng.normal(2, 2, n), rng.normal(20, 4, n),
                                                        rng.normal(5, 2, n)], price * -0.35 + rng.normal(0, 2, n))
    # a person counts as a customer from the purchase on; a purchase after the extract end is unseen
    prospect = prospect | (np.nan_to_num(t_purchase, nan=np.inf) >= WINDOW_DAYS)
    signup_channel[prospect] = None
    value = np.where(prospect, price, np.maximum(price + extras, 12.0))
    months_since = np.where(prospect, 0.0, np.clip((WINDOW_DAYS - np.nan_to_num(t_purchase)) / 30.44, 0, None))
    prior = np.select([seg == 0, seg == 1, seg == 2],
                      [rng.gamma(2.0, 4.0, n), np.clip(rng.normal(40, 12, n), 0, None),
                       np.clip(rng.normal(100, 30, n), 0, None)], rng.exponential(2.0, n))
    tenure = np.where(prospect, 0, np.floor(months_since + prior)).astype(np.int64)
    churn_obs = (early & (t_early_churn < WINDOW_DAYS)) | (leave & (t_resp < WINDOW_DAYS))
    churned = pd.array(np.where(prospect, None, churn_obs).tolist(), dtype="boolean")
    customers = pd.DataFrame({
        "customer_id": pd.Series(ids, dtype=object),
        "age": age,
        "region": pd.Series(_pick(rng, REGIONS, n), dtype=object),
        "plan": pd.Series(np.array(PLANS, dtype=object)[plan], dtype=object),
        "tenure_months": tenure,
        "monthly_value": np.round(value, 2),
        "signup_channel": pd.Series(signup_channel, dtype=object),
        "churned": churned,
    })

    # -------------------------------------------------------------------------------------- feedback
    feedback = _make_feedback(rng, cust, t, stage_code, touch, chan, contact_no, quality, ids, start=start)

    truth = {
        "seed": int(seed) if np.isscalar(seed) else seed,
        "n_customers": n,
        "extract_end": (start + pd.Timedelta(days=WINDOW_DAYS)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "n_segments": len(SEGMENT_NAMES),
        "segment_names": list(SEGMENT_NAMES),
        "pain_point": "support",
        "moment_of_truth": {"stage": "onboarding", "direction": "negative"},
        "expectation_gap": {"stage": "purchase", "expected_max_duration_h": EXPECTED_PURCHASE_H},
        "customer_segment": {str(i): int(s) for i, s in zip(ids, seg)},
    }
    if period:
        truth.update(period=int(period), expectation_gap=None,
                     changed={"stage": "purchase", "metric": "dwell_median_s", "direction": "better",
                              "activation_median_d": [ACTIVATION_MEDIAN_D[0], ACTIVATION_MEDIAN_D[1]]})
    return DemoData(events=events, customers=customers, feedback=feedback, truth=truth)


def _window_start(period: int = 0) -> pd.Timestamp:
    """First instant of the extract window of ``period`` (0: the year before :data:`EXTRACT_END`)."""
    return EXTRACT_END - pd.Timedelta(days=WINDOW_DAYS) + pd.Timedelta(days=WINDOW_DAYS * int(period))


def _make_feedback(rng, cust, t, stage_code, touch, chan, contact_no, quality, ids, start=None) -> pd.DataFrame:
    """Surveys (csat / nps with optional comment), reviews (stars, no stage), social posts (no rating,
    no stage, often anonymous) and chat / call notes (support, no rating), anchored on events."""
    m = cust.size
    stage = np.array(STAGES, dtype=object)[stage_code]
    # next event time of the same customer, to keep linked feedback before the customer's next step
    o = np.lexsort((t, cust))
    nxt = np.full(m, np.nan)
    same = cust[o][1:] == cust[o][:-1]
    tmp = np.full(m, np.nan)
    tmp[:-1] = np.where(same, t[o][1:], np.nan)
    nxt[o] = tmp
    room = np.where(np.isnan(nxt), 0.5, (nxt - t) * 0.5)       # stay before the next event (days)
    q_stage = np.zeros(m)
    for i, s in enumerate(STAGES):
        sel = stage_code == i
        q_stage[sel] = quality[s][cust[sel]]
    is_sup = stage == "support"
    q_stage[is_sup] = np.clip(q_stage[is_sup] - 0.04 * contact_no[is_sup], 0, 1)  # each repeat is worse
    u = rng.random(m)
    setup = np.isin(touch, ["router setup", "setup call", "setup help"])
    responses = ((stage == "onboarding") & setup & (u < 0.55)) | ((stage == "purchase") & (u < 0.35)) \
        | ((stage == "consideration") & (u < 0.05)) | (is_sup & (u < 0.30)) \
        | ((stage == "usage") & (u < 0.06)) \
        | ((stage == "renewal") & (touch != "renewal offer") & (u < 0.40))
    parts = []

    def part(sel, source, rating_type, has_stage, customer_share, ts_missing=0.0):
        k = np.flatnonzero(sel)
        delay = np.minimum(_lognormal(rng, 4 / 24, 0.8, k.size), room[k]) if source != "survey" else \
            _lognormal(rng, 4 / 24, 0.8, k.size)
        ts = t[k] + delay
        lohi = {"csat": (1, 5), "nps": (0, 10), "stars": (1, 5)}
        if rating_type is None:
            rating = np.full(k.size, np.nan)
            score = np.clip(q_stage[k] + 0.05 * rng.standard_normal(k.size), 0, 1)
        else:
            rtype = np.full(k.size, rating_type, dtype=object) if isinstance(rating_type, str) else rating_type[k]
            rating = np.zeros(k.size)
            score = np.zeros(k.size)
            for name, (lo, hi) in lohi.items():
                ss = rtype == name
                rating[ss] = _rating(rng, q_stage[k][ss], lo, hi)
                score[ss] = (rating[ss] - lo) / (hi - lo)
        df = pd.DataFrame({
            "customer_id": np.where(rng.random(k.size) < customer_share, ids[cust[k]], None),
            "t": np.where(rng.random(k.size) < ts_missing, np.nan, ts),
            "stage": stage[k] if has_stage else None,
            "touchpoint": touch[k] if has_stage else None,
            "channel": chan[k] if source in ("survey", "chat", "call") else ("social" if source == "social" else "website"),
            "source": source,
            "rating_type": (None if rating_type is None else
                            (rating_type if isinstance(rating_type, str) else rating_type[k])),
            "rating": rating,
            "_stage": stage[k], "_score": score,
        })
        parts.append(df)

    rtype = np.where(np.isin(stage, ["usage", "renewal"]), "nps", "csat").astype(object)
    # surveys (a comment is added below, more often when unhappy)
    part(responses, "survey", rtype, True, 1.0)
    # reviews: one per ~6% of customers, anchored on a random onboarding / usage / support / renewal event
    cand = np.isin(stage, ["onboarding", "usage", "support", "renewal"]) & (touch != "renewal offer")
    key = np.where(cand, rng.random(m), 2.0)
    oo = np.lexsort((key, cust))
    first = np.zeros(m, dtype=bool)
    first_idx = oo[np.concatenate([[True], cust[oo][1:] != cust[oo][:-1]])]
    first[first_idx] = True
    rev = first & cand & (rng.random(m) < 0.06)
    part(rev, "review", "stars", False, 0.7)
    social = ((is_sup & (rng.random(m) < 0.05)) | ((touch == "missed appointment") & (rng.random(m) < 0.15))
              | ((stage == "usage") & (rng.random(m) < 0.01)))
    part(social, "social", None, False, 0.4, ts_missing=0.03)
    part(is_sup & (touch == "webchat") & (rng.random(m) < 0.25), "chat", None, True, 1.0)
    part(is_sup & (touch == "helpline call") & (rng.random(m) < 0.08), "call", None, True, 1.0)
    fb = pd.concat(parts, ignore_index=True)

    # which surveys carry a comment: 70% of unhappy, 45% of others
    is_survey = fb["source"].to_numpy() == "survey"
    sc = fb["_score"].to_numpy()
    comment = np.where(is_survey, rng.random(len(fb)) < np.where(sc < 0.4, 0.7, 0.45), True)
    texts, _ = _compose_texts(rng, fb["_stage"].to_numpy(dtype=object), sc)
    fb["text"] = np.where(comment, texts, "")
    fb = fb[fb["t"].isna() | (fb["t"] < WINDOW_DAYS)]
    start = _window_start() if start is None else start
    tt = fb["t"].to_numpy()
    sec = np.floor(np.nan_to_num(tt, nan=0.0) * 86400.0).astype(np.int64)
    ts = pd.Series(start + pd.to_timedelta(sec, unit="s"))
    ts[np.isnan(tt)] = pd.NaT
    fb = fb.assign(timestamp=ts.to_numpy()).sort_values(["timestamp"], kind="stable", na_position="last")
    out = pd.DataFrame({
        "feedback_id": pd.Series(np.arange(1, len(fb) + 1)).astype(str).str.zfill(6).radd("F").to_numpy(dtype=object),
        "customer_id": fb["customer_id"].to_numpy(dtype=object),
        "timestamp": pd.DatetimeIndex(fb["timestamp"]).tz_convert("UTC") if fb["timestamp"].dt.tz is not None
        else pd.DatetimeIndex(fb["timestamp"]).tz_localize("UTC"),
        "stage": fb["stage"].to_numpy(dtype=object),
        "touchpoint": fb["touchpoint"].to_numpy(dtype=object),
        "channel": fb["channel"].to_numpy(dtype=object),
        "source": fb["source"].to_numpy(dtype=object),
        "rating_type": fb["rating_type"].to_numpy(dtype=object),
        "rating": fb["rating"].to_numpy(dtype=float),
        "text": fb["text"].to_numpy(dtype=object),
    })
    for col in ("feedback_id", "customer_id", "stage", "touchpoint", "channel", "source", "rating_type", "text"):
        out[col] = out[col].astype(object)
    out["timestamp"] = out["timestamp"].astype("datetime64[ns, UTC]")
    return out.reset_index(drop=True)


# ------------------------------------------------------------------------------ the complaint journey
#: Stages of the practice complaint journey (``configs/complaint.yaml``), in journey order.
COMPLAINT_STAGES = ("raise", "acknowledge", "investigate", "resolve", "follow_up")
COMPLAINT_SEGMENT_NAMES = ("online complainers", "phone and letter complainers", "small businesses")
COMPLAINT_JOURNEY = "complaint"
_C_SHARE = np.array([0.45, 0.35, 0.20])
_C_AGE = np.array([[31, 6], [66, 8], [47, 9]], dtype=float)
_C_MODE_P = np.array([[0.85, 0.10, 0.05], [0.12, 0.80, 0.08], [0.45, 0.40, 0.15]])   # online, phone/letter, store
_C_VALUE = np.array([[34, 6], [38, 6], [95, 20]], dtype=float)                        # GBP per month
_C_LAM_CHASE = np.array([0.8, 1.2, 2.4])       # extra investigation contacts (chasers, requests, updates)
_C_BASE_ESCALATION = np.array([0.06, 0.08, 0.10])
_C_P_DISMISSIVE = 0.25                          # first contact that does not listen (the moment of truth)
_C_ESCALATION_DISMISSIVE = 0.38                 # added escalation probability after a dismissive first contact
_C_ESCALATION_BAD_ANSWER = 0.06                 # added when the final answer was poor
_C_ACK_MEDIAN_D = 3.0                           # raise -> acknowledgement, against 24 h expected
_C_TOUCH = {
    "raise": ([("complaint chat", "webchat"), ("complaint email", "email"), ("social post", "social")],
              [("complaint call", "helpline"), ("complaint letter", "letter")],
              [("store complaint", "store")]),
    "acknowledge": ([("acknowledgement email", "email"), ("acknowledgement text", "text")],
                    [("acknowledgement letter", "letter"), ("acknowledgement email", "email")],
                    [("acknowledgement email", "email")]),
    "investigate": ([("information request", "email"), ("case update", "email"), ("customer chaser", "webchat")],
                    [("information request", "helpline"), ("case update", "letter"), ("customer chaser", "helpline")],
                    [("customer chaser", "store"), ("engineer check", "store")]),
    "resolve": ([("final response", "email"), ("refund", "email"), ("goodwill credit", "email")],
                [("final response", "letter"), ("refund", "letter"), ("repair booked", "helpline")],
                [("final response", "store"), ("repair booked", "store")]),
    "follow_up": ([("closure survey", "email"), ("case closed", "email")],
                  [("closure survey", "text"), ("case closed", "letter")],
                  [("case closed", "store")]),
}
_C_DURATION_S = {
    "complaint chat": 1500, "complaint email": 600, "social post": 120, "complaint call": 1500,
    "complaint letter": 1800, "store complaint": 1200, "acknowledgement email": np.nan,
    "acknowledgement text": np.nan, "acknowledgement letter": np.nan, "information request": 600,
    "case update": 300, "customer chaser": 1200, "engineer check": 2700, "final response": 900,
    "refund": 300, "goodwill credit": 300, "repair booked": 600, "closure survey": 180, "case closed": np.nan,
    "reopened case": 1500,
}
_C_POS = {
    "raise": ["the agent listened and took it seriously", "she apologised and explained what happens next",
              "I was told exactly who would deal with it", "the person on the phone really understood the problem"],
    "acknowledge": ["I got a case number straight away", "the acknowledgement came the same day",
                    "the letter said clearly when I would hear back"],
    "investigate": ["they kept me updated", "the case handler called me back as promised",
                    "they only asked for the details once"],
    "resolve": ["the refund was fair", "they fixed the fault properly", "the apology felt genuine",
                "the final letter explained everything", "the credit was more than I expected"],
    "follow_up": ["the problem has not come back", "nobody made me complain twice", "it was closed only when I agreed"],
}
_C_NEG = {
    "raise": ["the agent didn't listen", "I was told it wasn't their problem", "nobody took my complaint seriously",
              "they kept reading from a script", "I was cut off twice trying to complain"],
    "acknowledge": ["no acknowledgement for days", "I never got a case number",
                    "the acknowledgement came a week later", "the letter had the wrong details"],
    "investigate": ["I had to chase them again and again", "nobody told me what was happening",
                    "they asked for the same documents three times", "weeks of silence",
                    "every time I called I got someone new", "the case handler never called back"],
    "resolve": ["the offer was insulting", "they just said no without a reason", "the refund still hasn't arrived",
                "the answer didn't deal with my problem", "the repair was booked for a month later"],
    "follow_up": ["the same problem came back", "they closed the case without asking me",
                  "I had to complain all over again"],
}


def make_complaint(n_customers: int = 2000, seed: int = 0) -> DemoData:
    """Build the practice complaint journey in memory (one complaint per customer).

    The world: customers of the same fictional broadband company raise a complaint (raise), get an
    acknowledgement (acknowledge), wait while it is looked into, chasing and being asked for details
    (investigate, contacts repeat), get an answer (resolve) and a survey or a closed case (follow_up).
    Some escalate to the ombudsman (``escalated`` in the customers file); complaints still open at the
    extract end have no outcome yet (missing). Planted truths, different from :func:`make_demo`:

    * three segments (:data:`COMPLAINT_SEGMENT_NAMES`): online complainers, phone and letter
      complainers, small businesses (age, monthly value, channel mix, number of contacts);
    * pain point = ``investigate``: repeated chasing, long gaps, low satisfaction, the most negative words;
    * moment of truth = ``raise``: a dismissive first contact (25%) raises the escalation probability by
      38 points; the investigation, though painful, adds nothing to it (a pain point that is not a driver);
    * expectation gap = ``raise``: the acknowledgement comes after a median of 3 days against 24 h.

    Same contracts and ordering as :func:`make_demo`; customers have customer_id, age, region,
    account_type (consumer | business), tenure_months, monthly_value, escalated (nullable boolean).
    """
    from journey_analysis.errors import JourneyError

    if int(n_customers) < 50:
        raise JourneyError(f"n_customers must be at least 50, got {n_customers}",
                           expected="an integer >= 50", fix="ask for more customers, e.g. --customers 2000")
    n = int(n_customers)
    rng = np.random.default_rng(seed)
    seg = _choose_rows(rng, np.tile(_C_SHARE, (n, 1)))
    width = max(5, len(str(n)))
    ids = pd.Series(np.arange(1, n + 1)).astype(str).str.zfill(width).radd("K").to_numpy(dtype=object)
    mode = _choose_rows(rng, _C_MODE_P[seg])
    blocks = _Blocks(COMPLAINT_STAGES)
    everyone = np.arange(n)

    def q(mu, sd, size=n):
        return np.clip(mu + sd * rng.standard_normal(size), 0, 1)

    # raise: the first contact, listened to or dismissed
    dismissive = rng.random(n) < _C_P_DISMISSIVE
    t_raise = rng.uniform(0, WINDOW_DAYS - 5, n)
    touch, chan = _by_mode(rng, "raise", mode, _C_TOUCH)
    blocks.add(everyone, t_raise, "raise", touch, chan, np.zeros(n, dtype=np.int64))
    # acknowledge: median 3 days after raising (expected within 24 h)
    t_ack = t_raise + _lognormal(rng, _C_ACK_MEDIAN_D, 0.6, n)
    touch, chan = _by_mode(rng, "acknowledge", mode, _C_TOUCH)
    blocks.add(everyone, t_ack, "acknowledge", touch, chan, np.full(n, 100))
    # investigate: 1 + Poisson contacts, days apart; the customer chases
    k_i = 1 + rng.poisson(_C_LAM_CHASE[seg])
    c, pos = _expand(k_i)
    gaps = np.where(pos == 0, _lognormal(rng, 2.0, 0.6, c.size), _lognormal(rng, 5.0, 0.7, c.size))
    t = t_ack[c] + _group_cumsum(gaps, k_i)
    touch, chan = _by_mode(rng, "investigate", mode[c], _C_TOUCH)
    touch = np.where(pos > 0, np.where(rng.random(c.size) < 0.6, "customer chaser", touch), touch).astype(object)
    blocks.add(c, t, "investigate", touch, chan, 200 + pos)
    last = t_ack + np.bincount(c, weights=gaps, minlength=n)
    # resolve: the final response (+ a refund, credit or repair for some)
    good_answer = q(0.62, 0.22)
    t_res = last + _lognormal(rng, 2.0, 0.6, n)
    touch, chan = _by_mode(rng, "resolve", mode, _C_TOUCH)
    blocks.add(everyone, t_res, "resolve", np.full(n, "final response", dtype=object),
               np.where(chan == "helpline", "letter", chan).astype(object), np.full(n, 300))
    extra = np.flatnonzero(rng.random(n) < 0.5)
    blocks.add(extra, t_res[extra] + _lognormal(rng, 1.0, 0.5, extra.size), "resolve",
               np.where(touch[extra] == "final response", "refund", touch[extra]).astype(object), chan[extra],
               np.full(extra.size, 301))
    # outcome: escalation to the ombudsman, decided after the answer
    p_esc = np.clip(_C_BASE_ESCALATION[seg] + _C_ESCALATION_DISMISSIVE * dismissive
                    + _C_ESCALATION_BAD_ANSWER * (good_answer < 0.4), 0, 0.95)
    escalate = rng.random(n) < p_esc
    t_follow = t_res + _lognormal(rng, 6.0, 0.5, n)
    touch, chan = _by_mode(rng, "follow_up", mode, _C_TOUCH)
    touch = np.where(escalate, "reopened case", touch).astype(object)
    chan = np.where(escalate, np.where(mode == 1, "helpline", "email"), chan).astype(object)
    blocks.add(everyone, t_follow, "follow_up", touch, chan, np.full(n, 400))

    quality = {"raise": np.where(dismissive, q(0.15, 0.10), q(0.80, 0.10)), "acknowledge": q(0.55, 0.15),
               "investigate": q(0.22, 0.12), "resolve": good_answer, "follow_up": np.clip(q(0.7, 0.15) - 0.4 * escalate, 0, 1)}

    # ---------------------------------------------------------------- events, cut at the extract end
    cust, t, stage_code, touch, chan, order = blocks.arrays()
    keep = t < WINDOW_DAYS
    cust, t, stage_code, touch, chan, order = (a[keep] for a in (cust, t, stage_code, touch, chan, order))
    start = _window_start()
    sec = np.floor(t * 86400.0).astype(np.int64)
    dur_median = pd.Series(touch, dtype=object).map(_C_DURATION_S).to_numpy(dtype=float)
    duration = np.round(_lognormal(rng, dur_median, 0.5, touch.size))
    o = np.lexsort((order, cust, sec))
    cust, sec, stage_code, touch, chan, duration, order, t = (a[o] for a in (cust, sec, stage_code, touch, chan,
                                                                              duration, order, t))
    events = pd.DataFrame({
        "customer_id": ids[cust], "timestamp": (start + pd.to_timedelta(sec, unit="s")).astype("datetime64[ns, UTC]"),
        "stage": np.array(COMPLAINT_STAGES, dtype=object)[stage_code], "touchpoint": touch, "channel": chan,
        "journey": COMPLAINT_JOURNEY, "duration_s": duration})
    for col in ("customer_id", "stage", "touchpoint", "channel", "journey"):
        events[col] = events[col].astype(object)
    events["row_id"] = np.arange(len(events), dtype=np.int64)

    # ---------------------------------------------------------------- customers (outcome known once followed up)
    decided = t_follow < WINDOW_DAYS
    business = seg == 2
    customers = pd.DataFrame({
        "customer_id": pd.Series(ids, dtype=object),
        "age": np.clip(np.rint(_C_AGE[seg, 0] + _C_AGE[seg, 1] * rng.standard_normal(n)), 18, 95).astype(np.int64),
        "region": pd.Series(_pick(rng, REGIONS, n), dtype=object),
        "account_type": pd.Series(np.where(business, "business", "consumer"), dtype=object),
        "tenure_months": np.floor(rng.gamma(2.0, 14.0, n) + 24 * (seg == 1)).astype(np.int64),
        "monthly_value": np.round(np.maximum(_C_VALUE[seg, 0] + _C_VALUE[seg, 1] * rng.standard_normal(n), 15), 2),
        "escalated": pd.array(np.where(decided, escalate, None).tolist(), dtype="boolean"),
    })

    # ---------------------------------------------------------------- feedback: surveys, notes and public posts
    stage = np.array(COMPLAINT_STAGES, dtype=object)[stage_code]
    u = rng.random(t.size)
    surveyed = (((stage == "raise") & (u < 0.45)) | ((stage == "investigate") & (u < 0.25))
                | ((stage == "resolve") & (touch == "final response") & (u < 0.55))
                | ((stage == "follow_up") & (touch == "closure survey") & (u < 0.7)))
    social = (stage == "investigate") & (touch == "customer chaser") & (rng.random(t.size) < 0.08)
    k = np.flatnonzero(surveyed | social)
    q_ev = np.zeros(t.size)
    for i, s in enumerate(COMPLAINT_STAGES):
        sel = stage_code == i
        q_ev[sel] = quality[s][cust[sel]]
    score = np.clip(q_ev[k] + 0.05 * rng.standard_normal(k.size), 0, 1)
    is_social = social[k] & ~surveyed[k]
    rating = np.where(is_social, np.nan, _rating(rng, q_ev[k], 1, 5))
    texts, _ = _compose_texts(rng, stage[k], score, stages=COMPLAINT_STAGES, pos=_C_POS, neg=_C_NEG)
    comment = is_social | (rng.random(k.size) < np.where(score < 0.4, 0.75, 0.45))
    ts_days = t[k] + _lognormal(rng, 0.5, 0.8, k.size)
    fb = pd.DataFrame({"customer_id": np.where(is_social & (rng.random(k.size) < 0.6), None, ids[cust[k]]),
                       "t": ts_days, "stage": np.where(is_social, None, stage[k]),
                       "touchpoint": np.where(is_social, None, touch[k]),
                       "channel": np.where(is_social, "social", chan[k]),
                       "source": np.where(is_social, "social", "survey"),
                       "rating_type": np.where(is_social, None, "csat"), "rating": rating,
                       "text": np.where(comment, texts, "")})
    fb = fb[fb["t"] < WINDOW_DAYS].sort_values("t", kind="stable")
    fsec = np.floor(fb["t"].to_numpy() * 86400.0).astype(np.int64)
    feedback = pd.DataFrame({
        "feedback_id": pd.Series(np.arange(1, len(fb) + 1)).astype(str).str.zfill(6).radd("F").to_numpy(dtype=object),
        "customer_id": fb["customer_id"].to_numpy(dtype=object),
        "timestamp": (start + pd.to_timedelta(fsec, unit="s")).astype("datetime64[ns, UTC]"),
        "stage": fb["stage"].to_numpy(dtype=object), "touchpoint": fb["touchpoint"].to_numpy(dtype=object),
        "channel": fb["channel"].to_numpy(dtype=object), "source": fb["source"].to_numpy(dtype=object),
        "rating_type": fb["rating_type"].to_numpy(dtype=object), "rating": fb["rating"].to_numpy(dtype=float),
        "text": fb["text"].to_numpy(dtype=object)})
    for col in ("feedback_id", "customer_id", "stage", "touchpoint", "channel", "source", "rating_type", "text"):
        feedback[col] = feedback[col].astype(object)

    truth = {
        "seed": int(seed) if np.isscalar(seed) else seed, "n_customers": n, "journey": COMPLAINT_JOURNEY,
        "extract_end": EXTRACT_END.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "n_segments": len(COMPLAINT_SEGMENT_NAMES), "segment_names": list(COMPLAINT_SEGMENT_NAMES),
        "pain_point": "investigate",
        "moment_of_truth": {"stage": "raise", "direction": "negative"},
        "expectation_gap": {"stage": "raise", "expected_max_duration_h": 24},
        "customer_segment": {str(i): int(s) for i, s in zip(ids, seg)},
    }
    return DemoData(events=events, customers=customers, feedback=feedback, truth=truth)


#: The demo's mystery-shopper observations (step 6): test contacts made by colleagues on the observation
#: sheet (docs/templates/observation_sheet.md) during the extract period. Hand-written, not generated.
DEMO_OBSERVATIONS = (
    ("stage", "channel", "when", "wait_min", "who", "notes"),
    ("support", "helpline", "2025-06-03T10:15:00Z", 48, "first-line agent, transferred once",
     "on hold 40 min; promised a call-back within 24 h, none came"),
    ("support", "helpline", "2025-06-10T08:05:00Z", 95, "first-line agent",
     "on hold 85 min before anyone answered; fault logged, no date given"),
    ("support", "webchat", "2025-06-05T19:40:00Z", 25, "chat agent",
     "scripted answers; asked to restart the router twice; fault not fixed"),
    ("purchase", "website", "2025-06-04T12:30:00Z", 6, "online checkout",
     "order placed in 6 minutes; activation date offered 9 days later"),
    ("onboarding", "engineer", "2025-06-12T09:00:00Z", 150, "installation engineer",
     "came on the booked day, 2 h late; explained the router well"),
    ("consideration", "webchat", "2025-06-02T17:20:00Z", 3, "sales chat agent",
     "answered in 3 minutes; clear comparison of two plans"),
    ("renewal", "helpline", "2025-06-20T11:00:00Z", 12, "retention team",
     "loyalty price offered only after asking to cancel"),
    ("usage", "social", "2025-06-18T21:10:00Z", 600, "social media team",
     "asked about a wrong bill on the company's social page; answered the next morning"),
)


def demo_observations() -> pd.DataFrame:
    """:data:`DEMO_OBSERVATIONS` as a table (what ``observations.csv`` in the demo folder holds)."""
    return pd.DataFrame(list(DEMO_OBSERVATIONS[1:]), columns=list(DEMO_OBSERVATIONS[0]))


# ---------------------------------------------------------------------------------------------- writing
def _csv_bytes(df: pd.DataFrame) -> bytes:
    """UTF-8 CSV; datetime columns as ``YYYY-MM-DDTHH:MM:SSZ`` (missing -> empty cell)."""
    df = df.copy()
    for col in df.columns:
        if isinstance(df[col].dtype, pd.DatetimeTZDtype):
            values = df[col].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[s]")
            text = np.char.add(np.datetime_as_string(values, unit="s"), "Z").astype(object)
            text[np.isnat(values)] = ""
            df[col] = text
    return df.to_csv(index=False, lineterminator="\n").encode("utf-8")


def _write_gz(path: Path, payload: bytes) -> None:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as gz:
        gz.write(payload)
    path.write_bytes(buf.getvalue())


def write_demo(out_dir, n_customers: int = 5000, seed: int = 0, period: int = 0,
               journey: str = "renewal") -> dict[str, Path]:
    """Write the demo data set to ``out_dir`` (created if missing).

    Files: ``events.csv.gz``, ``customers.csv.gz``, ``feedback.csv.gz`` (UTF-8 CSV, ISO timestamps
    ``YYYY-MM-DDTHH:MM:SSZ``, missing values as empty cells, gzip with mtime 0 and no file name so the
    same seed gives byte-identical files; events without ``row_id``, which the loader adds),
    ``truth.json`` (sorted keys) and, for the renewal journey's first period, ``observations.csv`` (the mystery-shopper
    sheet, :data:`DEMO_OBSERVATIONS`). ``journey``: "renewal" (the worked example, :func:`make_demo`, with
    ``period``) or "complaint" (the practice journey, :func:`make_complaint`). Returns {"events",
    "customers", "feedback", "truth"[, "observations"]} -> path.
    """
    from journey_analysis.errors import JourneyError

    if journey not in JOURNEYS:
        raise JourneyError(f"unknown demo journey {journey!r}", expected=" or ".join(JOURNEYS),
                           fix="use --journey renewal (the worked example) or --journey complaint (practice)")
    if journey == "complaint" and period:
        raise JourneyError("the complaint practice journey has one period only", expected="--period 0",
                           fix="leave out --period, or use --journey renewal for a later period")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise JourneyError("the output path exists and is not a folder", file=str(out),
                           expected="a folder (created if missing)", fix="choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    demo = (make_complaint(n_customers=n_customers, seed=seed) if journey == "complaint"
            else make_demo(n_customers=n_customers, seed=seed, period=period))
    paths = {name: out / f"{name}.csv.gz" for name in ("events", "customers", "feedback")}
    _write_gz(paths["events"], _csv_bytes(demo.events.drop(columns=["row_id"])))
    _write_gz(paths["customers"], _csv_bytes(demo.customers))
    _write_gz(paths["feedback"], _csv_bytes(demo.feedback))
    paths["truth"] = out / "truth.json"
    paths["truth"].write_text(json.dumps(demo.truth, sort_keys=True, indent=1, ensure_ascii=False) + "\n",
                              encoding="utf-8")
    if journey == "renewal" and not period:     # the tests were made in the extract period
        paths["observations"] = out / "observations.csv"
        paths["observations"].write_bytes(_csv_bytes(demo_observations()))
    return paths


#: The demo journeys :func:`write_demo` can write.
JOURNEYS = ("renewal", "complaint")


def demo_config_path() -> Path:
    """Path of ``configs/demo.yaml`` (the run configuration describing the demo journey)."""
    try:
        from journey_analysis.config import DEMO_CONFIG
        return Path(DEMO_CONFIG)
    except ImportError:  # pragma: no cover - config.py missing or its dependencies not installed
        return Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"
