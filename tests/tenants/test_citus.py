"""Citus schema-based sharding: tenants distributed over the workers, the
template local, a tenant moved, purge, the fleet executor and the platform API.

Run only on a Citus cluster: ``CITUS_URL=postgres://...coordinator.../db
make test`` runs the whole suite there (tests/citus_cluster.py makes the test
database on every node). Without CITUS_URL these tests are skipped, and the
run's summary says so (tests/conftest.py).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable

import pytest
from django.core.management import call_command
from django.db import transaction
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from catalog.models import Product
from tenants import citus, selectors
from tenants.db import connection
from tenants.fleet import FleetExecutor
from tenants.models import Tenant
from tenants.services import TenantBusy, schema_is_current, template_schema, tenant_provision, tenant_purge
from tests.citus_cluster import CITUS_NOT_RUN
from tests.helpers import ACME, BASE, PASSWORD, admin_client, api_client, assert_error, make_product

pytestmark = pytest.mark.skipif(not os.environ.get("CITUS_URL"), reason=CITUS_NOT_RUN)


def distributed_schemas() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT schema_name::text, colocation_id FROM citus_schemas")
        return dict(cursor.fetchall())


def shards_of(schema: str) -> list[tuple[str, str, int]]:
    """(table, node, shard id) of each of the schema's tables, from citus_shards."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name::text, nodename || ':' || nodeport, shardid FROM citus_shards "
            "WHERE table_name::text LIKE %s ORDER BY 1",
            [f"{schema}.%"],
        )
        return list(cursor.fetchall())


def provision(slug: str) -> Tenant:
    return tenant_provision(slug=slug, name=slug.title(), admin_email=f"admin@{slug}.test", admin_password=PASSWORD)


@pytest.mark.django_db
def test_every_tenant_schema_is_distributed_and_the_template_is_local() -> None:
    assert citus.is_citus()
    distributed = distributed_schemas()
    assert {"acme", "globex"} <= set(distributed)
    assert template_schema() not in distributed
    assert "public" not in distributed
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::regclass::text LIKE %s",
            [f"{template_schema()}.%"],
        )
        assert cursor.fetchone()[0] == 0, "a table of the template was distributed"
    # Every table of a tenant is on one worker, in one colocation group.
    acme = shards_of("acme")
    assert len(acme) > 20
    assert len({node for _, node, _ in acme}) == 1
    assert acme[0][1] in citus.worker_nodes()


def test_new_tenants_are_spread_over_the_workers(committed: Callable[[str], None]) -> None:
    slugs = [f"spread-{i}" for i in range(4)]
    for slug in slugs:
        committed(slug)
        provision(slug)
    placed = citus.placements([f"spread_{i}" for i in range(4)])
    nodes = {placement.node for placement in placed.values()}
    assert None not in nodes
    assert nodes == set(citus.worker_nodes()), placed
    # Each is served on its host, from its worker.
    for slug in slugs:
        response = api_client(f"{slug}.{BASE}").post(
            "/api/auth/jwt/create/", {"email": f"admin@{slug}.test", "password": PASSWORD}, format="json"
        )
        assert response.status_code == 200, response.content


def test_a_tenant_moves_to_another_worker_and_keeps_its_data(committed: Callable[[str], None]) -> None:
    committed("mover")
    tenant = provision("mover")
    with schema_context("mover"):
        make_product(ACME.__class__("mover", f"mover.{BASE}", "admin@mover.test"), name="Kept across the move")
    before = citus.placements(["mover"])["mover"].node
    target = next(node for node in citus.worker_nodes() if node != before)

    out = io.StringIO()
    call_command("tenant_nodes", move="mover", to=target, stdout=out)
    assert f"mover: {before} -> {target}" in out.getvalue()
    assert {node for _, node, _ in shards_of("mover")} == {target}

    with schema_context("mover"):
        assert list(Product.objects.values_list("name", flat=True)) == ["Kept across the move"]
    client = admin_client(ACME.__class__("mover", f"mover.{BASE}", "admin@mover.test"))
    response = client.get("/api/products/")
    assert response.status_code == 200, response.content
    assert [p["name"] for p in response.json()["results"]] == ["Kept across the move"]

    # Moving it where it is: nothing to do. Bad targets: clear errors.
    call_command("tenant_nodes", move="mover", to=target, stdout=io.StringIO())
    with pytest.raises(Exception, match="not an active worker"):
        call_command("tenant_nodes", move="mover", to="127.0.0.1:1", stdout=io.StringIO())
    assert tenant.pk


