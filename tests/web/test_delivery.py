"""Delivery: a real SMTP server (aiosmtpd) in the test process, the real worker code
(django-tasks-db's worker draining the queue), and a clock we move (time-machine)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from bordin.web.alerts.models import Alert
from bordin.web.clinic.models import Clinic, Episode, Response, Session
from bordin.web.delivery import services, sms
from bordin.web.delivery.models import (
    ContactFailure,
    Delivery,
    MeasurePlan,
    OutboxMessage,
    Unsubscribe,
)
from tests.web.delivery_helpers import (
    LONDON,
    SmtpServer,
    at,
    complete,
    html_part,
    link_in,
    reachable,
    record,
    text_part,
    unsubscribe_in,
    use_smtp,
    work,
)
from tests.web.helpers import checkin_post

pytestmark = pytest.mark.django_db


@pytest.fixture
def smtp(settings: Any) -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        use_smtp(settings, server)
        yield server


# --- the whole path: record a session -> the worker sends -> the client completes ------------


def test_recording_a_session_sends_the_checkin_and_no_reminder_after_completion(
    smtp: SmtpServer, login: Any, owner: Any, client_record: Any, episode: Any
) -> None:
    reachable(client_record)
    with time_machine.travel(at(1, 10), tick=True):
        response = record(login(owner), client_record, at(1, 10))
        assert b'data-action="checkin-qr"' in response.content and b"<svg" in response.content
        # Written in the session's transaction: the link, its delivery, the message and the
        # worker's task.
        message = OutboxMessage.objects.get(purpose="invitation", delivery__kind="checkin")
        assert message.status == "pending"
        work()
        message.refresh_from_db()
        assert message.status == "sent" and message.attempts == 1
    [mail] = smtp.inbox.messages[-1:]
    kinds = [m["Subject"] for m in smtp.inbox.messages]
    assert any("first-session questionnaire" in s for s in kinds)  # the fit check after s. 1
    checkin = next(m for m in smtp.inbox.messages if "session check-in" in m["Subject"])
    assert checkin["To"] == "client.a@example.org"
    assert checkin["Subject"] == "Harbour Clinic: your session check-in"
    assert checkin["List-Unsubscribe"].strip().startswith("<http://testserver/unsubscribe/")
    body, html = text_part(checkin), html_part(checkin)
    assert "Harbour Clinic" in body and "session check-in" in body and "<a href=" in html
    # Nothing about the client or their care: no name, no scores, no free text.
    for text in (body, html, checkin["Subject"]):
        assert "Client A" not in text and "score" not in text.lower()
    del mail
    with time_machine.travel(at(1, 11), tick=True):
        complete(link_in(checkin))
    assert Response.objects.filter(respondent="client").count() == 2
    with time_machine.travel(at(2, 12), tick=True):  # after the 24 h delay
        work()
    reminders = OutboxMessage.objects.filter(purpose="reminder", delivery__kind="checkin")
    assert not reminders.exists()
    # The token was kept (encrypted) only for the reminder: gone once the link is used.
    assert Delivery.objects.get(kind="checkin").token is None
    assert not any(
        m["Subject"].startswith("Reminder") and "check-in" in m["Subject"]
        for m in smtp.inbox.messages
    )


def test_one_pass_sends_for_every_session_recorded_before_it_and_drops_their_wake_ups(
    smtp: SmtpServer, login: Any, owner: Any, client_record: Any, add_session: Any
) -> None:
    """Each recorded session enqueues a ``deliver`` task; the first pass sends everything
    due and the other waiting passes are dropped (each found nothing left: issue 10)."""
    from django_tasks_db.models import DBTaskResult

    from bordin.web.delivery.worker import TASK_PATH, drain

    reachable(client_record)
    with time_machine.travel(at(4, 10), tick=True):
        http = login(owner)
        for day in (1, 2, 3):
            record(http, client_record, at(day, 10))
        waiting = DBTaskResult.objects.ready().filter(task_path=TASK_PATH).count()
        assert waiting >= 3
        pending = OutboxMessage.objects.filter(status="pending")
        assert pending.count() >= 3
        assert drain() == 1
    assert not OutboxMessage.objects.filter(status="pending").exists()
    checkins = [m for m in smtp.inbox.messages if "session check-in" in m["Subject"]]
    assert len(checkins) == 3
    assert not DBTaskResult.objects.ready().exists()


def test_one_reminder_after_the_delay_never_in_quiet_hours(
    smtp: SmtpServer, login: Any, owner: Any, client_record: Any, episode: Any
) -> None:
    reachable(client_record)
    with time_machine.travel(at(1, 22, 30), tick=True):  # recorded late: due in quiet hours
        record(login(owner), client_record, at(1, 22, 30))
        work()
    sent = len(smtp.inbox.messages)
    assert sent == 2  # check-in and fit check
    for moment in (at(2, 22, 31), at(2, 23, 59), at(3, 7, 59)):
        with time_machine.travel(moment, tick=True):
            work()
        assert len(smtp.inbox.messages) == sent, f"a reminder in quiet hours at {moment}"
    with time_machine.travel(at(3, 8, 1), tick=True):
        work()
    reminders = [m for m in smtp.inbox.messages if m["Subject"].startswith("Reminder")]
    assert len(reminders) == 2  # one for the check-in, one for the fit check
    assert any("session check-in" in m["Subject"] for m in reminders)
    for moment in (at(3, 12), at(4, 12), at(6, 12)):
        with time_machine.travel(moment, tick=True):
            work()
    assert len(smtp.inbox.messages) == sent + 2  # exactly one reminder each


def test_no_reminder_after_expiry(
    smtp: SmtpServer, login: Any, owner: Any, client_record: Any, episode: Any, settings: Any
) -> None:
    settings.BORDIN_CHECKIN_LINK_HOURS = 12
    reachable(client_record)
    with time_machine.travel(at(1, 10), tick=True):
        record(login(owner), client_record, at(1, 10))
        work()
    with time_machine.travel(at(2, 12), tick=True):
        work()
    subjects = [m["Subject"] for m in smtp.inbox.messages]
    assert not any(s.startswith("Reminder") and "check-in" in s for s in subjects)


# --- unsubscribe, consent, bounce -------------------------------------------------------------


def test_unsubscribe_link_works_without_login_and_stops_messages(
    smtp: SmtpServer, login: Any, owner: Any, client_record: Any, episode: Any, client: Any
) -> None:
    reachable(client_record)
    http = login(owner)
    with time_machine.travel(at(1, 10), tick=True):
        record(login(owner), client_record, at(1, 10))
        work()
    url = unsubscribe_in(smtp.inbox.messages[0])
    http.logout()
    path = urlsplit(url).path
    page = http.get(path)
    assert page.status_code == 200 and b'data-action="unsubscribe"' in page.content
    done = http.post(path)
    assert b"data-unsubscribed" in done.content
    assert Unsubscribe.objects.filter(client=client_record, channel="email").count() == 1
    assert http.post(path).status_code == 200  # again: still one record
    assert Unsubscribe.objects.count() == 1
    assert http.get("/unsubscribe/not-a-token/").status_code == 404
    sent = len(smtp.inbox.messages)
    with time_machine.travel(at(2, 12), tick=True):  # reminders would be due
        work()
    http = login(owner)
    with time_machine.travel(at(8, 10), tick=True):
        record(login(owner), client_record, at(8, 10))
        work()
    assert len(smtp.inbox.messages) == sent
    assert Delivery.objects.filter(session__number=2).get().channel == ""


def test_consent_withdrawn_before_sending_cancels_the_message(
    smtp: SmtpServer, login: Any, owner: Any, client_record: Any, episode: Any
) -> None:
    reachable(client_record)
    record(login(owner), client_record, timezone.now())
    client_record.consent_email = False
    client_record.save()
    work()
    assert smtp.inbox.messages == []
    assert set(OutboxMessage.objects.values_list("status", "last_error")) == {
        ("cancelled", "no consent")
    }


def test_bounced_address_is_retried_with_backoff_then_flagged(
    smtp: SmtpServer, login: Any, owner: Any, admin: Any, client_record: Any, episode: Any
) -> None:
    reachable(client_record, "bounce@example.org")
    OutboxMessage.objects.all().delete()
    with time_machine.travel(at(1, 10), tick=True):
        record(login(owner), client_record, at(1, 10))
        OutboxMessage.objects.exclude(delivery__kind="checkin").delete()
        work()
    message = OutboxMessage.objects.get()
    assert (message.status, message.attempts) == ("pending", 1)
    assert "550" in message.last_error and "bounce@example.org" not in message.last_error
    with time_machine.travel(at(1, 10, 0) + timedelta(seconds=30), tick=True):
        work()  # within the backoff: no new attempt
    message.refresh_from_db()
    assert message.attempts == 1
    with time_machine.travel(at(1, 10, 2), tick=True):  # 60 s backoff passed
        work()
    message.refresh_from_db()
    assert message.attempts == 2 and message.status == "pending"
    assert not ContactFailure.objects.filter(flagged_at__isnull=False).exists()
    with time_machine.travel(at(1, 10, 5), tick=True):  # 120 s backoff passed
        work()
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("failed", 3)
    assert len(smtp.inbox.refused) == 3 and smtp.inbox.messages == []
    failure = ContactFailure.objects.get(client=client_record)
    assert failure.flagged_at is not None and failure.failures == 3
    for user in (admin, owner):
        html = login(user).get("/").content.decode()
        assert 'data-alert-kind="contact-failed"' in html


# --- the outstanding list, resend, completion rate ----------------------------------------------


def test_outstanding_lists_open_questionnaires_in_scope_and_resends(
    smtp: SmtpServer,
    login: Any,
    owner: Any,
    colleague: Any,
    admin: Any,
    outsider: Any,
    client_record: Any,
    episode: Any,
) -> None:
    reachable(client_record)
    record(login(owner), client_record, timezone.now())
    work()
    for user, sees in ((owner, True), (admin, True), (colleague, False), (outsider, False)):
        html = login(user).get("/outstanding/").content.decode()
        assert (f'data-client-id="{client_record.pk}"' in html) is sees, user
    html = login(owner).get("/outstanding/").content.decode()
    assert "Session check-in" in html and "First-session questionnaire" in html
    delivery = Delivery.objects.get(kind="checkin")
    assert login(colleague).post(f"/outstanding/{delivery.pk}/resend/").status_code == 404
    response = login(owner).post(f"/outstanding/{delivery.pk}/resend/")
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert delivery.closed_at is not None and delivery.checkin_link.revoked_at is not None
    fresh = Delivery.objects.get(kind="checkin", closed_at__isnull=True)
    assert fresh.session_id == delivery.session_id
    work()
    last = smtp.inbox.messages[-1]
    assert "session check-in" in last["Subject"]
    assert fresh.url == link_in(last)


def test_completion_rate_on_the_caseload_per_therapist_for_admins(
    login: Any, owner: Any, admin: Any, add_session: Any, client_record: Any
) -> None:
    from tests.web.helpers import ALLIANCE, WELLBEING, record_checkin

    done = add_session(days_ago=10)
    add_session(days_ago=5)
    add_session(days_ago=3, attendance="missed")
    add_session(days_ago=120)  # outside the 90 days
    record_checkin(done, ALLIANCE, WELLBEING)
    html = login(owner).get("/").content.decode()
    assert 'data-completion-rate="50"' in html
    html = login(admin).get("/").content.decode()
    assert re.search(r'data-therapist="owner">.*?50%', html, re.S)


# --- the plan, follow-ups and relapse ----------------------------------------------------------


def test_planned_instrument_codes_clinic_default_and_episode_override(
    clinic: Clinic, episode: Episode
) -> None:
    assert services.planned_instrument_codes(episode, "checkin") == ["alliance", "wellbeing"]
    assert services.planned_instrument_codes(episode, "followup") == ["wellbeing"]
    MeasurePlan.objects.create(clinic=clinic, checkin_codes=["alliance", "phq9"])
    assert services.planned_instrument_codes(episode, "checkin") == ["alliance", "phq9"]
    MeasurePlan.objects.create(episode=episode, checkin_codes=["alliance"])
    assert services.planned_instrument_codes(episode, "checkin") == ["alliance"]
    assert services.planned_instrument_codes(episode, "intake") == []


def test_planned_ending_sends_summary_then_followups_and_flags_relapse(
    smtp: SmtpServer,
    owner: Any,
    client_record: Any,
    episode: Any,
    add_session: Any,
    client: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from tests.web.helpers import ALLIANCE, record_checkin

    MeasurePlan.objects.create(clinic=client_record.clinic, clinic_contact="0100 200 300")
    reachable(client_record)
    first, last = add_session(days_ago=40), add_session(days_ago=5)
    record_checkin(first, ALLIANCE, {"mood": 2, "daily": 2, "connection": 2, "coping": 2})
    record_checkin(last, ALLIANCE, {"mood": 8, "daily": 8, "connection": 8, "coping": 8})
    with time_machine.travel(at(1, 10), tick=True):
        with django_capture_on_commit_callbacks(execute=True):
            episode.status, episode.end = Episode.Status.CLOSED, at(1, 10).date()
            episode.ending_reason = Episode.EndingReason.PLANNED
            episode.save()
        work()
    assert [m["Subject"] for m in smtp.inbox.messages] == [
        "Harbour Clinic: your end-of-therapy summary"
    ]
    followups = Delivery.objects.filter(kind="followup").order_by("due_at")
    assert [d.followup_month for d in followups] == [1, 3, 6]
    with time_machine.travel(at(30, 12), tick=True):  # not due yet (31 days: 1 July)
        work()
    assert len(smtp.inbox.messages) == 1
    with time_machine.travel(datetime(2027, 7, 1, 12, tzinfo=LONDON), tick=True):
        work()
        mail = smtp.inbox.messages[-1]
        body = text_part(mail)
        assert "follow-up questionnaire" in mail["Subject"]
        assert "Welcome back" in body and "0100 200 300" in body
        session = Session.objects.get(deliveries__kind="followup")
        assert session.episode_id == episode.pk and session.number == 3
        path = urlsplit(link_in(mail)).path
        client.get(path)
        page = client.get("/c/").content.decode()
        key = re.search(r'name="idempotency_key" value="([^"]+)"', page)
        assert key
        worse = checkin_post([], key=key.group(1))
        worse.update({f"wellbeing-{k}": "1" for k in ("mood", "daily", "connection", "coping")})
        assert client.post("/c/", worse).status_code == 200
    alert = Alert.objects.get(kind="relapse")
    assert alert.client == client_record and alert.session == session
    assert "1-month follow-up" in alert.detail
    assert services.kind_for_session(session) == "followup"
    assert services.kind_for_session(last) == "checkin"


def test_client_added_with_contact_gets_the_intake_link(
    smtp: SmtpServer, clinic: Clinic, owner: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from bordin.web.clinic.models import Client

    with django_capture_on_commit_callbacks(execute=True):
        silent = Client.objects.create(clinic=clinic, therapist=owner, display_name="No contact")
        added = Client.objects.create(
            clinic=clinic,
            therapist=owner,
            display_name="With email",
            contact_email="new@example.org",
            consent_email=True,
        )
    assert not silent.episodes.exists()
    work()
    [mail] = smtp.inbox.messages
    assert mail["Subject"] == "Harbour Clinic: your intake questionnaire" and "/j/" in link_in(mail)
    assert Delivery.objects.get().client == added


# --- SMS and the file backends ----------------------------------------------------------------


def test_sms_text_is_short_and_has_no_clinical_content(
    settings: Any, tmp_path: Path, login: Any, owner: Any, client_record: Any, episode: Any
) -> None:
    settings.BORDIN_SMS_BACKEND = "bordin.web.delivery.sms.FileBackend"
    settings.BORDIN_SMS_FILE_PATH = str(tmp_path / "sms")
    client_record.contact_mobile = "+44 7700 900123"
    client_record.consent_sms = True
    client_record.save()
    record(login(owner), client_record, timezone.now())
    work()
    files = sorted((tmp_path / "sms").glob("*.txt"))
    assert len(files) == 2
    for f in files:
        text = f.read_text().split("\n\n", 1)[1].strip()
        assert len(text) <= sms.MAX_LENGTH and "Client A" not in text
        assert text.startswith("Harbour Clinic: your ")
    with pytest.raises(sms.SmsTooLong):
        sms.check_text("x" * 161)


def test_eml_file_backend_writes_one_file_per_message(settings: Any, tmp_path: Path) -> None:
    from django.core.mail import EmailMultiAlternatives

    settings.EMAIL_BACKEND = "bordin.web.delivery.mail.EmlFileBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path / "mail")
    for n in range(2):
        EmailMultiAlternatives(f"Hello {n}", "Body", to=["a@example.org"]).send()
    files = sorted((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 2 and b"Subject: Hello" in files[0].read_bytes()


# --- quiet hours: hand-worked cases and a property ----------------------------------------------


@pytest.mark.parametrize(
    ("hour", "minute", "quiet"),
    [(20, 59, False), (21, 0, True), (23, 30, True), (0, 0, True), (7, 59, True), (8, 0, False)],
)
def test_quiet_hours_hand_worked(clinic: Clinic, hour: int, minute: int, quiet: bool) -> None:
    assert services.in_quiet_hours(clinic, at(10, hour, minute)) is quiet


@given(st.integers(0, 23), st.integers(0, 59), st.sampled_from(["Europe/London", "Asia/Tokyo"]))
def test_quiet_hours_follow_the_clinic_time_zone(hour: int, minute: int, zone: str) -> None:
    clinic = Clinic(name="Tz", time_zone=zone)
    plan = MeasurePlan(clinic=clinic, quiet_start=time(21), quiet_end=time(8))
    moment = datetime(2026, 1, 15, hour, minute, tzinfo=ZoneInfo(zone))
    quiet = services.in_quiet_hours(clinic, moment.astimezone(ZoneInfo("UTC")), plan)
    assert quiet is (hour >= 21 or hour < 8)


def test_unreachable_email_server_keeps_messages_due_without_flagging(
    settings: Any, login: Any, owner: Any, client_record: Any, episode: Any
) -> None:
    from tests.web.delivery_helpers import free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nobody listening
    reachable(client_record)
    record(login(owner), client_record, timezone.now())
    work()
    assert set(OutboxMessage.objects.values_list("status", "attempts")) == {("pending", 0)}
    assert not ContactFailure.objects.exists()


def test_clinic_admin_edits_the_plan_with_clear_errors(
    login: Any, admin: Any, owner: Any, clinic: Clinic, episode: Episode
) -> None:
    assert login(owner).get("/outstanding/plan/").status_code == 403
    http = login(admin)
    page = http.get("/outstanding/plan/").content.decode()
    assert 'value="alliance, wellbeing"' in page and 'value="1, 3, 6"' in page
    data = {
        "send_intake": "on",
        "send_checkin": "on",
        "checkin_codes": "alliance, nonsense",
        "followup_codes": "wellbeing",
        "followup_months": "1, three",
        "quiet_start": "22:00",
        "quiet_end": "07:30",
        "clinic_contact": "0100 200 300",
    }
    bad = http.post("/outstanding/plan/", data)
    assert bad.status_code == 400
    text = bad.content.decode()
    assert "Unknown instrument code(s): nonsense" in text and "e.g. 1, 3, 6" in text
    assert not MeasurePlan.objects.exists()
    data.update(checkin_codes="alliance, phq9", followup_months="6, 1")
    assert http.post("/outstanding/plan/", data).status_code == 302
    saved = MeasurePlan.objects.get(clinic=clinic)
    assert saved.checkin_codes == ["alliance", "phq9"] and saved.followup_months == [1, 6]
    assert (saved.send_fit_check, saved.quiet_start) == (False, time(22))
    assert services.planned_instrument_codes(episode, "checkin") == ["alliance", "phq9"]
