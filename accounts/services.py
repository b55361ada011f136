"""Writes on accounts: registration, activation, passwords, emails, revocation, groups."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import Group, Permission
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts import emails
from accounts.models import Customer, Profile, User
from accounts.selectors import email_taken
from config.errors import ApplicationError, Conflict

# --- registration and activation ---------------------------------------------------------


def user_register(
    *,
    request: Any,
    email: str,
    username: str,
    password: str,
    first_name: str = "",
    last_name: str = "",
) -> User:
    """Create a user of the current tenant. Active at once unless the tenant
    requires activation, in which case an activation email goes out."""
    tenant = getattr(request, "tenant", None)
    needs_activation = bool(tenant and tenant.require_activation)
    email = User.objects.normalize_email(email)
    try:
        with transaction.atomic():
            user = User.objects.create_user(
                email=email,
                username=username,
                password=password,
                first_name=first_name,
                last_name=last_name,
                is_active=not needs_activation,
            )
    except IntegrityError:
        # Lost a race with a registration of the same email or username.
        field = "email" if email_taken(email) else "username"
        raise Conflict(f"A user with that {field} already exists.", field=field) from None
    if needs_activation:
        emails.send_after_commit(emails.build(request, "activation", user))
    return user


def user_activate(*, request: Any, user: User) -> User:
    user.is_active = True
    user.activated_at = timezone.now()
    user.save(update_fields=["is_active", "activated_at"])
    emails.send_after_commit(emails.build(request, "confirmation", user))
    return user


def user_resend_activation(*, request: Any, email: str) -> None:
    """Silent whatever the email: only a pending, never-activated account gets mail."""
    if not (getattr(request, "tenant", None) and request.tenant.require_activation):
        return
    base = emails.links_base(request)  # known or not: the same queries
    user = User.objects.filter(email__iexact=email, is_active=False, activated_at__isnull=True).first()
    if user is not None:
        emails.send_after_commit(emails.build(request, "activation", user, base=base))


# --- passwords ------------------------------------------------------------------------------


def user_set_password(*, request: Any, user: User, new_password: str) -> None:
    """Change the password; every token the user holds dies with the old one."""
    user.set_password(new_password)
    user.save()  # bumps token_epoch (User.save)
    emails.send_after_commit(emails.build(request, "password_changed", user))


def user_send_password_reset(*, request: Any, email: str) -> None:
    """Silent whatever the email: only an active account with a password gets mail."""
    base = emails.links_base(request)  # known or not: the same queries
    user = User.objects.filter(email__iexact=email, is_active=True).first()
    if user is not None and user.has_usable_password():
        emails.send_after_commit(emails.build(request, "password_reset", user, base=base))


def user_reset_password(*, request: Any, user: User, new_password: str) -> None:
    """Finish a reset. Never touches is_active: a reset cannot revive an account."""
    user.set_password(new_password)
    user.last_login = timezone.now()  # also spends the reset token
    user.save()
    emails.send_after_commit(emails.build(request, "password_changed", user))


# --- email ------------------------------------------------------------------------------------


def _change_email(*, request: Any, user: User, new_email: str) -> None:
    new_email = User.objects.normalize_email(new_email)
    if email_taken(new_email, exclude_pk=user.pk):
        raise ApplicationError("A user with that email already exists.", field="new_email")
    old_email = user.email
    user.email = new_email
    try:
        with transaction.atomic():
            user.save(update_fields=["email"])
    except IntegrityError:
        raise ApplicationError("A user with that email already exists.", field="new_email") from None
    notice = emails.build(request, "email_changed", user, new_email=new_email)
    emails.send_after_commit(emails.Email(kind=notice.kind, to=old_email, context=notice.context))


def user_set_email(*, request: Any, user: User, new_email: str) -> None:
    _change_email(request=request, user=user, new_email=new_email)


def user_send_email_reset(*, request: Any, caller: User, email: str) -> None:
    """Silent whatever the email. A link goes out only when the address is the
    caller's own: one user cannot start an email change for another."""
    base = emails.links_base(request)  # known or not: the same queries
    user = User.objects.filter(email__iexact=email, is_active=True, pk=caller.pk).first()
    if user is not None:
        emails.send_after_commit(emails.build(request, "email_reset", user, base=base))


