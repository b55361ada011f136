"""Serializers: djoser's (the seed's custom ones, hardened) and the accounts API's.

They validate and shape data; writes happen in accounts.services.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth.models import Group, Permission
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from djoser.serializers import UserCreateSerializer as BaseUserCreateSerializer
from djoser.serializers import UserSerializer as BaseUserSerializer
from djoser.utils import decode_uid
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.auth.link_tokens import TenantTokenGenerator, activation_tokens, email_reset_tokens, password_reset_tokens
from accounts.models import AuditEntry, Customer, Profile, User
from accounts.permissions import is_tenant_admin
from accounts.roles import is_superuser
from accounts.selectors import assignable_permissions
from core.labels import label_of
from tenants.models import Tenant
from tenants.serializers import OriginListField, RefusesUnknownFields

PASSWORD_MAX = 1024  # long enough for any passphrase, short enough to bound hashing


def _storable(text: str) -> bool:
    """PostgreSQL refuses NUL in text and psycopg cannot encode a lone
    surrogate: either would be a 500 if it reached a query."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _normalized_email(value: str) -> str:
    return User.objects.normalize_email(value.strip())


def _email_available(value: str, *, instance: User | None = None) -> str:
    email = _normalized_email(value)
    if User.objects.email_taken(email, exclude_pk=instance.pk if instance is not None else None):
        raise serializers.ValidationError("A user with that email already exists.", code="unique")
    return email


def _password_ok(password: str, user: User) -> str:
    try:
        validate_password(password, user)
    except DjangoValidationError as exc:
        raise serializers.ValidationError(list(exc.messages)) from None
    return password


# --- djoser: users ------------------------------------------------------------------------------


class UserCreateSerializer(BaseUserCreateSerializer):
    """The seed's registration serializer, plus first and last name."""

    password = serializers.CharField(style={"input_type": "password"}, write_only=True, max_length=PASSWORD_MAX)

    class Meta(BaseUserCreateSerializer.Meta):
        model = User
        fields = (*BaseUserCreateSerializer.Meta.fields, "first_name", "last_name")
        extra_kwargs = {"email": {"required": True, "allow_blank": False}}

    def validate_email(self, value: str) -> str:
        return _email_available(value)


class UserSerializer(BaseUserSerializer):
    """The seed's user serializer, plus names and roles. Tenant admins may
    (de)activate other users, which revokes their tokens at once; superusers
    may also make or unmake staff and superusers. Who may change whom is
    accounts.roles' answer (a superuser only by a superuser; the tenant keeps
    one active superuser)."""

    class Meta(BaseUserSerializer.Meta):
        model = User
        fields = (*BaseUserSerializer.Meta.fields, "first_name", "last_name", "is_active", "is_staff", "is_superuser")
        read_only_fields = ("email", "is_staff", "is_superuser")

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        request = self.context.get("request")
        editing_someone_else = (
            request is not None
            and is_tenant_admin(request.user)
            and self.instance is not None
            and not isinstance(self.instance, list | tuple)
            and getattr(self.instance, "pk", None) != request.user.pk
        )
        if not editing_someone_else:
            fields["is_active"].read_only = True
        if editing_someone_else and is_superuser(request.user):
            fields["is_staff"] = serializers.BooleanField(required=False)
            fields["is_superuser"] = serializers.BooleanField(required=False)
        return fields


class CurrentUserSerializer(UserSerializer):
    pass


class _UidAndTokenSerializer(serializers.Serializer):
    """The uid and one-time token of an emailed link."""

    # djoser's, but each purpose names its own generator (bound to the tenant),
    # any uid that cannot name a user is a 400, never a 500, and the user the
    # link names is validated_data["user"].
    token_generator: ClassVar[TenantTokenGenerator]
    uid = serializers.CharField(max_length=64)
    token = serializers.CharField(max_length=128)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        try:
            pk = int(decode_uid(attrs["uid"]))
            if not 0 < pk < 2**63:
                raise ValueError
            user = User.objects.get(pk=pk)
        except (User.DoesNotExist, ValueError, TypeError, OverflowError, UnicodeDecodeError):
            raise serializers.ValidationError({"uid": ["Invalid user id or user doesn't exist."]}) from None
        if not self.token_generator.check_token(user, attrs["token"]):
            raise serializers.ValidationError({"token": ["Invalid or expired token."]})
        return {**attrs, "user": user}


