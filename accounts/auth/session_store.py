"""Django's database sessions, with session keys checked before any lookup.

The key comes from a cookie the client writes: a NUL byte in it reached
PostgreSQL through the session lookup and raised DataError (a 500 on the
Django admin's pages). Django makes keys of 32 lowercase letters and digits;
anything else names no session and is never looked up.
"""

from __future__ import annotations

import re

from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore

_KEY = re.compile(r"[a-z0-9]{8,40}")


class SessionStore(DatabaseSessionStore):
    def _validate_session_key(self, key: str | None) -> bool:
        return bool(key) and isinstance(key, str) and _KEY.fullmatch(key) is not None
