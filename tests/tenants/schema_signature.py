"""A schema's structure as comparable data: used to prove that a cloned tenant
is indistinguishable from one built by running every migration."""

from __future__ import annotations

import re
from typing import Any

from django.db.backends.utils import CursorWrapper


def schema_signature(cursor: CursorWrapper, schema: str) -> dict[str, Any]:
    cursor.execute("SELECT oid, quote_ident(nspname) FROM pg_namespace WHERE nspname = %s", [schema])
    nsp, printed = cursor.fetchone()
    strip = re.compile(re.escape(printed) + r"\.")

    def rows(query: str) -> list[tuple[Any, ...]]:
        cursor.execute(query, [nsp])
        return sorted(tuple(strip.sub("", v) if isinstance(v, str) else v for v in row) for row in cursor.fetchall())

    cursor.execute("SELECT set_config('search_path', %s, true)", [printed])
    signature = {
        "columns": rows(
            "SELECT c.relname, row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum), a.attname, "
            "format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity, a.attgenerated, "
            "pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum "
            "WHERE c.relnamespace = %s AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped"
        ),
        "constraints": rows(
            "SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid), condeferrable, "
            "condeferred FROM pg_constraint WHERE connamespace = %s"
        ),
        "indexes": rows(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relnamespace = %s"
        ),
        "sequences": rows(
            "SELECT c.relname, s.seqtypid::regtype::text, s.seqincrement, s.seqcycle FROM pg_sequence s "
            "JOIN pg_class c ON c.oid = s.seqrelid WHERE c.relnamespace = %s"
        ),
    }
    return signature
