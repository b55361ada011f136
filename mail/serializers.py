from __future__ import annotations

from typing import Any

from rest_framework import serializers

from mail.models import OutboxEmail


class OutboxEmailSerializer(serializers.ModelSerializer[OutboxEmail]):
    """An email's delivery state. Never its body: it holds a one-time link."""

    class Meta:
        model = OutboxEmail
        fields = [
            "id",
            "kind",
            "to",
            "subject",
            "status",
            "attempts",
            "last_error",
            "next_attempt_at",
            "created_at",
            "sent_at",
            "request_id",
        ]
        read_only_fields = fields


class FleetEmailSerializer(OutboxEmailSerializer):
    tenant: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta(OutboxEmailSerializer.Meta):
        fields = ["tenant", *OutboxEmailSerializer.Meta.fields]
        read_only_fields = fields
