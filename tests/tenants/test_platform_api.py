"""The platform API (``/api/platform/tenants/``) on the public host, end to end:
real requests through the tenant middleware, real schemas behind them."""

from __future__ import annotations

import functools
import io
import re
import time
from datetime import datetime
from typing import Any

import pytest
from django.core import checks
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from accounts import emails
from accounts.models import User
from tenants import cache as tenant_cache
from tenants import citus
from tenants.db import connection
from tenants.models import Domain, Tenant
from tenants.services import tenant_provision
from tests.helpers import (
    ACME,
    BASE,
    GLOBEX,
    PASSWORD,
    PLATFORM,
    admin_client,
    api_client,
    assert_error,
    jwt_login,
    make_user,
)

URL = "/api/platform/tenants/"


def detail(slug: str) -> str:
    return f"{URL}{slug}/"


def domains_url(slug: str) -> str:
    return f"{URL}{slug}/domains/"


def schema_names() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace")
        return {name for (name,) in cursor.fetchall()}


def schema_exists(schema: str) -> bool:
    return schema in schema_names()


def new_tenant_payload(slug: str, /, **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "slug": slug,
        "name": f"{slug.title()} Inc.",
        "admin_email": f"owner@{slug}.test" if re.fullmatch(r"[a-z][a-z0-9-]*[a-z0-9]", slug) else "owner@example.test",
        "admin_password": PASSWORD,
    }
    payload.update(overrides)
    return payload


def provision(slug: str) -> Tenant:
    return tenant_provision(slug=slug, name=slug.title(), admin_email=f"owner@{slug}.test", admin_password=PASSWORD)


@functools.cache
def documented_tenant_fields() -> frozenset[str]:
    """The properties of the ``Tenant`` component of the public host's OpenAPI
    schema (read once per run): what the platform API documents a tenant as."""
    response = api_client(BASE).get("/api/schema/", {"format": "json"})
    assert response.status_code == 200, response.content
    fields = frozenset(response.json()["components"]["schemas"]["Tenant"]["properties"])
    assert fields, "the schema documents no tenant field"
    return fields


def assert_documented_tenant(body: dict[str, Any]) -> None:
    """A tenant answer has exactly the documented fields, and no password and
    no admin details among them."""
    assert set(body) == documented_tenant_fields(), sorted(set(body) ^ documented_tenant_fields())
    assert not [key for key in body if "password" in key.lower() or "admin" in key.lower()], sorted(body)


@pytest.fixture
def unchanged(db: None) -> Any:
    """Asserts, at the end of the test, that no tenant row and no schema appeared."""
    tenants = set(Tenant.objects.values_list("slug", flat=True))
    schemas = schema_names()
    yield
    connection.set_schema_to_public()
    assert set(Tenant.objects.values_list("slug", flat=True)) == tenants
    assert schema_names() == schemas


# --- who may call it ------------------------------------------------------------------------------------------


def test_anonymous_is_401(db: None) -> None:
    client = api_client(BASE)
    assert_error(client.get(URL), 401, code="not_authenticated")
    assert_error(client.post(URL, new_tenant_payload("anon"), format="json"), 401)
    assert_error(client.get(detail(ACME.slug)), 401)
    assert_error(client.delete(detail(ACME.slug)), 401)
    assert Tenant.objects.get(slug=ACME.slug).is_active


def test_tenant_admin_token_is_refused_on_the_public_host(db: None) -> None:
    access = jwt_login(ACME.host, ACME.admin_email)["access"]
    assert api_client(ACME, token=access).get("/api/auth/users/me/").status_code == 200  # valid where it was issued
    client = api_client(BASE, token=access)
    assert_error(client.get(URL), 401)
    assert_error(client.post(URL, new_tenant_payload("sneaky"), format="json"), 401)
    assert_error(client.delete(detail(GLOBEX.slug)), 401)
    assert not Tenant.objects.filter(slug="sneaky").exists()
    assert Tenant.objects.get(slug=GLOBEX.slug).is_active


def test_tenant_admin_cannot_log_in_on_the_public_host(db: None) -> None:
    response = api_client(BASE).post(
        "/api/auth/jwt/create/", {"email": ACME.admin_email, "password": PASSWORD}, format="json"
    )
    assert_error(response, 401)


def test_non_staff_public_user_is_403(db: None) -> None:
    make_user(PLATFORM, email="clerk@platform.test", username="clerk")
    client = api_client(BASE, token=jwt_login(BASE, "clerk@platform.test")["access"])
    assert_error(client.get(URL), 403, code="permission_denied")
    assert_error(client.post(URL, new_tenant_payload("clerky"), format="json"), 403)
    assert_error(client.patch(detail(ACME.slug), {"name": "Pwned"}, format="json"), 403)
    assert_error(client.post(domains_url(ACME.slug), {"domain": f"x.{BASE}"}, format="json"), 403)
    assert not Tenant.objects.filter(slug="clerky").exists()
    assert Tenant.objects.get(slug=ACME.slug).name == "Acme"


