"""Fuzzing every form and endpoint that takes input from outside, with Hypothesis.

Real app, real database, Django's test client. Each input is made invalid on purpose (random
strings, bytes and invalid UTF-8, huge values, wrong types, missing, repeated and unknown
fields, raw bodies of any content type); an input the form itself would accept is discarded
with ``assume``. What is acceptable, exactly:

* the check-in form (``POST /c/``), the therapist rating and session forms: **400** with the
  form's error message ("Please check your answers", a field error); a body Django cannot parse
  or that is too large: **400** ("Bad Request");
* a check-in token (``/c/<token>``): **404** with the same "This link isn't valid" page; another
  method: **405**;
* the login form: **200**, the form again with "didn't match", and nobody logged in (that is
  what Django's ``LoginView`` does);
* alert transitions: **400** with the reason, or **404** for an alert outside the user's scope;
* without a CSRF token: **403**.

Never a 500 (the test client re-raises the view's exception), nothing stored and nothing
changed: a hash of every row of the clinical tables and of the users is the same before and
after each input. Cases per endpoint are written to the terminal at the end of the module.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, quote_from_bytes, urlencode

import pytest
from axes.models import AccessAttempt
from django.apps import apps
from django.contrib.auth import get_user_model
from django.http import QueryDict
from django.test import Client as HttpClient
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bordin.web.alerts.models import Alert
from bordin.web.checkins import services
from bordin.web.checkins.forms import CheckinForm
from bordin.web.checkins.models import CheckinLink
from bordin.web.clinic.forms import SessionForm, TherapistRatingForm
from bordin.web.clinic.models import Session
from tests.web.helpers import checkin_post

pytestmark = pytest.mark.django_db

EXAMPLES = 60
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same cases every run: a failure can be reproduced
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # the fixtures' data is shared on purpose
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
CASES: Counter[str] = Counter()
INVALID_LINK = "This link isn't valid"
BAD_REQUEST = "Bad Request (400)"


@pytest.fixture(scope="module", autouse=True)
def report_cases(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not CASES:
        return
    lines = [f"  {name}: {count}" for name, count in sorted(CASES.items())]
    text = f"fuzz cases per endpoint ({sum(CASES.values())} in all):\n" + "\n".join(lines)
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(f"\n{text}")


# ------------------------------------------------------------------------------- snapshots


def snapshot() -> str:
    """SHA-256 over every row of the clinical tables and the users (audit entries excluded:
    recording a refused request there is allowed)."""
    digest = hashlib.sha256()
    models = [
        *apps.get_app_config("clinic").get_models(),
        *apps.get_app_config("checkins").get_models(),
        *apps.get_app_config("alerts").get_models(),
        get_user_model(),
    ]
    for model in models:
        rows = list(model._default_manager.order_by("pk").values_list())
        digest.update(f"{model._meta.label}:{len(rows)}:{rows!r}".encode())
    return digest.hexdigest()


@pytest.fixture
def unchanged() -> Callable[[], None]:
    before = snapshot()

    def check() -> None:
        assert snapshot() == before, "the database changed"

    return check


# ------------------------------------------------------------------------------ strategies

NASTY = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "-1",
    "11",
    "10.5",
    "1e309",
    "nan",
    "NaN",
    "inf",
    "-0",
    "0x0A",
    "１",  # fullwidth digit
    "٣",  # Arabic-Indic digit
    "None",
    "null",
    "true",
    "[]",
    "{}",
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "%00",
    "../../etc/passwd",
    "9" * 400,
    "é" * 3000,
    "\u202e\u200b\ufeff",
    "😀" * 50,
]
junk = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=40),
    st.text(min_size=2001, max_size=2600),
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
CONTENT_TYPES = [
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=latin-1",
    "application/x-www-form-urlencoded; charset=no-such-charset",
    "multipart/form-data; boundary=xYzZY",
    "multipart/form-data",
    "application/json",
    "text/plain",
    "application/octet-stream",
    "",
]


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, str]) -> dict[str, list[str]]:
    """The valid form ``base`` with fields dropped, replaced, repeated or added."""
    data = {k: [v] for k, v in base.items()}
    fields = sorted(base)
    ops = draw(
        st.lists(st.sampled_from(["set", "drop", "repeat", "extra"]), min_size=1, max_size=6)
    )
    for op in ops:
        name = draw(st.sampled_from(fields))
        if op == "set":
            data[name] = [draw(junk)]
        elif op == "drop":
            data.pop(name, None)
        elif op == "repeat":
            data[name] = draw(st.lists(junk, min_size=2, max_size=4))
        else:
            data[draw(st.text(min_size=1, max_size=20))] = [draw(junk)]
    return data


def querydict(data: dict[str, list[str]]) -> QueryDict:
    q = QueryDict(mutable=True)
    for key, values in data.items():
        q.setlist(key, values)
    return q


def post_form(client: HttpClient, url: str, data: dict[str, list[str]], urlencoded: bool) -> Any:
    if urlencoded:
        body = urlencode([(k, v) for k, vs in data.items() for v in vs])
        return client.post(url, body, content_type="application/x-www-form-urlencoded")
    return client.post(url, data)  # multipart, lists become repeated fields


def post_raw(client: HttpClient, url: str, body: bytes, content_type: str) -> Any:
    return client.generic("POST", url, body, content_type=content_type)


def raw_form(body: bytes, content_type: str) -> QueryDict:
    """What Django makes of a raw body as form data (for the validity oracle)."""
    if content_type.startswith("application/x-www-form-urlencoded"):
        return QueryDict(body, encoding="utf-8")
    return QueryDict()


# --------------------------------------------------------------------------- the check-in


@pytest.fixture
def checkin_client(
    client: HttpClient, add_session: Callable[..., Any], goals: list[Any], owner: Any
) -> HttpClient:
    session = add_session(days_ago=0)
    _, token = CheckinLink.issue(session, created_by=owner)
    assert client.get(f"/c/{token}").status_code == 302
    assert client.get("/c/").status_code == 200
    return client


def checkin_valid(data: QueryDict, goals: list[Any]) -> bool:
    form = CheckinForm(data, instruments=services.checkin_instruments(), goals=goals)
    return form.is_valid()


def assert_checkin_refused(response: Any) -> None:
    assert response.status_code == 400, response.status_code
    html = response.content.decode()
    assert "Please check your answers" in html or BAD_REQUEST in html


@FUZZ
@given(data=st.data(), urlencoded=st.booleans())
def test_fuzz_checkin_form(
    checkin_client: HttpClient,
    goals: list[Any],
    unchanged: Callable[[], None],
    data: st.DataObject,
    urlencoded: bool,
) -> None:
    base = checkin_post(goals)
    payload = data.draw(mutated(base))
    assume(not checkin_valid(querydict(payload), goals))
    CASES["POST /c/ (check-in form)"] += 1
    assert_checkin_refused(post_form(checkin_client, "/c/", payload, urlencoded))
    unchanged()


@FUZZ
@given(body=st.binary(max_size=3000), content_type=st.sampled_from(CONTENT_TYPES))
def test_fuzz_checkin_raw_body(
    checkin_client: HttpClient,
    goals: list[Any],
    unchanged: Callable[[], None],
    body: bytes,
    content_type: str,
) -> None:
    assume(not checkin_valid(raw_form(body, content_type), goals))
    CASES["POST /c/ (raw bytes)"] += 1
    assert_checkin_refused(post_raw(checkin_client, "/c/", body, content_type))
    unchanged()


def test_checkin_huge_bodies(
    checkin_client: HttpClient, goals: list[Any], unchanged: Callable[[], None]
) -> None:
    """Over DATA_UPLOAD_MAX_MEMORY_SIZE, over DATA_UPLOAD_MAX_NUMBER_FIELDS, huge values."""
    huge = urlencode({**checkin_post(goals), "alliance-better": "x" * 3_000_000})
    many = urlencode([*checkin_post(goals).items(), *((f"f{i}", "1") for i in range(1500))])
    for body in (huge, many):
        CASES["POST /c/ (huge bodies)"] += 1
        response = checkin_client.post(
            "/c/", body, content_type="application/x-www-form-urlencoded"
        )
        assert response.status_code == 400
        assert BAD_REQUEST in response.content.decode()
    CASES["POST /c/ (huge bodies)"] += 1
    long_text = checkin_post(goals, alliance__better="y" * 100_000)
    assert_checkin_refused(checkin_client.post("/c/", long_text))
    unchanged()


# ------------------------------------------------------------------------------ the token

token_text = st.text(min_size=1, max_size=300)


@FUZZ
@given(token=st.one_of(token_text, st.binary(min_size=1, max_size=300)))
def test_fuzz_token_url(
    client: HttpClient,
    add_session: Callable[..., Any],
    unchanged: Callable[[], None],
    token: str | bytes,
) -> None:
    CASES["GET /c/<token>"] += 1
    path = "/c/" + (quote(token, safe="") if isinstance(token, str) else quote_from_bytes(token))
    response = client.get(path)
    assert response.status_code == 404
    if isinstance(token, str) and "/" not in token:
        assert INVALID_LINK in response.content.decode()
    assert "bordin_checkin_link" not in client.session
    unchanged()


@FUZZ
@given(token=token_text, method=st.sampled_from(["POST", "PUT", "PATCH", "DELETE"]))
def test_fuzz_token_url_other_methods(
    client: HttpClient, unchanged: Callable[[], None], token: str, method: str
) -> None:
    assume("/" not in token)
    CASES["POST/PUT/PATCH/DELETE /c/<token>"] += 1
    response = client.generic(method, "/c/" + quote(token, safe=""), b"a=1")
    assert response.status_code == 405
    unchanged()


def test_checkin_without_a_link_is_refused(client: HttpClient, db: None) -> None:
    for method in ("get", "post"):
        CASES["GET/POST /c/ without a link"] += 1
        response = getattr(client, method)("/c/")
        assert response.status_code == 404
        assert INVALID_LINK in response.content.decode()


# ------------------------------------------------------------------------------ the login


@FUZZ
@given(data=st.data(), urlencoded=st.booleans())
def test_fuzz_login(
    client: HttpClient,
    owner: Any,
    unchanged: Callable[[], None],
    data: st.DataObject,
    urlencoded: bool,
) -> None:
    base = {"username": "owner", "password": "wrong password", "next": "/"}
    payload = data.draw(mutated(base))
    assume(payload.get("password", [""])[-1:] != ["correct horse battery staple"])
    CASES["POST /login/"] += 1
    AccessAttempt.objects.all().delete()  # one failure per example, never a lockout (test_auth)
    response = post_form(client, "/login/", payload, urlencoded)
    assert response.status_code == 200
    html = response.content.decode()
    assert "didn't match" in html
    assert 'name="username"' in html
    assert "_auth_user_id" not in client.session
    unchanged()


@FUZZ
@given(body=st.binary(max_size=2000), content_type=st.sampled_from(CONTENT_TYPES))
def test_fuzz_login_raw_body(
    client: HttpClient, owner: Any, unchanged: Callable[[], None], body: bytes, content_type: str
) -> None:
    CASES["POST /login/ (raw bytes)"] += 1
    AccessAttempt.objects.all().delete()  # one failure per example, never a lockout (test_auth)
    response = post_raw(client, "/login/", body, content_type)
    assert response.status_code in (200, 400)
    html = response.content.decode()
    assert "didn't match" in html or BAD_REQUEST in html
    assert "_auth_user_id" not in client.session
    unchanged()


# ---------------------------------------------------------------------------- staff forms


@pytest.fixture
def staff_setup(
    login: Callable[[Any], HttpClient],
    owner: Any,
    client_record: Any,
    add_session: Callable[..., Any],
    outsider: Any,
) -> dict[str, Any]:
    sessions = [add_session(days_ago=14), add_session(days_ago=7)]
    from bordin.web.clinic.models import Client, Episode
    from bordin.web.clinic.models import Session as SessionModel

    elsewhere = Client.objects.create(
        clinic=outsider.staff.clinic, therapist=outsider, display_name="Not ours"
    )
    foreign_episode = Episode.objects.create(client=elsewhere, start=sessions[0].date)
    foreign_session = SessionModel.objects.create(
        episode=foreign_episode, number=1, date=sessions[0].date
    )
    new = Alert.objects.create(
        clinic=client_record.clinic,
        client=client_record,
        session=sessions[0],
        kind="risk",
        dedupe_key="fuzz-new",
    )
    resolved = Alert.objects.create(
        clinic=client_record.clinic,
        client=client_record,
        session=sessions[1],
        kind="rupture",
        status="resolved",
        note="done",
        dedupe_key="fuzz-resolved",
    )
    foreign_alert = Alert.objects.create(
        clinic=elsewhere.clinic, client=elsewhere, kind="risk", dedupe_key="fuzz-foreign"
    )
    return {
        "http": login(owner),
        "client": client_record,
        "sessions": sessions,
        "foreign_session": foreign_session,
        "new": new,
        "resolved": resolved,
        "foreign_alert": foreign_alert,
    }


def rating_base(setup: dict[str, Any]) -> dict[str, str]:
    return {"session": str(setup["sessions"][0].pk), "goals": "7", "tasks": "8", "bond": "9"}


FORM_ERRORS = (
    "Choose a number from 0 to 10.",
    "Select a valid choice",
    "This field is required.",
    "Enter a valid date.",
    "Null characters are not allowed.",
)


def assert_form_refused(response: Any) -> None:
    assert response.status_code == 400, response.status_code
    html = response.content.decode()
    assert any(m.replace("'", "&#x27;") in html for m in FORM_ERRORS) or BAD_REQUEST in html


@FUZZ
@given(data=st.data(), urlencoded=st.booleans())
def test_fuzz_therapist_rating(
    staff_setup: dict[str, Any],
    unchanged: Callable[[], None],
    data: st.DataObject,
    urlencoded: bool,
) -> None:
    base = rating_base(staff_setup)
    payload = data.draw(
        st.one_of(
            mutated(base),
            # A session of another clinic's client: never a choice here.
            st.just(
                {
                    **{k: [v] for k, v in base.items()},
                    "session": [str(staff_setup["foreign_session"].pk)],
                }
            ),
        )
    )
    sessions = Session.objects.filter(episode__client=staff_setup["client"])
    assume(not TherapistRatingForm(querydict(payload), sessions=sessions).is_valid())
    CASES["POST /clients/<pk>/rating/"] += 1
    url = f"/clients/{staff_setup['client'].pk}/rating/"
    assert_form_refused(post_form(staff_setup["http"], url, payload, urlencoded))
    unchanged()


@FUZZ
@given(data=st.data(), urlencoded=st.booleans())
def test_fuzz_record_session(
    staff_setup: dict[str, Any],
    unchanged: Callable[[], None],
    data: st.DataObject,
    urlencoded: bool,
) -> None:
    payload = data.draw(mutated({"date": "2025-01-06", "attendance": "attended"}))
    assume(not SessionForm(querydict(payload)).is_valid())
    CASES["POST /clients/<pk>/sessions/"] += 1
    url = f"/clients/{staff_setup['client'].pk}/sessions/"
    assert_form_refused(post_form(staff_setup["http"], url, payload, urlencoded))
    unchanged()


@FUZZ
@given(body=st.binary(max_size=2000), content_type=st.sampled_from(CONTENT_TYPES))
def test_fuzz_staff_forms_raw_body(
    staff_setup: dict[str, Any], unchanged: Callable[[], None], body: bytes, content_type: str
) -> None:
    form = raw_form(body, content_type)
    sessions = Session.objects.filter(episode__client=staff_setup["client"])
    assume(not TherapistRatingForm(form, sessions=sessions).is_valid())
    assume(not SessionForm(form).is_valid())
    pk = staff_setup["client"].pk
    for url in (f"/clients/{pk}/rating/", f"/clients/{pk}/sessions/"):
        CASES["POST staff forms (raw bytes)"] += 1
        assert_form_refused(post_raw(staff_setup["http"], url, body, content_type))
    unchanged()


# -------------------------------------------------------------------------- alert actions


@FUZZ
@given(data=st.data(), urlencoded=st.booleans())
def test_fuzz_alert_resolve(
    staff_setup: dict[str, Any],
    unchanged: Callable[[], None],
    data: st.DataObject,
    urlencoded: bool,
) -> None:
    """Resolving a new alert (must be acknowledged first) or a resolved one: always refused,
    whatever the note; another clinic's alert: 404."""
    target = data.draw(st.sampled_from(["new", "resolved", "foreign_alert"]))
    payload = data.draw(mutated({"note": "Called the client.", "next": "/alerts/"}))
    CASES["POST /alerts/<pk>/resolve/"] += 1
    url = f"/alerts/{staff_setup[target].pk}/resolve/"
    response = post_form(staff_setup["http"], url, payload, urlencoded)
    if target == "foreign_alert":
        assert response.status_code == 404
    else:
        assert response.status_code == 400
        html = response.content.decode()
        assert "resolv" in html.lower() or BAD_REQUEST in html
    unchanged()


