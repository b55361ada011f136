"""One error shape for the whole API.

Every error body is JSON with a human ``detail`` and a machine ``code``;
validation errors add ``errors``, a map from field name to messages::

    {"detail": "Invalid input.", "code": "invalid", "errors": {"slug": ["..."]}}

Services raise ``ApplicationError`` (or Django's ``ValidationError``) and never
import DRF; ``core.handlers`` turns both into responses. Nothing here imports
DRF either, so any module may import this one at any time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse


class ApplicationError(Exception):
    """A business rule said no. ``field`` names the input at fault, if any."""

    status_code: int = HTTPStatus.BAD_REQUEST
    code: str = "invalid"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code


class Conflict(ApplicationError):
    status_code = HTTPStatus.CONFLICT
    code = "conflict"


class NotFound(ApplicationError):
    status_code = HTTPStatus.NOT_FOUND
    code = "not_found"


class ServiceUnavailable(ApplicationError):
    """A backing service is away and the change cannot be made safely now (503)."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE
    code = "service_unavailable"


@contextmanager
def duplicate_raises(error: ApplicationError) -> Iterator[None]:
    """Run the block in a savepoint; if a unique index refuses a write in it
    (a duplicate, or a race lost to a concurrent writer), raise ``error``."""
    try:
        with transaction.atomic():
            yield
    except IntegrityError:
        raise error from None


def error_body(detail: str, code: str, errors: dict[str, list[str]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"detail": detail, "code": code}
    if errors:
        body["errors"] = errors
    return body


def json_error(request: HttpRequest, status_code: int, detail: str, code: str) -> JsonResponse:
    return JsonResponse(error_body(detail, code), status=status_code)
