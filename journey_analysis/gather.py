"""The loaders: one raw file of events, customers or feedback (CSV, Parquet, Excel, XES) loaded and
normalised into its contract (a whole run's data: :func:`journey_analysis.sources.gather`).

Every loader reads ids as strings (``"NA"`` and ``"None"`` stay ids), parses timestamps to UTC
(mixed offsets allowed; values without an offset are read as UTC), keeps extra columns and the
original row order (``row_id``, the tie-breaker for equal timestamps), applies a column mapping,
and validates the result against its contract (``journey_analysis.schema``). Doubtful rows are
kept or handled by the rules in :data:`journey_analysis.schema.RULES` and recorded in a
:class:`~journey_analysis.schema.QualityLog`. Raw files are only ever read.
"""
from __future__ import annotations

import csv
import gzip
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from journey_analysis.engines import dispatch
from journey_analysis.errors import JourneyError
from journey_analysis.reading import OFFSET as _OFFSET
from journey_analysis.reading import check_path as _check_path
from journey_analysis.reading import read_head as _read_head
from journey_analysis.reading import sniff_delimiter as _sniff_delimiter
from journey_analysis.reading import suffixes as _suffixes
from journey_analysis.schema import MAX_TEXT_CHARS, QualityLog, validate

TIME_COLUMNS = {"timestamp", "end_timestamp", "start_timestamp", "created_at"}
TEXT_COLUMNS = {"customer_id", "feedback_id", "stage", "touchpoint", "channel", "journey", "source",
                "rating_type", "text", "activity", "case_id"}


def _utf8_problem(path: Path) -> str | None:
    """Describe the first non-UTF-8 byte (line and byte), or None when the file decodes."""
    opener = gzip.open if _suffixes(path)[-1:] == [".gz"] else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return f"byte 0x{raw[exc.start]:02x} at line {line} is not UTF-8"
    return None


_COMPRESSED = {".bz2", ".zip", ".xz", ".zst", ".tar", ".tgz"}


def _has_quote(path: Path) -> bool:
    """Whether the file may hold a quoted field (so a line break inside a value): a plain file without
    any '"' byte has none, and pyarrow then splits it at every line break, faster."""
    if _suffixes(path)[-1:] == [".gz"]:
        return True
    import mmap

    with open(path, "rb") as fh:
        try:
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                if hasattr(mm, "madvise") and hasattr(mmap, "MADV_SEQUENTIAL"):
                    mm.madvise(mmap.MADV_SEQUENTIAL)
                return mm.find(b'"') >= 0
        except (ValueError, OSError):  # an empty or unmappable file: assume quotes
            return True


def _read_csv_arrow(path: Path, sep: str, head: bytes) -> pd.DataFrame | None:
    """The same table as pandas' reader (every cell as text), read by pyarrow's multi-threaded CSV reader.

    Returns None (and the caller uses pandas' reader, with its messages) for anything the two
    readers might read differently: a file that is not UTF-8, rows with the wrong number of fields,
    repeated or empty column names, compressions other than gzip.
    """
    if set(_suffixes(path)) & _COMPRESSED:
        return None
    import pyarrow as pa
    import pyarrow.csv as pacsv

    first = head.split(b"\n", 1)[0] if b"\n" in head else None
    try:
        header = next(csv.reader([first.decode("utf-8").lstrip("\ufeff").rstrip("\r")], delimiter=sep))
    except (AttributeError, UnicodeDecodeError, StopIteration, csv.Error):
        return None
    if '"' in first.decode("utf-8") or not header or len(set(header)) != len(header) or "" in header:
        return None
    try:
        table = pacsv.read_csv(
            path, parse_options=pacsv.ParseOptions(delimiter=sep, newlines_in_values=_has_quote(path)),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.large_string() for c in header},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False))
    except (pa.ArrowException, OSError, ValueError):
        return None
    if table.column_names != header or any(t != pa.large_string() for t in table.schema.types):
        return None
    return table.to_pandas()  # large_string: pandas' own string storage, no copy


def _nul_problem(path: Path) -> str | None:
    """Describe the first NUL byte of a text file (line), or None."""
    opener = gzip.open if _suffixes(path)[-1:] == [".gz"] else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    at = raw.find(b"\x00")
    if at < 0:
        return None
    line = raw[:at].count(b"\n") + 1
    return f"a NUL byte (0x00) at line {line}"


def _raise_nul(path: Path, nul: str | None) -> None:
    if nul:
        raise JourneyError(f"The file holds {nul}: it is binary, or a text file saved as UTF-16.", file=path,
                           expected="UTF-8 text without NUL bytes",
                           fix="Re-save the file as UTF-8 CSV (in Excel: 'CSV UTF-8'), or export it again.")


def _check_header(path: Path, sep: str, enc: str) -> None:
    """Duplicate column names in a CSV header are an error (pandas would silently rename them a.1)."""
    head = _read_head(path).decode(enc, errors="replace")
    first = next(csv.reader(io.StringIO(head), delimiter=sep), [])
    names = [c.strip().lstrip("\ufeff") for c in first]
    seen = {n for n in names if names.count(n) > 1 and n}
    if seen:
        raise JourneyError(f"The header repeats column name(s) {', '.join(map(repr, sorted(seen)))}.", file=path,
                           column=sorted(seen)[0], expected="each column name once",
                           fix="Rename the repeated columns in the export so that each name is unique.")


