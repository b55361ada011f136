"""DRF authentication: tenant-bound JWTs, ``Bearer`` or ``JWT`` header."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext as _
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.settings import api_settings

from accounts.models import User
from accounts.tokens import token_is_current


def user_for_claim(user_id: Any) -> User | None:
    """The user a token's id claim names in this schema, or None.

    simplejwt writes the id as a string; anything that is not a str or int
    (bool, float, list, dict...) or does not parse as an id names nobody,
    rather than raising (500) or being coerced (1.5 -> 1).
    """
    if isinstance(user_id, bool) or not isinstance(user_id, (str, int)):
        return None
    try:
        return User.objects.filter(**{api_settings.USER_ID_FIELD: user_id}).first()
    except (TypeError, ValueError, DjangoValidationError):
        return None


class TenantJWTAuthentication(JWTAuthentication):
    """Validates with ``TenantAccessToken`` (AUTH_TOKEN_CLASSES), so a token
    from another schema is refused before its user id is looked up."""

    def get_user(self, validated_token: Any) -> User:  # type: ignore[override]
        try:
            user_id = validated_token[api_settings.USER_ID_CLAIM]
        except KeyError:
            raise InvalidToken(_("Token contained no recognizable user identification")) from None
        user = user_for_claim(user_id)
        if user is None:
            raise AuthenticationFailed(_("User not found"), code="user_not_found")
        if not api_settings.USER_AUTHENTICATION_RULE(user):
            raise AuthenticationFailed(_("User is inactive"), code="user_inactive")
        if not token_is_current(validated_token, user):
            raise AuthenticationFailed(_("Token has been revoked"), code="token_revoked")
        return user
