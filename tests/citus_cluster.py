"""The test database on a Citus cluster: made on every node, not only the coordinator.

With ``CITUS_URL`` (a coordinator's database whose workers are registered),
the suite runs on Citus. Django creates its test database on the coordinator
alone, and a Citus database must exist on every node with the extension, and
know its workers: this makes ``test_<name>`` so before Django migrates it, and
drops it from every node at the end.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

CITUS_NOT_RUN = "CITUS_URL not set: the Citus tests (tests/tenants/test_citus.py) were not run"


def _conninfo(db: dict[str, Any], dbname: str, host: str | None = None, port: int | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "dbname": dbname,
        "host": host or db.get("HOST") or None,
        "port": port or db.get("PORT") or None,
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
        "autocommit": True,
    }
    return {key: value for key, value in info.items() if value is not None}


def is_citus(db: dict[str, Any]) -> bool:
    with psycopg.connect(**_conninfo(db, db["NAME"])) as conn:
        row = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')").fetchone()
    return bool(row and row[0])


def workers(db: dict[str, Any]) -> list[tuple[str, int]]:
    with psycopg.connect(**_conninfo(db, db["NAME"])) as conn:
        rows = conn.execute(
            "SELECT nodename, nodeport FROM pg_dist_node WHERE groupid <> 0 AND noderole = 'primary' ORDER BY nodeid"
        ).fetchall()
    return [(host, int(port)) for host, port in rows]


def _recreate(db: dict[str, Any], name: str, host: str | None, port: int | None) -> None:
    with psycopg.connect(**_conninfo(db, "postgres", host, port)) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(**_conninfo(db, name, host, port)) as conn:
        conn.execute("CREATE EXTENSION citus")


def prepare(db: dict[str, Any], name: str) -> list[tuple[str, int]]:
    """Create ``name`` on the coordinator and every worker of ``db``'s cluster,
    with the extension, and register the workers. Returns the workers."""
    nodes = workers(db)
    if not nodes:
        raise RuntimeError(f"{db['NAME']} is a Citus coordinator without workers: add them with citus_add_node")
    for host, port in nodes:
        _recreate(db, name, host, port)
    _recreate(db, name, None, None)
    with psycopg.connect(**_conninfo(db, name)) as conn:
        conn.execute("SELECT citus_set_coordinator_host(%s, %s)", [db.get("HOST") or "localhost", int(db["PORT"])])
        for host, port in nodes:
            conn.execute("SELECT citus_add_node(%s, %s)", [host, port])
    return nodes


def drop(db: dict[str, Any], name: str, nodes: list[tuple[str, int]]) -> None:
    for host, port in [(None, None), *nodes]:
        with psycopg.connect(**_conninfo(db, "postgres", host, port)) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
