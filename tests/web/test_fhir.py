"""FHIR R4 export and the read-only FHIR endpoints; every resource validated with the
``fhir.resources`` R4B models. Questionnaires carry real codes, placeholder wording only."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from bordin.web.api.models import ApiToken, hash_token
from bordin.web.audit.models import AuditEvent
from bordin.web.checkins.models import CheckinLink
from bordin.web.clinic import scoping
from bordin.web.clinic.models import Response
from bordin.web.instruments.models import ClinicInstrument
from bordin.web.instruments.services import import_questionnaire
from tests.questionnaires import as_bytes, phq9
from tests.web.conftest import make_staff
from tests.web.helpers import checkin_post

pytestmark = pytest.mark.django_db

SCORES = (3, 2, 2, 1, 1, 0, 0, 1, 1)  # total 11, item 9 above 0


def validate(resource: dict[str, Any]) -> Any:
    """Parse one resource with its R4B model (raises on anything invalid)."""
    return get_fhir_model_class(resource["resourceType"]).model_validate(resource)


@pytest.fixture
def checked_in(client: Any, clinic: Any, add_session: Any, goals: list[Any]) -> Response:
    entry = import_questionnaire(as_bytes(phq9()), "phq9.json", clinic).entry
    ClinicInstrument.objects.filter(pk=entry.pk).update(may_use=True)
    _, token = CheckinLink.issue(add_session(days_ago=2))
    client.get(f"/c/{token}")
    data = checkin_post(goals) | {f"phq9-q{k}": str(v) for k, v in enumerate(SCORES, 1)}
    assert client.post("/c/", data).status_code == 200
    client.logout()
    return Response.objects.get(instrument__code="phq9")


def by_type(bundle: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for e in bundle["entry"]:
        out.setdefault(e["resource"]["resourceType"], []).append(e["resource"])
    return out


def test_client_bundle_is_valid_and_the_observation_equals_the_total(
    login: Any, owner: Any, checked_in: Response
) -> None:
    response = login(owner).get(f"/clients/{checked_in.session.episode.client_id}/fhir.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/fhir+json"
    body = json.loads(response.content)
    Bundle.model_validate(body)
    for entry in body["entry"]:
        validate(entry["resource"])
    found = by_type(body)
    assert [p["name"][0]["text"] for p in found["Patient"]] == ["Client A"]
    phq = next(o for o in found["Observation"] if o["code"]["coding"][0]["code"] == "44261-6")
    assert phq["valueQuantity"]["value"] == checked_in.total == 11
    assert phq["effectiveDateTime"] == checked_in.session.date.isoformat()
    assert phq["derivedFrom"] == [{"reference": f"QuestionnaireResponse/qr-{checked_in.pk}"}]
    qr = next(r for r in found["QuestionnaireResponse"] if r["id"] == f"qr-{checked_in.pk}")
    q = next(r for r in found["Questionnaire"] if r.get("code", [{}])[0].get("code") == "44249-1")
    assert qr["questionnaire"] == f"{q['url']}|{q['version']}"
    answers = {i["linkId"]: i["answer"][0]["valueCoding"]["code"] for i in qr["item"]}
    assert answers["q1"] == "LA6571-9" and answers["q9"] == "LA6569-3"
    # Bordin's own check-ins are exported too, as Questionnaires in our own words.
    assert {o["code"]["coding"][0]["code"] for o in found["Observation"]} >= {
        "alliance",
        "wellbeing",
    }
    assert AuditEvent.objects.filter(object_type="fhir_bundle", action="export").exists()


def test_free_text_never_leaves_through_fhir(login: Any, owner: Any, checked_in: Response) -> None:
    body = login(owner).get(f"/clients/{checked_in.session.episode.client_id}/fhir.json")
    assert "Maybe a little more time" not in body.content.decode()


def test_colleague_cannot_export_the_client(
    login: Any, colleague: Any, checked_in: Response
) -> None:
    url = f"/clients/{checked_in.session.episode.client_id}/fhir.json"
    assert login(colleague).get(url).status_code == 404


def test_researcher_gets_a_pseudonymous_clinic_export(
    login: Any, researcher: Any, checked_in: Response
) -> None:
    client = login(researcher)
    body = json.loads(client.get("/exports/fhir.json").content)
    Bundle.model_validate(body)
    patients = by_type(body)["Patient"]
    client_record = checked_in.session.episode.client
    pseudonym = scoping.pseudonym(client_record.clinic_id, client_record.pk)
    assert [p["id"] for p in patients] == [pseudonym]
    assert "name" not in patients[0]
    assert "Client A" not in json.dumps(body)
    lines = b"".join(client.get("/exports/fhir.ndjson").streaming_content).decode().splitlines()
    assert len(lines) == len(body["entry"])
    for line in lines:
        validate(json.loads(line))


def test_admin_clinic_export_is_identified(login: Any, admin: Any, checked_in: Response) -> None:
    body = json.loads(login(admin).get("/exports/fhir.json").content)
    assert by_type(body)["Patient"][0]["name"][0]["text"] == "Client A"


# ---------------------------------------------------------------------------- endpoints


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def test_metadata_is_a_capability_statement(client: Any) -> None:
    body = json.loads(client.get("/fhir/metadata").content)
    validate(body)
    assert body["fhirVersion"] == "4.0.1"


@pytest.mark.parametrize(
    "path", ["/fhir/Questionnaire", "/fhir/QuestionnaireResponse", "/fhir/Observation"]
)
def test_endpoints_need_a_valid_token(client: Any, owner: Any, path: str) -> None:
    assert client.get(path).status_code == 401
    assert client.get(path, **bearer("bdn_nonsense")).status_code == 401
    row, token = ApiToken.issue(owner, "t", "read", 30)
    assert client.get(path, **bearer(token)).status_code == 200
    row.revoked_at = timezone.now()
    row.save()
    response = client.get(path, **bearer(token))
    assert response.status_code == 401
    validate(json.loads(response.content))  # an OperationOutcome
    expired, token2 = ApiToken.issue(owner, "t2", "read", 1)
    ApiToken.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(1))
    assert client.get(path, **bearer(token2)).status_code == 401


def test_observation_search_is_scoped_filtered_and_audited(
    client: Any, owner: Any, colleague: Any, outsider: Any, checked_in: Response
) -> None:
    _, token = ApiToken.issue(owner, "reporting", "read", 30)
    pid = str(checked_in.session.episode.client_id)
    url = f"/fhir/Observation?patient={pid}&code=http://loinc.org|44261-6"
    body = json.loads(client.get(url, **bearer(token)).content)
    Bundle.model_validate(body)
    assert body["total"] == 1
    assert body["entry"][0]["resource"]["valueQuantity"]["value"] == 11
    events = AuditEvent.objects.filter(object_type="fhir_observation", username="owner")
    assert events.count() == 1 and events.get().client_id == int(pid)
    assert ApiToken.objects.get(token_hash=hash_token(token)).last_used_at is not None
    qrs = json.loads(
        client.get(f"/fhir/QuestionnaireResponse?patient={pid}", **bearer(token)).content
    )
    assert qrs["total"] == 3  # alliance, wellbeing, phq9
    # Another therapist and another clinic's admin find nothing.
    for user in (colleague, outsider):
        _, other = ApiToken.issue(user, "x", "read", 30)
        assert json.loads(client.get(url, **bearer(other)).content)["total"] == 0
    qs = json.loads(client.get("/fhir/Questionnaire", **bearer(token)).content)
    assert any(e["resource"].get("code", [{}])[0].get("code") == "44249-1" for e in qs["entry"])
    for e in qs["entry"]:
        validate(e["resource"])


def test_researcher_token_sees_pseudonyms_only(
    client: Any, researcher: Any, checked_in: Response
) -> None:
    _, token = ApiToken.issue(researcher, "study", "read", 30)
    body = json.loads(client.get("/fhir/Observation", **bearer(token)).content)
    c = checked_in.session.episode.client
    refs = {e["resource"]["subject"]["reference"] for e in body["entry"]}
    assert refs == {f"Patient/{scoping.pseudonym(c.clinic_id, c.pk)}"}


# ------------------------------------------------------------------------------- tokens


def test_token_is_shown_once_stored_hashed_and_revocable(login: Any, owner: Any) -> None:
    client = login(owner)
    response = client.post("/account/tokens/", {"name": "Scheduler", "scope": "read_write",
                                                "days": "30"})  # fmt: skip
    assert response.status_code == 200
    html = response.content.decode()
    start = html.index("data-new-token>") + len("data-new-token>")
    token = html[start : html.index("<", start)]
    row = ApiToken.objects.get()
    assert row.token_hash == hash_token(token) and token not in row.token_hash
    assert row.can_write and row.name == "Scheduler"
    assert token not in client.get("/account/tokens/").content.decode()
    assert client.post(f"/account/tokens/{row.pk}/revoke/").status_code == 302
    row.refresh_from_db()
    assert row.state == "revoked"


def test_token_form_errors(login: Any, owner: Any) -> None:
    response = login(owner).post("/account/tokens/", {"name": "", "scope": "read", "days": "0"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Give the token a name" in html and "Choose 1 to 365 days." in html
    assert not ApiToken.objects.exists()


def test_nobody_revokes_another_users_token(login: Any, owner: Any, clinic: Any) -> None:
    row, _ = ApiToken.issue(make_staff("someone", clinic), "t", "read", 30)
    assert login(owner).post(f"/account/tokens/{row.pk}/revoke/").status_code == 404
    row.refresh_from_db()
    assert row.revoked_at is None
