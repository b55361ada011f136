"""Invitations (issue 11, point 3): a tenant admin invites an email address
into groups (and object grants on products); the link's owner picks a
username and a password, through the API or the page, and arrives active in
them.

Real requests through the tenant middleware, DRF and simplejwt; real JWTs;
the link is taken from the email the API sent (the locmem backend, via the
``deliver`` fixture). An existing account is refused (409
``already_registered``), at invitation time and at acceptance.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core import mail as django_mail
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts import invitation_grants
from accounts.models import AuditEntry, Invitation, User
from tests.accounts.test_djoser_endpoints import Deliver, sent
from tests.helpers import (
    ACME,
    AUDIT,
    BASE,
    GLOBEX,
    PASSWORD,
    DemoTenant,
    admin_client,
    admin_id,
    api_client,
    assert_error,
    assert_throttled,
    detail_url,
    jwt_login,
    make_group,
    make_product,
    make_user,
)

pytestmark = pytest.mark.django_db

INVITATIONS = "/api/invitations/"
ACCEPT = "/api/auth/invitations/accept/"
PREVIEW = "/api/auth/invitations/preview/"
# http://acme.localhost/invitation/<token>: the tenant's primary domain, nothing else.
LINK = re.compile(r"(?P<scheme>https?)://(?P<host>[^/\s]+)/invitation/(?P<token>[A-Za-z0-9_-]+)")
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
WEAK = "12345"


# --- helpers -----------------------------------------------------------------------------------


def url(pk: Any, verb: str = "") -> str:
    return f"{INVITATIONS}{pk}/" + (f"{verb}/" if verb else "")


def token_of(message: Any) -> str:
    links = list(LINK.finditer(message.body))
    assert len(links) == 1, message.body
    assert links[0]["host"] == ACME.host, message.body  # acme's primary domain, never the public host
    assert f"//{BASE}/" not in message.body
    return links[0]["token"]


def invite(deliver: Deliver, email: str, *, client: Any = None, status: int = 201, **body: Any) -> tuple[Any, str]:
    """POST an invitation; the answer, and the token of the link it emailed
    (when it succeeded: exactly one email, to ``email``)."""
    with sent(deliver) as outbox:
        response = (client or admin_client()).post(INVITATIONS, {"email": email, **body}, format="json")
    assert response.status_code == status, response.content
    if status != 201:
        assert outbox == []
        return response, ""
    (message,) = outbox
    assert [to.lower() for to in message.to] == [email.lower()]
    return response, token_of(message)


def accept(token: str, username: str, password: str = PASSWORD, where: DemoTenant = ACME, **extra: Any) -> Any:
    body = {"token": token, "username": username, "password": password, **extra}
    return api_client(where).post(ACCEPT, body, format="json")


def invitation(pk: int, tenant: DemoTenant = ACME) -> Invitation:
    with schema_context(tenant.schema):
        return Invitation.objects.get(pk=pk)


def user_in(tenant: DemoTenant, email: str) -> User | None:
    with schema_context(tenant.schema):
        return User.objects.filter(email__iexact=email).first()


def group_names(user: User) -> list[str]:
    with schema_context(ACME.schema):
        return sorted(user.groups.values_list("name", flat=True))


def expire(pk: int) -> None:
    with schema_context(ACME.schema):
        Invitation.objects.filter(pk=pk).update(expires_at=timezone.now() - timedelta(seconds=1))


def audit(**query: Any) -> list[dict[str, Any]]:
    response = admin_client().get(AUDIT, query)
    assert response.status_code == 200, response.content
    return list(response.json()["results"])


def page_client(host: str = ACME.host) -> Client:
    return Client(HTTP_HOST=host, enforce_csrf_checks=True)


def submit(client: Client, path: str, page: Any, **fields: str) -> Any:
    found = CSRF.search(page.content.decode())
    assert found, page.content[:500]
    return client.post(path, {"csrfmiddlewaretoken": found[1], **fields})


def html(response: Any, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.content[:800])
    assert response["Content-Type"].startswith("text/html")
    assert response["Cache-Control"] == "no-store"
    return str(response.content.decode())


@pytest.fixture(autouse=True)
def _generous_throttles(rates: Callable[..., None]) -> None:
    """Tests log in and call the token endpoints more often than a person
    would; the throttles themselves are tests/accounts/test_brute_force.py's."""
    rates()


