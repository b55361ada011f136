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
from catalog.models import Product, ProductGroupObjectPermission, ProductUserObjectPermission


def _grant_before_save(sender: Any, instance: Any, **kwargs: Any) -> None:
    if instance.pk is not None:  # an existing row saved again grants nothing new
        return
    actor = current_actor()
    if actor is None or is_superuser(actor):
        return
    if not policy.may_grant(actor, instance.content_object, [instance.permission.codename]):
        raise RoleRefused("You can only grant permissions you hold on this product yourself.")


def _product_before_save(sender: Any, instance: Product, **kwargs: Any) -> None:
    """Making someone a product's owner gives it what ownership gives (view,
    change, delete): only who holds those on the product may (the Django
    admin's owner field), superusers excepted. Creating a product one owns
    oneself is what ``add_product`` is for."""
    actor = current_actor()
    if actor is None or is_superuser(actor):
        return
    if instance.pk is None:
        if instance.owner_id not in (None, actor.pk) and not all(
            policy.has_model_level(actor, action) for action in sorted(policy.OWNER_ACTIONS)
        ):
            raise RoleRefused("You can only make yourself the owner of a product you create.")
        return
    if instance.owner_id is not None and instance.owner_id != instance.stored_owner_id():
        codenames = [policy.CODENAMES[action] for action in sorted(policy.OWNER_ACTIONS)]
        if not policy.holds_on_all(actor, [instance.pk], codenames):
            raise RoleRefused("Only who may view, change and delete a product may give it an owner.")


def connect() -> None:
    for table in (ProductUserObjectPermission, ProductGroupObjectPermission):
        pre_save.connect(_grant_before_save, sender=table, dispatch_uid=f"catalog.guards.{table._meta.label}")
    pre_save.connect(_product_before_save, sender=Product, dispatch_uid="catalog.guards.product_owner")
