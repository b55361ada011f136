"""Reads on accounts."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import Permission
from django.db.models import Prefetch, QuerySet

from accounts.models import AuditEntry, Profile, User
from config.errors import NotFound
from config.ids import parse_id


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


def email_taken(email: str, *, exclude_pk: int | None = None) -> bool:
    """Emails are unique per schema whatever their case (a functional index)."""
    clash = User.objects.filter(email__iexact=email)
    return (clash.exclude(pk=exclude_pk) if exclude_pk is not None else clash).exists()


def user_get(*, pk: Any) -> User:
    number = parse_id(str(pk))
    user = User.objects.filter(pk=number).first() if number is not None else None
    if user is None:
        raise NotFound("No such user.")
    return user


def user_permissions_summary(*, user: User) -> dict[str, Any]:
    """Direct permissions, and the groups that grant others: two queries."""

    def label(p: Permission) -> str:
        return f"{p.content_type.app_label}.{p.codename}"

    direct = sorted(label(p) for p in user.user_permissions.select_related("content_type"))
    via_groups: dict[str, list[str]] = {}
    groups = user.groups.order_by("name").prefetch_related(Prefetch("permissions", queryset=permissions_with_types()))
    for group in groups:
        for p in group.permissions.all():
            via_groups.setdefault(label(p), []).append(group.name)
    return {"user": user.pk, "direct": direct, "via_groups": via_groups}


def profile_of(*, user: User) -> Profile:
    profile = Profile.objects.filter(user=user).first()
    return profile or Profile(user=user)


def audit_entries() -> QuerySet[AuditEntry]:
    return AuditEntry.objects.order_by("-created_at", "-id")
