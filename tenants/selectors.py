from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from core.errors import NotFound
from tenants import citus
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


def tenant_placement(*, tenant: Tenant) -> dict[str, object]:
    """Where the tenant's schema lives: on Citus, the worker holding it."""
    if not citus.is_citus():
        return {"citus": False, "schema": tenant.schema_name, "node": None, "size_bytes": None}
    return {"citus": True, **citus.placements([tenant.schema_name], sizes=True)[tenant.schema_name].as_dict()}


def node_summary() -> list[dict[str, object]]:
    """Per Citus worker: how many tenant schemas it holds and their size; a
    last row (node None) counts tenants whose schema is local (not distributed)."""
    if not citus.is_citus():
        return []
    schemas = list(Tenant.objects.filter(is_template=False).values_list("schema_name", flat=True))
    tenants = dict.fromkeys(citus.worker_nodes(), 0)
    local = 0
    for placement in citus.placements(schemas).values():
        if placement.node is None:
            local += 1
            continue
        tenants[placement.node] = tenants.get(placement.node, 0) + 1
    sizes = citus.node_sizes()
    rows: list[dict[str, object]] = [
        {"node": node, "tenants": tenants[node], "size_bytes": sizes.get(node, 0)} for node in sorted(tenants)
    ]
    if local:
        rows.append({"node": None, "tenants": local, "size_bytes": None})
    return rows


def normalize_domain(domain: str) -> str:
    return domain.strip().lower().rstrip(".")


def tenant_domain(*, tenant: Tenant, domain: str, for_update: bool = False) -> Domain:
    domain = normalize_domain(domain)
    domains = Domain.objects.select_for_update() if for_update else Domain.objects
    found = domains.filter(tenant=tenant, domain=domain).first()
    if found is None:
        raise NotFound(f"'{domain}' is not a domain of this tenant.", field="domain")
    return found
