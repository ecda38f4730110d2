"""``/api/v1/``: Bordin's REST API (Django Ninja), OpenAPI 3 at ``/api/v1/openapi.json``.

Every request carries a personal API token (``Authorization: Bearer ...``, see
:mod:`bordin.web.api.auth`); the token's staff member becomes the request's user, so records are
reached through :mod:`bordin.web.clinic.scoping` and audited exactly as on the web. A bad token
is 401, a record outside the user's scope 404, a write with a read-only token 403, and invalid
input 422 with a message per field. Results come from :mod:`bordin.measures` via
:mod:`bordin.web.clinic.analysis`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from ninja import Field, NinjaAPI, Schema, Status
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import HttpBearer

from bordin.web.alerts import rules
from bordin.web.alerts.models import Alert
from bordin.web.api.auth import authenticate
from bordin.web.api.models import ApiToken
from bordin.web.audit import log
from bordin.web.clinic import analysis, scoping, sessions
from bordin.web.clinic.models import Client, Response


class TokenAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> ApiToken | None:
        return authenticate(request, token)


api = NinjaAPI(
    title="Bordin API",
    version="1",
    description="Scoped, audited access to a clinic's records with a personal API token "
    "(docs/api.md).",
    auth=TokenAuth(),
    urls_namespace="api-v1",
    docs_url="/docs",
    openapi_url="/openapi.json",
)


# --- errors -----------------------------------------------------------------------------------


class Message(Schema):
    detail: str


class FieldError(Schema):
    field: str
    message: str


class Invalid(Schema):
    detail: str
    errors: list[FieldError]


@api.exception_handler(ValidationError)
def _invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors = []
    for err in exc.errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "payload", "query", "path")]
        errors.append({"field": ".".join(loc) or "body", "message": str(err.get("msg", ""))})
    return api.create_response(
        request, {"detail": "The request is not valid.", "errors": errors}, status=422
    )


@api.exception_handler(AuthenticationError)
def _unauthorised(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    response = api.create_response(
        request, {"detail": "Give a valid personal API token: Authorization: Bearer …"}, status=401
    )
    response["WWW-Authenticate"] = 'Bearer realm="bordin"'
    return response


def _writer(request: HttpRequest) -> None:
    token: ApiToken = request.auth  # type: ignore[attr-defined]
    if not token.can_write:
        raise HttpError(403, "This token is read-only; make a read-and-write token to change data.")


# --- schemas ----------------------------------------------------------------------------------


class ClientOut(Schema):
    id: int
    display_name: str
    active: bool
    therapist: str
    created_at: dt.datetime


class EpisodeOut(Schema):
    id: int
    start: dt.date
    end: dt.date | None
    status: str
    sessions: int


class SessionIn(Schema):
    date: dt.date
    attendance: Literal["attended", "missed", "cancelled", "late_cancelled"] = "attended"


class SessionOut(Schema):
    id: int
    episode: int
    number: int
    date: dt.date
    attendance: str
    checkin_link_issued: bool


class ResponseOut(Schema):
    id: int
    session: int
    date: dt.date
    instrument: str
    version: str
    respondent: str
    total: float | None
    risk_flagged: bool
    answers: dict[str, float | bool | str]
    submitted_at: dt.datetime


class AlertOut(Schema):
    id: int
    client: int
    session: int | None
    kind: str
    status: str
    detail: str
    created_at: dt.datetime


class ChangeOut(Schema):
    measure: str
    first_session: int
    first: float
    latest_session: int
    latest: float
    improvement: float
    category: str = Field(description="Jacobson & Truax category of first → latest.")


class RuptureOut(Schema):
    session: int
    previous_session: int
    drop: float
    status: str
    repair_session: int | None


class SuddenChangeOut(Schema):
    kind: str
    pregain_session: int
    postgain_session: int
    pregain_score: float
    postgain_score: float
    magnitude: float


class TrajectoryOut(Schema):
    session: int
    score: float
    expected: float
    upper: float
    status: str


class ResultsOut(Schema):
    client: int
    episode: int | None
    outcome_measure: str | None
    change: ChangeOut | None
    ruptures: list[RuptureOut]
    sudden_changes: list[SuddenChangeOut]
    trajectory: list[TrajectoryOut]
    trajectory_status: str | None


def _client(request: HttpRequest, pk: int, *, write: bool = False) -> Client:
    return scoping.get_client_for(request, pk, write=write)  # 404 outside scope; audited


def _client_out(c: Client) -> dict[str, Any]:
    return {
        "id": c.pk,
        "display_name": c.display_name,
        "active": c.active,
        "therapist": c.therapist.get_username(),
        "created_at": c.created_at,
    }


def _alert_out(a: Alert) -> dict[str, Any]:
    return {
        "id": a.pk,
        "client": a.client_id,
        "session": a.session_id,
        "kind": a.kind,
        "status": a.status,
        "detail": a.detail,
        "created_at": a.created_at,
    }


# --- endpoints --------------------------------------------------------------------------------

ERRORS: dict[int, type[Schema]] = {401: Message, 404: Message}


@api.get("/clients", response={200: list[ClientOut], 401: Message}, url_name="clients")
def list_clients(request: HttpRequest) -> list[dict[str, Any]]:
    """Clients the token's user may see (as the caseload)."""
    clients = list(scoping.clients_for(request.user).select_related("therapist"))
    scoping.record_list(request, "client", [(c.pk, c.pk) for c in clients], detail="API list")
    return [_client_out(c) for c in clients]


