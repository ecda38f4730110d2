"""The matching shortlist for a re-match request, from the clinic's finished episodes.

Only measured results enter the ranking (:mod:`bordin.measures.matching`): reliable improvement
per therapist and problem area, from a multilevel model, and a ranked list only when rankings
from the clinic's earlier episodes predicted its later ones (the held-out check). The client's
practical preferences (format, language) only decide who is *eligible*; a therapist's personal
history or lived experience is never used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from bordin.measures.reliable_change import classify_change
from bordin.web.clinic import analysis
from bordin.web.clinic.models import Episode, Response
from bordin.web.journey.models import PROBLEM_AREAS, Intake, RematchRequest, TherapistProfile


@dataclass(frozen=True)
class Row:
    name: str
    estimate: float
    lower: float
    upper: float
    n_clients: int
    notes: tuple[str, ...]


@dataclass
class ShortlistView:
    problem_area: str = ""
    available: bool = False
    reason: str = ""
    rows: list[Row] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    #: Therapist ids in the shortlist's order (best first): the assign list follows it.
    ranked_ids: list[str] = field(default_factory=list)


def _eligible(intake: Intake | None, therapists: list[Any]) -> tuple[list[Any], list[str]]:
    """Therapists who fit the practical preferences; the others with the reason."""
    profiles = {
        p.user_id: p for p in TherapistProfile.objects.filter(user__in=[t.pk for t in therapists])
    }
    eligible, excluded = [], []
    for t in therapists:
        name = t.get_full_name() or t.get_username()
        profile = profiles.get(t.pk)
        if profile is None or intake is None:
            eligible.append(t)
            continue
        if not profile.accepting_new:
            excluded.append(f"{name}: not taking new clients")
            continue
        if intake.formats and not set(intake.formats) & set(profile.formats):
            excluded.append(f"{name}: does not offer {', '.join(intake.format_labels()).lower()}")
            continue
        wanted = intake.language.strip().casefold()
        if wanted and wanted not in {lang.casefold() for lang in profile.languages}:
            excluded.append(f"{name}: does not work in {intake.language}")
            continue
        eligible.append(t)
    return eligible, excluded


def outcomes_frame(clinic_id: int) -> list[tuple[str, str, bool, date]]:
    """(therapist id, problem area, reliable improvement, end date) per finished episode.

    Only episodes with an intake count; the end date (the start when none was recorded) orders
    the episodes for the held-out check.
    """
    episodes = list(
        Episode.objects.filter(client__clinic_id=clinic_id, status=Episode.Status.CLOSED)
        .filter(intake__isnull=False)
        .values_list("pk", "client__therapist_id", "intake__problem_areas", "end", "start")
    )
    if not episodes:
        return []
    scores: dict[int, dict[str, list[float]]] = {}
    for episode_id, code, total in (
        Response.objects.filter(
            session__episode_id__in=[e[0] for e in episodes],
            respondent=Response.Respondent.CLIENT,
            instrument__code__in=[analysis.PHQ9, analysis.WELLBEING],
        )
        .order_by("session__number")
        .values_list("session__episode_id", "instrument__code", "total")
    ):
        if total is not None:  # an unscored questionnaire has no total
            scores.setdefault(episode_id, {}).setdefault(code, []).append(total)
    rows = []
    reg = analysis.registry()
    for episode_id, therapist_id, areas, end, start in episodes:
        by_code = scores.get(episode_id, {})
        code = analysis.PHQ9 if len(by_code.get(analysis.PHQ9, [])) >= 2 else analysis.WELLBEING
        values = by_code.get(code, [])
        if len(values) < 2 or not areas:
            continue
        inst = reg[code]
        if inst.reliable_change is None:
            continue
        category = classify_change(
            values[0],
            values[-1],
            threshold=inst.reliable_change,
            lower_is_better=inst.lower_is_better,
            caseness=inst.caseness,
        )
        improved = category in ("improved", "recovered")
        rows.append((str(therapist_id), str(areas[0]), improved, end or start))
    return rows


def build(rematch: RematchRequest, intake: Intake | None, therapists: list[Any]) -> ShortlistView:
    view = ShortlistView()
    if intake is None or not intake.problem_areas:
        view.reason = (
            "The client has no intake with a problem area, so there is nothing to match on."
        )
        return view
    area = str(intake.problem_areas[0])
    view.problem_area = str(dict(PROBLEM_AREAS).get(area, area))
    try:
        from bordin.measures import matching
    except ImportError:  # pragma: no cover - the module ships with Bordin
        view.reason = "Matching is not available in this installation."
        return view
    import polars as pl

    eligible, view.excluded = _eligible(intake, therapists)
    rows = outcomes_frame(rematch.clinic_id)
    if not rows:
        view.reason = (
            "The clinic has no finished episodes with an intake and outcome scores yet, so there "
            "is no track record to go on. Allocate as usual."
        )
        return view
    frame = pl.DataFrame(
        {
            "therapist_id": [r[0] for r in rows],
            "problem_area": [r[1] for r in rows],
            "reliable_improvement": [r[2] for r in rows],
            matching.PERIOD_COLUMN: [r[3] for r in rows],
        }
    )
    _, _, result = matching.match(
        frame, problem_area=area, eligible_therapists=[str(t.pk) for t in eligible]
    )
    names = {str(t.pk): t.get_full_name() or t.get_username() for t in eligible}
    view.available = result.available
    view.reason = result.reason.replace(f"'{area}'", f"'{view.problem_area}'")
    view.rows = [
        Row(
            names.get(c.therapist_id, c.therapist_id),
            c.estimate,
            c.lower,
            c.upper,
            c.n_clients,
            c.notes,
        )
        for c in result.candidates
    ]
    view.ranked_ids = [c.therapist_id for c in result.candidates] if result.available else []
    return view
