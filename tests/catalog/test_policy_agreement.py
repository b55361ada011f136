"""List filtering, single-object checks, explain and the HTTP API agree.

Each hypothesis example builds a small random world inside acme's schema
(users, groups, memberships that may have ended, model permissions, products
with or without owners, guardian object grants that may have been revoked),
then checks, for anonymous and every user against every product and action:

(a) membership in ``policy.visible(user, action)``;
(b) the flags of ``policy.product_with_access(user, pk)`` and ``policy.can``;
(c) ``policy.explain(user, product)``: the verdict, and the exact list of
    sources;
(d) for a sample of (caller, product) pairs, the real API: list membership,
    detail status (200/404) and PATCH status (200/403/404, 401 anonymous).

Everything is compared with ``oracle_sources``, a naive reading of the rule in
ARCHITECTURE.md computed from the world's description alone (never from
policy or from the database). Every example runs in a savepoint that is
rolled back, so examples never see each other's data.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import AnonymousUser, Group, Permission
from django.core.cache import caches
from django.db import transaction
from django_tenants.utils import schema_context
from guardian.shortcuts import assign_perm, remove_perm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from accounts.models import User
from catalog import policy
from catalog.models import Product
from tests.helpers import ACME, PASSWORD, PRODUCTS, api_client, list_ids

ACTIONS = ("view", "change", "delete", "publish")
MODEL_ACTIONS = (*ACTIONS, "add")  # "add" is noise: it grants nothing on an existing product
CODENAME = {
    "view": "view_product",
    "add": "add_product",
    "change": "change_product",
    "delete": "delete_product",
    "publish": "can_publish_product",
}
ANON = -1  # the anonymous caller's index

Source = tuple[str, str | None, str | None]  # (source, permission, group name)


# --- the world, as plain data ------------------------------------------------------------


@dataclass(frozen=True)
class UserSpec:
    is_superuser: bool = False
    is_active: bool = True
    model_perms: frozenset[str] = frozenset()


@dataclass(frozen=True)
class GroupSpec:
    model_perms: frozenset[str] = frozenset()
    members: frozenset[int] = frozenset()
    former_members: frozenset[int] = frozenset()  # added, then removed


@dataclass(frozen=True)
class ProductSpec:
    owner: int | None = None
    is_published: bool = False


@dataclass(frozen=True)
class World:
    users: tuple[UserSpec, ...]
    products: tuple[ProductSpec, ...]
    groups: tuple[GroupSpec, ...] = ()
    # (user index, product index, action) -> revoked afterwards?
    user_grants: dict[tuple[int, int, str], bool] = field(default_factory=dict)
    # (group index, product index, action) -> revoked afterwards?
    group_grants: dict[tuple[int, int, str], bool] = field(default_factory=dict)
    # (caller index or ANON, product index) pairs checked through HTTP
    http: tuple[tuple[int, int], ...] = ()


def group_name(index: int) -> str:
    return f"pt-group-{index}"


def email(index: int) -> str:
    return f"pt-user-{index}@acme.test"


# --- the oracle: ARCHITECTURE.md's rule, read naively ---------------------------------------


def oracle_sources(world: World, user: int, product: int, action: str) -> list[Source]:
    """Every source that grants ``action`` on the product to the caller.

    Inactive users hold no permissions (as everywhere in Django), so they are
    anonymous for this purpose: they may view published products, nothing else.
    """
    spec = world.products[product]
    sources: list[Source] = []
    permission = f"catalog.{CODENAME[action]}"
    if user != ANON and world.users[user].is_active:
        me = world.users[user]
        my_groups = [g for g, group in enumerate(world.groups) if user in group.members]
        if me.is_superuser:
            sources.append(("superuser", None, None))
        if action in me.model_perms:
            sources.append(("model_direct", permission, None))
        for g in my_groups:
            if action in world.groups[g].model_perms:
                sources.append(("model_group", permission, group_name(g)))
        if world.user_grants.get((user, product, action)) is False:  # granted, not revoked
            sources.append(("object_direct", permission, None))
        for g in my_groups:
            if world.group_grants.get((g, product, action)) is False:
                sources.append(("object_group", permission, group_name(g)))
        if spec.owner == user and action != "publish":
            sources.append(("owner", None, None))
    if action == "view" and spec.is_published:
        sources.append(("published", None, None))
    return sources


def oracle_allows(world: World, user: int, product: int, action: str) -> bool:
    return bool(oracle_sources(world, user, product, action))


# --- strategies ------------------------------------------------------------------------------

action_sets = st.frozensets(st.sampled_from(MODEL_ACTIONS), max_size=3)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    n_users = draw(st.integers(2, 4))
    superuser = draw(st.none() | st.integers(0, n_users - 1))
    users = tuple(
        UserSpec(
            is_superuser=i == superuser,
            is_active=draw(st.sampled_from((True, True, True, False))),
            model_perms=draw(st.frozensets(st.sampled_from(MODEL_ACTIONS), max_size=2) | st.just(frozenset())),
        )
        for i in range(n_users)
    )
    n_groups = draw(st.integers(0, 3))
    groups = []
    for _ in range(n_groups):
        status = [draw(st.sampled_from(("out", "member", "former"))) for _ in range(n_users)]
        groups.append(
            GroupSpec(
                model_perms=draw(st.just(frozenset()) | action_sets),
                members=frozenset(u for u, s in enumerate(status) if s == "member"),
                former_members=frozenset(u for u, s in enumerate(status) if s == "former"),
            )
        )
    n_products = draw(st.integers(1, 6))
    products = tuple(
        ProductSpec(owner=draw(st.none() | st.integers(0, n_users - 1)), is_published=draw(st.booleans()))
        for _ in range(n_products)
    )
    actions = st.sampled_from(ACTIONS)
    user_grants = draw(
        st.dictionaries(
            st.tuples(st.integers(0, n_users - 1), st.integers(0, n_products - 1), actions), st.booleans(), max_size=8
        )
    )
    group_grants = (
        draw(
            st.dictionaries(
                st.tuples(st.integers(0, n_groups - 1), st.integers(0, n_products - 1), actions),
                st.booleans(),
                max_size=8,
            )
        )
        if n_groups
        else {}
    )
    http = tuple(
        draw(
            st.lists(st.tuples(st.integers(ANON, n_users - 1), st.integers(0, n_products - 1)), max_size=4, unique=True)
        )
    )
    return World(users, products, tuple(groups), user_grants, group_grants, http)


# --- building the world in the database --------------------------------------------------------


@dataclass
class Built:
    users: list[User]
    products: list[Product]

    def principal(self, index: int) -> Any:
        """A fresh copy (no permission caches), like a new request's user."""
        return AnonymousUser() if index == ANON else User.objects.get(pk=self.users[index].pk)


