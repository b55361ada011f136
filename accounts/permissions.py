"""Who is a tenant admin, defined once, and the permission classes built on it.

A tenant admin is an active staff user of the tenant (``is_staff``, what DRF's
``IsAdminUser`` checks): they manage the tenant's users, groups, model
permissions, customers and audit log, and any product's object grants
(catalog.permissions builds on ``is_tenant_admin`` too).
"""

from __future__ import annotations

from typing import Any

from djoser.permissions import CurrentUserOrAdmin
from rest_framework import permissions
from rest_framework.permissions import BasePermission, IsAdminUser
from rest_framework.request import Request

from tenants.permissions import IsPlatformOperator


def is_tenant_admin(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff)


class IsTenantAdmin(IsAdminUser):
    """The seed's IsAdminUser, with the one definition of tenant admin."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_tenant_admin(request.user)


class CurrentUserOrTenantAdmin(CurrentUserOrAdmin):
    """djoser's CurrentUserOrAdmin (a user's own account, or an admin), with the
    one definition of tenant admin."""

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        return is_tenant_admin(request.user) or obj.pk == request.user.pk


class IsAdminOrReadOnly(BasePermission):
    """The seed's: everyone may read, only tenant admins may write."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return request.method in permissions.SAFE_METHODS or is_tenant_admin(request.user)


class IsPlatformSuperuser(IsPlatformOperator):
    """A superuser operator (active staff and superuser of the public
    schema, on the public host): manages the other operators."""

    message = "Only superuser platform operators may manage operators."

    def has_permission(self, request: Request, view: Any) -> bool:
        return super().has_permission(request, view) and bool(request.user.is_superuser)
