"""Writes on accounts: users, registration, activation, passwords, emails, invitations, revocation, groups.

Every function takes plain values (the tenant, a ``LinkBase`` for emailed
links, the users and data concerned), never a request, so management commands
and tasks call them as the API does."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypedDict

from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.db import IntegrityError, router, transaction
from django.db.models.deletion import Collector
from django.utils import timezone
from django_tenants.utils import tenant_context
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts import emails, invitation_grants, invitation_tokens, roles, selectors
from accounts.audit import entries
from accounts.audit.recording import acting_as, record, record_as_operator
from accounts.auth import token_families
from accounts.models import Customer, Invitation, Profile, User
from accounts.permissions import is_tenant_admin
from accounts.roles import RoleRefused
from core.errors import ApplicationError, Conflict, NotFound, duplicate_raises
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


# --- invitations ----------------------------------------------------------------------------
# A tenant admin invites an email address into groups (and object grants);
# the link's owner picks a username and password and arrives active in them.
# Nobody invites into what they may not grant (the groups API's rule: the
# groups' permissions and object grants, accounts.roles.check_may_join), checked against the inviter when
# inviting and again when the invitation is accepted, whose writes are made as
# the inviter (acting_as): the guards judge them by the inviter's rights and the
# audit log names the inviter. An address that already has an account is
# refused: an emailed link must not change an existing account's access (an
# admin adds it to groups through /api/groups/).


def _already_registered(field: str | None = "email") -> Conflict:
    return Conflict(
        "An account with this email already exists here: add it to the groups through /api/groups/ instead.",
        field=field,
        code="already_registered",
    )


def _already_invited(invitation: Invitation | None) -> Conflict:
    which = f" (id {invitation.pk}, {invitation.state})" if invitation is not None else ""
    return Conflict(
        f"An invitation to this email is already pending{which}: resend it or revoke it.",
        field="email",
        code="already_invited",
    )


def _closed(invitation: Invitation, doing: str) -> Conflict:
    return Conflict(
        f"This invitation is {invitation.state}: only a pending one can be {doing}.", code="invitation_closed"
    )


def _stale() -> Conflict:
    return Conflict(
        "This invitation can no longer be accepted: whoever sent it may no longer grant the access it offers. "
        "Ask for a new invitation.",
        code="invitation_stale",
    )


def _may_offer(inviter: User | None, groups: list[Group], object_grants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Refuse (RoleRefused, or an ApplicationError naming object_grants) what
    ``inviter`` may not give; the object grants, normalised."""
    if not is_tenant_admin(inviter):
        raise RoleRefused("Only tenant admins may invite.")
    roles.check_may_join(inviter, groups)  # the groups' permissions and object grants
    return invitation_grants.check(inviter, list(object_grants))


def _lifetime() -> timedelta:
    return timedelta(seconds=int(settings.ACCOUNT_INVITATION_TIMEOUT))


def _locked(invitation: Invitation) -> Invitation:
    """The invitation's row, locked until the transaction ends (in one)."""
    locked = Invitation.objects.select_for_update().filter(pk=invitation.pk).first()
    if locked is None:
        raise NotFound("No such invitation.")
    return locked


def _send_invitation(tenant: Tenant | None, links: emails.LinkBase, invitation: Invitation, token: str) -> None:
    """The link, on the tenant's primary domain; it leaves once the
    transaction commits."""
    site = emails.site_for(tenant, links)
    context = {
        "site_name": site.name,
        "home": f"{site.scheme}://{site.host}/",
        "url": emails.link_url(site, "invitation", token=token),
        "email": invitation.email,
        "inviter": invitation.invited_by_repr,
        "groups": selectors.invitation_group_names(invitation),
        "expires_at": invitation.expires_at,
    }
    emails.send_after_commit(emails.Email(kind="invitation", to=invitation.email, context=context))


