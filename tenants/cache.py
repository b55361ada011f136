"""Host -> tenant resolution, cached so a warm request spends no query on it.

The cache is the ``tenants`` alias, seen by every process: Redis with
REDIS_URL, files under .data/ without. Keys carry the database name, so a dev
server and the test suite sharing one cache never see each other's tenants.
Writes to ``Tenant`` and ``Domain`` evict the affected hosts through model
signals, so every write path (services, admin, shell) invalidates, at once and again on commit (a reader between the two
could otherwise re-cache the pre-commit row).
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.core.cache import BaseCache, caches
from django.db import connection, transaction
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from tenants.models import Domain, Tenant

# Unknown hosts are remembered briefly so that a flood of made-up subdomains
# does not turn into a flood of queries; adding a domain evicts the entry.
NEGATIVE_TTL = 60
_MISSING = "-"


def _key(host: str) -> str:
    scoped = f"{connection.settings_dict['NAME']}\x00{host}"
    return "host:" + hashlib.sha1(scoped.encode(), usedforsecurity=False).hexdigest()


def _cache() -> BaseCache:
    return caches["tenants"]


def resolve_host(host: str) -> Tenant | None:
    """The tenant served on ``host``, or None. Zero queries when warm."""
    cache = _cache()
    key = _key(host)
    cached = cache.get(key)
    if cached == _MISSING:
        return None
    if isinstance(cached, Tenant):
        return cached
    domain = Domain.objects.select_related("tenant").filter(domain=host, tenant__is_template=False).first()
    if domain is None:
        cache.set(key, _MISSING, NEGATIVE_TTL)
        return None
    tenant = domain.tenant
    cache.set(key, tenant)
    return tenant


def evict_hosts(hosts: list[str] | set[str]) -> None:
    keys = [_key(h) for h in hosts]
    if not keys:
        return
    _cache().delete_many(keys)
    transaction.on_commit(lambda: _cache().delete_many(keys))


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