@FUZZ
@given(data=st.data(), urlencoded=st.booleans())
def test_fuzz_alert_acknowledge(
    staff_setup: dict[str, Any],
    unchanged: Callable[[], None],
    data: st.DataObject,
    urlencoded: bool,
) -> None:
    target = data.draw(st.sampled_from(["resolved", "foreign_alert"]))
    payload = data.draw(mutated({"next": "/alerts/"}))
    CASES["POST /alerts/<pk>/acknowledge/"] += 1
    url = f"/alerts/{staff_setup[target].pk}/acknowledge/"
    response = post_form(staff_setup["http"], url, payload, urlencoded)
    if target == "foreign_alert":
        assert response.status_code == 404
    else:
        assert response.status_code == 400
        assert "only a new alert can be acknowledged" in response.content.decode()
    unchanged()


@FUZZ
@given(
    pk=st.integers(min_value=0, max_value=10**40),
    action=st.sampled_from(["acknowledge", "resolve"]),
)
def test_fuzz_alert_ids(
    staff_setup: dict[str, Any], unchanged: Callable[[], None], pk: int, action: str
) -> None:
    """Any number in the URL: our own alerts refuse the change (400) or it is a 404; never a
    500, even for numbers beyond 64 bits."""
    assume(pk != staff_setup["new"].pk or action == "resolve")
    CASES["POST /alerts/<any pk>/..."] += 1
    response = staff_setup["http"].post(f"/alerts/{pk}/{action}/", {"note": ""})
    ours = pk in (staff_setup["new"].pk, staff_setup["resolved"].pk)
    assert response.status_code == (400 if ours else 404)
    unchanged()


