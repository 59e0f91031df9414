"""Tests for journey_analysis.eventlog: XES (plain and gzipped) and the shared CSV event logs."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from journey_analysis import steps as S
from journey_analysis.errors import JourneyError
from journey_analysis.eventlog import read_csv_log, read_xes

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "eventlogs"

XES = """<?xml version="1.0" encoding="UTF-8"?>
<log xes.version="1.0" xmlns="http://www.xes-standard.org/">
  <extension name="Concept" prefix="concept" uri="http://www.xes-standard.org/concept.xesext"/>
  <global scope="event"><string key="concept:name" value="__INVALID__"/></global>
  <classifier name="Activity" keys="concept:name"/>
  <string key="concept:name" value="demo log"/>
  <trace>
    <string key="concept:name" value="NA"/>
    <string key="segment" value="gold"/>
    <event>
      <string key="concept:name" value="apply"/>
      <string key="lifecycle:transition" value="start"/>
      <date key="time:timestamp" value="2024-01-01T10:00:00.000+01:00"/>
      <string key="org:resource" value="r1"/>
      <int key="amount" value="500"/>
    </event>
    <event>
      <string key="concept:name" value="apply"/>
      <string key="lifecycle:transition" value="complete"/>
      <date key="time:timestamp" value="2024-01-01T09:30:00.000Z"/>
      <float key="score" value="0.5"/>
      <boolean key="urgent" value="true"/>
      <list key="tags"><values><string key="t" value="x"/></values></list>
    </event>
  </trace>
  <trace>
    <string key="concept:name" value="c2"/>
    <event>
      <string key="concept:name" value="approve"/>
      <string key="lifecycle:transition" value="complete"/>
      <date key="time:timestamp" value="2024-01-02T00:00:00Z"/>
    </event>
  </trace>
</log>
"""


@pytest.fixture
def xes_file(tmp_path):
    p = tmp_path / "log.xes"
    p.write_text(XES, encoding="utf-8")
    return p


def test_read_xes_columns_types_and_utc(xes_file):
    df = read_xes(xes_file)
    assert list(df.columns[:4]) == ["customer_id", "activity", "timestamp", "lifecycle"]
    assert list(df["customer_id"]) == ["NA", "NA", "c2"]  # "NA" is an id, not missing
    assert list(df["activity"]) == ["apply", "apply", "approve"]
    assert str(df["timestamp"].dt.tz) == "UTC"
    assert df["timestamp"].iloc[0] == pd.Timestamp("2024-01-01 09:00", tz="UTC")  # +01:00 -> UTC
    assert list(df["lifecycle"]) == ["start", "complete", "complete"]
    assert df["resource"].iloc[0] == "r1" and pd.isna(df["resource"].iloc[1])
    assert df["amount"].iloc[0] == 500 and pd.isna(df["amount"].iloc[2])
    assert df["score"].iloc[1] == 0.5 and df["urgent"].iloc[1] is True
    assert list(df["case:segment"].fillna("")) == ["gold", "gold", ""]
    assert "tags" not in df.columns and "t" not in df.columns  # nested attributes skipped
    assert list(df["row_id"]) == [0, 1, 2]


def test_read_xes_gzip_same_as_plain(xes_file, tmp_path):
    gz = tmp_path / "log.xes.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as fh:
        fh.write(XES)
    pd.testing.assert_frame_equal(read_xes(gz), read_xes(xes_file))


def test_read_xes_feeds_lifecycle_pairing(xes_file):
    iv, orphans = S.pair_lifecycle(read_xes(xes_file), step="activity")
    apply = iv[iv.activity == "apply"].iloc[0]
    assert apply["paired"] and (apply["end_timestamp"] - apply["timestamp"]).total_seconds() == 1800
    assert orphans.set_index("activity").loc["approve", "complete_without_start"] == 1


def test_read_xes_errors(tmp_path):
    bad = tmp_path / "bad.xes"
    bad.write_text("<log><trace><event>", encoding="utf-8")
    with pytest.raises(JourneyError, match="cannot read XES"):
        read_xes(bad)
    no_time = tmp_path / "nt.xes"
    no_time.write_text('<log><trace><event><string key="concept:name" value="a"/></event></trace></log>')
    with pytest.raises(JourneyError, match="timestamp"):
        read_xes(no_time)
    with pytest.raises(JourneyError, match="not found"):
        read_xes(tmp_path / "missing.xes")


@pytest.mark.skipif(not DATA.is_dir(), reason=f"shared event logs not found at {DATA}")
def test_read_csv_log_contract():
    df = read_csv_log(DATA / "interval_synthetic.csv.gz")
    assert df["customer_id"].map(type).eq(str).all()
    assert str(df["timestamp"].dt.tz) == "UTC" and str(df["start_timestamp"].dt.tz) == "UTC"
    assert (df["row_id"].to_numpy() == np.arange(len(df))).all() and len(df) == 8109
    iv = read_csv_log(DATA / "interval_synthetic.csv.gz", interval=True)
    assert (iv["end_timestamp"] == df["timestamp"]).all() and (iv["timestamp"] == df["start_timestamp"]).all()
    assert "start_timestamp" not in iv.columns
