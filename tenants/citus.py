"""Citus schema-based sharding, detected at run time.

With a Citus coordinator as the database (``CREATE EXTENSION citus`` and
``citus.enable_schema_based_sharding = on``), every tenant schema is a
distributed schema: its tables are single-shard tables, colocated, placed
together on one worker. The template and ``public`` stay local schemas on the
coordinator. On plain PostgreSQL nothing here runs but one cached query.

* A new tenant's schema is built locally inside the provisioning transaction
  (the clone script is many statements in one string, and uses ALTERs Citus
  refuses in a distributed schema), then handed to Citus with
  ``citus_schema_distribute``, which copies it to a worker; the local copy of
  its rows is truncated after.
* Citus does not forward ``SET CONSTRAINTS`` to workers (citusdata/citus
  #2234): a schema cannot be dropped in the transaction that wrote to its
  tables (deferred foreign-key checks pending on the worker). A purge is its
  own transaction in the product; ``TenantBusy`` says so otherwise.
* A tenant is moved with ``citus_move_shard_placement``: moving one shard
  moves its whole colocation group, i.e. the tenant's schema.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import connections
from psycopg import sql

from core.errors import ApplicationError, NotFound

_detected: dict[tuple[str, str, str], bool] = {}

TRANSFER_MODES = ("auto", "force_logical", "block_writes")


def is_citus(alias: str = "default") -> bool:
    """Whether the database is a Citus coordinator: one query per process and database."""
    conn = connections[alias]
    key = (str(conn.settings_dict.get("HOST")), str(conn.settings_dict.get("PORT")), str(conn.settings_dict["NAME"]))
    if key not in _detected:
        with conn.cursor() as cursor:
            cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")
            _detected[key] = bool(cursor.fetchone()[0])
    return _detected[key]


@contextlib.contextmanager
def local_schemas(cursor: Any) -> Iterator[None]:
    """Within a transaction: schemas created meanwhile stay local (not
    distributed). Nothing on plain PostgreSQL."""
    if not is_citus():
        yield
        return
    cursor.execute(
        "SELECT current_setting('citus.enable_schema_based_sharding'), "
        "set_config('citus.enable_schema_based_sharding', 'off', true)"
    )
    before = cursor.fetchone()[0]
    yield
    # Not in a finally: after an error the transaction (or the savepoint the
    # caller's atomic block rolls back to) is aborted, and takes the setting
    # back with it; a statement here would only hide the error.
    cursor.execute("SELECT set_config('citus.enable_schema_based_sharding', %s, true)", [before])


def distribute_schema(cursor: Any, schema: str, tables_with_rows: list[str]) -> None:
    """Hand a local schema to Citus (placed on a worker, rows copied there),
    then drop the local copy of its rows. In the caller's transaction."""
    # Pending deferred foreign-key checks on its tables: run them here, locally,
    # before the tables move (Citus refuses to ALTER a table with pending events).
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    quoted = sql.Identifier(schema).as_string()
    cursor.execute("SELECT citus_schema_distribute(%s::regnamespace)", [quoted])
    for table in tables_with_rows:
        qualified = f"{quoted}.{sql.Identifier(table).as_string()}"
        cursor.execute("SELECT truncate_local_data_after_distributing_table(%s::regclass)", [qualified])
    cursor.execute("SET CONSTRAINTS ALL DEFERRED")  # back to Django's foreign keys' own timing


@dataclass(frozen=True)
class Placement:
    schema: str
    node: str | None  # "host:port" of the worker holding the schema; None: local (not distributed)
    shard_id: int | None
    size_bytes: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"schema": self.schema, "node": self.node, "size_bytes": self.size_bytes}