_HASH: dict[str, str] = {}


def password_hash() -> str:
    if not _HASH:
        _HASH["value"] = make_password(PASSWORD)
    return _HASH["value"]


def build(world: World) -> Built:
    perms = {
        p.codename: p
        for p in Permission.objects.filter(content_type__app_label="catalog", codename__in=CODENAME.values())
    }
    assert len(perms) == len(CODENAME)
    users = [
        User.objects.create_user(
            email=email(i), username=f"pt-user-{i}", is_active=u.is_active, is_superuser=u.is_superuser
        )
        for i, u in enumerate(world.users)
    ]
    User.objects.filter(pk__in=[u.pk for u in users]).update(password=password_hash())
    for user, user_spec in zip(users, world.users, strict=True):
        user.user_permissions.add(*(perms[CODENAME[a]] for a in user_spec.model_perms))
    groups = []
    for g, spec in enumerate(world.groups):
        group = Group.objects.create(name=group_name(g))
        group.permissions.add(*(perms[CODENAME[a]] for a in spec.model_perms))
        group.user_set.add(*(users[u] for u in spec.members | spec.former_members))
        groups.append(group)
    products = [
        Product.objects.create(
            name=f"pt-product-{i}",
            price=Decimal("1.00"),
            owner=None if spec.owner is None else users[spec.owner],
            is_published=spec.is_published,
        )
        for i, spec in enumerate(world.products)
    ]
    for u, p, action in world.user_grants:
        assign_perm(f"catalog.{CODENAME[action]}", users[u], products[p])
    for g, p, action in world.group_grants:
        assign_perm(f"catalog.{CODENAME[action]}", groups[g], products[p])
    # History: revocations and departures come after the grants.
    for (u, p, action), revoked in world.user_grants.items():
        if revoked:
            remove_perm(f"catalog.{CODENAME[action]}", users[u], products[p])
    for (g, p, action), revoked in world.group_grants.items():
        if revoked:
            remove_perm(f"catalog.{CODENAME[action]}", groups[g], products[p])
    for group, group_spec in zip(groups, world.groups, strict=True):
        group.user_set.remove(*(users[u] for u in group_spec.former_members))
    return Built(users, products)