def read_table(path, encoding: str | None = None) -> pd.DataFrame:
    """Read a raw table with every cell as text (no value turned into missing but empty cells).

    CSV (any of , ; tab | as delimiter, UTF-8 with or without BOM, optionally gzipped), Parquet,
    Excel (.xlsx/.xls) and XES event logs (plain or gzipped, via :mod:`journey_analysis.eventlog`).
    Raises :class:`JourneyError` for a missing file, a directory, an empty or header-only file and
    text that is not in the expected encoding.
    """
    path = _check_path(path)
    sfx = _suffixes(path)
    if ".parquet" in sfx or ".pq" in sfx:
        frame = pd.read_parquet(path)
    elif sfx and sfx[-1] in (".xlsx", ".xls", ".xlsm"):
        frame = pd.read_excel(path, dtype=str, keep_default_na=False)
    elif ".xes" in sfx:
        from journey_analysis.eventlog import read_xes

        frame = read_xes(path)
    else:
        enc = encoding or "utf-8-sig"
        utf8 = enc.lower().replace("-", "").replace("_", "") in ("utf8sig", "utf8")
        head = _read_head(path)
        if b"\x00" in head:
            _raise_nul(path, _nul_problem(path))
        sample = head.decode(enc, errors="replace")
        sep = _sniff_delimiter(sample)
        frame = _read_csv_arrow(path, sep, head) if utf8 else None
        if frame is None:  # pandas' reader: the files the fast reader declines, and their messages
            _raise_nul(path, _nul_problem(path))
            if utf8:
                problem = _utf8_problem(path)
                if problem:
                    raise JourneyError(f"The file is not UTF-8 text: {problem}.", file=path,
                                       expected="UTF-8 text (with or without a byte-order mark)",
                                       fix="Re-save the file as UTF-8 (in Excel: 'CSV UTF-8'), or give its "
                                           "encoding with --encoding / `encoding:` (for example latin-1).")
            _check_header(path, sep, enc)
            try:
                frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_filter=False,
                                    encoding=enc, compression="infer", skipinitialspace=False)
            except pd.errors.EmptyDataError:
                raise JourneyError("The file has no header and no rows.", file=path,
                                   expected="a header row and data rows", fix="Export the data again.") from None
            except pd.errors.ParserError as exc:
                raise JourneyError(f"The file could not be read as a table: {exc}", file=path,
                                   expected=f"the same number of {sep!r}-separated fields on every line",
                                   fix="Quote fields that contain the delimiter, or fix the lines named above.") from None
    frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
    if frame.empty:
        raise JourneyError("The file has a header but no data rows.", file=path,
                           expected="at least one data row", fix="Check the export; it may have been filtered to nothing.")
    return frame


def apply_mapping(frame: pd.DataFrame, columns: dict | None, path) -> pd.DataFrame:
    """`frame` with its columns renamed by `columns` (source name -> contract name); a source column the
    file does not have is a JourneyError naming the file (`path`)."""
    if not columns:
        return frame
    missing = [src for src in columns if src not in frame.columns]
    if missing:
        raise JourneyError(f"The column mapping names {', '.join(map(repr, missing))}, which the file does not have.",
                           file=path, column=missing[0],
                           expected=f"one of: {', '.join(map(str, frame.columns))}",
                           fix="Correct `columns:` in the config.")
    out = frame.rename(columns=columns)
    dup = sorted({c for c in out.columns if list(out.columns).count(c) > 1})
    if dup:
        made = [f"{src!r} -> {dst!r}" for src, dst in columns.items() if dst in dup]
        raise JourneyError(f"The column mapping makes two columns called {', '.join(map(repr, dup))} "
                           f"({', '.join(made)}, and the file's own column).", file=path, column=dup[0],
                           expected="each column name once after the mapping",
                           fix="Also rename the file's own column (e.g. {'customer_id': 'source_customer_id'}), "
                               "or use `id:` in a table.")
    return out


def _as_text(s: pd.Series) -> pd.Series:
    """Text column: strings kept as they are ("NA" stays "NA"); real missing values stay missing."""
    if pd.api.types.is_string_dtype(s) or s.dtype == object:
        return s.astype("string").astype(object).where(s.notna(), None)
    return s.astype("string").astype(object).where(s.notna(), None)


def _blank(s: pd.Series) -> pd.Series:
    return s.isna() | (s.astype("string").str.strip() == "")


def _blank_to_missing(arr, dtype, index, empty: bool = False) -> pd.Series:
    """A pyarrow string column with :func:`_blank` values missing (``empty``: "" instead), as a
    pyarrow-backed Series of ``dtype``: the values ``_as_text(s).where(~_blank(s), None)`` holds
    (``.fillna("")`` with ``empty``), left in pyarrow strings so that :func:`_finish` factorises them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    blank = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(arr), ""), True)  # str.strip() == "" or missing
    if pc.any(blank).as_py():
        arr = pc.if_else(blank, pa.scalar("" if empty else None, arr.type), arr)
    return pd.Series(pd.array(arr, dtype=dtype), index=index, copy=False)


def _arrow_timestamps(text: pd.Series) -> pd.Series | None:
    """ISO 8601 values that all carry an offset, parsed by pyarrow's kernel; None for any other column.

    The fast path of :func:`parse_timestamps`: pyarrow refuses a value without an offset and any
    form it does not know, and then pandas' parser (with its fallback and messages) reads the column.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        parsed = pc.cast(pa.array(text.array), pa.timestamp("ns", tz="UTC"))
    except (pa.ArrowException, ValueError, TypeError):
        return None
    return pd.Series(parsed.to_pandas(), index=text.index, name=text.name)