class ActivationSerializer(_UidAndTokenSerializer):
    token_generator = activation_tokens

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        if attrs["user"].is_active or attrs["user"].activated_at is not None:
            # Spent, or an admin deactivated this account: a link cannot undo that.
            raise serializers.ValidationError({"token": ["Invalid or expired token."]})
        return attrs


class EmailSerializer(serializers.Serializer):
    """For reset_password, resend_activation and reset_email: the answer never
    depends on whether the address is known."""

    email = serializers.EmailField(max_length=254)


class PasswordResetConfirmSerializer(_UidAndTokenSerializer):
    token_generator = password_reset_tokens
    new_password = serializers.CharField(style={"input_type": "password"}, max_length=PASSWORD_MAX)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        try:
            _password_ok(attrs["new_password"], attrs["user"])
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"new_password": exc.detail}) from None
        return attrs


class _CurrentPasswordMixin(serializers.Serializer):
    current_password = serializers.CharField(style={"input_type": "password"}, max_length=PASSWORD_MAX)

    def validate_current_password(self, value: str) -> str:
        if not self.context["request"].user.check_password(value):
            raise serializers.ValidationError("Invalid password.", code="invalid_password")
        return value


class UserDeleteSerializer(_CurrentPasswordMixin):
    pass


class SetPasswordSerializer(_CurrentPasswordMixin):
    new_password = serializers.CharField(style={"input_type": "password"}, max_length=PASSWORD_MAX)

    def validate_new_password(self, value: str) -> str:
        return _password_ok(value, self.context["request"].user)


class SetEmailSerializer(_CurrentPasswordMixin):
    new_email = serializers.EmailField(max_length=254)

    def validate_new_email(self, value: str) -> str:
        return _email_available(value, instance=self.context["request"].user)


class EmailResetConfirmSerializer(_UidAndTokenSerializer):
    token_generator = email_reset_tokens
    new_email = serializers.EmailField(max_length=254)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        try:
            attrs["new_email"] = _email_available(attrs["new_email"], instance=attrs["user"])
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"new_email": exc.detail}) from None
        return attrs


# --- profile, customer -----------------------------------------------------------------------


class ProfileSerializer(serializers.ModelSerializer[Profile]):
    """The seed's: no user field, the user is the caller."""

    bio = serializers.CharField(max_length=5000, allow_blank=True, required=False)

    class Meta:
        model = Profile
        fields = ["dob", "bio"]


class CustomerSerializer(serializers.ModelSerializer[Customer]):
    user = serializers.PrimaryKeyRelatedField(queryset=User.objects.all())

    class Meta:
        model = Customer
        fields = ["id", "user", "phone", "birth_date", "membership", "created_at"]
        read_only_fields = ["id", "created_at"]


class CustomerMeSerializer(CustomerSerializer):
    """At /customers/me/ the user is the caller and cannot be changed."""

    user = serializers.PrimaryKeyRelatedField(read_only=True)


# --- groups, permissions, audit ------------------------------------------------------------------


# The most items one request may name (400 beyond): more than any tenant has
# permissions (about 60) or would put in one group at once.
MAX_PERMISSIONS = 500
MAX_MEMBERS = 1000


class _ResolvedList(serializers.Field):
    """A JSON list of at most ``limit`` identifiers, all resolved in one query;
    the unknown ones are named (at most five) and nothing is written."""

    limit = 0
    default_error_messages = {
        "not_a_list": "Expected a list.",
        "too_many": "At most {limit} items.",
    }

    def parse(self, item: Any) -> Any:
        raise NotImplementedError

    def resolve(self, keys: list[Any]) -> dict[Any, Any]:
        raise NotImplementedError

    def unknown(self, missing: list[str]) -> str:
        raise NotImplementedError

    def to_internal_value(self, data: Any) -> list[Any]:
        if not isinstance(data, list):
            self.fail("not_a_list")
        if len(data) > self.limit:
            self.fail("too_many", limit=self.limit)
        keys = list(dict.fromkeys(self.parse(item) for item in data))
        found = self.resolve(keys) if keys else {}
        missing = [key for key in keys if key not in found]
        if missing:
            shown = [".".join(k) if isinstance(k, tuple) else str(k) for k in missing[:5]]
            raise serializers.ValidationError(self.unknown(shown))
        return [found[key] for key in keys]


