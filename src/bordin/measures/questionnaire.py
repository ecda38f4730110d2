"""FHIR R4 Questionnaire (JSON) → an :class:`~bordin.measures.instruments.Instrument`.

Supported, per the FHIR R4 Questionnaire resource (https://hl7.org/fhir/R4/questionnaire.html):

* item types ``group``, ``display``, ``choice``, ``integer``, ``decimal``, ``string``, ``text``,
  ``boolean``; ``repeats`` must be false; ``required``; ``readOnly`` items are not asked;
* ``answerOption`` with ``valueCoding`` (score from the ``ordinalValue`` / ``itemWeight`` /
  ``iso21090-CO-value`` extensions on the option or its coding), ``valueInteger`` (its own
  score) or ``valueString`` (no score);
* ``item.code`` (LOINC) and ``Questionnaire.code``;
* ``enableWhen`` with ``exists``, ``=``, ``!=``, ``>``, ``<``, ``>=``, ``<=`` and
  ``enableBehavior``.

A Questionnaire whose code names the LOINC panel of a built-in scoring-facts entry (PHQ-9
44249-1, GAD-7 69737-5) is scored with those facts: range, caseness, reliable change, bands and
risk items come from :mod:`bordin.measures.instruments`, answers are matched by their score (not
by their answer code: one published GAD-7 codes a score of 2 as LA18938-3). Another
Questionnaire is summed only when every answer option carries a numeric weight; otherwise it is
stored unscored, and the import says so.

Every problem names the item's ``linkId`` (or its position when it has none); nothing is
returned unless the whole file is valid.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bordin.measures.instruments import (
    Condition,
    Instrument,
    Item,
    ItemKind,
    Registry,
    ResponseOption,
    builtin_registry,
)

#: Largest Questionnaire file accepted (bytes).
MAX_BYTES = 5 * 1024 * 1024
LOINC = "http://loinc.org"
WEIGHT_EXTENSIONS = (
    "http://hl7.org/fhir/StructureDefinition/ordinalValue",
    "http://hl7.org/fhir/StructureDefinition/itemWeight",
    "http://hl7.org/fhir/StructureDefinition/iso21090-CO-value",
)
SUPPORTED_TYPES = ("group", "display", "choice", "integer", "decimal", "string", "text", "boolean")
OPERATORS = ("exists", "=", "!=", ">", "<", ">=", "<=")
TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"


class QuestionnaireError(ValueError):
    """The Questionnaire cannot be imported; ``problems`` lists every reason found."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


@dataclass(frozen=True)
class Imported:
    """An importable Questionnaire: its definition, the resource itself and what to tell."""

    definition: Instrument
    resource: dict[str, Any]
    notes: tuple[str, ...] = ()
    facts: str | None = None  # code of the built-in scoring facts applied

    @property
    def scored(self) -> bool:
        return not self.definition.unscored


@dataclass
class _Walk:
    problems: list[str] = field(default_factory=list)
    items: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (place, item)


def _place(path: str, item: Mapping[str, Any]) -> str:
    link = item.get("linkId")
    return f"item '{link}'" if isinstance(link, str) and link else path


def _walk(items: Any, path: str, walk: _Walk) -> None:
    if items is None:
        return
    if not isinstance(items, list):
        walk.problems.append(f"{path}: 'item' must be a list")
        return
    for k, item in enumerate(items, start=1):
        here = f"{path} item {k}" if path else f"item {k}"
        if not isinstance(item, dict):
            walk.problems.append(f"{here}: must be an object")
            continue
        link = item.get("linkId")
        if not isinstance(link, str) or not link.strip():
            walk.problems.append(f"{here}: has no linkId (every item needs one)")
        walk.items.append((_place(here, item), item))
        _walk(item.get("item"), _place(here, item), walk)


def _weight(option: Mapping[str, Any]) -> float | None:
    """The score of an answer option from its (or its coding's) weight extensions."""
    coding = option.get("valueCoding") or {}
    for holder in (option, coding):
        for ext in holder.get("extension") or []:
            if isinstance(ext, dict) and ext.get("url") in WEIGHT_EXTENSIONS:
                value = ext.get("valueDecimal", ext.get("valueInteger"))
                if isinstance(value, int | float) and not isinstance(value, bool):
                    return float(value)
    if isinstance(option.get("valueInteger"), int):
        return float(option["valueInteger"])
    return None


