"""``/account/tokens/``: a staff member's personal API tokens (create, list, revoke)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from bordin.web.api.models import ApiToken
from bordin.web.audit import log
from bordin.web.clinic import scoping


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        label=gettext_lazy("What is it for?"),
        error_messages={
            "required": gettext_lazy("Give the token a name, e.g. the system that will use it.")
        },
    )
    scope = forms.ChoiceField(choices=ApiToken.Scope.choices, initial=ApiToken.Scope.READ)
    days = forms.IntegerField(
        label=gettext_lazy("Valid for (days)"),
        min_value=1,
        max_value=365,
        initial=90,
        error_messages={
            "min_value": gettext_lazy("Choose 1 to 365 days."),
            "max_value": gettext_lazy("Choose 1 to 365 days."),
            "invalid": gettext_lazy("Choose 1 to 365 days."),
            "required": gettext_lazy("Choose 1 to 365 days."),
        },
    )


def _page(
    request: HttpRequest, form: TokenForm, new_token: str = "", status: int = 200
) -> HttpResponse:
    return render(
        request,
        "api/tokens.html",
        {
            "form": form,
            "tokens": ApiToken.objects.filter(user_id=request.user.pk or 0),
            "new_token": new_token,
        },
        status=status,
    )


@require_GET
def api_index(request: HttpRequest) -> JsonResponse:
    """``/api/v1/``: where the API's description and docs are (no data, no token needed)."""
    return JsonResponse(
        {
            "name": "Bordin API",
            "version": "1",
            "openapi": request.build_absolute_uri("/api/v1/openapi.json"),
            "docs": request.build_absolute_uri("/api/v1/docs"),
            "fhir": request.build_absolute_uri("/fhir/metadata"),
        }
    )


@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    if scoping.staff_profile(request.user) is None:
        raise Http404("No staff profile")
    if request.method == "GET":
        return _page(request, TokenForm())
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    with transaction.atomic():
        row, token = ApiToken.issue(
            request.user,
            form.cleaned_data["name"],
            form.cleaned_data["scope"],
            form.cleaned_data["days"],
        )
        log.record(
            request,
            log.Action.CREATE,
            object_type="api_token",
            object_id=row.pk,
            detail=f"{row.scope} token '{row.name}' until {row.expires_at:%Y-%m-%d}",
        )
    # Shown once, on this response only: it is stored as a hash.
    return _page(request, TokenForm(), new_token=token)


@login_required
@require_POST
def revoke(request: HttpRequest, pk: int) -> HttpResponse:
    row = ApiToken.objects.filter(user_id=request.user.pk or 0, pk=pk).first()
    if row is None:
        log.record(request, log.Action.DENIED, object_type="api_token", object_id=pk)
        raise Http404("No such token")
    with transaction.atomic():
        if row.revoked_at is None:
            row.revoked_at = timezone.now()
            row.save(update_fields=["revoked_at"])
        log.record(request, log.Action.UPDATE, object_type="api_token", object_id=row.pk,
                   detail="revoked")  # fmt: skip
    messages.success(request, gettext("Token '%(name)s' revoked.") % {"name": row.name})
    return redirect("api-tokens")
