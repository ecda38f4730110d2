"""Withdrawal alerts: staying away (missed, cancelled, unplanned ending) after an alliance dip."""

from __future__ import annotations

from typing import Any

import pytest

from bordin.web.alerts.models import Alert
from bordin.web.clinic.models import Episode, Session
from tests.web.helpers import record_checkin

pytestmark = pytest.mark.django_db

HIGH = {"goals": 8, "tasks": 8, "bond": 8, "overall": 8}
LOW = {"goals": 6, "tasks": 6, "bond": 6, "overall": 6}


@pytest.fixture
def dipped(episode: Any, add_session: Any) -> Any:
    """Two attended sessions: the alliance falls 2 points (a rupture) at session 2."""
    record_checkin(add_session(days_ago=14), alliance=HIGH)
    record_checkin(add_session(days_ago=7), alliance=LOW)
    return episode


def test_form_offers_every_attendance_value(login: Any, owner: Any, client_record: Any) -> None:
    page = login(owner).get(f"/clients/{client_record.pk}/").content.decode()
    for value in ("attended", "missed", "cancelled", "late_cancelled"):
        assert f'value="{value}"' in page


@pytest.mark.parametrize("attendance", ["missed", "cancelled", "late_cancelled"])
def test_staying_away_after_a_rupture_raises_withdrawal(
    login: Any, owner: Any, client_record: Any, dipped: Any, attendance: str
) -> None:
    browser = login(owner)
    response = browser.post(
        f"/clients/{client_record.pk}/sessions/", {"date": "2026-01-10", "attendance": attendance}
    )
    assert response.status_code == 302
    alert = Alert.objects.get(client=client_record, kind="withdrawal")
    assert alert.session.number == 3
    assert "session 2" in alert.detail and "reach out" in alert.detail
    page = browser.get(f"/clients/{client_record.pk}/").content.decode()
    assert 'data-alert-kind="withdrawal"' in page
    assert 'data-suggestions-kind="withdrawal"' in page
    caseload = browser.get("/").content.decode()
    assert 'data-alert-kind="withdrawal"' in caseload


def test_no_withdrawal_without_a_dip(
    login: Any, owner: Any, client_record: Any, episode: Any, add_session: Any
) -> None:
    record_checkin(add_session(days_ago=14), alliance=HIGH)
    record_checkin(add_session(days_ago=7), alliance=HIGH)
    login(owner).post(
        f"/clients/{client_record.pk}/sessions/", {"date": "2026-01-10", "attendance": "missed"}
    )
    assert not Alert.objects.filter(kind="withdrawal").exists()


def test_an_outsider_cannot_record_a_session(
    login: Any, outsider: Any, client_record: Any, dipped: Any
) -> None:
    response = login(outsider).post(
        f"/clients/{client_record.pk}/sessions/", {"date": "2026-01-10", "attendance": "missed"}
    )
    assert response.status_code == 404
    assert not Alert.objects.filter(kind="withdrawal").exists()


def test_unplanned_ending_after_a_dip_raises_withdrawal(dipped: Any) -> None:
    dipped.status = Episode.Status.CLOSED
    dipped.ending_reason = Episode.EndingReason.DROPPED_OUT
    dipped.save()
    alert = Alert.objects.get(kind="withdrawal")
    assert "ended unplanned (dropped_out)" in alert.detail
    # Saving again does not raise it twice.
    dipped.save()
    assert Alert.objects.filter(kind="withdrawal").count() == 1


def test_planned_ending_raises_nothing(dipped: Any) -> None:
    dipped.status = Episode.Status.CLOSED
    dipped.ending_reason = Episode.EndingReason.PLANNED
    dipped.save()
    assert not Alert.objects.filter(kind="withdrawal").exists()
    assert Session.objects.count() == 2
