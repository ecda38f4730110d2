"""Automatic triggers: a client added with contact details gets the intake link; a planned
ending schedules the graduation summary and the follow-ups. Both run after the commit that
made the change, each in a transaction of its own (link and outbox message together)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from bordin.web.clinic.models import Client, Episode


@receiver(post_save, sender=Client, dispatch_uid="delivery-client-added")
def client_added(sender: Any, instance: Client, created: bool, **kwargs: Any) -> None:
    if created and not kwargs.get("raw"):
        from bordin.web.delivery.services import on_client_added

        pk = instance.pk
        transaction.on_commit(lambda: on_client_added(Client.objects.get(pk=pk)))


@receiver(post_save, sender=Episode, dispatch_uid="delivery-planned-ending")
def episode_saved(sender: Any, instance: Episode, **kwargs: Any) -> None:
    if kwargs.get("raw"):
        return
    if (
        instance.status == Episode.Status.CLOSED
        and instance.ending_reason == Episode.EndingReason.PLANNED
    ):
        from bordin.web.delivery.services import on_planned_ending

        pk = instance.pk
        transaction.on_commit(lambda: on_planned_ending(Episode.objects.get(pk=pk)))
