"""Email helpers: the demo's file backend (one ``.eml`` per message) and message building."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone


class EmlFileBackend(BaseEmailBackend):
    """Writes each message to ``EMAIL_FILE_PATH/<time>-<random>.eml`` (RFC 5322), so a person
    or a test can open what was sent. Django's own file backend appends several messages to
    one ``.log`` file per connection; one file per message is easier to open."""

    def __init__(self, *args: Any, file_path: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.path = Path(file_path or settings.EMAIL_FILE_PATH)

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        self.path.mkdir(parents=True, exist_ok=True)
        sent = 0
        for message in email_messages:
            stamp = timezone.now().strftime("%Y%m%d-%H%M%S-%f")
            name = f"{stamp}-{secrets.token_hex(4)}.eml"
            tmp = self.path / (name + ".part")
            tmp.write_bytes(message.message().as_bytes())
            tmp.rename(self.path / name)  # whole files only, for anyone watching the folder
            sent += 1
        return sent
