"""Login sessions as families of refresh tokens, with reuse detection.

The OAuth 2.0 security best current practice for rotated refresh tokens
(RFC 9700, 4.14.2): every refresh token descends from one login and carries
its family id (``fam``). Refreshing blacklists the presented token and issues
its successor, under a lock on the family row. Presenting a token that was
already rotated (or logged out) means two parties hold the family: the whole
family is revoked, so the successor a thief obtained dies with the owner's.
Logging out revokes the family too, under the same lock, so a refresh racing
with it cannot leave a live child behind. A family never outlives
``JWT_SESSION_MAX_AGE`` after its login: rotation caps each successor's expiry
there. Access tokens are not checked against the family (they live
``JWT_ACCESS_MINUTES``); "log out everywhere" kills them at once instead.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from accounts.auth.jwt_tokens import FAMILY_CLAIM, TenantRefreshToken
from accounts.models import TokenFamily, User


def _ends(family: TokenFamily) -> datetime:
    max_age: timedelta = settings.JWT_SESSION_MAX_AGE
    return family.started_at + max_age


def _cap(refresh: TenantRefreshToken, family: TokenFamily) -> None:
    """No refresh token of a family expires after the family's end."""
    refresh.set_exp(from_time=refresh.current_time, lifetime=api_settings.REFRESH_TOKEN_LIFETIME)
    ends = int(_ends(family).timestamp())
    if refresh.payload["exp"] > ends:
        refresh.payload["exp"] = ends


def start(user: User) -> TenantRefreshToken:
    """The refresh token of a new login, the first of its family."""
    now = timezone.now()
    TokenFamily.objects.filter(user=user, started_at__lt=now - settings.JWT_SESSION_MAX_AGE).delete()
    family = TokenFamily.objects.create(user=user, started_at=now)
    refresh = TenantRefreshToken.for_user(user)
    refresh[FAMILY_CLAIM] = str(family.pk)
    _cap(refresh, family)
    return refresh


def _family_id(claim: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(claim))
    except ValueError:
        return None


def _family_of(refresh: TenantRefreshToken, user: Any) -> TokenFamily:
    """The token's family, locked, if it is still alive; else 401."""
    family_id = _family_id(refresh.payload.get(FAMILY_CLAIM))
    if family_id is None:
        raise InvalidToken("Token belongs to no session; log in again.")
    family = TokenFamily.objects.select_for_update().filter(pk=family_id, user=user).first()
    if family is None or family.revoked_at is not None:
        raise InvalidToken("This session has ended; log in again.")
    if timezone.now() >= _ends(family):
        raise InvalidToken("This session is too old; log in again.")
    return family


def _spend(refresh: TenantRefreshToken, user: Any) -> bool:
    """Blacklist the token; False if it already was (it is being reused)."""
    outstanding, _ = OutstandingToken.objects.get_or_create(
        jti=refresh.payload[api_settings.JTI_CLAIM],
        defaults={
            "user": user,
            "created_at": refresh.current_time,
            "token": str(refresh),
            "expires_at": datetime_from_epoch(refresh.payload["exp"]),
        },
    )
    _, created = BlacklistedToken.objects.get_or_create(token=outstanding)
    return created


def _revoke(families: Any, why: str) -> None:
    """End the (not yet ended) families of a queryset."""
    families.filter(revoked_at__isnull=True).update(revoked_at=timezone.now(), revoked_because=why)


def rotate(refresh: TenantRefreshToken, user: Any) -> TenantRefreshToken:
    """The successor of ``refresh`` (which is spent), or 401; a replay of a
    spent token revokes its whole family first."""
    with transaction.atomic():
        family = _family_of(refresh, user)
        fresh = _spend(refresh, user)
        if not fresh:
            _revoke(TokenFamily.objects.filter(pk=family.pk), TokenFamily.Ended.REUSE)
    if not fresh:  # raised after the commit, so the revocation stays
        raise InvalidToken("Token was already used: this session has been ended.")
    refresh.set_jti()
    refresh.set_iat()
    _cap(refresh, family)
    # simplejwt's outstand() would load the user again and look the new jti up first.
    OutstandingToken.objects.create(
        user=user,
        jti=refresh.payload[api_settings.JTI_CLAIM],
        token=str(refresh),
        created_at=refresh.current_time,
        expires_at=datetime_from_epoch(refresh.payload["exp"]),
    )
    return refresh


def end(refresh: TenantRefreshToken, user: Any) -> bool:
    """Log out: the token is spent and its whole family revoked (a child being
    rotated at this moment waits for the lock and dies with it). False if the
    token was spent already."""
    with transaction.atomic():
        try:
            family = _family_of(refresh, user)
        except InvalidToken:
            family = None  # the session ended already
        fresh = _spend(refresh, user)
        if family is not None:
            _revoke(TokenFamily.objects.filter(pk=family.pk), TokenFamily.Ended.LOGOUT)
    return fresh


def reused(family_claim: Any) -> None:
    """A spent refresh token of this family was presented: end the family."""
    family_id = _family_id(family_claim)
    if family_id is not None:
        _revoke(TokenFamily.objects.filter(pk=family_id), TokenFamily.Ended.REUSE)


def end_all(user: User) -> None:
    _revoke(TokenFamily.objects.filter(user=user), TokenFamily.Ended.LOGOUT_ALL)


def is_alive(family_claim: Any, user: Any) -> bool:
    """For verify: the family exists, is not revoked and not too old."""
    family_id = _family_id(family_claim)
    if family_id is None:
        return False
    family = TokenFamily.objects.filter(pk=family_id, user=user, revoked_at__isnull=True).first()
    return family is not None and timezone.now() < _ends(family)
