"""Input bounded before it is parsed: body size, JSON nesting.

* ``RequestBodyLimitMiddleware`` (first in MIDDLEWARE) answers 413 in the
  error shape for a declared ``Content-Length`` over
  ``REQUEST_BODY_MAX_BYTES``, before anything reads the body. DRF's JSON
  parser reads the raw stream, so Django's DATA_UPLOAD_MAX_MEMORY_SIZE never
  limits it. Django reads no more than ``Content-Length`` (a chunked body
  without one reads as empty), so the declared length is the whole story.
* The middleware also refuses (415) a body in any charset but UTF-8.
* ``BoundedJSONParser`` decodes UTF-8 only and refuses JSON nested deeper than
  ``JSON_MAX_DEPTH`` (400); 1,000 levels made Python's json raise
  RecursionError, a 500.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils import json as drf_json

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
        refused = charset_refused(request.META.get("CONTENT_TYPE", ""))
        if refused is not None:
            return json_error(request, 415, f"Send UTF-8, not {refused[:40]}.", "unsupported_media_type")
        return self.get_response(request)


def nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether a parsed JSON value nests containers deeper than ``limit``:
    one pass over the containers, no recursion."""
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def charset_refused(content_type: str) -> str | None:
    """The charset a Content-Type names, if it is not UTF-8 (or ASCII, its
    subset). Anything else is refused: Django and DRF decode bodies with any
    codec the client names, bz2 and zlib included (a decompression bomb that
    no size limit sees) and utf-7 (where "[" need not be a "[")."""
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower().replace("_", "-")
            return None if charset in _TEXT_CHARSETS else charset
    return None


_TEXT_CHARSETS = {"utf-8", "utf8", "us-ascii", "ascii"}


class BoundedJSONParser(JSONParser):
    """JSON in UTF-8 only, nested at most JSON_MAX_DEPTH deep. Python's json
    decoder raises RecursionError (a 500) near 1,000 levels: that is a 400
    too; anything shallower is parsed by the C decoder first and measured
    after, in one pass."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        raw = stream.read() if stream is not None else b""
        limit = int(settings.JSON_MAX_DEPTH)
        try:
            text = raw.decode("utf-8")
            value = json.loads(text, parse_constant=drf_json.strict_constant if self.strict else None)
        except RecursionError:
            raise ParseError(f"JSON nested deeper than {limit} levels.") from None
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError alike
            raise ParseError(f"JSON parse error - {exc}") from None
        if nesting_exceeds(value, limit):
            raise ParseError(f"JSON nested deeper than {limit} levels.")
        return value
