from __future__ import annotations

import contextlib
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from djoser.serializers import UserCreateSerializer as BaseUserCreateSerializer
from djoser.serializers import UserSerializer as BaseUserSerializer
from rest_framework import serializers
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.serializers import (
    TokenBlacklistSerializer,
    TokenObtainPairSerializer,
    TokenRefreshSerializer,
    TokenVerifySerializer,
)
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from accounts.authentication import user_for_claim
from accounts.tokens import TenantRefreshToken, TenantUntypedToken


# --- djoser (the seed's custom serializers) ----------------------------------------------------------------
class UserCreateSerializer(BaseUserCreateSerializer):
    class Meta(BaseUserCreateSerializer.Meta):
        model = get_user_model()
        fields = (*BaseUserCreateSerializer.Meta.fields, "first_name", "last_name")


class UserSerializer(BaseUserSerializer):
    class Meta(BaseUserSerializer.Meta):
        model = get_user_model()
        fields = (*BaseUserSerializer.Meta.fields, "first_name", "last_name")


# --- simplejwt, bound to the tenant ------------------------------------------------------------------------
class TenantTokenObtainPairSerializer(TokenObtainPairSerializer):
    token_class = TenantRefreshToken


class TenantTokenRefreshSerializer(TokenRefreshSerializer):
    """Refresh with rotation where reuse is refused atomically.

    Fixes two simplejwt 5.5 gaps: a deleted user raised DoesNotExist (500), and
    two concurrent refreshes of one token could both succeed (the blacklist
    check and insert were separate); here the blacklist row is the lock.
    """

    token_class = TenantRefreshToken

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        refresh = self.token_class(attrs["refresh"])
        user_id = refresh.payload.get(api_settings.USER_ID_CLAIM)
        user = user_for_claim(user_id)
        if user is None or not api_settings.USER_AUTHENTICATION_RULE(user):
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
    def validate(self, attrs: dict[str, Any]) -> dict[Any, Any]:
        token = TenantUntypedToken(attrs["token"])
        jti = token.get(api_settings.JTI_CLAIM)
        if BlacklistedToken.objects.filter(token__jti=jti).exists():
            raise InvalidToken("Token is blacklisted")
        return {}


class TenantTokenBlacklistSerializer(TokenBlacklistSerializer):
    """simplejwt's ``blacklist()`` looks the user up with ``.get()`` and lets a
    junk id claim raise (500); this looks it up like every other path here."""

    token_class = TenantRefreshToken

    def validate(self, attrs: dict[str, Any]) -> dict[Any, Any]:
        refresh = self.token_class(attrs["refresh"])
        # Already blacklisted (say, by a concurrent logout): still logged out.
        with contextlib.suppress(InvalidToken):
            _blacklist_once(refresh, user_for_claim(refresh.payload.get(api_settings.USER_ID_CLAIM)))
        return {}


class EmptySerializer(serializers.Serializer):
    pass
