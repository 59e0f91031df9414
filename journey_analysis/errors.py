"""The package's one exception type for bad input, and helpers to build its messages.

Every loader, validator and the command line raise :class:`JourneyError` for input a user must fix.
Its message says which file, which column, which rows (the first few), what was expected and what
to do; the CLI prints it without a traceback (unless ``--debug``) and exits non-zero.
"""
from __future__ import annotations

from collections.abc import Iterable


class JourneyError(Exception):
    """Bad input that the user must fix (file, column, rows, expectation, remedy in the message)."""

    def __init__(self, message: str, *, file: str | None = None, column: str | None = None,
                 rows: Iterable | None = None, expected: str | None = None, fix: str | None = None):
        self.file = None if file is None else str(file)
        self.column = column
        self.rows = list(rows)[:5] if rows is not None else None
        self.expected = expected
        self.fix = fix
        parts = [message]
        if file is not None:
            parts.append(f"  file: {file}")
        if column is not None:
            parts.append(f"  column: {column}")
        if self.rows:
            parts.append(f"  rows (first {len(self.rows)}, 1-based data rows): " + ", ".join(map(str, self.rows)))
        if expected is not None:
            parts.append(f"  expected: {expected}")
        if fix is not None:
            parts.append(f"  what to do: {fix}")
        super().__init__("\n".join(parts))
