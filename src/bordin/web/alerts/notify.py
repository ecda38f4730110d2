"""Telling people at once when a client reports a risk: the one place that sends the e-mail.

:func:`notify_risk` e-mails the client's therapist and the clinic's duty contact
(``Clinic.duty_email``) with Django's ``send_mail``, after the check-in is stored. The e-mail
names no client and no answer, only that a risk alert is waiting, and links to the client's
page (behind log-in and the second factor). A sent notification is an audit event
(``create``, object type ``alert_notification``); the client's thank-you page says "your clinic
has been told" only when that event exists (:func:`was_notified`). A failed delivery (no mail
server, a refused address) is logged and leaves the page saying nothing of the kind.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext

from bordin.web.alerts.models import Alert
from bordin.web.alerts.rules import for_therapist
from bordin.web.audit import log
from bordin.web.audit.models import AuditEvent

logger = logging.getLogger("bordin.alerts")

NOTIFICATION = "alert_notification"


def recipients(alert: Alert) -> list[str]:
    clinic = alert.client.clinic
    therapist = alert.client.therapist
    found = [getattr(therapist, "email", "") or "", clinic.duty_email]
    return list(dict.fromkeys(address for address in found if address))


def notify_risk(alert: Alert, request: HttpRequest | None = None) -> bool:
    """E-mail the therapist and the duty contact about a new risk alert; whether it was sent."""
    if alert.kind != Alert.Kind.RISK or was_notified(alert):
        return was_notified(alert)
    to = recipients(alert)
    if not to:
        logger.warning("Risk alert %s: no therapist or duty e-mail address to notify.", alert.pk)
        return False
    path = reverse("client", args=[alert.client_id])
    url = request.build_absolute_uri(path) if request is not None else path
    # In the therapist's language, not the client's (this runs in the client's check-in).
    with for_therapist(alert.client):
        subject = gettext("Bordin: a client reported a possible risk")
        message = gettext(
            "A client answered the safety question of their check-in with a possible risk "
            "of self-harm. Please contact them today.\n\nOpen the client's page in Bordin: "
            "%(url)s\n"
        ) % {"url": url}
    try:
        sent = send_mail(
            subject=subject,
            message=message,
            from_email=getattr(settings, "DEFAULT_FROM_EMAIL", None),
            recipient_list=to,
        )
    except Exception:  # any delivery failure: logged, and the client is not told otherwise
        logger.exception("Risk alert %s: the notification e-mail could not be sent.", alert.pk)
        return False
    if not sent:
        return False
    log.record(
        request,
        log.Action.CREATE,
        object_type=NOTIFICATION,
        object_id=alert.pk,
        client_id=alert.client_id,
        clinic_id=alert.clinic_id,
        detail=f"risk alert e-mailed to {len(to)} recipient(s)",
    )
    return True


def was_notified(alert: Alert) -> bool:
    return AuditEvent.objects.filter(object_type=NOTIFICATION, object_id=str(alert.pk)).exists()
