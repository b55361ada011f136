"""CORS per tenant, end to end: each tenant's own allowed origins
(``Tenant.cors_allowed_origins``), set by its admins on ``/api/tenant/`` or by
operators on the platform API, applied by django-cors-headers through
tenants.cors on the tenant's very next request, with no query."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection as django_connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.models import AuditEntry
from core.errors import ApplicationError
from tenants.cors import origin_allowed
from tenants.models import Tenant
from tenants.services import normalize_origin, normalize_origins
from tests.helpers import (
    ACME,
    AUDIT,
    BASE,
    GLOBEX,
    DemoTenant,
    admin_client,
    api_client,
    assert_error,
    make_user,
)

pytestmark = pytest.mark.django_db

SETTINGS = "/api/tenant/"
APP = "https://app.acme.test"
FIELD = "cors_allowed_origins"
ALLOW_ORIGIN = "Access-Control-Allow-Origin"


def platform_detail(slug: str) -> str:
    return f"/api/platform/tenants/{slug}/"


def stored(tenant: DemoTenant = ACME) -> list[str]:
    return list(Tenant.objects.get(slug=tenant.slug).cors_allowed_origins)


def allow(origins: list[str], tenant: DemoTenant = ACME) -> dict[str, Any]:
    response = admin_client(tenant).patch(SETTINGS, {FIELD: origins}, format="json")
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def get_with_origin(where: DemoTenant | str, origin: str, path: str = "/api/health/") -> Any:
    return api_client(where).get(path, HTTP_ORIGIN=origin)


def preflight(where: DemoTenant | str, origin: str, path: str = "/api/products/") -> Any:
    return api_client(where).options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )


def no_cors_headers(response: Any) -> bool:
    return not [h for h in response.headers if h.lower().startswith("access-control-")]


def cors_audit(tenant: DemoTenant = ACME) -> list[dict[str, Any]]:
    response = admin_client(tenant).get(f"{AUDIT}?action=tenant.cors_changed&page_size=100")
    assert response.status_code == 200, response.content
    body = response.json()
    entries: list[dict[str, Any]] = body["results"] if isinstance(body, dict) else body
    return entries


# --- defaults -----------------------------------------------------------------------------------


def test_no_origin_is_allowed_by_default() -> None:
    assert stored() == []
    for origin in (APP, f"https://{ACME.host}", "http://localhost:3000", "null"):
        response = get_with_origin(ACME, origin)
        assert response.status_code == 200
        assert no_cors_headers(response), dict(response.headers)
    response = preflight(ACME, APP)
    assert ALLOW_ORIGIN not in response.headers


def test_tenant_admin_reads_the_settings() -> None:
    response = admin_client(ACME).get(SETTINGS)
    assert response.status_code == 200, response.content
    assert response.json() == {
        "slug": "acme",
        "name": "Acme",
        "domains": [ACME.host],
        "require_activation": True,
        FIELD: [],
    }


# --- an admin allows an origin --------------------------------------------------------------------


def test_allowed_origin_gets_cors_headers_on_the_very_next_request() -> None:
    # Warm the host cache first: the change must evict the cached tenant.
    assert ALLOW_ORIGIN not in get_with_origin(ACME, APP).headers

    body = allow([APP])
    assert body == {"slug": "acme", "name": "Acme", "domains": [ACME.host], "require_activation": True, FIELD: [APP]}
    assert stored() == [APP]

    response = get_with_origin(ACME, APP)
    assert response.status_code == 200
    assert response[ALLOW_ORIGIN] == APP
    exposed = [h.strip().lower() for h in response["Access-Control-Expose-Headers"].split(",")]
    assert "x-request-id" in exposed
    assert "retry-after" in exposed
    assert "Access-Control-Allow-Credentials" not in response.headers  # bearer tokens, never cookies
    assert "origin" in response["Vary"].lower()

    # Taking it away takes effect just as fast.
    assert allow([])[FIELD] == []
    assert no_cors_headers(get_with_origin(ACME, APP))


def test_preflight_of_an_allowed_origin() -> None:
    allow([APP])
    response = preflight(ACME, APP)
    assert response.status_code == 200
    assert response[ALLOW_ORIGIN] == APP
    allowed_headers = {h.strip() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed_headers
    assert "POST" in {m.strip() for m in response["Access-Control-Allow-Methods"].split(",")}
    assert response["Access-Control-Max-Age"] == "600"


def test_an_authenticated_call_from_the_allowed_origin() -> None:
    allow([APP])
    response = admin_client(ACME).get(SETTINGS, HTTP_ORIGIN=APP)
    assert response.status_code == 200
    assert response[ALLOW_ORIGIN] == APP
    # An error answer carries the headers too, so the page can read it.
    response = api_client(ACME).get(SETTINGS, HTTP_ORIGIN=APP)
    assert_error(response, 401)
    assert response[ALLOW_ORIGIN] == APP


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.test",
        "http://app.acme.test",  # another scheme
        "https://app.acme.test:8443",  # another port
        "https://sub.app.acme.test",
        "https://app.acme.test.evil.test",
        "null",
        "not an origin",
    ],
)
def test_other_origins_get_no_cors_headers(origin: str) -> None:
    allow([APP])
    assert no_cors_headers(get_with_origin(ACME, origin))
    response = preflight(ACME, origin)
    assert ALLOW_ORIGIN not in response.headers


def test_the_header_is_matched_normalized() -> None:
    allow(["https://app.acme.test", "http://localhost:5173"])
    assert get_with_origin(ACME, "https://APP.acme.test:443")[ALLOW_ORIGIN] == "https://APP.acme.test:443"
    assert get_with_origin(ACME, "http://localhost:5173")[ALLOW_ORIGIN] == "http://localhost:5173"
    assert ALLOW_ORIGIN not in get_with_origin(ACME, "http://localhost:5174").headers


def test_paths_outside_the_api_never_get_cors_headers() -> None:
    allow([APP])
    assert no_cors_headers(api_client(ACME).get("/admin/login/", HTTP_ORIGIN=APP))
    assert no_cors_headers(api_client(ACME).get("/no/such/path/", HTTP_ORIGIN=APP))


def test_tenants_are_isolated() -> None:
    allow([APP])
    assert no_cors_headers(get_with_origin(GLOBEX, APP))
    assert ALLOW_ORIGIN not in preflight(GLOBEX, APP).headers
    assert stored(GLOBEX) == []
    allow(["https://app.globex.test"], GLOBEX)
    assert ALLOW_ORIGIN not in get_with_origin(ACME, "https://app.globex.test").headers
    assert get_with_origin(GLOBEX, "https://app.globex.test")[ALLOW_ORIGIN] == "https://app.globex.test"
    assert get_with_origin(ACME, APP)[ALLOW_ORIGIN] == APP


def test_the_public_host_allows_no_origin(operator_client: APIClient) -> None:
    allow([APP, f"https://{BASE}"])
    for origin in (APP, f"https://{BASE}"):
        assert no_cors_headers(get_with_origin(BASE, origin))
        assert ALLOW_ORIGIN not in preflight(BASE, origin, "/api/platform/tenants/").headers
        assert no_cors_headers(operator_client.get("/api/platform/tenants/", HTTP_ORIGIN=origin))


def test_the_check_runs_no_query() -> None:
    allow([APP])
    client = admin_client(ACME)
    for path in ("/api/health/", SETTINGS):
        client.get(path)  # warm: the host cache, the token's checks
        with CaptureQueriesContext(django_connection) as plain:
            assert ALLOW_ORIGIN not in client.get(path).headers
        with CaptureQueriesContext(django_connection) as cross:
            assert client.get(path, HTTP_ORIGIN=APP)[ALLOW_ORIGIN] == APP
        with CaptureQueriesContext(django_connection) as refused:
            assert ALLOW_ORIGIN not in client.get(path, HTTP_ORIGIN="https://evil.test").headers
        assert len(cross.captured_queries) == len(plain.captured_queries), cross.captured_queries
        assert len(refused.captured_queries) == len(plain.captured_queries), refused.captured_queries
    with CaptureQueriesContext(django_connection) as health:
        client.get("/api/health/", HTTP_ORIGIN=APP)
    assert [q for q in health.captured_queries if not q["sql"].startswith("SET search_path")] == []


def test_a_cached_tenant_from_before_the_column_allows_nothing_and_queries_nothing() -> None:
    # An instance pickled by a process that did not know the field yet (a
    # rolling deploy): reading the field would load it, one query a request.
    tenant = Tenant.objects.get(slug=ACME.slug)
    tenant.cors_allowed_origins = [APP]
    request = RequestFactory().get("/api/health/", HTTP_ORIGIN=APP)
    request.tenant = tenant  # type: ignore[attr-defined]
    assert origin_allowed(None, request) is True
    del tenant.__dict__[FIELD]
    with CaptureQueriesContext(django_connection) as queries:
        assert origin_allowed(None, request) is False
    assert queries.captured_queries == []


# --- who may change it, and what ----------------------------------------------------------------


def test_plain_users_and_anonymous_callers_are_refused() -> None:
    user = api_client(ACME, user=make_user(ACME))
    assert_error(user.get(SETTINGS), 403)
    assert_error(user.patch(SETTINGS, {FIELD: [APP]}, format="json"), 403)
    assert_error(api_client(ACME).get(SETTINGS), 401)
    assert_error(api_client(ACME).patch(SETTINGS, {FIELD: [APP]}, format="json"), 401)
    assert stored() == []
    assert cors_audit() == []


def test_the_endpoint_is_not_on_the_public_host(operator_client: APIClient) -> None:
    assert_error(operator_client.get(SETTINGS), 404)


@pytest.mark.parametrize(
    "payload",
    [
        {"name": "Renamed"},
        {"require_activation": False},
        {"slug": "renamed"},
        {"domains": ["evil.test"]},
        {"is_active": False},
        {FIELD: [APP], "name": "Renamed"},
    ],
)
def test_admins_change_nothing_else(payload: dict[str, Any]) -> None:
    before = Tenant.objects.filter(slug=ACME.slug).values().get()
    body = assert_error(admin_client(ACME).patch(SETTINGS, payload, format="json"), 400)
    assert set(body["errors"]) == set(payload) - {FIELD}
    assert Tenant.objects.filter(slug=ACME.slug).values().get() == before


def test_an_empty_patch_changes_nothing() -> None:
    allow([APP])
    response = admin_client(ACME).patch(SETTINGS, {}, format="json")
    assert response.status_code == 200
    assert response.json()[FIELD] == [APP]
    assert len(cors_audit()) == 1


BAD_ORIGINS: list[Any] = [
    ["https://app.acme.test/path"],
    ["https://app.acme.test?x=1"],
    ["https://app.acme.test#top"],
    ["https://user:pw@app.acme.test"],
    ["*"],
    ["https://*.acme.test"],
    ["null"],
    ["ftp://app.acme.test"],
    ["app.acme.test"],
    ["https://"],
    ["https://app..acme.test"],
    ["https://app acme.test"],
    ["https://app.acme.test:0"],
    ["https://app.acme.test:99999"],
    ["https://app.acme.test:port"],
    ["https://[::1"],
    ["https://999.0.0.1"],
    [f"https://{'a' * 64}.test"],
    [f"https://{'a.' * 140}test"],
    [""],
    [APP, "javascript:alert(1)"],
    [f"https://app{n}.acme.test" for n in range(51)],
    APP,  # not a list
    {"origin": APP},
    None,
    [5],
    [None],
    [[APP]],
    [{"origin": APP}],
    [True],
]


@pytest.mark.parametrize("origins", BAD_ORIGINS)
def test_bad_origins_are_400_naming_the_field_and_write_nothing(origins: Any) -> None:
    assert_error(admin_client(ACME).patch(SETTINGS, {FIELD: origins}, format="json"), 400, field=FIELD)
    assert stored() == []
    assert cors_audit() == []


@pytest.mark.parametrize("origins", [["*"], ["https://app.acme.test/x"], [7], "x", [APP] * 51])
def test_operators_get_the_same_rules(operator_client: APIClient, origins: Any) -> None:
    before = Tenant.objects.filter(slug=ACME.slug).values().get()
    assert_error(operator_client.patch(platform_detail("acme"), {FIELD: origins}, format="json"), 400, field=FIELD)
    assert Tenant.objects.filter(slug=ACME.slug).values().get() == before


def test_messages_name_the_bad_entry() -> None:
    body = assert_error(
        admin_client(ACME).patch(SETTINGS, {FIELD: [APP, "ftp://files.acme.test"]}, format="json"), 400, field=FIELD
    )
    assert "ftp://files.acme.test" in body["errors"][FIELD][0]
    body = assert_error(admin_client(ACME).patch(SETTINGS, {FIELD: [APP, 5]}, format="json"), 400, field=FIELD)
    assert "2" in body["errors"][FIELD][0]


def test_origins_are_normalized_and_deduplicated() -> None:
    body = allow(
        [
            " HTTPS://App.Acme.Test:443/ ",
            "https://app.acme.test",
            "http://LOCALHOST:80",
            "http://localhost:5173",
            "https://bücher.example",
            "http://127.0.0.1:8000",
            "http://[::1]:3000",
        ]
    )
    expected = [
        "https://app.acme.test",
        "http://localhost",
        "http://localhost:5173",
        "https://xn--bcher-kva.example",
        "http://127.0.0.1:8000",
        "http://[::1]:3000",
    ]
    assert body[FIELD] == expected
    assert stored() == expected
    assert get_with_origin(ACME, "https://xn--bcher-kva.example")[ALLOW_ORIGIN] == "https://xn--bcher-kva.example"
    assert get_with_origin(ACME, "http://[::1]:3000")[ALLOW_ORIGIN] == "http://[::1]:3000"


def test_fifty_origins_are_accepted() -> None:
    origins = [f"https://app{n}.acme.test" for n in range(50)]
    assert allow(origins)[FIELD] == origins


@pytest.mark.parametrize(
    ("given", "normalized"),
    [
        ("https://App.Example.COM", "https://app.example.com"),
        ("https://app.example.com:443", "https://app.example.com"),
        ("http://app.example.com:443", "http://app.example.com:443"),
        ("https://app.example.com:80", "https://app.example.com:80"),
        ("https://app.example.com/", "https://app.example.com"),
        ("https://app.example.com:", "https://app.example.com"),
        ("http://[0:0:0:0:0:0:0:1]", "http://[::1]"),
    ],
)
def test_normalize_origin(given: str, normalized: str) -> None:
    assert normalize_origin(given) == normalized


def test_normalize_origins_refuses_what_is_not_a_list() -> None:
    for value in ("https://a.test", None, 5, {"a": 1}):
        with pytest.raises(ApplicationError) as raised:
            normalize_origins(value)
        assert raised.value.field == FIELD


# --- the audit log, and the operators' API ---------------------------------------------------------


def test_the_change_is_audited_with_both_lists() -> None:
    allow([APP])
    allow([APP, "http://localhost:5173"])
    allow([APP, "http://localhost:5173"])  # no change: no entry
    entries = cors_audit()
    assert len(entries) == 2
    newest, first = entries
    tenant_id = Tenant.objects.get(slug=ACME.slug).pk
    assert first["subject"] == {"type": "tenant", "id": tenant_id, "name": "acme"}
    assert first["actor"]["email"] == ACME.admin_email
    assert first["changes"] == {"old": [], "new": [APP]}
    assert newest["changes"] == {"old": [APP], "new": [APP, "http://localhost:5173"]}
    # Filterable like every other entry.
    response = admin_client(ACME).get(f"{AUDIT}?subject_type=tenant")
    assert response.status_code == 200, response.content
    assert [e["id"] for e in response.json()["results"]] == [newest["id"], first["id"]]
    # In the tenant's own log only.
    assert cors_audit(GLOBEX) == []
    assert AuditEntry.Action.TENANT_CORS_CHANGE == "tenant.cors_changed"


def test_operators_set_and_see_the_origins(operator_client: APIClient) -> None:
    assert operator_client.get(platform_detail("acme")).json()[FIELD] == []
    assert ALLOW_ORIGIN not in get_with_origin(ACME, APP).headers  # warm the host cache

    response = operator_client.patch(platform_detail("acme"), {FIELD: [APP, APP + "/"]}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()[FIELD] == [APP]
    assert get_with_origin(ACME, APP)[ALLOW_ORIGIN] == APP
    assert admin_client(ACME).get(SETTINGS).json()[FIELD] == [APP]

    listed = {t["slug"]: t for t in operator_client.get("/api/platform/tenants/").json()["results"]}
    assert listed["acme"][FIELD] == [APP]
    assert listed["globex"][FIELD] == []

    # Other fields of the platform PATCH leave the origins alone.
    response = operator_client.patch(platform_detail("acme"), {"name": "Acme Two"}, format="json")
    assert response.json()[FIELD] == [APP]


@pytest.mark.parametrize(
    "origin", ["https://evil.example:\u00b2", "https://evil.example:\u0663", "https://\udcff.example"]
)
def test_an_odd_origin_header_is_no_origin_never_a_500(origin: str) -> None:
    """HTTP headers arrive as latin-1: any byte can be in Origin. "\u00b2".isdigit() is true."""
    allow(["https://app.acme.test"])
    try:
        response = api_client(ACME).get("/api/products/", HTTP_ORIGIN=origin)
    except UnicodeEncodeError:  # the test client itself cannot send a lone surrogate
        return
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response


@pytest.mark.parametrize("entry", ["https://a.example.com:\u00b2", "https://a.example.com\ud800"])
def test_odd_characters_in_an_origin_are_a_400(entry: str) -> None:
    body = json.dumps({"cors_allowed_origins": [entry]})  # ASCII: the surrogate as \ud800
    response = admin_client(ACME).patch("/api/tenant/", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert "cors_allowed_origins" in response.json()["errors"]
