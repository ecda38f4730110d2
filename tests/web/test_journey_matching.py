"""The matching shortlist on a re-match request: outcomes only, practical filters, thin data."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from django.utils import timezone

from bordin.web.clinic import analysis
from bordin.web.clinic.models import Client, Episode, Instrument, Response, Session
from bordin.web.journey import matching_ui
from bordin.web.journey.models import Intake, TherapistProfile
from tests.web.conftest import make_staff
from tests.web.journey_helpers import make_rematch

pytestmark = pytest.mark.django_db


def finished_episode(
    clinic: Any, therapist: Any, improved: bool, area: str = "low_mood", days_ago: int = 90
) -> None:
    reg = analysis.registry()
    inst = Instrument.snapshot(reg[analysis.WELLBEING])
    c = Client.objects.create(clinic=clinic, therapist=therapist, display_name="Past", active=False)
    start = date.today() - timedelta(days=days_ago)
    ep = Episode.objects.create(client=c, start=start, end=start + timedelta(days=60))
    ep.status = "closed"
    ep.save()
    Intake.objects.create(
        client=c, episode=ep, problem_areas=[area], past_therapy="none", submitted_at=timezone.now()
    )
    for number, total in ((1, 3.0), (2, 7.0 if improved else 3.5)):
        s = Session.objects.create(episode=ep, number=number, date=start + timedelta(number * 7))
        Response.objects.create(
            session=s,
            instrument=inst,
            respondent="client",
            answers={},
            total=total,
            submitted_at=timezone.now(),
            idempotency_key=f"m-{ep.pk}-{number}",
        )


@pytest.fixture
def waiting(client_record: Any, episode: Any) -> Any:
    Intake.objects.create(
        client=client_record,
        episode=episode,
        problem_areas=["low_mood"],
        formats=["video"],
        language="English",
        past_therapy="none",
        submitted_at=timezone.now(),
    )
    return make_rematch(client_record)


def test_thin_data_hides_the_shortlist_with_the_reason(
    client: Any, login: Any, admin: Any, colleague: Any, waiting: Any
) -> None:
    login(admin)
    page = client.get(f"/rematch/{waiting.pk}/").content.decode()
    assert "data-shortlist-hidden" in page
    assert "no finished episodes" in page
    finished_episode(admin.staff.clinic, colleague, True)
    page = client.get(f"/rematch/{waiting.pk}/").content.decode()
    assert "data-shortlist-hidden" in page and "at least 30" in page


def test_ranked_shortlist_filtered_by_practical_preferences(
    client: Any, login: Any, admin: Any, clinic: Any, waiting: Any
) -> None:
    strong = make_staff("strong", clinic)
    middle = make_staff("middle", clinic)
    weak = make_staff("weak", clinic)
    far = make_staff("in-person-only", clinic)
    others = [make_staff(name, clinic) for name in ("fair", "low")]
    track = ((strong, 14), (middle, 8), (weak, 2), (far, 13), (others[0], 10), (others[1], 4))
    for therapist, improved in track:
        for k in range(15):
            # Improvements spread evenly over time, so the earlier and the later half agree.
            hit = (k + 1) * improved // 15 > k * improved // 15
            finished_episode(clinic, therapist, hit, days_ago=200 - 7 * k)
    TherapistProfile.objects.create(user=far, formats=["in_person"], languages=["English"])
    TherapistProfile.objects.create(user=strong, formats=["video"], languages=["english"])
    view = matching_ui.build(
        waiting, Intake.objects.get(episode=waiting.episode), [strong, middle, weak, far, *others]
    )
    assert view.available, view.reason
    assert view.rows[0].name == "strong"
    assert "in-person-only" not in [r.name for r in view.rows]
    assert any("in-person-only" in e for e in view.excluded)
    # The frame built from the clinic's episodes holds outcomes only: therapist, area, improved,
    # and when the episode ended (for the held-out check).
    rows = matching_ui.outcomes_frame(clinic.pk)
    assert len(rows) == 90 and {type(v) for row in rows for v in row} == {str, bool, date}
    assert "earlier ranking predicted later clients' results" in view.reason
    top = view.rows[0]
    assert 0 <= top.lower < top.estimate < top.upper <= 1  # uncertainty is shown
    login(admin)
    page = client.get(f"/rematch/{waiting.pk}/").content.decode()
    assert "Ranked by reliable improvement" in page and "90% interval" in page
    # The assign list starts on the top-ranked therapist, not the first in the alphabet.
    import re

    options = re.findall(r'<option value="(\d+)"( selected)?', page)
    assert options[0] == (str(strong.pk), " selected")
    assert [pk for pk, chosen in options if chosen] == [str(strong.pk)]


def test_no_list_when_the_earlier_ranking_does_not_predict(
    client: Any, login: Any, admin: Any, clinic: Any, waiting: Any
) -> None:
    """Results that look different but reverse between the periods: the check fails."""
    team = [make_staff(name, clinic) for name in ("ana", "ben", "cas", "dee", "eli")]
    for j, therapist in enumerate(team):
        for k in range(12):
            early = k < 6
            # Earlier, ana best and eli worst; later, the other way round.
            good = (j if early else 4 - j) * 2
            finished_episode(clinic, therapist, k % 6 >= good // 2 + 1, days_ago=200 - 7 * k)
    view = matching_ui.build(waiting, Intake.objects.get(episode=waiting.episode), team)
    assert not view.available
    assert "did not reliably predict" in view.reason
    assert view.ranked_ids == []
    assert [r.name for r in view.rows] == sorted(r.name for r in view.rows)
    login(admin)
    page = client.get(f"/rematch/{waiting.pk}/").content.decode()
    assert "data-shortlist-hidden" in page and "did not reliably predict" in page


def test_matching_never_sees_personal_characteristics() -> None:
    import polars as pl

    from bordin.measures import matching

    frame = pl.DataFrame(
        {
            "therapist_id": ["a"],
            "problem_area": ["low_mood"],
            "reliable_improvement": [True],
            "lived_experience": [True],
        }
    )
    with pytest.raises(ValueError, match="never therapist or client characteristics"):
        matching.estimate_effects(frame)


def test_the_reason_is_in_the_staff_members_language(
    client: Any, login: Any, admin: Any, clinic: Any, waiting: Any
) -> None:
    """The held-out check's figures and the unranked list's reason, in Spanish (issue 14)."""
    from bordin.web.clinic.models import StaffProfile

    team = [make_staff(name, clinic) for name in ("ana", "ben", "cas", "dee", "eli")]
    for j, therapist in enumerate(team):
        for k in range(12):
            good = (j if k < 6 else 4 - j) * 2
            finished_episode(clinic, therapist, k % 6 >= good // 2 + 1, days_ago=200 - 7 * k)
    make_staff("new", clinic)  # eligible, no track record yet: not ranked
    StaffProfile.objects.filter(user=admin).update(language="es")
    login(admin)
    page = client.get(f"/rematch/{waiting.pk}/").content.decode()
    assert "data-shortlist-hidden" in page
    assert "no predijo de forma fiable" in page and "correlación" in page
    assert "1 terapeuta elegible tiene menos de 3" in page  # no track record yet, not ranked
    assert "did not reliably predict" not in page and "Allocate as usual" not in page
