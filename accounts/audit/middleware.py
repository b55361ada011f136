from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from accounts.audit.recording import actor_from


class AuditActorMiddleware:
    """The user of the request being served is the actor of what it changes
    (read when an entry is recorded, so DRF's authenticated user counts)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with actor_from(lambda: getattr(request, "user", None)):
            return self.get_response(request)
