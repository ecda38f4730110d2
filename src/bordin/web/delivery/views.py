"""The unsubscribe page (no login: the signed link is the key), the outstanding list and its
one-click resend. Staff pages reach clients only through :mod:`bordin.web.clinic.scoping`."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.decorators import decorator_from_middleware
from django.utils.translation import gettext
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from bordin.web import i18n
from bordin.web.audit import log
from bordin.web.clinic import scoping
from bordin.web.clinic.models import Client, Episode
from bordin.web.csrf import ClientFormCsrfMiddleware
from bordin.web.delivery import services, stats
from bordin.web.delivery.forms import (
    EPISODE_FIELDS,
    EpisodePlanForm,
    PlanForm,
    usable_instruments,
)
from bordin.web.delivery.models import Delivery, MeasurePlan

#: The CSRF check the site's middleware would make, for a view that is exempt from it.
csrf_checked = decorator_from_middleware(ClientFormCsrfMiddleware)


def is_one_click(request: HttpRequest) -> bool:
    """An RFC 8058 one-click unsubscribe: a POST whose form body is exactly
    ``List-Unsubscribe=One-Click`` (sent by a mail program, without cookies or a CSRF token)."""
    key, _, value = services.ONE_CLICK.partition("=")
    return request.method == "POST" and list(request.POST.lists()) == [(key, [value])]


# The only view exempt from the CSRF middleware (tests/web/test_client_pages.py): a mail
# program's one-click POST carries no token, and the signed link in the URL is the secret.
# Any other POST here (the confirmation page's button) is checked as everywhere else; a GET
# only asks for confirmation, so a mail scanner that follows links unsubscribes nobody.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """In the client's language (their browser's when the link is not valid)."""
    with i18n.restored():
        if is_one_click(request):
            response = _unsubscribe(request, token, via="one-click")
        else:
            response = _unsubscribe_page(request, token)
        return i18n.with_language_header(response)


def _unsubscribe(request: HttpRequest, token: str, via: str = "link") -> HttpResponse:
    found = services.read_unsubscribe_token(token)
    client = Client.objects.select_related("clinic").filter(pk=found[0]).first() if found else None
    if found is None or client is None:
        return render(request, "delivery/unsubscribe.html", {"invalid": True}, status=404)
    i18n.activate_for_client(request, client)
    channel = found[1]
    done = services.unsubscribed(client, channel)
    if request.method == "POST" and not done:
        services.record_unsubscribe(client, channel, via=via)
        done = True
    return render(
        request,
        "delivery/unsubscribe.html",
        {"clinic": client.clinic.name, "channel": channel, "done": done},
    )


_unsubscribe_page = cast("Callable[..., HttpResponse]", csrf_checked(_unsubscribe))


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


@login_required
@require_http_methods(["GET", "POST"])
def episode_plan(request: HttpRequest, pk: int) -> HttpResponse:
    """The client's episode's own measure plan beside the clinic's (the client's therapist
    and clinic admins): save one, or go back to the clinic's ("use clinic default")."""
    client = scoping.get_client_for(request, pk, write=True)
    episode = services.plan_episode(client)
    override = services.episode_plan(episode) if episode is not None else None
    form = None
    if episode is not None:
        instance = override or services.new_episode_plan(episode)
        form = EpisodePlanForm(request.POST or None, instance=instance)
    if request.method == "GET":
        log.record(
            request,
            log.Action.READ,
            object_type="measure_plan",
            object_id=override.pk if override else "",
            client_id=client.pk,
            detail="episode measure plan",
        )
        return _episode_plan_page(request, client, episode, override, form)
    if episode is None or form is None:
        messages.error(request, gettext("This client has no episode yet: nothing was saved."))
        return _episode_plan_page(request, client, episode, override, form, status=400)
    if request.POST.get("action") == "clear":
        if override is not None:
            with transaction.atomic():
                plan_pk = override.pk
                override.delete()
                log.record(
                    request,
                    log.Action.UPDATE,
                    object_type="measure_plan",
                    object_id=plan_pk,
                    client_id=client.pk,
                    detail=f"episode {episode.pk} measure plan removed: the clinic's applies",
                )
        messages.success(request, gettext("This episode follows the clinic's plan again."))
        return redirect("client-plan", pk=client.pk)
    if not form.is_valid():
        return _episode_plan_page(request, client, episode, override, form, status=400)
    with transaction.atomic():
        saved = form.save()
        log.record(
            request,
            log.Action.UPDATE if override else log.Action.CREATE,
            object_type="measure_plan",
            object_id=saved.pk,
            client_id=client.pk,
            detail=f"episode {episode.pk} measure plan: " + ", ".join(form.changed_data),
        )
    messages.success(request, gettext("This episode's own plan is saved."))
    return redirect("client-plan", pk=client.pk)


def _episode_plan_page(
    request: HttpRequest,
    client: Client,
    episode: Episode | None,
    override: MeasurePlan | None,
    form: EpisodePlanForm | None,
    status: int = 200,
) -> HttpResponse:
    clinic_plan = services.clinic_plan(client.clinic)
    labels = EpisodePlanForm.base_fields
    rows = [
        {
            "name": name,
            "label": labels[name].label,
            "clinic": _shown(getattr(clinic_plan, name)),
            "episode": _shown(getattr(override, name)) if override else "",
        }
        for name in EPISODE_FIELDS
    ]
    context = {
        "client": client,
        "episode": episode,
        "override": override,
        "form": form,
        "rows": rows,
        "usable": usable_instruments(client.clinic_id),
    }
    return render(request, "delivery/episode_plan.html", context, status=status)


def _shown(value: object) -> str:
    """A plan value as the page shows it: yes / no, or the codes or months in order."""
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or gettext("none")
    return str(value)
