"""A real SMTP server in the test process (aiosmtpd) and helpers for the delivery tests."""

from __future__ import annotations

import email
import email.policy
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.web.test_crash import free_port  # one helper for a free loopback port

# aiosmtpd logs every SMTP command at INFO: noise in test output, and CPU in the bench.
logging.getLogger("mail.log").setLevel(logging.WARNING)

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
