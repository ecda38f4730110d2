"""Everything the client page shows, gathered from the database and bordin.measures."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from bordin.measures.instruments import Instrument as MeasureDefinition
from bordin.web.alerts.models import Alert
from bordin.web.clinic import analysis, charts
from bordin.web.clinic.models import Client, Episode, Goal, GoalRating

#: The alliance's parts as staff pages name them (Bordin 1979: goals, tasks, bond).
PART_NAMES = {
    "goals": gettext_lazy("goals"),
    "tasks": gettext_lazy("tasks (how you work together)"),
    "bond": gettext_lazy("bond"),
}


@dataclass
class GoalView:
    goal: Goal
    latest: int | None
    previous: int | None


@dataclass
class ClientPage:
    client: Client
    episode: Episode | None
    alliance_chart: charts.Chart | None = None
    outcome_chart: charts.Chart | None = None
    #: Charts of further scored instruments (e.g. imported questionnaires), from their definitions.
    other_charts: list[charts.Chart] = field(default_factory=list)
    latest_comment: tuple[int, str] | None = None
    goals: list[GoalView] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    #: Open risk alerts: shown at the top of the page, above everything else (issue 15).
    open_risk: list[Alert] = field(default_factory=list)
    #: The other alerts, in the alerts panel further down.
    other_alerts: list[Alert] = field(default_factory=list)
    rupture_open: bool = False
    withdrawal_open: bool = False
    off_track: bool = False
    rupture_part: str | None = None
    rupture_part_name: str = ""
    rupture_notes: list[str] = field(default_factory=list)


def build(client: Client) -> ClientPage:
    episode = client.episodes.order_by("-start", "-pk").first()
    alerts = list(client.alerts.select_related("session").order_by("-created_at", "-pk"))
    page = ClientPage(client=client, episode=episode, alerts=alerts)
    page.open_risk = [a for a in alerts if a.kind == Alert.Kind.RISK and a.is_open]
    page.other_alerts = [a for a in alerts if a not in page.open_risk]
    open_kinds = {a.kind for a in alerts if a.is_open}
    page.rupture_open = Alert.Kind.RUPTURE in open_kinds
    page.withdrawal_open = Alert.Kind.WITHDRAWAL in open_kinds
    page.off_track = Alert.Kind.NOT_ON_TRACK in open_kinds
    if episode is None:
        return page
    data = analysis.episode_data(episode)
    page.latest_comment = data.comments[-1] if data.comments else None
    _alliance(page, data, client.clinic_id)
    _outcome(page, client, data)
    _other_measures(page, data)
    page.goals = _goals(episode)
    return page


def _alliance(page: ClientPage, data: analysis.EpisodeData, clinic_id: int) -> None:
    client_scores = data.scores(analysis.ALLIANCE)
    therapist_scores = data.therapist_scores()
    if not any(v is not None for v in client_scores + therapist_scores):
        return
    markers = []
    found = analysis.ruptures(client_scores, clinic_id)
    for r in found:
        part = analysis.part_that_dropped_most(data.items, r)
        which = (
            _("; %(part)s fell most (%(points)s points)")
            % {"part": PART_NAMES[part[0]], "points": f"{part[1]:g}"}
            if part
            else ""
        )
        status = {
            "repaired": _("repaired at session %(n)s") % {"n": r.repair_session},
            "unrepaired": _("not repaired"),
            "open": _("still open"),
        }[r.status]
        text = _(
            "Rupture at session %(session)s: the alliance fell %(drop)s points from "
            "session %(previous)s%(which)s; %(status)s."
        ) % {
            "session": r.session,
            "drop": f"{r.drop:g}",
            "previous": r.previous_session,
            "which": which,
            "status": status,
        }
        page.rupture_notes.append(text)
        value = client_scores[r.session - 1]
        if value is not None:
            markers.append(charts.Marker(r.session, value, _("Rupture"), text, "rupture"))
        if r.repair_session is not None:
            repaired_value = client_scores[r.repair_session - 1]
            if repaired_value is not None:
                markers.append(
                    charts.Marker(
                        r.repair_session,
                        repaired_value,
                        _("Repair"),
                        _("Repair at session %(repair)s after the rupture at session %(session)s.")
                        % {"repair": r.repair_session, "session": r.session},
                        "repair",
                    )
                )
    if found and found[-1].status in ("open", "unrepaired"):
        page.rupture_open = True
        part = analysis.part_that_dropped_most(data.items, found[-1])
        page.rupture_part = part[0] if part else None
        page.rupture_part_name = str(PART_NAMES[part[0]]) if part else ""
    last = next((v for v in reversed(client_scores) if v is not None), None)
    sentences = [
        _("Client's alliance ratings over %(n)s sessions, latest %(last)s out of 10.")
        % {"n": sum(v is not None for v in client_scores), "last": f"{last:g}"}
        if last is not None
        else _("No client ratings yet."),
        ngettext("%(n)s rupture found.", "%(n)s ruptures found.", len(found)) % {"n": len(found)}
        if found
        else _("No ruptures found."),
    ]
    if any(v is not None for v in therapist_scores):
        sentences.append(_("The therapist's own ratings are shown as a dashed line."))
    summary = " ".join(sentences)
    page.alliance_chart = charts.line_chart(
        slug="alliance-chart",
        title=_("Alliance, session by session"),
        summary=summary,
        lines=[
            charts.Line(_("Client"), client_scores, "client"),
            charts.Line(_("Therapist"), therapist_scores, "therapist"),
        ],
        lo=0,
        hi=10,
        ticks=[0, 2, 4, 6, 8, 10],
        y_label=_("Alliance (0-10)"),
        markers=markers,
    )


def _sessions(n: int) -> str:
    if n == 0:
        return _("no session")
    return ngettext("%(n)s session", "%(n)s sessions", n) % {"n": n}


def _outcome(page: ClientPage, client: Client, data: analysis.EpisodeData) -> None:
    code = data.outcome_code()
    if code is None:
        return
    inst = analysis.registry()[code]
    scores = data.scores(code)
    model = analysis.reference_model(client.clinic, code)
    points = analysis.trajectory(model, scores)
    band = [(p.session, p.expected, p.upper) for p in points]
    if points and points[-1].status == "not_on_track":
        page.off_track = True
    markers = []
    for change in analysis.sudden_changes(code, scores):
        gain = change.kind == "gain"
        numbers = {
            "first": change.pregain_session,
            "second": change.postgain_session,
            "before": f"{change.pregain_score:g}",
            "after": f"{change.postgain_score:g}",
        }
        said = (
            _("Sudden gain between sessions %(first)s and %(second)s: %(before)s to %(after)s.")
            if gain
            else _(
                "Sudden loss between sessions %(first)s and %(second)s: %(before)s to %(after)s."
            )
        )
        markers.append(
            charts.Marker(
                change.postgain_session,
                change.postgain_score,
                _("Sudden gain") if gain else _("Sudden loss"),
                said % numbers,
                change.kind,
            )
        )
    name = inst.name.split(" (")[0]
    present = [v for v in scores if v is not None]
    direction = _("lower is better") if inst.lower_is_better else _("higher is better")
    summary = ngettext(
        "%(name)s over %(n)s session (%(direction)s); latest %(latest)s.",
        "%(name)s over %(n)s sessions (%(direction)s); latest %(latest)s.",
        len(present),
    ) % {"name": name, "n": len(present), "direction": direction, "latest": f"{present[-1]:g}"}
    if band:
        off = sum(p.status == "not_on_track" for p in points)
        summary += " " + _(
            "The shaded band is the range expected for clients who started at the same level; "
            "%(outside)s fell outside it on the worse side."
        ) % {"outside": _sessions(off)}
    else:
        summary += " " + _("Too little data yet for an expected range.")
    page.outcome_chart = _measure_chart(
        "outcome-chart", inst, scores, summary, markers, band, _("Expected range")
    )


def _measure_chart(
    slug: str,
    inst: MeasureDefinition,
    scores: list[float | None],
    summary: str,
    markers: list[charts.Marker] | None = None,
    band: list[tuple[int, float, float]] | None = None,
    band_name: str = "",
) -> charts.Chart:
    """A measure's line chart, its scale (range, ticks, label) from the definition."""
    name = inst.name.split(" (")[0]
    step = 2.0 if inst.max - inst.min <= 10 else 5.0
    ticks = [inst.min + step * k for k in range(int((inst.max - inst.min) // step) + 1)]
    return charts.line_chart(
        slug=slug,
        title=f"{name}, session by session",
        summary=summary,
        lines=[charts.Line(name, scores, "outcome")],
        lo=inst.min,
        hi=inst.max,
        ticks=ticks,
        y_label=f"{name} ({inst.min:g}-{inst.max:g})",
        markers=markers or [],
        band=band or [],
        band_name=band_name,
    )


def _other_measures(page: ClientPage, data: analysis.EpisodeData) -> None:
    """A chart for each further scored instrument the client answered (not the outcome)."""
    shown = {analysis.ALLIANCE, analysis.WELLBEING, data.outcome_code()}
    codes = sorted(c for c, v in data.client.items() if c not in shown and v)
    if not codes:
        return
    defs = analysis.definitions(codes)
    for code in codes:
        inst = defs.get(code)
        scores = data.scores(code)
        present = [v for v in scores if v is not None]
        if inst is None or not present:
            continue
        direction = "lower is better" if inst.lower_is_better else "higher is better"
        name = inst.name.split(" (")[0]
        summary = f"{name} over {len(present)} sessions ({direction}); latest {present[-1]:g}."
        page.other_charts.append(_measure_chart(f"measure-{code}-chart", inst, scores, summary))


def _goals(episode: Episode) -> list[GoalView]:
    goals = list(episode.goals.filter(active=True))
    ratings: dict[int, list[int]] = {}
    for goal_id, rating in (
        GoalRating.objects.filter(goal__in=goals)
        .order_by("session__number")
        .values_list("goal_id", "rating")
    ):
        ratings.setdefault(goal_id, []).append(rating)
    out = []
    for g in goals:
        r = ratings.get(g.pk, [])
        out.append(GoalView(g, r[-1] if r else None, r[-2] if len(r) > 1 else None))
    return out


def context(page: ClientPage, **extra: Any) -> dict[str, Any]:
    return {"page": page, "client": page.client, **extra}
