"""The clinic's measure plan, edited by its clinic admin (``/outstanding/plan/``)."""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms

from bordin.web.clinic import analysis
from bordin.web.delivery.models import MeasurePlan


def _codes(value: str, label: str) -> list[str]:
    codes = [c.strip() for c in value.split(",") if c.strip()]
    if not codes:
        raise forms.ValidationError(f"Name at least one instrument for {label}.")
    known = analysis.registry()
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise forms.ValidationError(
            f"Unknown instrument code(s): {', '.join(unknown)}. Known codes: "
            f"{', '.join(sorted(known))}."
        )
    return codes


class PlanForm(forms.ModelForm):  # type: ignore[type-arg]
    checkin_codes = forms.CharField(
        label="After each attended session (instrument codes, comma-separated)", max_length=300
    )
    followup_codes = forms.CharField(
        label="At follow-up (outcome measures, comma-separated)", max_length=300
    )
    followup_months = forms.CharField(
        label="Follow-up after a planned ending, in months (comma-separated)", max_length=50
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
        labels: ClassVar[dict[str, str]] = {
            "reminder_hours": "Reminder after (hours; empty: the server's default)",
            "quiet_start": "Quiet hours start (no reminders)",
            "quiet_end": "Quiet hours end",
            "clinic_contact": "How former clients reach the clinic (in follow-up messages)",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            for name in ("checkin_codes", "followup_codes", "followup_months"):
                self.initial[name] = ", ".join(str(v) for v in getattr(self.instance, name))

    def clean_checkin_codes(self) -> list[str]:
        return _codes(self.cleaned_data["checkin_codes"], "the session check-in")

    def clean_followup_codes(self) -> list[str]:
        return _codes(self.cleaned_data["followup_codes"], "the follow-up")

    def clean_followup_months(self) -> list[int]:
        raw = [m.strip() for m in self.cleaned_data["followup_months"].split(",") if m.strip()]
        try:
            months = sorted({int(m) for m in raw})
        except ValueError:
            raise forms.ValidationError(
                "Write whole months separated by commas, e.g. 1, 3, 6."
            ) from None
        if any(m < 1 or m > 24 for m in months):
            raise forms.ValidationError("Each follow-up is 1 to 24 months after the ending.")
        return months
