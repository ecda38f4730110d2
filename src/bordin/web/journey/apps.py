from __future__ import annotations

from django.apps import AppConfig


class JourneyConfig(AppConfig):
    name = "bordin.web.journey"
    label = "journey"
    verbose_name = "Client journey"
    default_auto_field = "django.db.models.BigAutoField"