def test_platform_api_is_not_served_on_tenant_hosts(operator_client: APIClient) -> None:
    admin = admin_client(ACME)
    assert_error(admin.get(URL), 404)


# --- list -----------------------------------------------------------------------------------------------------


def test_list_is_paginated_and_hides_the_template(operator_client: APIClient) -> None:
    response = operator_client.get(URL)
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    slugs = [t["slug"] for t in body["results"]]
    assert slugs == sorted(slugs)
    assert {ACME.slug, GLOBEX.slug} <= set(slugs)
    assert "tenant-template" not in slugs
    assert all(t["schema_name"] != "tenant_template" for t in body["results"])
    assert body["count"] == Tenant.objects.filter(is_template=False).count() == len(slugs)

    acme = next(t for t in body["results"] if t["slug"] == ACME.slug)
    assert_documented_tenant(acme)
    assert acme["domains"] == [ACME.host]
    assert acme["schema_name"] == "acme"
    assert acme["is_active"] is True


def test_list_pages_by_page_size(operator_client: APIClient) -> None:
    for slug in ("page-a", "page-b", "page-c"):
        provision(slug)
    first = operator_client.get(f"{URL}?page_size=2").json()
    total = Tenant.objects.filter(is_template=False).count()
    assert first["count"] == total >= 5
    assert len(first["results"]) == 2
    assert "page_size=2" in first["next"]
    assert first["previous"] is None
    seen = [t["slug"] for t in first["results"]]
    page = first
    while page["next"]:
        page = operator_client.get(page["next"]).json()
        seen += [t["slug"] for t in page["results"]]
    assert seen == sorted(Tenant.objects.filter(is_template=False).values_list("slug", flat=True))
    # The same rules as the tenant API's lists: capped at 200, odd sizes fall back, unknown pages 404.
    assert len(operator_client.get(f"{URL}?page_size=500").json()["results"]) == min(total, 200)
    for odd in ("0", "-1", "abc"):
        response = operator_client.get(f"{URL}?page_size={odd}")
        assert response.status_code == 200, response.content
        assert len(response.json()["results"]) == min(total, 50)
    assert_error(operator_client.get(f"{URL}?page=999"), 404)


def test_list_searches_filters_and_orders(operator_client: APIClient) -> None:
    provision("zeta-shop")
    provision("alpha-shop")
    Tenant.objects.filter(slug="zeta-shop").update(name="Zeta Widgets", is_active=False)

    def slugs(query: str) -> list[str]:
        response = operator_client.get(f"{URL}?{query}")
        assert response.status_code == 200, response.content
        return [t["slug"] for t in response.json()["results"]]

    assert slugs("search=shop") == ["alpha-shop", "zeta-shop"]
    assert slugs("search=widgets") == ["zeta-shop"]  # by name, any case
    assert slugs("search=WIDGETS") == ["zeta-shop"]
    assert "zeta-shop" not in slugs("is_active=true")
    assert slugs("is_active=false") == ["zeta-shop"]
    assert slugs("search=shop&ordering=-slug") == ["zeta-shop", "alpha-shop"]
    by_created = slugs("search=shop&ordering=-created_at")
    assert by_created == ["alpha-shop", "zeta-shop"]
    # Ordering by a field not offered is ignored (slug order), as on the tenant API.
    assert slugs("search=shop&ordering=schema_name") == ["alpha-shop", "zeta-shop"]
    assert "tenant-template" not in slugs("search=template")
    body = assert_error(operator_client.get(f"{URL}?is_active=maybe"), 400, field="is_active")
    assert body["detail"] == "Invalid input: is_active."


def test_a_validation_error_names_every_field_in_detail(operator_client: APIClient) -> None:
    body = assert_error(operator_client.post(URL, {"slug": "acme-2", "name": ""}, format="json"), 400)
    assert set(body["errors"]) >= {"name", "admin_email", "admin_password"}
    assert body["detail"] == f"Invalid input: {', '.join(body['errors'])}."
    # A service's own refusal of one field follows the same rule; its sentence is in errors.
    body = assert_error(operator_client.delete(detail(ACME.slug) + "?purge=wrong"), 400, field="purge")
    assert body["detail"] == "Invalid input: purge."
    assert body["errors"]["purge"] == ["To purge, pass purge=acme."]
    # A conflict keeps its sentence.
    body = assert_error(operator_client.post(URL, new_tenant_payload(ACME.slug), format="json"), 409, field="slug")
    assert "already exists" in body["detail"]


# --- create ---------------------------------------------------------------------------------------------------


