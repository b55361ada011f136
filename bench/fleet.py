"""Benchmark the fleet migration executor against ``migrate_schemas``.

Run as ``.venv/bin/python bench/fleet.py [--quick] [--no-check]``.

It never touches the configured database: it creates throwaway databases on
the same server (``tenantdesk_bench_fleet`` and two smaller ones), with the
product's settings plus ``bench/fleetapp`` as a tenant app
(``bench/fleet_settings.py``), and drops them at the end. The measured
migration is ``fleetapp.0002_note_tag``: a nullable column with an index. To
make it pending again in every schema (template included), the bench drops
the column and forgets the migration row, in batches of SQL, and clears the
tenants' markers (``Tenant.migrated_to``), as a new migration on disk would
(not measured).

Measured, every migration in a subprocess, as an operator runs it:
  1. at 1,000 tenants: ``manage.py migrate_fleet`` and ``manage.py
     migrate_schemas --tenant`` (django-tenants' standard executor) on the same
     database, one after the other: wall-clock of each command;
  2. the fleet's cost per tenant (its report's tenant phase / tenants) at 100
     tenants (in its own database, measured before and after the next) and at
     5,000 tenants;
  3. the no-op (nothing pending) at 10,000 tenants: the command's wall-clock
     (Python and Django start-up included) and the executor's own time;
  4. provisioning p50 at 10 and at 10,000 existing tenants, samples alternated.

Targets (exit status 1 if one fails, unless ``--no-check``): 1,000 tenants in
<= 30 s and >= 10x faster than migrate_schemas; per-tenant cost at 5,000 within
25% of that at 100; the no-op at 10,000 in <= 3 s; provisioning p50 at 10,000
within 25% of that at 10. ``--quick`` runs small sizes and checks nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.fleet_settings"

from bench import _common as common  # noqa: E402

MEASURED = ("fleetapp", "0002_note_tag")
FULL = {"tiny": 10, "small": 100, "mid": 1000, "big": 5000, "huge": 10000, "samples": 15}
QUICK = {"tiny": 3, "small": 10, "mid": 30, "big": 60, "huge": 90, "samples": 3}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds of work per step")
    parser.add_argument("--connections", type=int, default=2, help="the fleet executor's connections (default 2)")
    parser.add_argument("--no-check", action="store_true", help="exit 0 even if a target is missed")
    common.add_db_name_argument(parser, "tenantdesk_bench_fleet")
    args = parser.parse_args(argv)
    common.check_db_name(parser, args)
    args.sizes = QUICK if args.quick else FULL
    return args


# --- databases ------------------------------------------------------------------------


class Databases:
    """The run's database (it grows) and two small ones, all alive at once."""

    def __init__(self, primary: str) -> None:
        from django.db import connection

        self.settings = connection.settings_dict
        self.primary = primary
        self.names = {"grow": primary, "small": f"{primary}_small", "tiny": f"{primary}_tiny"}

    def use(self, which: str) -> None:
        from django.db import connection

        if self.settings["NAME"] != self.names[which]:
            connection.close()
            self.settings["NAME"] = self.names[which]
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    def create_extra(self) -> None:
        from django.core.management import call_command

        for which in ("small", "tiny"):
            common.create_bench_database(self.settings, self.names[which])
            self.use(which)
            call_command("bootstrap", verbosity=0, stdout=_Sink())

    def drop_extra(self) -> None:
        from django.db import connection

        connection.close()
        for which in ("small", "tiny"):
            common.drop_bench_database(self.settings, self.names[which])
        self.settings["NAME"] = self.primary

    def url(self, which: str) -> str:
        d = self.settings
        user = quote(str(d.get("USER") or "postgres"), safe="")
        password = f":{quote(str(d['PASSWORD']), safe='')}" if d.get("PASSWORD") else ""
        host = quote(str(d.get("HOST") or ""), safe="")
        port = f":{d['PORT']}" if d.get("PORT") else ""
        return f"postgres://{user}{password}@{host}{port}/{self.names[which]}"


