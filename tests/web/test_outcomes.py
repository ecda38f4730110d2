"""The admin's outcomes page: the report on the clinic's own de-identified data."""

from __future__ import annotations

from typing import Any

import pytest

from bordin.web.audit.models import AuditEvent
from bordin.web.clinic.models import Client, StaffProfile
from tests.web.conftest import make_staff

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo() -> Any:
    from bordin.web.demo import seed_demo

    seed_demo(seed=2026)
    return Client.objects.first().clinic  # type: ignore[union-attr]


def test_demo_clinic_admin_sees_the_report(client: Any, demo: Any) -> None:
    admin = make_staff("outcomes-admin", demo, role="clinic_admin")
    client.force_login(admin)
    page = client.get("/outcomes/").content.decode()
    assert "data-outcomes-report" in page
    # The demo clinic records the wellbeing check-in (no PHQ-9), so there is no NHS TT section.
    for key in (
        "overview",
        "completion",
        "change-wellbeing",
        "therapists",
        "alliance-outcome",
        "ruptures",
        "sudden-gains",
    ):
        assert f'data-section="{key}"' in page, key
    assert "Wilson 95% interval" in page
    # The rupture rule in force, with the threshold from the clinic's own data (40 clients).
    assert "rule &#x27;reliable&#x27;" in page and "from the data" in page
    assert "<svg" in page
    # De-identified: no client names on the page.
    for name in Client.objects.filter(clinic=demo).values_list("display_name", flat=True)[:20]:
        assert name not in page
    assert AuditEvent.objects.filter(object_type="outcomes_report", action="read").exists()
    pdf = client.get("/outcomes/report.pdf")
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF")
    # Issue 14: the report's fixed texts (table headings, chart labels) follow the staff
    # member's language; the sections' own texts are still English (docs/translating.md).
    assert "<th>Method</th>" in page
    StaffProfile.objects.filter(user=admin).update(language="es")
    client.force_login(admin)  # the language is taken at log-in
    page = client.get("/outcomes/").content.decode()
    assert "<th>Método</th>" in page and "<th>Method</th>" not in page
    assert client.get("/outcomes/report.pdf").content.startswith(b"%PDF")


def test_researcher_sees_it_and_a_therapist_does_not(client: Any, demo: Any) -> None:
    client.force_login(make_staff("outcomes-researcher", demo, role="researcher"))
    assert client.get("/outcomes/").status_code == 200
    client.force_login(make_staff("outcomes-therapist", demo))
    assert client.get("/outcomes/").status_code == 403


def test_another_clinic_sees_only_its_own_empty_report(
    client: Any, outsider: Any, demo: Any
) -> None:
    client.force_login(outsider)
    page = client.get("/outcomes/").content.decode()
    assert "data-outcomes-empty" in page
    assert "data-outcomes-report" not in page
    response = client.get("/outcomes/report.pdf")
    assert response.status_code == 302
    assert response["Location"] == "/outcomes/"
