"""Instrument definitions: items, scoring, and the facts used for change analysis.

Definitions load from TOML. Bordin ships four (``src/bordin/measures/data/builtin.toml``):
its own alliance and wellbeing check-ins (our wording, not validated) and the scoring facts of
PHQ-9 and GAD-7 (no item wording; those questionnaires arrive by FHIR import and are matched by
their LOINC codes). A user adds or overrides measures with a file of the same shape::

    [measures.bdi]
    direction = "lower_is_better"   # or higher_is_better
    min = 0
    max = 63
    reliable_change = 7              # or: reliability = 0.9 and sd = 8.1
    caseness = 14                    # optional
    norm_mean = 7.0                  # optional: functional (non-clinical) population mean
    norm_sd = 5.0                    #   and SD, for Jacobson & Truax criteria b and c
    sudden_gain_cutoff = 7           # optional; defaults to reliable_change
    role = "outcome"                 # or alliance

>>> reg = builtin_registry()
>>> reg["phq9"].reliable_change, reg["phq9"].caseness, reg["phq9"].is_case(12)
(6.0, 10.0, True)
>>> reg.by_loinc("69737-5").code
'gad7'
>>> reg["alliance"].score({"goals": 8, "tasks": 7, "bond": 9, "overall": 8}).total
8.0
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from bordin.measures.reliable_change import jacobson_truax_threshold

Direction = Literal["lower_is_better", "higher_is_better"]
Role = Literal["outcome", "alliance"]
Scoring = Literal["sum", "mean"]
#: Item kinds. ``choice`` has numeric options; ``text`` (long) and ``string`` (one line) are free
#: text; ``integer``, ``decimal`` and ``boolean`` are typed answers that are never summed;
#: ``display`` and ``group`` show text only (a group's text heads the items that follow it).
ItemKind = Literal["choice", "text", "string", "integer", "decimal", "boolean", "display", "group"]
#: Operators of a FHIR ``enableWhen`` condition that Bordin evaluates.
Operator = Literal["exists", "=", "!=", ">", "<", ">=", "<="]
Answer = float | str | bool | None
#: Kinds that take no answer.
NO_ANSWER_KINDS = frozenset({"display", "group"})
#: Kinds whose answer is free text (stored encrypted with the response, never summed).
TEXT_KINDS = frozenset({"text", "string"})


class DefinitionError(ValueError):
    """A measure definition is incomplete or contradictory; the message says what to fix."""


class ScoringError(ValueError):
    """Answers cannot be scored (missing, unknown or out-of-range items)."""


@dataclass(frozen=True)
class ResponseOption:
    """One answer option: its score ``value`` and, for imported items, its coding."""

    value: float
    label: str = ""
    code: str = ""
    system: str = ""
    #: ``(language, label)`` pairs (FHIR translation extension), e.g. ``(("cy", "..."),)``.
    translations: tuple[tuple[str, str], ...] = ()

    def label_for(self, language: str) -> str:
        return in_language(self.label, self.translations, language)


def in_language(default: str, translations: tuple[tuple[str, str], ...], language: str) -> str:
    """The text in ``language`` (exact tag, else its primary subtag), else ``default``.

    >>> in_language("Hello", (("cy", "Helo"),), "cy-GB")
    'Helo'
    """
    if not language or not translations:
        return default
    wanted = language.lower()
    for lang, text in translations:
        if lang.lower() == wanted:
            return text
    primary = wanted.split("-")[0]
    for lang, text in translations:
        if lang.lower().split("-")[0] == primary:
            return text
    return default


@dataclass(frozen=True)
class Condition:
    """A FHIR ``enableWhen``: the item is shown when ``question``'s answer meets it.

    For a choice question ``answer`` is the option's value (a coding is resolved to its option
    when the questionnaire is imported); ``exists`` takes ``True`` or ``False``.
    """

    question: str
    operator: Operator
    answer: float | str | bool

    def holds(self, given: Answer) -> bool:
        """Whether the condition is met by ``given`` (``None``: not answered).

        Follows FHIR R5's clarification of R4: ``!=`` is true when the question is not answered;
        every other comparison with a missing answer is false.
        """
        if self.operator == "exists":
            return (given is not None and given != "") == bool(self.answer)
        if given is None or given == "":
            return self.operator == "!="
        if self.operator in ("=", "!="):
            equal = (
                math.isclose(float(given), float(self.answer))
                if _is_number(given) and _is_number(self.answer)
                else given == self.answer
            )
            return equal if self.operator == "=" else not equal
        if not (_is_number(given) and _is_number(self.answer)):
            return False
        a, b = float(given), float(self.answer)
        return {">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}[self.operator]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Item:
    """One question. ``kind`` is ``"choice"`` (numeric options) or ``"text"`` (free text).

    ``risk_at``: an answer at or above this value raises a risk flag.
    ``scored``: whether the item counts towards the total.
    ``part``: for the alliance check-in, which of Bordin's parts it covers.
    """

    id: str
    text: str = ""
    kind: ItemKind = "choice"
    options: tuple[ResponseOption, ...] = ()
    reverse: bool = False
    required: bool = True
    scored: bool = True
    risk_at: float | None = None
    part: str | None = None
    low: str = ""
    high: str = ""
    code: str = ""
    enable_when: tuple[Condition, ...] = ()
    enable_behavior: Literal["all", "any"] = "all"
    #: ``(language, text)`` pairs: the item's wording in other languages.
    translations: tuple[tuple[str, str], ...] = ()
    #: ``(language, text)`` pairs: the scale's end labels (``low``, ``high``) in other languages.
    low_translations: tuple[tuple[str, str], ...] = ()
    high_translations: tuple[tuple[str, str], ...] = ()

    def text_for(self, language: str) -> str:
        return in_language(self.text, self.translations, language)

    def low_for(self, language: str) -> str:
        return in_language(self.low, self.low_translations, language)

    def high_for(self, language: str) -> str:
        return in_language(self.high, self.high_translations, language)

    @property
    def min_value(self) -> float:
        return min((o.value for o in self.options), default=0.0)

    @property
    def max_value(self) -> float:
        return max((o.value for o in self.options), default=0.0)

    @property
    def takes_answer(self) -> bool:
        return self.kind not in NO_ANSWER_KINDS

    def enabled(self, answers: Mapping[str, Answer]) -> bool:
        """Whether the item is shown given the other answers (FHIR ``enableWhen``)."""
        if not self.enable_when:
            return True
        results = (c.holds(answers.get(c.question)) for c in self.enable_when)
        return any(results) if self.enable_behavior == "any" else all(results)

    def option_for(self, value: float) -> ResponseOption | None:
        return next((o for o in self.options if math.isclose(o.value, value)), None)


@dataclass(frozen=True)
class Score:
    total: float
    subscales: dict[str, float]
    risk_items: tuple[str, ...]
    item_values: dict[str, float]


@dataclass(frozen=True)
class Instrument:
    """A measure and everything Bordin needs to score and analyse it."""

    code: str
    name: str
    direction: Direction
    min: float
    max: float
    role: Role = "outcome"
    version: str = "1"
    validated: bool = False
    description: str = ""
    items: tuple[Item, ...] = ()
    scoring: Scoring = "sum"
    subscales: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    reliable_change: float | None = None
    caseness: float | None = None
    sudden_gain_cutoff: float | None = None
    rupture_threshold: float | None = None
    #: Which rupture rule applies (:mod:`bordin.measures.rupture_rules`).
    rupture_rule: str = "reliable"
    #: Session-to-session (test-retest) correlation and SD of the measure's session scores,
    #: for the reliable rupture threshold and the repair criterion beyond regression to the mean.
    rupture_reliability: float | None = None
    rupture_sd: float | None = None
    loinc_panel: str | None = None
    loinc_total: str | None = None
    bands: tuple[tuple[float, str], ...] = ()
    band_below: str = ""
    answer_codes: Mapping[str, float] = field(default_factory=dict)
    reliability: float | None = None
    sd: float | None = None
    norm_mean: float | None = None
    norm_sd: float | None = None
    #: ``True`` for an imported questionnaire whose answers do not all carry a numeric weight:
    #: its answers are stored, but no total is computed.
    unscored: bool = False
    #: Where the definition came from: ``""`` (TOML) or ``"fhir"`` (an imported Questionnaire).
    source: str = ""
    #: The FHIR canonical URL of an imported Questionnaire.
    url: str = ""

    @property
    def lower_is_better(self) -> bool:
        return self.direction == "lower_is_better"

    @property
    def effective_sudden_gain_cutoff(self) -> float | None:
        """The sudden-gain cut-off, defaulting to the reliable-change threshold."""
        if self.sudden_gain_cutoff is not None:
            return self.sudden_gain_cutoff
        return self.reliable_change

    def improvement(self, before: float, after: float) -> float:
        """Change in the 'better' direction: positive means the client improved."""
        return before - after if self.lower_is_better else after - before

    def is_case(self, score: float) -> bool | None:
        """Whether a score is in the clinical range; ``None`` without a caseness cut-off.

        Caseness follows the published convention "score >= cut-off" for lower-is-better
        measures (PHQ-9 >= 10, GAD-7 >= 8) and "score <= cut-off" for higher-is-better ones.
        """
        if self.caseness is None:
            return None
        return score >= self.caseness if self.lower_is_better else score <= self.caseness

    def band(self, score: float) -> str:
        """Severity band label for a total score (PHQ-9: 5/10/15/20)."""
        label = self.band_below
        for lower, name in self.bands:
            if score >= lower:
                label = name
        return label

    def in_range(self, score: float) -> bool:
        return self.min <= score <= self.max

    def item(self, item_id: str) -> Item:
        """The item with this id (``KeyError`` if there is none)."""
        for item in self.items:
            if item.id == item_id:
                return item
        raise KeyError(item_id)

    def enabled_answers(self, answers: Mapping[str, Answer]) -> dict[str, Answer]:
        """``answers`` without those to items that are not enabled (FHIR ``enableWhen``).

        Items are taken in order, so a condition on an earlier item sees that item's answer
        only if the earlier item is itself enabled.
        """
        view = dict(answers)
        for item in self.items:
            if not item.enabled(view):
                view.pop(item.id, None)
        return view

    def risk_flags(self, answers: Mapping[str, Answer]) -> tuple[str, ...]:
        """Items whose answer reaches their risk threshold (``risk_at``), in item order."""
        return tuple(
            item.id
            for item in self.items
            if item.risk_at is not None
            and _is_number(answers.get(item.id))
            and float(answers[item.id]) >= item.risk_at  # type: ignore[arg-type]
        )

    def score(self, answers: Mapping[str, Answer]) -> Score:
        """Score item answers: reverse-keyed items flipped, then sum or mean of scored items.

        Every required scored item that is enabled must be answered with one of its option
        values; answers to items that are not enabled are ignored. Free-text, typed and
        unscored items are ignored for the total; risk items are reported whatever their
        scoring.
        """
        if not self.items:
            raise ScoringError(f"{self.code}: no items are defined, so answers cannot be scored")
        if self.unscored:
            raise ScoringError(
                f"{self.code}: not every answer has a numeric weight, so it has no total"
            )
        known = {item.id for item in self.items}
        unknown = sorted(set(answers) - known)
        if unknown:
            raise ScoringError(f"{self.code}: unknown item(s) {', '.join(unknown)}")
        answers = self.enabled_answers(answers)
        values: dict[str, float] = {}
        risk: list[str] = []
        for item in self.items:
            raw = answers.get(item.id)
            if item.kind != "choice":
                continue
            if raw is None or raw == "":
                if item.required and item.scored and item.enabled(answers):
                    raise ScoringError(f"{self.code}: item '{item.id}' is not answered")
                continue
            try:
                value = float(raw)
            except (TypeError, ValueError):
                raise ScoringError(
                    f"{self.code}: item '{item.id}' needs a number, got {raw!r}"
                ) from None
            if item.option_for(value) is None:
                allowed = ", ".join(f"{o.value:g}" for o in item.options)
                raise ScoringError(
                    f"{self.code}: item '{item.id}' answer {value:g} is not one of {allowed}"
                )
            if item.risk_at is not None and value >= item.risk_at:
                risk.append(item.id)
            if item.reverse:
                value = item.min_value + item.max_value - value
            if item.scored:
                values[item.id] = value
        if not values:
            raise ScoringError(f"{self.code}: no scored item is answered")
        total = self._combine(list(values.values()))
        subs = {
            name: self._combine([values[i] for i in ids if i in values])
            for name, ids in self.subscales.items()
            if any(i in values for i in ids)
        }
        return Score(total=total, subscales=subs, risk_items=tuple(risk), item_values=values)

    def _combine(self, values: list[float]) -> float:
        total = math.fsum(values)
        return total / len(values) if self.scoring == "mean" else total


class Registry(Mapping[str, Instrument]):
    """Instruments by code, with lookup by LOINC panel or total code."""

    def __init__(self, instruments: Mapping[str, Instrument]):
        self._by_code = dict(instruments)

    def __getitem__(self, code: str) -> Instrument:
        return self._by_code[code]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_code)

    def __len__(self) -> int:
        return len(self._by_code)

    def by_loinc(self, code: str) -> Instrument | None:
        for inst in self._by_code.values():
            if code in (inst.loinc_panel, inst.loinc_total):
                return inst
        return None

    def merged(self, other: Mapping[str, Instrument]) -> Registry:
        """A new registry where ``other`` adds measures or replaces those with the same code."""
        return Registry({**self._by_code, **other})

    def with_overrides(
        self,
        *,
        rupture_threshold: Mapping[str, float] | None = None,
        sudden_gain_cutoff: Mapping[str, float] | None = None,
        rupture_rule: Mapping[str, str] | None = None,
    ) -> Registry:
        """Copy with per-measure thresholds replaced (``--rupture-threshold``, ``--sg-cutoff``,
        ``--rupture-rule``).

        A given rupture threshold is the threshold of every rule for that measure: it drops the
        measure's ``rupture_sd``, so the reliable rule no longer derives its own (the
        ``rupture_reliability`` stays for the repair criterion). ``rupture_rule`` with the
        code ``*`` applies to every measure.
        """
        out = dict(self._by_code)
        rules = dict(rupture_rule or {})
        every = rules.pop("*", None)
        for code in {**(rupture_threshold or {}), **(sudden_gain_cutoff or {}), **rules}:
            if code not in out:
                known = ", ".join(sorted(out))
                raise DefinitionError(f"unknown measure code '{code}' (known: {known})")
        for rule in [*rules.values(), *([every] if every else [])]:
            _check_rule(rule, "--rupture-rule")
        for code, value in (rupture_threshold or {}).items():
            out[code] = replace(out[code], rupture_threshold=float(value), rupture_sd=None)
        for code in out if every else ():
            out[code] = replace(out[code], rupture_rule=str(every))
        for code, rule in rules.items():
            out[code] = replace(out[code], rupture_rule=rule)
        for code, value in (sudden_gain_cutoff or {}).items():
            out[code] = replace(out[code], sudden_gain_cutoff=float(value))
        return Registry(out)


# ---------------------------------------------------------------------------------- loading

#: The rupture rules (:mod:`bordin.measures.rupture_rules`).
RUPTURE_RULES = ("fixed", "reliable", "ceiling")


def _check_rule(rule: object, where: str) -> str:
    if rule not in RUPTURE_RULES:
        raise DefinitionError(
            f"{where}: rupture rule must be one of {', '.join(RUPTURE_RULES)}, got {rule!r}"
        )
    return str(rule)


def _num(table: Mapping[str, Any], key: str, where: str) -> float | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DefinitionError(f"{where}: '{key}' must be a number, got {value!r}")
    return float(value)


def _items(raw: Any, where: str) -> tuple[Item, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise DefinitionError(f"{where}: 'items' must be an array of tables")
    items = []
    for k, entry in enumerate(raw, start=1):
        at = f"{where} item {k}"
        if not isinstance(entry, dict) or "id" not in entry:
            raise DefinitionError(f"{at}: each item needs an 'id'")
        kind = entry.get("kind", "choice")
        options: tuple[ResponseOption, ...] = ()
        if kind == "choice":
            if "options" in entry:
                options = tuple(
                    ResponseOption(
                        float(o["value"]),
                        str(o.get("label", "")),
                        translations=_language_table(o.get("translations"), f"{at} option"),
                    )
                    for o in entry["options"]
                )
            elif entry.get("scale") == "0-10":
                options = tuple(ResponseOption(float(v)) for v in range(11))
            else:
                raise DefinitionError(f"{at}: give 'options' or scale = \"0-10\"")
        elif kind != "text":
            raise DefinitionError(f"{at}: kind must be 'choice' or 'text', got {kind!r}")
        wording = _item_translations(entry.get("translations"), at)
        items.append(
            Item(
                id=str(entry["id"]),
                text=str(entry.get("text", "")),
                kind=kind,
                options=options,
                reverse=bool(entry.get("reverse", False)),
                required=bool(entry.get("required", True)),
                scored=bool(entry.get("scored", kind == "choice")),
                risk_at=_num(entry, "risk_at", at),
                part=entry.get("part"),
                low=str(entry.get("low", "")),
                high=str(entry.get("high", "")),
                translations=wording["text"],
                low_translations=wording["low"],
                high_translations=wording["high"],
            )
        )
    return tuple(items)


def _language_table(raw: Any, where: str) -> tuple[tuple[str, str], ...]:
    """``{ es = "..." }``: an option's label by language, as ``(language, label)`` pairs."""
    if raw is None:
        return ()
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise DefinitionError(
            f"{where}: 'translations' must map a language to text, e.g. es = \"...\""
        )
    return tuple((str(lang), text) for lang, text in raw.items())


