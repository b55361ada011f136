from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth.models import Group
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from accounts.models import User
from catalog import policy
from catalog.models import Product

MAX_BULK = 1000
# products x (users + groups) x permissions in one bulk request.
MAX_BULK_CHANGES = 100_000


class ProductSerializer(serializers.ModelSerializer[Product]):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=10_000, allow_blank=True, required=False)
    price = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=Decimal("0"))

    class Meta:
        model = Product
        fields = [
            "id",
            "name",
            "description",
            "price",
            "owner",
            "is_published",
            "published_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "owner", "is_published", "published_at", "created_at", "updated_at"]


# --- answers (dicts the selectors build), described for the OpenAPI schema ---------------------


class GrantHolderSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    permissions = serializers.ListField(child=serializers.CharField(), help_text="codenames")


class UserGrantsSerializer(GrantHolderSerializer):
    email = serializers.CharField()


class GroupGrantsSerializer(GrantHolderSerializer):
    name = serializers.CharField()


class ProductGrantsSerializer(serializers.Serializer):
    """Who holds which object permission on a product (selectors.product_grants)."""

    users = UserGrantsSerializer(many=True)
    groups = GroupGrantsSerializer(many=True)


# What policy.explain names as the source of an allowed action.
ACCESS_SOURCES = ["superuser", "model_direct", "model_group", "object_direct", "object_group", "owner", "published"]


class ActionAccessSerializer(serializers.Serializer):
    allowed = serializers.BooleanField()
    # By name: a field called "source" in a class body would shadow Field.source for type checkers.
    sources = inline_serializer(
        "AccessSource",
        {
            "source": serializers.ChoiceField(choices=ACCESS_SOURCES),
            "permission": serializers.CharField(required=False, help_text="app_label.codename"),
            "group": serializers.CharField(required=False, help_text="the group's name"),
        },
        many=True,
    )


class ProductAccessSerializer(serializers.Serializer):
    """What a user may do with a product, and why (policy.explain)."""

    product = serializers.IntegerField()
    user = serializers.IntegerField()
    actions = serializers.DictField(child=ActionAccessSerializer(), help_text="view, change, delete, publish")


class BulkGrantResultSerializer(serializers.Serializer):
    changed = serializers.IntegerField(help_text="grant rows written or removed")


class CodenameField(serializers.CharField):
    """An object-level product permission: "view_product" or "catalog.view_product"."""

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        codename = value.removeprefix(f"{policy.APP_LABEL}.")
        if codename not in policy.ACTION_BY_CODENAME or codename == policy.CODENAMES["add"]:
            allowed = ", ".join(policy.CODENAMES[a] for a in policy.OBJECT_ACTIONS)
            raise serializers.ValidationError(f"Unknown product permission '{value}'; use one of {allowed}.")
        return codename


class GrantSerializer(serializers.Serializer):
    user = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    group = serializers.IntegerField(required=False, min_value=1, max_value=2**31 - 1)
    permissions = serializers.ListField(child=CodenameField(max_length=64), min_length=1, max_length=10)

    def validate_user(self, value: int) -> int:
        # Checked here so that the error names this body's field ("user"), not the service's ("users").
        if not User.objects.filter(pk=value).exists():
            raise serializers.ValidationError(f"No such user: {value}.")
        return value

    def validate_group(self, value: int) -> int:
        if not Group.objects.filter(pk=value).exists():
            raise serializers.ValidationError(f"No such group: {value}.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("user" in attrs) == ("group" in attrs):
            raise serializers.ValidationError({"user": ["Give exactly one of user or group."]})
        return attrs


def _id(maximum: int) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=maximum)


class BulkGrantSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=["grant", "revoke"])
    permissions = serializers.ListField(child=CodenameField(max_length=64), min_length=1, max_length=10)
    products = serializers.ListField(child=_id(2**63 - 1), min_length=1, max_length=MAX_BULK)
    users = serializers.ListField(child=_id(2**63 - 1), required=False, default=list, max_length=MAX_BULK)
    groups = serializers.ListField(child=_id(2**31 - 1), required=False, default=list, max_length=MAX_BULK)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs["users"] and not attrs["groups"]:
            raise serializers.ValidationError({"users": ["Give at least one user or group."]})
        holders = len(set(attrs["users"])) + len(set(attrs["groups"]))
        if len(set(attrs["products"])) * holders * len(set(attrs["permissions"])) > MAX_BULK_CHANGES:
            raise serializers.ValidationError(
                {"products": [f"At most {MAX_BULK_CHANGES} grants in one request (products x holders x permissions)."]}
            )
        return attrs
