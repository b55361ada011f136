"""Provision a tenant from the shell, through the same service as the API."""

from __future__ import annotations

import getpass
import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import ApplicationError
from tenants.services import ProvisionTimings, tenant_provision


class Command(BaseCommand):
    help = "Create a tenant: schema (cloned from the template), primary domain and first admin."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", help="Display name (default: the slug, title-cased).")
        parser.add_argument("--admin-email", required=True)
        parser.add_argument("--admin-username")
        parser.add_argument(
            "--admin-password",
            help="Default: $TENANT_ADMIN_PASSWORD, else asked for on the terminal.",
        )
        parser.add_argument(
            "--no-activation",
            action="store_true",
            help="New users of this tenant are active at once (no activation email).",
        )
        parser.add_argument("--method", choices=["clone", "migrate"], default="clone")

    def handle(self, *args: Any, **options: Any) -> None:
        password = options["admin_password"] or os.environ.get("TENANT_ADMIN_PASSWORD")
        if not password:
            if not options.get("interactive", True) or not os.isatty(0):
                raise CommandError("Give --admin-password or set TENANT_ADMIN_PASSWORD.")
            password = getpass.getpass("Admin password: ")
        timings = ProvisionTimings()
        try:
            tenant = tenant_provision(
                slug=options["slug"],
                name=options["name"] or options["slug"].replace("-", " ").title(),
                admin_email=options["admin_email"],
                admin_username=options["admin_username"],
                admin_password=password,
                require_activation=not options["no_activation"],
                method=options["method"],
                timings=timings,
            )
        except ApplicationError as exc:
            raise CommandError(f"{exc.field or 'error'}: {exc.message}") from exc
        domain = tenant.domains.get(is_primary=True).domain
        self.stdout.write(
            self.style.SUCCESS(
                f"Tenant '{tenant.slug}' ready at {domain} (schema {tenant.schema_name}) in "
                f"{timings.provision * 1000:.0f} ms (+{timings.password_hash * 1000:.0f} ms password hashing)."
            )
        )
