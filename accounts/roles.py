"""Tenant roles and the rules that keep them from escalating.

The hierarchy, in every tenant (and for operators in ``public``):

* a **superuser** may do anything, including making and unmaking staff and
  superusers;
* a **tenant admin** (staff, ``accounts.permissions.is_tenant_admin``) manages
  users, groups and permissions, but never a superuser, never anyone's
  ``is_staff`` or ``is_superuser``, and grants only permissions it holds;
* everyone else, only what their permissions allow.

And always: a tenant keeps at least one active superuser.

The rules are checked against the actor of the change (``accounts.audit.
recording.current_actor``: the request's user, or ``acting_as``), by the
guards in ``accounts.guards`` on every path that writes users, memberships and
permissions (API, Django admin, services, the shell), and by the services and
permission classes that want to refuse before writing. No actor (the shell,
migrations, a link followed anonymously) is the system: it is refused only
what no one may do (leaving a tenant without a superuser).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import connection

from accounts.models import User
from core.errors import ApplicationError
from core.labels import label_of, permission_label


class RoleRefused(ApplicationError, DjangoPermissionDenied):
    """403 with the rule's message: a JSON error in the API, Django's 403
    handler on any other path (the Django admin)."""

    status_code = HTTPStatus.FORBIDDEN
    code = "permission_denied"


def is_superuser(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_superuser)


def _is_system(actor: Any) -> bool:
    return actor is None


def held_by_each(users: Iterable[User]) -> dict[int, set[str]]:
    """The model permissions each user holds, directly or through its groups,
    whether or not it is active (a deactivated account may come back): two
    queries, however many users."""
    ids = [user.pk for user in users if user.pk is not None]
    held: dict[int, set[str]] = {pk: set() for pk in ids}
    if not ids:
        return held
    direct = User.user_permissions.through.objects.filter(user_id__in=ids).values_list(
        "user_id", "permission__content_type__app_label", "permission__codename"
    )
    grouped = (
        User.groups.through.objects.filter(user_id__in=ids, group__permissions__isnull=False)
        .values_list("user_id", "group__permissions__content_type__app_label", "group__permissions__codename")
        .distinct()
    )
    for pk, app_label, codename in [*direct, *grouped]:
        held[pk].add(permission_label(app_label, codename))
    return held


def check_may_change(actor: Any, target: User, *, was_superuser: bool | None = None) -> None:
    """Only a superuser changes, deactivates or deletes a superuser; and
    nobody else changes (its password, email, activity, memberships...) a
    user who holds a permission the actor does not: that would be taking
    over more than the actor holds."""
    check_may_change_each(
        actor, [target], was_superuser={target.pk: was_superuser} if was_superuser is not None else None
    )


def check_may_change_each(actor: Any, targets: list[User], *, was_superuser: dict[Any, bool] | None = None) -> None:
    """``check_may_change`` for many users at once, in two queries."""
    if _is_system(actor) or is_superuser(actor):
        return
    stored = was_superuser or {}
    if any(stored.get(target.pk, target.is_superuser) for target in targets):
        raise RoleRefused("Only a superuser may change, deactivate or delete a superuser.")
    others = [target for target in targets if target.pk is not None and target.pk != getattr(actor, "pk", None)]
    if not others:
        return
    mine = actor.get_all_permissions() if actor.is_authenticated and actor.is_active else set()
    for held in held_by_each(others).values():
        beyond = sorted(held - mine)
        if beyond:
            raise RoleRefused(
                f"That user holds permissions you do not ({', '.join(beyond[:5])}): only who holds them may change it."
            )


def check_may_set_roles(actor: Any) -> None:
    """Only a superuser makes or unmakes staff and superusers."""
    if not (_is_system(actor) or is_superuser(actor)):
        raise RoleRefused("Only a superuser may make or unmake staff and superusers.")


def check_may_grant(actor: Any, permissions: Iterable[Permission]) -> None:
    """Nobody grants a model permission they do not hold themselves,
    superusers excepted (``permissions`` with their content types)."""
    if _is_system(actor) or is_superuser(actor):
        return
    held = actor.get_all_permissions() if actor.is_authenticated and actor.is_active else set()
    missing = sorted({label_of(p) for p in permissions} - held)
    if missing:
        raise RoleRefused(f"You can only grant permissions you hold yourself; you do not hold {', '.join(missing)}.")


# What else a group gives its members, by the apps that own it: guardian's
# object grants of a group (catalog's products), which accounts cannot see.
# Each check refuses (RoleRefused) when the actor may not give what the
# groups hold; catalog registers its own from its AppConfig.ready().
GroupGrantsCheck = Callable[[Any, list[int]], None]
_group_grants_checks: list[GroupGrantsCheck] = []


def register_group_grants_check(check: GroupGrantsCheck) -> None:
    if check not in _group_grants_checks:
        _group_grants_checks.append(check)


def permissions_of(groups: Iterable[Group]) -> Any:
    """The model permissions the groups hold, with their content types."""
    return Permission.objects.filter(group__in=list(groups)).select_related("content_type").distinct()


def check_may_join(actor: Any, groups: Iterable[Group]) -> None:
    """Putting someone in ``groups`` gives what they hold: their model
    permissions and every object grant they have (each app's check); nobody
    gives what they do not hold, superusers excepted. The membership guard
    and invitations ask this."""
    groups = list(groups)
    if not groups or _is_system(actor) or is_superuser(actor):
        return
    check_may_grant(actor, permissions_of(groups))
    for check in _group_grants_checks:
        check(actor, [group.pk for group in groups])


def check_keeps_a_superuser(target: User) -> None:
    """Refuse to lose ``target`` as an active superuser if it is the last one.

    Inside a transaction every active superuser row is locked first, so of two
    concurrent demotions of the last two, the second waits, sees the first
    one's change, and is refused."""
    active = User.objects.filter(is_superuser=True, is_active=True)
    if connection.in_atomic_block:
        active = active.select_for_update()
    if not set(active.values_list("pk", flat=True)) - {target.pk}:
        raise RoleRefused(
            "This is the last active superuser of the tenant: it cannot be demoted, deactivated or deleted."
        )
