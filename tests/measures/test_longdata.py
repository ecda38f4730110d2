from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bordin.measures import longdata
from bordin.measures.instruments import builtin_registry
from bordin.measures.longdata import InputError, check_long, read_long, read_table

GOOD = """client_id,session,measure,score,therapist_id,date
a,1,phq9,15,t1,2026-01-05
a,2,phq9,12,t1,2026-01-12
a,1,alliance,7.25,t1,2026-01-05
b,1,gad7,9,t2,2026-01-06
"""


def write(tmp_path: Path, text: str, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_good_file_is_typed(tmp_path: Path) -> None:
    frame = read_long(write(tmp_path, GOOD), builtin_registry())
    assert frame.schema["session"] == pl.Int64
    assert frame.schema["score"] == pl.Float64
    assert frame.schema["date"] == pl.Date
    assert frame.height == 4


def test_parquet_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    pl.read_csv(write(tmp_path, GOOD)).write_parquet(path)
    assert read_long(path, builtin_registry()).height == 4


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("b,2,gad7,abc,t2,2026-01-13", "row 5: score 'abc' is not a number"),
        ("b,2,gad7,,t2,2026-01-13", "row 5: score '(empty)' is not a number"),
        ("b,2.5,gad7,3,t2,2026-01-13", "row 5: session 2.5 is not a whole number"),
        ("b,0,gad7,3,t2,2026-01-13", "row 5: session 0 must be 1 or more"),
        ("b,x,gad7,3,t2,2026-01-13", "row 5: session x is not a whole number"),
        ("b,2,bdi,3,t2,2026-01-13", "row 5: unknown measure code 'bdi'"),
        ("b,2,gad7,22,t2,2026-01-13", "row 5: score 22 is outside gad7's range 0..21"),
        ("b,2,alliance,-1,t2,2026-01-13", "row 5: score -1 is outside alliance's range 0..10"),
        (",2,gad7,3,t2,2026-01-13", "row 5: client_id is empty"),
        ("a,2,phq9,11,t1,2026-01-12", "rows 2, 5: duplicate score for client a, session 2"),
        ("b,2,gad7,3,t2,13/01/2026", "row 5: date '13/01/2026' is not YYYY-MM-DD"),
    ],
)
@pytest.mark.parametrize("chunk", [longdata.CHUNK_ROWS, 2], ids=["one-chunk", "chunks-of-2"])
def test_bad_rows_are_named(
    tmp_path: Path, line: str, message: str, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(longdata, "CHUNK_ROWS", chunk)  # checks that run in chunks of rows
    path = write(tmp_path, GOOD + line + "\n")
    with pytest.raises(InputError) as info:
        read_long(path, builtin_registry())
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_missing_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "client,session,measure,score\na,1,phq9,3\n")
    with pytest.raises(InputError, match="missing column\\(s\\) client_id"):
        read_long(path, builtin_registry())


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="unsupported file type"):
        read_table(write(tmp_path, "x", "in.xlsx"))
    with pytest.raises(InputError, match="cannot be read as parquet"):
        read_table(write(tmp_path, "not parquet", "in.parquet"))


def test_reports_several_problems_at_most_five() -> None:
    frame = pl.DataFrame(
        {
            "client_id": [str(i) for i in range(10)],
            "session": ["1"] * 10,
            "measure": ["phq9"] * 10,
            "score": ["x"] * 10,
        }
    )
    with pytest.raises(InputError) as info:
        check_long(frame, builtin_registry(), source="f.csv")
    assert str(info.value).count("is not a number") == 5


