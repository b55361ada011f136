"""The Django admin site of each host, named after the tenant it serves.

It is the default site (``TenantAdminConfig``, in INSTALLED_APPS in place of
``django.contrib.admin``), so every ``admin.site`` in the project is this one. Kept apart from ``accounts.admin``:
Django builds the default site while apps are readied, before any admin
module may be imported.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest


class TenantAdminSite(admin.AdminSite):
    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().each_context(request)
        tenant = getattr(request, "tenant", None)
        name = tenant.name if tenant is not None else "Platform"
        context.update(site_header=f"{name} administration", site_title=f"{name} admin")
        return context


class TenantAdminConfig(AdminConfig):
    """django.contrib.admin with the tenant's name in its header and title."""

    default_site = "accounts.admin_site.TenantAdminSite"
