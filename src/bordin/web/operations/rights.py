"""The client's data rights: access (export everything), erasure, and retention (purge).

What belongs to a client is found the way deleting it would find it: Django's deletion
:class:`~django.db.models.deletion.Collector` follows every foreign key that cascades from the
client (episodes, sessions, responses, goals, alerts, links, journey records ...), so a model
added later is exported and erased without changing this module.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, router, transaction
from django.db.models import Max, Q
from django.db.models.deletion import Collector
from django.http import HttpRequest
from django.utils import timezone

from bordin.web.audit import log
from bordin.web.audit.models import AuditEvent, purge_events
from bordin.web.clinic.models import Client, Clinic, Episode
from bordin.web.operations.models import ClientEmailDigest, ClinicSettings, ErasedClient

#: Columns never exported (secrets of links: the token itself is never stored).
HIDDEN = frozenset({"token_hash", "used_key", "idempotency_key"})
#: Models whose rows are bookkeeping, not data about the client.
SKIPPED = (ClientEmailDigest, ErasedClient)


def related_rows(client: Client) -> Iterator[tuple[type[models.Model], list[models.Model]]]:
    """Every stored row that belongs to ``client`` (itself excluded), by model."""
    collector = Collector(using=router.db_for_write(Client), origin=client)
    collector.collect([client])
    found: dict[type[models.Model], dict[Any, models.Model]] = {}
    for model, instances in collector.data.items():
        found.setdefault(model, {}).update({i.pk: i for i in instances})
    for qs in collector.fast_deletes:
        found.setdefault(qs.model, {}).update({i.pk: i for i in qs})
    for model, rows in sorted(found.items(), key=lambda kv: kv[0]._meta.label):
        if model is Client or issubclass(model, SKIPPED):
            continue
        yield model, sorted(rows.values(), key=lambda r: r.pk)


def _row(obj: models.Model) -> dict[str, Any]:
    return {
        f.attname: getattr(obj, f.attname)
        for f in obj._meta.concrete_fields
        if f.attname not in HIDDEN
    }


def gather(client: Client) -> dict[str, Any]:
    """Everything stored about the client, decrypted, as JSON-ready data."""
    events = AuditEvent.objects.filter(client_id=client.pk).order_by("at", "pk")
    data = {
        "client": _row(client),
        "records": {
            model._meta.label: [_row(r) for r in rows] for model, rows in related_rows(client)
        },
        "audit_events": [_row(e) for e in events],
    }
    result: dict[str, Any] = json.loads(json.dumps(data, cls=DjangoJSONEncoder))
    return result


def export_zip(client: Client, *, generated_by: str) -> bytes:
    """``client-<pk>.json`` and a readable ``client-<pk>.pdf`` in one ZIP."""
    from bordin.web.journey.reports import render_pdf

    data = gather(client)
    data["generated"] = {"at": timezone.now().isoformat(), "by": generated_by}
    pdf = render_pdf("operations/export_pdf.html", {"data": data, "client": client})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"client-{client.pk}.json", json.dumps(data, indent=2, ensure_ascii=False))
        archive.writestr(f"client-{client.pk}.pdf", pdf)
    return buffer.getvalue()


def _blank_free_text(model: type[models.Model], pks: list[Any]) -> None:
    """Empty every free-text column (text fields, encrypted or not) of these rows."""
    text = [
        f.name
        for f in model._meta.concrete_fields
        if isinstance(f, models.TextField) and not f.null
    ]
    if text and pks:
        model._default_manager.filter(pk__in=pks).update(**dict.fromkeys(text, ""))


@dataclass(frozen=True)
class Erasure:
    client_id: int
    scores_kept: bool


def erase(request: HttpRequest | None, client: Client, *, reason: str = "by request") -> Erasure:
    """Remove the client's identifying data and free text, or every record of them.

    With the clinic's ``keep_scores_on_erasure`` the client row, episodes, sessions and scores
    stay, de-identified: name replaced, contact details and consent cleared, every free-text
    column emptied, links and digests deleted. Otherwise the client and everything that
    belongs to them is deleted. The audit event records the act, never the erased content;
    audit events never hold names or free text (only ids), so nothing there needs scrubbing.
    """
    keep = ClinicSettings.of(client.clinic).keep_scores_on_erasure
    pk, clinic_id = client.pk, client.clinic_id
    with transaction.atomic():
        if keep:
            for model, rows in related_rows(client):
                if model._meta.label in ("checkins.CheckinLink", "journey.JourneyLink"):
                    model._default_manager.filter(pk__in=[r.pk for r in rows]).delete()
                else:
                    _blank_free_text(model, [r.pk for r in rows])
            Client.objects.filter(pk=pk).update(
                display_name=f"Erased client {pk}",
                contact_email="",
                contact_mobile="",
                consent_email=False,
                consent_email_at=None,
                consent_sms=False,
                consent_sms_at=None,
                active=False,
                archived_at=timezone.now(),
            )
            ClientEmailDigest.objects.filter(client_id=pk).delete()
            ErasedClient.objects.create(client_id=pk)
        else:
            client.delete()
        log.record(
            request,
            log.Action.UPDATE,
            object_type="client",
            object_id=pk,
            client_id=pk,
            clinic_id=clinic_id,
            detail=f"erased {reason}; " + ("scores kept, de-identified" if keep else "all records"),
        )
    return Erasure(client_id=pk, scores_kept=keep)


def due_for_purge(clinic: Clinic, today: date | None = None) -> list[Client]:
    """Clients whose every episode closed more than the clinic's retention years ago."""
    years = ClinicSettings.of(clinic).retention_years
    if years <= 0:
        return []
    today = today or timezone.localdate()
    try:
        cutoff = today.replace(year=today.year - years)
    except ValueError:  # 29 February
        cutoff = today.replace(year=today.year - years, day=28)
    qs = (
        Client.objects.filter(clinic=clinic, erasure__isnull=True)
        .annotate(last_end=Max("episodes__end"))
        .filter(last_end__lt=cutoff)
        .exclude(Q(episodes__status=Episode.Status.OPEN) | Q(episodes__end__isnull=True))
    )
    return list(qs.order_by("pk"))


def audit_cutoff(clinic: Clinic) -> datetime | None:
    """The date before which the clinic's audit events go, or None (0: kept for good)."""
    years = ClinicSettings.of(clinic).audit_retention_years
    return timezone.now() - timedelta(days=365 * years) if years > 0 else None


def purge(*, dry_run: bool) -> tuple[list[tuple[Clinic, int]], list[tuple[Clinic, int]]]:
    """``bordin purge``: erase every client past their clinic's retention (or only list them).

    Returns the ``(clinic, client id)`` pairs due, and ``(clinic, number of audit events older
    than its audit retention)`` for each clinic that has any: removed, unless ``dry_run``,
    through the audit log's one sanctioned delete (:func:`purge_events`).
    """
    due, old_events, cutoffs = [], [], {}
    for clinic in Clinic.objects.order_by("pk"):
        cutoff = audit_cutoff(clinic)
        if cutoff is not None:
            n = AuditEvent.objects.filter(clinic_id=clinic.pk, at__lt=cutoff).count()
            if n:
                old_events.append((clinic, n))
                cutoffs[clinic.pk] = cutoff
        for client in due_for_purge(clinic):
            due.append((clinic, client.pk))
            if not dry_run:
                erase(None, client, reason="by the retention schedule (bordin purge)")
    if not dry_run and cutoffs:
        removed = purge_events(cutoffs)
        old_events = [(clinic, removed.get(clinic.pk, 0)) for clinic, _ in old_events]
    return due, old_events
