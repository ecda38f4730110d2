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
from typing import TYPE_CHECKING, Any

from django.utils.formats import number_format
from django.utils.translation import gettext, ngettext

from bordin.measures.reliable_change import classify_change
from bordin.web.clinic import analysis
from bordin.web.clinic.models import Episode, Response
from bordin.web.journey.models import PROBLEM_AREAS, Intake, RematchRequest, TherapistProfile

if TYPE_CHECKING:
    from bordin.measures.matching import Shortlist, Validation


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
            excluded.append(gettext("%(name)s: not taking new clients") % {"name": name})
            continue
        if intake.formats and not set(intake.formats) & set(profile.formats):
            formats = ", ".join(str(f) for f in intake.format_labels()).lower()
            excluded.append(
                gettext("%(name)s: does not offer %(formats)s") % {"name": name, "formats": formats}
            )
            continue
        wanted = intake.language.strip().casefold()
        if wanted and wanted not in {lang.casefold() for lang in profile.languages}:
            excluded.append(
                gettext("%(name)s: does not work in %(language)s")
                % {"name": name, "language": intake.language}
            )
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
        view.reason = gettext(
            "The client has no intake with a problem area, so there is nothing to match on."
        )
        return view
    area = str(intake.problem_areas[0])
    view.problem_area = str(dict(PROBLEM_AREAS).get(area, area))
    try:
        from bordin.measures import matching
    except ImportError:  # pragma: no cover - the module ships with Bordin
        view.reason = gettext("Matching is not available in this installation.")
        return view
    import polars as pl

    eligible, view.excluded = _eligible(intake, therapists)
    rows = outcomes_frame(rematch.clinic_id)
    if not rows:
        view.reason = gettext(
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
    _, validation, result = matching.match(
        frame, problem_area=area, eligible_therapists=[str(t.pk) for t in eligible]
    )
    names = {str(t.pk): t.get_full_name() or t.get_username() for t in eligible}
    view.available = result.available
    view.reason = reason_text(result, validation, view.problem_area)
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


def _number(value: float) -> str:
    return str(number_format(value, decimal_pos=2))


def _p_text(p: float) -> str:
    """``p < 0.001``, or ``p = 0.012``, in the page's number format."""
    if p < 0.001:
        return "p < " + str(number_format(0.001, decimal_pos=3))
    return "p = " + str(number_format(p, decimal_pos=3))


def validation_text(validation: Validation) -> str:
    """The held-out check's outcome in the page's language (``Validation.code``)."""
    figures = {"earlier": validation.n_earlier, "later": validation.n_later}
    code = validation.code
    if code in ("no_dates", "same_end"):
        return {
            "no_dates": gettext(
                "The data have no episode end dates, so there is no way to check that rankings "
                "from earlier clients predict later clients' results. No ranked list is offered."
            ),
            "same_end": gettext(
                "All episodes ended at the same time, so there is no way to check that rankings "
                "from earlier clients predict later clients' results. No ranked list is offered."
            ),
        }[code]
    if code == "too_few_cells":
        return gettext(
            "Too few therapists saw clients in both the earlier and the later period to check "
            "that rankings predict later results. No ranked list is offered."
        )
    if code == "no_separation":
        return (
            gettext(
                "Checked on the clinic's own data: therapists were ranked on the %(earlier)s "
                "earlier episodes and compared with the %(later)s later ones, but the earlier "
                "rankings did not separate the therapists. No ranked list is offered."
            )
            % figures
        )
    r = _number(validation.correlation or 0.0)
    p = validation.p_value if validation.p_value is not None else 1.0
    if code == "passed":
        return gettext(
            "Checked on the clinic's own data: therapists were ranked on the %(earlier)s earlier "
            "episodes and compared with the %(later)s later ones; the earlier ranking predicted "
            "later clients' results (correlation %(r)s, %(p)s)."
        ) % {**figures, "r": r, "p": _p_text(p)}
    if code == "not_predictive":
        return gettext(
            "Checked on the clinic's own data: therapists were ranked on the %(earlier)s earlier "
            "episodes and compared with the %(later)s later ones; the earlier ranking did not "
            "reliably predict later clients' results (correlation %(r)s, p = %(p)s; p below "
            "%(alpha)s is needed). Therapists' results here may differ by chance, so no ranked "
            "list is offered."
        ) % {**figures, "r": r, "p": _number(p), "alpha": _number(validation.alpha)}
    return validation.reason  # an outcome this page does not know yet: the English text


def reason_text(result: Shortlist, validation: Validation, area: str) -> str:
    """Why the shortlist is ranked or not, in the page's language (``Shortlist.code``).

    ``area`` is the problem area's label as the page shows it. An outcome without a known code
    falls back to the English ``reason`` of :mod:`bordin.measures.matching`.
    """
    params = result.params
    n_ranked = int(params.get("n_ranked", 0))
    needed = int(params.get("needed", params.get("min_therapist_clients", 0)))
    code = result.code
    if code == "too_few_total":
        n = int(params["n"])
        return ngettext(
            "The service has %(n)s finished episode with an outcome; matching needs at least "
            "%(needed)s before it can say anything useful. Allocate as usual.",
            "The service has %(n)s finished episodes with an outcome; matching needs at least "
            "%(needed)s before it can say anything useful. Allocate as usual.",
            n,
        ) % {"n": n, "needed": needed}
    if code == "too_few_area":
        n = int(params["n"])
        return ngettext(
            "Only %(n)s finished episode in '%(area)s' so far; at least %(needed)s are needed "
            "to compare therapists in this area. Allocate as usual.",
            "Only %(n)s finished episodes in '%(area)s' so far; at least %(needed)s are needed "
            "to compare therapists in this area. Allocate as usual.",
            n,
        ) % {"n": n, "area": area, "needed": needed}
    if code == "none_ready":
        n = int(params["n_eligible"])
        return ngettext(
            "The %(n)s eligible therapist does not have at least %(needed)s finished episodes "
            "in '%(area)s', so there is no track record to go on. Allocate as usual.",
            "None of the %(n)s eligible therapists has at least %(needed)s finished episodes "
            "in '%(area)s', so there is no track record to go on. Allocate as usual.",
            n,
        ) % {"n": n, "area": area, "needed": needed}
    if code == "one_ready":
        why = gettext(
            "Only one eligible therapist has at least %(needed)s finished episodes in "
            "'%(area)s', so there is nothing to compare."
        ) % {"needed": needed, "area": area}
    elif code == "not_validated":
        why = (
            validation_text(validation)
            + " "
            + gettext(
                "The %(n)s eligible therapists with enough data are listed unranked, "
                "alphabetically; any of them is a reasonable choice."
            )
            % {"n": n_ranked}
        )
    elif code == "overlap":
        why = gettext(
            "The results of the %(n)s eligible therapists in '%(area)s' overlap too much to rank "
            "them: the strongest is ahead of the middle one with probability %(p)s (at least "
            "%(needed_p)s is needed). They are listed unranked, alphabetically; any of them is a "
            "reasonable choice."
        ) % {
            "n": n_ranked,
            "area": area,
            "p": _number(params["p_best"]),
            "needed_p": _number(params["needed_p"]),
        }
    elif code == "ranked":
        why = (
            gettext(
                "Ranked by reliable improvement in '%(area)s' (%(n)s finished episodes in the "
                "service). The first-ranked therapist does better than the middle eligible "
                "therapist with probability %(p)s."
            )
            % {"area": area, "n": int(params["n_area"]), "p": _number(params["p_best"])}
            + " "
            + validation_text(validation)
            + " "
            + gettext(
                "Intervals show the uncertainty; this is a starting point for a conversation, "
                "and the client chooses."
            )
        )
    else:
        return result.reason
    if result.waiting:
        why += " " + ngettext(
            "%(n)s eligible therapist has fewer than %(needed)s finished episodes in this area "
            "and is not ranked; that says nothing about their skill, only that there is not "
            "enough data yet.",
            "%(n)s eligible therapists have fewer than %(needed)s finished episodes in this area "
            "and are not ranked; that says nothing about their skill, only that there is not "
            "enough data yet.",
            result.waiting,
        ) % {"n": result.waiting, "needed": int(params["min_therapist_clients"])}
    return why
