"""Throttles whose keys always carry the tenant's schema.

Two kinds: per client IP (``NUM_PROXIES`` decides which address counts) and
per account (the email or username in the request body, normalised), so an
attacker spreading guesses over many IPs is still stopped on the account,
and a busy office behind one IP is still stopped per IP. Rates are read at
request time from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from tenants.db import connection


class _TenantThrottle(SimpleRateThrottle):
    def get_rate(self) -> str | None:
        return settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"].get(self.scope)

    def key_for(self, ident: str) -> str:
        return f"throttle:{self.scope}:{connection.schema_name}:{ident}"


class TenantIPThrottle(_TenantThrottle):
    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self.key_for(self.get_ident(request))


class TenantAccountThrottle(_TenantThrottle):
    def get_cache_key(self, request: Request, view: Any) -> str | None:
        data = request.data if isinstance(request.data, dict) else {}
        account = data.get("email") or data.get("username")
        if not isinstance(account, str) or not account.strip():
            return None  # nothing to count against; the IP throttle still applies
        digest = hashlib.sha256(account.strip().lower().encode()).hexdigest()[:32]
        return self.key_for(digest)  # short keys whatever the input


class LoginIPThrottle(TenantIPThrottle):
    scope = "login_ip"


class LoginAccountThrottle(TenantAccountThrottle):
    scope = "login_account"


class RegisterIPThrottle(TenantIPThrottle):
    scope = "register_ip"


class ResetIPThrottle(TenantIPThrottle):
    scope = "reset_ip"


class ResetAccountThrottle(TenantAccountThrottle):
    scope = "reset_account"
