"""What the client sees of their own progress (when the clinic enables it)."""

from __future__ import annotations

from bordin.web.clinic.models import Episode, Goal
from bordin.web.journey import services
from bordin.web.journey.models import JourneySettings


def client_goals(episode: Episode, goals: list[Goal] | None = None) -> list[services.GoalHistory]:
    """The episode's active goals with their ratings, or nothing if the clinic turned it off.

    ``goals``: :func:`~bordin.web.journey.services.episode_goals` if already read.
    """
    if not JourneySettings.of(episode.client.clinic).show_goals_to_client:
        return []
    return services.goal_histories(episode, goals)
