"""The check-in form, built from the instrument definitions (never from hard-coded wording).

Field names are stable (browser tests rely on them): ``<instrument>-<item>`` for each question
(``alliance-goals``, ``wellbeing-safety``, ``alliance-better``), ``goal-<id>`` for each goal and
``idempotency_key`` for the hidden key that makes a double submission store one response.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django import forms
from django.core.validators import RegexValidator
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from bordin.measures.instruments import Instrument as MeasureDefinition
from bordin.measures.instruments import Item
from bordin.web.clinic.models import Goal

KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
GOAL_SCALE = tuple(range(11))
SECTION_TITLES = {"alliance": "About today's session", "outcome": "About the past week"}


def field_name(instrument: MeasureDefinition, item: Item) -> str:
    return f"{instrument.code}-{item.id}"


def _value_text(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class Question:
    """One question as the template shows it."""

    field: forms.BoundField
    text: str
    kind: str  # "scale" (0-10 row), "choice" (labelled options) or "text"
    low: str = ""
    high: str = ""
    lowest: str = "0"
    highest: str = "10"

    def options(self) -> SafeString:
        """The radio buttons of a scale or choice question, as HTML.

        Written out here rather than through the widget's per-option templates: the check-in
        page has about a hundred options and this is most of its rendering time. Same markup,
        ids (``id_<name>_<index>``) and checked state as iterating over the bound field.
        """
        f = self.field
        current = f.value()
        chosen = "" if current is None else str(current)
        base, name = escape(f.auto_id), escape(f.html_name)
        # Every value below is escaped.
        return mark_safe(  # noqa: S308  # nosec B308 B703
            "\n".join(
                f'<label class="option" for="{base}_{k}"><input type="radio" name="{name}" '
                f'value="{escape(value)}" id="{base}_{k}"{" checked" if value == chosen else ""}>'
                f"<span>{escape(label)}</span></label>"
                for k, (value, label) in enumerate(f.field.choices)  # type: ignore[attr-defined]
            )
        )


@dataclass(frozen=True)
class Section:
    title: str
    intro: str
    questions: tuple[Question, ...]


class CheckinForm(forms.Form):
    idempotency_key = forms.CharField(
        widget=forms.HiddenInput,
        max_length=64,
        validators=[RegexValidator(KEY_PATTERN, "This form is out of date; reload the page.")],
        error_messages={"required": "This form is out of date; reload the page."},
    )

    def __init__(
        self,
        *args: Any,
        instruments: Sequence[MeasureDefinition],
        goals: Sequence[Goal],
        text_limit: int = 2000,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.instruments = tuple(instruments)
        self.goals = tuple(goals)
        self.text_limit = text_limit
        for inst in self.instruments:
            for item in inst.items:
                self.fields[field_name(inst, item)] = self._item_field(item)
        for goal in self.goals:
            self.fields[f"goal-{goal.pk}"] = forms.TypedChoiceField(
                choices=[(str(v), str(v)) for v in GOAL_SCALE],
                coerce=int,
                widget=forms.RadioSelect,
                error_messages={
                    "required": "Please choose a number from 0 to 10 for this goal.",
                    "invalid_choice": "Please choose a number from 0 to 10 for this goal.",
                },
            )

    def _item_field(self, item: Item) -> forms.Field:
        if item.kind == "text":
            return forms.CharField(
                required=False,
                max_length=self.text_limit,
                strip=True,
                widget=forms.Textarea(attrs={"rows": 4, "maxlength": str(self.text_limit)}),
                error_messages={
                    "max_length": (
                        "Please shorten your answer to at most %(limit_value)d characters "
                        "(it has %(show_value)d)."
                    )
                },
            )
        lo, hi = _value_text(item.min_value), _value_text(item.max_value)
        message = (
            f"Please choose a number from {lo} to {hi}."
            if not any(o.label for o in item.options)
            else "Please choose one of the answers."
        )
        return forms.TypedChoiceField(
            choices=[(_value_text(o.value), o.label or _value_text(o.value)) for o in item.options],
            coerce=float,
            required=item.required,
            empty_value=None,
            widget=forms.RadioSelect,
            error_messages={"required": message, "invalid_choice": message},
        )

    def sections(self) -> list[Section]:
        """Questions grouped by instrument, then the goals, with the wording of each item."""
        out = []
        for inst in self.instruments:
            questions = []
            for item in inst.items:
                bound = self[field_name(inst, item)]
                if item.kind == "text":
                    kind = "text"
                elif any(o.label for o in item.options):
                    kind = "choice"
                else:
                    kind = "scale"
                lo = _value_text(item.min_value) if item.options else ""
                hi = _value_text(item.max_value) if item.options else ""
                questions.append(Question(bound, item.text, kind, item.low, item.high, lo, hi))
            title = SECTION_TITLES.get(inst.role, inst.name)
            out.append(Section(title, "", tuple(questions)))
        if self.goals:
            out.append(
                Section(
                    "Your goals",
                    "",
                    tuple(
                        Question(self[f"goal-{g.pk}"], g.text, "scale", "Not at all", "Fully")
                        for g in self.goals
                    ),
                )
            )
        return out

    def answers(self, inst: MeasureDefinition) -> tuple[dict[str, float], str]:
        """Cleaned numeric answers of one instrument and its free text (joined)."""
        numbers: dict[str, float] = {}
        texts: list[str] = []
        for item in inst.items:
            value = self.cleaned_data.get(field_name(inst, item))
            if item.kind == "text":
                if value:
                    texts.append(str(value))
            elif value is not None:
                numbers[item.id] = float(value)
        return numbers, "\n\n".join(texts)

    def goal_ratings(self) -> dict[int, int]:
        return {g.pk: int(self.cleaned_data[f"goal-{g.pk}"]) for g in self.goals}
