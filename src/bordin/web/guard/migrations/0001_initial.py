# ruff: noqa: RUF012 - written like makemigrations output
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="RateCounter",
            fields=[
                ("key", models.CharField(max_length=200, primary_key=True, serialize=False)),
                ("window_ends", models.DateTimeField()),
                ("count", models.PositiveIntegerField(default=0)),
            ],
        ),
    ]
