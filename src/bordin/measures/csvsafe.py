"""CSV cells that a spreadsheet would run as formulas, made inert (CSV injection).

A cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is taken for a
formula by Excel, LibreOffice and Google Sheets; a client id such as ``=HYPERLINK(...)`` in an
export could then run when a colleague opens the file. Following the OWASP guidance on CSV
injection (https://owasp.org/www-community/attacks/CSV_Injection), such cells get a leading
single quote, which spreadsheets show as text and do not evaluate. Numbers are left alone: only
text columns are touched, so a negative change score stays a number.

Framework-free on purpose, so any writer of CSV (``bordin analyze``, the web exports) can use it.

>>> from collections.abc import Mapping

import polars as pl
>>> neutralise_formulas(pl.DataFrame({"id": ["=1+1", "ok", "-2"], "n": [-1, 2, 3]})).rows()
[("'=1+1", -1), ('ok', 2), ("'-2", 3)]
>>> neutralise_cell("@SUM(A1)")
"'@SUM(A1)"
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

#: First characters that make a spreadsheet read a cell as a formula (OWASP).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_PATTERN = "^[" + "".join(FORMULA_PREFIXES).replace("-", r"\-") + "]"


def neutralise_cell(value: str) -> str:
    """One text value, made inert when it would be read as a formula."""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def formula_safe(schema: Mapping[str, pl.DataType]) -> list[pl.Expr]:
    """Expressions that neutralise every text (or categorical) column of ``schema``."""
    return [
        pl.when(pl.col(name).cast(pl.String).str.contains(_PATTERN))
        .then(pl.lit("'") + pl.col(name).cast(pl.String))
        .otherwise(pl.col(name).cast(pl.String))
        .alias(name)
        for name, dtype in schema.items()
        if dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum)
    ]


def neutralise_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """Every text (and categorical) column with formula-leading cells quoted; others as they are.

    Columns with no such cell are left as they are (no copy of a large clean table).
    """
    text = [
        name
        for name, dtype in frame.schema.items()
        if (dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum))
        and frame.select(pl.col(name).cast(pl.String).str.contains(_PATTERN).any()).item()
    ]
    return frame.with_columns(formula_safe({n: frame.schema[n] for n in text})) if text else frame
