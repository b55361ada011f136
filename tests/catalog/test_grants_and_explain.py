"""Object grants (per product and bulk), their audit trail, and the explain endpoint.

Real requests with real JWTs; users, groups and grants are created in acme's
schema with the ORM and guardian where the test is not about the API that
creates them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django_tenants.utils import schema_context
from guardian.shortcuts import assign_perm, remove_perm
from rest_framework.permissions import IsAuthenticated
from rest_framework.test import APIRequestFactory, force_authenticate

from accounts.models import User
from catalog.models import Product, ProductGroupObjectPermission, ProductUserObjectPermission
from catalog.views import ProductViewSet
from tests.helpers import (
    ACME,
    AUDIT,
    BULK,
    access_url,
    admin_client,
    admin_id,
    api_client,
    assert_error,
    detail_url,
    grants_url,
    list_ids,
    make_group,
    make_product,
    make_user,
)

pytestmark = pytest.mark.django_db


# --- helpers -------------------------------------------------------------------------------------------------


def held(product: Product) -> set[tuple[str, int, str]]:
    """Every object grant on the product, as (kind, holder id, codename), read from the tables."""
    with schema_context(ACME.schema):
        users = ProductUserObjectPermission.objects.filter(content_object_id=product.pk)
        groups = ProductGroupObjectPermission.objects.filter(content_object_id=product.pk)
        return {("user", u, c) for u, c in users.values_list("user_id", "permission__codename")} | {
            ("group", g, c) for g, c in groups.values_list("group_id", "permission__codename")
        }


def audit_entries(action: str, **filters: Any) -> list[dict[str, Any]]:
    query = "&".join([f"action={action}", *(f"{k}={v}" for k, v in filters.items()), "page_size=500"])
    response = admin_client().get(f"{AUDIT}?{query}")
    assert response.status_code == 200, response.content
    body = response.json()
    entries = body["results"] if isinstance(body, dict) else body
    if isinstance(body, dict) and body.get("next"):
        pytest.fail("audit page too small for this test")
    assert all(entry["action"] == action for entry in entries), entries
    return list(entries)


def audit_set(action: str, product: Product | None = None) -> set[tuple[Any, ...]]:
    """(actor id, subject type, subject id, permission, target id) of every entry for the product."""
    return {
        (
            (e["actor"] or {}).get("id"),
            e["subject"]["type"],
            e["subject"]["id"],
            e["permission"],
            e["target"]["id"],
        )
        for e in audit_entries(action)
        if product is None or (e["target"] or {}).get("id") == product.pk
    }


def sources(answer: dict[str, Any], action: str) -> list[tuple[str, ...]]:
    return [(s["source"], *([s["group"]] if "group" in s else [])) for s in answer["actions"][action]["sources"]]


@pytest.fixture
def owner() -> User:
    return make_user(prefix="owner")


@pytest.fixture
def product(owner: User) -> Product:
    return make_product(owner=owner, name="granted product")


# --- per-product grants: who may manage them ----------------------------------------------------------------


def test_admin_grants_lists_and_revokes_for_users_and_groups(product: Product) -> None:
    grantee = make_user(prefix="grantee")
    group = make_group(name="Viewers")
    admin = admin_client()

    response = admin.post(
        grants_url(product.pk),
        {"user": grantee.pk, "permissions": ["view_product", "catalog.change_product"]},
        format="json",
    )
    assert response.status_code == 200, response.content
    response = admin.post(grants_url(product.pk), {"group": group.pk, "permissions": ["view_product"]}, format="json")
    assert response.status_code == 200, response.content

    listing = admin.get(grants_url(product.pk))
    assert listing.status_code == 200, listing.content
    assert listing.json() == {
        "users": [{"id": grantee.pk, "email": grantee.email, "permissions": ["change_product", "view_product"]}],
        "groups": [{"id": group.pk, "name": "Viewers", "permissions": ["view_product"]}],
    }
    assert held(product) == {
        ("user", grantee.pk, "view_product"),
        ("user", grantee.pk, "change_product"),
        ("group", group.pk, "view_product"),
    }
    grantee_client = api_client(user=grantee)
    assert grantee_client.get(detail_url(product.pk)).status_code == 200
    assert grantee_client.patch(detail_url(product.pk), {"price": "3.00"}, format="json").status_code == 200

    response = admin.delete(
        grants_url(product.pk), {"user": grantee.pk, "permissions": ["view_product"]}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["users"] == [{"id": grantee.pk, "email": grantee.email, "permissions": ["change_product"]}]
    assert grantee_client.get(detail_url(product.pk)).status_code == 404
    response = admin.delete(grants_url(product.pk), {"group": group.pk, "permissions": ["view_product"]}, format="json")
    assert response.status_code == 200, response.content
    assert held(product) == {("user", grantee.pk, "change_product")}


def test_granting_twice_is_idempotent(product: Product) -> None:
    grantee = make_user(prefix="grantee")
    admin = admin_client()
    body = {"user": grantee.pk, "permissions": ["view_product"]}
    assert admin.post(grants_url(product.pk), body, format="json").status_code == 200
    assert admin.post(grants_url(product.pk), body, format="json").status_code == 200
    assert held(product) == {("user", grantee.pk, "view_product")}
    assert len(audit_entries("object.grant", subject_type="user", subject_id=grantee.pk)) == 1
    # Revoking what is not held changes (and logs) nothing.
    other = make_user(prefix="other")
    response = admin.delete(grants_url(product.pk), {"user": other.pk, "permissions": ["view_product"]}, format="json")
    assert response.status_code == 200, response.content
    assert audit_set("object.revoke", product) == set()


def test_owner_manages_own_product_with_permissions_it_holds(owner: User, product: Product) -> None:
    grantee = make_user(prefix="grantee")
    client = api_client(user=owner)
    assert client.get(grants_url(product.pk)).status_code == 200

    response = client.post(
        grants_url(product.pk),
        {"user": grantee.pk, "permissions": ["view_product", "change_product", "delete_product"]},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert {c for _, _, c in held(product)} == {"view_product", "change_product", "delete_product"}

    # Ownership does not include publishing, so the owner cannot hand it out.
    response = client.post(
        grants_url(product.pk), {"user": grantee.pk, "permissions": ["can_publish_product"]}, format="json"
    )
    assert_error(response, 403)
    # Nor smuggle it in among permissions it does hold: all or nothing.
    response = client.post(
        grants_url(product.pk),
        {"group": make_group().pk, "permissions": ["view_product", "catalog.can_publish_product"]},
        format="json",
    )
    assert_error(response, 403)
    assert ("user", grantee.pk, "can_publish_product") not in held(product)
    assert all(kind == "user" for kind, _, _ in held(product))

    # Once the owner holds it (here as an object grant), it may pass it on.
    with schema_context(ACME.schema):
        assign_perm("can_publish_product", owner, product)
    response = client.post(
        grants_url(product.pk), {"user": grantee.pk, "permissions": ["can_publish_product"]}, format="json"
    )
    assert response.status_code == 200, response.content
    assert ("user", grantee.pk, "can_publish_product") in held(product)

    # And revoke from its own product.
    response = client.delete(
        grants_url(product.pk), {"user": grantee.pk, "permissions": ["delete_product"]}, format="json"
    )
    assert response.status_code == 200, response.content
    assert ("user", grantee.pk, "delete_product") not in held(product)


def test_owner_with_model_publish_permission_may_grant_it(owner: User, product: Product) -> None:
    make_group(name="Publishers", perms=("can_publish_product",), members=(owner,))
    grantee = make_user(prefix="grantee")
    response = api_client(user=owner).post(
        grants_url(product.pk), {"user": grantee.pk, "permissions": ["can_publish_product"]}, format="json"
    )
    assert response.status_code == 200, response.content


def test_non_owner_non_admin_cannot_manage_grants(product: Product) -> None:
    # Sees the product and even holds every object permission on it, yet is not the owner.
    holder = make_user(prefix="holder")
    with schema_context(ACME.schema):
        for perm in ("view_product", "change_product", "delete_product", "can_publish_product"):
            assign_perm(perm, holder, product)
    victim = make_user(prefix="victim")
    client = api_client(user=holder)
    body = {"user": victim.pk, "permissions": ["view_product"]}
    assert_error(client.get(grants_url(product.pk)), 403)
    assert_error(client.post(grants_url(product.pk), body, format="json"), 403)
    assert_error(
        client.delete(grants_url(product.pk), {"user": holder.pk, "permissions": ["view_product"]}, format="json"), 403
    )
    assert ("user", victim.pk, "view_product") not in held(product)

    # A model-level manager (ProductManagers) is not an admin either.
    manager = make_user(prefix="manager")
    make_group(
        name="ProductManagers", perms=("view_product", "change_product", "can_publish_product"), members=(manager,)
    )
    assert_error(api_client(user=manager).post(grants_url(product.pk), body, format="json"), 403)

    # One who cannot even see the product learns nothing: 404.
    stranger = api_client(user=make_user(prefix="stranger"))
    assert_error(stranger.get(grants_url(product.pk)), 404)
    assert_error(stranger.post(grants_url(product.pk), body, format="json"), 404)
    assert_error(stranger.delete(grants_url(product.pk), body, format="json"), 404)

    assert_error(api_client().get(grants_url(product.pk)), 401)
    assert_error(api_client().post(grants_url(product.pk), body, format="json"), 401)
    assert held(product) == {
        ("user", holder.pk, c) for c in ("view_product", "change_product", "delete_product", "can_publish_product")
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"user": "SELF", "group": "GROUP", "permissions": ["view_product"]}, "user", id="both"),
        pytest.param({"permissions": ["view_product"]}, "user", id="neither"),
        pytest.param({"user": "SELF", "permissions": ["add_product"]}, "permissions", id="add_product"),
        pytest.param({"user": "SELF", "permissions": ["catalog.add_product"]}, "permissions", id="catalog.add"),
        pytest.param({"user": "SELF", "permissions": ["auth.view_user"]}, "permissions", id="other-app"),
        pytest.param({"user": "SELF", "permissions": ["fly_product"]}, "permissions", id="unknown-perm"),
        pytest.param({"user": "SELF", "permissions": []}, "permissions", id="empty-perms"),
        pytest.param({"user": "SELF", "permissions": "view_product"}, "permissions", id="perms-not-list"),
        pytest.param({"user": "SELF"}, "permissions", id="no-perms"),
        pytest.param({"user": 999_999_999, "permissions": ["view_product"]}, "user", id="unknown-user"),
        pytest.param({"group": 999_999_999, "permissions": ["view_product"]}, "group", id="unknown-group"),
        pytest.param({"user": "abc", "permissions": ["view_product"]}, "user", id="user-not-int"),
        pytest.param({"user": -1, "permissions": ["view_product"]}, "user", id="user-negative"),
        pytest.param({"user": 2**70, "permissions": ["view_product"]}, "user", id="user-huge"),
        pytest.param({"group": 2**40, "permissions": ["view_product"]}, "group", id="group-huge"),
    ],
)
@pytest.mark.parametrize("method", ["post", "delete"])
def test_bad_grant_bodies_answer_400_naming_the_field(
    product: Product, method: str, body: dict[str, Any], field: str
) -> None:
    grantee = make_user(prefix="grantee")
    group = make_group()
    resolved = {k: grantee.pk if v == "SELF" else group.pk if v == "GROUP" else v for k, v in body.items()}
    before = held(product)
    response = getattr(admin_client(), method)(grants_url(product.pk), resolved, format="json")
    assert_error(response, 400, field=field)
    assert held(product) == before


# --- bulk ----------------------------------------------------------------------------------------------------


def test_bulk_grant_and_revoke_are_idempotent_and_take_effect() -> None:
    owner = make_user(prefix="owner")
    products = [make_product(owner=owner) for _ in range(3)]
    ids = [p.pk for p in products]
    u1, u2 = make_user(prefix="bulk"), make_user(prefix="bulk")
    member = make_user(prefix="member")
    group = make_group(name="BulkGroup", members=(member,))
    admin = admin_client()
    body = {
        "action": "grant",
        "permissions": ["view_product", "catalog.change_product"],
        "products": ids,
        "users": [u1.pk, u2.pk],
        "groups": [group.pk],
    }

    first = admin.post(BULK, body, format="json")
    assert first.status_code == 200, first.content
    assert first.json()["changed"] == 3 * 2 * 3
    again = admin.post(BULK, body, format="json")
    assert again.status_code == 200, again.content
    assert again.json()["changed"] == 0
    for p in products:
        assert held(p) == {
            (kind, holder, codename)
            for kind, holder in (("user", u1.pk), ("user", u2.pk), ("group", group.pk))
            for codename in ("view_product", "change_product")
        }
    assert set(ids) <= set(list_ids(api_client(user=member)))
    assert set(ids) <= set(list_ids(api_client(user=u2)))
    assert len(audit_entries("object.grant", subject_type="group", subject_id=group.pk)) == 3 * 2

    # Partly held: only the missing rows count.
    revoke_one = {**body, "action": "revoke", "products": ids[:1], "users": [u1.pk], "groups": []}
    assert admin.post(BULK, revoke_one, format="json").json()["changed"] == 2
    assert admin.post(BULK, body, format="json").json()["changed"] == 2

    revoke = {**body, "action": "revoke"}
    response = admin.post(BULK, revoke, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["changed"] == 18
    assert admin.post(BULK, revoke, format="json").json()["changed"] == 0
    for p in products:
        assert held(p) == set()
    assert not set(ids) & set(list_ids(api_client(user=member)))


def test_bulk_unknown_products_are_named_and_nothing_changes() -> None:
    product = make_product(owner=make_user(prefix="owner"))
    grantee = make_user(prefix="grantee")
    missing = [999_999_991, 999_999_992]
    response = admin_client().post(
        BULK,
        {"action": "grant", "permissions": ["view_product"], "products": [product.pk, *missing], "users": [grantee.pk]},
        format="json",
    )
    body = assert_error(response, 400, field="products")
    assert all(str(pk) in " ".join(body["errors"]["products"]) for pk in missing), body
    assert held(product) == set()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"action": "give"}, "action", id="bad-action"),
        pytest.param({"permissions": ["add_product"]}, "permissions", id="add_product"),
        pytest.param({"products": []}, "products", id="no-products"),
        pytest.param({"products": ["x"]}, "products", id="product-not-int"),
        pytest.param({"users": [], "groups": []}, "users", id="nobody"),
        pytest.param({"users": [999_999_999]}, "users", id="unknown-user"),
        pytest.param({"groups": [999_999_999]}, "groups", id="unknown-group"),
        pytest.param({"products": list(range(1, 1003))}, "products", id="too-many"),
    ],
)
def test_bulk_bad_bodies(body: dict[str, Any], field: str) -> None:
    product = make_product(owner=make_user(prefix="owner"))
    grantee = make_user(prefix="grantee")
    full = {"action": "grant", "permissions": ["view_product"], "products": [product.pk], "users": [grantee.pk]}
    response = admin_client().post(BULK, {**full, **body}, format="json")
    assert_error(response, 400, field=field)
    assert held(product) == set()


def test_bulk_is_for_admins_only(owner: User, product: Product) -> None:
    body = {"action": "grant", "permissions": ["view_product"], "products": [product.pk], "users": [owner.pk]}
    assert_error(api_client(user=owner).post(BULK, body, format="json"), 403)
    manager = make_user(prefix="manager")
    make_group(
        name="ProductManagers", perms=("view_product", "change_product", "can_publish_product"), members=(manager,)
    )
    assert_error(api_client(user=manager).post(BULK, body, format="json"), 403)
    assert_error(api_client().post(BULK, body, format="json"), 401)
    assert held(product) == set()


# --- grants go with their product ----------------------------------------------------------------------------


def _grant_everything(product: Product) -> tuple[User, Group]:
    user = make_user(prefix="holder")
    group = make_group()
    with schema_context(ACME.schema):
        for perm in ("view_product", "change_product"):
            assign_perm(perm, user, product)
            assign_perm(perm, group, product)
    return user, group


def test_deleting_a_product_through_the_api_deletes_and_logs_its_grants(owner: User, product: Product) -> None:
    other = make_product(owner=owner)
    user, group = _grant_everything(product)
    _grant_everything(other)
    response = api_client(user=owner).delete(detail_url(product.pk))
    assert response.status_code == 204, response.content
    assert held(product) == set()
    assert len(held(other)) == 4
    assert audit_set("object.revoke", product) == {
        (owner.pk, kind, holder, f"catalog.{codename}", product.pk)
        for kind, holder in (("user", user.pk), ("group", group.pk))
        for codename in ("view_product", "change_product")
    }


def test_deleting_a_product_in_the_orm_cascades_its_grants(product: Product) -> None:
    user, group = _grant_everything(product)
    with schema_context(ACME.schema):
        Product.objects.filter(pk=product.pk).delete()
    assert held(product) == set()
    assert audit_set("object.revoke", product) == {
        (None, kind, holder, f"catalog.{codename}", product.pk)
        for kind, holder in (("user", user.pk), ("group", group.pk))
        for codename in ("view_product", "change_product")
    }


# --- audit ---------------------------------------------------------------------------------------------------


def test_api_grants_and_revokes_are_audited_with_actor_subject_permission_and_target(product: Product) -> None:
    grantee = make_user(prefix="grantee")
    group = make_group(name="Auditees")
    admin = admin_client()
    me = admin_id()
    admin.post(grants_url(product.pk), {"user": grantee.pk, "permissions": ["view_product"]}, format="json")
    admin.post(grants_url(product.pk), {"group": group.pk, "permissions": ["change_product"]}, format="json")
    admin.delete(grants_url(product.pk), {"user": grantee.pk, "permissions": ["view_product"]}, format="json")

    grants = [e for e in audit_entries("object.grant") if (e["target"] or {}).get("id") == product.pk]
    by_subject = {e["subject"]["type"]: e for e in grants}
    assert len(grants) == 2
    with schema_context(ACME.schema):
        admin_email = User.objects.get(pk=me).email
    assert by_subject["user"]["actor"] == {"id": me, "email": admin_email}
    assert by_subject["user"]["subject"] == {"type": "user", "id": grantee.pk, "name": grantee.email}
    assert by_subject["user"]["permission"] == "catalog.view_product"
    assert by_subject["user"]["target"] == {"type": "catalog.product", "id": product.pk, "name": "granted product"}
    assert by_subject["group"]["subject"] == {"type": "group", "id": group.pk, "name": "Auditees"}
    assert by_subject["group"]["permission"] == "catalog.change_product"

    revokes = [e for e in audit_entries("object.revoke") if (e["target"] or {}).get("id") == product.pk]
    assert len(revokes) == 1
    assert revokes[0]["actor"]["id"] == me
    assert revokes[0]["subject"] == {"type": "user", "id": grantee.pk, "name": grantee.email}
    assert revokes[0]["permission"] == "catalog.view_product"
    assert revokes[0]["target"]["id"] == product.pk
    assert revokes[0]["target"]["type"] == "catalog.product"


def test_owner_grants_are_audited_with_the_owner_as_actor(owner: User, product: Product) -> None:
    grantee = make_user(prefix="grantee")
    api_client(user=owner).post(
        grants_url(product.pk), {"user": grantee.pk, "permissions": ["view_product"]}, format="json"
    )
    assert audit_set("object.grant", product) == {(owner.pk, "user", grantee.pk, "catalog.view_product", product.pk)}


def test_bulk_grants_and_revokes_are_audited_once_each() -> None:
    owner = make_user(prefix="owner")
    products = [make_product(owner=owner) for _ in range(2)]
    user, group = make_user(prefix="bulk"), make_group()
    me = admin_id()
    body = {
        "action": "grant",
        "permissions": ["view_product", "delete_product"],
        "products": [p.pk for p in products],
        "users": [user.pk],
        "groups": [group.pk],
    }
    admin = admin_client()
    admin.post(BULK, body, format="json")
    admin.post(BULK, body, format="json")  # no change, no entries
    expected = {
        (me, kind, holder, f"catalog.{codename}", p.pk)
        for kind, holder in (("user", user.pk), ("group", group.pk))
        for codename in ("view_product", "delete_product")
        for p in products
    }
    grants = [e for e in audit_entries("object.grant") if e["target"]["id"] in {p.pk for p in products}]
    assert len(grants) == len(expected) == 8
    assert audit_set("object.grant") >= expected
    admin.post(BULK, {**body, "action": "revoke"}, format="json")
    admin.post(BULK, {**body, "action": "revoke"}, format="json")
    revokes = [e for e in audit_entries("object.revoke") if e["target"]["id"] in {p.pk for p in products}]
    assert len(revokes) == 8
    assert audit_set("object.revoke") >= expected


def test_orm_assign_and_remove_perm_are_audited(product: Product) -> None:
    user = make_user(prefix="shell")
    group = make_group(name="ShellGroup")
    with schema_context(ACME.schema):
        assign_perm("view_product", user, product)
        assign_perm("catalog.change_product", group, product)
        assign_perm("view_product", user, product)  # already held: nothing new
    assert audit_set("object.grant", product) == {
        (None, "user", user.pk, "catalog.view_product", product.pk),
        (None, "group", group.pk, "catalog.change_product", product.pk),
    }
    with schema_context(ACME.schema):
        remove_perm("view_product", user, product)
        remove_perm("catalog.change_product", group, product)
        remove_perm("delete_product", user, product)  # never held: nothing
    assert audit_set("object.revoke", product) == {
        (None, "user", user.pk, "catalog.view_product", product.pk),
        (None, "group", group.pk, "catalog.change_product", product.pk),
    }


def test_orm_bulk_assign_and_remove_perm_are_audited(owner: User) -> None:
    """guardian's bulk forms (a queryset of products, a list of users) write
    with bulk_create, which sends no signals: the audit must not miss them."""
    products = [make_product(owner=owner) for _ in range(2)]
    u1, u2 = make_user(prefix="shell"), make_user(prefix="shell")
    group = make_group()
    with schema_context(ACME.schema):
        # guardian accepts a queryset here; its annotations say Model only.
        queryset: Any = Product.objects.filter(pk__in=[p.pk for p in products])
        assign_perm("view_product", u1, queryset)
        assign_perm("view_product", group, queryset)
        assign_perm("change_product", [u1, u2], products[0])
    granted = {
        *((None, "user", u1.pk, "catalog.view_product", p.pk) for p in products),
        *((None, "group", group.pk, "catalog.view_product", p.pk) for p in products),
        (None, "user", u1.pk, "catalog.change_product", products[0].pk),
        (None, "user", u2.pk, "catalog.change_product", products[0].pk),
    }
    assert audit_set("object.grant") >= granted
    with schema_context(ACME.schema):
        remove_perm("view_product", u1, queryset)
        remove_perm("change_product", [u1, u2], products[0])
    revoked = {
        *((None, "user", u1.pk, "catalog.view_product", p.pk) for p in products),
        (None, "user", u1.pk, "catalog.change_product", products[0].pk),
        (None, "user", u2.pk, "catalog.change_product", products[0].pk),
    }
    assert audit_set("object.revoke") >= revoked


def test_audit_is_for_admins_only(owner: User) -> None:
    assert_error(api_client(user=owner).get(f"{AUDIT}?action=object.grant"), 403)
    assert_error(api_client().get(f"{AUDIT}?action=object.grant"), 401)


# --- explain -------------------------------------------------------------------------------------------------


def test_explain_names_every_source(owner: User, product: Product) -> None:
    target = make_user(prefix="target", perms=("delete_product",))
    make_group(name="Editors", perms=("change_product",), members=(target,))
    make_group(name="Managers", perms=("change_product", "can_publish_product"), members=(target,))
    reviewers = make_group(name="Reviewers", members=(target,))
    auditors = make_group(name="Auditors", members=(target,))
    with schema_context(ACME.schema):
        assign_perm("view_product", reviewers, product)
        assign_perm("view_product", auditors, product)
        assign_perm("view_product", target, product)
        assign_perm("can_publish_product", target, product)
        assign_perm("delete_product", reviewers, product)

    response = admin_client().get(access_url(product.pk, target.pk))
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["product"] == product.pk
    assert answer["user"] == target.pk
    assert set(answer["actions"]) == {"view", "change", "delete", "publish"}
    assert all(a["allowed"] for a in answer["actions"].values())
    assert sorted(sources(answer, "view")) == [
        ("object_direct",),
        ("object_group", "Auditors"),
        ("object_group", "Reviewers"),
    ]
    assert sorted(sources(answer, "change")) == [("model_group", "Editors"), ("model_group", "Managers")]
    assert sorted(sources(answer, "delete")) == [("model_direct",), ("object_group", "Reviewers")]
    assert sorted(sources(answer, "publish")) == [("model_group", "Managers"), ("object_direct",)]
    for action in answer["actions"].values():
        for source in action["sources"]:
            if source["source"].startswith(("model", "object")):
                assert source["permission"].startswith("catalog."), source


def test_explain_owner_published_superuser_and_nothing(owner: User, product: Product) -> None:
    # The owner, about itself (implicitly and explicitly): view, change and delete, not publish.
    for url in (access_url(product.pk), access_url(product.pk, owner.pk)):
        response = api_client(user=owner).get(url)
        assert response.status_code == 200, response.content
        answer = response.json()
        assert answer["user"] == owner.pk
        for action in ("view", "change", "delete"):
            assert answer["actions"][action] == {"allowed": True, "sources": [{"source": "owner"}]}
        assert answer["actions"]["publish"] == {"allowed": False, "sources": []}

    # The superuser, about itself.
    answer = admin_client().get(access_url(product.pk)).json()
    assert answer["user"] == admin_id()
    for action in ("view", "change", "delete", "publish"):
        assert ("superuser",) in sources(answer, action)
        assert answer["actions"][action]["allowed"] is True

    # Someone holding nothing, asked by the admin: nothing, until published.
    nobody = make_user(prefix="nobody")
    answer = admin_client().get(access_url(product.pk, nobody.pk)).json()
    assert all(a == {"allowed": False, "sources": []} for a in answer["actions"].values()), answer
    with schema_context(ACME.schema):
        Product.objects.filter(pk=product.pk).update(is_published=True)
    response = api_client(user=nobody).get(access_url(product.pk))
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["actions"]["view"] == {"allowed": True, "sources": [{"source": "published"}]}
    for action in ("change", "delete", "publish"):
        assert answer["actions"][action] == {"allowed": False, "sources": []}


def test_explain_agrees_with_what_the_api_does(owner: User, product: Product) -> None:
    target = make_user(prefix="target")
    group = make_group(name="Fixers", members=(target,))
    with schema_context(ACME.schema):
        assign_perm("view_product", group, product)
        assign_perm("change_product", target, product)
    answer = admin_client().get(access_url(product.pk, target.pk)).json()
    allowed = {action: a["allowed"] for action, a in answer["actions"].items()}
    assert allowed == {"view": True, "change": True, "delete": False, "publish": False}
    client = api_client(user=target)
    assert client.get(detail_url(product.pk)).status_code == 200
    assert client.patch(detail_url(product.pk), {"name": "fixed"}, format="json").status_code == 200
    assert client.post(f"{detail_url(product.pk)}publish/").status_code == 403
    assert client.delete(detail_url(product.pk)).status_code == 403


def test_explain_who_may_ask_about_whom(owner: User, product: Product) -> None:
    viewer = make_user(prefix="viewer")
    with schema_context(ACME.schema):
        assign_perm("view_product", viewer, product)
    # Non-admins only about themselves, owner included.
    assert_error(api_client(user=viewer).get(access_url(product.pk, owner.pk)), 403)
    assert_error(api_client(user=owner).get(access_url(product.pk, viewer.pk)), 403)
    assert_error(api_client(user=owner).get(access_url(product.pk, admin_id())), 403)
    assert api_client(user=viewer).get(access_url(product.pk, viewer.pk)).status_code == 200
    # Who cannot see the product gets 404, about anyone.
    stranger = make_user(prefix="stranger")
    assert_error(api_client(user=stranger).get(access_url(product.pk)), 404)
    assert_error(api_client(user=stranger).get(access_url(product.pk, owner.pk)), 404)
    assert_error(api_client().get(access_url(product.pk)), 401)
    # Admins about anyone; an unknown or malformed user is a 400 naming "user".
    admin = admin_client()
    assert admin.get(access_url(product.pk, viewer.pk)).status_code == 200
    assert_error(admin.get(access_url(product.pk, 999_999_999)), 400, field="user")
    assert_error(admin.get(access_url(product.pk, "abc")), 400, field="user")
    assert_error(admin.get(access_url(product.pk, 2**70)), 400, field="user")


def test_staff_without_product_rights_manage_grants_and_explain_any_product() -> None:
    """Tenant admins (is_staff) reach every product's grants and explain, as the
    bulk endpoint already let them; they still cannot view it through the list,
    and grant only what they hold themselves (superusers excepted)."""
    staff = make_user(prefix="staff", is_staff=True)
    colleague = make_user(prefix="colleague")
    hidden = make_product(owner=make_user())
    client = api_client(user=staff)
    assert client.get(detail_url(hidden.pk)).status_code == 404
    assert client.get(grants_url(hidden.pk)).status_code == 200
    answer = client.get(access_url(hidden.pk, staff.pk)).json()
    assert answer["actions"]["view"] == {"allowed": False, "sources": []}
    for who in (staff, colleague):  # not to itself, not to anyone else
        grant = {"user": who.pk, "permissions": ["view_product"]}
        assert_error(client.post(grants_url(hidden.pk), grant, format="json"), 403)
    bulk = {"action": "grant", "permissions": ["view_product"], "products": [hidden.pk], "users": [colleague.pk]}
    assert_error(client.post(BULK, bulk, format="json"), 403)
    assert held(hidden) == set()
    # Once it holds view_product on the product, it may hand it on.
    grant = {"user": staff.pk, "permissions": ["view_product"]}
    assert admin_client().post(grants_url(hidden.pk), grant, format="json").status_code == 200
    colleague_grant = {"user": colleague.pk, "permissions": ["view_product"]}
    assert client.post(grants_url(hidden.pk), colleague_grant, format="json").status_code == 200
    assert client.get(detail_url(hidden.pk)).status_code == 200
    assert_error(
        client.post(
            grants_url(hidden.pk), {"user": colleague.pk, "permissions": ["can_publish_product"]}, format="json"
        ),
        403,
    )


# --- safety nets: the gates fail closed ------------------------------------------------------------------------


def test_head_on_grants_reads_and_never_revokes(owner: User, product: Product) -> None:
    """DRF answers HEAD with the GET handler: a body sent with it changes nothing."""
    viewer = make_user(prefix="viewer")
    with schema_context(ACME.schema):
        assign_perm("view_product", viewer, product)
    before = held(product)
    body = {"user": viewer.pk, "permissions": ["view_product"]}
    response = api_client(user=owner).generic("HEAD", grants_url(product.pk), json.dumps(body), "application/json")
    assert response.status_code == 200
    assert held(product) == before == {("user", viewer.pk, "view_product")}
    assert audit_entries("object.revoke") == []


def test_an_action_without_the_rule_still_hides_invisible_products(owner: User, product: Product) -> None:
    """get_object answers 404 for a product the caller cannot see before any
    permission class runs, so an action that forgets the rule leaks nothing."""
    stranger = make_user(prefix="stranger")
    view = ProductViewSet.as_view({"get": "retrieve"}, permission_classes=[IsAuthenticated])
    request = APIRequestFactory().get(detail_url(product.pk))
    force_authenticate(request, user=stranger)
    with schema_context(ACME.schema):
        assert view(request, pk=str(product.pk)).status_code == 404
        force_authenticate(request, user=owner)
        assert view(request, pk=str(product.pk)).status_code == 200


def test_who_manages_nothing_learns_nothing_from_the_body(owner: User, product: Product) -> None:
    """The gate runs before the body is validated: someone who may not manage
    the product's grants cannot probe which user or group ids exist."""
    viewer = make_user(prefix="viewer")
    stranger = make_user(prefix="stranger")
    with schema_context(ACME.schema):
        assign_perm("view_product", viewer, product)
    for body in ({"user": 999_999_999, "permissions": ["view_product"]}, {"group": 2**31 - 1, "permissions": ["x"]}):
        for method in ("post", "delete"):
            seen = getattr(api_client(user=viewer), method)(grants_url(product.pk), body, format="json")
            assert_error(seen, 403)
            unseen = getattr(api_client(user=stranger), method)(grants_url(product.pk), body, format="json")
            assert_error(unseen, 404)
