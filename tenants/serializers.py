from __future__ import annotations

from rest_framework import serializers

from tenants.models import Tenant


class StrictBooleanField(serializers.BooleanField):
    """Only JSON true/false: "yes", 1 or "0" are errors, not guesses."""

    def to_internal_value(self, data: object) -> bool:
        if isinstance(data, bool):
            return data
        self.fail("invalid", input=data)
        raise AssertionError  # unreachable


class TenantSerializer(serializers.ModelSerializer[Tenant]):
    domains = serializers.SerializerMethodField()

    class Meta:
        model = Tenant
        fields = [
            "slug",
            "name",
            "schema_name",
            "domains",
            "is_active",
            "require_activation",
            "created_at",
            "archived_at",
        ]
        read_only_fields = fields

    def get_domains(self, tenant: Tenant) -> list[str]:
        return [d.domain for d in tenant.domains.all()]


class TenantCreateSerializer(serializers.Serializer):
    slug = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=200)
    admin_email = serializers.EmailField(max_length=254)
    admin_password = serializers.CharField(max_length=1024, write_only=True, trim_whitespace=False)
    admin_username = serializers.CharField(max_length=150, required=False)
    require_activation = StrictBooleanField(required=False, default=True)


class TenantUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    is_active = StrictBooleanField(required=False)
    require_activation = StrictBooleanField(required=False)

    def validate(self, attrs: dict[str, object]) -> dict[str, object]:
        unknown = set(self.initial_data) - set(self.fields) if isinstance(self.initial_data, dict) else set()
        if unknown:
            raise serializers.ValidationError({field: ["This field cannot be changed."] for field in sorted(unknown)})
        return attrs


class DomainSerializer(serializers.Serializer):
    domain = serializers.CharField(max_length=253)
    is_primary = StrictBooleanField(required=False, default=False)
