"""Fixed-window rate counters that every process sees, for the throttles.

With ``REDIS_URL``: Redis ``INCR`` on a key per window (atomic). Without:
one atomic ``INSERT ... ON CONFLICT DO UPDATE`` on ``accounts_ratecounter``
in the tenant's schema. Either way two gunicorn workers (or two machines)
share one count, so a limit is not multiplied by the number of processes,
and concurrent hits cannot both see the old count.

Written here rather than taken from a library: DRF's throttles keep a list of
timestamps in the cache and rewrite it (not atomic, and per process on the
locmem cache), django-ratelimit needs an atomic cache too, and neither would
count in PostgreSQL when there is no Redis.
"""

from __future__ import annotations

import math
import random
import time

from django.conf import settings
from django.core.cache import caches
from django.db import connection

from accounts.models import RateCounter

# One hit in this many also deletes the expired counters of the tenant.
_SWEEP_ONE_IN = 512


def hit(key: str, period: int) -> tuple[int, float]:
    """Count one hit of ``key`` in the current window of ``period`` seconds:
    (hits in this window including this one, seconds until the window ends)."""
    now = time.time()
    window = int(now // period)
    remaining = max(1.0, (window + 1) * period - now)
    if settings.REDIS_URL:
        return _hit_redis(key, window, period), remaining
    return _hit_database(key, window, period, now), remaining


def _hit_redis(key: str, window: int, period: int) -> int:
    cache = caches["default"]  # keys carry the schema (django_tenants.cache.make_key)
    full = f"rate:{key}:{window}"
    cache.add(full, 0, timeout=period + 1)
    return int(cache.incr(full))


_UPSERT = """
    INSERT INTO {table} (key, period_no, hits, expires_at) VALUES (%s, %s, 1, %s)
    ON CONFLICT (key) DO UPDATE SET
        hits = CASE WHEN {table}.period_no = EXCLUDED.period_no THEN {table}.hits + 1 ELSE 1 END,
        period_no = EXCLUDED.period_no,
        expires_at = EXCLUDED.expires_at
    RETURNING hits
"""


def _hit_database(key: str, window: int, period: int, now: float) -> int:
    table = connection.ops.quote_name(RateCounter._meta.db_table)
    expires = math.ceil((window + 1) * period)
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT.format(table=table), [key[:200], window, expires])
        hits = int(cursor.fetchone()[0])
        if random.randrange(_SWEEP_ONE_IN) == 0:  # housekeeping, not security
            cursor.execute(f"DELETE FROM {table} WHERE expires_at < %s", [int(now)])  # noqa: S608
    return hits
