"""Every URL pattern × every role, against an explicit matrix.

``MATRIX[url name][role]`` is one of:

* ``"allow"``: the page is shown (200) or the action done (200, or a redirect that is not to
  the login page); for a write, the database changed;
* ``"login"``: a redirect to ``/login/?next=...``, nothing changed;
* ``"deny"``: nothing shown and nothing changed. URLs about one record (with a path argument:
  a client, an alert, a link) answer **404**, so that a record outside the user's scope is
  indistinguishable from one that does not exist; pages the role may not open at all answer
  **403**;
* ``"redirect"``: sent elsewhere without the page (a researcher's caseload goes to the
  exports, a logged-in user's login page to the caseload), nothing changed;
* ``"token"``: an API or FHIR endpoint that takes a personal API token only: a session (logged
  in or not) gets 401, nothing changed. ``TOKEN_MATRIX`` below checks them with each role's
  token.

A URL pattern without a matrix entry, or without a request below to exercise it, fails the
test: add both when you add a URL. ``SEES`` additionally checks who finds the owner's client
in a list or export.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from bordin.web.alerts.models import Alert
from bordin.web.api.models import ApiToken
from bordin.web.checkins.models import CheckinLink
from bordin.web.clinic import scoping
from bordin.web.clinic.models import Client, Clinic, Episode, Goal, Response, Session
from bordin.web.delivery.models import MeasurePlan
from bordin.web.instruments.models import ClinicInstrument
from tests.web.conftest import make_staff
from tests.web.helpers import checkin_post, record_checkin
from tests.web.journey_helpers import intake_post, journey_fingerprint, make_rematch

pytestmark = pytest.mark.django_db

ROLES = (
    "anonymous",
    "owner",  # therapist of the client
    "colleague",  # therapist of the same clinic
    "supervisor",  # supervises the owner
    "other_supervisor",  # supervises the colleague only
    "admin",  # clinic admin
    "researcher",
    "other_clinic_therapist",
    "other_clinic_admin",
)


def _row(default: str, **overrides: str) -> dict[str, str]:
    row = dict.fromkeys(ROLES, default)
    row.update(overrides)
    return row


# Pages about one client: read by its therapist, the owner's supervisor and the admin.
CLIENT_READ = _row("deny", anonymous="login", owner="allow", supervisor="allow", admin="allow")
# Changes to one client's records (and its alerts): its therapist and the admin only.
CLIENT_WRITE = _row("deny", anonymous="login", owner="allow", admin="allow")
# Lists of the clinical roles (contents are scoped; see SEES).
CLINICAL_LIST = _row("allow", anonymous="login", researcher="deny")
EXPORTS = _row(
    "deny", anonymous="login", admin="allow", researcher="allow", other_clinic_admin="allow"
)
AUDIT = _row("deny", anonymous="login", admin="allow", other_clinic_admin="allow")

MATRIX: dict[str, dict[str, str]] = {
    "caseload": _row("allow", anonymous="login", researcher="redirect"),
    "login": _row("redirect", anonymous="allow"),
    "logout": _row("allow"),
    # Every staff member manages their own account; the second-factor pages send a user who
    # already passed the second factor on (to the account page, or to where they were going).
    "account": _row("allow", anonymous="login"),
    "2fa-setup": _row("redirect", anonymous="login"),
    "2fa-verify": _row("redirect", anonymous="login"),
    "2fa-recovery-codes": _row("allow", anonymous="login"),
    "logout-everywhere": _row("allow", anonymous="login"),
    "password-change": _row("allow", anonymous="login"),
    "account-language": _row("allow", anonymous="login"),  # issue 14
    # Only a clinic admin of the same clinic may unlock a colleague's locked log-in.
    "unlock": _row("deny", anonymous="login", admin="allow"),
    "client": CLIENT_READ,
    "therapist-rating": CLIENT_WRITE,
    "record-session": CLIENT_WRITE,
    "correct-session": CLIENT_WRITE,
    "delete-session": CLIENT_WRITE,
    "issue-link": CLIENT_WRITE,
    "revoke-link": CLIENT_WRITE,
    "alerts": CLINICAL_LIST,
    "alert-acknowledge": CLIENT_WRITE,
    "alert-resolve": CLIENT_WRITE,
    "exports": EXPORTS,
    "export-scores": EXPORTS,
    "audit": AUDIT,
    "audit-export": AUDIT,
    # The outcomes report (issue 13): the export roles, on their own clinic's de-identified data.
    "outcomes": EXPORTS,
    "outcomes-pdf": EXPORTS,
    # The check-in link is the credential: whoever holds a valid token may use it.
    "checkin-start": _row("allow"),
    "checkin": _row("allow"),
    # The client's journey (docs/journey.md): client pages and PDFs as the client page, links
    # and goals as client writes, re-match requests and settings for the clinic admin only;
    # the client's own pages take a journey link as the credential.
    "journey-intake-link": CLIENT_WRITE,
    "journey-fit-link": CLIENT_WRITE,
    "journey-graduation-link": CLIENT_WRITE,
    "journey-new-link": CLIENT_WRITE,
    "journey-revoke-link": CLIENT_WRITE,
    "journey-goal-add": CLIENT_WRITE,
    "journey-goal-revise": CLIENT_WRITE,
    "journey-graduation": CLIENT_READ,
    "journey-graduation-pdf": CLIENT_READ,
    "journey-report-pdf": CLIENT_READ,
    "journey-rematch-list": AUDIT,
    "journey-settings": AUDIT,
    "journey-rematch": _row("deny", anonymous="login", admin="allow"),
    "journey-rematch-assign": _row("deny", anonymous="login", admin="allow"),
    "journey-start": _row("allow"),
    "journey-client": _row("allow"),
    "journey-client-pdf": _row("allow"),
    # Imported questionnaires (issue 11): the clinic admin manages the clinic's list.
    "instruments": AUDIT,
    "instrument-update": _row("deny", anonymous="login", admin="allow"),
    # Personal API tokens (issue 11): every staff member manages their own; a token is its
    # owner's only (404 for everyone else).
    "api-tokens": _row("allow", anonymous="login"),
    "api-token-revoke": _row("deny", anonymous="login", owner="allow"),
    # FHIR exports: a client's Bundle as the client page; the clinic's as the scores export.
    "client-fhir": CLIENT_READ,
    "export-fhir": EXPORTS,
    "export-fhir-ndjson": EXPORTS,
    # FHIR endpoints: the CapabilityStatement is open; searches take a token (TOKEN_MATRIX).
    "fhir-metadata": _row("allow"),
    "fhir-questionnaire": _row("token"),
    "fhir-questionnaire-response": _row("token"),
    "fhir-observation": _row("token"),
    # The REST API (/api/v1/): its index, spec and docs page are open (no data); every
    # operation takes a token (TOKEN_MATRIX).
    "api-v1-index": _row("allow"),
    "api-v1:api-root": _row("allow"),
    "api-v1:openapi-json": _row("allow"),
    "api-v1:openapi-view": _row("allow"),
    "api-v1:clients": _row("token"),
    "api-v1:client": _row("token"),
    "api-v1:client-episodes": _row("token"),
    "api-v1:client-sessions": _row("token"),
    "api-v1:client-responses": _row("token"),
    "api-v1:client-results": _row("token"),
    "api-v1:alerts": _row("token"),
    "api-v1:alert-acknowledge": _row("token"),
    # Delivery (docs/delivery.md): the outstanding list as the caseload (contents scoped), a
    # resend as a client write; the unsubscribe page takes its signed link as the credential.
    "outstanding": CLINICAL_LIST,
    "outstanding-resend": CLIENT_WRITE,
    "delivery-plan": AUDIT,  # each clinic admin edits their own clinic's plan
    "client-plan": CLIENT_WRITE,  # an episode's own plan: its therapist and the admin
    "unsubscribe": _row("allow"),
}

#: Who finds the owner's client (its name, or its pseudonym in the export) in a list.
SEES: dict[str, set[str]] = {
    "caseload": {"owner", "supervisor", "admin"},
    "client-fhir": {"owner", "supervisor", "admin"},
    "export-fhir": {"admin"},
    "alerts": {"owner", "supervisor", "admin"},
    "export-scores": {"admin", "researcher"},
    "outcomes": set(),  # de-identified: nobody finds a client's name there
}


@dataclass
class World:
    client: Client
    rated_session: Session
    open_session: Session
    link: CheckinLink
    token: str
    new_alert: Alert
    acknowledged_alert: Alert
    goals: list[Goal]
    users: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def world(
    clinic: Clinic,
    other_clinic: Clinic,
    owner: Any,
    colleague: Any,
    supervisor: Any,
    admin: Any,
    researcher: Any,
    outsider: Any,
) -> World:
    other_supervisor = make_staff("other-supervisor", clinic, role="supervisor")
    other_supervisor.staff.supervisees.add(colleague)
    other_therapist = make_staff("other-clinic-therapist", other_clinic)
    c = Client.objects.create(clinic=clinic, therapist=owner, display_name="Client A")
    Client.objects.create(clinic=clinic, therapist=colleague, display_name="Colleague's client")
    ep = Episode.objects.create(client=c, start=date.today() - timedelta(days=30))
    goals = [Goal.objects.create(episode=ep, text="Sleep better")]
    s1 = Session.objects.create(episode=ep, number=1, date=date.today() - timedelta(days=7))
    record_checkin(s1, {"goals": 8, "tasks": 8, "bond": 8, "overall": 8})
    s2 = Session.objects.create(episode=ep, number=2, date=date.today())
    link, _ = CheckinLink.issue(s2, created_by=owner)
    _, token = CheckinLink.issue(s2, created_by=owner)

    def alert(status: str, key: str) -> Alert:
        return Alert.objects.create(
            clinic=clinic, client=c, session=s1, kind="rupture", status=status, dedupe_key=key
        )

    return World(
        client=c,
        rated_session=s1,
        open_session=s2,
        link=link,
        token=token,
        new_alert=alert("new", "m-new"),
        acknowledged_alert=alert("acknowledged", "m-ack"),
        goals=goals,
        users={
            "anonymous": None,
            "owner": owner,
            "colleague": colleague,
            "supervisor": supervisor,
            "other_supervisor": other_supervisor,
            "admin": admin,
            "researcher": researcher,
            "other_clinic_therapist": other_therapist,
            "other_clinic_admin": outsider,
        },
    )


@dataclass(frozen=True)
class Call:
    method: str
    kwargs: Callable[[World], dict[str, Any]] = lambda w: {}
    data: Callable[[World], dict[str, Any]] = lambda w: {}
    writes: bool = False
    #: Run before the request with the test client (e.g. follow the check-in link first).
    before: Callable[[Any, World], None] | None = None


def _client_pk(w: World) -> dict[str, Any]:
    return {"pk": w.client.pk}


def lock_out(username: str, ip_address: str = "10.9.8.7") -> None:
    """``username`` is locked out (from another address) after too many failed log-ins."""
    from axes.models import AccessAttempt
    from django.conf import settings
    from django.utils import timezone

    AccessAttempt.objects.create(
        username=username,
        ip_address=ip_address,
        user_agent="test",
        failures_since_start=settings.AXES_FAILURE_LIMIT,
        attempt_time=timezone.now(),
        get_data="",
        post_data="",
        http_accept="",
        path_info="/login/",
    )


REQUESTS: dict[str, Call] = {
    "caseload": Call("get"),
    "login": Call("get"),
    "logout": Call("post"),
    "account": Call("get"),
    "2fa-setup": Call("get"),
    "2fa-verify": Call("get"),
    "2fa-recovery-codes": Call("post"),
    "logout-everywhere": Call("post"),
    "password-change": Call("get"),
    "account-language": Call("post", data=lambda w: {"language": "es"}),
    "unlock": Call(
        "post", lambda w: {"username": "colleague"}, before=lambda c, w: lock_out("colleague")
    ),
    "client": Call("get", _client_pk),
    "therapist-rating": Call(
        "post",
        _client_pk,
        lambda w: {"session": w.rated_session.pk, "goals": "7", "tasks": "7", "bond": "7"},
        writes=True,
    ),
    "record-session": Call(
        "post", _client_pk, lambda w: {"date": "2026-01-05", "attendance": "attended"}, True
    ),
    "correct-session": Call(
        "post",
        lambda w: {"pk": w.client.pk, "session_pk": w.open_session.pk},
        lambda w: {"date": "2026-01-06", "attendance": "attended"},
        True,
    ),
    "delete-session": Call(
        "post", lambda w: {"pk": w.client.pk, "session_pk": w.open_session.pk}, writes=True
    ),
    "issue-link": Call("post", _client_pk, writes=True),
    "revoke-link": Call("post", lambda w: {"pk": w.client.pk, "link_pk": w.link.pk}, writes=True),
    "alerts": Call("get"),
    "alert-acknowledge": Call("post", lambda w: {"pk": w.new_alert.pk}, writes=True),
    "alert-resolve": Call(
        "post", lambda w: {"pk": w.acknowledged_alert.pk}, lambda w: {"note": "Done."}, True
    ),
    "exports": Call("get"),
    "export-scores": Call("get"),
    "audit": Call("get"),
    "audit-export": Call("get"),
    "outcomes": Call("get"),
    "outcomes-pdf": Call("get"),
    "checkin-start": Call("get", lambda w: {"token": w.token}),
    "checkin": Call(
        "post",
        data=lambda w: checkin_post(w.goals),
        writes=True,
        before=lambda c, w: c.get(reverse("checkin-start", kwargs={"token": w.token})),
    ),
}


def _journey_token(purpose: str) -> Callable[[World], str]:
    def issue(w: World) -> str:
        from bordin.web.journey.models import JourneyLink

        episode = w.rated_session.episode
        return JourneyLink.issue(purpose, episode, session=w.rated_session)[1]

    return issue


def _follow(purpose: str) -> Callable[[Any, World], None]:
    # A graduation link opens with a click (POST); a GET only shows the button.
    method = "post" if purpose == "graduation" else "get"
    return lambda c, w: getattr(c, method)(
        reverse("journey-start", kwargs={"token": _journey_token(purpose)(w)})
    )


from bordin.web.journey.models import JourneyLink  # noqa: E402 - next to its use

REQUESTS.update(
    {
        "journey-intake-link": Call("post", _client_pk, writes=True),
        "journey-fit-link": Call("post", _client_pk, writes=True),
        "journey-graduation-link": Call("post", _client_pk, writes=True),
        "journey-new-link": Call("get", _client_pk),
        "journey-revoke-link": Call(
            "post",
            lambda w: {
                "pk": w.client.pk,
                "link_pk": JourneyLink.issue("intake", w.rated_session.episode)[0].pk,
            },
            writes=True,
        ),
        "journey-goal-add": Call("post", _client_pk, lambda w: {"text": "Walk daily"}, True),
        "journey-goal-revise": Call(
            "post",
            lambda w: {"pk": w.client.pk, "goal_pk": w.goals[0].pk},
            lambda w: {"text": "Sleep six hours most nights"},
            True,
        ),
        "journey-graduation": Call("get", _client_pk),
        "journey-graduation-pdf": Call("get", _client_pk),
        "journey-report-pdf": Call("get", _client_pk),
        "journey-rematch-list": Call("get"),
        "journey-settings": Call("post", data=lambda w: {"show_goals_to_client": ""}, writes=True),
        "journey-rematch": Call("get", lambda w: {"pk": make_rematch(w.client).pk}),
        "journey-rematch-assign": Call(
            "post",
            lambda w: {"pk": make_rematch(w.client).pk},
            lambda w: {"therapist": str(w.users["colleague"].pk)},
            writes=True,
        ),
        "journey-start": Call("get", lambda w: {"token": _journey_token("intake")(w)}),
        "journey-client": Call(
            "post", data=lambda w: intake_post(), writes=True, before=_follow("intake")
        ),
        "journey-client-pdf": Call("get", before=_follow("graduation")),
    }
)


# --- clinic operations (issue 9): staff for clinic admins, client writes, data rights ----------

from bordin.web.operations.models import StaffInvite  # noqa: E402 - next to its use

# Staff, imports and settings: the clinic admin of each clinic, for their own clinic.
ADMIN_PAGE = _row("deny", anonymous="login", admin="allow", other_clinic_admin="allow")
# One client or staff member, for the clinic admin of its clinic only.
ADMIN_RECORD = _row("deny", anonymous="login", admin="allow")

MATRIX.update(
    {
        "staff": ADMIN_PAGE,
        "staff-invite": ADMIN_PAGE,
        "staff-invite-revoke": ADMIN_RECORD,
        "staff-detail": ADMIN_RECORD,
        "staff-deactivate": ADMIN_RECORD,
        "staff-reset-2fa": ADMIN_RECORD,
        # The enrolment link is the credential, like a check-in link.
        "enrol": _row("allow"),
        # Adding a client: any clinical role (a therapist for themself); a researcher never.
        "client-new": CLINICAL_LIST,
        "client-import": ADMIN_PAGE,
        "client-manage": CLIENT_WRITE,
        "client-contact": CLIENT_WRITE,
        "episode-close": CLIENT_WRITE,
        "episode-new": CLIENT_WRITE,
        "client-reassign": ADMIN_RECORD,
        "client-archive": ADMIN_RECORD,
        "client-export": ADMIN_RECORD,
        "client-erase": ADMIN_RECORD,
        "operations-settings": ADMIN_PAGE,
    }
)


def _invite(w: World) -> tuple[StaffInvite, str]:
    return StaffInvite.create_with_token(
        hours=72,
        clinic=w.client.clinic,
        first_name="New",
        email="new@example.org",
        role="therapist",
    )


def _colleague_pk(w: World) -> dict[str, Any]:
    return {"pk": w.users["colleague"].pk}


def _recent_second_factor(c: Any, w: World) -> None:
    """The session passed the second factor just now (as after entering a code)."""
    import time

    from bordin.web.accounts.second_factor import VERIFIED_AT_KEY

    session = c.session
    session[VERIFIED_AT_KEY] = int(time.time())
    session.save()


def _close_episodes(c: Any, w: World) -> None:
    Episode.objects.filter(client=w.client).update(status="closed", end=date.today())


REQUESTS.update(
    {
        "staff": Call("get"),
        "staff-invite": Call(
            "post",
            data=lambda w: {"first_name": "Ada", "email": "ada@example.org", "role": "therapist"},
            writes=True,
        ),
        "staff-invite-revoke": Call("post", lambda w: {"pk": _invite(w)[0].pk}, writes=True),
        "staff-detail": Call("get", _colleague_pk),
        "staff-deactivate": Call("post", _colleague_pk, writes=True),
        "staff-reset-2fa": Call("post", _colleague_pk, writes=True, before=_recent_second_factor),
        "enrol": Call("get", lambda w: {"token": _invite(w)[1]}),
        "client-new": Call("get"),
        "client-import": Call("get"),
        "client-manage": Call("get", _client_pk),
        "client-contact": Call(
            "post",
            _client_pk,
            lambda w: {
                "display_name": "Client A",
                "preferred_language": "en",
                "contact_email": "a@example.org",
                "consent_email": "on",
            },
            writes=True,
        ),
        "episode-close": Call(
            "post",
            _client_pk,
            lambda w: {"ending_reason": "dropped_out", "end": date.today().isoformat()},
            writes=True,
        ),
        "episode-new": Call("post", _client_pk, writes=True, before=_close_episodes),
        "client-reassign": Call(
            "post", _client_pk, lambda w: {"therapist": str(w.users["colleague"].pk)}, True
        ),
        "client-archive": Call("post", _client_pk, writes=True),
        "client-export": Call("get", _client_pk),
        "client-erase": Call(
            "post",
            _client_pk,
            lambda w: {"confirm": "ERASE"},
            writes=True,
            before=_recent_second_factor,
        ),
        "operations-settings": Call(
            "post",
            data=lambda w: {"retention_years": "7", "audit_retention_years": "0"},
            writes=True,
        ),
    }
)


def operations_fingerprint() -> tuple[Any, ...]:
    from django.contrib.auth import get_user_model

    from bordin.web.accounts.models import SessionEpoch
    from bordin.web.clinic.models import StaffProfile
    from bordin.web.operations.models import ClinicSettings

    return (
        [
            (c.pk, c.display_name, c.therapist_id, c.archived_at, c.contact_email)
            for c in Client.objects.order_by("pk")
        ],
        list(Episode.objects.order_by("pk").values_list("pk", "status", "ending_reason")),
        list(StaffInvite.objects.order_by("pk").values_list("pk", "revoked_at", "used_at")),
        list(StaffProfile.objects.order_by("pk").values_list("pk", "role")),
        list(get_user_model().objects.order_by("pk").values_list("pk", "is_active")),
        list(SessionEpoch.objects.order_by("pk").values_list("pk", "epoch")),
        list(ClinicSettings.objects.order_by("pk").values_list("pk", "retention_years")),
    )


def _instrument_entry(w: World) -> dict[str, Any]:
    from bordin.web.instruments.services import import_questionnaire
    from tests.questionnaires import as_bytes, phq9

    entry = import_questionnaire(as_bytes(phq9()), "phq9.json", w.client.clinic).entry
    return {"pk": entry.pk}


def _owner_token(w: World) -> dict[str, Any]:
    from bordin.web.api.models import ApiToken

    return {"pk": ApiToken.issue(w.users["owner"], "matrix", "read", 30)[0].pk}


REQUESTS.update(
    {
        "api-tokens": Call(
            "post", data=lambda w: {"name": "t", "scope": "read", "days": "9"}, writes=True
        ),
        "api-token-revoke": Call("post", _owner_token, writes=True),
        "client-fhir": Call("get", _client_pk),
        "export-fhir": Call("get"),
        "export-fhir-ndjson": Call("get"),
        "fhir-metadata": Call("get"),
        "api-v1-index": Call("get"),
        "api-v1:api-root": Call("get"),
        "api-v1:openapi-json": Call("get"),
        "api-v1:openapi-view": Call("get"),
        "api-v1:clients": Call("get"),
        "api-v1:client": Call("get", lambda w: {"client_id": w.client.pk}),
        "api-v1:client-episodes": Call("get", lambda w: {"client_id": w.client.pk}),
        "api-v1:client-sessions": Call(
            "post",
            lambda w: {"client_id": w.client.pk},
            lambda w: {"date": date.today().isoformat()},
            True,
        ),
        "api-v1:client-responses": Call("get", lambda w: {"client_id": w.client.pk}),
        "api-v1:client-results": Call("get", lambda w: {"client_id": w.client.pk}),
        "api-v1:alerts": Call("get"),
        "api-v1:alert-acknowledge": Call(
            "post", lambda w: {"alert_id": w.new_alert.pk}, writes=True
        ),
        "fhir-questionnaire": Call("get"),
        "fhir-questionnaire-response": Call("get"),
        "fhir-observation": Call("get"),
        "instruments": Call("get"),
        "instrument-update": Call(
            "post",
            _instrument_entry,
            lambda w: {f"e{k}-may_use": "on" for k in range(1, 100)},
            writes=True,
        ),
    }
)


def _delivery(w: World) -> dict[str, Any]:
    from django.utils import timezone

    from bordin.web.delivery.models import Delivery

    d = Delivery.objects.create(
        client=w.client,
        episode=w.open_session.episode,
        session=w.open_session,
        kind="checkin",
        checkin_link=w.link,
        token="not-the-real-token",  # noqa: S106 - a placeholder, never sent
        issued_at=timezone.now(),
    )
    return {"pk": d.pk}


def _episode_plan_post() -> dict[str, str]:
    return {
        "send_checkin": "on",
        "checkin_codes": "alliance, wellbeing",
        "followup_codes": "wellbeing",
        "followup_months": "1, 3, 6",
    }


def _unsubscribe_token(w: World) -> dict[str, Any]:
    from bordin.web.delivery.services import unsubscribe_token

    return {"token": unsubscribe_token(w.client, "email")}


REQUESTS.update(
    {
        "outstanding": Call("get"),
        "outstanding-resend": Call("post", _delivery, writes=True),
        "delivery-plan": Call("get"),
        "client-plan": Call("post", _client_pk, lambda w: _episode_plan_post(), writes=True),
        "unsubscribe": Call("get", _unsubscribe_token),
    }
)


def url_patterns() -> dict[str, URLPattern]:
    """Every named URL pattern, walking included resolvers (``namespace:name`` when nested)."""
    found: dict[str, URLPattern] = {}
    unnamed: list[str] = []

    def walk(patterns: list[Any], namespace: str, prefix: str) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                ns = f"{namespace}{p.namespace}:" if p.namespace else namespace
                walk(p.url_patterns, ns, prefix + str(p.pattern))
            elif p.name:
                found[namespace + p.name] = p
            else:
                unnamed.append(prefix + str(p.pattern))

    walk(get_resolver().url_patterns, "", "")
    assert not unnamed, f"Give these URL patterns a name and a MATRIX entry: {unnamed}"
    return found


def test_every_url_and_role_is_in_the_matrix(capsys: pytest.CaptureFixture[str]) -> None:
    names = set(url_patterns())
    missing = sorted(names - MATRIX.keys())
    assert not missing, (
        f"URL(s) {missing} have no entry in MATRIX (tests/web/test_permission_matrix.py): "
        "add one saying, for every role, whether it is allowed, denied or sent to log in, and "
        "a REQUESTS entry to exercise it."
    )
    assert not sorted(MATRIX.keys() - names), "MATRIX names URLs that no longer exist"
    assert REQUESTS.keys() == MATRIX.keys(), "every MATRIX entry needs a REQUESTS entry"
    for name, row in MATRIX.items():
        assert set(row) == set(ROLES), f"MATRIX[{name!r}] must give every role"
        assert set(row.values()) <= {"allow", "deny", "login", "redirect", "token"}, name
    with capsys.disabled():
        print(f"\n[permission matrix] {checks()} checks")


def checks() -> str:
    return f"{len(MATRIX)} URLs × {len(ROLES)} roles = {len(MATRIX) * len(ROLES)}"


def fingerprint() -> tuple[Any, ...]:
    return (
        list(Response.objects.order_by("pk").values_list("pk", "total")),
        list(Session.objects.order_by("pk").values_list("pk", "date")),
        list(CheckinLink.objects.order_by("pk").values_list("pk", "revoked_at", "used_at")),
        list(Alert.objects.order_by("pk").values_list("pk", "status")),
        journey_fingerprint(),
        operations_fingerprint(),
        list(ClinicInstrument.objects.order_by("pk").values_list("pk", "may_use", "licence")),
        list(ApiToken.objects.order_by("pk").values_list("pk", "revoked_at")),
        list(MeasurePlan.objects.order_by("pk").values_list("pk", "episode_id", "checkin_codes")),
    )


def _is_login_redirect(response: Any) -> bool:
    return response.status_code == 302 and response["Location"].startswith("/login/?next=")


def _content(response: Any) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode()
    return str(response.content.decode())


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", sorted(MATRIX))
def test_matrix(client: Any, world: World, name: str, role: str) -> None:
    call = REQUESTS[name]
    user = world.users[role]
    if user is not None:
        client.force_login(user)
    if call.before is not None:
        call.before(client, world)
    pattern = url_patterns()[name]
    url = reverse(name, kwargs=call.kwargs(world))
    before = fingerprint()
    response = getattr(client, call.method)(url, call.data(world))
    changed = fingerprint() != before
    expected = MATRIX[name][role]
    where = f"{role} {call.method.upper()} {url} ({name}): expected {expected}"

    if expected == "login":
        assert _is_login_redirect(response), f"{where}, got {response.status_code}"
    elif expected == "token":
        assert response.status_code == 401, f"{where} (401), got {response.status_code}"
    elif expected == "deny":
        status = 404 if pattern.pattern.converters else 403
        assert response.status_code == status, f"{where} ({status}), got {response.status_code}"
    elif expected == "redirect":
        assert response.status_code == 302, f"{where}, got {response.status_code}"
        assert not _is_login_redirect(response), where
    else:
        assert response.status_code in (200, 302), f"{where}, got {response.status_code}"
        assert not _is_login_redirect(response), where
        if call.writes:
            assert changed, f"{where}: allowed, but nothing was stored"
        if name in SEES:
            body = _content(response)
            marker = (
                scoping.pseudonym(world.client.clinic_id, world.client.pk)
                if name == "export-scores"
                else "Client A"
            )
            assert (marker in body) is (role in SEES[name]), f"{where}: wrong contents"
    if expected != "allow":
        assert not changed, f"{where}: refused, yet the database changed"


def test_checkin_without_a_valid_token_is_refused(client: Any, world: World) -> None:
    assert client.get("/c/").status_code == 404
    assert client.post("/c/", checkin_post(world.goals)).status_code == 404
    assert client.get("/c/" + "x" * 43).status_code == 404
    assert Response.objects.filter(respondent="client").count() == 1


# --- endpoints that take a personal API token (issue 11) --------------------------------------

#: ``TOKEN_MATRIX[url name][role]``: the status a request with that role's own token gets
#: (``anonymous``: no token at all), and ``TOKEN_SEES`` who finds the owner's client in it.
TOKEN_ALL = _row("200", anonymous="401")
#: One client's records by API: read as the client page, 404 for everyone else.
TOKEN_CLIENT_READ = _row("404", anonymous="401", owner="200", supervisor="200", admin="200")
TOKEN_MATRIX: dict[str, dict[str, str]] = {
    "fhir-questionnaire": TOKEN_ALL,
    "fhir-questionnaire-response": TOKEN_ALL,
    "fhir-observation": TOKEN_ALL,
    "api-v1:clients": TOKEN_ALL,
    "api-v1:client": TOKEN_CLIENT_READ,
    "api-v1:client-episodes": TOKEN_CLIENT_READ,
    "api-v1:client-responses": TOKEN_CLIENT_READ,
    "api-v1:client-results": TOKEN_CLIENT_READ,
    "api-v1:client-sessions": _row("404", anonymous="401", owner="201", admin="201"),
    "api-v1:alerts": TOKEN_ALL,
    "api-v1:alert-acknowledge": _row("404", anonymous="401", owner="200", admin="200"),
}
TOKEN_SEES: dict[str, set[str]] = {
    "fhir-questionnaire-response": {"owner", "supervisor", "admin", "researcher"},
    "fhir-observation": {"owner", "supervisor", "admin", "researcher"},
    "api-v1:clients": {"owner", "supervisor", "admin"},
    "api-v1:alerts": {"owner", "supervisor", "admin"},
}


def _marker(w: World, role: str, name: str) -> str:
    """How the owner's client appears in an answer: its id, its pseudonym or its name."""
    if name.startswith("api-v1:"):
        return '"Client A"' if name == "api-v1:clients" else f'"client": {w.client.pk}'
    if role == "researcher":
        return f"Patient/{scoping.pseudonym(w.client.clinic_id, w.client.pk)}"
    return f'"Patient/{w.client.pk}"'


