from __future__ import annotations

import uuid
from typing import Any, ClassVar

from django.contrib.auth.models import AbstractUser
from django.contrib.auth.models import UserManager as DjangoUserManager
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.crypto import salted_hmac


class UserManager(DjangoUserManager["User"]):
    """Email is the login; it is unique per schema whatever its case."""

    def get_by_natural_key(self, username: str | None) -> User:
        return self.get(email__iexact=username)

    def email_taken(self, email: str, *, exclude_pk: int | None = None) -> bool:
        """Whether another user has this email, in any case (the functional
        unique index accounts_user_email_ci_unique decides races)."""
        clash = self.filter(email__iexact=email)
        return (clash.exclude(pk=exclude_pk) if exclude_pk is not None else clash).exists()

    def _create_user_object(self, username: str, email: str | None, password: str | None, **extra: Any) -> User:
        email = self.normalize_email(email)
        if extra.get("is_active", True):
            extra.setdefault("activated_at", timezone.now())
        user = self.model(username=username, email=email, **extra)
        user.password = ""
        if password is not None:
            user.set_password(password)
        return user

    def create_user(  # type: ignore[override]
        self, email: str, username: str, password: str | None = None, **extra: Any
    ) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        user = self._create_user_object(username, email, password, **extra)
        user.save(using=self._db)
        return user

    def create_superuser(  # type: ignore[override]
        self, email: str, username: str, password: str | None = None, **extra: Any
    ) -> User:
        extra["is_staff"] = True
        extra["is_superuser"] = True
        extra.setdefault("is_active", True)
        return self.create_user(email, username, password, **extra)


class User(AbstractUser):
    """A person in one schema: a tenant's user, or a platform operator in public.

    Ids mean nothing outside their schema; every credential carries the schema.
    """

    email = models.EmailField("email address", max_length=254)
    # Bumped whenever every credential the user holds must die: password set
    # or reset, deactivation, "log out everywhere". Tokens carry the value they
    # were issued under and are refused once it moves (no password digest in
    # the token).
    token_epoch = models.PositiveIntegerField(default=0, editable=False)
    # Set once, when the account is first activated (or at creation when the
    # tenant needs no activation). An inactive user with this set was
    # deactivated by an admin, and activation links cannot revive it.
    activated_at = models.DateTimeField(null=True, blank=True, editable=False)

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["username"]

    objects: ClassVar[UserManager] = UserManager()

    class Meta:
        verbose_name = "user"
        verbose_name_plural = "users"
        swappable = "AUTH_USER_MODEL"
        constraints = [
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email

    # (is_staff, is_superuser, is_active) as last read from or written to the
    # database: what a save changes is judged against it (revocation here, the
    # role rules in accounts.guards, the audit in accounts.audit.receivers).
    _stored_roles: tuple[bool, bool, bool] | None = None
    ROLE_FIELDS = ("is_staff", "is_superuser", "is_active")

    @classmethod
    def from_db(cls, db: Any, field_names: Any, values: Any) -> User:
        instance = super().from_db(db, field_names, values)
        if all(name in instance.__dict__ for name in cls.ROLE_FIELDS):
            instance._stored_roles = instance.roles()
        return instance

    def roles(self) -> tuple[bool, bool, bool]:
        return (bool(self.is_staff), bool(self.is_superuser), bool(self.is_active))

    def stored_roles(self) -> tuple[bool, bool, bool] | None:
        """The flags as the database holds them (one query if this instance
        was not loaded with them); None for a user not saved yet."""
        if self._stored_roles is None and self.pk is not None:
            row = type(self)._default_manager.filter(pk=self.pk).values_list(*self.ROLE_FIELDS).first()
            self._stored_roles = (bool(row[0]), bool(row[1]), bool(row[2])) if row else None
        return self._stored_roles

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Revoke every token on a password change or a deactivation.

        This lives in save() on purpose: djoser, the Django admin, the shell and
        our services all change passwords and is_active, and a revocation that
        one of those paths forgets is no revocation. ``set_password`` leaves
        ``_password`` set until the save.
        """
        stored = self._stored_roles
        deactivated = stored is not None and stored[2] and not self.is_active
        if getattr(self, "_password", None) is not None or deactivated:
            self.token_epoch += 1
            update_fields = kwargs.get("update_fields")
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "token_epoch"}
        super().save(*args, **kwargs)
        saved = kwargs.get("update_fields")
        now = self.roles()
        if saved is not None and stored is not None:
            now = tuple(now[i] if name in saved else stored[i] for i, name in enumerate(self.ROLE_FIELDS))  # type: ignore[assignment]
        self._stored_roles = now

    def _get_session_auth_hash(self, secret: str | None = None) -> str:
        """Sessions (the Django admin) die with "log out everywhere" and
        deactivation too, not only with a password change."""
        return salted_hmac(
            "accounts.User.get_session_auth_hash",
            f"{self.password}|{self.token_epoch}",
            secret=secret,
            algorithm="sha256",
        ).hexdigest()

    def revoke_tokens(self) -> None:
        """Invalidate every access and refresh token issued so far."""
        type(self)._default_manager.filter(pk=self.pk).update(token_epoch=models.F("token_epoch") + 1)
        self.refresh_from_db(fields=["token_epoch"])

    def validate_unique(self, exclude: Any = None) -> None:
        super().validate_unique(exclude)
        checked = self.email and (exclude is None or "email" not in exclude)
        if checked and User.objects.email_taken(self.email, exclude_pk=self.pk):
            raise ValidationError({"email": "A user with that email already exists."}, code="unique")


class Profile(models.Model):
    """The seed's profile: one per user, written only by that user."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="profile")
    dob = models.DateField(null=True, blank=True)
    bio = models.TextField(blank=True, default="", max_length=5000)

    def __str__(self) -> str:
        return f"{self.user.username}'s profile"


class Customer(models.Model):
    """The seed's customer: managed by tenant admins, read and updated by its user at /me."""

    class Membership(models.TextChoices):
        BRONZE = "bronze", "Bronze"
        SILVER = "silver", "Silver"
        GOLD = "gold", "Gold"

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="customer")
    phone = models.CharField(max_length=32, blank=True, default="")
    birth_date = models.DateField(null=True, blank=True)
    membership = models.CharField(max_length=10, choices=Membership.choices, default=Membership.BRONZE)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.user.username


