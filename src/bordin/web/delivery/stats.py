"""Completion rate: the share of attended sessions (last 90 days) with a completed check-in.

The adoption figure a clinic manages by. Follow-up sessions made by the worker are not
sessions the client attended, so they are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from bordin.web.clinic.models import Client, Clinic, Response, Session
from bordin.web.delivery.models import ContactFailure, Delivery

WINDOW_DAYS = 90


@dataclass(frozen=True)
class Rate:
    label: str
    attended: int
    completed: int

    @property
    def percent(self) -> int | None:
        return round(100 * self.completed / self.attended) if self.attended else None


def _sessions(clients: QuerySet[Client]) -> QuerySet[Session]:
    since = timezone.localdate() - timedelta(days=WINDOW_DAYS)
    followups = Delivery.objects.filter(kind=Delivery.Kind.FOLLOWUP, session__isnull=False)
    return Session.objects.filter(
        episode__client__in=clients, attendance=Session.Attendance.ATTENDED, date__gte=since
    ).exclude(pk__in=followups.values("session_id"))


def _completed(sessions: QuerySet[Session]) -> QuerySet[Session]:
    return sessions.filter(
        Exists(
            Response.objects.filter(session=OuterRef("pk"), respondent=Response.Respondent.CLIENT)
        )
    )


def completion(clients: QuerySet[Client], label: str = "") -> Rate:
    """One query: attended sessions and those with a completed check-in."""
    done = Exists(
        Response.objects.filter(session=OuterRef("pk"), respondent=Response.Respondent.CLIENT)
    )
    agg = _sessions(clients).aggregate(n=Count("pk"), done=Count("pk", filter=Q(done)))
    return Rate(label, agg["n"], agg["done"])


def therapist_rates(clinic: Clinic) -> list[Rate]:
    """One rate per therapist of the clinic (by their clients' sessions)."""
    sessions = _sessions(Client.objects.filter(clinic=clinic))
    key = "episode__client__therapist__username"

    def per_therapist(qs: QuerySet[Session]) -> dict[str, int]:
        return {r[key]: r["n"] for r in qs.values(key).annotate(n=Count("pk")).order_by(key)}

    attended, completed = per_therapist(sessions), per_therapist(_completed(sessions))
    return [Rate(name, n, completed.get(name, 0)) for name, n in attended.items()]


def contact_failures(clients: QuerySet[Client]) -> list[Any]:
    return list(
        ContactFailure.objects.filter(client__in=clients, flagged_at__isnull=False)
        .select_related("client")
        .order_by("client__display_name")
    )
