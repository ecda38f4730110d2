"""``bordin manage generate_field_key``: print a new key for ``BORDIN_FIELD_KEYS``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from bordin.web import crypto


class Command(BaseCommand):
    help = "Print a new random Fernet key for BORDIN_FIELD_KEYS (store it like a password)."
    requires_system_checks = ()  # works before any key is configured

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(crypto.generate_key())
