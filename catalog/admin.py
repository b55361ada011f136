from django.contrib import admin
from guardian.admin import GuardedModelAdmin

from catalog.models import Product


@admin.register(Product)
class ProductAdmin(GuardedModelAdmin):
    """With guardian's object-permission pages ("Object permissions" button)."""

    list_display = ["id", "name", "price", "owner", "is_published", "updated_at"]
    list_filter = ["is_published"]
    search_fields = ["name", "description"]
    raw_id_fields = ["owner"]
    readonly_fields = ["created_at", "updated_at", "published_at"]
