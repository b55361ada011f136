"""Reads of the outbox. A tenant's admins see their tenant's rows only; operators see all."""

from __future__ import annotations

from django.db.models import QuerySet

from mail.models import OutboxEmail


def emails_of_tenant(tenant_id: int | None) -> QuerySet[OutboxEmail]:
    """The rows of one tenant (None: the public host's own mail), newest first."""
    if tenant_id is None:
        return OutboxEmail.objects.filter(tenant__isnull=True)
    return OutboxEmail.objects.filter(tenant_id=tenant_id)


def emails_of_fleet() -> QuerySet[OutboxEmail]:
    return OutboxEmail.objects.select_related("tenant")
