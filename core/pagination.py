"""One pagination rule for every list of the API (tenant and platform hosts)."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request


class Pagination(PageNumberPagination):
    """50 a page; ``?page_size=`` up to 200 (a larger one is capped, a
    non-positive or non-numeric one falls back to 50); an unknown page is a
    JSON 404.

    A view may offer ``list_total(request)``: an expression whose value, on
    every row, is the number of rows of the whole list (an uncorrelated scalar
    subquery, which PostgreSQL computes once). Then a page and its count are
    one statement instead of two: the page is read with the total on its
    rows. When the page comes back empty (past the end, or an empty list),
    the usual COUNT decides between an empty first page and a 404."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any] | None:
        total = view.list_total(request) if hasattr(view, "list_total") else None
        number = request.query_params.get(self.page_query_param) or "1"
        page_size = self.get_page_size(request)
        if total is None or not page_size or not str(number).isdigit() or int(number) < 1:
            return super().paginate_queryset(queryset, request, view)
        bottom = (int(number) - 1) * page_size
        rows = list(queryset.annotate(_list_total=total)[bottom : bottom + page_size])
        if not rows:
            return super().paginate_queryset(queryset, request, view)
        self.request = request
        counted: Any = _CountedRows(rows, int(rows[0]._list_total), bottom)
        paginator: Paginator[Any] = Paginator(counted, page_size)
        self.page = paginator.page(int(number))
        if paginator.num_pages > 1 and self.template is not None:
            self.display_page_controls = True
        return list(self.page)


class _CountedRows:
    """One page's rows, read already, standing for the whole list to Django's
    Paginator: its length is the list's total, and its one slice is the page."""

    def __init__(self, rows: list[Any], total: int, bottom: int) -> None:
        self.rows, self.total, self.bottom = rows, total, bottom

    def count(self) -> int:
        return self.total

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, window: slice) -> list[Any]:
        assert window.start == self.bottom, (window, self.bottom)  # the page that was read
        return self.rows
