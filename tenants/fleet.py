"""The fleet migration executor: every tenant schema brought up to date, fast.

``migrate_schemas`` costs ~160 ms per tenant for a one-column migration whose
DDL takes ~3 ms, and the cost grows with the number of tenants: Django's
recorder lists every relation visible on the search_path (all of pg_class)
several times per schema, the loader and project state are rebuilt per schema,
and content types are re-checked after it. Here:

* the loader, the plan and the project states are built once per run;
* each schema's applied migrations are read from its own ``django_migrations``
  (no catalog-wide introspection at all on the replay path);
* a migration without Python code (no ``RunPython``) is applied
  normally once, to the template, with every statement its schema editor runs
  captured; each tenant then replays that SQL with its own search_path. A
  migration with Python code (or whose SQL names the schema it was captured
  in) runs the normal way in each tenant, with the shared state. A non-atomic
  migration is refused (it cannot be part of the tenant's one transaction);
* each tenant is one transaction, under a ``lock_timeout``: its DDL, its
  ``django_migrations`` rows and its new content types and permissions (copied
  from the template by two set-based statements) commit together or not at
  all, so a crash or Ctrl-C leaves each tenant migrated or untouched and a
  rerun continues where it stopped;
* tenants run in parallel over a bounded number of connections (threads, each
  with its own Django connection); a per-tenant advisory lock keeps two
  executors from migrating one tenant twice.

A failed tenant does not stop the others. It stays active on its previous,
consistent state (its transaction rolled back; with expand/contract migrations
the new code still serves it) and is flagged: ``Tenant.migration_error`` holds
the reason until a later run migrates it. It is not suspended: suspending would
turn a migration problem into an outage for a tenant whose data is intact.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import IO, Any

from django.conf import settings
from django.core.management.sql import emit_post_migrate_signal
from django.db import connections, transaction
from django.db.migrations import operations as ops
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.migration import Migration
from django.db.migrations.operations.special import RunPython
from django.db.migrations.state import ProjectState
from django.utils import timezone
from psycopg import sql

from core.metrics import MIGRATIONS
from tenants import citus
from tenants.db import connection
from tenants.models import Tenant

Node = tuple[str, str]

# Provisioning holds this lock shared; migrating the template holds it
# exclusively, so no clone ever reads a half-migrated template.
TEMPLATE_LOCK = 0x7E4A_4E7
# pg_advisory_xact_lock(TENANT_LOCK_SPACE, tenant id): one executor per tenant.
TENANT_LOCK_SPACE = 0x7E4A_4E8
# Failures worth another try in the same run: the lock was busy.
_RETRYABLE_SQLSTATES = frozenset({"55P03", "40P01", "40001"})  # lock_not_available, deadlock, serialization
_SCHEMA_CHECK_BATCH = 500


class FleetError(RuntimeError):
    """The run cannot go on (the template failed to migrate)."""


@dataclasses.dataclass
class Step:
    node: Node
    migration: Migration
    # Replayable: no Python code. The captured SQL, once known.
    replayable: bool
    script: tuple[str, ...] | None = None
    # May add content types or permissions (a model created, renamed or its
    # options changed, or code or SQL we cannot see into).
    changes_models: bool = True


@dataclasses.dataclass
class Failure:
    schema: str
    error: str


@dataclasses.dataclass
class FleetReport:
    total: int = 0  # tenant schemas considered (the template excluded)
    current: int = 0
    migrated: int = 0
    failed: list[Failure] = dataclasses.field(default_factory=list)
    template_migrated: bool = False
    replayed: int = 0  # migrations applied by replay, summed over tenants
    normal: int = 0  # migrations applied the normal way, summed over tenants
    seconds: float = 0.0
    tenant_seconds: float = 0.0  # the tenants' part of ``seconds`` (after the template)
    # Where the tenants' time went, summed over tenants (seconds): lock, check
    # (their django_migrations), ddl (replayed or normal), record, catalog
    # (content types and permissions), mark, commit.
    phases: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


class Plan:
    """The migrations on disk, in order, with the project state before each:
    built once per run, shared by every tenant."""

    def __init__(self) -> None:
        self.loader = MigrationLoader(None, ignore_no_migrations=True)
        graph = self.loader.graph
        order: list[Node] = []
        seen: set[Node] = set()
        for leaf in sorted(graph.leaf_nodes()):
            for node in graph.forwards_plan(leaf):
                if node not in seen:
                    seen.add(node)
                    order.append(node)
        self.steps = [
            Step(
                node,
                graph.nodes[node],
                replayable=_replayable(graph.nodes[node]),
                changes_models=_changes_models(graph.nodes[node]),
            )
            for node in order
        ]
        self.expected = frozenset(order)
        self.fingerprint = fingerprint(self.expected)
        self._states: dict[Node, ProjectState] = {}
        self._state_lock = threading.Lock()

    def pending(self, applied: set[Node]) -> list[Step]:
        pending = [step for step in self.steps if step.node not in applied]
        for step in pending:
            if not step.migration.atomic:
                # Each schema is one transaction here, so a crash leaves it
                # migrated or untouched; a non-atomic migration would break that.
                raise FleetError(
                    f"{step.node[0]}.{step.node[1]} is non-atomic (atomic = False): the fleet executor runs each "
                    "schema in one transaction. Apply it with migrate_schemas, or make it atomic."
                )
        return pending

    def state_before(self, node: Node) -> ProjectState:
        """The project state before ``node`` (every earlier migration applied), rendered once; a clone per use."""
        with self._state_lock:
            if not self._states:
                state = ProjectState(real_apps=self.loader.unmigrated_apps)
                for step in self.steps:
                    self._states[step.node] = state
                    state = step.migration.mutate_state(state, preserve=True)
            state = self._states[node]
            state.apps  # noqa: B018 - render once, under the lock
            return state.clone()


def fingerprint(nodes: frozenset[Node] | set[Node]) -> str:
    """What ``Tenant.migrated_to`` holds for a schema with ``nodes`` applied."""
    return hashlib.sha256(repr(sorted(nodes)).encode()).hexdigest()


def _replayable(migration: Migration) -> bool:
    return not any(isinstance(op, RunPython) for op in _flat_operations(migration.operations))


# Operations that leave every model's existence, name and options alone: they
# never add a content type or a permission.
_MODEL_NEUTRAL = (
    ops.AddField,
    ops.RemoveField,
    ops.AlterField,
    ops.RenameField,
    ops.AddIndex,
    ops.RemoveIndex,
    ops.RenameIndex,
    ops.AddConstraint,
    ops.RemoveConstraint,
    ops.AlterUniqueTogether,
    ops.AlterIndexTogether,
    ops.AlterModelTable,
    ops.AlterModelTableComment,
    ops.AlterModelManagers,
    ops.AlterOrderWithRespectTo,
)


def _changes_models(migration: Migration) -> bool:
    """Whether applying it may add content types or permissions (then the
    tenant copies the template's new ones in the same transaction)."""
    return not _neutral(migration.operations)


def _neutral(operations: Any) -> bool:
    for op in operations:
        if isinstance(op, ops.SeparateDatabaseAndState):
            if not (_neutral(op.state_operations) and _neutral(op.database_operations)):
                return False
        elif not isinstance(op, _MODEL_NEUTRAL):
            return False
    return True


def _flat_operations(operations: Any) -> Iterator[Any]:
    for op in operations:
        yield op
        yield from _flat_operations(getattr(op, "database_operations", []) or [])


# --- applying one migration to the current schema ---------------------------------------------


def _apply_normally(plan: Plan, step: Step, schema: str) -> tuple[str, ...]:
    """Apply ``step`` to the schema the thread's connection is set to, as Django's
    executor does, returning the SQL its schema editor ran (params merged)."""
    conn = connections["default"]
    captured: list[str] = []
    state = plan.state_before(step.node)
    editor = conn.schema_editor(atomic=step.migration.atomic)
    run = editor.execute

    def execute(statement: Any, params: Any = ()) -> Any:
        text = str(statement)
        captured.append(text if params is None else conn.ops.compose_sql(text, params))  # type: ignore[attr-defined]
        return run(statement, params)

    editor.execute = execute  # type: ignore[method-assign,assignment]
    with editor:
        step.migration.apply(state, editor)
    return tuple(captured)


def _names_schema(statements: tuple[str, ...], schema: str) -> bool:
    pattern = re.compile(r'(?<![\w$])"?' + re.escape(schema) + r'"?\.')
    return any(pattern.search(statement) for statement in statements)


def _record(cursor: Any, nodes: list[Node]) -> None:
    now = timezone.now()
    cursor.executemany(
        "INSERT INTO django_migrations (app, name, applied) VALUES (%s, %s, %s)",
        [(app, name, now) for app, name in nodes],
    )


def _sync_catalog_rows(cursor: Any, template: str) -> None:
    """New content types and permissions, as the template's post_migrate made them.

    The template's rows are read in a materialized CTE: on Citus the template is
    a local table and the tenant's a distributed one, which cannot be joined
    directly; a CTE is planned apart (pulled to the coordinator) and then
    joined. On PostgreSQL it is the same plan."""
    tpl = sql.Identifier(template).as_string()
    # Identifiers quoted by sql.Identifier; no value is interpolated.
    cursor.execute(
        f"WITH t AS MATERIALIZED (SELECT id, app_label, model FROM {tpl}.django_content_type) "  # noqa: S608
        "INSERT INTO django_content_type (app_label, model) SELECT t.app_label, t.model FROM t "
        "WHERE NOT EXISTS (SELECT 1 FROM django_content_type c WHERE c.app_label = t.app_label AND c.model = t.model) "
        "ORDER BY t.id"
    )
    cursor.execute(
        "WITH tp AS MATERIALIZED ("  # noqa: S608
        f"SELECT p.id, p.name, p.codename, tc.app_label, tc.model FROM {tpl}.auth_permission p "
        f"JOIN {tpl}.django_content_type tc ON tc.id = p.content_type_id) "
        "INSERT INTO auth_permission (name, content_type_id, codename) SELECT tp.name, c.id, tp.codename FROM tp "
        "JOIN django_content_type c ON c.app_label = tp.app_label AND c.model = tp.model "
        "WHERE NOT EXISTS (SELECT 1 FROM auth_permission p WHERE p.content_type_id = c.id "
        "AND p.codename = tp.codename) ORDER BY tp.id"
    )


def _applied(cursor: Any) -> set[Node]:
    cursor.execute("SELECT app, name FROM django_migrations")
    return {(app, name) for app, name in cursor.fetchall()}


# --- the executor -----------------------------------------------------------------------------


class FleetExecutor:
    def __init__(
        self,
        *,
        connections_max: int = 2,
        lock_timeout: str = "5s",
        retries: int = 2,
        replay: bool = True,
        verify: bool = False,
        citus: bool | None = None,
        progress: IO[str] | None = None,
        on_tenant_done: Callable[[str], None] | None = None,
    ) -> None:
        self.connections_max = max(1, connections_max)
        self.lock_timeout = lock_timeout
        self.retries = retries
        self.replay = replay
        self.verify = verify
        self.citus = citus
        self.progress = progress
        self.on_tenant_done = on_tenant_done
        self.template = str(_template_schema())
        self.plan = Plan()
        self._script_lock = threading.Lock()

    # -- which schemas lag -----------------------------------------------------------------

    def behind(self, schemas: list[str]) -> list[str]:
        """The schemas missing a migration on disk: one query per 500 schemas,
        each reading only that schema's own django_migrations."""
        expected = sorted(f"{app}.{name}" for app, name in self.plan.expected)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relname = 'django_migrations' AND c.relkind IN ('r', 'p') AND n.nspname = ANY(%s)",
                [schemas],
            )
            with_table = {name for (name,) in cursor.fetchall()}
            lagging = [schema for schema in schemas if schema not in with_table]
            present = [schema for schema in schemas if schema in with_table]
            for start in range(0, len(present), _SCHEMA_CHECK_BATCH):
                batch = present[start : start + _SCHEMA_CHECK_BATCH]
                union = " UNION ALL ".join(
                    f"SELECT %s, count(*) FROM {sql.Identifier(schema).as_string()}.django_migrations "  # noqa: S608
                    "WHERE app || '.' || name = ANY(%s)"
                    for schema in batch
                )
                params: list[Any] = []
                for schema in batch:
                    params += [schema, expected]
                cursor.execute(union, params)
                lagging += [schema for schema, count in cursor.fetchall() if count < len(expected)]
        return sorted(lagging)

    # -- the template ----------------------------------------------------------------------

    def migrate_template(self, verbosity: int = 0) -> bool:
        """Apply the template's pending migrations the normal way, capturing the
        SQL of the replayable ones, then emit post_migrate (content types and
        permissions) in it. Holds the template lock exclusively."""
        connection.set_schema(self.template)
        with connection.cursor() as cursor:
            current = not self.plan.pending(_applied(cursor))
        connection.set_schema_to_public()
        if current:
            return False
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [TEMPLATE_LOCK])
        try:
            connection.set_schema(self.template)
            with connection.cursor() as cursor:
                pending = self.plan.pending(_applied(cursor))
            if not pending:
                return False
            for step in pending:
                with transaction.atomic():
                    captured = _apply_normally(self.plan, step, self.template)
                    with connection.cursor() as cursor:
                        _record(cursor, [step.node])
                if step.replayable and not _names_schema(captured, self.template):
                    step.script = captured
            connection.set_schema(self.template)
            emit_post_migrate_signal(verbosity, False, "default")
            return True
        finally:
            connection.set_schema_to_public()
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [TEMPLATE_LOCK])

    def template_post_migrate(self, verbosity: int = 0) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [TEMPLATE_LOCK])
        try:
            connection.set_schema(self.template)
            emit_post_migrate_signal(verbosity, False, "default")
        finally:
            connection.set_schema_to_public()
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [TEMPLATE_LOCK])

    # -- one tenant ------------------------------------------------------------------------

    def _migrate_tenant(self, schema: str, tenant_id: int, phases: dict[str, float]) -> tuple[int, int]:
        """One tenant in one transaction. Returns (replayed, normal) migrations
        applied; adds the time of each phase to ``phases``."""
        conn = connections["default"]
        tconn: Any = conn
        replayed = normal = 0
        lap = _Laps(phases)
        # In the caller's transaction (a savepoint per tenant), settings made
        # here would outlive the savepoint: they are put back after it, and
        # the commit is the caller's, so its durability too.
        own_transaction = not conn.in_atomic_block
        # No wait for the WAL flush at commit, on PostgreSQL: a server crash may
        # forget the last few tenants' commits, whole (DDL, rows and marker):
        # they are then simply not migrated, and the rerun does them. Not on
        # Citus: its workers commit (2PC) before the coordinator's commit is
        # flushed, and a lost coordinator commit would leave them ahead.
        no_flush_wait = own_transaction and not self._is_citus()
        try:
            tconn.set_schema(schema)
            with transaction.atomic(), conn.cursor() as cursor:
                # One round trip: the settings (the previous lock_timeout kept)
                # and this tenant's advisory lock.
                cursor.execute(
                    "SELECT current_setting('lock_timeout'), set_config('lock_timeout', %s, true), "
                    "set_config('synchronous_commit', CASE WHEN %s THEN 'off' "
                    "ELSE current_setting('synchronous_commit') END, true), pg_advisory_xact_lock(%s, %s)",
                    [self.lock_timeout, no_flush_wait, TENANT_LOCK_SPACE, tenant_id],
                )
                previous_lock_timeout = cursor.fetchone()[0]
                lap("lock")
                pending = self.plan.pending(_applied(cursor))
                lap("check")
                if not pending:  # another executor got here first, or only the marker lagged
                    self._mark(cursor, tenant_id)
                    if not own_transaction:
                        _set_lock_timeout(cursor, previous_lock_timeout)
                    return -1, 0
                batch: list[str] = []
                for step in pending:
                    script = step.script if self.replay else None
                    if script is not None:
                        batch.extend(script)
                        replayed += 1
                        continue
                    self._flush(cursor, batch)
                    captured = _apply_normally(self.plan, step, schema)
                    normal += 1
                    if self.replay and step.replayable and step.script is None and not _names_schema(captured, schema):
                        with self._script_lock:
                            step.script = step.script or captured
                self._flush(cursor, batch)
                lap("ddl")
                _record(cursor, [step.node for step in pending])
                lap("record")
                if any(step.changes_models for step in pending):
                    _sync_catalog_rows(cursor, self.template)
                    lap("catalog")
                self._mark(cursor, tenant_id)
                if not own_transaction:  # before the savepoint's release, which would keep ours
                    _set_lock_timeout(cursor, previous_lock_timeout)
                lap("mark")
            lap("commit")
        finally:
            tconn.set_schema_to_public()
        return replayed, normal

    def _mark(self, cursor: Any, tenant_id: int) -> None:
        cursor.execute(
            "UPDATE public.tenants_tenant SET migrated_to = %s, migration_error = '', migration_failed_at = NULL "
            "WHERE id = %s",
            [self.plan.fingerprint, tenant_id],
        )

    def _flush(self, cursor: Any, batch: list[str]) -> None:
        """Run the collected replay statements: one round trip on PostgreSQL;
        one statement at a time on Citus (which refuses multi-statement strings
        in distributed schemas, Citus #6608)."""
        if not batch:
            return
        if self._is_citus():
            for statement in batch:
                cursor.execute(statement)
        else:
            cursor.execute(";\n".join(batch))
        batch.clear()

    def _is_citus(self) -> bool:
        if self.citus is None:
            self.citus = citus.is_citus()
        return self.citus

    def _run_one(self, schema: str, tenant_id: int) -> tuple[str, int, int, str, dict[str, float]]:
        attempts = 0
        phases: dict[str, float] = {}
        while True:
            try:
                replayed, normal = self._migrate_tenant(schema, tenant_id, phases)
            except Exception as exc:  # a failed tenant does not stop the others
                sqlstate = getattr(getattr(exc, "__cause__", None), "sqlstate", None)
                if sqlstate in _RETRYABLE_SQLSTATES and attempts < self.retries:
                    attempts += 1
                    time.sleep(0.2 * attempts)
                    continue
                return schema, 0, 0, f"{type(exc).__name__}: {exc}".strip(), phases
            return schema, replayed, normal, "", phases

    # -- the run ---------------------------------------------------------------------------

    def run(self, *, schemas: list[str] | None = None, verbosity: int = 0) -> FleetReport:
        started = time.perf_counter()
        report = FleetReport()
        report.template_migrated = self.migrate_template(verbosity)
        rows = Tenant.objects.filter(is_template=False).order_by("schema_name")
        if schemas is not None:
            rows = rows.filter(schema_name__in=schemas)
        report.total = rows.count()
        # Tenants whose marker says current are skipped without opening their
        # schema (one query); the others (or all, with verify) are checked in
        # their own django_migrations.
        unsure = rows if self.verify else rows.exclude(migrated_to=self.plan.fingerprint)
        ids = dict(unsure.values_list("schema_name", "id"))
        behind = self.behind(list(ids))
        lagging = set(behind)
        confirmed = [schema for schema in ids if schema not in lagging]
        if confirmed:  # checked just now: current; remember it
            Tenant.objects.filter(schema_name__in=confirmed).update(migrated_to=self.plan.fingerprint)
        report.current = report.total - len(behind)
        if behind and not report.template_migrated:
            # The template's content types and permissions, which the tenants
            # copy, in case a run stopped between its migrations and its
            # post_migrate (a dozen queries, once per run with work to do).
            self.template_post_migrate(verbosity)
        MIGRATIONS.labels(outcome="current").inc(report.current)
        tenants_started = time.perf_counter()
        with _Progress(self.progress, len(behind)) as progress:
            if behind:
                self._run_parallel(behind, ids, report, progress)
        report.tenant_seconds = time.perf_counter() - tenants_started
        report.seconds = time.perf_counter() - started
        return report

    def _run_parallel(self, behind: list[str], ids: dict[str, int], report: FleetReport, progress: _Progress) -> None:
        if connections["default"].in_atomic_block or self.connections_max == 1:
            # In the caller's transaction (a test, a data migration): other
            # connections would not see its writes, so run here, one tenant
            # per savepoint.
            for schema in behind:
                self._collect(report, progress, self._run_one(schema, ids[schema]))
            return

        opened: list[Any] = []
        opened_lock = threading.Lock()
        local = threading.local()

        def work(schema: str) -> tuple[str, int, int, str, dict[str, float]]:
            if not getattr(local, "seen", False):  # this thread's connection, kept for the run
                local.seen = True
                conn = connections["default"]
                conn.inc_thread_sharing()  # closed by the calling thread at the end
                with opened_lock:
                    opened.append(conn)
            return self._run_one(schema, ids[schema])

        try:
            with ThreadPoolExecutor(max_workers=self.connections_max, thread_name_prefix="fleet") as pool:
                futures = [pool.submit(work, schema) for schema in behind]
                try:
                    for future in as_completed(futures):
                        self._collect(report, progress, future.result())
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
        finally:
            for conn in opened:
                conn.close()
                conn.dec_thread_sharing()

    def _collect(
        self, report: FleetReport, progress: _Progress, result: tuple[str, int, int, str, dict[str, float]]
    ) -> None:
        schema, replayed, normal, error, phases = result
        if replayed >= 0 or error:  # not for tenants found current after all
            for phase, seconds in phases.items():
                report.phases[phase] = report.phases.get(phase, 0.0) + seconds
        if error:
            report.failed.append(Failure(schema, error))
            MIGRATIONS.labels(outcome="failed").inc()
            Tenant.objects.filter(schema_name=schema).update(
                migration_error=error[:2000], migration_failed_at=timezone.now()
            )
        elif replayed < 0:
            report.current += 1
        else:
            report.migrated += 1
            report.replayed += replayed
            report.normal += normal
            MIGRATIONS.labels(outcome="migrated").inc()
            if self.on_tenant_done:
                self.on_tenant_done(schema)
        progress.update(failed=bool(error))


