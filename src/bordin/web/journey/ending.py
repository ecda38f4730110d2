"""When to suggest planning the ending, and the plain-language story of a client's change.

The suggestion needs three kinds of evidence at once (see ``docs/journey.md``):

* **outcome**: each of the last two outcome scores is a reliable improvement on the first
  score of the episode (Jacobson & Truax 1991, via
  :func:`bordin.measures.reliable_change.classify_change`), and, when the measure has a
  caseness cut-off and the client started in the clinical range, a recovery;
* **goals**: at least two thirds of the active goals were rated 7 or more at their last rating;
* **alliance**: no open or unrepaired rupture in the last three sessions
  (:func:`bordin.web.clinic.analysis.ruptures`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from bordin.measures.reliable_change import classify_change
from bordin.web.clinic import analysis
from bordin.web.clinic.models import Episode, Goal, GoalRating

#: A goal counts as (mostly) met at this rating or above.
GOAL_MET = 7
#: Share of goals that must be met.
GOALS_SHARE = Fraction(2, 3)
#: Improvement must hold over this many of the latest scores.
HELD_OVER = 2
#: Ruptures in this many latest sessions block the suggestion while open or unrepaired.
ALLIANCE_WINDOW = 3
GOOD = frozenset({"improved", "recovered"})
#: Reliable-change categories (bordin.measures.reliable_change) as the progress report says them.
CATEGORY_LABELS = {
    "recovered": gettext_lazy("recovered"),
    "improved": gettext_lazy("reliably improved"),
    "unchanged": gettext_lazy("no reliable change"),
    "deteriorated": gettext_lazy("reliably deteriorated"),
}


@dataclass(frozen=True)
class Change:
    """The first and latest outcome score of an episode, explained."""

    code: str
    name: str
    first: float
    last: float
    threshold: float
    lower_is_better: bool
    category: str
    caseness: float | None

    @property
    def points(self) -> float:
        return abs(self.last - self.first)

    @property
    def moved(self) -> str:
        if round(self.last - self.first, 9) == 0:
            return "stayed the same"
        return "fell" if self.last < self.first else "rose"

    @property
    def reliable_improvement(self) -> bool:
        return self.category in GOOD

    @property
    def category_label(self) -> str:
        """The Jacobson & Truax (1991) category in the reader's language."""
        return str(CATEGORY_LABELS.get(self.category, self.category))

    def plain(self) -> str:
        """The change in everyday words, for the client (in the active language)."""
        values = {
            "name": client_name(self.code, self.name),
            "points": f"{self.points:g}",
            "first": f"{self.first:g}",
            "last": f"{self.last:g}",
            "threshold": f"{self.threshold:g}",
        }
        if self.moved == "stayed the same":
            head = _("Your %(name)s score stayed the same")
        elif self.moved == "fell":
            head = _("Your %(name)s score fell by %(points)s points, from %(first)s to %(last)s")
        else:
            head = _("Your %(name)s score rose by %(points)s points, from %(first)s to %(last)s")
        parts = [
            head % values,
            _("(lower is better).") if self.lower_is_better else _("(higher is better)."),
            _(
                "Scores go up and down a little from week to week; a change of at least "
                "%(threshold)s points is bigger than those day-to-day ups and downs."
            )
            % values,
        ]
        if self.category in GOOD:
            parts.append(_("Your change is bigger than that, so we can be confident it is real."))
        if self.category == "recovered":
            parts.append(
                _(
                    "Your score has also moved out of the range where most people who look for "
                    "help start."
                )
            )
        elif self.category == "deteriorated":
            parts.append(_("Your score has moved the other way by more than that."))
        elif self.category == "unchanged":
            parts.append(_("Your change is smaller than that so far."))
        return " ".join(parts)


#: Our own check-ins' names in a client's words, translatable (docs/translating.md).
CLIENT_NAMES = {
    "alliance": gettext_lazy("alliance check-in"),
    "wellbeing": gettext_lazy("wellbeing check-in"),
}


def client_name(code: str, name: str) -> str:
    """A measure's name for the client: ours translated, an imported one as it is named."""
    return str(CLIENT_NAMES.get(code, name))


@dataclass
class Evidence:
    outcome_ok: bool = False
    goals_ok: bool = False
    alliance_ok: bool = False
    items: list[str] = field(default_factory=list)
    change: Change | None = None

    @property
    def ready(self) -> bool:
        return self.outcome_ok and self.goals_ok and self.alliance_ok


def display_name(name: str) -> str:
    """A measure's name for people: no parenthesis, no "Bordin" in front."""
    return name.split(" (")[0].removeprefix("Bordin ")


