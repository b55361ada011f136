"""The grant rule (accounts.roles: nobody grants what they do not hold, here
on the product itself) enforced on every path that writes a product grant row
one at a time: guardian's ``assign_perm`` and its admin pages, the shell.
``catalog.services.grants_change`` writes in bulk (no signals) and checks the
same rule itself."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import pre_save

from accounts.audit.recording import current_actor
from accounts.roles import RoleRefused, is_superuser
from catalog import policy
from catalog.models import ProductGroupObjectPermission, ProductUserObjectPermission


def _grant_before_save(sender: Any, instance: Any, **kwargs: Any) -> None:
    if instance.pk is not None:  # an existing row saved again grants nothing new
        return
    actor = current_actor()
    if actor is None or is_superuser(actor):
        return
    if not policy.may_grant(actor, instance.content_object, [instance.permission.codename]):
        raise RoleRefused("You can only grant permissions you hold on this product yourself.")


def connect() -> None:
    for table in (ProductUserObjectPermission, ProductGroupObjectPermission):
        pre_save.connect(_grant_before_save, sender=table, dispatch_uid=f"catalog.guards.{table._meta.label}")
