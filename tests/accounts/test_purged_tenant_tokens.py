"""A purged tenant's tokens die with it, even when its slug comes back.

Apart from tests/accounts/test_jwt_binding.py because it commits (no test
transaction around it): in production a purge is its own transaction, and on
Citus it must be (deploy/README.md, "Citus").
"""

from __future__ import annotations

from collections.abc import Callable

from django_tenants.utils import schema_context

from tenants.models import Tenant
from tenants.services import tenant_provision, tenant_purge
from tests.accounts.test_jwt_binding import claims, me, refresh
from tests.helpers import BASE, PASSWORD, assert_error, jwt_login


def test_tokens_of_a_purged_tenant_die_with_it_even_if_the_slug_comes_back(committed: Callable[[str], None]) -> None:
    """Purge frees the slug; the next tenant with that slug has the same schema
    name and user ids from 1 again. Tokens bind to the tenant row too, which is
    never reused, so the old ones are refused."""
    committed("reborn")
    host = f"reborn.{BASE}"
    tenant_provision(slug="reborn", name="Old", admin_email="boss@reborn.test", admin_password=PASSWORD)
    old = jwt_login(host, "boss@reborn.test")
    assert me(host, old["access"]).status_code == 200

    with schema_context("public"):
        tenant_purge(tenant=Tenant.objects.get(slug="reborn"), confirm="reborn")
        tenant_provision(slug="reborn", name="New owner", admin_email="boss@reborn.test", admin_password=PASSWORD)
    assert claims(jwt_login(host, "boss@reborn.test")["access"])["user_id"] == claims(old["access"])["user_id"]

    assert_error(me(host, old["access"]), 401)
    assert_error(refresh(host, old["refresh"]), 401)
    fresh = jwt_login(host, "boss@reborn.test")
    assert me(host, fresh["access"]).status_code == 200
