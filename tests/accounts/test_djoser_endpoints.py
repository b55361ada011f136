"""Every djoser endpoint of issue 3 under /api/auth/ on a tenant host, with the seed's access rules.

Real requests through the tenant middleware, DRF, djoser and simplejwt; real
JWTs from the login endpoint; real emails captured by the locmem backend (the
``deliver`` fixture runs the on-commit hooks and waits for the email worker).
One-time tokens are taken from the emails; where a test needs a token the app
would never email (a reset token for a pending account, say), it is made by
the app's own generator, so only the property under test differs.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connection as db_connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context
from djoser.utils import encode_uid
from rest_framework.test import APIClient

from accounts.auth.link_tokens import activation_tokens, email_reset_tokens, password_reset_tokens
from accounts.models import User
from tenants import cache as tenant_cache
from tenants.models import Tenant
from tests.helpers import (
    ACME,
    BASE,
    GLOBEX,
    PASSWORD,
    DemoTenant,
    admin_client,
    admin_site_login,
    api_client,
    assert_error,
    jwt_login,
    make_user,
)

pytestmark = pytest.mark.django_db

AUTH = "/api/auth/"
USERS = f"{AUTH}users/"
ME = f"{USERS}me/"
ACTIVATION = f"{USERS}activation/"
RESEND = f"{USERS}resend_activation/"
SET_PASSWORD = f"{USERS}set_password/"
RESET_PASSWORD = f"{USERS}reset_password/"
RESET_PASSWORD_CONFIRM = f"{USERS}reset_password_confirm/"
SET_EMAIL = f"{USERS}set_email/"
RESET_EMAIL = f"{USERS}reset_email/"
RESET_EMAIL_CONFIRM = f"{USERS}reset_email_confirm/"
CREATE = f"{AUTH}jwt/create/"
REFRESH = f"{AUTH}jwt/refresh/"
VERIFY = f"{AUTH}jwt/verify/"
BLACKLIST = f"{AUTH}jwt/blacklist/"
LOGOUT_ALL = f"{AUTH}jwt/logout_all/"

NEW_PASSWORD = "Fresh-Staple-Orbit-42"
# http://acme.localhost/<path>/<uid>/<token>: the tenant's primary domain, nothing else.
LINK = re.compile(
    r"(?P<scheme>https?)://(?P<host>[^/\s]+)/(?P<path>[a-z/]+)/(?P<uid>[A-Za-z0-9_-]+)/(?P<token>[0-9a-z]+-[0-9a-f]+)\b"
)

Deliver = Callable[[], AbstractContextManager[list[Any]]]


# --- helpers -----------------------------------------------------------------------------------------------
def fetch(tenant: DemoTenant, **lookup: Any) -> User | None:
    with schema_context(tenant.schema):
        return User.objects.filter(**lookup).first()


def login(tenant: DemoTenant, password: str = PASSWORD, **credentials: str) -> Any:
    """The login endpoint's raw answer (``jwt_login`` asserts success; this does not)."""
    return api_client(tenant).post(CREATE, {**credentials, "password": password}, format="json")


def member(tenant: DemoTenant = ACME) -> APIClient:
    """Logged in as a plain (non-staff) active user of that tenant, made on first use."""
    email = f"member@{tenant.schema}.test"
    if fetch(tenant, email=email) is None:
        make_user(tenant, email=email)
    return api_client(tenant, user=email)


def caller(path: str, tenant: DemoTenant = ACME) -> APIClient:
    """A client allowed to call ``path``: anyone, except for reset_email, which
    the seed gives to authenticated users only."""
    return member(tenant) if path == RESET_EMAIL else api_client(tenant)


def post(tenant: DemoTenant, path: str, data: Any) -> Any:
    return api_client(tenant).post(path, data, format="json")


def field_errors(response: Any) -> dict[str, list[str]]:
    body = assert_error(response, 400)
    assert isinstance(body.get("errors"), dict), body
    return body["errors"]


def only_link(message: Any) -> re.Match[str]:
    links = list(LINK.finditer(message.body))
    assert len(links) == 1, message.body
    return links[0]


def assert_on_acme(message: Any) -> re.Match[str]:
    """The email's link is on acme's primary domain, never another tenant's or the public host."""
    link = only_link(message)
    assert link["host"] == ACME.host, message.body
    assert "globex" not in message.body
    assert f"//{BASE}/" not in message.body
    return link


def uid_token(message: Any) -> tuple[str, str]:
    link = assert_on_acme(message)
    return link["uid"], link["token"]


def register(tenant: DemoTenant = ACME, /, **fields: Any) -> Any:
    return api_client(tenant).post(USERS, fields, format="json")


def new_account(n: str) -> dict[str, str]:
    return {"username": f"new{n}", "email": f"new{n}@acme.test", "password": PASSWORD}


@contextlib.contextmanager
def sent(deliver: Deliver) -> Iterator[list[Any]]:
    """The emails sent by the requests made inside the block, and only those
    (``deliver``'s outbox keeps every email of the test)."""
    new: list[Any] = []
    with deliver() as outbox:
        before = len(outbox)
        yield new
    new.extend(outbox[before:])


@pytest.fixture
def no_activation() -> Iterator[None]:
    Tenant.objects.filter(slug=ACME.slug).update(require_activation=False)
    tenant_cache.clear()
    yield
    tenant_cache.clear()


@pytest.fixture
def alice() -> User:
    return make_user(ACME, email="alice@acme.test", first_name="Alice", last_name="Liddell")


@pytest.fixture
def bob() -> User:
    return make_user(ACME, email="bob@acme.test", first_name="Bob", last_name="Builder")


@pytest.fixture
def admin() -> APIClient:
    return admin_client(ACME)


# --- users/: register ----------------------------------------------------------------------------------------
def test_register_answers_names_without_password_and_creates_a_pending_user(deliver: Deliver) -> None:
    with sent(deliver) as outbox:
        response = register(
            username="carol", email="Carol@ACME.test", password=PASSWORD, first_name="Carol", last_name="Danvers"
        )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["username"] == "carol"
    assert body["email"] == "Carol@acme.test"  # domain part normalised
    assert (body["first_name"], body["last_name"]) == ("Carol", "Danvers")
    assert isinstance(body["id"], int)
    assert "password" not in body
    user = fetch(ACME, pk=body["id"])
    assert user is not None
    assert user.email == "Carol@acme.test"
    assert not user.is_active
    assert user.check_password(PASSWORD)
    assert fetch(GLOBEX, email__iexact="carol@acme.test") is None
    assert len(outbox) == 1


def test_register_names_are_optional(no_activation: None) -> None:
    response = register(**new_account("1"))
    assert response.status_code == 201, response.content
    assert (response.json()["first_name"], response.json()["last_name"]) == ("", "")


@pytest.mark.parametrize("email", ["alice@acme.test", "ALICE@acme.test", "Alice@Acme.Test", " alice@acme.test "])
def test_register_with_a_taken_email_in_any_case_names_only_email(alice: User, email: str) -> None:
    errors = field_errors(register(username="someoneelse", email=email, password=PASSWORD))
    assert set(errors) == {"email"}, errors
    assert "already exists" in errors["email"][0]
    with schema_context(ACME.schema):
        assert User.objects.filter(email__iexact="alice@acme.test").count() == 1


def test_register_with_a_taken_username_names_only_username(alice: User) -> None:
    errors = field_errors(register(username="alice", email="other@acme.test", password=PASSWORD))
    assert set(errors) == {"username"}, errors
    assert fetch(ACME, email="other@acme.test") is None


def test_same_email_and_username_may_register_on_another_tenant(alice: User, deliver: Deliver) -> None:
    with sent(deliver) as outbox:
        response = register(GLOBEX, username="alice", email="alice@acme.test", password=PASSWORD)
    assert response.status_code == 201, response.content
    assert fetch(GLOBEX, email="alice@acme.test") is not None
    (message,) = outbox
    assert only_link(message)["host"] == GLOBEX.host


