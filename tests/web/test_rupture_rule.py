"""The clinic's rupture rule: reliable by default, fixed or ceiling-aware on the measure plan;
the threshold from the clinic's own data once there is enough; the alerts follow it."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bordin.measures.rupture_rules import MIN_CLIENTS
from bordin.web.alerts import rules
from bordin.web.alerts.models import Alert
from bordin.web.clinic import analysis
from bordin.web.clinic.models import Episode, Session
from bordin.web.delivery.models import MeasurePlan
from tests.web.helpers import record_checkin

pytestmark = pytest.mark.django_db


def rated(v: float) -> dict[str, float]:
    """Whole-number answers whose mean is ``v`` (a multiple of 0.25)."""
    whole, extra = divmod(round(4 * v), 4)
    parts = ("goals", "tasks", "bond", "overall")
    return {p: float(whole + (k < extra)) for k, p in enumerate(parts)}


def plan_post(**extra: str) -> dict[str, str]:
    data = {
        "send_checkin": "on",
        "checkin_codes": "alliance, wellbeing",
        "followup_codes": "wellbeing",
        "followup_months": "1, 3, 6",
        "quiet_start": "21:00",
        "quiet_end": "08:00",
    }
    return data | extra


def drop(add_session: Any, client_record: Any, before: float, after: float) -> Alert | None:
    record_checkin(add_session(days_ago=14), alliance=rated(before))
    last = add_session(days_ago=7)
    record_checkin(last, alliance=rated(after))
    data = analysis.episode_data(last.episode, comments=False)
    return rules.check_rupture(client_record, last, data)


def test_default_is_the_reliable_rule_from_the_measures_facts(clinic: Any) -> None:
    setting = analysis.rupture_setting(clinic.pk)
    assert (setting.rule, setting.source) == ("reliable", "instrument")
    assert setting.threshold == pytest.approx(1.9957, abs=1e-4)


def test_a_one_and_a_half_point_drop_is_no_longer_a_rupture(
    clinic: Any, client_record: Any, add_session: Any
) -> None:
    assert drop(add_session, client_record, 8.0, 6.5) is None


def test_a_two_point_drop_still_is(clinic: Any, client_record: Any, add_session: Any) -> None:
    alert = drop(add_session, client_record, 8.0, 6.0)
    assert alert is not None and alert.kind == "rupture"


def test_admin_chooses_the_fixed_rule_on_the_plan_and_alerts_follow(
    login: Any, admin: Any, clinic: Any, client_record: Any, add_session: Any
) -> None:
    http = login(admin)
    page = http.get("/outstanding/plan/").content.decode()
    assert 'name="alliance_rupture_rule"' in page
    assert analysis.rupture_setting(clinic.pk).rule == "reliable"  # now cached
    saved = http.post("/outstanding/plan/", plan_post(alliance_rupture_rule="fixed"))
    assert saved.status_code == 302
    assert MeasurePlan.objects.get(clinic=clinic).rupture_rules == {"alliance": "fixed"}
    assert analysis.rupture_setting(clinic.pk).rule == "fixed"  # saving forgot the cache
    alert = drop(add_session, client_record, 8.0, 6.5)
    assert alert is not None and "fell 1.5 points" in alert.detail
    # a plan saved without the field keeps the rule
    assert http.post("/outstanding/plan/", plan_post()).status_code == 302
    assert MeasurePlan.objects.get(clinic=clinic).rupture_rules == {"alliance": "fixed"}
    bad = http.post("/outstanding/plan/", plan_post(alliance_rupture_rule="loose"))
    assert bad.status_code == 400


def test_the_setting_costs_no_query_once_cached(clinic: Any) -> None:
    analysis.rupture_setting(clinic.pk)
    with CaptureQueriesContext(connection) as queries:
        analysis.rupture_setting(clinic.pk)
    assert len(queries) == 0


def test_enough_clinic_data_gives_the_data_derived_threshold(
    clinic: Any, client_record: Any
) -> None:
    # MIN_CLIENTS episodes of three scores each, level, level + 0.5, level + 1: SD 0.5
    for k in range(MIN_CLIENTS):
        episode = Episode.objects.create(client=client_record, start=date.today())
        level = 5 + (k % 4)
        for n in range(3):
            session = Session.objects.create(
                episode=episode, number=n + 1, date=date.today() - timedelta(days=3 - n)
            )
            record_checkin(session, alliance=rated(level + 0.5 * n))
    setting = analysis.rupture_setting(clinic.pk)
    assert setting.source == "data"
    assert setting.threshold == pytest.approx(1.959964 * 2**0.5 * 0.5, abs=1e-4)


def test_withdrawal_uses_half_the_threshold_in_force(
    login: Any, owner: Any, admin: Any, clinic: Any, client_record: Any, add_session: Any
) -> None:
    """A fall of 0.75 is an alliance drop under the fixed rule (half of 1.5), not under the
    reliable one (half of 2.0)."""
    record_checkin(add_session(days_ago=14), alliance=rated(8.0))
    record_checkin(add_session(days_ago=7), alliance=rated(7.25))
    browser = login(owner)
    browser.post(
        f"/clients/{client_record.pk}/sessions/", {"date": "2026-01-10", "attendance": "missed"}
    )
    assert not Alert.objects.filter(kind="withdrawal").exists()
    login(admin).post("/outstanding/plan/", plan_post(alliance_rupture_rule="fixed"))
    login(owner).post(
        f"/clients/{client_record.pk}/sessions/", {"date": "2026-01-11", "attendance": "missed"}
    )
    alert = Alert.objects.get(kind="withdrawal")
    assert "alliance drop at session 2 (0.75 points)" in alert.detail