class AuditEntry(models.Model):
    """Who changed which permission of whom, in this tenant's schema.

    Rows are written for every change to groups, memberships, model
    permissions, object grants and a user's is_staff, is_superuser and
    is_active, whatever the path (API, admin, shell), and for the tenant's
    settings its admins change (its CORS origins: subject "tenant", with the
    old and new values in ``changes``), and for each step of an invitation
    (subject "invitation", the invited email; accept's target the new user);
    ``*_repr`` keep the names readable after the subject is gone.
    """

    class Action(models.TextChoices):
        GROUP_CREATE = "group.create"
        GROUP_RENAME = "group.rename"
        GROUP_DELETE = "group.delete"
        MEMBER_ADD = "group.member_add"
        MEMBER_REMOVE = "group.member_remove"
        GROUP_PERM_ADD = "group.perm_add"
        GROUP_PERM_REMOVE = "group.perm_remove"
        USER_PERM_ADD = "user.perm_add"
        USER_PERM_REMOVE = "user.perm_remove"
        OBJECT_GRANT = "object.grant"
        OBJECT_REVOKE = "object.revoke"
        STAFF_ON = "user.staff_on"
        STAFF_OFF = "user.staff_off"
        SUPERUSER_ON = "user.superuser_on"
        SUPERUSER_OFF = "user.superuser_off"
        ACTIVATE = "user.activate"
        DEACTIVATE = "user.deactivate"
        TENANT_CORS_CHANGE = "tenant.cors_changed"
        INVITATION_CREATE = "invitation.create"
        INVITATION_RESEND = "invitation.resend"
        INVITATION_REVOKE = "invitation.revoke"
        INVITATION_ACCEPT = "invitation.accept"
        # A platform operator had a password reset link sent to a tenant's
        # admin (the platform API's support action): the operator is named in
        # actor_repr ("operator:<email>"), actor is NULL (not a tenant user).
        SUPPORT_PASSWORD_RESET = "support.password_reset"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor_repr = models.CharField(max_length=254, blank=True, default="")
    action = models.CharField(max_length=32, choices=Action.choices, db_index=True)
    subject_type = models.CharField(max_length=16)  # "user", "group", "tenant", "invitation"
    subject_id = models.BigIntegerField()
    subject_repr = models.CharField(max_length=254)
    permission = models.CharField(max_length=255, blank=True, default="")  # "app_label.codename"
    # What the change was about, if not the subject itself: the group of a
    # membership, the object of a grant ("catalog.product").
    target_type = models.CharField(max_length=32, blank=True, default="")
    target_id = models.BigIntegerField(null=True, blank=True)
    target_repr = models.CharField(max_length=254, blank=True, default="")
    # A setting's values before and after, when a list does not fit the
    # columns above: {"old": [...], "new": [...]}.
    changes = models.JSONField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "audit entries"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["subject_type", "subject_id", "-created_at"], name="audit_subject_idx"),
            models.Index(fields=["actor", "-created_at"], name="audit_actor_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.actor_repr or 'system'} {self.action} {self.subject_repr} {self.permission}".strip()


class RateCounter(models.Model):
    """A fixed-window counter of the throttles (accounts.auth.rates), in this
    tenant's schema, when no Redis is configured: one atomic upsert per hit,
    shared by every process that serves the tenant."""

    key = models.CharField(max_length=200, primary_key=True)
    period_no = models.BigIntegerField()  # which window: epoch seconds // its length
    hits = models.PositiveIntegerField(default=0)
    previous_hits = models.PositiveIntegerField(default=0)  # in the window before
    expires_at = models.BigIntegerField(db_index=True)  # epoch seconds

    def __str__(self) -> str:
        return f"{self.key}: {self.hits}"


class TokenFamily(models.Model):
    """One login session: the refresh token issued at login and every token
    rotated from it carry this id (the ``fam`` claim).

    Revoked when a rotated token is replayed (reuse: a thief and the owner
    hold tokens of one family, and nobody can tell which is which, so both
    lose it), at logout, and with "log out everywhere"; a session never
    outlives ``started_at`` + ``JWT_SESSION_MAX_AGE``, however often it is
    refreshed (accounts.auth.token_families)."""

    class Ended(models.TextChoices):
        REUSE = "reuse"
        LOGOUT = "logout"
        LOGOUT_ALL = "logout_all"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="token_families")
    started_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_because = models.CharField(max_length=16, choices=Ended.choices, blank=True, default="")

    class Meta:
        verbose_name_plural = "token families"
        indexes = [models.Index(fields=["user", "started_at"], name="token_family_user_idx")]

    def __str__(self) -> str:
        return f"{self.user_id} since {self.started_at:%Y-%m-%d %H:%M}"