@pytest.fixture
def acme_savepoint(db: None) -> Any:
    """``with acme_savepoint():`` one example in acme's schema, rolled back."""

    @contextlib.contextmanager
    def run() -> Iterator[None]:
        caches["default"].clear()  # login throttles count across examples otherwise
        with schema_context(ACME.schema), transaction.atomic():
            yield
            transaction.set_rollback(True)

    return run


# --- the checks ---------------------------------------------------------------------------------


def normalised(sources: list[dict[str, Any]]) -> Counter[Source]:
    return Counter((s["source"], s.get("permission"), s.get("group")) for s in sources)


def check_policy(world: World, built: Built) -> None:
    """(a), (b) and (c) for every caller and product."""
    ids = [p.pk for p in built.products]
    plain = {p.pk: p for p in Product.objects.filter(pk__in=ids)}  # no flags: can() must query
    assert policy.product_with_access(AnonymousUser(), max(ids) + 10_000) is None
    for u in (ANON, *range(len(world.users))):
        caller = built.principal(u)
        for action in ACTIONS:
            listed = set(policy.visible(caller, action).filter(pk__in=ids).values_list("pk", flat=True))
            expected = {ids[p] for p in range(len(ids)) if oracle_allows(world, u, p, action)}
            assert listed == expected, (u, action, "visible", listed, expected)
            # The page statement compiled once per shape (core.statements) holds the same
            # products, in id order, and counts the whole list.
            everything = policy.visible(caller, action).order_by("id")
            rows, total = policy.visible_page(caller, 0, 10_000, action)
            assert [r.pk for r in rows] == list(everything.values_list("pk", flat=True)), (u, action, "page")
            assert {r.pk for r in rows} & set(ids) == expected, (u, action, "page")
            assert total == (everything.count() if rows else None), (u, action, "page total")
        for p, pk in enumerate(ids):
            flagged = policy.product_with_access(caller, pk)
            assert flagged is not None
            answer = policy.explain(caller, plain[pk])
            assert set(answer) == set(ACTIONS)
            for action in ACTIONS:
                allowed = oracle_allows(world, u, p, action)
                where = (u, p, action)
                assert getattr(flagged, f"can_{action}") is allowed, (*where, "product_with_access")
                assert policy.can(caller, action, flagged) is allowed, (*where, "can (flags)")
                if p == (u + 1) % len(ids):  # can() without flags is visible()'s query again: once per caller
                    assert policy.can(caller, action, plain[pk]) is allowed, (*where, "can (query)")
                assert answer[action]["allowed"] is allowed, (*where, "explain", answer[action])
                assert normalised(answer[action]["sources"]) == Counter(oracle_sources(world, u, p, action)), (
                    *where,
                    "explain sources",
                    answer[action]["sources"],
                    oracle_sources(world, u, p, action),
                )


def client_as(world: World, built: Built, u: int) -> APIClient | None:
    if u == ANON:
        return api_client()
    if not world.users[u].is_active:
        refused = api_client().post("/api/auth/jwt/create/", {"email": email(u), "password": PASSWORD}, format="json")
        assert refused.status_code == 401, refused.content
        return None
    return api_client(user=email(u))


def expected_patch(world: World, u: int, p: int) -> int:
    if u == ANON:
        return 401  # writes need credentials; asked before any lookup, so nothing leaks
    if not oracle_allows(world, u, p, "view"):
        return 404  # cannot see it: no existence leak, whatever else it may do
    return 200 if oracle_allows(world, u, p, "change") else 403


def check_http(world: World, built: Built) -> None:
    """(d): the API, for the sampled pairs."""
    ids = [p.pk for p in built.products]
    by_caller: dict[int, list[int]] = {}
    for u, p in world.http:
        by_caller.setdefault(u, []).append(p)
    for u, sampled in by_caller.items():
        client = client_as(world, built, u)
        if client is None:
            continue
        expected = {ids[p] for p in range(len(ids)) if oracle_allows(world, u, p, "view")}
        assert set(list_ids(client)) & set(ids) == expected, (u, "list")
        for p in sampled:
            url = f"{PRODUCTS}{ids[p]}/"
            detail = client.get(url)
            assert detail.status_code == (200 if oracle_allows(world, u, p, "view") else 404), (u, p, detail.content)
            patch = client.patch(url, {}, format="json")
            assert patch.status_code == expected_patch(world, u, p), (u, p, patch.content)


def check_world(world: World) -> Built:
    built = build(world)
    check_policy(world, built)
    check_http(world, built)
    return built


# --- the property ---------------------------------------------------------------------------------


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(world=worlds())
def test_list_detail_and_explain_agree(acme_savepoint: Any, world: World) -> None:
    with acme_savepoint():
        check_world(world)


