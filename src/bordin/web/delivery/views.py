"""The unsubscribe page (no login: the signed link is the key), the outstanding list and its
one-click resend. Staff pages reach clients only through :mod:`bordin.web.clinic.scoping`."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from bordin.web import i18n
from bordin.web.audit import log
from bordin.web.clinic import scoping
from bordin.web.clinic.models import Client
from bordin.web.delivery import services, stats
from bordin.web.delivery.forms import PlanForm
from bordin.web.delivery.models import Delivery


@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """In the client's language (their browser's when the link is not valid)."""
    with i18n.restored():
        return i18n.with_language_header(_unsubscribe(request, token))


def _unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    found = services.read_unsubscribe_token(token)
    client = Client.objects.select_related("clinic").filter(pk=found[0]).first() if found else None
    if found is None or client is None:
        return render(request, "delivery/unsubscribe.html", {"invalid": True}, status=404)
    i18n.activate_for_client(request, client)
    channel = found[1]
    done = services.unsubscribed(client, channel)
    if request.method == "POST" and not done:
        services.record_unsubscribe(client, channel)
        done = True
    return render(
        request,
        "delivery/unsubscribe.html",
        {"clinic": client.clinic.name, "channel": channel, "done": done},
    )


def _outstanding(request: HttpRequest) -> list[Delivery]:
    clients = scoping.clients_for(request.user)
    rows = list(
        Delivery.objects.filter(client__in=clients, closed_at__isnull=True, issued_at__isnull=False)
        .filter(checkin_link__used_at__isnull=True, journey_link__used_at__isnull=True)
        .filter(checkin_link__revoked_at__isnull=True, journey_link__revoked_at__isnull=True)
        .select_related("client__therapist", "checkin_link", "journey_link", "session")
        .order_by("issued_at", "pk")
    )
    return rows


@login_required
@require_GET
def outstanding(request: HttpRequest) -> HttpResponse:
    profile = scoping.require(request.user, scoping.CLINICAL_ROLES)
    rows = _outstanding(request)
    scoping.record_list(request, "delivery", [(d.pk, d.client_id) for d in rows], "outstanding")
    writable = set(scoping.clients_for(request.user, write=True).values_list("pk", flat=True))
    return render(
        request,
        "delivery/outstanding.html",
        {
            "rows": rows,
            "writable": writable,
            "profile": profile,
            "rates": stats.therapist_rates(profile.clinic) if profile.is_clinic_admin else None,
        },
    )


@login_required
@require_POST
def resend(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = (
        Delivery.objects.filter(
            pk=pk,
            client__in=scoping.clients_for(request.user, write=True),
            closed_at__isnull=True,
            issued_at__isnull=False,
        )
        .select_related("client", "episode", "session", "checkin_link", "journey_link")
        .first()
    )
    if delivery is None or (delivery.link is not None and delivery.link.used_at is not None):
        if getattr(request.user, "is_authenticated", False):
            log.record(request, log.Action.DENIED, object_type="delivery", object_id=pk)
        raise Http404("No such questionnaire")
    fresh = services.resend(delivery, by=request.user)
    log.record(
        request,
        log.Action.CREATE,
        object_type="delivery",
        object_id=fresh.pk,
        client_id=delivery.client_id,
        detail=f"{delivery.kind} resent by {fresh.channel or 'hand (no channel)'}",
    )
    if fresh.channel:
        messages.success(
            request,
            gettext("A fresh link is on its way to %(client)s.") % {"client": delivery.client},
        )
    else:
        messages.warning(
            request,
            gettext(
                "%(client)s has no email or mobile with consent: "
                "open the client page to hand over a link."
            )
            % {"client": delivery.client},
        )
    return redirect("outstanding")


@login_required
@require_http_methods(["GET", "POST"])
def plan(request: HttpRequest) -> HttpResponse:
    """The clinic's measure plan: what is sent when (clinic admins)."""
    profile = scoping.require(request.user, {scoping.Role.CLINIC_ADMIN})
    instance = services.clinic_plan(profile.clinic)
    form = PlanForm(request.POST or None, instance=instance)
    if request.method == "POST":
        if form.is_valid():
            with transaction.atomic():
                saved = form.save()
                log.record(
                    request,
                    log.Action.UPDATE,
                    object_type="measure_plan",
                    object_id=saved.pk,
                    detail="clinic measure plan: " + ", ".join(form.changed_data),
                )
            messages.success(request, gettext("The measure plan is saved."))
            return redirect("delivery-plan")
        return render(request, "delivery/plan.html", {"form": form}, status=400)
    return render(request, "delivery/plan.html", {"form": form})
