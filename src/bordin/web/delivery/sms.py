"""Text messages: a small backend interface and the console and file backends.

The contract of every backend (``BORDIN_SMS_BACKEND``, a dotted path to a class):

* ``send(to, text)`` sends one message or raises an exception (the worker retries it);
* ``text`` is at most :data:`MAX_LENGTH` characters (one GSM segment) and carries no clinical
  content: only the clinic's name, the kind of questionnaire and the link (checked by
  :func:`check_text` before any backend sees it).

Real gateways are added by configuration: a class with this ``send`` method.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

MAX_LENGTH = 160


class SmsTooLong(ValueError):
    """The text is longer than one message allows."""


def check_text(text: str) -> str:
    if len(text) > MAX_LENGTH:
        raise SmsTooLong(f"a text message is at most {MAX_LENGTH} characters, got {len(text)}")
    return text


class SmsBackend(Protocol):
    def send(self, to: str, text: str) -> None: ...


class ConsoleBackend:
    """Prints each message to standard output (development)."""

    def send(self, to: str, text: str) -> None:
        sys.stdout.write(f"SMS to {to}: {check_text(text)}\n")
        sys.stdout.flush()


class FileBackend:
    """Writes each message to ``BORDIN_SMS_FILE_PATH/<time>-<random>.txt``."""

    def __init__(self, path: str | None = None) -> None:
        self.path = Path(path or settings.BORDIN_SMS_FILE_PATH)

    def send(self, to: str, text: str) -> None:
        check_text(text)
        self.path.mkdir(parents=True, exist_ok=True)
        name = f"{timezone.now():%Y%m%d-%H%M%S-%f}-{secrets.token_hex(4)}.txt"
        (self.path / name).write_text(f"To: {to}\n\n{text}\n", encoding="utf-8")


def backend() -> SmsBackend:
    cls = import_string(settings.BORDIN_SMS_BACKEND)
    result: SmsBackend = cls()
    return result
