"""The audit log of access changes, written from model signals.

Signals, not services, on purpose: groups, memberships and permissions are
changed by our API, by the Django admin, by guardian's admin pages and from
the shell, and an audit log that one path forgets is not an audit log. The
actor is the user of the request being served (a context variable set by
``AuditActorMiddleware``; DRF writes its authenticated user back onto the
Django request), or nobody for shell and migrations. Bulk writes that send no
signals (guardian's bulk assign) are audited by the service doing them,
through ``record``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.contrib.auth.models import Group, Permission
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

from accounts.models import AuditEntry, User

_current_request: ContextVar[HttpRequest | None] = ContextVar("audit_request", default=None)
_suppressed: ContextVar[bool] = ContextVar("audit_suppressed", default=False)
Action = AuditEntry.Action


class AuditActorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _current_request.set(request)
        try:
            return self.get_response(request)
        finally:
            _current_request.reset(token)


def _actor() -> User | None:
    request = _current_request.get()
    user = getattr(request, "user", None) if request is not None else None
    return user if isinstance(user, User) and user.pk else None


def _perm_label(permission: Permission) -> str:
    return f"{permission.content_type.app_label}.{permission.codename}"


@contextmanager
def recorded_by_caller() -> Iterator[None]:
    """Within this block, signal receivers write nothing: the caller (a
    service doing bulk work) records the entries itself, in one insert."""
    token = _suppressed.set(True)
    try:
        yield
    finally:
        _suppressed.reset(token)


def signals_active() -> bool:
    return not _suppressed.get()


def record(entries: Iterable[dict[str, Any]]) -> None:
    actor = _actor()
    rows = [AuditEntry(actor=actor, actor_repr=actor.email if actor else "", **entry) for entry in entries]
    if rows:
        AuditEntry.objects.bulk_create(rows)


def subject(obj: User | Group) -> dict[str, Any]:
    if isinstance(obj, User):
        return {"subject_type": "user", "subject_id": obj.pk, "subject_repr": obj.email}
    return {"subject_type": "group", "subject_id": obj.pk, "subject_repr": obj.name}


# --- groups ---------------------------------------------------------------------------


@receiver(pre_save, sender=Group)
def _group_before_save(sender: Any, instance: Group, **kwargs: Any) -> None:
    instance._audit_old_name = (  # type: ignore[attr-defined]
        Group.objects.filter(pk=instance.pk).values_list("name", flat=True).first() if instance.pk else None
    )


@receiver(post_save, sender=Group)
def _group_saved(sender: Any, instance: Group, created: bool, **kwargs: Any) -> None:
    if not signals_active():
        return
    old = getattr(instance, "_audit_old_name", None)
    if created:
        record([{"action": Action.GROUP_CREATE, **subject(instance)}])
    elif old is not None and old != instance.name:
        record([{"action": Action.GROUP_RENAME, **subject(instance), "target_repr": f"was {old}"}])


@receiver(post_delete, sender=Group)
def _group_deleted(sender: Any, instance: Group, **kwargs: Any) -> None:
    if not signals_active():
        return
    record([{"action": Action.GROUP_DELETE, **subject(instance)}])


# --- many-to-many: memberships and model permissions ----------------------------------


def _m2m_pks(kwargs: dict[str, Any], instance: Any, relation: str) -> tuple[str, set[int]] | None:
    """(added|removed, pks) for post_add/post_remove/post_clear, or None."""
    action = kwargs["action"]
    if action == "pre_clear":
        instance._audit_cleared = set(getattr(instance, relation).values_list("pk", flat=True))
        return None
    if action == "post_clear":
        return "removed", getattr(instance, "_audit_cleared", set())
    if action == "pre_remove":
        # Django sends every pk asked for, held or not; log only what goes.
        asked = set(kwargs["pk_set"] or ())
        instance._audit_removing = set(getattr(instance, relation).filter(pk__in=asked).values_list("pk", flat=True))
        return None
    if action == "post_remove":
        return "removed", getattr(instance, "_audit_removing", set())
    if action == "post_add":  # Django sends only the pks it actually added
        return "added", set(kwargs["pk_set"] or ())
    return None


@receiver(m2m_changed, sender=User.groups.through)
def _membership_changed(sender: Any, instance: Any, reverse: bool, **kwargs: Any) -> None:
    change = _m2m_pks(kwargs, instance, "user_set" if reverse else "groups")
    if change is None:
        return
    how, pks = change
    action = Action.MEMBER_ADD if how == "added" else Action.MEMBER_REMOVE
    if reverse:  # group.user_set.add(users)
        pairs = [(user, instance) for user in User.objects.filter(pk__in=pks)]
    else:  # user.groups.add(groups)
        pairs = [(instance, group) for group in Group.objects.filter(pk__in=pks)]
    record(
        {"action": action, **subject(user), "target_type": "group", "target_id": group.pk, "target_repr": group.name}
        for user, group in pairs
    )


def _permission_changed(instance: Any, reverse: bool, kwargs: dict[str, Any], holder_model: Any) -> None:
    if reverse:
        relation = "user_set" if holder_model is User else "group_set"
    else:
        relation = "user_permissions" if holder_model is User else "permissions"
    change = _m2m_pks(kwargs, instance, relation)
    if change is None:
        return
    how, pks = change
    if holder_model is User:
        action = Action.USER_PERM_ADD if how == "added" else Action.USER_PERM_REMOVE
    else:
        action = Action.GROUP_PERM_ADD if how == "added" else Action.GROUP_PERM_REMOVE
    if reverse:  # permission.user_set / group_set
        holders = list(holder_model._default_manager.filter(pk__in=pks))
        perms = [instance]
    else:
        holders = [instance]
        perms = list(Permission.objects.filter(pk__in=pks).select_related("content_type"))
    record({"action": action, **subject(h), "permission": _perm_label(p)} for h in holders for p in perms)


@receiver(m2m_changed, sender=User.user_permissions.through)
def _user_permissions_changed(sender: Any, instance: Any, reverse: bool, **kwargs: Any) -> None:
    _permission_changed(instance, reverse, kwargs, User)


@receiver(m2m_changed, sender=Group.permissions.through)
def _group_permissions_changed(sender: Any, instance: Any, reverse: bool, **kwargs: Any) -> None:
    _permission_changed(instance, reverse, kwargs, Group)