def test_create_serves_the_new_host_and_its_admin(operator_client: APIClient) -> None:
    # Warm the negative cache for the host first: creation must evict it.
    assert_error(api_client(f"newco.{BASE}").get("/api/health/"), 404, code="unknown_host")

    response = operator_client.post(
        URL, new_tenant_payload("newco", require_activation=False, admin_username="root"), format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert_documented_tenant(body)  # exactly the documented fields: no password, no admin details
    assert datetime.fromisoformat(body["created_at"]) <= timezone.now()
    # The whole answer: a field added to (or dropped from) it fails here.
    assert {k: v for k, v in body.items() if k != "created_at"} == {
        "slug": "newco",
        "name": "Newco Inc.",
        "schema_name": "newco",
        "domains": [f"newco.{BASE}"],
        "is_active": True,
        "require_activation": False,
        "cors_allowed_origins": [],
        "link_templates": {},
        "archived_at": None,
        "migration_error": "",
        "migration_failed_at": None,
    }

    assert schema_exists("newco")
    health = api_client(f"newco.{BASE}").get("/api/health/")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "schema": "newco", "tenant": "newco"}

    tokens = jwt_login(f"newco.{BASE}", "owner@newco.test")
    me = api_client(f"newco.{BASE}", token=tokens["access"]).get("/api/auth/users/me/").json()
    assert me["email"] == "owner@newco.test"
    assert me["username"] == "root"
    with schema_context("newco"):
        assert User.objects.get().is_superuser

    # And it is now listed and retrievable.
    assert "newco" in [t["slug"] for t in operator_client.get(URL).json()["results"]]
    assert operator_client.get(detail("newco")).json() == body


def test_create_defaults_require_activation_true(operator_client: APIClient) -> None:
    response = operator_client.post(URL, new_tenant_payload("defaulted"), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["require_activation"] is True
    assert Tenant.objects.get(slug="defaulted").require_activation is True


def test_duplicate_slug_is_409(operator_client: APIClient, unchanged: None) -> None:
    response = operator_client.post(URL, new_tenant_payload(ACME.slug, admin_email="x@evil.test"), format="json")
    body = assert_error(response, 409, field="slug", code="slug_taken")
    assert set(body) == {"detail", "code", "errors"}
    with schema_context(ACME.slug):
        assert not User.objects.filter(email="x@evil.test").exists()


@pytest.mark.parametrize(
    "slug", ["ab", "a" * 33, "Upper", "1digit", "trailing-", "under_score", "ünï", "dou--ble", "with space"]
)
def test_bad_slug_is_400(operator_client: APIClient, unchanged: None, slug: str) -> None:
    assert_error(operator_client.post(URL, new_tenant_payload(slug), format="json"), 400, field="slug")


@pytest.mark.parametrize(
    "slug",
    ["public", "www", "api", "admin", "static", "media", "template", "tenant-template", "pg-foo", "information-schema"],
)
def test_reserved_slug_is_400(operator_client: APIClient, unchanged: None, slug: str) -> None:
    body = assert_error(operator_client.post(URL, new_tenant_payload(slug), format="json"), 400, field="slug")
    assert body["code"] == "reserved"


@pytest.mark.parametrize(
    "raw",
    ['{"slug": "broken", "name": ', "not json at all", "", "[1, 2", '{"slug": "x"} trailing'],
    ids=["truncated", "text", "empty", "array", "trailing"],
)
def test_malformed_json_is_400_json(operator_client: APIClient, unchanged: None, raw: str) -> None:
    response = operator_client.generic("POST", URL, raw, content_type="application/json")
    body = assert_error(response, 400)
    assert b"<html" not in response.content.lower()
    if raw:
        assert body["code"] == "parse_error"


def test_non_object_json_is_400(operator_client: APIClient, unchanged: None) -> None:
    assert_error(operator_client.post(URL, [new_tenant_payload("listed")], format="json"), 400)
    assert_error(operator_client.post(URL, "just a string", format="json"), 400)


def test_form_encoded_body_is_refused(operator_client: APIClient, unchanged: None) -> None:
    response = operator_client.post(URL, new_tenant_payload("formy"))  # multipart
    assert_error(response, 415)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"require_activation": "yes"}, "require_activation"),
        ({"require_activation": 1}, "require_activation"),
        ({"require_activation": "true"}, "require_activation"),
        ({"require_activation": None}, "require_activation"),
        ({"slug": 12345}, "slug"),
        ({"slug": ["typed"]}, "slug"),
        ({"slug": {"a": 1}}, "slug"),
        ({"slug": None}, "slug"),
        ({"name": ["n"]}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"admin_email": "nope"}, "admin_email"),
        ({"admin_email": 7}, "admin_email"),
        ({"admin_password": "short"}, "admin_password"),
        ({"admin_password": "password123"}, "admin_password"),
        ({"admin_password": 12345678}, "admin_password"),
        ({"admin_username": "has space"}, "admin_username"),
    ],
)
def test_wrong_values_are_400_naming_the_field(
    operator_client: APIClient, unchanged: None, overrides: dict[str, Any], field: str
) -> None:
    response = operator_client.post(URL, new_tenant_payload("typed", **overrides), format="json")
    assert_error(response, 400, field=field)


@pytest.mark.parametrize("missing", ["slug", "name", "admin_email", "admin_password"])
def test_missing_field_is_400_naming_it(operator_client: APIClient, unchanged: None, missing: str) -> None:
    payload = new_tenant_payload("missing")
    del payload[missing]
    assert_error(operator_client.post(URL, payload, format="json"), 400, field=missing)


