from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from tenants.db import connection


@extend_schema(
    responses=inline_serializer(
        "Health",
        {
            "status": serializers.CharField(),
            "schema": serializers.CharField(),
            "tenant": serializers.CharField(allow_null=True, help_text="null on the public host"),
        },
    )
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([AllowAny])
def health(request: Request) -> Response:
    """Liveness, and which schema this host resolved to. Touches no table."""
    tenant = getattr(request, "tenant", None)
    return Response({"status": "ok", "schema": connection.schema_name, "tenant": tenant.slug if tenant else None})
