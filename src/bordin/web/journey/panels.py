"""What the journey adds to the therapist's client page."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from bordin.web.clinic import analysis
from bordin.web.clinic.models import Client, Episode, Session
from bordin.web.journey import ending, services
from bordin.web.journey.forms import GoalForm
from bordin.web.journey.models import FitCheck, Intake, JourneyLink, RematchRequest

#: A fit-check link can be sent while the episode has at most this many attended sessions.
FIT_CHECK_WINDOW = 3


@dataclass
class JourneyPanels:
    episode: Episode | None
    intake: Intake | None = None
    intake_link_open: bool = False
    fit_check: FitCheck | None = None
    fit_link_open: bool = False
    can_issue_fit_link: bool = False
    goals: list[services.GoalHistory] = field(default_factory=list)
    evidence: ending.Evidence | None = None
    rematch: RematchRequest | None = None
    goal_form: GoalForm = field(default_factory=GoalForm)
    open_links: list[JourneyLink] = field(default_factory=list)
    attended_sessions: int = 0

    @property
    def hesitant_start(self) -> bool:
        return self.intake is not None and self.intake.hesitant_start

    @property
    def fit_check_visible(self) -> bool:
        """The first therapist (or anyone on this page) sees the answers only with consent."""
        return self.fit_check is not None and self.fit_check.share_with_therapist


def build(client: Client, user: Any) -> JourneyPanels:
    episode = services.current_episode(client)
    panels = JourneyPanels(episode=episode)
    if episode is None:
        return panels
    panels.intake = Intake.objects.filter(episode=episode).first()
    now = timezone.now()
    panels.open_links = list(
        JourneyLink.objects.filter(
            episode=episode, used_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now
        )
    )
    open_links = {link.purpose for link in panels.open_links}
    panels.intake_link_open = JourneyLink.Purpose.INTAKE in open_links
    panels.fit_link_open = JourneyLink.Purpose.FIT_CHECK in open_links
    panels.fit_check = FitCheck.objects.filter(episode=episode).first()
    attended = episode.sessions.filter(attendance=Session.Attendance.ATTENDED).count()
    panels.attended_sessions = attended
    # The fit check belongs to the start of therapy: after the first meeting, not much later.
    panels.can_issue_fit_link = panels.fit_check is None and 1 <= attended <= FIT_CHECK_WINDOW
    panels.rematch = RematchRequest.objects.filter(episode=episode).first()
    panels.goals = services.goal_histories(episode)
    data = analysis.episode_data(episode)
    panels.evidence = ending.evidence(episode, data)
    return panels