# --- the tricky cases, by hand ----------------------------------------------------------------------


def everyone_sees(world: World) -> tuple[tuple[int, int], ...]:
    return tuple((u, p) for u in (ANON, *range(len(world.users))) for p in range(len(world.products)))


def test_owner_cannot_publish_without_can_publish_product(acme_savepoint: Any) -> None:
    world = World(
        users=(UserSpec(), UserSpec()),
        products=(ProductSpec(owner=0), ProductSpec(owner=1)),
        user_grants={(1, 1, "publish"): False},
    )
    world = World(**{**world.__dict__, "http": everyone_sees(world)})
    with acme_savepoint():
        built = check_world(world)
        owner_only, owner_with_grant = built.products
        assert policy.explain(built.principal(0), owner_only)["publish"] == {"allowed": False, "sources": []}
        assert policy.explain(built.principal(1), owner_with_grant)["publish"]["sources"] == [
            {"source": "object_direct", "permission": "catalog.can_publish_product"}
        ]
        first = api_client(user=email(0))
        second = api_client(user=email(1))
        assert first.post(f"{PRODUCTS}{owner_only.pk}/publish/").status_code == 403
        assert first.post(f"{PRODUCTS}{owner_with_grant.pk}/publish/").status_code == 404
        assert second.post(f"{PRODUCTS}{owner_with_grant.pk}/publish/").status_code == 200


def test_object_change_grant_without_view(acme_savepoint: Any) -> None:
    """The rule decides each action on its own: change does not imply view.

    policy (and explain) say change is allowed; the product is not visible,
    so the API answers 404 to GET and to PATCH alike (ARCHITECTURE: a product
    the caller cannot see answers 404; nothing about it may leak).
    """
    world = World(
        users=(UserSpec(), UserSpec()),
        groups=(GroupSpec(members=frozenset({1})),),
        products=(ProductSpec(),),
        user_grants={(0, 0, "change"): False},
        group_grants={(0, 0, "change"): False},
    )
    world = World(**{**world.__dict__, "http": everyone_sees(world)})
    with acme_savepoint():
        built = check_world(world)
        for u in (0, 1):
            answer = policy.explain(built.principal(u), built.products[0])
            assert answer["change"]["allowed"] is True
            assert answer["view"] == {"allowed": False, "sources": []}
        # check_world asserted GET and PATCH are 404 for both, through expected_patch


def test_group_grants_end_when_the_user_leaves_the_group(acme_savepoint: Any) -> None:
    world = World(
        users=(UserSpec(), UserSpec()),
        groups=(
            GroupSpec(members=frozenset({1}), former_members=frozenset({0})),
            GroupSpec(model_perms=frozenset({"view", "change"}), former_members=frozenset({0, 1})),
        ),
        products=(ProductSpec(), ProductSpec()),
        group_grants={(0, 0, "view"): False, (0, 0, "change"): False, (0, 1, "delete"): False},
    )
    world = World(**{**world.__dict__, "http": everyone_sees(world)})
    with acme_savepoint():
        built = check_world(world)
        leaver = built.principal(0)
        assert not policy.visible(leaver, "view").filter(pk__in=[p.pk for p in built.products]).exists()
        assert all(not a["allowed"] for a in policy.explain(leaver, built.products[0]).values())
        stayer = policy.explain(built.principal(1), built.products[0])
        assert stayer["view"]["sources"] == [
            {"source": "object_group", "permission": "catalog.view_product", "group": group_name(0)}
        ]


def test_inactive_users_hold_nothing_but_what_anonymous_holds(acme_savepoint: Any) -> None:
    every = frozenset(MODEL_ACTIONS)
    world = World(
        users=(
            UserSpec(is_superuser=True, is_active=False),
            UserSpec(is_active=False, model_perms=every),
            UserSpec(),
        ),
        groups=(GroupSpec(model_perms=every, members=frozenset({0, 1, 2})),),
        products=(ProductSpec(owner=0), ProductSpec(owner=1, is_published=True)),
        user_grants={(u, p, a): False for u in (0, 1) for p in (0, 1) for a in ACTIONS},
        group_grants={(0, 0, "view"): False},
    )
    world = World(**{**world.__dict__, "http": everyone_sees(world)})
    with acme_savepoint():
        built = check_world(world)
        for u in (0, 1):
            answer = policy.explain(built.principal(u), built.products[1])
            assert answer["view"] == {"allowed": True, "sources": [{"source": "published"}]}
            assert not any(answer[a]["allowed"] for a in ("change", "delete", "publish"))
