"""``AuditEvent``: who did what to which record, from where and when. Append-only.

Three layers keep the log append-only:

* the model refuses to update or delete a stored event (``save()`` on an existing row,
  ``delete()``, and ``QuerySet.update()``/``delete()`` raise :class:`AppendOnlyError`);
* the database refuses too: triggers created by migration ``0001`` reject ``UPDATE`` and
  ``DELETE`` on the table (and ``TRUNCATE`` on PostgreSQL), whatever client sends them;
* the model is ``managed = False``: its table is created by its own migration, so Django's
  ``flush`` (and the test runner's flush between transactional tests) never tries to empty it.
  Schema changes to this model therefore need a hand-written migration.

Tamper evidence (issue 15): every event carries ``chain_hash``, the SHA-256 of the previous
event's hash and this event's fields (:func:`chain_hash`), so a row changed, removed or
replaced behind the application's back (triggers dropped, the file edited) breaks the chain
from there on. ``bordin audit verify`` recomputes it (:func:`verify_chain`). Writers take a
lock (PostgreSQL: a transaction-level advisory lock; SQLite: the immediate transaction's write
lock) so that the chain follows the id order. On SQLite a ``BEFORE INSERT`` trigger refuses a
row whose id exists already: ``INSERT OR REPLACE`` does not run delete triggers.

Retention (issue 9): ``bordin purge`` is the one path that removes events, those older than
their clinic's ``audit_retention_years`` (:func:`purge_events`). It runs in one transaction
that lifts the delete trigger for itself only (PostgreSQL: ``SET LOCAL bordin.audit_purge``;
SQLite: the row of ``audit_purgepermit``, inserted and removed in that transaction; migration
``0003``), records the purge as an event and, for each remaining event whose predecessor it
removes, keeps that predecessor's hash as an :class:`AuditAnchor` so the chain still verifies.

Nothing points at other tables with a foreign key: users, clients and links are kept as plain
ids (plus a username snapshot), so deleting a user or a client never has to touch (update or
cascade-delete) the trail.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from django.db import connections, models, router, transaction
from django.db.models import Count, Max, Min
from django.utils import timezone
from django.utils.translation import gettext_lazy

TABLE = "audit_auditevent"

#: The fields a chain hash covers, in this order (everything but the id and the hash).
CHAIN_FIELDS = (
    "at",
    "user_id",
    "username",
    "role",
    "checkin_link_id",
    "clinic_id",
    "action",
    "object_type",
    "object_id",
    "client_id",
    "detail",
    "path",
    "ip_address",
    "user_agent",
)
#: Key of PostgreSQL's advisory lock that serialises writers of the chain.
CHAIN_LOCK = 0x0B0D1A0D1


class AppendOnlyError(Exception):
    """Audit events are never changed or removed."""


def chain_hash(previous: str, event: AuditEvent) -> str:
    """SHA-256 over the previous event's hash and this event's fields (canonical JSON)."""
    values: list[Any] = []
    for name in CHAIN_FIELDS:
        value = getattr(event, name)
        if name == "at":
            value = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        elif value is not None and not isinstance(value, int):
            value = str(value)
        values.append(value)
    payload = json.dumps([previous, *values], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


#: The newest event's hash (tests/web/test_audit_chain.py checks it against the ORM's).
NEWEST_HASH_SQL = "SELECT chain_hash FROM audit_auditevent ORDER BY id DESC LIMIT 1"


def _lock_and_last_hash(using: str) -> str:
    """Take the chain's lock (until the transaction ends) and read the newest event's hash."""
    connection = connections[using]
    # Written out rather than through the ORM: every audited request runs it, and compiling
    # the query cost more CPU than running it (issue 10). Two statements: the read must see
    # what the lock's previous holder committed.
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK])
        cursor.execute(NEWEST_HASH_SQL)
        row = cursor.fetchone()
    return str(row[0]) if row and row[0] else ""


def verify_chain(using: str = "default") -> tuple[int, AuditEvent | None]:
    """``(events checked, first bad event or None)``, recomputing the chain in id order.

    An event whose predecessor was purged chains from the hash its anchor kept.
    """
    anchors = dict(
        AuditAnchor.objects.using(using).values_list("event_id", "previous_hash").iterator()
    )
    previous = ""
    checked = 0
    for event in AuditEvent.objects.using(using).order_by("pk").iterator(chunk_size=2000):
        previous = anchors.get(event.pk, previous)
        if event.chain_hash != chain_hash(previous, event):
            return checked, event
        previous = event.chain_hash
        checked += 1
    return checked, None


def purge_events(cutoffs: Mapping[int, datetime], using: str = "default") -> dict[int, int]:
    """Remove each clinic's events dated before its cutoff: ``{clinic id: events removed}``.

    The only sanctioned delete (``bordin purge``). In one transaction, holding the chain's
    lock: one ``purge`` event per clinic names how many events were removed, up to which id
    and date (never their content); anchors keep the hashes the remaining events chain from;
    then the rows go, with the delete trigger lifted for this transaction only.
    """
    events = AuditEvent.objects.using(using)
    connection = connections[using]
    with transaction.atomic(using=using):
        _lock_and_last_hash(using)
        found: dict[int, tuple[int, int, int, datetime]] = {}  # n, first id, last id, cutoff
        for clinic_id, cutoff in cutoffs.items():
            old = events.filter(clinic_id=clinic_id, at__lt=cutoff)
            stats = old.aggregate(n=Count("pk"), first=Min("pk"), last=Max("pk"))
            if stats["n"]:
                found[clinic_id] = (stats["n"], stats["first"], stats["last"], cutoff)
        if not found:
            return {}
        # Recorded first, so the newest event (the chain's head) is never one that goes.
        events.bulk_create(
            AuditEvent(
                clinic_id=clinic_id,
                role="system",
                action=AuditEvent.Action.PURGE,
                object_type="audit_log",
                detail=(
                    f"bordin purge removed {n} audit events dated before "
                    f"{cutoff.astimezone(UTC):%Y-%m-%d} (ids up to #{last})"
                ),
            )
            for clinic_id, (n, _, last, cutoff) in found.items()
        )
        anchored = set(AuditAnchor.objects.using(using).values_list("event_id", flat=True))
        first = min(stats[1] for stats in found.values())
        doomed: list[int] = []
        anchors: list[AuditAnchor] = []
        gone_hash: str | None = None
        rows = events.filter(pk__gte=first).order_by("pk")
        for pk, clinic_id, at, hash_ in rows.values_list(
            "pk", "clinic_id", "at", "chain_hash"
        ).iterator(chunk_size=2000):
            if clinic_id in found and at < found[clinic_id][3]:
                doomed.append(pk)
                gone_hash = hash_
            elif gone_hash is not None:
                if pk not in anchored:  # else it chains from an earlier purge's anchor
                    anchors.append(AuditAnchor(event_id=pk, previous_hash=gone_hash))
                gone_hash = None
        AuditAnchor.objects.using(using).bulk_create(anchors)
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SET LOCAL bordin.audit_purge = 'on'")
            else:
                cursor.execute("INSERT INTO audit_purgepermit (id) VALUES (1)")
            cursor.executemany(
                "DELETE FROM audit_auditevent WHERE id = %s", [[pk] for pk in doomed]
            )
            if connection.vendor == "postgresql":
                cursor.execute("SET LOCAL bordin.audit_purge = 'off'")
            else:
                cursor.execute("DELETE FROM audit_purgepermit")
    return {clinic_id: stats[0] for clinic_id, stats in found.items()}


class AppendOnlyQuerySet(models.QuerySet[Any]):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("Audit events cannot be updated.")

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> int:
        raise AppendOnlyError("Audit events cannot be updated.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit events cannot be deleted.")


class AuditEventQuerySet(AppendOnlyQuerySet):
    def bulk_create(self, objs: Iterable[AuditEvent], *args: Any, **kwargs: Any) -> Any:
        rows = list(objs)
        with transaction.atomic(using=self.db, savepoint=False):
            previous = _lock_and_last_hash(self.db)
            for row in rows:
                row.chain_hash = previous = chain_hash(previous, row)
            return super().bulk_create(rows, *args, **kwargs)


class AuditEvent(models.Model):
    class Action(models.TextChoices):
        READ = "read", gettext_lazy("Read")
        CREATE = "create", gettext_lazy("Create")
        UPDATE = "update", gettext_lazy("Update")
        EXPORT = "export", gettext_lazy("Export")
        DENIED = "denied", gettext_lazy("Access denied")
        LOGIN = "login", gettext_lazy("Log in")
        LOGIN_FAILED = "login_failed", gettext_lazy("Failed log in")
        LOGOUT = "logout", gettext_lazy("Log out")
        PURGE = "purge", gettext_lazy("Purge of old audit events")

    #: ``role`` of an event whose actor is a client's check-in link rather than a user.
    CHECKIN_LINK_ROLE = "checkin_link"

    at = models.DateTimeField(default=timezone.now)
    user_id = models.BigIntegerField(null=True, blank=True)
    username = models.CharField(max_length=150, blank=True)
    role = models.CharField(max_length=20, blank=True)
    checkin_link_id = models.BigIntegerField(
        null=True, blank=True, help_text="The actor, for a client's check-in."
    )
    clinic_id = models.BigIntegerField(null=True, blank=True)
    action = models.CharField(max_length=20, choices=Action.choices)
    object_type = models.CharField(max_length=40, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    client_id = models.BigIntegerField(null=True, blank=True)
    detail = models.CharField(max_length=200, blank=True)
    path = models.CharField(max_length=500, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    chain_hash = models.CharField(max_length=64, blank=True, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        managed = False  # created by migration 0001 with its triggers; never flushed
        db_table = TABLE
        ordering = ("-at", "-pk")
        indexes = (
            models.Index(fields=["clinic_id", "at"], name="audit_clinic_at"),
            models.Index(fields=["client_id", "at"], name="audit_client_at"),
            models.Index(fields=["user_id", "at"], name="audit_user_at"),
        )

    def __str__(self) -> str:
        who = self.username or (f"link {self.checkin_link_id}" if self.checkin_link_id else "?")
        return (
            f"{self.at:%Y-%m-%d %H:%M:%S} {who} {self.action} {self.object_type} {self.object_id}"
        )

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding or kwargs.get("force_update") or kwargs.get("update_fields"):
            raise AppendOnlyError("Audit events cannot be updated.")
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        with transaction.atomic(using=using, savepoint=False):
            self.chain_hash = chain_hash(_lock_and_last_hash(using), self)
            super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit events cannot be deleted.")


class AuditAnchor(models.Model):
    """The chain hash an event follows on from, kept when its predecessor was purged.

    Append-only like the log (triggers from migration ``0003``); it holds hashes, never the
    purged events' content.
    """

    event_id = models.BigIntegerField(unique=True)
    previous_hash = models.CharField(max_length=64)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        managed = False  # created by migration 0003 with its triggers; never flushed
        db_table = "audit_auditanchor"

    def __str__(self) -> str:
        return f"event #{self.event_id} follows {self.previous_hash[:12]}"
