"""Product API on tenant hosts. Who may do what is catalog.policy's answer, always."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.filters import OrderingFilter, SearchFilter
from rest_framework.permissions import SAFE_METHODS, IsAuthenticatedOrReadOnly
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from accounts import selectors as account_selectors
from accounts.permissions import IsTenantAdmin, is_tenant_admin
from catalog import policy, selectors, services
from catalog.models import Product
from catalog.permissions import (
    CanExplainAccess,
    CanManageGrants,
    CanPublishProduct,
    ProductModelPermissions,
    ProductObjectPermissions,
)
from catalog.serializers import (
    BulkGrantResultSerializer,
    BulkGrantSerializer,
    GrantSerializer,
    ProductAccessSerializer,
    ProductGrantsSerializer,
    ProductSerializer,
)
from core.ids import parse_id
from core.pagination import Pagination


class ProductFilter(filters.FilterSet):
    is_published = filters.BooleanFilter()
    owner = filters.NumberFilter(field_name="owner_id")

    class Meta:
        model = Product
        fields = ["is_published", "owner"]


class ProductViewSet(viewsets.ModelViewSet[Product]):
    """Products under the one rule (catalog/policy.py).

    List: the products the caller may view, filtered in SQL. Detail: one query
    that loads the product with a flag per action; not visible -> 404,
    visible but not allowed -> 403.
    """

    serializer_class = ProductSerializer
    permission_classes = [IsAuthenticatedOrReadOnly, ProductModelPermissions, ProductObjectPermissions]
    pagination_class = Pagination
    filter_backends = [filters.DjangoFilterBackend, SearchFilter, OrderingFilter]
    filterset_class = ProductFilter
    search_fields = ["name", "description"]
    ordering_fields = ["id", "name", "price", "created_at", "updated_at", "published_at"]
    ordering = ["id"]
    required_action: str | None = None
    # Set by the grants and explain actions: tenant admins reach any product there.
    admins_reach_any_product = False

    def get_queryset(self) -> QuerySet[Product]:
        return policy.visible(self.request.user, "view", Product.objects.order_by("id"))

    # The list's query parameters that leave the set of products as it is.
    _UNNARROWED = frozenset({"page", "page_size", "format"})

    def list_page(self, request: Request, bottom: int, size: int) -> tuple[list[Product], int | None] | None:
        """The unfiltered list's page and count in one statement, compiled
        once per shape of the rule (core.pagination, policy.visible_page). A
        search, a filter or another ordering take the usual COUNT and page."""
        if self.action != "list" or not set(request.query_params) <= self._UNNARROWED:
            return None
        return policy.visible_page(request.user, bottom, size, "view")

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """ListModelMixin's, with the queryset built only if the page is not
        read by ``list_page`` (core.pagination)."""
        page = self.paginate_queryset(lambda: self.filter_queryset(self.get_queryset()))  # type: ignore[arg-type]
        assert page is not None  # pagination_class is set
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def filter_queryset(self, queryset: QuerySet[Product]) -> QuerySet[Product]:
        """No filter, search or ordering asked for: the queryset as it is
        (already in id order), without building the filter set's form."""
        if set(self.request.query_params) <= self._UNNARROWED:
            return queryset
        return super().filter_queryset(queryset)

    def get_object(self) -> Product:
        """The product with a flag per action the request needs, in one query.
        A product the caller cannot see is a 404 here, before any permission
        class, unless the action lets tenant admins reach every product
        (grants, explain); whether the caller may act on it is the
        permission classes' decision."""
        pk = parse_id(self.kwargs["pk"])
        if pk is None:
            raise Http404
        needed = policy.action_for(self.request.method, self.required_action) or "view"
        product = policy.product_with_access(self.request.user, pk, tuple(dict.fromkeys(("view", needed))))
        if product is None:
            raise Http404
        admin_reach = self.admins_reach_any_product and is_tenant_admin(self.request.user)
        if not (product.can_view or admin_reach):  # type: ignore[attr-defined]
            raise Http404
        self.check_object_permissions(self.request, product)
        return product

    def perform_create(self, serializer: BaseSerializer[Product]) -> None:
        serializer.instance = services.product_create(owner=self.request.user, **serializer.validated_data)  # type: ignore[arg-type]

    def perform_update(self, serializer: BaseSerializer[Product]) -> None:
        serializer.instance = services.product_update(product=serializer.instance, **serializer.validated_data)  # type: ignore[arg-type]

    def perform_destroy(self, instance: Product) -> None:
        services.product_delete(product=instance)

    # --- publishing ------------------------------------------------------------------

    @extend_schema(request=None, responses=ProductSerializer)
    @action(detail=True, methods=["post"], permission_classes=[CanPublishProduct], required_action="publish")
    def publish(self, request: Request, pk: str) -> Response:
        product = services.product_publish(product=self.get_object())
        return Response(ProductSerializer(product).data)

    @extend_schema(request=None, responses=ProductSerializer)
    @action(detail=True, methods=["post"], permission_classes=[CanPublishProduct], required_action="publish")
    def unpublish(self, request: Request, pk: str) -> Response:
        product = services.product_unpublish(product=self.get_object())
        return Response(ProductSerializer(product).data)

    # --- grants ----------------------------------------------------------------------

    # Every method answers the grants as they are then (DELETE too: 200, not 204).
    @extend_schema(request=GrantSerializer, responses={200: ProductGrantsSerializer})
    @action(
        detail=True,
        methods=["get", "post", "delete"],
        url_path="permissions",
        permission_classes=[CanManageGrants],
        required_action="view",
        admins_reach_any_product=True,
    )
    def permissions(self, request: Request, pk: str) -> Response:
        product = self.get_object()  # who may manage them: before anything about the body
        if request.method in SAFE_METHODS:  # GET, and the HEAD DRF adds for it
            return Response(selectors.product_grants(product=product))
        data = GrantSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.grants_change(  # what may be granted: only what the caller holds
            actor=request.user,  # type: ignore[arg-type]
            grant=request.method == "POST",
            codenames=data.validated_data["permissions"],
            products=[product],
            user_ids=[data.validated_data["user"]] if "user" in data.validated_data else [],
            group_ids=[data.validated_data["group"]] if "group" in data.validated_data else [],
        )
        return Response(selectors.product_grants(product=product))

    @extend_schema(request=BulkGrantSerializer, responses=BulkGrantResultSerializer)
    @action(detail=False, methods=["post"], url_path="permissions/bulk", permission_classes=[IsTenantAdmin])
    def bulk_permissions(self, request: Request) -> Response:
        data = BulkGrantSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.grants_change(
            actor=request.user,  # type: ignore[arg-type]
            grant=data.validated_data["action"] == "grant",
            codenames=data.validated_data["permissions"],
            products=selectors.products_by_ids(ids=data.validated_data["products"]),
            user_ids=data.validated_data["users"],
            group_ids=data.validated_data["groups"],
        )
        return Response(result)

    # --- explain ------------------------------------------------------------------------

    @extend_schema(
        parameters=[OpenApiParameter("user", int, description="Whose access (default: yours).")],
        responses=ProductAccessSerializer,
    )
    @action(
        detail=True,
        methods=["get"],
        permission_classes=[CanExplainAccess],
        required_action="view",
        admins_reach_any_product=True,
    )
    def access(self, request: Request, pk: str) -> Response:
        product = self.get_object()
        raw = request.query_params.get("user")
        about_self = raw is None or raw == str(request.user.pk)
        target = request.user if raw is None or about_self else account_selectors.user_named_by(raw, field="user")
        return Response({"product": product.pk, "user": target.pk, "actions": policy.explain(target, product)})