@pytest.fixture
def editors() -> Group:
    return make_group(ACME, name="Editors", perms=("change_product",))


# --- the whole flow ------------------------------------------------------------------------------


def test_invited_address_accepts_through_the_api_and_arrives_in_the_groups_with_the_grants(
    deliver: Deliver, editors: Group
) -> None:
    product = make_product(ACME, name="Secret widget")
    grants = [{"model": "catalog.product", "id": product.pk, "permissions": ["view_product"]}]
    response, token = invite(deliver, "Newcomer@Acme.test", groups=[editors.pk], object_grants=grants)

    body = response.json()
    assert body["email"] == "Newcomer@acme.test"  # the domain part normalised, as users' emails are
    assert body["status"] == "pending"
    assert body["groups"] == [{"id": editors.pk, "name": "Editors"}]
    assert body["object_grants"] == grants
    assert body["invited_by"] == {"id": admin_id(), "email": ACME.admin_email}
    assert body["sent_count"] == 1
    assert body["accepted_user"] is None
    assert token not in response.content.decode()  # the token is only ever in the email
    with schema_context(ACME.schema):
        assert not Invitation.objects.filter(token_hash=token).exists()  # only its HMAC is stored

    preview = api_client().post(PREVIEW, {"token": token}, format="json")
    assert preview.status_code == 200, preview.content
    assert preview.json()["tenant"] == "Acme"
    assert preview.json()["email"] == "Newcomer@acme.test"
    assert preview.json()["groups"] == ["Editors"]
    assert user_in(ACME, "newcomer@acme.test") is None  # previews change nothing

    with sent(deliver) as outbox:
        accepted = accept(token, "newcomer", first_name="New", last_name="Comer")
    assert accepted.status_code == 201, accepted.content
    made = accepted.json()
    assert made["email"] == "Newcomer@acme.test"
    assert made["username"] == "newcomer"
    assert made["first_name"] == "New"
    assert made["is_active"] is True
    assert made["groups"] == ["Editors"]
    assert "access" not in made
    assert "refresh" not in made
    (confirmation,) = outbox
    assert confirmation.to == ["Newcomer@acme.test"]

    user = user_in(ACME, "newcomer@acme.test")
    assert user is not None
    assert user.is_active
    assert not user.is_staff
    assert group_names(user) == ["Editors"]
    with schema_context(ACME.schema):
        assert user.has_perm("catalog.change_product")
        state = Invitation.objects.get(pk=body["id"])
        assert (state.status, state.accepted_user_id) == ("accepted", user.pk)
        assert state.accepted_at is not None

    # They log in with the email and the password they chose, and see the granted product.
    pair = jwt_login(ACME, "newcomer@acme.test", PASSWORD)
    client = api_client(token=pair["access"])
    assert client.get("/api/auth/users/me/").json()["email"] == "Newcomer@acme.test"
    assert client.get(detail_url(product.pk)).status_code == 200
    assert api_client(user=make_user(ACME)).get(detail_url(product.pk)).status_code == 404

    # The list shows it accepted.
    listed = admin_client().get(INVITATIONS, {"status": "accepted"}).json()
    assert [item["id"] for item in listed["results"]] == [body["id"]]
    assert listed["results"][0]["accepted_user"] == user.pk


def test_the_email_names_the_tenant_the_groups_and_the_expiry(deliver: Deliver, editors: Group) -> None:
    with sent(deliver) as outbox:
        response = admin_client().post(
            INVITATIONS, {"email": "mailed@acme.test", "groups": [editors.pk]}, format="json"
        )
    assert response.status_code == 201, response.content
    (message,) = outbox
    assert message.subject == "You are invited to join Acme"
    assert "Editors" in message.body
    assert ACME.admin_email in message.body
    expires = invitation(response.json()["id"]).expires_at
    assert expires - timezone.now() > timedelta(days=6, hours=23)  # ACCOUNT_INVITATION_TIMEOUT: a week
    assert f"{expires:%Y-%m-%d %H:%M} UTC" in message.body


