"""Query budgets of the product API, counted on the real connection.

Each count is of one warm request (the tenant cache filled by a first
request), authentication included. The budgets: list page <= 6, detail <= 5,
and none of them may grow with the number of products, grants or the page
size (no per-row queries).
"""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from accounts.models import User
from catalog.models import Product, ProductGroupObjectPermission, ProductUserObjectPermission
from tests.helpers import (
    ACME,
    PASSWORD,
    PRODUCTS,
    admin_client,
    api_client,
    detail_url,
    grants_url,
    make_group,
    make_user,
)

pytestmark = pytest.mark.django_db

LIST_BUDGET = 6
DETAIL_BUDGET = 5
CODENAMES = ("view_product", "change_product", "delete_product", "can_publish_product")
_seq = itertools.count(1)


def count_queries(client: APIClient, url: str) -> int:
    assert client.get(url).status_code == 200  # warm: tenant cache
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(ctx.captured_queries)


def sql_of(client: APIClient, url: str) -> str:
    with CaptureQueriesContext(connection) as ctx:
        client.get(url)
    return "\n".join(q["sql"] for q in ctx.captured_queries)


def build(*, products: int, grants: int) -> tuple[User, list[int]]:
    """A tenant world: ``products`` products owned by someone else, and
    ``grants`` object grants, a share of them to the returned user (directly
    and through its three groups), the rest to other users and groups. The
    user holds no model permission and owns nothing. Returns the user and the
    ids of the products it may view."""
    n = next(_seq)
    owner = make_user(prefix="owner")
    grantee = make_user(prefix="grantee")
    groups = [make_group(members=(grantee,)) for _ in range(3)]
    with schema_context(ACME.schema):
        others = User.objects.bulk_create(
            User(email=f"other{n}-{i}@acme.test", username=f"other{n}-{i}", password=PASSWORD) for i in range(20)
        )
        other_groups = Group.objects.bulk_create(Group(name=f"other{n}-{i}") for i in range(5))
        rows = Product.objects.bulk_create(
            Product(name=f"p{n}-{i}", price=Decimal(i % 100), owner=owner) for i in range(products)
        )
        perms = {p.codename: p for p in Permission.objects.filter(content_type__app_label="catalog")}
        holders: list[User | Group] = [grantee, *groups, *others, *other_groups]
        user_rows: list[ProductUserObjectPermission] = []
        group_rows: list[ProductGroupObjectPermission] = []
        combos = itertools.product(rows, CODENAMES, holders)  # product-major: every holder gets grants
        for product, codename, holder in itertools.islice(combos, grants):
            if isinstance(holder, User):
                user_rows.append(
                    ProductUserObjectPermission(user=holder, permission=perms[codename], content_object=product)
                )
            else:
                group_rows.append(
                    ProductGroupObjectPermission(group=holder, permission=perms[codename], content_object=product)
                )
        assert len(user_rows) + len(group_rows) == grants, "not enough combinations for that many grants"
        ProductUserObjectPermission.objects.bulk_create(user_rows)
        ProductGroupObjectPermission.objects.bulk_create(group_rows)
        visible = sorted(
            {
                r.content_object_id
                for r in user_rows
                if r.user_id == grantee.pk and r.permission.codename == "view_product"
            }
            | {
                r.content_object_id
                for r in group_rows
                if r.group_id in {g.pk for g in groups} and r.permission.codename == "view_product"
            }
        )
    assert visible, "the grantee must see something"
    return grantee, visible


WORLDS = [(5, 5), (200, 5), (5, 500), (200, 500)]


def test_list_budget_for_a_grants_only_user_is_flat() -> None:
    counts = {}
    for products, grants in WORLDS:
        grantee, visible = build(products=products, grants=grants)
        client = api_client(user=grantee)
        # The list shows exactly what the grants give, no more.
        body = client.get(f"{PRODUCTS}?page_size=200").json()
        assert sorted(item["id"] for item in body["results"]) == visible
        for page_size in (10, 50):
            url = f"{PRODUCTS}?page_size={page_size}"
            counts[(products, grants, page_size)] = count_queries(client, url)
    assert max(counts.values()) <= LIST_BUDGET, (counts, sql_of(client, url))
    assert len(set(counts.values())) == 1, counts


def test_list_budget_for_the_admin_is_flat() -> None:
    counts = {}
    client = admin_client()
    for products, grants in WORLDS:
        build(products=products, grants=grants)
        for page_size in (10, 50):
            url = f"{PRODUCTS}?page_size={page_size}"
            counts[(products, grants, page_size)] = count_queries(client, url)
    assert max(counts.values()) <= LIST_BUDGET, (counts, sql_of(client, url))
    assert len(set(counts.values())) == 1, counts


def test_list_budget_for_anonymous_and_model_permission_users() -> None:
    build(products=60, grants=100)
    with schema_context(ACME.schema):
        Product.objects.filter(name__startswith="p").update(is_published=True)
    manager = make_user(prefix="manager")
    make_group(name="ProductManagers", perms=("view_product", "change_product"), members=(manager,))
    for client in (api_client(), api_client(user=manager)):
        assert count_queries(client, PRODUCTS) <= LIST_BUDGET, sql_of(client, PRODUCTS)


def test_list_budget_with_filters_search_and_ordering() -> None:
    grantee, _ = build(products=200, grants=500)
    client = api_client(user=grantee)
    url = f"{PRODUCTS}?is_published=false&search=p&ordering=-price&owner=1&page_size=50"
    assert count_queries(client, url) <= LIST_BUDGET, sql_of(client, url)