def _has_offset(text: pd.Series | None, arr=None, index=None) -> pd.Series:
    """``text`` (stripped, missing where blank) ends with a time-zone offset (:data:`_OFFSET`).

    pyarrow's RE2 kernel for printable ASCII values (where RE2 and Python's ``re`` agree on this
    pattern), Python's ``re`` for values with other characters. ``arr``: the same values as a pyarrow
    array (``text`` may then be None, with ``index`` the rows' index).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pa.array(text.array) if arr is None else arr
    index = text.index if text is not None else index
    if pc.all(pc.ends_with(arr, "Z")).as_py() is True:  # the common export: every value in UTC ("...Z")
        return pd.Series(pc.is_valid(arr).to_numpy(zero_copy_only=False), index=index)
    hit = pc.fill_null(pc.match_substring_regex(arr, _OFFSET), False).to_numpy(zero_copy_only=False)
    wide = pc.or_(pc.invert(pc.string_is_ascii(arr)), pc.match_substring_regex(arr, r"[\x00-\x1f\x7f]"))
    wide = pc.fill_null(wide, False).to_numpy(zero_copy_only=False)
    if wide.any():
        if text is None:
            text = pd.Series(pd.array(arr, dtype="string"), index=index)
        hit[wide] = text[wide].str.contains(_OFFSET, regex=True, na=False).to_numpy(dtype=bool)
    return pd.Series(hit, index=index)


def _arrow_parse(arr, index):
    """The fast path of :func:`parse_timestamps` for a pyarrow string column: (datetimes, blank, the
    stripped values with blanks missing), or None when any non-blank value does not parse this way
    (then the pandas path, with its fallback and messages, reads the column)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = pa.timestamp("ns", tz="UTC")
    try:  # pyarrow refuses surrounding whitespace and empty strings: when this parses, nothing needs stripping
        parsed = pc.cast(arr, kind)
        trimmed, blank = arr, pc.is_null(arr)
    except (pa.ArrowException, ValueError, TypeError):
        parsed = None
    if parsed is None:
        trimmed = pc.utf8_trim_whitespace(arr)
        blank = pc.fill_null(pc.equal(trimmed, ""), True)
        if pc.any(blank).as_py():
            trimmed = pc.if_else(blank, pa.scalar(None, arr.type), trimmed)
        try:
            parsed = pc.cast(trimmed, kind)
        except (pa.ArrowException, ValueError, TypeError):
            return None
    if parsed.null_count != trimmed.null_count:  # a value that did not parse: the pandas path explains it
        return None
    out = parsed.to_pandas() if isinstance(parsed, pa.ChunkedArray) else pd.Series(parsed.to_pandas())
    out.index = index
    return out, pd.Series(blank.to_numpy(zero_copy_only=False), index=index), trimmed


def parse_timestamps(s: pd.Series, path, column: str, log: QualityLog | None = None,
                     required: bool = True) -> pd.Series:
    """Parse a column to UTC datetimes (``datetime64[ns, UTC]``).

    ISO 8601 with any offsets (converted to UTC); values without an offset are read as UTC and,
    when the column mixes both, counted in the log. Empty cells become NaT (an error when
    ``required``); any other value that does not parse raises :class:`JourneyError` with its rows.
    """
    if pd.api.types.is_datetime64_any_dtype(s):
        out = s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")
        blank = out.isna()
    else:
        arr = _arrow_strings(s)
        fast = _arrow_parse(arr, s.index) if arr is not None else None
        if fast is not None:
            out, blank, parsed_text = fast
            out.name = s.name
            text = None
        else:
            parsed_text = None
            text = s.astype("string").str.strip()
            blank = text.isna() | (text == "")
            text = text.mask(blank)
            out = _arrow_timestamps(text)
        if out is None:
            out = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
        bad = out.isna() & ~blank if fast is None else None
        if bad is not None and bad.any():
            retry = pd.to_datetime(text[bad], utc=True, format="mixed", errors="coerce")
            out = out.copy()
            out[bad] = retry
            bad = out.isna() & ~blank
        if bad is not None and bad.any():
            idx = np.flatnonzero(bad.to_numpy())
            vals = ", ".join(repr(v) for v in text.iloc[idx[:3]])
            raise JourneyError(f"{int(bad.sum())} value(s) in column {column!r} are not date-times ({vals}).",
                               file=path, column=column, rows=[i + 1 for i in idx[:5]],
                               expected="ISO 8601 date-times, e.g. 2024-05-01T10:00:00Z or 2024-05-01 10:00:00+01:00",
                               fix="Correct those cells, or map the right column in the config.")
        if log is not None:
            has_offset = _has_offset(text, parsed_text, s.index)
            n_naive = int((~has_offset & ~blank).sum())
            if 0 < n_naive < int((~blank).sum()):
                rows = np.flatnonzero((~has_offset & ~blank).to_numpy()) + 1
                log.add(path, "naive_timestamp", n_naive, rows, detail=column)
    if required and blank.any():
        idx = np.flatnonzero(blank.to_numpy())
        raise JourneyError(f"{len(idx)} row(s) have no value in column {column!r}.", file=path, column=column,
                           rows=[i + 1 for i in idx[:5]], expected="a date-time on every row",
                           fix="Fill in the missing date-times or remove those rows from the export.")
    return out.astype("datetime64[ns, UTC]")


def _arrow_strings(s: pd.Series):
    """The pyarrow ChunkedArray behind a pyarrow-backed string column (what the CSV reader gives), else None."""
    dtype = s.dtype
    if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow":
        arr = s.array.__arrow_array__()
    elif isinstance(dtype, pd.ArrowDtype) and str(dtype.pyarrow_dtype) in ("string", "large_string"):
        arr = s.array.__arrow_array__()
    else:
        return None
    import pyarrow as pa

    return arr if isinstance(arr, pa.ChunkedArray) else pa.chunked_array([arr])


