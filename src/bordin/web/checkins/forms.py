"""The check-in form, built from the instrument definitions (never from hard-coded wording).

Field names are stable (browser tests rely on them): ``<instrument>-<item>`` for each question
(``alliance-goals``, ``wellbeing-safety``, ``alliance-better``), ``goal-<id>`` for each goal and
``idempotency_key`` for the hidden key that makes a double submission store one response.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings
from django.core.validators import RegexValidator
from django.utils.choices import BaseChoiceIterator
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from bordin.measures.instruments import TEXT_KINDS, Item
from bordin.measures.instruments import Instrument as MeasureDefinition
from bordin.web.clinic.models import Goal

KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
GOAL_SCALE = tuple(range(11))
TOO_LONG = gettext_lazy(
    "Please shorten your answer to at most %(limit_value)d characters (it has %(show_value)d)."
)
SECTION_TITLES = {
    "alliance": gettext_lazy("About today's session"),
    "outcome": gettext_lazy("About the past week"),
}


class _Choices(BaseChoiceIterator):
    """``(value, label)`` pairs of strings, which is already the form Django normalises choices
    to: a field and its widget take them as they are. A list would be normalised twice per
    field (field and widget), element by element; with about a hundred options that was half
    of building the check-in form (issue 10)."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self.pairs = tuple(pairs)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.pairs)


#: A goal's 0-10 scale.
GOAL_CHOICES = _Choices((str(v), str(v)) for v in GOAL_SCALE)


def field_name(instrument: MeasureDefinition, item: Item) -> str:
    return f"{instrument.code}-{item.id}"


def _value_text(value: float) -> str:
    return f"{value:g}"


def _condition_hint(inst: MeasureDefinition, item: Item, language: str = "") -> str:
    """When a conditional question applies, in words (all questions are shown: no JavaScript)."""
    parts = []
    for cond in item.enable_when:
        target = inst.item(cond.question)
        name = f'"{target.text_for(language)}"' if target.text else _("an earlier question")
        if cond.operator == "exists":
            parts.append(
                _("you answered %(question)s") % {"question": name}
                if cond.answer
                else _("you left %(question)s empty") % {"question": name}
            )
            continue
        shown: object = cond.answer
        if isinstance(cond.answer, float) and target.options:
            option = target.option_for(cond.answer)
            shown = (
                option.label_for(language) if option and option.label else _value_text(cond.answer)
            )
        elif isinstance(cond.answer, float):
            shown = _value_text(cond.answer)
        words = {
            "=": _("your answer to %(question)s was %(value)s"),
            "!=": _("your answer to %(question)s was not %(value)s"),
            ">": _("your answer to %(question)s was more than %(value)s"),
            "<": _("your answer to %(question)s was less than %(value)s"),
            ">=": _("your answer to %(question)s was at least %(value)s"),
            "<=": _("your answer to %(question)s was at most %(value)s"),
        }[cond.operator]
        parts.append(words % {"question": name, "value": shown})
    joiner = _(" or ") if item.enable_behavior == "any" else _(" and ")
    return (
        _("Answer this only if %(conditions)s.") % {"conditions": joiner.join(parts)}
        if parts
        else ""
    )


def _has_language(inst: MeasureDefinition, language: str) -> bool:
    """Whether an imported questionnaire can be shown in ``language`` (FHIR ``translation``).

    The default language (``settings.LANGUAGE_CODE``) counts as the questionnaire's own.
    """
    primary = (language or settings.LANGUAGE_CODE).lower().split("-")[0]
    if primary == settings.LANGUAGE_CODE.lower().split("-")[0]:
        return True
    return any(
        lang.lower().split("-")[0] == primary
        for item in inst.items
        for lang, _ in item.translations
    )