def test_detail_budget() -> None:
    counts = {}
    for products, grants in ((5, 5), (200, 500)):
        grantee, visible = build(products=products, grants=grants)
        for who, client in (("grantee", api_client(user=grantee)), ("admin", admin_client())):
            counts[(who, products, grants)] = count_queries(client, detail_url(visible[0]))
    assert max(counts.values()) <= DETAIL_BUDGET, counts
    assert len({c for (who, _, _), c in counts.items() if who == "grantee"}) == 1, counts
    assert len({c for (who, _, _), c in counts.items() if who == "admin"}) == 1, counts


def test_grants_listing_has_no_per_row_queries() -> None:
    counts = {}
    client = admin_client()
    for grants in (2, 40):
        owner = make_user(prefix="owner")
        with schema_context(ACME.schema):
            product = Product.objects.create(name="listed", price=Decimal(1), owner=owner)
            users = User.objects.bulk_create(
                User(email=f"g{grants}-{i}@acme.test", username=f"g{grants}-{i}") for i in range(grants // 2)
            )
            group_grants = grants - len(users)
            groups = Group.objects.bulk_create(Group(name=f"g{grants}-{i}") for i in range((group_grants + 1) // 2))
            view, change = Permission.objects.filter(codename__in=["view_product", "change_product"]).order_by("pk")
            ProductUserObjectPermission.objects.bulk_create(
                ProductUserObjectPermission(user=u, permission=view, content_object=product) for u in users
            )
            ProductGroupObjectPermission.objects.bulk_create(
                [
                    ProductGroupObjectPermission(group=g, permission=p, content_object=product)
                    for g in groups
                    for p in (view, change)
                ][:group_grants]
            )
        body = client.get(grants_url(product.pk)).json()
        assert (
            sum(len(u["permissions"]) for u in body["users"]) + sum(len(g["permissions"]) for g in body["groups"])
            == grants
        )
        counts[grants] = count_queries(client, grants_url(product.pk))
    assert counts[2] == counts[40], counts
    assert counts[40] <= LIST_BUDGET, counts


# --- the unfiltered list reads its count with its page (core.pagination) -------------------------


def test_the_unfiltered_list_reads_page_and_count_in_one_statement() -> None:
    grantee, visible = build(products=120, grants=400)  # direct and group grants overlap: ids repeat in the branches
    client = api_client(user=grantee)
    url = f"{PRODUCTS}?page_size=10"
    client.get(url)  # warm
    with CaptureQueriesContext(connection) as ctx:
        body = client.get(url).json()
    product_statements = [q["sql"] for q in ctx.captured_queries if "catalog_product" in q["sql"]]
    assert len(product_statements) == 1, product_statements
    assert "COUNT(" not in product_statements[0].upper().replace("CARDINALITY", "")
    assert body["count"] == len(visible)
    assert [item["id"] for item in body["results"]] == visible[:10]


@pytest.mark.parametrize("page_size", [1, 7, 50])
def test_the_one_statement_pages_agree_with_the_counted_ones(page_size: int) -> None:
    """Page by page, the fast path (no filter) and the usual one (an ordering
    that changes nothing, so COUNT runs) give the same count, pages and links."""
    grantee, visible = build(products=60, grants=300)
    client = api_client(user=grantee)
    pages = -(-len(visible) // page_size)
    for page in range(1, pages + 1):
        fast = client.get(f"{PRODUCTS}?page_size={page_size}&page={page}").json()
        counted = client.get(f"{PRODUCTS}?page_size={page_size}&page={page}&ordering=id").json()
        assert fast["count"] == counted["count"] == len(visible)
        assert fast["results"] == counted["results"]
        assert (fast["next"] is None) == (counted["next"] is None)
        assert (fast["previous"] is None) == (counted["previous"] is None)
    for past in (pages + 1, 10**6):
        response = client.get(f"{PRODUCTS}?page_size={page_size}&page={past}")
        assert response.status_code == 404, response.content
    for odd in ("0", "-1", "x", "last"):
        assert client.get(f"{PRODUCTS}?page_size={page_size}&page={odd}").status_code == (200 if odd == "last" else 404)


def test_an_empty_list_counts_zero_in_the_fast_path() -> None:
    nobody = make_user(prefix="empty")
    body = api_client(user=nobody).get(PRODUCTS).json()
    assert body == {"count": 0, "next": None, "previous": None, "results": []}


def test_the_admins_unfiltered_list_is_one_statement_after_authentication() -> None:
    build(products=30, grants=10)
    client = admin_client()
    url = f"{PRODUCTS}?page_size=10"
    client.get(url)  # warm
    with CaptureQueriesContext(connection) as ctx:
        body = client.get(url).json()
    product_statements = [q["sql"] for q in ctx.captured_queries if "catalog_product" in q["sql"]]
    assert len(ctx.captured_queries) == 2, [q["sql"] for q in ctx.captured_queries]  # the user, the page
    assert len(product_statements) == 1, product_statements
    with schema_context(ACME.schema):
        assert body["count"] == Product.objects.count()
        assert [item["id"] for item in body["results"]] == list(
            Product.objects.order_by("id").values_list("pk", flat=True)[:10]
        )


def test_a_grants_users_unfiltered_list_is_three_queries() -> None:
    """The user, its model grants, the page with its count."""
    grantee, _ = build(products=30, grants=40)
    assert count_queries(api_client(user=grantee), f"{PRODUCTS}?page_size=10") == 3