def test_empty_body_names_every_required_field(operator_client: APIClient, unchanged: None) -> None:
    body = assert_error(operator_client.post(URL, {}, format="json"), 400)
    assert set(body["errors"]) == {"slug", "name", "admin_email", "admin_password"}


def test_oversized_name_is_400(operator_client: APIClient, unchanged: None) -> None:
    assert_error(
        operator_client.post(URL, new_tenant_payload("bigname", name="n" * 300), format="json"), 400, field="name"
    )


def test_name_of_exactly_200_is_accepted(operator_client: APIClient) -> None:
    response = operator_client.post(URL, new_tenant_payload("maxname", name="n" * 200), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["name"] == "n" * 200


# --- detail ---------------------------------------------------------------------------------------------------


def test_get_detail(operator_client: APIClient) -> None:
    response = operator_client.get(detail(GLOBEX.slug))
    assert response.status_code == 200
    body = response.json()
    assert_documented_tenant(body)
    assert body["slug"] == GLOBEX.slug
    assert body["domains"] == [GLOBEX.host]
    assert body["schema_name"] == "globex"


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_unknown_slug_is_404_json(operator_client: APIClient, method: str) -> None:
    response = getattr(operator_client, method)(detail("no-such-tenant"), {}, format="json")
    assert_error(response, 404, code="not_found")


def test_template_is_not_reachable_by_slug(operator_client: APIClient) -> None:
    assert_error(operator_client.get(detail("tenant-template")), 404)
    assert_error(operator_client.patch(detail("tenant-template"), {"is_active": True}, format="json"), 404)
    assert_error(operator_client.delete(detail("tenant-template") + "?purge=tenant-template"), 404)
    assert schema_exists("tenant_template")
    assert not Tenant.objects.get(is_template=True).is_active


def test_patch_updates_fields(operator_client: APIClient) -> None:
    provision("patchy")
    response = operator_client.patch(
        detail("patchy"), {"name": "  Patched  ", "require_activation": False}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["name"] == "Patched"
    assert body["require_activation"] is False
    assert body["is_active"] is True
    row = Tenant.objects.get(slug="patchy")
    assert (row.name, row.require_activation, row.is_active) == ("Patched", False, True)

    # A partial update touches only what it names.
    response = operator_client.patch(detail("patchy"), {"require_activation": True}, format="json")
    assert response.json()["name"] == "Patched"
    assert response.json()["require_activation"] is True


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"slug": "renamed"}, "slug"),
        ({"schema_name": "public"}, "schema_name"),
        ({"is_template": True}, "is_template"),
        ({"colour": "red"}, "colour"),
        ({"is_active": "false"}, "is_active"),
        ({"is_active": 0}, "is_active"),
        ({"require_activation": "no"}, "require_activation"),
        ({"name": ""}, "name"),
        ({"name": "n" * 201}, "name"),
        ({"name": 5.5, "domains": []}, "domains"),
        ({"cors_allowed_origins": ["*"]}, "cors_allowed_origins"),
        ({"cors_allowed_origins": "https://app.strict.test"}, "cors_allowed_origins"),
        ({"cors_allowed_origins": [5]}, "cors_allowed_origins"),
    ],
)
def test_patch_rejects_bad_fields(operator_client: APIClient, payload: dict[str, Any], field: str) -> None:
    provision("strict")
    before = Tenant.objects.filter(slug="strict").values().get()
    assert_error(operator_client.patch(detail("strict"), payload, format="json"), 400, field=field)
    assert Tenant.objects.filter(slug="strict").values().get() == before


def test_patch_with_malformed_json_is_400_json(operator_client: APIClient) -> None:
    response = operator_client.generic("PATCH", detail(ACME.slug), '{"name": ', content_type="application/json")
    assert_error(response, 400, code="parse_error")
    assert Tenant.objects.get(slug=ACME.slug).name == "Acme"


# --- archive, reactivate, purge -------------------------------------------------------------------------------

SUSPENDED_PATHS = [
    ("get", "/api/health/"),
    ("post", "/api/auth/jwt/create/"),
    ("get", "/api/auth/users/me/"),
    ("get", "/admin/"),
    ("get", "/no/such/path/"),
]


