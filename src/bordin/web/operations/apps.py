from __future__ import annotations

from django.apps import AppConfig


class OperationsConfig(AppConfig):
    name = "bordin.web.operations"
    label = "operations"
    verbose_name = "Clinic operations"
    default_auto_field = "django.db.models.BigAutoField"