# --- one use, expiry, revocation, resending ------------------------------------------------------


def test_accepting_twice_fails(deliver: Deliver, editors: Group) -> None:
    _, token = invite(deliver, "twice@acme.test", groups=[editors.pk])
    assert accept(token, "twice").status_code == 201
    again = accept(token, "twice_again")
    assert_error(again, 400, field="token", code="invalid_token")
    assert assert_error(accept(token, "twice"), 400, field="token", code="invalid_token")
    with schema_context(ACME.schema):
        assert not User.objects.filter(username="twice_again").exists()
        assert User.objects.filter(email__iexact="twice@acme.test").count() == 1


def test_an_expired_invitation_fails_with_its_own_code_until_it_is_resent(deliver: Deliver, editors: Group) -> None:
    response, token = invite(deliver, "late@acme.test", groups=[editors.pk])
    pk = response.json()["id"]
    expire(pk)
    assert_error(accept(token, "late"), 400, field="token", code="invitation_expired")
    assert_error(
        api_client().post(PREVIEW, {"token": token}, format="json"), 400, field="token", code="invitation_expired"
    )
    assert user_in(ACME, "late@acme.test") is None
    assert admin_client().get(url(pk)).json()["status"] == "expired"
    assert [i["id"] for i in admin_client().get(INVITATIONS, {"status": "expired"}).json()["results"]] == [pk]
    assert admin_client().get(INVITATIONS, {"status": "pending"}).json()["results"] == []

    # A new invitation to the address is refused while this one is pending (expired or not) ...
    conflict, _ = invite(deliver, "LATE@acme.test", status=409)
    assert_error(conflict, 409, field="email", code="already_invited")

    # ... and resending starts the expiry again, with a new link.
    with sent(deliver) as outbox:
        resent = admin_client().post(url(pk, "resend"))
    assert resent.status_code == 200, resent.content
    assert resent.json()["status"] == "pending"
    assert resent.json()["sent_count"] == 2
    (message,) = outbox
    fresh = token_of(message)
    assert_error(accept(token, "late"), 400, field="token", code="invalid_token")  # the old link died
    assert accept(fresh, "late").status_code == 201


def test_resending_kills_the_old_link(deliver: Deliver) -> None:
    response, old = invite(deliver, "again@acme.test")
    with sent(deliver) as outbox:
        assert admin_client().post(url(response.json()["id"], "resend")).status_code == 200
    (message,) = outbox
    new = token_of(message)
    assert new != old
    assert_error(accept(old, "again"), 400, field="token", code="invalid_token")
    assert_error(api_client().post(PREVIEW, {"token": old}, format="json"), 400, field="token", code="invalid_token")
    assert accept(new, "again").status_code == 201
    assert invitation(response.json()["id"]).sent_count == 2


def test_a_revoked_invitation_cannot_be_accepted_resent_or_revoked_again(deliver: Deliver) -> None:
    response, token = invite(deliver, "revoked@acme.test")
    pk = response.json()["id"]
    revoked = admin_client().post(url(pk, "revoke"))
    assert revoked.status_code == 200, revoked.content
    assert revoked.json()["status"] == "revoked"
    assert revoked.json()["revoked_at"] is not None
    assert_error(accept(token, "revoked"), 400, field="token", code="invalid_token")
    assert user_in(ACME, "revoked@acme.test") is None
    assert_error(admin_client().post(url(pk, "revoke")), 409, code="invitation_closed")
    with sent(deliver) as outbox:
        assert_error(admin_client().post(url(pk, "resend")), 409, code="invitation_closed")
    assert outbox == []
    # Revoked, the address may be invited again.
    invite(deliver, "revoked@acme.test")


def test_an_accepted_invitation_cannot_be_revoked_or_resent(deliver: Deliver) -> None:
    response, token = invite(deliver, "done@acme.test")
    assert accept(token, "done").status_code == 201
    pk = response.json()["id"]
    assert_error(admin_client().post(url(pk, "revoke")), 409, code="invitation_closed")
    assert_error(admin_client().post(url(pk, "resend")), 409, code="invitation_closed")


# --- bound to the tenant -----------------------------------------------------------------------


