"""Ids from URLs and query strings."""

from __future__ import annotations

import re

_ID = re.compile(r"[0-9]{1,19}")  # ASCII digits only: "²".isdigit() is True, int("²") fails


def parse_id(value: object) -> int | None:
    """A positive bigint id, or None for anything else (never an exception)."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        return None
    number = int(value)
    return number if 0 < number < 2**63 else None
