"""The error shape (core.errors) for every way a request can fail: DRF's
exception handler, and Django's handlers for what never reaches DRF."""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from core.errors import ApplicationError, error_body, json_error
from core.outages import DATABASE_UNAVAILABLE, RETRY_AFTER_SECONDS

logger = logging.getLogger(__name__)


def _flatten(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {str(k): _flatten(v) for k, v in detail.items()}
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return [str(item) for item in detail]
        return [_flatten(item) for item in detail]
    return [str(detail)]


def invalid_input(errors: dict[str, Any]) -> str:
    """The one ``detail`` of a validation error: every field of ``errors``
    named, in order ("Invalid input: slug, name."); the messages are in ``errors``."""
    fields = [field for field in errors if field != "non_field_errors"]
    return f"Invalid input: {', '.join(fields)}." if fields else "Invalid input."


DATABASE_DOWN_DETAIL = "The database is unavailable; try again shortly."


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DATABASE_UNAVAILABLE):
        # Down, restarting, or unreachable (core.outages): a clean 503, never a 500.
        logger.error("database unavailable: %s", exc)
        unavailable = Response(error_body(DATABASE_DOWN_DETAIL, "database_unavailable"), status=503)
        unavailable["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return unavailable
    if isinstance(exc, DataError):
        # Last line of defence: a value the database refuses (NUL byte, number
        # out of range) that validation missed is the client's input, not a 500.
        logger.warning("database refused input: %s", exc)
        return Response(error_body("Invalid input.", "invalid"), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, ApplicationError):
        errors = {exc.field: [exc.message]} if exc.field else None
        # A 400 naming a field is a validation error like any other; a 404 or
        # 409 keeps its own sentence ("'x' is already in use.").
        text = invalid_input(errors) if errors and exc.status_code == status.HTTP_400_BAD_REQUEST else exc.message
        refused = Response(error_body(text, exc.code, errors), status=exc.status_code)
        if exc.status_code == status.HTTP_503_SERVICE_UNAVAILABLE:
            refused["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return refused
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = exception_handler(exc, context)
    if response is None:
        return None
    detail: Any
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        errors = _flatten(detail) if isinstance(detail, dict) else {"non_field_errors": _flatten(detail)}
        response.data = error_body(invalid_input(errors), "invalid", errors)
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail
        if isinstance(detail, dict) and "detail" in detail:  # simplejwt's InvalidToken carries messages
            text, code = str(detail["detail"]), str(detail.get("code", exc.default_code))
        else:
            text = str(detail)
            code = str(getattr(detail, "code", None) or exc.default_code)
        response.data = error_body(text, code)
    return response


def handler400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return json_error(request, 400, "Bad request.", "bad_request")


def handler403(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return json_error(request, 403, "You do not have permission to perform this action.", "permission_denied")


def handler404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return json_error(request, 404, "Not found.", "not_found")


def handler500(request: HttpRequest) -> JsonResponse:
    # Django calls this while handling the exception (in a middleware, a
    # non-DRF view, or re-raised by DRF), so it is the one in flight.
    exc = sys.exc_info()[1]
    if isinstance(exc, DATABASE_UNAVAILABLE):
        response = json_error(request, 503, DATABASE_DOWN_DETAIL, "database_unavailable")
    elif isinstance(exc, ApplicationError) and exc.status_code == status.HTTP_503_SERVICE_UNAVAILABLE:
        response = json_error(request, 503, exc.message, exc.code)
    else:
        return json_error(request, 500, "Server error.", "server_error")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
