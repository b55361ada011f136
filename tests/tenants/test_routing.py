"""Host routing, suspension, and the tenant cache (zero queries when warm)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection as django_connection
from django.db import transaction
from django.test.utils import CaptureQueriesContext

from core.errors import ApplicationError
from tenants import cache as tenant_cache
from tenants.db import connection
from tenants.models import Tenant
from tenants.services import domain_add, domain_remove, tenant_archive, tenant_provision, tenant_update
from tests.helpers import ACME, BASE, GLOBEX, PASSWORD, api_client, assert_error

REPO = Path(__file__).resolve().parents[2]


def _lookups(queries: list[dict[str, str]]) -> list[str]:
    return [q["sql"] for q in queries if not q["sql"].startswith("SET search_path")]


@pytest.mark.parametrize("host", ["nope.localhost", "evil.example.com", "acme.localhost.evil.com", "localhostx"])
def test_unknown_hosts_answer_404_json(db, host):
    response = api_client(host).get("/api/health/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Unknown host.", "code": "unknown_host"}


def test_public_and_tenant_urlconfs_are_separate(db):
    assert api_client(BASE).get("/api/auth/users/").status_code == 404
    assert api_client(ACME.host).get("/api/platform/tenants/").status_code == 404
    missing = api_client(ACME.host).get("/no/such/path/")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"


def test_each_host_gets_its_own_schema(db):
    assert api_client(ACME.host).get("/api/health/").json() == {"status": "ok", "schema": "acme", "tenant": "acme"}
    assert api_client(GLOBEX.host).get("/api/health/").json()["schema"] == "globex"
    assert api_client(BASE).get("/api/health/").json() == {"status": "ok", "schema": "public", "tenant": None}
    assert api_client(f"www.{ACME.host}").get("/api/health/").json()["tenant"] == "acme"
    assert api_client(f"{ACME.host}:8000").get("/api/health/").json()["tenant"] == "acme"


def test_warm_request_spends_no_query_on_tenant_resolution(db):
    client = api_client(ACME.host)
    with CaptureQueriesContext(django_connection) as cold:
        assert client.get("/api/health/").status_code == 200
    assert len(_lookups(cold.captured_queries)) == 1  # the one domain lookup
    assert "tenants_domain" in _lookups(cold.captured_queries)[0]

    for _ in range(3):
        with CaptureQueriesContext(django_connection) as warm:
            assert client.get("/api/health/").status_code == 200
        assert _lookups(warm.captured_queries) == []


def test_unknown_host_lookups_are_cached_too(db):
    api_client("ghost.localhost").get("/api/health/")
    with CaptureQueriesContext(django_connection) as warm:
        assert api_client("ghost.localhost").get("/api/health/").status_code == 404
    assert _lookups(warm.captured_queries) == []


@pytest.mark.parametrize("path", ["/api/health/", "/api/auth/jwt/create/", "/admin/", "/does/not/exist/"])
def test_suspended_tenant_answers_403_on_every_path(db, path):
    client = api_client(ACME.host)
    assert client.get("/api/health/").status_code == 200  # warm the cache first
    tenant_archive(tenant=Tenant.objects.get(slug="acme"))
    response = client.post(path, {}, format="json") if "jwt" in path else client.get(path)
    assert response.status_code == 403
    assert response.json() == {"detail": "This tenant is suspended.", "code": "tenant_suspended"}
    assert api_client(GLOBEX.host).get("/api/health/").status_code == 200


def test_reactivation_takes_effect_at_once(db):
    acme = Tenant.objects.get(slug="acme")
    tenant_archive(tenant=acme)
    assert api_client(ACME.host).get("/api/health/").status_code == 403
    tenant_update(tenant=acme, is_active=True)
    assert api_client(ACME.host).get("/api/health/").status_code == 200


def test_domain_changes_take_effect_at_once(db):
    acme = Tenant.objects.get(slug="acme")
    extra = "shop-acme.localhost"
    assert api_client(extra).get("/api/health/").status_code == 404  # cached as unknown
    domain_add(tenant=acme, domain=extra)
    assert api_client(extra).get("/api/health/").json()["tenant"] == "acme"
    domain_remove(tenant=acme, domain=extra)
    assert api_client(extra).get("/api/health/").status_code == 404


def test_new_tenant_host_is_served_even_if_asked_for_before(db):
    assert api_client("newco.localhost").get("/api/health/").status_code == 404
    tenant_provision(slug="newco", name="NewCo", admin_email="a@newco.test", admin_password=PASSWORD)
    assert api_client("newco.localhost").get("/api/health/").json()["tenant"] == "newco"


def test_template_is_never_served(db):
    template = Tenant.objects.get(is_template=True)
    assert not template.domains.exists()


def _redis_url() -> str | None:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
    except OSError:
        return None
    return "redis://127.0.0.1:6379/15"


@pytest.mark.parametrize("backend", ["files", "redis"])
def test_suspension_reaches_every_process(committed, settings, backend):
    """Another OS process suspends the tenant; this process, whose cache is
    warm, refuses the very next request: nothing is cached per process."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    if backend == "redis":
        url = _redis_url()
        if url is None:
            pytest.skip("no Redis at 127.0.0.1:6379")
        env["REDIS_URL"] = url
        tenants_cache = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": url, "KEY_PREFIX": "td-tenants"}
    else:
        tenants_cache = {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(REPO / ".data" / "cache" / "tenants"),
        }
    settings.CACHES = {**settings.CACHES, "tenants": tenants_cache}
    tenant_cache.clear()
    committed("multiproc")
    tenant_provision(slug="multiproc", name="M", admin_email="a@m.test", admin_password=PASSWORD)
    client = api_client("multiproc.localhost")
    assert client.get("/api/health/").status_code == 200
    with CaptureQueriesContext(django_connection) as warm:
        assert client.get("/api/health/").status_code == 200
    assert _lookups(warm.captured_queries) == []

    db = connection.settings_dict
    host = db["HOST"].replace("/", "%2F")
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{host}:{db['PORT'] or 5432}/{db['NAME']}"
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    script = (
        "import django; django.setup();"
        "from tenants.models import Tenant; from tenants.services import tenant_archive;"
        "tenant_archive(tenant=Tenant.objects.get(slug='multiproc'))"
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, check=True)
    assert client.get("/api/health/").status_code == 403


