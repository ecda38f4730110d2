"""Round trip in a real browser: a PHQ-9-coded Questionnaire (placeholder wording) is imported,
a client fills it in on a phone without JavaScript, and the total and the risk alert are right.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from playwright.sync_api import expect

from bordin.web.alerts.models import Alert
from bordin.web.checkins.models import CheckinLink
from bordin.web.clinic.models import Response
from bordin.web.fhir import resources as fr
from bordin.web.instruments.models import ClinicInstrument
from bordin.web.instruments.services import import_questionnaire
from tests.browser.conftest import make_staff
from tests.browser.pages import answer_checkin, axe_problems, choose, describe, log_in, send
from tests.questionnaires import as_bytes, conditional, phq9

#: Item scores the client gives (item 9 last); hand-worked total 3+2+2+1+1+0+0+1+1 = 11.
SCORES = (3, 2, 2, 1, 1, 0, 0, 1, 1)


@pytest.fixture
def token(clinic: Any, add_session: Callable[..., Any], owner: Any, goals: list[Any]) -> str:
    entry = import_questionnaire(as_bytes(phq9()), "phq9.json", clinic).entry
    ClinicInstrument.objects.filter(pk=entry.pk).update(may_use=True, licence="Placeholder")
    _, token = CheckinLink.issue(add_session(days_ago=0), created_by=owner)
    return token


@pytest.mark.parametrize("javascript", [True, False])
def test_imported_phq9_round_trip_on_a_phone(
    new_context: Callable[..., Any],
    server: str,
    token: str,
    goals: list[Any],
    axe_source: str,
    javascript: bool,
) -> None:
    page = new_context(phone=True, java_script_enabled=javascript).new_page()
    page.goto(f"/c/{token}")
    expect(page.get_by_role("heading", name="Your check-in", level=1)).to_be_visible()
    expect(
        page.get_by_role("heading", name="PlaceholderPHQ9 (placeholder wording)")
    ).to_be_visible()
    assert "<script" not in page.content()
    if javascript:  # axe-core runs as a script; the page itself needs none
        assert not (found := axe_problems(page, axe_source)), describe(found)
    answer_checkin(page, [g.pk for g in goals], tap=True)
    for k, score in enumerate(SCORES, start=1):
        # Options are listed in score order 0-3: the index is the score.
        choose(page, f"phq9-q{k}", score, tap=True)
    send(page, tap=True)
    crisis = page.locator("[data-crisis]")
    expect(crisis).to_contain_text("Harbour duty line: 0100 111 222")
    if javascript:
        assert not (found := axe_problems(page, axe_source)), describe(found)

    stored = Response.objects.get(instrument__code="phq9")
    assert stored.total == 11
    assert stored.answers == {f"q{k}": float(v) for k, v in enumerate(SCORES, start=1)}
    assert stored.risk_flagged
    alert = Alert.objects.get(kind="risk")
    assert alert.session == stored.session and "phq9" in alert.detail

    # The export: the response and its total parse with fhir.resources' R4B models, and the
    # Observation's value is the computed total.
    exported = {
        r["id"]: r for r in fr.resources([stored.session.episode.client], pseudonymous=False)
    }
    qr = QuestionnaireResponse.model_validate(exported[f"qr-{stored.pk}"])
    obs = Observation.model_validate(exported[f"obs-{stored.pk}"])
    assert obs.valueQuantity.value == stored.total == 11
    assert obs.code.coding[0].code == "44261-6"
    assert obs.derivedFrom[0].reference == f"QuestionnaireResponse/{qr.id}"


def test_every_answer_type_is_accessible(
    new_context: Callable[..., Any],
    clinic: Any,
    add_session: Callable[..., Any],
    owner: Any,
    axe_source: str,
) -> None:
    entry = import_questionnaire(as_bytes(conditional()), "c.json", clinic).entry
    ClinicInstrument.objects.filter(pk=entry.pk).update(may_use=True)
    _, token = CheckinLink.issue(add_session(days_ago=0), created_by=owner)
    page = new_context(phone=True).new_page()
    page.goto(f"/c/{token}")
    expect(page.get_by_label("Placeholder how many")).to_have_attribute("inputmode", "numeric")
    found = {"form": axe_problems(page, axe_source)}
    choose(page, "q-placeholder-conditional-a", 0, tap=True)  # "Yes": b is now required
    send(page, tap=True)
    expect(page.locator("#q-placeholder-conditional-b-error")).to_be_visible()
    found["form with errors"] = axe_problems(page, axe_source)
    assert not any(found.values()), describe([v for vs in found.values() for v in vs])


def test_admin_imports_in_the_browser_and_the_pages_are_accessible(
    new_context: Callable[..., Any],
    clinic: Any,
    axe_source: str,
    tmp_path: Any,
) -> None:
    """/instruments/ (upload, a refused file, the licence form) and the API token page."""
    make_staff("clinic-admin", clinic, role="clinic_admin")
    page = new_context().new_page()
    log_in(page, "clinic-admin")
    page.goto("/instruments/")
    found = {"instruments": axe_problems(page, axe_source)}
    bad = tmp_path / "bad.json"
    bad.write_text('{"resourceType": "Questionnaire", "item": [{"type": "display"}]}')
    page.set_input_files("#id_file", str(bad))
    with page.expect_navigation():
        page.get_by_role("button", name="Import").click()
    expect(page.locator("#import-errors")).to_contain_text("item 1: has no linkId")
    found["instruments, refused file"] = axe_problems(page, axe_source)
    good = tmp_path / "phq9.json"
    good.write_bytes(as_bytes(phq9()))
    page.set_input_files("#id_file", str(good))
    with page.expect_navigation():
        page.get_by_role("button", name="Import").click()
    row = page.locator('tr[data-instrument="phq9"]')
    row.get_by_label("Licence").fill("Placeholder licence")
    row.get_by_label("May be used in this clinic").check()
    with page.expect_navigation():
        row.get_by_role("button", name="Save").click()
    expect(page.locator('tr[data-instrument="phq9"]')).to_contain_text("Asked in the check-in.")
    found["instruments, imported"] = axe_problems(page, axe_source)
    page.goto("/account/tokens/")
    page.get_by_label("What is it for?").fill("Scheduling system")
    with page.expect_navigation():
        page.get_by_role("button", name="Make token").click()
    expect(page.locator("[data-new-token]")).to_contain_text("bdn_")
    found["API tokens"] = axe_problems(page, axe_source)
    page.goto("/api/v1/docs")
    expect(page.locator("#swagger-ui")).to_be_attached()
    assert not any(found.values()), describe([v for vs in found.values() for v in vs])
