"""Staff pages in Spanish for a staff member who chose it (issue 14): no English sentence left
on the pages a clinic admin uses (names, codes and file formats aside)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.utils import timezone

from bordin.web.clinic.models import StaffProfile
from bordin.web.journey.models import Intake
from tests.web.helpers import record_checkin
from tests.web.journey_helpers import make_rematch
from tests.web.test_i18n import _visible_text
from tests.web.test_journey_matching import finished_episode

pytestmark = pytest.mark.django_db

#: Words of Bordin's English staff pages that never occur in their Spanish versions.
STAFF_ENGLISH = (
    "the",
    "and",
    "with",
    "Save",
    "Back to",
    "Client page",
    "Staff",
    "Invite",
    "Outstanding",
    "Import",
    "Therapist",
    "session",
    "sessions",
    "clients",
    "Your",
    "Open",
    "Close",
    "Manage",
)


def test_a_staff_member_who_chose_spanish_sees_spanish_staff_pages(
    login: Any, admin: Any, owner: Any, client_record: Any, add_session: Any
) -> None:
    StaffProfile.objects.filter(user=admin).update(language="es")
    record_checkin(add_session(days_ago=3), {"goals": 8, "tasks": 8, "bond": 9, "overall": 8})
    # A re-match request with an intake, and one finished episode: the page says (in Spanish)
    # why the clinic's track record is too short for a ranked list.
    episode = client_record.episodes.first()
    Intake.objects.create(
        client=client_record,
        episode=episode,
        problem_areas=["low_mood"],
        past_therapy="none",
        submitted_at=timezone.now(),
    )
    rematch = make_rematch(client_record)
    finished_episode(client_record.clinic, owner, True)
    http = login(admin)
    pages = [
        "/",
        "/staff/",
        "/staff/invite/",
        f"/staff/{owner.pk}/",  # by user id, as the staff list links it
        "/clients/new/",
        "/clients/import/",
        f"/clients/{client_record.pk}/manage/",
        f"/clients/{client_record.pk}/erase/",
        "/clinic/settings/",
        "/audit/",
        "/exports/",
        "/outcomes/",
        "/account/tokens/",
        "/instruments/",
        "/outstanding/",
        "/outstanding/plan/",
        "/alerts/",
        f"/clients/{client_record.pk}/",
        "/rematch/",
        f"/rematch/{rematch.pk}/",
    ]
    found = {}
    for path in pages:
        response = http.get(path)
        assert response.status_code == 200, path
        html = re.sub(r"<code>.*?</code>", " ", response.content.decode(), flags=re.S)
        # Still English by design or for now (docs/translating.md): the outcomes report's
        # body and the audit log's stored detail texts.
        html = html.split("data-outcomes-report", 1)[0]
        html = re.sub(r"staff member&#x27;s clients", " ", html)
        assert '<html lang="es"' in html, path
        text = re.sub(r"/\S*", " ", _visible_text(html))  # paths (the audit log shows them)
        for own in ("Harbour Clinic", "Client A", "clinic-admin", "owner", "colleague"):
            text = text.replace(own, "")
        words = [w for w in STAFF_ENGLISH if re.search(rf"\b{re.escape(w)}\b", text)]
        if words:
            found[path] = (words, text)
    assert not found, "\n\n".join(f"{p}: {w}\n{t}" for p, (w, t) in found.items())
