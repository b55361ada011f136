"""The last-superuser rule under concurrency (accounts.roles.check_keeps_a_superuser):
real commits, two connections."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import connection as db_connection
from django_tenants.utils import schema_context

from accounts import services
from accounts.models import User
from accounts.roles import RoleRefused
from tenants.services import tenant_provision
from tests.helpers import BASE, PASSWORD, DemoTenant, make_user


def test_two_concurrent_demotions_of_the_last_two_superusers_leave_one(committed: Callable[[str], None]) -> None:
    """The rule locks the superusers' rows: of two transactions demoting the
    last two at once, the second waits, sees the first, and is refused."""
    committed("duo")
    tenant = tenant_provision(slug="duo", name="Duo", admin_email="one@duo.test", admin_password=PASSWORD)
    duo = DemoTenant("duo", f"duo.{BASE}", "one@duo.test")
    two = make_user(duo, email="two@duo.test", is_staff=True, is_superuser=True)
    with schema_context(tenant.schema_name):
        one = User.objects.get(email="one@duo.test")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def demote(pk: int) -> None:
        try:
            with schema_context(tenant.schema_name):
                user = User.objects.get(pk=pk)
                barrier.wait(timeout=10)
                services.user_update(user=user, is_superuser=False)
            outcomes.append("demoted")
        except RoleRefused:
            outcomes.append("refused")
        finally:
            db_connection.close()

    threads = [threading.Thread(target=demote, args=(pk,)) for pk in (one.pk, two.pk)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["demoted", "refused"]
    with schema_context(tenant.schema_name):
        assert User.objects.filter(is_superuser=True, is_active=True).count() == 1
