"""Accounts API on tenant hosts, and the platform operators' own accounts on the public host (at the end).

Views validate, call one service or selector, serialize."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, cast

from django.contrib.auth.models import Group
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest
from django_filters import rest_framework as filters
from djoser.views import UserViewSet as DjoserUserViewSet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import Throttled
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from accounts import emails, selectors, services, tenant_settings
from accounts.auth.throttles import (
    RESET_ACCOUNT,
    CurrentPasswordThrottle,
    RegisterIPThrottle,
    ResetAccountThrottle,
    ResetIPThrottle,
    hit,
    retry_after,
)
from accounts.models import AuditEntry, Customer, Invitation, Profile, User
from accounts.permissions import IsAdminOrReadOnly, IsPlatformSuperuser, IsTenantAdmin, is_tenant_admin
from accounts.serializers import (
    AuditEntrySerializer,
    CustomerMeSerializer,
    CustomerSerializer,
    GroupSerializer,
    InvitationAcceptSerializer,
    InvitationCreateSerializer,
    InvitationPreviewSerializer,
    InvitationSerializer,
    InvitationTokenSerializer,
    InvitedUserSerializer,
    OperatorCreateSerializer,
    OperatorNamesSerializer,
    OperatorSerializer,
    OperatorUpdateSerializer,
    PermissionSerializer,
    ProfileSerializer,
    SetPasswordSerializer,
    SupportPasswordResetAnswerSerializer,
    SupportPasswordResetSerializer,
    TenantSettingsSerializer,
    TenantSettingsUpdateSerializer,
    UserCreateSerializer,
    UserPermissionsSerializer,
    UserPermissionsSummarySerializer,
)
from core.errors import NotFound
from core.openapi import errors
from mail import selectors as mail_selectors
from mail import services as mail_services
from mail.models import OutboxEmail
from mail.serializers import OutboxEmailSerializer
from mail.views import EmailFilter
from tenants import selectors as tenant_selectors
from tenants.db import current_tenant_id
from tenants.models import Tenant
from tenants.permissions import IsPlatformOperator

# The ids of detail routes, as core.ids.parse_id reads them: DRF's default
# ("[^/.]+", then int()) took " 7", "+7", "7_0" and full-width digits for ids.
ID_IN_URL = "[0-9]{1,19}"


def _user(request: Request) -> User:
    """The authenticated caller (views using it require authentication)."""
    return cast(User, request.user)


def tenant_of(request: HttpRequest) -> Tenant | None:
    """The tenant of the host being served (None on the public host)."""
    return getattr(request, "tenant", None)


def links_of(request: HttpRequest) -> emails.LinkBase:
    """The scheme and port of emailed links (PUBLIC_* settings, else this request's)."""
    return emails.LinkBase.configured(scheme=request.scheme or "http", port=request.get_port())


# --- djoser's users, per tenant -----------------------------------------------------------


@extend_schema_view(create=extend_schema(responses={201: UserCreateSerializer, **errors(409)}))
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
    lookup_value_regex = ID_IN_URL

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
            tenant=tenant_of(self.request), links=links_of(self.request), **serializer.validated_data
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
        service(tenant=tenant_of(request), links=links_of(request), **{f: data.validated_data[f] for f in fields})
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={204: None})
    @action(["post"], detail=False)
    def activation(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._done(request, services.user_activate, "user")

    @extend_schema(responses={204: None})
    @action(["post"], detail=False)
    def resend_activation(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._done(request, services.user_resend_activation, "email")

    @extend_schema(responses={204: None})
    @action(["post"], detail=False)
    def set_password(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._done(request, partial(services.user_set_password, user=_user(request)), "new_password")

    @extend_schema(responses={204: None})
    @action(["post"], detail=False)
    def reset_password(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._done(request, services.user_send_password_reset, "email")

    @extend_schema(responses={204: None})
    @action(["post"], detail=False)
    def reset_password_confirm(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._done(request, services.user_reset_password, "user", "new_password")

    @extend_schema(responses={204: None})
    @action(["post"], detail=False, url_path="set_email")
    def set_username(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._done(request, partial(services.user_change_email, user=_user(request)), "new_email")

    @extend_schema(responses={204: None})
    @action(["post"], detail=False, url_path="reset_email")
    def reset_username(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._done(request, partial(services.user_send_email_reset, caller=_user(request)), "email")

    @extend_schema(responses={204: None})
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


@extend_schema_view(create=extend_schema(responses={201: ProfileSerializer, **errors(409)}))
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


# 409: the user already is a customer (a race past the serializer's check).
@extend_schema_view(
    create=extend_schema(responses={201: CustomerSerializer, **errors(409)}),
    update=extend_schema(responses={200: CustomerSerializer, **errors(409)}),
    partial_update=extend_schema(responses={200: CustomerSerializer, **errors(409)}),
)
class CustomerViewSet(viewsets.ModelViewSet[Customer]):
    """Full CRUD for tenant admins; ``me`` for any authenticated user."""

    serializer_class = CustomerSerializer
    permission_classes = [IsTenantAdmin]
    queryset = Customer.objects.select_related("user").order_by("id")
    lookup_value_regex = ID_IN_URL

    def perform_create(self, serializer: BaseSerializer[Customer]) -> None:
        serializer.instance = services.customer_create(**serializer.validated_data)

    def perform_update(self, serializer: BaseSerializer[Customer]) -> None:
        serializer.instance = services.customer_update(customer=serializer.instance, **serializer.validated_data)  # type: ignore[arg-type]

    @extend_schema(request=CustomerMeSerializer, responses=CustomerMeSerializer)  # the user is read-only here
    @action(detail=False, methods=["get", "put"], permission_classes=[IsAuthenticated])
    def me(self, request: Request) -> Response:
        if request.method == "GET":
            return Response(CustomerMeSerializer(services.customer_for(user=_user(request))).data)
        # The body first: a refused one must not make the record either.
        serializer = CustomerMeSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        customer = services.customer_for(user=_user(request))
        customer = services.customer_update(customer=customer, **serializer.validated_data)
        return Response(CustomerMeSerializer(customer).data)


# --- groups, permissions, audit --------------------------------------------------------------


# 409: the name is taken (a race past the serializer's check).
@extend_schema_view(
    create=extend_schema(responses={201: GroupSerializer, **errors(409)}),
    update=extend_schema(responses={200: GroupSerializer, **errors(409)}),
    partial_update=extend_schema(responses={200: GroupSerializer, **errors(409)}),
)
class GroupViewSet(viewsets.ModelViewSet[Group]):
    """Tenant admins write; every authenticated user of the tenant may read."""

    serializer_class = GroupSerializer
    permission_classes = [IsAuthenticated, IsAdminOrReadOnly]
    queryset = Group.objects.prefetch_related(
        Prefetch("permissions", queryset=selectors.permissions_with_types()), "user_set"
    ).order_by("name")
    lookup_value_regex = ID_IN_URL

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

    @extend_schema(responses=UserPermissionsSummarySerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(selectors.user_permissions_summary(user=selectors.user_get(pk=pk)))

    @extend_schema(request=UserPermissionsSerializer, responses=UserPermissionsSummarySerializer)
    def post(self, request: Request, pk: int) -> Response:
        return self._change(request, pk, services.user_permissions_add)

    @extend_schema(request=UserPermissionsSerializer, responses={200: UserPermissionsSummarySerializer})
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
    subject_type = filters.ChoiceFilter(choices=[(kind, kind) for kind in ("user", "group", "tenant", "invitation")])
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

    @extend_schema(request=None, responses={200: OutboxEmailSerializer, **errors(409)})
    def post(self, request: Request, pk: int) -> Response:
        row = mail_services.email_retry(pk=pk, tenant_id=current_tenant_id() or None)
        return Response(OutboxEmailSerializer(row).data)


# --- invitations ----------------------------------------------------------------------------


class InvitationFilter(filters.FilterSet):
    status = filters.ChoiceFilter(
        choices=[(state, state) for state in ("pending", "expired", "accepted", "revoked")], method="in_state"
    )
    email = filters.CharFilter(field_name="email", lookup_expr="iexact")

    class Meta:
        model = Invitation
        fields = ["status", "email"]

    def in_state(self, queryset: QuerySet[Invitation], name: str, value: str) -> QuerySet[Invitation]:
        return selectors.invitations_in_state(queryset, value)


class InvitationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Invitation]):
    """Tenant admins invite email addresses into groups (and object grants),
    list, resend and revoke invitations. The link's token is only ever in
    the email."""

    serializer_class = InvitationSerializer
    permission_classes = [IsTenantAdmin]
    filter_backends = [filters.DjangoFilterBackend]
    filterset_class = InvitationFilter
    lookup_value_regex = ID_IN_URL

    def get_queryset(self) -> QuerySet[Invitation]:
        return selectors.invitations()

    def get_object(self) -> Invitation:
        invitation = selectors.invitation_get(pk=self.kwargs["pk"])
        self.check_object_permissions(self.request, invitation)
        return invitation

    def _answer(self, invitation: Invitation, code: int = status.HTTP_200_OK) -> Response:
        return Response(InvitationSerializer(selectors.invitation_get(pk=invitation.pk)).data, status=code)

    @extend_schema(request=InvitationCreateSerializer, responses={201: InvitationSerializer, **errors(409)})
    def create(self, request: Request) -> Response:
        data = InvitationCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        invitation = services.invitation_create(
            tenant=tenant_of(request), links=links_of(request), inviter=_user(request), **data.validated_data
        )
        return self._answer(invitation, status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: InvitationSerializer, **errors(409)})
    @action(detail=True, methods=["post"])
    def resend(self, request: Request, pk: str) -> Response:
        invitation = services.invitation_resend(
            tenant=tenant_of(request), links=links_of(request), invitation=self.get_object()
        )
        return self._answer(invitation)

    @extend_schema(request=None, responses={200: InvitationSerializer, **errors(409)})
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str) -> Response:
        return self._answer(services.invitation_revoke(invitation=self.get_object()))


class InvitationPreviewView(APIView):
    """Anyone holding an invitation's link: what it invites to."""

    permission_classes = [AllowAny]
    throttle_classes = [ResetIPThrottle]

    @extend_schema(request=InvitationTokenSerializer, responses=InvitationPreviewSerializer)
    def post(self, request: Request) -> Response:
        data = InvitationTokenSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        invitation = selectors.invitation_for_token(token=data.validated_data["token"])
        tenant = tenant_of(request)
        preview = {
            "tenant": tenant.name if tenant else "",
            "email": invitation.email,
            "groups": selectors.invitation_group_names(invitation),
            "expires_at": invitation.expires_at,
        }
        return Response(InvitationPreviewSerializer(preview).data)


class InvitationAcceptView(APIView):
    """Anyone holding an invitation's link: make the invited account (201,
    no tokens: log in with /api/auth/jwt/create/)."""

    permission_classes = [AllowAny]
    throttle_classes = [ResetIPThrottle]

    @extend_schema(request=InvitationAcceptSerializer, responses={201: InvitedUserSerializer, **errors(409)})
    def post(self, request: Request) -> Response:
        data = InvitationAcceptSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.invitation_accept(tenant=tenant_of(request), links=links_of(request), **data.validated_data)
        return Response(InvitedUserSerializer(user).data, status=status.HTTP_201_CREATED)


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
        tenant = tenant_of(request)
        if tenant is None:  # only routed on tenant hosts
            raise NotFound("No tenant is served on this host.")
        return tenant_selectors.tenant_get(slug=tenant.slug)


# --- platform operators (public host) ---------------------------------------------------------


class OperatorMeView(APIView):
    """The calling operator's own account: names may change; the email is the
    login and is read-only (a superuser makes a new operator instead)."""

    permission_classes = [IsPlatformOperator]

    @extend_schema(responses=OperatorSerializer)
    def get(self, request: Request) -> Response:
        return Response(OperatorSerializer(_user(request)).data)

    @extend_schema(request=OperatorNamesSerializer, responses=OperatorSerializer)
    def patch(self, request: Request) -> Response:
        data = OperatorNamesSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(OperatorSerializer(services.user_update(user=_user(request), **data.validated_data)).data)


class OperatorSetPasswordView(APIView):
    """The operator's own password, as on tenant hosts: the current one
    (counted with the account's login attempts), the new one checked by
    Django's validators; every token the operator holds dies with the old one."""

    permission_classes = [IsPlatformOperator]
    throttle_classes = [CurrentPasswordThrottle]

    @extend_schema(request=SetPasswordSerializer, responses={204: None})
    def post(self, request: Request) -> Response:
        data = SetPasswordSerializer(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        services.user_set_password(
            tenant=None, links=links_of(request), user=_user(request), new_password=data.validated_data["new_password"]
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class OperatorListCreateView(ListAPIView[User]):
    """The platform's operators, paginated (superuser operators only)."""

    serializer_class = OperatorSerializer
    permission_classes = [IsPlatformSuperuser]

    def get_queryset(self) -> QuerySet[User]:
        return selectors.operator_list()

    @extend_schema(request=OperatorCreateSerializer, responses={201: OperatorSerializer, **errors(409)})
    def post(self, request: Request) -> Response:
        data = OperatorCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        operator = services.operator_create(**data.validated_data)
        return Response(OperatorSerializer(operator).data, status=status.HTTP_201_CREATED)


class OperatorDetailView(APIView):
    """One operator (superuser operators only). PATCH changes names,
    ``is_active`` (false revokes its tokens) and ``is_superuser``; DELETE
    removes the account. The platform keeps one active superuser (403)."""

    permission_classes = [IsPlatformSuperuser]

    @extend_schema(responses=OperatorSerializer)
    def get(self, request: Request, pk: str) -> Response:
        return Response(OperatorSerializer(selectors.operator_get(pk=pk)).data)

    @extend_schema(request=OperatorUpdateSerializer, responses=OperatorSerializer)
    def patch(self, request: Request, pk: str) -> Response:
        operator = selectors.operator_get(pk=pk)
        data = OperatorUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(OperatorSerializer(services.operator_update(operator=operator, **data.validated_data)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: str) -> Response:
        services.operator_delete(operator=selectors.operator_get(pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class TenantSupportPasswordResetView(APIView):
    """Support: email a tenant's admin a password reset link on the tenant's
    primary domain (any operator). The answer names who it goes to, never the
    link; the tenant's audit log names the operator. 400 naming ``email`` when
    it is not an active admin of the tenant; 409 while the tenant is suspended."""

    permission_classes = [IsPlatformOperator]

    @extend_schema(
        request=SupportPasswordResetSerializer,
        responses={202: SupportPasswordResetAnswerSerializer, **errors(409, 429)},  # 429: throttled in the view
    )
    def post(self, request: Request, slug: str) -> Response:
        tenant = tenant_selectors.tenant_get(slug=slug)
        data = SupportPasswordResetSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        # As many reset emails per address as its own "forgot password" may send (THROTTLE_RESET_ACCOUNT).
        wait = hit(RESET_ACCOUNT, f"support:{tenant.pk}:{data.validated_data['email'].strip().lower()}")
        if wait is not None:
            raise Throttled(wait=retry_after(wait))
        user = services.support_password_reset(
            tenant=tenant, links=links_of(request), operator=_user(request), email=data.validated_data["email"]
        )
        return Response({"tenant": tenant.slug, "email": user.email}, status=status.HTTP_202_ACCEPTED)
