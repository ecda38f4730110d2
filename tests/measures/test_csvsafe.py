"""CSV injection: bordin.measures.csvsafe applies bordin.csvsafe's rules to Polars columns."""

from __future__ import annotations

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from bordin.measures.csvsafe import FORMULA_PREFIXES, neutralise_cell, neutralise_formulas


def test_owasp_prefixes_are_quoted_and_others_are_not() -> None:
    cells = ["=1+1", "+x", "-x", "@x", "\tx", "\rx", "x=1", "Zoë", "", " =1", "-1", "a;=1"]
    frame = neutralise_formulas(pl.DataFrame({"c": cells, "n": list(range(len(cells)))}))
    assert frame.get_column("c").to_list() == [
        "'=1+1", "'+x", "'-x", "'@x", "'\tx", "'\rx", "x=1", "Zoë", "", " =1", "-1", "a;'=1",
    ]  # fmt: skip
    assert frame.get_column("n").to_list() == list(range(len(cells)))


def test_nulls_and_numbers_are_untouched() -> None:
    frame = pl.DataFrame({"c": [None, "=x"], "v": [-1.5, 2.0]})
    out = neutralise_formulas(frame)
    assert out.get_column("c").to_list() == [None, "'=x"]
    assert out.get_column("v").to_list() == [-1.5, 2.0]


@given(st.lists(st.text(max_size=12), max_size=30))
def test_frame_and_cell_agree_and_no_cell_starts_a_formula(values: list[str]) -> None:
    out = neutralise_formulas(pl.DataFrame({"c": values}, schema={"c": pl.String}))
    got = out.get_column("c").to_list()
    assert got == [neutralise_cell(v) for v in values]
    assert not any(v.startswith(FORMULA_PREFIXES) and neutralise_cell(v) != v for v in got)