@dataclass
class _Factor:
    """A text column as integer codes (-1: missing) into its distinct values (a pyarrow string array).

    Every check of :func:`_finish` on a text column is a function of the value, so it runs once per
    distinct value and is spread to the rows by the codes (no Python object per row until the
    column is written out). A table indexed by the codes has one slot more, the last, for code -1."""

    codes: np.ndarray  # int32 or int64
    uniques: object  # pyarrow.Array of strings, no nulls
    _objects: np.ndarray | None = field(default=None, repr=False)

    def objects(self) -> np.ndarray:
        """The values as Python strings (None where missing), one object per distinct value."""
        if self._objects is None:
            values = np.empty(len(self.uniques) + 1, dtype=object)
            values[:-1] = self.uniques.to_numpy(zero_copy_only=False)
            values[-1] = None
            self._objects = values[self.codes]  # code -1 -> the last slot, None
        return self._objects


def _factorise(arr) -> _Factor:
    """Codes of a pyarrow string column by dictionary encoding, of the first value of each run of equal
    neighbours only when the runs are long (ids, and attributes repeated on each of a case's rows, in
    the usual export order), the codes then repeated over each run: the same codes, less hashing."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(arr)
    small = np.int32 if n < 2 ** 31 - 1 else np.int64
    runs = None
    if n > 1:
        new = np.empty(n, dtype=bool)
        new[0] = True
        new[1:] = pc.fill_null(pc.not_equal(arr[1:], arr[:-1]), True).to_numpy(zero_copy_only=False)
        firsts = np.flatnonzero(new)
        if len(firsts) <= n // 2:
            runs = np.diff(np.append(firsts, n))
            arr = arr.take(pa.array(firsts))
    if isinstance(arr, pa.ChunkedArray) and arr.num_chunks > 1:
        # one array, one dictionary: the same codes (first appearance) as encoding each chunk and
        # unifying the dictionaries, which costs ~1 s per 200,000 distinct values over 26 chunks
        try:
            arr = arr.combine_chunks()
        except (pa.ArrowException, OverflowError):  # pragma: no cover - more than 2 GB in 32-bit offsets
            pass
    enc = pc.dictionary_encode(arr)
    chunks = (enc.unify_dictionaries().chunks if enc.num_chunks else []) if isinstance(enc, pa.ChunkedArray) else [enc]
    if not chunks:
        return _Factor(np.zeros(0, dtype=small), pa.array([], pa.large_string()))
    indices = pa.chunked_array([c.indices for c in chunks], type=chunks[0].indices.type)
    if indices.null_count:
        indices = pc.fill_null(indices, -1)
    codes = indices.to_numpy().astype(small, copy=False)
    if runs is not None:
        codes = np.repeat(codes, runs)
    uniques = chunks[0].dictionary
    if uniques.null_count:  # pragma: no cover - dictionary_encode masks nulls by default
        raise ValueError("nulls in a dictionary")
    return _Factor(codes, uniques)


def _strings(values) -> pd.Series:
    """A pyarrow string array as the pandas "string" Series that ``s.astype("string")`` makes."""
    return pd.Series(pd.array(values, dtype="string"))


def _lookup(per_unique: np.ndarray, missing) -> np.ndarray:
    """A table indexed by codes: one value per distinct value, then ``missing`` for code -1 (the last slot)."""
    return np.append(per_unique, np.array([missing], dtype=per_unique.dtype))


def _factor_typed(f: _Factor, name: str, text_column: bool, index) -> tuple[pd.Series, _Factor | None, np.ndarray]:
    """:func:`_as_text` / :func:`_infer_extra` of a factorised column, decided on its distinct values.

    Returns the typed column, the factor of its text (None when it became numbers or booleans), and
    codes of the typed values (equal values equal codes, missing -1) for the duplicate check. Each row
    is touched by one table look-up per output."""
    import pyarrow.compute as pc

    codes = f.codes
    if text_column or name.endswith("_id") or name == "id":
        return pd.Series(f.objects(), index=index, dtype=object, copy=False), f, codes
    trimmed = pc.utf8_trim_whitespace(f.uniques)
    blank_u = pc.equal(trimmed, "").to_numpy(zero_copy_only=False)
    # the distinct non-blank values after stripping (two raw values may strip to one); every distinct
    # value occurs in the rows, so "every row blank or missing" is "no distinct value left"
    dcodes, distinct = _strings(trimmed).mask(blank_u).factorize()
    if not (dcodes >= 0).any():
        return pd.Series(np.nan, index=index, name=name), None, np.full(len(codes), -1, dtype=codes.dtype)
    distinct = pd.Series(distinct.array)
    dcodes = dcodes.astype(codes.dtype, copy=False)
    if distinct.str.lower().isin(["true", "false"]).all():
        truth = (distinct.str.lower() == "true").to_numpy(dtype=bool)
        values = pd.arrays.BooleanArray(_lookup(truth[dcodes], False)[codes], _lookup(dcodes < 0, True)[codes])
        dup = _lookup(np.where(dcodes >= 0, truth[dcodes], -1).astype(codes.dtype), -1)[codes]
        return pd.Series(values, index=index, name=name, copy=False), None, dup
    if not _cannot_be_number(distinct):
        nums = pd.to_numeric(distinct, errors="coerce")
        if nums.notna().all() and not distinct.str.match(r"^0\d").any():
            ncodes, _ = pd.factorize(nums)
            per_code = nums.array.take(_lookup(dcodes, -1), allow_fill=True)  # last slot missing
            dup = _lookup(np.where(dcodes >= 0, ncodes[dcodes], -1).astype(codes.dtype), -1)[codes]
            return pd.Series(per_code.take(codes), index=index, name=name, copy=False), None, dup
    kept = _Factor(_lookup(np.where(blank_u, -1, np.arange(len(blank_u))).astype(codes.dtype), -1)[codes]
                   if blank_u.any() else codes, f.uniques)
    return pd.Series(kept.objects(), index=index, dtype=object, copy=False), kept, kept.codes


def _infer_extra(s: pd.Series, name: str) -> pd.Series:
    """Extra column: numbers and booleans become typed when every non-empty value fits; ids stay text."""
    if not (pd.api.types.is_string_dtype(s) or s.dtype == object):
        return s
    if name.endswith("_id") or name == "id":
        return _as_text(s)
    text = s.astype("string").str.strip()
    blank = text.isna() | (text == "")
    if blank.all():
        return pd.Series(np.nan, index=s.index, name=name)
    # each decision is taken on the distinct non-empty values (the same answer as on every row, at a
    # fraction of the cost): all true/false, all numbers without a leading zero, else text
    codes, distinct = text.mask(blank).factorize()
    distinct = pd.Series(distinct.array)
    if distinct.str.lower().isin(["true", "false"]).all():
        lowered = text.str.lower()
        return lowered.map({"true": True, "false": False}).astype("boolean")
    if not _cannot_be_number(distinct):
        nums = pd.to_numeric(distinct, errors="coerce")
        if nums.notna().all() and not distinct.str.match(r"^0\d").any():
            return pd.Series(nums.array.take(codes, allow_fill=True), index=s.index, name=s.name)
    return _as_text(s).where(~blank, None)


# ASCII characters that appear in no value pandas.to_numeric reads as a number (digits, sign, point,
# exponent, inf/infinity; "nan" reads as missing, so a column holding it is not numeric either)
_NOT_NUMERIC = "[" + "".join(f"\\x{{{c:02x}}}" for c in range(128)
                             if not (chr(c).isspace() or chr(c) in "0123456789+-.eEiInNfFtTyYaA")) + "]"


def _cannot_be_number(values: pd.Series) -> bool:
    """Some value holds a character no number has (a cheap test that spares pandas.to_numeric)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return bool(pc.any(pc.match_substring_regex(pa.array(values.array), _NOT_NUMERIC)).as_py())