def user_reset_email(*, request: Any, user: User, new_email: str) -> None:
    _change_email(request=request, user=user, new_email=new_email)


# --- revocation and deletion ----------------------------------------------------------------


def user_logout_everywhere(*, user: User) -> None:
    """Every access and refresh token issued so far stops working at once."""
    with transaction.atomic():
        user.revoke_tokens()
        outstanding = OutstandingToken.objects.filter(user=user, blacklistedtoken__isnull=True)
        BlacklistedToken.objects.bulk_create(
            [BlacklistedToken(token=token) for token in outstanding], ignore_conflicts=True
        )


def user_delete(*, user: User) -> None:
    user.delete()


# --- profile and customer ------------------------------------------------------------------


def profile_create(*, user: User, **fields: Any) -> Profile:
    try:
        with transaction.atomic():
            return Profile.objects.create(user=user, **fields)
    except IntegrityError:
        raise Conflict("You already have a profile; change it at /api/profiles/me/.", field="user") from None


def profile_update(*, user: User, **fields: Any) -> Profile:
    profile, _ = Profile.objects.get_or_create(user=user)
    for name, value in fields.items():
        setattr(profile, name, value)
    profile.save()
    return profile


def customer_for(*, user: User) -> Customer:
    customer, _ = Customer.objects.get_or_create(user=user)
    return customer


def customer_create(*, user: User, **fields: Any) -> Customer:
    try:
        with transaction.atomic():
            return Customer.objects.create(user=user, **fields)
    except IntegrityError:
        raise Conflict("That user already is a customer.", field="user") from None


def customer_update(*, customer: Customer, **fields: Any) -> Customer:
    for name, value in fields.items():
        setattr(customer, name, value)
    try:
        with transaction.atomic():
            customer.save()
    except IntegrityError:
        # Moved onto a user who already is a customer (one per user).
        raise Conflict("That user already is a customer.", field="user") from None
    return customer


# --- groups and model permissions ---------------------------------------------------------


def group_create(*, name: str, permissions: Iterable[Permission] = (), users: Iterable[User] = ()) -> Group:
    try:
        with transaction.atomic():
            group = Group.objects.create(name=name)
            group.permissions.add(*permissions)
            group.user_set.add(*users)
    except IntegrityError:
        raise Conflict(f"A group named '{name}' already exists.", field="name") from None
    return group


def group_update(
    *,
    group: Group,
    name: str | None = None,
    permissions: Iterable[Permission] | None = None,
    users: Iterable[User] | None = None,
) -> Group:
    """Apply only the differences, so the audit log says what changed."""
    try:
        with transaction.atomic():
            if name is not None and name != group.name:
                group.name = name
                group.save(update_fields=["name"])
            if permissions is not None:
                _set_difference(group.permissions, set(permissions))
            if users is not None:
                _set_difference(group.user_set, set(users))
    except IntegrityError:
        raise Conflict(f"A group named '{name}' already exists.", field="name") from None
    return group


def group_delete(*, group: Group) -> None:
    group.delete()


def user_permissions_add(*, user: User, permissions: Iterable[Permission]) -> None:
    user.user_permissions.add(*permissions)


def user_permissions_remove(*, user: User, permissions: Iterable[Permission]) -> None:
    user.user_permissions.remove(*permissions)


def _set_difference(manager: Any, wanted: set[Any]) -> None:
    current = set(manager.all())
    if stale := current - wanted:
        manager.remove(*stale)
    if missing := wanted - current:
        manager.add(*missing)
