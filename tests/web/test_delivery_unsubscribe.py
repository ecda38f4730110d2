"""Unsubscribing (docs/delivery.md): which messages are essential, the RFC 2369/8058 headers,
and the one-click POST a mail program sends. A real SMTP server in the test process
(aiosmtpd), the real worker code, a clock we move (time-machine), and a test client that
enforces CSRF like a browser's."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
import time_machine
from django.test import Client as Browser

from bordin.web.audit.models import AuditEvent
from bordin.web.clinic.models import Episode
from bordin.web.delivery import services
from bordin.web.delivery.models import Delivery, OutboxMessage, Unsubscribe
from tests.web.delivery_helpers import (
    LONDON,
    SmtpServer,
    at,
    reachable,
    record,
    unsubscribe_in,
    use_smtp,
    work,
)

pytestmark = pytest.mark.django_db

ONE_CLICK = {"List-Unsubscribe": "One-Click"}
BODY, FORM = "List-Unsubscribe=One-Click", "application/x-www-form-urlencoded"


@pytest.fixture
def smtp(settings: Any) -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        use_smtp(settings, server)
        yield server


def first_mail(smtp: SmtpServer, login: Any, owner: Any, client_record: Any) -> Any:
    """Session 1 recorded at 10:00 on 1 June; the worker sends the check-in and fit check."""
    reachable(client_record)
    with time_machine.travel(at(1, 10), tick=True):
        record(login(owner), client_record, at(1, 10))
        work()
    assert len(smtp.inbox.messages) == 2
    return smtp.inbox.messages[0]


# --- essential and non-essential ---------------------------------------------------------------


def test_every_kind_of_message_is_classified_and_none_is_essential() -> None:
    # A new kind of delivery must say whether an unsubscribe stops it.
    assert set(services.ESSENTIAL) == set(Delivery.Kind.values)
    for kind in Delivery.Kind.values:
        for purpose in OutboxMessage.Purpose.values:
            assert services.is_essential(kind, purpose) is False, (kind, purpose)


def test_after_unsubscribe_no_reminder_invitation_or_follow_up(
    smtp: SmtpServer,
    login: Any,
    owner: Any,
    client_record: Any,
    episode: Episode,
    django_capture_on_commit_callbacks: Any,
) -> None:
    mail = first_mail(smtp, login, owner, client_record)
    assert Browser().post(urlsplit(unsubscribe_in(mail)).path, ONE_CLICK).status_code == 200
    sent = len(smtp.inbox.messages)
    with time_machine.travel(at(2, 12), tick=True):  # the two reminders would be due
        work()
    with time_machine.travel(at(8, 10), tick=True):  # session 2: a new check-in invitation
        record(login(owner), client_record, at(8, 10))
        work()
    with time_machine.travel(at(9, 10), tick=True):  # a planned ending: summary, follow-ups
        with django_capture_on_commit_callbacks(execute=True):
            episode.status, episode.end = Episode.Status.CLOSED, at(9, 10).date()
            episode.ending_reason = Episode.EndingReason.PLANNED
            episode.save()
        work()
    for month in (7, 9, 12):  # past every follow-up's day (1, 3 and 6 months)
        with time_machine.travel(datetime(2027, month, 15, 12, tzinfo=LONDON), tick=True):
            work()
    assert len(smtp.inbox.messages) == sent, [m["Subject"] for m in smtp.inbox.messages[sent:]]
    assert not OutboxMessage.objects.filter(purpose="reminder").exists()
    assert OutboxMessage.objects.filter(status="sent").count() == 2  # session 1's only
    assert Delivery.objects.get(kind="checkin", session__number=2).channel == ""
    assert not Delivery.objects.filter(kind="followup", issued_at__isnull=False).exists()


def test_a_message_marked_essential_still_goes_after_unsubscribe(
    smtp: SmtpServer,
    login: Any,
    owner: Any,
    client_record: Any,
    episode: Episode,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No kind is essential today; the sender's rule for one that is, on the real path:
    the graduation summary made essential for this test only."""
    monkeypatch.setitem(services.ESSENTIAL, Delivery.Kind.GRADUATION, True)
    first_mail(smtp, login, owner, client_record)
    services.record_unsubscribe(client_record, "email")
    sent = len(smtp.inbox.messages)
    with time_machine.travel(at(9, 10), tick=True):
        services.on_planned_ending(episode)
        work()
    [summary] = smtp.inbox.messages[sent:]
    assert "end-of-therapy summary" in summary["Subject"]
    # An essential message offers no unsubscribe it would not honour.
    assert summary["List-Unsubscribe"] is None and summary["List-Unsubscribe-Post"] is None
    assert OutboxMessage.objects.get(delivery__kind="graduation").essential is True
    with time_machine.travel(at(10, 12), tick=True):  # its reminder is not essential
        work()
    assert len(smtp.inbox.messages) == sent + 1


