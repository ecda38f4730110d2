"""The check-in asks what the measure plan says, imported instruments included.

The rule (docs/delivery.md, "Imported instruments in the plan"): a clinic's imported
instrument is asked only while it is in the plan and marked "may be used in this clinic";
ticking the box puts it in the clinic's plan, unticking takes it out; a follow-up asks the
plan's follow-up codes (outcome measures) only. Questionnaires carry placeholder wording only.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client as HttpClient

from bordin.web.checkins import services
from bordin.web.checkins.models import CheckinLink
from bordin.web.clinic.models import Response
from bordin.web.delivery.models import Delivery, MeasurePlan
from bordin.web.instruments.models import ClinicInstrument
from bordin.web.instruments.services import import_questionnaire
from tests.questionnaires import as_bytes, conditional, phq9

pytestmark = pytest.mark.django_db

CONDITIONAL = "q-placeholder-conditional"


def imported(clinic: Any, doc: dict[str, Any], may_use: bool = True) -> ClinicInstrument:
    entry = import_questionnaire(as_bytes(doc), "q.json", clinic).entry
    entry.may_use, entry.licence = may_use, "Placeholder licence text"
    entry.save()
    return entry


def page_for(session: Any, owner: Any) -> str:
    _, token = CheckinLink.issue(session, created_by=owner)
    http = HttpClient()
    http.get(f"/c/{token}")
    return str(http.get("/c/").content.decode())


def tick(http: Any, entry: ClinicInstrument, may_use: bool) -> None:
    data = {f"e{entry.pk}-licence": "Placeholder", f"e{entry.pk}-active": "on"}
    if may_use:
        data[f"e{entry.pk}-may_use"] = "on"
    assert http.post(f"/instruments/{entry.pk}/", data).status_code == 302


def plan_post(**codes: str) -> dict[str, str]:
    data = {
        "send_checkin": "on",
        "checkin_codes": "alliance, wellbeing",
        "followup_codes": "wellbeing",
        "followup_months": "1, 3, 6",
        "quiet_start": "21:00",
        "quiet_end": "08:00",
    }
    return data | codes


def test_imported_instrument_in_the_plan_is_asked(
    clinic: Any, episode: Any, add_session: Any, owner: Any
) -> None:
    imported(clinic, phq9())
    MeasurePlan.objects.create(clinic=clinic, checkin_codes=["alliance", "phq9"])
    # Bordin's own two first, as ever, then the plan's imported instrument.
    assert services.checkin_instrument_codes(episode) == ["alliance", "wellbeing", "phq9"]
    assert services.checkin_instruments(episode)[2].source == "fhir"
    page = page_for(add_session(days_ago=0), owner)
    assert 'name="phq9-q1"' in page and 'name="alliance-goals"' in page


def test_imported_instrument_not_in_the_plan_is_not_asked(
    clinic: Any, episode: Any, add_session: Any, owner: Any
) -> None:
    imported(clinic, phq9())
    MeasurePlan.objects.create(clinic=clinic, checkin_codes=["alliance", "wellbeing"])
    assert services.checkin_instrument_codes(episode) == ["alliance", "wellbeing"]
    assert 'name="phq9-q1"' not in page_for(add_session(days_ago=0), owner)


def test_in_the_plan_but_no_longer_may_be_used_is_not_asked(clinic: Any, episode: Any) -> None:
    entry = imported(clinic, conditional())
    MeasurePlan.objects.create(clinic=clinic, checkin_codes=["alliance", CONDITIONAL])
    assert services.checkin_instrument_codes(episode)[-1] == CONDITIONAL
    ClinicInstrument.objects.filter(pk=entry.pk).update(may_use=False)  # not through the page
    assert services.checkin_instrument_codes(episode) == ["alliance", "wellbeing"]


def test_ticking_may_be_used_puts_it_in_the_plan_and_unticking_takes_it_out(
    login: Any, admin: Any, clinic: Any, episode: Any
) -> None:
    entry = imported(clinic, conditional(), may_use=False)
    plan = MeasurePlan.objects.create(clinic=clinic, followup_codes=["wellbeing"])
    override = MeasurePlan.objects.create(episode=episode, checkin_codes=["alliance"])
    http = login(admin)
    tick(http, entry, may_use=True)
    plan.refresh_from_db()
    assert plan.checkin_codes == ["alliance", "wellbeing", CONDITIONAL]
    override.checkin_codes = ["alliance", CONDITIONAL]
    override.save()
    tick(http, entry, may_use=True)  # already in: not added twice
    plan.refresh_from_db()
    assert plan.checkin_codes.count(CONDITIONAL) == 1
    tick(http, entry, may_use=False)
    plan.refresh_from_db()
    override.refresh_from_db()
    assert plan.checkin_codes == ["alliance", "wellbeing"]
    assert override.checkin_codes == ["alliance"]


def test_default_plan_asks_what_may_be_used_and_shows_it_on_the_plan_page(
    login: Any, admin: Any, clinic: Any
) -> None:
    imported(clinic, conditional())
    page = login(admin).get("/outstanding/plan/").content.decode()
    assert f'value="alliance, wellbeing, {CONDITIONAL}"' in page


def test_plan_form_refuses_unknown_and_not_licensed_codes(
    login: Any, admin: Any, clinic: Any, other_clinic: Any
) -> None:
    entry = imported(clinic, conditional(), may_use=False)
    imported(other_clinic, phq9())  # another clinic's instrument is not ours to plan
    http = login(admin)
    bad = http.post("/outstanding/plan/", plan_post(checkin_codes=f"alliance, {CONDITIONAL}"))
    assert bad.status_code == 400
    text = bad.content.decode()
    assert f"Not marked &#x27;May be used in this clinic&#x27;: {CONDITIONAL}" in text
    assert "/instruments/" in text
    bad = http.post("/outstanding/plan/", plan_post(checkin_codes="alliance, nonsense"))
    assert bad.status_code == 400
    assert "Unknown instrument code(s): nonsense" in bad.content.decode()
    assert not MeasurePlan.objects.exists()  # nothing stored
    tick(http, entry, may_use=True)
    ok = http.post("/outstanding/plan/", plan_post(checkin_codes=f"alliance, {CONDITIONAL}"))
    assert ok.status_code == 302
    assert MeasurePlan.objects.get(clinic=clinic).checkin_codes == ["alliance", CONDITIONAL]


def test_plan_form_refuses_the_alliance_at_follow_up(login: Any, admin: Any) -> None:
    bad = login(admin).post("/outstanding/plan/", plan_post(followup_codes="wellbeing, alliance"))
    assert bad.status_code == 400
    assert "A follow-up asks outcome measures only: remove alliance" in bad.content.decode()


def test_follow_up_asks_outcome_measures_only(
    clinic: Any, client_record: Any, episode: Any, add_session: Any, owner: Any
) -> None:
    imported(clinic, phq9())
    # A plan saved before the rule (or by hand) with the alliance at follow-up: still skipped.
    MeasurePlan.objects.create(
        clinic=clinic, checkin_codes=["alliance", "wellbeing", "phq9"], followup_codes=["phq9"]
    )
    session = add_session(days_ago=0)
    Delivery.objects.create(client=client_record, episode=episode, session=session, kind="followup")
    assert services.checkin_instrument_codes(episode, session) == ["phq9"]
    assert services.checkin_instrument_codes(episode) == ["alliance", "wellbeing", "phq9"]
    MeasurePlan.objects.filter(clinic=clinic).update(followup_codes=["alliance", "phq9"])
    assert services.checkin_instrument_codes(episode, session) == ["phq9"]
    _, token = CheckinLink.issue(session, created_by=owner)
    http = HttpClient()
    http.get(f"/c/{token}")
    page = http.get("/c/").content.decode()
    assert 'name="phq9-q1"' in page
    assert 'name="alliance-goals"' not in page and 'name="wellbeing-mood"' not in page
    data = {"idempotency_key": "k" * 32} | {f"phq9-q{k}": "1" for k in range(1, 10)}
    assert http.post("/c/", data).status_code == 200
    assert list(Response.objects.values_list("instrument__code", "total")) == [("phq9", 9)]


def test_the_forms_signed_note_names_what_it_showed_for_its_own_link_only(
    clinic: Any, episode: Any, add_session: Any, owner: Any
) -> None:
    """The submission reads the form's instruments from its signed note (issue 10), not the
    plan: the same definitions, imported versions included; any other note is refused."""
    imported(clinic, phq9())
    MeasurePlan.objects.create(clinic=clinic, checkin_codes=["alliance", "phq9"])
    link, _ = CheckinLink.issue(add_session(days_ago=0), created_by=owner)
    other, _ = CheckinLink.issue(add_session(days_ago=1), created_by=owner)
    shown, kind, note = services.checkin_instruments_noted(link, None)  # the kind read
    assert [d.code for d in shown] == ["alliance", "wellbeing", "phq9"]
    assert kind == Delivery.Kind.CHECKIN
    assert services.shown_instruments(link, note, 60) == (shown, kind)
    services._IMPORTED.clear()  # another server process: the stored version is read
    assert services.shown_instruments(link, note, 60) == (shown, kind)
    assert services.shown_instruments(other, note, 60) is None  # made for another link
    assert services.shown_instruments(link, note[:-2] + "xx", 60) is None  # altered
    assert services.shown_instruments(link, "", 60) is None
    assert services.shown_instruments(link, "not:a:note", 60) is None
    from django.core import signing

    entries = [["b", "alliance", shown[0].version, 0]]
    forged = signing.dumps([link.pk, "checkin", entries], salt="other")
    assert services.shown_instruments(link, forged, 60) is None  # not signed by the server
    salt = services.INSTRUMENTS_SALT
    row = [["i", "phq9", "no-such-version", 1]]
    missing = signing.dumps([link.pk, "checkin", row], salt=salt)
    assert services.shown_instruments(link, missing, 60) is None  # a version not stored


def test_a_submission_without_a_valid_note_reads_the_plan_again(
    client: Any, clinic: Any, episode: Any, add_session: Any, owner: Any, goals: list[Any]
) -> None:
    from tests.web.helpers import checkin_post

    imported(clinic, phq9())
    MeasurePlan.objects.create(clinic=clinic, checkin_codes=["alliance", "phq9"])
    _, token = CheckinLink.issue(add_session(days_ago=0), created_by=owner)
    client.get(f"/c/{token}")
    assert 'name="phq9-q1"' in client.get("/c/").content.decode()
    answers = {f"phq9__q{n}": "1" for n in range(1, 10)}
    bad = checkin_post(goals, shown="tampered", **answers)
    assert client.post("/c/", bad).status_code == 200
    codes = sorted(Response.objects.values_list("instrument__code", flat=True))
    assert codes == ["alliance", "phq9", "wellbeing"]
