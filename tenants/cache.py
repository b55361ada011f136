"""Host -> tenant resolution, cached so a warm request spends no query on it.

The cache is the ``tenants`` alias, seen by every process: Redis with
REDIS_URL, files under .data/ without. Keys carry the database name, so a dev
server and the test suite sharing one cache never see each other's tenants.
Writes to ``Tenant`` and ``Domain`` evict the affected hosts through model
signals, so every write path (services, admin, shell) invalidates, at once and
again on commit; answers are versioned per host so that a resolve racing a
write cannot put the old answer back.

Without the cache (Redis away: core.outages) hosts are resolved from the
database on every request, and writes to tenants and domains are refused
(503): their eviction would be lost, and a suspended tenant served from a
stale answer once Redis is back.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Any

from django.core.cache import BaseCache, caches
from django.db import connection, transaction
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from core.errors import ServiceUnavailable
from core.outages import CACHE_UNAVAILABLE
from tenants.models import Domain, Tenant

logger = logging.getLogger(__name__)

# Unknown hosts are remembered briefly so that a flood of made-up subdomains
# does not turn into a flood of queries; adding a domain evicts the entry.
NEGATIVE_TTL = 60
TTL = 3600
# Outlives every answer stored under it; when it expires (or is culled), the
# next resolve starts a new generation and the old answers are never read.
GENERATION_TTL = 2 * TTL
_MISSING = "-"


def _keys(host: str) -> tuple[str, str]:
    """(the answer's key, the host's generation key)."""
    scoped = hashlib.sha1(f"{connection.settings_dict['NAME']}\x00{host}".encode(), usedforsecurity=False).hexdigest()
    return f"host:{scoped}", f"host-gen:{scoped}"


def _cache() -> BaseCache:
    return caches["tenants"]


def resolve_host(host: str) -> Tenant | None:
    """The tenant served on ``host``, or None. One cache round trip, no query,
    when warm; one query, and no caching, while the cache is unavailable.

    Answers are stored with the host's generation as read *before* the
    database was; evicting a host gives it a new generation. So an answer read
    while a suspension or purge commits, and stored after its eviction, is
    stored under the old generation and never served (a resolve racing a
    suspend cannot re-cache the tenant as active)."""
    try:
        return _resolve_cached(host)
    except CACHE_UNAVAILABLE as exc:
        logger.warning("tenant cache unavailable, %s resolved from the database: %s", host, exc)
        return _domain_tenant(host)


def _domain_tenant(host: str) -> Tenant | None:
    domain = Domain.objects.select_related("tenant").filter(domain=host, tenant__is_template=False).first()
    return None if domain is None else domain.tenant


def _resolve_cached(host: str) -> Tenant | None:
    cache = _cache()
    key, gen_key = _keys(host)
    found = cache.get_many([key, gen_key])
    generation = found.get(gen_key)
    if generation is None:
        cache.add(gen_key, uuid.uuid4().hex, timeout=GENERATION_TTL)
        generation = cache.get(gen_key)
    else:
        cached = found.get(key)
        if isinstance(cached, tuple) and len(cached) == 2 and cached[1] == generation:
            answer = cached[0]
            if answer == _MISSING:
                return None
            if isinstance(answer, Tenant):
                return answer
    tenant = _domain_tenant(host)
    if tenant is None:
        cache.set(key, (_MISSING, generation), NEGATIVE_TTL)
        # A made-up host's keys go with its answer: a flood of them is bounded
        # by what arrives in NEGATIVE_TTL. (A new generation after that is as
        # good as the old: answers are only read under the generation they
        # were stored with.)
        cache.touch(gen_key, NEGATIVE_TTL)
        return None
    cache.set(key, (tenant, generation), TTL)
    return tenant


def evict_hosts(hosts: list[str] | set[str]) -> None:
    """New generations for the hosts, at once and again on commit (a reader
    between the two could otherwise cache the pre-commit row)."""
    gen_keys = [_keys(h)[1] for h in hosts]
    if not gen_keys:
        return

    def bump() -> None:
        _cache().set_many({k: uuid.uuid4().hex for k in gen_keys}, timeout=GENERATION_TTL)

    try:
        bump()
    except CACHE_UNAVAILABLE as exc:
        # In the writer's transaction: refusing rolls the change back.
        raise ServiceUnavailable(
            "Tenants and domains cannot be changed while the tenant cache is unavailable; try again shortly.",
            code="tenant_cache_unavailable",
        ) from exc
    # Committed by then: a failure is logged, not raised into a done change.
    transaction.on_commit(bump, robust=True)


def clear() -> None:
    _cache().clear()


@receiver(post_save, sender=Tenant)
@receiver(post_delete, sender=Tenant)
def _tenant_changed(sender: Any, instance: Tenant, **kwargs: Any) -> None:
    evict_hosts(set(Domain.objects.filter(tenant_id=instance.pk).values_list("domain", flat=True)))


@receiver(pre_save, sender=Domain)
def _domain_renamed(sender: Any, instance: Domain, **kwargs: Any) -> None:
    if instance.pk:
        old = Domain.objects.filter(pk=instance.pk).values_list("domain", flat=True).first()
        if old and old != instance.domain:
            evict_hosts([old])


@receiver(post_save, sender=Domain)
@receiver(post_delete, sender=Domain)
def _domain_changed(sender: Any, instance: Domain, **kwargs: Any) -> None:
    evict_hosts([instance.domain])