def test_the_node_summary_counts_every_tenant(committed: Callable[[str], None]) -> None:
    out = io.StringIO()
    call_command("tenant_nodes", stdout=out)
    lines = out.getvalue().splitlines()
    counted = sum(int(line.split("\t")[1].split()[0]) for line in lines)
    assert counted == Tenant.objects.filter(is_template=False).count()
    assert not any(line.startswith("local") for line in lines), lines
    out = io.StringIO()
    call_command("tenant_nodes", "acme", stdout=out)
    assert out.getvalue().strip().split("\t") == ["acme", "acme", citus.placements(["acme"])["acme"].node]


@pytest.mark.django_db
def test_the_platform_api_shows_the_node(operator_client: APIClient) -> None:
    response = operator_client.get("/api/platform/tenants/acme/placement/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["citus"] is True
    assert body["schema"] == "acme"
    assert body["node"] in citus.worker_nodes()
    assert body["size_bytes"] > 0
    assert_error(operator_client.get("/api/platform/tenants/nope/placement/"), 404)
    assert selectors.tenant_placement(tenant=Tenant.objects.get(slug="acme"))["node"] == body["node"]


def test_purge_drops_the_schema_on_its_worker(committed: Callable[[str], None]) -> None:
    committed("gone")
    tenant = provision("gone")
    assert "gone" in distributed_schemas()
    tenant_purge(tenant=tenant, confirm="gone")
    assert "gone" not in distributed_schemas()
    assert shards_of("gone") == []
    assert not Tenant.objects.filter(slug="gone").exists()


@pytest.mark.django_db
def test_purge_after_a_write_in_the_same_transaction_says_why() -> None:
    tenant = provision("busy")
    with schema_context("busy"):
        make_product(ACME.__class__("busy", f"busy.{BASE}", "admin@busy.test"))
    with pytest.raises(TenantBusy, match="purge it in a transaction of its own"):
        tenant_purge(tenant=tenant, confirm="busy")
    assert transaction.get_connection().in_atomic_block
    assert Tenant.objects.filter(slug="busy").exists()  # nothing half-done


def test_the_fleet_executor_replays_a_migration_on_the_workers(committed: Callable[[str], None]) -> None:
    """A Citus-safe migration (a column) made pending in the template (local)
    and in two distributed tenants: the template's SQL is captured, then
    replayed in each tenant one statement at a time, on its worker, recorded once."""
    slugs = ["fleet-c1", "fleet-c2"]
    for slug in slugs:
        committed(slug)
        provision(slug)
    schemas = [slug.replace("-", "_") for slug in slugs]
    try:
        for schema in [template_schema(), *schemas]:
            call_command("migrate_schemas", "accounts", "0007", schema_name=schema, interactive=False, verbosity=0)
        connection.set_schema_to_public()
        Tenant.objects.filter(schema_name__in=schemas).update(migrated_to="")
        assert [column_on_workers(schema) for schema in schemas] == [False, False]

        # One tenant also lost a permission; 0008 cannot add any, but counted
        # as a migration that may, the copy runs in the tenant's transaction
        # right after the replayed DDL, on its worker.
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {schemas[0]}.auth_permission WHERE codename = 'view_tokenfamily'")
        executor = FleetExecutor(connections_max=2)
        for step in executor.plan.steps:
            if step.node == ("accounts", "0008_audit_tenant_settings"):
                step.changes_models = True
        report = executor.run(schemas=schemas)
        assert report.failed == []
        assert report.phases["catalog"] > 0
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {schemas[0]}.auth_permission WHERE codename = 'view_tokenfamily'")
            assert cursor.fetchone()[0] == 1
        assert report.template_migrated
        assert (report.total, report.migrated, report.replayed, report.normal) == (2, 2, 2, 0)
        assert [column_on_workers(schema) for schema in schemas] == [True, True]
        for schema in schemas:
            assert schema_is_current(schema)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT count(*) FROM {schema}.django_migrations "
                    "WHERE app = 'accounts' AND name = '0008_audit_tenant_settings'"
                )
                assert cursor.fetchone()[0] == 1
        assert set(distributed_schemas()) >= set(schemas)
    finally:
        connection.set_schema_to_public()
        if not schema_is_current(template_schema()):
            FleetExecutor().migrate_template()


def column_on_workers(schema: str) -> bool:
    """Whether the shard of accounts_auditentry on its worker has the column 0008 adds."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT result FROM run_command_on_placements(%s, "
            "$$SELECT count(*) FROM pg_attribute WHERE attrelid = '%%s'::regclass AND attname = 'changes' "
            "AND NOT attisdropped$$)",
            [f"{schema}.accounts_auditentry"],
        )
        results = [row[0] for row in cursor.fetchall()]
    assert len(results) == 1, results
    return results == ["1"]
