"""Helpers for the client's-journey tests (and their permission-matrix entries)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse


def intake_post(key: str = "i" * 32, **overrides: Any) -> dict[str, Any]:
    """A complete, valid intake submission; ``overrides`` replace (``None``: drop) fields."""
    data: dict[str, Any] = {
        "idempotency_key": key,
        "problem_areas": ["low_mood", "sleep"],
        "own_words": "Everything feels heavy since the move.",
        "goal_1": "Sleep through the night",
        "goal_2": "Call my sister every week",
        "goal_3": "",
        "formats": ["video", "in_person"],
        "times": ["weekday_evening"],
        "language": "English",
        "therapist_preferences": "Someone who doesn't rush me.",
        "past_therapy": "unhelpful",
        "past_what_happened": "The last counsellor kept telling me what to do.",
        "past_different": "I want to be listened to first.",
    }
    for name, value in overrides.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return data


def fit_post(key: str = "f" * 32, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "idempotency_key": key,
        "heard": "3",
        "warmth": "4",
        "honest": "2",
        "choice": "switch",
    }
    for name, value in overrides.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return data


def open_link(client: Any, purpose: str, episode: Any, session: Any = None) -> tuple[Any, str]:
    """Issue a journey link and follow it with the test client (as the client would)."""
    from bordin.web.journey.models import JourneyLink

    link, token = JourneyLink.issue(purpose, episode, session=session)
    url = reverse("journey-start", kwargs={"token": token})
    response = client.get(url)
    if purpose == "graduation":
        # A GET only shows the button (a mail scanner must not use the link up); a click opens.
        assert response.status_code == 200, response.status_code
        assert 'data-action="open-summary"' in response.content.decode()
        link.refresh_from_db()
        assert link.used_at is None
        response = client.post(url)
    assert response.status_code == 302, response.status_code
    return link, token


def make_rematch(client_record: Any) -> Any:
    """An open re-match request for the client's current episode (after a fit check)."""
    from django.utils import timezone

    from bordin.web.journey.models import FitCheck, RematchRequest

    episode = client_record.episodes.order_by("-start", "-pk").first()
    fit = FitCheck.objects.create(
        client=client_record,
        episode=episode,
        heard=2,
        warmth=3,
        honest=2,
        choice="switch",
        share_with_therapist=False,
        submitted_at=timezone.now(),
    )
    return RematchRequest.objects.create(
        clinic_id=client_record.clinic_id, client=client_record, episode=episode, fit_check=fit
    )


def journey_fingerprint() -> tuple[Any, ...]:
    """The journey's rows, for "nothing changed" checks."""
    from bordin.web.clinic.models import Client, Episode, Goal
    from bordin.web.journey.models import (
        FitCheck,
        Intake,
        JourneyLink,
        JourneySettings,
        RematchRequest,
    )

    return (
        list(JourneyLink.objects.order_by("pk").values_list("pk", "used_at", "revoked_at")),
        list(Intake.objects.order_by("pk").values_list("pk", flat=True)),
        list(FitCheck.objects.order_by("pk").values_list("pk", flat=True)),
        list(RematchRequest.objects.order_by("pk").values_list("pk", "status")),
        list(Goal.objects.order_by("pk").values_list("pk", "active")),
        list(JourneySettings.objects.order_by("pk").values_list("pk", "show_goals_to_client")),
        list(Client.objects.order_by("pk").values_list("pk", "active")),
        list(Episode.objects.order_by("pk").values_list("pk", "status")),
    )
