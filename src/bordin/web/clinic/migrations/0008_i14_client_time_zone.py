# ruff: noqa: RUF012 E501 - written as makemigrations writes it
"""A client's own time zone for their pages and reminders (issue 14; web.i18n)."""

from django.db import migrations, models

import bordin.web.clinic.models


class Migration(migrations.Migration):
    dependencies = [("clinic", "0007_i14_staff_language")]

    operations = [
        migrations.AddField(
            model_name="client",
            name="time_zone",
            field=models.CharField(
                blank=True,
                default="",
                help_text="IANA time zone of the client's pages and reminders; empty: the clinic's.",
                max_length=64,
                validators=[bordin.web.clinic.models.validate_time_zone],
            ),
        ),
    ]
