"""Product API on tenant hosts. Who may do what is catalog.policy's answer, always."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.filters import OrderingFilter, SearchFilter
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import IsAdminUser, IsAuthenticated, IsAuthenticatedOrReadOnly
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from accounts.models import User
from catalog import policy, selectors, services
from catalog.models import Product
from catalog.permissions import CanPublishProduct, IsOwner, ProductModelPermissions, ProductObjectPermissions
from catalog.serializers import BulkGrantSerializer, GrantSerializer, ProductSerializer
from config.errors import ApplicationError
from config.ids import parse_id


class ProductPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


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
    pagination_class = ProductPagination
    filter_backends = [filters.DjangoFilterBackend, SearchFilter, OrderingFilter]
    filterset_class = ProductFilter
    search_fields = ["name", "description"]
    ordering_fields = ["id", "name", "price", "created_at", "updated_at", "published_at"]
    ordering = ["id"]
    required_action: str | None = None

    def get_queryset(self) -> QuerySet[Product]:
        return policy.visible(self.request.user, "view", Product.objects.order_by("id"))

    def get_object(self) -> Product:
        pk = parse_id(self.kwargs["pk"])
        if pk is None:
            raise Http404
        needed = self.required_action or policy.METHOD_ACTIONS.get(self.request.method or "", "view")
        actions = tuple(dict.fromkeys(("view", needed)))
        product = policy.product_with_access(self.request.user, pk, actions)
        if product is None or not product.can_view:  # type: ignore[attr-defined]
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

    def _admin_or_visible(self) -> Product:
        """Tenant admins reach any product here (grants, explain); others only
        products they can see (else 404)."""
        if not policy.is_tenant_admin(self.request.user):
            return self.get_object()
        pk = parse_id(self.kwargs["pk"])
        product = Product.objects.filter(pk=pk).first() if pk is not None else None
        if product is None:
            raise Http404
        return product

    def _manageable(self, codenames: list[str] | None = None) -> Product:
        """Tenant admins manage any product's grants; the owner its own, and
        only with permissions it holds on that product itself (policy.may_grant)."""
        product = self._admin_or_visible()
        if not policy.is_tenant_admin(self.request.user):
            if not IsOwner().has_object_permission(self.request, self, product):
                raise PermissionDenied("Only a tenant admin or the product's owner may manage its permissions.")
            if codenames and not policy.may_grant(self.request.user, product, codenames):
                raise PermissionDenied("You can only grant permissions you hold on this product yourself.")
        return product

    @extend_schema(request=GrantSerializer, responses={200: None})
    @action(
        detail=True,
        methods=["get", "post", "delete"],
        url_path="permissions",
        permission_classes=[IsAuthenticated],
        required_action="view",
    )
    def permissions(self, request: Request, pk: str) -> Response:
        if request.method == "GET":
            return Response(selectors.product_grants(product=self._manageable()))
        data = GrantSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        codenames = data.validated_data["permissions"]
        product = self._manageable(codenames if request.method == "POST" else None)
        services.grants_change(
            grant=request.method == "POST",
            codenames=codenames,
            products=[product],
            user_ids=[data.validated_data["user"]] if "user" in data.validated_data else [],
            group_ids=[data.validated_data["group"]] if "group" in data.validated_data else [],
        )
        return Response(selectors.product_grants(product=product))

    @extend_schema(request=BulkGrantSerializer, responses={200: None})
    @action(detail=False, methods=["post"], url_path="permissions/bulk", permission_classes=[IsAdminUser])
    def bulk_permissions(self, request: Request) -> Response:
        data = BulkGrantSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        wanted = list(dict.fromkeys(data.validated_data["products"]))
        products = list(Product.objects.filter(pk__in=wanted))
        missing = sorted(set(wanted) - {p.pk for p in products})
        if missing:
            raise ApplicationError(f"No such products: {', '.join(map(str, missing))}.", field="products")
        result = services.grants_change(
            grant=data.validated_data["action"] == "grant",
            codenames=data.validated_data["permissions"],
            products=products,
            user_ids=data.validated_data["users"],
            group_ids=data.validated_data["groups"],
        )
        return Response(result)

    # --- explain ------------------------------------------------------------------------

    @extend_schema(parameters=[OpenApiParameter("user", int, description="Whose access (default: yours).")])
    @action(detail=True, methods=["get"], permission_classes=[IsAuthenticated], required_action="view")
    def access(self, request: Request, pk: str) -> Response:
        product = self._admin_or_visible()
        raw = request.query_params.get("user")
        target: Any = request.user
        if raw is not None and raw != str(request.user.pk):
            if not policy.is_tenant_admin(request.user):
                raise PermissionDenied("Only tenant admins may ask about other users.")
            number = parse_id(raw)
            target = User.objects.filter(pk=number).first() if number is not None else None
            if target is None:
                raise ApplicationError("No such user.", field="user")
        return Response(
            {"product": product.pk, "user": target.pk, "actions": policy.explain(target, product)},
            status=status.HTTP_200_OK,
        )
