"""Every migration of a tenant app must be Citus-safe, except the ones listed here.

On Citus (schema-based sharding) each tenant schema is a distributed schema,
and the fleet executor runs new migrations in it. Citus refuses there
(deploy/README.md, "Citus"): constraints without an explicit name added to an
existing table (Django writes an inline CHECK for ``Positive*Field`` and an
inline UNIQUE for ``unique=True`` in ``ADD COLUMN``), ``ALTER COLUMN ... TYPE``
on an identity column and ``ALTER SEQUENCE ... AS``, ``ADD GENERATED ... AS
IDENTITY`` and ``RESTART``, and several subcommands in one ALTER TABLE.

The migrations below were written before Citus support; they only ever run in
the template, which stays a local schema on the coordinator (new tenants are
cloned from it). The list must match what is detected exactly: a new unsafe
migration fails this test, and so does a detector that stopped seeing these.
Fix a new one by adding the constraint in its own operation with a name
(``AddConstraint(CheckConstraint(..., name=...))`` after an ``AddField`` of a
plain ``IntegerField``; ``UniqueConstraint(name=...)`` for uniqueness) and by
never changing the type of a primary key (expand/contract: a new column).
"""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.operations import AlterField
from django.db.models import AutoField

GRANDFATHERED = {
    ("accounts", "0002_profiles_customers_audit_revocation"),  # token_epoch: ADD COLUMN ... CHECK (>= 0)
    ("accounts", "0007_rate_counter_previous_window"),  # previous_hits: ADD COLUMN ... CHECK (>= 0)
    ("token_blacklist", "0001_initial"),  # ADD COLUMN ... UNIQUE
    ("token_blacklist", "0008_migrate_to_bigautofield"),  # ALTER of identity columns to bigint
    ("token_blacklist", "0010_fix_migrate_to_bigautofield"),
}

UNSAFE = [
    (re.compile(r"\bADD COLUMN\b(?:(?!\bCONSTRAINT\b).)*\b(CHECK|UNIQUE|PRIMARY KEY)\b", re.S), "unnamed constraint"),
    (re.compile(r"\bALTER SEQUENCE\b.*\bAS\b", re.S), "ALTER SEQUENCE ... AS"),
    (re.compile(r"\bADD GENERATED\b|\bRESTART\b"), "identity ALTER"),
    (re.compile(r"^ALTER TABLE\b[^;]*,\s*(ADD|ALTER|DROP)\b[^;]*\bCONSTRAINT\b", re.S), "several subcommands"),
]


def tenant_app_labels() -> set[str]:
    return {app.rsplit(".", 1)[-1] for app in settings.TENANT_APPS} | {"auth", "contenttypes"}


def detect() -> dict[tuple[str, str], list[str]]:
    executor = MigrationExecutor(connection)
    graph = executor.loader.graph
    found: dict[tuple[str, str], list[str]] = {}
    for node in sorted(graph.nodes):
        if node[0] not in tenant_app_labels():
            continue
        migration = graph.nodes[node]
        reasons: list[str] = []
        for op in migration.operations:
            if isinstance(op, AlterField) and isinstance(op.field, AutoField):
                reasons.append(f"{op.model_name}.{op.name}: type change of an identity column")
        for statement in executor.loader.collect_sql([(migration, False)]):  # type: ignore[attr-defined]
            for pattern, why in UNSAFE:
                if pattern.search(statement):
                    reasons.append(f"{why}: {statement[:160]}")
        if reasons:
            found[node] = reasons
    return found


@pytest.mark.django_db
def test_tenant_app_migrations_are_citus_safe() -> None:
    found = detect()
    new = {node: reasons for node, reasons in found.items() if node not in GRANDFATHERED}
    assert not new, "migrations Citus would refuse in a distributed tenant schema:\n" + "\n".join(
        f"{app}.{name}: {'; '.join(reasons)}" for (app, name), reasons in sorted(new.items())
    )
    assert set(found) == GRANDFATHERED, f"no longer detected: {sorted(GRANDFATHERED - set(found))}"
