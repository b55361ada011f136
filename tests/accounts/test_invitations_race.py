"""Invitations under concurrency (accounts.services.invitation_accept locks
the invitation's row): real commits, two connections."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection as db_connection
from django_tenants.utils import schema_context

from accounts import emails, services
from accounts.models import AuditEntry, User
from core.errors import ApplicationError
from mail.services import wait_for_pending
from tenants.services import tenant_provision
from tests.accounts.test_invitations import LINK
from tests.helpers import PASSWORD


def test_two_concurrent_acceptances_make_one_account(committed: Callable[[str], None], mailoutbox: list[Any]) -> None:
    """The invitation's row is locked first: of two acceptances at once, one
    makes the account and the other finds the invitation spent."""
    committed("invrace")
    tenant = tenant_provision(slug="invrace", name="Invrace", admin_email="admin@invrace.test", admin_password=PASSWORD)
    links = emails.LinkBase(scheme="http", port="")
    with schema_context(tenant.schema_name):
        admin = User.objects.get(email="admin@invrace.test")
        services.invitation_create(tenant=tenant, links=links, inviter=admin, email="race@invrace.test")
    wait_for_pending()
    (message,) = [m for m in mailoutbox if m.to == ["race@invrace.test"]]
    token = LINK.search(message.body)["token"]  # type: ignore[index]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def take(username: str) -> None:
        try:
            with schema_context(tenant.schema_name):
                barrier.wait(timeout=10)
                services.invitation_accept(
                    tenant=tenant, links=links, token=token, username=username, password=PASSWORD
                )
            outcomes.append("accepted")
        except ApplicationError as exc:
            outcomes.append(exc.code)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=take, args=(name,)) for name in ("racer_one", "racer_two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    wait_for_pending()
    assert sorted(outcomes) == ["accepted", "invalid_token"]
    with schema_context(tenant.schema_name):
        assert User.objects.filter(email__iexact="race@invrace.test").count() == 1
        assert AuditEntry.objects.filter(action="invitation.accept").count() == 1