def invitation_create(
    *,
    tenant: Tenant | None,
    links: emails.LinkBase,
    inviter: User,
    email: str,
    groups: Iterable[Group] = (),
    object_grants: Iterable[dict[str, Any]] = (),
) -> Invitation:
    """Invite ``email`` into ``groups`` with ``object_grants`` (see
    accounts.invitation_grants), and email the link. ``inviter`` must be a
    tenant admin who may grant all of it (403 otherwise); an address with an
    account (409 already_registered) or a pending invitation (409
    already_invited) is refused."""
    email = User.objects.normalize_email(email.strip())
    wanted = list(dict.fromkeys(groups))
    with acting_as(inviter), transaction.atomic():
        grants = _may_offer(inviter, wanted, list(object_grants))
        if User.objects.email_taken(email):
            raise _already_registered()
        pending = selectors.invitation_pending_for(email=email)
        if pending is not None:
            raise _already_invited(pending)
        token, token_hash = invitation_tokens.new_token()
        now = timezone.now()
        with duplicate_raises(_already_invited(None)):  # a concurrent invitation to the same address
            invitation = Invitation.objects.create(
                email=email,
                object_grants=grants,
                invited_by=inviter,
                invited_by_repr=inviter.email,
                token_hash=token_hash,
                created_at=now,
                expires_at=now + _lifetime(),
                sent_count=1,
                last_sent_at=now,
            )
        invitation.groups.set(wanted)
        record([entries.invitation_created(invitation, groups=wanted)])
        _send_invitation(tenant, links, invitation, token)
    return invitation


def invitation_resend(*, tenant: Tenant | None, links: emails.LinkBase, invitation: Invitation) -> Invitation:
    """A new link for a pending invitation (expired or not): the old link
    dies and the expiry starts again."""
    with transaction.atomic():
        invitation = _locked(invitation)
        if invitation.status != Invitation.Status.PENDING:
            raise _closed(invitation, "resent")
        if User.objects.email_taken(invitation.email):
            raise _already_registered(field=None)
        token, invitation.token_hash = invitation_tokens.new_token()
        now = timezone.now()
        invitation.expires_at = now + _lifetime()
        invitation.sent_count += 1
        invitation.last_sent_at = now
        invitation.save(update_fields=["token_hash", "expires_at", "sent_count", "last_sent_at"])
        record([entries.invitation_resent(invitation)])
        _send_invitation(tenant, links, invitation, token)
    return invitation


def invitation_revoke(*, invitation: Invitation) -> Invitation:
    """A pending invitation (expired or not) can no longer be accepted."""
    with transaction.atomic():
        invitation = _locked(invitation)
        if invitation.status != Invitation.Status.PENDING:
            raise _closed(invitation, "revoked")
        invitation.status = Invitation.Status.REVOKED
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["status", "revoked_at"])
        record([entries.invitation_revoked(invitation)])
    return invitation


def invitation_accept(
    *,
    tenant: Tenant | None,
    links: emails.LinkBase,
    token: str,
    username: str,
    password: str,
    first_name: str = "",
    last_name: str = "",
) -> User:
    """Make the invited account (active) from a validated username and
    password, in the invitation's groups and with its object grants, all or
    nothing. The invitation's row is locked first, so of two acceptances one
    fails (400 invalid_token); a 400 invitation_expired when it expired; 409
    already_registered if the address got an account meanwhile; 409
    invitation_stale if the inviter is gone, is no longer a tenant admin, or
    may no longer grant what it offers."""
    try:
        with transaction.atomic():
            invitation = selectors.invitation_for_token(token=token, for_update=True)
            if User.objects.email_taken(invitation.email):
                raise Conflict(
                    "An account with this email already exists here: log in with it, and ask whoever invited you "
                    "to add it to the groups.",
                    code="already_registered",
                )
            inviter = User.objects.filter(pk=invitation.invited_by_id).first() if invitation.invited_by_id else None
            groups = list(invitation.groups.all())
            with acting_as(inviter):
                try:
                    grants = _may_offer(inviter, groups, invitation.object_grants)
                except ApplicationError:  # RoleRefused, or an object that is gone
                    raise _stale() from None
                user = user_create(
                    email=invitation.email,
                    username=username,
                    password=password,
                    first_name=first_name,
                    last_name=last_name,
                )
                user.groups.add(*groups)  # audited (group.member_add) and guarded as the inviter
                try:
                    invitation_grants.apply(inviter, user, grants)
                except ApplicationError:
                    raise _stale() from None
                invitation.status = Invitation.Status.ACCEPTED
                invitation.accepted_at = timezone.now()
                invitation.accepted_user = user
                invitation.save(update_fields=["status", "accepted_at", "accepted_user"])
                record([entries.invitation_accepted(invitation, user)])
            emails.send_after_commit(emails.build(emails.site_for(tenant, links), "confirmation", user))
    except RoleRefused:  # a guard refused a write: the inviter's rights changed meanwhile
        raise _stale() from None
    return user


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


