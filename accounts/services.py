"""Writes on accounts: users, registration, activation, passwords, emails, revocation, groups.

Every function takes plain values (the tenant, a ``LinkBase`` for emailed
links, the users and data concerned), never a request, so management commands
and tasks call them as the API does."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypedDict

from django.contrib.auth.models import Group, Permission
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts import emails
from accounts.auth import token_families
from accounts.models import Customer, Profile, User
from core.errors import ApplicationError, Conflict, duplicate_raises
from tenants.models import Tenant

if TYPE_CHECKING:
    from typing_extensions import Unpack

# --- users ---------------------------------------------------------------------------------


class UserFields(TypedDict, total=False):
    """What else a new user may be given."""

    first_name: str
    last_name: str
    is_active: bool
    is_staff: bool
    is_superuser: bool


class Names(TypedDict, total=False):
    first_name: str
    last_name: str


def _only(fields: dict[str, object], allowed: type) -> None:
    """Typed keyword dicts are not checked at run time: refuse any other key
    (say, is_staff passed along from a registration body)."""
    unknown = set(fields) - set(allowed.__annotations__)
    if unknown:
        raise TypeError(f"unexpected fields: {', '.join(sorted(unknown))}")


def user_create(*, email: str, username: str, password: str | None, **fields: Unpack[UserFields]) -> User:
    """A user of the current schema (active unless told otherwise); a taken
    email or username is a Conflict naming the field, also when a concurrent
    write took it first."""
    _only(dict(fields), UserFields)
    email = User.objects.normalize_email(email)
    try:
        with transaction.atomic():
            return User.objects.create_user(email=email, username=username, password=password, **fields)
    except IntegrityError:
        field = "email" if User.objects.email_taken(email) else "username"
        raise Conflict(f"A user with that {field} already exists.", field=field) from None


def user_register(
    *, tenant: Tenant | None, links: emails.LinkBase, email: str, username: str, password: str, **names: Unpack[Names]
) -> User:
    """Create a user of ``tenant``. Active at once unless the tenant requires
    activation, in which case an activation email goes out."""
    _only(dict(names), Names)
    needs_activation = bool(tenant and tenant.require_activation)
    user = user_create(email=email, username=username, password=password, is_active=not needs_activation, **names)
    if needs_activation:
        emails.send_after_commit(emails.build(emails.site_for(tenant, links), "activation", user))
    return user


def user_activate(*, tenant: Tenant | None, links: emails.LinkBase, user: User) -> User:
    user.is_active = True
    user.activated_at = timezone.now()
    user.save(update_fields=["is_active", "activated_at"])
    emails.send_after_commit(emails.build(emails.site_for(tenant, links), "confirmation", user))
    return user


def user_resend_activation(*, tenant: Tenant | None, links: emails.LinkBase, email: str) -> None:
    """Silent whatever the email: only a pending, never-activated account gets mail."""
    if not (tenant and tenant.require_activation):
        return
    site = emails.site_for(tenant, links)
    # Known or not, the request does the same: the worker looks the account up.
    emails.send_to_account_after_commit(site, "activation", address=email)


# --- passwords ------------------------------------------------------------------------------


def user_set_password(*, tenant: Tenant | None, links: emails.LinkBase, user: User, new_password: str) -> None:
    """Change the password; every token the user holds dies with the old one."""
    user.set_password(new_password)
    user.save()  # bumps token_epoch (User.save)
    emails.send_after_commit(emails.build(emails.site_for(tenant, links), "password_changed", user))


def user_send_password_reset(*, tenant: Tenant | None, links: emails.LinkBase, email: str) -> None:
    """Silent whatever the email: only an active account with a password gets mail."""
    site = emails.site_for(tenant, links)
    # Known or not, the request does the same: the worker looks the account up.
    emails.send_to_account_after_commit(site, "password_reset", address=email)


def user_reset_password(*, tenant: Tenant | None, links: emails.LinkBase, user: User, new_password: str) -> None:
    """Finish a reset. Never touches is_active: a reset cannot revive an account."""
    user.set_password(new_password)
    user.last_login = timezone.now()  # also spends the reset token
    user.save()
    emails.send_after_commit(emails.build(emails.site_for(tenant, links), "password_changed", user))


# --- email ------------------------------------------------------------------------------------


def user_change_email(*, tenant: Tenant | None, links: emails.LinkBase, user: User, new_email: str) -> None:
    """Set the email (``set_email`` with the password, or an emailed reset
    link); the old address is told."""
    new_email = User.objects.normalize_email(new_email)
    taken = ApplicationError("A user with that email already exists.", field="new_email")
    if User.objects.email_taken(new_email, exclude_pk=user.pk):
        raise taken
    old_email = user.email
    user.email = new_email
    with duplicate_raises(taken):
        user.save(update_fields=["email"])
    site = emails.site_for(tenant, links)
    emails.send_after_commit(emails.build(site, "email_changed", user, to=old_email, new_email=new_email))


def user_send_email_reset(*, tenant: Tenant | None, links: emails.LinkBase, caller: User, email: str) -> None:
    """Silent whatever the email. A link goes out only when the address is the
    caller's own: one user cannot start an email change for another."""
    site = emails.site_for(tenant, links)
    # Known or not, the request does the same: the worker looks the account up.
    emails.send_to_account_after_commit(site, "email_reset", address=email, caller_id=caller.pk)


