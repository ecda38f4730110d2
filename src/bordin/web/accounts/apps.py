from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "bordin.web.accounts"
    label = "accounts"
    verbose_name = "Accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from bordin.web.accounts import signals

        signals.connect()
