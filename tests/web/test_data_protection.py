"""Free text encrypted at rest: raw columns hold ciphertext, rotation, wrong keys, checks."""

from __future__ import annotations

import io
import logging
import re
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from bordin.web import crypto
from bordin.web.alerts.models import Alert
from bordin.web.checkins.models import CheckinLink
from bordin.web.clinic.models import Goal, Response
from tests.web.helpers import checkin_post, record_checkin

pytestmark = pytest.mark.django_db

COMMENT = "I sometimes feel my therapist doesn't listen — ünïcödé"
OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()


def raw(table: str, column: str, pk: int) -> str:
    """The column's value exactly as the database holds it."""
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {qn(column)} FROM {qn(table)} WHERE id = %s", [pk])  # noqa: S608 - test
        value: str = cursor.fetchone()[0]
    return value


def set_raw(table: str, column: str, pk: int, value: str) -> None:
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {qn(table)} SET {qn(column)} = %s WHERE id = %s", [value, pk])  # noqa: S608 - test


def fernet_plaintext(stored: str, key: str) -> str:
    assert stored.startswith(crypto.ENCRYPTED_PREFIX)
    return Fernet(key.encode()).decrypt(stored[len(crypto.ENCRYPTED_PREFIX) :]).decode()


@pytest.fixture
def keys(settings: Any) -> Any:
    """Set ``BORDIN_FIELD_KEYS`` for the rest of the test: ``keys(NEW_KEY, OLD_KEY)``."""

    def use(*values: str) -> None:
        settings.BORDIN_FIELD_KEYS = list(values)

    use(OLD_KEY)
    return use


@pytest.fixture
def response(keys: Any, add_session: Any) -> Response:
    session = add_session(days_ago=0)
    record_checkin(session, {"goals": 8, "tasks": 8, "bond": 8, "overall": 8})
    stored = Response.objects.get(session=session)
    stored.free_text = COMMENT
    stored.save()
    return stored


def test_checkin_free_text_and_goals_are_ciphertext_in_the_database(
    client: Any, keys: Any, add_session: Any, goals: list[Goal]
) -> None:
    _, token = CheckinLink.issue(add_session(days_ago=0))
    client.get(f"/c/{token}")
    assert client.post("/c/", checkin_post(goals, alliance__better=COMMENT)).status_code == 200
    alliance = Response.objects.get(instrument__code="alliance")
    assert alliance.free_text == COMMENT  # the model reads plaintext
    stored = raw("clinic_response", "free_text", alliance.pk)
    assert COMMENT not in stored and "therapist" not in stored
    assert fernet_plaintext(stored, OLD_KEY) == COMMENT
    # Empty answers are encrypted too: the column does not tell who left a comment.
    wellbeing = Response.objects.get(instrument__code="wellbeing")
    assert wellbeing.free_text == ""
    assert raw("clinic_response", "free_text", wellbeing.pk).startswith("enc1:")
    # Goals are the client's own words.
    goal_raw = raw("clinic_goal", "text", goals[0].pk)
    assert "Sleep" not in goal_raw
    assert fernet_plaintext(goal_raw, OLD_KEY) == "Sleep better"
    assert Goal.objects.get(pk=goals[0].pk).text == "Sleep better"


def test_alert_notes_are_encrypted(keys: Any, client_record: Any) -> None:
    alert = Alert.objects.create(
        clinic=client_record.clinic, client=client_record, kind="risk", dedupe_key="dp-1"
    )
    alert.note = "Phoned the client; safety plan agreed."
    alert.save()
    stored = raw("alerts_alert", "note", alert.pk)
    assert "safety" not in stored
    assert Alert.objects.get(pk=alert.pk).note == "Phoned the client; safety plan agreed."


def test_staff_page_shows_the_decrypted_text(
    client: Any, response: Response, owner: Any, client_record: Any
) -> None:
    client.force_login(owner)
    page = client.get(f"/clients/{client_record.pk}/")
    assert page.status_code == 200
    assert "doesn&#x27;t listen" in page.content.decode()


def test_rotation(keys: Any, response: Response) -> None:
    before = raw("clinic_response", "free_text", response.pk)
    # The new key first, the old one second: old rows still read, new writes use the new key.
    keys(NEW_KEY, OLD_KEY)
    assert Response.objects.get(pk=response.pk).free_text == COMMENT
    call_command("rotate_field_keys", stdout=io.StringIO())
    after = raw("clinic_response", "free_text", response.pk)
    assert after != before
    assert fernet_plaintext(after, NEW_KEY) == COMMENT
    # Only the new key is needed from now on, for every encrypted model.
    keys(NEW_KEY)
    assert Response.objects.get(pk=response.pk).free_text == COMMENT
    assert all(g.text for g in Goal.objects.all())
    # And the old key alone no longer opens it.
    keys(OLD_KEY)
    with pytest.raises(crypto.DecryptionError):
        Response.objects.get(pk=response.pk)


