"""One pagination rule for every list of the API (tenant and platform hosts)."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request

# OFFSET is a bigint.
_MAX_OFFSET = 2**63 - 1


class Pagination(PageNumberPagination):
    """50 a page; ``?page_size=`` up to 200 (a larger one is capped, a
    non-positive or non-numeric one falls back to 50); an unknown page is a
    JSON 404.

    A view may offer ``list_page(request, bottom, size)``: the rows
    ``bottom`` to ``bottom + size`` of its list, read with the number of rows
    of the whole list (one statement instead of a COUNT and a page), as
    ``(rows, total)``; or None to leave the request to the usual COUNT and
    page. When the page comes back empty (past the end, or an empty list),
    the usual COUNT decides between an empty first page and a 404.

    ``queryset`` may also be a function that builds it: the list's view then
    builds it only when ``list_page`` does not read the page (building the
    permission rule's queryset costs more than running its statement)."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any] | None:
        page = self._read_page(request, view)
        if page is not None:
            return page
        return super().paginate_queryset(queryset() if callable(queryset) else queryset, request, view)

    def _read_page(self, request: Request, view: Any) -> list[Any] | None:
        """The page from the view's ``list_page``, or None for the usual way."""
        number = request.query_params.get(self.page_query_param) or "1"
        page_size = self.get_page_size(request)
        if not hasattr(view, "list_page") or not page_size or not str(number).isdigit():
            return None
        if not 1 <= int(number) <= _MAX_OFFSET // page_size:  # beyond every list: the usual 404
            return None
        bottom = (int(number) - 1) * page_size
        read = view.list_page(request, bottom, page_size)
        if read is None or not read[0] or read[1] is None:
            return None
        rows, total = read
        self.request = request
        counted: Any = _CountedRows(rows, total, bottom)
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