def test_delete_archives_and_patch_reactivates(operator_client: APIClient) -> None:
    provision("sleepy")
    host = f"sleepy.{BASE}"
    access = jwt_login(host, "owner@sleepy.test")["access"]  # also warms the host cache

    response = operator_client.delete(detail("sleepy"))
    assert response.status_code == 204
    assert response.content == b""

    row = Tenant.objects.get(slug="sleepy")
    assert row.is_active is False
    assert row.archived_at is not None
    body = operator_client.get(detail("sleepy")).json()
    assert body["is_active"] is False
    assert body["archived_at"]

    # Suspended: 403 JSON on every path, even with a valid token.
    for method, path in SUSPENDED_PATHS:
        client = api_client(host, token=access)
        data = {"email": "owner@sleepy.test", "password": PASSWORD} if method == "post" else None
        assert_error(getattr(client, method)(path, data, format="json"), 403, code="tenant_suspended")

    # Data kept.
    assert schema_exists("sleepy")
    with schema_context("sleepy"):
        assert User.objects.filter(email="owner@sleepy.test", is_superuser=True).exists()
    connection.set_schema_to_public()
    assert Domain.objects.filter(tenant=row, domain=host, is_primary=True).exists()

    # Archiving again keeps the first archive time.
    assert operator_client.delete(detail("sleepy")).status_code == 204
    assert Tenant.objects.get(slug="sleepy").archived_at == row.archived_at

    # Reactivated: served again, old data and credentials work.
    response = operator_client.patch(detail("sleepy"), {"is_active": True}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["is_active"] is True
    assert response.json()["archived_at"] is None
    assert api_client(host).get("/api/health/").json()["tenant"] == "sleepy"
    assert api_client(host, token=access).get("/api/auth/users/me/").json()["email"] == "owner@sleepy.test"


def test_patch_is_active_false_also_suspends(operator_client: APIClient) -> None:
    provision("pausy")
    host = f"pausy.{BASE}"
    assert api_client(host).get("/api/health/").status_code == 200
    response = operator_client.patch(detail("pausy"), {"is_active": False}, format="json")
    assert response.status_code == 200
    assert response.json()["archived_at"] is not None  # one notion of suspended, however asked for
    assert_error(api_client(host).get("/api/health/"), 403, code="tenant_suspended")
    assert operator_client.patch(detail("pausy"), {"is_active": True}, format="json").json()["archived_at"] is None


def test_archiving_one_tenant_leaves_others_alone(operator_client: APIClient) -> None:
    provision("lonely")
    assert operator_client.delete(detail("lonely")).status_code == 204
    assert api_client(ACME.host).get("/api/health/").json()["tenant"] == ACME.slug
    assert api_client(GLOBEX.host).get("/api/health/").json()["tenant"] == GLOBEX.slug


@pytest.mark.parametrize("purge", ["wrong", "", "ACME", "acme "])
def test_purge_with_wrong_confirmation_is_400(operator_client: APIClient, purge: str) -> None:
    response = operator_client.delete(detail(ACME.slug) + f"?purge={purge}")
    assert_error(response, 400, field="purge")
    row = Tenant.objects.get(slug=ACME.slug)
    assert row.is_active
    assert row.archived_at is None
    assert schema_exists("acme")
    assert api_client(ACME.host).get("/api/health/").status_code == 200


def test_purge_drops_schema_rows_and_host(operator_client: APIClient) -> None:
    provision("doomed")
    host = f"doomed.{BASE}"
    assert api_client(host).get("/api/health/").status_code == 200  # warm cache
    domain_ids = list(Domain.objects.filter(tenant__slug="doomed").values_list("pk", flat=True))
    assert domain_ids

    response = operator_client.delete(detail("doomed") + "?purge=doomed")
    assert response.status_code == 204, response.content

    assert not schema_exists("doomed")
    assert not Tenant.objects.filter(slug="doomed").exists()
    assert not Domain.objects.filter(pk__in=domain_ids).exists()
    assert_error(api_client(host).get("/api/health/"), 404, code="unknown_host")
    assert_error(operator_client.get(detail("doomed")), 404)
    # The others are untouched.
    assert schema_exists("acme")
    assert api_client(ACME.host).get("/api/health/").status_code == 200


def test_purged_slug_can_be_provisioned_again(operator_client: APIClient) -> None:
    provision("phoenix")
    assert operator_client.delete(detail("phoenix") + "?purge=phoenix").status_code == 204
    response = operator_client.post(
        URL, new_tenant_payload("phoenix", admin_email="reborn@phoenix.test"), format="json"
    )
    assert response.status_code == 201, response.content
    with schema_context("phoenix"):
        assert list(User.objects.values_list("email", flat=True)) == ["reborn@phoenix.test"]


# --- domains --------------------------------------------------------------------------------------------------


def test_add_list_and_remove_a_domain(operator_client: APIClient) -> None:
    provision("multi")
    extra = f"extra-multi.{BASE}"
    assert_error(api_client(extra).get("/api/health/"), 404, code="unknown_host")  # negative-cached now

    response = operator_client.post(domains_url("multi"), {"domain": extra}, format="json")
    assert response.status_code == 201, response.content
    assert response.json() == {"domain": extra, "is_primary": False}
    assert Domain.objects.filter(tenant__slug="multi", domain=extra, is_primary=False).exists()

    assert api_client(extra).get("/api/health/").json() == {"status": "ok", "schema": "multi", "tenant": "multi"}
    jwt_login(extra, "owner@multi.test")  # the admin logs in on either host

    listed = operator_client.get(domains_url("multi")).json()
    assert listed == [{"domain": f"multi.{BASE}", "is_primary": True}, {"domain": extra, "is_primary": False}]
    assert operator_client.get(detail("multi")).json()["domains"] == [f"multi.{BASE}", extra]

    response = operator_client.delete(f"{domains_url('multi')}{extra}/")
    assert response.status_code == 204, response.content
    assert not Domain.objects.filter(domain=extra).exists()
    assert_error(api_client(extra).get("/api/health/"), 404, code="unknown_host")
    assert api_client(f"multi.{BASE}").get("/api/health/").json()["tenant"] == "multi"  # primary still serves


def test_domain_is_normalised(operator_client: APIClient) -> None:
    response = operator_client.post(domains_url(ACME.slug), {"domain": f"  Shop-Acme.{BASE.upper()}. "}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["domain"] == f"shop-acme.{BASE}"
    assert api_client(f"shop-acme.{BASE}").get("/api/health/").json()["tenant"] == ACME.slug


@pytest.mark.parametrize("taken", [f"extra-dup.{BASE}", GLOBEX.host, ACME.host])
def test_duplicate_domain_is_409(operator_client: APIClient, taken: str) -> None:
    operator_client.post(domains_url(ACME.slug), {"domain": f"extra-dup.{BASE}"}, format="json")
    before = list(Domain.objects.order_by("pk").values_list("domain", "tenant__slug", "is_primary"))
    response = operator_client.post(domains_url(ACME.slug), {"domain": taken}, format="json")
    assert_error(response, 409, field="domain", code="conflict")
    assert list(Domain.objects.order_by("pk").values_list("domain", "tenant__slug", "is_primary")) == before
    assert api_client(GLOBEX.host).get("/api/health/").json()["tenant"] == GLOBEX.slug


@pytest.mark.parametrize(
    "domain",
    [
        BASE,  # the public host itself
        f"-bad.{BASE}",
        f"bad_.{BASE}",
        f"sp ace.{BASE}",
        "",
        "x" * 64 + f".{BASE}",
        "127.0.0.1",  # an address: the probes' liveness answers there
        "10.1.2.3",
        f"evil{BASE}",  # one label: no customer's host
        "shop",
    ],
)
def test_bad_domain_is_400(operator_client: APIClient, domain: str) -> None:
    before = Domain.objects.count()
    assert_error(operator_client.post(domains_url(ACME.slug), {"domain": domain}, format="json"), 400, field="domain")
    assert Domain.objects.count() == before


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "domain"),
        ({"domain": 5}, "domain"),
        ({"domain": ["a"]}, "domain"),
        ({"domain": f"ok.{BASE}", "is_primary": "yes"}, "is_primary"),
    ],
)
def test_domain_payload_types(operator_client: APIClient, payload: dict[str, Any], field: str) -> None:
    before = Domain.objects.count()
    assert_error(operator_client.post(domains_url(ACME.slug), payload, format="json"), 400, field=field)
    assert Domain.objects.count() == before


