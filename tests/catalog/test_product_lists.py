"""Product lists (pagination, filters, search, ordering), input validation on
every write and lookup (4xx JSON naming the problem, never a 500), and tenant
isolation of products."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django_tenants.utils import schema_context
from guardian.shortcuts import assign_perm

from accounts.models import User
from catalog.models import Product
from tests.helpers import (
    ACME,
    GLOBEX,
    PRODUCTS,
    admin_client,
    api_client,
    assert_error,
    detail_url,
    jwt_login,
    list_ids,
    make_product,
    make_user,
)

pytestmark = pytest.mark.django_db


def bulk_products(n: int, *, owner: User | None = None, **fields: Any) -> list[int]:
    with schema_context(ACME.schema):
        rows = Product.objects.bulk_create(
            Product(name=f"bulk {i:03d}", price=Decimal(i), owner=owner, **fields) for i in range(n)
        )
    return [p.pk for p in rows]


def acme_product_count() -> int:
    with schema_context(ACME.schema):
        return Product.objects.count()


# --- pagination ----------------------------------------------------------------------------------------------


def test_pagination_pages_and_sizes() -> None:
    bulk_products(120)
    total = acme_product_count()
    admin = admin_client()

    first = admin.get(PRODUCTS).json()
    assert first["count"] == total >= 120
    assert len(first["results"]) == 50
    assert first["previous"] is None
    assert "page=2" in first["next"]

    last_page = (total + 49) // 50
    last = admin.get(f"{PRODUCTS}?page={last_page}").json()
    assert len(last["results"]) == total - 50 * (last_page - 1)
    assert last["next"] is None
    assert last["previous"] is not None

    assert len(admin.get(f"{PRODUCTS}?page_size=10").json()["results"]) == 10
    assert len(admin.get(f"{PRODUCTS}?page_size=500").json()["results"]) == min(total, 200)  # capped
    # Pages do not overlap and together hold everything, in id order by default.
    ids = list_ids(admin)
    assert ids == sorted(ids)
    assert len(ids) == len(set(ids)) == total


@pytest.mark.parametrize("page", ["999999", "99999999999999999999999", "0", "-1", "abc"])
def test_page_out_of_range_is_a_json_404(page: str) -> None:
    bulk_products(3)
    body = assert_error(admin_client().get(f"{PRODUCTS}?page={page}"), 404)
    assert "page" in body["detail"].lower(), body


@pytest.mark.parametrize("page_size", ["0", "-5", "abc", "1e9", "99999999999999999999999"])
def test_odd_page_sizes_fall_back_to_sane_pages(page_size: str) -> None:
    bulk_products(60)
    response = admin_client().get(f"{PRODUCTS}?page_size={page_size}")
    assert response.status_code == 200, response.content
    assert 1 <= len(response.json()["results"]) <= 200


# --- filters, search, ordering -------------------------------------------------------------------------------


def test_filter_is_published() -> None:
    published = bulk_products(3, is_published=True)
    unpublished = bulk_products(4)
    admin = admin_client()
    shown_true = list_ids(admin, "is_published=true")
    shown_false = list_ids(admin, "is_published=false")
    assert set(published) <= set(shown_true)
    assert not set(unpublished) & set(shown_true)
    assert set(unpublished) <= set(shown_false)
    assert not set(published) & set(shown_false)
    # For anonymous callers the filter narrows what they may see, never widens it.
    assert set(list_ids(api_client(), "is_published=false")) == set()
    assert set(list_ids(api_client(), "is_published=true")) == set(list_ids(api_client())) >= set(published)


def test_filter_owner() -> None:
    alice, bob = make_user(prefix="alice"), make_user(prefix="bob")
    mine = bulk_products(3, owner=alice)
    theirs = bulk_products(2, owner=bob)
    admin = admin_client()
    assert sorted(list_ids(admin, f"owner={alice.pk}")) == sorted(mine)
    assert sorted(list_ids(admin, f"owner={bob.pk}")) == sorted(theirs)
    # Bob filtering on alice's products sees none: the filter does not bypass the rule.
    assert list_ids(api_client(user=bob), f"owner={alice.pk}") == []
    assert sorted(list_ids(api_client(user=bob))) == sorted(theirs)


def test_search_name_and_description_case_insensitively() -> None:
    a = make_product(name="Blue Widget")
    b = make_product(name="Gadget", description="comes in BLUE and red")
    c = make_product(name="Red thing")
    admin = admin_client()
    found = set(list_ids(admin, "search=blue"))
    assert {a.pk, b.pk} <= found
    assert c.pk not in found
    assert set(list_ids(admin, "search=widget")) == {a.pk}
    assert list_ids(admin, "search=%25") == []  # "%" is literal, not a wildcard


def test_search_respects_visibility() -> None:
    viewer = make_user(prefix="viewer")
    seen = make_product(name="Searchable seen")
    hidden = make_product(name="Searchable hidden")
    with schema_context(ACME.schema):
        assign_perm("view_product", viewer, seen)
    assert list_ids(api_client(user=viewer), "search=searchable") == [seen.pk]
    assert hidden.pk in list_ids(admin_client(), "search=searchable")


def test_ordering() -> None:
    ids = [
        make_product(name=name, price=Decimal(price)).pk
        for name, price in (("banana", "3.00"), ("apple", "1.50"), ("cherry", "2.25"))
    ]
    admin = admin_client()
    by_price = [i for i in list_ids(admin, "ordering=price") if i in ids]
    assert by_price == [ids[1], ids[2], ids[0]]
    by_name_desc = [i for i in list_ids(admin, "ordering=-name") if i in ids]
    assert by_name_desc == [ids[2], ids[0], ids[1]]
    # Ordering on a field not offered is ignored, not obeyed, and not a 500.
    for field in ("owner__password", "owner__email", "nope"):
        response = admin.get(f"{PRODUCTS}?ordering={field}")
        assert response.status_code == 200, (field, response.content)
        got = [item["id"] for item in response.json()["results"]]
        assert got == sorted(got), field


def test_filters_compose() -> None:
    owner = make_user(prefix="owner")
    target = make_product(owner=owner, name="Combo match", price=Decimal("5.00"), published=True)
    make_product(owner=owner, name="Combo low", price=Decimal("1.00"))
    make_product(owner=owner, name="Other name", price=Decimal("9.00"), published=True)
    make_product(name="Combo other owner", published=True)
    shown = list_ids(admin_client(), f"owner={owner.pk}&is_published=true&search=combo&ordering=-price")
    assert shown == [target.pk]
    low_first = list_ids(admin_client(), f"owner={owner.pk}&search=combo&ordering=price")
    assert low_first[-1] == target.pk
    assert len(low_first) == 2


@pytest.mark.parametrize(
    ("query", "field"),
    [("owner=abc", "owner"), ("owner=1e999", "owner")],
)
def test_bad_filter_values_answer_400_naming_the_filter(query: str, field: str) -> None:
    assert_error(admin_client().get(f"{PRODUCTS}?{query}"), 400, field=field)


# --- bad input: 4xx JSON naming the problem, never 500 -------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"name": "x", "price": "-0.01"}, "price", id="negative-price"),
        pytest.param({"name": "x", "price": "1.234"}, "price", id="three-decimals"),
        pytest.param({"name": "x", "price": "1e20"}, "price", id="1e20"),
        pytest.param({"name": "x", "price": 1e20}, "price", id="1e20-number"),
        pytest.param({"name": "x", "price": "NaN"}, "price", id="nan"),
        pytest.param({"name": "x", "price": "Infinity"}, "price", id="infinity"),
        pytest.param({"name": "x", "price": "abc"}, "price", id="price-text"),
        pytest.param({"name": "x"}, "price", id="no-price"),
        pytest.param({"name": "n" * 300, "price": "1.00"}, "name", id="name-300"),
        pytest.param({"name": "", "price": "1.00"}, "name", id="name-empty"),
        pytest.param({"price": "1.00"}, "name", id="no-name"),
        pytest.param({"name": "a\x00b", "price": "1.00"}, "name", id="name-nul"),
        pytest.param({"name": "x", "price": "1.00", "description": "d" * 10_001}, "description", id="long-description"),
        pytest.param({"name": "x", "price": "1.00", "description": "a\x00b"}, "description", id="description-nul"),
        pytest.param({"name": ["x"], "price": "1.00"}, "name", id="name-list"),
    ],
)
def test_bad_product_bodies_answer_400_naming_the_field(body: dict[str, Any], field: str) -> None:
    before = acme_product_count()
    assert_error(admin_client().post(PRODUCTS, body, format="json"), 400, field=field)
    assert acme_product_count() == before
    if field not in body:
        return  # a missing field is fine for PATCH
    product = make_product(name="untouched", price=Decimal("2.00"))
    assert_error(admin_client().patch(detail_url(product.pk), {field: body[field]}, format="json"), 400, field=field)
    with schema_context(ACME.schema):
        again = Product.objects.get(pk=product.pk)
    assert (again.name, again.price) == ("untouched", Decimal("2.00"))


def test_edge_values_that_are_fine() -> None:
    admin = admin_client()
    for price in ("0", "0.00", "9999999999.99"):
        response = admin.post(PRODUCTS, {"name": "n" * 200, "price": price}, format="json")
        assert response.status_code == 201, (price, response.content)
        assert Decimal(response.json()["price"]) == Decimal(price)
    assert_error(admin.post(PRODUCTS, {"name": "x", "price": "10000000000.00"}, format="json"), 400, field="price")


def test_malformed_bodies_are_400_json() -> None:
    admin = admin_client()
    assert_error(admin.post(PRODUCTS, "{not json", content_type="application/json"), 400)
    assert_error(admin.post(PRODUCTS, ["a", "list"], format="json"), 400)
    response = admin.post(PRODUCTS, "name=x&price=1", content_type="application/x-www-form-urlencoded")
    assert_error(response, 415)


@pytest.mark.parametrize(
    "pk", ["abc", "1.5", "-1", "0", "99999999999999999999999", "9223372036854775808", "%00", "1%00", "\uff11"]
)
@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_odd_ids_in_the_url_answer_json_4xx(pk: str, method: str) -> None:
    make_product()
    response = getattr(admin_client(), method)(f"{PRODUCTS}{pk}/", {"name": "x"}, format="json")
    assert response.status_code in (400, 404), (pk, response.status_code, response.content)
    assert_error(response, response.status_code)


@pytest.mark.parametrize(
    ("method", "suffix"), [("post", "publish/"), ("post", "unpublish/"), ("get", "access/"), ("get", "permissions/")]
)
@pytest.mark.parametrize("pk", ["abc", "99999999999999999999999"])
def test_odd_ids_on_actions_answer_json_404(method: str, suffix: str, pk: str) -> None:
    assert_error(getattr(admin_client(), method)(f"{PRODUCTS}{pk}/{suffix}"), 404)


@pytest.mark.parametrize(
    "query",
    [
        "search=%00",
        "search=a%00b",
        "ordering=%00",
        "owner=%00",
        "is_published=%00",
        "page=%00",
    ],
)
def test_nul_bytes_in_the_query_answer_400_json(query: str) -> None:
    body = assert_error(admin_client().get(f"{PRODUCTS}?{query}"), 400)
    assert "nul" in body["detail"].lower(), body


@pytest.mark.parametrize(
    "query",
    [
        "search=" + "x" * 5000,
        "search=%27%3B%20DROP%20TABLE%20catalog_product%3B--",
        "search=%E2%80%AE%F0%9F%98%80",
        "owner=99999999999999999999999",
        "owner=-1",
        "owner=1.5",
        "ordering=-",
        "ordering=price,-name,id",
        "ordering=,,,",
        "is_published=",
        "is_published=maybe",  # django-filter's BooleanFilter ignores values it does not know
        "page_size=10&page=2",
    ],
)
def test_odd_queries_never_500(query: str) -> None:
    bulk_products(15)
    response = admin_client().get(f"{PRODUCTS}?{query}")
    assert response.status_code < 500, (query, response.content)
    assert response["Content-Type"].startswith("application/json")
    if response.status_code >= 400:
        assert_error(response, response.status_code)


# --- tenants -------------------------------------------------------------------------------------------------


def test_globex_sees_nothing_of_acme() -> None:
    acme_ids = bulk_products(5, is_published=True) + bulk_products(5)
    # An explicit id well clear of acme's, so that no acme row shares it.
    globex_product = make_product(GLOBEX, pk=max(acme_ids) + 10_000, name="globex only", price=Decimal(1))
    globex_admin = admin_client(GLOBEX)
    globex_user = api_client(GLOBEX, user=make_user(GLOBEX, prefix="globexer"))

    for client in (globex_admin, globex_user, api_client(GLOBEX)):
        shown = list_ids(client)
        assert not set(acme_ids) & set(shown), shown
    assert list_ids(globex_admin) == [globex_product.pk]
    assert list_ids(globex_admin, "search=bulk") == []

    for pk in acme_ids:
        assert_error(globex_admin.get(detail_url(pk)), 404)
    assert_error(globex_admin.patch(detail_url(acme_ids[0]), {"name": "hijacked"}, format="json"), 404)
    assert_error(globex_admin.delete(detail_url(acme_ids[-1])), 404)
    assert_error(globex_admin.post(f"{detail_url(acme_ids[-1])}publish/"), 404)
    assert_error(globex_admin.get(f"{detail_url(acme_ids[0])}permissions/"), 404)
    assert_error(globex_admin.get(f"{detail_url(acme_ids[0])}access/"), 404)
    assert_error(api_client(GLOBEX).get(detail_url(acme_ids[0])), 404)
    with schema_context(ACME.schema):
        assert Product.objects.filter(pk__in=acme_ids).count() == 10
        assert not Product.objects.filter(name="hijacked").exists()

    # And the other way round.
    assert_error(admin_client().get(detail_url(globex_product.pk)), 404)
    assert globex_product.pk not in list_ids(admin_client())


def test_acme_token_is_refused_on_globex() -> None:
    bulk_products(2, is_published=True)
    access = jwt_login(ACME, ACME.admin_email)["access"]
    assert_error(api_client(GLOBEX, token=access).get(PRODUCTS), 401)
    assert_error(api_client(GLOBEX, token=access).post(PRODUCTS, {"name": "x", "price": "1.00"}, format="json"), 401)
    with schema_context(GLOBEX.schema):
        assert not Product.objects.exists()
