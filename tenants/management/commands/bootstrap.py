"""Bring a database up to date: shared schema, template, every tenant."""

from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand

from tenants.services import template_ensure, tenants_migrate


class Command(BaseCommand):
    help = "Migrate the public schema, create or migrate the tenant template, then migrate every tenant schema."

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = int(options["verbosity"])
        call_command("migrate_schemas", shared=True, interactive=False, verbosity=verbosity)
        template_ensure(verbosity=verbosity)
        migrated, total = tenants_migrate(verbosity=verbosity)
        self.stdout.write(f"Tenant schemas migrated: {migrated} of {total} (the others were up to date).")
        self.stdout.write(self.style.SUCCESS("Database ready."))