def _translations(holder: Mapping[str, Any], key: str) -> tuple[tuple[str, str], ...]:
    """``(language, text)`` pairs from the FHIR translation extension on ``_<key>``."""
    out = []
    for ext in (holder.get(f"_{key}") or {}).get("extension") or []:
        if not isinstance(ext, dict) or ext.get("url") != TRANSLATION:
            continue
        parts = {e.get("url"): e for e in ext.get("extension") or [] if isinstance(e, dict)}
        lang = (parts.get("lang") or {}).get("valueCode")
        content = (parts.get("content") or {}).get("valueString")
        if isinstance(lang, str) and isinstance(content, str):
            out.append((lang, content))
    return tuple(out)


def _codes(codings: Any) -> list[str]:
    return [
        str(c["code"])
        for c in codings or []
        if isinstance(c, dict) and c.get("code") and c.get("system", LOINC) == LOINC
    ]


def _check_structure(doc: Any, source: str) -> tuple[dict[str, Any], _Walk]:
    if not isinstance(doc, dict):
        raise QuestionnaireError(source, ["the file must hold one JSON object"])
    if doc.get("resourceType") != "Questionnaire":
        raise QuestionnaireError(
            source,
            [f"resourceType must be 'Questionnaire', got {doc.get('resourceType')!r}"],
        )
    walk = _Walk()
    _walk(doc.get("item"), "", walk)
    if not walk.items:
        walk.problems.append("the Questionnaire has no items")
    seen: dict[str, str] = {}
    for place, item in walk.items:
        link = item.get("linkId")
        if isinstance(link, str) and link:
            if link in seen:
                walk.problems.append(f"{place}: linkId '{link}' is used twice (must be unique)")
            seen[link] = place
        kind = item.get("type")
        if kind not in SUPPORTED_TYPES:
            walk.problems.append(
                f"{place}: item type {kind!r} is not supported "
                f"(supported: {', '.join(SUPPORTED_TYPES)})"
            )
        if item.get("repeats"):
            walk.problems.append(
                f"{place}: 'repeats' is true; only questions with a single answer are supported"
            )
        if kind == "choice":
            if item.get("answerValueSet"):
                walk.problems.append(
                    f"{place}: answerValueSet is not supported; list the answers as answerOption"
                )
            options = item.get("answerOption") or []
            if not options and not item.get("answerValueSet"):
                walk.problems.append(f"{place}: a choice item needs answerOption entries")
            for n, option in enumerate(options, start=1):
                if not isinstance(option, dict) or not any(
                    option.get(key) not in (None, "", {})
                    for key in ("valueCoding", "valueInteger", "valueString")
                ):
                    walk.problems.append(
                        f"{place}: answer option {n} has no value "
                        "(give valueCoding, valueInteger or valueString)"
                    )
                elif "valueCoding" in option and not (option["valueCoding"] or {}).get("code"):
                    walk.problems.append(f"{place}: answer option {n} has a coding without a code")
        elif item.get("answerOption"):
            walk.problems.append(f"{place}: only choice items may have answerOption")
    return doc, walk


def _validate_fhir(doc: dict[str, Any], source: str) -> None:
    """Validate against the R4 model of ``fhir.resources`` (types, cardinalities)."""
    from fhir.resources.R4B.questionnaire import Questionnaire
    from pydantic import ValidationError

    try:
        Questionnaire.model_validate(doc)
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:20]:
            where = _loc_place(doc, err.get("loc", ()))
            problems.append(f"{where}: {err.get('msg', 'invalid')}")
        raise QuestionnaireError(source, problems) from None


def _loc_place(doc: Mapping[str, Any], loc: tuple[Any, ...]) -> str:
    """A pydantic error location, naming the innermost item by its linkId."""
    node: Any = doc
    place = "Questionnaire"
    rest: list[str] = []
    for part in loc:
        found = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        )
        if found:
            node = node[part]
        else:
            rest.append(str(part))
            continue
        if isinstance(node, dict) and isinstance(node.get("linkId"), str):
            place, rest = f"item '{node['linkId']}'", []
        else:
            rest.append(str(part))
    return place + (f" ({'.'.join(rest)})" if rest else "")


def check_size(size: int, source: str) -> None:
    """Refuse a file over :data:`MAX_BYTES` (before reading it, when the size is known)."""
    if size > MAX_BYTES:
        raise QuestionnaireError(
            source, [f"the file is {size / 2**20:.1f} MB; the limit is {MAX_BYTES // 2**20} MB"]
        )


