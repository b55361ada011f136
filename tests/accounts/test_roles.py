"""Tenant roles that cannot escalate (accounts.roles, enforced by accounts.guards).

A staff user who is not a superuser must not be able to give itself or anyone
permissions it does not hold, touch a superuser, or make anyone staff or
superuser, whichever path it takes: the API, the Django admin, or a service
run on its behalf. A tenant always keeps an active superuser. Every change of
a user's roles is audited with its actor.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context
from guardian.shortcuts import assign_perm

from accounts import services
from accounts.audit.recording import acting_as
from accounts.models import AuditEntry, User
from accounts.roles import RoleRefused
from catalog.models import Product
from tests.helpers import (
    ACME,
    PASSWORD,
    admin_client,
    admin_id,
    admin_site_login,
    api_client,
    assert_error,
    csrf_token,
    make_product,
    make_user,
)

pytestmark = pytest.mark.django_db

USERS = "/api/auth/users/"
GROUPS = "/api/groups/"


def perms_url(pk: int) -> str:
    return f"/api/users/{pk}/permissions/"


def model_perms(*labels: str) -> list[Permission]:
    """Permissions by "app_label.codename", in the current schema."""
    found = []
    for label in labels:
        app_label, codename = label.split(".")
        found.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return found


def staff_user(*labels: str, prefix: str = "staff") -> User:
    """A tenant admin (staff, not superuser) holding the given model permissions."""
    user = make_user(prefix=prefix, is_staff=True)
    with schema_context(ACME.schema):
        user.user_permissions.add(*model_perms(*labels))
    return user


def flags(pk: int) -> tuple[bool, bool, bool]:
    with schema_context(ACME.schema):
        user = User.objects.get(pk=pk)
        return user.is_staff, user.is_superuser, user.is_active


def held_labels(pk: int) -> set[str]:
    with schema_context(ACME.schema):
        return User.objects.get(pk=pk).get_all_permissions()


def role_entries(subject: int) -> list[tuple[str, str]]:
    with schema_context(ACME.schema):
        rows = AuditEntry.objects.filter(subject_type="user", subject_id=subject, action__startswith="user.")
        return [(row.action, row.actor_repr) for row in rows.exclude(action__contains="perm").order_by("id")]


# --- model permissions: nobody grants what they do not hold ------------------------------------------------


def test_staff_cannot_grant_itself_a_permission_it_lacks() -> None:
    staff = staff_user()
    client = api_client(user=staff)
    response = client.post(perms_url(staff.pk), {"permissions": ["accounts.change_user"]}, format="json")
    assert_error(response, 403)
    assert "accounts.change_user" not in held_labels(staff.pk)
    with schema_context(ACME.schema):
        assert not AuditEntry.objects.filter(subject_id=staff.pk, action=AuditEntry.Action.USER_PERM_ADD).exists()


def test_staff_grants_to_others_only_what_it_holds() -> None:
    staff = staff_user("catalog.view_product")
    other = make_user(prefix="other")
    client = api_client(user=staff)
    assert client.post(perms_url(other.pk), {"permissions": ["catalog.view_product"]}, format="json").status_code == 200
    assert "catalog.view_product" in held_labels(other.pk)
    refused = client.post(
        perms_url(other.pk), {"permissions": ["catalog.view_product", "catalog.delete_product"]}, format="json"
    )
    body = assert_error(refused, 403)
    assert "catalog.delete_product" in body["detail"]
    assert "catalog.delete_product" not in held_labels(other.pk)  # all or nothing
    # The superuser grants anything.
    assert (
        admin_client().post(perms_url(other.pk), {"permissions": ["catalog.delete_product"]}, format="json").status_code
        == 200
    )


def test_staff_cannot_make_a_group_with_permissions_it_lacks_nor_join_one() -> None:
    staff = staff_user("catalog.view_product")
    other = make_user(prefix="other")
    client = api_client(user=staff)
    assert_error(client.post(GROUPS, {"name": "Escalate", "permissions": ["accounts.change_user"]}, format="json"), 403)
    with schema_context(ACME.schema):
        assert not Group.objects.filter(name="Escalate").exists()
        powerful = Group.objects.create(name="Powerful")
        powerful.permissions.add(*model_perms("accounts.change_user"))
    # Joining a group grants its permissions: to itself or to anyone else.
    for who in (staff, other):
        assert_error(client.patch(f"{GROUPS}{powerful.pk}/", {"users": [who.pk]}, format="json"), 403)
    with schema_context(ACME.schema):
        assert not powerful.user_set.exists()
    # What it holds, it may hand on through a group.
    made = client.post(
        GROUPS, {"name": "Viewers", "permissions": ["catalog.view_product"], "users": [other.pk]}, format="json"
    )
    assert made.status_code == 201, made.content


def test_a_service_run_on_behalf_of_staff_is_held_to_the_same_rule() -> None:
    staff = staff_user()
    with schema_context(ACME.schema), acting_as(staff):
        with pytest.raises(RoleRefused):
            services.user_permissions_add(user=staff, permissions=model_perms("accounts.change_user"))
        with pytest.raises(RoleRefused):
            services.group_create(name="Sneaky", permissions=model_perms("auth.change_group"))
    assert "accounts.change_user" not in held_labels(staff.pk)


def test_object_grants_through_guardian_follow_the_rule_too() -> None:
    staff = staff_user()
    product = make_product(owner=make_user())
    with schema_context(ACME.schema), acting_as(staff):
        with pytest.raises(RoleRefused):
            assign_perm("can_publish_product", staff, product)
        assert not staff.has_perm("catalog.can_publish_product", Product.objects.get(pk=product.pk))


# --- superusers are changed by superusers only -----------------------------------------------------------------


def test_staff_cannot_deactivate_or_delete_a_superuser() -> None:
    staff = staff_user("accounts.change_user", "accounts.delete_user")
    root = admin_id()
    client = api_client(user=staff)
    assert_error(client.patch(f"{USERS}{root}/", {"is_active": False}, format="json"), 403)
    assert_error(client.patch(f"{USERS}{root}/", {"first_name": "Pwned"}, format="json"), 403)
    deleted = client.generic(
        "DELETE", f"{USERS}{root}/", json.dumps({"current_password": PASSWORD}), "application/json"
    )
    assert_error(deleted, 403)
    assert flags(root) == (True, True, True)
    # Its permissions are a superuser's too: even one the staff user holds.
    assert_error(client.post(perms_url(root), {"permissions": ["accounts.change_user"]}, format="json"), 403)


def test_staff_cannot_make_anyone_staff_or_superuser_but_a_superuser_can() -> None:
    staff = staff_user()
    plain = make_user(prefix="plain")
    client = api_client(user=staff)
    answered = client.patch(f"{USERS}{plain.pk}/", {"is_staff": True, "is_superuser": True}, format="json")
    assert answered.status_code == 200, answered.content  # read-only for staff: ignored
    assert flags(plain.pk) == (False, False, True)
    promoted = admin_client().patch(f"{USERS}{plain.pk}/", {"is_staff": True}, format="json")
    assert promoted.status_code == 200, promoted.content
    assert promoted.json()["is_staff"] is True
    assert flags(plain.pk) == (True, False, True)
    assert role_entries(plain.pk) == [(AuditEntry.Action.STAFF_ON, ACME.admin_email)]


def test_a_service_cannot_promote_on_behalf_of_staff() -> None:
    staff = staff_user("accounts.change_user")
    plain = make_user(prefix="plain")
    with schema_context(ACME.schema), acting_as(staff), pytest.raises(RoleRefused):
        services.user_update(user=User.objects.get(pk=plain.pk), is_superuser=True)
    assert flags(plain.pk) == (False, False, True)
    with schema_context(ACME.schema), acting_as(staff), pytest.raises(RoleRefused):
        services.user_create(email="new-root@acme.test", username="newroot", password=PASSWORD, is_superuser=True)


# --- a tenant keeps an active superuser ----------------------------------------------------------------------


def test_the_last_superuser_cannot_be_demoted_deactivated_or_deleted() -> None:
    root = admin_id()
    with schema_context(ACME.schema):
        last = User.objects.get(pk=root)
        for change in ({"is_superuser": False}, {"is_active": False}):
            with pytest.raises(RoleRefused):
                services.user_update(user=User.objects.get(pk=root), **change)
        with pytest.raises(RoleRefused):
            services.user_delete(user=last)
    # Through the API, the last superuser deleting itself:
    me = admin_client().generic("DELETE", f"{USERS}me/", json.dumps({"current_password": PASSWORD}), "application/json")
    assert_error(me, 403)
    assert flags(root) == (True, True, True)


def test_with_two_superusers_one_may_demote_the_other_then_not_itself() -> None:
    second = make_user(prefix="second", is_staff=True, is_superuser=True)
    root = admin_id()
    provisioned = role_entries(root)  # staff and superuser since provisioning, by the system
    assert provisioned == [(AuditEntry.Action.STAFF_ON, ""), (AuditEntry.Action.SUPERUSER_ON, "")]
    demoted = api_client(user=second).patch(f"{USERS}{root}/", {"is_superuser": False}, format="json")
    assert demoted.status_code == 200, demoted.content
    assert flags(root) == (True, False, True)
    assert role_entries(root) == [*provisioned, (AuditEntry.Action.SUPERUSER_OFF, second.email)]
    # The demoted admin can no longer touch the remaining superuser.
    assert_error(admin_client().patch(f"{USERS}{second.pk}/", {"is_active": False}, format="json"), 403)
    with schema_context(ACME.schema), pytest.raises(RoleRefused):
        services.user_update(user=User.objects.get(pk=second.pk), is_active=False)


# --- the Django admin -----------------------------------------------------------------------------------------


def _user_form(browser: Any, user: User, **fields: Any) -> dict[str, Any]:
    """The Django admin's change form of ``user`` as a browser would post it:
    its identity, a join date, a fresh CSRF token, and ``fields``."""
    return {
        "csrfmiddlewaretoken": csrf_token(browser.get(f"/admin/accounts/user/{user.pk}/change/")),
        "email": user.email,
        "username": user.username,
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        **fields,
    }


def _change_page(browser: Any, pk: int) -> str:
    response = browser.get(f"/admin/accounts/user/{pk}/change/")
    assert response.status_code == 200
    return str(response.content.decode())


def test_admin_staff_cannot_tick_is_superuser_nor_grant_what_it_lacks() -> None:
    staff = staff_user("accounts.view_user", "accounts.change_user", "catalog.view_product")
    plain = make_user(prefix="plain")
    browser = admin_site_login(ACME, staff.email)
    page = _change_page(browser, plain.pk)
    assert 'name="is_superuser"' not in page
    assert 'name="is_staff"' not in page
    with schema_context(ACME.schema):
        change_user = model_perms("accounts.change_user")[0]
        view_product = model_perms("catalog.view_product")[0]
        delete_product = Permission.objects.get(content_type__app_label="catalog", codename="delete_product")
    form = _user_form(
        browser,
        plain,
        is_active="on",
        is_superuser="on",
        is_staff="on",
        user_permissions=[str(view_product.pk), str(delete_product.pk), str(change_user.pk)],
    )
    browser.post(f"/admin/accounts/user/{plain.pk}/change/", form)
    assert flags(plain.pk) == (False, False, True)
    assert "catalog.delete_product" not in held_labels(plain.pk)
    # A superuser's page is read-only for it, and posting to it is refused.
    root = admin_id()
    assert 'name="first_name"' not in _change_page(browser, root)
    form = {"csrfmiddlewaretoken": form["csrfmiddlewaretoken"], "email": ACME.admin_email, "username": "x"}
    assert browser.post(f"/admin/accounts/user/{root}/change/", form).status_code == 403
    assert flags(root) == (True, True, True)


def test_admin_changes_of_roles_are_audited_with_their_actor() -> None:
    plain = make_user(prefix="plain")
    browser = admin_site_login(ACME, ACME.admin_email)
    form = _user_form(browser, plain, is_staff="on")
    assert browser.post(f"/admin/accounts/user/{plain.pk}/change/", form).status_code == 302
    assert flags(plain.pk) == (True, False, False)
    assert role_entries(plain.pk) == [
        (AuditEntry.Action.STAFF_ON, ACME.admin_email),
        (AuditEntry.Action.DEACTIVATE, ACME.admin_email),
    ]


def test_shell_changes_of_roles_are_audited_as_the_system() -> None:
    plain = make_user(prefix="plain")
    with schema_context(ACME.schema):
        services.user_update(user=User.objects.get(pk=plain.pk), is_active=False)
    assert role_entries(plain.pk) == [(AuditEntry.Action.DEACTIVATE, "")]


# --- found in review: taking over more than one holds --------------------------------------------------------


def test_staff_cannot_take_over_a_user_who_holds_more_than_it() -> None:
    staff = staff_user("accounts.view_user", "accounts.change_user")
    richer = make_user(prefix="richer")
    with schema_context(ACME.schema):
        richer.user_permissions.add(*model_perms("catalog.can_publish_product"))
    lesser = make_user(prefix="lesser")
    client = api_client(user=staff)
    assert_error(client.patch(f"{USERS}{richer.pk}/", {"is_active": False}, format="json"), 403)
    assert client.patch(f"{USERS}{lesser.pk}/", {"is_active": False}, format="json").status_code == 200
    # Through the admin: setting its password is refused, for the lesser user it works.
    browser = admin_site_login(ACME, staff.email)
    for target, allowed in ((richer, False), (lesser, True)):
        url = f"/admin/accounts/user/{target.pk}/password/"
        form = {
            "csrfmiddlewaretoken": csrf_token(browser.get(url)),
            "password1": "Take-0ver-Pass!",
            "password2": "Take-0ver-Pass!",
        }
        form["usable_password"] = "true"
        status = browser.post(url, form).status_code
        assert (status == 302) is allowed, (target.email, status)
    with schema_context(ACME.schema):
        assert not User.objects.get(pk=richer.pk).check_password("Take-0ver-Pass!")


def test_staff_cannot_make_itself_the_owner_of_a_product() -> None:
    staff = staff_user("catalog.view_product", "catalog.change_product")
    product = make_product(owner=make_user(prefix="owner"))
    with schema_context(ACME.schema), acting_as(staff):
        row = Product.objects.get(pk=product.pk)
        row.owner = staff
        with pytest.raises(RoleRefused):
            row.save()
    browser = admin_site_login(ACME, staff.email)
    url = f"/admin/catalog/product/{product.pk}/change/"
    form = {
        "csrfmiddlewaretoken": csrf_token(browser.get(url)),
        "name": product.name,
        "price": "9.99",
        "owner": str(staff.pk),
    }
    assert browser.post(url, form).status_code == 403
    with schema_context(ACME.schema):
        assert Product.objects.get(pk=product.pk).owner_id == product.owner_id


def test_what_publication_shows_cannot_be_handed_on() -> None:
    """A view that comes from publication is not held: granting it would
    outlive the unpublishing."""
    staff = staff_user()
    published = make_product(owner=make_user(prefix="owner"), published=True)
    grant = {"user": staff.pk, "permissions": ["view_product"]}
    assert_error(api_client(user=staff).post(f"/api/products/{published.pk}/permissions/", grant, format="json"), 403)


def test_staff_cannot_delete_a_group_a_superuser_is_in() -> None:
    staff = staff_user("auth.delete_group")
    with schema_context(ACME.schema):
        group = Group.objects.create(name="With root")
        group.user_set.add(User.objects.get(pk=admin_id()))
    assert_error(api_client(user=staff).delete(f"{GROUPS}{group.pk}/"), 403)
    with schema_context(ACME.schema):
        assert Group.objects.filter(pk=group.pk).exists()


def test_an_admin_edit_by_staff_keeps_memberships_it_could_not_grant() -> None:
    staff = staff_user("accounts.view_user", "accounts.change_user")
    member = make_user(prefix="member")
    with schema_context(ACME.schema):
        empty = Group.objects.create(name="Plain members")
        empty.user_set.add(member)
    browser = admin_site_login(ACME, staff.email)
    url = f"/admin/accounts/user/{member.pk}/change/"
    page = browser.get(url).content.decode()
    assert f'value="{empty.pk}" selected' in page
    form = _user_form(browser, member, first_name="Renamed", is_active="on", groups=[str(empty.pk)])
    assert browser.post(url, form).status_code == 302
    with schema_context(ACME.schema):
        assert list(User.objects.get(pk=member.pk).groups.values_list("pk", flat=True)) == [empty.pk]


def test_a_staff_change_of_many_memberships_costs_the_same_queries_as_of_few() -> None:
    """The takeover rule reads every changed user's permissions in two queries."""
    staff = staff_user("catalog.view_product")
    client = api_client(user=staff)
    counts = {}
    for n in (3, 40):
        members = [make_user(prefix=f"m{n}-").pk for _ in range(n)]
        body = {"name": f"Viewers {n}", "permissions": ["catalog.view_product"], "users": members}
        with CaptureQueriesContext(db_connection) as queries:
            assert client.post(GROUPS, body, format="json").status_code == 201
        counts[n] = len(queries.captured_queries)
    assert counts[3] == counts[40], counts
