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


class DefinitionError(ValueError):
    """A measure definition is incomplete or contradictory; the message says what to fix."""


class ScoringError(ValueError):
    """Answers cannot be scored (missing, unknown or out-of-range items)."""


@dataclass(frozen=True)
class ResponseOption:
    value: float
    label: str = ""


@dataclass(frozen=True)
class Item:
    """One question. ``kind`` is ``"choice"`` (numeric options) or ``"text"`` (free text).

    ``risk_at``: an answer at or above this value raises a risk flag.
    ``scored``: whether the item counts towards the total.
    ``part``: for the alliance check-in, which of Bordin's parts it covers.
    """

    id: str
    text: str = ""
    kind: Literal["choice", "text"] = "choice"
    options: tuple[ResponseOption, ...] = ()
    reverse: bool = False
    required: bool = True
    scored: bool = True
    risk_at: float | None = None
    part: str | None = None
    low: str = ""
    high: str = ""

    @property
    def min_value(self) -> float:
        return min(o.value for o in self.options)

    @property
    def max_value(self) -> float:
        return max(o.value for o in self.options)


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
    loinc_panel: str | None = None
    loinc_total: str | None = None
    bands: tuple[tuple[float, str], ...] = ()
    band_below: str = ""
    answer_codes: Mapping[str, float] = field(default_factory=dict)
    reliability: float | None = None
    sd: float | None = None
    norm_mean: float | None = None
    norm_sd: float | None = None

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

    def score(self, answers: Mapping[str, float | str | None]) -> Score:
        """Score item answers: reverse-keyed items flipped, then sum or mean of scored items.

        Every required scored item must be answered with one of its option values. Free-text
        and unscored items are ignored for the total; risk items are reported whatever their
        scoring.
        """
        if not self.items:
            raise ScoringError(f"{self.code}: no items are defined, so answers cannot be scored")
        known = {item.id for item in self.items}
        unknown = sorted(set(answers) - known)
        if unknown:
            raise ScoringError(f"{self.code}: unknown item(s) {', '.join(unknown)}")
        values: dict[str, float] = {}
        risk: list[str] = []
        for item in self.items:
            raw = answers.get(item.id)
            if item.kind == "text":
                continue
            if raw is None or raw == "":
                if item.required and item.scored:
                    raise ScoringError(f"{self.code}: item '{item.id}' is not answered")
                continue
            try:
                value = float(raw)
            except (TypeError, ValueError):
                raise ScoringError(
                    f"{self.code}: item '{item.id}' needs a number, got {raw!r}"
                ) from None
            if not any(math.isclose(value, o.value) for o in item.options):
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
    ) -> Registry:
        """Copy with per-measure thresholds replaced (``--rupture-threshold``, ``--sg-cutoff``)."""
        out = dict(self._by_code)
        for code in {**(rupture_threshold or {}), **(sudden_gain_cutoff or {})}:
            if code not in out:
                known = ", ".join(sorted(out))
                raise DefinitionError(f"unknown measure code '{code}' (known: {known})")
        for code, value in (rupture_threshold or {}).items():
            out[code] = replace(out[code], rupture_threshold=float(value))
        for code, value in (sudden_gain_cutoff or {}).items():
            out[code] = replace(out[code], sudden_gain_cutoff=float(value))
        return Registry(out)


# ---------------------------------------------------------------------------------- loading


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
                    ResponseOption(float(o["value"]), str(o.get("label", "")))
                    for o in entry["options"]
                )
            elif entry.get("scale") == "0-10":
                options = tuple(ResponseOption(float(v)) for v in range(11))
            else:
                raise DefinitionError(f"{at}: give 'options' or scale = \"0-10\"")
        elif kind != "text":
            raise DefinitionError(f"{at}: kind must be 'choice' or 'text', got {kind!r}")
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
            )
        )
    return tuple(items)


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
