"""What the tests share: the demo tenants, one user maker, one client maker,
one error asserter, and the product API's URLs.

Every client goes through the real middleware, DRF and simplejwt; a logged-in
client carries an access token from the real login endpoint. Users, groups
and products are made by the tenant-aware factories (tests/factories.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django_tenants.utils import schema_context
from psycopg import sql
from rest_framework.test import APIClient

from accounts.models import User
from catalog.models import Product
from mail.models import OutboxEmail
from tenants.db import connection
from tests import factories
from tests.factories import PASSWORD, DemoTenant

__all__ = ["PASSWORD", "DemoTenant"]

BASE = settings.TENANT_BASE_DOMAIN
OPERATOR_EMAIL = "operator@platform.test"

ACME = DemoTenant("acme", f"acme.{BASE}", "admin@acme.test")
GLOBEX = DemoTenant("globex", f"globex.{BASE}", "admin@globex.test")
# The public host: the platform operators' "tenant" (schema public).
PLATFORM = DemoTenant("public", BASE, OPERATOR_EMAIL)

PRODUCTS = "/api/products/"
BULK = "/api/products/permissions/bulk/"
AUDIT = "/api/audit/"


# --- users, groups, products -----------------------------------------------------------------


def make_user(
    tenant: DemoTenant = ACME,
    *,
    email: str | None = None,
    prefix: str = "user",
    perms: Iterable[str] = (),
    **fields: Any,
) -> User:
    """A user of ``tenant``, active, with PASSWORD, holding the catalog model
    permissions ``perms`` (codenames) directly. The email defaults to
    ``<prefix><n>@<tenant>.test``; the username to the email's local part;
    any other model field may be given (``id``, ``is_active``, ``is_staff``...)."""
    if email is not None:
        fields["email"] = email
    return cast(User, factories.UserFactory(tenant=tenant, prefix=prefix, catalog_perms=tuple(perms), **fields))


def make_group(
    tenant: DemoTenant = ACME, *, name: str | None = None, perms: Iterable[str] = (), members: Iterable[User] = ()
) -> Group:
    extra = {"name": name} if name is not None else {}
    made = factories.GroupFactory(tenant=tenant, catalog_perms=tuple(perms), members=tuple(members), **extra)
    return cast(Group, made)


def make_product(
    tenant: DemoTenant = ACME, *, owner: User | None = None, published: bool = False, **fields: Any
) -> Product:
    return cast(Product, factories.ProductFactory(tenant=tenant, owner=owner, published=published, **fields))


def catalog_perms(*codenames: str) -> list[Permission]:
    """The catalog permissions with these codenames, in the current schema."""
    return factories.catalog_permissions(codenames)


def user_id(tenant: DemoTenant, email: str) -> int:
    with schema_context(tenant.schema):
        return User.objects.get(email__iexact=email).pk


def admin_id(tenant: DemoTenant = ACME) -> int:
    return user_id(tenant, tenant.admin_email)


# --- clients ---------------------------------------------------------------------------------


def api_client(
    where: DemoTenant | str = ACME,
    *,
    user: User | str | None = None,
    password: str = PASSWORD,
    token: str | None = None,
    scheme: str = "Bearer",
) -> APIClient:
    """A client of ``where``'s host (a demo tenant, or any Host header).
    Logged in as ``user`` (a User or an email) through the real login
    endpoint, or carrying ``token``; anonymous with neither."""
    host = where if isinstance(where, str) else where.host
    client = APIClient(HTTP_HOST=host)
    if user is not None:
        token = jwt_login(host, user if isinstance(user, str) else user.email, password)["access"]
    if token is not None:
        client.credentials(HTTP_AUTHORIZATION=f"{scheme} {token}")
    return client


def admin_client(tenant: DemoTenant = ACME) -> APIClient:
    """``api_client`` logged in as the tenant's first admin (the operator on PLATFORM)."""
    return api_client(tenant, user=tenant.admin_email)


def jwt_login(where: DemoTenant | str, email: str, password: str = PASSWORD) -> dict[str, str]:
    """The access and refresh pair the login endpoint gives."""
    response = api_client(where).post("/api/auth/jwt/create/", {"email": email, "password": password}, format="json")
    assert response.status_code == 200, response.content
    pair: dict[str, str] = response.json()
    return pair


def csrf_token(page: Any) -> str:
    """The CSRF token of a Django admin form page."""
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    assert found is not None, page.content
    return found.group(1)


def admin_site_login(tenant: DemoTenant, email: str, password: str = PASSWORD) -> Client:
    """A browser-like Django test client logged into the tenant's Django admin
    through its login form (a session cookie, not a JWT)."""
    browser = Client(HTTP_HOST=tenant.host)
    token = csrf_token(browser.get("/admin/login/"))
    browser.post("/admin/login/", {"username": email, "password": password, "csrfmiddlewaretoken": token})
    return browser


# --- answers ---------------------------------------------------------------------------------


