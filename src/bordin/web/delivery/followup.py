"""Follow-up after a planned ending: a reliable deterioration raises a relapse alert.

The follow-up score is compared with the last outcome score of treatment (the score the
client ended on) by the Jacobson & Truax (1991) reliable change criterion
(:func:`bordin.measures.reliable_change.classify_change`): a change larger than the
measure's reliable-change threshold, ``1.96 * sqrt(2) * SD * sqrt(1 - r)``, in the worse
direction is a reliable deterioration. Jacobson, N. S., & Truax, P. (1991). Clinical
significance: a statistical approach to defining meaningful change in psychotherapy research.
Journal of Consulting and Clinical Psychology, 59(1), 12-19.
"""

from __future__ import annotations

from django.db.models import Q
from django.utils.translation import gettext

from bordin.measures.reliable_change import classify_change
from bordin.web.alerts.models import Alert
from bordin.web.alerts.rules import for_therapist, raise_alert
from bordin.web.clinic import analysis
from bordin.web.clinic.models import Response, Session
from bordin.web.delivery.models import Delivery


def check_relapse(session: Session) -> Alert | None:
    """After a follow-up check-in: the relapse alert for the client's (last) therapist."""
    followups = Delivery.objects.filter(kind=Delivery.Kind.FOLLOWUP)
    delivery = followups.filter(session=session).first()
    if delivery is None:
        return None
    reg = analysis.registry()
    for code in analysis.OUTCOME_CODES:
        after = Response.objects.filter(
            session=session, respondent=Response.Respondent.CLIENT, instrument__code=code
        ).first()
        inst = reg.get(code)
        if after is None or after.total is None or inst is None or inst.reliable_change is None:
            continue
        before = (
            Response.objects.filter(
                session__episode=session.episode,
                respondent=Response.Respondent.CLIENT,
                instrument__code=code,
            )
            .exclude(Q(session__deliveries__kind=Delivery.Kind.FOLLOWUP))
            .exclude(total__isnull=True)
            .order_by("-session__number")
            .first()
        )
        if before is None or before.total is None:
            continue
        category = classify_change(
            before.total,
            after.total,
            threshold=inst.reliable_change,
            lower_is_better=inst.lower_is_better,
        )
        if category != "deteriorated":
            return None
        client = session.episode.client
        with for_therapist(client):
            detail = gettext(
                "Reliable deterioration at the %(months)s-month follow-up: %(measure)s "
                "%(before)s at the end of treatment, %(after)s now (reliable change is "
                "%(threshold)s points)."
            ) % {
                "months": delivery.followup_month,
                "measure": inst.name,
                "before": f"{before.total:g}",
                "after": f"{after.total:g}",
                "threshold": f"{inst.reliable_change:g}",
            }
        alert, _ = raise_alert(client, Alert.Kind.RELAPSE, session, detail)
        return alert
    return None
