from __future__ import annotations

from typing import Any

from django_tenants.utils import get_public_schema_name
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from tenants.db import connection


class IsPlatformOperator(BasePermission):
    """Staff users of the public schema, on the public host only.

    Tenant tokens never authenticate on the public host (tenant-bound JWT); the
    schema check keeps this true even if a view were mounted elsewhere.
    """

    message = "Only platform operators may manage tenants."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(
            connection.schema_name == get_public_schema_name()
            and user
            and user.is_authenticated
            and user.is_active
            and user.is_staff
        )