@pytest.mark.parametrize("password", ["password", "12345678", "short", "weakling1"])
def test_register_with_a_weak_password_names_password(password: str) -> None:
    errors = field_errors(register(username="weakling", email="weak@acme.test", password=password))
    assert set(errors) == {"password"}, errors
    assert fetch(ACME, email="weak@acme.test") is None


def test_register_with_a_password_like_the_username_names_password() -> None:
    errors = field_errors(register(username="zebracrossing", email="z@acme.test", password="zebracrossing1"))
    assert "password" in errors, errors


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"username": "u" * 300}, "username"),
        ({"first_name": "f" * 1000}, "first_name"),
        ({"last_name": "l" * 1000}, "last_name"),
        ({"password": "Aa1-" * 500}, "password"),
        ({"email": "e" * 300 + "@acme.test"}, "email"),
        ({"username": ["alice"]}, "username"),
        ({"username": {"a": 1}}, "username"),
        ({"username": None}, "username"),
        ({"username": ""}, "username"),
        ({"username": "has space"}, "username"),
        ({"email": 12345}, "email"),
        ({"email": ["x@acme.test"]}, "email"),
        ({"email": "not-an-email"}, "email"),
        ({"email": ""}, "email"),
        ({"password": {"value": PASSWORD}}, "password"),
        ({"password": [PASSWORD]}, "password"),
        ({"password": None}, "password"),
        ({"first_name": ["x"]}, "first_name"),
        ({"first_name": None}, "first_name"),
        ({"last_name": {"x": 1}}, "last_name"),
        ({"username": "nul\x00byte"}, "username"),
        ({"email": "nul\x00byte@acme.test"}, "email"),
        ({"first_name": "nul\x00"}, "first_name"),
        ({"password": PASSWORD + "\x00"}, "password"),
        ({"username": True}, "username"),
    ],
)
def test_register_with_a_bad_field_answers_400_naming_it(changes: dict[str, Any], field: str) -> None:
    data: dict[str, Any] = {"username": "valid", "email": "valid@acme.test", "password": PASSWORD, **changes}
    errors = field_errors(register(**data))
    assert field in errors, errors
    assert fetch(ACME, username="valid") is None


@pytest.mark.parametrize("missing", ["username", "email", "password"])
def test_register_without_a_required_field_names_it(missing: str) -> None:
    data = {"username": "valid", "email": "valid@acme.test", "password": PASSWORD}
    del data[missing]
    assert missing in field_errors(register(**data))


@pytest.mark.parametrize(
    "raw", [b"{not json", b'{"username": "x", ', b"[1, 2, 3]", b'"just a string"', b"null", b"\xff\xfe"]
)
def test_register_with_a_malformed_body_is_400_not_500(raw: bytes) -> None:
    response = api_client(ACME).post(USERS, raw, content_type="application/json")
    assert_error(response, 400)


def test_register_with_a_non_json_content_type_is_415() -> None:
    response = api_client(ACME).post(USERS, "username=x", content_type="application/x-www-form-urlencoded")
    assert_error(response, 415)


# --- users/: list -------------------------------------------------------------------------------------------
def test_list_is_401_for_anonymous() -> None:
    assert_error(api_client(ACME).get(USERS), 401)


def test_list_is_403_for_a_plain_user(alice: User) -> None:
    body = assert_error(api_client(ACME, user="alice@acme.test").get(USERS), 403)
    assert "alice" not in str(body)


def test_list_shows_the_tenant_admin_only_this_tenants_users(alice: User, bob: User) -> None:
    make_user(GLOBEX, email="gina@globex.test")
    acme = api_client(ACME, user=ACME.admin_email).get(USERS)
    assert acme.status_code == 200, acme.content
    emails = {row["email"] for row in acme.json()["results"]}
    assert {"alice@acme.test", "bob@acme.test", ACME.admin_email} <= emails
    assert not any(e.endswith("@globex.test") for e in emails)
    row = next(r for r in acme.json()["results"] if r["email"] == "alice@acme.test")
    assert (row["first_name"], row["last_name"]) == ("Alice", "Liddell")
    assert "password" not in row

    globex = api_client(GLOBEX, user=GLOBEX.admin_email).get(USERS)
    assert globex.status_code == 200, globex.content
    emails = {row["email"] for row in globex.json()["results"]}
    assert GLOBEX.admin_email in emails
    assert "gina@globex.test" in emails
    assert not any(e.endswith("@acme.test") for e in emails), emails


# --- users/{id}/ ----------------------------------------------------------------------------------------------
def test_user_detail_is_401_for_anonymous(alice: User) -> None:
    url = f"{USERS}{alice.pk}/"
    for method in ("get", "put", "patch", "delete"):
        assert_error(getattr(api_client(ACME), method)(url, {}, format="json"), 401)


def test_owner_reads_and_updates_own_record(alice: User) -> None:
    client, url = api_client(ACME, user="alice@acme.test"), f"{USERS}{alice.pk}/"
    got = client.get(url)
    assert got.status_code == 200, got.content
    assert got.json() == {
        "username": "alice",
        "id": alice.pk,
        "email": "alice@acme.test",
        "first_name": "Alice",
        "last_name": "Liddell",
        "is_active": True,
        "is_staff": False,
        "is_superuser": False,
    }
    patched = client.patch(url, {"first_name": "Ally"}, format="json")
    assert patched.status_code == 200, patched.content
    assert patched.json()["first_name"] == "Ally"
    put = client.put(url, {"username": "alice2", "first_name": "A", "last_name": "L"}, format="json")
    assert put.status_code == 200, put.content
    user = fetch(ACME, pk=alice.pk)
    assert user is not None
    assert (user.username, user.first_name, user.last_name) == ("alice2", "A", "L")


def test_owner_cannot_promote_or_reactivate_self_or_change_email_through_update(alice: User) -> None:
    client, url = api_client(ACME, user="alice@acme.test"), f"{USERS}{alice.pk}/"
    response = client.patch(
        url, {"is_staff": True, "is_active": False, "email": "evil@acme.test", "is_superuser": True}, format="json"
    )
    assert response.status_code == 200, response.content
    user = fetch(ACME, pk=alice.pk)
    assert user is not None
    assert (user.is_staff, user.is_superuser, user.is_active, user.email) == (False, False, True, "alice@acme.test")


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_another_users_id_is_404_for_a_non_admin(alice: User, bob: User, method: str) -> None:
    url = f"{USERS}{bob.pk}/"
    data = {"username": "hijack", "first_name": "X", "current_password": PASSWORD}
    body = assert_error(getattr(api_client(ACME, user="alice@acme.test"), method)(url, data, format="json"), 404)
    assert "bob" not in str(body)
    user = fetch(ACME, pk=bob.pk)
    assert user is not None
    assert (user.username, user.first_name) == ("bob", "Bob")


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_a_missing_id_looks_the_same_as_someone_elses(alice: User, method: str) -> None:
    client = api_client(ACME, user="alice@acme.test")
    missing = client.generic(method.upper(), f"{USERS}99999999/", "{}", content_type="application/json")
    assert_error(missing, 404, code="not_found")


@pytest.mark.parametrize("junk", ["abc", "-1", "1.5", "99999999999999999999999", "%20", "1%2F2"])
def test_a_junk_id_is_404_not_500(alice: User, junk: str) -> None:
    assert_error(api_client(ACME, user=ACME.admin_email).get(f"{USERS}{junk}/"), 404)


def test_a_nul_in_the_id_is_a_json_client_error_not_500(alice: User) -> None:
    response = api_client(ACME, user=ACME.admin_email).get(f"{USERS}1%00/")
    assert_error(response, response.status_code)
    assert response.status_code in (400, 404)


