"""Readiness and metrics, answered before host routing so that a kubelet or
Prometheus reaching a pod by its IP gets them (on every host, known or not).

* ``GET /api/health/`` on an IP address that is not one of the product's
  hosts (a pod IP, 127.0.0.1): liveness, no I/O. On the product's own hosts it is routed
  like any API path (config/views.py), so a suspended tenant's host says so.
* ``GET /api/health/ready/``: django-health-check's checks of the database,
  both caches and the broker, run concurrently; 200 when all pass, else 503
  in the API's error shape naming what is down.
* ``GET /api/metrics/``: Prometheus text (django-prometheus' HTTP and
  database metrics, the product's own in core/metrics.py, and the outbox's
  counts), for a bearer ``METRICS_TOKEN`` or an address in
  ``METRICS_ALLOWED_NETWORKS``; 404 to anyone else, and to everyone when
  neither is set. Under gunicorn every worker writes to
  PROMETHEUS_MULTIPROC_DIR (deploy/gunicorn.conf.py) and a scrape reads all.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import os
from collections.abc import Callable, Iterator

from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.request import split_domain_port
from health_check.base import HealthCheck, HealthCheckResult
from health_check.checks import Cache, Database
from health_check.contrib.redis import Redis
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.asyncio import Redis as AsyncRedis

from core.errors import error_body, json_error
from mail.models import OutboxEmail

LIVE_PATH = "/api/health/"
READY_PATH = "/api/health/ready/"
METRICS_PATH = "/api/metrics/"


def _checks() -> dict[str, HealthCheck]:
    checks: dict[str, HealthCheck] = {
        "database": Database(),
        "cache": Cache(alias="default"),
        "tenant_cache": Cache(alias="tenants"),
    }
    if settings.EMAIL_DELIVERY == "celery":
        url = settings.CELERY_BROKER_URL
        checks["broker"] = Redis(
            client_factory=lambda: AsyncRedis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        )
    return checks


def readiness() -> tuple[bool, dict[str, str]]:
    checks = _checks()

    async def run_all() -> list[HealthCheckResult]:
        return list(await asyncio.gather(*(check.get_result() for check in checks.values())))

    results = asyncio.run(run_all())
    report = {name: "ok" if not r.error else f"unavailable: {r.error}" for name, r in zip(checks, results, strict=True)}
    if "broker" not in report:
        report["broker"] = "not used: emails are sent in-process (no CELERY_BROKER_URL)"
    return all(not r.error for r in results), report


class OutboxCollector(Collector):
    """Emails by status, read at scrape time: a failed email is visible here."""

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # so that registering it does not collect (a query at import)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("tenantdesk_outbox_emails", "Emails in the outbox by status.", labels=["status"])
        counts = dict.fromkeys(OutboxEmail.Status.values, 0)
        try:
            with connection.cursor():  # connect (or fail) before the query builds
                pass
            counts.update(
                OutboxEmail.objects.values_list("status").annotate(n=Count("id")).order_by().values_list("status", "n")
            )
        except Exception:  # the scrape still answers when the database does not
            return
        for status, n in counts.items():
            gauge.add_metric([status], n)
        yield gauge


_OUTBOX = OutboxCollector()
REGISTRY.register(_OUTBOX)  # describe() is empty: registering runs no query


def metrics_body() -> bytes:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return generate_latest(REGISTRY)  # one process: its own registry
    registry = CollectorRegistry()  # gunicorn: every worker's files, and the outbox once
    multiprocess.MultiProcessCollector(registry)
    registry.register(_OUTBOX)
    return generate_latest(registry)


def metrics_allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return True
    networks = settings.METRICS_ALLOWED_NETWORKS
    if networks:
        try:
            address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
        except ValueError:
            return False
        return any(address in ipaddress.ip_network(net, strict=False) for net in networks)
    return False


def _probe_host(request: HttpRequest) -> bool:
    """An IP address that is not one of the product's hosts: what a kubelet
    (the pod's IP) or Docker's HEALTHCHECK (127.0.0.1) sends. Names are
    routed as ever, so an unknown name still answers 404."""
    host, _port = split_domain_port(request.META.get("HTTP_HOST", "") or request.META.get("SERVER_NAME", ""))
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    # Tenant domains are names (tenants.services.domain_add refuses addresses);
    # only the base domain may be an address, in a development set-up.
    return host != settings.TENANT_BASE_DOMAIN


class ProbesMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == LIVE_PATH and _probe_host(request):
            # A pod IP or 127.0.0.1 (a kubelet, Docker's HEALTHCHECK): liveness, no routing.
            # Our own hosts are routed (config/views.py): a suspended tenant answers 403 there.
            return JsonResponse({"status": "ok", "schema": None, "tenant": None})
        if request.path == READY_PATH:
            return self.ready(request)
        if request.path == METRICS_PATH:
            return self.metrics(request)
        return self.get_response(request)

    def ready(self, request: HttpRequest) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            return json_error(request, 405, f'Method "{request.method}" not allowed.', "method_not_allowed")
        ok, report = readiness()
        if ok:
            response: HttpResponse = JsonResponse({"status": "ready", "checks": report})
        else:
            down = [name for name, state in report.items() if state.startswith("unavailable")]
            body = {**error_body(f"Not ready: {', '.join(down)}.", "not_ready"), "checks": report}
            response = JsonResponse(body, status=503)
        response["Cache-Control"] = "no-store"
        return response

    def metrics(self, request: HttpRequest) -> HttpResponse:
        if not metrics_allowed(request):
            return json_error(request, 404, "Not found.", "not_found")
        if request.method not in ("GET", "HEAD"):
            return json_error(request, 405, f'Method "{request.method}" not allowed.', "method_not_allowed")
        return HttpResponse(metrics_body(), content_type=CONTENT_TYPE_LATEST)
