"""The caseload: every active client in scope, most urgent first, in a fixed number of queries.

Three queries whatever the caseload size: the clients (with the last attended session, the
state of its newest check-in link and the last check-in time as subqueries), their scores, and
their open alerts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db.models import Exists, OuterRef, Subquery
from django.template.defaultfilters import floatformat
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince
from django.utils.timezone import localtime
from django.utils.translation import gettext, gettext_lazy

from bordin.web.alerts.models import Alert
from bordin.web.checkins.models import CheckinLink
from bordin.web.clinic import analysis
from bordin.web.clinic.models import Client, Response, Session
from bordin.web.clinic.scoping import clients_for
from bordin.web.journey.models import Intake, JourneyLink, RematchRequest
from bordin.web.journey.services import hesitant_start_exists

#: Badge hooks in urgency order (``data-alert-kind`` values).
BADGES = (
    "risk",
    "withdrawal",
    "rupture",
    "not-on-track",
    "divergence",
    "overdue",
    "hesitant-start",
)
BADGE_LABELS = {
    "risk": gettext_lazy("Risk"),
    "withdrawal": gettext_lazy("Withdrawal"),
    "rupture": gettext_lazy("Rupture"),
    "not-on-track": gettext_lazy("Not on track"),
    "divergence": gettext_lazy("Divergence"),
    "overdue": gettext_lazy("Check-in overdue"),
    "hesitant-start": gettext_lazy("Hesitant start"),
}


@dataclass(frozen=True)
class Trend:
    value: float
    previous: float | None
    code: str

    @property
    def direction(self) -> str:
        if self.previous is None or round(self.value - self.previous, 9) == 0:
            return "flat"
        return "up" if self.value > self.previous else "down"

    @property
    def better(self) -> bool | None:
        """Whether the change is an improvement for this measure (``None`` when flat)."""
        if self.direction == "flat" or self.previous is None:
            return None
        return analysis.registry()[self.code].improvement(self.previous, self.value) > 0

    @property
    def label(self) -> str:
        return analysis.registry()[self.code].name.split(" (")[0]

    def html(self, show_label: bool = False) -> str:
        """The score and an arrow for the change, with words for screen readers (escaped HTML).

        Built here rather than by including a template once per cell: the caseload has two
        per client and the includes were most of the page's rendering time.
        """
        value = _one_decimal(self.value)
        label = f' <span class="muted small">{escape(self.label)}</span>' if show_label else ""
        direction = self.direction
        if direction == "flat":
            title, said = gettext("No change"), gettext("no change")
            arrow = (
                f'<span class="trend flat" title="{escape(title)}">▬'
                f'<span class="visually-hidden"> {escape(said)}</span></span>'
            )
        else:
            up = direction == "up"
            previous = {"value": _one_decimal(self.previous)}
            title = (
                gettext("Up from %(value)s") if up else gettext("Down from %(value)s")
            ) % previous
            if self.better:
                said = (
                    gettext("up from %(value)s (better)")
                    if up
                    else gettext("down from %(value)s (better)")
                )
            else:
                said = (
                    gettext("up from %(value)s (worse)")
                    if up
                    else gettext("down from %(value)s (worse)")
                )
            arrow = (
                f'<span class="trend {"better" if self.better else "worse"}" '
                f'title="{escape(title)}">{"▲" if up else "▼"}'
                f'<span class="visually-hidden"> {escape(said % previous)}</span></span>'
            )
        return f'<span class="score">{value}</span>{label}\n{arrow}'


@lru_cache(maxsize=4096)
def _one_decimal(value: float | None) -> str:
    """``floatformat:"-1"`` (scores repeat a lot: means of a few whole-number answers)."""
    return str(floatformat(value, "-1"))


def trend_html(trend: Trend | None, show_label: bool = False) -> str:
    if trend is None:
        return f'<span class="muted">{escape(gettext("No data"))}</span>'
    return trend.html(show_label)


@dataclass
class Row:
    client: Client
    alliance: Trend | None = None
    outcome: Trend | None = None
    badges: list[str] = field(default_factory=list)
    last_checkin: datetime | None = None
    #: The client's journey, where it waits on someone: ``(data hook, text)`` pairs.
    statuses: list[tuple[str, str]] = field(default_factory=list)

    @property
    def sort_key(self) -> tuple[Any, ...]:
        return (
            *(0 if b in self.badges else 1 for b in BADGES),
            self.client.display_name.casefold(),
            self.client.pk,
        )

    @property
    def badge_items(self) -> list[tuple[str, str]]:
        return [(b, str(BADGE_LABELS[b])) for b in self.badges]

    def html(self, show_therapist: bool) -> str:
        """The table row (escaped HTML): client, (therapist,) badges, alliance, outcome, last
        check-in.

        Built here with plain strings rather than in the template or with ``format_html``: at
        150 rows either of those was most of the page's time (see ``bench/bench_web.py``).
        """
        c = self.client
        therapist = ""
        if show_therapist:
            t = c.therapist
            therapist = f"<td>{escape(t.get_full_name() or t.get_username())}</td>"
        badges = " ".join(
            [
                f'<span class="badge badge-{kind}" data-alert-kind="{kind}">{label}</span>'
                for kind, label in self.badge_items
            ]
            + [
                f'<span class="journey-status" data-journey-status="{hook}">{text}</span>'
                for hook, text in self.statuses
            ]
        )
        if self.last_checkin is not None:
            when = localtime(self.last_checkin)
            ago = gettext("%(time)s ago") % {"time": timesince(when)}
            last = f'<time datetime="{when.isoformat()}">{escape(ago)}</time>'
        else:
            last = f'<span class="muted">{escape(gettext("Never"))}</span>'
        return (
            f'<tr data-client-id="{c.pk}"><th scope="row">'
            f'<a href="{reverse("client", args=[c.pk])}">{escape(c.display_name)}</a></th>'
            f"{therapist}"
            f"<td>{badges or NO_BADGES}</td>"
            f"<td>{trend_html(self.alliance)}</td>"
            f"<td>{trend_html(self.outcome, show_label=True)}</td><td>{last}</td></tr>"
        )


NO_BADGES = '<span class="muted">None</span>'


def rows_html(rows: list[Row], show_therapist: bool) -> SafeString:
    """Every row of the caseload table. Everything but our own markup and labels is escaped."""
    return mark_safe("\n".join(r.html(show_therapist) for r in rows))  # noqa: S308  # nosec B308 B703


def _trend(values: list[float], code: str) -> Trend | None:
    if not values:
        return None
    return Trend(values[-1], values[-2] if len(values) > 1 else None, code)


def caseload(user: Any, now: datetime | None = None) -> list[Row]:
    now = now or timezone.now()
    last_attended = (
        Session.objects.filter(
            episode__client=OuterRef("pk"), attendance=Session.Attendance.ATTENDED
        )
        .order_by("-date", "-number", "-pk")
        .values("pk")[:1]
    )
    newest_link = CheckinLink.objects.filter(session_id=OuterRef("last_attended_id")).order_by(
        "-created_at", "-pk"
    )
    clients = list(
        clients_for(user)
        .filter(active=True)
        .select_related("therapist")
        .annotate(last_attended_id=Subquery(last_attended))
        .annotate(
            link_expires=Subquery(newest_link.values("expires_at")[:1]),
            link_used=Subquery(newest_link.values("used_at")[:1]),
            attended_checked_in=Exists(
                Response.objects.filter(
                    session_id=OuterRef("last_attended_id"),
                    respondent=Response.Respondent.CLIENT,
                )
            ),
            last_checkin_at=Subquery(
                Response.objects.filter(
                    session__episode__client=OuterRef("pk"),
                    respondent=Response.Respondent.CLIENT,
                )
                .order_by("-submitted_at")
                .values("submitted_at")[:1]
            ),
            # The client's journey: earlier therapy did not help (see docs/journey.md).
            hesitant_start=hesitant_start_exists(),
            # Waiting on the client's intake, or the client asked for someone else (issue 15).
            intake_unanswered=Exists(
                JourneyLink.objects.filter(
                    client=OuterRef("pk"),
                    purpose=JourneyLink.Purpose.INTAKE,
                    revoked_at__isnull=True,
                )
            )
            & ~Exists(Intake.objects.filter(client=OuterRef("pk"))),
            asked_for_someone_else=Exists(
                RematchRequest.objects.filter(
                    client=OuterRef("pk"), status=RematchRequest.Status.OPEN
                )
            ),
            first_session_date=Subquery(
                Session.objects.filter(episode__client=OuterRef("pk"))
                .order_by("date", "pk")
                .values("date")[:1]
            ),
        )
    )
    if not clients:
        return []
    ids = [c.pk for c in clients]
    scores: dict[int, dict[str, list[float]]] = {}
    for client_id, code, total in (
        Response.objects.filter(
            session__episode__client_id__in=ids,
            respondent=Response.Respondent.CLIENT,
            instrument__code__in=[analysis.ALLIANCE, analysis.WELLBEING, analysis.PHQ9],
        )
        .order_by("session__date", "session__number", "submitted_at")
        .values_list("session__episode__client_id", "instrument__code", "total")
    ):
        if total is not None:  # an unscored questionnaire has no total
            scores.setdefault(client_id, {}).setdefault(code, []).append(total)
    open_kinds: dict[int, set[str]] = {}
    for client_id, kind in Alert.objects.filter(
        client_id__in=ids, status__in=Alert.OPEN_STATUSES
    ).values_list("client_id", "kind"):
        open_kinds.setdefault(client_id, set()).add(kind.replace("_", "-"))

    overdue_after = timedelta(days=settings.BORDIN_CHECKIN_OVERDUE_DAYS)
    rows = []
    for c in clients:
        by_code = scores.get(c.pk, {})
        outcome_code = analysis.PHQ9 if by_code.get(analysis.PHQ9) else analysis.WELLBEING
        kinds = open_kinds.get(c.pk, set())
        if is_overdue(c, now, overdue_after):
            kinds.add("overdue")
        if c.hesitant_start:
            kinds.add("hesitant-start")
        rows.append(
            Row(
                client=c,
                alliance=_trend(by_code.get(analysis.ALLIANCE, []), analysis.ALLIANCE),
                outcome=_trend(by_code.get(outcome_code, []), outcome_code),
                badges=[b for b in BADGES if b in kinds],
                last_checkin=c.last_checkin_at,
                statuses=_statuses(c),
            )
        )
    rows.sort(key=lambda r: r.sort_key)
    return rows


def _statuses(client: Any) -> list[tuple[str, str]]:
    found = []
    if client.intake_unanswered:
        found.append(("intake-unanswered", gettext("Intake not answered")))
    if client.asked_for_someone_else:
        found.append(("asked-for-someone-else", gettext("Asked for someone else")))
    return found


def is_overdue(client: Any, now: datetime, overdue_after: timedelta) -> bool:
    """The last attended session's newest link expired unused, or no check-in for too long."""
    if (
        client.last_attended_id is not None
        and not client.attended_checked_in
        and client.link_expires is not None
        and client.link_used is None
        and client.link_expires <= now
    ):
        return True
    if client.last_checkin_at is not None:
        return bool(now - client.last_checkin_at > overdue_after)
    if client.first_session_date is not None:
        return bool(now.date() - client.first_session_date > overdue_after)
    return False