@FUZZ
@given(pk=st.integers(min_value=0, max_value=10**40))
def test_fuzz_client_ids(
    staff_setup: dict[str, Any], unchanged: Callable[[], None], pk: int
) -> None:
    assume(pk != staff_setup["client"].pk)
    CASES["POST /clients/<any pk>/..."] += 1
    for suffix in ("rating/", "sessions/"):
        response = staff_setup["http"].post(f"/clients/{pk}/{suffix}", {"date": "x"})
        assert response.status_code == 404
    unchanged()


# ------------------------------------------------------------------------------------ CSRF


@pytest.fixture
def csrf_client(staff_setup: dict[str, Any]) -> HttpClient:
    """A logged-in browser whose POSTs carry no CSRF token (logging in writes last_login, so
    this comes before the snapshot)."""
    http = HttpClient(enforce_csrf_checks=True)
    http.force_login(staff_setup["client"].therapist)
    return http


@FUZZ
@given(
    payload=st.dictionaries(st.text(min_size=1, max_size=20), junk, max_size=5),
    target=st.sampled_from(["/login/", "/c/", "rating", "sessions", "ack", "resolve"]),
)
def test_fuzz_without_csrf_token(
    staff_setup: dict[str, Any],
    csrf_client: HttpClient,
    unchanged: Callable[[], None],
    payload: dict[str, str],
    target: str,
) -> None:
    url = {
        "rating": f"/clients/{staff_setup['client'].pk}/rating/",
        "sessions": f"/clients/{staff_setup['client'].pk}/sessions/",
        "ack": f"/alerts/{staff_setup['new'].pk}/acknowledge/",
        "resolve": f"/alerts/{staff_setup['new'].pk}/resolve/",
    }.get(target, target)
    CASES["POST without CSRF token"] += 1
    payload.pop("csrfmiddlewaretoken", None)
    response = csrf_client.post(url, payload)
    assert response.status_code == 403
    unchanged()