class _Sink:
    def write(self, *_: Any) -> None:
        pass

    def flush(self) -> None:
        pass


# --- tenants ----------------------------------------------------------------------------


def tenant_count() -> int:
    from tenants.models import Tenant

    return Tenant.objects.filter(is_template=False).count()


def grow_to(size: int, threads: int = 2) -> None:
    """Filler tenants by the real provisioning service (clone), two at a time."""
    from django.db import connections
    from django.test import override_settings

    from tenants.services import tenant_provision

    start = tenant_count()
    if start >= size:
        return
    started = time.perf_counter()

    def fill(i: int) -> None:
        slug = f"fill-{i:05d}"
        try:
            tenant_provision(
                slug=slug, name=f"Filler {i}", admin_email=f"a@{slug}.test", admin_password=common.PASSWORD
            )
        finally:
            if threads > 1:
                connections["default"].close()

    # Fillers are not measured: a cheap hasher saves ~0.2 s of Argon2 each.
    hashers = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    with override_settings(PASSWORD_HASHERS=hashers), ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(fill, range(start, size)))
    print(f"  grew {start} -> {size} tenants in {time.perf_counter() - started:.0f} s", file=sys.stderr)


def rewind_measured() -> int:
    """Make fleetapp.0002 pending again in every schema: drop its column (and
    so its indexes) and its migration row. Returns the schemas rewound."""
    from django.db import connection
    from psycopg import sql

    from tenants.models import Tenant

    schemas = list(Tenant.objects.values_list("schema_name", flat=True))
    with connection.cursor() as cursor:
        for start in range(0, len(schemas), 200):
            statements = []
            for schema in schemas[start : start + 200]:
                s = sql.Identifier(schema).as_string()
                statements.append(f"ALTER TABLE {s}.fleetapp_note DROP COLUMN IF EXISTS tag")
                statements.append(
                    f"DELETE FROM {s}.django_migrations WHERE app = '{MEASURED[0]}' AND name = '{MEASURED[1]}'"
                )
            cursor.execute(";\n".join(statements))
    # Changed by hand: the tenants' markers no longer hold (as after a new
    # migration on disk, whose fingerprint no marker has).
    Tenant.objects.update(migrated_to="")
    settle()
    return len(schemas)


# The catalogs a column + index churn, and the tenant table the markers live in.
CHURNED = ("pg_class", "pg_attribute", "pg_index", "pg_depend", "pg_type", "pg_constraint", "pg_statistic")

# Tables autovacuum would still vacuum or analyse (its default thresholds): the
# fillers leave thousands (each new tenant's auth_permission, for one). Not the
# whole database: a VACUUM of 10,000 schemas' tables takes many minutes.
DUE = """
SELECT format('%I.%I', s.schemaname, s.relname)
FROM pg_stat_all_tables s JOIN pg_class c ON c.oid = s.relid
WHERE s.schemaname <> 'pg_toast' AND (s.n_mod_since_analyze > 50 + 0.1 * greatest(c.reltuples, 0)
   OR s.n_ins_since_vacuum > 1000 + 0.2 * greatest(c.reltuples, 0)
   OR s.n_dead_tup > 50 + 0.2 * greatest(c.reltuples, 0))
"""