def test_a_token_replayed_on_another_tenants_host_opens_nothing(deliver: Deliver) -> None:
    response, token = invite(deliver, "traveller@acme.test")
    assert_error(accept(token, "traveller", where=GLOBEX), 400, field="token", code="invalid_token")
    assert_error(api_client(GLOBEX).post(PREVIEW, {"token": token}, format="json"), 400, field="token")
    assert "no longer valid" in html(page_client(GLOBEX.host).get(f"/invitation/{token}"), 404)
    assert user_in(GLOBEX, "traveller@acme.test") is None
    with schema_context(GLOBEX.schema):
        assert not User.objects.filter(username="traveller").exists()
    assert invitation(response.json()["id"]).status == "pending"
    assert accept(token, "traveller").status_code == 201  # still good at home


def test_the_stored_hash_is_bound_to_the_tenant(deliver: Deliver) -> None:
    """Even a row carrying acme's very hash in globex's schema (a copied
    table, a schema name reused) does not take acme's token: the tenant is
    part of the HMAC."""
    response, token = invite(deliver, "copied@acme.test")
    stolen = invitation(response.json()["id"]).token_hash
    with schema_context(GLOBEX.schema):
        Invitation.objects.create(
            email="copied@acme.test", token_hash=stolen, expires_at=timezone.now() + timedelta(days=1)
        )
    assert_error(accept(token, "copied", where=GLOBEX), 400, field="token", code="invalid_token")
    assert user_in(GLOBEX, "copied@acme.test") is None


# --- who may invite, and into what ----------------------------------------------------------------


def test_only_tenant_admins_manage_invitations(deliver: Deliver) -> None:
    response, _ = invite(deliver, "target@acme.test")
    pk = response.json()["id"]
    member = api_client(user=make_user(ACME))
    anonymous = api_client()
    for client, status in ((member, 403), (anonymous, 401)):
        assert_error(client.get(INVITATIONS), status)
        assert_error(client.post(INVITATIONS, {"email": "x@acme.test"}, format="json"), status)
        assert_error(client.get(url(pk)), status)
        assert_error(client.post(url(pk, "resend")), status)
        assert_error(client.post(url(pk, "revoke")), status)
    # Another tenant's admin does not even see it.
    assert_error(admin_client(GLOBEX).get(url(pk)), 404)
    assert invitation(pk).status == "pending"


def test_nobody_invites_into_a_group_whose_permissions_they_do_not_hold(deliver: Deliver, editors: Group) -> None:
    staff = make_user(ACME, is_staff=True, perms=("view_product",))
    client = api_client(user=staff)
    refused, _ = invite(deliver, "escalate@acme.test", client=client, status=403, groups=[editors.pk])
    assert_error(refused, 403, code="permission_denied")
    with schema_context(ACME.schema):
        assert not Invitation.objects.filter(email="escalate@acme.test").exists()
    viewers = make_group(ACME, name="Viewers", perms=("view_product",))
    invite(deliver, "escalate@acme.test", client=client, groups=[viewers.pk])


def test_nobody_invites_with_object_grants_they_do_not_hold(deliver: Deliver) -> None:
    staff = make_user(ACME, is_staff=True)
    client = api_client(user=staff)
    theirs = make_product(ACME, owner=staff)
    other = make_product(ACME)
    grant = {"model": "catalog.product", "permissions": ["change_product"]}
    refused, _ = invite(deliver, "g@acme.test", client=client, status=403, object_grants=[{**grant, "id": other.pk}])
    assert_error(refused, 403, code="permission_denied")
    # The owner holds change on its own product (but not publish).
    publish = {**grant, "id": theirs.pk, "permissions": ["can_publish_product"]}
    assert_error(invite(deliver, "g@acme.test", client=client, status=403, object_grants=[publish])[0], 403)
    invite(deliver, "g@acme.test", client=client, object_grants=[{**grant, "id": theirs.pk}])


