"""Alert list and lifecycle transitions (POST only, CSRF-protected)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Case, Value, When
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_POST

from bordin.web.alerts import rules
from bordin.web.alerts.models import Alert
from bordin.web.audit import log
from bordin.web.clinic import scoping
from bordin.web.clinic.forms import ResolveForm
from bordin.web.clinic.scoping import alerts_for, get_alert_for
from bordin.web.nexturl import safe_next


@login_required
@require_GET
def alert_list(request: HttpRequest) -> HttpResponse:
    scoping.require(request.user, scoping.CLINICAL_ROLES)
    show = request.GET.get("show", "open")
    qs = alerts_for(request.user).select_related("client", "session")
    if show != "all":
        show = "open"
        qs = qs.filter(status__in=Alert.OPEN_STATUSES)
    # Open risk alerts first (issue 15), then newest first.
    risk_first = Case(
        When(kind=Alert.Kind.RISK, status__in=Alert.OPEN_STATUSES, then=Value(0)),
        default=Value(1),
    )
    alerts = list(qs.order_by(risk_first, "-created_at", "-pk")[:500])
    for alert in alerts:
        alert.can_act = scoping.can_write(request.user, alert.client)  # type: ignore[attr-defined]
    scoping.record_list(request, "alert", [(a.pk, a.client_id) for a in alerts], "alert list")
    return render(
        request,
        "alerts/list.html",
        {
            "alerts": alerts,
            "show": show,
            "resolve_form": ResolveForm(),
        },
    )


def _back(request: HttpRequest, alert: Alert) -> HttpResponse:
    target = safe_next(request, request.POST.get("next"))
    if target is not None:
        return HttpResponseRedirect(target)
    return redirect("client", pk=alert.client_id)


def _record(request: HttpRequest, alert: Alert, detail: str) -> None:
    log.record(
        request,
        log.Action.UPDATE,
        object_type="alert",
        object_id=alert.pk,
        client_id=alert.client_id,
        detail=f"{alert.kind} {detail}",
    )


def _refuse(request: HttpRequest, alert: Alert, message: str) -> HttpResponse:
    return render(
        request, "alerts/transition_error.html", {"alert": alert, "message": message}, status=400
    )


@login_required
@require_POST
def acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    alert = get_alert_for(request, pk, write=True)
    try:
        with transaction.atomic():
            rules.acknowledge(alert, request.user)
            _record(request, alert, "acknowledged")
    except rules.TransitionError as exc:
        return _refuse(request, alert, str(exc))
    messages.success(
        request, gettext("%(kind)s alert acknowledged.") % {"kind": alert.get_kind_display()}
    )
    return _back(request, alert)


@login_required
@require_POST
def resolve(request: HttpRequest, pk: int) -> HttpResponse:
    alert = get_alert_for(request, pk, write=True)
    form = ResolveForm(request.POST)
    if not form.is_valid():
        return _refuse(
            request,
            alert,
            gettext("Add a note (up to 2,000 characters) saying how it was resolved."),
        )
    try:
        with transaction.atomic():
            rules.resolve(alert, request.user, form.cleaned_data["note"])
            _record(request, alert, "resolved")
    except rules.TransitionError as exc:
        return _refuse(request, alert, str(exc))
    messages.success(
        request, gettext("%(kind)s alert resolved.") % {"kind": alert.get_kind_display()}
    )
    return _back(request, alert)
