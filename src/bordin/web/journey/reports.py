"""The client's graduation summary and the therapist's progress report (web page and PDF).

PDFs are rendered with WeasyPrint from our own templates and stylesheet only: the URL fetcher
refuses every request, so nothing outside the process is ever read while rendering.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.http import HttpResponse
from django.template.loader import render_to_string
from django.utils.translation import gettext as _

from bordin.web.clinic import analysis, charts, client_page
from bordin.web.clinic.models import Client, Episode, GoalRating, Session
from bordin.web.journey import ending, services
from bordin.web.journey.models import GoalRevision, Intake

STYLESHEET = Path(__file__).resolve().parent.parent / "static" / "bordin" / "bordin.css"
GOAL_CSS = ("goal-1", "goal-2", "goal-3", "goal-4", "goal-5")


@dataclass
class Journey:
    client: Client
    episode: Episode | None
    change: ending.Change | None = None
    outcome_chart: charts.Chart | None = None
    goal_chart: charts.Chart | None = None
    goals: list[services.GoalHistory] = field(default_factory=list)
    evidence: ending.Evidence | None = None
    sessions_attended: int = 0
    first_date: Any = None
    last_date: Any = None
    intake: Intake | None = None
    page: client_page.ClientPage | None = None


def build(client: Client, *, for_staff: bool = False) -> Journey:
    episode = services.current_episode(client)
    journey = Journey(client=client, episode=episode)
    if episode is None:
        return journey
    data = analysis.episode_data(episode)
    journey.change = ending.outcome_change(data)
    journey.goals = services.goal_histories(episode)
    journey.evidence = ending.evidence(episode, data)
    attended = episode.sessions.filter(attendance=Session.Attendance.ATTENDED).order_by("number")
    journey.sessions_attended = attended.count()
    dates = list(attended.values_list("date", flat=True))
    journey.first_date = dates[0] if dates else None
    journey.last_date = dates[-1] if dates else None
    journey.outcome_chart = _outcome_chart(data)
    journey.goal_chart = _goal_chart(episode, journey.goals, data.n_sessions)
    if for_staff:
        journey.intake = Intake.objects.filter(episode=episode).first()
        journey.page = client_page.build(client)
    return journey


def _outcome_chart(data: analysis.EpisodeData) -> charts.Chart | None:
    code = data.outcome_code()
    if code is None:
        return None
    inst = analysis.registry()[code]
    scores = data.scores(code)
    present = [v for v in scores if v is not None]
    if not present:
        return None
    name = ending.client_name(code, ending.display_name(inst.name))
    name = name[:1].upper() + name[1:]
    direction = _("lower is better") if inst.lower_is_better else _("higher is better")
    step = 2.0 if inst.max <= 10 else 5.0
    ticks = [inst.min + step * k for k in range(int((inst.max - inst.min) // step) + 1)]
    return charts.line_chart(
        slug="journey-outcome",
        title=_("%(name)s, session by session") % {"name": name},
        summary=(
            _(
                "%(name)s over %(n)s sessions (%(direction)s): from %(first)s at the start to "
                "%(last)s at the last check-in."
            )
            % {
                "name": name,
                "n": len(present),
                "direction": direction,
                "first": f"{present[0]:g}",
                "last": f"{present[-1]:g}",
            }
        ),
        lines=[charts.Line(name, scores, "outcome")],
        lo=inst.min,
        hi=inst.max,
        ticks=ticks,
        y_label=_("Score (%(low)s-%(high)s)") % {"low": f"{inst.min:g}", "high": f"{inst.max:g}"},
    )


def _goal_chart(
    episode: Episode, goals: list[services.GoalHistory], n_sessions: int
) -> charts.Chart | None:
    if not goals:
        return None
    revisions = dict(
        GoalRevision.objects.filter(new_goal__episode=episode).values_list(
            "new_goal_id", "old_goal_id"
        )
    )
    lines = []
    for k, history in enumerate(goals[: len(GOAL_CSS)]):
        ids = [history.goal.pk]
        pk = revisions.get(history.goal.pk)
        while pk is not None and len(ids) < 50:
            ids.append(pk)
            pk = revisions.get(pk)
        by_session = dict(
            GoalRating.objects.filter(goal_id__in=ids).values_list("session__number", "rating")
        )
        values = analysis.series({s: float(v) for s, v in by_session.items()}, n_sessions)
        lines.append(charts.Line(_("Goal %(n)s") % {"n": k + 1}, values, f"goal {GOAL_CSS[k]}"))
    if not any(v is not None for line in lines for v in line.values):
        return None
    return charts.line_chart(
        slug="journey-goals",
        title=_("Goals, session by session"),
        summary=_("How close each goal felt at each check-in, from 0 (not at all) to 10 (fully)."),
        lines=lines,
        lo=0,
        hi=10,
        ticks=[0, 2, 4, 6, 8, 10],
        y_label=_("Goal (0-10)"),
    )


def _refuse(url: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    raise ValueError(f"PDF rendering fetches nothing ({url[:40]})")


@functools.cache
def _chart_css() -> str:
    """The chart rules of ``bordin.css`` with CSS variables resolved, for inline SVG in PDFs.

    WeasyPrint styles inline SVG only from a ``<style>`` inside the SVG and does not resolve
    ``var()`` there. PDFs are never served as HTML, so this is no content-security concern.
    """
    text = STYLESHEET.read_text(encoding="utf-8")
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    variables = dict(re.findall(r"(--[a-z-]+)\s*:\s*([^;]+);", text))
    rules = [
        f"{sel.strip()} {{{body}}}"
        for sel, body in re.findall(r"([^{}]+)\{([^{}]*)\}", text)
        if ".chart" in sel and not sel.strip().startswith("@")
    ]
    css = "\n".join(rules)
    return re.sub(r"var\((--[a-z-]+)\)", lambda m: variables.get(m.group(1), "inherit"), css)


def _style_svgs(html: str) -> str:
    style = f"<style>{_chart_css()}</style>"
    return re.sub(r"(<svg class=\"chart\"[^>]*>)", lambda m: m.group(1) + style, html)


def render_pdf(template: str, context: dict[str, Any]) -> bytes:
    from weasyprint import CSS, HTML  # type: ignore[import-untyped]

    html = _style_svgs(render_to_string(template, context))
    document = HTML(string=html, base_url=str(STYLESHEET.parent), url_fetcher=_refuse)
    pdf: bytes = document.write_pdf(stylesheets=[CSS(filename=str(STYLESHEET))])
    return pdf


def pdf_response(pdf: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
