"""The OpenAPI schema documents the errors each operation can answer, in the
one error shape (core.errors): drf-spectacular documents only the success.

Every operation gets, unless its view documents the status itself:

* 400 (input refused: validation, malformed or too deeply nested JSON, a bad
  Content-Length, a NUL in the URL) on every operation;
* 401 where the view authenticates (a bad token is refused even where no
  login is needed);
* 403 where a permission class other than AllowAny decides;
* 404 where the path has a parameter, and on paginated lists (an unknown page);
* 413 and 415 (body too large; not JSON, or not UTF-8) where a body may be
  sent (POST, PUT, PATCH, DELETE);
* 429 where the view throttles.

Answers that depend on the host rather than the operation are said once, in
the API's description: an unknown host is 404, a suspended tenant's host 403.
A view documents any other error it answers (409) with ``errors()``.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import ComponentRegistry
from drf_spectacular.utils import OpenApiResponse, extend_schema_field, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny

DESCRIPTIONS = {
    400: "Invalid input: validation (``errors`` names the fields), malformed JSON, a bad Content-Length.",
    401: "Not authenticated: wrong credentials, or a missing, malformed, expired, revoked or other host's token.",
    403: "Authenticated, but not allowed.",
    404: "Not found, or not visible to the caller.",
    409: "Conflicts with the current state.",
    413: "The request body is larger than REQUEST_BODY_MAX_BYTES.",
    415: "Not JSON, or not in UTF-8.",
    429: "Throttled: wait Retry-After seconds.",
}

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@extend_schema_field(
    {
        "type": "object",
        "description": "Validation only: the messages per field (per item index for a list field).",
        "additionalProperties": {"anyOf": [{"type": "array"}, {"type": "object"}]},
    }
)
class FieldErrors(serializers.DictField):
    pass


# The API's one error shape. Built by name: a field called "errors" declared
# in a class body would shadow Serializer.errors for type checkers.
ErrorSerializer = inline_serializer(
    "Error",
    {
        "detail": serializers.CharField(help_text="What went wrong, for people."),
        "code": serializers.CharField(help_text="What went wrong, for programs."),
        "errors": FieldErrors(required=False),
    },
)


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """``@extend_schema(responses={200: X, **errors(409)})``: statuses a view
    answers beyond the ones every operation gets (the module's docstring)."""
    return {status: OpenApiResponse(ErrorSerializer, description=DESCRIPTIONS[status]) for status in statuses}


class AutoSchema(SpectacularAutoSchema):
    def get_operation(
        self, path: str, path_regex: str, path_prefix: str, method: str, registry: ComponentRegistry
    ) -> dict[str, Any] | None:
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses: dict[str, Any] = operation["responses"]
        ref = self.resolve_serializer(ErrorSerializer, "response").ref
        for status in self._error_statuses(path):
            responses.setdefault(
                str(status), {"description": DESCRIPTIONS[status], "content": {"application/json": {"schema": ref}}}
            )
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _error_statuses(self, path: str) -> list[int]:
        statuses = [400]
        if self.view.get_authenticators():
            statuses.append(401)
        if any(not isinstance(permission, AllowAny) for permission in self.view.get_permissions()):
            statuses.append(403)
        if "{" in path or (self._is_list_view() and self._get_paginator() is not None):
            statuses.append(404)
        if self.method in BODY_METHODS:
            statuses += [413, 415]
        if self.view.get_throttles():
            statuses.append(429)
        return statuses
