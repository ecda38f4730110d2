# ruff: noqa: RUF012 - operations as makemigrations writes them
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("clinic", "0004_client_contact_and_endings")]

    operations = [
        migrations.AddField(
            model_name="clinic",
            name="duty_email",
            field=models.EmailField(
                blank=True,
                db_default="",
                help_text="The clinic's duty contact, e-mailed at once (with the therapist) "
                "when a client reports a risk.",
                max_length=254,
            ),
        ),
    ]
