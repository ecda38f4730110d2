"""The demo shows a client at every stage of the journey."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bordin.web.clinic.models import Client
from bordin.web.journey import ending
from bordin.web.journey.models import JourneyLink, RematchRequest

pytestmark = pytest.mark.django_db


def test_demo_has_every_journey_stage(client: Any) -> None:
    from django.contrib.auth import get_user_model

    from bordin.web.demo import seed_demo

    seed_demo(seed=2026)
    users = get_user_model().objects
    therapist, admin = users.get(username="demo-therapist"), users.get(username="demo-admin")
    olu = Client.objects.get(display_name="Olu B.")
    assert JourneyLink.objects.filter(client=olu, purpose="intake", used_at__isnull=True).exists()
    pia = Client.objects.get(display_name="Pia S.")
    assert RematchRequest.objects.get(client=pia).status == "open"
    sao = Client.objects.get(display_name="Saoirse L.")
    assert ending.evidence(sao.episodes.get()).ready

    client.force_login(therapist)
    caseload = client.get("/").content.decode()
    rui = Client.objects.get(display_name="Rui M.")
    row = re.search(rf'<tr data-client-id="{rui.pk}">(.*?)</tr>', caseload, re.S)
    assert row and 'data-alert-kind="hesitant-start"' in row.group(1)
    assert "data-intake-pending" in client.get(f"/clients/{olu.pk}/").content.decode()
    assert "data-hesitant-start" in client.get(f"/clients/{rui.pk}/").content.decode()
    page = client.get(f"/clients/{sao.pk}/").content.decode()
    assert 'data-action="graduation-pdf"' in page and "Consider planning the ending" in page
    assert "data-fit-private" in client.get(f"/clients/{pia.pk}/").content.decode()
    pdf = client.get(f"/clients/{sao.pk}/journey/graduation.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")

    client.force_login(admin)
    assert "Pia S." in client.get("/rematch/").content.decode()
    rematch = RematchRequest.objects.get(client=pia)
    page = client.get(f"/rematch/{rematch.pk}/").content.decode()
    # Three therapists cannot show that rankings predict later results (issue 13): the page
    # says so and lists the eligible therapists unranked.
    assert "data-shortlist-hidden" in page and "earlier ranking did not" in page, page
    # The first therapist is not offered again.
    assert "Alex Morgan" not in page.split("data-shortlist")[1]
