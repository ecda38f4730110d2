"""Alert lifecycle: new -> acknowledged -> resolved (note required), POST only."""

from __future__ import annotations

from typing import Any

import pytest

from bordin.web.alerts.models import Alert

pytestmark = pytest.mark.django_db


@pytest.fixture
def alert(client_record: Any, add_session: Any) -> Alert:
    session = add_session(days_ago=1)
    return Alert.objects.create(
        clinic=client_record.clinic,
        client=client_record,
        session=session,
        kind="risk",
        detail="Safety question answered 'often'.",
        dedupe_key="risk:test",
    )


def test_full_lifecycle(client: Any, owner: Any, alert: Alert) -> None:
    client.force_login(owner)
    page = client.get("/alerts/").content.decode()
    assert f'data-alert-id="{alert.pk}"' in page
    assert 'data-action="acknowledge"' in page
    assert 'data-alert-kind="risk"' in page

    response = client.post(f"/alerts/{alert.pk}/acknowledge/")
    assert response.status_code == 302
    assert response["Location"] == f"/clients/{alert.client_id}/"
    alert.refresh_from_db()
    assert alert.status == "acknowledged"
    assert alert.acknowledged_by == owner
    assert alert.acknowledged_at is not None

    response = client.post(f"/alerts/{alert.pk}/resolve/", {"note": "Called; safety plan agreed."})
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.status == "resolved"
    assert alert.note == "Called; safety plan agreed."
    assert alert.resolved_by == owner

    assert f'data-alert-id="{alert.pk}"' not in client.get("/alerts/").content.decode()
    everything = client.get("/alerts/?show=all").content.decode()
    assert f'data-alert-id="{alert.pk}"' in everything
    assert "Called; safety plan agreed." in everything


def test_resolve_needs_a_note(client: Any, owner: Any, alert: Alert) -> None:
    client.force_login(owner)
    client.post(f"/alerts/{alert.pk}/acknowledge/")
    for note in ("", "   "):
        response = client.post(f"/alerts/{alert.pk}/resolve/", {"note": note})
        assert response.status_code == 400
        assert b"Add a note" in response.content
    assert Alert.objects.get(pk=alert.pk).status == "acknowledged"
    response = client.post(f"/alerts/{alert.pk}/resolve/", {"note": "x" * 2001})
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("status", "action", "message"),
    [
        ("acknowledged", "acknowledge", b"only a new alert can be acknowledged"),
        ("resolved", "acknowledge", b"only a new alert can be acknowledged"),
        ("new", "resolve", b"Acknowledge the alert before resolving it."),
        ("resolved", "resolve", b"already resolved"),
    ],
)
def test_invalid_transitions_are_refused(
    client: Any, owner: Any, alert: Alert, status: str, action: str, message: bytes
) -> None:
    Alert.objects.filter(pk=alert.pk).update(status=status)
    client.force_login(owner)
    response = client.post(f"/alerts/{alert.pk}/{action}/", {"note": "done"})
    assert response.status_code == 400
    assert message in response.content
    assert Alert.objects.get(pk=alert.pk).status == status


def test_transitions_are_post_only(client: Any, owner: Any, alert: Alert) -> None:
    client.force_login(owner)
    assert client.get(f"/alerts/{alert.pk}/acknowledge/").status_code == 405
    assert client.get(f"/alerts/{alert.pk}/resolve/").status_code == 405
    assert Alert.objects.get(pk=alert.pk).status == "new"


def test_next_redirect_stays_on_site(client: Any, owner: Any, alert: Alert) -> None:
    client.force_login(owner)
    response = client.post(
        f"/alerts/{alert.pk}/acknowledge/", {"next": "https://evil.example/phish"}
    )
    assert response["Location"] == f"/clients/{alert.client_id}/"
    Alert.objects.filter(pk=alert.pk).update(status="new")
    response = client.post(f"/alerts/{alert.pk}/acknowledge/", {"next": "/alerts/"})
    assert response["Location"] == "/alerts/"


def test_client_page_shows_alert_history_and_actions(
    client: Any, owner: Any, alert: Alert, client_record: Any
) -> None:
    client.force_login(owner)
    html = client.get(f"/clients/{client_record.pk}/").content.decode()
    assert 'data-action="acknowledge"' in html
    assert "csrfmiddlewaretoken" in html
    client.post(f"/alerts/{alert.pk}/acknowledge/")
    html = client.get(f"/clients/{client_record.pk}/").content.decode()
    assert 'data-action="resolve"' in html
    assert 'name="note"' in html


def test_acknowledged_alert_keeps_badge_until_resolved(
    client: Any, owner: Any, alert: Alert
) -> None:
    client.force_login(owner)
    client.post(f"/alerts/{alert.pk}/acknowledge/")
    assert 'data-alert-kind="risk"' in client.get("/").content.decode()
    client.post(f"/alerts/{alert.pk}/resolve/", {"note": "Seen today."})
    assert 'data-alert-kind="risk"' not in client.get("/").content.decode()