def outcome_change(data: analysis.EpisodeData) -> Change | None:
    """First versus latest outcome score of the episode, or ``None`` with fewer than two."""
    code = data.outcome_code()
    if code is None:
        return None
    present = [v for v in data.scores(code) if v is not None]
    if len(present) < 2:
        return None
    inst = analysis.registry()[code]
    threshold = inst.reliable_change
    if threshold is None:
        return None
    category = classify_change(
        present[0],
        present[-1],
        threshold=threshold,
        lower_is_better=inst.lower_is_better,
        caseness=inst.caseness,
    )
    return Change(
        code=code,
        name=display_name(inst.name),
        first=present[0],
        last=present[-1],
        threshold=threshold,
        lower_is_better=inst.lower_is_better,
        category=category,
        caseness=inst.caseness,
    )


def latest_goal_ratings(goals: Sequence[Goal]) -> dict[int, list[int]]:
    """Ratings of each goal in session order."""
    out: dict[int, list[int]] = {}
    for goal_id, rating in (
        GoalRating.objects.filter(goal__in=goals)
        .order_by("session__number", "pk")
        .values_list("goal_id", "rating")
    ):
        out.setdefault(goal_id, []).append(rating)
    return out


def evidence(episode: Episode, data: analysis.EpisodeData | None = None) -> Evidence:
    data = data if data is not None else analysis.episode_data(episode)
    ev = Evidence()
    _outcome(ev, data)
    _goals(ev, episode)
    _alliance(ev, data, episode.client.clinic_id)
    return ev


def _outcome(ev: Evidence, data: analysis.EpisodeData) -> None:
    code = data.outcome_code()
    ev.change = outcome_change(data)
    if code is None or ev.change is None:
        ev.items.append("Outcome: not enough scores yet.")
        return
    inst = analysis.registry()[code]
    present = [v for v in data.scores(code) if v is not None]
    if len(present) < HELD_OVER + 1:
        ev.items.append(f"Outcome: {len(present)} scores; at least {HELD_OVER + 1} are needed.")
        return
    first = present[0]
    latest = present[-HELD_OVER:]
    cats = [
        classify_change(
            first,
            v,
            threshold=ev.change.threshold,
            lower_is_better=inst.lower_is_better,
            caseness=inst.caseness,
        )
        for v in latest
    ]
    started_as_case = inst.is_case(first)
    needed = {"recovered"} if started_as_case else set(GOOD)
    ev.outcome_ok = all(c in needed for c in cats)
    what = "recovery" if started_as_case else "reliable improvement"
    shown = ", ".join(f"{v:g} ({c})" for v, c in zip(latest, cats, strict=True))
    label = ev.change.name[:1].upper() + ev.change.name[1:]
    ev.items.append(
        f"{label}: first score {first:g}; last {HELD_OVER} scores {shown}; "
        f"reliable change is {ev.change.threshold:g} points. "
        + (
            f"Held {what} over the last {HELD_OVER} scores."
            if ev.outcome_ok
            else f"No held {what} yet."
        )
    )


def _goals(ev: Evidence, episode: Episode) -> None:
    goals = list(episode.goals.filter(active=True))
    if not goals:
        ev.items.append("Goals: none recorded.")
        return
    ratings = latest_goal_ratings(goals)
    met = sum(1 for g in goals if ratings.get(g.pk) and ratings[g.pk][-1] >= GOAL_MET)
    ev.goals_ok = Fraction(met, len(goals)) >= GOALS_SHARE
    ev.items.append(
        f"Goals: {met} of {len(goals)} rated {GOAL_MET} or more at their last rating"
        + (" (at least two thirds)." if ev.goals_ok else " (two thirds are needed).")
    )


def _alliance(ev: Evidence, data: analysis.EpisodeData, clinic_id: int) -> None:
    scores = data.scores(analysis.ALLIANCE)
    if not any(v is not None for v in scores):
        ev.items.append("Alliance: no ratings yet.")
        return
    recent_from = max(1, data.n_sessions - ALLIANCE_WINDOW + 1)
    blocking = [
        r
        for r in analysis.ruptures(scores, clinic_id)
        if r.status in ("open", "unrepaired") and r.session >= recent_from
    ]
    ev.alliance_ok = not blocking
    ev.items.append(
        f"Alliance: no open or unrepaired rupture in the last {ALLIANCE_WINDOW} sessions."
        if ev.alliance_ok
        else f"Alliance: a rupture at session {blocking[-1].session} is not repaired yet."
    )
