"""The role rules (accounts.roles) enforced on every path that writes users,
memberships and model permissions: model signals, like the audit log, so the
API, the Django admin, services and the shell cannot differ.

Each guard runs before the write (pre_save, pre_delete, m2m pre_*) and raises
``RoleRefused``; the API answers it as a 403 JSON error, other paths as
Django's 403, and the surrounding transaction (the admin's, a service's) is
rolled back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import Group, Permission
from django.db.models.signals import m2m_changed, pre_delete, pre_save

from accounts import roles
from accounts.audit.recording import current_actor
from accounts.models import User


def _user_before_save(sender: Any, instance: User, **kwargs: Any) -> None:
    stored = instance.stored_roles()
    actor = current_actor()
    if stored is None:  # a new user: only a superuser (or the system) makes one staff or superuser
        if instance.is_staff or instance.is_superuser:
            roles.check_may_set_roles(actor)
        return
    was_staff, was_superuser, was_active = stored
    roles.check_may_change(actor, instance, was_superuser=was_superuser)
    if (was_staff, was_superuser) != (bool(instance.is_staff), bool(instance.is_superuser)):
        roles.check_may_set_roles(actor)
    if was_superuser and was_active and not (instance.is_superuser and instance.is_active):
        roles.check_keeps_a_superuser(instance)


def _user_before_delete(sender: Any, instance: User, **kwargs: Any) -> None:
    stored = instance.stored_roles() or instance.roles()
    roles.check_may_change(current_actor(), instance, was_superuser=stored[1])
    if stored[1] and stored[2]:
        roles.check_keeps_a_superuser(instance)


def _users(pks: Any) -> list[User]:
    return list(User.objects.filter(pk__in=pks or ()))


def _permissions(pks: Any) -> list[Permission]:
    return list(Permission.objects.filter(pk__in=pks or ()).select_related("content_type"))


def _check_users(actor: Any, users: list[User]) -> None:
    roles.check_may_change_each(actor, users)


def _user_relation_changing(
    instance: Any,
    action: str,
    reverse: bool,
    pks: Any,
    *,
    given: Callable[[Any], list[Any]],
    check_may_give: Callable[[Any, list[Any]], None],
) -> None:
    """A user's permissions or groups are about to change (either side of the
    relation): the users changed must be the actor's to change, and what an
    add gives them (what ``given`` names) the actor's to give (``check_may_give``)."""
    if not action.startswith("pre_"):
        return
    actor = current_actor()
    if reverse:  # permission.user_set / group.user_set
        users = _users(pks) if action != "pre_clear" else list(instance.user_set.all())
        added = [instance]
    else:  # user.user_permissions / user.groups
        users = [instance]
        added = given(pks) if action == "pre_add" else []
    _check_users(actor, users)
    if action == "pre_add":
        check_may_give(actor, added)


def _user_permissions_changing(sender: Any, instance: Any, action: str, reverse: bool, **kwargs: Any) -> None:
    _user_relation_changing(
        instance, action, reverse, kwargs.get("pk_set"), given=_permissions, check_may_give=roles.check_may_grant
    )


def _memberships_changing(sender: Any, instance: Any, action: str, reverse: bool, **kwargs: Any) -> None:
    """Joining a group grants its permissions and its object grants; a
    superuser's groups are the superuser's to change (or another superuser's)."""
    _user_relation_changing(
        instance, action, reverse, kwargs.get("pk_set"), given=_groups, check_may_give=roles.check_may_join
    )


def _groups(pks: Any) -> list[Group]:
    return list(Group.objects.filter(pk__in=pks or ()))


def _group_permissions_changing(sender: Any, instance: Any, action: str, reverse: bool, **kwargs: Any) -> None:
    if action != "pre_add":
        return
    permissions = [instance] if reverse else _permissions(kwargs.get("pk_set"))
    roles.check_may_grant(current_actor(), permissions)


def _group_before_delete(sender: Any, instance: Group, **kwargs: Any) -> None:
    """Deleting a group takes its permissions from its members (a cascade, no
    m2m signal): the members are changed, by the same rules."""
    _check_users(current_actor(), list(instance.user_set.all()))


def connect() -> None:
    uid = "accounts.guards"
    pre_save.connect(_user_before_save, sender=User, dispatch_uid=f"{uid}.user_save")
    pre_delete.connect(_user_before_delete, sender=User, dispatch_uid=f"{uid}.user_delete")
    m2m_changed.connect(
        _user_permissions_changing, sender=User.user_permissions.through, dispatch_uid=f"{uid}.user_permissions"
    )
    m2m_changed.connect(
        _group_permissions_changing, sender=Group.permissions.through, dispatch_uid=f"{uid}.group_permissions"
    )
    m2m_changed.connect(_memberships_changing, sender=User.groups.through, dispatch_uid=f"{uid}.memberships")
    pre_delete.connect(_group_before_delete, sender=Group, dispatch_uid=f"{uid}.group_delete")
