"""Bring a database up to date: shared schema, template, every tenant."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from tenants.management.commands.migrate_fleet import add_fleet_arguments, print_report
from tenants.services import tenants_migrate


class Command(BaseCommand):
    help = (
        "Migrate the public schema, create or migrate the tenant template, then migrate every tenant schema "
        "with the fleet executor."
    )

    def add_arguments(self, parser: Any) -> None:
        add_fleet_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = int(options["verbosity"])
        call_command("migrate_schemas", shared=True, interactive=False, verbosity=verbosity)
        report = tenants_migrate(
            verbosity=verbosity,
            connections_max=options["connections"],
            lock_timeout=options["lock_timeout"],
            replay=not options["no_replay"],
            verify=options["verify"],
            progress=sys.stderr if verbosity else None,
        )
        print_report(self, report, options["report_json"])
        if not report.ok:
            raise CommandError(f"{len(report.failed)} tenant schema(s) failed to migrate (listed above).")
        self.stdout.write(self.style.SUCCESS("Database ready."))
