"""Joining a group gives its object grants on products too, so nobody puts
anyone in a group holding grants they do not hold themselves: through the
groups API, an invitation (when made and when accepted), or any other path
that writes memberships (accounts.roles.check_may_join, catalog.guards).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import Group
from django.db import transaction
from django_tenants.utils import schema_context
from guardian.shortcuts import assign_perm

from accounts.audit.recording import acting_as
from accounts.models import Invitation, User
from accounts.roles import RoleRefused
from catalog.models import Product
from tests.accounts.test_djoser_endpoints import Deliver
from tests.accounts.test_invitations import accept, invite
from tests.helpers import ACME, admin_client, api_client, assert_error, make_group, make_product, make_user

pytestmark = pytest.mark.django_db

KEEPER_PERMS = ("view_product", "change_product", "delete_product")


@pytest.fixture(autouse=True)
def _generous(rates: Callable[..., None]) -> None:
    rates()


@pytest.fixture
def jewels() -> Product:
    return make_product(ACME, name="Crown jewels")


@pytest.fixture
def keepers(jewels: Product) -> Group:
    """A group holding object grants on one product (and no model permission)."""
    group = make_group(ACME, name="Jewel keepers")
    with schema_context(ACME.schema):
        for codename in KEEPER_PERMS:
            assign_perm(f"catalog.{codename}", group, jewels)
    return group


@pytest.fixture
def junior() -> User:
    """A tenant admin who is not a superuser and holds nothing on the product."""
    return make_user(ACME, email="junior-admin@acme.test", is_staff=True)


def test_the_groups_api_refuses_to_add_members_to_grants_the_actor_lacks(
    junior: User, keepers: Group, jewels: Product
) -> None:
    client = api_client(ACME, user=junior)
    response = client.patch(f"/api/groups/{keepers.pk}/", {"users": [junior.pk]}, format="json")
    assert_error(response, 403, code="permission_denied")
    assert "object permissions on products" in response.json()["detail"]
    with schema_context(ACME.schema):
        assert not keepers.user_set.exists()
    assert client.delete(f"/api/products/{jewels.pk}/").status_code == 404  # still nothing on it


def test_who_holds_the_grants_may_add_members(junior: User, keepers: Group, jewels: Product) -> None:
    with schema_context(ACME.schema):
        for codename in KEEPER_PERMS:
            assign_perm(f"catalog.{codename}", junior, jewels)
        member = make_user(ACME, prefix="keeper")
    response = api_client(ACME, user=junior).patch(
        f"/api/groups/{keepers.pk}/",
        {"users": [member.pk]},
        format="json",
    )
    assert response.status_code == 200, response.content
    # The tenant's superuser may too, holding everything.
    other = make_user(ACME, prefix="keeper")
    response = admin_client().patch(f"/api/groups/{keepers.pk}/", {"users": [member.pk, other.pk]}, format="json")
    assert response.status_code == 200, response.content


def test_every_path_that_writes_memberships_is_guarded(junior: User, keepers: Group) -> None:
    with schema_context(ACME.schema):
        target = make_user(ACME, prefix="shell")
        # A refused add leaves its transaction unusable, as any refused write: one each.
        with acting_as(junior), pytest.raises(RoleRefused), transaction.atomic():
            target.groups.add(keepers)
        with acting_as(junior), pytest.raises(RoleRefused), transaction.atomic():
            keepers.user_set.add(target)
        assert not target.groups.exists()


def test_an_invitation_into_such_a_group_is_refused(deliver: Deliver, junior: User, keepers: Group) -> None:
    client = api_client(ACME, user=junior)
    response, _token = invite(deliver, "esc@acme.test", client=client, status=403, groups=[keepers.pk])
    assert "object permissions on products" in response.json()["detail"]
    with schema_context(ACME.schema):
        assert not Invitation.objects.filter(email="esc@acme.test").exists()


def test_an_accepted_invitation_is_judged_by_the_groups_grants_at_acceptance(
    deliver: Deliver, junior: User, jewels: Product
) -> None:
    group = make_group(ACME, name="Soon keepers")
    _response, token = invite(deliver, "later@acme.test", client=api_client(ACME, user=junior), groups=[group.pk])
    with schema_context(ACME.schema):  # meanwhile the group is given grants the inviter lacks
        assign_perm("catalog.delete_product", group, jewels)
    assert_error(accept(token, "later"), 409, code="invitation_stale")
    with schema_context(ACME.schema):
        assert not User.objects.filter(email="later@acme.test").exists()
        assert Invitation.objects.get(email="later@acme.test").status == Invitation.Status.PENDING
