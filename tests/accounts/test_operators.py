"""Platform operators' own accounts on the public host (issue 11, point 4).

Real requests through the tenant middleware, DRF and simplejwt on the public
host (``BASE``); real JWTs from its login endpoint; emails read from the
outbox through the ``deliver`` fixture. Covered: an operator's ``users/me/``,
``set_password`` and ``jwt/logout_all``; superuser operators managing the
operators (``/api/platform/operators/``) under the role rules (the platform
keeps one active superuser); and the support action that emails a tenant's
admin a password reset link on the tenant's primary domain, audited in the
tenant with the operator named.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from accounts.models import AuditEntry, User
from tenants.models import Tenant
from tenants.services import domain_add, tenant_archive
from tests.helpers import (
    ACME,
    BASE,
    GLOBEX,
    OPERATOR_EMAIL,
    PASSWORD,
    PLATFORM,
    admin_client,
    admin_id,
    api_client,
    assert_error,
    assert_throttled,
    jwt_login,
    make_user,
    user_id,
)

pytestmark = pytest.mark.django_db

ME = "/api/auth/users/me/"
SET_PASSWORD = "/api/auth/users/set_password/"
LOGOUT_ALL = "/api/auth/jwt/logout_all/"
REFRESH = "/api/auth/jwt/refresh/"
CREATE = "/api/auth/jwt/create/"
RESET_PASSWORD_CONFIRM = "/api/auth/users/reset_password_confirm/"
OPERATORS = "/api/platform/operators/"
TENANTS = "/api/platform/tenants/"

NEW_PASSWORD = "Fresh-Staple-Orbit-42"
SUPPORT_ACTION = AuditEntry.Action.SUPPORT_PASSWORD_RESET
# <scheme>://<host>/<path>/<uid>/<token>, as tests/accounts/test_djoser_endpoints.py reads links.
LINK = re.compile(
    r"(?P<scheme>https?)://(?P<host>[^/\s]+)/(?P<path>[a-z/]+)/(?P<uid>[A-Za-z0-9_-]+)/(?P<token>[0-9a-z]+-[0-9a-f]+)\b"
)

Deliver = Callable[[], AbstractContextManager[list[Any]]]


# --- helpers -----------------------------------------------------------------------------------------------


def operator_url(pk: Any) -> str:
    return f"{OPERATORS}{pk}/"


def support_url(slug: str) -> str:
    return f"{TENANTS}{slug}/support/password-reset/"


def make_operator(name: str, *, superuser: bool = False, **fields: Any) -> User:
    """A staff user of the public schema (an operator), ``<name>@platform.test``."""
    return make_user(
        PLATFORM, email=f"{name}@platform.test", username=name, is_staff=True, is_superuser=superuser, **fields
    )


def as_operator(user: User | str, password: str = PASSWORD) -> APIClient:
    return api_client(BASE, user=user, password=password)


def public_user(pk: int) -> User:
    with schema_context(PLATFORM.schema):
        return User.objects.get(pk=pk)


def public_flags(pk: int) -> tuple[bool, bool, bool]:
    """(is_staff, is_superuser, is_active) of a public user."""
    return public_user(pk).roles()


def login(host: str, email: str, password: str = PASSWORD) -> Any:
    return api_client(host).post(CREATE, {"email": email, "password": password}, format="json")


def support_entries(tenant_schema: str) -> list[AuditEntry]:
    with schema_context(tenant_schema):
        return list(AuditEntry.objects.filter(action=SUPPORT_ACTION).order_by("id"))


@contextlib.contextmanager
def sent(deliver: Deliver) -> Iterator[list[Any]]:
    """The emails sent by the requests made inside the block, and only those."""
    new: list[Any] = []
    with deliver() as outbox:
        before = len(outbox)
        yield new
    new.extend(outbox[before:])


def only_link(message: Any) -> re.Match[str]:
    links = list(LINK.finditer(message.body))
    assert len(links) == 1, message.body
    return links[0]


# --- users/me/ ---------------------------------------------------------------------------------------------


def test_me_shows_the_calling_operator(operator_client: APIClient) -> None:
    response = operator_client.get(ME)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["email"] == OPERATOR_EMAIL
    assert body["id"] == user_id(PLATFORM, OPERATOR_EMAIL)
    assert body["is_superuser"] is True
    assert body["is_active"] is True
    assert not [key for key in body if "password" in key]


def test_me_patch_changes_the_names(operator_client: APIClient) -> None:
    response = operator_client.patch(ME, {"first_name": "Ada", "last_name": "Lovelace"}, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["first_name"], response.json()["last_name"]) == ("Ada", "Lovelace")
    stored = public_user(user_id(PLATFORM, OPERATOR_EMAIL))
    assert (stored.first_name, stored.last_name) == ("Ada", "Lovelace")
    assert operator_client.get(ME).json()["first_name"] == "Ada"  # the token still works: names revoke nothing


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "moved@platform.test"}, "email"),  # the login: read-only
        ({"is_superuser": False}, "is_superuser"),
        ({"is_staff": False}, "is_staff"),
        ({"password": NEW_PASSWORD}, "password"),
        ({"first_name": "x" * 151}, "first_name"),
    ],
)
def test_me_patch_refuses_anything_but_names(operator_client: APIClient, payload: dict[str, Any], field: str) -> None:
    assert_error(operator_client.patch(ME, payload, format="json"), 400, field=field)
    stored = public_user(user_id(PLATFORM, OPERATOR_EMAIL))
    assert stored.email == OPERATOR_EMAIL
    assert stored.roles() == (True, True, True)


def test_me_patch_names_every_refused_field(operator_client: APIClient) -> None:
    body = assert_error(
        operator_client.patch(ME, {"email": "x@platform.test", "is_superuser": False}, format="json"), 400
    )
    assert set(body["errors"]) == {"email", "is_superuser"}


def test_me_and_set_password_are_for_operators(db: None) -> None:
    assert_error(api_client(BASE).get(ME), 401, code="not_authenticated")
    assert_error(api_client(BASE).post(SET_PASSWORD, {}, format="json"), 401)
    make_user(PLATFORM, email="clerk@platform.test", username="clerk")  # a public user, not staff
    clerk = as_operator("clerk@platform.test")
    assert_error(clerk.get(ME), 403, code="permission_denied")
    assert_error(clerk.patch(ME, {"first_name": "Sneaky"}, format="json"), 403)
    change = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    assert_error(clerk.post(SET_PASSWORD, change, format="json"), 403)


# --- set_password ------------------------------------------------------------------------------------------


def test_set_password_revokes_the_old_tokens(deliver: Deliver) -> None:
    alice = make_operator("alice")
    pair = jwt_login(BASE, alice.email)
    client = api_client(BASE, token=pair["access"])
    with sent(deliver) as outbox:
        response = client.post(
            SET_PASSWORD, {"current_password": PASSWORD, "new_password": NEW_PASSWORD}, format="json"
        )
    assert response.status_code == 204, response.content
    assert response.content == b""
    assert public_user(alice.pk).check_password(NEW_PASSWORD)
    # Every token issued before dies with the old password.
    assert_error(client.get(ME), 401)
    assert_error(api_client(BASE).post(REFRESH, {"refresh": pair["refresh"]}, format="json"), 401)
    assert_error(login(BASE, alice.email), 401)
    fresh = jwt_login(BASE, alice.email, NEW_PASSWORD)["access"]
    assert api_client(BASE, token=fresh).get(ME).json()["email"] == alice.email
    # The operator is told, with no link in it.
    assert [m.to for m in outbox] == [[alice.email]]
    assert not LINK.search(outbox[0].body)


def test_set_password_with_a_wrong_current_password_is_400(db: None) -> None:
    alice = make_operator("alice")
    client = as_operator(alice)
    response = client.post(
        SET_PASSWORD, {"current_password": "not-" + PASSWORD, "new_password": NEW_PASSWORD}, format="json"
    )
    assert_error(response, 400, field="current_password")
    assert public_user(alice.pk).check_password(PASSWORD)
    assert client.get(ME).status_code == 200  # nothing revoked


@pytest.mark.parametrize("weak", ["12345678", "password", "short", "alice@platform.test"])
def test_set_password_refuses_a_weak_password_naming_new_password(weak: str) -> None:
    alice = make_operator("alice")
    client = as_operator(alice)
    response = client.post(SET_PASSWORD, {"current_password": PASSWORD, "new_password": weak}, format="json")
    assert_error(response, 400, field="new_password")
    assert public_user(alice.pk).check_password(PASSWORD)


def test_set_password_without_fields_names_both(operator_client: APIClient) -> None:
    body = assert_error(operator_client.post(SET_PASSWORD, {}, format="json"), 400)
    assert set(body["errors"]) == {"current_password", "new_password"}


def test_set_password_guesses_are_throttled_with_the_logins(rates: Callable[..., None]) -> None:
    rates(login_account="2/min")
    alice = make_operator("alice")
    client = as_operator(alice)  # the login counts as one guess on the account
    wrong = {"current_password": "not-" + PASSWORD, "new_password": NEW_PASSWORD}
    assert_error(client.post(SET_PASSWORD, wrong, format="json"), 400, field="current_password")
    assert_throttled(client.post(SET_PASSWORD, wrong, format="json"))
    assert_throttled(client.post(SET_PASSWORD, {**wrong, "current_password": PASSWORD}, format="json"))
    assert public_user(alice.pk).check_password(PASSWORD)


# --- logout_all --------------------------------------------------------------------------------------------


def test_logout_all_revokes_every_token_of_the_operator() -> None:
    alice = make_operator("alice")
    bob = make_operator("bob")
    first, second = jwt_login(BASE, alice.email), jwt_login(BASE, alice.email)
    bobs = jwt_login(BASE, bob.email)
    response = api_client(BASE, token=first["access"]).post(LOGOUT_ALL)
    assert response.status_code == 204, response.content
    for pair in (first, second):
        assert_error(api_client(BASE, token=pair["access"]).get(ME), 401)
        assert_error(api_client(BASE).post(REFRESH, {"refresh": pair["refresh"]}, format="json"), 401)
    # Another operator's session is untouched; alice may log in again.
    assert api_client(BASE, token=bobs["access"]).get(ME).status_code == 200
    assert api_client(BASE).post(REFRESH, {"refresh": bobs["refresh"]}, format="json").status_code == 200
    again = jwt_login(BASE, alice.email)["access"]
    assert api_client(BASE, token=again).get(ME).status_code == 200


def test_logout_all_needs_a_token(db: None) -> None:
    assert_error(api_client(BASE).post(LOGOUT_ALL), 401)


# --- managing operators ------------------------------------------------------------------------------------


def test_superuser_lists_the_operators_paginated(operator_client: APIClient) -> None:
    made = [make_operator(f"op{n}") for n in range(3)]
    make_user(PLATFORM, email="clerk@platform.test", username="clerk")  # not staff: not an operator
    response = operator_client.get(OPERATORS)
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) >= {"count", "next", "previous", "results"}
    emails = [row["email"] for row in body["results"]]
    assert emails == [OPERATOR_EMAIL, *(op.email for op in made)]
    assert body["count"] == 4
    assert not [key for row in body["results"] for key in row if "password" in key]

    first = operator_client.get(OPERATORS, {"page_size": 2}).json()
    assert [row["email"] for row in first["results"]] == [OPERATOR_EMAIL, made[0].email]
    assert first["next"]
    second = operator_client.get(OPERATORS, {"page_size": 2, "page": 2}).json()
    assert [row["email"] for row in second["results"]] == [made[1].email, made[2].email]
    assert_error(operator_client.get(OPERATORS, {"page": 9}), 404)


def test_superuser_creates_an_operator_who_can_log_in(operator_client: APIClient) -> None:
    payload = {
        "email": "Carol@Platform.test",
        "username": "carol",
        "first_name": "Carol",
        "last_name": "Shaw",
        "password": NEW_PASSWORD,
    }
    response = operator_client.post(OPERATORS, payload, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["email"] == "Carol@platform.test"  # the domain normalised, as everywhere
    assert (body["username"], body["first_name"], body["is_superuser"], body["is_active"]) == (
        "carol",
        "Carol",
        False,
        True,
    )
    assert not [key for key in body if "password" in key]
    assert public_flags(body["id"]) == (True, False, True)
    assert operator_client.get(operator_url(body["id"])).json() == body

    carol = as_operator("carol@platform.test", NEW_PASSWORD)
    assert carol.get(TENANTS).status_code == 200  # an operator of the platform
    assert_error(carol.get(OPERATORS), 403)  # but not a superuser
    # The public audit log: the role given, by the superuser who made it.
    with schema_context(PLATFORM.schema):
        entry = AuditEntry.objects.get(action=AuditEntry.Action.STAFF_ON, subject_id=body["id"])
    assert entry.actor_repr == OPERATOR_EMAIL


def test_superuser_creates_a_superuser_operator(operator_client: APIClient) -> None:
    payload = {"email": "dave@platform.test", "username": "dave", "password": NEW_PASSWORD, "is_superuser": True}
    response = operator_client.post(OPERATORS, payload, format="json")
    assert response.status_code == 201, response.content
    assert public_flags(response.json()["id"]) == (True, True, True)
    assert as_operator("dave@platform.test", NEW_PASSWORD).get(OPERATORS).status_code == 200


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({}, {"email", "username", "password"}),
        ({"email": "eve@platform.test", "username": "eve", "password": "12345678"}, {"password"}),
        ({"email": "eve@platform.test", "username": "eve", "password": "eve@platform.test"}, {"password"}),
        ({"email": OPERATOR_EMAIL.upper(), "username": "eve", "password": NEW_PASSWORD}, {"email"}),
        ({"email": "eve@platform.test", "username": "operator", "password": NEW_PASSWORD}, {"username"}),
        ({"email": "not an email", "username": "eve", "password": NEW_PASSWORD}, {"email"}),
        (
            {"email": "eve@platform.test", "username": "eve", "password": NEW_PASSWORD, "is_superuser": "yes"},
            {"is_superuser"},
        ),
        ({"email": "eve@platform.test", "username": "eve", "password": NEW_PASSWORD, "is_staff": False}, {"is_staff"}),
    ],
)
def test_create_refuses_bad_input_naming_the_fields(
    operator_client: APIClient, payload: dict[str, Any], fields: set[str]
) -> None:
    before = User.objects.count()
    body = assert_error(operator_client.post(OPERATORS, payload, format="json"), 400)
    assert set(body["errors"]) == fields, body
    assert User.objects.count() == before


def test_superuser_changes_an_operators_names_and_roles(operator_client: APIClient) -> None:
    frank = make_operator("frank")
    response = operator_client.patch(
        operator_url(frank.pk), {"first_name": "Franklin", "is_superuser": True}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["first_name"] == "Franklin"
    assert public_flags(frank.pk) == (True, True, True)
    response = operator_client.patch(operator_url(frank.pk), {"is_superuser": False}, format="json")
    assert response.status_code == 200, response.content
    assert public_flags(frank.pk) == (True, False, True)  # still an operator
    with schema_context(PLATFORM.schema):
        actions = list(
            AuditEntry.objects.filter(subject_type="user", subject_id=frank.pk)
            .order_by("id")
            .values_list("action", "actor_repr")
        )
    assert actions[-2:] == [
        (AuditEntry.Action.SUPERUSER_ON, OPERATOR_EMAIL),
        (AuditEntry.Action.SUPERUSER_OFF, OPERATOR_EMAIL),
    ]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "moved@platform.test"}, "email"),
        ({"password": NEW_PASSWORD}, "password"),
        ({"is_staff": False}, "is_staff"),
        ({"is_active": "no"}, "is_active"),
        ({"last_name": "x" * 151}, "last_name"),
    ],
)
def test_change_refuses_other_fields(operator_client: APIClient, payload: dict[str, Any], field: str) -> None:
    frank = make_operator("frank")
    assert_error(operator_client.patch(operator_url(frank.pk), payload, format="json"), 400, field=field)
    stored = public_user(frank.pk)
    assert (stored.email, stored.roles()) == ("frank@platform.test", (True, False, True))
    assert stored.check_password(PASSWORD)


def test_deactivating_an_operator_revokes_its_tokens(operator_client: APIClient) -> None:
    grace = make_operator("grace")
    pair = jwt_login(BASE, grace.email)
    response = operator_client.patch(operator_url(grace.pk), {"is_active": False}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["is_active"] is False
    assert_error(api_client(BASE, token=pair["access"]).get(ME), 401)
    assert_error(api_client(BASE).post(REFRESH, {"refresh": pair["refresh"]}, format="json"), 401)
    assert_error(login(BASE, grace.email), 401)
    assert operator_client.patch(operator_url(grace.pk), {"is_active": True}, format="json").status_code == 200
    assert api_client(BASE, token=jwt_login(BASE, grace.email)["access"]).get(ME).status_code == 200


def test_superuser_deletes_an_operator(operator_client: APIClient) -> None:
    heidi = make_operator("heidi")
    access = jwt_login(BASE, heidi.email)["access"]
    response = operator_client.delete(operator_url(heidi.pk))
    assert response.status_code == 204, response.content
    assert response.content == b""
    assert_error(operator_client.get(operator_url(heidi.pk)), 404, code="not_found")
    assert_error(api_client(BASE, token=access).get(ME), 401)
    assert_error(login(BASE, heidi.email), 401)


@pytest.mark.parametrize("pk", ["999999", "abc", "0", "-1", "1.5"])
def test_unknown_operator_is_404(operator_client: APIClient, pk: str) -> None:
    for method in ("get", "patch", "delete"):
        assert_error(getattr(operator_client, method)(operator_url(pk), {}, format="json"), 404, code="not_found")


def test_a_public_user_who_is_not_staff_is_no_operator(operator_client: APIClient) -> None:
    clerk = make_user(PLATFORM, email="clerk@platform.test", username="clerk")
    assert_error(operator_client.get(operator_url(clerk.pk)), 404)
    assert_error(operator_client.patch(operator_url(clerk.pk), {"is_superuser": True}, format="json"), 404)
    assert public_flags(clerk.pk) == (False, False, True)


def test_a_plain_operator_gets_403_on_operator_management() -> None:
    ivan = make_operator("ivan")
    judy = make_operator("judy")
    client = as_operator(ivan)
    root = user_id(PLATFORM, OPERATOR_EMAIL)
    payload = {"email": "mallory@platform.test", "username": "mallory", "password": NEW_PASSWORD}
    assert_error(client.get(OPERATORS), 403, code="permission_denied")
    assert_error(client.post(OPERATORS, {**payload, "is_superuser": True}, format="json"), 403)
    for target in (judy.pk, root, ivan.pk):  # another operator, the superuser, itself
        assert_error(client.get(operator_url(target)), 403)
        assert_error(client.patch(operator_url(target), {"is_superuser": True}, format="json"), 403)
        assert_error(client.delete(operator_url(target)), 403)
    assert not User.objects.filter(email="mallory@platform.test").exists()
    assert public_flags(ivan.pk) == public_flags(judy.pk) == (True, False, True)
    assert public_flags(root) == (True, True, True)
    # The platform API itself stays open to it.
    assert client.get(TENANTS).status_code == 200


def test_operator_management_refuses_anonymous_and_non_staff(db: None) -> None:
    assert_error(api_client(BASE).get(OPERATORS), 401)
    assert_error(api_client(BASE).post(OPERATORS, {}, format="json"), 401)
    make_user(PLATFORM, email="clerk@platform.test", username="clerk", is_superuser=True)  # superuser, not staff
    clerk = as_operator("clerk@platform.test")
    assert_error(clerk.get(OPERATORS), 403)
    assert_error(clerk.get(operator_url(user_id(PLATFORM, OPERATOR_EMAIL))), 403)


def test_the_last_active_superuser_operator_stays(operator_client: APIClient) -> None:
    root = user_id(PLATFORM, OPERATOR_EMAIL)
    for change in ({"is_superuser": False}, {"is_active": False}):
        assert_error(operator_client.patch(operator_url(root), change, format="json"), 403, code="permission_denied")
    assert_error(operator_client.delete(operator_url(root)), 403, code="permission_denied")
    assert public_flags(root) == (True, True, True)
    assert operator_client.get(ME).status_code == 200  # nothing revoked

    # An inactive superuser does not count as the one that stays.
    make_operator("dormant", superuser=True, is_active=False)
    assert_error(operator_client.patch(operator_url(root), {"is_superuser": False}, format="json"), 403)


def test_with_two_superusers_one_may_demote_the_other_then_not_itself(operator_client: APIClient) -> None:
    root = user_id(PLATFORM, OPERATOR_EMAIL)
    kate = make_operator("kate", superuser=True)
    kates = as_operator(kate)
    response = kates.patch(operator_url(root), {"is_superuser": False}, format="json")
    assert response.status_code == 200, response.content
    assert public_flags(root) == (True, False, True)
    # The demoted operator is no longer allowed to manage operators...
    assert_error(operator_client.patch(operator_url(kate.pk), {"is_active": False}, format="json"), 403)
    assert_error(operator_client.get(OPERATORS), 403)
    # ...and kate, now the last superuser, may not leave.
    assert_error(kates.patch(operator_url(kate.pk), {"is_superuser": False}, format="json"), 403)
    assert_error(kates.delete(operator_url(kate.pk)), 403)
    assert public_flags(kate.pk) == (True, True, True)
    # Deleting the other superuser is fine while one stays.
    assert kates.patch(operator_url(root), {"is_superuser": True}, format="json").status_code == 200
    assert kates.delete(operator_url(root)).status_code == 204


# --- the support action: a tenant admin's password reset ---------------------------------------------------


def test_support_reset_emails_the_admin_a_link_that_works_on_the_tenant_host(
    operator_client: APIClient, deliver: Deliver
) -> None:
    with sent(deliver) as outbox:
        response = operator_client.post(support_url(ACME.slug), {"email": ACME.admin_email.upper()}, format="json")
    assert response.status_code == 202, response.content
    assert response.json() == {"tenant": ACME.slug, "email": ACME.admin_email}  # no link, no token
    assert len(outbox) == 1
    message = outbox[0]
    assert message.to == [ACME.admin_email]
    link = only_link(message)
    assert link["host"] == ACME.host, message.body  # the tenant's primary domain, never the public host
    assert f"//{BASE}/" not in message.body
    assert "globex" not in message.body
    assert link["token"] not in response.content.decode()

    # The link's token is acme's: it resets the admin's password on acme's host, once.
    confirm = {"uid": link["uid"], "token": link["token"], "new_password": NEW_PASSWORD}
    assert_error(api_client(GLOBEX).post(RESET_PASSWORD_CONFIRM, confirm, format="json"), 400)
    assert_error(api_client(BASE).post(RESET_PASSWORD_CONFIRM, confirm, format="json"), 404)  # not routed there
    response = api_client(ACME).post(RESET_PASSWORD_CONFIRM, confirm, format="json")
    assert response.status_code == 204, response.content
    assert jwt_login(ACME, ACME.admin_email, NEW_PASSWORD)["access"]
    assert_error(api_client(ACME).post(RESET_PASSWORD_CONFIRM, confirm, format="json"), 400, field="token")


def test_support_reset_links_to_the_tenants_current_primary_domain(
    operator_client: APIClient, deliver: Deliver
) -> None:
    domain_add(tenant=Tenant.objects.get(slug=ACME.slug), domain="help.acme.test", is_primary=True)
    with sent(deliver) as outbox:
        response = operator_client.post(support_url(ACME.slug), {"email": ACME.admin_email}, format="json")
    assert response.status_code == 202, response.content
    link = only_link(outbox[0])
    assert link["host"] == "help.acme.test", outbox[0].body
    confirm = {"uid": link["uid"], "token": link["token"], "new_password": NEW_PASSWORD}
    assert api_client("help.acme.test").post(RESET_PASSWORD_CONFIRM, confirm, format="json").status_code == 204


def test_support_reset_is_audited_in_the_tenant_and_on_the_platform(
    operator_client: APIClient, deliver: Deliver
) -> None:
    with sent(deliver):
        response = operator_client.post(support_url(ACME.slug), {"email": ACME.admin_email}, format="json")
    assert response.status_code == 202, response.content
    admin = admin_id(ACME)
    [entry] = support_entries(ACME.schema)
    assert entry.actor_id is None  # the operator is no user of acme
    assert entry.actor_repr == f"operator:{OPERATOR_EMAIL}"
    assert (entry.subject_type, entry.subject_id, entry.subject_repr) == ("user", admin, ACME.admin_email)
    assert support_entries(GLOBEX.schema) == []

    # Acme's admins read it in their audit log.
    listed = admin_client(ACME).get("/api/audit/", {"action": SUPPORT_ACTION.value})
    assert listed.status_code == 200, listed.content
    [row] = listed.json()["results"]
    assert row["actor"] == {"id": None, "email": f"operator:{OPERATOR_EMAIL}"}
    assert row["subject"] == {"type": "user", "id": admin, "name": ACME.admin_email}

    # The platform's own log has the operator as actor.
    [public] = support_entries(PLATFORM.schema)
    assert public.actor_id == user_id(PLATFORM, OPERATOR_EMAIL)
    assert public.actor_repr == OPERATOR_EMAIL
    acme = Tenant.objects.get(slug=ACME.slug)
    assert (public.subject_type, public.subject_id, public.subject_repr) == ("tenant", acme.pk, ACME.slug)
    assert (public.target_type, public.target_id, public.target_repr) == ("user", admin, ACME.admin_email)


def test_any_operator_may_reset_and_is_named(deliver: Deliver) -> None:
    lena = make_operator("lena")
    with sent(deliver) as outbox:
        response = as_operator(lena).post(support_url(GLOBEX.slug), {"email": GLOBEX.admin_email}, format="json")
    assert response.status_code == 202, response.content
    assert only_link(outbox[0])["host"] == GLOBEX.host
    [entry] = support_entries(GLOBEX.schema)
    assert entry.actor_repr == "operator:lena@platform.test"


def test_support_reset_reaches_any_active_admin_of_the_tenant(operator_client: APIClient, deliver: Deliver) -> None:
    helper = make_user(ACME, email="helper@acme.test", is_staff=True)  # staff, not superuser
    with sent(deliver) as outbox:
        response = operator_client.post(support_url(ACME.slug), {"email": helper.email}, format="json")
    assert response.status_code == 202, response.content
    assert [m.to for m in outbox] == [[helper.email]]


def test_support_reset_refuses_who_is_not_an_active_admin_of_that_tenant(
    operator_client: APIClient, deliver: Deliver
) -> None:
    make_user(ACME, email="member@acme.test")  # not staff
    make_user(ACME, email="gone@acme.test", is_staff=True, is_active=False)
    with sent(deliver) as outbox:
        for email in ("nobody@acme.test", "member@acme.test", "gone@acme.test", GLOBEX.admin_email, OPERATOR_EMAIL):
            response = operator_client.post(support_url(ACME.slug), {"email": email}, format="json")
            body = assert_error(response, 400, field="email")
            assert set(body["errors"]) == {"email"}
    assert outbox == []
    assert support_entries(ACME.schema) == []
    assert support_entries(PLATFORM.schema) == []


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({}, {"email"}),
        ({"email": "not an email"}, {"email"}),
        ({"email": ""}, {"email"}),
        ({"email": ACME.admin_email, "new_password": NEW_PASSWORD}, {"new_password"}),
    ],
)
def test_support_reset_body_errors_name_the_fields(
    operator_client: APIClient, payload: dict[str, Any], fields: set[str]
) -> None:
    body = assert_error(operator_client.post(support_url(ACME.slug), payload, format="json"), 400)
    assert set(body["errors"]) == fields
    assert support_entries(ACME.schema) == []


def test_support_reset_of_an_unknown_tenant_is_404(operator_client: APIClient) -> None:
    for slug in ("nope", "tenant-template"):
        assert_error(operator_client.post(support_url(slug), {"email": ACME.admin_email}, format="json"), 404)


def test_support_reset_of_a_suspended_tenant_is_409(operator_client: APIClient, deliver: Deliver) -> None:
    tenant_archive(tenant=Tenant.objects.get(slug=GLOBEX.slug))
    with sent(deliver) as outbox:
        response = operator_client.post(support_url(GLOBEX.slug), {"email": GLOBEX.admin_email}, format="json")
    assert_error(response, 409, code="conflict")
    assert outbox == []
    assert support_entries(GLOBEX.schema) == []


def test_support_reset_is_for_operators_only(db: None) -> None:
    body = {"email": ACME.admin_email}
    assert_error(api_client(BASE).post(support_url(ACME.slug), body, format="json"), 401)
    make_user(PLATFORM, email="clerk@platform.test", username="clerk")
    assert_error(as_operator("clerk@platform.test").post(support_url(ACME.slug), body, format="json"), 403)
    # Not routed on tenant hosts, even for the tenant's own admin.
    assert_error(admin_client(ACME).post(support_url(ACME.slug), body, format="json"), 404)
    assert support_entries(ACME.schema) == []


# --- tokens are bound to their schema ----------------------------------------------------------------------


def test_tenant_tokens_cannot_call_the_operator_endpoints(db: None) -> None:
    """An acme admin's token (a superuser of acme, with an id that exists in
    public too) is refused on every endpoint of the public host: 401."""
    access = jwt_login(ACME, ACME.admin_email)["access"]
    assert api_client(ACME, token=access).get(ME).status_code == 200  # control: valid where issued
    client = api_client(BASE, token=access)
    assert_error(client.get(ME), 401)
    assert_error(client.patch(ME, {"first_name": "Pwned"}, format="json"), 401)
    change = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    assert_error(client.post(SET_PASSWORD, change, format="json"), 401)
    assert_error(client.post(LOGOUT_ALL), 401)
    assert_error(client.get(OPERATORS), 401)
    new = {"email": "x@platform.test", "username": "x", "password": NEW_PASSWORD}
    assert_error(client.post(OPERATORS, new, format="json"), 401)
    assert_error(
        client.patch(operator_url(user_id(PLATFORM, OPERATOR_EMAIL)), {"is_active": False}, format="json"), 401
    )
    assert_error(client.post(support_url(GLOBEX.slug), {"email": GLOBEX.admin_email}, format="json"), 401)
    assert public_flags(user_id(PLATFORM, OPERATOR_EMAIL)) == (True, True, True)
    assert not User.objects.filter(email="x@platform.test").exists()


def test_operator_tokens_do_not_work_on_tenant_hosts(operator_client: APIClient) -> None:
    access = jwt_login(BASE, OPERATOR_EMAIL)["access"]
    assert_error(api_client(ACME, token=access).get(ME), 401)
    assert_error(api_client(ACME, token=access).post(LOGOUT_ALL), 401)
    assert_error(api_client(ACME, token=access).get(OPERATORS), 404)  # not routed on tenant hosts


def test_the_public_schema_documents_the_operator_endpoints(db: None) -> None:
    public = api_client(BASE).get("/api/schema/", {"format": "json"}).json()["paths"]
    for path in (ME, SET_PASSWORD, LOGOUT_ALL, OPERATORS, "/api/platform/operators/{id}/"):
        assert path in public, sorted(public)
    assert "/api/platform/tenants/{slug}/support/password-reset/" in public
    assert "202" in public["/api/platform/tenants/{slug}/support/password-reset/"]["post"]["responses"]
    tenant = api_client(ACME).get("/api/schema/", {"format": "json"}).json()["paths"]
    assert OPERATORS not in tenant


def test_support_resets_are_throttled_per_address(
    operator_client: APIClient, deliver: Deliver, rates: Callable[..., None]
) -> None:
    rates(reset_account="2/hour")
    with sent(deliver) as outbox:
        for _ in range(2):
            assert (
                operator_client.post(support_url(ACME.slug), {"email": ACME.admin_email}, format="json").status_code
                == 202
            )
        throttled = operator_client.post(support_url(ACME.slug), {"email": ACME.admin_email.upper()}, format="json")
    assert_throttled(throttled)
    assert len(outbox) == 2  # the refused one sent nothing
    # Another tenant's admin has its own count.
    assert (
        operator_client.post(support_url(GLOBEX.slug), {"email": GLOBEX.admin_email}, format="json").status_code == 202
    )
