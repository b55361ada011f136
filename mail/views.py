"""The platform's view of the outbox (public host, operators only): every
tenant's emails, to find what failed and send it again."""

from __future__ import annotations

from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import NotFound
from core.openapi import errors
from mail import selectors, services
from mail.models import OutboxEmail
from mail.serializers import FleetEmailSerializer
from tenants.permissions import IsPlatformOperator


class EmailFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=OutboxEmail.Status.choices)
    kind = filters.CharFilter(max_length=50)
    to = filters.CharFilter(field_name="to", lookup_expr="iexact", max_length=254)

    class Meta:
        model = OutboxEmail
        fields = ["status", "kind", "to"]


class FleetEmailFilter(EmailFilter):
    tenant = filters.CharFilter(field_name="tenant__slug", max_length=32)

    class Meta(EmailFilter.Meta):
        fields = [*EmailFilter.Meta.fields, "tenant"]


class FleetEmailListView(ListAPIView[OutboxEmail]):
    """Every tenant's emails, newest first; ``?status=failed`` for what needs a look."""

    serializer_class = FleetEmailSerializer
    permission_classes = [IsPlatformOperator]
    filter_backends = [filters.DjangoFilterBackend]
    filterset_class = FleetEmailFilter

    def get_queryset(self) -> QuerySet[OutboxEmail]:
        return selectors.emails_of_fleet()


class FleetEmailRetryView(APIView):
    permission_classes = [IsPlatformOperator]

    @extend_schema(request=None, responses={200: FleetEmailSerializer, **errors(409)})
    def post(self, request: Request, pk: int) -> Response:
        row = selectors.emails_of_fleet().filter(pk=pk).first()
        if row is None:
            raise NotFound("No such email.")
        row = services.email_retry(pk=pk, tenant_id=row.tenant_id)
        return Response(FleetEmailSerializer(row).data)
