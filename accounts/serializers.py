"""Serializers: djoser's (the seed's custom ones, hardened) and the accounts API's.

They validate and shape data; writes happen in accounts.services.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth.models import Group, Permission
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError as DjangoValidationError
from djoser.serializers import UserCreateSerializer as BaseUserCreateSerializer
from djoser.serializers import UserSerializer as BaseUserSerializer
from djoser.utils import decode_uid
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

from accounts.auth.link_tokens import TenantTokenGenerator, activation_tokens, email_reset_tokens, password_reset_tokens
from accounts.models import AuditEntry, Customer, Invitation, Profile, User
from accounts.permissions import is_tenant_admin
from accounts.roles import is_superuser
from accounts.selectors import assignable_permissions, invitation_for_token
from core.labels import label_of
from tenants.models import Tenant
from tenants.serializers import OriginListField, RefusesUnknownFields, StrictBooleanField

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
        state = self.token_generator.token_state(user, attrs["token"])
        if state == "expired":
            raise serializers.ValidationError({"token": [ErrorDetail("This link has expired.", code="expired")]})
        if state != "valid":
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


class PasswordResetLinkSerializer(_UidAndTokenSerializer):
    """The link alone (the reset page checks it before asking for a password)."""

    token_generator = password_reset_tokens


class PasswordResetConfirmSerializer(PasswordResetLinkSerializer):
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


class EmailResetLinkSerializer(_UidAndTokenSerializer):
    token_generator = email_reset_tokens


class EmailResetConfirmSerializer(EmailResetLinkSerializer):
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


class UserPermissionsSummarySerializer(serializers.Serializer):
    """A user's model permissions (selectors.user_permissions_summary): the
    answer of /api/users/{id}/permissions/, described for the OpenAPI schema."""

    user = serializers.IntegerField()
    direct = serializers.ListField(child=serializers.CharField(), help_text="app_label.codename")
    via_groups = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="app_label.codename -> the names of the groups that grant it",
    )


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


# --- invitations ----------------------------------------------------------------------------

MAX_INVITATION_GROUPS = 100
MAX_OBJECT_GRANTS = 100
_GRANT_KEYS = {"model", "id", "permissions"}


@extend_schema_field({"type": "array", "items": {"type": "integer"}})
class GroupIdsField(_ResolvedList):
    """Groups of this tenant by id."""

    limit = MAX_INVITATION_GROUPS
    default_error_messages = {**_ResolvedList.default_error_messages, "invalid": "Give group ids (whole numbers)."}

    def parse(self, item: Any) -> int:
        if isinstance(item, bool) or not isinstance(item, int) or not 0 < item < 2**31:
            self.fail("invalid")
        return item

    def resolve(self, keys: list[Any]) -> dict[Any, Any]:
        return Group.objects.in_bulk(keys)

    def unknown(self, missing: list[str]) -> str:
        return f"No such group: {', '.join(missing)}."


def _grant_problem(item: Any) -> str | None:
    """What is wrong with one object grant of an invitation's body, if anything."""
    if not isinstance(item, dict) or set(item) != _GRANT_KEYS:
        return 'give an object with exactly "model", "id" and "permissions".'
    model, pk, permissions = item["model"], item["id"], item["permissions"]
    if not isinstance(model, str) or not 0 < len(model) <= 100 or not _storable(model):
        return '"model" must be a model label such as "catalog.product".'
    if isinstance(pk, bool) or not isinstance(pk, int) or not 0 < pk < 2**63:
        return '"id" must be a whole number.'
    if not isinstance(permissions, list) or not 0 < len(permissions) <= 10:
        return '"permissions" must be a list of 1 to 10 permission codenames.'
    if not all(isinstance(p, str) and 0 < len(p) <= 100 and _storable(p) for p in permissions):
        return '"permissions" must be codenames such as "view_product".'
    return None


@extend_schema_field(
    {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "model": {"type": "string", "example": "catalog.product"},
                "id": {"type": "integer"},
                "permissions": {"type": "array", "items": {"type": "string", "example": "view_product"}},
            },
            "required": ["model", "id", "permissions"],
        },
    }
)
class ObjectGrantsField(serializers.Field):
    """Object grants an invitation carries: their shape here; whether the
    objects exist and the inviter may grant them, the service
    (accounts.invitation_grants)."""

    default_error_messages = {
        "not_a_list": "Expected a list of objects with a model, an id and permissions.",
        "too_many": f"At most {MAX_OBJECT_GRANTS} object grants.",
    }

    def to_internal_value(self, data: Any) -> list[dict[str, Any]]:
        if not isinstance(data, list):
            self.fail("not_a_list")
        if len(data) > MAX_OBJECT_GRANTS:
            self.fail("too_many")
        for index, item in enumerate(data):
            problem = _grant_problem(item)
            if problem:
                raise serializers.ValidationError(f"Item {index}: {problem}")
        return [
            {"model": i["model"].strip().lower(), "id": i["id"], "permissions": list(i["permissions"])} for i in data
        ]

    def to_representation(self, value: Any) -> Any:
        return value


class InvitationCreateSerializer(RefusesUnknownFields):
    email = serializers.EmailField(max_length=254)
    groups = GroupIdsField(required=False, default=list)
    object_grants = ObjectGrantsField(required=False, default=list)

    def validate_email(self, value: str) -> str:
        return _normalized_email(value)


