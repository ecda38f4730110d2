from __future__ import annotations

from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "bordin.web.delivery"
    label = "delivery"
    verbose_name = "Delivery"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from bordin.web.delivery import signals  # noqa: F401 - connects the receivers
