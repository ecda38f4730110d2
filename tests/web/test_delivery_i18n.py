"""Emails, text messages and the unsubscribe page in the client's language, and the client's
own time zone (issue 14). Sent through the real path: a session is recorded, the worker sends
through a real SMTP server, the clock is moved (time-machine)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import translation

from bordin.web.checkins.models import CheckinLink
from bordin.web.clinic.models import Client
from bordin.web.delivery import services, sms
from bordin.web.delivery.models import Delivery, OutboxMessage
from tests.web.delivery_helpers import SmtpServer, html_part, text_part, unsubscribe_in
from tests.web.test_delivery import at, reachable, record, smtp, work
from tests.web.test_i18n import _visible_text, assert_no_english

pytestmark = pytest.mark.django_db
__all__ = ["smtp"]  # the SMTP server fixture, shared with tests/web/test_delivery.py

MEXICO = ZoneInfo("America/Mexico_City")  # UTC-6 all year; London is UTC+1 in June
URL = re.compile(r"https?://\S+")


def spanish(client: Any) -> Any:
    client.preferred_language = "es"
    client.save(update_fields=["preferred_language"])
    return client


def words(mail: Any) -> str:
    """Subject, text and visible HTML of an email, without links (tokens are random)."""
    text = " ".join((mail["Subject"], text_part(mail), _visible_text(html_part(mail))))
    return URL.sub(" ", text)


def test_a_spanish_speaking_client_gets_spanish_email_and_an_english_one_english(
    smtp: SmtpServer, login: Any, owner: Any, client_record: Any, episode: Any
) -> None:
    spanish(reachable(client_record))
    with time_machine.travel(at(1, 10), tick=True):
        record(login(owner), client_record, at(1, 10))
        work()
    with time_machine.travel(at(2, 12), tick=True):  # after the 24 h delay: the reminders
        work()
    mails = smtp.inbox.messages
    assert len(mails) == 4
    # Folded non-ASCII headers start with a space once parsed; mail programs drop it.
    subjects = sorted(m["Subject"].strip() for m in mails)
    assert subjects == [
        "Harbour Clinic: tu cuestionario de la sesión",
        "Harbour Clinic: tu cuestionario tras la primera sesión",
        "Recordatorio: Harbour Clinic: tu cuestionario de la sesión",
        "Recordatorio: Harbour Clinic: tu cuestionario tras la primera sesión",
    ]
    for mail in mails:
        assert_no_english(words(mail), allowed=("Harbour Clinic",))
        assert '<html lang="es">' in html_part(mail)
        for part in (text_part(mail), html_part(mail)):
            assert "Hola:" in part and "Recibes esto porque" in part
            # The date by the client's locale (and time zone): "8 de junio de 2027, 10:00".
            assert re.search(r"\d{1,2} de junio de 2027, \d\d:\d\d", part), part

    english = reachable(client_record, "client.b@example.org")
    english.preferred_language = "en"
    english.save(update_fields=["preferred_language"])
    with time_machine.travel(at(8, 10), tick=True):
        record(login(owner), english, at(8, 10))
        work()
    mail = smtp.inbox.messages[-1]
    assert mail["Subject"] == "Harbour Clinic: your session check-in"
    assert '<html lang="en">' in html_part(mail)
    body = text_part(mail)
    assert "Hello," in body and "Harbour Clinic has a short session check-in" in body
    assert re.search(r"\d{1,2} June 2027, \d\d:\d\d", body), body
    assert "Hola" not in body and "de junio" not in body


def _one_of_each(client: Any, owner: Any, add_session: Any) -> list[OutboxMessage]:
    """An invitation and a reminder of every kind of questionnaire, followed up at 1 and 3
    months (the kind is what the wording depends on)."""
    link, token = CheckinLink.issue(add_session(days_ago=0), created_by=owner)
    messages = []
    for kind in Delivery.Kind.values:
        for months in (1, 3) if kind == Delivery.Kind.FOLLOWUP else (None,):
            d = Delivery.objects.create(
                client=client,
                episode=link.episode,
                kind=kind,
                checkin_link=link,
                token=token,
                followup_month=months,
            )
            for purpose in OutboxMessage.Purpose.values:
                messages.append(
                    OutboxMessage(delivery=d, client=client, channel="sms", purpose=purpose)
                )
    return messages


def test_every_message_in_spanish_with_plurals_and_follow_up_wording(
    settings: Any, client_record: Any, owner: Any, add_session: Any
) -> None:
    settings.BORDIN_BASE_URL = "https://bordin.example-clinic.org"
    spanish(reachable(client_record))
    before = translation.get_language()
    for msg in _one_of_each(client_record, owner, add_session):
        mail = services.email_message(msg)
        text = " ".join((mail.subject, mail.body, _visible_text(str(mail.alternatives[0][0]))))
        assert_no_english(URL.sub(" ", text), allowed=("Harbour Clinic",))
        if msg.delivery.followup_month == 1:
            assert "Hace más o menos 1 mes que terminaste en Harbour Clinic" in mail.body
        if msg.delivery.followup_month == 3:
            assert "Hace más o menos 3 meses que terminaste" in mail.body
    assert translation.get_language() == before  # rendering left the language as it was


def test_text_messages_in_spanish_stay_within_one_message(
    settings: Any, tmp_path: Path, login: Any, owner: Any, client_record: Any, add_session: Any
) -> None:
    settings.BORDIN_BASE_URL = "https://bordin.example-clinic.org"
    settings.BORDIN_SMS_BACKEND = "bordin.web.delivery.sms.FileBackend"
    settings.BORDIN_SMS_FILE_PATH = str(tmp_path / "sms")
    clinic = client_record.clinic
    clinic.name = "Harbour Clinic for Counselling and Psychotherapy, Northern Branch"
    clinic.save()
    client_record.contact_mobile = "+34 600 000 000"
    client_record.consent_sms = True
    client_record.save()
    spanish(client_record)
    # The longest wording of every kind, as an invitation and as a reminder.
    for msg in _one_of_each(client_record, owner, add_session):
        text = services.sms_text(msg)
        assert len(text) <= sms.MAX_LENGTH, text
        assert text.startswith(("Recordatorio: Harbour Clinic", "Harbour Clinic")), text
        assert ": tu " in text and msg.delivery.url in text
        assert_no_english(URL.sub(" ", text), allowed=(clinic.name,))
    # And through the worker: what the backend wrote.
    record(login(owner), client_record, at(1, 10))
    work()
    files = sorted((tmp_path / "sms").glob("*.txt"))
    assert files
    for f in files:
        text = f.read_text("utf-8").split("\n\n", 1)[1].strip()
        assert len(text) <= sms.MAX_LENGTH and ": tu cuestionario " in text


def test_unsubscribe_page_in_the_client_language_whatever_the_browser_asks(
    smtp: SmtpServer, login: Any, owner: Any, client_record: Any, episode: Any, client: Any
) -> None:
    spanish(reachable(client_record))
    with time_machine.travel(at(1, 10), tick=True):
        record(login(owner), client_record, at(1, 10))
        work()
    path = urlsplit(unsubscribe_in(smtp.inbox.messages[0])).path
    client.logout()
    page = client.get(path, HTTP_ACCEPT_LANGUAGE="en-GB,en")
    html = page.content.decode()
    assert page["Content-Language"] == "es" and '<html lang="es"' in html
    assert "¿Dejar de recibir mensajes de Harbour Clinic?" in html
    assert_no_english(_visible_text(html), allowed=("Harbour Clinic",))
    done = client.post(path, HTTP_ACCEPT_LANGUAGE="en-GB,en").content.decode()
    assert "Ya no recibirás estos mensajes" in done
    assert_no_english(_visible_text(done), allowed=("Harbour Clinic",))
    invalid = client.get("/unsubscribe/not-a-token/", HTTP_ACCEPT_LANGUAGE="en")
    assert invalid.status_code == 404 and b"This link does not work" in invalid.content


# --- the client's own time zone -----------------------------------------------------------------


def in_mexico(client: Any) -> Any:
    client.time_zone = "America/Mexico_City"
    client.save(update_fields=["time_zone"])
    return client


def test_quiet_hours_are_the_client_night_when_they_have_a_time_zone(clinic: Any) -> None:
    noon_in_london = at(2, 12)  # 05:00 in Mexico City
    assert not services.in_quiet_hours(clinic, noon_in_london)
    assert services.in_quiet_hours(clinic, noon_in_london, zone=MEXICO)
    assert services.quiet_hours_end(clinic, noon_in_london, zone=MEXICO) == at(2, 15)


def test_no_reminder_in_the_client_local_night(
    smtp: SmtpServer, login: Any, owner: Any, client_record: Any, episode: Any
) -> None:
    in_mexico(reachable(client_record))
    with time_machine.travel(at(1, 10), tick=True):  # invitations are not held back
        record(login(owner), client_record, at(1, 10))
        work()
    sent = len(smtp.inbox.messages)
    assert sent == 2
    # Due after 24 h: daytime at the clinic, but 03:00 to 07:59 for the client.
    for moment in (at(2, 10, 1), at(2, 12), at(2, 14, 59)):
        with time_machine.travel(moment, tick=True):
            work()
        assert len(smtp.inbox.messages) == sent, f"a reminder in the client's night at {moment}"
    with time_machine.travel(at(2, 15, 1), tick=True):  # 08:01 in Mexico City
        work()
    assert len(smtp.inbox.messages) == sent + 2
    # Their emails give the link's expiry (72 h) in their own time: 03:00 in Mexico City.
    assert "until 4 June 2027, 03:00." in text_part(smtp.inbox.messages[0])


def test_client_page_shows_times_in_the_client_time_zone(
    settings: Any, client: Any, client_record: Any, add_session: Any, owner: Any
) -> None:
    settings.BORDIN_CHECKIN_LINK_HOURS = 48
    session = add_session(days_ago=0)
    with time_machine.travel(at(1, 10), tick=False):
        _, token = CheckinLink.issue(session, created_by=owner)  # expires 3 June, 10:00 London
        client.get(f"/c/{token}")
        assert "3 June 2027, 10:00" in client.get("/c/").content.decode()  # the clinic's zone
        in_mexico(client_record)
        html = client.get("/c/").content.decode()
    assert "You can answer until 3 June 2027, 03:00." in html


def test_time_zone_is_set_on_the_client_form_and_checked(
    login: Any, owner: Any, client_record: Any
) -> None:
    c = login(owner)
    post = {"display_name": "Client A", "preferred_language": "es"}
    assert b'name="time_zone"' in c.get(f"/clients/{client_record.pk}/manage/").content
    bad = c.post(f"/clients/{client_record.pk}/contact/", {**post, "time_zone": "Mars/Olympus"})
    assert bad.status_code == 400 and b"Enter a time zone name such as" in bad.content
    c.post(f"/clients/{client_record.pk}/contact/", {**post, "time_zone": "America/Mexico_City"})
    assert Client.objects.get(pk=client_record.pk).time_zone == "America/Mexico_City"
    c.post(f"/clients/{client_record.pk}/contact/", {**post, "time_zone": ""})
    assert Client.objects.get(pk=client_record.pk).time_zone == ""  # back to the clinic's