def _codes_of(col) -> tuple[np.ndarray, int]:
    """Codes (missing -1) of a column or of precomputed codes, and the number of distinct codes."""
    if isinstance(col, np.ndarray):
        return col, (int(col.max()) + 1 if len(col) else 0)
    codes, uniques = col.factorize()
    return codes, len(uniques)


def _duplicated(columns: list, block: np.ndarray | None = None) -> np.ndarray:
    """``DataFrame.duplicated(keep="first")`` over these columns, from one int64 key per row.

    Each column (a Series, or an array of codes already made: equal values equal codes, missing -1)
    is factorised (missing values one code, equal to each other as in pandas); the codes are
    combined into a row key, re-factorised whenever the product of sizes would overflow.
    ``block``: a non-decreasing code per row such that two equal rows always share it (e.g. customer
    and timestamp of time-ordered events; the columns it stands for may then be left out); only the
    rows of blocks with two or more rows are compared, by a stable sort of their keys.
    """
    n = len(block) if block is not None else len(columns[0]) if columns else 0
    if block is not None:
        out = np.zeros(n, dtype=bool)
        if n < 2:
            return out
        start = np.empty(n, dtype=bool)
        start[0] = True
        start[1:] = block[1:] != block[:-1]
        shared = ~start  # a row whose block started before it, or whose block goes on after it
        shared[:-1] |= ~start[1:]
        cand = np.flatnonzero(shared)
        if not len(cand):
            return out
        sub_start = start[cand]
        key = _row_key([np.cumsum(sub_start, dtype=np.int64) - 1]
                       + [c[cand] if isinstance(c, np.ndarray) else c.iloc[cand] for c in columns])
        order = np.argsort(key, kind="stable")  # blocks come in order: nearly sorted already
        ks = key[order]
        again = np.zeros(len(cand), dtype=bool)
        again[order[1:]] = ks[1:] == ks[:-1]  # equal to an earlier row (stable: the first stays)
        out[cand] = again
        return out
    return pd.Series(_row_key(columns)).duplicated(keep="first").to_numpy()


def _row_key(columns: list) -> np.ndarray:
    """One int64 per row, equal for rows equal in every column (see :func:`_duplicated`)."""
    n = len(columns[0]) if columns else 0
    key = np.zeros(n, dtype=np.int64)
    size = 1
    for col in columns:
        codes, n_uniques = _codes_of(col)
        width = n_uniques + 1  # code -1 (missing) -> 0
        if size * width >= 2 ** 62:
            key, distinct = pd.factorize(key)
            size = len(distinct)
        key = key * width + (codes.astype(np.int64) + 1)
        size *= width
    return key


def _time_blocks(case: np.ndarray, ts: pd.Series) -> np.ndarray | None:
    """Rows of one customer and one timestamp as a block code, when each customer's rows are adjacent and
    in time order (the usual export); None otherwise."""
    n = len(case)
    if n < 2 or not pd.api.types.is_datetime64_any_dtype(ts.dtype):
        return None
    t = ts.array.asi8 if hasattr(ts.array, "asi8") else ts.to_numpy(dtype="datetime64[ns]").view("int64")
    dc = np.diff(case)
    dt = np.diff(t)
    if not bool(np.all((dc > 0) | ((dc == 0) & (dt >= 0)))):
        return None
    new = np.empty(n, dtype=bool)
    new[0] = True
    new[1:] = (dc != 0) | (dt != 0)
    return np.cumsum(new, dtype=np.int64)