@pytest.mark.parametrize(
    ("grants", "message"),
    [
        ([{"model": "catalog.product", "id": 2**40, "permissions": ["view_product"]}], "No such product"),
        ([{"model": "catalog.product", "id": "PRODUCT", "permissions": ["view_product"]}], "whole number"),
        ([{"model": "catalog.product", "permissions": ["view_product"]}], "exactly"),
        ([{"model": "catalog.product", "id": 1, "permissions": ["add_product"]}], "Unknown product permission"),
        ([{"model": "catalog.product", "id": 1, "permissions": []}], "1 to 10"),
        ([{"model": "accounts.user", "id": 1, "permissions": ["change_user"]}], "cannot carry grants"),
        ([{"model": "catalog.product\x00", "id": 1, "permissions": ["view_product"]}], "model label"),
        ({"model": "catalog.product"}, "Expected a list"),
        (["view_product"], "exactly"),
    ],
)
def test_bad_object_grants_are_a_400_naming_the_field(deliver: Deliver, grants: Any, message: str) -> None:
    make_product(ACME)  # so that id 1 may exist
    response, _ = invite(deliver, "bad@acme.test", status=400, object_grants=grants)
    body = assert_error(response, 400, field="object_grants")
    assert message in " ".join(body["errors"]["object_grants"]), body
    with schema_context(ACME.schema):
        assert not Invitation.objects.exists()


