"""Throttles on every door a password or an email address can be tried at.

Two kinds of key, both within the tenant (the counters live in its schema, or
carry it in Redis):

* per client IP (``NUM_PROXIES`` decides which address counts);
* per **account**: the account the identifier resolves to (the same lookups
  the login uses: email in any case, which PostgreSQL folds with ``UPPER`` so
  that a dotless i (U+0131) finds an ``i``; or the exact username), so the email,
  its other spellings and the username of one account share one counter. An
  identifier that names nobody is counted under its folded form, so unknown
  and known addresses are throttled alike (no enumeration through 429s).

Password guesses share one per-account counter (scope ``login_account``)
whatever the door: ``jwt/create``, the Django admin login form, and the
``current_password`` checks of ``set_password``, ``set_email`` and account
deletion. Counting is shared by every process (accounts.auth.rates). Rates
are read at request time from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]``.
"""

from __future__ import annotations

import hashlib
import math
import unicodedata
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from accounts.auth import rates
from accounts.models import User

LOGIN_IP = "login_ip"
PASSWORD_GUESSES = "login_account"  # per account, every door
RESET_IP = "reset_ip"
RESET_ACCOUNT = "reset_account"
REGISTER_IP = "register_ip"

_PERIODS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400}


def _rate(scope: str) -> tuple[int, int] | None:
    """("10/min") -> (10, 60); None when the scope has no rate (not throttled)."""
    rate = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"].get(scope)
    if not rate:
        return None
    number, period = rate.split("/")
    return int(number), _PERIODS[period]


def account_key(*, email: Any = None, username: Any = None) -> str | None:
    """The key of the account an identifier names (see the module's docstring).

    The identifier is taken as the login doors take it: a number as its text
    (DRF's CharField), NFKC-normalised (Django's login form), trimmed. One
    that could not be stored (NUL, a lone surrogate) names nobody and is
    counted by its digest, without a query."""
    value = email if email else username
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        return None
    value = unicodedata.normalize("NFKC", value).strip()
    try:
        digest = hashlib.sha256(value.upper().encode("utf-8")).hexdigest()[:32]
    except UnicodeEncodeError:
        return "unknown:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    if "\x00" in value:
        return f"unknown:{digest}"
    lookup = {"email__iexact": value} if email else {"username": value}
    pk = User.objects.filter(**lookup).values_list("pk", flat=True).first()
    return f"user:{pk}" if pk is not None else f"unknown:{digest}"


def client_ip(request: HttpRequest | Request) -> str:
    """DRF's client address (NUM_PROXIES decides), for a DRF or a Django request:
    get_ident reads only ``META``."""
    return str(BaseThrottle().get_ident(request))  # type: ignore[arg-type]


def hit(scope: str, ident: str | None) -> float | None:
    """Count one attempt; the seconds to wait if that went over the scope's
    rate, else None."""
    rate = _rate(scope)
    if ident is None or rate is None:
        return None
    limit, period = rate
    count, remaining = rates.hit(f"{scope}:{ident}", period)
    return remaining if count > limit + 1e-9 else None


def password_guess(request: HttpRequest | Request, *, email: Any = None, username: Any = None) -> float | None:
    """A login attempt at any door: counted per IP and per account. The seconds
    to wait when either is spent, else None (the attempt may go on)."""
    waits = [
        hit(LOGIN_IP, client_ip(request)),
        hit(PASSWORD_GUESSES, account_key(email=email, username=username)),
    ]
    spent = [w for w in waits if w is not None]
    return max(spent) if spent else None


def retry_after(wait: float) -> int:
    return max(1, math.ceil(wait))


# --- DRF throttle classes on the shared counters -----------------------------------------------


class CountingThrottle(BaseThrottle):
    """A DRF throttle counting ``scope`` under the key ``ident`` gives."""

    scope = ""
    _wait: float | None = None

    def ident(self, request: Request, view: Any) -> str | None:
        raise NotImplementedError

    def allow_request(self, request: Request, view: Any) -> bool:
        self._wait = hit(self.scope, self.ident(request, view))
        return self._wait is None

    def wait(self) -> float | None:
        return None if self._wait is None else retry_after(self._wait)


class _PerIP(CountingThrottle):
    def ident(self, request: Request, view: Any) -> str | None:
        return client_ip(request)


class _PerAccountInBody(CountingThrottle):
    """The account named by the body's ``email`` (else ``username``)."""

    def ident(self, request: Request, view: Any) -> str | None:
        data = request.data if isinstance(request.data, dict) else {}
        email = data.get("email")
        return account_key(email=email) if email else account_key(username=data.get("username"))


class LoginIPThrottle(_PerIP):
    scope = LOGIN_IP


class LoginAccountThrottle(_PerAccountInBody):
    scope = PASSWORD_GUESSES


class CurrentPasswordThrottle(CountingThrottle):
    """The caller's own account: its current password is being checked."""

    scope = PASSWORD_GUESSES

    def ident(self, request: Request, view: Any) -> str | None:
        user = request.user
        return f"user:{user.pk}" if user is not None and user.is_authenticated else None


class RegisterIPThrottle(_PerIP):
    scope = REGISTER_IP


class ResetIPThrottle(_PerIP):
    scope = RESET_IP


class ResetAccountThrottle(_PerAccountInBody):
    scope = RESET_ACCOUNT