def test_an_acme_users_id_is_not_reachable_from_globex(alice: User) -> None:
    response = api_client(GLOBEX, user=GLOBEX.admin_email).get(f"{USERS}{alice.pk}/")
    if response.status_code == 200:
        assert response.json()["email"] != "alice@acme.test"
    else:
        assert_error(response, 404)


def test_admin_reads_and_updates_another_user(alice: User, admin: APIClient) -> None:
    url = f"{USERS}{alice.pk}/"
    got = admin.get(url)
    assert got.status_code == 200, got.content
    assert got.json()["email"] == "alice@acme.test"
    patched = admin.patch(url, {"last_name": "Pleasance"}, format="json")
    assert patched.status_code == 200, patched.content
    put = admin.put(url, {"username": "alice", "first_name": "Alice", "last_name": "L."}, format="json")
    assert put.status_code == 200, put.content
    user = fetch(ACME, pk=alice.pk)
    assert user is not None
    assert user.last_name == "L."


def test_admin_deactivation_kills_the_users_tokens_at_once(alice: User, admin: APIClient) -> None:
    tokens = jwt_login(ACME, "alice@acme.test")
    assert api_client(ACME, token=tokens["access"]).get(ME).status_code == 200
    response = admin.patch(f"{USERS}{alice.pk}/", {"is_active": False}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["is_active"] is False
    assert_error(api_client(ACME, token=tokens["access"]).get(ME), 401)
    assert_error(post(ACME, REFRESH, {"refresh": tokens["refresh"]}), 401)
    assert_error(login(ACME, email="alice@acme.test"), 401)
    user = fetch(ACME, pk=alice.pk)
    assert user is not None
    assert not user.is_active


def test_user_delete_needs_the_current_password(alice: User) -> None:
    client, url = api_client(ACME, user="alice@acme.test"), f"{USERS}{alice.pk}/"
    assert "current_password" in field_errors(client.delete(url, {}, format="json"))
    assert "current_password" in field_errors(client.delete(url, {"current_password": "wrong"}, format="json"))
    assert fetch(ACME, pk=alice.pk) is not None
    response = client.delete(url, {"current_password": PASSWORD}, format="json")
    assert response.status_code == 204, response.content
    assert fetch(ACME, pk=alice.pk) is None


def test_admin_deletes_another_user_with_own_current_password(alice: User, admin: APIClient) -> None:
    url = f"{USERS}{alice.pk}/"
    assert "current_password" in field_errors(admin.delete(url, {"current_password": "wrong"}, format="json"))
    response = admin.delete(url, {"current_password": PASSWORD}, format="json")
    assert response.status_code == 204, response.content
    assert fetch(ACME, pk=alice.pk) is None


# --- users/me/ ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_me_is_401_for_anonymous(method: str) -> None:
    assert_error(getattr(api_client(ACME), method)(ME, {}, format="json"), 401)


def test_me_get_put_patch(alice: User) -> None:
    client = api_client(ACME, user="alice@acme.test")
    got = client.get(ME)
    assert got.status_code == 200, got.content
    assert got.json()["id"] == alice.pk
    assert (got.json()["first_name"], got.json()["last_name"]) == ("Alice", "Liddell")
    patched = client.patch(ME, {"last_name": "Smith"}, format="json")
    assert patched.status_code == 200, patched.content
    assert patched.json()["last_name"] == "Smith"
    put = client.put(ME, {"username": "alicia", "first_name": "Alicia", "last_name": "S"}, format="json")
    assert put.status_code == 200, put.content
    assert (put.json()["username"], put.json()["first_name"]) == ("alicia", "Alicia")
    user = fetch(ACME, pk=alice.pk)
    assert user is not None
    assert (user.username, user.first_name, user.last_name) == ("alicia", "Alicia", "S")


def test_me_put_without_username_names_username(alice: User) -> None:
    assert "username" in field_errors(
        api_client(ACME, user="alice@acme.test").put(ME, {"first_name": "x"}, format="json")
    )


def test_me_rejects_oversized_and_wrongly_typed_fields(alice: User) -> None:
    client = api_client(ACME, user="alice@acme.test")
    assert "first_name" in field_errors(client.patch(ME, {"first_name": "x" * 1000}, format="json"))
    assert "username" in field_errors(client.patch(ME, {"username": ["x"]}, format="json"))
    response = client.patch(ME, b"{oops", content_type="application/json")
    assert_error(response, 400)


def test_me_username_taken_names_username(alice: User, bob: User) -> None:
    assert "username" in field_errors(
        api_client(ACME, user="alice@acme.test").patch(ME, {"username": "bob"}, format="json")
    )


def test_me_delete_needs_the_current_password(alice: User) -> None:
    client = api_client(ACME, user="alice@acme.test")
    assert "current_password" in field_errors(client.delete(ME, {}, format="json"))
    assert "current_password" in field_errors(client.delete(ME, {"current_password": "nope"}, format="json"))
    assert fetch(ACME, pk=alice.pk) is not None
    response = client.delete(ME, {"current_password": PASSWORD}, format="json")
    assert response.status_code == 204, response.content
    assert fetch(ACME, pk=alice.pk) is None
    assert_error(client.get(ME), 401)


def test_me_is_the_admins_own_record_for_the_admin(admin: APIClient) -> None:
    got = admin.get(ME)
    assert got.status_code == 200, got.content
    assert got.json()["email"] == ACME.admin_email
    assert got.json()["is_staff"] is True


# --- activation ---------------------------------------------------------------------------------------------
def test_activation_flow_with_require_activation(deliver: Deliver) -> None:
    with sent(deliver) as outbox:
        response = register(**new_account("act"), first_name="Ann")
    assert response.status_code == 201, response.content
    assert len(outbox) == 1
    (message,) = outbox
    assert message.to == ["newact@acme.test"]
    assert "Activate" in message.subject
    link = assert_on_acme(message)
    assert link["path"] == "activate"
    assert link["uid"] == encode_uid(response.json()["id"])

    assert_error(login(ACME, email="newact@acme.test"), 401)
    assert_error(login(ACME, username="newact"), 401)

    with sent(deliver) as outbox:
        activated = post(ACME, ACTIVATION, {"uid": link["uid"], "token": link["token"]})
    assert activated.status_code == 204, activated.content
    (confirmation,) = outbox
    assert confirmation.to == ["newact@acme.test"]
    assert "active" in confirmation.subject
    assert f"http://{ACME.host}/" in confirmation.body
    assert "globex" not in confirmation.body

    assert "token" in field_errors(post(ACME, ACTIVATION, {"uid": link["uid"], "token": link["token"]}))
    tokens = login(ACME, email="NewAct@ACME.test")
    assert tokens.status_code == 200, tokens.content
    me = api_client(ACME, token=tokens.json()["access"]).get(ME)
    assert me.json()["is_active"] is True


def test_without_require_activation_no_email_and_login_at_once(no_activation: None, deliver: Deliver) -> None:
    with sent(deliver) as outbox:
        response = register(**new_account("now"))
    assert response.status_code == 201, response.content
    assert outbox == []
    user = fetch(ACME, email="newnow@acme.test")
    assert user is not None
    assert user.is_active
    assert user.activated_at is not None
    assert login(ACME, email="newnow@acme.test").status_code == 200
    # and nothing to activate or resend
    with sent(deliver) as outbox:
        assert post(ACME, RESEND, {"email": "newnow@acme.test"}).status_code == 204
    assert outbox == []


def test_require_activation_is_per_tenant(no_activation: None, deliver: Deliver) -> None:
    with sent(deliver) as outbox:
        assert register(GLOBEX, **new_account("g")).status_code == 201
    assert len(outbox) == 1
    user = fetch(GLOBEX, email="newg@acme.test")
    assert user is not None
    assert not user.is_active


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"uid": "", "token": ""},
        {"uid": "Zm9v", "token": "x"},
        {"uid": "MQ", "token": "1-2-3"},
        {"uid": ["MQ"], "token": "abc"},
        {"uid": "MQ", "token": {"a": 1}},
        {"uid": "x" * 5000, "token": "abc"},
        {"uid": "MQ", "token": "y" * 5000},
        {"uid": encode_uid(-5), "token": "abc"},
        {"uid": encode_uid(10**30), "token": "abc"},
        {"uid": "%%%", "token": "abc"},
    ],
)
def test_activation_with_junk_is_400_naming_the_field(data: dict[str, Any]) -> None:
    errors = field_errors(post(ACME, ACTIVATION, data))
    assert {"uid", "token"} & set(errors), errors


