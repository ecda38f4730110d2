"""Encryption at rest for free text: the client's comments and goals, staff notes on alerts.

Keys come from ``BORDIN_FIELD_KEYS``: comma-separated Fernet keys (AES-128-CBC with
HMAC-SHA256, from ``cryptography``), the **first** one encrypts, every one decrypts
(:class:`cryptography.fernet.MultiFernet`), so a key can be rotated without downtime: put the
new key first, keep the old one second, run ``bordin manage rotate_field_keys``, then drop the
old key. Generate a key with ``bordin manage generate_field_key``.

Stored values carry a prefix, so plaintext written before a key was configured still reads:

* ``enc1:<fernet token>``: ciphertext;
* ``plain:<text>``: plaintext that itself starts with one of the prefixes (no key configured);
* anything else: plaintext (no key configured, or written before encryption was turned on).

Ciphertext is not deterministic: an encrypted column cannot be searched, sorted or compared
in SQL. Without a key, values are stored as plaintext; :func:`check_field_keys` makes that a
warning with ``DEBUG`` on and an error with ``DEBUG`` off (unless
``BORDIN_ALLOW_PLAINTEXT_FREE_TEXT`` is set). See ``docs/security.md``, "Data protection".
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import models, transaction

ENCRYPTED_PREFIX = "enc1:"
PLAIN_PREFIX = "plain:"
KEYS_SETTING = "BORDIN_FIELD_KEYS"


class FieldKeyError(ImproperlyConfigured):
    """``BORDIN_FIELD_KEYS`` holds something that is not a Fernet key."""


class DecryptionError(Exception):
    """A stored value cannot be decrypted with any configured key.

    The message names the field, never the value; :class:`DecryptionErrorMiddleware` turns it
    into a plain 503 page.
    """


def configured_keys() -> tuple[str, ...]:
    """The keys from the settings, current key first."""
    raw = getattr(settings, KEYS_SETTING, ())
    if isinstance(raw, str):
        raw = raw.split(",")
    return tuple(k.strip() for k in raw if k and k.strip())


@functools.lru_cache(maxsize=8)
def _multifernet(keys: tuple[str, ...]) -> MultiFernet:
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key.encode("ascii")))
        except (ValueError, UnicodeEncodeError):
            # Never put the key itself in the message.
            raise FieldKeyError(
                f"Key number {position} in {KEYS_SETTING} is not a Fernet key (32 url-safe "
                "base64-encoded bytes). Generate one with `bordin manage generate_field_key`."
            ) from None
    return MultiFernet(fernets)


def cipher() -> MultiFernet | None:
    """The configured cipher, or ``None`` when no key is configured (plaintext mode)."""
    keys = configured_keys()
    return _multifernet(keys) if keys else None


def generate_key() -> str:
    """A new random Fernet key (256 bits from the OS), as text."""
    return Fernet.generate_key().decode("ascii")


def is_encrypted(stored: str | None) -> bool:
    return stored is not None and stored.startswith(ENCRYPTED_PREFIX)


def encrypt(value: str | None) -> str | None:
    """The value as stored: ciphertext with a key, (escaped) plaintext without one."""
    if value is None:
        return None
    f = cipher()
    if f is None:
        if value.startswith((ENCRYPTED_PREFIX, PLAIN_PREFIX)):
            return PLAIN_PREFIX + value
        return value
    return ENCRYPTED_PREFIX + f.encrypt(value.encode("utf-8")).decode("ascii")


def decrypt(stored: str | None, label: str = "an encrypted field") -> str | None:
    """The plaintext of a stored value; :class:`DecryptionError` if no key opens it."""
    if stored is None:
        return None
    if stored.startswith(PLAIN_PREFIX):
        return stored[len(PLAIN_PREFIX) :]
    if not stored.startswith(ENCRYPTED_PREFIX):
        return stored  # plaintext from before encryption was turned on
    f = cipher()
    if f is None:
        raise DecryptionError(
            f"{label} is encrypted but {KEYS_SETTING} is not set: configure the key(s) it was "
            "encrypted with."
        )
    try:
        return f.decrypt(stored[len(ENCRYPTED_PREFIX) :].encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError):
        raise DecryptionError(
            f"{label} could not be decrypted with any key in {KEYS_SETTING}: a key it was "
            "encrypted with is missing (removed too early after a rotation?) or the value is "
            "damaged."
        ) from None


if TYPE_CHECKING:
    _TextField = models.TextField[Any, str]
else:
    _TextField = models.TextField


class EncryptedTextField(_TextField):
    """A text column holding ciphertext; Python code sees the plaintext.

    ``max_length`` is checked on the plaintext (forms and model validation); the column is
    unbounded text because ciphertext is longer. Lookups other than ``isnull`` make no sense
    on ciphertext and are not supported.
    """

    description = "Text encrypted at rest (Fernet)"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.max_length is not None:
            from django.core.validators import MaxLengthValidator

            self.validators.append(MaxLengthValidator(self.max_length))

    def _label(self) -> str:
        model = getattr(self, "model", None)
        return f"{model._meta.label}.{self.name}" if model is not None else self.name

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        return decrypt(value, self._label())

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        return encrypt(value)


def encrypted_fields() -> Iterator[tuple[type[models.Model], list[str]]]:
    """Every concrete model with encrypted fields, and the names of those fields."""
    for model in apps.get_models():
        names = [
            f.name
            for f in model._meta.concrete_fields
            if isinstance(f, EncryptedTextField) and f.model is model
        ]
        if names and model._meta.managed:
            yield model, names


def reencrypt(
    model: type[models.Model], names: Sequence[str], *, batch_size: int = 500
) -> tuple[int, int]:
    """Rewrite every row of ``model`` with the current key; returns (rows, values rewritten).

    Plaintext becomes ciphertext, ciphertext under an older key gets the current one. Each
    batch is one transaction; a value that no configured key opens stops the run with
    :class:`DecryptionError` (the batch is rolled back, earlier batches stay rewritten, which
    is harmless: they read back the same).
    """
    if cipher() is None:
        raise FieldKeyError(f"{KEYS_SETTING} is not set: there is no key to encrypt with.")
    rows = rewritten = 0
    manager = model._base_manager
    pks = list(manager.order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(pks), batch_size):
        chunk = pks[start : start + batch_size]
        with transaction.atomic():
            # Loading decrypts (with any key); bulk_update encrypts with the current key.
            objs = list(manager.filter(pk__in=chunk).select_for_update().only("pk", *names))
            if objs:
                manager.bulk_update(objs, list(names))
            rows += len(objs)
            rewritten += len(objs) * len(names)
    return rows, rewritten


def encrypt_existing(app_label: str, model_name: str, *names: str) -> Any:
    """A ``RunPython`` function: encrypt existing rows when a key is configured.

    Without a key it does nothing (the rows stay plaintext and still read); run
    ``bordin manage rotate_field_keys`` once a key is set.
    """

    def forward(migration_apps: Any, schema_editor: Any) -> None:
        if cipher() is not None:
            reencrypt(migration_apps.get_model(app_label, model_name), names)

    return forward


def decrypt_existing(app_label: str, model_name: str, *names: str) -> Any:
    """A ``RunPython`` reverse function: write the plaintext back (before the field reverts)."""

    def backward(migration_apps: Any, schema_editor: Any) -> None:
        model = migration_apps.get_model(app_label, model_name)
        qn = schema_editor.quote_name
        meta = model._meta
        columns = ", ".join(f"{qn(meta.get_field(n).column)} = %s" for n in names)
        # Identifiers come from the model and are quoted; the values go in as parameters.
        table, pk = qn(meta.db_table), qn(meta.pk.column)
        sql = f"UPDATE {table} SET {columns} WHERE {pk} = %s"  # noqa: S608  # nosec B608
        with schema_editor.connection.cursor() as cursor:
            for row in model._base_manager.order_by("pk").only("pk", *names):
                values = [getattr(row, n) for n in names]
                cursor.execute(sql, [*values, row.pk])

    return backward


# ----------------------------------------------------------------------------- system checks


@checks.register(checks.Tags.security)
def check_field_keys(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Keys well-formed; no key: warning in development, error in production (unless allowed)."""
    keys = configured_keys()
    if keys:
        try:
            _multifernet(keys)
        except FieldKeyError as exc:
            return [checks.Error(str(exc), id="bordin.E002")]
        return []
    hint = (
        "Generate a key with `bordin manage generate_field_key` and set "
        f"{KEYS_SETTING}=<key> (see docs/security.md, 'Data protection')."
    )
    if settings.DEBUG:
        return [
            checks.Warning(
                "Free-text answers, goals and alert notes are stored UNENCRYPTED: "
                f"{KEYS_SETTING} is not set (acceptable for the demo only).",
                hint=hint,
                id="bordin.W001",
            )
        ]
    if getattr(settings, "BORDIN_ALLOW_PLAINTEXT_FREE_TEXT", False):
        return [
            checks.Info(
                "Free text is stored unencrypted (BORDIN_ALLOW_PLAINTEXT_FREE_TEXT=true).",
                id="bordin.I001",
            )
        ]
    return [
        checks.Error(
            f"{KEYS_SETTING} is not set and DEBUG is off: free text (client comments, goals, "
            "alert notes) would be stored unencrypted.",
            hint=hint + " To store plaintext deliberately (e.g. on an encrypted disk), set "
            "BORDIN_ALLOW_PLAINTEXT_FREE_TEXT=true.",
            id="bordin.E001",
        )
    ]


# -------------------------------------------------------------------------------- middleware


class DecryptionErrorMiddleware:
    """Answer a :class:`DecryptionError` with a plain 503 page and log it (no data, no trace)."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        return self.get_response(request)

    def process_exception(self, request: Any, exception: Exception) -> Any:
        if not isinstance(exception, DecryptionError):
            return None
        import logging

        from django.http import HttpResponse

        logging.getLogger("bordin.crypto").error("%s", exception)
        response = HttpResponse(
            "Bordin cannot read some of its stored data because of a configuration problem. "
            "Please tell your administrator (see the server log).\n",
            status=503,
            content_type="text/plain; charset=utf-8",
        )
        response["Cache-Control"] = "no-store"
        return response