@settings(max_examples=100, deadline=None)
@given(
    st.integers(0, 19),
    st.sampled_from(["score", "session", "measure"]),
    st.sampled_from(["-5", "x", "", "1e9", "nan", "0"]),
)
def test_any_single_corruption_is_caught_with_its_row(row: int, column: str, value: str) -> None:
    frame = pl.DataFrame(
        {
            "client_id": [f"c{i}" for i in range(20)],
            "session": ["1"] * 20,
            "measure": ["phq9"] * 20,
            "score": ["5"] * 20,
        }
    )
    corrupted = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == row)
        .then(pl.lit(value))
        .otherwise(pl.col(column))
        .alias(column)
    )
    # A session of 1e9 is a whole number, but above MAX_SESSION: rejected with its row too.
    acceptable = column == "score" and value == "0"
    if acceptable:
        check_long(corrupted, builtin_registry(), source="f.csv")
        return
    with pytest.raises(InputError, match=f"row {row + 1}:"):
        check_long(corrupted, builtin_registry(), source="f.csv")


def test_rows_out_of_client_order_are_reported_lowest_row_first(tmp_path: Path) -> None:
    """Rows out of client order are sorted by client before the later checks (duplicates,
    dates); their problems are still listed by row number, lowest first."""
    text = (
        "client_id,session,measure,score,therapist_id,date\n"
        "b,1,phq9,15,t1,05/01/2026\n"
        "a,1,phq9,12,t1,06/01/2026\n"
        "a,2,phq9,11,t1,2026-01-12\n"
    )
    with pytest.raises(InputError) as info:
        read_long(write(tmp_path, text), builtin_registry())
    message = str(info.value)
    assert message.index("row 1: date '05/01/2026'") < message.index("row 2: date '06/01/2026'")
    frame = read_long(
        write(tmp_path, text.replace("05/01/2026", "").replace("06/01/2026", ""), "ok.csv"),
        builtin_registry(),
    )
    assert frame.get_column("client_id").to_list() == ["a", "a", "b"]
    assert frame.get_column("session").to_list() == [1, 2, 1]


@settings(max_examples=200, deadline=None)
@given(
    head=st.lists(st.integers(0, 30), max_size=40).map(sorted),
    rest=st.lists(st.integers(0, 30), max_size=40),
    max_inserts=st.sampled_from([1, 3, 1024]),
)
def test_client_order_is_a_stable_sort(head: list[int], rest: list[int], max_inserts: int) -> None:
    """Mostly sorted rows (a sorted head, then anything), put in order by slices or by one
    sort: always what Polars' stable sort gives, each client's rows in their order."""
    ids = head + rest
    frame = pl.DataFrame({"client_id": ids, "k": list(range(len(ids)))})
    expected = frame.sort("client_id", maintain_order=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(longdata, "MAX_INSERTS", max_inserts)
        assert longdata.client_order(frame).equals(expected)


def test_long_series_appended_out_of_order_come_out_as_sorted(tmp_path: Path) -> None:
    """A file of clients in order with a few clients' rows appended later (another measure,
    later sessions of an earlier client): the checked rows are in client order, each
    client's rows in the file's order."""
    rows = [(1, 1, "phq9"), (2, 1, "phq9"), (3, 1, "phq9"), (1, 1, "gad7"), (2, 2, "phq9")]
    frame = pl.DataFrame(
        {
            "client_id": [r[0] for r in rows],
            "session": [r[1] for r in rows],
            "measure": [r[2] for r in rows],
            "score": [5.0] * len(rows),
        }
    )
    typed = check_long(frame, builtin_registry(), source="f.parquet")
    assert typed.select("client_id", "session", pl.col("measure").cast(pl.String)).rows() == [
        (1, 1, "phq9"),
        (1, 1, "gad7"),
        (2, 1, "phq9"),
        (2, 2, "phq9"),
        (3, 1, "phq9"),
    ]


def test_scores_out_of_range_in_rows_out_of_order_are_reported_lowest_row_first() -> None:
    frame = pl.DataFrame(
        {
            "client_id": [3, 1, 2, 1],
            "session": [1, 1, 1, 2],
            "measure": ["phq9", "phq9", "phq9", "phq9"],
            "score": [99.0, 5.0, 98.0, 97.0],
        }
    )
    with pytest.raises(InputError) as info:
        check_long(frame, builtin_registry(), source="f.parquet")
    lines = str(info.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == ["row 1", "row 3", "row 4"]