def _finish(frame: pd.DataFrame, path, kind: str, log: QualityLog, duplicates: str = "drop",
            factors: dict | None = None) -> pd.DataFrame:
    """Shared part of every loader: types, formulas, duplicates, contract check.

    Text columns read by pyarrow are factorised once (:class:`_Factor`): typing, formulas, duplicates
    and the contract check run on their distinct values and integer codes. ``factors`` (a dict, when
    given) receives the factors of the text columns of the result."""
    # twin[col]: the same values as the text (object) column col, still in pyarrow-backed strings,
    # so the checks below run on pyarrow's kernels instead of on Python objects
    twin: dict[str, pd.Series] = {}
    facts: dict[str, _Factor] = {}  # text columns made from a factor
    dup_codes: dict[str, np.ndarray] = {}  # codes of the typed values of factorised columns
    typed_cols = [c for c in frame.columns if not (c in TIME_COLUMNS or c == "row_id"
                                                      or (c not in TEXT_COLUMNS and c in ("rating", "duration_s")))]
    # one factor per pyarrow array (stage is often activity's array), made in parallel: pyarrow's
    # kernels release the GIL
    arrays = {c: a for c in typed_cols if (a := _arrow_strings(frame[c])) is not None}
    jobs = {id(a): a for a in arrays.values()}
    if len(jobs) > 1 and len(frame) > 100_000:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 1)) as pool:
            made = dict(zip(jobs, pool.map(_factorise, jobs.values())))
    else:
        made = {key: _factorise(a) for key, a in jobs.items()}
    for col in typed_cols:
        s = frame[col]
        if col in arrays:
            typed, f, dup_codes[col] = _factor_typed(made[id(arrays[col])], col, col in TEXT_COLUMNS, frame.index)
            frame[col] = typed
            if f is not None:
                facts[col] = f
            continue
        if col in TEXT_COLUMNS:
            frame[col] = _as_text(s)
        else:
            frame[col] = _infer_extra(s, col)
        if frame[col].dtype == object and pd.api.types.is_string_dtype(s) and s.dtype != object:
            twin[col] = s.mask(frame[col].isna().to_numpy())
    text_cols = [c for c in frame.columns if frame[c].dtype == object]
    if text_cols:
        import pyarrow.compute as pc

        formula = np.zeros(len(frame), dtype=bool)
        for c in text_cols:
            if c in facts:  # the test on each distinct value, spread by the codes
                f = facts[c]
                hit = np.append(pc.or_(pc.match_substring_regex(f.uniques, r"^[=+@]"),
                                       pc.match_substring_regex(f.uniques, r"^-[^\d.]")).to_numpy(zero_copy_only=False),
                                False)
                # RE2's \d is ASCII, Python's (pandas' str.match, the other columns' test) any decimal
                # digit: a value with a non-ASCII character after "-" is judged by Python's
                wide = np.flatnonzero(pc.match_substring_regex(f.uniques, r"^-[^\x00-\x7f]").to_numpy(zero_copy_only=False))
                if len(wide):
                    import re

                    hit[wide] = [re.match(r"-[^\d.]", v) is not None for v in f.uniques.take(wide).to_pylist()]
                if hit.any():
                    formula |= hit[f.codes]
                continue
            s = twin[c].astype("string") if c in twin else frame[c].astype("string")
            formula |= (s.str.match(r"^[=+@]", na=False) | s.str.match(r"^-[^\d.]", na=False)).to_numpy()
        log.add(path, "formula_cell", int(formula.sum()), np.flatnonzero(formula) + 1)
    content = [c for c in frame.columns if c != "row_id"]
    # exact duplicates: the rows' values as per-column codes (missing values equal, as in
    # DataFrame.duplicated), text columns coded from their twins or factors
    block = None
    if kind == "events" and "customer_id" in dup_codes and "timestamp" in frame.columns:
        block = _time_blocks(dup_codes["customer_id"], frame["timestamp"])
    if block is not None:  # the block stands for customer and timestamp; a column sharing another's codes adds nothing
        content = [c for i, c in enumerate(content) if c not in ("customer_id", "timestamp")
                   and not (c in dup_codes and any(dup_codes.get(o) is dup_codes[c] for o in content[:i]))]
    dup = _duplicated([dup_codes[c] if c in dup_codes else twin[c] if c in twin else frame[c] for c in content],
                      block)
    if dup.any():
        log.add(path, "exact_duplicate", int(dup.sum()), np.flatnonzero(dup) + 1,
                detail="kept (duplicates: keep)" if duplicates == "keep" else "")
        if duplicates == "drop":
            frame = frame.loc[~dup].reset_index(drop=True)
            facts = {c: _Factor(f.codes[~dup], f.uniques) for c, f in facts.items()}
    validate(frame, kind, path, text=twin, factors=facts)
    if factors is not None:
        factors.update(facts)
    return frame


