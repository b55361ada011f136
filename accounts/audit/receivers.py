"""Model signals that write the audit log, whatever path made the change.

Connected by ``connect()`` from ``AccountsConfig.ready``: the group and
many-to-many receivers, and for every guardian direct foreign-key grant table
of any installed app (``catalog``'s product grants today), row created ->
granted, row deleted -> revoked.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.db import models
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from accounts.audit import entries
from accounts.audit.recording import record, signals_active
from accounts.models import User

# --- groups ---------------------------------------------------------------------------


def _group_before_save(sender: Any, instance: Group, **kwargs: Any) -> None:
    instance._audit_old_name = (  # type: ignore[attr-defined]
        Group.objects.filter(pk=instance.pk).values_list("name", flat=True).first() if instance.pk else None
    )


def _group_saved(sender: Any, instance: Group, created: bool, **kwargs: Any) -> None:
    if not signals_active():
        return
    old = getattr(instance, "_audit_old_name", None)
    if created:
        record([entries.group_created(instance)])
    elif old is not None and old != instance.name:
        record([entries.group_renamed(instance, old_name=old)])


def _group_deleted(sender: Any, instance: Group, **kwargs: Any) -> None:
    if signals_active():
        record([entries.group_deleted(instance)])


# --- a user's roles: is_staff, is_superuser, is_active ------------------------------------


def _user_saved(sender: Any, instance: User, created: bool, **kwargs: Any) -> None:
    """Runs before User.save() records the new flags as stored, so the stored
    ones are still the old (accounts.guards has loaded them)."""
    if not signals_active():
        return
    now = dict(zip(User.ROLE_FIELDS, instance.roles(), strict=True))
    if created:  # a new user is active by nature: log only the privileges it starts with
        changed = {flag: True for flag in ("is_staff", "is_superuser") if now[flag]}
    else:
        before = dict(zip(User.ROLE_FIELDS, instance.stored_roles() or instance.roles(), strict=True))
        saved = kwargs.get("update_fields")
        changed = {f: now[f] for f in User.ROLE_FIELDS if now[f] != before[f] and (saved is None or f in saved)}
    if changed:
        record(entries.role_changed(instance, flag, now=value) for flag, value in changed.items())


# --- many-to-many: memberships and model permissions ----------------------------------


def _m2m_pks(kwargs: dict[str, Any], instance: Any, relation: str) -> tuple[bool, set[int]] | None:
    """(added, pks) for post_add/post_remove/post_clear, or None."""
    action = kwargs["action"]
    if action == "pre_clear":
        instance._audit_cleared = set(getattr(instance, relation).values_list("pk", flat=True))
        return None
    if action == "post_clear":
        return False, getattr(instance, "_audit_cleared", set())
    if action == "pre_remove":
        # Django sends every pk asked for, held or not; log only what goes.
        asked = set(kwargs["pk_set"] or ())
        instance._audit_removing = set(getattr(instance, relation).filter(pk__in=asked).values_list("pk", flat=True))
        return None
    if action == "post_remove":
        return False, getattr(instance, "_audit_removing", set())
    if action == "post_add":  # Django sends only the pks it actually added
        return True, set(kwargs["pk_set"] or ())
    return None


def _membership_changed(sender: Any, instance: Any, reverse: bool, **kwargs: Any) -> None:
    change = _m2m_pks(kwargs, instance, "user_set" if reverse else "groups")
    if change is None:
        return
    added, pks = change
    if reverse:  # group.user_set.add(users)
        pairs = [(user, instance) for user in User.objects.filter(pk__in=pks)]
    else:  # user.groups.add(groups)
        pairs = [(instance, group) for group in Group.objects.filter(pk__in=pks)]
    record(entries.membership_changed(user, group, added=added) for user, group in pairs)


def _permissions_changed(instance: Any, reverse: bool, kwargs: dict[str, Any], holder_model: Any) -> None:
    if reverse:
        relation = "user_set" if holder_model is User else "group_set"
    else:
        relation = "user_permissions" if holder_model is User else "permissions"
    change = _m2m_pks(kwargs, instance, relation)
    if change is None:
        return
    added, pks = change
    if reverse:  # permission.user_set / group_set
        holders = list(holder_model._default_manager.filter(pk__in=pks))
        perms = [instance]
    else:
        holders = [instance]
        perms = list(Permission.objects.filter(pk__in=pks).select_related("content_type"))
    record(entries.model_permission_changed(h, p, added=added) for h in holders for p in perms)


def _user_permissions_changed(sender: Any, instance: Any, reverse: bool, **kwargs: Any) -> None:
    _permissions_changed(instance, reverse, kwargs, User)


def _group_permissions_changed(sender: Any, instance: Any, reverse: bool, **kwargs: Any) -> None:
    _permissions_changed(instance, reverse, kwargs, Group)


# --- guardian's object grants ------------------------------------------------------------


def _object_granted(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    if created and signals_active():
        record([entries.object_permission_changed(instance, granted=True)])


def _object_revoked(sender: Any, instance: Any, **kwargs: Any) -> None:
    if signals_active():
        record([entries.object_permission_changed(instance, granted=False)])


def grant_tables() -> list[type[models.Model]]:
    """Guardian's direct foreign-key grant tables of the installed apps."""
    bases = (UserObjectPermissionBase, GroupObjectPermissionBase)
    models_: list[type[models.Model]] = [model for model in apps.get_models() if issubclass(model, bases)]
    return [m for m in models_ if isinstance(m._meta.get_field("content_object"), models.ForeignKey)]


def connect() -> None:
    uid = "accounts.audit"
    pre_save.connect(_group_before_save, sender=Group, dispatch_uid=f"{uid}.group_before_save")
    post_save.connect(_group_saved, sender=Group, dispatch_uid=f"{uid}.group_saved")
    post_delete.connect(_group_deleted, sender=Group, dispatch_uid=f"{uid}.group_deleted")
    post_save.connect(_user_saved, sender=User, dispatch_uid=f"{uid}.user_saved")
    m2m_changed.connect(_membership_changed, sender=User.groups.through, dispatch_uid=f"{uid}.membership")
    m2m_changed.connect(
        _user_permissions_changed, sender=User.user_permissions.through, dispatch_uid=f"{uid}.user_permissions"
    )
    m2m_changed.connect(
        _group_permissions_changed, sender=Group.permissions.through, dispatch_uid=f"{uid}.group_permissions"
    )
    for table in grant_tables():
        post_save.connect(_object_granted, sender=table, dispatch_uid=f"{uid}.granted.{table._meta.label}")
        post_delete.connect(_object_revoked, sender=table, dispatch_uid=f"{uid}.revoked.{table._meta.label}")
