"""A real SMTP server in the test process (aiosmtpd) and helpers for the delivery tests."""

from __future__ import annotations

import email
import email.policy
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from aiosmtpd.controller import Controller

from tests.web.test_crash import free_port  # one helper for a free loopback port

# aiosmtpd logs every SMTP command at INFO: noise in test output, and CPU in the bench.
logging.getLogger("mail.log").setLevel(logging.WARNING)

LONDON = ZoneInfo("Europe/London")  # the test clinic's time zone
LINK = re.compile(r"https?://[^\s\"<>]+/(c|j)/[A-Za-z0-9_\-]+")
UNSUBSCRIBE = re.compile(r"https?://[^\s\"<>]+/unsubscribe/[^\s\"<>]+/")


@dataclass
class Inbox:
    """What the SMTP server accepted. Recipients starting with ``bounce`` get a 550."""

    messages: list[EmailMessage] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.startswith("bounce"):
            with self.lock:
                self.refused.append(address)
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            time.sleep(self.delay)
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        with self.lock:
            self.messages.append(msg)
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.02)
        return list(self.messages)


class SmtpServer:
    def __init__(self, port: int | None = None) -> None:
        self.inbox = Inbox()
        self.port = port or free_port()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def text_part(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def html_part(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def link_in(msg: EmailMessage) -> str:
    found = LINK.search(text_part(msg))
    assert found, text_part(msg)
    return found.group(0)


def unsubscribe_in(msg: EmailMessage) -> str:
    found = UNSUBSCRIBE.search(text_part(msg))
    assert found, text_part(msg)
    return found.group(0)


# --- the delivery path in tests (Django is set up by the time these run) ----------------------


def use_smtp(settings: Any, server: SmtpServer) -> None:
    """Send email to ``server`` (pytest-django's ``settings``), links to the test server."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = server.port
    settings.EMAIL_TIMEOUT = 5
    settings.BORDIN_BASE_URL = "http://testserver"
    settings.BORDIN_DELIVERY_RETRY_SECONDS = 60


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment in the clinic's time zone (Europe/London), in June 2027."""
    return datetime(2027, 6, day, hour, minute, tzinfo=LONDON)


def reachable(client: Any, address: str = "client.a@example.org") -> Any:
    from django.utils import timezone

    client.contact_email = address
    client.consent_email = True
    client.consent_email_at = timezone.now()
    client.save()
    return client


def work() -> None:
    """What `bordin worker` does on a tick: enqueue a pass, and run the queue."""
    from bordin.web.delivery.worker import drain, tick

    tick()
    drain()


def record(http: Any, client: Any, when: datetime) -> Any:
    """The therapist records an attended session on ``when``'s day (the real view)."""
    response = http.post(
        f"/clients/{client.pk}/sessions/",
        {"date": when.date().isoformat(), "attendance": "attended"},
        follow=True,  # POST/redirect/GET: the client page shows the new link once
    )
    assert response.status_code == 200, response.content[:500]
    assert not response.redirect_chain[-1][0].startswith("/login/"), "logged out (idle?)"
    return response


def open_checkin(url: str) -> tuple[Any, str]:
    """The client opens the link in a browser of their own: that browser and the form."""
    from django.test import Client as Browser

    http = Browser()
    assert http.get(urlsplit(url).path)["Location"] == "/c/"
    return http, http.get("/c/").content.decode()


def complete(url: str, goals: list[Any] | None = None) -> None:
    """The client opens the link (a browser of their own) and submits the check-in."""
    from tests.web.helpers import checkin_post

    http, page = open_checkin(url)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page)
    assert key
    response = http.post("/c/", checkin_post(goals or [], key=key.group(1)))
    assert response.status_code == 200
