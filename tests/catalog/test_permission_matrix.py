"""The permission matrix for products: every persona against every operation,
on an unpublished and on a published product owned by the ``owner`` persona.

Real requests through the tenant middleware with real JWTs; the product, the
users, groups and grants are created in acme's schema with the ORM and
guardian. Each write that answers 2xx must have changed the database, and
each refusal must have left it untouched.

Personas:
  anonymous     no credentials
  noperm        an acme user holding nothing
  owner         owns the product; also holds ``add_product`` (model, direct) so it may create
  object        guardian grant, direct: view_product, change_product, can_publish_product on the product
  group_object  member of a group with a guardian grant: view_product, delete_product on the product
  change_only   guardian grant, direct: change_product only (no view) on the product
  manager       member of the seed's ProductManagers group: view_product, change_product,
                can_publish_product (model level)
  admin         the tenant admin (superuser + staff)

Legend: list yes/no = the product is in the caller's list; the rest are HTTP
statuses. Not visible -> 404, visible but not allowed -> 403, anonymous
writes -> 401.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django_tenants.utils import schema_context
from guardian.shortcuts import assign_perm
from rest_framework.test import APIClient

from accounts.models import User
from catalog.models import Product
from tests.helpers import (
    ACME,
    PRODUCTS,
    admin_id,
    api_client,
    assert_error,
    detail_url,
    list_ids,
    make_group,
    make_product,
    make_user,
)

pytestmark = pytest.mark.django_db

OPERATIONS = ("list", "detail", "create", "update", "delete", "publish", "unpublish")

# fmt: off
UNPUBLISHED = """
persona        list  detail  create  update  delete  publish  unpublish
anonymous      no    404     401     401     401     401      401
noperm         no    404     403     404     404     404      404
owner          yes   200     201     200     204     403      403
object         yes   200     403     200     403     200      200
group_object   yes   200     403     403     204     403      403
change_only    no    404     403     404     404     404      404
manager        yes   200     403     200     403     200      200
admin          yes   200     201     200     204     200      200
"""

PUBLISHED = """
persona        list  detail  create  update  delete  publish  unpublish
anonymous      yes   200     401     401     401     401      401
noperm         yes   200     403     403     403     403      403
owner          yes   200     201     200     204     403      403
object         yes   200     403     200     403     200      200
group_object   yes   200     403     403     204     403      403
change_only    yes   200     403     200     403     403      403
manager        yes   200     403     200     403     200      200
admin          yes   200     201     200     204     200      200
"""
# fmt: on


def _parse(table: str, state: str) -> list[Any]:
    lines = [line.split() for line in table.strip().splitlines()]
    header, rows = lines[0], lines[1:]
    assert tuple(header[1:]) == OPERATIONS, header
    cases = []
    for persona, *cells in rows:
        for op, cell in zip(OPERATIONS, cells, strict=True):
            expected: bool | int = cell == "yes" if op == "list" else int(cell)
            cases.append(pytest.param(state, persona, op, expected, id=f"{state}-{persona}-{op}"))
    return cases


MATRIX = _parse(UNPUBLISHED, "unpublished") + _parse(PUBLISHED, "published")


@dataclass
class World:
    product: Product
    users: dict[str, User | None]

    def client(self, persona: str) -> APIClient:
        return api_client(user=self.users[persona])  # anonymous for None


def build_world(*, published: bool) -> World:
    owner = make_user(prefix="owner", perms=("add_product",))
    noperm = make_user(prefix="noperm")
    direct = make_user(prefix="object")
    grouped = make_user(prefix="groupobj")
    change_only = make_user(prefix="changeonly")
    manager = make_user(prefix="manager")
    product = make_product(owner=owner, published=published, name="matrix product")
    reviewers = make_group(name="Reviewers", members=(grouped,))
    make_group(
        name="ProductManagers",
        perms=("view_product", "change_product", "can_publish_product"),
        members=(manager,),
    )
    with schema_context(ACME.schema):
        for perm in ("view_product", "change_product", "can_publish_product"):
            assign_perm(perm, direct, product)
        for perm in ("view_product", "delete_product"):
            assign_perm(perm, reviewers, product)
        assign_perm("change_product", change_only, product)
        admin = User.objects.get(pk=admin_id())
    users: dict[str, User | None] = {
        "anonymous": None,
        "noperm": noperm,
        "owner": owner,
        "object": direct,
        "group_object": grouped,
        "change_only": change_only,
        "manager": manager,
        "admin": admin,
    }
    return World(product=product, users=users)


def _reload(product: Product) -> Product | None:
    with schema_context(ACME.schema):
        return Product.objects.filter(pk=product.pk).first()


@pytest.mark.parametrize(("state", "persona", "op", "expected"), MATRIX)
def test_permission_matrix(state: str, persona: str, op: str, expected: bool | int) -> None:
    world = build_world(published=state == "published")
    product = world.product
    client = world.client(persona)
    url = detail_url(product.pk)

    if op == "list":
        assert (product.pk in list_ids(client)) is expected
        return

    if op == "detail":
        response = client.get(url)
        assert response.status_code == expected, response.content
        if expected == 200:
            body = response.json()
            assert body["id"] == product.pk
            assert body["name"] == "matrix product"
            assert body["is_published"] is (state == "published")
        else:
            assert_error(response, expected)
        return

    if op == "create":
        someone_else = world.users["noperm"]
        assert someone_else is not None
        response = client.post(
            PRODUCTS,
            {"name": f"created by {persona}", "price": "1.50", "owner": someone_else.pk, "is_published": True},
            format="json",
        )
        assert response.status_code == expected, response.content
        with schema_context(ACME.schema):
            created = Product.objects.filter(name=f"created by {persona}").first()
        if expected == 201:
            assert created is not None
            me = world.users[persona]
            assert me is not None
            # The owner is the caller, whatever the body says; publication is not for create.
            assert created.owner_id == me.pk
            assert response.json()["owner"] == me.pk
            assert created.is_published is False
        else:
            assert_error(response, expected)
            assert created is None
        return

    if op == "update":
        response = client.patch(url, {"name": "renamed"}, format="json")
        assert response.status_code == expected, response.content
        after = _reload(product)
        assert after is not None
        if expected == 200:
            assert response.json()["name"] == "renamed"
            assert after.name == "renamed"
        else:
            assert_error(response, expected)
            assert after.name == "matrix product"
        return

    if op == "delete":
        response = client.delete(url)
        assert response.status_code == expected, response.content
        if expected == 204:
            assert _reload(product) is None
        else:
            assert_error(response, expected)
            assert _reload(product) is not None
        return

    assert op in ("publish", "unpublish")
    was = product.is_published
    response = client.post(f"{url}{op}/")
    assert response.status_code == expected, response.content
    after = _reload(product)
    assert after is not None
    if expected == 200:
        assert after.is_published is (op == "publish")
        assert response.json()["is_published"] is (op == "publish")
        assert (after.published_at is not None) is (op == "publish")
    else:
        assert_error(response, expected)
        assert after.is_published is was


def test_owner_without_add_product_cannot_create() -> None:
    """Ownership of products is no licence to create them: add_product is."""
    owner = make_user(prefix="owner")
    make_product(owner=owner)
    response = api_client(user=owner).post(PRODUCTS, {"name": "x", "price": "1.00"}, format="json")
    assert_error(response, 403)


def test_add_product_via_group_allows_create() -> None:
    creator = make_user(prefix="creator")
    make_group(name="Creators", perms=("add_product",), members=(creator,))
    response = api_client(user=creator).post(PRODUCTS, {"name": "by group", "price": "1.00"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["owner"] == creator.pk


def test_invisible_and_missing_products_answer_alike() -> None:
    """No existence leak: a product the caller cannot see answers exactly like one that does not exist."""
    product = make_product(owner=make_user(prefix="owner"))
    with schema_context(ACME.schema):
        missing = (Product.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1000
    client = api_client(user=make_user(prefix="noperm"))
    for method, suffix in (("get", ""), ("patch", ""), ("delete", ""), ("post", "publish/"), ("get", "access/")):
        seen = getattr(client, method)(f"{detail_url(product.pk)}{suffix}", format="json")
        absent = getattr(client, method)(f"{detail_url(missing)}{suffix}", format="json")
        assert seen.status_code == absent.status_code == 404, (method, suffix, seen.content)
        assert seen.json() == absent.json()
    # Anonymous writes are refused before any lookup: 401 either way.
    for method, suffix in (("patch", ""), ("delete", ""), ("post", "publish/")):
        seen = getattr(api_client(), method)(f"{detail_url(product.pk)}{suffix}", format="json")
        absent = getattr(api_client(), method)(f"{detail_url(missing)}{suffix}", format="json")
        assert seen.status_code == absent.status_code == 401, (method, suffix, seen.content)


def test_inactive_grant_holder_sees_nothing() -> None:
    """A deactivated user's JWT stops working; its grants give nothing."""
    holder = make_user(prefix="holder")
    product = make_product(owner=make_user(prefix="owner"))
    with schema_context(ACME.schema):
        assign_perm("view_product", holder, product)
    client = api_client(user=holder)
    assert client.get(detail_url(product.pk)).status_code == 200
    with schema_context(ACME.schema):
        User.objects.filter(pk=holder.pk).update(is_active=False)
    assert client.get(detail_url(product.pk)).status_code in (401, 404)
