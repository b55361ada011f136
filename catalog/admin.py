from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from guardian.admin import GuardedModelAdmin

from accounts.admin import UserByEmailOrUsername
from catalog import policy, services
from catalog.models import Product


@admin.register(Product)
class ProductAdmin(GuardedModelAdmin):
    """With guardian's object-permission pages ("Object permissions" button).

    Publishing follows the one rule here too: ``is_published`` is editable only
    for whoever may publish that product, and goes through the service (which
    also stamps ``published_at``)."""

    list_display = ["id", "name", "price", "owner", "is_published", "updated_at"]
    list_filter = ["is_published"]
    search_fields = ["name", "description"]
    raw_id_fields = ["owner"]
    readonly_fields = ["created_at", "updated_at", "published_at"]

    def get_obj_perms_user_select_form(self, request: HttpRequest) -> type[forms.Form]:
        return UserByEmailOrUsername

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        may_publish = (
            policy.can(request.user, "publish", obj)
            if obj is not None
            else policy.has_model_level(request.user, "publish")
        )
        if not may_publish:
            fields.append("is_published")
        return fields

    def save_model(self, request: HttpRequest, obj: Product, form: Any, change: bool) -> None:
        if not change and obj.owner_id is None:
            obj.owner = request.user  # type: ignore[assignment]
        publish = obj.is_published
        if "is_published" in form.changed_data:
            obj.is_published = not publish  # let the service make the change
        super().save_model(request, obj, form, change)
        if "is_published" in form.changed_data:
            (services.product_publish if publish else services.product_unpublish)(product=obj)