# --- tokens are not interchangeable ------------------------------------------------------------------------------
def test_activation_and_reset_tokens_are_not_interchangeable(deliver: Deliver) -> None:
    with sent(deliver) as outbox:
        assert register(**new_account("mix")).status_code == 201
    uid, activation_token = uid_token(outbox[0])
    user = fetch(ACME, email="newmix@acme.test")
    assert user is not None
    with schema_context(ACME.schema):
        reset_token = password_reset_tokens.make_token(user)
        email_token = email_reset_tokens.make_token(user)
        assert password_reset_tokens.check_token(user, reset_token)  # a genuine reset token for this user

    confirm = {"uid": uid, "token": activation_token, "new_password": NEW_PASSWORD}
    assert "token" in field_errors(post(ACME, RESET_PASSWORD_CONFIRM, confirm))
    confirm_email = {"uid": uid, "token": activation_token, "new_email": "x@acme.test"}
    assert "token" in field_errors(post(ACME, RESET_EMAIL_CONFIRM, confirm_email))
    for wrong in (reset_token, email_token):
        assert "token" in field_errors(post(ACME, ACTIVATION, {"uid": uid, "token": wrong}))
    user = fetch(ACME, pk=user.pk)
    assert user is not None
    assert not user.is_active
    assert user.check_password(PASSWORD)

    # positive control: the activation token itself still activates
    assert post(ACME, ACTIVATION, {"uid": uid, "token": activation_token}).status_code == 204


def test_a_reset_token_does_not_confirm_an_email_reset(alice: User, deliver: Deliver) -> None:
    with sent(deliver) as outbox:
        assert post(ACME, RESET_PASSWORD, {"email": "alice@acme.test"}).status_code == 204
    uid, token = uid_token(outbox[0])
    data = {"uid": uid, "token": token, "new_email": "stolen@acme.test"}
    assert "token" in field_errors(post(ACME, RESET_EMAIL_CONFIRM, data))
    user = fetch(ACME, pk=alice.pk)
    assert user is not None
    assert user.email == "alice@acme.test"


def _twin_on_globex(user: User) -> User:
    """A globex user with the same id and the same hashed state as an acme user,
    so that the schema is the only input that differs."""
    with schema_context(GLOBEX.schema):
        User.objects.filter(pk=user.pk).delete()
        User.objects.filter(email__iexact=user.email).delete()
        twin = User(
            pk=user.pk,
            email=user.email,
            username=user.username,
            password=user.password,
            is_active=user.is_active,
            activated_at=user.activated_at,
            last_login=user.last_login,
            token_epoch=user.token_epoch,
        )
        twin.save(force_insert=True)
        twin.refresh_from_db()
        return twin


def test_acme_activation_token_is_refused_on_globex(deliver: Deliver) -> None:
    with sent(deliver) as outbox:
        assert register(**new_account("x1")).status_code == 201
    uid, token = uid_token(outbox[0])
    user = fetch(ACME, email="newx1@acme.test")
    assert user is not None
    twin = _twin_on_globex(user)
    with schema_context(ACME.schema):  # only the schema tells the twin apart
        assert activation_tokens.check_token(twin, token)
    assert "token" in field_errors(post(GLOBEX, ACTIVATION, {"uid": uid, "token": token}))
    stored = fetch(GLOBEX, pk=user.pk)
    assert stored is not None
    assert not stored.is_active
    assert post(ACME, ACTIVATION, {"uid": uid, "token": token}).status_code == 204  # control


def test_acme_reset_token_is_refused_on_globex(alice: User, deliver: Deliver) -> None:
    with sent(deliver) as outbox:
        assert post(ACME, RESET_PASSWORD, {"email": "alice@acme.test"}).status_code == 204
    uid, token = uid_token(outbox[0])
    user = fetch(ACME, pk=alice.pk)
    assert user is not None
    twin = _twin_on_globex(user)
    with schema_context(ACME.schema):  # only the schema tells the twin apart
        assert password_reset_tokens.check_token(twin, token)
    data = {"uid": uid, "token": token, "new_password": NEW_PASSWORD}
    assert "token" in field_errors(post(GLOBEX, RESET_PASSWORD_CONFIRM, data))
    stored = fetch(GLOBEX, pk=alice.pk)
    assert stored is not None
    assert stored.check_password(PASSWORD)
    assert post(ACME, RESET_PASSWORD_CONFIRM, data).status_code == 204  # control


def test_acme_email_reset_token_is_refused_on_globex(alice: User, deliver: Deliver) -> None:
    client = api_client(ACME, user="alice@acme.test")
    with sent(deliver) as outbox:
        assert client.post(RESET_EMAIL, {"email": "alice@acme.test"}, format="json").status_code == 204
    uid, token = uid_token(outbox[0])
    user = fetch(ACME, pk=alice.pk)
    assert user is not None
    twin = _twin_on_globex(user)
    with schema_context(ACME.schema):  # only the schema tells the twin apart
        assert email_reset_tokens.check_token(twin, token)
    data = {"uid": uid, "token": token, "new_email": "moved@acme.test"}
    assert "token" in field_errors(post(GLOBEX, RESET_EMAIL_CONFIRM, data))
    assert post(ACME, RESET_EMAIL_CONFIRM, data).status_code == 204  # control


def test_a_reset_token_dies_when_the_user_is_deactivated(alice: User, admin: APIClient, deliver: Deliver) -> None:
    with sent(deliver) as outbox:
        assert post(ACME, RESET_PASSWORD, {"email": "alice@acme.test"}).status_code == 204
    uid, token = uid_token(outbox[0])
    assert admin.patch(f"{USERS}{alice.pk}/", {"is_active": False}, format="json").status_code == 200
    data = {"uid": uid, "token": token, "new_password": NEW_PASSWORD}
    assert "token" in field_errors(post(ACME, RESET_PASSWORD_CONFIRM, data))
    user = fetch(ACME, pk=alice.pk)
    assert user is not None
    assert not user.is_active
    assert user.check_password(PASSWORD)
    assert_error(login(ACME, email="alice@acme.test", password=NEW_PASSWORD), 401)


def test_a_reset_never_revives_a_deactivated_account(alice: User, admin: APIClient, deliver: Deliver) -> None:
    with schema_context(ACME.schema):
        older_token = password_reset_tokens.make_token(alice)  # as if emailed before the deactivation
    assert admin.patch(f"{USERS}{alice.pk}/", {"is_active": False}, format="json").status_code == 200

    with sent(deliver) as outbox:
        assert post(ACME, RESET_PASSWORD, {"email": "alice@acme.test"}).status_code == 204
        assert post(ACME, RESEND, {"email": "alice@acme.test"}).status_code == 204
    assert outbox == []

    uid = encode_uid(alice.pk)
    data = {"uid": uid, "token": older_token, "new_password": NEW_PASSWORD}
    assert "token" in field_errors(post(ACME, RESET_PASSWORD_CONFIRM, data))
    with schema_context(ACME.schema):
        deactivated = User.objects.get(pk=alice.pk)
        activation_token = activation_tokens.make_token(deactivated)
    assert "token" in field_errors(post(ACME, ACTIVATION, {"uid": uid, "token": activation_token}))
    user = fetch(ACME, pk=alice.pk)
    assert user is not None
    assert not user.is_active
    assert user.check_password(PASSWORD)
    assert_error(login(ACME, email="alice@acme.test"), 401)


