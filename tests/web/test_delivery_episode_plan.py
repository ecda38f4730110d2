"""An episode's own measure plan (``/clients/<pk>/plan/``, docs/delivery.md): shown beside the
clinic's, saved and cleared by the client's therapist or an admin, audit-logged, and what the
worker sends after the next recorded session. A real SMTP server (aiosmtpd) and the real
worker code; questionnaires carry placeholder wording only."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine

from bordin.web.audit.models import AuditEvent
from bordin.web.clinic.models import Client, Clinic, Episode, StaffProfile
from bordin.web.delivery.models import MeasurePlan
from bordin.web.instruments.models import ClinicInstrument
from bordin.web.instruments.services import import_questionnaire
from tests.questionnaires import as_bytes, conditional, phq9
from tests.web.delivery_helpers import (
    SmtpServer,
    at,
    link_in,
    open_checkin,
    reachable,
    record,
    use_smtp,
    work,
)

pytestmark = pytest.mark.django_db
CONDITIONAL = "q-placeholder-conditional"


@pytest.fixture
def smtp(settings: Any) -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        use_smtp(settings, server)
        yield server


def imported(clinic: Clinic, doc: dict[str, Any], may_use: bool = True) -> ClinicInstrument:
    entry = import_questionnaire(as_bytes(doc), "q.json", clinic).entry
    entry.may_use, entry.licence = may_use, "Placeholder licence text"
    entry.save()
    return entry


def plan_post(**changes: str) -> dict[str, str]:
    data = {
        "send_checkin": "on",
        "send_graduation": "on",
        "checkin_codes": "alliance, wellbeing, phq9",
        "followup_codes": "wellbeing",
        "followup_months": "1, 3",
    }
    return data | changes


def plans() -> list[tuple[Any, ...]]:
    return list(
        MeasurePlan.objects.order_by("pk").values_list(
            "pk", "episode_id", "send_fit_check", "checkin_codes", "followup_months"
        )
    )


def plan_events(client: Client) -> list[tuple[str, str]]:
    return list(
        AuditEvent.objects.filter(object_type="measure_plan", client_id=client.pk)
        .order_by("pk")
        .values_list("action", "detail")
    )


def test_page_shows_the_clinic_default_beside_the_override(
    login: Any, owner: Any, admin: Any, clinic: Clinic, client_record: Client, episode: Episode
) -> None:
    imported(clinic, phq9())
    imported(clinic, conditional(), may_use=False)
    MeasurePlan.objects.create(clinic=clinic, checkin_codes=["alliance", "wellbeing"])
    client_page = login(owner).get(f"/clients/{client_record.pk}/").content.decode()
    assert f'href="/clients/{client_record.pk}/plan/" data-action="client-plan"' in client_page
    page = login(owner).get(f"/clients/{client_record.pk}/plan/").content.decode()
    assert 'data-plan-state="clinic"' in page
    row = re.search(r'data-plan-field="checkin_codes">(.*?)</tr>', page, re.S)
    assert row and "alliance, wellbeing</td>" in row.group(1) and "as the clinic" in row.group(1)
    # The form starts from the clinic's plan; the instruments are named by code, imported
    # ones an admin marked "may be used in this clinic" among them.
    assert 'value="alliance, wellbeing"' in page
    assert 'data-instrument-code="phq9"' in page and "(imported)" in page
    assert f'data-instrument-code="{CONDITIONAL}"' not in page
    assert plan_events(client_record) == [("read", "episode measure plan")]
    # An admin sees it as the therapist does, and saves it with an audit event.
    http = login(admin)
    assert http.post(f"/clients/{client_record.pk}/plan/", plan_post()).status_code == 302
    page = http.get(f"/clients/{client_record.pk}/plan/").content.decode()
    assert 'data-plan-state="episode"' in page
    row = re.search(r'data-plan-field="checkin_codes">(.*?)</tr>', page, re.S)
    assert row and "alliance, wellbeing</td>" in row.group(1)
    assert "alliance, wellbeing, phq9" in row.group(1)
    assert 'data-action="plan-use-clinic-default"' in page
    action, detail = plan_events(client_record)[1]
    assert action == "create" and detail.startswith(f"episode {episode.pk} measure plan: ")


def test_the_override_drives_what_is_sent_and_clearing_returns_to_the_default(
    smtp: SmtpServer,
    login: Any,
    owner: Any,
    clinic: Clinic,
    client_record: Client,
    episode: Episode,
) -> None:
    imported(clinic, phq9())
    MeasurePlan.objects.create(clinic=clinic, checkin_codes=["alliance", "wellbeing"])
    reachable(client_record)
    http = login(owner)
    url = f"/clients/{client_record.pk}/plan/"
    # No fit check for this episode, and the imported PHQ-9 coded questionnaire at check-in.
    assert http.post(url, plan_post()).status_code == 302
    override = MeasurePlan.objects.get(episode=episode)
    assert override.checkin_codes == ["alliance", "wellbeing", "phq9"]
    assert not override.send_fit_check and override.followup_months == [1, 3]

    with time_machine.travel(at(1, 10), tick=True):
        record(login(owner), client_record, at(1, 10))  # a log-in of that day
        work()
    [mail] = smtp.inbox.messages  # the check-in only: the clinic's fit check is off here
    assert mail["Subject"] == "Harbour Clinic: your session check-in"
    with time_machine.travel(at(1, 11), tick=True):
        _, form = open_checkin(link_in(mail))
    assert 'name="phq9-q1"' in form and 'name="alliance-goals"' in form

    with time_machine.travel(at(1, 12), tick=True):
        http = login(owner)
        page = http.post(url, {"action": "clear"}, follow=True).content.decode()
    assert 'data-plan-state="clinic"' in page
    assert not MeasurePlan.objects.filter(episode=episode).exists()
    removed = f"episode {episode.pk} measure plan removed: the clinic's applies"
    assert ("update", removed) in plan_events(client_record)
    with time_machine.travel(at(8, 10), tick=True):
        record(login(owner), client_record, at(8, 10))
        work()
    [mail] = smtp.inbox.messages[1:]
    assert mail["Subject"] == "Harbour Clinic: your session check-in"
    with time_machine.travel(at(8, 11), tick=True):
        _, form = open_checkin(link_in(mail))
    assert 'name="phq9-q1"' not in form and 'name="alliance-goals"' in form


def test_invalid_input_is_a_clear_error_and_changes_nothing(
    login: Any, owner: Any, clinic: Clinic, client_record: Client, episode: Episode
) -> None:
    imported(clinic, conditional(), may_use=False)
    http = login(owner)
    url = f"/clients/{client_record.pk}/plan/"
    bad = {
        "checkin_codes": "alliance, nonsense",
        "followup_codes": "alliance, wellbeing",
        "followup_months": "1, three",
    }
    response = http.post(url, plan_post(**bad))
    assert response.status_code == 400
    text = response.content.decode()
    assert "Unknown instrument code(s): nonsense. Known codes: " in text
    assert "A follow-up asks outcome measures only: remove alliance." in text
    assert "Write whole months separated by commas, e.g. 1, 3, 6." in text
    assert "Nothing was saved" in text and 'value="alliance, nonsense"' in text
    assert plans() == []
    assert http.post(url, plan_post()).status_code == 302
    before, events = plans(), plan_events(client_record)
    for change in (
        {"checkin_codes": f"alliance, {CONDITIONAL}"},  # imported, not marked "may be used"
        {"checkin_codes": " , "},
        {"followup_months": "0, 30"},
    ):
        response = http.post(url, plan_post(**change))
        assert response.status_code == 400, change
        assert 'class="field-error"' in response.content.decode()
        assert plans() == before and plan_events(client_record) == events
    text = http.post(url, plan_post(checkin_codes=CONDITIONAL)).content.decode()
    assert f"Not marked &#x27;May be used in this clinic&#x27;: {CONDITIONAL}" in text
    assert "Each follow-up is 1 to 24 months after the ending." in (
        http.post(url, plan_post(followup_months="30")).content.decode()
    )
    # In the staff member's own language (issue 14): the page and its errors in Spanish.
    StaffProfile.objects.filter(user=owner).update(language="es")
    http = login(owner)  # the language is taken at log-in
    text = http.post(url, plan_post(checkin_codes="nonsense")).content.decode()
    assert "Qué se envía a" in text and "Código(s) de instrumento desconocido(s): nonsense" in text
    assert "Usar el plan del centro" in text


def test_a_client_without_an_episode(login: Any, owner: Any, client_record: Client) -> None:
    http = login(owner)
    url = f"/clients/{client_record.pk}/plan/"
    assert 'data-plan-state="no-episode"' in http.get(url).content.decode()
    assert http.post(url, plan_post()).status_code == 400
    assert http.post(url, {"action": "clear"}).status_code == 400
    assert plans() == []


def test_only_the_therapist_and_admins(
    login: Any,
    colleague: Any,
    supervisor: Any,
    outsider: Any,
    client_record: Client,
    episode: Episode,
) -> None:
    url = f"/clients/{client_record.pk}/plan/"
    for user in (colleague, supervisor, outsider):
        http = login(user)
        assert http.get(url).status_code == 404
        assert http.post(url, plan_post()).status_code == 404
    assert plans() == []
    assert AuditEvent.objects.filter(action="denied", object_type="client").count() == 6
