"""Fast tenant creation: copy the template schema's structure and rows in SQL.

Why not django-tenants' ``clone_schema``: it re-creates a few thousand lines of
plpgsql and global helper types on every clone (unsafe when two provisions run
at once), then runs a faked ``migrate_schemas`` for the new schema, which marks
any migration missing from the template as applied.  Here the clone script is
derived once per process from the template's catalog, keyed by the template's
applied migrations, and replayed in the caller's transaction as one round
trip, so a clone either happens whole or not at all.

What is copied, and how names are kept identical to a migrated schema (so
later ``RemoveIndex``/``RemoveConstraint`` migrations find what they expect):

* tables: ``CREATE TABLE ... (LIKE ... INCLUDING DEFAULTS IDENTITY GENERATED
  CONSTRAINTS COMMENTS STORAGE)``; check constraints keep their names;
* rows: every non-empty table (migration records, content types, permissions);
  the template must hold no users;
* identity columns are added after the rows, each with its own sequence (the
  column's type, PostgreSQL's default name), restarting after the copied rows;
* primary keys, unique and exclusion constraints, then other indexes, then
  foreign keys, each re-created under its own name from the template's
  definition.

Anything else in the template (views, functions, triggers, free-standing
sequences) makes ``build_clone_script`` refuse, so a migration that adds one
fails loudly in the test suite instead of producing incomplete tenants.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass

from django.db.backends.utils import CursorWrapper
from psycopg import sql

# Schema placeholder in generated statements; replaced per clone.
_TARGET = "\x00target\x00"


class CloneError(RuntimeError):
    """The template holds something this cloner cannot copy faithfully."""


@dataclass(frozen=True)
class CloneScript:
    fingerprint: str
    statements: tuple[str, ...]

    def render(self, target_schema: str) -> str:
        target = sql.Identifier(target_schema).as_string()
        return ";\n".join(stmt.replace(_TARGET, target) for stmt in self.statements) + ";"


_lock = threading.Lock()
_cache: dict[tuple[str, str], CloneScript] = {}


def applied_migrations(cursor: CursorWrapper, schema: str) -> set[tuple[str, str]]:
    cursor.execute(sql.SQL("SELECT app, name FROM {}.django_migrations").format(sql.Identifier(schema)).as_string())
    return {(app, name) for app, name in cursor.fetchall()}


def fingerprint_of(applied: set[tuple[str, str]]) -> str:
    return hashlib.sha256(repr(sorted(applied)).encode()).hexdigest()


def clone_script(cursor: CursorWrapper, template: str, fingerprint: str) -> CloneScript:
    """The cached script for this template state, built on first use."""
    key = (template, fingerprint)
    script = _cache.get(key)
    if script is None:
        with _lock:
            script = _cache.get(key) or build_clone_script(cursor, template, fingerprint)
            _cache.clear()
            _cache[key] = script
    return script


def _q(name: str) -> str:
    return sql.Identifier(name).as_string()


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def build_clone_script(cursor: CursorWrapper, template: str, fingerprint: str) -> CloneScript:
    src = _q(template)
    cursor.execute("SELECT current_setting('search_path')")
    saved_search_path = cursor.fetchone()[0]
    try:
        return _build(cursor, template, src, fingerprint)
    finally:
        # Put back what django-tenants believes the search_path is.
        cursor.execute("SELECT set_config('search_path', %s, false)", [saved_search_path])


def _build(cursor: CursorWrapper, template: str, src: str, fingerprint: str) -> CloneScript:
    cursor.execute("SELECT oid FROM pg_namespace WHERE nspname = %s", [template])
    row = cursor.fetchone()
    if row is None:
        raise CloneError(f"template schema {template!r} does not exist")
    nsp = row[0]

    _refuse_unsupported_objects(cursor, nsp, template)

    cursor.execute(
        "SELECT c.oid, c.relname FROM pg_class c WHERE c.relnamespace = %s AND c.relkind IN ('r', 'p') "
        "ORDER BY c.relname",
        [nsp],
    )
    tables: list[tuple[int, str]] = list(cursor.fetchall())
    table_names = dict(tables)

    create: list[str] = []
    copy: list[str] = []
    for _oid, name in tables:
        create.append(
            f"CREATE TABLE {_TARGET}.{_q(name)} (LIKE {src}.{_q(name)} INCLUDING DEFAULTS "
            "INCLUDING GENERATED INCLUDING CONSTRAINTS INCLUDING COMMENTS INCLUDING STORAGE)"
        )
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {src}.{_q(name)})")
        if cursor.fetchone()[0]:
            copy.append(f"INSERT INTO {_TARGET}.{_q(name)} SELECT * FROM {src}.{_q(name)}")

    cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {src}.accounts_user)")
    if cursor.fetchone()[0]:
        raise CloneError(f"template schema {template!r} holds users; it must hold none")

    # Identity sequences keep their type and restart after the copied rows.
    # Identity columns are added after the rows are copied, so each sequence
    # gets its column's type and PostgreSQL's default name, as in a migrated
    # schema (LIKE ... INCLUDING IDENTITY would make every sequence bigint),
    # and restarts after the copied rows.
    # One ALTER TABLE per table for its identity and keys, one more for its
    # foreign keys: each ALTER costs a lock and a relcache rebuild, so merging
    # the actions halves the script's time.
    cursor.execute(
        "SELECT c.relname, a.attname, a.attidentity FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "WHERE c.relnamespace = %s AND c.relkind IN ('r', 'p') AND a.attidentity <> '' ORDER BY c.relname, a.attnum",
        [nsp],
    )
    table_actions: dict[str, list[str]] = {}
    restarts: list[str] = []
    for table, column, identity in cursor.fetchall():
        generated = "ALWAYS" if identity == "a" else "BY DEFAULT"
        actions = table_actions.setdefault(table, [])
        actions.append(f"ALTER COLUMN {_q(column)} ADD GENERATED {generated} AS IDENTITY")
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {src}.{_q(table)})")
        if cursor.fetchone()[0]:
            # Read when the script runs, not when it was built: the template's
            # rows (and ids) may change without a change of its migrations.
            restarts.append(
                f"SELECT setval(pg_get_serial_sequence({_literal(_TARGET + '.' + _q(table))}, {_literal(column)}), m) "
                f"FROM (SELECT max({_q(column)}) AS m FROM {_TARGET}.{_q(table)}) AS copied WHERE m IS NOT NULL"
            )

    # Constraints print unqualified names for objects on the search_path: set
    # it to the template alone so that references resolve in the target when
    # the script runs with the target on its search_path.
    cursor.execute("SELECT set_config('search_path', %s, true)", [src])
    cursor.execute(
        "SELECT conrelid, conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE connamespace = %s AND contype IN ('p', 'u', 'x', 'f') ORDER BY contype <> 'p', conrelid, conname",
        [nsp],
    )
    foreign_actions: dict[str, list[str]] = {}
    for relid, conname, contype, definition in cursor.fetchall():
        action = f"ADD CONSTRAINT {_q(conname)} {definition}"
        (foreign_actions if contype == "f" else table_actions).setdefault(table_names[relid], []).append(action)

    def alter(actions: dict[str, list[str]]) -> list[str]:
        return [f"ALTER TABLE {_TARGET}.{_q(table)} {', '.join(acts)}" for table, acts in sorted(actions.items())]

    cursor.execute("SELECT quote_ident(%s)", [template])
    printed_src = cursor.fetchone()[0]  # as PostgreSQL prints it: quoted only when needed
    on_src = re.compile(r" ON (ONLY )?" + re.escape(printed_src) + r"\.")
    cursor.execute(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relnamespace = %s AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) "
        "ORDER BY c.relname",
        [nsp],
    )
    indexes: list[str] = []
    for (definition,) in cursor.fetchall():
        rewritten, count = on_src.subn(lambda m: f" ON {m.group(1) or ''}{_TARGET}.", definition, count=1)
        if count != 1:
            raise CloneError(f"cannot rewrite index definition: {definition}")
        indexes.append(rewritten)

    statements = (
        f"CREATE SCHEMA {_TARGET}",
        f"SET LOCAL search_path = {_TARGET}",
        *create,
        *copy,
        *alter(table_actions),  # primary keys and unique constraints before any foreign key
        *restarts,
        *indexes,
        *alter(foreign_actions),
    )
    return CloneScript(fingerprint=fingerprint, statements=statements)


def _refuse_unsupported_objects(cursor: CursorWrapper, nsp: int, template: str) -> None:
    checks = {
        "views or materialized views": "SELECT count(*) FROM pg_class "
        "WHERE relnamespace = %s AND relkind IN ('v', 'm')",
        "functions": "SELECT count(*) FROM pg_proc WHERE pronamespace = %s",
        "triggers": "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "WHERE c.relnamespace = %s AND NOT t.tgisinternal",
        "sequences not owned by an identity column": "SELECT count(*) FROM pg_class s WHERE s.relnamespace = %s "
        "AND s.relkind = 'S' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = s.oid AND d.deptype = 'i')",
        "column defaults read from a sequence": "SELECT count(*) FROM pg_attrdef d "
        "JOIN pg_class c ON c.oid = d.adrelid WHERE c.relnamespace = %s "
        "AND pg_get_expr(d.adbin, d.adrelid) LIKE '%%nextval(%%'",
    }
    for what, query in checks.items():
        cursor.execute(query, [nsp])
        if cursor.fetchone()[0]:
            raise CloneError(f"template schema {template!r} holds {what}, which cloning does not copy")