# --- revocation and deletion ----------------------------------------------------------------


def user_logout_everywhere(*, user: User) -> None:
    """Every access and refresh token issued so far stops working at once."""
    with transaction.atomic():
        user.revoke_tokens()
        token_families.end_all(user)
        outstanding = OutstandingToken.objects.filter(user=user, blacklistedtoken__isnull=True)
        BlacklistedToken.objects.bulk_create(
            [BlacklistedToken(token=token) for token in outstanding], ignore_conflicts=True
        )


def user_update(*, user: User, **fields: Any) -> User:
    """Change a user's fields (names, is_active, roles). One transaction, so
    the role rules' lock on the superusers holds until the change commits."""
    if not fields:
        return user
    with transaction.atomic():
        for name, value in fields.items():
            setattr(user, name, value)
        user.save(update_fields=list(fields))  # not what a concurrent change wrote meanwhile
    return user


def user_delete(*, user: User) -> None:
    with transaction.atomic():
        user.delete()


# --- profile and customer ------------------------------------------------------------------


def profile_create(*, user: User, **fields: Any) -> Profile:
    with duplicate_raises(Conflict("You already have a profile; change it at /api/profiles/me/.", field="user")):
        return Profile.objects.create(user=user, **fields)


def profile_update(*, user: User, **fields: Any) -> Profile:
    profile, _ = Profile.objects.get_or_create(user=user)
    for name, value in fields.items():
        setattr(profile, name, value)
    profile.save()
    return profile


def customer_for(*, user: User) -> Customer:
    customer, _ = Customer.objects.get_or_create(user=user)
    return customer


def _already_a_customer() -> Conflict:
    return Conflict("That user already is a customer.", field="user")


def customer_create(*, user: User, **fields: Any) -> Customer:
    with duplicate_raises(_already_a_customer()):
        return Customer.objects.create(user=user, **fields)


def customer_update(*, customer: Customer, **fields: Any) -> Customer:
    for name, value in fields.items():
        setattr(customer, name, value)
    with duplicate_raises(_already_a_customer()):  # moved onto a user who already is one
        customer.save()
    return customer


# --- groups and model permissions ---------------------------------------------------------


def _group_name_taken(name: str | None) -> Conflict:
    return Conflict(f"A group named '{name}' already exists.", field="name")


def group_create(*, name: str, permissions: Iterable[Permission] = (), users: Iterable[User] = ()) -> Group:
    with duplicate_raises(_group_name_taken(name)):
        group = Group.objects.create(name=name)
        group.permissions.add(*permissions)
        group.user_set.add(*users)
    return group


def group_update(
    *,
    group: Group,
    name: str | None = None,
    permissions: Iterable[Permission] | None = None,
    users: Iterable[User] | None = None,
) -> Group:
    """Apply only the differences, so the audit log says what changed."""
    with duplicate_raises(_group_name_taken(name)):
        if name is not None and name != group.name:
            group.name = name
            group.save(update_fields=["name"])
        if permissions is not None:
            _set_difference(group.permissions, set(permissions))
        if users is not None:
            _set_difference(group.user_set, set(users))
    return group


def group_delete(*, group: Group) -> None:
    with transaction.atomic():  # the role rules may refuse it (accounts.guards)
        group.delete()


def user_permissions_add(*, user: User, permissions: Iterable[Permission]) -> None:
    """All or nothing: the role rules (accounts.guards) may refuse the add."""
    with transaction.atomic():
        user.user_permissions.add(*permissions)


def user_permissions_remove(*, user: User, permissions: Iterable[Permission]) -> None:
    with transaction.atomic():
        user.user_permissions.remove(*permissions)


def _set_difference(manager: Any, wanted: set[Any]) -> None:
    current = set(manager.all())
    if stale := current - wanted:
        manager.remove(*stale)
    if missing := wanted - current:
        manager.add(*missing)
