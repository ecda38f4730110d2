"""The caseload says where a client's journey waits instead of "None" (issue 15)."""

from __future__ import annotations

from typing import Any

import pytest

from bordin.web.journey.models import Intake, JourneyLink
from tests.web.journey_helpers import make_rematch

pytestmark = pytest.mark.django_db


def row_of(page: str, client_id: int) -> str:
    start = page.index(f'<tr data-client-id="{client_id}"')
    return page[start : page.index("</tr>", start)]


def test_unanswered_intake_and_someone_else_show_on_the_caseload(
    login: Any, owner: Any, client_record: Any, episode: Any
) -> None:
    client = login(owner)
    row = row_of(client.get("/").content.decode(), client_record.pk)
    assert ">None<" in row  # nothing to say yet
    JourneyLink.issue("intake", episode)
    row = row_of(client.get("/").content.decode(), client_record.pk)
    assert 'data-journey-status="intake-unanswered">Intake not answered' in row
    assert ">None<" not in row
    from django.utils import timezone

    Intake.objects.create(
        client=client_record,
        episode=episode,
        problem_areas=["low_mood"],
        past_therapy="none",
        submitted_at=timezone.now(),
    )
    make_rematch(client_record)
    row = row_of(client.get("/").content.decode(), client_record.pk)
    assert "intake-unanswered" not in row
    assert 'data-journey-status="asked-for-someone-else">Asked for someone else' in row
