"""The demo's ``demo-admin`` can do every step of running the clinic (issue 9)."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from bordin.web.clinic.models import Client

pytestmark = pytest.mark.django_db


def test_demo_admin_does_every_step(client: Any, settings: Any, tmp_path: Any) -> None:
    from bordin.web.demo import seed_demo

    settings.DEBUG = True  # as `bordin demo` runs: the enrolment link is shown on screen
    settings.BORDIN_DEMO_SKIP_2FA = True  # and skips the second factor on loopback
    # ... and writes every message to <data-dir>/mail/ (bordin.web.commands.run_demo).
    settings.EMAIL_BACKEND = "bordin.web.delivery.mail.EmlFileBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path / "mail")
    seed_demo(seed=2026)
    admin = get_user_model().objects.get(username="demo-admin")
    client.force_login(admin)
    nav = client.get("/").content.decode()
    for link in ('href="/staff/"', 'href="/clients/new/"', 'data-action="add-client"'):
        assert link in nav
    staff = client.get("/staff/").content.decode()
    assert 'data-staff="demo-therapist"' in staff and 'data-action="invite-staff"' in staff

    invited = client.post(
        "/staff/invite/", {"first_name": "Noor", "email": "noor@example.org", "role": "therapist"}
    ).content.decode()
    shown = re.search(r"data-enrol-link>(http://testserver/enrol/[^<\s]+)<", invited)
    assert shown
    [eml] = (tmp_path / "mail").glob("*.eml")  # the same link, in the demo's mail folder
    assert "noor@example.org" in eml.read_text() and shown.group(1) in eml.read_text()

    therapist = get_user_model().objects.get(username="demo-therapist")
    response = client.post(
        "/clients/new/",
        {"display_name": "Demo Newcomer", "therapist": therapist.pk, "preferred_language": "en",
         "contact_email": "newcomer@example.org", "consent_email": "on"},
    )  # fmt: skip
    new = Client.objects.get(display_name="Demo Newcomer")
    assert response["Location"] == f"/clients/{new.pk}/"
    manage = client.get(f"/clients/{new.pk}/manage/").content.decode()
    for hook in ("close-episode", "reassign", "archive", "export-client", "erase-client"):
        assert f'data-action="{hook}"' in manage
    client.post(
        f"/clients/{new.pk}/episode/close/",
        {"ending_reason": "dropped_out", "end": date.today().isoformat()},
    )
    assert client.get(f"/clients/{new.pk}/export/").status_code == 200
    colleague = get_user_model().objects.get(username="demo-therapist-2")
    client.post(f"/staff/{colleague.pk}/reset-2fa/", {})  # the demo skips the second factor
    erased = client.post(f"/clients/{new.pk}/erase/", {"confirm": "ERASE"})
    assert erased.status_code == 302 and not Client.objects.filter(pk=new.pk).exists()