def load_events(path, columns: dict | None = None, stages=None, step: str = "stage",
                log: QualityLog | None = None, encoding: str | None = None,
                duplicates: str = "drop", frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """Load an events (touchpoints) file into the events contract.

    ``columns`` maps source names to contract names (e.g. ``{"case_id": "customer_id"}``); XES logs
    map ``case_id``/``activity`` themselves when no mapping is given. ``stages`` (configured stage
    names) enables the unknown-stage check. Adds ``row_id`` (0-based file row). Service duration:
    ``end_timestamp - timestamp`` or ``duration`` / ``duration_s`` (seconds), in ``duration_s``;
    negative values are set to missing and logged. Exact duplicate rows are logged and, with
    ``duplicates="drop"`` (default), kept once; ``"keep"`` keeps them all (as process-mining tools do).
    ``frame``: an already-read table to use instead of reading ``path`` (which then only names it in
    messages; :mod:`journey_analysis.sources` passes its prepared tables this way).
    """
    log = QualityLog() if log is None else log
    frame = read_table(path, encoding) if frame is None else frame.copy()
    frame = apply_mapping(frame, columns, path)
    # process-mining logs (XES, pm4py-style CSV): case -> customer, activity -> stage, unless mapped
    if "case_id" in frame.columns and "customer_id" not in frame.columns:
        frame = frame.rename(columns={"case_id": "customer_id"})
    if "activity" in frame.columns and "stage" not in frame.columns and step in ("stage", "activity"):
        frame["stage"] = frame["activity"]
    if step != "stage" and step in frame.columns and "stage" not in frame.columns:
        frame["stage"] = frame[step]
    frame = frame.drop(columns="row_id", errors="ignore")
    frame.insert(0, "row_id", np.arange(len(frame), dtype="int64"))
    for col in ("customer_id", "timestamp", "stage"):
        if col not in frame.columns:
            validate(frame, "events", path)  # raises the missing-column message
    frame["timestamp"] = parse_timestamps(frame["timestamp"], path, "timestamp", log)
    for col in ("end_timestamp", "start_timestamp"):
        if col in frame.columns:
            frame[col] = parse_timestamps(frame[col], path, col, log, required=False)
    if "duration" in frame.columns and "duration_s" not in frame.columns:
        frame = frame.rename(columns={"duration": "duration_s"})
    if "duration_s" in frame.columns:
        frame["duration_s"] = _numeric(frame["duration_s"], path, "duration_s", log)
    if "end_timestamp" in frame.columns:
        svc = (frame["end_timestamp"] - frame["timestamp"]).dt.total_seconds()
        frame["duration_s"] = svc if "duration_s" not in frame.columns else frame["duration_s"].fillna(svc)
    if "duration_s" in frame.columns:
        neg = (frame["duration_s"] < 0).to_numpy()
        if neg.any():
            log.add(path, "negative_duration", int(neg.sum()), np.flatnonzero(neg) + 1)
            frame.loc[neg, "duration_s"] = np.nan
    factors: dict = {}
    frame = _finish(frame, path, "events", log, duplicates, factors)
    if stages is not None:
        f = factors.get("stage")
        if f is not None:  # the test on each distinct stage, spread by the codes
            known = np.append(pd.Series(f.uniques.to_numpy(zero_copy_only=False), dtype=object)
                              .isin(list(stages)).to_numpy(), False)
            unknown = pd.Series(~known[f.codes], index=frame.index)
        else:
            unknown = ~frame["stage"].isin(list(stages))
        if unknown.any():
            names = ", ".join(sorted(map(str, frame.loc[unknown, "stage"].unique()))[:5])
            log.add(path, "unknown_stage", int(unknown.sum()), frame.loc[unknown, "row_id"] + 1, detail=names)
    return frame


def _numeric(s: pd.Series, path, column: str, log: QualityLog, check: str = "bad_rating") -> pd.Series:
    if pd.api.types.is_numeric_dtype(s):
        return s.astype(float)
    text = s.astype("string").str.strip()
    blank = text.isna() | (text == "")
    nums = pd.to_numeric(text.mask(blank).str.replace(",", ".", regex=False), errors="coerce")
    bad = (nums.isna() & ~blank).to_numpy()
    if bad.any():
        if bad.sum() > 0.5 * max(1, (~blank).sum()):
            idx = np.flatnonzero(bad)
            vals = ", ".join(repr(v) for v in text.iloc[idx[:3]])
            raise JourneyError(f"Column {column!r} should hold numbers, but most values do not ({vals}).",
                               file=path, column=column, rows=idx[:5] + 1, expected="numbers",
                               fix="Map the right column in the config, or correct the export.")
        log.add(path, check, int(bad.sum()), np.flatnonzero(bad) + 1, detail=f"{column}: not a number")
    return nums.astype(float)


def load_customers(path, columns: dict | None = None, log: QualityLog | None = None,
                   encoding: str | None = None, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """Load a customers file: ``customer_id`` (unique) plus attributes and outcomes (typed when clean).

    Blank cells of a numeric column are counted per column (``blank_numeric``, information).
    ``frame``: an already-read table instead of reading ``path`` (see :func:`load_events`)."""
    log = QualityLog() if log is None else log
    frame = apply_mapping(read_table(path, encoding) if frame is None else frame.copy(), columns, path)
    if "created_at" in frame.columns:
        frame["created_at"] = parse_timestamps(frame["created_at"], path, "created_at", log, required=False)
    frame.insert(0, "row_id", np.arange(len(frame), dtype="int64"))
    frame = _finish(frame, path, "customers", log)
    for col in frame.columns:
        if col != "row_id" and pd.api.types.is_numeric_dtype(frame[col]) and not pd.api.types.is_bool_dtype(frame[col]):
            blank = frame[col].isna().to_numpy()
            if 0 < blank.sum() < len(frame):
                log.add(path, "blank_numeric", int(blank.sum()), np.flatnonzero(blank) + 1, severity="info",
                        detail=col)
    return frame.drop(columns="row_id")


def load_feedback(path, columns: dict | None = None, log: QualityLog | None = None,
                  encoding: str | None = None, scales: dict | None = None,
                  frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """Load feedback (surveys, reviews, social posts, chat/call notes).

    Ratings that are not numbers or fall outside their ``rating_type``'s scale
    (:data:`journey_analysis.config.RATING_SCALES`, or ``scales``) are set to missing and logged;
    texts longer than 5,000 characters are logged (analysis reads the first 5,000).
    A ``feedback_id`` is made from the row number when the file has none.
    """
    from journey_analysis.config import RATING_SCALES

    scales = {**RATING_SCALES, **(scales or {})}
    log = QualityLog() if log is None else log
    frame = apply_mapping(read_table(path, encoding) if frame is None else frame.copy(), columns, path)
    frame = frame.drop(columns="row_id", errors="ignore")
    frame.insert(0, "row_id", np.arange(len(frame), dtype="int64"))
    if "feedback_id" not in frame.columns:
        frame["feedback_id"] = "F" + (frame["row_id"] + 1).astype(str)
    for col in ("customer_id", "stage", "text", "rating_type", "source", "touchpoint", "channel"):
        if col in frame.columns:
            arr = _arrow_strings(frame[col])
            if arr is not None:  # blanks missing, the column kept in pyarrow strings for _finish's factors
                frame[col] = _blank_to_missing(arr, frame[col].dtype, frame.index, col == "text")
            else:
                frame[col] = _as_text(frame[col]).where(~_blank(frame[col]), None)
    if "source" not in frame.columns:  # part of the contract: notebooks group by it (None: not given)
        frame["source"] = None
    if "text" not in frame.columns:
        frame["text"] = None
    if frame["text"].dtype == object:
        frame["text"] = frame["text"].fillna("")
    if "timestamp" in frame.columns:
        frame["timestamp"] = parse_timestamps(frame["timestamp"], path, "timestamp", log, required=False)
    if "rating" in frame.columns:
        frame["rating"] = _numeric(frame["rating"], path, "rating", log)
        rtype = frame["rating_type"].str.lower() if "rating_type" in frame.columns else pd.Series("csat", index=frame.index)
        lo = rtype.map({k: v[0] for k, v in scales.items()}).astype(float)
        hi = rtype.map({k: v[1] for k, v in scales.items()}).astype(float)
        out = (frame["rating"].notna() & lo.notna() & ((frame["rating"] < lo) | (frame["rating"] > hi))).to_numpy()
        if out.any():
            kinds = ", ".join(sorted(rtype[out].dropna().unique()))
            log.add(path, "rating_out_of_scale", int(out.sum()), np.flatnonzero(out) + 1,
                    detail=f"rating types: {kinds}")
            frame.loc[out, "rating"] = np.nan
    long = (frame["text"].str.len() > MAX_TEXT_CHARS).to_numpy()
    log.add(path, "long_text", int(long.sum()), np.flatnonzero(long) + 1)
    return _finish(frame, path, "feedback", log)


def link_feedback(feedback: pd.DataFrame, events: pd.DataFrame, step: str = "stage",
                  log: QualityLog | None = None, file="feedback") -> pd.DataFrame:
    """Give feedback without a step the customer's step at that time.

    Rule: the customer's last event at or before the feedback's timestamp (same ``journey`` when
    both frames have that column; equal timestamps resolved by file order). Adds ``stage_source``:
    "given", "linked" or "unlinked" (no customer, no timestamp, or no earlier event).
    """
    out = feedback.copy()
    if step not in out.columns:
        out[step] = None
    given = out[step].notna()
    out["stage_source"] = np.where(given, "given", "unlinked")
    need = ~given
    if "customer_id" in out.columns and "timestamp" in out.columns:
        need &= out["customer_id"].notna() & out["timestamp"].notna()
    else:
        need &= False
    if need.any():
        keys = ["customer_id"] + (["journey"] if "journey" in out.columns and "journey" in events.columns else [])
        merged = _last_step_before(events, out.loc[need], keys, step)
        ok = merged.notna()
        out.loc[merged.index[ok], step] = merged[ok].to_numpy()
        out.loc[merged.index[ok], "stage_source"] = "linked"
    if log is not None:
        linked = (out["stage_source"] == "linked").to_numpy()
        unl = (out["stage_source"] == "unlinked").to_numpy()
        log.add(file, "feedback_linked", int(linked.sum()), np.flatnonzero(linked) + 1, severity="info")
        log.add(file, "feedback_unlinked", int(unl.sum()), np.flatnonzero(unl) + 1, severity="info")
    return out


@dispatch(op="last_step_before")
def _last_step_before(events: pd.DataFrame, need: pd.DataFrame, keys: list[str], step: str) -> pd.Series:
    """The step of each row of `need` by :func:`link_feedback`'s rule (a Series on `need`'s index;
    missing: no earlier event). On Spark: :func:`journey_analysis.engines.spark.last_step_before`."""
    ev = events[keys + ["timestamp", step] + (["row_id"] if "row_id" in events.columns else [])]
    ev = ev.sort_values(["timestamp"] + (["row_id"] if "row_id" in ev.columns else []), kind="stable")
    left = need[keys + ["timestamp"]].reset_index().sort_values("timestamp", kind="stable")
    merged = pd.merge_asof(left, ev.rename(columns={step: "_linked"}), on="timestamp", by=keys,
                           direction="backward", allow_exact_matches=True)
    return merged.set_index("index")["_linked"]


