from __future__ import annotations

from django.apps import AppConfig


class InstrumentsConfig(AppConfig):
    name = "bordin.web.instruments"
    label = "instruments"
    verbose_name = "Instruments"
    default_auto_field = "django.db.models.BigAutoField"
