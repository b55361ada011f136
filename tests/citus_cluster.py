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


def _nodes(db: dict[str, Any]) -> tuple[tuple[str, int], list[tuple[str, int]]]:
    """The coordinator and the active workers, as the cluster itself knows them."""
    with psycopg.connect(**_conninfo(db, db["NAME"])) as conn:
        exists = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')").fetchone()
        if not (exists and exists[0]):
            raise RuntimeError(f"CITUS_URL: {db['NAME']} has no citus extension; it is not a Citus coordinator")
        rows = conn.execute(
            "SELECT groupid, nodename, nodeport FROM pg_dist_node "
            "WHERE noderole = 'primary' AND isactive ORDER BY groupid, nodeid"
        ).fetchall()
    coordinator = next(((host, int(port)) for group, host, port in rows if group == 0), None)
    if coordinator is None:
        raise RuntimeError(f"CITUS_URL: {db['NAME']} does not know its coordinator: run citus_set_coordinator_host")
    return coordinator, [(host, int(port)) for group, host, port in rows if group != 0]


def _recreate(db: dict[str, Any], name: str, host: str | None, port: int | None) -> None:
    with psycopg.connect(**_conninfo(db, "postgres", host, port)) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(**_conninfo(db, name, host, port)) as conn:
        conn.execute("CREATE EXTENSION citus")


def prepare(db: dict[str, Any], name: str) -> list[tuple[str, int]]:
    """Create ``name`` afresh (``--reuse-db`` does not apply) on the coordinator
    and every active worker of ``db``'s cluster, with the extension, and
    register them under the addresses the cluster already uses. Returns the workers."""
    coordinator, nodes = _nodes(db)
    if not nodes:
        raise RuntimeError(f"{db['NAME']} is a Citus coordinator without workers: add them with citus_add_node")
    for host, port in nodes:
        _recreate(db, name, host, port)
    _recreate(db, name, None, None)
    with psycopg.connect(**_conninfo(db, name)) as conn:
        conn.execute("SELECT citus_set_coordinator_host(%s, %s)", list(coordinator))
        for host, port in nodes:
            conn.execute("SELECT citus_add_node(%s, %s)", [host, port])
    return nodes


def drop(db: dict[str, Any], name: str, nodes: list[tuple[str, int]]) -> None:
    for host, port in [(None, None), *nodes]:
        with psycopg.connect(**_conninfo(db, "postgres", host, port)) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
