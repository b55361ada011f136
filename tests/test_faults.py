"""The API when a backing service is away (core/outages.py), without starting
servers: the database on a port nobody listens on, Redis likewise.
scripts/faults.py runs the same outages for real, under load.

* PostgreSQL away: 503 ``database_unavailable`` in the error shape, whether
  the error is raised in a DRF view or before DRF (the tenant middleware);
  a persistent connection that died is replaced on the next request.
* Redis away: hosts resolve from the database, throttles count there, and
  writes to tenants are refused (503) and rolled back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import close_old_connections
from django.db import connection as django_connection
from django.test import Client
from django_tenants.utils import schema_context

from accounts.models import RateCounter
from tenants import cache as tenant_cache
from tenants.models import Tenant
from tests.helpers import ACME, PLATFORM, admin_client, api_client, assert_error, assert_throttled, jwt_login
from tests.processes import database_url, free_port

ME = "/api/auth/users/me/"


@contextmanager
def database_away() -> Iterator[None]:
    """Every new connection of this process is refused until the block ends
    (a real psycopg connection error, as when PostgreSQL is down)."""
    db = django_connection.settings_dict
    saved = db["HOST"], db["PORT"]
    django_connection.close()
    db["HOST"], db["PORT"] = "127.0.0.1", str(free_port())
    try:
        yield
    finally:
        django_connection.close()
        db["HOST"], db["PORT"] = saved


def assert_database_unavailable(response: Any) -> None:
    assert_error(response, 503, code="database_unavailable")
    assert response["Retry-After"].isdigit(), dict(response.headers)


def test_database_away_in_a_drf_view_is_a_503(committed: Callable[[str], None]) -> None:
    token = jwt_login(ACME, ACME.admin_email)["access"]  # the host is cached from here on
    client = api_client(ACME, token=token)
    with database_away():
        assert_database_unavailable(client.get(ME))  # authentication's user lookup
        assert_database_unavailable(client.get("/api/products/"))
        assert client.get("/api/health/").status_code == 200  # nothing there needs the database
    assert client.get(ME).json()["email"] == ACME.admin_email


def test_database_away_before_drf_is_a_503_too(committed: Callable[[str], None]) -> None:
    """The tenant middleware's lookup of an uncached host fails before any view:
    Django's handler500 answers, with the exception in flight."""
    tenant_cache.clear()
    browser = Client(HTTP_HOST=ACME.host, raise_request_exception=False)
    with database_away():
        assert_database_unavailable(browser.get("/api/health/"))
        assert_database_unavailable(browser.get("/admin/login/"))  # a Django view, not DRF
        login = {"email": PLATFORM.admin_email, "password": "whatever"}
        assert_database_unavailable(api_client(PLATFORM).post("/api/auth/jwt/create/", login, format="json"))
    assert browser.get("/api/health/").json()["schema"] == ACME.schema


def test_a_dead_persistent_connection_is_replaced_on_the_next_request(committed: Callable[[str], None]) -> None:
    """PostgreSQL restarted (here: the backend terminated): CONN_HEALTH_CHECKS
    drop the persistent connection at its next use, and the request is served
    on a new one. close_old_connections() is the request boundary a WSGI
    server makes (the test client skips it)."""
    assert settings.DATABASES["default"]["CONN_MAX_AGE"] > 0
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True
    client = api_client(ACME, token=jwt_login(ACME, ACME.admin_email)["access"])
    close_old_connections()
    assert client.get(ME).status_code == 200
    close_old_connections()
    assert django_connection.connection is not None, "CONN_MAX_AGE keeps the connection between requests"
    dead = django_connection.connection.info.backend_pid
    with psycopg.connect(database_url(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [dead])
    close_old_connections()
    assert client.get(ME).json()["email"] == ACME.admin_email
    assert django_connection.connection.info.backend_pid != dead


@pytest.fixture
def redis_away(settings: Any) -> str:
    """Both caches (and REDIS_URL, which the throttles read) on a Redis nobody runs."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    redis = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": url}
    settings.REDIS_URL = url
    settings.CACHES = {
        "default": {**redis, "KEY_FUNCTION": "django_tenants.cache.make_key"},
        "tenants": {**redis, "KEY_PREFIX": "td-tenants"},
    }
    return url


def test_redis_away_hosts_resolve_from_the_database(db: None, redis_away: str) -> None:
    client = api_client(ACME, user=ACME.admin_email)  # the login's throttles count in the database
    assert client.get("/api/health/").json()["schema"] == ACME.schema
    assert client.get(ME).json()["email"] == ACME.admin_email
    assert_error(api_client(f"nobody.{PLATFORM.host}").get("/api/health/"), 404, code="unknown_host")


def test_redis_away_logins_are_still_throttled_in_the_database(
    db: None, redis_away: str, rates: Callable[..., None]
) -> None:
    rates(login_ip="2/min")
    login = {"email": ACME.admin_email, "password": "wrong-password"}
    client = api_client(ACME)
    for _ in range(2):
        assert_error(client.post("/api/auth/jwt/create/", login, format="json"), 401)
    assert_throttled(client.post("/api/auth/jwt/create/", login, format="json"))
    with schema_context(ACME.schema):
        assert RateCounter.objects.filter(key__startswith="login_ip:").exists()


def test_redis_away_tenant_changes_are_refused_and_rolled_back(db: None, redis_away: str) -> None:
    """A suspension whose cached answers cannot be evicted would be served
    stale once Redis is back: refused instead, and nothing written."""
    operator = admin_client(PLATFORM)
    response = operator.patch("/api/platform/tenants/acme/", {"is_active": False}, format="json")
    assert_error(response, 503, code="tenant_cache_unavailable")
    assert response["Retry-After"].isdigit()
    assert Tenant.objects.get(slug="acme").is_active is True
    response = operator.post("/api/platform/tenants/acme/domains/", {"domain": "shop.acme.test"}, format="json")
    assert_error(response, 503, code="tenant_cache_unavailable")
    assert not Tenant.objects.get(slug="acme").domains.filter(domain="shop.acme.test").exists()
