"""Importing clients from a CSV file: checked in full first, stored all or nothing.

Columns (header row required; comma or semicolon separated; UTF-8, with or without a BOM):
``display_name`` and ``therapist`` (a staff user name of the clinic) are required;
``contact_email``, ``contact_mobile``, ``preferred_language``, ``consent_email`` and
``consent_sms`` (yes/no) are optional.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.http import HttpRequest
from django.utils.translation import gettext

from bordin.web.operations import clients
from bordin.web.operations.models import ClientEmailDigest, email_digest

REQUIRED = ("display_name", "therapist")
OPTIONAL = (
    "contact_email",
    "contact_mobile",
    "preferred_language",
    "consent_email",
    "consent_sms",
)
YES = {"yes", "y", "true", "1"}
NO = {"no", "n", "false", "0", ""}
MOBILE = re.compile(r"^\+?[0-9][0-9 ()-]{5,19}$")
LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
#: Largest file accepted (bytes).
MAX_BYTES = 1_000_000


@dataclass(frozen=True)
class Problem:
    row: int  # the line number in the file (the header is row 1); 0: the whole file
    column: str
    message: str

    def __str__(self) -> str:
        where = f"row {self.row}, column {self.column}" if self.row else self.column or "file"
        return f"{where}: {self.message}"


@dataclass
class Plan:
    rows: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.rows)


def decode(raw: bytes) -> str:
    """UTF-8 text without a BOM; ``UnicodeDecodeError`` for anything else."""
    return raw.decode("utf-8-sig")


def _delimiter(header: str) -> str:
    return ";" if header.count(";") > header.count(",") else ","


def _yes_no(value: str) -> bool | None:
    v = value.strip().lower()
    if v in YES:
        return True
    if v in NO:
        return False
    return None


def check(text: str, clinic_id: int) -> Plan:
    """Every row checked against the clinic: the rows to store, or every problem found."""
    plan = Plan()
    text = text.lstrip("\ufeff")
    if not text.strip():
        plan.problems.append(Problem(0, "file", gettext("The file is empty.")))
        return plan
    header_line = text.splitlines()[0]
    # newline="": the csv module itself reads \r, \n and \r\n line ends (and quoted ones).
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=_delimiter(header_line))
    try:
        return _check_rows(reader, clinic_id, plan)
    except csv.Error as exc:
        plan.problems.append(
            Problem(
                reader.line_num,
                "file",
                gettext("This is not readable as CSV here: %(error)s.") % {"error": exc},
            )
        )
        plan.rows.clear()
        return plan


def _check_rows(reader: csv.DictReader[str], clinic_id: int, plan: Plan) -> Plan:
    columns = [(c or "").strip().lower() for c in reader.fieldnames or []]
    reader.fieldnames = columns
    missing = [c for c in REQUIRED if c not in columns]
    unknown = [c for c in columns if c not in REQUIRED + OPTIONAL]
    for c in missing:
        plan.problems.append(
            Problem(
                0,
                c,
                gettext("The column %(column)r is missing (the header needs %(needed)s).")
                % {"column": c, "needed": ", ".join(REQUIRED)},
            )
        )
    for c in unknown:
        plan.problems.append(
            Problem(
                0,
                c or "(empty)",
                gettext("Unknown column %(column)r; allowed: %(allowed)s.")
                % {"column": c, "allowed": ", ".join(REQUIRED + OPTIONAL)},
            )
        )
    if missing or unknown:
        return plan
    therapists = {u.get_username().lower(): u for u in clients.therapists_of(clinic_id)}
    seen: dict[str, int] = {}
    for line, raw in enumerate(reader, start=2):
        if None in raw:
            plan.problems.append(Problem(line, "row", gettext("More values than columns.")))
            continue
        row = {k: (v or "").strip() for k, v in raw.items()}
        if not any(row.values()):
            continue
        plan.rows.append(_check_row(line, row, therapists, seen, clinic_id, plan.problems))
    if not plan.rows and not plan.problems:
        plan.problems.append(Problem(0, "file", gettext("The file has a header but no clients.")))
    return plan


def _check_row(
    line: int,
    row: dict[str, str],
    therapists: dict[str, Any],
    seen: dict[str, int],
    clinic_id: int,
    problems: list[Problem],
) -> dict[str, Any]:
    def bad(column: str, message: str) -> None:
        problems.append(Problem(line, column, message))

    name = row["display_name"]
    if not name:
        bad("display_name", gettext("Enter the client's display name."))
    elif len(name) > 120:
        bad("display_name", gettext("Use at most 120 characters."))
    therapist = therapists.get(row["therapist"].lower())
    if therapist is None:
        bad(
            "therapist",
            gettext(
                "No active therapist %(name)r in this clinic; "
                "use a staff user name from the staff page."
            )
            % {"name": row["therapist"]},
        )
    email = row.get("contact_email", "")
    if email:
        try:
            validate_email(email)
        except ValidationError:
            bad(
                "contact_email",
                gettext("%(email)r is not a valid email address.") % {"email": email},
            )
        else:
            digest = email_digest(email)
            if digest in seen:
                bad("contact_email", gettext("Same email as row %(row)s.") % {"row": seen[digest]})
            else:
                seen[digest] = line
            existing = ClientEmailDigest.duplicates(clinic_id, email)
            if existing:
                bad(
                    "contact_email",
                    gettext(
                        "A client with this email already exists in the clinic (client %(number)s)."
                    )
                    % {"number": existing[0]},
                )
    mobile = row.get("contact_mobile", "")
    if mobile and not MOBILE.match(mobile):
        bad(
            "contact_mobile",
            gettext("%(mobile)r is not a phone number (digits, spaces, + ( ) -).")
            % {"mobile": mobile},
        )
    language = row.get("preferred_language", "") or "en"
    if not LANGUAGE.match(language):
        bad(
            "preferred_language",
            gettext("%(language)r is not a language code such as en or de-CH.")
            % {"language": language},
        )
    result: dict[str, Any] = {
        "line": line,
        "display_name": name,
        "therapist": therapist,
        "contact_email": email,
        "contact_mobile": mobile,
        "preferred_language": language,
    }
    for kind in ("consent_email", "consent_sms"):
        value = _yes_no(row.get(kind, ""))
        if value is None:
            bad(kind, gettext("%(value)r: write yes or no.") % {"value": row[kind]})
        result[kind] = bool(value)
    return result


def store(request: HttpRequest | None, plan: Plan, clinic_id: int) -> int:
    """Store every planned client (the caller runs this in one transaction)."""
    if not plan.ok:
        raise ValueError("The file has problems; nothing is stored.")
    for row in plan.rows:
        clients.create(request, clinic_id, row)
    return len(plan.rows)


def import_file(path: Any, clinic_id: int, *, commit: bool) -> tuple[Plan, int]:
    """``bordin import-clients``: check the file; with ``commit`` and no problem, store it."""
    from django.db import transaction

    from bordin.web.clinic.models import Clinic

    if not Clinic.objects.filter(pk=clinic_id).exists():
        return Plan(
            problems=[Problem(0, "--clinic", f"There is no clinic with id {clinic_id}.")]
        ), 0
    try:
        text = decode(path.read_bytes())
    except OSError as exc:
        return Plan(problems=[Problem(0, "file", f"Cannot read {path}: {exc.strerror}.")]), 0
    except UnicodeDecodeError:
        return Plan(problems=[Problem(0, "file", "The file is not UTF-8 text.")]), 0
    plan = check(text, clinic_id)
    if not commit or not plan.ok:
        return plan, 0
    with transaction.atomic():
        return plan, store(None, plan, clinic_id)
