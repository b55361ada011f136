"""What an operator relies on: request ids, the request's log line, readiness,
metrics behind a token, production settings that pass ``check --deploy``."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from tenants import cache as tenant_cache
from tenants.models import Tenant
from tests.helpers import ACME, BASE, GLOBEX, api_client
from tests.processes import REPO, Process, child_env, http, start_web

pytestmark = pytest.mark.django_db

# --- request ids ---------------------------------------------------------------------------


@pytest.mark.parametrize("incoming", ["0f6b8b2e-4d7e-4c1a-9d0a-3f1c2b4a5e6f", "req_12345678", "lb-host:1234.abc"])
def test_a_well_formed_request_id_is_kept_and_returned(incoming: str) -> None:
    response = api_client(ACME).get("/api/health/", HTTP_X_REQUEST_ID=incoming)
    assert response["X-Request-ID"] == incoming


@pytest.mark.parametrize("incoming", ["", "short", "a" * 129, "has space in it", "new\nline-injected", "ünïcode-1234"])
def test_a_malformed_request_id_is_replaced(incoming: str) -> None:
    response = api_client(ACME).get("/api/health/", HTTP_X_REQUEST_ID=incoming)
    made = response["X-Request-ID"]
    assert made != incoming
    assert uuid.UUID(made)


def test_every_response_carries_a_request_id_errors_included() -> None:
    for response in (
        api_client("nowhere.example").post("/api/auth/jwt/create/", {}, format="json"),  # 404 unknown host
        api_client(ACME).get("/api/auth/users/me/"),  # 401
        api_client(ACME).post("/api/auth/jwt/create/", b"{", content_type="application/json"),  # 400
    ):
        assert response.status_code >= 400
        assert uuid.UUID(response["X-Request-ID"])


# --- the log line, as production writes it ---------------------------------------------------


@pytest.fixture
def web(tmp_path: Path, committed: Any) -> Any:
    proc, port = start_web(child_env(LOG_FORMAT="json"), tmp_path)
    yield proc, port
    proc.kill()


def json_lines(proc: Process) -> list[dict[str, Any]]:
    return [json.loads(line) for line in proc.output().splitlines() if line.startswith("{")]


def test_one_json_line_per_request_with_what_operators_filter_on(web: tuple[Process, int]) -> None:
    proc, port = web
    request_id = f"ops-{uuid.uuid4()}"
    body = json.dumps({"email": ACME.admin_email, "password": ACME.password}).encode()
    status, headers, content = http(
        port, "POST", "/api/auth/jwt/create/", host=ACME.host, body=body, headers={"X-Request-ID": request_id}
    )
    assert status == 200, content
    token = json.loads(content)["access"]
    status, headers, _ = http(
        port,
        "GET",
        "/api/products/",
        host=ACME.host,
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": request_id + "-2"},
    )
    assert status == 200
    assert headers["X-Request-ID"] == request_id + "-2"

    lines = [line for line in json_lines(proc) if str(line.get("request_id", "")).startswith(request_id)]
    login = [line for line in lines if line["request_id"] == request_id and line["event"] == "request_finished"]
    products = [
        line for line in lines if line["request_id"] == request_id + "-2" and line["event"] == "request_finished"
    ]
    assert len(login) == 1, lines  # one line per request: no request_started at INFO
    assert len(products) == 1, lines
    (line,) = products
    assert line["tenant"] == ACME.schema
    assert line["method"] == "GET"
    assert line["path"] == "/api/products/"
    assert line["status"] == 200
    assert line["view"] == "product-list"
    assert isinstance(line["duration_ms"], float | int)
    assert isinstance(line["user_id"], int)  # the JWT's user, known once DRF authenticated
    assert line["level"] == "info"
    assert "timestamp" in line
    assert not [line for line in lines if line["event"] == "request_started"]


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_an_error_is_logged_without_local_variables(log_format: str) -> None:
    """A traceback must not carry the locals of its frames: they hold passwords and tokens."""
    script = (
        "import django, logging; django.setup()\n"
        "password = 'hunter2-secret'\n"
        "try:\n    raise ValueError('boom')\n"
        "except ValueError:\n    logging.getLogger('x').exception('failed')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=child_env(LOG_FORMAT=log_format),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "ValueError" in result.stderr
    assert "hunter2" not in result.stderr
    if log_format == "json":
        (line,) = [json.loads(x) for x in result.stderr.splitlines() if x.startswith("{")]
        assert line["event"] == "failed"
        assert line["exception"][0]["exc_type"] == "ValueError"


# --- health ------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", [BASE, ACME.host, GLOBEX.host, "10.1.2.3:8000", "127.0.0.1", "unknown.example"])
def test_readiness_answers_on_every_host(host: str) -> None:
    response = api_client(host).get("/api/health/ready/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ready"
    assert {"database", "cache", "tenant_cache", "broker"} <= set(body["checks"])
    assert body["checks"]["database"] == "ok"
    assert response["Cache-Control"] == "no-store"


@override_settings(EMAIL_DELIVERY="celery", CELERY_BROKER_URL="redis://127.0.0.1:1/0")
def test_readiness_is_503_naming_the_broker_when_it_is_down() -> None:
    response = api_client(ACME).get("/api/health/ready/")
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "not_ready"
    assert body["detail"] == "Not ready: broker."
    assert body["checks"]["broker"].startswith("unavailable")
    assert body["checks"]["database"] == "ok"


def test_readiness_is_503_naming_the_cache_when_it_is_down(settings: Any) -> None:
    settings.CACHES = {
        **settings.CACHES,
        "default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"},
    }
    response = api_client(BASE).get("/api/health/ready/")
    assert response.status_code == 503
    assert "cache" in response.json()["detail"]


def test_liveness_of_a_pod_ip_does_no_io(django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(0):
        response = api_client("10.1.2.3:8000").get("/api/health/")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    # The product's own unknown hosts are still 404 (routing decides there).
    assert api_client("ghost.localhost").get("/api/health/").status_code == 404


def test_readiness_refuses_writes() -> None:
    response = api_client(BASE).post("/api/health/ready/")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


# --- metrics -----------------------------------------------------------------------------------


def test_metrics_are_not_public(settings: Any) -> None:
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = []
    assert api_client(BASE).get("/api/metrics/").status_code == 404  # off when unconfigured
    settings.METRICS_TOKEN = secrets.token_urlsafe(32)
    for header in ("", "Bearer wrong", f"Bearer {settings.METRICS_TOKEN}x", settings.METRICS_TOKEN):
        response = api_client(BASE).get("/api/metrics/", HTTP_AUTHORIZATION=header)
        assert response.status_code == 404, header
        assert response.json()["code"] == "not_found"


def test_metrics_by_token_on_any_host_with_bounded_labels(settings: Any) -> None:
    settings.METRICS_TOKEN = token = secrets.token_urlsafe(32)
    api_client(ACME, user=ACME.admin_email).get("/api/products/")
    api_client(GLOBEX, user=GLOBEX.admin_email).get("/api/products/")
    for host in (BASE, "10.1.2.3:8000"):
        response = api_client(host).get("/api/metrics/", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert 'tenantdesk_http_request_duration_seconds_count{method="GET",status="200",view="product-list"}' in text
    assert "django_db_query_duration_seconds" in text  # database time
    assert 'tenantdesk_outbox_emails{status="failed"}' in text
    # No label per tenant, user or host.
    for value in ("acme", "globex", ACME.admin_email, "10.1.2.3"):
        assert value not in text, value


def test_metrics_by_network(settings: Any) -> None:
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert api_client(BASE).get("/api/metrics/", REMOTE_ADDR="10.4.5.6").status_code == 200
    assert api_client(BASE).get("/api/metrics/", REMOTE_ADDR="192.0.2.1").status_code == 404


def test_provisioning_is_counted(settings: Any, operator_client: Any) -> None:
    settings.METRICS_TOKEN = token = secrets.token_urlsafe(32)

    def provisions() -> float:
        text = api_client(BASE).get("/api/metrics/", HTTP_AUTHORIZATION=f"Bearer {token}").content.decode()
        line = next(x for x in text.splitlines() if x.startswith('tenantdesk_tenant_provisions_total{outcome="ok"}'))
        return float(line.split()[-1])

    before = provisions()
    response = operator_client.post(
        "/api/platform/tenants/",
        {
            "slug": "metered",
            "name": "Metered",
            "admin_email": "a@metered.test",
            "admin_password": "Corr3ct-Horse-Battery",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert provisions() == before + 1


# --- production settings ---------------------------------------------------------------------

PRODUCTION = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "DATABASE_URL": "postgres://app@db.internal:6432/tenantdesk",
    "REDIS_URL": "redis://redis.internal:6379/0",
    "TENANT_BASE_DOMAIN": "example.com",
    "BEHIND_TLS_PROXY": "true",
    "NUM_PROXIES": "1",
    "EMAIL_URL": "smtp+tls://mailer:secret@smtp.example.com:587",
}


def manage(*args: str, **env: str | None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")}
    base.update(DJANGO_SETTINGS_MODULE="config.settings")
    for key, value in env.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=base, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_is_clean_with_the_documented_production_values() -> None:
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize("missing", ["DATABASE_URL", "SECRET_KEY", "EMAIL_URL"])
def test_production_refuses_to_start_without(missing: str) -> None:
    result = manage("check", **{**PRODUCTION, missing: None})
    assert result.returncode != 0
    assert missing in result.stderr


def test_production_never_starts_the_embedded_database(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(DJANGO_ENV="production", EMBEDDED_PG_DIR=str(tmp_path / "pg"))
    result = subprocess.run(
        [sys.executable, "-m", "devtools.embedded_db", "run", "--", "true"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "never starts the embedded PostgreSQL" in result.stderr
    assert not (tmp_path / "pg").exists()


@override_settings(SECURE_SSL_REDIRECT=True)
def test_ssl_redirect_spares_the_probes() -> None:
    assert api_client(BASE).get("/api/health/").status_code == 200
    assert api_client("10.1.2.3").get("/api/health/ready/").status_code == 200
    redirected = api_client(ACME).get("/api/products/")
    assert redirected.status_code == 301
    assert redirected["Location"].startswith("https://")


def finished_lines(caplog: Any) -> list[dict[str, Any]]:
    return [r.msg for r in caplog.records if isinstance(r.msg, dict) and r.msg.get("event") == "request_finished"]


def test_the_log_line_names_the_requests_own_tenant_never_a_previous_ones(caplog: Any) -> None:
    """The connection keeps the last schema it was set to; a request refused
    before routing must not be logged as that tenant's."""
    caplog.set_level("INFO")
    api_client(ACME).get("/api/health/")  # the connection is now on acme's schema
    api_client("ghost.localhost").get("/api/health/")  # unknown host: refused before routing
    api_client("10.0.0.9").get("/api/health/ready/")  # answered before routing
    Tenant.objects.filter(slug=GLOBEX.slug).update(is_active=False)
    tenant_cache.clear()
    api_client(GLOBEX).get("/api/health/")  # suspended: refused, but it is globex's request
    lines = finished_lines(caplog)
    assert [(line["path"], line["status"], line["tenant"]) for line in lines] == [
        ("/api/health/", 200, "acme"),
        ("/api/health/", 404, None),
        ("/api/health/ready/", 200, None),
        ("/api/health/", 403, "globex"),
    ]
