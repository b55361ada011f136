"""The settings of their own tenant that its admins may change (on its host):
today, the browser origins allowed to call its API cross-origin.

The write is tenants.services' (one set of rules with the platform API); this
adds the row lock and the audit entry, in the tenant's schema.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction

from accounts.audit import entries
from accounts.audit.recording import record
from tenants import services as tenant_services
from tenants.models import Tenant


def tenant_cors_update(*, tenant: Tenant, origins: Sequence[str]) -> Tenant:
    """Replace the tenant's allowed CORS origins (validated and normalized by
    ``tenants.services.normalize_origins``; nothing is written if one is
    refused) and audit the change, old and new lists, when there is one.
    Returns the tenant as saved; its cached hosts are evicted by the save."""
    with transaction.atomic():
        # Locked: two admins saving at once each audit the list they replaced.
        current = Tenant.objects.select_for_update().get(pk=tenant.pk)
        old = list(current.cors_allowed_origins)
        tenant_services.tenant_update(tenant=current, cors_allowed_origins=origins)
        if current.cors_allowed_origins != old:
            record([entries.tenant_cors_changed(current, old=old, new=current.cors_allowed_origins)])
    return current
