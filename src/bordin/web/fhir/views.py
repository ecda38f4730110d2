"""FHIR R4 exports (staff pages) and read-only FHIR endpoints (bearer tokens).

* ``/clients/<pk>/fhir.json``: one client's Bundle, for whoever may read the client page;
* ``/exports/fhir.json`` and ``/exports/fhir.ndjson``: the clinic's Bundle (or NDJSON, one
  resource per line, for bulk use) for a clinic admin (identified) or researcher
  (pseudonymous Patient ids, no names);
* ``/fhir/metadata`` (CapabilityStatement, open), ``/fhir/Questionnaire``,
  ``/fhir/QuestionnaireResponse?patient=``, ``/fhir/Observation?patient=&code=``: searchset
  Bundles for a personal API token (``Authorization: Bearer ...``), scoped as the token's user
  and audited as reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET

from bordin.web.api.auth import authenticate
from bordin.web.audit import log
from bordin.web.clinic import scoping
from bordin.web.clinic.models import Client, Instrument
from bordin.web.fhir import resources as fr

ViewFunc = Callable[..., HttpResponse]


def fhir_response(body: dict[str, Any], status: int = 200) -> HttpResponse:
    return HttpResponse(json.dumps(body), content_type=fr.FHIR_JSON, status=status)


def outcome(status: int, code: str, text: str) -> HttpResponse:
    response = fhir_response(
        {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": text}],
        },
        status,
    )
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="bordin"'
    return response


def token_required(view: ViewFunc) -> ViewFunc:
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if authenticate(request) is None:
            return outcome(401, "login", "Give a valid personal API token: Authorization: Bearer …")
        return view(request, *args, **kwargs)

    return wrapped


def _audit(
    request: HttpRequest, kind: str, rows: Iterable[dict[str, Any]], by_pid: dict[str, int]
) -> None:
    pairs = []
    for r in rows:
        ref = r.get("subject", {}).get("reference", "")
        client_id = by_pid.get(ref.removeprefix("Patient/"))
        if client_id is not None:
            pairs.append((r["id"], client_id))
    scoping.record_list(request, kind, pairs, detail=f"FHIR {kind} search")


# --- exports (staff session) ------------------------------------------------------------------


@login_required
@require_GET
def client_bundle(request: HttpRequest, pk: int) -> HttpResponse:
    client = scoping.get_client_for(request, pk)  # 404 outside scope; records the read
    body = fr.bundle(fr.resources([client], pseudonymous=False))
    log.record(
        request,
        log.Action.EXPORT,
        object_type="fhir_bundle",
        object_id=client.pk,
        client_id=client.pk,
        detail=f"FHIR Bundle, {len(body['entry'])} resources",
    )
    response = fhir_response(body)
    response["Content-Disposition"] = f'attachment; filename="client-{client.pk}-fhir.json"'
    return response


def _clinic_resources(request: HttpRequest) -> tuple[Iterable[dict[str, Any]], bool]:
    profile = scoping.require(request.user, scoping.EXPORT_ROLES)
    clients = Client.objects.filter(clinic_id=profile.clinic_id).order_by("pk")
    pseudonymous = profile.is_researcher
    return fr.resources(clients, pseudonymous), pseudonymous


@login_required
@require_GET
def clinic_bundle(request: HttpRequest) -> HttpResponse:
    found, pseudonymous = _clinic_resources(request)
    body = fr.bundle(found)
    log.record(
        request,
        log.Action.EXPORT,
        object_type="fhir_export",
        detail=f"FHIR Bundle ({'pseudonymous' if pseudonymous else 'identified'}), "
        f"{len(body['entry'])} resources",
    )
    response = fhir_response(body)
    response["Content-Disposition"] = 'attachment; filename="clinic-fhir.json"'
    return response


@login_required
@require_GET
def clinic_ndjson(request: HttpRequest) -> StreamingHttpResponse:
    found, pseudonymous = _clinic_resources(request)
    log.record(
        request,
        log.Action.EXPORT,
        object_type="fhir_export",
        detail=f"FHIR NDJSON ({'pseudonymous' if pseudonymous else 'identified'})",
    )
    response = StreamingHttpResponse(
        (json.dumps(r) + "\n" for r in found), content_type="application/fhir+ndjson"
    )
    response["Content-Disposition"] = 'attachment; filename="clinic-fhir.ndjson"'
    return response


# --- read-only FHIR endpoints (bearer token) ----------------------------------------------------


@require_GET
def metadata(request: HttpRequest) -> HttpResponse:
    """The CapabilityStatement: what this server offers (no client data, no token needed)."""

    def resource(kind: str, params: list[tuple[str, str]]) -> dict[str, Any]:
        return {
            "type": kind,
            "interaction": [{"code": "search-type"}],
            "searchParam": [{"name": n, "type": t} for n, t in params],
        }

    return fhir_response(
        {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": "2026-12-04",
            "kind": "instance",
            "fhirVersion": "4.0.1",
            "format": ["json"],
            "implementation": {"description": "Bordin read-only FHIR endpoints"},
            "rest": [
                {
                    "mode": "server",
                    "security": {
                        "service": [
                            {
                                "text": "Personal API token: Authorization: Bearer <token>",
                            }
                        ],
                        "description": "Bearer personal API token; reads scoped and audited.",
                    },
                    "resource": [
                        resource("Questionnaire", []),
                        resource("QuestionnaireResponse", [("patient", "reference")]),
                        resource("Observation", [("patient", "reference"), ("code", "token")]),
                    ],
                }
            ],
        }
    )


def _scoped(request: HttpRequest) -> tuple[list[Client], bool, dict[str, int]]:
    clients, pseudonymous = scoping.interop_clients_for(request.user)
    wanted = request.GET.get("patient", "").removeprefix("Patient/")
    listed = list(clients.order_by("pk"))
    by_pid = {fr.patient_id(c, pseudonymous): c.pk for c in listed}
    if wanted:
        listed = [c for c in listed if fr.patient_id(c, pseudonymous) == wanted]
    return listed, pseudonymous, by_pid


@require_GET
@token_required
def questionnaire_search(request: HttpRequest) -> HttpResponse:
    profile = scoping.staff_profile(request.user)
    assert profile is not None  # noqa: S101 - token_required checked it  # nosec B101
    from bordin.web.instruments.models import ClinicInstrument

    ids = set(
        ClinicInstrument.objects.filter(clinic_id=profile.clinic_id).values_list(
            "instrument_id", flat=True
        )
    )
    ids |= set(
        Instrument.objects.filter(
            responses__session__episode__client__clinic_id=profile.clinic_id
        ).values_list("pk", flat=True)
    )
    rows = Instrument.objects.filter(pk__in=ids).select_related("questionnaire_source")
    return fhir_response(fr.bundle((fr.questionnaire(r) for r in rows), "searchset"))


def _search(request: HttpRequest, kind: str) -> HttpResponse:
    clients, pseudonymous, by_pid = _scoped(request)
    code = request.GET.get("code", "")
    found = [
        r
        for r in fr.resources(clients, pseudonymous)
        if r["resourceType"] == kind
        and (
            not code
            or any(c["code"] == code.split("|")[-1] for c in r.get("code", {}).get("coding", []))
        )
    ]
    _audit(request, f"fhir_{kind.lower()}", found, by_pid)
    return fhir_response(fr.bundle(found, "searchset"))


@require_GET
@token_required
def questionnaire_response_search(request: HttpRequest) -> HttpResponse:
    return _search(request, "QuestionnaireResponse")


@require_GET
@token_required
def observation_search(request: HttpRequest) -> HttpResponse:
    return _search(request, "Observation")
