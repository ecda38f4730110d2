from __future__ import annotations

from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "bordin.web.alerts"
    label = "alerts"
    verbose_name = "Alerts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from bordin.web.alerts.signals import episode_saved
        from bordin.web.clinic.models import Episode

        post_save.connect(episode_saved, sender=Episode, dispatch_uid="alerts-withdrawal-ending")
