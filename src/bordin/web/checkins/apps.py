from __future__ import annotations

from django.apps import AppConfig


class CheckinsConfig(AppConfig):
    name = "bordin.web.checkins"
    label = "checkins"
    verbose_name = "Check-ins"
    default_auto_field = "django.db.models.BigAutoField"
