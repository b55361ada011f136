from __future__ import annotations

from typing import Any

from rest_framework import serializers

from mail.models import OutboxEmail

# What the recipient's mail server said about this address or message: the
# tenant's own business. Anything else (our relay, its credentials, the network)
# is the platform's, and only operators see its text.
_ABOUT_THE_RECIPIENT = ("SMTPRecipientsRefused:", "SMTPDataError:")
PLATFORM_SIDE = "Delivery failed on the platform's side; it is retried, and operators see the details."


class OutboxEmailSerializer(serializers.ModelSerializer[OutboxEmail]):
    """An email's delivery state, as a tenant's admins see it. Never its body:
    it holds a one-time link."""

    last_error = serializers.SerializerMethodField()

    def get_last_error(self, row: OutboxEmail) -> str:
        if not row.last_error or row.last_error.startswith(_ABOUT_THE_RECIPIENT):
            return row.last_error
        return PLATFORM_SIDE

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
    """As operators see it: every tenant's, with the error as the server wrote it."""

    tenant: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    last_error = serializers.CharField(read_only=True)  # type: ignore[assignment]

    class Meta(OutboxEmailSerializer.Meta):
        fields = ["tenant", *OutboxEmailSerializer.Meta.fields]
        read_only_fields = fields
