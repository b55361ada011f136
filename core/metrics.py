"""The product's own Prometheus metrics (django-prometheus adds the database ones).

Requests have one histogram, by view, method and status: its count is the
requests and responses by those, its buckets the latency. (django-prometheus'
HTTP middleware pair kept a dozen overlapping families, each written on every
request: ~4% of a product list request's CPU, bench/products_http.py.)

Labels are bounded by construction: a task's name, an email kind, an outcome.
Never a tenant, a user, a host or a path: 10,000 tenants must not make
10,000 series.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUEST_SECONDS = Histogram(
    "tenantdesk_http_request_duration_seconds",
    "Request latency by view (URL name), method and status code, whole middleware stack included.",
    ["view", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
# Any other method is counted as "other": the label set stays bounded.
METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"})
TASKS = Counter("tenantdesk_tasks_total", "Celery tasks by name and outcome.", ["task", "outcome"])
EMAILS = Counter("tenantdesk_emails_total", "Email delivery attempts by kind and outcome.", ["kind", "outcome"])
PROVISIONS = Counter("tenantdesk_tenant_provisions_total", "Tenant provisioning by outcome.", ["outcome"])
PROVISION_SECONDS = Histogram(
    "tenantdesk_tenant_provision_seconds",
    "Time to provision one tenant.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
MIGRATIONS = Counter(
    "tenantdesk_schema_migrations_total", "Schemas migrated by bootstrap or provisioning, by outcome.", ["outcome"]
)
