"""ORM statements compiled once per shape, then run with each call's values.

A queryset as rich as the permission rule's (catalog.policy: a union of
branches in an ARRAY, twice over for a page and its count) costs the worker
more CPU to build and compile (~3 ms) than PostgreSQL takes to run it
(bench/products_http.py). Its SQL text depends on its *shape* (which
branches, how many permission ids), never on the values in it (the user's
id, the permission ids): those are parameters.

So a shape is built once per process, from stand-in values, and compiled; the
positions of the stand-ins among the statement's parameters are remembered.
A call runs the remembered SQL with its own values in those positions. The
queryset stays the one definition of the statement: nothing is written twice,
and what runs is exactly what the ORM compiled.

Stand-ins are integers no row holds (negative, and within 32 bits, so that
every integer column takes them). A compile that does not show every stand-in
among its parameters, or shows one in its text (a value written into the SQL
rather than passed), cannot be reused: ``statement`` then answers None and the
caller takes the ORM path, as if nothing were cached.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Model, QuerySet

logger = logging.getLogger(__name__)

MAX_VALUES = 64
STAND_INS: tuple[int, ...] = tuple(-2_000_000_000 - i for i in range(MAX_VALUES))
# Shapes are few (a handful per action and permission-id count); the bound
# only guards against a caller keying on values by mistake.
MAX_SHAPES = 1024


@dataclass(frozen=True)
class Statement:
    """A compiled statement: its SQL and parameters, with the positions to
    fill with a call's values."""

    sql: str
    constants: tuple[Any, ...]
    slots: tuple[tuple[int, int], ...]  # (parameter position, index of the value)
    arity: int
    model: type[Model]
    # How a row becomes an instance, as Django's ModelIterable makes it: the
    # attnames of the model's columns (the first ones), the annotations' names
    # and columns, and the converters of the columns that have some.
    attnames: tuple[str, ...]
    annotations: tuple[tuple[str, int], ...]
    converters: tuple[tuple[int, tuple[Callable[..., Any], ...], Any], ...]

    def params(self, values: Sequence[Any]) -> list[Any]:
        if len(values) != self.arity:
            raise ValueError(f"this statement takes {self.arity} values, not {len(values)}")
        params = list(self.constants)
        for position, index in self.slots:
            params[position] = values[index]
        return params

    def fetch(self, values: Sequence[Any], *, tail: str = "", tail_params: Sequence[Any] = ()) -> list[Any]:
        """The statement's rows as model instances (annotations as
        attributes), run with ``values``; ``tail`` (e.g. ``LIMIT %s``) is
        appended to the SQL, with its own parameters."""
        sql, params = f"{self.sql}{tail}", [*self.params(values), *tail_params]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        width, alias = len(self.attnames), connection.alias
        instances = []
        for fetched in rows:
            row = list(fetched)
            for column, functions, expression in self.converters:
                for function in functions:
                    row[column] = function(row[column], expression, connection)
            instance = self.model.from_db(alias, self.attnames, row[:width])
            for name, column in self.annotations:
                setattr(instance, name, row[column])
            instances.append(instance)
        return instances


_UNUSABLE = object()
_statements: dict[Hashable, Any] = {}
_lock = threading.Lock()


def statement(key: Hashable, build: Callable[[tuple[int, ...]], QuerySet[Any]], arity: int) -> Statement | None:
    """The statement of ``build(stand_ins)``'s queryset, compiled the first
    time ``key`` is asked for; None when that queryset's SQL cannot be reused
    (see the module's docstring). ``key`` names the shape: two calls with the
    same key must build the same SQL text from the same stand-ins."""
    found = _statements.get(key)
    if found is None:
        found = _compile(key, build, arity)
        with _lock:
            if len(_statements) >= MAX_SHAPES:
                _statements.clear()
            _statements[key] = found
    return None if found is _UNUSABLE else found


def _compile(key: Hashable, build: Callable[[tuple[int, ...]], QuerySet[Any]], arity: int) -> Any:
    if not 0 <= arity <= MAX_VALUES:
        raise ValueError(f"at most {MAX_VALUES} values a statement")
    stand_ins = STAND_INS[:arity]
    queryset = build(stand_ins)
    compiler = queryset.query.get_compiler(using=queryset.db)
    try:
        sql, params = compiler.as_sql()
    except EmptyResultSet:  # nothing can match: the ORM answers that without a query
        return _UNUSABLE
    index_of = {value: index for index, value in enumerate(stand_ins)}
    slots = tuple(
        (position, index_of[value])
        for position, value in enumerate(params)
        if type(value) is int and value in index_of  # True == 1: only ints stand in
    )
    filled = {index for _, index in slots}
    inlined = [value for value in stand_ins if str(value) in sql]
    if len(filled) != arity or inlined:
        logger.warning(
            "statement %r is compiled for every call: %s",
            key,
            f"stand-ins {inlined} written into its SQL" if inlined else "a value is not among its parameters",
        )
        return _UNUSABLE
    layout = _row_layout(compiler)
    if layout is None:
        logger.warning("statement %r is compiled for every call: its rows are more than one model's", key)
        return _UNUSABLE
    attnames, annotations = layout
    converters = tuple(
        (column, tuple(functions), expression)
        for column, (functions, expression) in compiler.get_converters([col for col, _, _ in compiler.select]).items()
    )
    return Statement(
        sql=sql,
        constants=tuple(params),
        slots=slots,
        arity=arity,
        model=queryset.model,
        attnames=attnames,
        annotations=annotations,
        converters=converters,
    )


def _row_layout(compiler: Any) -> tuple[tuple[str, ...], tuple[tuple[str, int], ...]] | None:
    """(attnames, annotations) for ``Statement.fetch``: the model's columns
    first, in order, then the annotations; None for any other layout (related
    models, values(), deferred fields)."""
    info = compiler.klass_info
    if not info or info.get("related_klass_infos"):
        return None
    select, fields = compiler.select, info["select_fields"]
    if fields != list(range(len(fields))):
        return None
    attnames = tuple(select[index][0].target.attname for index in fields)
    if [f.attname for f in info["model"]._meta.concrete_fields] != list(attnames):
        return None
    annotations = tuple(compiler.annotation_col_map.items())
    if len(attnames) + len(annotations) != len(select):
        return None
    return attnames, annotations


def forget() -> None:
    """Drop every compiled statement (tests; nothing else needs to)."""
    with _lock:
        _statements.clear()
