"""Staff forms: the therapist's alliance rating and recording a session."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from bordin.web.clinic import analysis
from bordin.web.clinic.models import Session


class TherapistRatingForm(forms.Form):
    """Goals, tasks and bond, 0-10, for one of the client's sessions (wording from the
    therapist version of the alliance check-in)."""

    session = forms.ModelChoiceField(queryset=Session.objects.none(), empty_label=None)

    def __init__(self, *args: Any, sessions: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["session"].queryset = sessions  # type: ignore[attr-defined]
        self.fields["session"].label_from_instance = (  # type: ignore[attr-defined]
            lambda s: (
                _("Session %(n)s, %(date)s") % {"n": s.number, "date": date_format(s.date, "d M Y")}
            )
        )
        for item in analysis.registry()[analysis.THERAPIST_ALLIANCE].items:
            self.fields[item.id] = forms.TypedChoiceField(
                label=item.text_for(translation.get_language() or ""),
                choices=[(f"{o.value:g}", f"{o.value:g}") for o in item.options],
                coerce=float,
                widget=forms.RadioSelect,
                error_messages={
                    "required": _("Choose a number from 0 to 10."),
                    "invalid_choice": _("Choose a number from 0 to 10."),
                },
            )

    def answers(self) -> dict[str, float]:
        inst = analysis.registry()[analysis.THERAPIST_ALLIANCE]
        return {item.id: float(self.cleaned_data[item.id]) for item in inst.items}


class SessionForm(forms.Form):
    date = forms.DateField(
        initial=timezone.localdate, widget=forms.DateInput(attrs={"type": "date"})
    )
    attendance = forms.ChoiceField(
        choices=Session.Attendance.choices, initial=Session.Attendance.ATTENDED
    )
    another_on_same_day = forms.BooleanField(
        required=False, label=gettext_lazy("Another session on the same day")
    )


class ResolveForm(forms.Form):
    note = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": gettext_lazy("Add a note saying how the alert was resolved.")},
    )
