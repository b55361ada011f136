"""A tenant app for bench/fleet.py only: its second migration is the measured one
(a nullable column with an index). Installed by bench/fleet_settings.py, never
by the product's settings."""

from __future__ import annotations

from django.db import models


class Note(models.Model):
    title = models.CharField(max_length=100)
    tag = models.CharField(max_length=40, null=True, db_index=True)

    class Meta:
        app_label = "fleetapp"

    def __str__(self) -> str:
        return self.title
