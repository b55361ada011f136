"""OpenAPI (drf-spectacular) extensions for our own classes."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object


class TenantJWTScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.auth.authentication.TenantJWTAuthentication"
    name = "jwtAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        # "JWT <token>" is accepted too; OpenAPI can name only one prefix.
        return build_bearer_security_scheme_object(
            header_name="HTTP_AUTHORIZATION", token_prefix="Bearer", bearer_format="JWT"
        )
