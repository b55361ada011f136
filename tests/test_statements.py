"""core.statements: a queryset compiled once per shape, run with each call's values."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import QuerySet, Value
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from catalog.models import Product
from core import statements
from tenants.models import Tenant
from tests.helpers import ACME, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    statements.forget()
    yield
    statements.forget()


def _by_owner(stand_ins: tuple[int, ...]) -> QuerySet[Product]:
    return Product.objects.filter(owner_id=stand_ins[0], price__gte=Decimal(0)).order_by("id")


def test_a_shape_is_compiled_once_and_run_with_each_calls_values() -> None:
    first, second = make_user(prefix="first"), make_user(prefix="second")
    built: list[tuple[int, ...]] = []

    def build(stand_ins: tuple[int, ...]) -> QuerySet[Product]:
        built.append(stand_ins)
        return _by_owner(stand_ins)

    with schema_context(ACME.schema):
        mine = Product.objects.create(name="mine", price=Decimal(1), owner=first)
        theirs = Product.objects.create(name="theirs", price=Decimal(2), owner=second)
        for user, expected in ((first, mine), (second, theirs), (first, mine)):
            compiled = statements.statement(("test", "by-owner"), build, 1)
            assert compiled is not None
            rows = list(Product.objects.raw(compiled.sql, compiled.params([user.pk])))
            assert [r.pk for r in rows] == [expected.pk]
    assert built == [statements.STAND_INS[:1]]  # built and compiled once
    assert compiled is not None
    assert compiled.constants.count(Decimal(0)) == 1  # constants stay as compiled


def test_the_wrong_number_of_values_is_refused() -> None:
    compiled = statements.statement(("test", "by-owner"), _by_owner, 1)
    assert compiled is not None
    with pytest.raises(ValueError, match="takes 1 values, not 2"):
        compiled.params([1, 2])


def test_a_value_written_into_the_sql_is_not_reused() -> None:
    def inlined(stand_ins: tuple[int, ...]) -> QuerySet[Product]:
        # An annotation's literal SQL: the stand-in is in the text, not a parameter.
        return Product.objects.extra(where=[f"owner_id = {stand_ins[0]}"])

    assert statements.statement(("test", "inlined"), inlined, 1) is None


def test_a_value_left_out_is_not_reused() -> None:
    def ignores(stand_ins: tuple[int, ...]) -> QuerySet[Product]:
        return Product.objects.filter(owner_id=stand_ins[0]).annotate(flag=Value(True))

    assert statements.statement(("test", "ignores"), ignores, 2) is None  # stand-in 2 appears nowhere


def test_a_bool_constant_is_not_taken_for_a_value() -> None:
    """True == 1 in Python: only ints stand in."""

    def published(stand_ins: tuple[int, ...]) -> QuerySet[Product]:
        return Product.objects.filter(owner_id=stand_ins[0]).annotate(flag=Value(True))

    compiled = statements.statement(("test", "published"), published, 1)
    assert compiled is not None
    assert True in compiled.constants
    assert len(compiled.slots) == 1


def test_nothing_can_match_is_left_to_the_orm() -> None:
    def empty(stand_ins: tuple[int, ...]) -> QuerySet[Product]:
        return Product.objects.filter(pk__in=[])

    with CaptureQueriesContext(connection) as ctx:
        assert statements.statement(("test", "empty"), empty, 0) is None
    assert not ctx.captured_queries


def test_fetch_builds_instances_with_their_annotations() -> None:
    owner = make_user(prefix="fetch")
    with schema_context(ACME.schema):
        made = Product.objects.create(name="fetched", price=Decimal("3.50"), owner=owner)

        def build(stand_ins: tuple[int, ...]) -> QuerySet[Product]:
            return Product.objects.filter(owner_id=stand_ins[0]).annotate(seven=Value(7)).order_by("id")

        compiled = statements.statement(("test", "fetch"), build, 1)
        assert compiled is not None
        (row,) = compiled.fetch([owner.pk], tail=" LIMIT %s", tail_params=(5,))
        orm = Product.objects.get(pk=made.pk)
        assert [getattr(row, f.attname) for f in Product._meta.concrete_fields] == [
            getattr(orm, f.attname) for f in Product._meta.concrete_fields
        ]
        assert row.seven == 7
        assert row._state.adding is False
        assert row._state.db == "default"


def test_converters_apply_to_fetched_rows() -> None:
    """A JSONField's value is decoded by its converter, as the ORM does."""
    compiled = statements.statement(("test", "tenant"), lambda ids: Tenant.objects.filter(pk=ids[0]), 1)
    assert compiled is not None
    assert compiled.converters
    tenant = Tenant.objects.exclude(schema_name="public").first()
    assert tenant is not None
    tenant.link_templates = {"activation": "https://x.example/a/{uid}/{token}"}
    Tenant.objects.filter(pk=tenant.pk).update(link_templates=tenant.link_templates)
    (row,) = compiled.fetch([tenant.pk])
    assert row.link_templates == tenant.link_templates
    assert row.schema_name == tenant.schema_name


def test_rows_of_more_than_one_model_are_left_to_the_orm() -> None:
    def joined(stand_ins: tuple[int, ...]) -> QuerySet[Product]:
        return Product.objects.select_related("owner").filter(owner_id=stand_ins[0])

    def partial(stand_ins: tuple[int, ...]) -> QuerySet[Product]:
        return Product.objects.only("name").filter(owner_id=stand_ins[0])

    assert statements.statement(("test", "joined"), joined, 1) is None
    assert statements.statement(("test", "partial"), partial, 1) is None
