# ruff: noqa: RUF012 - operations as makemigrations writes them
"""Tamper evidence for the audit log (issue 15).

* ``chain_hash``: each event's SHA-256 over the previous event's hash and its own fields;
  existing events are chained here, in id order (the update trigger is lifted for that only).
* SQLite: a ``BEFORE INSERT`` trigger refuses a row whose id exists already. ``INSERT OR
  REPLACE`` deletes the old row without running delete triggers (unless
  ``recursive_triggers`` is on), so it could rewrite an event despite migration 0001.
"""

from typing import Any

from django.db import migrations, models

from bordin.web.audit.models import chain_hash

TABLE = "audit_auditevent"
MESSAGE = "audit_auditevent is append-only"

SQLITE_NO_REPLACE = """
    CREATE TRIGGER audit_auditevent_no_replace BEFORE INSERT ON audit_auditevent
    WHEN NEW.id IS NOT NULL AND EXISTS (SELECT 1 FROM audit_auditevent WHERE id = NEW.id)
    BEGIN SELECT RAISE(ABORT, 'audit_auditevent is append-only: REPLACE refused'); END;
"""
SQLITE_UPDATE_TRIGGER = f"""
    CREATE TRIGGER audit_auditevent_no_update BEFORE UPDATE ON {TABLE}
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}: UPDATE refused'); END;
"""


def forward(apps: Any, schema_editor: Any) -> None:
    model = apps.get_model("audit", "AuditEvent")
    # Plain SQL: Django's SQLite editor would rebuild the table, losing its triggers.
    schema_editor.execute(
        f"ALTER TABLE {TABLE} ADD COLUMN chain_hash varchar(64) NOT NULL DEFAULT ''"
    )
    vendor = schema_editor.connection.vendor
    rows = list(model._base_manager.order_by("pk"))
    if rows:
        if vendor == "sqlite":
            schema_editor.execute("DROP TRIGGER IF EXISTS audit_auditevent_no_update;")
        elif vendor == "postgresql":
            schema_editor.execute(
                f"ALTER TABLE {TABLE} DISABLE TRIGGER audit_auditevent_no_update_delete;"
            )
        previous = ""
        with schema_editor.connection.cursor() as cursor:
            for row in rows:
                previous = chain_hash(previous, row)
                cursor.execute(
                    "UPDATE audit_auditevent SET chain_hash = %s WHERE id = %s",
                    [previous, row.pk],
                )
        if vendor == "sqlite":
            schema_editor.execute(SQLITE_UPDATE_TRIGGER)
        elif vendor == "postgresql":
            schema_editor.execute(
                f"ALTER TABLE {TABLE} ENABLE TRIGGER audit_auditevent_no_update_delete;"
            )
    if vendor == "sqlite":
        schema_editor.execute(SQLITE_NO_REPLACE)


def backward(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute("DROP TRIGGER IF EXISTS audit_auditevent_no_replace;")
    schema_editor.execute(f"ALTER TABLE {TABLE} DROP COLUMN chain_hash")


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(
                    model_name="auditevent",
                    name="chain_hash",
                    field=models.CharField(blank=True, editable=False, max_length=64),
                ),
            ],
            database_operations=[migrations.RunPython(forward, backward)],
        ),
    ]
