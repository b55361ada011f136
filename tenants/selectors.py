from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from core.errors import NotFound
from tenants.models import Domain, Tenant


def tenant_list() -> QuerySet[Tenant]:
    """Served tenants (never the template), domains prefetched: two queries a page."""
    return (
        Tenant.objects.filter(is_template=False)
        .prefetch_related(Prefetch("domains", queryset=Domain.objects.order_by("-is_primary", "domain")))
        .order_by("slug")
    )


def tenant_get(*, slug: str) -> Tenant:
    tenant = tenant_list().filter(slug=slug).first()
    if tenant is None:
        raise NotFound(f"No tenant '{slug}'.")
    return tenant