def test_plaintext_rows_are_encrypted_once_a_key_is_set(
    settings: Any, add_session: Any, episode: Any
) -> None:
    settings.BORDIN_FIELD_KEYS = []
    episode.client.save()  # its (empty) contact fields were written under the test key
    session = add_session(days_ago=0)
    record_checkin(session, {"goals": 8, "tasks": 8, "bond": 8, "overall": 8})
    row = Response.objects.get(session=session)
    row.free_text = COMMENT
    row.save()
    tricky = Goal.objects.create(episode=episode, text="enc1:not really")
    assert raw("clinic_response", "free_text", row.pk) == COMMENT  # plaintext mode
    assert raw("clinic_goal", "text", tricky.pk) == "plain:enc1:not really"
    assert Goal.objects.get(pk=tricky.pk).text == "enc1:not really"

    settings.BORDIN_FIELD_KEYS = [NEW_KEY]
    assert Response.objects.get(pk=row.pk).free_text == COMMENT  # old plaintext still reads
    call_command("rotate_field_keys", stdout=io.StringIO())
    assert fernet_plaintext(raw("clinic_response", "free_text", row.pk), NEW_KEY) == COMMENT
    assert fernet_plaintext(raw("clinic_goal", "text", tricky.pk), NEW_KEY) == "enc1:not really"


def test_migration_functions_encrypt_and_decrypt_existing_rows(
    keys: Any, response: Response
) -> None:
    editor = SimpleNamespace(quote_name=connection.ops.quote_name, connection=connection)
    crypto.decrypt_existing("clinic", "Response", "free_text")(apps, editor)
    assert raw("clinic_response", "free_text", response.pk) == COMMENT
    crypto.encrypt_existing("clinic", "Response", "free_text")(apps, editor)
    assert fernet_plaintext(raw("clinic_response", "free_text", response.pk), OLD_KEY) == COMMENT


def test_rotate_without_a_key_is_refused(settings: Any) -> None:
    settings.BORDIN_FIELD_KEYS = []
    with pytest.raises(CommandError, match="BORDIN_FIELD_KEYS is not set"):
        call_command("rotate_field_keys")


def test_wrong_key_is_a_clear_error_not_a_leak(
    client: Any,
    keys: Any,
    response: Response,
    owner: Any,
    client_record: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    keys(NEW_KEY)  # the data was encrypted with OLD_KEY
    with pytest.raises(crypto.DecryptionError) as excinfo:
        Response.objects.get(pk=response.pk)
    message = str(excinfo.value)
    assert "clinic.Response.free_text" in message and "BORDIN_FIELD_KEYS" in message
    assert COMMENT not in message and NEW_KEY not in message and OLD_KEY not in message

    client.force_login(owner)
    client.raise_request_exception = False
    with caplog.at_level(logging.ERROR):
        page = client.get(f"/clients/{client_record.pk}/")
    assert page.status_code == 503
    body = page.content.decode()
    assert "configuration problem" in body
    for leak in ("Traceback", "enc1:", "free_text", COMMENT, OLD_KEY, NEW_KEY):
        assert leak not in body
    # The page stops at the first field it cannot open (the client's contact details).
    assert re.search(r"clinic\.\w+\.\w+ could not be decrypted", caplog.text)


def test_encrypted_value_without_any_key_is_a_clear_error(
    settings: Any, response: Response
) -> None:
    settings.BORDIN_FIELD_KEYS = []
    with pytest.raises(crypto.DecryptionError, match="BORDIN_FIELD_KEYS is not set"):
        Response.objects.get(pk=response.pk)


def test_damaged_ciphertext_is_a_clear_error(keys: Any, response: Response) -> None:
    set_raw("clinic_response", "free_text", response.pk, "enc1:gAAAAAdamaged")
    with pytest.raises(crypto.DecryptionError, match="damaged"):
        Response.objects.get(pk=response.pk)


def test_generate_field_key_prints_a_working_key() -> None:
    out = io.StringIO()
    call_command("generate_field_key", stdout=out)
    key = out.getvalue().strip()
    assert Fernet(key.encode()).decrypt(Fernet(key.encode()).encrypt(b"x")) == b"x"


# ----------------------------------------------------------------------------- system checks


def check_ids(settings: Any, *, debug: bool, keys: list[str], allow: bool = False) -> list[str]:
    settings.DEBUG = debug
    settings.BORDIN_FIELD_KEYS = keys
    settings.BORDIN_ALLOW_PLAINTEXT_FREE_TEXT = allow
    return [m.id or "" for m in crypto.check_field_keys()]


def test_checks(settings: Any) -> None:
    assert check_ids(settings, debug=False, keys=[OLD_KEY]) == []
    assert check_ids(settings, debug=True, keys=[]) == ["bordin.W001"]
    assert check_ids(settings, debug=False, keys=[]) == ["bordin.E001"]
    assert check_ids(settings, debug=False, keys=[], allow=True) == ["bordin.I001"]
    assert check_ids(settings, debug=False, keys=[NEW_KEY, "not-a-key"]) == ["bordin.E002"]
    settings.BORDIN_FIELD_KEYS = ["not-a-key"]
    message = crypto.check_field_keys()[0].msg
    assert "Key number 1" in message and "not-a-key" not in message