@api.get("/clients/{client_id}", response={200: ClientOut, **ERRORS}, url_name="client")
def get_client(request: HttpRequest, client_id: int) -> dict[str, Any]:
    return _client_out(_client(request, client_id))


@api.get(
    "/clients/{client_id}/episodes",
    response={200: list[EpisodeOut], **ERRORS},
    url_name="client-episodes",
)
def list_episodes(request: HttpRequest, client_id: int) -> list[dict[str, Any]]:
    client = _client(request, client_id)
    return [
        {
            "id": e.pk,
            "start": e.start,
            "end": e.end,
            "status": e.status,
            "sessions": e.sessions.count(),
        }
        for e in client.episodes.all()
    ]


@api.post(
    "/clients/{client_id}/sessions",
    response={201: SessionOut, 403: Message, 422: Invalid, **ERRORS},
    url_name="client-sessions",
)
def create_session(
    request: HttpRequest, client_id: int, payload: SessionIn
) -> Status[dict[str, Any]]:
    """Record a session in the client's open episode (one is opened if there is none); an
    attended session gets a check-in link, as on the web."""
    _writer(request)
    client = _client(request, client_id, write=True)
    with transaction.atomic():
        episode = sessions.open_episode(client, payload.date)
        if payload.date < episode.start:
            raise ValidationError(
                [
                    {
                        "loc": ("body", "payload", "date"),
                        "msg": "The date is before the episode "
                        f"started ({episode.start:%Y-%m-%d}).",
                    }
                ]
            )
        done = sessions.record(request, episode, payload.date, payload.attendance, via=" (API)")
    session, number, issued = done.session, done.session.number, done.link is not None
    return Status(
        201,
        {
            "id": session.pk,
            "episode": episode.pk,
            "number": number,
            "date": session.date,
            "attendance": session.attendance,
            "checkin_link_issued": issued,
        },
    )


@api.get(
    "/clients/{client_id}/responses",
    response={200: list[ResponseOut], **ERRORS},
    url_name="client-responses",
)
def list_responses(request: HttpRequest, client_id: int) -> list[dict[str, Any]]:
    """Questionnaire responses (scores and answers; free text stays on the web page)."""
    client = _client(request, client_id)
    rows = (
        Response.objects.filter(session__episode__client=client)
        .select_related("session", "instrument")
        .order_by("session__date", "session__number", "pk")
        .defer("free_text")
    )
    return [
        {
            "id": r.pk,
            "session": r.session.number,
            "date": r.session.date,
            "instrument": r.instrument.code,
            "version": r.instrument.version,
            "respondent": r.respondent,
            "total": r.total,
            "risk_flagged": r.risk_flagged,
            "answers": r.answers,
            "submitted_at": r.submitted_at,
        }
        for r in rows
    ]


