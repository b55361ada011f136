"""Reads on products and their grants."""

from __future__ import annotations

from typing import Any

from catalog.models import Product, ProductGroupObjectPermission, ProductUserObjectPermission
from core.errors import ApplicationError


def products_by_ids(*, ids: list[int]) -> list[Product]:
    """Every product named, or a 400 naming those that do not exist."""
    wanted = list(dict.fromkeys(ids))
    products = list(Product.objects.filter(pk__in=wanted))
    missing = sorted(set(wanted) - {p.pk for p in products})
    if missing:
        raise ApplicationError(f"No such products: {', '.join(map(str, missing))}.", field="products")
    return products


def product_grants(*, product: Product) -> dict[str, list[dict[str, Any]]]:
    """Who holds which object permission on the product: two queries, whatever the count."""
    users: dict[int, dict[str, Any]] = {}
    for user_id, email, codename in (
        ProductUserObjectPermission.objects.filter(content_object=product)
        .order_by("user__email", "permission__codename")
        .values_list("user_id", "user__email", "permission__codename")
    ):
        users.setdefault(user_id, {"id": user_id, "email": email, "permissions": []})["permissions"].append(codename)
    groups: dict[int, dict[str, Any]] = {}
    for group_id, name, codename in (
        ProductGroupObjectPermission.objects.filter(content_object=product)
        .order_by("group__name", "permission__codename")
        .values_list("group_id", "group__name", "permission__codename")
    ):
        groups.setdefault(group_id, {"id": group_id, "name": name, "permissions": []})["permissions"].append(codename)
    return {"users": list(users.values()), "groups": list(groups.values())}
