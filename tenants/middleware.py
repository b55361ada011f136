"""Pick the schema from the Host header, before anything else runs.

* ``TENANT_BASE_DOMAIN`` -> public schema, platform urlconf;
* a known tenant domain -> that tenant's schema, tenant urlconf;
  403 JSON on every path while the tenant is suspended;
* anything else -> 404 JSON (no fallback to public, no HTML).

This is the deployment's host validation (ALLOWED_HOSTS admits every host):
the Domain table decides, through the cache, so a domain added at run time
is served at once, with no settings to edit and no restart.

Replaces django-tenants' ``TenantMainMiddleware``, whose lookup is one
uncached query per request.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.http.request import split_domain_port
from django.urls import set_urlconf

from core.errors import json_error
from tenants.cache import resolve_host
from tenants.db import connection, use_tenant


class TenantMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.base_domain: str = settings.TENANT_BASE_DOMAIN

    def __call__(self, request: HttpRequest) -> HttpResponse:
        structlog.contextvars.bind_contextvars(tenant=None)  # until this request's host is resolved
        if "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", ""):
            # PostgreSQL refuses NUL in text; no handler should ever see one.
            return json_error(request, 400, "NUL bytes are not allowed in the URL.", "bad_request")
        try:
            host, _port = split_domain_port(request.get_host())  # its syntax; which hosts: below
        except DisallowedHost:
            host = ""
        if host.startswith("www."):
            host = host[4:]
        if not host:
            return json_error(request, 404, "Unknown host.", "unknown_host")

        if host == self.base_domain:
            connection.set_schema_to_public()
            request.tenant = None  # type: ignore[attr-defined]
            request.urlconf = settings.PUBLIC_SCHEMA_URLCONF  # type: ignore[attr-defined]
        else:
            tenant = resolve_host(host)
            if tenant is None:
                return json_error(request, 404, "Unknown host.", "unknown_host")
            if not tenant.is_active:
                structlog.contextvars.bind_contextvars(tenant=tenant.schema_name)
                return json_error(request, 403, "This tenant is suspended.", "tenant_suspended")
            tenant.domain_url = host
            request.tenant = tenant  # type: ignore[attr-defined]
            use_tenant(tenant)  # no new SET search_path when this connection serves the schema already
            request.urlconf = settings.ROOT_URLCONF  # type: ignore[attr-defined]
        set_urlconf(request.urlconf)  # type: ignore[attr-defined]
        structlog.contextvars.bind_contextvars(tenant=connection.schema_name)  # on every line of the request
        return self.get_response(request)
