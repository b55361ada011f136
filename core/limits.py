"""Input bounded before it is parsed: body size, JSON nesting.

* ``RequestBodyLimitMiddleware`` (first in MIDDLEWARE) answers 413 in the
  error shape for a declared ``Content-Length`` over
  ``REQUEST_BODY_MAX_BYTES``, before anything reads the body. DRF's JSON
  parser reads the raw stream, so Django's DATA_UPLOAD_MAX_MEMORY_SIZE never
  limits it. Django reads no more than ``Content-Length`` (a chunked body
  without one reads as empty), so the declared length is the whole story.
* ``BoundedJSONParser`` refuses JSON nested deeper than ``JSON_MAX_DEPTH``
  (400), checked by a linear scan before ``json`` recurses (1,000 levels would
  raise RecursionError, a 500).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from core.errors import json_error


class RequestBodyLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        declared = request.META.get("CONTENT_LENGTH") or "0"
        if not declared.isascii() or not declared.isdigit():
            return json_error(request, 400, "Content-Length must be a number of bytes.", "bad_request")
        limit = int(settings.REQUEST_BODY_MAX_BYTES)
        if int(declared) > limit:
            return json_error(request, 413, f"The request body is larger than {limit} bytes.", "too_large")
        return self.get_response(request)


# A JSON string (escapes included), then any bracket outside strings.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


def nesting_exceeds(raw: bytes, limit: int) -> bool:
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub(b'""', raw)):
        if match.group() in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


class BoundedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        raw = stream.read() if stream is not None else b""
        limit = int(settings.JSON_MAX_DEPTH)
        if nesting_exceeds(raw, limit):
            raise ParseError(f"JSON nested deeper than {limit} levels.")
        try:
            return super().parse(io.BytesIO(raw), media_type, parser_context)
        except RecursionError:  # a nesting the scan did not see as such
            raise ParseError(f"JSON nested deeper than {limit} levels.") from None
