"""De-identified exports for researchers and clinic admins.

``/exports/scores.csv`` is long format, one row per stored score: ``client_id`` (a per-clinic
pseudonym, see :func:`bordin.web.clinic.scoping.pseudonym`), ``session`` (number within the
episode), ``measure`` (instrument code), ``score`` and ``date`` (of the session). It never
contains names, contact details, free text, goals or user names. Every download is recorded
in the audit log.
"""

from __future__ import annotations

import io

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from bordin import csvsafe
from bordin.web.audit import log
from bordin.web.clinic import scoping

SCORE_COLUMNS = ("client_id", "session", "measure", "score", "date")


@login_required
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    profile = scoping.require(request.user, scoping.EXPORT_ROLES)
    return render(request, "exports/index.html", {"profile": profile})


@login_required
@require_GET
@never_cache
def scores_csv(request: HttpRequest) -> HttpResponse:
    rows = (
        scoping.export_scores_for(request.user)
        .filter(total__isnull=False)  # unscored questionnaires have no score to export
        .order_by("session__episode__client_id", "session__date", "session__number", "pk")
        .values_list(
            "session__episode__client__clinic_id",
            "session__episode__client_id",
            "session__number",
            "instrument__code",
            "total",
            "session__date",
        )
    )
    out = io.StringIO()
    writer = csvsafe.writer(out)  # every cell quoted and neutralised (OWASP)
    writer.writerow(SCORE_COLUMNS)
    n = 0
    for clinic_id, client_id, number, code, total, day in rows.iterator():
        writer.writerow(
            [scoping.pseudonym(clinic_id, client_id), number, code, f"{total:g}", day.isoformat()]
        )
        n += 1
    log.record(
        request, log.Action.EXPORT, object_type="scores_export", detail=f"scores.csv, {n} rows"
    )
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="bordin-scores.csv"'
    return response
