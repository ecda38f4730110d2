# ruff: noqa: RUF012 - operations as makemigrations writes them
"""One sanctioned way to remove old audit events: ``bordin purge`` (issue 9).

* The delete trigger lets a ``DELETE`` through only inside a purge's transaction:
  PostgreSQL checks the transaction-local setting ``bordin.audit_purge`` (``SET LOCAL``, gone
  at commit or rollback); SQLite checks for the row of ``audit_purgepermit``, which the purge
  inserts and removes in its own transaction. ``UPDATE`` and ``TRUNCATE`` stay refused.
* ``audit_auditanchor`` keeps, for an event whose predecessor was purged, that predecessor's
  chain hash (never its content), so ``bordin audit verify`` still checks the whole chain.
  It is append-only too.
"""

from typing import Any

from django.db import migrations, models

TABLE = "audit_auditevent"
ANCHORS = "audit_auditanchor"
PERMIT = "audit_purgepermit"
MESSAGE = "audit_auditevent is append-only"
ANCHOR_MESSAGE = "audit_auditanchor is append-only"

POSTGRES_FUNCTION = """
    CREATE OR REPLACE FUNCTION audit_auditevent_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' AND current_setting('bordin.audit_purge', true) = 'on' THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION '{message}: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
    END;
    $$;
"""
POSTGRES_OLD_FUNCTION = f"""
    CREATE OR REPLACE FUNCTION audit_auditevent_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{MESSAGE}: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
    END;
    $$;
"""
POSTGRES_UP = (
    POSTGRES_FUNCTION.format(message=MESSAGE),
    f"""
    CREATE OR REPLACE FUNCTION audit_auditanchor_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{ANCHOR_MESSAGE}: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END;
    $$;
    """,
    f"""
    CREATE TRIGGER audit_auditanchor_no_update_delete BEFORE UPDATE OR DELETE ON {ANCHORS}
    FOR EACH ROW EXECUTE FUNCTION audit_auditanchor_append_only();
    """,
    f"""
    CREATE TRIGGER audit_auditanchor_no_truncate BEFORE TRUNCATE ON {ANCHORS}
    FOR EACH STATEMENT EXECUTE FUNCTION audit_auditanchor_append_only();
    """,
)
POSTGRES_DOWN = (
    f"DROP TRIGGER IF EXISTS audit_auditanchor_no_truncate ON {ANCHORS};",
    f"DROP TRIGGER IF EXISTS audit_auditanchor_no_update_delete ON {ANCHORS};",
    "DROP FUNCTION IF EXISTS audit_auditanchor_append_only();",
    POSTGRES_OLD_FUNCTION,
)
SQLITE_UP = (
    f"CREATE TABLE {PERMIT} (id integer NOT NULL PRIMARY KEY CHECK (id = 1));",
    "DROP TRIGGER IF EXISTS audit_auditevent_no_delete;",
    """
    CREATE TRIGGER audit_auditevent_no_delete BEFORE DELETE ON audit_auditevent
    WHEN NOT EXISTS (SELECT 1 FROM audit_purgepermit)
    BEGIN SELECT RAISE(ABORT, 'audit_auditevent is append-only: DELETE refused'); END;
    """,
    f"""
    CREATE TRIGGER audit_auditanchor_no_update BEFORE UPDATE ON {ANCHORS}
    BEGIN SELECT RAISE(ABORT, '{ANCHOR_MESSAGE}: UPDATE refused'); END;
    """,
    f"""
    CREATE TRIGGER audit_auditanchor_no_delete BEFORE DELETE ON {ANCHORS}
    BEGIN SELECT RAISE(ABORT, '{ANCHOR_MESSAGE}: DELETE refused'); END;
    """,
)
SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS audit_auditanchor_no_delete;",
    "DROP TRIGGER IF EXISTS audit_auditanchor_no_update;",
    "DROP TRIGGER IF EXISTS audit_auditevent_no_delete;",
    f"""
    CREATE TRIGGER audit_auditevent_no_delete BEFORE DELETE ON {TABLE}
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}: DELETE refused'); END;
    """,
    f"DROP TABLE IF EXISTS {PERMIT};",
)


def forward(apps: Any, schema_editor: Any) -> None:
    schema_editor.create_model(apps.get_model("audit", "AuditAnchor"))
    vendor = schema_editor.connection.vendor
    for sql in {"postgresql": POSTGRES_UP, "sqlite": SQLITE_UP}.get(vendor, ()):
        schema_editor.execute(sql, params=None)


def backward(apps: Any, schema_editor: Any) -> None:
    vendor = schema_editor.connection.vendor
    for sql in {"postgresql": POSTGRES_DOWN, "sqlite": SQLITE_DOWN}.get(vendor, ()):
        schema_editor.execute(sql, params=None)
    schema_editor.delete_model(apps.get_model("audit", "AuditAnchor"))


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_i15_audit_chain")]

    operations = [
        migrations.CreateModel(
            name="AuditAnchor",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("event_id", models.BigIntegerField(unique=True)),
                ("previous_hash", models.CharField(max_length=64)),
            ],
            options={"db_table": "audit_auditanchor", "managed": False},
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="action",
            field=models.CharField(
                choices=[
                    ("read", "Read"),
                    ("create", "Create"),
                    ("update", "Update"),
                    ("export", "Export"),
                    ("denied", "Access denied"),
                    ("login", "Log in"),
                    ("login_failed", "Failed log in"),
                    ("logout", "Log out"),
                    ("purge", "Purge of old audit events"),
                ],
                max_length=20,
            ),
        ),
        migrations.RunPython(forward, backward),
    ]
