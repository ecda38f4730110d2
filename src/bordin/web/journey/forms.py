"""Forms of the client's journey. Every limit is enforced server-side; a bad post stores nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.conf import settings
from django.core.validators import RegexValidator
from django.utils.translation import gettext_lazy as _

from bordin.web.checkins.forms import KEY_PATTERN, TOO_LONG
from bordin.web.journey.models import FORMATS, PROBLEM_AREAS, TIMES, FitCheck, Intake

SCALE = [(str(v), str(v)) for v in range(11)]
GOAL_LIMIT = 300

if TYPE_CHECKING:
    from django.utils.functional import _StrPromise

    Label = str | _StrPromise
else:
    Label = str


def _key_field() -> forms.CharField:
    return forms.CharField(
        widget=forms.HiddenInput,
        max_length=64,
        validators=[RegexValidator(KEY_PATTERN, _("This form is out of date; reload the page."))],
        error_messages={"required": _("This form is out of date; reload the page.")},
    )


def _text(label: Label, limit: int, *, required: bool = False, rows: int = 4) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=required,
        max_length=limit,
        strip=True,
        widget=forms.Textarea(attrs={"rows": rows, "maxlength": str(limit)}),
        error_messages={
            "required": _("Please write a few words here."),
            "max_length": TOO_LONG,
        },
    )


def _goal(label: Label, *, required: bool) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=required,
        max_length=GOAL_LIMIT,
        strip=True,
        widget=forms.TextInput(attrs={"maxlength": str(GOAL_LIMIT)}),
        error_messages={
            "required": _("Please write at least one thing you would like to be different."),
            "max_length": _("Please keep a goal to at most %(limit_value)d characters."),
        },
    )


def _scale(label: Label) -> forms.TypedChoiceField:
    return forms.TypedChoiceField(
        label=label,
        choices=SCALE,
        coerce=int,
        widget=forms.RadioSelect,
        error_messages={
            "required": _("Please choose a number from 0 to 10."),
            "invalid_choice": _("Please choose a number from 0 to 10."),
        },
    )


class IntakeForm(forms.Form):
    idempotency_key = _key_field()
    problem_areas = forms.MultipleChoiceField(
        label=_("What brings you to therapy? Tick all that fit."),
        choices=PROBLEM_AREAS,
        widget=forms.CheckboxSelectMultiple,
        error_messages={
            "required": _("Please tick at least one; choose “Something else” if none fits."),
            "invalid_choice": _("Please tick only the answers on the list."),
        },
    )
    goal_1 = _goal(_("First goal"), required=True)
    goal_2 = _goal(_("Second goal (optional)"), required=False)
    goal_3 = _goal(_("Third goal (optional)"), required=False)
    formats = forms.MultipleChoiceField(
        label=_("How would you like to meet? Tick all you would be happy with."),
        choices=FORMATS,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"invalid_choice": _("Please tick only the answers on the list.")},
    )
    times = forms.MultipleChoiceField(
        label=_("Which times usually suit you?"),
        choices=TIMES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"invalid_choice": _("Please tick only the answers on the list.")},
    )
    language = forms.CharField(
        label=_("Language you would like to have therapy in (optional)"),
        required=False,
        max_length=100,
        strip=True,
        error_messages={"max_length": _("Please keep this to at most %(limit_value)d characters.")},
    )
    past_therapy = forms.ChoiceField(
        label=_("Have you had therapy or counselling before?"),
        choices=Intake.PastTherapy.choices,
        widget=forms.RadioSelect,
        error_messages={
            "required": _("Please choose one answer."),
            "invalid_choice": _("Please choose one answer."),
        },
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit = settings.BORDIN_CHECKIN_TEXT_LIMIT
        self.text_limit = limit
        self.fields["own_words"] = _text(
            _("In your own words: what is going on, and what would you like to change?"), limit
        )
        self.fields["therapist_preferences"] = _text(
            _(
                "Is there anything about your therapist or the practical side that matters to "
                "you? (optional)"
            ),
            limit,
            rows=3,
        )
        self.fields["past_what_happened"] = _text(
            _("If you like: what happened in your earlier therapy?"), limit
        )
        self.fields["past_different"] = _text(
            _("What would you want to be different this time?"), limit
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("past_therapy") == Intake.PastTherapy.NONE:
            data["past_what_happened"] = ""
            data["past_different"] = ""
        return data

    def goals(self) -> list[str]:
        return [g for g in (self.cleaned_data.get(f"goal_{k}") for k in (1, 2, 3)) if g]


class FitCheckForm(forms.Form):
    idempotency_key = _key_field()
    heard = _scale(_("I felt heard and understood."))
    warmth = _scale(_("My therapist was warm, and I did not feel pushed."))
    honest = _scale(_("I can imagine being honest with this therapist, even about hard things."))
    choice = forms.ChoiceField(
        label=_("How would you like to go on?"),
        choices=FitCheck.Choice.choices,
        widget=forms.RadioSelect,
        error_messages={
            "required": _("Please choose one answer."),
            "invalid_choice": _("Please choose one answer."),
        },
    )
    share_with_therapist = forms.BooleanField(
        label=_("My therapist may see these answers."), required=False
    )

    SCALES = (
        ("heard", _("Not at all"), _("Completely")),
        ("warmth", _("Not at all"), _("Completely")),
        ("honest", _("Not at all"), _("Completely")),
    )


class GoalForm(forms.Form):
    text = forms.CharField(
        label=_("Goal, in the client's words"),
        max_length=GOAL_LIMIT,
        strip=True,
        widget=forms.TextInput(attrs={"maxlength": str(GOAL_LIMIT)}),
        error_messages={
            "required": _("Write the goal in the client's words."),
            "max_length": _("Keep a goal to at most %(limit_value)d characters."),
        },
    )


class AssignForm(forms.Form):
    therapist = forms.TypedChoiceField(
        label=_("Second therapist"),
        coerce=int,
        error_messages={
            "required": _("Choose a therapist."),
            "invalid_choice": _("Choose one of the therapists listed."),
        },
    )

    def __init__(self, *args: Any, therapists: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["therapist"]
        assert isinstance(field, forms.TypedChoiceField)  # noqa: S101 - narrowing for mypy
        field.choices = [(str(t.pk), t.get_full_name() or t.get_username()) for t in therapists]


class SettingsForm(forms.Form):
    show_goals_to_client = forms.BooleanField(
        label=_("Show clients their goals and latest ratings after each check-in"), required=False
    )