REVOCATIONS = ["logout_all", "deactivate_then_reactivate"]


def _revoke(how: str, user: User, access: str, admin: APIClient) -> None:
    """Revoke everything ``user`` holds: "log out everywhere" with their own
    access token, or an admin deactivating and then reactivating the account
    (which leaves is_active where it was)."""
    if how == "logout_all":
        response = api_client(ACME, token=access).post(LOGOUT_ALL)
        assert response.status_code == 204, response.content
        return
    url = f"{USERS}{user.pk}/"
    for active in (False, True):
        response = admin.patch(url, {"is_active": active}, format="json")
        assert response.status_code == 200, response.content
        assert response.json()["is_active"] is active


def _hashed_state(user: User) -> tuple[Any, ...]:
    """What the reset tokens hashed over before token_epoch joined them."""
    fresh = fetch(ACME, pk=user.pk)
    assert fresh is not None
    return (fresh.password, fresh.last_login, fresh.is_active, fresh.email)


@pytest.mark.parametrize("revocation", REVOCATIONS)
def test_a_password_reset_link_sent_before_a_revocation_dies_with_it(
    alice: User, admin: APIClient, deliver: Deliver, revocation: str
) -> None:
    access = jwt_login(ACME, "alice@acme.test")["access"]  # log in first: a login alone spends older reset links
    with sent(deliver) as outbox:
        assert post(ACME, RESET_PASSWORD, {"email": "alice@acme.test"}).status_code == 204
    uid, token = uid_token(outbox[0])
    before = fetch(ACME, pk=alice.pk)
    assert before is not None
    with schema_context(ACME.schema):
        assert password_reset_tokens.check_token(before, token)  # good up to the revocation

    _revoke(revocation, alice, access, admin)

    after = fetch(ACME, pk=alice.pk)
    assert after is not None
    assert _hashed_state(after) == _hashed_state(before)  # only the epoch moved, so only it can refuse the link
    assert after.token_epoch > before.token_epoch
    data = {"uid": uid, "token": token, "new_password": NEW_PASSWORD}
    assert "token" in field_errors(post(ACME, RESET_PASSWORD_CONFIRM, data))
    user = fetch(ACME, pk=alice.pk)
    assert user is not None
    assert user.check_password(PASSWORD)
    assert_error(login(ACME, email="alice@acme.test", password=NEW_PASSWORD), 401)

    # control: a link sent after the revocation works
    with sent(deliver) as outbox:
        assert post(ACME, RESET_PASSWORD, {"email": "alice@acme.test"}).status_code == 204
    fresh_uid, fresh_token = uid_token(outbox[0])
    assert fresh_uid == uid
    assert fresh_token != token
    response = post(ACME, RESET_PASSWORD_CONFIRM, {**data, "token": fresh_token})
    assert response.status_code == 204, response.content
    assert login(ACME, email="alice@acme.test", password=NEW_PASSWORD).status_code == 200


@pytest.mark.parametrize("revocation", REVOCATIONS)
def test_an_email_reset_link_sent_before_a_revocation_dies_with_it(
    alice: User, admin: APIClient, deliver: Deliver, revocation: str
) -> None:
    access = jwt_login(ACME, "alice@acme.test")["access"]
    with sent(deliver) as outbox:
        response = api_client(ACME, token=access).post(RESET_EMAIL, {"email": "alice@acme.test"}, format="json")
        assert response.status_code == 204, response.content
    uid, token = uid_token(outbox[0])
    before = fetch(ACME, pk=alice.pk)
    assert before is not None
    with schema_context(ACME.schema):
        assert email_reset_tokens.check_token(before, token)  # good up to the revocation

    _revoke(revocation, alice, access, admin)

    after = fetch(ACME, pk=alice.pk)
    assert after is not None
    assert _hashed_state(after) == _hashed_state(before)
    assert after.token_epoch > before.token_epoch
    data = {"uid": uid, "token": token, "new_email": "alice.moved@acme.test"}
    assert "token" in field_errors(post(ACME, RESET_EMAIL_CONFIRM, data))
    user = fetch(ACME, pk=alice.pk)
    assert user is not None
    assert user.email == "alice@acme.test"

    # control: a link asked for after the revocation (logged in again) works
    assert_error(api_client(ACME, token=access).post(RESET_EMAIL, {"email": "alice@acme.test"}, format="json"), 401)
    with sent(deliver) as outbox:
        response = api_client(ACME, user="alice@acme.test").post(
            RESET_EMAIL, {"email": "alice@acme.test"}, format="json"
        )
        assert response.status_code == 204, response.content
    fresh_uid, fresh_token = uid_token(outbox[0])
    assert fresh_token != token
    response = post(ACME, RESET_EMAIL_CONFIRM, {**data, "uid": fresh_uid, "token": fresh_token})
    assert response.status_code == 204, response.content
    user = fetch(ACME, pk=alice.pk)
    assert user is not None
    assert user.email == "alice.moved@acme.test"


def _later(seconds: int) -> Callable[[], datetime]:
    return lambda: datetime.now() + timedelta(seconds=seconds)


def test_an_expired_activation_token_fails(deliver: Deliver, monkeypatch: pytest.MonkeyPatch) -> None:
    with sent(deliver) as outbox:
        assert register(**new_account("old")).status_code == 201
    uid, token = uid_token(outbox[0])
    timeout = settings.ACCOUNT_ACTIVATION_TIMEOUT
    monkeypatch.setattr(activation_tokens, "_now", _later(timeout + 5))
    assert "token" in field_errors(post(ACME, ACTIVATION, {"uid": uid, "token": token}))
    monkeypatch.setattr(activation_tokens, "_now", _later(timeout - 60))  # control: just before expiry
    assert post(ACME, ACTIVATION, {"uid": uid, "token": token}).status_code == 204


def test_an_activation_token_expires_with_the_setting(deliver: Deliver, settings: Any) -> None:
    with sent(deliver) as outbox:
        assert register(**new_account("zero")).status_code == 201
    uid, token = uid_token(outbox[0])
    settings.ACCOUNT_ACTIVATION_TIMEOUT = -1
    assert "token" in field_errors(post(ACME, ACTIVATION, {"uid": uid, "token": token}))
    settings.ACCOUNT_ACTIVATION_TIMEOUT = 3600
    assert post(ACME, ACTIVATION, {"uid": uid, "token": token}).status_code == 204


def test_an_expired_reset_token_fails(alice: User, deliver: Deliver, monkeypatch: pytest.MonkeyPatch) -> None:
    with sent(deliver) as outbox:
        assert post(ACME, RESET_PASSWORD, {"email": "alice@acme.test"}).status_code == 204
    uid, token = uid_token(outbox[0])
    data = {"uid": uid, "token": token, "new_password": NEW_PASSWORD}
    timeout = settings.PASSWORD_RESET_TIMEOUT
    monkeypatch.setattr(password_reset_tokens, "_now", _later(timeout + 5))
    assert "token" in field_errors(post(ACME, RESET_PASSWORD_CONFIRM, data))
    monkeypatch.setattr(password_reset_tokens, "_now", _later(timeout - 60))
    assert post(ACME, RESET_PASSWORD_CONFIRM, data).status_code == 204


def test_an_expired_email_reset_token_fails(alice: User, deliver: Deliver, monkeypatch: pytest.MonkeyPatch) -> None:
    client = api_client(ACME, user="alice@acme.test")
    with sent(deliver) as outbox:
        assert client.post(RESET_EMAIL, {"email": "alice@acme.test"}, format="json").status_code == 204
    uid, token = uid_token(outbox[0])
    data = {"uid": uid, "token": token, "new_email": "later@acme.test"}
    monkeypatch.setattr(email_reset_tokens, "_now", _later(settings.EMAIL_RESET_TIMEOUT + 5))
    assert "token" in field_errors(post(ACME, RESET_EMAIL_CONFIRM, data))
    monkeypatch.undo()
    assert post(ACME, RESET_EMAIL_CONFIRM, data).status_code == 204


