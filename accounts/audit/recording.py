"""Who the actor is, and the one writer of audit rows."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from accounts.models import AuditEntry, User
from tenants.db import connection

# Called when an entry is recorded, not when the request starts: DRF
# authenticates inside the view and writes its user back onto the request.
# The schema the actor belongs to goes with it: a user id means nothing in
# another schema (an operator provisioning a tenant is not a user of it).
_actor_of: ContextVar[tuple[Callable[[], Any], str] | None] = ContextVar("audit_actor", default=None)
_suppressed: ContextVar[bool] = ContextVar("audit_suppressed", default=False)


@contextmanager
def actor_from(source: Callable[[], Any]) -> Iterator[None]:
    """Within this block, the actor is whatever ``source()`` returns when an
    entry is recorded (the middleware passes the request's user), in the
    schema that is current now."""
    token = _actor_of.set((source, connection.schema_name))
    try:
        yield
    finally:
        _actor_of.reset(token)


def acting_as(actor: User | None) -> Any:
    """Within this block, ``actor`` made the changes (commands, tasks)."""
    return actor_from(lambda: actor)


def current_actor() -> User | None:
    """Who is making the change: a user of the current schema, or None (the
    system: shell, migrations, an anonymous request, or a user of another
    schema, such as an operator provisioning a tenant)."""
    bound = _actor_of.get()
    if bound is None:
        return None
    source, schema = bound
    if schema != connection.schema_name:
        return None
    actor = source()
    return actor if isinstance(actor, User) and actor.pk else None


@contextmanager
def recorded_by_caller() -> Iterator[None]:
    """Within this block, signal receivers write nothing: the caller (a
    service doing bulk work) records the entries itself, in one insert."""
    token = _suppressed.set(True)
    try:
        yield
    finally:
        _suppressed.reset(token)


def signals_active() -> bool:
    return not _suppressed.get()


def record(entries: Iterable[AuditEntry]) -> None:
    """Write the entries in one insert, each with the current actor."""
    actor = current_actor()
    rows = list(entries)
    for row in rows:
        row.actor = actor
        row.actor_repr = actor.email if actor else ""
    if rows:
        AuditEntry.objects.bulk_create(rows)


def operator_repr(operator: User) -> str:
    """How a platform operator is named in a tenant's audit log."""
    return f"operator:{operator.email}"


def record_as_operator(entries: Iterable[AuditEntry], *, operator: User) -> None:
    """Write the entries in the current (tenant) schema for what a platform
    operator did there: ``actor`` points at this schema's users, and an
    operator is none of them (ids collide across schemas), so the actor is
    NULL and the operator is named in ``actor_repr`` only."""
    rows = list(entries)
    for row in rows:
        row.actor = None
        row.actor_repr = operator_repr(operator)
    if rows:
        AuditEntry.objects.bulk_create(rows)
