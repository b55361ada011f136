"""Request ids and the request's log line.

``RequestIdMiddleware`` runs before django-structlog's ``RequestMiddleware``:
an incoming ``X-Request-ID`` is kept when well-formed (8 to 128 characters of
letters, digits and ``._:-``), anything else is replaced by a new UUID, so a
client cannot inject text into the logs or reuse an id shaped to confuse
them. django-structlog then binds it to every log line of the request (and,
through its Celery integration, of the tasks the request queues); the
response carries it back.

The receivers below complete django-structlog's ``request_finished`` line
with what an operator filters on: tenant schema, method, path, status,
duration and the client address (the same one DRF's throttles use, so
``NUM_PROXIES`` decides which X-Forwarded-For entry counts).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from django.conf import settings
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django_structlog import signals

from core.metrics import METHODS, REQUEST_SECONDS

HEADER = "X-Request-ID"
_META = "HTTP_X_REQUEST_ID"
WELL_FORMED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,127}")


def request_id_for(incoming: str | None) -> str:
    return incoming if incoming and WELL_FORMED.fullmatch(incoming) else str(uuid.uuid4())


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_for(request.META.get(_META))
        request.META[_META] = request_id  # what django-structlog reads
        request.request_id = request_id  # type: ignore[attr-defined]
        started = request._started = time.perf_counter()  # type: ignore[attr-defined]
        response = self.get_response(request)  # exceptions arrive here as 500 responses
        match = getattr(request, "resolver_match", None)
        # URL names, not paths: a bounded label set (unresolved paths are "none").
        REQUEST_SECONDS.labels(
            view=(match.view_name if match else None) or "none",
            method=request.method if request.method in METHODS else "other",
            status=response.status_code,
        ).observe(time.perf_counter() - started)
        response[HEADER] = request_id
        return response


def client_ip(request: HttpRequest) -> str:
    """The caller's address as DRF's throttles see it."""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    proxies = int(settings.REST_FRAMEWORK.get("NUM_PROXIES") or 0)
    if forwarded and proxies:
        hops = [hop.strip() for hop in forwarded.split(",")]
        return hops[-min(proxies, len(hops))]
    return str(request.META.get("REMOTE_ADDR", ""))


@receiver(signals.bind_extra_request_finished_metadata)
def _finished(sender: Any, request: HttpRequest, response: HttpResponse, log_kwargs: dict[str, Any], **kw: Any) -> None:
    started = getattr(request, "_started", None)
    match = getattr(request, "resolver_match", None)
    seconds = time.perf_counter() - started if started else None
    log_kwargs.update(
        # What the tenant middleware resolved for this request (None: the
        # request never got that far), never the connection's schema, which
        # may still be a previous request's.
        tenant=structlog.contextvars.get_contextvars().get("tenant"),
        method=request.method,
        path=request.path,
        view=match.view_name if match else None,
        status=response.status_code,
        duration_ms=round(seconds * 1000, 2) if seconds is not None else None,
        ip=client_ip(request),
    )


@receiver(signals.bind_extra_request_failed_metadata)
def _failed(sender: Any, request: HttpRequest, exception: Exception, log_kwargs: dict[str, Any], **kw: Any) -> None:
    tenant = structlog.contextvars.get_contextvars().get("tenant")
    log_kwargs.update(tenant=tenant, method=request.method, path=request.path)