# --- no enumeration: resend_activation, reset_password, reset_email ------------------------------------------------
def _routing(sql: str) -> bool:
    """Host resolution, schema switching and the throttles' housekeeping. The
    host cache is a file cache that concurrent test runs on this machine clear
    (conftest), so whether a request resolves its host from the cache is not up
    to this test; the rate counters' sweep of expired rows runs on one hit in
    many, at random (accounts.auth.rates), whatever the address: leave them out."""
    return (
        sql.startswith("SET search_path")
        or 'FROM "tenants_domain" INNER JOIN "tenants_tenant"' in sql
        or sql.startswith('DELETE FROM "accounts_ratecounter" WHERE expires_at <')
    )


def _measure(client: APIClient, path: str, email: str, deliver: Deliver) -> tuple[int, bytes, list[str], list[Any]]:
    with sent(deliver) as outbox, CaptureQueriesContext(db_connection) as queries:
        response = client.post(path, {"email": email}, format="json")
    sql = [q["sql"] for q in queries.captured_queries if not _routing(q["sql"])]
    # the same statements, whatever address was asked about (only the bound email differs)
    shapes = [re.sub(r"'[^']*'", "?", statement) for statement in sql]
    return response.status_code, response.content, shapes, list(outbox)


@pytest.mark.parametrize(
    ("path", "active", "kind"),
    [
        (RESEND, False, "activate"),
        (RESET_PASSWORD, True, "password/reset/confirm"),
        (RESET_EMAIL, True, "email/reset/confirm"),
    ],
)
def test_known_and_unknown_emails_get_the_same_answer(path: str, active: bool, kind: str, deliver: Deliver) -> None:
    make_user(ACME, email="known@acme.test", is_active=active)
    # reset_email: an authenticated caller, the same one for every address; the
    # "known" address is the caller's own (the only one it may start a change for).
    client = api_client(ACME, user="known@acme.test") if path == RESET_EMAIL else caller(path)
    assert api_client(ACME).get("/api/health/").status_code in (200, 204)  # warm the host cache
    mailbox_before = len(_measure(client, path, "warmup@acme.test", deliver)[3])
    assert mailbox_before == 0

    unknown = _measure(client, path, "nobody@acme.test", deliver)
    known = _measure(client, path, "KNOWN@acme.test", deliver)
    unknown_again = _measure(client, path, "ghost@acme.test", deliver)

    assert known[0] == unknown[0] == unknown_again[0] == 204
    assert known[1] == unknown[1] == unknown_again[1]
    assert len(known[2]) == len(unknown[2]) == len(unknown_again[2]) >= 1, (known[2], unknown[2])
    assert known[2] == unknown[2] == unknown_again[2]
    assert unknown[3] == []
    assert unknown_again[3] == []
    (message,) = known[3]
    assert message.to == ["known@acme.test"]
    link = assert_on_acme(message)
    assert link["path"] == kind


def test_reset_email_for_someone_elses_address_sends_nothing(deliver: Deliver) -> None:
    """Any user may ask, but a change link only ever goes to the caller's own address."""
    make_user(ACME, email="victim@acme.test")
    client = member()
    own_email = "member@acme.test"
    other = _measure(client, RESET_EMAIL, "victim@acme.test", deliver)
    unknown = _measure(client, RESET_EMAIL, "nobody@acme.test", deliver)
    own = _measure(client, RESET_EMAIL, own_email, deliver)
    assert other[:3] == unknown[:3]
    assert other[1] == own[1]
    assert other[3] == []
    assert unknown[3] == []
    (message,) = own[3]
    assert message.to == [own_email]


@pytest.mark.parametrize("path", [RESEND, RESET_PASSWORD, RESET_EMAIL])
@pytest.mark.parametrize("data", [{}, {"email": "not-an-email"}, {"email": ["a@acme.test"]}, {"email": "e" * 300}])
def test_email_endpoints_reject_bad_input_naming_email(path: str, data: dict[str, Any]) -> None:
    assert "email" in field_errors(caller(path).post(path, data, format="json"))


def test_reset_password_for_a_globex_only_email_sends_nothing_on_acme(deliver: Deliver) -> None:
    make_user(GLOBEX, email="gina@globex.test")
    with sent(deliver) as outbox:
        assert post(ACME, RESET_PASSWORD, {"email": "gina@globex.test"}).status_code == 204
    assert outbox == []


def test_resend_activation_sends_a_fresh_working_link(deliver: Deliver) -> None:
    with sent(deliver) as outbox:
        assert register(**new_account("re")).status_code == 201
        assert post(ACME, RESEND, {"email": "newre@acme.test"}).status_code == 204
    assert len(outbox) == 2
    uid, token = uid_token(outbox[1])
    assert post(ACME, ACTIVATION, {"uid": uid, "token": token}).status_code == 204
    # the first link is spent too: the account is active now
    first_uid, first_token = uid_token(outbox[0])
    assert "token" in field_errors(post(ACME, ACTIVATION, {"uid": first_uid, "token": first_token}))


# --- passwords -------------------------------------------------------------------------------------------------
def test_reset_password_confirm_sets_the_password_and_revokes_tokens(alice: User, deliver: Deliver) -> None:
    tokens = jwt_login(ACME, "alice@acme.test")
    with sent(deliver) as outbox:
        assert post(ACME, RESET_PASSWORD, {"email": "alice@acme.test"}).status_code == 204
    (message,) = outbox
    uid, token = uid_token(message)
    data = {"uid": uid, "token": token, "new_password": NEW_PASSWORD}
    with sent(deliver) as outbox:
        response = post(ACME, RESET_PASSWORD_CONFIRM, data)
    assert response.status_code == 204, response.content
    assert [m.to for m in outbox] == [["alice@acme.test"]]  # "your password was changed"
    assert "password" in outbox[0].subject

    assert_error(api_client(ACME, token=tokens["access"]).get(ME), 401)
    assert_error(post(ACME, REFRESH, {"refresh": tokens["refresh"]}), 401)
    assert_error(login(ACME, email="alice@acme.test"), 401)
    assert login(ACME, email="alice@acme.test", password=NEW_PASSWORD).status_code == 200
    # spent
    assert "token" in field_errors(post(ACME, RESET_PASSWORD_CONFIRM, {**data, "new_password": "An0ther-One!"}))
    assert login(ACME, email="alice@acme.test", password=NEW_PASSWORD).status_code == 200


def test_reset_password_confirm_with_a_weak_password_names_new_password(alice: User, deliver: Deliver) -> None:
    with sent(deliver) as outbox:
        assert post(ACME, RESET_PASSWORD, {"email": "alice@acme.test"}).status_code == 204
    uid, token = uid_token(outbox[0])
    for weak in ("123", "password", "x" * 2000):
        data = {"uid": uid, "token": token, "new_password": weak}
        assert set(field_errors(post(ACME, RESET_PASSWORD_CONFIRM, data))) == {"new_password"}
    assert "new_password" in field_errors(post(ACME, RESET_PASSWORD_CONFIRM, {"uid": uid, "token": token}))
    user = fetch(ACME, pk=alice.pk)
    assert user is not None
    assert user.check_password(PASSWORD)


def test_set_password_needs_auth_and_the_right_current_password(alice: User) -> None:
    data = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    assert_error(post(ACME, SET_PASSWORD, data), 401)
    client = api_client(ACME, user="alice@acme.test")
    errors = field_errors(client.post(SET_PASSWORD, {**data, "current_password": "wrong"}, format="json"))
    assert set(errors) == {"current_password"}, errors
    errors = field_errors(client.post(SET_PASSWORD, {**data, "new_password": "123"}, format="json"))
    assert set(errors) == {"new_password"}, errors
    errors = field_errors(client.post(SET_PASSWORD, {"current_password": ["x"], "new_password": 5}, format="json"))
    assert "current_password" in errors
    user = fetch(ACME, pk=alice.pk)
    assert user is not None
    assert user.check_password(PASSWORD)