@pytest.mark.parametrize("custom", ["shop.acme-corp.test", "example.com", f"{BASE}.evil.com"])
def test_a_custom_domain_is_served_at_once_without_settings(operator_client: APIClient, custom: str) -> None:
    """Any host in the Domain table is served; no ALLOWED_HOSTS to edit, no
    restart. The host was asked for first, so its 404 was cached."""
    assert_error(api_client(custom).get("/api/health/"), 404, code="unknown_host")
    response = operator_client.post(domains_url(ACME.slug), {"domain": custom}, format="json")
    assert response.status_code == 201, response.content
    assert api_client(custom).get("/api/health/").json() == {"status": "ok", "schema": "acme", "tenant": "acme"}
    jwt_login(custom, ACME.admin_email)
    assert_error(api_client(f"other.{custom}").get("/api/health/"), 404, code="unknown_host")


def test_removing_the_primary_domain_is_400(operator_client: APIClient) -> None:
    response = operator_client.delete(f"{domains_url(ACME.slug)}{ACME.host}/")
    assert_error(response, 400, field="domain")
    assert Domain.objects.filter(domain=ACME.host, is_primary=True).exists()
    assert api_client(ACME.host).get("/api/health/").json()["tenant"] == ACME.slug


def test_domain_removal_is_normalised_like_addition(operator_client: APIClient) -> None:
    assert operator_client.post(domains_url(ACME.slug), {"domain": f"norm.{BASE}"}, format="json").status_code == 201
    assert operator_client.delete(f"{domains_url(ACME.slug)}NORM.{BASE.upper()}./").status_code == 204
    assert_error(api_client(f"norm.{BASE}").get("/api/health/"), 404, code="unknown_host")


def test_removing_another_tenants_domain_is_404(operator_client: APIClient) -> None:
    extra = f"extra-globex.{BASE}"
    assert operator_client.post(domains_url(GLOBEX.slug), {"domain": extra}, format="json").status_code == 201
    assert_error(operator_client.delete(f"{domains_url(ACME.slug)}{extra}/"), 404, field="domain")
    assert_error(operator_client.delete(f"{domains_url(ACME.slug)}nope.{BASE}/"), 404)
    assert Domain.objects.filter(domain=extra, tenant__slug=GLOBEX.slug).exists()


