"""What a backing service being away raises, for the code that answers or
degrades without it (scripts/faults.py runs these outages for real).

* The database: every request that needs it answers 503 in the error shape,
  code ``database_unavailable`` (core.handlers); Django's persistent
  connections (CONN_MAX_AGE, CONN_HEALTH_CHECKS) are dropped and made again
  once it is back.
* Redis, the cache: the host -> tenant cache reads the database instead
  (tenants.cache), the throttles count in the database (accounts.auth.rates).
  Writes to tenants and domains, whose cached answers could not be evicted,
  are refused with a 503 rather than left to be served stale once Redis is back.
"""

from __future__ import annotations

from django.db import InterfaceError, OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# Refused or broken connections, a server shutting down or starting up,
# PgBouncer's "server login has been failing" and query_wait_timeout.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError)
# django-redis re-raises redis-py's own error (refused, reset, timed out, loading).
CACHE_UNAVAILABLE: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError)
# Seconds a client is told to wait (Retry-After) before trying again.
RETRY_AFTER_SECONDS = 5
