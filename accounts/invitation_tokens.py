"""The one-time tokens of invitation links.

A token is 32 random bytes (``secrets.token_urlsafe``), shown only in the
emailed link. The database keeps its HMAC-SHA256, keyed with SECRET_KEY and
computed over the tenant (schema name and tenant row id) as well as the
token: a token copied to another tenant's host hashes to something else
there, and so does one replayed after a purged tenant's schema name is
provisioned again. Rotating SECRET_KEY keeps pending invitations working for
as long as the old key is in SECRET_KEY_FALLBACKS.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from django.conf import settings
from django.utils.crypto import salted_hmac

from tenants.db import connection, current_tenant_id

_SALT = "accounts.invitation"
MAX_LENGTH = 128  # what a link may carry; token_urlsafe(32) is 43 characters
_WELL_FORMED = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_LENGTH}}}")


def well_formed(token: Any) -> bool:
    """Whether ``token`` could be one of ours (token_urlsafe's alphabet): what
    is not is refused before any hashing or query (NUL, lone surrogates)."""
    return isinstance(token, str) and _WELL_FORMED.fullmatch(token) is not None


def _hash(token: str, secret: str | bytes) -> str:
    tenant = f"{connection.schema_name}:{current_tenant_id()}"
    return salted_hmac(_SALT, f"{tenant}|{token}", secret=secret, algorithm="sha256").hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh token and the hash to store, for the current tenant."""
    token = secrets.token_urlsafe(32)
    return token, _hash(token, settings.SECRET_KEY)


def hashes_of(token: str) -> list[str]:
    """What ``token`` hashes to in the current tenant, under the current key
    and each fallback key (the stored hash is one of these if it is this
    tenant's token)."""
    return [_hash(token, secret) for secret in [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]]