def test_domains_of_unknown_tenant_are_404(operator_client: APIClient) -> None:
    assert_error(operator_client.get(domains_url("ghost")), 404)
    assert_error(operator_client.post(domains_url("ghost"), {"domain": f"ghost2.{BASE}"}, format="json"), 404)
    assert not Domain.objects.filter(domain=f"ghost2.{BASE}").exists()


def test_making_a_new_primary_domain_demotes_the_old_one(operator_client: APIClient) -> None:
    provision("moving")
    new = f"moved.{BASE}"
    response = operator_client.post(domains_url("moving"), {"domain": new, "is_primary": True}, format="json")
    assert response.status_code == 201, response.content
    assert list(Domain.objects.filter(tenant__slug="moving").values_list("domain", "is_primary")) == [
        (new, True),
        (f"moving.{BASE}", False),
    ]
    # The old primary may now be removed, the new one may not.
    assert operator_client.delete(f"{domains_url('moving')}moving.{BASE}/").status_code == 204
    assert_error(operator_client.delete(f"{domains_url('moving')}{new}/"), 400, field="domain")
    assert api_client(new).get("/api/health/").json()["tenant"] == "moving"


# --- placement (Citus) ----------------------------------------------------------------------------------------


def test_placement_says_where_the_tenant_lives(operator_client: APIClient) -> None:
    response = operator_client.get(detail(ACME.slug) + "placement/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"citus", "schema", "node", "size_bytes"}
    assert body["schema"] == "acme"
    assert body["citus"] is citus.is_citus()
    if not body["citus"]:  # on plain PostgreSQL every tenant is on the one server
        assert body["node"] is None
        assert body["size_bytes"] is None
    assert_error(operator_client.get(detail("nope") + "placement/"), 404)


def test_placement_is_for_operators_only(db: None) -> None:
    response = admin_client(ACME).get(f"/api/platform/tenants/{ACME.slug}/placement/")
    assert response.status_code in (401, 404), response.content
    assert api_client(BASE).get(detail(ACME.slug) + "placement/").status_code == 401


@pytest.mark.django_db
def test_tenant_nodes_refuses_plain_postgresql() -> None:
    if citus.is_citus():
        pytest.skip("on Citus: tests/tenants/test_citus.py covers tenant_nodes")
    with pytest.raises(CommandError, match="not a Citus coordinator"):
        call_command("tenant_nodes", stdout=io.StringIO())


def test_patch_makes_another_domain_primary_and_emails_follow(operator_client: APIClient) -> None:
    provision("rehomed")
    old, new = f"rehomed.{BASE}", "shop.rehomed.test"
    assert operator_client.post(domains_url("rehomed"), {"domain": new}, format="json").status_code == 201

    response = operator_client.patch(f"{domains_url('rehomed')}{new}/", {"is_primary": True}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"domain": new, "is_primary": True}
    assert operator_client.get(domains_url("rehomed")).json() == [
        {"domain": new, "is_primary": True},
        {"domain": old, "is_primary": False},
    ]
    assert operator_client.get(f"{domains_url('rehomed')}{old}/").json() == {"domain": old, "is_primary": False}
    # Both hosts serve; the emails link to the new primary only.
    for host in (old, new):
        assert api_client(host).get("/api/health/").json()["tenant"] == "rehomed"
    with schema_context("rehomed"):
        site = emails.site_for(Tenant.objects.get(slug="rehomed"), emails.LinkBase(scheme="https", port=""))
    assert site.host == new
    # Again: nothing changes, still one primary.
    assert operator_client.patch(f"{domains_url('rehomed')}{new}/", {"is_primary": True}, format="json").json() == {
        "domain": new,
        "is_primary": True,
    }
    assert Domain.objects.filter(tenant__slug="rehomed", is_primary=True).count() == 1
    # The old primary may go now; the new one may not.
    assert operator_client.delete(f"{domains_url('rehomed')}{old}/").status_code == 204
    assert_error(operator_client.delete(f"{domains_url('rehomed')}{new}/"), 400, field="domain")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"is_primary": False}, "is_primary"),  # a tenant always has one: make another primary
        ({}, "is_primary"),
        ({"is_primary": "yes"}, "is_primary"),
        ({"is_primary": True, "domain": "x.test"}, "domain"),  # a domain is not renamed
    ],
)
def test_patch_domain_refuses_what_it_cannot_do(
    operator_client: APIClient, payload: dict[str, Any], field: str
) -> None:
    before = list(Domain.objects.order_by("pk").values_list("domain", "is_primary"))
    response = operator_client.patch(f"{domains_url(ACME.slug)}{ACME.host}/", payload, format="json")
    assert_error(response, 400, field=field)
    assert list(Domain.objects.order_by("pk").values_list("domain", "is_primary")) == before


def test_patch_another_tenants_domain_is_404(operator_client: APIClient) -> None:
    response = operator_client.patch(f"{domains_url(ACME.slug)}{GLOBEX.host}/", {"is_primary": True}, format="json")
    assert_error(response, 404, field="domain")
    assert Domain.objects.get(domain=GLOBEX.host).is_primary
    assert Domain.objects.get(domain=ACME.host).is_primary
    assert_error(operator_client.get(f"{domains_url(ACME.slug)}nope.test/"), 404, field="domain")