# --- platform operators (public schema) -------------------------------------------------------
# Operators are the staff users of the public schema. The role rules
# (accounts.roles, enforced by accounts.guards on every save and delete) hold
# there as in a tenant, judged against the operator making the change: only a
# superuser makes or unmakes a superuser, and the last active superuser stays.


class OperatorFields(TypedDict, total=False):
    """What else a new operator may be given."""

    first_name: str
    last_name: str
    is_superuser: bool


class OperatorChanges(TypedDict, total=False):
    first_name: str
    last_name: str
    is_active: bool
    is_superuser: bool


def operator_create(*, email: str, username: str, password: str, **fields: Unpack[OperatorFields]) -> User:
    """A staff user of the public schema (an operator), active, with the
    password its creator chose; a taken email or username is a Conflict."""
    _only(dict(fields), OperatorFields)
    return user_create(email=email, username=username, password=password, is_staff=True, **fields)


def operator_update(*, operator: User, **changes: Unpack[OperatorChanges]) -> User:
    """Names, activity and the superuser flag of an operator (a deactivation
    revokes its tokens, User.save). It stays staff: demoting a superuser
    leaves an operator."""
    _only(dict(changes), OperatorChanges)
    return user_update(user=operator, **changes)


class _PublicSchemaCollector(Collector):
    """Django's delete collector, for a row of the public schema: the models
    of tenant-only apps (catalog's products and grants) have no table there,
    so nothing there refers to the row, and asking would be an error."""

    def related_objects(self, related_model: Any, related_fields: Any, objs: Any) -> Any:
        found = super().related_objects(related_model, related_fields, objs)
        return found if related_model._meta.app_config.name in settings.SHARED_APPS else found.none()


def operator_delete(*, operator: User) -> None:
    """Delete the operator as ``Model.delete`` would (the guards and the audit
    run on its signals), with the collector that knows the public schema."""
    with transaction.atomic():
        collector = _PublicSchemaCollector(using=router.db_for_write(User, instance=operator), origin=operator)
        collector.collect([operator])
        collector.delete()


# --- support actions of the platform in a tenant --------------------------------------------


def support_password_reset(*, tenant: Tenant, links: emails.LinkBase, operator: User, email: str) -> User:
    """Send the tenant's active admin with ``email`` a password reset link on
    the tenant's primary domain (also when it has no usable password: that
    may be why support is asked); the operator never sees the link. Audited in the tenant's log (the operator
    named in actor_repr) and in the public one (the operator as actor), in the
    transaction that queues the email. A suspended tenant is a Conflict: its
    hosts answer 403, so the link could not be used."""
    if not tenant.is_active:
        raise Conflict(f"Tenant '{tenant.slug}' is suspended: reactivate it first.")
    with transaction.atomic():
        with tenant_context(tenant):
            user = selectors.tenant_admin_by_email(email=email)
            emails.send_after_commit(emails.build(emails.site_for(tenant, links), "password_reset", user))
            record_as_operator([entries.support_password_reset(user)], operator=operator)
        with acting_as(operator):  # back in the public schema, where the operator is a user
            record([entries.tenant_support_password_reset(tenant, user)])
    return user
