"""Forms of the client's journey. Every limit is enforced server-side; a bad post stores nothing."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.validators import RegexValidator

from bordin.web.checkins.forms import KEY_PATTERN
from bordin.web.journey.models import FORMATS, PROBLEM_AREAS, TIMES, FitCheck, Intake

SCALE = [(str(v), str(v)) for v in range(11)]
GOAL_LIMIT = 300


def _key_field() -> forms.CharField:
    return forms.CharField(
        widget=forms.HiddenInput,
        max_length=64,
        validators=[RegexValidator(KEY_PATTERN, "This form is out of date; reload the page.")],
        error_messages={"required": "This form is out of date; reload the page."},
    )


def _text(label: str, limit: int, *, required: bool = False, rows: int = 4) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=required,
        max_length=limit,
        strip=True,
        widget=forms.Textarea(attrs={"rows": rows, "maxlength": str(limit)}),
        error_messages={
            "required": "Please write a few words here.",
            "max_length": (
                "Please shorten your answer to at most %(limit_value)d characters "
                "(it has %(show_value)d)."
            ),
        },
    )


def _goal(label: str, *, required: bool) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=required,
        max_length=GOAL_LIMIT,
        strip=True,
        widget=forms.TextInput(attrs={"maxlength": str(GOAL_LIMIT)}),
        error_messages={
            "required": "Please write at least one thing you would like to be different.",
            "max_length": "Please keep a goal to at most %(limit_value)d characters.",
        },
    )


def _scale(label: str) -> forms.TypedChoiceField:
    return forms.TypedChoiceField(
        label=label,
        choices=SCALE,
        coerce=int,
        widget=forms.RadioSelect,
        error_messages={
            "required": "Please choose a number from 0 to 10.",
            "invalid_choice": "Please choose a number from 0 to 10.",
        },
    )


class IntakeForm(forms.Form):
    idempotency_key = _key_field()
    problem_areas = forms.MultipleChoiceField(
        label="What brings you to therapy? Tick all that fit.",
        choices=PROBLEM_AREAS,
        widget=forms.CheckboxSelectMultiple,
        error_messages={
            "required": "Please tick at least one; choose “Something else” if none fits.",
            "invalid_choice": "Please tick only the answers on the list.",
        },
    )
    goal_1 = _goal("First goal", required=True)
    goal_2 = _goal("Second goal (optional)", required=False)
    goal_3 = _goal("Third goal (optional)", required=False)
    formats = forms.MultipleChoiceField(
        label="How would you like to meet? Tick all you would be happy with.",
        choices=FORMATS,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"invalid_choice": "Please tick only the answers on the list."},
    )
    times = forms.MultipleChoiceField(
        label="Which times usually suit you?",
        choices=TIMES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"invalid_choice": "Please tick only the answers on the list."},
    )
    language = forms.CharField(
        label="Language you would like to have therapy in (optional)",
        required=False,
        max_length=100,
        strip=True,
        error_messages={"max_length": "Please keep this to at most %(limit_value)d characters."},
    )
    past_therapy = forms.ChoiceField(
        label="Have you had therapy or counselling before?",
        choices=Intake.PastTherapy.choices,
        widget=forms.RadioSelect,
        error_messages={
            "required": "Please choose one answer.",
            "invalid_choice": "Please choose one answer.",
        },
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit = settings.BORDIN_CHECKIN_TEXT_LIMIT
        self.text_limit = limit
        self.fields["own_words"] = _text(
            "In your own words: what is going on, and what would you like to change?", limit
        )
        self.fields["therapist_preferences"] = _text(
            "Is there anything about your therapist or the practical side that matters to you? "
            "(optional)",
            limit,
            rows=3,
        )
        self.fields["past_what_happened"] = _text(
            "If you like: what happened in your earlier therapy?", limit
        )
        self.fields["past_different"] = _text(
            "What would you want to be different this time?", limit
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
    heard = _scale("I felt heard and understood.")
    warmth = _scale("My therapist was warm, and I did not feel pushed.")
    honest = _scale("I can imagine being honest with this therapist, even about hard things.")
    choice = forms.ChoiceField(
        label="How would you like to go on?",
        choices=FitCheck.Choice.choices,
        widget=forms.RadioSelect,
        error_messages={
            "required": "Please choose one answer.",
            "invalid_choice": "Please choose one answer.",
        },
    )
    share_with_therapist = forms.BooleanField(
        label="My therapist may see these answers.", required=False
    )

    SCALES = (
        ("heard", "Not at all", "Completely"),
        ("warmth", "Not at all", "Completely"),
        ("honest", "Not at all", "Completely"),
    )


class GoalForm(forms.Form):
    text = forms.CharField(
        label="Goal, in the client's words",
        max_length=GOAL_LIMIT,
        strip=True,
        widget=forms.TextInput(attrs={"maxlength": str(GOAL_LIMIT)}),
        error_messages={
            "required": "Write the goal in the client's words.",
            "max_length": "Keep a goal to at most %(limit_value)d characters.",
        },
    )


class AssignForm(forms.Form):
    therapist = forms.TypedChoiceField(
        label="Second therapist",
        coerce=int,
        error_messages={
            "required": "Choose a therapist.",
            "invalid_choice": "Choose one of the therapists listed.",
        },
    )

    def __init__(self, *args: Any, therapists: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["therapist"]
        assert isinstance(field, forms.TypedChoiceField)  # noqa: S101 - narrowing for mypy
        field.choices = [(str(t.pk), t.get_full_name() or t.get_username()) for t in therapists]


class SettingsForm(forms.Form):
    show_goals_to_client = forms.BooleanField(
        label="Show clients their goals and latest ratings after each check-in", required=False
    )