def _item_translations(raw: Any, where: str) -> dict[str, tuple[tuple[str, str], ...]]:
    """``translations.es = { text = "...", low = "...", high = "..." }``, by field."""
    out: dict[str, list[tuple[str, str]]] = {"text": [], "low": [], "high": []}
    if raw is not None:
        if not isinstance(raw, dict):
            raise DefinitionError(f"{where}: 'translations' must be a table of languages")
        for lang, table in raw.items():
            if not isinstance(table, dict) or not set(table) <= set(out):
                raise DefinitionError(
                    f"{where}: translations.{lang} takes only 'text', 'low' and 'high'"
                )
            for key, text in table.items():
                out[key].append((str(lang), str(text)))
    return {key: tuple(pairs) for key, pairs in out.items()}


def _coded_items(table: Mapping[str, Any], where: str) -> tuple[Item, ...]:
    """Items of an imported instrument known only by code (no wording is stored)."""
    codes = table.get("item_codes") or []
    lo, hi = _num(table, "item_min", where), _num(table, "item_max", where)
    if not codes:
        return ()
    if lo is None or hi is None:
        raise DefinitionError(f"{where}: 'item_codes' needs 'item_min' and 'item_max'")
    risk = table.get("risk_items") or {}
    options = tuple(ResponseOption(float(v)) for v in range(int(lo), int(hi) + 1))
    return tuple(
        Item(id=str(c), options=options, risk_at=float(risk[c]) if c in risk else None)
        for c in codes
    )


