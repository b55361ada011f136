"""Pieces shared by the benchmark scripts (``bench/provision.py``, ``bench/products.py``).

A script puts the repository root on ``sys.path`` and then imports this module,
before anything opens a database connection. ``run_in_throwaway_database``
points Django's "default" database at a throwaway database on the same server,
creates it, bootstraps it, runs the benchmark and drops it at the end, also on
error or interruption (SIGTERM included).
"""

from __future__ import annotations

import argparse
import io
import logging
import math
import os
import re
import secrets
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import django
import psycopg
from django.conf import settings
from psycopg import sql

from devtools import embedded_db

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
if not os.environ.get("DATABASE_URL"):  # as `make`: the embedded PostgreSQL
    os.environ["DATABASE_URL"] = embedded_db.url()

DB_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
PASSWORD = "Bench-" + secrets.token_urlsafe(12)

Checks = list[tuple[bool, str]]


# --- arguments -----------------------------------------------------------------------


def add_db_name_argument(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--db-name", default=default, help="throwaway database (dropped at the end)")


def check_db_name(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not DB_NAME_RE.match(args.db_name):
        parser.error("--db-name must be a plain lowercase identifier")


# --- throwaway database --------------------------------------------------------------


def _maintenance_conninfo(db: dict[str, Any]) -> dict[str, Any]:
    params = {"dbname": "postgres", "user": db.get("USER") or None, "password": db.get("PASSWORD") or None}
    if db.get("HOST"):
        params["host"] = db["HOST"]
    if db.get("PORT"):
        params["port"] = str(db["PORT"])
    return {k: v for k, v in params.items() if v is not None}


def _admin_execute(db: dict[str, Any], *statements: sql.Composed | sql.SQL) -> None:
    with psycopg.connect(**_maintenance_conninfo(db), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def create_bench_database(db: dict[str, Any], name: str) -> None:
    ident = sql.Identifier(name)
    _admin_execute(
        db,
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident),
        sql.SQL("CREATE DATABASE {}").format(ident),
    )


def drop_bench_database(db: dict[str, Any], name: str) -> None:
    from django.db import connections

    connections.close_all()
    _admin_execute(db, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _raise_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def run_in_throwaway_database(args: argparse.Namespace, run: Callable[[], Checks], keep: bool = False) -> int:
    """Redirect Django to ``args.db_name``, create and bootstrap it, call ``run``, then
    drop it (or only close the connections with ``keep``). Returns the exit status:
    2 if ``args.db_name`` is the configured database, 1 if a check failed (unless
    ``args.no_check``), else 0."""
    signal.signal(signal.SIGTERM, _raise_on_sigterm)

    # No Django connection exists yet, so redirecting "default" here is safe.
    db = settings.DATABASES["default"]
    if args.db_name == db["NAME"]:
        print(f"refusing: --db-name {args.db_name!r} is the configured database", file=sys.stderr)
        return 2
    db["NAME"] = args.db_name
    db["CONN_MAX_AGE"] = None  # one connection for the whole run
    db["CONN_HEALTH_CHECKS"] = False

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    assert connection.connection is None, "a connection opened before the database was redirected"
    # One INFO line per provision would drown the output.
    logging.getLogger("tenants.services").setLevel(logging.WARNING)

    create_bench_database(db, args.db_name)
    try:
        started = time.perf_counter()
        call_command("bootstrap", verbosity=0, stdout=io.StringIO())
        print(f"bootstrapped {args.db_name} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        checks = run()
    finally:
        if keep:
            from django.db import connections

            connections.close_all()
            print(f"kept {args.db_name} (drop it yourself)", file=sys.stderr)
        else:
            drop_bench_database(db, args.db_name)
            print(f"dropped {args.db_name}", file=sys.stderr)
    if args.no_check or all(ok for ok, _ in checks):
        return 0
    return 1


# --- report --------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def server_description() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
    db = settings.DATABASES["default"]
    where = db.get("HOST") or "local socket"
    if db.get("PORT"):
        where += f":{db['PORT']}"
    return f"PostgreSQL {version} at {where}, database {db['NAME']}"


def print_header(header: str) -> None:
    """A table's header line and the rule under it."""
    print(header)
    print("-" * len(header))


def print_checks(checks: Checks) -> None:
    for ok, text in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")


def settle() -> None:
    """Put each size in the same state before measuring: without this, background
    work left by the set-up (autovacuum of the catalogs churned by bootstrap or by
    the fillers, dirty buffers) lands in some sizes' samples and not others'."""
    from django.db import DatabaseError, connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")  # autocommit: VACUUM cannot run in a transaction
        try:
            cursor.execute("CHECKPOINT")  # superuser or pg_checkpoint only
        except DatabaseError:
            print("CHECKPOINT not permitted; measuring without it", file=sys.stderr)
