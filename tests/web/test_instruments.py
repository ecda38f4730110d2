"""Imported questionnaires: the /instruments/ page, the CLI, and the check-in that asks them.

Questionnaires carry real LOINC codes and placeholder wording only (tests/questionnaires.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from bordin.measures.questionnaire import MAX_BYTES
from bordin.web.alerts.models import Alert
from bordin.web.audit.models import AuditEvent
from bordin.web.checkins import services
from bordin.web.checkins.models import CheckinLink
from bordin.web.clinic.models import Instrument, Response
from bordin.web.commands import run_import_questionnaire
from bordin.web.instruments.models import ClinicInstrument, QuestionnaireSource
from bordin.web.instruments.services import import_questionnaire
from tests.questionnaires import as_bytes, conditional, phq9
from tests.web.helpers import checkin_post

pytestmark = pytest.mark.django_db


def upload(client: Any, data: bytes, name: str = "phq9.json") -> Any:
    return client.post("/instruments/", {"file": SimpleUploadedFile(name, data)})


def stored() -> tuple[int, int, int]:
    return (
        Instrument.objects.count(),
        ClinicInstrument.objects.count(),
        QuestionnaireSource.objects.count(),
    )


def allow(entry: ClinicInstrument) -> ClinicInstrument:
    entry.may_use = True
    entry.licence = "Placeholder licence text"
    entry.save()
    return entry


def phq9_answers(scores: tuple[int, ...]) -> dict[str, str]:
    return {f"phq9-q{k}": str(v) for k, v in enumerate(scores, start=1)}


# ------------------------------------------------------------------------------ the page


def test_admin_imports_and_sees_licence_and_checkbox(login: Any, admin: Any) -> None:
    client = login(admin)
    response = upload(client, as_bytes(phq9()))
    assert response.status_code == 302
    entry = ClinicInstrument.objects.get()
    assert entry.code == "phq9" and not entry.may_use and not entry.in_checkin
    page = client.get("/instruments/").content.decode()
    assert 'data-instrument="phq9"' in page
    assert "May be used in this clinic" in page and "Licence" in page
    assert "Matched LOINC panel 44249-1" in page
    assert "Not asked in the check-in." in page
    assert AuditEvent.objects.filter(object_type="instrument", action="create").exists()
    # The admin ticks the box and writes the licence.
    response = client.post(
        f"/instruments/{entry.pk}/",
        {f"e{entry.pk}-licence": "Free to use (placeholder)", f"e{entry.pk}-may_use": "on",
         f"e{entry.pk}-active": "on"},
    )  # fmt: skip
    assert response.status_code == 302
    entry.refresh_from_db()
    assert entry.in_checkin and entry.licence == "Free to use (placeholder)"
    assert "Free to use (placeholder)" in client.get("/instruments/").content.decode()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"{not json", "not valid JSON"),
        (b" " * (MAX_BYTES + 1), "the limit is 5 MB"),
        (json.dumps({"resourceType": "Questionnaire", "item": [{"type": "display"}]}).encode(),
         "item 1: has no linkId"),
    ],
)  # fmt: skip
def test_bad_upload_stores_nothing_and_says_why(
    login: Any, admin: Any, data: bytes, expected: str
) -> None:
    before = stored()
    response = upload(login(admin), data)
    assert response.status_code == 400
    assert expected in response.content.decode()
    assert "Nothing was stored" in response.content.decode()
    assert stored() == before


def test_import_problems_are_in_the_admins_language(login: Any, admin: Any) -> None:
    """Issue 14: the problems the page knows are translated; others are shown as written."""
    from bordin.web.clinic.models import StaffProfile
    from bordin.web.instruments.problems import translate

    StaffProfile.objects.filter(user=admin).update(language="es")
    doc = {"resourceType": "Questionnaire", "item": [{"type": "display"}, {"type": "display"}]}
    page = upload(login(admin), json.dumps(doc).encode()).content.decode()
    assert "ítem 1: no tiene linkId" in page and "ítem 2: no tiene linkId" in page
    assert "has no linkId" not in page
    assert translate("item 'q1': something new") == "item 'q1': something new"


@pytest.mark.parametrize("role", ["owner", "researcher", "supervisor"])
def test_only_the_clinic_admin_manages_instruments(
    login: Any, role: str, request: pytest.FixtureRequest
) -> None:
    client = login(request.getfixturevalue(role))
    assert client.get("/instruments/").status_code == 403
    assert upload(client, as_bytes(phq9())).status_code == 403
    assert stored() == (0, 0, 0)


def test_another_clinics_admin_cannot_change_our_entry(
    login: Any, clinic: Any, outsider: Any
) -> None:
    entry = import_questionnaire(as_bytes(phq9()), "phq9.json", clinic).entry
    response = login(outsider).post(f"/instruments/{entry.pk}/", {f"e{entry.pk}-may_use": "on"})
    assert response.status_code == 404
    entry.refresh_from_db()
    assert not entry.may_use


# ------------------------------------------------------------------------------- the CLI


def test_cli_import_into_the_only_clinic(clinic: Any, tmp_path: Path) -> None:
    path = tmp_path / "phq9.json"
    path.write_bytes(as_bytes(phq9()))
    lines = run_import_questionnaire(path, None)
    assert lines[0].startswith("Imported PlaceholderPHQ9 (placeholder wording) as phq9 version 1+")
    assert "May be used in this clinic" in lines[-1]
    assert ClinicInstrument.objects.get().clinic == clinic
    again = run_import_questionnaire(path, clinic.pk)
    assert again[0].startswith("Already imported")
    assert stored() == (1, 1, 1)


def test_cli_errors(clinic: Any, other_clinic: Any, tmp_path: Path) -> None:
    path = tmp_path / "q.json"
    path.write_bytes(as_bytes(phq9()))
    with pytest.raises(ValueError, match="give --clinic ID"):
        run_import_questionnaire(path, None)
    with pytest.raises(ValueError, match="no clinic with id 999"):
        run_import_questionnaire(path, 999)
    doc = phq9()
    doc["item"][1]["item"][1]["linkId"] = "q1"
    path.write_bytes(as_bytes(doc))
    with pytest.raises(ValueError, match="linkId 'q1' is used twice"):
        run_import_questionnaire(path, clinic.pk)
    assert stored() == (0, 0, 0)


# --------------------------------------------------------------------------- the check-in


@pytest.fixture
def imported(clinic: Any) -> ClinicInstrument:
    return allow(import_questionnaire(as_bytes(phq9()), "phq9.json", clinic).entry)


@pytest.fixture
def link(add_session: Any, owner: Any) -> tuple[CheckinLink, str]:
    return CheckinLink.issue(add_session(days_ago=0), created_by=owner)


def test_checkin_codes_come_from_one_function(
    imported: ClinicInstrument, episode: Any, other_clinic: Any
) -> None:
    assert services.checkin_instrument_codes() == ["alliance", "wellbeing"]
    assert services.checkin_instrument_codes(episode) == ["alliance", "wellbeing", "phq9"]
    defs = services.checkin_instruments(episode)
    assert defs[2].source == "fhir" and defs[2].item("q9").risk_at == 1
    imported.may_use = False
    imported.save()
    assert services.checkin_instrument_codes(episode) == ["alliance", "wellbeing"]


def test_imported_phq9_in_the_checkin_scores_and_raises_risk(
    client: Any, imported: ClinicInstrument, link: tuple[CheckinLink, str], goals: list[Any]
) -> None:
    _, token = link
    client.get(f"/c/{token}")
    page = client.get("/c/").content.decode()
    assert "Placeholder question 9 (not the instrument&#x27;s wording)" in page
    assert "Placeholder group" in page and "Placeholder introduction" in page
    assert 'name="phq9-q1"' in page and "Placeholder total" not in page
    data = checkin_post(goals) | phq9_answers((3, 2, 2, 1, 1, 0, 0, 1, 1))
    response = client.post("/c/", data)
    assert response.status_code == 200
    assert "Harbour duty line: 0100 111 222" in response.content.decode()
    stored_phq9 = Response.objects.get(instrument__code="phq9")
    assert stored_phq9.total == 11 and stored_phq9.risk_flagged
    assert stored_phq9.instrument == imported.instrument
    alert = Alert.objects.get(kind="risk")
    assert "phq9" in alert.detail and "self-harm" in alert.detail


def test_imported_phq9_item9_zero_raises_no_alert(
    client: Any, imported: ClinicInstrument, link: tuple[CheckinLink, str], goals: list[Any]
) -> None:
    client.get(f"/c/{link[1]}")
    data = checkin_post(goals) | phq9_answers((1, 1, 1, 1, 1, 1, 1, 1, 0))
    assert client.post("/c/", data).status_code == 200
    assert Response.objects.get(instrument__code="phq9").total == 8
    assert not Alert.objects.filter(kind="risk").exists()


def test_missing_phq9_answer_is_an_error_and_stores_nothing(
    client: Any, imported: ClinicInstrument, link: tuple[CheckinLink, str], goals: list[Any]
) -> None:
    client.get(f"/c/{link[1]}")
    data = checkin_post(goals) | phq9_answers((1, 1, 1, 1, 1, 1, 1, 1))
    response = client.post("/c/", data)
    assert response.status_code == 400
    assert 'href="#phq9-q9-error"' in response.content.decode()
    assert Response.objects.count() == 0


def test_new_version_keeps_earlier_responses_tied(
    client: Any,
    clinic: Any,
    imported: ClinicInstrument,
    link: tuple[CheckinLink, str],
    goals: list[Any],
) -> None:
    client.get(f"/c/{link[1]}")
    client.post("/c/", checkin_post(goals) | phq9_answers((0,) * 9))
    first = Response.objects.get(instrument__code="phq9")
    old_version = first.instrument
    doc = phq9(version="2")
    result = import_questionnaire(as_bytes(doc), "phq9-v2.json", clinic)
    assert result.new_version
    assert result.entry.pk == imported.pk and result.entry.instrument != old_version
    first.refresh_from_db()
    assert first.instrument == old_version
    assert Instrument.objects.filter(code="phq9").count() == 2


def test_conditional_question_is_required_only_when_enabled(
    client: Any, clinic: Any, link: tuple[CheckinLink, str], goals: list[Any]
) -> None:
    doc = conditional()
    allow(import_questionnaire(json.dumps(doc).encode(), "c.json", clinic).entry)
    client.get(f"/c/{link[1]}")
    page = client.get("/c/").content.decode()
    assert "Answer this only if your answer to &quot;Placeholder yes/no&quot; was Yes." in page
    base = checkin_post(goals)
    code = "q-placeholder-conditional"
    response = client.post("/c/", base | {f"{code}-a": "1"})
    assert response.status_code == 400
    assert f'id="{code}-b-error"' in response.content.decode()
    ok = client.post("/c/", base | {f"{code}-a": "0", f"{code}-b": "4", f"{code}-c": "words"})
    assert ok.status_code == 200
    stored_row = Response.objects.get(instrument__code=code)
    # Unscored (no weights): stored without a total; the disabled answer is dropped.
    assert stored_row.total is None
    assert stored_row.answers == {"a": 0.0}
    assert stored_row.free_text == "words"


def test_cli_command_prints_and_exits_2_on_bad_input(clinic: Any, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bordin.cli import app

    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"resourceType": ')
    result = CliRunner().invoke(app, ["import-questionnaire", str(bad)])
    assert result.exit_code == 2
    assert "not valid JSON" in result.output
    good = tmp_path / "phq9.json"
    good.write_bytes(as_bytes(phq9()))
    result = CliRunner().invoke(
        app, ["import-questionnaire", str(good), "--clinic", str(clinic.pk)]
    )
    assert result.exit_code == 0, result.output
    assert "Matched LOINC panel 44249-1" in result.output


def test_client_page_charts_an_imported_instrument_from_its_definition(
    login: Any, clinic: Any, owner: Any, add_session: Any
) -> None:
    from django.utils import timezone

    from tests.questionnaires import gad7

    entry = import_questionnaire(as_bytes(gad7()), "gad7.json", clinic).entry
    for k, total in enumerate((15.0, 9.0), start=1):
        session = add_session(days_ago=20 - k)
        Response.objects.create(
            session=session,
            instrument=entry.instrument,
            respondent="client",
            answers={},
            total=total,
            submitted_at=timezone.now(),
            idempotency_key=f"g{k}",
        )
    page = login(owner).get(f"/clients/{session.episode.client_id}/").content.decode()
    assert 'id="measure-gad7-chart-title"' in page
    assert "GAD-7, session by session" in page
    assert "GAD-7 (0-21)" in page  # the scale comes from the definition


def test_checkin_shows_the_clients_language(
    client: Any, clinic: Any, link: tuple[CheckinLink, str], goals: list[Any]
) -> None:
    doc = phq9()
    translation = "http://hl7.org/fhir/StructureDefinition/translation"
    parts = [{"url": "lang", "valueCode": "cy"}, {"url": "content", "valueString": "Dalfan 1"}]
    doc["item"][1]["item"][0]["_text"] = {"extension": [{"url": translation, "extension": parts}]}
    allow(import_questionnaire(as_bytes(doc), "phq9-cy.json", clinic).entry)
    the_client = link[0].client
    the_client.preferred_language = "cy"
    the_client.save()
    client.get(f"/c/{link[1]}")
    page = client.get("/c/").content.decode()
    assert "Dalfan 1" in page and "Placeholder question 2" in page


@pytest.mark.parametrize("translated", [True, False])
def test_spanish_client_gets_the_translation_or_is_told_the_questionnaire_language(
    client: Any, clinic: Any, link: tuple[CheckinLink, str], goals: list[Any], translated: bool
) -> None:
    """Issue 14: the FHIR ``translation`` extension in the client's language is used; without
    it the questionnaire's own wording is shown and the (Spanish) page says so."""
    doc = phq9()
    if translated:
        translation = "http://hl7.org/fhir/StructureDefinition/translation"
        for n, item in enumerate(doc["item"][1]["item"], start=1):
            parts = [
                {"url": "lang", "valueCode": "es"},
                {"url": "content", "valueString": f"Pregunta de prueba {n}"},
            ]
            item["_text"] = {"extension": [{"url": translation, "extension": parts}]}
    allow(import_questionnaire(as_bytes(doc), "phq9.json", clinic).entry)
    the_client = link[0].client
    the_client.preferred_language = "es"
    the_client.save()
    client.get(f"/c/{link[1]}")
    page = client.get("/c/").content.decode()
    note = "Estas preguntas aparecen en el idioma original del cuestionario"
    assert "Tu cuestionario" in page  # the rest of the page is Spanish either way
    if translated:
        assert "Pregunta de prueba 1" in page and note not in page
    else:
        assert "Placeholder question 1" in page and note in page
