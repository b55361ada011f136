"""Platform API (public host, operators only). Thin: validate, call, serialize."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.filters import OrderingFilter, SearchFilter
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.openapi import errors
from tenants import selectors, services
from tenants.models import Tenant
from tenants.permissions import IsPlatformOperator
from tenants.serializers import (
    DomainSerializer,
    DomainUpdateSerializer,
    PlacementSerializer,
    TenantCreateSerializer,
    TenantSerializer,
    TenantUpdateSerializer,
)


class PlatformView(APIView):
    permission_classes = [IsPlatformOperator]


class TenantFilter(filters.FilterSet):
    # Strict: "maybe" is a 400 naming is_active, not a silently unfiltered list.
    is_active = filters.TypedChoiceFilter(
        choices=[("true", "true"), ("false", "false")], coerce=lambda value: value == "true"
    )

    class Meta:
        model = Tenant
        fields = ["is_active"]


class TenantListCreateView(PlatformView, generics.ListAPIView[Tenant]):
    """The fleet's tenants (never the template), paginated like every list;
    ``?search=`` in slug and name, ``?is_active=``, ``?ordering=``."""

    serializer_class = TenantSerializer
    filter_backends = [filters.DjangoFilterBackend, SearchFilter, OrderingFilter]
    filterset_class = TenantFilter
    search_fields = ["slug", "name"]
    ordering_fields = ["slug", "name", "created_at", "is_active"]
    ordering = ["slug"]

    def get_queryset(self) -> QuerySet[Tenant]:
        return selectors.tenant_list()

    @extend_schema(request=TenantCreateSerializer, responses={201: TenantSerializer, **errors(409)})
    def post(self, request: Request) -> Response:
        data = TenantCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = services.tenant_provision(**data.validated_data)
        return Response(TenantSerializer(selectors.tenant_get(slug=tenant.slug)).data, status=status.HTTP_201_CREATED)


class TenantDetailView(PlatformView):
    @extend_schema(responses=TenantSerializer)
    def get(self, request: Request, slug: str) -> Response:
        return Response(TenantSerializer(selectors.tenant_get(slug=slug)).data)

    @extend_schema(request=TenantUpdateSerializer, responses=TenantSerializer)
    def patch(self, request: Request, slug: str) -> Response:
        data = TenantUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.tenant_update(tenant=selectors.tenant_get(slug=slug), **data.validated_data)
        return Response(TenantSerializer(selectors.tenant_get(slug=slug)).data)

    @extend_schema(
        parameters=[OpenApiParameter("purge", str, description="The tenant's slug again: drop its schema for good.")],
        responses={204: None, **errors(409)},  # 409: a purge refused on Citus (TenantBusy)
    )
    def delete(self, request: Request, slug: str) -> Response:
        tenant = selectors.tenant_get(slug=slug)
        purge = request.query_params.get("purge")
        if purge is None:
            services.tenant_archive(tenant=tenant)
        else:
            services.tenant_purge(tenant=tenant, confirm=purge)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TenantDomainsView(PlatformView):
    @extend_schema(responses=DomainSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        tenant = selectors.tenant_get(slug=slug)
        return Response(DomainSerializer(tenant.domains.all(), many=True).data)

    @extend_schema(request=DomainSerializer, responses={201: DomainSerializer, **errors(409)})
    def post(self, request: Request, slug: str) -> Response:
        data = DomainSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        domain = services.domain_add(tenant=selectors.tenant_get(slug=slug), **data.validated_data)
        return Response(DomainSerializer(domain).data, status=status.HTTP_201_CREATED)


class TenantDomainDetailView(PlatformView):
    @extend_schema(responses=DomainSerializer)
    def get(self, request: Request, slug: str, domain: str, **kwargs: Any) -> Response:
        found = selectors.tenant_domain(tenant=selectors.tenant_get(slug=slug), domain=domain)
        return Response(DomainSerializer(found).data)

    @extend_schema(request=DomainUpdateSerializer, responses=DomainSerializer)
    def patch(self, request: Request, slug: str, domain: str, **kwargs: Any) -> Response:
        """Make this domain the tenant's primary one (``{"is_primary": true}``):
        emails link to it from then on. A tenant always has one primary
        domain, so the way to change it is to make another one primary."""
        data = DomainUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        found = services.domain_make_primary(tenant=selectors.tenant_get(slug=slug), domain=domain)
        return Response(DomainSerializer(found).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, slug: str, domain: str, **kwargs: Any) -> Response:
        services.domain_remove(tenant=selectors.tenant_get(slug=slug), domain=domain)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TenantPlacementView(PlatformView):
    """Which node holds the tenant (Citus); read-only. Moving a tenant copies
    its data and holds its writes for as long as that takes, so it is an
    operator's command (manage.py tenant_nodes --move), not a web request."""

    @extend_schema(responses=PlacementSerializer)
    def get(self, request: Request, slug: str) -> Response:
        return Response(selectors.tenant_placement(tenant=selectors.tenant_get(slug=slug)))
