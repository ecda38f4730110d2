"""Problems found in an imported FHIR Questionnaire, in the page's language.

:mod:`bordin.measures.questionnaire` is shared with the CLI and stays Django-free, so its
problems are English sentences ("<place>: <what is wrong>"). This module recognises the ones
the /instruments/ import page can show and words them with ``gettext``; any other problem (for
example a FHIR schema message) is shown as written, in English.
"""

from __future__ import annotations

import re

from django.utils.functional import Promise
from django.utils.translation import gettext, gettext_lazy

#: (pattern of the English problem after its place, the sentence to show). The named groups
#: fill the sentence's placeholders.
_PROBLEMS: tuple[tuple[re.Pattern[str], Promise], ...] = tuple(
    (re.compile(pattern), text)
    for pattern, text in (
        (r"'item' must be a list", gettext_lazy("'item' must be a list")),
        (r"must be an object", gettext_lazy("must be an object")),
        (
            r"has no linkId \(every item needs one\)",
            gettext_lazy("has no linkId (every item needs one)"),
        ),
        (
            r"linkId '(?P<link>.*)' is used twice \(must be unique\)",
            gettext_lazy("linkId '%(link)s' is used twice (must be unique)"),
        ),
        (
            r"item type (?P<kind>.*) is not supported \(supported: (?P<supported>.*)\)",
            gettext_lazy("item type %(kind)s is not supported (supported: %(supported)s)"),
        ),
        (
            r"'repeats' is true; only questions with a single answer are supported",
            gettext_lazy("'repeats' is true; only questions with a single answer are supported"),
        ),
        (
            r"answerValueSet is not supported; list the answers as answerOption",
            gettext_lazy("answerValueSet is not supported; list the answers as answerOption"),
        ),
        (
            r"a choice item needs answerOption entries",
            gettext_lazy("a choice item needs answerOption entries"),
        ),
        (
            r"answer option (?P<n>\d+) has no value \(give valueCoding, valueInteger or "
            r"valueString\)",
            gettext_lazy(
                "answer option %(n)s has no value (give valueCoding, valueInteger or valueString)"
            ),
        ),
        (
            r"answer option (?P<n>\d+) has a coding without a code",
            gettext_lazy("answer option %(n)s has a coding without a code"),
        ),
        (
            r"only choice items may have answerOption",
            gettext_lazy("only choice items may have answerOption"),
        ),
        (
            r"answer option (?P<n>\d+) has no score \(ordinalValue\)",
            gettext_lazy("answer option %(n)s has no score (ordinalValue)"),
        ),
        (
            r"two answer options score (?P<score>\S+)",
            gettext_lazy("two answer options score %(score)s"),
        ),
        (
            r"enableWhen (?P<n>\d+) refers to unknown item '(?P<question>.*)'",
            gettext_lazy("enableWhen %(n)s refers to unknown item '%(question)s'"),
        ),
    )
)


def _place(place: str) -> str:
    """``item 'q1'`` or ``item 2 item 1`` in the page's language."""
    named = re.fullmatch(r"item '(.*)'", place)
    if named:
        return gettext("item '%(link)s'") % {"link": named.group(1)}
    if re.fullmatch(r"item \d+( item \d+)*", place):
        return re.sub(r"item (\d+)", lambda m: gettext("item %(n)s") % {"n": m.group(1)}, place)
    return place


def translate(problem: str) -> str:
    """One problem from :class:`~bordin.measures.questionnaire.QuestionnaireError`, translated.

    >>> translate("no such problem")
    'no such problem'
    """
    if problem == "the Questionnaire has no items":
        return gettext("the Questionnaire has no items")
    place, sep, what = problem.partition(": ")
    if not sep:
        return problem
    for pattern, text in _PROBLEMS:
        found = pattern.fullmatch(what)
        if found:
            return f"{_place(place)}: {str(text) % found.groupdict()}"
    return problem