class InvitationSerializer(serializers.ModelSerializer[Invitation]):
    """An invitation as tenant admins see it (never its token). ``status``
    is pending, expired, accepted or revoked."""

    status = serializers.SerializerMethodField()
    groups = serializers.SerializerMethodField()
    object_grants = ObjectGrantsField(read_only=True)
    invited_by = serializers.SerializerMethodField()

    class Meta:
        model = Invitation
        fields = [
            "id",
            "email",
            "status",
            "groups",
            "object_grants",
            "invited_by",
            "created_at",
            "expires_at",
            "sent_count",
            "last_sent_at",
            "accepted_at",
            "accepted_user",
            "revoked_at",
        ]
        read_only_fields = fields

    def get_status(self, invitation: Invitation) -> str:
        return invitation.state

    @extend_schema_field(
        {
            "type": "array",
            "items": {"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}},
        }
    )
    def get_groups(self, invitation: Invitation) -> list[dict[str, Any]]:
        return [{"id": group.pk, "name": group.name} for group in invitation.groups.all()]

    @extend_schema_field(
        {"type": "object", "nullable": True, "properties": {"id": {"type": "integer"}, "email": {"type": "string"}}}
    )
    def get_invited_by(self, invitation: Invitation) -> dict[str, Any] | None:
        if invitation.invited_by_id is None and not invitation.invited_by_repr:
            return None
        return {"id": invitation.invited_by_id, "email": invitation.invited_by_repr}


class InvitationTokenSerializer(RefusesUnknownFields):
    token = serializers.CharField(max_length=128)


def _storable_text(value: str) -> str:
    if not _storable(value):
        raise serializers.ValidationError("This field contains characters that cannot be stored.")
    return value


class InvitationAcceptSerializer(InvitationTokenSerializer):
    """The link's token and the new account's username, password and names.

    The token is checked first (a refused one is the selector's error: a 400
    naming ``token``, code ``invalid_token`` or ``invitation_expired``, raised
    out of ``is_valid``), then the username and the password validators (with
    the invited email, as registration's)."""

    username = serializers.CharField(max_length=150, validators=[UnicodeUsernameValidator()])
    password = serializers.CharField(style={"input_type": "password"}, write_only=True, max_length=PASSWORD_MAX)
    first_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")
    last_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")

    def validate_password(self, value: str) -> str:
        return _storable_text(value)

    def validate_first_name(self, value: str) -> str:
        return _storable_text(value)

    def validate_last_name(self, value: str) -> str:
        return _storable_text(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        invitation = invitation_for_token(token=attrs["token"])
        if User.objects.filter(username=attrs["username"]).exists():
            raise serializers.ValidationError({"username": ["A user with that username already exists."]})
        candidate = User(
            username=attrs["username"],
            email=invitation.email,
            first_name=attrs["first_name"],
            last_name=attrs["last_name"],
        )
        try:
            _password_ok(attrs["password"], candidate)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"password": exc.detail}) from None
        return attrs


class InvitationPreviewSerializer(serializers.Serializer):
    """What a link's owner is invited to."""

    tenant = serializers.CharField()
    email = serializers.EmailField()
    groups = serializers.ListField(child=serializers.CharField())
    expires_at = serializers.DateTimeField()


class InvitedUserSerializer(serializers.ModelSerializer[User]):
    """The account an accepted invitation made (log in with its email)."""

    groups: serializers.SlugRelatedField[Group] = serializers.SlugRelatedField(
        many=True, read_only=True, slug_field="name"
    )

    class Meta:
        model = User
        fields = ["id", "email", "username", "first_name", "last_name", "is_active", "groups"]
        read_only_fields = fields


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


# --- platform operators (public host) ------------------------------------------------------------


class OperatorSerializer(serializers.ModelSerializer[User]):
    """An operator as the platform API shows it (never a password)."""

    class Meta:
        model = User
        fields = [
            "id",
            "email",
            "username",
            "first_name",
            "last_name",
            "is_active",
            "is_superuser",
            "date_joined",
            "last_login",
        ]
        read_only_fields = fields


class OperatorNamesSerializer(RefusesUnknownFields):
    """What operators change of themselves at users/me/: their names. The
    email is their login and stays as it was made (any other field is a 400
    naming it)."""

    first_name = serializers.CharField(max_length=150, allow_blank=True, required=False)
    last_name = serializers.CharField(max_length=150, allow_blank=True, required=False)


class OperatorCreateSerializer(RefusesUnknownFields, serializers.ModelSerializer[User]):
    """A new operator: its creator (a superuser operator) chooses the first
    password, checked by Django's validators against the new operator's names."""

    password = serializers.CharField(style={"input_type": "password"}, write_only=True, max_length=PASSWORD_MAX)
    is_superuser = StrictBooleanField(required=False, default=False)

    class Meta:
        model = User
        fields = ["email", "username", "first_name", "last_name", "password", "is_superuser"]
        extra_kwargs = {"email": {"required": True, "allow_blank": False}}

    def validate_email(self, value: str) -> str:
        return _email_available(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        names = {key: attrs.get(key, "") for key in ("email", "username", "first_name", "last_name")}
        try:
            _password_ok(attrs["password"], User(**names))
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"password": exc.detail}) from None
        return attrs


class OperatorUpdateSerializer(RefusesUnknownFields):
    """What a superuser operator changes of an operator; anything else (the
    email, the password) is a 400 naming it."""

    first_name = serializers.CharField(max_length=150, allow_blank=True, required=False)
    last_name = serializers.CharField(max_length=150, allow_blank=True, required=False)
    is_active = StrictBooleanField(required=False)
    is_superuser = StrictBooleanField(required=False)


class SupportPasswordResetSerializer(RefusesUnknownFields):
    email = serializers.EmailField(max_length=254, help_text="An active admin (staff user) of the tenant.")


class SupportPasswordResetAnswerSerializer(serializers.Serializer):
    """What the support action answers: who was sent the link (never the link)."""

    tenant = serializers.CharField(help_text="the tenant's slug")
    email = serializers.EmailField(help_text="the admin the reset email goes to")
