"""Staff invitations, clinic settings for retention and erasure, and client email digests."""

from __future__ import annotations

import hashlib
import hmac
from typing import Self

from django.conf import settings
from django.db import models

from bordin.web.checkins.models import SecureLink, hash_token
from bordin.web.clinic.models import Client, Clinic, StaffProfile


class StaffInvite(SecureLink):
    """A one-time enrolment link for a new staff member (same rules as client links)."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="invites")
    first_name = models.CharField(max_length=150)
    last_name = models.CharField(max_length=150, blank=True)
    email = models.EmailField()
    role = models.CharField(max_length=20, choices=StaffProfile.Role.choices)
    supervisee_ids = models.JSONField(default=list, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The account made when the link was used.",
    )

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"Invitation for {self.email} ({self.state})"

    @classmethod
    def find(cls, token: str) -> Self | None:
        if not token or len(token) > 200:
            return None
        found = cls._default_manager.select_related("clinic").filter(token_hash=hash_token(token))
        return found.first()  # type: ignore[return-value]


class ClinicSettings(models.Model):
    """A clinic's data-protection settings (a row is created with the defaults on first use)."""

    clinic = models.OneToOneField(Clinic, on_delete=models.CASCADE, related_name="operations")
    retention_years = models.PositiveSmallIntegerField(
        default=0,
        help_text=(
            "Erase a client this many years after their last episode closed "
            "(`bordin purge`); 0 keeps records until erased by hand."
        ),
    )
    keep_scores_on_erasure = models.BooleanField(
        default=False,
        help_text=(
            "On erasure keep the client's scores, de-identified, for the clinic's aggregate "
            "statistics; otherwise every record of the client is deleted."
        ),
    )
    audit_retention_years = models.PositiveSmallIntegerField(
        default=0,
        help_text="How long audit events are kept (0: for as long as the database).",
    )

    def __str__(self) -> str:
        return f"Settings of {self.clinic}"

    @classmethod
    def of(cls, clinic: Clinic) -> ClinicSettings:
        row, _ = cls.objects.get_or_create(clinic=clinic)
        return row


def email_digest(email: str) -> str:
    """HMAC-SHA256 (key derived from ``SECRET_KEY``) of the normalised email address.

    The email itself is encrypted at rest; the digest lets the clinic find a duplicate without
    decrypting every address. Normalised: surrounding spaces dropped, lower-cased.
    """
    key = hmac.new(
        settings.SECRET_KEY.encode(), b"bordin.operations.email-digest.v1", hashlib.sha256
    ).digest()
    return hmac.new(key, email.strip().lower().encode(), hashlib.sha256).hexdigest()


class ClientEmailDigest(models.Model):
    """The searchable digest of a client's contact email (none without an email)."""

    client = models.OneToOneField(Client, on_delete=models.CASCADE, related_name="email_digest")
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    digest = models.CharField(max_length=64)

    class Meta:
        indexes = (models.Index(fields=["clinic", "digest"]),)

    def __str__(self) -> str:
        return f"Email digest of client {self.client_id}"

    @classmethod
    def store(cls, client: Client) -> None:
        """Keep the digest in step with ``client.contact_email``."""
        if client.contact_email.strip():
            cls.objects.update_or_create(
                client=client,
                defaults={
                    "clinic_id": client.clinic_id,
                    "digest": email_digest(client.contact_email),
                },
            )
        else:
            cls.objects.filter(client=client).delete()

    @classmethod
    def duplicates(cls, clinic_id: int, email: str, exclude: int | None = None) -> list[int]:
        """Clients of the clinic with this email (pks), except ``exclude``."""
        if not email.strip():
            return []
        qs = cls.objects.filter(clinic_id=clinic_id, digest=email_digest(email))
        if exclude is not None:
            qs = qs.exclude(client_id=exclude)
        return sorted(qs.values_list("client_id", flat=True))


class ErasedClient(models.Model):
    """A client erased with their scores kept (de-identified): never purged or shown again."""

    client = models.OneToOneField(Client, on_delete=models.CASCADE, related_name="erasure")
    erased_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Client {self.client_id} erased {self.erased_at:%Y-%m-%d}"
