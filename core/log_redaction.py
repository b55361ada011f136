"""Keep one-time tokens out of the logs.

The emailed links carry their token in the URL path, and opening one (a GET,
as mail scanners do) does not spend it: a request line with the path would
put a live token in the logs for as long as it lasts. This structlog
processor masks them in the request line (django-structlog's ``request``)
and the path (``path``) of every record, stdlib's included. Imports nothing
of Django: settings build the logging configuration with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, MutableMapping
from typing import Any

Processor = Any  # structlog's processor signature: (logger, method name, event dict) -> event dict
_FIELDS = ("request", "path")


def masking_paths(patterns: Iterable[str]) -> Processor:
    """A processor replacing each regex's ``token`` (and ``uid``) named
    groups with ``<token>`` (``<uid>``) in the request line and path."""
    compiled = [re.compile(pattern) for pattern in patterns]

    def mask(text: str) -> str:
        for pattern in compiled:
            text = pattern.sub(_masked, text)
        return text

    def processor(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for field in _FIELDS:
            value = event.get(field)
            if isinstance(value, str):
                event[field] = mask(value)
        return event

    return processor


def _masked(match: re.Match[str]) -> str:
    text, start = [], match.start()
    spans = sorted((match.span(name), name) for name in match.re.groupindex if match.group(name) is not None)
    for (begin, end), name in spans:
        text.append(match.string[start:begin])
        text.append(f"<{name}>")
        start = end
    text.append(match.string[start : match.end()])
    return "".join(text)
