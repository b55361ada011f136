"""simplejwt serializers bound to the tenant, with revocation and hardened edges.

Wired through SIMPLE_JWT's *_SERIALIZER settings, so simplejwt's own views
serve /api/auth/jwt/{create,refresh,verify,blacklist}/ on every host.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate
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
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

from accounts.auth import token_families
from accounts.auth.jwt_tokens import FAMILY_CLAIM, TenantRefreshToken, TenantUntypedToken, token_is_current
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
        refresh = token_families.start(user)
        return {"refresh": str(refresh), "access": str(refresh.access_token)}


def _user_of(token: Any) -> Any:
    """The token's user if it exists, is active and the token was not revoked."""
    user = user_for_token_claim(token.payload.get(api_settings.USER_ID_CLAIM))
    if user is None or not api_settings.USER_AUTHENTICATION_RULE(user) or not token_is_current(token, user):
        return None
    return user


class TenantTokenRefreshSerializer(TokenRefreshSerializer):
    """Refresh with rotation and reuse detection (accounts.auth.token_families).

    Fixes simplejwt 5.5 gaps: a deleted user raised DoesNotExist (500); two
    concurrent refreshes of one token could both succeed (here the family row
    is locked and the blacklist row decides); a token issued before a password
    change or deactivation still refreshed; replaying a rotated token left its
    successor alive, and rotation extended a session forever.
    """

    token_class = TenantRefreshToken

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        refresh = self.token_class(attrs["refresh"])
        user = _user_of(refresh)
        if user is None:
            raise AuthenticationFailed(str(self.error_messages["no_active_account"]), "no_active_account")
        successor = token_families.rotate(refresh, user)
        return {"access": str(successor.access_token), "refresh": str(successor)}


class TenantTokenVerifySerializer(TokenVerifySerializer):
    """200 only for a token of this tenant, not blacklisted, whose user is
    active and has not revoked it since, and, for a refresh token, whose
    session is alive."""

    def validate(self, attrs: dict[str, Any]) -> dict[Any, Any]:
        token = TenantUntypedToken(attrs["token"])
        jti = token.get(api_settings.JTI_CLAIM)
        is_refresh = token.get(api_settings.TOKEN_TYPE_CLAIM) == TenantRefreshToken.token_type
        if BlacklistedToken.objects.filter(token__jti=jti).exists():
            if is_refresh:  # a spent refresh token shown again is a reuse, whatever the door
                token_families.reused(token.get(FAMILY_CLAIM))
            raise InvalidToken("Token is blacklisted")
        user = _user_of(token)
        if user is None:
            raise InvalidToken("Token is no longer valid")
        if is_refresh and not token_families.is_alive(token.get(FAMILY_CLAIM), user):
            raise InvalidToken("This session has ended")
        return {}


class TenantTokenBlacklistSerializer(TokenBlacklistSerializer):
    """Log out: the refresh token and its whole session end.

    simplejwt's ``blacklist()`` looks the user up with ``.get()`` and lets a
    junk id claim raise (500); this looks it up like every other path here."""

    token_class = TenantRefreshToken

    def validate(self, attrs: dict[str, Any]) -> dict[Any, Any]:
        refresh = self.token_class(attrs["refresh"])
        user = user_for_token_claim(refresh.payload.get(api_settings.USER_ID_CLAIM))
        if user is None or not token_families.end(refresh, user):
            raise InvalidToken("Token is blacklisted")
        return {}