# --- edge cases -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("domain", ["www.shop.example", "www.acme-corp.localhost", "WWW.Shop.Example."])
def test_a_domain_beginning_with_www_is_refused(db, operator_client, domain):
    """The router serves www.<host> as <host>: such a domain could never be reached."""
    acme = Tenant.objects.get(slug=ACME.slug)
    with pytest.raises(ApplicationError) as refused:
        domain_add(tenant=acme, domain=domain)
    assert refused.value.field == "domain"
    response = operator_client.post(f"/api/platform/tenants/{ACME.slug}/domains/", {"domain": domain}, format="json")
    assert_error(response, 400, field="domain")
    assert not acme.domains.filter(domain__startswith="www.").exists()


def test_a_resolve_racing_a_suspension_cannot_cache_the_old_answer(db):
    """A resolve reads the domain row; before it stores its answer, the tenant
    is suspended (and the host evicted). The stale answer must not be served."""
    tenant_provision(slug="racy", name="Racy", admin_email="a@racy.test", admin_password=PASSWORD)
    host = f"racy.{BASE}"
    suspended: list[bool] = []

    def suspend_after_the_lookup(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if not suspended and "tenants_domain" in sql and "tenants_tenant" in sql:
            suspended.append(True)  # once: the suspension's own queries pass through here too
            tenant_archive(tenant=Tenant.objects.get(slug="racy"))
        return result

    with django_connection.execute_wrapper(suspend_after_the_lookup):
        first = tenant_cache.resolve_host(host)
    assert suspended
    assert first is not None  # it read the row before the suspension
    again = tenant_cache.resolve_host(host)
    assert again is not None
    assert again.is_active is False
    assert_error(api_client(host).get("/api/health/"), 403, code="tenant_suspended")


def test_no_cache_key_lives_forever_for_a_host_asked_about(db, monkeypatch):
    """A flood of made-up hosts must not leave keys without expiry behind."""
    timeouts = []
    cache = tenant_cache._cache()
    for name in ("add", "set", "set_many"):
        original = getattr(cache, name)

        def recording(*args, _original=original, **kwargs):
            timeouts.append(kwargs.get("timeout", args[2] if len(args) > 2 else "default"))
            return _original(*args, **kwargs)

        monkeypatch.setattr(cache, name, recording)
    for n in range(3):
        assert tenant_cache.resolve_host(f"made-up-{n}.{BASE}") is None
    tenant_cache.evict_hosts([f"made-up-0.{BASE}"])
    assert timeouts
    assert None not in timeouts, timeouts


def _search_path_sets(host: str, path: str = "/api/products/") -> int:
    with CaptureQueriesContext(django_connection) as queries:
        assert api_client(host).get(path).status_code == 200
    return sum(1 for q in queries.captured_queries if q["sql"].startswith("SET search_path"))


def test_a_connection_serving_the_same_tenant_again_sets_no_search_path(db):
    """The tenant middleware keeps django-tenants' knowledge of the session's
    search_path when the schema stays the same (tenants.db.use_tenant): one
    round trip less per request. Another tenant, or the public host, sets it."""
    _search_path_sets(ACME.host)  # warm: cache, connection
    assert _search_path_sets(ACME.host) == 0
    assert _search_path_sets(GLOBEX.host) == 1
    assert _search_path_sets(GLOBEX.host) == 0
    assert _search_path_sets(ACME.host) == 1
    with CaptureQueriesContext(django_connection) as queries:  # the data is acme's all the same
        body = api_client(ACME.host).get("/api/health/").json()
    assert body["schema"] == "acme"
    assert not [q for q in queries.captured_queries if q["sql"].startswith("SET search_path")]


def test_after_a_rollback_the_search_path_is_set_again(db):
    _search_path_sets(ACME.host)
    assert _search_path_sets(ACME.host) == 0
    sid = transaction.savepoint()
    with django_connection.cursor() as cursor:
        cursor.execute("SET search_path = public")  # what a rolled-back savepoint may undo or leave
    transaction.savepoint_rollback(sid)
    assert _search_path_sets(ACME.host) == 1