def instrument_from_table(code: str, table: Mapping[str, Any], source: str) -> Instrument:
    """Build one :class:`Instrument` from its TOML table, checking every field."""
    where = f"{source}: [measures.{code}]"
    direction = table.get("direction")
    if direction not in ("lower_is_better", "higher_is_better"):
        raise DefinitionError(
            f'{where}: \'direction\' must be "lower_is_better" or "higher_is_better"'
        )
    role = table.get("role", "outcome")
    if role not in ("outcome", "alliance"):
        raise DefinitionError(f'{where}: \'role\' must be "outcome" or "alliance"')
    scoring = table.get("scoring", "sum")
    if scoring not in ("sum", "mean"):
        raise DefinitionError(f'{where}: \'scoring\' must be "sum" or "mean"')
    lo, hi = _num(table, "min", where), _num(table, "max", where)
    if lo is None or hi is None:
        raise DefinitionError(f"{where}: 'min' and 'max' are required")
    if lo >= hi:
        raise DefinitionError(f"{where}: 'min' ({lo:g}) must be below 'max' ({hi:g})")
    rc = _num(table, "reliable_change", where)
    reliability, sd = _num(table, "reliability", where), _num(table, "sd", where)
    if rc is None and (reliability is not None or sd is not None):
        if reliability is None or sd is None:
            raise DefinitionError(
                f"{where}: give both 'reliability' and 'sd', or 'reliable_change'"
            )
        try:
            rc = jacobson_truax_threshold(sd=sd, reliability=reliability)
        except ValueError as exc:
            raise DefinitionError(f"{where}: {exc}") from None
    if rc is not None and rc <= 0:
        raise DefinitionError(f"{where}: 'reliable_change' must be positive")
    caseness = _num(table, "caseness", where)
    norm_mean, norm_sd = _num(table, "norm_mean", where), _num(table, "norm_sd", where)
    if (norm_mean is None) != (norm_sd is None):
        raise DefinitionError(f"{where}: give both 'norm_mean' and 'norm_sd', or neither")
    if norm_sd is not None and norm_sd <= 0:
        raise DefinitionError(f"{where}: 'norm_sd' must be positive")
    if reliability is not None and not 0 <= reliability < 1:
        raise DefinitionError(f"{where}: 'reliability' must be in [0, 1)")
    if caseness is not None and not lo <= caseness <= hi:
        raise DefinitionError(f"{where}: 'caseness' {caseness:g} is outside {lo:g}..{hi:g}")
    for key in ("sudden_gain_cutoff", "rupture_threshold"):
        value = _num(table, key, where)
        if value is not None and value <= 0:
            raise DefinitionError(f"{where}: '{key}' must be positive")
    rupture_reliability = _num(table, "rupture_reliability", where)
    if rupture_reliability is not None and not 0 <= rupture_reliability < 1:
        raise DefinitionError(f"{where}: 'rupture_reliability' must be in [0, 1)")
    rupture_sd = _num(table, "rupture_sd", where)
    if rupture_sd is not None and rupture_sd <= 0:
        raise DefinitionError(f"{where}: 'rupture_sd' must be positive")
    rupture_rule = _check_rule(table.get("rupture_rule", "reliable"), where)
    items = _items(table.get("items"), where) or _coded_items(table, where)
    subscales = {
        str(name): tuple(str(i) for i in ids)
        for name, ids in (table.get("subscales") or {}).items()
    }
    item_ids = {i.id for i in items}
    for name, ids in subscales.items():
        missing = [i for i in ids if i not in item_ids]
        if missing:
            raise DefinitionError(f"{where}: subscale '{name}' names unknown items {missing}")
    return Instrument(
        code=code,
        name=str(table.get("name", code)),
        direction=direction,
        min=lo,
        max=hi,
        role=role,
        version=str(table.get("version", "1")),
        validated=bool(table.get("validated", False)),
        description=str(table.get("description", "")),
        items=items,
        scoring=scoring,
        subscales=subscales,
        reliable_change=rc,
        caseness=caseness,
        sudden_gain_cutoff=_num(table, "sudden_gain_cutoff", where),
        rupture_threshold=_num(table, "rupture_threshold", where),
        rupture_rule=rupture_rule,
        rupture_reliability=rupture_reliability,
        rupture_sd=rupture_sd,
        loinc_panel=table.get("loinc_panel"),
        loinc_total=table.get("loinc_total"),
        bands=tuple((float(lower), str(name)) for lower, name in table.get("bands", [])),
        band_below=str(table.get("band_below", "")),
        answer_codes={str(k): float(v) for k, v in (table.get("answer_codes") or {}).items()},
        reliability=reliability,
        sd=sd,
        norm_mean=norm_mean,
        norm_sd=norm_sd,
    )