def settle() -> None:
    """Put each measured run in the same state: the work autovacuum would do
    in the background (the fillers' new tables, the catalogs the rewind
    churned) done before, and dirty buffers written (as bench/provision.py
    does). Without it, autovacuum analysing 4,000 new tenants' tables runs
    during the 5,000-tenant run and not during the 100-tenant one."""
    from django.db import DatabaseError, connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(DUE)
        due = [row[0] for row in cursor.fetchall()]
        for table in CHURNED:
            cursor.execute(f"VACUUM (ANALYZE) pg_catalog.{table}")
        for start in range(0, len(due), 500):
            cursor.execute("VACUUM (ANALYZE) " + ", ".join(due[start : start + 500]))
        try:
            cursor.execute("CHECKPOINT")
        except DatabaseError:
            print("CHECKPOINT not permitted; measuring without it", file=sys.stderr)
    print(f"  settled ({len(due)} tables due) in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def manage(dbs: Databases, which: str, *argv: str) -> tuple[float, str]:
    """Run ``manage.py argv`` against ``which``; returns (wall-clock seconds, output)."""
    env = {
        **os.environ,
        "DATABASE_URL": dbs.url(which),
        "DJANGO_SETTINGS_MODULE": "bench.fleet_settings",
        "LOG_LEVEL": "WARNING",
    }
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "manage.py", *argv], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return seconds, done.stdout


def fleet(dbs: Databases, which: str, connections: int) -> tuple[float, dict[str, Any]]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        seconds, _ = manage(
            dbs, which, "migrate_fleet", "-v0", "--connections", str(connections), "--report-json", out.name
        )
        report = json.loads(Path(out.name).read_text())
    if report["failed"]:
        raise RuntimeError(f"fleet run failed for {len(report['failed'])} tenants: {report['failed'][:3]}")
    return seconds, report


def migrate_schemas(dbs: Databases, which: str) -> float:
    seconds, _ = manage(dbs, which, "migrate_schemas", "--tenant", "--noinput", "-v0")
    return seconds


def provision_sample(slug: str) -> float:
    from tenants.models import Tenant
    from tenants.services import tenant_provision, tenant_purge

    started = time.perf_counter()
    tenant_provision(slug=slug, name=slug, admin_email=f"a@{slug}.test", admin_password=common.PASSWORD)
    elapsed = time.perf_counter() - started
    tenant = Tenant.objects.get(slug=slug)
    tenant_purge(tenant=tenant, confirm=tenant.slug)
    return elapsed


# --- the run ------------------------------------------------------------------------------


def measure(args: argparse.Namespace, dbs: Databases) -> dict[str, Any]:
    sizes, c = args.sizes, args.connections
    r: dict[str, Any] = {}

    def per_tenant_small() -> float:
        dbs.use("small")
        n = rewind_measured() - 1  # the template is migrated apart
        _, report = fleet(dbs, "small", c)
        assert report["migrated"] == n, report
        return report["tenant_seconds"] / n

    print("small database", file=sys.stderr)
    dbs.use("small")
    grow_to(sizes["small"])
    small_first = per_tenant_small()

    print("growing database: migrate_fleet and migrate_schemas side by side", file=sys.stderr)
    dbs.use("grow")
    grow_to(sizes["mid"])
    rewind_measured()
    r["mid_fleet_s"], report = fleet(dbs, "grow", c)
    r["mid_fleet_tenant_s"] = report["tenant_seconds"]
    dbs.use("grow")
    rewind_measured()
    r["mid_migrate_schemas_s"] = migrate_schemas(dbs, "grow")

    print("growing database: per-tenant cost at the big size", file=sys.stderr)
    dbs.use("grow")
    grow_to(sizes["big"])
    n = rewind_measured() - 1
    r["big_fleet_s"], report = fleet(dbs, "grow", c)
    assert report["migrated"] == n, report
    r["per_tenant_big_ms"] = report["tenant_seconds"] / n * 1000
    r["per_tenant_small_ms"] = statistics.mean([small_first, per_tenant_small()]) * 1000

    print("growing database: the no-op at the huge size", file=sys.stderr)
    dbs.use("grow")
    grow_to(sizes["huge"])
    settle()
    noops = [fleet(dbs, "grow", c) for _ in range(3)]
    r["noop_wall_s"] = statistics.median(s for s, _ in noops)
    r["noop_executor_s"] = statistics.median(rep["seconds"] for _, rep in noops)

    print("provisioning at the tiny and the huge size, alternated", file=sys.stderr)
    dbs.use("tiny")
    grow_to(sizes["tiny"])
    for which in ("tiny", "grow"):
        dbs.use(which)
        settle()
    tiny: list[float] = []
    huge: list[float] = []
    for i in range(sizes["samples"] + 1):
        for which, samples in (("tiny", tiny), ("grow", huge)):
            dbs.use(which)
            elapsed = provision_sample(f"probe-{which}-{i}")
            if i:  # the first of each is a warm-up
                samples.append(elapsed)
    r["provision_tiny_p50_ms"] = statistics.median(tiny) * 1000
    r["provision_huge_p50_ms"] = statistics.median(huge) * 1000
    return r


