"""The audit log for clinic admins: ``/audit/`` (paginated, filtered) and ``/audit/export.csv``.

Only clinic admins, and only their clinic's events; superusers (site operators) also see the
events that belong to no clinic (:func:`scoping.audit_events_for`). There is
no view that changes or removes an event. Reading or exporting the log is itself recorded.
"""

from __future__ import annotations

from collections.abc import Iterator

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from bordin import csvsafe
from bordin.web.audit import log
from bordin.web.audit.models import AuditEvent
from bordin.web.clinic import scoping

PAGE_SIZE = 50
COLUMNS = (
    "at",
    "user_id",
    "username",
    "role",
    "checkin_link_id",
    "action",
    "object_type",
    "object_id",
    "client_id",
    "detail",
    "path",
    "ip_address",
    "user_agent",
)


class AuditFilter(forms.Form):
    client = forms.IntegerField(required=False, min_value=1, label=gettext_lazy("Client id"))
    user = forms.CharField(required=False, max_length=150, label=gettext_lazy("User name"))
    start = forms.DateField(
        required=False, label=gettext_lazy("From"), widget=forms.DateInput({"type": "date"})
    )
    end = forms.DateField(
        required=False, label=gettext_lazy("To"), widget=forms.DateInput({"type": "date"})
    )
    action = forms.ChoiceField(
        required=False,
        choices=[("", gettext_lazy("Any")), *AuditEvent.Action.choices],
        label=gettext_lazy("Action"),
    )

    def apply(self, qs: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        if not self.is_valid():
            return qs.none()
        data = self.cleaned_data
        if data["client"]:
            qs = qs.filter(client_id=data["client"])
        if data["user"]:
            qs = qs.filter(username=data["user"])
        if data["start"]:
            qs = qs.filter(at__date__gte=data["start"])
        if data["end"]:
            qs = qs.filter(at__date__lte=data["end"])
        if data["action"]:
            qs = qs.filter(action=data["action"])
        return qs

    def summary(self) -> str:
        if not self.is_valid():
            return "invalid filter"
        parts = [f"{k}={v}" for k, v in self.cleaned_data.items() if v]
        return ", ".join(parts) or "no filter"


def _filtered(request: HttpRequest) -> tuple[AuditFilter, QuerySet[AuditEvent]]:
    qs = scoping.audit_events_for(request.user)  # 403 unless clinic admin
    form = AuditFilter(request.GET)
    return form, form.apply(qs).order_by("-at", "-pk")


@login_required
@require_GET
@never_cache
def audit_list(request: HttpRequest) -> HttpResponse:
    form, qs = _filtered(request)
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)  # before this read's own event is stored
    log.record(request, log.Action.READ, object_type="audit_log", detail=form.summary())
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request, "audit/list.html", {"form": form, "page": page, "query": query.urlencode()}
    )


class _Echo:
    def write(self, value: str) -> str:
        return value


@login_required
@require_GET
@never_cache
def audit_export(request: HttpRequest) -> StreamingHttpResponse:
    form, qs = _filtered(request)
    log.record(request, log.Action.EXPORT, object_type="audit_log", detail=form.summary())
    writer = csvsafe.writer(_Echo())  # every cell quoted and neutralised (OWASP)

    def lines() -> Iterator[str]:
        yield writer.writerow(COLUMNS)
        for row in qs.values_list(*COLUMNS).iterator(chunk_size=2000):
            yield writer.writerow(row)

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="bordin-audit.csv"'
    return response
