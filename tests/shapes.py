"""Real data from ../shared/data shaped as CX teams have it (read by path, written to a test's tmp folder):
BPIC-2012 as a wide milestone table, real reviews keyed by its case ids (some matching no case), the
receipt log split into two event sources, the telecom churn table. Deterministic (seeded)."""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("JOURNEY_SHARED_DATA", ROOT.parent / "shared" / "data"))
BPIC = SHARED / "eventlogs" / "bpic2012.csv.gz"
HELPDESK = SHARED / "eventlogs" / "helpdesk.csv.gz"
RECEIPT = SHARED / "eventlogs" / "receipt.csv.gz"
CHURN = SHARED / "tables" / "mlc_churn.csv"
B2W = SHARED / "sentiment" / "b2w_10k.csv"
#: BPIC-2012 activities used as milestones of a loan application, in journey order
MILESTONES = {"submitted": "A_SUBMITTED", "preaccepted": "A_PREACCEPTED", "accepted": "A_ACCEPTED",
              "finalized": "A_FINALIZED", "approved": "A_APPROVED"}


def bpic_wide(n_cases: int | None = None, n_blank: int = 200, n_swap: int = 58, seed: int = 0) -> pd.DataFrame:
    """BPIC-2012 as a wide milestone table: one row per application (``application_id``, ``amount_req``,
    ``<stage>_at``), the first timestamp of each milestone activity (blank when never reached); ``n_blank``
    preaccepted cells blanked and ``n_swap`` rows with accepted and finalized swapped (finalized then
    comes before accepted), chosen with ``seed``; ``n_cases`` a seeded sample of applications."""
    log = pd.read_csv(BPIC, dtype=str, keep_default_na=False)
    amount = log.drop_duplicates("case_id").set_index("case_id")["amount_req"]
    log = log[log["activity"].isin(MILESTONES.values())]
    first = log.groupby(["case_id", "activity"], sort=False)["timestamp"].min().unstack()  # ISO, all UTC "Z"
    cols = {a: f"{s}_at" for s, a in MILESTONES.items()}
    wide = first.reindex(columns=list(MILESTONES.values())).rename(columns=cols).fillna("")
    wide.insert(0, "amount_req", amount.reindex(wide.index))
    wide = wide.reset_index().rename(columns={"case_id": "application_id"})
    rng = np.random.default_rng(seed)
    if n_cases is not None:
        wide = wide.iloc[np.sort(rng.choice(len(wide), size=n_cases, replace=False))].reset_index(drop=True)
    both = np.flatnonzero((wide["accepted_at"] != "") & (wide["finalized_at"] != "")
                          & (wide["accepted_at"] < wide["finalized_at"]))
    swap = rng.choice(both, size=min(n_swap, len(both)), replace=False)
    wide.loc[swap, ["accepted_at", "finalized_at"]] = wide.loc[swap, ["finalized_at", "accepted_at"]].to_numpy()
    pre = np.flatnonzero(wide["preaccepted_at"] != "")
    wide.loc[rng.choice(pre, size=min(n_blank, len(pre)), replace=False), "preaccepted_at"] = ""
    return wide


def bpic_applicants(wide: pd.DataFrame) -> pd.DataFrame:
    """A customer table for the applications: amount requested and ``declined`` Yes/No (from A_DECLINED)."""
    log = pd.read_csv(BPIC, dtype=str, keep_default_na=False, usecols=["case_id", "activity"])
    declined = set(log.loc[log["activity"] == "A_DECLINED", "case_id"])
    return pd.DataFrame({"application_id": wide["application_id"], "amount_requested": wide["amount_req"],
                         "declined": np.where(wide["application_id"].isin(declined), "Yes", "No")})


def reviews_for(ids, n_phantom: int = 40, seed: int = 0) -> pd.DataFrame:
    """Real rated reviews (B2W, Portuguese, 1-5 stars) keyed by ``case_ref``: one for each id of ``ids``
    and ``n_phantom`` for ids that are no case ("X-<n>"): they must match no customer."""
    b2w = pd.read_csv(B2W, dtype=str, keep_default_na=False, usecols=["submission_date", "overall_rating",
                                                                      "review_text"])
    b2w = b2w[b2w["review_text"].str.len() > 0]
    ids = list(ids)
    refs = ids + [f"X-{i}" for i in range(n_phantom)]
    rng = np.random.default_rng(seed)
    pick = b2w.iloc[np.sort(rng.choice(len(b2w), size=len(refs), replace=False))].reset_index(drop=True)
    return pd.DataFrame({"case_ref": refs, "stars": pick["overall_rating"], "comment": pick["review_text"]})


def receipt_two_sources(folder: Path, n_cases: int = 250) -> tuple[Path, Path, pd.DataFrame]:
    """The receipt log's first ``n_cases`` cases as two sources: the front office's confirmations (the
    activity as ``step``) and the back office's tasks T.. (``task``, other column names), as a CRM and a
    workflow system would export them. Returns both paths and the original rows."""
    log = pd.read_csv(RECEIPT, dtype=str, keep_default_na=False)
    keep = log["case_id"].drop_duplicates().head(n_cases)
    log = log[log["case_id"].isin(keep)].reset_index(drop=True)
    tasks = log["activity"].str.match(r"^T\d")
    front = log.loc[~tasks, ["case_id", "activity", "timestamp", "channel"]].rename(
        columns={"case_id": "application", "activity": "step", "timestamp": "logged_at"})
    back = log.loc[tasks, ["case_id", "activity", "timestamp", "resource"]].rename(
        columns={"case_id": "case_ref", "activity": "task", "timestamp": "done_at"})
    a, b = folder / "front_office.csv", folder / "back_office.csv"
    front.to_csv(a, index=False)
    back.to_csv(b, index=False)
    return a, b, log


def churn_sample(folder: Path, n: int = 400, seed: int = 0) -> Path:
    """A seeded sample of the telecom churn table (key ``rownames``, ``churn`` yes/no), written as CSV."""
    t = pd.read_csv(CHURN, dtype=str, keep_default_na=False)
    t = t.iloc[np.sort(np.random.default_rng(seed).choice(len(t), size=n, replace=False))]
    path = folder / "churn.csv"
    t.to_csv(path, index=False)
    return path


def helpdesk_head(folder: Path, n_lines: int = 2000) -> Path:
    with gzip.open(HELPDESK, "rt", encoding="utf-8") as f:
        lines = [next(f) for _ in range(n_lines + 1)]
    path = folder / "helpdesk.csv"
    path.write_text("".join(lines), encoding="utf-8")
    return path
