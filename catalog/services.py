"""Writes on products and their object grants."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.utils import timezone

from accounts import invitation_grants
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


def grants_check(*, actor: User | None, codenames: Iterable[str], products: list[Product]) -> None:
    """What ``actor`` may grant: only what it holds on every product itself
    (accounts.roles), superusers and the system (None) excepted; else
    RoleRefused. ``grants_change`` asks this before every grant, and so do
    invitations carrying product grants, when made and when accepted."""
    if actor is None or is_superuser(actor):
        return
    if not policy.holds_on_all(actor, [p.pk for p in products], list(codenames)):
        raise RoleRefused("You can only grant permissions you hold on these products yourself.")


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
    if grant:
        grants_check(actor=actor, codenames=codenames, products=products)
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


# --- object grants carried by invitations (accounts.invitation_grants) ---------------------

INVITATION_MODEL = "catalog.product"
_INVITABLE = tuple(policy.CODENAMES[action] for action in policy.OBJECT_ACTIONS)


def _invitation_codenames(values: Iterable[Any]) -> list[str]:
    codenames = []
    for value in values:
        codename = str(value).removeprefix(f"{policy.APP_LABEL}.")
        if codename not in _INVITABLE:
            raise ApplicationError(
                f"Unknown product permission '{value}'; use one of {', '.join(_INVITABLE)}.",
                field=invitation_grants.FIELD,
            )
        codenames.append(codename)
    return codenames


def invitation_grants_check(actor: User | None, grants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Invitations' grants on products (``{"model", "id", "permissions"}``):
    the products exist, the permissions are object permissions of products,
    and ``actor`` may grant them (``grants_check``). Entries of one product
    are merged; returned as stored, ordered by product id."""
    wanted: dict[int, list[str]] = {}
    for grant in grants:
        held = wanted.setdefault(int(grant["id"]), [])
        held.extend(c for c in _invitation_codenames(grant["permissions"]) if c not in held)
    products = Product.objects.in_bulk(list(wanted))
    missing = sorted(set(wanted) - set(products))
    if missing:
        raise ApplicationError(f"No such product: {', '.join(map(str, missing))}.", field=invitation_grants.FIELD)
    alike: dict[tuple[str, ...], list[Product]] = {}  # one check per set of permissions
    for pk, codenames in wanted.items():
        alike.setdefault(tuple(sorted(codenames)), []).append(products[pk])
    for codenames_, products_ in alike.items():
        grants_check(actor=actor, codenames=codenames_, products=products_)
    return [{"model": INVITATION_MODEL, "id": pk, "permissions": sorted(wanted[pk])} for pk in sorted(wanted)]


def invitation_grants_apply(actor: User | None, user: User, grants: list[dict[str, Any]]) -> None:
    """Grant the (checked) entries to ``user`` through ``grants_change``: the
    same rule against ``actor`` and the same audit entries. A product deleted
    since is an ApplicationError naming ``object_grants``."""
    with transaction.atomic():
        ids = [int(grant["id"]) for grant in grants]
        products = {p.pk: p for p in Product.objects.select_for_update().filter(pk__in=ids).order_by("pk")}
        missing = sorted(set(ids) - set(products))
        if missing:
            raise ApplicationError(f"No such product: {', '.join(map(str, missing))}.", field=invitation_grants.FIELD)
        for grant in grants:
            grants_change(
                actor=actor,
                grant=True,
                codenames=grant["permissions"],
                products=[products[int(grant["id"])]],
                user_ids=[user.pk],
            )
