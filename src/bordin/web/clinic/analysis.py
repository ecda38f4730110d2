"""The bridge between stored responses and :mod:`bordin.measures`.

Views and alert rules never compute a score or a signal themselves: they collect a client's
series here and hand it to the measures package (scoring, ruptures, sudden gains, expected
trajectories). Series are per episode; ``scores[k]`` is session ``k + 1`` of the episode.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from bordin.measures.instruments import Instrument, Registry, builtin_registry

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from bordin.measures.rupture_rules import RuleSetting
    from bordin.measures.ruptures import Rupture
    from bordin.measures.series import SeriesMatrix
    from bordin.measures.sudden_gains import SuddenChange
    from bordin.measures.trajectories import ExpectedTrajectory, TrajectoryPoint
    from bordin.web.clinic.models import Clinic, Episode, Response

ALLIANCE = "alliance"
WELLBEING = "wellbeing"
PHQ9 = "phq9"
THERAPIST_ALLIANCE = "alliance_therapist"
#: Outcome measures, in order of preference (see :meth:`EpisodeData.outcome_code`).
OUTCOME_CODES = (PHQ9, WELLBEING)
#: Parts of the alliance (Bordin 1979) rated by both client and therapist.
ALLIANCE_PARTS = ("goals", "tasks", "bond")
#: One stored response as :meth:`EpisodeData.from_rows` reads it.
ResponseRow = tuple[int, str, str, float, dict[str, Any], str | None]
#: A therapist's rating this many points above the client's raises a divergence alert.
DIVERGENCE_POINTS = 2.0


@cache
def registry() -> Registry:
    """The built-in measures (including the therapist's side of the alliance rating)."""
    return builtin_registry()


def definitions(codes: Iterable[str]) -> dict[str, Instrument]:
    """Definitions by code: built-in ones, else the latest stored version (imported ones)."""
    from bordin.measures.instruments import instrument_from_dict
    from bordin.web.clinic.models import Instrument as StoredInstrument

    reg = registry()
    wanted = list(codes)
    out = {c: reg[c] for c in wanted if c in reg}
    rows = StoredInstrument.objects.filter(code__in=[c for c in wanted if c not in out])
    for row in rows.order_by("code", "-created_at", "-pk"):
        out.setdefault(row.code, instrument_from_dict(row.definition))
    return out


def comparable_client_alliance(answers: Mapping[str, float | str | None]) -> float | None:
    """The client's goals/tasks/bond answers scored as the therapist's rating is scored."""
    parts = {k: answers.get(k) for k in ALLIANCE_PARTS}
    if any(v is None or v == "" for v in parts.values()):
        return None
    return registry()[THERAPIST_ALLIANCE].score(parts).total


def is_divergent(therapist_total: float, client_comparable: float) -> bool:
    return round(therapist_total - client_comparable, 9) >= DIVERGENCE_POINTS


def series(values: dict[int, float], length: int | None = None) -> list[float | None]:
    """Session number -> score as a list, ``None`` where a session has no score."""
    n = max([*values, length or 0]) if values or length else 0
    return [values.get(k) for k in range(1, n + 1)]


@dataclass
class EpisodeData:
    """Every score of one episode, by measure and respondent, keyed by session number."""

    client: dict[str, dict[int, float]] = field(default_factory=dict)
    therapist: dict[int, float] = field(default_factory=dict)
    items: dict[int, dict[str, float]] = field(default_factory=dict)
    comments: list[tuple[int, str]] = field(default_factory=list)
    n_sessions: int = 0

    @classmethod
    def from_rows(cls, rows: Iterable[ResponseRow], n_sessions: int = 0) -> EpisodeData:
        """From ``(session number, code, respondent, total, answers, free text)`` rows in
        session order (free text ``None`` when it was not read)."""
        data = cls(n_sessions=n_sessions)
        for number, code, respondent, total, answers, free_text in rows:
            data.n_sessions = max(data.n_sessions, number)
            if respondent == "therapist":
                data.therapist[number] = total
                continue
            data.client.setdefault(code, {})[number] = total
            if code == ALLIANCE:
                data.items[number] = {
                    k: float(v) for k, v in answers.items() if isinstance(v, int | float)
                }
                if free_text:
                    data.comments.append((number, free_text))
        return data

    def scores(self, code: str) -> list[float | None]:
        return series(self.client.get(code, {}), self.n_sessions)

    def therapist_scores(self) -> list[float | None]:
        return series(self.therapist, self.n_sessions)

    def outcome_code(self) -> str | None:
        """PHQ-9 when the episode has it, else the wellbeing check-in, else ``None``."""
        for code in OUTCOME_CODES:
            if self.client.get(code):
                return code
        return None


def ruptures(scores: Sequence[float | None], clinic_id: int | None = None) -> list[Rupture]:
    """Ruptures in one alliance series by the rule in force in the clinic
    (:func:`rupture_setting`; without a clinic, the alliance measure's own default)."""
    from bordin.measures.rupture_rules import detect_scores

    return detect_scores(scores, rupture_setting(clinic_id))


def rupture_setting(clinic_id: int | None = None) -> RuleSetting:
    """The alliance rupture rule in force in the clinic, with its threshold.

    The rule is the one the clinic's measure plan names for the alliance check-in (else the
    measure's default, ``reliable``); the threshold is derived from the clinic's own alliance
    scores once they are enough (:data:`bordin.measures.rupture_rules.MIN_CLIENTS`), else from
    the measure's provisional facts. Computed once and served from Django's cache for
    :data:`REFIT_SECONDS` (saving the plan forgets it), so a check-in pays no query for it.
    """
    from django.core.cache import cache

    if clinic_id is None:
        return _rupture_setting(None, None)
    key = f"bordin:rupture:{clinic_id}"
    cached: RuleSetting | None = cache.get(key)
    if cached is None:
        cached = _clinic_rupture_setting(clinic_id)
        cache.set(key, cached, timeout=REFIT_SECONDS)
    return cached


def clinic_registry(clinic_id: int) -> Registry:
    """The built-in measures with the clinic's alliance rupture rule (for reports on the
    clinic's data, which then derive the threshold from those data as the alerts do)."""
    return registry().with_overrides(rupture_rule={ALLIANCE: rupture_setting(clinic_id).rule})


def forget_rupture_setting(clinic_id: int) -> None:
    from django.core.cache import cache

    cache.delete(f"bordin:rupture:{clinic_id}")


def _clinic_rupture_setting(clinic_id: int) -> RuleSetting:
    import polars as pl

    from bordin.measures.series import SeriesMatrix
    from bordin.web.clinic.models import Response
    from bordin.web.delivery.models import MeasurePlan

    rules = MeasurePlan.objects.filter(clinic_id=clinic_id).values_list("rupture_rules", flat=True)
    rule = (rules.first() or {}).get(ALLIANCE)
    rows = Response.objects.filter(
        session__episode__client__clinic_id=clinic_id,
        respondent="client",
        instrument__code=ALLIANCE,
        total__isnull=False,
    ).values_list("session__episode_id", "session__number", "total")
    frame = pl.DataFrame(
        list(rows),
        schema={"client_id": pl.Int64, "session": pl.Int64, "score": pl.Float64},
        orient="row",
    )
    return _rupture_setting(rule, SeriesMatrix.from_long(frame) if frame.height else None)


def _rupture_setting(rule: str | None, data: SeriesMatrix | None) -> RuleSetting:
    from bordin.measures.rupture_rules import RuleSetting, setting_for

    inst = registry()[ALLIANCE]
    found = setting_for(inst, rule=rule, data=data)
    return found or RuleSetting("fixed", inst.rupture_threshold or 1.5, "fixed", None, None)


def part_that_dropped_most(
    items: dict[int, dict[str, float]], rupture: Rupture
) -> tuple[str, float] | None:
    """Which of goals, tasks and bond fell furthest from the comparison session to the rupture."""
    before, after = items.get(rupture.previous_session), items.get(rupture.session)
    if not before or not after:
        return None
    drops = [(before[p] - after[p], p) for p in ALLIANCE_PARTS if p in before and p in after]
    if not drops:
        return None
    drop, part = max(drops)
    return (part, drop) if drop > 0 else None


def sudden_changes(code: str, scores: Sequence[float | None]) -> list[SuddenChange]:
    from bordin.measures.sudden_gains import identify_scores

    inst = registry()[code]
    cutoff = inst.effective_sudden_gain_cutoff
    if cutoff is None or sum(s is not None for s in scores) < 4:
        return []
    return identify_scores(scores, cutoff=cutoff, lower_is_better=inst.lower_is_better)


#: The clinic's expected-trajectory model is cached this many seconds, then refitted on next
#: use. Fitting reads every response of the clinic; a check-in must not pay for that (nor for
#: counting them) on each submission, and a few minutes of new data barely move a model fitted
#: on all of the clinic's episodes.
REFIT_SECONDS = 300


def reference_model(clinic: Clinic, code: str) -> ExpectedTrajectory | None:
    """Expected-trajectory model fitted on all episodes of the clinic (``None``: too few data).

    The growth model of :mod:`bordin.measures.growth` once the clinic has
    :data:`~bordin.measures.growth.MIN_REFERENCE_CLIENTS` episodes with an intake and a later
    score (its REML fit, on at most 1,000 sampled episodes, costs a few seconds of CPU once per
    refit), else the least-squares curve of :mod:`bordin.measures.trajectories`.

    Served from Django's cache (per clinic and measure) for :data:`REFIT_SECONDS`, then
    refitted. Each server process holds its own copy with the default local-memory cache.
    """
    from django.core.cache import cache

    key = f"bordin:trajectory:{clinic.pk}:{code}"
    cached: tuple[ExpectedTrajectory | None] | None = cache.get(key)
    if cached is None:
        cached = (_fit_reference(_reference_responses(clinic, code), code),)
        cache.set(key, cached, timeout=REFIT_SECONDS)
    return cached[0]


def warm_reference_models(clinic: Clinic) -> None:
    """Fit any expired outcome models (and the rupture setting) now, e.g. before a check-in
    opens its transaction."""
    for code in OUTCOME_CODES:
        reference_model(clinic, code)
    rupture_setting(clinic.pk)


def _reference_responses(clinic: Clinic, code: str) -> QuerySet[Response]:
    from bordin.web.clinic.models import Response

    return Response.objects.filter(
        session__episode__client__clinic=clinic, respondent="client", instrument__code=code
    )


def _fit_reference(responses: QuerySet[Response], code: str) -> ExpectedTrajectory | None:
    import polars as pl

    from bordin.measures import growth
    from bordin.measures.series import SeriesMatrix
    from bordin.measures.trajectories import fit

    rows = [
        (episode, number, total)
        for episode, number, total in responses.values_list(
            "session__episode_id", "session__number", "total"
        )
        if total is not None
    ]
    if not rows:
        return None
    frame = pl.DataFrame(
        {
            "client_id": [r[0] for r in rows],
            "session": [r[1] for r in rows],
            "score": [float(r[2]) for r in rows],
        }
    )
    inst = registry()[code]
    try:  # refused quickly below growth.MIN_REFERENCE_CLIENTS episodes
        return growth.fit_long(
            frame, lower_is_better=inst.lower_is_better, scale_min=inst.min, scale_max=inst.max
        )
    except ValueError:
        pass
    try:
        return fit(SeriesMatrix.from_long(frame), lower_is_better=inst.lower_is_better)
    except ValueError:
        return None


def trajectory(
    model: ExpectedTrajectory | None, scores: Sequence[float | None]
) -> list[TrajectoryPoint]:
    from bordin.measures.trajectories import evaluate_scores

    if model is None or not scores or scores[0] is None:
        return []
    return [p for p in evaluate_scores(model, scores) if math.isfinite(p.expected)]


def episode_data(episode: Episode, *, comments: bool = True) -> EpisodeData:
    """Every score of the episode; ``comments=False`` skips reading (decrypting) free text."""
    from bordin.web.clinic.models import Response

    fields = ["session__number", "instrument__code", "respondent", "total", "answers"]
    responses = Response.objects.filter(session__episode=episode, total__isnull=False)
    rows: Iterable[ResponseRow] = (
        responses.values_list(*fields, "free_text")
        if comments
        else ((*r, None) for r in responses.values_list(*fields))
    )
    last = episode.sessions.order_by("-number").values_list("number", flat=True).first()
    return EpisodeData.from_rows(rows, last or 0)