def report(r: dict[str, Any], args: argparse.Namespace, server: str) -> common.Checks:
    s = args.sizes
    ratio = r["mid_migrate_schemas_s"] / r["mid_fleet_s"]
    growth = r["per_tenant_big_ms"] / r["per_tenant_small_ms"]
    provision_growth = r["provision_huge_p50_ms"] / r["provision_tiny_p50_ms"]
    print(f"\n{server}; fleet executor with {args.connections} connections\n")
    common.print_header(f"{'measure':<58} {'value':>12}")
    rows = [
        (f"migrate_fleet, {s['mid']:,} tenants, one column + index (wall)", f"{r['mid_fleet_s']:.1f} s"),
        ("  of which the tenants' part", f"{r['mid_fleet_tenant_s']:.1f} s"),
        (f"migrate_schemas --tenant, same migration, {s['mid']:,} tenants", f"{r['mid_migrate_schemas_s']:.1f} s"),
        ("  migrate_schemas / migrate_fleet", f"{ratio:.1f}x"),
        (f"fleet cost per tenant at {s['small']:,} tenants (mean of 2 runs)", f"{r['per_tenant_small_ms']:.1f} ms"),
        (f"fleet cost per tenant at {s['big']:,} tenants", f"{r['per_tenant_big_ms']:.1f} ms"),
        (f"  {s['big']:,} / {s['small']:,}", f"{growth:.2f}x"),
        (f"no-op at {s['huge']:,} tenants, command wall-clock", f"{r['noop_wall_s']:.2f} s"),
        ("  of which the executor", f"{r['noop_executor_s']:.2f} s"),
        (f"provisioning p50 at {s['tiny']:,} tenants", f"{r['provision_tiny_p50_ms']:.0f} ms"),
        (f"provisioning p50 at {s['huge']:,} tenants", f"{r['provision_huge_p50_ms']:.0f} ms"),
        (f"  {s['huge']:,} / {s['tiny']:,}", f"{provision_growth:.2f}x"),
    ]
    for name, value in rows:
        print(f"{name:<58} {value:>12}")
    print()
    if args.quick:
        return []
    checks: common.Checks = [
        (r["mid_fleet_s"] <= 30, f"{s['mid']:,} tenants in {r['mid_fleet_s']:.1f} s (<= 30 s)"),
        (ratio >= 10, f"{ratio:.1f}x faster than migrate_schemas (>= 10x)"),
        (growth <= 1.25, f"per-tenant cost at {s['big']:,} / at {s['small']:,} = {growth:.2f} (<= 1.25)"),
        (r["noop_wall_s"] <= 3, f"no-op at {s['huge']:,} in {r['noop_wall_s']:.2f} s (<= 3 s)"),
        (
            provision_growth <= 1.25,
            f"provisioning p50 at {s['huge']:,} / at {s['tiny']:,} = {provision_growth:.2f} (<= 1.25)",
        ),
    ]
    common.print_checks(checks)
    return checks


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def run() -> common.Checks:
        server = common.server_description()
        dbs = Databases(args.db_name)
        try:
            dbs.create_extra()
            started = time.perf_counter()
            results = measure(args, dbs)
            print(f"measured in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        finally:
            dbs.drop_extra()
        return report(results, args, server)

    return common.run_in_throwaway_database(args, run)


if __name__ == "__main__":
    raise SystemExit(main())