def assert_error(response: Any, status: int, *, field: str | None = None, code: str | None = None) -> dict[str, Any]:
    """The API's one error shape: JSON with a non-empty ``detail`` and ``code``
    (``code`` as given); for a validation error, ``errors`` naming ``field``
    with a non-empty list of messages."""
    assert response.status_code == status, (response.status_code, response.content)
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("detail"), str), body
    assert body["detail"], body
    assert isinstance(body.get("code"), str), body
    assert body["code"], body
    if code is not None:
        assert body["code"] == code, body
    if status == 400 and body.get("errors"):
        # The one rule for detail (core/handlers.py): every field of errors named.
        fields = [name for name in body["errors"] if name != "non_field_errors"]
        expected = f"Invalid input: {', '.join(fields)}." if fields else "Invalid input."
        assert body["detail"] == expected, body
    if field is not None:
        assert field in body.get("errors", {}), body
        messages = body["errors"][field]
        if isinstance(messages, dict):
            # A bad item of a list field: DRF's messages per item index
            # ({"products": {"0": [...]}}), passed through as they are today.
            assert messages, body
            assert all(index.isdigit() for index in messages), body
            messages = [m for item in messages.values() for m in item]
        assert isinstance(messages, list), body
        assert messages, body
        assert all(isinstance(m, str) and m for m in messages), body
    return body


def assert_throttled(response: Any) -> None:
    """429 in the error shape, with a positive whole-second Retry-After."""
    assert_error(response, 429, code="throttled")
    retry = response.headers.get("Retry-After")
    assert retry is not None, dict(response.headers)
    assert retry.isdigit(), retry
    assert int(retry) > 0, retry


# --- the product API -------------------------------------------------------------------------


def detail_url(pk: Any) -> str:
    return f"{PRODUCTS}{pk}/"


def grants_url(pk: Any) -> str:
    return f"{PRODUCTS}{pk}/permissions/"


def access_url(pk: Any, user: Any = None) -> str:
    return f"{PRODUCTS}{pk}/access/" + ("" if user is None else f"?user={user}")


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


# --- the whole API: what exists to aim at, what was written -----------------------------------


@dataclass(frozen=True)
class Targets:
    """Rows that exist, for the tests that call every operation of the
    OpenAPI schemas (tests/test_fuzz.py, tests/test_hostile_input.py): ids by
    the collection a path parameter names (the path segment before it:
    ``/api/products/{id}/`` -> "products"), and the plain callers made."""

    ids: dict[str, list[Any]]
    user: User  # acme's plain user (owns the first product)
    staff: User  # a plain operator: staff of the public schema, not superuser


_PATH_PARAMETER = re.compile(r"([^/{}]+)/\{(\w+)\}")


def path_parameters(path: str) -> dict[str, str]:
    """``{name: collection}`` of a schema path's parameters."""
    return {name: collection for collection, name in _PATH_PARAMETER.findall(path)}


def make_targets() -> Targets:
    """In acme: a plain user, a group, a customer, an invitation (and its
    email), three products (the user's, a published one, a private one); a
    plain operator. Made through the API where the API makes them."""
    user = make_user(ACME, email="plain@acme.test")
    staff = make_user(PLATFORM, email="staff@platform.test", is_staff=True)
    admin = admin_client(ACME)
    made = {
        "groups": admin.post("/api/groups/", {"name": "Targets"}, format="json"),
        "customers": admin.post("/api/customers/", {"user": user.pk}, format="json"),
        "invitations": admin.post("/api/invitations/", {"email": "invitee@acme.test"}, format="json"),
    }
    for response in made.values():
        assert response.status_code == 201, response.content
    with schema_context("public"):
        emails = list(OutboxEmail.objects.order_by("pk").values_list("pk", flat=True)[:3])
    assert emails, "the invitation queued an email"
    ids: dict[str, list[Any]] = {collection: [response.json()["id"]] for collection, response in made.items()}
    ids |= {
        "products": [make_product(owner=user).pk, make_product(published=True).pk, make_product().pk],
        "users": [user.pk, admin_id(ACME)],
        "emails": emails,
        "operators": [staff.pk, user_id(PLATFORM, OPERATOR_EMAIL)],
        "tenants": [ACME.slug, GLOBEX.slug],
        "domains": [ACME.host, GLOBEX.host],
    }
    return Targets(ids=ids, user=user, staff=staff)


def table_rows(*schemas: str) -> dict[tuple[str, str], int]:
    """The exact row count (count(*)) of every table of the schemas, in one
    statement: ``{(schema, table): rows}``."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname = ANY(%s) ORDER BY 1, 2", [list(schemas)]
        )
        tables = cursor.fetchall()
        counts = sql.SQL(" UNION ALL ").join(
            sql.SQL("SELECT {}, {}, count(*) FROM {}").format(
                sql.Literal(schema), sql.Literal(name), sql.Identifier(schema, name)
            )
            for schema, name in tables
        )
        cursor.execute(counts.as_string())
        return {(schema, name): rows for schema, name, rows in cursor.fetchall()}


def rows_written(*schemas: str) -> dict[tuple[str, str], int]:
    """Per table of the schemas, the rows this transaction inserted, updated
    or deleted so far (pg_stat_xact_user_tables: live, rolled back savepoints
    included), which row counts alone miss (an UPDATE)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT schemaname, relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_xact_user_tables"
            " WHERE schemaname = ANY(%s)",
            [list(schemas)],
        )
        return {(schema, name): written for schema, name, written in cursor.fetchall()}
