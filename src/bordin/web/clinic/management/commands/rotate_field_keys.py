"""``bordin manage rotate_field_keys``: re-encrypt every encrypted value with the current key.

Run it after putting a new key first in ``BORDIN_FIELD_KEYS`` (old keys after it), or after
setting a key for the first time (plaintext rows get encrypted). Afterwards only the first key
is needed. Safe to run again; safe to run while Bordin is serving.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bordin.web import crypto


class Command(BaseCommand):
    help = "Re-encrypt all encrypted free-text fields with the first key in BORDIN_FIELD_KEYS."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args: Any, **options: Any) -> None:
        if crypto.cipher() is None:
            raise CommandError(
                "BORDIN_FIELD_KEYS is not set: there is no key to encrypt with. Generate one "
                "with `bordin manage generate_field_key`."
            )
        total = 0
        for model, names in crypto.encrypted_fields():
            try:
                rows, _ = crypto.reencrypt(model, names, batch_size=options["batch_size"])
            except crypto.DecryptionError as exc:
                raise CommandError(str(exc)) from None
            total += rows
            self.stdout.write(f"{model._meta.label}: {rows} row(s) ({', '.join(names)})")
        self.stdout.write(
            self.style.SUCCESS(
                f"Re-encrypted {total} row(s) with the current key. Keys after the first in "
                "BORDIN_FIELD_KEYS are no longer needed for these rows."
            )
        )