def test_set_password_revokes_access_and_refresh_tokens_at_once(alice: User, bob: User, deliver: Deliver) -> None:
    first, second = jwt_login(ACME, "alice@acme.test"), jwt_login(ACME, "alice@acme.test")
    bobs = jwt_login(ACME, "bob@acme.test")
    with sent(deliver) as outbox:
        response = api_client(ACME, token=first["access"]).post(
            SET_PASSWORD, {"current_password": PASSWORD, "new_password": NEW_PASSWORD}, format="json"
        )
    assert response.status_code == 204, response.content
    assert [m.to for m in outbox] == [["alice@acme.test"]]
    for tokens in (first, second):
        assert_error(api_client(ACME, token=tokens["access"]).get(ME), 401)
        assert_error(post(ACME, REFRESH, {"refresh": tokens["refresh"]}), 401)
        assert_error(post(ACME, VERIFY, {"token": tokens["access"]}), 401)
    assert api_client(ACME, token=bobs["access"]).get(ME).status_code == 200
    assert_error(login(ACME, email="alice@acme.test"), 401)
    fresh = login(ACME, email="alice@acme.test", password=NEW_PASSWORD)
    assert fresh.status_code == 200, fresh.content
    assert api_client(ACME, token=fresh.json()["access"]).get(ME).status_code == 200


# --- email ---------------------------------------------------------------------------------------------------
def test_set_email_changes_the_login_email(alice: User, deliver: Deliver) -> None:
    client = api_client(ACME, user="alice@acme.test")
    with sent(deliver) as outbox:
        response = client.post(
            SET_EMAIL, {"new_email": "alice.new@acme.test", "current_password": PASSWORD}, format="json"
        )
    assert response.status_code == 204, response.content
    user = fetch(ACME, pk=alice.pk)
    assert user is not None
    assert user.email == "alice.new@acme.test"
    assert [m.to for m in outbox] == [["alice@acme.test"]]  # the notice goes to the old address
    assert "alice.new@acme.test" in outbox[0].body
    assert_error(login(ACME, email="alice@acme.test"), 401)
    assert login(ACME, email="alice.new@acme.test").status_code == 200


def test_set_email_refusals(alice: User, bob: User) -> None:
    data = {"new_email": "fresh@acme.test", "current_password": PASSWORD}
    assert_error(post(ACME, SET_EMAIL, data), 401)
    client = api_client(ACME, user="alice@acme.test")
    for taken in ("bob@acme.test", "BOB@Acme.Test", ACME.admin_email.upper()):
        errors = field_errors(client.post(SET_EMAIL, {**data, "new_email": taken}, format="json"))
        assert set(errors) == {"new_email"}, errors
    errors = field_errors(client.post(SET_EMAIL, {**data, "current_password": "wrong"}, format="json"))
    assert set(errors) == {"current_password"}, errors
    for bad in ("not-an-email", "", ["x@acme.test"], "e" * 300 + "@acme.test"):
        assert "new_email" in field_errors(client.post(SET_EMAIL, {**data, "new_email": bad}, format="json"))
    assert "current_password" in field_errors(client.post(SET_EMAIL, {"new_email": "a@acme.test"}, format="json"))
    user = fetch(ACME, pk=alice.pk)
    assert user is not None
    assert user.email == "alice@acme.test"


def test_set_email_to_an_email_used_on_globex_is_fine(alice: User) -> None:
    make_user(GLOBEX, email="shared@globex.test")
    response = api_client(ACME, user="alice@acme.test").post(
        SET_EMAIL, {"new_email": "shared@globex.test", "current_password": PASSWORD}, format="json"
    )
    assert response.status_code == 204, response.content


def test_reset_email_flow(alice: User, bob: User, deliver: Deliver) -> None:
    client = api_client(ACME, user="alice@acme.test")  # the seed: an authenticated user asks; the confirm is token-only
    with sent(deliver) as outbox:
        assert client.post(RESET_EMAIL, {"email": "Alice@acme.test"}, format="json").status_code == 204
    (message,) = outbox
    assert message.to == ["alice@acme.test"]
    link = assert_on_acme(message)
    assert link["path"] == "email/reset/confirm"
    uid, token = link["uid"], link["token"]

    taken = {"uid": uid, "token": token, "new_email": "BOB@acme.test"}
    assert set(field_errors(post(ACME, RESET_EMAIL_CONFIRM, taken))) == {"new_email"}
    bad = {"uid": uid, "token": token, "new_email": "nope"}
    assert "new_email" in field_errors(post(ACME, RESET_EMAIL_CONFIRM, bad))

    data = {"uid": uid, "token": token, "new_email": "alice.moved@acme.test"}
    with sent(deliver) as outbox:
        response = post(ACME, RESET_EMAIL_CONFIRM, data)
    assert response.status_code == 204, response.content
    assert [m.to for m in outbox] == [["alice@acme.test"]]
    user = fetch(ACME, pk=alice.pk)
    assert user is not None
    assert user.email == "alice.moved@acme.test"
    assert login(ACME, email="alice.moved@acme.test").status_code == 200
    # spent: the email it hashed over has changed
    again = {**data, "new_email": "alice.third@acme.test"}
    assert "token" in field_errors(post(ACME, RESET_EMAIL_CONFIRM, again))


def test_reset_email_needs_authentication_but_its_confirm_does_not(alice: User, deliver: Deliver) -> None:
    with sent(deliver) as outbox:
        known = api_client(ACME).post(RESET_EMAIL, {"email": "alice@acme.test"}, format="json")
        unknown = api_client(ACME).post(RESET_EMAIL, {"email": "nobody@acme.test"}, format="json")
        junk = api_client(ACME).post(RESET_EMAIL, {"email": "not-an-email"}, format="json")
        forged = api_client(ACME, token="not-a-jwt").post(RESET_EMAIL, {"email": "alice@acme.test"}, format="json")
    for response in (known, unknown, junk, forged):
        assert_error(response, 401)
        assert response.headers.get("WWW-Authenticate", "").startswith("Bearer"), dict(response.headers)
    # refused before the body is looked at: nothing to learn about the address or the input
    assert known.content == unknown.content == junk.content
    assert outbox == []

    # The confirm step is token-based: the emailed link works without logging in.
    with sent(deliver) as outbox:
        response = api_client(ACME, user="alice@acme.test").post(
            RESET_EMAIL, {"email": "alice@acme.test"}, format="json"
        )
        assert response.status_code == 204, response.content
    (message,) = outbox
    uid, token = uid_token(message)
    with sent(deliver) as outbox:
        response = api_client(ACME).post(
            RESET_EMAIL_CONFIRM, {"uid": uid, "token": token, "new_email": "alice.anon@acme.test"}, format="json"
        )
    assert response.status_code == 204, response.content
    assert [m.to for m in outbox] == [["alice@acme.test"]]
    user = fetch(ACME, pk=alice.pk)
    assert user is not None
    assert user.email == "alice.anon@acme.test"


# --- jwt ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "credentials",
    [
        {"email": "alice@acme.test"},
        {"email": "ALICE@ACME.TEST"},
        {"email": "Alice@Acme.test"},
        {"username": "alice"},
    ],
)
def test_jwt_create_with_email_in_any_case_or_username(alice: User, credentials: dict[str, str]) -> None:
    response = login(ACME, **credentials)
    assert response.status_code == 200, response.content
    assert set(response.json()) == {"access", "refresh"}
    me = api_client(ACME, token=response.json()["access"]).get(ME)
    assert me.status_code == 200
    assert me.json()["id"] == alice.pk


def test_jwt_create_with_nul_bytes_is_400_not_500(alice: User) -> None:
    assert "email" in field_errors(login(ACME, email="alice\x00@acme.test"))
    assert "username" in field_errors(login(ACME, username="ali\x00ce"))
    assert "password" in field_errors(login(ACME, email="alice@acme.test", password="x\x00y"))


