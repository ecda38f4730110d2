"""The clinic's outcomes page: ``bordin report`` on the clinic's own, de-identified data.

Clinic admins and researchers (the export roles of :mod:`bordin.web.clinic.scoping`) see the
report of their own clinic. The data are read through :func:`scoping.export_scores_for`, so the
report sees exactly what the de-identified export contains: clients as per-clinic pseudonyms
(one per episode), therapists as numbers, no names, contact details or free text. Episode
endings (``Episode.ending_reason``) make NHS Talking Therapies results *finished* for ended
courses and give dropout by rupture status. Every view is recorded in the audit log.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.safestring import mark_safe
from django.utils.translation import gettext, gettext_noop
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from bordin.measures.longdata import InputError, check_long
from bordin.measures.report import Report, build
from bordin.measures.report_html import render as render_html
from bordin.measures.report_html import render_section, write_pdf_bytes
from bordin.web.audit import log
from bordin.web.clinic import analysis, scoping
from bordin.web.clinic.models import Episode, Response

#: The outcomes report's fixed texts (:mod:`bordin.measures.report_html` stays Django-free and
#: takes ``gettext`` as its ``translate``); listed here so ``makemessages`` finds them. The
#: sections' own titles, intros, rows and notes are still English (docs/translating.md).
REPORT_TEXTS = (
    gettext_noop("What"),
    gettext_noop("Result"),
    gettext_noop("95% CI"),
    gettext_noop("n"),
    gettext_noop("Method"),
    gettext_noop("Source"),
    gettext_noop("Sources"),
    gettext_noop("Interim results."),
    gettext_noop(
        "No course in these data has a recorded ending, so outcome figures include clients "
        "still in treatment."
    ),
    gettext_noop("this service d = %(d)s"),
    gettext_noop("%(label)s benchmark %(value)s"),
    gettext_noop("recovered"),
    gettext_noop("improved"),
    gettext_noop("unchanged"),
    gettext_noop("deteriorated"),
    gettext_noop("bar: this service (line: 95% CI) · orange mark: national reference"),
    gettext_noop("better"),
    gettext_noop("worse"),
)


def _data(user: Any) -> tuple[pl.DataFrame | None, dict[str, str], str]:
    """Long data of the user's clinic (403 for other roles), episode endings, clinic name."""
    profile = scoping.require(user, scoping.EXPORT_ROLES)
    reg = analysis.registry()
    rows = (
        scoping.export_scores_for(user)
        .filter(
            respondent=Response.Respondent.CLIENT,
            instrument__code__in=list(reg),
            total__isnull=False,  # an unscored questionnaire has no total
        )
        .values_list(
            "session__episode_id",
            "session__episode__client_id",
            "session__episode__client__therapist_id",
            "session__number",
            "instrument__code",
            "total",
        )
    )
    clinic_id = profile.clinic_id
    therapist_no: dict[int, str] = {}
    columns: dict[str, list[Any]] = {
        k: [] for k in ("client_id", "therapist_id", "session", "measure", "score")
    }
    seen: set[tuple[str, int, str]] = set()
    for episode_id, client_pk, therapist_pk, number, code, total in rows.iterator():
        key = f"{scoping.pseudonym(clinic_id, client_pk)}-{episode_id}"
        if (key, number, code) in seen:
            continue
        seen.add((key, number, code))
        label = therapist_no.setdefault(therapist_pk, f"therapist {len(therapist_no) + 1}")
        for col, value in zip(columns, (key, label, number, code, total), strict=True):
            columns[col].append(value)
    endings: dict[str, str] = {}
    for episode_id, client_pk, status, reason in Episode.objects.filter(
        client__clinic_id=clinic_id
    ).values_list("pk", "client_id", "status", "ending_reason"):
        ended = status == Episode.Status.CLOSED
        endings[f"{scoping.pseudonym(clinic_id, client_pk)}-{episode_id}"] = (
            (reason or "other") if ended else ""
        )
    if not columns["client_id"]:
        return None, endings, profile.clinic.name
    frame = pl.DataFrame(columns, schema_overrides={"score": pl.Float64})
    try:
        checked = check_long(frame, reg, source="clinic data")
    except InputError:
        return None, endings, profile.clinic.name
    return checked, endings, profile.clinic.name


def _report(request: HttpRequest) -> tuple[Report | None, str]:
    data, endings, name = _data(request.user)
    report = None
    if data is not None:
        clinic_id = scoping.require(request.user, scoping.EXPORT_ROLES).clinic_id
        report = build(
            data,
            analysis.clinic_registry(clinic_id),
            source=f"{name} (de-identified)",
            endings=endings,
            title=f"Outcomes report: {name}",
            rupture_threshold_from_data=True,
        )
    scores = 0 if data is None else data.height
    log.record(request, log.Action.READ, object_type="outcomes_report", detail=f"{scores} scores")
    return report, name


@login_required
@require_GET
@never_cache
def outcomes(request: HttpRequest) -> HttpResponse:
    report, name = _report(request)
    # render_section escapes every value it writes (see bordin.measures.report_html).
    parts = [render_section(s, gettext) for s in report.sections] if report is not None else []
    sections = [mark_safe(p) for p in parts]  # noqa: S308  # nosec B308 B703
    return render(
        request,
        "clinic/outcomes.html",
        {"report": report, "sections": sections, "clinic_name": name},
    )


@login_required
@require_GET
@never_cache
def outcomes_pdf(request: HttpRequest) -> HttpResponse:
    report, _name = _report(request)
    if report is None:
        messages.info(request, gettext("No scores yet, so there is no report to download."))
        return redirect("outcomes")
    response = HttpResponse(
        write_pdf_bytes(render_html(report, translate=gettext)), content_type="application/pdf"
    )
    response["Content-Disposition"] = 'attachment; filename="bordin-outcomes.pdf"'
    return response
