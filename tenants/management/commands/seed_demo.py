"""Idempotent demo data: one platform operator, tenants acme and globex with their admins.

Credentials come from the environment when set (DEMO_OPERATOR_EMAIL,
DEMO_OPERATOR_PASSWORD, DEMO_ADMIN_PASSWORD), otherwise from the defaults
below, and are printed. Existing rows are left as they are.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from accounts.models import User
from tenants.db import connection
from tenants.models import Tenant
from tenants.services import primary_domain_for, tenant_provision

DEFAULT_PASSWORD = "demo-Passw0rd!"


class Command(BaseCommand):
    help = "Create the demo operator and the tenants acme and globex (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        connection.set_schema_to_public()
        port = os.environ.get("PORT", "8000")
        base = settings.TENANT_BASE_DOMAIN
        op_email = os.environ.get("DEMO_OPERATOR_EMAIL", "operator@example.com")
        op_password = os.environ.get("DEMO_OPERATOR_PASSWORD", DEFAULT_PASSWORD)
        admin_password = os.environ.get("DEMO_ADMIN_PASSWORD", DEFAULT_PASSWORD)

        lines = []
        if User.objects.filter(email__iexact=op_email).exists():
            lines.append(f"operator  http://{base}:{port}/  {op_email}  (exists; password unchanged)")
        else:
            User.objects.create_superuser(email=op_email, username="operator", password=op_password)
            lines.append(f"operator  http://{base}:{port}/  {op_email}  {op_password}")

        for slug, name in (("acme", "Acme Corporation"), ("globex", "Globex Corporation")):
            email = f"admin@{slug}.example.com"
            host = primary_domain_for(slug)
            if Tenant.objects.filter(slug=slug).exists():
                lines.append(f"{slug:<9} http://{host}:{port}/  {email}  (exists; password unchanged)")
                continue
            tenant_provision(
                slug=slug, name=name, admin_email=email, admin_password=admin_password, admin_username="admin"
            )
            lines.append(f"{slug:<9} http://{host}:{port}/  {email}  {admin_password}")

        self.stdout.write(self.style.SUCCESS("Demo data ready:"))
        for line in lines:
            self.stdout.write("  " + line)
