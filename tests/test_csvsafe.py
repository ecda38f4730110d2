"""``bordin.csvsafe``: OWASP CSV-injection rules, hand-worked and as properties."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bordin.csvsafe import SEPARATORS, TRIGGERS, neutralise, writer


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("=1+2", "'=1+2"),
        ("+1", "+1"),  # a number
        ("+A1", "'+A1"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("@SUM(1+1)", "'@SUM(1+1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("Mozilla/5.0;=1+2;@SUM(1+1)", "Mozilla/5.0;'=1+2;'@SUM(1+1)"),
        ("a, =1", "a, '=1"),
        ("a|@x", "a|'@x"),
        ("plain text", "plain text"),
        ("-1.5", "-1.5"),
        ("3e-2", "3e-2"),
        ("2026-12-04", "2026-12-04"),
        ("", ""),
    ],
)
def test_hand_worked_cells(cell: str, expected: str) -> None:
    assert neutralise(cell) == expected


def test_values_that_are_not_text() -> None:
    assert [neutralise(v) for v in (None, -3, 2.5, True)] == ["", "-3", "2.5", "True"]


def test_the_issue_user_agent_comes_out_quoted_and_neutralised() -> None:
    out = io.StringIO()
    writer(out).writerow(["Mozilla/5.0;=1+2;@SUM(1+1)", 7])
    assert out.getvalue() == '"Mozilla/5.0;\'=1+2;\'@SUM(1+1)","7"\n'


def _dangerous(part: str) -> bool:
    return part.lstrip(" ")[:1] in TRIGGERS and part.lstrip(" ") != ""


@given(st.lists(st.one_of(st.text(), st.integers(), st.floats(allow_nan=False)), max_size=6))
def test_every_cell_is_quoted_and_no_part_starts_a_formula(row: list[object]) -> None:
    out = io.StringIO()
    writer(out).writerow(row)
    text = out.getvalue()
    parsed = next(csv.reader(io.StringIO(text))) if row else []
    assert len(parsed) == len(row)
    assert all(text.count('"') >= 2 * len(row) for _ in [0])
    for original, cell in zip(row, parsed, strict=True):
        if isinstance(original, str) and not _number(original):
            assert cell[:1] not in TRIGGERS or cell == ""
            for sep in SEPARATORS:
                for part in cell.split(sep)[1:]:
                    assert not _dangerous(part), (original, cell)
            # Nothing is lost: removing the added quotes gives the original back.
            assert cell.replace("'", "") == original.replace("'", "")


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip() == text and not any(c.isalpha() and c not in "eE" for c in text)
