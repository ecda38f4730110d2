"""Withdrawal: a missed or cancelled session, or an unplanned ending, soon after an alliance dip.

Background. Safran & Muran (2000) distinguish two kinds of rupture. In a *confrontation* rupture
the client moves against the therapist (complaints, criticism); in a *withdrawal* rupture the
client moves away: goes quiet, defers, agrees too readily, or stays away. A client who cancels
or misses the session after a hard one is the classic behavioural marker of withdrawal, and
withdrawal ruptures are easy to miss because nothing is said (Eubanks, Muran & Safran 2018).

**Bordin's rule** (our operational rule, not a published one). On the client's alliance series
(session numbers count every booked session, attended or not) a *marker* is

* a **rupture** at session ``s`` by :mod:`bordin.measures.ruptures` (a drop of at least the
  threshold ``T``), or
* an **alliance drop** at ``s``: a fall of at least ``T / 2`` from the previous scored session
  (at most two sessions back), the same comparison the rupture rule makes with half its size.

``T`` is the threshold in force for this client (:mod:`bordin.measures.rupture_rules`: the
reliable-change threshold by default, the fixed one under the fixed rule, the client's own
scaled one under the ceiling rule; :func:`bordin.measures.rupture_rules.client_threshold`), so
a change of rule moves the alliance-drop marker with it.

A **withdrawal** is then

* a session ``m`` with attendance ``missed``, ``cancelled`` or ``late_cancelled`` and
  ``s < m <= s + 2`` for some marker ``s``; or
* an episode that ended for a reason other than ``planned`` with its last booked session ``L``
  and ``L - 2 <= s`` for some marker ``s`` (it ended within two sessions after the dip).

>>> find([8.0, 6.0, None], {1: "attended", 2: "attended", 3: "cancelled"}, threshold=1.5)
Withdrawal(session=3, marker_session=2, marker='rupture', drop=2.0, reason='cancelled')
>>> find([8.0, 7.0, None], {3: "missed"}, threshold=1.5).marker
'alliance drop'
>>> find([8.0, 7.8, None], {3: "missed"}, threshold=1.5) is None
True
>>> find([8.0, 6.0], {}, threshold=1.5, ending_reason="dropped_out").reason
'ended: dropped_out'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bordin.measures.reliable_change import ROUND
from bordin.measures.ruptures import MAX_LOOKBACK, detect_scores

#: Attendance values that count as staying away.
AWAY = frozenset({"missed", "cancelled", "late_cancelled"})
#: How many sessions after the dip a withdrawal may come.
WINDOW = 2


@dataclass(frozen=True)
class Withdrawal:
    session: int
    marker_session: int
    marker: str
    drop: float
    reason: str


def markers(alliance: Sequence[float | None], *, threshold: float) -> list[tuple[int, str, float]]:
    """``(session, "rupture" | "alliance drop", drop)`` for every dip, in session order."""
    found: dict[int, tuple[str, float]] = {
        r.session: ("rupture", r.drop) for r in detect_scores(alliance, threshold=threshold)
    }
    for k, value in enumerate(alliance):
        s = k + 1
        if value is None or s in found:
            continue
        for back in range(1, MAX_LOOKBACK + 1):
            j = k - back
            if j < 0:
                break
            before = alliance[j]
            if before is not None:
                drop = round(before - value, ROUND)
                if drop >= threshold / 2:
                    found[s] = ("alliance drop", drop)
                break
    return [(s, kind, drop) for s, (kind, drop) in sorted(found.items())]


def find(
    alliance: Sequence[float | None],
    attendance: Mapping[int, str],
    *,
    threshold: float,
    ending_reason: str | None = None,
    last_session: int | None = None,
) -> Withdrawal | None:
    """The first withdrawal in the episode (rule in the module docstring), or ``None``."""
    dips = markers(alliance, threshold=threshold)
    if not dips:
        return None
    for m in sorted(attendance):
        if attendance[m] not in AWAY:
            continue
        for s, kind, drop in dips:
            if s < m <= s + WINDOW:
                return Withdrawal(m, s, kind, drop, attendance[m])
    if ending_reason and ending_reason != "planned":
        last = last_session or max([len(alliance), *attendance])
        for s, kind, drop in reversed(dips):
            if last - WINDOW <= s:
                return Withdrawal(last, s, kind, drop, f"ended: {ending_reason}")
    return None
