"""Reading raw files, the parts both engines share: path checks, the first bytes of a file,
delimiter sniffing and the time-zone offset rule.

The pandas loaders (:mod:`journey_analysis.gather`) and the Spark engine
(:mod:`journey_analysis.engines.spark`) read the same files with the same messages through these.
"""
from __future__ import annotations

import csv
import gzip
from pathlib import Path

from journey_analysis.errors import JourneyError

__all__ = ["OFFSET", "check_path", "suffixes", "read_head", "sniff_delimiter"]

#: A timestamp text that ends with a time-zone offset (``Z``, ``+02:00``, ``+0200``, ``UTC``);
#: values without one are read as UTC and counted as ``naive_timestamp`` when a column mixes both.
OFFSET = r"(?:[zZ]|[+-]\d\d:?\d\d|\bUTC)\s*$"


def check_path(path) -> Path:
    """`path` as a Path when it is a non-empty file; else a JourneyError saying what is wrong."""
    path = Path(path)
    if not path.exists():
        raise JourneyError("File not found.", file=path,
                           fix="Check the path (relative paths in a config are read from the config's folder).")
    if path.is_dir():
        raise JourneyError("Expected a data file but found a directory.", file=path,
                           fix="Point to the file itself (CSV, Parquet, Excel or XES), not its folder.")
    if path.stat().st_size == 0:
        raise JourneyError("The file is empty (0 bytes).", file=path, expected="a header row and data rows",
                           fix="Export the data again; the file may have been truncated.")
    return path


def suffixes(path: Path) -> list[str]:
    """The file name's suffixes, lower case (``data.CSV.gz`` -> ``[".csv", ".gz"]``)."""
    return [s.lower() for s in path.suffixes]


def read_head(path: Path, n: int = 65536) -> bytes:
    """The first `n` bytes of the file (of its content when the name ends in .gz)."""
    opener = gzip.open if suffixes(path)[-1:] == [".gz"] else open
    with opener(path, "rb") as fh:
        return fh.read(n)


def sniff_delimiter(sample: str) -> str:
    """The field delimiter of CSV text (one of ``, ; tab |``): csv.Sniffer on the first 20 non-blank
    lines, else the one the header line holds most often; ``,`` for an empty sample."""
    lines = [ln for ln in sample.splitlines() if ln.strip()][:20]
    if not lines:
        return ","
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|").delimiter
    except csv.Error:
        header = lines[0]
        return max(",;\t|", key=header.count)
