"""``/instruments/``: a clinic admin imports FHIR Questionnaires and decides which are asked."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_http_methods, require_POST

from bordin.measures.questionnaire import QuestionnaireError, check_size
from bordin.web.audit import log
from bordin.web.clinic import scoping
from bordin.web.clinic.models import StaffProfile
from bordin.web.delivery.services import plan_instrument
from bordin.web.instruments.forms import EntryForm, UploadForm
from bordin.web.instruments.models import ClinicInstrument
from bordin.web.instruments.problems import translate as translate_problem
from bordin.web.instruments.services import import_questionnaire

#: Roles that manage the clinic's instruments.
INSTRUMENT_ROLES = frozenset({StaffProfile.Role.CLINIC_ADMIN})


def _page(
    request: HttpRequest,
    profile: StaffProfile,
    upload: UploadForm | None = None,
    problems: list[str] | None = None,
    status: int = 200,
) -> HttpResponse:
    entries = ClinicInstrument.objects.filter(clinic_id=profile.clinic_id).select_related(
        "instrument"
    )
    return render(
        request,
        "instruments/list.html",
        {
            "entries": [(e, EntryForm(initial=_initial(e), prefix=f"e{e.pk}")) for e in entries],
            "upload": upload or UploadForm(),
            "problems": problems or [],
        },
        status=status,
    )


def _initial(entry: ClinicInstrument) -> dict[str, object]:
    return {"licence": entry.licence, "may_use": entry.may_use, "active": entry.active}


@login_required
@require_http_methods(["GET", "POST"])
def instrument_list(request: HttpRequest) -> HttpResponse:
    profile = scoping.require(request.user, INSTRUMENT_ROLES)
    if request.method == "GET":
        return _page(request, profile)
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _page(request, profile, form, status=400)
    upload = form.cleaned_data["file"]
    try:
        check_size(upload.size or 0, upload.name or "upload")  # before reading it
        data = upload.read()
        with transaction.atomic():
            result = import_questionnaire(
                data, upload.name or "upload", profile.clinic, request.user
            )
            log.record(
                request,
                log.Action.CREATE,
                object_type="instrument",
                object_id=result.entry.pk,
                detail=f"imported {result.entry.code} v{result.entry.instrument.version}",
            )
    except QuestionnaireError as exc:
        problems = [translate_problem(p) for p in exc.problems]
        return _page(request, profile, form, problems, status=400)
    names = {
        "name": result.imported.definition.name,
        "version": result.entry.instrument.version,
    }
    done = (
        gettext("Imported %(name)s (version %(version)s).")
        if result.new_version
        else gettext("Already imported: %(name)s (version %(version)s).")
    )
    messages.success(request, " ".join([done % names, *result.imported.notes]))
    return redirect("instruments")


@login_required
@require_POST
def instrument_update(request: HttpRequest, pk: int) -> HttpResponse:
    # One record: outside the user's scope it does not exist (404), as for client records.
    profile = scoping.staff_profile(request.user)
    entry = (
        ClinicInstrument.objects.filter(clinic_id=profile.clinic_id, pk=pk).first()
        if profile is not None and profile.role in INSTRUMENT_ROLES
        else None
    )
    if profile is None or entry is None:
        log.record(request, log.Action.DENIED, object_type="instrument", object_id=pk)
        raise Http404("No such instrument")
    form = EntryForm(request.POST, prefix=f"e{entry.pk}")
    if not form.is_valid():
        messages.error(
            request, gettext("Not saved: the licence text is too long (5,000 characters).")
        )
        return redirect("instruments")
    with transaction.atomic():
        was_usable = entry.may_use
        for key in ("licence", "may_use", "active"):
            setattr(entry, key, form.cleaned_data[key])
        entry.save(update_fields=["licence", "may_use", "active"])
        if entry.may_use != was_usable:  # ticked: into the plan; unticked: out of it
            plan_instrument(entry.clinic_id, entry.code, entry.may_use)
        log.record(
            request,
            log.Action.UPDATE,
            object_type="instrument",
            object_id=entry.pk,
            detail=f"{entry.code}: may be used {entry.may_use}, active {entry.active}",
        )
    messages.success(request, gettext("Saved %(code)s.") % {"code": entry.code})
    return redirect("instruments")