class Invitation(models.Model):
    """An email address asked into this tenant, into chosen groups (and with
    object grants, which the app owning the objects applies: accounts.
    invitation_grants), by a tenant admin.

    The link's token is never stored: ``token_hash`` is its HMAC bound to this
    tenant (accounts.invitation_tokens), so a token copied to another
    tenant, or a database dump, opens nothing. "Expired" is not stored: a
    pending invitation whose ``expires_at`` has passed is expired.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        ACCEPTED = "accepted"
        REVOKED = "revoked"

    EXPIRED = "expired"  # derived: pending, past expires_at

    email = models.EmailField(max_length=254)
    groups = models.ManyToManyField("auth.Group", blank=True, related_name="+")
    # [{"model": "catalog.product", "id": 7, "permissions": ["view_product"]}]
    object_grants = models.JSONField(default=list, blank=True)
    invited_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    invited_by_repr = models.CharField(max_length=254, blank=True, default="")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_user = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)
    sent_count = models.PositiveIntegerField(default=0)
    last_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                condition=models.Q(status="pending"),
                name="accounts_invitation_one_pending_per_email",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} ({self.state})"

    @property
    def state(self) -> str:
        """pending, expired, accepted or revoked."""
        if self.status == self.Status.PENDING and self.expires_at <= timezone.now():
            return self.EXPIRED
        return str(self.status)
