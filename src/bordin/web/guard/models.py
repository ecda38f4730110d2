"""``RateCounter``: one fixed-window counter per key, in the database all workers share."""

from __future__ import annotations

from django.db import models


class RateCounter(models.Model):
    key = models.CharField(max_length=200, primary_key=True)
    window_ends = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.key}: {self.count} until {self.window_ends:%H:%M:%S}"
