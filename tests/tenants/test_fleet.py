"""The fleet migration executor (tenants/fleet.py), on committed tenant schemas.

Schemas are made to lag for real: Django's own backward migration unapplies
the last migrations in the template and in some tenants, then the executor
(or plain ``migrate_schemas``, for the reference) brings them forward again.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection as django_connection
from django.db import migrations, models
from django.db.migrations.migration import Migration
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context
from psycopg import sql

from tenants import citus, fleet
from tenants.db import connection
from tenants.models import Tenant
from tenants.services import schema_is_current, template_schema, tenant_provision, tenants_migrate
from tests.helpers import PASSWORD
from tests.processes import child_env, start, wait_for
from tests.tenants.schema_signature import schema_signature

# Lagging states: (app, migration to go back to).
SCHEMA_ONLY = [("accounts", "0007_rate_counter_previous_window")]  # 0008: AddField + AlterField
MIXED = [
    ("accounts", "0001_initial"),  # 0002 has RunPython, 0003-0008 schema only
    ("token_blacklist", "0007_auto_20171017_2214"),  # 0008+: ALTERs of identity columns to bigint
]
# On Citus a distributed tenant schema cannot go through the migrations Citus
# refuses there (tests/tenants/test_citus_safe_migrations.py: GRANDFATHERED;
# they only ever run in the template): lag behind the Citus-safe ones only.
MIXED_CITUS = [
    ("accounts", "0007_rate_counter_previous_window"),  # 0008: AddField + AlterField
    ("token_blacklist", "0011_linearizes_history"),  # 0012: a foreign key altered, 0013
]


def on_citus() -> bool:
    return citus.is_citus()


def provision(slug: str) -> Tenant:
    return tenant_provision(slug=slug, name=slug.title(), admin_email=f"boss@{slug}.test", admin_password=PASSWORD)


def rewind(schema: str, targets: list[tuple[str, str]]) -> None:
    for app, name in targets:
        call_command("migrate_schemas", app, name, schema_name=schema, interactive=False, verbosity=0)
    connection.set_schema_to_public()
    assert not schema_is_current(schema)
    # A schema changed by hand: its marker no longer holds (deploy/README.md).
    Tenant.objects.filter(schema_name=schema).update(migrated_to="")


def rows(schema: str, query: str) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(query.format(schema=sql.Identifier(schema).as_string()))
        return sorted(cursor.fetchall())


def signature_of(schema: str) -> dict[str, Any]:
    with connection.cursor() as cursor:
        signature = schema_signature(cursor, schema)
    connection.set_schema_to_public()
    return signature


def recorded(schema: str, app: str, name: str) -> int:
    return rows(schema, f"SELECT count(*) FROM {{schema}}.django_migrations WHERE app = '{app}' AND name = '{name}'")[
        0
    ][0]


@pytest.fixture
def restore_template(committed: Callable[[str], None]) -> Iterator[Callable[[str], None]]:
    """Whatever a test does to the template, it is current again afterwards."""
    yield committed
    connection.set_schema_to_public()
    if not schema_is_current(template_schema()):
        fleet.FleetExecutor().migrate_template()


def test_replayed_tenant_is_identical_to_a_normally_migrated_one(restore_template: Callable[[str], None]) -> None:
    for slug in ("fl-replay", "fl-normal"):
        restore_template(slug)
        provision(slug)
    for schema in (template_schema(), "fl_replay", "fl_normal"):
        rewind(schema, MIXED_CITUS if on_citus() else MIXED)
    before = signature_of("fl_replay")
    assert before == signature_of("fl_normal")

    report = tenants_migrate(schemas=["fl_replay"], connections_max=2)
    assert report.ok, report.failed
    assert report.template_migrated
    assert (report.total, report.migrated) == (1, 1)
    if on_citus():
        assert (report.normal, report.replayed) == (0, 3)  # accounts.0008, token_blacklist.0012-0013
    else:
        assert report.normal == 1  # accounts.0002 (RunPython), the normal way
        assert report.replayed >= 8  # every schema-only migration, replayed from the template's SQL
    call_command("migrate_schemas", tenant=True, schema_name="fl_normal", interactive=False, verbosity=0)
    connection.set_schema_to_public()

    replayed, normal = signature_of("fl_replay"), signature_of("fl_normal")
    assert replayed != before, "nothing was migrated"
    for part in ("columns", "constraints", "indexes", "sequences"):
        assert replayed[part], part
        assert replayed[part] == normal[part], part
    # ... and equal to the template, which new tenants are cloned from.
    template = signature_of(template_schema())
    for part in ("columns", "constraints", "indexes", "sequences"):
        assert replayed[part] == template[part], part
    for query in (
        "SELECT app, name FROM {schema}.django_migrations",
        "SELECT id, app_label, model FROM {schema}.django_content_type",
        "SELECT codename, content_type_id FROM {schema}.auth_permission",
    ):
        assert rows("fl_replay", query) == rows("fl_normal", query), query
    for schema in ("fl_replay", "fl_normal", template_schema()):
        assert schema_is_current(schema)
        assert (
            rows(schema, "SELECT app, name, count(*) FROM {schema}.django_migrations GROUP BY 1, 2 HAVING count(*) > 1")
            == []
        )


def test_current_fleet_is_a_no_op_whose_queries_do_not_grow_with_tenants(committed: Callable[[str], None]) -> None:
    def queries_of_a_no_op() -> list[str]:
        with CaptureQueriesContext(django_connection) as queries:
            report = tenants_migrate()
        assert report.ok
        assert report.migrated == 0
        assert report.current == report.total >= 2
        return [q["sql"] for q in queries]

    before = queries_of_a_no_op()
    # template row and table, its migrations (with search_path switches), the
    # tenant list, which schemas have a migrations table, one batch of counts
    assert len(before) <= 10, before
    for slug in ("fl-noop-1", "fl-noop-2", "fl-noop-3"):
        committed(slug)
        provision(slug)
    assert len(queries_of_a_no_op()) == len(before)


def test_new_content_types_reach_tenants_with_the_replay(restore_template: Callable[[str], None]) -> None:
    """accounts.0005 and 0006 create models: their content types and permissions,
    made in the template by post_migrate, are copied into each replayed tenant.

    On Citus no migration creating a model can be made pending in a distributed
    tenant (0007, which only the template may run, sits between 0006 and now):
    there the copy itself runs, in the tenant, against its worker."""
    restore_template("fl-types")
    provision("fl-types")
    if not on_citus():
        for schema in (template_schema(), "fl_types"):
            rewind(schema, [("accounts", "0004_audit_role_changes")])
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM fl_types.auth_permission WHERE content_type_id IN "
            "(SELECT id FROM fl_types.django_content_type WHERE app_label = 'accounts' "
            "AND model IN ('ratecounter', 'tokenfamily'))"
        )
        cursor.execute(
            "DELETE FROM fl_types.django_content_type WHERE app_label = 'accounts' "
            "AND model IN ('ratecounter', 'tokenfamily')"
        )
    if on_citus():
        with schema_context("fl_types"), connection.cursor() as cursor:
            fleet._sync_catalog_rows(cursor, template_schema())
    else:
        report = tenants_migrate(schemas=["fl_types"])
        assert report.ok, report.failed
        assert report.replayed >= 4
    query = (
        "SELECT c.model, p.codename FROM {schema}.auth_permission p JOIN {schema}.django_content_type c "
        "ON c.id = p.content_type_id WHERE c.app_label = 'accounts'"
    )
    assert rows("fl_types", query) == rows(template_schema(), query)
    assert ("tokenfamily", "view_tokenfamily") in rows("fl_types", query)


def test_a_failing_tenant_is_flagged_and_the_others_go_on(restore_template: Callable[[str], None]) -> None:
    for slug in ("fl-ok", "fl-bad"):
        restore_template(slug)
        provision(slug)
    for schema in (template_schema(), "fl_ok", "fl_bad"):
        rewind(schema, SCHEMA_ONLY)
    with connection.cursor() as cursor:  # the column 0008 adds already exists in fl_bad: its DDL fails
        cursor.execute("ALTER TABLE fl_bad.accounts_auditentry ADD COLUMN changes jsonb")
    report = tenants_migrate(schemas=["fl_ok", "fl_bad"])
    assert [f.schema for f in report.failed] == ["fl_bad"]
    assert "changes" in report.failed[0].error
    assert "already exists" in report.failed[0].error
    assert report.migrated == 1
    assert schema_is_current("fl_ok")
    bad = Tenant.objects.get(slug="fl-bad")
    assert bad.is_active, "a failed migration does not suspend the tenant"
    assert "already exists" in bad.migration_error
    assert bad.migration_failed_at is not None
    assert recorded("fl_bad", "accounts", "0008_audit_tenant_settings") == 0  # untouched: rolled back whole

    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE fl_bad.accounts_auditentry DROP COLUMN changes")
    report = tenants_migrate(schemas=["fl_bad"])
    assert report.ok
    assert report.migrated == 1
    bad.refresh_from_db()
    assert bad.migration_error == ""
    assert bad.migration_failed_at is None


def test_a_held_lock_times_out_the_tenant_only(restore_template: Callable[[str], None]) -> None:
    for slug in ("fl-free", "fl-held"):
        restore_template(slug)
        provision(slug)
    for schema in (template_schema(), "fl_free", "fl_held"):
        rewind(schema, SCHEMA_ONLY)
    with _holding_lock("fl_held"):
        report = tenants_migrate(schemas=["fl_free", "fl_held"], lock_timeout="200ms")
    assert [f.schema for f in report.failed] == ["fl_held"]
    assert "lock timeout" in report.failed[0].error
    assert schema_is_current("fl_free")
    assert not schema_is_current("fl_held")
    assert tenants_migrate(schemas=["fl_held"]).ok


class _holding_lock:
    """Another session holding an exclusive lock on a tenant's audit table."""

    def __init__(self, schema: str) -> None:
        d = connection.settings_dict
        self.conn = psycopg.connect(
            host=d["HOST"] or None,
            port=d["PORT"] or None,
            user=d["USER"],
            password=d["PASSWORD"] or None,
            dbname=d["NAME"],
        )
        self.schema = schema

    def __enter__(self) -> _holding_lock:
        self.conn.execute(
            sql.SQL("LOCK TABLE {}.accounts_auditentry IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(self.schema))
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.rollback()
        self.conn.close()


def test_killed_half_way_a_rerun_migrates_every_tenant_exactly_once(
    restore_template: Callable[[str], None], tmp_path: Path
) -> None:
    slugs = [f"fl-kill-{i}" for i in range(6)]
    for slug in slugs:
        restore_template(slug)
        provision(slug)
    schemas = [slug.replace("-", "_") for slug in slugs]
    for schema in (template_schema(), *schemas):
        rewind(schema, SCHEMA_ONLY)
    leaf = ("accounts", "0008_audit_tenant_settings")
    held = schemas[2]
    holder = _holding_lock(held).__enter__()
    try:
        process = start(
            "fleet",
            [sys.executable, "manage.py", "migrate_fleet", "--connections", "2", "--lock-timeout", "60s", *schemas],
            child_env(),
            tmp_path,
        )
        others = [schema for schema in schemas if schema != held]
        wait_for(lambda: all(recorded(s, *leaf) == 1 for s in others), timeout=60, what="the other tenants migrated")
        assert recorded(held, *leaf) == 0
        os.killpg(process.popen.pid, signal.SIGKILL)  # mid-way: one tenant still waiting on the lock
        process.popen.wait(timeout=10)
    finally:
        holder.__exit__()
    # The killed executor's session ends (its transaction rolled back) once it
    # is no longer waiting; until then it holds the tenant's advisory lock.
    wait_for(lambda: _advisory_locks() == 0, timeout=30, what="the killed executor's session gone")
    assert recorded(held, *leaf) == 0, "the interrupted tenant is untouched"

    report = tenants_migrate(schemas=schemas)
    assert report.ok
    assert report.migrated == 1
    assert report.current == len(schemas) - 1
    for schema in schemas:
        assert recorded(schema, *leaf) == 1, schema
        assert schema_is_current(schema)
        assert (
            rows(schema, "SELECT app, name, count(*) FROM {schema}.django_migrations GROUP BY 1, 2 HAVING count(*) > 1")
            == []
        )
    assert signature_of(held) == signature_of(schemas[0])


def _advisory_locks() -> int:
    return rows(
        "public",
        f"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = {fleet.TENANT_LOCK_SPACE} "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )[0][0]


def test_only_migrations_that_may_change_models_copy_content_types() -> None:
    """A tenant copies the template's new content types and permissions when a
    pending migration may add some; field and index changes cannot."""
    plan = fleet.Plan()
    by_node = {step.node: step for step in plan.steps}
    assert not by_node[("accounts", "0008_audit_tenant_settings")].changes_models  # AddField + AlterField
    assert by_node[("accounts", "0005_rate_counters")].changes_models  # CreateModel
    assert by_node[("accounts", "0002_profiles_customers_audit_revocation")].changes_models  # RunPython, models

    def migration(*operations: Any) -> Migration:
        made: type[Migration] = type("Migration", (Migration,), {"operations": list(operations)})
        return made("0001_x", "x")

    def field() -> Any:
        return models.IntegerField(null=True)

    assert not fleet._changes_models(migration(migrations.AddField("thing", "n", field())))
    assert fleet._changes_models(migration(migrations.RunSQL("SELECT 1")))
    moved = migrations.SeparateDatabaseAndState(state_operations=[migrations.CreateModel("Moved", [])])
    assert fleet._changes_models(migration(moved))
    assert not fleet._changes_models(
        migration(migrations.SeparateDatabaseAndState(database_operations=[migrations.AddField("thing", "n", field())]))
    )


@pytest.mark.django_db
def test_in_the_callers_transaction_its_settings_are_left_as_they_were() -> None:
    """Inside a caller's transaction (a savepoint per tenant) the executor's
    lock_timeout and synchronous_commit must not outlive the tenant."""
    provision("fl-inner")
    with django_connection.cursor() as cursor:  # the admin's rows' deferred checks, before any ALTER
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    rewind("fl_inner", SCHEMA_ONLY)
    with django_connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', '7s', true)")
        report = tenants_migrate(schemas=["fl_inner"], lock_timeout="1500ms")
        assert report.ok, report.failed
        assert report.migrated == 1
        cursor.execute("SELECT current_setting('lock_timeout'), current_setting('synchronous_commit')")
        assert cursor.fetchone() == ("7s", "on")
    assert schema_is_current("fl_inner")