def test_patch_domain_is_for_operators_only(db: None) -> None:
    response = admin_client(ACME).patch(f"{domains_url(ACME.slug)}{ACME.host}/", {"is_primary": True}, format="json")
    assert response.status_code in (401, 404), response.content
    anonymous = api_client(BASE).patch(f"{domains_url(ACME.slug)}{ACME.host}/", {"is_primary": True}, format="json")
    assert anonymous.status_code == 401


# --- where a tenant's emailed links point ---------------------------------------------------------------------


def test_operators_point_a_tenants_links_at_its_own_front_end(operator_client: APIClient) -> None:
    provision("spa")
    templates = {
        "activation": "https://app.spa.test/activate/{uid}/{token}",
        "invitation": "{scheme}://{domain}/join?t={token}",
    }
    response = operator_client.patch(detail("spa"), {"link_templates": templates}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["link_templates"] == templates
    # Merged: one kind back to the deployment's default, another added.
    response = operator_client.patch(
        detail("spa"),
        {"link_templates": {"activation": None, "password_reset": "https://id.spa.test/r/{uid}/{token}"}},
        format="json",
    )
    assert response.json()["link_templates"] == {
        "invitation": "{scheme}://{domain}/join?t={token}",
        "password_reset": "https://id.spa.test/r/{uid}/{token}",
    }
    assert Tenant.objects.get(slug="spa").link_templates == response.json()["link_templates"]


@pytest.mark.parametrize(
    "templates",
    [
        {"welcome": "https://x.test/{uid}/{token}"},  # no such kind
        {"activation": "https://x.test/{token}"},  # no {uid}
        {"invitation": "https://x.test/{uid}/{token}"},  # an invitation has no uid
        {"activation": "https://x.test/{uid}/{token}/{password}"},
        {"activation": "https://x.test/{uid}/{token"},
        {"activation": "javascript://x.test/{uid}/{token}"},
        {"activation": "https://x.test/{uid}/{token} extra"},
        {"activation": "https://x.test/" + "a" * 500 + "{uid}/{token}"},
        {"activation": "https://x.test/{uid}/{token:d}"},  # a format spec would fail every email
        {"activation": "https://x.test/{uid}/{token:>1000000}"},  # or bloat it
        {"activation": "https://x.test/{uid!x}/{token}"},
        {"activation": "https://x.test/{uid}/{token:{uid.__class__}}"},
        ["https://x.test/{uid}/{token}"],
        "https://x.test/{uid}/{token}",
    ],
)
def test_bad_link_templates_are_400(operator_client: APIClient, templates: Any) -> None:
    before = Tenant.objects.get(slug=ACME.slug).link_templates
    response = operator_client.patch(detail(ACME.slug), {"link_templates": templates}, format="json")
    assert_error(response, 400, field="link_templates")
    assert Tenant.objects.get(slug=ACME.slug).link_templates == before


def test_a_bad_deployment_link_template_fails_the_system_check(settings: Any) -> None:
    settings.ACCOUNT_PASSWORD_RESET_URL = "https://app.example.com/reset/{token}"
    errors = [m for m in checks.run_checks() if m.id == "accounts.E002"]
    assert [m.msg for m in errors] == ["ACCOUNT_PASSWORD_RESET_URL: it must contain {uid} and {token}."]


def test_an_international_domain_is_stored_as_browsers_send_it(operator_client: APIClient) -> None:
    response = operator_client.post(domains_url(ACME.slug), {"domain": "Bücher.example"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["domain"] == "xn--bcher-kva.example"
    assert api_client("xn--bcher-kva.example").get("/api/health/").json()["tenant"] == ACME.slug
    again = operator_client.post(domains_url(GLOBEX.slug), {"domain": "xn--bcher-kva.example"}, format="json")
    assert_error(again, 409, field="domain")


def test_an_unknown_hosts_cache_entries_go_with_its_answer(db: None) -> None:
    """A flood of made-up hosts costs cache space for NEGATIVE_TTL only: the
    host's generation key expires with its negative answer (a known host's
    lives on)."""
    host = "made-up.attacker.example"
    assert_error(api_client(host).get("/api/health/"), 404, code="unknown_host")
    assert api_client(ACME.host).get("/api/health/").status_code == 200
    for key in tenant_cache._keys(host):
        assert 0 < _ttl(key) <= tenant_cache.NEGATIVE_TTL
    assert _ttl(tenant_cache._keys(ACME.host)[1]) > tenant_cache.TTL


def _ttl(key: str) -> float:
    """Seconds ``key`` has left in the tenants cache (the suite's is locmem, tests/conftest.py)."""
    cache = caches["tenants"]
    assert isinstance(cache, LocMemCache), type(cache)
    expires: dict[str, float] = cache._expire_info  # type: ignore[attr-defined]
    return expires[cache.make_and_validate_key(key)] - time.time()
