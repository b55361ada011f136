"""Audit of object grants made outside catalog.services (Django admin with
guardian's pages, guardian's assign_perm/remove_perm, the shell)."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts import audit
from accounts.models import AuditEntry
from catalog.models import ProductGroupObjectPermission, ProductUserObjectPermission


def grant_entry(row: Any, action: str, product_name: str | None = None) -> dict[str, Any]:
    holder = row.user if isinstance(row, ProductUserObjectPermission) else row.group
    return {
        "action": action,
        **audit.subject(holder),
        "permission": f"catalog.{row.permission.codename}",
        "target_type": "catalog.product",
        "target_id": row.content_object_id,
        "target_repr": product_name or f"product #{row.content_object_id}",
    }


@receiver(post_save, sender=ProductUserObjectPermission)
@receiver(post_save, sender=ProductGroupObjectPermission)
def _granted(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    if created and audit.signals_active():
        audit.record([grant_entry(instance, AuditEntry.Action.OBJECT_GRANT)])


@receiver(post_delete, sender=ProductUserObjectPermission)
@receiver(post_delete, sender=ProductGroupObjectPermission)
def _revoked(sender: Any, instance: Any, **kwargs: Any) -> None:
    if audit.signals_active():
        audit.record([grant_entry(instance, AuditEntry.Action.OBJECT_REVOKE)])
