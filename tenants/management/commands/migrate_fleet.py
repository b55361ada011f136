"""Migrate the template and every tenant schema (or some) with the fleet executor."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from tenants.fleet import FleetReport
from tenants.services import tenants_migrate

_LOCK_TIMEOUT_RE = re.compile(r"^\d{1,6}(ms|s|min)?$")


def add_fleet_arguments(parser: Any) -> None:
    parser.add_argument(
        "--connections", type=int, default=2, help="tenants migrated at once, one connection each (default 2)"
    )
    parser.add_argument("--lock-timeout", default="5s", help="per-tenant lock_timeout, e.g. 5s or 500ms (default 5s)")
    parser.add_argument(
        "--no-replay", action="store_true", help="run every migration the normal way in every tenant (slow)"
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="check every schema's own django_migrations, not the tenants' markers (after changing a schema by hand)",
    )
    parser.add_argument("--report-json", metavar="FILE", help="also write the report (failures included) as JSON")


def print_report(command: BaseCommand, report: FleetReport, json_path: str | None = None) -> None:
    if json_path:
        Path(json_path).write_text(json.dumps(dataclasses.asdict(report), indent=2))
    if report.template_migrated:
        command.stdout.write("Template migrated.")
    command.stdout.write(
        f"Tenant schemas migrated: {report.migrated} of {report.total} "
        f"({report.current} were up to date, {len(report.failed)} failed) in {report.seconds:.1f} s; "
        f"migrations replayed {report.replayed}, run normally {report.normal}."
    )
    done = report.migrated + len(report.failed)
    if done and report.phases:
        spent = ", ".join(f"{phase} {seconds / done * 1000:.1f}" for phase, seconds in report.phases.items())
        command.stdout.write(f"Per tenant (ms): {spent}.")
    for failure in report.failed:
        command.stderr.write(f"FAILED {failure.schema}: {failure.error}")


class Command(BaseCommand):
    help = (
        "Apply pending migrations to the template and every tenant schema, in parallel, one transaction per "
        "tenant. Resumable: rerun after a crash or Ctrl-C. Failed tenants are listed, flagged "
        "(Tenant.migration_error) and left on their previous state; the others go on."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("schemas", nargs="*", help="only these tenant schemas (default: all)")
        add_fleet_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["connections"] < 1 or options["connections"] > 32:
            raise CommandError("--connections must be between 1 and 32.")
        if not _LOCK_TIMEOUT_RE.match(options["lock_timeout"]):
            raise CommandError("--lock-timeout must look like 5s, 500ms or 1min.")
        verbosity = int(options["verbosity"])
        report = tenants_migrate(
            verbosity=verbosity,
            connections_max=options["connections"],
            lock_timeout=options["lock_timeout"],
            replay=not options["no_replay"],
            verify=options["verify"],
            schemas=options["schemas"] or None,
            progress=sys.stderr if verbosity else None,
        )
        print_report(self, report, options["report_json"])
        if not report.ok:
            raise CommandError(f"{len(report.failed)} tenant schema(s) failed to migrate (listed above).")