@api.get(
    "/clients/{client_id}/results", response={200: ResultsOut, **ERRORS}, url_name="client-results"
)
def get_results(request: HttpRequest, client_id: int) -> dict[str, Any]:
    """Change, ruptures, sudden changes and trajectory of the latest episode."""
    client = _client(request, client_id)
    episode = client.episodes.order_by("-start", "-pk").first()
    out: dict[str, Any] = {
        "client": client.pk,
        "episode": episode.pk if episode else None,
        "outcome_measure": None,
        "change": None,
        "ruptures": [],
        "sudden_changes": [],
        "trajectory": [],
        "trajectory_status": None,
    }
    if episode is None:
        return out
    data = analysis.episode_data(episode, comments=False)
    alliance = data.scores(analysis.ALLIANCE)
    out["ruptures"] = [vars(r) for r in analysis.ruptures(alliance, client.clinic_id)]
    code = data.outcome_code()
    if code is None:
        return out
    scores = data.scores(code)
    out["outcome_measure"] = code
    out["sudden_changes"] = [vars(s) for s in analysis.sudden_changes(code, scores)]
    points = analysis.trajectory(analysis.reference_model(client.clinic, code), scores)
    out["trajectory"] = [vars(p) for p in points]
    out["trajectory_status"] = points[-1].status if points else None
    out["change"] = _change(code, scores)
    return out


def _change(code: str, scores: list[float | None]) -> dict[str, Any] | None:
    from bordin.measures.reliable_change import classify_change

    present = [(k + 1, v) for k, v in enumerate(scores) if v is not None]
    inst = analysis.registry()[code]
    if len(present) < 2 or inst.reliable_change is None:
        return None
    (s1, first), (s2, latest) = present[0], present[-1]
    return {
        "measure": code,
        "first_session": s1,
        "first": first,
        "latest_session": s2,
        "latest": latest,
        "improvement": inst.improvement(first, latest),
        "category": classify_change(
            first,
            latest,
            threshold=inst.reliable_change,
            lower_is_better=inst.lower_is_better,
            caseness=inst.caseness,
        ),
    }


@api.get("/alerts", response={200: list[AlertOut], 401: Message}, url_name="alerts")
def list_alerts(request: HttpRequest, status: str | None = None) -> list[dict[str, Any]]:
    """Alerts about the clients the user may see; ``status`` filters (new, acknowledged, ...)."""
    alerts = scoping.alerts_for(request.user).order_by("-created_at", "-pk")
    if status:
        alerts = alerts.filter(status=status)
    listed = list(alerts[:500])
    scoping.record_list(request, "alert", [(a.pk, a.client_id) for a in listed], "API list")
    return [_alert_out(a) for a in listed]


@api.post(
    "/alerts/{alert_id}/acknowledge",
    response={200: AlertOut, 403: Message, 409: Message, **ERRORS},
    url_name="alert-acknowledge",
)
def acknowledge_alert(request: HttpRequest, alert_id: int) -> Any:
    _writer(request)
    alert = scoping.get_alert_for(request, alert_id, write=True)
    try:
        with transaction.atomic():
            alert = rules.acknowledge(alert, request.user)
            log.record(
                request,
                log.Action.UPDATE,
                object_type="alert",
                object_id=alert.pk,
                client_id=alert.client_id,
                detail=f"{alert.kind} acknowledged (API)",
            )
    except rules.TransitionError as exc:
        return Status(409, {"detail": str(exc)})
    return _alert_out(alert)
