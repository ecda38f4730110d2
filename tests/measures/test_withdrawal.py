from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bordin.measures.withdrawal import AWAY, find, markers


def test_markers_hand_worked() -> None:
    # 8 -> 6 is a rupture (2 >= 1.5); 6 -> 7 nothing; 7 -> 6.2 a drop of 0.8 >= 0.75.
    assert markers([8.0, 6.0, 7.0, 6.2], threshold=1.5) == [
        (2, "rupture", 2.0),
        (4, "alliance drop", 0.8),
    ]


def test_only_the_two_sessions_after_a_dip_count() -> None:
    alliance = [8.0, 6.0, None, None, None]
    assert find(alliance, {3: "late_cancelled"}, threshold=1.5).session == 3
    assert find(alliance, {4: "missed"}, threshold=1.5).session == 4
    assert find(alliance, {5: "missed"}, threshold=1.5) is None  # three sessions later
    assert find(alliance, {3: "attended"}, threshold=1.5) is None


def test_unplanned_ending_soon_after_a_dip() -> None:
    alliance = [8.0, 8.0, 6.0]
    got = find(alliance, {}, threshold=1.5, ending_reason="dropped_out", last_session=4)
    assert got is not None and got.reason == "ended: dropped_out" and got.marker_session == 3
    assert find(alliance, {}, threshold=1.5, ending_reason="planned", last_session=4) is None
    assert find(alliance, {}, threshold=1.5, ending_reason="moved_away", last_session=6) is None


@given(
    st.lists(st.one_of(st.none(), st.floats(0, 10)), max_size=12),
    st.dictionaries(st.integers(1, 14), st.sampled_from(sorted(AWAY | {"attended"}))),
)
def test_never_without_a_dip_and_always_after_one(alliance: list, attendance: dict) -> None:
    found = find(alliance, attendance, threshold=1.5)
    dips = markers(alliance, threshold=1.5)
    if not dips:
        assert found is None
    if found is not None:
        assert attendance[found.session] in AWAY
        assert 0 < found.session - found.marker_session <= 2
