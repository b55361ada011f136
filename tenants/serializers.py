from __future__ import annotations

from typing import Any

from rest_framework import serializers

from tenants.models import ORIGIN_MAX_LENGTH, Tenant


class StrictBooleanField(serializers.BooleanField):
    """Only JSON true/false: "yes", 1 or "0" are errors, not guesses."""

    def to_internal_value(self, data: object) -> bool:
        if isinstance(data, bool):
            return data
        self.fail("invalid", input=data)
        raise AssertionError  # unreachable


class OriginListField(serializers.ListField):
    """A JSON list of origins, passed on as it is: the service
    (tenants.services.normalize_origins) checks and normalizes its entries,
    with one set of rules and messages for every path."""

    def __init__(self, **kwargs: Any) -> None:
        # The child only documents the items: to_internal_value never runs it.
        super().__init__(child=serializers.CharField(max_length=ORIGIN_MAX_LENGTH), **kwargs)

    def to_internal_value(self, data: object) -> list[object]:
        if not isinstance(data, list):
            self.fail("not_a_list", input_type=type(data).__name__)
        return list(data)


class RefusesUnknownFields(serializers.Serializer):
    """A field the serializer does not declare is a 400 naming it, not
    silently ignored."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = set(self.initial_data) - set(self.fields) if isinstance(self.initial_data, dict) else set()
        if unknown:
            raise serializers.ValidationError({field: ["This field cannot be changed."] for field in sorted(unknown)})
        return attrs


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
            "cors_allowed_origins",
            "link_templates",  # where its emailed links point, by kind, when not at this deployment's default
            "created_at",
            "archived_at",
            "migration_error",  # why the last fleet migration failed for it ("" when none did)
            "migration_failed_at",
        ]
        read_only_fields = fields

    def get_domains(self, tenant: Tenant) -> list[str]:
        return [d.domain for d in tenant.domains.all()]


class TenantCreateSerializer(serializers.Serializer):
    slug = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=200)
    admin_email = serializers.EmailField(max_length=254)
    admin_password = serializers.CharField(max_length=1024, write_only=True)  # trimmed, as logins trim it
    admin_username = serializers.CharField(max_length=150, required=False)
    require_activation = StrictBooleanField(required=False, default=True)


class TenantUpdateSerializer(RefusesUnknownFields):
    """What operators may change of a tenant; any other field is a 400 naming it."""

    name = serializers.CharField(max_length=200, required=False)
    is_active = StrictBooleanField(required=False)
    require_activation = StrictBooleanField(required=False)
    cors_allowed_origins = OriginListField(required=False)
    link_templates = serializers.DictField(
        child=serializers.CharField(allow_null=True, allow_blank=True, trim_whitespace=False),  # checked by the service
        required=False,
        help_text='{kind: template or null}: "activation", "password_reset", "email_reset", "invitation".',
    )


class DomainSerializer(serializers.Serializer):
    domain = serializers.CharField(max_length=253)
    is_primary = StrictBooleanField(required=False, default=False)


class DomainUpdateSerializer(RefusesUnknownFields):
    is_primary = StrictBooleanField()

    def validate_is_primary(self, value: bool) -> bool:
        if not value:
            raise serializers.ValidationError(
                "A tenant always has one primary domain: make another domain primary instead."
            )
        return value


class PlacementSerializer(serializers.Serializer):
    """Where a tenant's schema lives (for the API schema; built by selectors.tenant_placement)."""

    citus = serializers.BooleanField(help_text="whether the database is a Citus cluster")
    schema = serializers.CharField()
    node = serializers.CharField(allow_null=True, help_text="host:port of the Citus worker; null when local")
    size_bytes = serializers.IntegerField(allow_null=True)
