"""Recording sessions: POST/redirect/GET, one per day unless confirmed, correct and delete."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from bordin.web.audit.models import AuditEvent
from bordin.web.checkins.models import CheckinLink
from bordin.web.clinic.models import Session
from tests.web.helpers import record_checkin

pytestmark = pytest.mark.django_db

TODAY = date.today().isoformat()


def test_reloading_after_record_session_records_nothing_more(
    login: Any, owner: Any, client_record: Any, episode: Any
) -> None:
    client = login(owner)
    url = f"/clients/{client_record.pk}/sessions/"
    first = client.post(url, {"date": TODAY, "attendance": "attended"})
    assert first.status_code == 302 and first["Location"] == f"/clients/{client_record.pk}/"
    page = client.get(first["Location"]).content.decode()
    assert "data-new-link" in page
    assert "data-new-link" not in client.get(first["Location"]).content.decode()  # once
    again = client.post(url, {"date": TODAY, "attendance": "attended"})  # the reload
    assert again.status_code == 302
    assert Session.objects.count() == 1
    assert CheckinLink.objects.count() == 1
    assert "already recorded; nothing was added" in client.get(again["Location"]).content.decode()
    confirmed = client.post(
        url, {"date": TODAY, "attendance": "attended", "another_on_same_day": "on"}
    )
    assert confirmed.status_code == 302
    assert list(Session.objects.order_by("number").values_list("number", flat=True)) == [1, 2]


def test_every_state_changing_staff_form_redirects(
    login: Any, owner: Any, client_record: Any, add_session: Any
) -> None:
    client = login(owner)
    add_session(days_ago=1)
    assert client.post(f"/clients/{client_record.pk}/links/").status_code == 302


def test_correct_a_session(login: Any, owner: Any, client_record: Any, add_session: Any) -> None:
    session = add_session(days_ago=1)
    client = login(owner)
    new_day = (date.today() - timedelta(days=2)).isoformat()
    response = client.post(
        f"/clients/{client_record.pk}/sessions/{session.pk}/correct/",
        {"date": new_day, "attendance": "missed"},
    )
    assert response.status_code == 302
    session.refresh_from_db()
    assert (session.date.isoformat(), session.attendance) == (new_day, "missed")
    event = AuditEvent.objects.get(action="update", object_type="session")
    assert "corrected" in event.detail and "-> " + new_day in event.detail
    bad = client.post(
        f"/clients/{client_record.pk}/sessions/{session.pk}/correct/",
        {"date": "not a date", "attendance": "missed"},
    )
    assert bad.status_code == 302
    assert "correction was not saved" in client.get(bad["Location"]).content.decode()


def test_delete_a_session_without_answers_only(
    login: Any, owner: Any, client_record: Any, add_session: Any
) -> None:
    answered = add_session(days_ago=3)
    record_checkin(answered, {"goals": 8, "tasks": 8, "bond": 8, "overall": 8})
    mistake = add_session(days_ago=1)
    client = login(owner)
    base = f"/clients/{client_record.pk}/sessions"
    assert client.post(f"{base}/{mistake.pk}/delete/").status_code == 302
    assert not Session.objects.filter(pk=mistake.pk).exists()
    event = AuditEvent.objects.get(action="update", object_type="session")
    assert "deleted" in event.detail
    refused = client.post(f"{base}/{answered.pk}/delete/")
    assert refused.status_code == 302
    assert Session.objects.filter(pk=answered.pk).exists()
    assert "cannot be deleted" in client.get(refused["Location"]).content.decode()


def test_colleague_cannot_correct_or_delete(
    login: Any, colleague: Any, client_record: Any, add_session: Any
) -> None:
    session = add_session(days_ago=1)
    client = login(colleague)
    base = f"/clients/{client_record.pk}/sessions/{session.pk}"
    assert client.post(f"{base}/delete/").status_code == 404
    assert (
        client.post(f"{base}/correct/", {"date": TODAY, "attendance": "missed"}).status_code == 404
    )
    assert Session.objects.filter(pk=session.pk, attendance="attended").exists()
