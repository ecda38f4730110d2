"""Shared helpers for the web tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

ALLIANCE = {"goals": 8, "tasks": 8, "bond": 9, "overall": 8}
WELLBEING = {"mood": 5, "daily": 6, "connection": 5, "coping": 6}


def record_checkin(
    session: Any,
    alliance: dict[str, float] | None = None,
    wellbeing: dict[str, float] | None = None,
    *,
    submitted_at: datetime | None = None,
) -> None:
    """Store a client check-in directly (scored by bordin.measures), without the form."""
    from bordin.web.clinic import analysis
    from bordin.web.clinic.models import Instrument, Response

    reg = analysis.registry()
    when = submitted_at or timezone.now() - timedelta(days=1)
    for code, answers in ((analysis.ALLIANCE, alliance), (analysis.WELLBEING, wellbeing)):
        if answers is None:
            continue
        score = reg[code].score(answers)
        Response.objects.create(
            session=session,
            instrument=Instrument.snapshot(reg[code]),
            respondent="client",
            answers=answers,
            total=score.total,
            risk_flagged=bool(score.risk_items),
            submitted_at=when,
            idempotency_key=f"t-{session.pk}-{code}",
        )


def record_therapist_rating(session: Any, answers: dict[str, float], user: Any = None) -> None:
    from bordin.web.clinic import analysis
    from bordin.web.clinic.models import Instrument, Response

    inst = analysis.registry()[analysis.THERAPIST_ALLIANCE]
    Response.objects.create(
        session=session,
        instrument=Instrument.snapshot(inst),
        respondent="therapist",
        rated_by=user,
        answers=answers,
        total=inst.score(answers).total,
        submitted_at=timezone.now(),
        idempotency_key=f"t-{session.pk}-therapist",
    )


def checkin_post(goals: list[Any], key: str = "k" * 32, **overrides: Any) -> dict[str, Any]:
    """A complete, valid check-in form submission; ``overrides`` replace or drop fields."""
    data: dict[str, Any] = {"idempotency_key": key}
    data.update({f"alliance-{k}": str(v) for k, v in ALLIANCE.items()})
    data["alliance-better"] = "Maybe a little more time at the end."
    data.update({f"wellbeing-{k}": str(v) for k, v in WELLBEING.items()})
    data["wellbeing-safety"] = "0"
    data.update({f"goal-{g.pk}": "6" for g in goals})
    for name, value in overrides.items():
        name = name.replace("__", "-")
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return data