def test_email_endpoints_with_nul_bytes_are_400_not_500() -> None:
    for path in (RESEND, RESET_PASSWORD, RESET_EMAIL):
        assert "email" in field_errors(caller(path).post(path, {"email": "a\x00b@acme.test"}, format="json"))
    assert {"uid", "token"} & set(field_errors(post(ACME, ACTIVATION, {"uid": "M\x00Q", "token": "a\x00"})))


def test_refresh_and_access_of_a_deleted_user_are_401_not_500(alice: User) -> None:
    tokens = jwt_login(ACME, "alice@acme.test")
    client = api_client(ACME, token=tokens["access"])
    assert client.delete(ME, {"current_password": PASSWORD}, format="json").status_code == 204
    assert_error(post(ACME, REFRESH, {"refresh": tokens["refresh"]}), 401)
    assert_error(post(ACME, VERIFY, {"token": tokens["access"]}), 401)
    assert_error(client.get(ME), 401)
    blacklisted = post(ACME, BLACKLIST, {"refresh": tokens["refresh"]})
    assert blacklisted.status_code in (200, 401), blacklisted.content


def test_jwt_create_refusals(alice: User) -> None:
    assert set(field_errors(login(ACME))) == {"email"}
    assert "email" in field_errors(login(ACME, email="", username=""))
    assert "password" in field_errors(api_client(ACME).post(CREATE, {"email": "alice@acme.test"}, format="json"))
    for credentials in ({"email": "alice@acme.test"}, {"username": "alice"}, {"email": "nobody@acme.test"}):
        body = assert_error(login(ACME, password="wrong-password", **credentials), 401)
        assert "access" not in body
    assert_error(login(ACME, username="ALICE"), 401)  # usernames are exact
    for junk in ({"email": ["alice@acme.test"]}, {"email": "e" * 300}, {"username": {"a": 1}}):
        assert set(junk) & set(field_errors(login(ACME, **junk)))
    assert "password" in field_errors(login(ACME, password="p" * 2000, email="alice@acme.test"))
    assert_error(api_client(ACME).post(CREATE, b"{bad", content_type="application/json"), 400)


def test_refresh_rotates_and_a_replayed_refresh_is_401(alice: User) -> None:
    tokens = jwt_login(ACME, "alice@acme.test")
    rotated = post(ACME, REFRESH, {"refresh": tokens["refresh"]})
    assert rotated.status_code == 200, rotated.content
    assert set(rotated.json()) == {"access", "refresh"}
    assert rotated.json()["refresh"] != tokens["refresh"]
    assert api_client(ACME, token=rotated.json()["access"]).get(ME).status_code == 200
    assert_error(post(ACME, REFRESH, {"refresh": tokens["refresh"]}), 401)
    # The replay was a reuse: the session ended, its successor with it.
    assert_error(post(ACME, REFRESH, {"refresh": rotated.json()["refresh"]}), 401)
    assert "refresh" in field_errors(post(ACME, REFRESH, {}))


def test_verify(alice: User) -> None:
    tokens = jwt_login(ACME, "alice@acme.test")
    assert post(ACME, VERIFY, {"token": tokens["access"]}).status_code == 200
    assert post(ACME, VERIFY, {"token": tokens["refresh"]}).status_code == 200
    assert_error(post(ACME, VERIFY, {"token": "garbage"}), 401)
    assert_error(post(GLOBEX, VERIFY, {"token": tokens["access"]}), 401)
    assert "token" in field_errors(post(ACME, VERIFY, {}))


def test_blacklist_logs_out(alice: User) -> None:
    tokens = jwt_login(ACME, "alice@acme.test")
    response = post(ACME, BLACKLIST, {"refresh": tokens["refresh"]})
    assert response.status_code == 200, response.content
    assert_error(post(ACME, REFRESH, {"refresh": tokens["refresh"]}), 401)
    assert_error(post(ACME, VERIFY, {"token": tokens["refresh"]}), 401)
    assert_error(post(ACME, BLACKLIST, {"refresh": "garbage"}), 401)
    assert_error(post(GLOBEX, BLACKLIST, {"refresh": jwt_login(ACME, "alice@acme.test")["refresh"]}), 401)


def test_logout_all_kills_every_token_of_that_user_only(alice: User, bob: User) -> None:
    assert_error(post(ACME, LOGOUT_ALL, {}), 401)
    phone, laptop = jwt_login(ACME, "alice@acme.test"), jwt_login(ACME, "alice@acme.test")
    rotated = post(ACME, REFRESH, {"refresh": laptop["refresh"]}).json()
    bobs = jwt_login(ACME, "bob@acme.test")
    admins = jwt_login(ACME, ACME.admin_email)

    response = api_client(ACME, token=phone["access"]).post(LOGOUT_ALL)
    assert response.status_code == 204, response.content

    for access in (phone["access"], laptop["access"], rotated["access"]):
        assert_error(api_client(ACME, token=access).get(ME), 401)
        assert_error(post(ACME, VERIFY, {"token": access}), 401)
    for refresh in (phone["refresh"], rotated["refresh"]):
        assert_error(post(ACME, REFRESH, {"refresh": refresh}), 401)
    for other in (bobs, admins):
        assert api_client(ACME, token=other["access"]).get(ME).status_code == 200
        assert post(ACME, REFRESH, {"refresh": other["refresh"]}).status_code == 200
    fresh = jwt_login(ACME, "alice@acme.test")  # the password still works
    assert api_client(ACME, token=fresh["access"]).get(ME).status_code == 200


def test_logout_all_with_get_is_405(alice: User) -> None:
    assert_error(api_client(ACME, user="alice@acme.test").get(LOGOUT_ALL), 405)


# --- cross-tenant ----------------------------------------------------------------------------------------------
def test_acme_credentials_do_not_log_in_on_globex(alice: User) -> None:
    assert_error(login(GLOBEX, email="alice@acme.test"), 401)
    assert_error(login(GLOBEX, username="alice"), 401)
    assert_error(login(GLOBEX, email=ACME.admin_email), 401)


def test_acme_tokens_are_refused_on_globex(alice: User) -> None:
    tokens = jwt_login(ACME, "alice@acme.test")
    assert_error(post(GLOBEX, REFRESH, {"refresh": tokens["refresh"]}), 401)
    assert_error(api_client(GLOBEX, token=tokens["access"]).get(ME), 401)
    assert_error(api_client(GLOBEX, token=tokens["access"]).get(USERS), 401)
    # still fine at home
    assert post(ACME, REFRESH, {"refresh": tokens["refresh"]}).status_code == 200


def test_a_globex_admin_token_is_refused_on_acme() -> None:
    tokens = jwt_login(GLOBEX, GLOBEX.admin_email)
    assert_error(api_client(ACME, token=tokens["access"]).get(USERS), 401)


# --- sessions and links beyond the API ----------------------------------------------------------------------
def test_logout_everywhere_also_ends_admin_sessions() -> None:
    browser = admin_site_login(ACME, ACME.admin_email)
    assert browser.get("/admin/").status_code == 200
    response = api_client(ACME, user=ACME.admin_email).post(LOGOUT_ALL)
    assert response.status_code == 204, response.content
    assert browser.get("/admin/").status_code == 302  # back to the login page


def test_email_links_use_the_public_scheme_and_port(settings: Any, deliver: Deliver) -> None:
    settings.PUBLIC_SCHEME = "https"
    settings.PUBLIC_PORT = "443"
    user = make_user(ACME, email="linked@acme.test")
    with deliver() as outbox:
        response = Client(HTTP_HOST=ACME.host).post(
            RESET_PASSWORD, {"email": user.email}, content_type="application/json"
        )
    assert response.status_code == 204, response.content
    (message,) = outbox
    assert "https://acme.localhost/password/reset/confirm/" in message.body
