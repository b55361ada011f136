"""simplejwt serializers bound to the tenant, with revocation and hardened edges.

Wired through SIMPLE_JWT's *_SERIALIZER settings, so simplejwt's own views
serve /api/auth/jwt/{create,refresh,verify,blacklist}/ on every host.
"""

from __future__ import annotations

import contextlib
from typing import Any, cast

from django.contrib.auth import authenticate
from django.db import transaction
from django.utils.translation import gettext as _
from rest_framework import serializers
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.serializers import (
    PasswordField,
    TokenBlacklistSerializer,
    TokenObtainPairSerializer,
    TokenRefreshSerializer,
    TokenVerifySerializer,
)
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from accounts.auth.jwt_tokens import TenantRefreshToken, TenantUntypedToken, token_is_current
from accounts.selectors import user_for_token_claim


class TenantTokenObtainPairSerializer(TokenObtainPairSerializer):
    """Log in with ``{"email", "password"}`` or ``{"username", "password"}``."""

    token_class = TenantRefreshToken

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["email"] = serializers.CharField(required=False, max_length=254)
        self.fields["username"] = serializers.CharField(required=False, max_length=150)
        self.fields["password"] = PasswordField(max_length=1024)

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        if attrs.get("email"):
            credentials = {"email": attrs["email"]}
        elif attrs.get("username"):
            credentials = {"login_username": attrs["username"]}
        else:
            raise serializers.ValidationError({"email": [_("Give your email or your username.")]})
        user = authenticate(self.context.get("request"), password=attrs["password"], **credentials)
        if user is None or not api_settings.USER_AUTHENTICATION_RULE(user):
            raise AuthenticationFailed(str(self.error_messages["no_active_account"]), "no_active_account")
        self.user = user
        refresh = cast(TenantRefreshToken, self.get_token(user))
        return {"refresh": str(refresh), "access": str(refresh.access_token)}


def _user_of(token: Any) -> Any:
    """The token's user if it exists, is active and the token was not revoked."""
    user = user_for_token_claim(token.payload.get(api_settings.USER_ID_CLAIM))
    if user is None or not api_settings.USER_AUTHENTICATION_RULE(user) or not token_is_current(token, user):
        return None
    return user


class TenantTokenRefreshSerializer(TokenRefreshSerializer):
    """Refresh with rotation where reuse is refused atomically.

    Fixes simplejwt 5.5 gaps: a deleted user raised DoesNotExist (500); two
    concurrent refreshes of one token could both succeed (the blacklist check
    and insert were separate; here the blacklist row is the lock); and a token
    issued before a password change or deactivation still refreshed.
    """

    token_class = TenantRefreshToken

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        refresh = self.token_class(attrs["refresh"])
        user = _user_of(refresh)
        if user is None:
            raise AuthenticationFailed(str(self.error_messages["no_active_account"]), "no_active_account")

        data = {"access": str(refresh.access_token)}
        if api_settings.ROTATE_REFRESH_TOKENS:
            if api_settings.BLACKLIST_AFTER_ROTATION:
                _blacklist_once(refresh, user)
            refresh.set_jti()
            refresh.set_exp()
            refresh.set_iat()
            refresh.outstand()
            data["refresh"] = str(refresh)
        return data


def _blacklist_once(refresh: TenantRefreshToken, user: Any) -> None:
    jti = refresh.payload[api_settings.JTI_CLAIM]
    with transaction.atomic():
        outstanding, _ = OutstandingToken.objects.get_or_create(
            jti=jti,
            defaults={
                "user": user,
                "created_at": refresh.current_time,
                "token": str(refresh),
                "expires_at": datetime_from_epoch(refresh.payload["exp"]),
            },
        )
        _, created = BlacklistedToken.objects.get_or_create(token=outstanding)
    if not created:
        raise InvalidToken("Token is blacklisted")


class TenantTokenVerifySerializer(TokenVerifySerializer):
    """200 only for a token of this tenant, not blacklisted, whose user is
    active and has not revoked it since."""

    def validate(self, attrs: dict[str, Any]) -> dict[Any, Any]:
        token = TenantUntypedToken(attrs["token"])
        jti = token.get(api_settings.JTI_CLAIM)
        if BlacklistedToken.objects.filter(token__jti=jti).exists():
            raise InvalidToken("Token is blacklisted")
        if _user_of(token) is None:
            raise InvalidToken("Token is no longer valid")
        return {}


class TenantTokenBlacklistSerializer(TokenBlacklistSerializer):
    """simplejwt's ``blacklist()`` looks the user up with ``.get()`` and lets a
    junk id claim raise (500); this looks it up like every other path here."""

    token_class = TenantRefreshToken

    def validate(self, attrs: dict[str, Any]) -> dict[Any, Any]:
        refresh = self.token_class(attrs["refresh"])
        # Already blacklisted (say, by a concurrent logout): still logged out.
        with contextlib.suppress(InvalidToken):
            _blacklist_once(refresh, user_for_token_claim(refresh.payload.get(api_settings.USER_ID_CLAIM)))
        return {}
