from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from accounts.audit.managers import AuditedGroupObjectPermissionManager, AuditedUserObjectPermissionManager

_UNREAD = object()


class Product(models.Model):
    """A tenant's product. Who may do what with it: catalog/policy.py."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="", max_length=10_000)
    price = models.DecimalField(max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal("0"))])
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="products"
    )
    is_published = models.BooleanField(default=False)
    published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        permissions = [("can_publish_product", "Can publish product")]
        constraints = [
            models.CheckConstraint(condition=models.Q(price__gte=0), name="catalog_product_price_not_negative"),
        ]
        indexes = [
            # The "published" branch of the visibility rule reads only these.
            models.Index(fields=["id"], condition=models.Q(is_published=True), name="catalog_product_published_idx"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        super().save(*args, **kwargs)
        self._stored_owner_id = self.owner_id

    # The owner as last read from or written to the database: changing it
    # grants ownership (catalog.guards), judged without a query for a
    # product that was loaded.
    _stored_owner_id: Any = _UNREAD

    @classmethod
    def from_db(cls, db: Any, field_names: Any, values: Any) -> Product:
        instance = super().from_db(db, field_names, values)
        instance._stored_owner_id = instance.__dict__.get("owner_id", _UNREAD)
        return instance

    def stored_owner_id(self) -> int | None:
        if self._stored_owner_id is _UNREAD:
            self._stored_owner_id = Product.objects.filter(pk=self.pk).values_list("owner_id", flat=True).first()
        return self._stored_owner_id


class ProductUserObjectPermission(UserObjectPermissionBase):
    """Guardian's direct foreign-key table: a real FK (indexed, no varchar cast)
    that cascades, so a deleted product takes its grants with it. Audited on
    every path (accounts.audit: receivers for single rows, the manager for
    guardian's bulk assigns)."""

    content_object = models.ForeignKey(Product, on_delete=models.CASCADE)
    objects: ClassVar[AuditedUserObjectPermissionManager] = AuditedUserObjectPermissionManager()

    class Meta(UserObjectPermissionBase.Meta):
        verbose_name = "product user permission"


class ProductGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Product, on_delete=models.CASCADE)
    objects: ClassVar[AuditedGroupObjectPermissionManager] = AuditedGroupObjectPermissionManager()

    class Meta(GroupObjectPermissionBase.Meta):
        verbose_name = "product group permission"
