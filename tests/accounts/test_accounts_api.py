"""The accounts API beyond djoser: profiles, customers, groups, permissions, audit, throttles.

Real requests through the tenant middleware, DRF and the real JWT endpoints;
users are created in the tenant's schema with the ORM, everything else goes
through the API. Each access rule is checked for anonymous, plain user, owner
and tenant admin, and each 4xx for its JSON error shape.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from accounts.models import Customer, Profile, User
from tests.helpers import (
    ACME,
    AUDIT,
    GLOBEX,
    PASSWORD,
    DemoTenant,
    admin_client,
    admin_id,
    api_client,
    assert_error,
    assert_throttled,
    jwt_login,
    make_user,
)

pytestmark = pytest.mark.django_db

PROFILES = "/api/profiles/"
PROFILE_ME = "/api/profiles/me/"
CUSTOMERS = "/api/customers/"
CUSTOMER_ME = "/api/customers/me/"
GROUPS = "/api/groups/"
PERMISSIONS = "/api/permissions/"
LOGIN = "/api/auth/jwt/create/"
REGISTER = "/api/auth/users/"
RESET_PASSWORD = "/api/auth/users/reset_password/"
RESEND_ACTIVATION = "/api/auth/users/resend_activation/"
RESET_EMAIL = "/api/auth/users/reset_email/"

_seq = itertools.count(1)


# --- helpers -------------------------------------------------------------------------------------------------


def user_permissions_url(pk: Any) -> str:
    return f"/api/users/{pk}/permissions/"


def caller(path: str, tenant: DemoTenant = ACME) -> APIClient:
    """A client allowed to call ``path``: anyone, except for reset_email, which
    the seed gives to authenticated users only (here a fresh plain user)."""
    return api_client(tenant, user=make_user(tenant, prefix="caller")) if path == RESET_EMAIL else api_client(tenant)


def raw(client: APIClient, method: str, path: str, body: str) -> Any:
    return getattr(client, method)(path, data=body, content_type="application/json")


def results(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, (response.status_code, response.content)
    body = response.json()
    assert set(body) >= {"count", "next", "previous", "results"}, body
    return list(body["results"])


# --- profiles ------------------------------------------------------------------------------------------------


def test_profile_anonymous_is_401_everywhere() -> None:
    client = api_client()
    assert_error(client.get(PROFILES), 401)
    assert_error(client.post(PROFILES, {"bio": "x"}, format="json"), 401)
    for method in ("get", "put", "patch"):
        assert_error(getattr(client, method)(PROFILE_ME, {"bio": "x"}, format="json"), 401)
    with schema_context(ACME.slug):
        assert not Profile.objects.exists()


def test_profile_create_takes_the_user_from_the_request_and_ignores_a_user_field() -> None:
    alice, bob = make_user(), make_user()
    response = api_client(ACME, user=alice).post(
        PROFILES, {"dob": "1990-05-17", "bio": "hello", "user": bob.pk}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json() == {"dob": "1990-05-17", "bio": "hello"}
    with schema_context(ACME.slug):
        profile = Profile.objects.get()
        assert profile.user_id == alice.pk
        assert str(profile.dob) == "1990-05-17"
        assert not Profile.objects.filter(user=bob).exists()


def test_profile_second_create_is_409_and_changes_nothing() -> None:
    alice = make_user()
    client = api_client(ACME, user=alice)
    assert client.post(PROFILES, {"bio": "first"}, format="json").status_code == 201
    body = assert_error(client.post(PROFILES, {"bio": "second"}, format="json"), 409)
    assert body["code"] == "conflict"
    with schema_context(ACME.slug):
        assert list(Profile.objects.filter(user=alice).values_list("bio", flat=True)) == ["first"]


def test_profile_list_shows_only_the_callers_own_profile() -> None:
    alice, bob = make_user(), make_user()
    with schema_context(ACME.slug):
        Profile.objects.create(user=bob, bio="bob's secret")
    alice_client = api_client(ACME, user=alice)
    assert results(alice_client.get(PROFILES)) == []  # bob's exists, alice has none
    assert alice_client.post(PROFILES, {"bio": "alice"}, format="json").status_code == 201
    assert results(alice_client.get(PROFILES)) == [{"dob": None, "bio": "alice"}]
    assert results(api_client(ACME, user=bob).get(PROFILES)) == [{"dob": None, "bio": "bob's secret"}]
    # The admin is no exception: the list is "my profile", not "all profiles".
    assert results(admin_client().get(PROFILES)) == []


def test_profile_me_get_put_patch() -> None:
    alice, bob = make_user(), make_user()
    with schema_context(ACME.slug):
        Profile.objects.create(user=bob, bio="bob")
    client = api_client(ACME, user=alice)

    response = client.get(PROFILE_ME)
    assert response.status_code == 200, response.content
    assert response.json() == {"dob": None, "bio": ""}

    response = client.put(PROFILE_ME, {"dob": "2000-01-02", "bio": "put", "user": bob.pk}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"dob": "2000-01-02", "bio": "put"}

    response = client.patch(PROFILE_ME, {"bio": "patched"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"dob": "2000-01-02", "bio": "patched"}  # PATCH keeps dob

    assert client.get(PROFILE_ME).json() == {"dob": "2000-01-02", "bio": "patched"}
    with schema_context(ACME.slug):
        assert Profile.objects.get(user=alice).bio == "patched"
        assert Profile.objects.get(user=bob).bio == "bob"
        assert Profile.objects.filter(user=alice).count() == 1

    # A second POST after /me created the profile is a conflict too.
    assert_error(client.post(PROFILES, {"bio": "again"}, format="json"), 409)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"dob": "17/05/1990"}, "dob"),
        ({"dob": "1990-02-30"}, "dob"),
        ({"dob": 19900517}, "dob"),
        ({"dob": ["1990-05-17"]}, "dob"),
        ({"bio": "x" * 5001}, "bio"),
        ({"bio": {"text": "x"}}, "bio"),
        ({"bio": ["x"]}, "bio"),
        ({"bio": None}, "bio"),
        ({"bio": "nul\x00byte"}, "bio"),
    ],
)
def test_profile_bad_fields_are_400_naming_the_field(body: dict[str, Any], field: str) -> None:
    client = api_client(ACME, user=make_user())
    assert_error(client.post(PROFILES, body, format="json"), 400, field=field)
    for method in ("put", "patch"):
        assert_error(getattr(client, method)(PROFILE_ME, body, format="json"), 400, field=field)
    with schema_context(ACME.slug):
        assert not Profile.objects.exists()


def test_profile_bio_at_the_limit_is_accepted() -> None:
    client = api_client(ACME, user=make_user())
    assert client.post(PROFILES, {"bio": "x" * 5000}, format="json").status_code == 201


@pytest.mark.parametrize(("method", "path"), [("post", PROFILES), ("put", PROFILE_ME), ("patch", PROFILE_ME)])
@pytest.mark.parametrize("body", ['{"bio": ', "not json", "[1, 2]", '"a string"', "null"])
def test_profile_malformed_bodies_are_400(method: str, path: str, body: str) -> None:
    client = api_client(ACME, user=make_user())
    assert_error(raw(client, method, path, body), 400)


# --- customers -----------------------------------------------------------------------------------------------


def test_customer_crud_for_admins() -> None:
    alice = make_user()
    admin = admin_client()

    response = admin.post(
        CUSTOMERS,
        {"user": alice.pk, "phone": "+1 555 0100", "membership": "gold", "birth_date": "1980-01-01"},
        format="json",
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["user"] == alice.pk
    assert created["membership"] == "gold"
    assert created["phone"] == "+1 555 0100"
    assert created["birth_date"] == "1980-01-01"
    cid = created["id"]

    assert [c["id"] for c in results(admin.get(CUSTOMERS))] == [cid]
    assert admin.get(f"{CUSTOMERS}{cid}/").json() == created

    response = admin.patch(f"{CUSTOMERS}{cid}/", {"membership": "silver"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["membership"] == "silver"
    assert response.json()["phone"] == "+1 555 0100"

    response = admin.put(f"{CUSTOMERS}{cid}/", {"user": alice.pk, "phone": "42"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["phone"] == "42"

    assert admin.delete(f"{CUSTOMERS}{cid}/").status_code == 204
    assert_error(admin.get(f"{CUSTOMERS}{cid}/"), 404)
    with schema_context(ACME.slug):
        assert not Customer.objects.exists()
        assert User.objects.filter(pk=alice.pk).exists()  # deleting the customer keeps the user


def test_customer_crud_is_403_for_a_plain_user_and_401_for_anonymous() -> None:
    alice, bob = make_user(), make_user()
    with schema_context(ACME.slug):
        cid = Customer.objects.create(user=bob).pk
    detail = f"{CUSTOMERS}{cid}/"
    for client, status in ((api_client(ACME, user=alice), 403), (api_client(ACME, user=bob), 403), (api_client(), 401)):
        assert_error(client.get(CUSTOMERS), status)
        assert_error(client.post(CUSTOMERS, {"user": alice.pk}, format="json"), status)
        assert_error(client.get(detail), status)  # even bob, whose customer it is: /me is his way in
        assert_error(client.put(detail, {"user": bob.pk, "phone": "1"}, format="json"), status)
        assert_error(client.patch(detail, {"phone": "1"}, format="json"), status)
        assert_error(client.delete(detail), status)
    with schema_context(ACME.slug):
        assert Customer.objects.get().phone == ""
        assert not Customer.objects.filter(user=alice).exists()


def test_customer_me_is_created_on_first_use_and_never_changes_its_user() -> None:
    alice, bob = make_user(), make_user()
    client = api_client(ACME, user=alice)
    with schema_context(ACME.slug):
        assert not Customer.objects.filter(user=alice).exists()

    response = client.get(CUSTOMER_ME)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["user"] == alice.pk
    assert body["membership"] == "bronze"
    with schema_context(ACME.slug):
        assert Customer.objects.filter(user=alice).count() == 1

    response = client.put(CUSTOMER_ME, {"user": bob.pk, "phone": "555", "membership": "gold"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["user"] == alice.pk
    assert response.json()["phone"] == "555"
    assert response.json()["membership"] == "gold"
    assert client.get(CUSTOMER_ME).json()["id"] == body["id"]
    with schema_context(ACME.slug):
        assert Customer.objects.get(pk=body["id"]).user_id == alice.pk
        assert not Customer.objects.filter(user=bob).exists()

    # PUT is partial (the seed's): one field leaves the others alone.
    response = client.put(CUSTOMER_ME, {"phone": "777"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["membership"] == "gold"


def test_customer_me_put_creates_on_first_use_too() -> None:
    alice = make_user()
    response = api_client(ACME, user=alice).put(CUSTOMER_ME, {"phone": "1"}, format="json")
    assert response.status_code == 200, response.content
    with schema_context(ACME.slug):
        assert Customer.objects.get(user=alice).phone == "1"


def test_customer_me_for_admins_too_and_401_for_anonymous() -> None:
    response = admin_client().get(CUSTOMER_ME)
    assert response.status_code == 200, response.content
    assert response.json()["user"] == admin_id()
    assert_error(api_client().get(CUSTOMER_ME), 401)
    assert_error(api_client().put(CUSTOMER_ME, {"phone": "1"}, format="json"), 401)


def test_customer_invalid_membership_is_400_naming_it() -> None:
    alice = make_user()
    admin = admin_client()
    assert_error(
        admin.post(CUSTOMERS, {"user": alice.pk, "membership": "platinum"}, format="json"), 400, field="membership"
    )
    assert_error(
        api_client(ACME, user=alice).put(CUSTOMER_ME, {"membership": "platinum"}, format="json"),
        400,
        field="membership",
    )
    with schema_context(ACME.slug):
        assert not Customer.objects.filter(user=alice).exists()  # a refused PUT makes no record either


def test_customer_duplicate_for_a_user_is_409() -> None:
    alice = make_user()
    admin = admin_client()
    assert admin.post(CUSTOMERS, {"user": alice.pk}, format="json").status_code == 201
    body = assert_error(admin.post(CUSTOMERS, {"user": alice.pk}, format="json"), 409)
    assert "user" in body.get("errors", {}), body
    with schema_context(ACME.slug):
        assert Customer.objects.filter(user=alice).count() == 1


def test_customer_moving_to_a_user_who_already_is_one_is_409_not_500() -> None:
    alice, bob = make_user(), make_user()
    admin = admin_client()
    a = admin.post(CUSTOMERS, {"user": alice.pk}, format="json").json()["id"]
    admin.post(CUSTOMERS, {"user": bob.pk}, format="json")
    body = assert_error(admin.patch(f"{CUSTOMERS}{a}/", {"user": bob.pk}, format="json"), 409)
    assert "user" in body.get("errors", {}), body
    # The request failed cleanly: the connection is still usable and nothing moved.
    assert admin.get(f"{CUSTOMERS}{a}/").json()["user"] == alice.pk


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user": "abc"}, "user"),
        ({"user": True}, "user"),
        ({"user": [1]}, "user"),
        ({"user": 987_654_321}, "user"),
        ({"user": 2**70}, "user"),
        ({"user": None}, "user"),
        ({"membership": ["gold"]}, "membership"),
        ({"phone": "1" * 33}, "phone"),
        ({"phone": {"n": 1}}, "phone"),
        ({"birth_date": "yesterday"}, "birth_date"),
        ({"birth_date": 1}, "birth_date"),
    ],
)
def test_customer_wrong_types_are_400_naming_the_field(body: dict[str, Any], field: str) -> None:
    alice = make_user()
    admin = admin_client()
    full = {"user": alice.pk, **body}
    assert_error(admin.post(CUSTOMERS, full, format="json"), 400, field=field)
    with schema_context(ACME.slug):
        cid = Customer.objects.create(user=alice).pk
    assert_error(admin.put(f"{CUSTOMERS}{cid}/", full, format="json"), 400, field=field)
    assert_error(admin.patch(f"{CUSTOMERS}{cid}/", body, format="json"), 400, field=field)
    if field != "user":  # /me ignores user
        assert_error(api_client(ACME, user=alice).put(CUSTOMER_ME, body, format="json"), 400, field=field)


@pytest.mark.parametrize("body", ['{"user": ', "not json", "[1, 2]", '"a string"', "null"])
def test_customer_malformed_bodies_are_400(body: str) -> None:
    alice = make_user()
    admin = admin_client()
    with schema_context(ACME.slug):
        cid = Customer.objects.create(user=alice).pk
    assert_error(raw(admin, "post", CUSTOMERS, body), 400)
    assert_error(raw(admin, "put", f"{CUSTOMERS}{cid}/", body), 400)
    assert_error(raw(admin, "patch", f"{CUSTOMERS}{cid}/", body), 400)
    assert_error(raw(api_client(ACME, user=alice), "put", CUSTOMER_ME, body), 400)


@pytest.mark.parametrize("pk", ["abc", "0", "-1", "99999999999999999999999", "1.5"])
def test_customer_odd_ids_are_404(pk: str) -> None:
    assert_error(admin_client().get(f"{CUSTOMERS}{pk}/"), 404)


# --- groups and permissions ------------------------------------------------------------------------------------


def test_permissions_list_is_app_label_codename_of_assignable_apps_only() -> None:
    response = api_client(ACME, user=make_user()).get(PERMISSIONS)
    assert response.status_code == 200, response.content
    entries = response.json()
    assert isinstance(entries, list)
    codenames = [e["codename"] for e in entries]
    assert "accounts.view_customer" in codenames
    assert "accounts.change_customer" in codenames
    assert "auth.add_group" in codenames
    for entry in entries:
        app_label, codename = entry["codename"].split(".")
        assert app_label == entry["app_label"]
        assert app_label in {"accounts", "auth", "catalog"}, entry
        assert entry["model"] != "auditentry", entry
        assert codename, entry
        assert entry["name"], entry
    assert len(set(codenames)) == len(codenames)
    assert_error(api_client().get(PERMISSIONS), 401)


def test_group_crud_by_admin_with_permissions_and_users() -> None:
    alice, bob = make_user(), make_user()
    admin = admin_client()
    response = admin.post(
        GROUPS,
        {"name": "Support", "permissions": ["accounts.view_customer", "auth.view_group"], "users": [alice.pk]},
        format="json",
    )
    assert response.status_code == 201, response.content
    group = response.json()
    gid = group["id"]
    assert group["name"] == "Support"
    assert sorted(group["permissions"]) == ["accounts.view_customer", "auth.view_group"]
    assert group["users"] == [alice.pk]

    assert admin.get(f"{GROUPS}{gid}/").json() == group
    assert any(g["id"] == gid for g in results(admin.get(GROUPS)))

    response = admin.patch(
        f"{GROUPS}{gid}/", {"permissions": ["accounts.change_customer"], "users": [bob.pk]}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["permissions"] == ["accounts.change_customer"]
    assert response.json()["users"] == [bob.pk]
    assert response.json()["name"] == "Support"

    response = admin.put(f"{GROUPS}{gid}/", {"name": "Helpdesk"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Helpdesk"
    with schema_context(ACME.slug):
        g = Group.objects.get(pk=gid)
        assert g.name == "Helpdesk"
        assert list(g.user_set.values_list("pk", flat=True)) == [bob.pk]
        assert bob.pk in g.user_set.values_list("pk", flat=True)
        assert User.objects.get(pk=bob.pk).has_perm("accounts.change_customer")
        assert not User.objects.get(pk=alice.pk).has_perm("accounts.change_customer")

    assert admin.delete(f"{GROUPS}{gid}/").status_code == 204
    assert_error(admin.get(f"{GROUPS}{gid}/"), 404)
    with schema_context(ACME.slug):
        assert not Group.objects.filter(pk=gid).exists()


def test_groups_readable_by_users_writable_only_by_admins() -> None:
    alice = make_user()
    with schema_context(ACME.slug):
        gid = Group.objects.create(name="Readers").pk
    client = api_client(ACME, user=alice)
    assert any(g["name"] == "Readers" for g in results(client.get(GROUPS)))
    assert client.get(f"{GROUPS}{gid}/").json()["name"] == "Readers"
    assert_error(client.post(GROUPS, {"name": "Mine", "users": [alice.pk]}, format="json"), 403)
    assert_error(client.put(f"{GROUPS}{gid}/", {"name": "Hacked"}, format="json"), 403)
    assert_error(client.patch(f"{GROUPS}{gid}/", {"users": [alice.pk]}, format="json"), 403)
    assert_error(client.delete(f"{GROUPS}{gid}/"), 403)
    nobody = api_client()
    assert_error(nobody.get(GROUPS), 401)
    assert_error(nobody.get(f"{GROUPS}{gid}/"), 401)
    assert_error(nobody.post(GROUPS, {"name": "Anon"}, format="json"), 401)
    assert_error(nobody.delete(f"{GROUPS}{gid}/"), 401)
    with schema_context(ACME.slug):
        assert list(Group.objects.values_list("name", flat=True)) == ["Readers"]
        assert not Group.objects.get(pk=gid).user_set.exists()


@pytest.mark.parametrize(
    "permissions",
    [
        ["accounts.no_such_perm"],
        ["nosuchapp.view_customer"],
        ["view_customer"],
        ["accounts.view.customer"],
        [".view_customer"],
        ["accounts."],
        ["admin.view_logentry"],  # exists, but not assignable
        ["contenttypes.view_contenttype"],
        ["sessions.view_session"],
        ["token_blacklist.view_blacklistedtoken"],
        ["guardian.view_userobjectpermission"],
        ["accounts.view_auditentry"],  # an admin cannot grant reading the log around the API
        [123],
        [None],
        [["accounts.view_customer"]],
        [{"codename": "accounts.view_customer"}],
        "accounts.view_customer",
        None,
        ["accounts.view_cus\x00tomer"],
        ["a" * 300 + ".view_customer"],
    ],
)
def test_group_unknown_or_malformed_permission_is_400_naming_permissions(permissions: Any) -> None:
    admin = admin_client()
    assert_error(
        admin.post(GROUPS, {"name": "Bad", "permissions": permissions}, format="json"), 400, field="permissions"
    )
    with schema_context(ACME.slug):
        assert not Group.objects.filter(name="Bad").exists()
        gid = Group.objects.create(name="Existing").pk
    assert_error(admin.patch(f"{GROUPS}{gid}/", {"permissions": permissions}, format="json"), 400, field="permissions")
    assert_error(
        admin.put(f"{GROUPS}{gid}/", {"name": "Existing", "permissions": permissions}, format="json"),
        400,
        field="permissions",
    )
    with schema_context(ACME.slug):
        assert not Group.objects.get(pk=gid).permissions.exists()


def test_group_duplicate_name_is_409_naming_name() -> None:
    admin = admin_client()
    assert admin.post(GROUPS, {"name": "Ops"}, format="json").status_code == 201
    response = admin.post(GROUPS, {"name": "Ops"}, format="json")
    assert response.status_code in (400, 409), response.content
    assert_error(response, response.status_code, field="name")
    other = admin.post(GROUPS, {"name": "Dev"}, format="json").json()["id"]
    response = admin.patch(f"{GROUPS}{other}/", {"name": "Ops"}, format="json")
    assert response.status_code in (400, 409), response.content
    assert_error(response, response.status_code, field="name")
    # The failed requests left the connection usable and nothing renamed.
    assert admin.get(f"{GROUPS}{other}/").json()["name"] == "Dev"


@pytest.mark.parametrize("users", [[987_654_321], ["abc"], [True], [None], [2**70], [[1]], "1", 1, None, [{"id": 1}]])
def test_group_unknown_or_malformed_user_is_400_naming_users(users: Any) -> None:
    admin = admin_client()
    assert_error(admin.post(GROUPS, {"name": "Bad", "users": users}, format="json"), 400, field="users")
    with schema_context(ACME.slug):
        assert not Group.objects.filter(name="Bad").exists()
        gid = Group.objects.create(name="Existing").pk
    assert_error(admin.patch(f"{GROUPS}{gid}/", {"users": users}, format="json"), 400, field="users")


def test_group_users_of_another_tenant_are_unknown() -> None:
    globex_user = make_user(GLOBEX)
    with schema_context(ACME.slug):
        acme_ids = set(User.objects.values_list("pk", flat=True))
    assert globex_user.pk not in acme_ids  # the id must not happen to name an acme user too
    assert_error(
        admin_client().post(GROUPS, {"name": "X", "users": [globex_user.pk]}, format="json"), 400, field="users"
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 151}, "name"),
        ({"name": ["x"]}, "name"),
        ({"name": {"x": 1}}, "name"),
        ({"name": None}, "name"),
        ({"name": "nul\x00"}, "name"),
    ],
)
def test_group_bad_name_is_400_naming_name(body: dict[str, Any], field: str) -> None:
    admin = admin_client()
    assert_error(admin.post(GROUPS, body, format="json"), 400, field=field)
    with schema_context(ACME.slug):
        gid = Group.objects.create(name="Existing").pk
    assert_error(admin.patch(f"{GROUPS}{gid}/", body, format="json"), 400, field=field)


def test_group_missing_name_is_400_naming_name() -> None:
    assert_error(admin_client().post(GROUPS, {"permissions": []}, format="json"), 400, field="name")


@pytest.mark.parametrize("body", ['{"name": ', "not json", "[1, 2]", '"a string"', "null"])
def test_group_malformed_bodies_are_400(body: str) -> None:
    admin = admin_client()
    with schema_context(ACME.slug):
        gid = Group.objects.create(name="Existing").pk
    assert_error(raw(admin, "post", GROUPS, body), 400)
    assert_error(raw(admin, "put", f"{GROUPS}{gid}/", body), 400)
    assert_error(raw(admin, "patch", f"{GROUPS}{gid}/", body), 400)


def test_product_managers_example_through_the_api_alone() -> None:
    """The seed's ProductManagers recipe (create group, add permissions, add a
    user), with the permissions that exist before the catalog arrives."""
    john = make_user(prefix="john")
    admin = admin_client()
    wanted = ["accounts.change_customer", "accounts.view_customer"]

    available = {p["codename"] for p in admin.get(PERMISSIONS).json()}
    assert set(wanted) <= available

    response = admin.post(GROUPS, {"name": "ProductManagers", "permissions": wanted}, format="json")
    assert response.status_code == 201, response.content
    gid = response.json()["id"]
    response = admin.patch(f"{GROUPS}{gid}/", {"users": [john.pk]}, format="json")
    assert response.status_code == 200, response.content

    response = admin.get(user_permissions_url(john.pk))
    assert response.status_code == 200, response.content
    summary = response.json()
    assert summary["user"] == john.pk
    assert summary["direct"] == []
    assert summary["via_groups"] == {perm: ["ProductManagers"] for perm in wanted}

    # The permission engine itself agrees.
    with schema_context(ACME.slug):
        fresh = User.objects.get(pk=john.pk)
        assert fresh.has_perms(wanted)
        assert not fresh.has_perm("accounts.delete_customer")

    # John, a plain member, may read the group he is in, but not change it.
    john_client = api_client(ACME, user=john)
    seen = john_client.get(f"{GROUPS}{gid}/").json()
    assert seen["name"] == "ProductManagers"
    assert "users" not in seen  # member ids are for admins (no probing users/{id}/)
    assert_error(
        john_client.patch(f"{GROUPS}{gid}/", {"permissions": [*wanted, "accounts.delete_customer"]}, format="json"), 403
    )


def test_groups_and_permissions_are_per_tenant() -> None:
    admin = admin_client()
    assert (
        admin.post(GROUPS, {"name": "AcmeOnly", "permissions": ["accounts.view_customer"]}, format="json").status_code
        == 201
    )
    globex = admin_client(GLOBEX)
    assert all(g["name"] != "AcmeOnly" for g in results(globex.get(GROUPS)))
    # The same name is free on globex: names are unique per schema.
    assert globex.post(GROUPS, {"name": "AcmeOnly"}, format="json").status_code == 201
    # An acme token does not work on globex.
    acme_access = jwt_login(ACME.host, ACME.admin_email)["access"]
    assert_error(api_client(GLOBEX, token=acme_access).get(GROUPS), 401)


# --- per-user model permissions ----------------------------------------------------------------------------------


def test_user_permissions_get_post_delete_for_admins() -> None:
    alice = make_user()
    admin = admin_client()
    url = user_permissions_url(alice.pk)
    assert admin.get(url).json() == {"user": alice.pk, "direct": [], "via_groups": {}}

    response = admin.post(url, {"permissions": ["accounts.view_customer", "auth.view_group"]}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["direct"] == ["accounts.view_customer", "auth.view_group"]

    # Adding again is idempotent.
    response = admin.post(url, {"permissions": ["accounts.view_customer"]}, format="json")
    assert response.json()["direct"] == ["accounts.view_customer", "auth.view_group"]

    response = admin.delete(url, {"permissions": ["auth.view_group"]}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["direct"] == ["accounts.view_customer"]
    with schema_context(ACME.slug):
        fresh = User.objects.get(pk=alice.pk)
        assert fresh.has_perm("accounts.view_customer")
        assert not fresh.has_perm("auth.view_group")


def test_user_permissions_forbidden_to_users_and_anonymous() -> None:
    alice, bob = make_user(), make_user()
    url = user_permissions_url(alice.pk)
    body = {"permissions": ["accounts.view_customer"]}
    for client, status in ((api_client(ACME, user=alice), 403), (api_client(ACME, user=bob), 403), (api_client(), 401)):
        assert_error(client.get(url), status)
        assert_error(client.post(url, body, format="json"), status)
        assert_error(client.delete(url, body, format="json"), status)
    with schema_context(ACME.slug):
        assert not User.objects.get(pk=alice.pk).user_permissions.exists()


@pytest.mark.parametrize("pk", ["987654321", "abc", "0", "-1", "99999999999999999999999"])
def test_user_permissions_unknown_user_is_404(pk: str) -> None:
    admin = admin_client()
    assert_error(admin.get(user_permissions_url(pk)), 404)
    assert_error(admin.post(user_permissions_url(pk), {"permissions": ["accounts.view_customer"]}, format="json"), 404)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"permissions": "accounts.view_customer"},
        {"permissions": ["accounts.nope"]},
        {"permissions": ["nodot"]},
        {"permissions": [1]},
        {"permissions": None},
        {"permissions": ["admin.view_logentry"]},
    ],
)
def test_user_permissions_bad_body_is_400_naming_permissions(body: dict[str, Any]) -> None:
    alice = make_user()
    admin = admin_client()
    assert_error(admin.post(user_permissions_url(alice.pk), body, format="json"), 400, field="permissions")
    assert_error(admin.delete(user_permissions_url(alice.pk), body, format="json"), 400, field="permissions")


@pytest.mark.parametrize("body", ['{"permissions": ', "not json", "[1, 2]", '"a string"', "null"])
def test_user_permissions_malformed_bodies_are_400(body: str) -> None:
    alice = make_user()
    admin = admin_client()
    assert_error(raw(admin, "post", user_permissions_url(alice.pk), body), 400)
    assert_error(raw(admin, "delete", user_permissions_url(alice.pk), body), 400)


# --- audit ---------------------------------------------------------------------------------------------------------


def audit(client: APIClient, query: str = "") -> list[dict[str, Any]]:
    return results(client.get(f"{AUDIT}{query}"))


def test_audit_is_for_admins_only() -> None:
    alice = make_user()
    assert_error(api_client(ACME, user=alice).get(AUDIT), 403)
    assert_error(api_client().get(AUDIT), 401)
    assert admin_client().get(AUDIT).status_code == 200


def test_audit_records_group_lifecycle_memberships_and_permissions_with_the_actor() -> None:
    alice, bob = make_user(), make_user()
    admin = admin_client()
    me = admin_id()

    gid = admin.post(
        GROUPS, {"name": "Auditors", "permissions": ["accounts.view_customer"], "users": [alice.pk]}, format="json"
    ).json()["id"]
    admin.patch(f"{GROUPS}{gid}/", {"name": "Auditors2"}, format="json")
    admin.patch(f"{GROUPS}{gid}/", {"users": [bob.pk], "permissions": ["accounts.change_customer"]}, format="json")
    admin.post(user_permissions_url(alice.pk), {"permissions": ["auth.view_group"]}, format="json")
    admin.delete(user_permissions_url(alice.pk), {"permissions": ["auth.view_group"]}, format="json")
    assert admin.delete(f"{GROUPS}{gid}/").status_code == 204

    entries = audit(admin, f"?actor={me}")
    seen = [
        (e["action"], e["subject"]["type"], e["subject"]["id"], e["permission"], (e["target"] or {}).get("id"))
        for e in reversed(entries)
    ]
    assert seen == [
        ("group.create", "group", gid, "", None),
        ("group.perm_add", "group", gid, "accounts.view_customer", None),
        ("group.member_add", "user", alice.pk, "", gid),
        ("group.rename", "group", gid, "", None),
        ("group.perm_remove", "group", gid, "accounts.view_customer", None),
        ("group.perm_add", "group", gid, "accounts.change_customer", None),
        ("group.member_remove", "user", alice.pk, "", gid),
        ("group.member_add", "user", bob.pk, "", gid),
        ("user.perm_add", "user", alice.pk, "auth.view_group", None),
        ("user.perm_remove", "user", alice.pk, "auth.view_group", None),
        ("group.delete", "group", gid, "", None),
    ]
    for entry in entries:
        assert entry["actor"] == {"id": me, "email": ACME.admin_email}, entry
        assert entry["created_at"], entry
    by_action = {e["action"]: e for e in reversed(entries)}  # the newest of each action wins
    assert by_action["group.rename"]["subject"]["name"] == "Auditors2"
    assert "Auditors" in by_action["group.rename"]["target"]["name"]
    assert by_action["group.delete"]["subject"]["name"] == "Auditors2"
    assert by_action["group.member_add"]["subject"]["name"] == bob.email
    assert by_action["group.member_add"]["target"]["type"] == "group"


def test_audit_is_newest_first() -> None:
    admin = admin_client()
    for name in ("First", "Second", "Third"):
        admin.post(GROUPS, {"name": name}, format="json")
    entries = audit(admin, "?action=group.create")
    names = [e["subject"]["name"] for e in entries]
    assert names[:3] == ["Third", "Second", "First"]
    stamps = [e["created_at"] for e in entries]
    assert stamps == sorted(stamps, reverse=True)


def test_audit_records_orm_membership_and_permission_changes_without_an_actor() -> None:
    alice = make_user()
    with schema_context(ACME.slug):
        group = Group.objects.create(name="Shell")
        user = User.objects.get(pk=alice.pk)
        user.groups.add(group)
        user.groups.remove(group)
        group.user_set.add(user)
        group.user_set.clear()
        perm = Permission.objects.get(content_type__app_label="accounts", codename="view_customer")
        user.user_permissions.add(perm)
        perm.user_set.remove(user)
        group.permissions.add(perm)
        group.permissions.clear()
    entries = audit(admin_client(), f"?subject_type=user&subject_id={alice.pk}")
    seen = [(e["action"], (e["target"] or {}).get("id"), e["permission"]) for e in reversed(entries)]
    assert seen == [
        ("group.member_add", group.pk, ""),
        ("group.member_remove", group.pk, ""),
        ("group.member_add", group.pk, ""),
        ("group.member_remove", group.pk, ""),
        ("user.perm_add", None, "accounts.view_customer"),
        ("user.perm_remove", None, "accounts.view_customer"),
    ]
    assert all(e["actor"] is None for e in entries)
    group_entries = audit(admin_client(), f"?subject_type=group&subject_id={group.pk}")
    assert [e["action"] for e in reversed(group_entries)] == ["group.create", "group.perm_add", "group.perm_remove"]


def test_audit_does_not_record_changes_that_did_not_happen() -> None:
    """Removing a permission or membership that was never there changes nothing,
    so the log must not say it did."""
    alice = make_user()
    admin = admin_client()
    with schema_context(ACME.slug):
        group = Group.objects.create(name="Empty")
    response = admin.delete(user_permissions_url(alice.pk), {"permissions": ["auth.view_group"]}, format="json")
    assert response.status_code == 200, response.content
    with schema_context(ACME.slug):
        User.objects.get(pk=alice.pk).groups.remove(group)
        group.user_set.remove(User.objects.get(pk=alice.pk))
    assert audit(admin, f"?subject_type=user&subject_id={alice.pk}") == []


def test_audit_filters_by_actor_subject_and_action() -> None:
    alice = make_user()
    admin = admin_client()
    me = admin_id()
    gid = admin.post(GROUPS, {"name": "Filtered", "users": [alice.pk]}, format="json").json()["id"]
    other = admin.post(GROUPS, {"name": "Other"}, format="json").json()["id"]
    with schema_context(ACME.slug):
        Group.objects.get(pk=other).user_set.add(User.objects.get(pk=alice.pk))  # no actor

    by_subject = audit(admin, f"?subject_type=group&subject_id={gid}")
    assert [e["action"] for e in by_subject] == ["group.create"]
    assert {e["subject"]["id"] for e in by_subject} == {gid}

    by_user = audit(admin, f"?subject_type=user&subject_id={alice.pk}")
    assert [(e["action"], e["target"]["id"]) for e in by_user] == [
        ("group.member_add", other),
        ("group.member_add", gid),
    ]
    by_actor = audit(admin, f"?actor={me}&subject_type=user&subject_id={alice.pk}")
    assert [e["target"]["id"] for e in by_actor] == [gid]

    creates = audit(admin, "?action=group.create")
    assert {e["subject"]["name"] for e in creates} >= {"Filtered", "Other"}
    assert all(e["action"] == "group.create" for e in creates)
    both = audit(admin, "?action=group.create&action=group.member_add")
    assert {e["action"] for e in both} == {"group.create", "group.member_add"}

    nobody = alice.pk
    assert audit(admin, f"?actor={nobody}") == []


@pytest.mark.parametrize(
    "query", ["?actor=abc", "?action=nope", "?subject_type=planet", "?subject_id=x", "?since=yesterday"]
)
def test_audit_bad_filters_are_400(query: str) -> None:
    admin = admin_client()
    body = assert_error(admin.get(f"{AUDIT}{query}"), 400)
    assert body.get("errors"), body


def test_audit_is_paginated() -> None:
    admin = admin_client()
    perms = [p["codename"] for p in admin.get(PERMISSIONS).json()]
    assert len(perms) >= 10
    n = 0
    while n <= 60:
        response = admin.post(GROUPS, {"name": f"Bulk{n}", "permissions": perms}, format="json")
        assert response.status_code == 201, response.content
        n += 1 + len(perms)
    first = admin.get(AUDIT)
    body = first.json()
    assert body["count"] >= 60
    assert len(body["results"]) == 50
    assert body["previous"] is None
    assert body["next"]
    second = admin.get(f"{AUDIT}?page=2").json()
    assert second["previous"]
    ids_1 = [e["id"] for e in body["results"]]
    ids_2 = [e["id"] for e in second["results"]]
    assert not set(ids_1) & set(ids_2)
    assert min(ids_1) > max(ids_2)
    assert_error(admin.get(f"{AUDIT}?page=999"), 404)


def test_audit_of_globex_shows_nothing_of_acme() -> None:
    globex = admin_client(GLOBEX)
    before = globex.get(AUDIT).json()["count"]
    alice = make_user()
    admin = admin_client()
    admin.post(
        GROUPS, {"name": "AcmeSecret", "permissions": ["accounts.view_customer"], "users": [alice.pk]}, format="json"
    )
    admin.post(user_permissions_url(alice.pk), {"permissions": ["auth.view_group"]}, format="json")
    assert len(audit(admin, "?subject_type=group")) >= 2
    after = globex.get(AUDIT).json()
    assert after["count"] == before
    assert all(e["subject"]["name"] != "AcmeSecret" for e in after["results"])
    assert all((e["actor"] or {}).get("email") != ACME.admin_email for e in after["results"])
    # And an acme admin's token is refused on globex's log outright.
    acme_access = jwt_login(ACME.host, ACME.admin_email)["access"]
    assert_error(api_client(GLOBEX, token=acme_access).get(AUDIT), 401)


# --- throttling --------------------------------------------------------------------------------------------------


def login(tenant: DemoTenant, email: str, password: str = PASSWORD, ip: str = "10.0.0.1", **extra: Any) -> Any:
    body = {"email": email, "password": password, **extra}
    return api_client(tenant).post(LOGIN, body, format="json", REMOTE_ADDR=ip)


def test_login_is_throttled_per_ip(rates: Callable[..., None]) -> None:
    rates(login_ip="3/min")
    alice = make_user()
    for n in range(3):
        response = login(ACME, alice.email if n else ACME.admin_email, password="wrong" if n == 1 else PASSWORD)
        assert response.status_code in (200, 401), response.content
    assert_throttled(login(ACME, alice.email))  # right password, but this IP is spent
    assert_throttled(login(ACME, "someone@else.test", password="x"))
    assert login(ACME, alice.email, ip="10.0.0.2").status_code == 200  # another IP is not


def test_login_is_throttled_per_account_across_ips(rates: Callable[..., None]) -> None:
    rates(login_account="3/min")
    alice, bob = make_user(), make_user()
    for n in range(3):
        assert_error(login(ACME, alice.email, password=f"guess{n}", ip=f"10.1.0.{n}"), 401)
    assert_throttled(login(ACME, alice.email, ip="10.1.0.99"))  # a fresh IP, the right password: still 429
    assert_throttled(login(ACME, alice.email.upper(), ip="10.1.0.98"))  # the account, not its spelling
    assert_throttled(login(ACME, f"  {alice.email} ", ip="10.1.0.97"))
    assert login(ACME, bob.email, ip="10.1.0.99").status_code == 200  # another account is not


def test_login_by_username_counts_against_the_account(rates: Callable[..., None]) -> None:
    rates(login_account="2/min")
    alice = make_user()
    for n in range(2):
        response = api_client(ACME).post(
            LOGIN, {"username": alice.username, "password": f"guess{n}"}, format="json", REMOTE_ADDR=f"10.2.0.{n}"
        )
        assert_error(response, 401)
    assert_throttled(
        api_client(ACME).post(
            LOGIN, {"username": alice.username, "password": PASSWORD}, format="json", REMOTE_ADDR="10.2.0.50"
        )
    )


def test_login_throttles_are_per_tenant(rates: Callable[..., None]) -> None:
    rates(login_ip="2/min", login_account="2/min")
    for _ in range(2):
        login(ACME, ACME.admin_email, password="wrong")
    assert_throttled(login(ACME, ACME.admin_email))
    # The same IP on globex, and the same account name there, are untouched.
    assert login(GLOBEX, GLOBEX.admin_email).status_code == 200
    acme_user_on_globex = make_user(GLOBEX)
    with schema_context(GLOBEX.slug):
        User.objects.filter(pk=acme_user_on_globex.pk).update(email=ACME.admin_email)
    assert login(GLOBEX, ACME.admin_email, ip="10.0.0.1").status_code == 200


def test_registration_is_throttled_per_ip_and_tenant(rates: Callable[..., None]) -> None:
    rates(register_ip="2/hour")

    def register(tenant: DemoTenant, ip: str = "10.3.0.1") -> Any:
        n = next(_seq)
        body = {"email": f"new{n}@example.test", "username": f"new{n}", "password": "Another-Long-Pass-42"}
        return api_client(tenant).post(REGISTER, body, format="json", REMOTE_ADDR=ip)

    for _ in range(2):
        assert register(ACME).status_code == 201
    response = register(ACME)
    assert_throttled(response)
    assert register(ACME, ip="10.3.0.2").status_code == 201
    assert register(GLOBEX).status_code == 201


def test_reset_endpoints_are_throttled_per_ip(rates: Callable[..., None]) -> None:
    rates(reset_ip="3/hour")
    paths = (RESET_PASSWORD, RESEND_ACTIVATION, RESET_EMAIL)
    clients = {path: caller(path) for path in paths}  # reset_email: an authenticated caller, same IP
    for n, path in enumerate(paths):
        response = clients[path].post(path, {"email": f"who{n}@example.test"}, format="json", REMOTE_ADDR="10.4.0.1")
        assert response.status_code == 204, response.content
    for path in paths:
        assert_throttled(
            clients[path].post(path, {"email": "fresh@example.test"}, format="json", REMOTE_ADDR="10.4.0.1")
        )
    # Being logged in buys no extra budget: a second authenticated caller on that IP is spent too.
    assert_throttled(
        caller(RESET_EMAIL).post(RESET_EMAIL, {"email": "x@example.test"}, format="json", REMOTE_ADDR="10.4.0.1")
    )
    client = api_client(ACME)
    assert (
        client.post(RESET_PASSWORD, {"email": "x@example.test"}, format="json", REMOTE_ADDR="10.4.0.2").status_code
        == 204
    )
    assert (
        clients[RESET_EMAIL].post(RESET_EMAIL, {"email": "x@example.test"}, format="json", REMOTE_ADDR="10.4.0.2")
    ).status_code == 204
    for path in (RESET_PASSWORD, RESET_EMAIL):
        response = caller(path, GLOBEX).post(path, {"email": "x@example.test"}, format="json", REMOTE_ADDR="10.4.0.1")
        assert response.status_code == 204, response.content


@pytest.mark.parametrize("path", [RESET_PASSWORD, RESEND_ACTIVATION, RESET_EMAIL])
def test_reset_endpoints_are_throttled_per_account(rates: Callable[..., None], path: str) -> None:
    rates(reset_account="2/hour")
    client = caller(path)  # reset_email: an authenticated caller; the others: anonymous
    for n in range(2):
        response = client.post(path, {"email": ACME.admin_email}, format="json", REMOTE_ADDR=f"10.5.0.{n}")
        assert response.status_code == 204, response.content
    assert_throttled(client.post(path, {"email": ACME.admin_email.upper()}, format="json", REMOTE_ADDR="10.5.0.77"))
    # Unknown addresses are throttled the same way (no enumeration through 429s).
    for n in range(2):
        client.post(path, {"email": "ghost@acme.test"}, format="json", REMOTE_ADDR=f"10.5.1.{n}")
    assert_throttled(client.post(path, {"email": "ghost@acme.test"}, format="json", REMOTE_ADDR="10.5.1.77"))
    assert client.post(path, {"email": "other@acme.test"}, format="json", REMOTE_ADDR="10.5.0.77").status_code == 204
    assert (
        caller(path, GLOBEX).post(path, {"email": ACME.admin_email}, format="json", REMOTE_ADDR="10.5.0.77")
    ).status_code == 204


def test_default_rates_do_not_throttle_ordinary_use() -> None:
    for _ in range(3):
        assert login(ACME, ACME.admin_email).status_code == 200


@pytest.mark.parametrize("path", [LOGIN, REGISTER, RESET_PASSWORD, RESEND_ACTIVATION, RESET_EMAIL])
@pytest.mark.parametrize("body", ['{"email": ', "not json", "[1, 2]", '"a string"', "null"])
def test_throttled_endpoints_answer_malformed_bodies_with_400(path: str, body: str) -> None:
    assert_error(raw(caller(path), "post", path, body), 400)


@pytest.mark.parametrize("path", [LOGIN, REGISTER, RESET_PASSWORD, RESEND_ACTIVATION, RESET_EMAIL])
@pytest.mark.parametrize("email", [["a@acme.test"], {"a": 1}, 12, True])
def test_throttled_endpoints_answer_wrong_types_with_400_naming_the_field(path: str, email: Any) -> None:
    body = {"email": email, "password": PASSWORD, "username": "someone"}
    if path == LOGIN and email == 12:  # DRF's CharField takes a number as the login "12": unknown, not malformed
        assert_error(api_client(ACME).post(path, body, format="json"), 401)
        return
    assert_error(caller(path).post(path, body, format="json"), 400, field="email")
