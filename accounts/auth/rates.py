"""Rate counters that every process sees, for the throttles.

With ``REDIS_URL``: Redis ``INCR`` on a key per window (atomic). Without
(or while Redis is unavailable: core.outages): one atomic ``INSERT ... ON
CONFLICT DO UPDATE`` on ``accounts_ratecounter`` in the tenant's schema.
Either way two gunicorn workers (or two machines) share one count, so a
limit is not multiplied by the number of processes, and concurrent hits
cannot both see the old count.

Written here rather than taken from a library: DRF's throttles keep a list of
timestamps in the cache and rewrite it (not atomic, and per process on the
locmem cache), django-ratelimit needs an atomic cache too, and neither would
count in PostgreSQL when there is no Redis.
"""

from __future__ import annotations

import logging
import random
import time

from django.conf import settings
from django.core.cache import caches
from django.db import connection

from accounts.models import RateCounter
from core.outages import CACHE_UNAVAILABLE

logger = logging.getLogger(__name__)

# One hit in this many also deletes the expired counters of the tenant.
_SWEEP_ONE_IN = 512


def hit(key: str, period: int) -> tuple[float, float]:
    """Count one hit of ``key``: (hits in the last ``period`` seconds, this one
    included, seconds until that count next falls).

    A sliding window, estimated from two fixed ones: this window's hits plus
    the previous window's, weighted by how much of it still lies within the
    last ``period`` seconds. So a burst across a window's end still counts as
    one burst (with fixed windows alone it could be twice the limit)."""
    now = time.time()
    window = int(now // period)
    elapsed = now / period - window  # 0..1 of the current window gone by
    if settings.REDIS_URL:
        try:
            hits, previous = _hit_redis(key, window, period)
        except CACHE_UNAVAILABLE as exc:  # still throttled, by the database's counters
            logger.warning("cache unavailable, rate counted in the database: %s", exc)
            hits, previous = _hit_database(key, window, period, now)
    else:
        hits, previous = _hit_database(key, window, period, now)
    remaining = max(1.0, (window + 1) * period - now)
    return hits + previous * (1 - elapsed), remaining


def _hit_redis(key: str, window: int, period: int) -> tuple[int, int]:
    cache = caches["default"]  # keys carry the schema (django_tenants.cache.make_key)
    current = f"rate:{key}:{window}"
    cache.add(current, 0, timeout=2 * period + 1)
    hits = int(cache.incr(current))
    return hits, int(cache.get(f"rate:{key}:{window - 1}") or 0)


_UPSERT = """
    INSERT INTO {table} (key, period_no, hits, previous_hits, expires_at) VALUES (%s, %s, 1, 0, %s)
    ON CONFLICT (key) DO UPDATE SET
        previous_hits = CASE
            WHEN {table}.period_no = EXCLUDED.period_no THEN {table}.previous_hits
            WHEN {table}.period_no = EXCLUDED.period_no - 1 THEN {table}.hits
            ELSE 0 END,
        hits = CASE WHEN {table}.period_no = EXCLUDED.period_no THEN {table}.hits + 1 ELSE 1 END,
        period_no = EXCLUDED.period_no,
        expires_at = EXCLUDED.expires_at
    RETURNING hits, previous_hits
"""


def _hit_database(key: str, window: int, period: int, now: float) -> tuple[int, int]:
    table = connection.ops.quote_name(RateCounter._meta.db_table)
    expires = (window + 2) * period  # the next window still reads this one
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT.format(table=table), [key[:200], window, expires])
        hits, previous = cursor.fetchone()
        if random.randrange(_SWEEP_ONE_IN) == 0:  # housekeeping, not security
            cursor.execute(f"DELETE FROM {table} WHERE expires_at < %s", [int(now)])  # noqa: S608
    return int(hits), int(previous)
