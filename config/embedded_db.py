"""An embedded PostgreSQL for development and tests.

When ``DATABASE_URL`` is unset, the project runs against a PostgreSQL 16 that
lives in ``.data/pg`` (the ``pgserver`` wheel ships the binaries). It listens on
a Unix socket only, so it never collides with a server already bound to 5432,
and it keeps running between commands: starting it again is a no-op.

Run ``python -m config.embedded_db url|start|stop|status``.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("EMBEDDED_PG_DIR", BASE_DIR / ".data" / "pg"))
DB_NAME = "tenantdesk"


def _server() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR
        import pgserver

        DATA_DIR.parent.mkdir(parents=True, exist_ok=True)
        return pgserver.get_server(DATA_DIR, cleanup_mode=None)


def _socket_dir(server: Any) -> str:
    # get_uri() is "postgresql://postgres:@/postgres?host=<socket dir>"
    return str(server.get_uri()).split("host=", 1)[1]


def url() -> str:
    """Start the server if needed, create the project database, return its URL."""
    server = _server()
    marker = DATA_DIR / f".created-{DB_NAME}"
    if not marker.exists():
        exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}';")
        if "(1 row)" not in exists:
            server.psql(f'CREATE DATABASE "{DB_NAME}";')
        marker.touch()
    return f"postgres://postgres@{quote(_socket_dir(server), safe='')}/{DB_NAME}"


def stop() -> None:
    pid_file = DATA_DIR / "postmaster.pid"
    if not pid_file.exists():
        return
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

    server = _server()
    pg_ctl(["-w", "stop"], pgdata=DATA_DIR, user=server.system_user)


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "url"
    if command in ("url", "start"):
        print(url())
    elif command == "stop":
        stop()
    elif command == "status":
        print("running" if (DATA_DIR / "postmaster.pid").exists() else "stopped")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
