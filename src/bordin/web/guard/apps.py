from django.apps import AppConfig


class GuardConfig(AppConfig):
    name = "bordin.web.guard"
    label = "guard"
    verbose_name = "Rate limits and proxy checks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from bordin.web.guard import proxy  # noqa: F401  (registers the system check)
        from bordin.web.guard.files import private_sqlite_files

        connection_created.connect(private_sqlite_files, dispatch_uid="bordin.private_sqlite")