def read_json(data: bytes, source: str) -> Any:
    """The parsed JSON of a Questionnaire file, refusing files over :data:`MAX_BYTES`."""
    check_size(len(data), source)
    try:
        return json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise QuestionnaireError(source, ["the file is not UTF-8 text"]) from None
    except json.JSONDecodeError as exc:
        raise QuestionnaireError(
            source, [f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"]
        ) from None


def parse_questionnaire(
    data: bytes, source: str = "Questionnaire", registry: Registry | None = None
) -> Imported:
    """Check and convert a FHIR R4 Questionnaire (JSON bytes); see the module docstring."""
    doc, walk = _check_structure(read_json(data, source), source)
    if walk.problems:
        raise QuestionnaireError(source, walk.problems)
    _validate_fhir(doc, source)
    reg = registry or builtin_registry()
    facts = next(
        (f for code in _codes(doc.get("code")) if (f := reg.by_loinc(code)) and f.items), None
    )
    problems: list[str] = []
    notes: list[str] = []
    items = _convert_items(walk.items, facts, problems)
    if problems:
        raise QuestionnaireError(source, problems)
    digest = hashlib.sha256(
        json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    version = f"{str(doc.get('version') or '1')[:10]}+{digest[:8]}"
    title = str(doc.get("title") or doc.get("name") or doc.get("id") or "Imported questionnaire")
    common: dict[str, Any] = {
        "version": version,
        "items": tuple(items),
        "source": "fhir",
        "url": str(doc.get("url") or ""),
        "description": f"Imported from a FHIR Questionnaire ({source}).",
    }
    if facts is not None:
        definition = replace(facts, name=title, **common)
        notes.append(
            f"Matched LOINC panel {facts.loinc_panel}: scored as {facts.code} "
            f"({facts.min:g}-{facts.max:g}, caseness {facts.caseness:g}, reliable change "
            f"{facts.reliable_change:g}); risk items: "
            f"{', '.join(i.id for i in items if i.risk_at is not None) or 'none'}."
        )
        return Imported(definition, doc, tuple(notes), facts.code)
    chosen = [i for i in items if i.kind == "choice"]
    unweighted = [i.id for i in chosen if not i.scored]
    unscored = not chosen or bool(unweighted)
    if unscored:
        why = (
            f"item(s) {', '.join(repr(u) for u in unweighted)} have answers without a numeric "
            "weight"
            if unweighted
            else "it has no choice items"
        )
        notes.append(f"Stored unscored: {why}, so no total is computed.")
        items = [replace(i, scored=False) for i in items]
        lo, hi = 0.0, 1.0
    else:
        lo = sum(i.min_value for i in chosen)
        hi = sum(i.max_value for i in chosen)
        hi = hi if hi > lo else lo + 1
        notes.append(f"Scored as the sum of {len(chosen)} weighted items ({lo:g}-{hi:g}).")
    definition = Instrument(
        code=_slug(doc),
        name=title,
        direction="lower_is_better",
        min=lo,
        max=hi,
        role="outcome",
        validated=False,
        unscored=unscored,
        **{**common, "items": tuple(items)},
    )
    return Imported(definition, doc, tuple(notes), None)


def _slug(doc: Mapping[str, Any]) -> str:
    base = str(doc.get("name") or doc.get("id") or doc.get("title") or "questionnaire")
    slug = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-") or "questionnaire"
    return f"q-{slug}"[:40]


def _convert_items(
    walked: list[tuple[str, dict[str, Any]]], facts: Instrument | None, problems: list[str]
) -> list[Item]:
    fact_items = {i.id: i for i in (facts.items if facts else ())}
    seen_codes: set[str] = set()
    items: list[Item] = []
    skipped: set[str] = set()
    by_link = {str(raw["linkId"]): raw for _, raw in walked}
    for place, raw in walked:
        link = str(raw["linkId"])
        codes = _codes(raw.get("code"))
        fact = next((fact_items[c] for c in codes if c in fact_items), None)
        if raw.get("readOnly") or (facts is not None and facts.loinc_total in codes):
            skipped.add(link)  # a calculated total: Bordin computes it
            continue
        kind: ItemKind = raw["type"]
        options, unweighted = _options(raw, place, fact, facts, problems)
        if fact is not None:
            seen_codes.add(fact.id)
        scored = kind == "choice" and (fact is not None if facts else not unweighted)
        items.append(
            Item(
                id=link,
                text=str(raw.get("text") or ""),
                kind=kind,
                options=options,
                # A total needs every scored answer: scored items are required.
                required=bool(raw.get("required")) or scored,
                scored=scored,
                risk_at=fact.risk_at if fact is not None else None,
                code=codes[0] if codes else "",
                enable_when=_conditions(raw, place, by_link, problems),
                enable_behavior="any" if raw.get("enableBehavior") == "any" else "all",
                translations=_translations(raw, "text"),
            )
        )
    if facts is not None:
        missing = [i.id for i in facts.items if i.id not in seen_codes]
        if missing:
            problems.append(
                f"the Questionnaire is coded {facts.loinc_panel} ({facts.code}) but no item "
                f"carries the LOINC code(s) {', '.join(missing)}"
            )
    for item in items:
        for cond in item.enable_when:
            if cond.question in skipped:
                problems.append(
                    f"item '{item.id}': enableWhen refers to read-only item '{cond.question}'"
                )
    return items


def _options(
    raw: Mapping[str, Any],
    place: str,
    fact: Item | None,
    facts: Instrument | None,
    problems: list[str],
) -> tuple[tuple[ResponseOption, ...], bool]:
    """Answer options with their scores; ``True`` as second value when one has no weight."""
    if raw.get("type") == "boolean":
        return (ResponseOption(1.0, "Yes"), ResponseOption(0.0, "No")), False
    out: list[ResponseOption] = []
    unweighted = False
    for n, option in enumerate(raw.get("answerOption") or [], start=1):
        coding = option.get("valueCoding") or {}
        weight = _weight(option)
        if weight is None and facts is not None and coding.get("code") in facts.answer_codes:
            weight = facts.answer_codes[coding["code"]]
        label = str(coding.get("display") or option.get("valueString") or coding.get("code", ""))
        if "valueInteger" in option:
            label = str(option["valueInteger"])
        if fact is not None:
            if weight is None:
                problems.append(f"{place}: answer option {n} has no score (ordinalValue)")
                continue
            if not fact.min_value <= weight <= fact.max_value:
                problems.append(
                    f"{place}: answer option {n} scores {weight:g}; {facts.code if facts else ''}"
                    f" items score {fact.min_value:g}-{fact.max_value:g}"
                )
        if weight is None:
            unweighted = True
            weight = float(n - 1)  # position: stored and exported, never summed
        if any(o.value == weight for o in out):
            problems.append(f"{place}: two answer options score {weight:g}")
        out.append(
            ResponseOption(
                weight,
                label,
                str(coding.get("code", "")),
                str(coding.get("system", "")),
                _translations(coding, "display"),
            )
        )
    return tuple(out), unweighted


def _conditions(
    raw: Mapping[str, Any],
    place: str,
    by_link: Mapping[str, Mapping[str, Any]],
    problems: list[str],
) -> tuple[Condition, ...]:
    out = []
    for n, cond in enumerate(raw.get("enableWhen") or [], start=1):
        question, operator = str(cond.get("question", "")), cond.get("operator")
        if operator not in OPERATORS:
            problems.append(
                f"{place}: enableWhen {n} uses operator {operator!r} (supported: "
                f"{', '.join(OPERATORS)})"
            )
            continue
        target = by_link.get(question)
        if target is None:
            problems.append(f"{place}: enableWhen {n} refers to unknown item '{question}'")
            continue
        answer = _condition_answer(cond, target)
        if answer is None:
            problems.append(
                f"{place}: enableWhen {n} compares with an answer that item '{question}' "
                "does not offer"
            )
            continue
        out.append(Condition(question, operator, answer))
    return tuple(out)


def _condition_answer(cond: Mapping[str, Any], target: Mapping[str, Any]) -> Any:
    if "answerBoolean" in cond:
        value = bool(cond["answerBoolean"])
        if cond.get("operator") == "exists" or target.get("type") != "boolean":
            return value
        return 1.0 if value else 0.0
    for key in ("answerInteger", "answerDecimal"):
        if key in cond:
            return float(cond[key])
    if "answerString" in cond:
        return str(cond["answerString"])
    coding = cond.get("answerCoding")
    if isinstance(coding, dict):
        for n, option in enumerate(target.get("answerOption") or [], start=1):
            if (option.get("valueCoding") or {}).get("code") == coding.get("code"):
                weight = _weight(option)
                return weight if weight is not None else float(n - 1)
    return None
