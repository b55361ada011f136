"""The grant rule (accounts.roles: nobody grants what they do not hold, here
on the product itself) enforced on every path that writes a product grant row
one at a time: guardian's ``assign_perm`` and its admin pages, the shell.
``catalog.services.grants_change`` writes in bulk (no signals) and checks the
same rule itself."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import pre_save

from accounts.audit.recording import current_actor
from accounts.roles import RoleRefused, is_superuser, register_group_grants_check
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


def check_group_grants(actor: Any, group_ids: list[int]) -> None:
    """Joining groups gives their object grants on products: only who holds
    them may put someone there (accounts.roles.check_may_join asks this for
    the membership guard and for invitations). One query for the grants,
    one per (set of permissions, codename) for the check."""
    if actor is None or is_superuser(actor):
        return
    by_product: dict[int, set[str]] = {}
    rows = ProductGroupObjectPermission.objects.filter(group_id__in=group_ids).values_list(
        "content_object_id", "permission__codename"
    )
    for product_id, codename in rows:
        by_product.setdefault(product_id, set()).add(codename)
    alike: dict[tuple[str, ...], list[int]] = {}
    for product_id, codenames in by_product.items():
        alike.setdefault(tuple(sorted(codenames)), []).append(product_id)
    for codenames_, product_ids in alike.items():
        if not policy.holds_on_all(actor, product_ids, list(codenames_)):
            raise RoleRefused(
                "These groups hold object permissions on products that you do not hold yourself "
                f"({', '.join(codenames_)}): only who holds them may add members."
            )


def connect() -> None:
    for table in (ProductUserObjectPermission, ProductGroupObjectPermission):
        pre_save.connect(_grant_before_save, sender=table, dispatch_uid=f"catalog.guards.{table._meta.label}")
    pre_save.connect(_product_before_save, sender=Product, dispatch_uid="catalog.guards.product_owner")
    register_group_grants_check(check_group_grants)
