"""Reads on accounts."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Prefetch, QuerySet
from rest_framework_simplejwt.settings import api_settings as jwt_settings

from accounts.models import AuditEntry, Profile, User
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
    return User.objects.filter(pk=number).first() if number is not None else None


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
