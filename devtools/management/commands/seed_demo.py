"""Idempotent demo data: one platform operator, tenants acme and globex with their admins.

Credentials come from the environment when set (DEMO_OPERATOR_EMAIL,
DEMO_OPERATOR_PASSWORD, DEMO_ADMIN_PASSWORD), otherwise from the defaults
below, and are printed. Existing rows are left as they are. Everything is made
through the services the API uses (so it is audited and validated alike).
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand
from django_tenants.utils import tenant_context

from accounts import services as account_services
from accounts.models import User
from catalog import services as catalog_services
from catalog.models import Product
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
            account_services.user_create(
                email=op_email, username="operator", password=op_password, is_staff=True, is_superuser=True
            )
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

        acme = Tenant.objects.get(slug="acme")
        with tenant_context(acme):
            john, created = _seed_catalog(admin_password)
        shown = admin_password if created else "(exists; password unchanged)"
        lines.append(f"acme user http://{primary_domain_for('acme')}:{port}/  {john}  {shown}  in ProductManagers")
        connection.set_schema_to_public()

        self.stdout.write(self.style.SUCCESS("Demo data ready:"))
        for line in lines:
            self.stdout.write("  " + line)


def _seed_catalog(password: str) -> tuple[str, bool]:
    """The seed's example in acme: john_doe in ProductManagers (view, change,
    publish products), and two products, one published. Idempotent."""
    wanted = set(
        Permission.objects.filter(
            content_type__app_label="catalog",
            codename__in=["view_product", "change_product", "can_publish_product"],
        )
    )
    email = "john_doe@acme.example.com"
    john = User.objects.filter(email__iexact=email).first()
    created = john is None
    if john is None:
        john = account_services.user_create(email=email, username="john_doe", password=password)
    group = Group.objects.filter(name="ProductManagers").first()
    if group is None:
        account_services.group_create(name="ProductManagers", permissions=wanted, users=[john])
    else:
        account_services.group_update(
            group=group, permissions=set(group.permissions.all()) | wanted, users=set(group.user_set.all()) | {john}
        )
    admin = User.objects.filter(is_superuser=True).order_by("id").first()
    if not Product.objects.exists():
        anvil = catalog_services.product_create(owner=admin, name="Anvil", price=Decimal("99.00"))
        catalog_services.product_publish(product=anvil)
        catalog_services.product_create(owner=admin, name="Rocket skates", price=Decimal("249.50"))
    return email, created
