"""OpenAPI (drf-spectacular) extensions for our own classes, and for
simplejwt's views, which serve /api/auth/jwt/* with our serializers."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiViewExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers

from core.openapi import errors


class TenantJWTScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.auth.authentication.TenantJWTAuthentication"
    name = "jwtAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        # "JWT <token>" is accepted too; OpenAPI can name only one prefix.
        return build_bearer_security_scheme_object(
            header_name="HTTP_AUTHORIZATION", token_prefix="Bearer", bearer_format="JWT"
        )


TOKEN_PAIR = inline_serializer("TokenPair", {"access": serializers.CharField(), "refresh": serializers.CharField()})
EMPTY = OpenApiResponse({"type": "object", "maxProperties": 0}, description="An empty object.")


class _TokenView(OpenApiViewExtension):
    """What a simplejwt view answers: its body, and 401 for a refused login
    or token (its serializers raise it; the views authenticate nobody, so the
    schema would not know). The request body stays the serializer's."""

    success: Any = None

    def view_replacement(self) -> type:
        class Documented(self.target_class):  # type: ignore[name-defined]
            pass

        return extend_schema(responses={200: self.success, **errors(401)})(Documented)


class TokenObtainPairDoc(_TokenView):
    target_class = "rest_framework_simplejwt.views.TokenObtainPairView"
    success = TOKEN_PAIR


class TokenRefreshDoc(_TokenView):
    target_class = "rest_framework_simplejwt.views.TokenRefreshView"
    success = TOKEN_PAIR  # ROTATE_REFRESH_TOKENS: a new refresh token too


class TokenVerifyDoc(_TokenView):
    target_class = "rest_framework_simplejwt.views.TokenVerifyView"
    success = EMPTY


class TokenBlacklistDoc(_TokenView):
    target_class = "rest_framework_simplejwt.views.TokenBlacklistView"
    success = EMPTY
