"""Clients and episodes (issue 9): add, contact and consent, reassign, close, return, archive."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from bordin.web.audit.models import AuditEvent
from bordin.web.clinic.models import Client, Episode
from bordin.web.operations.models import ClientEmailDigest, email_digest

pytestmark = pytest.mark.django_db

NEW = {
    "display_name": "Robin Q.",
    "contact_email": "Robin@Example.org ",
    "contact_mobile": "+44 7700 900123",
    "preferred_language": "de",
    "consent_email": "on",
}


def test_admin_adds_a_client_for_any_therapist(login: Any, admin: Any, colleague: Any) -> None:
    c = login(admin)
    assert 'data-action="add-client"' in c.get("/clients/new/").content.decode()
    response = c.post("/clients/new/", {**NEW, "therapist": str(colleague.pk)})
    assert response.status_code == 302
    client = Client.objects.get(display_name="Robin Q.")
    assert client.therapist == colleague and client.preferred_language == "de"
    assert client.contact_email == "robin@example.org"
    assert client.consent_email and client.consent_email_at is not None
    assert not client.consent_sms and client.consent_sms_at is not None  # "no" is recorded too
    assert client.episodes.get().status == "open"
    digest = ClientEmailDigest.objects.get(client=client).digest
    assert digest == email_digest(" ROBIN@example.org") and "robin" not in digest
    assert AuditEvent.objects.filter(object_type="client", action="create").exists()


def test_contact_email_is_encrypted_at_rest(login: Any, admin: Any, owner: Any) -> None:
    from django.db import connection

    login(admin).post("/clients/new/", {**NEW, "therapist": str(owner.pk)})
    with connection.cursor() as cursor:
        cursor.execute("SELECT contact_email, contact_mobile FROM clinic_client")
        raw = cursor.fetchall()
    assert raw and all("robin" not in str(v) and "7700" not in str(v) for v in raw)


def test_a_therapist_adds_a_client_only_for_themself(
    login: Any, owner: Any, colleague: Any
) -> None:
    c = login(owner)
    refused = c.post("/clients/new/", {**NEW, "therapist": str(colleague.pk)})
    assert refused.status_code == 400 and not Client.objects.exists()
    assert c.post("/clients/new/", {**NEW, "therapist": str(owner.pk)}).status_code == 302
    assert Client.objects.get().therapist == owner


def test_a_researcher_cannot_add_clients(login: Any, researcher: Any) -> None:
    assert login(researcher).get("/clients/new/").status_code == 403


def test_duplicate_email_is_refused_with_a_clear_message(
    login: Any, admin: Any, owner: Any
) -> None:
    c = login(admin)
    c.post("/clients/new/", {**NEW, "therapist": str(owner.pk)})
    again = c.post(
        "/clients/new/",
        {
            **NEW,
            "display_name": "Other",
            "contact_email": "robin@EXAMPLE.org",
            "therapist": owner.pk,
        },
    )
    assert again.status_code == 400 and "already has this email" in again.content.decode()
    assert Client.objects.count() == 1


def test_bad_input_gets_a_clear_message(login: Any, admin: Any, owner: Any) -> None:
    bad = login(admin).post(
        "/clients/new/",
        {
            "display_name": "",
            "therapist": str(owner.pk),
            "contact_email": "nope",
            "contact_mobile": "call me",
            "preferred_language": "English please",
        },
    )
    html = bad.content.decode()
    assert bad.status_code == 400
    for message in ("Enter an email address", "Enter a phone number", "language code"):
        assert message in html
    assert not Client.objects.exists()


def test_edit_contact_and_consent(login: Any, owner: Any, client_record: Any) -> None:
    c = login(owner)
    response = c.post(
        f"/clients/{client_record.pk}/contact/",
        {
            "display_name": "Client A",
            "preferred_language": "en",
            "contact_email": "a@example.org",
            "consent_sms": "on",
        },
    )
    assert response.status_code == 302
    client_record.refresh_from_db()
    assert client_record.contact_email == "a@example.org" and client_record.consent_sms
    assert client_record.consent_sms_at is not None
    assert ClientEmailDigest.duplicates(client_record.clinic_id, "A@example.org") == [
        client_record.pk
    ]


def test_reassign_moves_access_at_once(
    login: Any, admin: Any, owner: Any, colleague: Any, client_record: Any
) -> None:
    from django.test import Client as DjangoClient

    from tests.web.helpers import login_verified

    old = login_verified(DjangoClient(), owner)
    assert old.get(f"/clients/{client_record.pk}/").status_code == 200
    c = login(admin)
    assert (
        c.post(
            f"/clients/{client_record.pk}/reassign/", {"therapist": str(colleague.pk)}
        ).status_code
        == 302
    )
    assert old.get(f"/clients/{client_record.pk}/").status_code == 404
    new = login_verified(DjangoClient(), colleague)
    assert "Client A" in new.get("/").content.decode()
    event = AuditEvent.objects.filter(detail="therapist owner -> colleague").get()
    assert event.client_id == client_record.pk


def test_only_an_admin_reassigns(
    login: Any, owner: Any, colleague: Any, client_record: Any
) -> None:
    c = login(owner)
    url = f"/clients/{client_record.pk}/reassign/"
    assert c.post(url, {"therapist": str(colleague.pk)}).status_code == 404
    client_record.refresh_from_db()
    assert client_record.therapist == owner


def test_close_an_episode_as_dropped_out_and_welcome_back(
    login: Any, owner: Any, client_record: Any, episode: Any
) -> None:
    c = login(owner)
    future = c.post(
        f"/clients/{client_record.pk}/episode/close/",
        {"ending_reason": "dropped_out", "end": (date.today() + timedelta(days=3)).isoformat()},
    )
    assert future.status_code == 400 and "cannot be in the future" in future.content.decode()
    missing = c.post(f"/clients/{client_record.pk}/episode/close/", {"end": str(date.today())})
    assert "Choose why the episode ended" in missing.content.decode()
    c.post(
        f"/clients/{client_record.pk}/episode/close/",
        {"ending_reason": "dropped_out", "end": str(date.today())},
    )
    episode.refresh_from_db()
    assert episode.status == "closed" and episode.ending_reason == "dropped_out"
    assert c.post(f"/clients/{client_record.pk}/episode/new/").status_code == 302
    assert Episode.objects.filter(client=client_record).count() == 2
    page = c.get(f"/clients/{client_record.pk}/manage/").content.decode()
    assert "data-welcome-back" in page and 'data-ending-reason="dropped_out"' in page


def test_archive_takes_the_client_off_the_caseload(
    login: Any, admin: Any, client_record: Any, episode: Any
) -> None:
    c = login(admin)
    assert "Client A" in c.get("/").content.decode()
    c.post(f"/clients/{client_record.pk}/archive/")
    client_record.refresh_from_db()
    assert client_record.archived_at is not None
    assert "Client A" not in c.get("/").content.decode()
    assert c.get(f"/clients/{client_record.pk}/").status_code == 200  # records kept
