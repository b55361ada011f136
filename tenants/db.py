"""The default connection, typed as what django-tenants makes of it."""

from __future__ import annotations

from typing import Any, Protocol, cast

from django.db import connection as _connection
from django.db.backends.utils import CursorWrapper
from django_tenants.utils import get_public_schema_name

from tenants.models import Tenant


class TenantConnection(Protocol):
    schema_name: str
    tenant: Any
    settings_dict: dict[str, Any]

    def set_tenant(self, tenant: Any, include_public: bool = True) -> None: ...

    def set_schema(self, schema_name: str, include_public: bool = True) -> None: ...

    def set_schema_to_public(self) -> None: ...

    def cursor(self) -> CursorWrapper: ...


connection = cast(TenantConnection, _connection)


def current_tenant_id() -> int:
    """The current tenant's row id; 0 on the public schema.

    A purged tenant's slug (and so its schema name) may be provisioned again,
    for someone else, with user ids starting over at 1. Row ids are never
    reused, so credentials are bound to this as well as to the schema name.
    """
    if connection.schema_name == get_public_schema_name():
        return 0
    pk = getattr(connection.tenant, "pk", None)
    if isinstance(pk, int):
        return pk
    # A bare schema switch (schema_context) carries no row: look it up.
    found = Tenant.objects.filter(schema_name=connection.schema_name).values_list("pk", flat=True).first()
    return found if found is not None else -1


def use_tenant(tenant: Tenant) -> None:
    """``connection.set_tenant(tenant)``, keeping what django-tenants knows of
    the session's search_path when the schema does not change.

    ``set_tenant`` forgets it, so the next statement of every request is
    preceded by its own ``SET search_path`` round trip, although a persistent
    connection serving the same tenant again already has it. django-tenants
    forgets it itself whenever the session may have lost it (the connection
    closed or replaced, a rollback, a rolled-back savepoint), and then the SET
    is sent as before."""
    wrapper: Any = connection
    known = wrapper.search_path_set_schemas
    same = wrapper.schema_name == tenant.schema_name and wrapper.include_public_schema
    connection.set_tenant(tenant)
    if same and known and wrapper.connection is not None:
        wrapper.search_path_set_schemas = known
