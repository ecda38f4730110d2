"""Client and episode operations: add, contact and consent, reassign, close, return, archive."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from bordin.web.audit import log
from bordin.web.clinic import scoping
from bordin.web.clinic.models import Client, Episode
from bordin.web.operations.models import ClientEmailDigest

CONTACT_FIELDS = ("contact_email", "contact_mobile", "preferred_language", "time_zone")


def therapists_of(clinic_id: int) -> QuerySet[Any]:
    """Active staff of the clinic who can hold a caseload."""
    return (
        get_user_model()
        ._default_manager.filter(
            staff__clinic_id=clinic_id, staff__role__in=scoping.CLINICAL_ROLES, is_active=True
        )
        .order_by("username")
    )


def _record(
    request: HttpRequest | None,
    action: str,
    object_type: str,
    object_id: int,
    client: Client,
    detail: str,
) -> None:
    log.record(
        request,
        action,
        object_type=object_type,
        object_id=object_id,
        client_id=client.pk,
        clinic_id=client.clinic_id,
        detail=detail,
    )


def _consent(client: Client, data: dict[str, Any]) -> list[str]:
    """Apply the consent boxes; a change records the date it was given or withdrawn."""
    changed = []
    now = timezone.now()
    for kind in ("email", "sms"):
        given = bool(data.get(f"consent_{kind}"))
        if given != getattr(client, f"consent_{kind}") or client.pk is None:
            setattr(client, f"consent_{kind}", given)
            setattr(client, f"consent_{kind}_at", now)
            changed.append(f"consent {kind} {'given' if given else 'withdrawn'}")
    return changed


def create(request: HttpRequest | None, clinic_id: int, data: dict[str, Any]) -> Client:
    """A new client with an open episode starting today."""
    with transaction.atomic():
        client = Client(
            clinic_id=clinic_id,
            therapist=data["therapist"],
            display_name=data["display_name"],
            **{f: data.get(f) or "" for f in CONTACT_FIELDS},
        )
        client.preferred_language = data.get("preferred_language") or "en"
        _consent(client, data)
        client.save()
        ClientEmailDigest.store(client)
        Episode.objects.create(client=client, start=timezone.localdate())
        _record(
            request,
            log.Action.CREATE,
            "client",
            client.pk,
            client,
            f"client added for therapist {data['therapist'].get_username()}",
        )
    return client


def update_contact(request: HttpRequest, client: Client, data: dict[str, Any]) -> None:
    with transaction.atomic():
        client.display_name = data["display_name"]
        for f in CONTACT_FIELDS:
            setattr(client, f, data.get(f) or "")
        client.preferred_language = client.preferred_language or "en"
        changes = _consent(client, data)
        client.save()
        ClientEmailDigest.store(client)
        _record(
            request,
            log.Action.UPDATE,
            "client",
            client.pk,
            client,
            "; ".join(["contact details saved", *changes]),
        )


def reassign(request: HttpRequest, client: Client, therapist: Any) -> None:
    """Move the client to another therapist; the old one loses access with the next request."""
    with transaction.atomic():
        old = client.therapist.get_username()
        client.therapist = therapist
        client.save(update_fields=["therapist"])
        _record(
            request,
            log.Action.UPDATE,
            "client",
            client.pk,
            client,
            f"therapist {old} -> {therapist.get_username()}",
        )


def open_episode(client: Client) -> Episode | None:
    return client.episodes.filter(status=Episode.Status.OPEN).order_by("-start", "-pk").first()


def close_episode(request: HttpRequest, episode: Episode, reason: str, end: date) -> None:
    with transaction.atomic():
        episode.status = Episode.Status.CLOSED
        episode.ending_reason = reason
        episode.end = end
        episode.save(update_fields=["status", "ending_reason", "end"])
        _record(
            request,
            log.Action.UPDATE,
            "episode",
            episode.pk,
            episode.client,
            f"episode closed: {reason}",
        )


def start_episode(request: HttpRequest, client: Client) -> Episode:
    """A returning client: a new episode of the same client (earlier ones stay visible)."""
    with transaction.atomic():
        episode = Episode.objects.create(client=client, start=timezone.localdate())
        if client.archived_at is not None or not client.active:
            client.archived_at = None
            client.active = True
            client.save(update_fields=["archived_at", "active"])
        _record(
            request,
            log.Action.CREATE,
            "episode",
            episode.pk,
            client,
            "returning client: new episode",
        )
    return episode


def archive(request: HttpRequest, client: Client) -> None:
    """Off the caseload, every record kept."""
    with transaction.atomic():
        client.archived_at = timezone.now()
        client.active = False
        client.save(update_fields=["archived_at", "active"])
        _record(request, log.Action.UPDATE, "client", client.pk, client, "archived")
