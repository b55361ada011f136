"""One pagination rule for every list of the API (tenant and platform hosts)."""

from __future__ import annotations

from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    """50 a page; ``?page_size=`` up to 200 (a larger one is capped, a
    non-positive or non-numeric one falls back to 50); an unknown page is a
    JSON 404."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
