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
