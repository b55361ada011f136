"""DRF authentication: tenant-bound JWTs, ``Bearer`` or ``JWT`` header."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.settings import api_settings

from accounts.auth.jwt_tokens import token_is_current
from accounts.models import User
from accounts.selectors import user_for_token_claim


class TenantJWTAuthentication(JWTAuthentication):
    """Validates with ``TenantAccessToken`` (AUTH_TOKEN_CLASSES), so a token
    from another schema is refused before its user id is looked up."""

    def get_user(self, validated_token: Any) -> User:  # type: ignore[override]
        try:
            user_id = validated_token[api_settings.USER_ID_CLAIM]
        except KeyError:
            raise InvalidToken(_("Token contained no recognizable user identification")) from None
        user = user_for_token_claim(user_id)
        if user is None:
            raise AuthenticationFailed(_("User not found"), code="user_not_found")
        if not api_settings.USER_AUTHENTICATION_RULE(user):
            raise AuthenticationFailed(_("User is inactive"), code="user_inactive")
        if not token_is_current(validated_token, user):
            raise AuthenticationFailed(_("Token has been revoked"), code="token_revoked")
        return user
