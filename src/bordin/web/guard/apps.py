from django.apps import AppConfig


class GuardConfig(AppConfig):
    name = "bordin.web.guard"
    label = "guard"
    verbose_name = "Rate limits and proxy checks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from bordin.web.guard import proxy  # noqa: F401  (registers the system check)
