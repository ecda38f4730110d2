"""CSV injection rules of :mod:`bordin.csvsafe`, applied to whole Polars columns.

``bordin analyze`` writes its CSV files with Polars; this module applies the same OWASP rules
as the web exports (:mod:`bordin.csvsafe`, one definition of the rules for every CSV Bordin
writes), vectorised: a text cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return gets a leading single quote, and so does each part after a separator inside a
cell; a plain number (``-2``, ``1e3``) is data and is left alone. Only text (and categorical)
columns are touched, so a negative change score stays a number.

>>> import polars as pl
>>> frame = pl.DataFrame({"id": ["=1+1", "ok", "-2", "a;@x"], "n": [-1, 2, 3, 4]})
>>> neutralise_formulas(frame).rows()
[("'=1+1", -1), ('ok', 2), ('-2', 3), ("a;'@x", 4)]
>>> neutralise_cell("@SUM(A1)")
"'@SUM(A1)"
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

import polars as pl

from bordin.csvsafe import SEPARATORS, TRIGGERS, neutralise

#: First characters that make a spreadsheet read a cell as a formula (OWASP).
FORMULA_PREFIXES = tuple(TRIGGERS)
_TRIG = "[" + re.escape(TRIGGERS) + "]"
_SEP = "[" + re.escape(SEPARATORS) + "]"
#: A cell that needs the rules: a trigger first, or after a separator (and spaces).
_PATTERN = f"^{_TRIG}|{_SEP} *{_TRIG}"
_NUMBER = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"


def neutralise_cell(value: str) -> str:
    """One text value, made inert (:func:`bordin.csvsafe.neutralise`)."""
    return neutralise(value)


#: Characters that make a CSV writer quote a cell.
_QUOTED = r'[,"\r\n]'


def plain_text(values: pl.Series) -> bool:
    """Whether every value of ``values`` can be written to a CSV file as it is: no formula to
    neutralise and nothing to quote (Polars quotes an empty text too; integers always can).

    >>> plain_text(pl.Series(["a1", "b 2"])), plain_text(pl.Series(["=1", "x"]))
    (True, False)
    >>> plain_text(pl.Series(['say "hi"'])), plain_text(pl.Series([7, -2]))
    (False, True)
    """
    if values.dtype.is_integer():
        return True
    text = values.cast(pl.String)
    return not (
        text.str.contains(_PATTERN).any() or text.str.contains(_QUOTED).any() or (text == "").any()
    )


def _safe(name: str) -> pl.Expr:
    text = pl.col(name).cast(pl.String)
    inner = text.str.replace_all(f"({_SEP} *)({_TRIG})", "${1}'${2}")
    return (
        pl.when(text.str.contains(_NUMBER))
        .then(text)
        .when(inner.str.contains(f"^{_TRIG}"))
        .then(pl.lit("'") + inner)
        .otherwise(inner)
        .alias(name)
    )


def formula_safe(schema: Mapping[str, pl.DataType]) -> list[pl.Expr]:
    """Expressions that neutralise every text (or categorical) column of ``schema``."""
    return [
        _safe(name)
        for name, dtype in schema.items()
        if dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum)
    ]


def neutralise_formulas(frame: pl.DataFrame, *, skip: Collection[str] = ()) -> pl.DataFrame:
    """Every text (and categorical) column with cells that need it neutralised; others as they are.

    Columns with no such cell are left as they are (no copy of a large clean table); columns
    named in ``skip`` (words the caller wrote itself, never a formula) are not looked at.
    """
    text = [
        name
        for name, dtype in frame.schema.items()
        if (dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum))
        and name not in skip
        and frame.select(pl.col(name).cast(pl.String).str.contains(_PATTERN).any()).item()
    ]
    return frame.with_columns(formula_safe({n: frame.schema[n] for n in text})) if text else frame
