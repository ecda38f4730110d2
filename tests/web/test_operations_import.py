"""Importing clients from CSV (issue 9): preview first, errors per row, all or nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bordin.cli import app
from bordin.web.clinic.models import Client
from bordin.web.operations import imports

pytestmark = pytest.mark.django_db

GOOD = (
    "display_name,therapist,contact_email,contact_mobile,preferred_language,consent_email,consent_sms\n"
    "Amy B.,owner,amy@example.org,+44 7700 900001,en,yes,no\n"
    "Bo C.,colleague,,,,no,\n"
)


def upload(client: Any, text: str | bytes, name: str = "clients.csv") -> Any:
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return client.post("/clients/import/", {"file": SimpleUploadedFile(name, raw, "text/csv")})


def test_preview_first_then_store_on_confirmation(
    login: Any, admin: Any, owner: Any, colleague: Any
) -> None:
    c = login(admin)
    preview = upload(c, GOOD)
    html = preview.content.decode()
    assert preview.status_code == 200 and "data-import-preview" in html and "Amy B." in html
    assert not Client.objects.exists()  # a dry run
    stored = c.post("/clients/import/", {"text": GOOD, "confirm": "yes"})
    assert stored.status_code == 302
    amy = Client.objects.get(display_name="Amy B.")
    assert amy.therapist == owner and amy.consent_email and amy.contact_email == "amy@example.org"
    assert Client.objects.get(display_name="Bo C.").therapist == colleague


def test_bom_and_semicolons_are_read(login: Any, admin: Any, owner: Any, colleague: Any) -> None:
    text = "\ufeff" + GOOD.replace(",", ";")
    html = upload(login(admin), text.encode("utf-8")).content.decode()
    assert "data-import-problems" not in html and "Amy B." in html


@pytest.mark.parametrize(
    ("text", "row", "column", "message"),
    [
        ("display_name,contact_email\nAmy,a@example.org\n", 0, "therapist", "is missing"),
        ("display_name,therapist,age\nAmy,owner,40\n", 0, "age", "Unknown column"),
        ("display_name,therapist\nAmy,nobody\n", 2, "therapist", "No active therapist"),
        (
            "display_name,therapist,contact_email\nAmy,owner,amy@\n",
            2,
            "contact_email",
            "not a valid email",
        ),
        ("display_name,therapist,consent_sms\nAmy,owner,maybe\n", 2, "consent_sms", "yes or no"),
        ("display_name,therapist\n,owner\n", 2, "display_name", "display name"),
        (
            "display_name,therapist,contact_email\nA,owner,x@example.org\nB,owner,X@example.org\n",
            3,
            "contact_email",
            "Same email as row 2",
        ),
        ("", 0, "file", "empty"),
    ],
)
def test_every_problem_names_row_column_and_fix(
    login: Any, admin: Any, owner: Any, text: str, row: int, column: str, message: str
) -> None:
    plan = imports.check(text, admin.staff.clinic_id)
    assert not plan.ok
    assert any(
        p.row == row and p.column == column and message in p.message for p in plan.problems
    ), plan.problems
    response = upload(login(admin), text or " ")
    assert response.status_code == 400 and "Nothing was stored" in response.content.decode()
    # Even a forged confirmation stores nothing while a row is wrong.
    login(admin).post("/clients/import/", {"text": text, "confirm": "yes"})
    assert not Client.objects.exists()


def test_an_existing_client_email_is_a_reported_duplicate(
    login: Any, admin: Any, owner: Any
) -> None:
    c = login(admin)
    c.post(
        "/clients/new/",
        {"display_name": "Old", "therapist": owner.pk, "contact_email": "amy@example.org",
         "preferred_language": "en"},
    )  # fmt: skip
    plan = imports.check("display_name,therapist,contact_email\nAmy,owner,AMY@example.org\n",
                         admin.staff.clinic_id)  # fmt: skip
    assert [p.column for p in plan.problems] == ["contact_email"]
    assert "already exists" in plan.problems[0].message
    assert Client.objects.count() == 1


def test_a_file_that_is_not_utf8_is_refused(login: Any, admin: Any, owner: Any) -> None:
    response = upload(login(admin), "display_name,therapist\nJosé,owner\n".encode("latin-1"))
    assert response.status_code == 400 and "not UTF-8" in response.content.decode()


def test_command_line_import_dry_run_and_errors(
    tmp_path: Path, clinic: Any, owner: Any, colleague: Any
) -> None:
    runner = CliRunner()
    good = tmp_path / "good.csv"
    good.write_text(GOOD, encoding="utf-8")
    dry = runner.invoke(app, ["import-clients", str(good), "--clinic", str(clinic.pk), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "nothing stored" in dry.output and not Client.objects.exists()
    bad = tmp_path / "bad.csv"
    bad.write_text("display_name,therapist\nAmy,nobody\n", encoding="utf-8")
    failed = runner.invoke(app, ["import-clients", str(bad), "--clinic", str(clinic.pk)])
    assert failed.exit_code == 2
    assert "row 2, column therapist" in failed.output and "nothing was stored" in failed.output
    done = runner.invoke(app, ["import-clients", str(good), "--clinic", str(clinic.pk), "--yes"])
    assert done.exit_code == 0, done.output
    assert Client.objects.count() == 2
    wrong = runner.invoke(app, ["import-clients", str(good), "--clinic", "999999", "--yes"])
    assert wrong.exit_code == 2 and "no clinic with id 999999" in wrong.output


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.lists(
        st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12),
                 min_size=0, max_size=4),
        max_size=5,
    ),
    sep=st.sampled_from([",", ";"]),
)  # fmt: skip
def test_any_file_is_checked_without_crashing_and_problems_point_at_real_rows(
    admin: Any, owner: Any, body: list[list[str]], sep: str
) -> None:
    """Property: whatever the file holds, ``check`` answers (never raises); every problem names
    row 0 (the file) or a data row that exists; a plan without problems stores every row."""
    header = sep.join(["display_name", "therapist", "contact_email"])
    lines = [header] + [sep.join(cells) for cells in body]
    text = "\n".join(lines) + "\n"
    plan = imports.check(text, admin.staff.clinic_id)
    last_line = len(text.splitlines())
    for problem in plan.problems:
        assert 0 <= problem.row <= last_line + 1 and problem.column and problem.message
    if plan.ok:
        assert all(row["therapist"] is not None and row["display_name"] for row in plan.rows)


@pytest.mark.parametrize(
    "body",
    [
        "display_name,therapist\r\nA\rB,owner\r\n",  # a lone carriage return inside a value
        'display_name,therapist\n"Ann,owner\n',  # a quote never closed
        "display_name,therapist\nA,owner\x00\n",  # a NUL byte
    ],
)
def test_broken_csv_is_a_problem_not_a_crash(admin: Any, owner: Any, body: str) -> None:
    """Found by the Hypothesis test above: such files raised csv.Error (a 500 on the page)."""
    plan = imports.check(body, admin.staff.clinic_id)
    assert plan.problems or plan.rows
    for problem in plan.problems:
        assert problem.row >= 0
