"""Writes on products and their object grants."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.utils import timezone

from accounts.audit import entries
from accounts.audit.recording import record, recorded_by_caller
from accounts.models import User
from accounts.roles import RoleRefused, is_superuser
from catalog import policy
from catalog.models import Product, ProductGroupObjectPermission, ProductUserObjectPermission
from core.errors import ApplicationError


def product_create(*, owner: User | None, name: str, price: Decimal, description: str = "") -> Product:
    return Product.objects.create(owner=owner, name=name, price=price, description=description)


def product_update(*, product: Product, **fields: Any) -> Product:
    for name, value in fields.items():
        setattr(product, name, value)
    product.save()
    return product


def product_delete(*, product: Product) -> None:
    """Delete the product; its grants go with it (ON DELETE CASCADE), each
    logged as revoked, in one insert."""
    rows = [
        *ProductUserObjectPermission.objects.filter(content_object=product).select_related("user", "permission"),
        *ProductGroupObjectPermission.objects.filter(content_object=product).select_related("group", "permission"),
    ]
    with transaction.atomic(), recorded_by_caller():
        record(entries.object_permission_changed(row, granted=False, target_repr=product.name) for row in rows)
        product.delete()


def product_publish(*, product: Product) -> Product:
    if not product.is_published:
        product.is_published = True
        product.published_at = timezone.now()
        product.save(update_fields=["is_published", "published_at", "updated_at"])
    return product


def product_unpublish(*, product: Product) -> Product:
    if product.is_published:
        product.is_published = False
        product.published_at = None
        product.save(update_fields=["is_published", "published_at", "updated_at"])
    return product


# --- object grants -------------------------------------------------------------------------


def _permissions(codenames: Iterable[str]) -> dict[str, Permission]:
    found = {
        p.codename: p
        for p in Permission.objects.filter(
            content_type__app_label=policy.APP_LABEL, content_type__model="product", codename__in=set(codenames)
        )
    }
    missing = set(codenames) - set(found)
    if missing:
        raise ApplicationError(f"Unknown permission(s): {', '.join(sorted(missing))}.", field="permissions")
    return found


def _existing(model: Any, ids: list[int], field: str) -> dict[int, Any]:
    objects = {o.pk: o for o in model.objects.filter(pk__in=ids)}
    missing = sorted(set(ids) - set(objects))
    if missing:
        raise ApplicationError(f"No such {field[:-1]}: {', '.join(map(str, missing))}.", field=field)
    return objects


def grants_change(
    *,
    actor: User | None,
    grant: bool,
    codenames: Iterable[str],
    products: list[Product],
    user_ids: Iterable[int] = (),
    group_ids: Iterable[int] = (),
) -> dict[str, int]:
    """Grant or revoke ``codenames`` on every product for every user and group.

    Idempotent: granting what is held, or revoking what is not, changes
    nothing and is not logged. Both are audited here, in one insert each, with
    the products' names: grants are written in bulk (no signals), and the
    signals of the revoking delete are held back (``recorded_by_caller``).

    ``actor`` grants only what it holds on every product, superusers and the
    system (None) excepted (accounts.roles).
    """
    codenames = list(dict.fromkeys(codenames))
    perms = _permissions(codenames)
    users = _existing(User, list(dict.fromkeys(user_ids)), "users")
    groups = _existing(Group, list(dict.fromkeys(group_ids)), "groups")
    product_ids = [p.pk for p in products]
    checked = grant and actor is not None and not is_superuser(actor)
    if checked and not policy.holds_on_all(actor, product_ids, codenames):
        raise RoleRefused("You can only grant permissions you hold on these products yourself.")
    names = {p.pk: p.name for p in products}
    perm_ids = [p.pk for p in perms.values()]
    changed = 0
    with transaction.atomic():
        # Serialise grant changes per product: what is read as held below is
        # then what the writes change, so the audit log records each change once.
        list(Product.objects.select_for_update().filter(pk__in=product_ids).order_by("pk").values_list("pk"))
        model: Any
        for model, holder_field, holders in (
            (ProductUserObjectPermission, "user", users),
            (ProductGroupObjectPermission, "group", groups),
        ):
            if not holders:
                continue
            rows = model.objects.filter(
                **{f"{holder_field}_id__in": list(holders)},
                permission_id__in=perm_ids,
                content_object_id__in=product_ids,
            )
            if grant:
                held = set(rows.values_list(f"{holder_field}_id", "permission_id", "content_object_id"))
                new = [
                    model(**{holder_field: holders[h]}, permission=p, content_object_id=pid)
                    for h in holders
                    for p in perms.values()
                    for pid in product_ids
                    if (h, p.pk, pid) not in held
                ]
                model.objects.bulk_create(new, ignore_conflicts=True)
                record(
                    entries.object_permission_changed(row, granted=True, target_repr=names[row.content_object_id])
                    for row in new
                )
                changed += len(new)
            else:
                doomed = list(rows.select_related(holder_field, "permission"))
                with recorded_by_caller():
                    record(
                        entries.object_permission_changed(row, granted=False, target_repr=names[row.content_object_id])
                        for row in doomed
                    )
                    changed += model.objects.filter(pk__in=[row.pk for row in doomed]).delete()[0]
    return {"changed": changed}
