"""Celery tasks of the outbox. tenant-schemas-celery runs each in the schema
named by its ``_schema_name`` header; the tenant's row id travels as an
argument and must match, because a schema name is reused when a purged
tenant's slug is provisioned again (docs/ARCHITECTURE.md, "Email")."""

from __future__ import annotations

import logging

from celery import shared_task
from django_tenants.utils import get_public_schema_name

from mail import services
from tenants.db import connection

logger = logging.getLogger(__name__)


def _current_tenant_id() -> int | None:
    if connection.schema_name == get_public_schema_name():
        return None
    tenant = getattr(connection, "tenant", None)
    return getattr(tenant, "pk", None)


@shared_task(name=services.DELIVER_TASK, acks_late=True, ignore_result=True)
def deliver(outbox_id: int, tenant_id: int | None) -> str:
    if _current_tenant_id() != tenant_id:
        logger.warning(
            "email %s was queued for tenant %s but runs in schema %s: dropped",
            outbox_id,
            tenant_id,
            connection.schema_name,
        )
        return "tenant_mismatch"
    return services.deliver(outbox_id, tenant_id=tenant_id)


@shared_task(name="mail.sweep", ignore_result=True)
def sweep() -> int:
    return services.sweep()


@shared_task(name="mail.prune", ignore_result=True)
def prune() -> int:
    return services.prune()