# --- RFC 2369 / RFC 8058 one-click ---------------------------------------------------------------


def test_every_non_essential_email_has_one_click_headers(
    smtp: SmtpServer, login: Any, owner: Any, client_record: Any, episode: Episode
) -> None:
    first_mail(smtp, login, owner, client_record)
    with time_machine.travel(at(2, 12), tick=True):
        work()  # the two reminders
    assert len(smtp.inbox.messages) == 4
    for mail in smtp.inbox.messages:
        header = mail["List-Unsubscribe"].strip()
        assert header == f"<{unsubscribe_in(mail)}>", header
        assert header.startswith("<http://testserver/unsubscribe/")
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_one_click_post_unsubscribes_without_login_or_csrf_token(
    smtp: SmtpServer, login: Any, owner: Any, client_record: Any, episode: Episode
) -> None:
    mail = first_mail(smtp, login, owner, client_record)
    url = mail["List-Unsubscribe"].strip()[1:-1]
    mail_program = Browser(enforce_csrf_checks=True)  # no cookies, no session, no token
    done = mail_program.post(urlsplit(url).path, BODY, content_type=FORM)
    assert done.status_code == 200 and b"data-unsubscribed" in done.content
    row = Unsubscribe.objects.get(client=client_record, channel="email")
    assert row.via == "one-click"
    assert AuditEvent.objects.filter(
        object_type="unsubscribe", client_id=client_record.pk, detail__contains="one-click"
    ).exists()
    # Pending messages on that channel are cancelled; a second POST records nothing new.
    assert mail_program.post(urlsplit(url).path, BODY, content_type=FORM).status_code == 200
    assert Unsubscribe.objects.count() == 1
    # The same body as multipart/form-data (RFC 8058 allows both encodings).
    other = services.unsubscribe_token(client_record, "sms")
    assert mail_program.post(f"/unsubscribe/{other}/", ONE_CLICK).status_code == 200
    assert Unsubscribe.objects.filter(channel="sms", via="one-click").count() == 1


def test_get_never_unsubscribes_and_other_posts_need_the_csrf_token(
    smtp: SmtpServer, login: Any, owner: Any, client_record: Any, episode: Episode
) -> None:
    path = urlsplit(unsubscribe_in(first_mail(smtp, login, owner, client_record))).path
    scanner = Browser(enforce_csrf_checks=True)
    for _ in range(3):  # a mail scanner prefetching the link, even with the one-click query
        page = scanner.get(path)
        assert page.status_code == 200 and b'data-action="unsubscribe"' in page.content
        assert scanner.get(path, ONE_CLICK).status_code == 200
    assert not Unsubscribe.objects.exists()
    # Only the exact one-click body skips the CSRF check: anything else is a forgery.
    for body in ({}, {"List-Unsubscribe": "one-click"}, {**ONE_CLICK, "x": "1"}):
        assert Browser(enforce_csrf_checks=True).post(path, body).status_code == 403, body
    assert not Unsubscribe.objects.exists()
    # A forged token is refused whatever the body.
    assert Browser().post("/unsubscribe/forged/", ONE_CLICK).status_code == 404
    # The confirmation page's own button (with its CSRF token) still works.
    page = scanner.get(path).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token
    done = scanner.post(path, {"csrfmiddlewaretoken": token.group(1)})
    assert done.status_code == 200 and b"data-unsubscribed" in done.content
    assert Unsubscribe.objects.get().via == "link"
