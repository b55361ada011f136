"""Builders of audit entries, one per kind: plain values in, an unsaved
``AuditEntry`` out. The actor is set when the entry is recorded
(``accounts.audit.recording.record``)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission
from guardian.models import UserObjectPermissionBase

from accounts.models import AuditEntry, Invitation, User
from core.labels import label_of, permission_label
from tenants.models import Tenant

Action = AuditEntry.Action


def _subject(holder: User | Group) -> dict[str, Any]:
    if isinstance(holder, User):
        return {"subject_type": "user", "subject_id": holder.pk, "subject_repr": holder.email}
    return {"subject_type": "group", "subject_id": holder.pk, "subject_repr": holder.name}


def group_created(group: Group) -> AuditEntry:
    return AuditEntry(action=Action.GROUP_CREATE, **_subject(group))


def group_renamed(group: Group, *, old_name: str) -> AuditEntry:
    return AuditEntry(action=Action.GROUP_RENAME, **_subject(group), target_repr=f"was {old_name}")


def group_deleted(group: Group) -> AuditEntry:
    return AuditEntry(action=Action.GROUP_DELETE, **_subject(group))


def membership_changed(user: User, group: Group, *, added: bool) -> AuditEntry:
    return AuditEntry(
        action=Action.MEMBER_ADD if added else Action.MEMBER_REMOVE,
        **_subject(user),
        target_type="group",
        target_id=group.pk,
        target_repr=group.name,
    )


def model_permission_changed(holder: User | Group, permission: Permission, *, added: bool) -> AuditEntry:
    """A model permission given to or taken from a user or a group
    (``permission`` with its content type loaded)."""
    if isinstance(holder, User):
        action = Action.USER_PERM_ADD if added else Action.USER_PERM_REMOVE
    else:
        action = Action.GROUP_PERM_ADD if added else Action.GROUP_PERM_REMOVE
    return AuditEntry(action=action, **_subject(holder), permission=label_of(permission))


_ROLE_ACTIONS = {
    ("is_staff", True): Action.STAFF_ON,
    ("is_staff", False): Action.STAFF_OFF,
    ("is_superuser", True): Action.SUPERUSER_ON,
    ("is_superuser", False): Action.SUPERUSER_OFF,
    ("is_active", True): Action.ACTIVATE,
    ("is_active", False): Action.DEACTIVATE,
}


def role_changed(user: User, flag: str, *, now: bool) -> AuditEntry:
    """``is_staff``, ``is_superuser`` or ``is_active`` of ``user`` set to ``now``."""
    return AuditEntry(action=_ROLE_ACTIONS[(flag, now)], **_subject(user))


def object_permission_changed(row: Any, *, granted: bool, target_repr: str | None = None) -> AuditEntry:
    """A row of a guardian direct foreign-key grant table (``user`` or
    ``group``, ``permission`` and ``content_object_id``) created or deleted.

    The permission's app label is the granted object's (guardian matches
    permissions to objects by content type), so no content type is loaded.
    ``target_repr`` is the object's name when the caller has it at hand.
    """
    holder = row.user if isinstance(row, UserObjectPermissionBase) else row.group
    target_model = type(row)._meta.get_field("content_object").related_model._meta
    return AuditEntry(
        action=Action.OBJECT_GRANT if granted else Action.OBJECT_REVOKE,
        **_subject(holder),
        permission=permission_label(target_model.app_label, row.permission.codename),
        target_type=target_model.label_lower,
        target_id=row.content_object_id,
        target_repr=target_repr or f"{target_model.verbose_name} #{row.content_object_id}",
    )


def tenant_cors_changed(tenant: Tenant, *, old: list[str], new: list[str]) -> AuditEntry:
    """The tenant's allowed CORS origins replaced: ``old`` by ``new``."""
    return AuditEntry(
        action=Action.TENANT_CORS_CHANGE,
        subject_type="tenant",
        subject_id=tenant.pk,
        subject_repr=tenant.slug,
        changes={"old": list(old), "new": list(new)},
    )


def support_password_reset(user: User) -> AuditEntry:
    """In the tenant's schema: a platform operator had a password reset link
    sent to ``user`` (the operator is named when recorded,
    ``recording.record_as_operator``)."""
    return AuditEntry(action=Action.SUPPORT_PASSWORD_RESET, **_subject(user))


def tenant_support_password_reset(tenant: Tenant, user: User) -> AuditEntry:
    """In the public schema: the same action, seen from the platform (subject
    the tenant, target its user; the actor is the operator, a public user)."""
    return AuditEntry(
        action=Action.SUPPORT_PASSWORD_RESET,
        subject_type="tenant",
        subject_id=tenant.pk,
        subject_repr=tenant.slug,
        target_type="user",
        target_id=user.pk,
        target_repr=user.email,
    )


# --- invitations: subject "invitation", the invited email -------------------------------


def _invitation(invitation: Invitation) -> dict[str, Any]:
    return {"subject_type": "invitation", "subject_id": invitation.pk, "subject_repr": invitation.email}


def invitation_created(invitation: Invitation, *, groups: list[Group]) -> AuditEntry:
    """What the invitation offers is in ``changes``: the groups (by id and
    name) and the object grants."""
    return AuditEntry(
        action=Action.INVITATION_CREATE,
        **_invitation(invitation),
        changes={
            "groups": [{"id": g.pk, "name": g.name} for g in groups],
            "object_grants": list(invitation.object_grants or []),
            "expires_at": invitation.expires_at.isoformat(),
        },
    )


def invitation_resent(invitation: Invitation) -> AuditEntry:
    """A new link (the old one dies) and a new expiry."""
    return AuditEntry(
        action=Action.INVITATION_RESEND,
        **_invitation(invitation),
        changes={"expires_at": invitation.expires_at.isoformat(), "sent_count": invitation.sent_count},
    )


def invitation_revoked(invitation: Invitation) -> AuditEntry:
    return AuditEntry(action=Action.INVITATION_REVOKE, **_invitation(invitation))


def invitation_accepted(invitation: Invitation, user: User) -> AuditEntry:
    """The target is the account the acceptance made."""
    return AuditEntry(
        action=Action.INVITATION_ACCEPT,
        **_invitation(invitation),
        target_type="user",
        target_id=user.pk,
        target_repr=user.email,
    )