def parse_definitions(text: str, source: str) -> dict[str, Instrument]:
    """Parse a TOML document of ``[measures.CODE]`` tables."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DefinitionError(f"{source}: not valid TOML ({exc})") from None
    measures = doc.get("measures")
    if not isinstance(measures, dict) or not measures:
        raise DefinitionError(f"{source}: no [measures.CODE] tables found")
    return {
        str(code): instrument_from_table(str(code), table, source)
        for code, table in measures.items()
    }


def load_definitions(path: Path) -> dict[str, Instrument]:
    """Load measure definitions from a TOML file (``--measures FILE``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_definitions(text, str(path))


def builtin_registry() -> Registry:
    """Bordin's built-in measures: alliance, wellbeing, phq9, gad7."""
    text = resources.files("bordin.measures").joinpath("data/builtin.toml").read_text("utf-8")
    return Registry(parse_definitions(text, "builtin.toml"))


def registry(extra: Path | None = None) -> Registry:
    """Built-in measures, plus (and overridden by) those in ``extra`` when given."""
    reg = builtin_registry()
    return reg.merged(load_definitions(extra)) if extra is not None else reg


def instrument_from_dict(data: Mapping[str, Any]) -> Instrument:
    """Rebuild an :class:`Instrument` from :func:`dataclasses.asdict` output (e.g. stored JSON).

    The inverse of ``dataclasses.asdict`` followed by a JSON round trip (tuples come back as
    lists). Keys this version does not know are ignored, so older stored copies still load.
    """

    def item(raw: Mapping[str, Any]) -> Item:
        fields_ = {k: v for k, v in raw.items() if k in _ITEM_FIELDS}
        fields_["options"] = tuple(
            ResponseOption(
                **{
                    **{k: v for k, v in o.items() if k in _OPTION_FIELDS},
                    "translations": _pairs(o.get("translations")),
                }
            )
            for o in raw.get("options", ())
        )
        fields_["translations"] = _pairs(raw.get("translations"))
        fields_["low_translations"] = _pairs(raw.get("low_translations"))
        fields_["high_translations"] = _pairs(raw.get("high_translations"))
        fields_["enable_when"] = tuple(
            Condition(str(c["question"]), c["operator"], c["answer"])
            for c in raw.get("enable_when", ())
        )
        return Item(**fields_)

    fields_ = {k: v for k, v in data.items() if k in _INSTRUMENT_FIELDS}
    fields_["items"] = tuple(item(i) for i in data.get("items", ()))
    fields_["subscales"] = {str(k): tuple(v) for k, v in (data.get("subscales") or {}).items()}
    fields_["bands"] = tuple((float(lo), str(name)) for lo, name in data.get("bands", ()))
    fields_["answer_codes"] = dict(data.get("answer_codes") or {})
    return Instrument(**fields_)


def _pairs(raw: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(a), str(b)) for a, b in raw or ())


_ITEM_FIELDS = frozenset(Item.__dataclass_fields__)
_OPTION_FIELDS = frozenset(ResponseOption.__dataclass_fields__)
_INSTRUMENT_FIELDS = frozenset(Instrument.__dataclass_fields__)
