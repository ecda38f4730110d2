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
  exports, a logged-in user's login page to the caseload), nothing changed.

A URL pattern without a matrix entry, or without a request below to exercise it, fails the
test: add both when you add a URL. ``SEES`` additionally checks who finds the owner's client
in a list or export.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from bordin.web.alerts.models import Alert
from bordin.web.checkins.models import CheckinLink
from bordin.web.clinic import scoping
from bordin.web.clinic.models import Client, Clinic, Episode, Goal, Response, Session
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
    # Only a clinic admin of the same clinic may unlock a colleague's locked log-in.
    "unlock": _row("deny", anonymous="login", admin="allow"),
    "client": CLIENT_READ,
    "therapist-rating": CLIENT_WRITE,
    "record-session": CLIENT_WRITE,
    "issue-link": CLIENT_WRITE,
    "revoke-link": CLIENT_WRITE,
    "alerts": CLINICAL_LIST,
    "alert-acknowledge": CLIENT_WRITE,
    "alert-resolve": CLIENT_WRITE,
    "exports": EXPORTS,
    "export-scores": EXPORTS,
    "audit": AUDIT,
    "audit-export": AUDIT,
    # The check-in link is the credential: whoever holds a valid token may use it.
    "checkin-start": _row("allow"),
    "checkin": _row("allow"),
    # The client's journey (docs/journey.md): client pages and PDFs as the client page, links
    # and goals as client writes, re-match requests and settings for the clinic admin only;
    # the client's own pages take a journey link as the credential.
    "journey-intake-link": CLIENT_WRITE,
    "journey-fit-link": CLIENT_WRITE,
    "journey-graduation-link": CLIENT_WRITE,
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
    # Delivery (docs/delivery.md): the outstanding list as the caseload (contents scoped), a
    # resend as a client write; the unsubscribe page takes its signed link as the credential.
    "outstanding": CLINICAL_LIST,
    "outstanding-resend": CLIENT_WRITE,
    "delivery-plan": AUDIT,  # each clinic admin edits their own clinic's plan
    "unsubscribe": _row("allow"),
}

#: Who finds the owner's client (its name, or its pseudonym in the export) in a list.
SEES: dict[str, set[str]] = {
    "caseload": {"owner", "supervisor", "admin"},
    "alerts": {"owner", "supervisor", "admin"},
    "export-scores": {"admin", "researcher"},
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
    return lambda c, w: c.get(
        reverse("journey-start", kwargs={"token": _journey_token(purpose)(w)})
    )


from bordin.web.journey.models import JourneyLink  # noqa: E402 - next to its use

REQUESTS.update(
    {
        "journey-intake-link": Call("post", _client_pk, writes=True),
        "journey-fit-link": Call("post", _client_pk, writes=True),
        "journey-graduation-link": Call("post", _client_pk, writes=True),
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


def _unsubscribe_token(w: World) -> dict[str, Any]:
    from bordin.web.delivery.services import unsubscribe_token

    return {"token": unsubscribe_token(w.client, "email")}


REQUESTS.update(
    {
        "outstanding": Call("get"),
        "outstanding-resend": Call("post", _delivery, writes=True),
        "delivery-plan": Call("get"),
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
        assert set(row.values()) <= {"allow", "deny", "login", "redirect"}, name
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
