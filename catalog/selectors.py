"""Reads on products and their grants."""

from __future__ import annotations

from typing import Any

from catalog.models import Product, ProductGroupObjectPermission, ProductUserObjectPermission


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
