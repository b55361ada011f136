"""Which browser origins may call a tenant's API: its own list, per request.

django-cors-headers (``corsheaders.middleware.CorsMiddleware``, right after
``tenants.middleware.TenantMiddleware``) allows an origin when
``CORS_ALLOWED_ORIGINS`` lists it (it is empty) or when a receiver of
``check_request_enabled`` says yes. This one says yes when the host is a
tenant's and the request's ``Origin``, normalized like the stored ones, is in
that tenant's ``cors_allowed_origins``. The public host (``request.tenant``
is None) allows no origin.

No query: ``request.tenant`` is the instance cached by host (tenants.cache),
whose save evicts it, so a change is seen on the tenant's next request.
"""

from __future__ import annotations

import re
from typing import Any

from corsheaders.conf import conf
from django.http import HttpRequest

from tenants.models import Tenant
from tenants.services import normalize_origin


def origin_allowed(sender: Any, request: HttpRequest, **kwargs: Any) -> bool:
    # The middleware also asks this signal whether CORS applies to the path
    # at all: say yes only where CORS_URLS_REGEX applies (never /admin/).
    if not re.match(conf.CORS_URLS_REGEX, request.path_info):
        return False
    tenant = getattr(request, "tenant", None)
    origin = request.headers.get("origin")
    if not isinstance(tenant, Tenant) or not origin:
        return False
    # Read from the instance's own attributes: a cached instance pickled
    # before the column existed (a rolling deploy) would otherwise load it
    # with a query on every request. Missing means no origin, until evicted.
    allowed = tenant.__dict__.get("cors_allowed_origins") or ()
    if not allowed:
        return False
    if origin in allowed:  # browsers send origins already normalized
        return True
    try:
        return normalize_origin(origin) in allowed
    except Exception:  # any header a client can send: never a 500 for it
        return False