def test_object_grants_are_refused_when_no_app_registered_their_model(
    deliver: Deliver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without catalog's registration (catalog.apps), grants on products are
    refused, not silently dropped."""
    product = make_product(ACME)
    monkeypatch.setattr(invitation_grants, "_handlers", {})
    grants = [{"model": "catalog.product", "id": product.pk, "permissions": ["view_product"]}]
    response, _ = invite(deliver, "unregistered@acme.test", status=400, object_grants=grants)
    assert_error(response, 400, field="object_grants")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "email"),
        ({"email": "not an email"}, "email"),
        ({"email": "x@acme.test", "groups": [999999]}, "groups"),
        ({"email": "x@acme.test", "groups": "Editors"}, "groups"),
        ({"email": "x@acme.test", "groups": [True]}, "groups"),
        ({"email": "x@acme.test", "is_staff": True}, "is_staff"),
    ],
)
def test_bad_invitations_are_a_400_naming_the_field(deliver: Deliver, body: dict[str, Any], field: str) -> None:
    with sent(deliver) as outbox:
        response = admin_client().post(INVITATIONS, body, format="json")
    assert_error(response, 400, field=field)
    assert outbox == []


# --- an address that already has an account ---------------------------------------------------


def test_an_address_with_an_account_is_refused_at_invitation_time(deliver: Deliver, editors: Group) -> None:
    """An emailed link must not change an existing account's access: the
    admin adds an existing user to groups through /api/groups/."""
    make_user(ACME, email="member@acme.test")
    response, _ = invite(deliver, "MEMBER@acme.test", status=409, groups=[editors.pk])
    body = assert_error(response, 409, field="email", code="already_registered")
    assert "/api/groups/" in body["detail"]
    # Another tenant's account with that address is no obstacle.
    make_user(GLOBEX, email="elsewhere@acme.test")
    invite(deliver, "elsewhere@acme.test")


def test_an_account_made_meanwhile_makes_acceptance_fail_and_nothing_changes(deliver: Deliver, editors: Group) -> None:
    response, token = invite(deliver, "quick@acme.test", groups=[editors.pk])
    existing = make_user(ACME, email="Quick@acme.test", username="quick_registered")
    assert_error(accept(token, "quick"), 409, code="already_registered")
    assert group_names(existing) == []
    with schema_context(ACME.schema):
        assert not User.objects.filter(username="quick").exists()
    assert invitation(response.json()["id"]).status == "pending"
    with sent(deliver) as outbox:
        assert_error(admin_client().post(url(response.json()["id"], "resend")), 409, code="already_registered")
    assert outbox == []


# --- the inviter's rights at acceptance ---------------------------------------------------------


@pytest.mark.parametrize("change", ["lost_permission", "no_longer_staff", "deleted"])
def test_acceptance_fails_cleanly_when_the_inviter_may_no_longer_grant(
    deliver: Deliver, editors: Group, change: str
) -> None:
    staff = make_user(ACME, is_staff=True, perms=("change_product", "view_product"))
    product = make_product(ACME, owner=None)
    grants = [{"model": "catalog.product", "id": product.pk, "permissions": ["view_product"]}]
    response, token = invite(
        deliver, "orphan@acme.test", client=api_client(user=staff), groups=[editors.pk], object_grants=grants
    )
    with schema_context(ACME.schema):
        if change == "lost_permission":
            staff.user_permissions.clear()
        elif change == "no_longer_staff":
            User.objects.filter(pk=staff.pk).update(is_staff=False)
        else:
            staff.delete()
    with sent(deliver) as outbox:
        refused = accept(token, "orphan")
    assert_error(refused, 409, code="invitation_stale")
    assert outbox == []
    with schema_context(ACME.schema):
        assert not User.objects.filter(username="orphan").exists()
        assert not editors.user_set.exists()
        assert not AuditEntry.objects.filter(action__in=["invitation.accept", "group.member_add"]).exists()
    assert invitation(response.json()["id"]).status == "pending"


def test_acceptance_fails_cleanly_when_a_granted_product_is_gone(deliver: Deliver) -> None:
    product = make_product(ACME)
    grants = [{"model": "catalog.product", "id": product.pk, "permissions": ["view_product"]}]
    _, token = invite(deliver, "gone@acme.test", object_grants=grants)
    with schema_context(ACME.schema):
        product.delete()
    assert_error(accept(token, "gone"), 409, code="invitation_stale")
    assert user_in(ACME, "gone@acme.test") is None


# --- the acceptance's own input -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"username": "fresh", "password": WEAK}, "password", "invalid"),
        ({"username": "fresh", "password": "fresh@acme.test"}, "password", "invalid"),  # like the email
        ({"username": "taken", "password": PASSWORD}, "username", "invalid"),
        ({"username": "no spaces", "password": PASSWORD}, "username", "invalid"),
        ({"password": PASSWORD}, "username", "invalid"),
        ({"username": "fresh"}, "password", "invalid"),
        ({"username": "fresh", "password": PASSWORD, "first_name": "A\x00"}, "first_name", "invalid"),
        ({"username": "fresh", "password": PASSWORD, "is_staff": True}, "is_staff", "invalid"),
        ({"username": "fresh", "password": PASSWORD, "token": "x" * 129}, "token", "invalid"),
        ({"username": "fresh", "password": PASSWORD, "token": "not/a token"}, "token", "invalid_token"),
        ({"username": "fresh", "password": PASSWORD, "token": 7}, "token", "invalid_token"),
    ],
)
def test_bad_acceptances_are_a_400_naming_the_field_and_make_nothing(
    deliver: Deliver, body: dict[str, Any], field: str, code: str
) -> None:
    make_user(ACME, username="taken")
    response, token = invite(deliver, "fresh@acme.test")
    answer = api_client().post(ACCEPT, {"token": token, **body}, format="json")
    assert_error(answer, 400, field=field, code=code)
    assert user_in(ACME, "fresh@acme.test") is None
    assert invitation(response.json()["id"]).status == "pending"


# --- the list ---------------------------------------------------------------------------------


def test_invitations_are_listed_newest_first_paginated_and_filtered(deliver: Deliver) -> None:
    first = invite(deliver, "one@acme.test")[0].json()["id"]
    second = invite(deliver, "two@acme.test")[0].json()["id"]
    third = invite(deliver, "three@acme.test")[0].json()["id"]
    admin_client().post(url(second, "revoke"))
    expire(third)
    listing = admin_client().get(INVITATIONS).json()
    assert listing["count"] == 3
    assert [item["id"] for item in listing["results"]] == [third, second, first]
    for state, ids in (("pending", [first]), ("revoked", [second]), ("expired", [third]), ("accepted", [])):
        found = admin_client().get(INVITATIONS, {"status": state}).json()["results"]
        assert [item["id"] for item in found] == ids, state
    assert [i["id"] for i in admin_client().get(INVITATIONS, {"email": "ONE@acme.test"}).json()["results"]] == [first]
    assert_error(admin_client().get(INVITATIONS, {"status": "lost"}), 400, field="status")
    assert admin_client().get(INVITATIONS, {"page_size": 1}).json()["next"]
    assert_error(admin_client().get(url(2**62)), 404)
    assert_error(admin_client().get(f"{INVITATIONS}abc/"), 404)


# --- the audit log -------------------------------------------------------------------------------


def test_each_step_is_audited_with_its_actor(deliver: Deliver, editors: Group) -> None:
    product = make_product(ACME)
    grants = [{"model": "catalog.product", "id": product.pk, "permissions": ["view_product"]}]
    response, _ = invite(deliver, "audited@acme.test", groups=[editors.pk], object_grants=grants)
    pk = response.json()["id"]
    with sent(deliver) as outbox:
        admin_client().post(url(pk, "resend"))
    token = token_of(outbox[0])
    assert accept(token, "audited").status_code == 201
    other = invite(deliver, "dropped@acme.test")[0].json()["id"]
    admin_client().post(url(other, "revoke"))

    admin = {"id": admin_id(), "email": ACME.admin_email}
    user = user_in(ACME, "audited@acme.test")
    assert user is not None
    steps = audit(subject_type="invitation", subject_id=pk)
    assert [e["action"] for e in steps] == ["invitation.accept", "invitation.resend", "invitation.create"]
    assert all(e["actor"] == admin for e in steps), steps
    assert all(e["subject"] == {"type": "invitation", "id": pk, "name": "audited@acme.test"} for e in steps)
    assert steps[0]["target"] == {"type": "user", "id": user.pk, "name": "audited@acme.test"}
    assert steps[2]["changes"]["groups"] == [{"id": editors.pk, "name": "Editors"}]
    assert steps[2]["changes"]["object_grants"] == grants
    revoked, created = audit(subject_type="invitation", subject_id=other)
    assert (revoked["action"], revoked["actor"]) == ("invitation.revoke", admin)
    assert (created["action"], created["actor"]) == ("invitation.create", admin)

    # What the acceptance granted is audited by the usual entries, the inviter as actor.
    (joined,) = audit(subject_type="user", subject_id=user.pk, action="group.member_add")
    assert joined["actor"] == admin
    assert joined["target"]["name"] == "Editors"
    (granted,) = audit(subject_type="user", subject_id=user.pk, action="object.grant")
    assert granted["actor"] == admin
    assert granted["permission"] == "catalog.view_product"
    assert granted["target"]["id"] == product.pk


# --- the page ---------------------------------------------------------------------------------------


def test_the_page_shows_the_invitation_and_changes_nothing(deliver: Deliver, editors: Group) -> None:
    response, token = invite(deliver, "pager@acme.test", groups=[editors.pk])
    with schema_context(ACME.schema):
        before = AuditEntry.objects.count()
    for path in (f"/invitation/{token}", f"/invitation/{token}/"):  # the trailing slash is optional
        text = html(page_client().get(path), 200)
        assert "Acme" in text
        assert "pager@acme.test" in text
        assert "Editors" in text
        assert 'name="csrfmiddlewaretoken"' in text
        assert 'name="username"' in text
        assert 'name="password"' in text
        assert 'name="re_password"' in text
        # A form posted under "no-referrer" carries "Origin: null" (Chromium), which the CSRF check refuses.
        assert page_client().get(path)["Referrer-Policy"] == "same-origin"
    assert page_client().head(f"/invitation/{token}").status_code == 200
    assert user_in(ACME, "pager@acme.test") is None
    assert invitation(response.json()["id"]).status == "pending"
    with schema_context(ACME.schema):
        assert AuditEntry.objects.count() == before


def test_the_page_shows_the_validators_messages_and_makes_nothing(deliver: Deliver) -> None:
    _, token = invite(deliver, "weak@acme.test")
    client = page_client()
    path = f"/invitation/{token}"
    form = client.get(path)
    weak = html(submit(client, path, form, username="weak", password=WEAK, re_password=WEAK), 400)
    assert "This password is too short" in weak
    assert "This password is entirely numeric" in weak
    mismatch = html(submit(client, path, form, username="weak", password=PASSWORD, re_password=PASSWORD + "!"), 400)
    assert "The two passwords do not match." in mismatch
    make_user(ACME, username="weak_taken")
    taken = html(submit(client, path, form, username="weak_taken", password=PASSWORD, re_password=PASSWORD), 400)
    assert "A user with that username already exists." in taken
    assert user_in(ACME, "weak@acme.test") is None


def test_the_page_makes_the_account_once(deliver: Deliver, editors: Group) -> None:
    _, token = invite(deliver, "paged@acme.test", groups=[editors.pk])
    client = page_client()
    path = f"/invitation/{token}/"
    done = html(submit(client, path, client.get(path), username="paged", password=PASSWORD, re_password=PASSWORD), 200)
    assert "Your account is active in Editors" in done
    user = user_in(ACME, "paged@acme.test")
    assert user is not None
    assert user.is_active
    assert user.username == "paged"
    assert group_names(user) == ["Editors"]
    jwt_login(ACME, "paged@acme.test", PASSWORD)
    used = html(client.get(path), 404)
    assert "This invitation has already been used or is no longer valid" in used
    assert 'name="password"' not in used


def test_the_page_refuses_a_post_without_the_csrf_token(deliver: Deliver) -> None:
    _, token = invite(deliver, "forged@acme.test")
    forged = page_client().post(f"/invitation/{token}", {"username": "forged", "password": PASSWORD})
    assert forged.status_code == 403
    assert user_in(ACME, "forged@acme.test") is None


def test_the_page_of_an_expired_revoked_or_foreign_invitation(deliver: Deliver) -> None:
    late, late_token = invite(deliver, "late.page@acme.test")
    expire(late.json()["id"])
    expired = html(page_client().get(f"/invitation/{late_token}"), 410)
    assert "This invitation has expired" in expired
    assert 'name="password"' not in expired
    gone, gone_token = invite(deliver, "gone.page@acme.test")
    admin_client().post(url(gone.json()["id"], "revoke"))
    assert "no longer valid" in html(page_client().get(f"/invitation/{gone_token}"), 404)
    _, token = invite(deliver, "foreign.page@acme.test")
    foreign = page_client(GLOBEX.host)
    assert "no longer valid" in html(foreign.get(f"/invitation/{token}"), 404)
    for garbage in ("x", "a" * 128, "%C3%A9", "..."):
        assert page_client().get(f"/invitation/{garbage}").status_code == 404
    assert "no longer valid" in html(Client(HTTP_HOST=ACME.host).post(f"/invitation/{token}x", {"username": "u"}), 404)


def test_the_page_says_why_an_invitation_cannot_be_accepted_now(deliver: Deliver) -> None:
    _, token = invite(deliver, "meanwhile@acme.test")
    client = page_client()
    path = f"/invitation/{token}"
    form = client.get(path)
    make_user(ACME, email="meanwhile@acme.test", username="meanwhile_registered")
    refused = html(submit(client, path, form, username="meanwhile", password=PASSWORD, re_password=PASSWORD), 409)
    assert "An account with this email already exists" in refused


def test_no_email_leaves_when_the_invitation_is_refused(deliver: Deliver, editors: Group) -> None:
    """Emails are written in the service's transaction: a refusal sends nothing."""
    staff = make_user(ACME, is_staff=True)
    with sent(deliver) as outbox:
        response = api_client(user=staff).post(
            INVITATIONS, {"email": "never@acme.test", "groups": [editors.pk]}, format="json"
        )
    assert_error(response, 403)
    assert outbox == []
    assert not [m for m in django_mail.outbox if "never@acme.test" in m.to]


def test_the_token_doors_are_throttled_per_ip(deliver: Deliver, rates: Callable[..., None]) -> None:
    """Accept, preview and the page's POST share the reset doors' per-IP counter."""
    _, token = invite(deliver, "hasty@acme.test")
    rates(reset_ip="2/hour")
    assert api_client().post(PREVIEW, {"token": token}, format="json").status_code == 200
    assert_error(accept("nonsense", "hasty"), 400, field="token", code="invalid_token")
    assert_throttled(accept(token, "hasty"))
    client = page_client()
    path = f"/invitation/{token}"
    html(submit(client, path, client.get(path), username="hasty", password=PASSWORD, re_password=PASSWORD), 429)
    assert user_in(ACME, "hasty@acme.test") is None
