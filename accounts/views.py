"""Accounts API on tenant hosts. Views validate, call one service or selector, serialize."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, cast

from django.contrib.auth.models import Group
from django.db.models import Prefetch, QuerySet
from django_filters import rest_framework as filters
from djoser.views import UserViewSet as DjoserUserViewSet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import ListAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from accounts import emails, selectors, services, tenant_settings
from accounts.auth.throttles import (
    CurrentPasswordThrottle,
    RegisterIPThrottle,
    ResetAccountThrottle,
    ResetIPThrottle,
)
from accounts.models import AuditEntry, Customer, Profile, User
from accounts.permissions import IsAdminOrReadOnly, IsTenantAdmin, is_tenant_admin
from accounts.serializers import (
    AuditEntrySerializer,
    CustomerMeSerializer,
    CustomerSerializer,
    GroupSerializer,
    PermissionSerializer,
    ProfileSerializer,
    TenantSettingsSerializer,
    TenantSettingsUpdateSerializer,
    UserPermissionsSerializer,
)
from core.errors import NotFound
from mail import selectors as mail_selectors
from mail import services as mail_services
from mail.models import OutboxEmail
from mail.serializers import OutboxEmailSerializer
from mail.views import EmailFilter
from tenants import selectors as tenant_selectors
from tenants.db import current_tenant_id
from tenants.models import Tenant


def _user(request: Request) -> User:
    """The authenticated caller (views using it require authentication)."""
    return cast(User, request.user)


def _tenant(request: Request) -> Tenant | None:
    """The tenant of the host being served (None on the public host)."""
    return getattr(request, "tenant", None)


def _links(request: Request) -> emails.LinkBase:
    """The scheme and port of emailed links (PUBLIC_* settings, else this request's)."""
    return emails.LinkBase.configured(scheme=request.scheme or "http", port=request.get_port())


# --- djoser's users, per tenant -----------------------------------------------------------


class UserViewSet(DjoserUserViewSet):
    """djoser's endpoints with the seed's access rules and our services.

    * ``GET users/``: tenant admins only (403 for others, 401 anonymous);
    * ``users/{id}/``: admins, or the owner; anyone else gets 404 (no probing);
    * activation, reset and email-change tokens come from one generator per
      purpose, bound to the tenant (accounts.auth.link_tokens), each chosen by
      its serializer;
    * emails are sent after the response; "reset" endpoints answer the same
      whether or not the address is known.
    """

    queryset = User.objects.order_by("id")

    def get_queryset(self) -> QuerySet[User]:
        user = _user(self.request)
        queryset = User.objects.order_by("id")
        if not is_tenant_admin(user):
            queryset = queryset.filter(pk=user.pk) if user and user.is_authenticated else queryset.none()
        return queryset

    def permission_denied(self, request: Request, message: str | None = None, code: str | None = None) -> None:
        if self.action == "list":  # the seed: "admin only (must restrict)", a plain 403
            APIView.permission_denied(self, request, message=message, code=code)
        super().permission_denied(request, message=message, code=code)

    def get_throttles(self) -> list[Any]:
        if self.action == "create":
            return [RegisterIPThrottle()]
        if self.action in ("reset_password", "resend_activation", "reset_username"):
            return [ResetIPThrottle(), ResetAccountThrottle()]
        checks_current_password = self.action in ("set_password", "set_username", "destroy") or (
            self.action == "me" and self.request.method == "DELETE"
        )
        if checks_current_password:  # a password guess, counted with the account's logins
            return [CurrentPasswordThrottle()]
        return list(super().get_throttles())

    def perform_create(self, serializer: BaseSerializer[User], *args: Any, **kwargs: Any) -> None:
        serializer.instance = services.user_register(
            tenant=_tenant(self.request), links=_links(self.request), **serializer.validated_data
        )

    def perform_update(self, serializer: BaseSerializer[User]) -> None:
        serializer.instance = services.user_update(user=serializer.instance, **serializer.validated_data)  # type: ignore[arg-type]

    def perform_destroy(self, instance: User) -> None:
        services.user_delete(user=instance)

    def _done(self, request: Request, service: Callable[..., Any], *fields: str) -> Response:
        """Validate the body with the action's serializer, call ``service``
        with the tenant, the link base and the validated ``fields`` (named as
        its arguments), answer 204."""
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        service(tenant=_tenant(request), links=_links(request), **{f: data.validated_data[f] for f in fields})
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(["post"], detail=False)
    def activation(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._done(request, services.user_activate, "user")

    @action(["post"], detail=False)
    def resend_activation(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._done(request, services.user_resend_activation, "email")

    @action(["post"], detail=False)
    def set_password(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._done(request, partial(services.user_set_password, user=_user(request)), "new_password")

    @action(["post"], detail=False)
    def reset_password(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._done(request, services.user_send_password_reset, "email")

    @action(["post"], detail=False)
    def reset_password_confirm(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._done(request, services.user_reset_password, "user", "new_password")

    @action(["post"], detail=False, url_path="set_email")
    def set_username(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._done(request, partial(services.user_change_email, user=_user(request)), "new_email")

    @action(["post"], detail=False, url_path="reset_email")
    def reset_username(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._done(request, partial(services.user_send_email_reset, caller=_user(request)), "email")

    @action(["post"], detail=False, url_path="reset_email_confirm")
    def reset_username_confirm(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._done(request, services.user_change_email, "user", "new_email")


class LogoutEverywhereView(APIView):
    """Revoke every access and refresh token the caller holds, at once."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request) -> Response:
        services.user_logout_everywhere(user=_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- the seed's profile and customer ------------------------------------------------------


class ProfileViewSet(mixins.ListModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet[Profile]):
    """Only ever the caller's own profile; one per user."""

    serializer_class = ProfileSerializer
    permission_classes = [IsAuthenticated]

    def get_queryset(self) -> QuerySet[Profile]:
        return Profile.objects.filter(user=_user(self.request)).order_by("id")

    def perform_create(self, serializer: BaseSerializer[Profile]) -> None:
        serializer.instance = services.profile_create(user=_user(self.request), **serializer.validated_data)

    @action(detail=False, methods=["get", "put", "patch"])
    def me(self, request: Request) -> Response:
        if request.method == "GET":
            return Response(ProfileSerializer(selectors.profile_of(user=_user(request))).data)
        serializer = ProfileSerializer(data=request.data, partial=request.method == "PATCH")
        serializer.is_valid(raise_exception=True)
        return Response(
            ProfileSerializer(services.profile_update(user=_user(request), **serializer.validated_data)).data
        )


class CustomerViewSet(viewsets.ModelViewSet[Customer]):
    """Full CRUD for tenant admins; ``me`` for any authenticated user."""

    serializer_class = CustomerSerializer
    permission_classes = [IsTenantAdmin]
    queryset = Customer.objects.select_related("user").order_by("id")

    def perform_create(self, serializer: BaseSerializer[Customer]) -> None:
        serializer.instance = services.customer_create(**serializer.validated_data)

    def perform_update(self, serializer: BaseSerializer[Customer]) -> None:
        serializer.instance = services.customer_update(customer=serializer.instance, **serializer.validated_data)  # type: ignore[arg-type]

    @action(detail=False, methods=["get", "put"], permission_classes=[IsAuthenticated])
    def me(self, request: Request) -> Response:
        customer = services.customer_for(user=_user(request))
        if request.method == "GET":
            return Response(CustomerMeSerializer(customer).data)
        serializer = CustomerMeSerializer(customer, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        customer = services.customer_update(customer=customer, **serializer.validated_data)
        return Response(CustomerMeSerializer(customer).data)


# --- groups, permissions, audit --------------------------------------------------------------


class GroupViewSet(viewsets.ModelViewSet[Group]):
    """Tenant admins write; every authenticated user of the tenant may read."""

    serializer_class = GroupSerializer
    permission_classes = [IsAuthenticated, IsAdminOrReadOnly]
    queryset = Group.objects.prefetch_related(
        Prefetch("permissions", queryset=selectors.permissions_with_types()), "user_set"
    ).order_by("name")

    def perform_create(self, serializer: BaseSerializer[Group]) -> None:
        data = serializer.validated_data
        serializer.instance = services.group_create(
            name=data["name"], permissions=data.get("permissions", []), users=data.get("user_set", [])
        )

    def perform_update(self, serializer: BaseSerializer[Group]) -> None:
        data = serializer.validated_data
        serializer.instance = services.group_update(
            group=serializer.instance,  # type: ignore[arg-type]
            name=data.get("name"),
            permissions=data.get("permissions"),
            users=data.get("user_set"),
        )

    def perform_destroy(self, instance: Group) -> None:
        services.group_delete(group=instance)


class PermissionListView(ListAPIView[Any]):
    """The model permissions tenant admins may assign (app_label.codename)."""

    serializer_class = PermissionSerializer
    permission_classes = [IsAuthenticated]
    pagination_class = None

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.assignable_permissions()


class UserPermissionsView(APIView):
    """A user's model permissions: direct ones (editable) and those via groups."""

    permission_classes = [IsTenantAdmin]
    serializer_class = UserPermissionsSerializer

    def get(self, request: Request, pk: int) -> Response:
        return Response(selectors.user_permissions_summary(user=selectors.user_get(pk=pk)))

    @extend_schema(request=UserPermissionsSerializer)
    def post(self, request: Request, pk: int) -> Response:
        return self._change(request, pk, services.user_permissions_add)

    @extend_schema(request=UserPermissionsSerializer)
    def delete(self, request: Request, pk: int) -> Response:
        return self._change(request, pk, services.user_permissions_remove)

    def _change(self, request: Request, pk: int, service: Callable[..., None]) -> Response:
        user = selectors.user_get(pk=pk)
        data = UserPermissionsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        service(user=user, permissions=data.validated_data["permissions"])
        return Response(selectors.user_permissions_summary(user=user))


class AuditFilter(filters.FilterSet):
    actor = filters.NumberFilter(field_name="actor_id")
    action = filters.MultipleChoiceFilter(choices=AuditEntry.Action.choices)
    subject_type = filters.ChoiceFilter(choices=[("user", "user"), ("group", "group"), ("tenant", "tenant")])
    subject_id = filters.NumberFilter()
    since = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = AuditEntry
        fields = ["actor", "action", "subject_type", "subject_id", "since"]


class AuditListView(ListAPIView[AuditEntry]):
    """Who changed which access, newest first (tenant admins only)."""

    serializer_class = AuditEntrySerializer
    permission_classes = [IsTenantAdmin]
    filter_backends = [filters.DjangoFilterBackend]
    filterset_class = AuditFilter

    def get_queryset(self) -> QuerySet[AuditEntry]:
        return selectors.audit_entries()


# --- the tenant's emails ---------------------------------------------------------------------


class EmailListView(ListAPIView[OutboxEmail]):
    """This tenant's emails and their delivery state, newest first (tenant
    admins only); ``?status=failed`` lists what did not arrive, and why."""

    serializer_class = OutboxEmailSerializer
    permission_classes = [IsTenantAdmin]
    filter_backends = [filters.DjangoFilterBackend]
    filterset_class = EmailFilter

    def get_queryset(self) -> QuerySet[OutboxEmail]:
        return mail_selectors.emails_of_tenant(current_tenant_id() or None)


class EmailRetryView(APIView):
    permission_classes = [IsTenantAdmin]

    @extend_schema(request=None, responses=OutboxEmailSerializer)
    def post(self, request: Request, pk: int) -> Response:
        row = mail_services.email_retry(pk=pk, tenant_id=current_tenant_id() or None)
        return Response(OutboxEmailSerializer(row).data)


# --- the tenant's own settings ---------------------------------------------------------------


class TenantSettingsView(APIView):
    """The tenant of this host (tenant admins only); its admins may change its
    CORS origins, the browser origins allowed to call this API."""

    permission_classes = [IsTenantAdmin]

    @extend_schema(responses=TenantSettingsSerializer)
    def get(self, request: Request) -> Response:
        return Response(TenantSettingsSerializer(self._tenant(request)).data)

    @extend_schema(request=TenantSettingsUpdateSerializer, responses=TenantSettingsSerializer)
    def patch(self, request: Request) -> Response:
        data = TenantSettingsUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = self._tenant(request)
        if "cors_allowed_origins" in data.validated_data:
            tenant_settings.tenant_cors_update(tenant=tenant, origins=data.validated_data["cors_allowed_origins"])
            tenant = self._tenant(request)
        return Response(TenantSettingsSerializer(tenant).data)

    def _tenant(self, request: Request) -> Tenant:
        """Read afresh, domains included (not the instance cached by host)."""
        tenant = _tenant(request)
        if tenant is None:  # only routed on tenant hosts
            raise NotFound("No tenant is served on this host.")
        return tenant_selectors.tenant_get(slug=tenant.slug)
