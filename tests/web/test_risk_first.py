"""Risk first: open risk alerts lead the alert list and the client page; the client is told
"your clinic has been told" only when someone was e-mailed (issue 15)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from bordin.web.alerts.models import Alert
from bordin.web.audit.models import AuditEvent
from bordin.web.checkins.models import CheckinLink
from tests.web.helpers import checkin_post

pytestmark = pytest.mark.django_db

TOLD = "Your clinic has been told"


def make_alert(client_record: Any, session: Any, kind: str, days_ago: int, key: str) -> Alert:
    alert = Alert.objects.create(
        clinic=client_record.clinic,
        client=client_record,
        session=session,
        kind=kind,
        detail=f"{kind} alert",
        dedupe_key=key,
    )
    Alert.objects.filter(pk=alert.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
    return alert


@pytest.fixture
def alerts(client_record: Any, add_session: Any) -> dict[str, Alert]:
    session = add_session(days_ago=5)
    return {
        "risk": make_alert(client_record, session, "risk", 5, "r"),
        "rupture": make_alert(client_record, session, "rupture", 1, "u"),
        "overdue": make_alert(client_record, session, "overdue", 0, "o"),
    }


def test_open_risk_alerts_come_first_in_the_alert_list(
    login: Any, owner: Any, alerts: dict[str, Alert]
) -> None:
    page = login(owner).get("/alerts/").content.decode()
    positions = {k: page.index(f'data-alert-id="{a.pk}"') for k, a in alerts.items()}
    assert positions["risk"] < positions["overdue"] < positions["rupture"]


def test_open_risk_alert_is_at_the_top_of_the_client_page(
    login: Any, owner: Any, client_record: Any, alerts: dict[str, Alert]
) -> None:
    page = login(owner).get(f"/clients/{client_record.pk}/").content.decode()
    risk = page.index("data-open-risk")
    assert risk < page.index("data-suggestions")  # the open rupture's ideas come after
    assert risk < page.index('id="alerts-title"')
    assert page.count(f'data-alert-id="{alerts["risk"].pk}"') == 1


@pytest.fixture
def token(add_session: Any, owner: Any, goals: list[Any]) -> str:
    return CheckinLink.issue(add_session(days_ago=0), created_by=owner)[1]


def risky_checkin(client: Any, token: str, goals: list[Any]) -> str:
    client.get(f"/c/{token}")
    response = client.post("/c/", checkin_post(goals, wellbeing__safety="1"))
    assert response.status_code == 200
    return str(response.content.decode())


def test_risk_is_emailed_to_therapist_and_duty_contact(
    client: Any, token: str, goals: list[Any], owner: Any, clinic: Any, client_record: Any
) -> None:
    owner.email = "owner@clinic.example"
    owner.save()
    clinic.duty_email = "duty@clinic.example"
    clinic.save()
    page = risky_checkin(client, token, goals)
    assert TOLD in page
    (message,) = mail.outbox
    assert sorted(message.to) == ["duty@clinic.example", "owner@clinic.example"]
    assert client_record.display_name not in message.body + message.subject
    assert f"/clients/{client_record.pk}/" in message.body
    assert AuditEvent.objects.filter(object_type="alert_notification").count() == 1


def test_nobody_to_tell_means_the_client_is_not_told_so(
    client: Any, token: str, goals: list[Any]
) -> None:
    page = risky_checkin(client, token, goals)
    assert TOLD not in page
    assert "perhaps not straight away" in page
    assert mail.outbox == []


def test_a_failed_delivery_means_the_client_is_not_told_so(
    client: Any, token: str, goals: list[Any], owner: Any, settings: Any
) -> None:
    owner.email = "owner@clinic.example"
    owner.save()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 8159, 2
    page = risky_checkin(client, token, goals)
    assert TOLD not in page
    assert not AuditEvent.objects.filter(object_type="alert_notification").exists()