def _set_lock_timeout(cursor: Any, value: str) -> None:
    cursor.execute("SELECT set_config('lock_timeout', %s, true)", [value])


class _Laps:
    """``lap("name")`` adds the time since the previous lap to ``phases["name"]``."""

    def __init__(self, phases: dict[str, float]) -> None:
        self.phases = phases
        self.last = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = self.phases.get(name, 0.0) + now - self.last
        self.last = now


def _template_schema() -> str:
    return str(settings.TENANT_TEMPLATE_SCHEMA)


class _Progress:
    """A progress bar on a terminal (tqdm); a line every few seconds otherwise."""

    def __init__(self, stream: IO[str] | None, total: int) -> None:
        self.stream = stream
        self.total = total
        self.done = 0
        self.failed = 0
        self.started = time.perf_counter()
        self.last = 0.0
        self.bar: Any = None

    def __enter__(self) -> _Progress:
        if self.stream is not None and self.total:
            if self.stream.isatty():
                from tqdm import tqdm  # noqa: PLC0415 - only on a terminal

                self.bar = tqdm(total=self.total, file=self.stream, unit="tenant", desc="migrating")
            else:
                self._line()
        return self

    def update(self, *, failed: bool) -> None:
        self.done += 1
        self.failed += int(failed)
        if self.bar is not None:
            self.bar.update(1)
            if failed:
                self.bar.set_postfix(failed=self.failed)
        elif self.stream is not None and (time.perf_counter() - self.last >= 2 or self.done == self.total):
            self._line()

    def _line(self) -> None:
        assert self.stream is not None
        self.last = time.perf_counter()
        elapsed = self.last - self.started
        self.stream.write(f"migrated {self.done}/{self.total} ({self.failed} failed) in {elapsed:.1f} s\n")
        self.stream.flush()

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
