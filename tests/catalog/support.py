"""Helpers shared by the catalog tests: users, groups, products and clients in
a tenant's schema, created with the ORM; every request goes through the real
middleware, DRF and a real JWT from the login endpoint."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import Group, Permission
from django.utils import timezone
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from accounts.models import User
from catalog.models import Product
from tests.conftest import ACME, PASSWORD, DemoTenant, authed, client_for, jwt_login

PRODUCTS = "/api/products/"
BULK = "/api/products/permissions/bulk/"
AUDIT = "/api/audit/"

_seq = itertools.count(1)


def detail_url(pk: Any) -> str:
    return f"{PRODUCTS}{pk}/"


def grants_url(pk: Any) -> str:
    return f"{PRODUCTS}{pk}/permissions/"


def access_url(pk: Any, user: Any = None) -> str:
    return f"{PRODUCTS}{pk}/access/" + ("" if user is None else f"?user={user}")


def make_user(tenant: DemoTenant = ACME, *, prefix: str = "user", perms: tuple[str, ...] = ()) -> User:
    """A user of ``tenant`` holding the given catalog model permissions directly."""
    n = next(_seq)
    with schema_context(tenant.slug):
        user = User.objects.create_user(
            email=f"{prefix}{n}@{tenant.slug}.test", username=f"{prefix}{n}", password=PASSWORD
        )
        if perms:
            user.user_permissions.add(*catalog_perms(*perms))
        return user


def make_group(
    tenant: DemoTenant = ACME, *, name: str | None = None, perms: tuple[str, ...] = (), members: tuple[User, ...] = ()
) -> Group:
    with schema_context(tenant.slug):
        group = Group.objects.create(name=name or f"group{next(_seq)}")
        if perms:
            group.permissions.add(*catalog_perms(*perms))
        if members:
            group.user_set.add(*members)
        return group


def catalog_perms(*codenames: str) -> list[Permission]:
    """Must be called inside the tenant's schema."""
    perms = list(Permission.objects.filter(content_type__app_label="catalog", codename__in=codenames))
    assert len(perms) == len(set(codenames)), codenames
    return perms


def make_product(
    tenant: DemoTenant = ACME,
    *,
    owner: User | None = None,
    published: bool = False,
    name: str | None = None,
    **extra: Any,
) -> Product:
    with schema_context(tenant.slug):
        return Product.objects.create(
            name=name or f"product {next(_seq)}",
            price=extra.pop("price", Decimal("9.99")),
            owner=owner,
            is_published=published,
            published_at=timezone.now() if published else None,
            **extra,
        )


def admin_id(tenant: DemoTenant = ACME) -> int:
    with schema_context(tenant.slug):
        return User.objects.get(email__iexact=tenant.admin_email).pk


def client_of(email: str, tenant: DemoTenant = ACME) -> APIClient:
    return authed(tenant.host, jwt_login(tenant.host, email)["access"])


def admin_client(tenant: DemoTenant = ACME) -> APIClient:
    return client_of(tenant.admin_email, tenant)


def user_client(user: User, tenant: DemoTenant = ACME) -> APIClient:
    return client_of(user.email, tenant)


def anon(tenant: DemoTenant = ACME) -> APIClient:
    return client_for(tenant.host)


def error(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    """The API's one error shape: JSON with a detail and a code; for a
    validation error, ``errors`` naming ``field``."""
    assert response.status_code == status, (response.status_code, response.content)
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body: dict[str, Any] = response.json()
    assert body.get("detail"), body
    assert body.get("code"), body
    if field is not None:
        assert field in body.get("errors", {}), body
    return body


def list_ids(client: APIClient, query: str = "") -> list[int]:
    """Every product id the caller's list shows (all pages)."""
    ids: list[int] = []
    url: str | None = f"{PRODUCTS}?page_size=200{'&' + query if query else ''}"
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        ids.extend(item["id"] for item in body["results"])
        url = body["next"]
    return ids