def test_token_matrix_names_every_token_endpoint() -> None:
    token_only = {name for name, row in MATRIX.items() if "token" in row.values()}
    assert token_only <= TOKEN_MATRIX.keys(), "add a TOKEN_MATRIX entry for each token endpoint"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", sorted(TOKEN_MATRIX))
def test_token_matrix(client: Any, world: World, name: str, role: str) -> None:
    user = world.users[role]
    headers = {}
    if user is not None:
        token = ApiToken.issue(user, "matrix", "read_write", 30)[1]
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    call = REQUESTS[name]
    before = fingerprint()
    url = reverse(name, kwargs=call.kwargs(world))
    if call.method == "post":
        body = json.dumps(call.data(world))
        response = client.post(url, body, content_type="application/json", **headers)
    else:
        response = client.get(url, call.data(world), **headers)
    expected = TOKEN_MATRIX[name][role]
    assert str(response.status_code) == expected, f"{role} {name}: {response.status_code}"
    if name in TOKEN_SEES and expected == "200":
        sees = _marker(world, role, name) in _content(response)
        assert sees is (role in TOKEN_SEES[name]), f"{role} {name}: wrong contents"
    changed = fingerprint()[:-1] != before[:-1]  # (the last part holds the new token)
    assert changed is (call.writes and expected.startswith("20")), f"{role} {name}: writes"
