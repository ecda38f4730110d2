from __future__ import annotations

from django.apps import AppConfig


class ClinicConfig(AppConfig):
    name = "bordin.web.clinic"
    label = "clinic"
    verbose_name = "Clinic"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from bordin.web import csrf  # noqa: F401  (registers the bordin.E003 system check)
