"""The clinic's measure plan, edited by its clinic admin (``/outstanding/plan/``)."""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.utils.translation import gettext_lazy

from bordin.web.clinic import analysis
from bordin.web.delivery.models import NOT_AT_FOLLOWUP, MeasurePlan
from bordin.web.instruments.models import ClinicInstrument


def _codes(value: str, label: Any, clinic_id: int, followup: bool = False) -> list[str]:
    """Plan codes: built-in measures, or the clinic's imported instruments an admin marked
    "may be used in this clinic" on /instruments/."""
    codes = list(dict.fromkeys(c.strip() for c in value.split(",") if c.strip()))
    if not codes:
        raise forms.ValidationError(
            gettext_lazy("Name at least one instrument for %(what)s.") % {"what": label}
        )
    known = set(analysis.registry())
    imported = dict(
        ClinicInstrument.objects.filter(clinic_id=clinic_id).values_list("code", "may_use")
    )
    usable = known | {code for code, may_use in imported.items() if may_use}
    not_licensed = [c for c in codes if c not in usable and c in imported]
    if not_licensed:
        raise forms.ValidationError(
            gettext_lazy(
                "Not marked 'May be used in this clinic': %(codes)s. An admin ticks it on the "
                "Instruments page (/instruments/) once the licence allows it."
            )
            % {"codes": ", ".join(not_licensed)}
        )
    unknown = [c for c in codes if c not in usable]
    if unknown:
        raise forms.ValidationError(
            gettext_lazy("Unknown instrument code(s): %(codes)s. Known codes: %(known)s.")
            % {"codes": ", ".join(unknown), "known": ", ".join(sorted(usable))}
        )
    if followup:
        alliance = [c for c in codes if c in NOT_AT_FOLLOWUP]
        if alliance:
            raise forms.ValidationError(
                gettext_lazy("A follow-up asks outcome measures only: remove %(codes)s.")
                % {"codes": ", ".join(alliance)}
            )
    return codes


class PlanForm(forms.ModelForm):  # type: ignore[type-arg]
    checkin_codes = forms.CharField(
        label=gettext_lazy("After each attended session (instrument codes, comma-separated)"),
        max_length=300,
    )
    followup_codes = forms.CharField(
        label=gettext_lazy("At follow-up (outcome measures, comma-separated)"), max_length=300
    )
    followup_months = forms.CharField(
        label=gettext_lazy("Follow-up after a planned ending, in months (comma-separated)"),
        max_length=50,
    )

    class Meta:
        model = MeasurePlan
        fields = (
            "send_intake",
            "send_fit_check",
            "send_checkin",
            "send_graduation",
            "checkin_codes",
            "followup_codes",
            "followup_months",
            "reminder_hours",
            "quiet_start",
            "quiet_end",
            "clinic_contact",
        )
        labels: ClassVar[dict[str, Any]] = {
            "reminder_hours": gettext_lazy("Reminder after (hours; empty: the server's default)"),
            "quiet_start": gettext_lazy("Quiet hours start (no reminders)"),
            "quiet_end": gettext_lazy("Quiet hours end"),
            "clinic_contact": gettext_lazy(
                "How former clients reach the clinic (in follow-up messages)"
            ),
            "send_intake": gettext_lazy("Send intake"),
            "send_fit_check": gettext_lazy("Send fit check"),
            "send_checkin": gettext_lazy("Send checkin"),
            "send_graduation": gettext_lazy("Send graduation"),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            for name in ("checkin_codes", "followup_codes", "followup_months"):
                self.initial[name] = ", ".join(str(v) for v in getattr(self.instance, name))

    def _clinic_id(self) -> int:
        plan: MeasurePlan = self.instance
        clinic = plan.clinic if plan.clinic_id else plan.episode.client.clinic  # type: ignore[union-attr]
        return int(clinic.pk)  # type: ignore[union-attr]

    def clean_checkin_codes(self) -> list[str]:
        value = self.cleaned_data["checkin_codes"]
        return _codes(value, gettext_lazy("the session check-in"), self._clinic_id())

    def clean_followup_codes(self) -> list[str]:
        value = self.cleaned_data["followup_codes"]
        return _codes(value, gettext_lazy("the follow-up"), self._clinic_id(), followup=True)

    def clean_followup_months(self) -> list[int]:
        raw = [m.strip() for m in self.cleaned_data["followup_months"].split(",") if m.strip()]
        try:
            months = sorted({int(m) for m in raw})
        except ValueError:
            raise forms.ValidationError(
                gettext_lazy("Write whole months separated by commas, e.g. 1, 3, 6.")
            ) from None
        if any(m < 1 or m > 24 for m in months):
            raise forms.ValidationError(
                gettext_lazy("Each follow-up is 1 to 24 months after the ending.")
            )
        return months
