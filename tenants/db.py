"""The default connection, typed as what django-tenants makes of it."""

from __future__ import annotations

from typing import Any, Protocol, cast

from django.db import connection as _connection
from django.db.backends.utils import CursorWrapper


class TenantConnection(Protocol):
    schema_name: str
    tenant: Any
    settings_dict: dict[str, Any]

    def set_tenant(self, tenant: Any, include_public: bool = True) -> None: ...

    def set_schema(self, schema_name: str, include_public: bool = True) -> None: ...

    def set_schema_to_public(self) -> None: ...

    def cursor(self) -> CursorWrapper: ...


connection = cast(TenantConnection, _connection)
