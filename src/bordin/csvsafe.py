"""CSV files that a spreadsheet opens as data, never as formulas (CSV injection).

Framework-free, so every CSV Bordin writes (the web exports, ``bordin analyze``) can share it.
The rules are OWASP's "CSV Injection" page (https://owasp.org/www-community/attacks/CSV_Injection):

* every cell is quoted (``csv.QUOTE_ALL``), and quotes inside a cell are doubled;
* a cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is prefixed with
  a single quote, so the spreadsheet shows it as text;
* the same holds after a field separator *inside* a cell (``,`` ``;`` ``|`` or a tab, with any
  spaces after it): a spreadsheet set to another separator, or a "text to columns", would
  split the cell there, so each part gets the quote;
* a plain number (``-1.5``, ``3e-2``) is data, not a formula, and is left alone.

>>> neutralise("=1+2")
"'=1+2"
>>> neutralise("Mozilla/5.0;=1+2;@SUM(1+1)")
"Mozilla/5.0;'=1+2;'@SUM(1+1)"
>>> neutralise(-1.5), neutralise("-1.5"), neutralise(None)
('-1.5', '-1.5', '')
>>> import io
>>> out = io.StringIO()
>>> writer(out).writerow(["a", '=HYPERLINK("x")', 3])
29
>>> out.getvalue()
'"a","\\'=HYPERLINK(""x"")","3"\\n'
"""

from __future__ import annotations

import csv
import re
from typing import Any, Protocol

#: Characters that start a formula (or a DDE payload) in common spreadsheets.
TRIGGERS = "=+-@\t\r"
#: Field separators after which a spreadsheet may start a new cell.
SEPARATORS = ",;|\t"

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_AFTER_SEPARATOR = re.compile(rf"([{re.escape(SEPARATORS)}][ ]*)(?=[{re.escape(TRIGGERS)}])")


class _Writable(Protocol):
    def write(self, s: str, /) -> Any: ...


def neutralise(value: object) -> str:
    """The text of one cell, made safe to open in a spreadsheet (see the module's rules)."""
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    text = str(value)
    if _NUMBER.fullmatch(text):
        return text
    text = _AFTER_SEPARATOR.sub(r"\1'", text)
    if text[:1] in TRIGGERS and text[:1] != "":
        text = "'" + text
    return text


class SafeWriter:
    """``csv.writer`` with every cell quoted and neutralised."""

    def __init__(self, out: _Writable, lineterminator: str = "\n") -> None:
        self._writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator=lineterminator)

    def writerow(self, row: Any) -> Any:
        return self._writer.writerow([neutralise(cell) for cell in row])

    def writerows(self, rows: Any) -> None:
        for row in rows:
            self.writerow(row)


def writer(out: _Writable, lineterminator: str = "\n") -> SafeWriter:
    """A CSV writer for ``out`` that quotes and neutralises every cell."""
    return SafeWriter(out, lineterminator)
