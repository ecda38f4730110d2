"""Raise a withdrawal alert when an episode is closed with an unplanned ending.

Episodes are closed in several places (the ending flow, re-matching, the admin); a
``post_save`` receiver catches every one of them.
"""

from __future__ import annotations

from typing import Any

from bordin.web.clinic.models import Episode


def episode_saved(sender: type[Episode], instance: Episode, **kwargs: Any) -> None:
    if instance.status != Episode.Status.CLOSED:
        return
    if not instance.ending_reason or instance.ending_reason == Episode.EndingReason.PLANNED:
        return
    from bordin.web.alerts.rules import check_withdrawal

    check_withdrawal(instance.client, instance)
