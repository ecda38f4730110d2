# ruff: noqa: RUF012 E501 - written as makemigrations writes it
"""A staff member's own language for their pages (issue 14; web.i18n)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("clinic", "0006_merge_i11_i15")]

    operations = [
        migrations.AddField(
            model_name="staffprofile",
            name="language",
            field=models.CharField(
                blank=True,
                default="",
                help_text="Language of this user's pages (a code from LANGUAGES); empty: the browser's.",
                max_length=10,
            ),
        ),
    ]
