"""Reads on accounts."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone
from rest_framework_simplejwt.settings import api_settings as jwt_settings

from accounts import invitation_tokens
from accounts.models import AuditEntry, Invitation, Profile, User
from core import statements
from core.errors import ApplicationError, NotFound
from core.ids import parse_id
from core.labels import label_of


def permissions_with_types() -> QuerySet[Permission]:
    return Permission.objects.select_related("content_type").order_by(
        "content_type__app_label", "content_type__model", "codename"
    )


def assignable_permissions() -> QuerySet[Permission]:
    return (
        permissions_with_types()
        .filter(content_type__app_label__in=settings.ASSIGNABLE_PERMISSION_APPS)
        .exclude(content_type__app_label="accounts", content_type__model="auditentry")
    )


def _user_by_id(value: str) -> User | None:
    number = parse_id(value)
    return _user_with_pk(number) if number is not None else None


def _user_with_pk(number: int) -> User | None:
    """The user with this primary key: one statement, compiled once
    (core.statements; authentication asks on every request)."""

    def with_pk(ids: tuple[int, ...]) -> QuerySet[User]:
        return User.objects.filter(pk=ids[0])

    compiled = statements.statement(("accounts.user_with_pk",), with_pk, 1)
    if compiled is None:
        return with_pk((number,)).first()
    found = compiled.fetch([number])
    return found[0] if found else None


def user_get(*, pk: Any) -> User:
    """The user with this id (from a URL): 404 if there is none."""
    user = _user_by_id(str(pk))
    if user is None:
        raise NotFound("No such user.")
    return user


def user_named_by(value: str, *, field: str) -> User:
    """The user an input ``field`` names by id: a 400 naming the field if none."""
    user = _user_by_id(value)
    if user is None:
        raise ApplicationError("No such user.", field=field)
    return user


def user_for_token_claim(user_id: Any) -> User | None:
    """The user a token's id claim names in this schema, or None.

    simplejwt writes the id as a string; anything that is not a str or int
    (bool, float, list, dict...) or does not parse as an id names nobody,
    rather than raising (500) or being coerced (1.5 -> 1).
    """
    if isinstance(user_id, bool) or not isinstance(user_id, (str, int)):
        return None
    if jwt_settings.USER_ID_FIELD in ("id", "pk"):
        return _user_by_id(str(user_id))
    try:
        return User.objects.filter(**{jwt_settings.USER_ID_FIELD: user_id}).first()
    except (TypeError, ValueError, DjangoValidationError):
        return None


def user_permissions_summary(*, user: User) -> dict[str, Any]:
    """Direct permissions, and the groups that grant others: two queries."""

    direct = sorted(label_of(p) for p in user.user_permissions.select_related("content_type"))
    via_groups: dict[str, list[str]] = {}
    groups = user.groups.order_by("name").prefetch_related(Prefetch("permissions", queryset=permissions_with_types()))
    for group in groups:
        for p in group.permissions.all():
            via_groups.setdefault(label_of(p), []).append(group.name)
    return {"user": user.pk, "direct": direct, "via_groups": via_groups}


def profile_of(*, user: User) -> Profile:
    profile = Profile.objects.filter(user=user).first()
    return profile or Profile(user=user)


def audit_entries() -> QuerySet[AuditEntry]:
    return AuditEntry.objects.order_by("-created_at", "-id")


# --- platform operators (public schema) and the platform's support actions ---------------------


def operator_list() -> QuerySet[User]:
    """The platform operators: staff users of the public schema (the caller's
    schema; only the public host routes this)."""
    return User.objects.filter(is_staff=True).order_by("id")


def operator_get(*, pk: Any) -> User:
    """The operator with this id (from a URL): 404 if there is none."""
    number = parse_id(str(pk))
    user = operator_list().filter(pk=number).first() if number is not None else None
    if user is None:
        raise NotFound("No such operator.")
    return user


def tenant_admin_by_email(*, email: str) -> User:
    """The active admin (staff user) of the current tenant schema with this
    email, in any case: a 400 naming ``email`` if there is none (whether no
    such user, an inactive one or one who is not an admin, alike)."""
    user = User.objects.filter(email__iexact=email, is_active=True, is_staff=True).first()
    if user is None:
        raise ApplicationError("No active admin of this tenant has that email.", field="email")
    return user


# --- invitations ------------------------------------------------------------------------------

INVALID_INVITATION = "invalid_token"
EXPIRED_INVITATION = "invitation_expired"


def invitations() -> QuerySet[Invitation]:
    """Newest first, groups loaded (by name)."""
    return Invitation.objects.prefetch_related(Prefetch("groups", queryset=Group.objects.order_by("name"))).order_by(
        "-created_at", "-id"
    )


def invitations_in_state(queryset: QuerySet[Invitation], state: str) -> QuerySet[Invitation]:
    """``state`` as the API shows it: pending, expired (pending, past its
    expiry), accepted or revoked."""
    now = timezone.now()
    if state == Invitation.EXPIRED:
        return queryset.filter(status=Invitation.Status.PENDING, expires_at__lte=now)
    if state == Invitation.Status.PENDING:
        return queryset.filter(status=Invitation.Status.PENDING, expires_at__gt=now)
    return queryset.filter(status=state)


def invitation_get(*, pk: Any) -> Invitation:
    """The invitation with this id (from a URL): 404 if there is none."""
    number = parse_id(str(pk))
    invitation = invitations().filter(pk=number).first() if number is not None else None
    if invitation is None:
        raise NotFound("No such invitation.")
    return invitation


def invitation_pending_for(*, email: str) -> Invitation | None:
    """The pending invitation (expired or not) to this email, in any case."""
    return Invitation.objects.filter(Q(email__iexact=email), status=Invitation.Status.PENDING).first()


def invitation_for_token(*, token: Any, for_update: bool = False) -> Invitation:
    """The pending, unexpired invitation of this tenant whose link carries
    ``token`` (locked with ``for_update``, in a transaction); else a 400
    naming ``token``: "invitation_expired" for an expired one,
    "invalid_token" for everything else (used, revoked, resent, unknown,
    another tenant's), so a guess learns nothing."""
    invalid = ApplicationError(
        "This invitation has already been used or is no longer valid.", field="token", code=INVALID_INVITATION
    )
    if not invitation_tokens.well_formed(token):
        raise invalid
    found = Invitation.objects.filter(token_hash__in=invitation_tokens.hashes_of(token))
    invitation = (found.select_for_update() if for_update else found).first()
    if invitation is None or invitation.status != Invitation.Status.PENDING:
        raise invalid
    if invitation.state == Invitation.EXPIRED:
        raise ApplicationError(
            "This invitation has expired: ask whoever invited you to send it again.",
            field="token",
            code=EXPIRED_INVITATION,
        )
    return invitation


def invitation_group_names(invitation: Invitation) -> list[str]:
    """The names of the groups an invitation offers, in order."""
    return [group.name for group in invitation.groups.order_by("name")]