@dataclass(frozen=True)
class Question:
    """One question as the template shows it."""

    field: forms.BoundField | None  # None for a heading or display text
    text: str
    #: "scale" (0-10 row), "choice" (labelled options), "text" (long free text), "input"
    #: (number or one line), "heading" (a group's title) or "display" (text only)
    kind: str
    low: str = ""
    high: str = ""
    lowest: str = "0"
    highest: str = "10"
    hint: str = ""

    def options(self) -> SafeString:
        """The radio buttons of a scale or choice question, as HTML.

        Written out here rather than through the widget's per-option templates: the check-in
        page has about a hundred options and this is most of its rendering time. Same markup,
        ids (``id_<name>_<index>``) and checked state as iterating over the bound field.
        """
        f = self.field
        if f is None:
            return SafeString("")
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
        validators=[
            RegexValidator(KEY_PATTERN, gettext_lazy("This form is out of date; reload the page."))
        ],
        error_messages={"required": gettext_lazy("This form is out of date; reload the page.")},
    )
    #: The instruments (code, version) this form shows, signed for its link
    #: (:func:`bordin.web.checkins.services.shown_instruments`); not required: without it the
    #: submission reads the measure plan again.
    shown = forms.CharField(widget=forms.HiddenInput, required=False, max_length=4000)
    #: The session's delivery kind ("checkin" or "followup") the form was built for.
    delivery_kind: str = ""

    def __init__(
        self,
        *args: Any,
        instruments: Sequence[MeasureDefinition],
        goals: Sequence[Goal],
        text_limit: int = 2000,
        language: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.language = language
        self.instruments = tuple(instruments)
        self.goals = tuple(goals)
        self.text_limit = text_limit
        for inst in self.instruments:
            for item in inst.items:
                if item.takes_answer:
                    self.fields[field_name(inst, item)] = self._item_field(item)
        for goal in self.goals:
            self.fields[f"goal-{goal.pk}"] = forms.TypedChoiceField(
                choices=GOAL_CHOICES,
                coerce=int,
                widget=forms.RadioSelect,
                error_messages={
                    "required": _("Please choose a number from 0 to 10 for this goal."),
                    "invalid_choice": _("Please choose a number from 0 to 10 for this goal."),
                },
            )

    def _item_field(self, item: Item) -> forms.Field:
        # A question shown only after some answers cannot be required by the browser's form
        # (there is no JavaScript): ``clean`` requires it when its condition holds.
        required = item.required and not item.enable_when
        if item.kind in ("integer", "decimal"):
            whole = item.kind == "integer"
            field_class = forms.IntegerField if whole else forms.FloatField
            return field_class(
                required=required,
                widget=forms.NumberInput(
                    attrs={"inputmode": "numeric" if item.kind == "integer" else "decimal"}
                ),
                error_messages={
                    "required": _("Please enter a whole number.")
                    if whole
                    else _("Please enter a number."),
                    "invalid": _("Please enter a whole number, for example 3.")
                    if whole
                    else _("Please enter a number, for example 3."),
                },
            )
        if item.kind == "string":
            return forms.CharField(
                required=required,
                max_length=self.text_limit,
                strip=True,
                error_messages={
                    "required": _("Please write an answer."),
                    "max_length": TOO_LONG,
                },
            )
        if item.kind == "text":
            return forms.CharField(
                required=False,
                max_length=self.text_limit,
                strip=True,
                widget=forms.Textarea(attrs={"rows": 4, "maxlength": str(self.text_limit)}),
                error_messages={"max_length": TOO_LONG},
            )
        lo, hi = _value_text(item.min_value), _value_text(item.max_value)
        message = (
            _("Please choose a number from %(low)s to %(high)s.") % {"low": lo, "high": hi}
            if not any(o.label for o in item.options)
            else _("Please choose one of the answers.")
        )
        return forms.TypedChoiceField(
            choices=_Choices(
                (_value_text(o.value), o.label_for(self.language) or _value_text(o.value))
                for o in item.options
            ),
            coerce=float,
            required=required,
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
                if not item.takes_answer:
                    questions.append(
                        Question(
                            None,
                            item.text_for(self.language),
                            "heading" if item.kind == "group" else "display",
                        )
                    )
                    continue
                bound = self[field_name(inst, item)]
                if item.kind == "text":
                    kind = "text"
                elif item.kind in ("string", "integer", "decimal"):
                    kind = "input"
                elif any(o.label for o in item.options):
                    kind = "choice"
                else:
                    kind = "scale"
                lo = _value_text(item.min_value) if item.options else ""
                hi = _value_text(item.max_value) if item.options else ""
                questions.append(
                    Question(
                        bound,
                        item.text_for(self.language),
                        kind,
                        item.low_for(self.language),
                        item.high_for(self.language),
                        lo,
                        hi,
                        _condition_hint(inst, item, self.language),
                    )
                )
            title = str(SECTION_TITLES.get(inst.role, inst.name)) if not inst.source else inst.name
            intro = ""
            if inst.source and not _has_language(inst, self.language):
                intro = _(
                    "These questions are shown in the questionnaire's own language: it has no "
                    "translation into yours."
                )
            out.append(Section(title, intro, tuple(questions)))
        if self.goals:
            out.append(
                Section(
                    _("Your goals"),
                    "",
                    tuple(
                        Question(self[f"goal-{g.pk}"], g.text, "scale", _("Not at all"), _("Fully"))
                        for g in self.goals
                    ),
                )
            )
        return out

    def answers(self, inst: MeasureDefinition) -> tuple[dict[str, float], str]:
        """Cleaned numeric answers of one instrument and its free text (joined)."""
        numbers: dict[str, float] = {}
        texts: list[str] = []
        raw = {
            item.id: self.cleaned_data.get(field_name(inst, item))
            for item in inst.items
            if item.takes_answer
        }
        for item_id, value in inst.enabled_answers(raw).items():
            item = inst.item(item_id)
            if item.kind in TEXT_KINDS:
                if value:
                    texts.append(str(value))
            elif value is not None:
                numbers[item.id] = float(value)
        return numbers, "\n\n".join(texts)

    def clean(self) -> dict[str, Any]:
        """Require a conditional question when its condition holds (FHIR ``enableWhen``)."""
        cleaned = super().clean() or {}
        for inst in self.instruments:
            raw = {
                item.id: cleaned.get(field_name(inst, item))
                for item in inst.items
                if item.takes_answer
            }
            enabled = inst.enabled_answers(raw)
            for item in inst.items:
                name = field_name(inst, item)
                if (
                    item.enable_when
                    and item.required
                    and item.id in enabled
                    and enabled[item.id] in (None, "")
                    and name not in self.errors
                ):
                    self.add_error(
                        name, _("Please answer this question (your earlier answer asks for it).")
                    )
        return cleaned

    def goal_ratings(self) -> dict[int, int]:
        return {g.pk: int(self.cleaned_data[f"goal-{g.pk}"]) for g in self.goals}
