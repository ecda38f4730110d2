"""The clinic's measure plan, edited by its clinic admin (``/outstanding/plan/``), and an
episode's own plan, edited by the client's therapist (``/clients/<pk>/plan/``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from bordin.web.clinic import analysis
from bordin.web.delivery.models import NOT_AT_FOLLOWUP, MeasurePlan
from bordin.web.instruments.models import ClinicInstrument
from bordin.web.instruments.services import definition_of


@dataclass(frozen=True)
class Usable:
    """An instrument a plan may name: a built-in measure or an imported one."""

    code: str
    name: str
    imported: bool


def usable_instruments(clinic_id: int) -> list[Usable]:
    """What a plan of this clinic may name, by code: Bordin's built-in measures and the
    clinic's imported instruments an admin marked "may be used in this clinic" on
    /instruments/ (an imported one replaces a built-in of the same code)."""
    found = {code: Usable(code, d.name, False) for code, d in analysis.registry().items()}
    entries = ClinicInstrument.objects.filter(clinic_id=clinic_id, may_use=True)
    for entry in entries.select_related("instrument"):
        found[entry.code] = Usable(entry.code, definition_of(entry.instrument).name, True)
    return sorted(found.values(), key=lambda u: u.code)


def _codes(value: str, empty: str, clinic_id: int, followup: bool = False) -> list[str]:
    """Plan codes: built-in measures, or the clinic's imported instruments an admin marked
    "may be used in this clinic" on /instruments/. ``empty``: the error when none is named."""
    codes = list(dict.fromkeys(c.strip() for c in value.split(",") if c.strip()))
    if not codes:
        raise forms.ValidationError(empty)
    imported = dict(
        ClinicInstrument.objects.filter(clinic_id=clinic_id).values_list("code", "may_use")
    )
    # The codes of usable_instruments(), from the row already read (no definitions parsed).
    usable = set(analysis.registry()) | {code for code, may_use in imported.items() if may_use}
    not_licensed = [c for c in codes if c not in usable and c in imported]
    if not_licensed:
        raise forms.ValidationError(
            gettext(
                "Not marked 'May be used in this clinic': %(codes)s. An admin ticks it on the "
                "Instruments page (/instruments/) once the licence allows it."
            )
            % {"codes": ", ".join(not_licensed)}
        )
    unknown = [c for c in codes if c not in usable]
    if unknown:
        raise forms.ValidationError(
            gettext("Unknown instrument code(s): %(codes)s. Known codes: %(known)s.")
            % {"codes": ", ".join(unknown), "known": ", ".join(sorted(usable))}
        )
    if followup:
        alliance = [c for c in codes if c in NOT_AT_FOLLOWUP]
        if alliance:
            raise forms.ValidationError(
                gettext("A follow-up asks outcome measures only: remove %(codes)s.")
                % {"codes": ", ".join(alliance)}
            )
    return codes


RUPTURE_RULE_CHOICES = (
    ("reliable", _("Reliable change (default): tied to the measure's reliability")),
    ("fixed", _("Fixed: a drop of 1.5 points")),
    ("ceiling", _("Ceiling-aware: reliable change scaled to each client's own spread")),
)


class PlanForm(forms.ModelForm):  # type: ignore[type-arg]
    checkin_codes = forms.CharField(
        label=_("After each attended session (instrument codes, comma-separated)"),
        max_length=300,
    )
    followup_codes = forms.CharField(
        label=_("At follow-up (outcome measures, comma-separated)"), max_length=300
    )
    followup_months = forms.CharField(
        label=_("Follow-up after a planned ending, in months (comma-separated)"), max_length=50
    )
    alliance_rupture_rule = forms.ChoiceField(
        label=_("Rupture rule for the alliance check-in (docs/measures.md)"),
        choices=RUPTURE_RULE_CHOICES,
        initial="reliable",
        required=False,  # not posted: the rule stays as it was
    )

    class Meta:
        model = MeasurePlan
        fields: tuple[str, ...] = (
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
            "send_intake": _("Intake questionnaire when a client is added"),
            "send_fit_check": _("Fit check after session 1"),
            "send_checkin": _("Check-in after each attended session"),
            "send_graduation": _("End-of-therapy summary at a planned ending"),
            "reminder_hours": _("Reminder after (hours; empty: the server's default)"),
            "quiet_start": _("Quiet hours start (no reminders)"),
            "quiet_end": _("Quiet hours end"),
            "clinic_contact": _("How former clients reach the clinic (in follow-up messages)"),
        }
        # The labels say it all; the models' English help texts are not shown (nor pointed
        # at by aria-describedby).
        help_texts: ClassVar[dict[str, str]] = dict.fromkeys(
            ("send_intake", "send_fit_check", "send_checkin", "send_graduation", "reminder_hours",
             "clinic_contact"), "",
        )  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            for name in ("checkin_codes", "followup_codes", "followup_months"):
                self.initial[name] = ", ".join(str(v) for v in getattr(self.instance, name))
            rule = (self.instance.rupture_rules or {}).get(analysis.ALLIANCE, "reliable")
            self.initial["alliance_rupture_rule"] = rule

    def save(self, commit: bool = True) -> MeasurePlan:
        plan: MeasurePlan = super().save(commit=False)
        rule = self.cleaned_data.get("alliance_rupture_rule")
        if rule:
            plan.rupture_rules = {**(plan.rupture_rules or {}), analysis.ALLIANCE: rule}
        if commit:
            plan.save()
            if plan.clinic_id:
                analysis.forget_rupture_setting(plan.clinic_id)
        return plan

    def _clinic_id(self) -> int:
        plan: MeasurePlan = self.instance
        clinic = plan.clinic if plan.clinic_id else plan.episode.client.clinic  # type: ignore[union-attr]
        return int(clinic.pk)  # type: ignore[union-attr]

    def clean_checkin_codes(self) -> list[str]:
        value = self.cleaned_data["checkin_codes"]
        empty = gettext("Name at least one instrument for the session check-in.")
        return _codes(value, empty, self._clinic_id())

    def clean_followup_codes(self) -> list[str]:
        value = self.cleaned_data["followup_codes"]
        empty = gettext("Name at least one instrument for the follow-up.")
        return _codes(value, empty, self._clinic_id(), followup=True)

    def clean_followup_months(self) -> list[int]:
        raw = [m.strip() for m in self.cleaned_data["followup_months"].split(",") if m.strip()]
        try:
            months = sorted({int(m) for m in raw})
        except ValueError:
            raise forms.ValidationError(
                gettext("Write whole months separated by commas, e.g. 1, 3, 6.")
            ) from None
        if any(m < 1 or m > 24 for m in months):
            raise forms.ValidationError(
                gettext("Each follow-up is 1 to 24 months after the ending.")
            )
        return months


#: What an episode's own plan changes; the reminder delay, quiet hours and the contact line
#: stay the clinic's (docs/delivery.md), and the intake is sent before an episode has a plan.
EPISODE_FIELDS = (
    "send_fit_check",
    "send_checkin",
    "send_graduation",
    "checkin_codes",
    "followup_codes",
    "followup_months",
)


class EpisodePlanForm(PlanForm):
    """One episode's own plan (``MeasurePlan`` with ``episode`` set)."""

    class Meta(PlanForm.Meta):
        fields = EPISODE_FIELDS