# From Citus's metadata tables, not the citus_schemas/citus_shards views: those
# size every shard of the cluster (citus_shard_sizes()) on each call. Schema
# names compared as pg_namespace.nspname (regnamespace::text quotes keywords).
# Each distributed schema's shards and the node of each (one join chain for
# placements and node_sizes).
_SCHEMA_SHARDS = """
FROM pg_dist_schema ds
JOIN pg_namespace n ON n.oid = ds.schemaid
JOIN pg_dist_partition part ON part.colocationid = ds.colocationid
JOIN pg_dist_shard shard ON shard.logicalrelid = part.logicalrelid
JOIN pg_dist_placement placement ON placement.shardid = shard.shardid
JOIN pg_dist_node node ON node.groupid = placement.groupid AND node.noderole = 'primary'
"""

_PLACEMENTS = (
    "SELECT n.nspname, node.nodename || ':' || node.nodeport, min(shard.shardid)"
    + _SCHEMA_SHARDS
    + "WHERE n.nspname = ANY(%s) GROUP BY 1, 2"
)

_SIZE = """
SELECT coalesce(sum(citus_total_relation_size(part.logicalrelid)), 0)
FROM pg_dist_schema ds JOIN pg_dist_partition part ON part.colocationid = ds.colocationid
WHERE ds.schemaid = %s::regnamespace
"""


def placements(schemas: list[str], *, sizes: bool = False) -> dict[str, Placement]:
    """Where each schema lives (a schema Citus does not know is local); with
    ``sizes``, each one's size too (a query to its worker per table)."""
    found = {schema: Placement(schema, None, None, None) for schema in schemas}
    with connections["default"].cursor() as cursor:
        cursor.execute(_PLACEMENTS, [schemas])
        for schema, node, shard_id in cursor.fetchall():
            size = None
            if sizes:
                cursor.execute(_SIZE, [sql.Identifier(schema).as_string()])
                size = int(cursor.fetchone()[0] or 0)
            found[schema] = Placement(schema, node, int(shard_id), size)
    return found


def node_sizes() -> dict[str, int]:
    """Bytes of distributed-schema shards per worker (every worker asked once)."""
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT node.nodename || ':' || node.nodeport, coalesce(sum(sz.size), 0)"
            + _SCHEMA_SHARDS
            + "LEFT JOIN citus_shard_sizes() sz ON sz.shard_id = shard.shardid GROUP BY 1"
        )
        return {node: int(size) for node, size in cursor.fetchall()}


def worker_nodes() -> list[str]:
    """Active workers, "host:port"."""
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT node_name || ':' || node_port FROM citus_get_active_worker_nodes() ORDER BY node_name, node_port"
        )
        return [row[0] for row in cursor.fetchall()]


def _split_node(node: str) -> tuple[str, int]:
    host, _, port = node.rpartition(":")
    if not host or not port.isdigit():
        raise ApplicationError(f"Give the node as host:port, not {node!r}.", field="node")
    return host, int(port)


def move_schema(schema: str, to_node: str, mode: str = "block_writes") -> Placement:
    """Move a distributed schema (a tenant) to another worker. Blocks writes to
    that tenant for the copy (``block_writes``) or copies by logical
    replication while it keeps serving (``force_logical``; needs
    ``wal_level = logical``); ``auto`` lets Citus choose."""
    if mode not in TRANSFER_MODES:
        raise ApplicationError(f"mode is one of {', '.join(TRANSFER_MODES)}.", field="mode")
    workers = worker_nodes()
    if to_node not in workers:
        raise ApplicationError(f"{to_node} is not an active worker; workers: {', '.join(workers)}.", field="node")
    current = placements([schema])[schema]
    if current.node is None or current.shard_id is None:
        raise NotFound(f"{schema} is not a distributed schema.")
    if current.node == to_node:
        return current
    source_host, source_port = _split_node(current.node)
    target_host, target_port = _split_node(to_node)
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT citus_move_shard_placement(%s, %s, %s, %s, %s, "
            "shard_transfer_mode => %s::citus.shard_transfer_mode)",
            [current.shard_id, source_host, source_port, target_host, target_port, mode],
        )
    return placements([schema])[schema]