@extend_schema_field({"type": "array", "items": {"type": "string", "example": "catalog.view_product"}})
class PermissionLabelsField(_ResolvedList):
    """Model permissions as "app_label.codename", limited to assignable apps."""

    limit = MAX_PERMISSIONS
    default_error_messages = {
        **_ResolvedList.default_error_messages,
        "invalid": "Use the form app_label.codename, e.g. catalog.view_product.",
    }

    def parse(self, item: Any) -> tuple[str, str]:
        # NUL: PostgreSQL refuses it in text (a DataError, i.e. a 500), so refuse it first.
        if not isinstance(item, str) or item.count(".") != 1 or len(item) > 255 or not _storable(item):
            self.fail("invalid")
        app_label, codename = item.split(".")
        return app_label, codename

    def resolve(self, keys: list[Any]) -> dict[Any, Any]:
        candidates = assignable_permissions().filter(
            content_type__app_label__in={a for a, _ in keys}, codename__in={c for _, c in keys}
        )
        return {(p.content_type.app_label, p.codename): p for p in candidates}

    def unknown(self, missing: list[str]) -> str:
        return f"Unknown or unassignable permission: {', '.join(missing)}."

    def to_representation(self, value: Any) -> list[str]:
        return [label_of(p) for p in value.all()]


@extend_schema_field({"type": "array", "items": {"type": "integer"}})
class UserIdsField(_ResolvedList):
    """Users of this tenant by id."""

    limit = MAX_MEMBERS
    default_error_messages = {**_ResolvedList.default_error_messages, "invalid": "Give user ids (whole numbers)."}

    def parse(self, item: Any) -> int:
        if isinstance(item, bool) or not isinstance(item, int) or not 0 < item < 2**63:
            self.fail("invalid")
        return item

    def resolve(self, keys: list[Any]) -> dict[Any, Any]:
        return User.objects.in_bulk(keys)

    def unknown(self, missing: list[str]) -> str:
        return f"No such user: {', '.join(missing)}."

    def to_representation(self, value: Any) -> list[int]:
        return [user.pk for user in value.all()]


class GroupSerializer(serializers.ModelSerializer[Group]):
    name = serializers.CharField(max_length=150)
    permissions = PermissionLabelsField(required=False)
    users = UserIdsField(required=False, source="user_set")

    class Meta:
        model = Group
        fields = ["id", "name", "permissions", "users"]

    def get_fields(self) -> dict[str, Any]:
        """Members are for admins: other users would learn user ids (and so
        probe users/{id}/) from them."""
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None and not is_tenant_admin(request.user):
            fields.pop("users")
        return fields


class PermissionSerializer(serializers.ModelSerializer[Permission]):
    codename = serializers.SerializerMethodField()
    app_label = serializers.CharField(source="content_type.app_label")
    model = serializers.CharField(source="content_type.model")

    class Meta:
        model = Permission
        fields = ["codename", "name", "app_label", "model"]

    def get_codename(self, permission: Permission) -> str:
        return label_of(permission)


class UserPermissionsSerializer(serializers.Serializer):
    permissions = PermissionLabelsField()


class AuditEntrySerializer(serializers.ModelSerializer[AuditEntry]):
    actor = serializers.SerializerMethodField()
    subject = serializers.SerializerMethodField()
    target = serializers.SerializerMethodField()

    class Meta:
        model = AuditEntry
        fields = ["id", "created_at", "actor", "action", "subject", "permission", "target", "changes"]

    def get_actor(self, entry: AuditEntry) -> dict[str, Any] | None:
        if entry.actor_id is None and not entry.actor_repr:
            return None
        return {"id": entry.actor_id, "email": entry.actor_repr}

    def get_subject(self, entry: AuditEntry) -> dict[str, Any]:
        return {"type": entry.subject_type, "id": entry.subject_id, "name": entry.subject_repr}

    def get_target(self, entry: AuditEntry) -> dict[str, Any] | None:
        if not entry.target_type and not entry.target_repr:
            return None
        return {"type": entry.target_type, "id": entry.target_id, "name": entry.target_repr}


# --- the tenant's own settings ---------------------------------------------------------------


class TenantSettingsSerializer(serializers.ModelSerializer[Tenant]):
    """The tenant of the host, as its admins see it."""

    domains = serializers.SerializerMethodField()

    class Meta:
        model = Tenant
        fields = ["slug", "name", "domains", "require_activation", "cors_allowed_origins"]
        read_only_fields = fields

    def get_domains(self, tenant: Tenant) -> list[str]:
        return [d.domain for d in tenant.domains.all()]


class TenantSettingsUpdateSerializer(RefusesUnknownFields):
    """What tenant admins may change of their tenant: its CORS origins only
    (anything else is a 400 naming the field). The entries are checked by the
    service."""

    cors_allowed_origins = OriginListField(required=False)
