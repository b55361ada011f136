"""An embedded PostgreSQL for development and tests.

When ``DATABASE_URL`` is unset, ``make run`` and ``make test`` use a
PostgreSQL 16 that lives in ``.data/pg`` (the ``pgserver`` wheel ships the
binaries). It listens on a Unix socket only, so it never collides with a
server already bound to 5432, and it keeps running between commands: starting
it again is a no-op.

    python -m devtools.embedded_db url             start if needed, print the URL
    python -m devtools.embedded_db run -- CMD ...  run CMD with DATABASE_URL set
                                                   (kept as it is when already set)
    python -m devtools.embedded_db stop|status
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR
    import pgserver
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("EMBEDDED_PG_DIR", BASE_DIR / ".data" / "pg"))
DB_NAME = "tenantdesk"


def _server() -> Any:
    DATA_DIR.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
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
    if not (DATA_DIR / "postmaster.pid").exists():
        return
    pg_ctl(["-w", "stop"], pgdata=DATA_DIR, user=_server().system_user)


def run(command: list[str]) -> int:
    """Replace this process with ``command``, DATABASE_URL set for it."""
    if not command:
        print("run: give a command after --", file=sys.stderr)
        return 2
    if not os.environ.get("DATABASE_URL"):
        if os.environ.get("DJANGO_ENV") == "production":
            print(
                "DATABASE_URL is not set, and DJANGO_ENV=production never starts the embedded PostgreSQL.",
                file=sys.stderr,
            )
            return 2
        os.environ["DATABASE_URL"] = url()
    os.execvp(command[0], command)  # noqa: S606  (the developer's own command, from the Makefile)


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "url"
    if command in ("url", "start"):
        print(url())
    elif command == "run":
        rest = argv[2:]
        return run(rest[1:] if rest[:1] == ["--"] else rest)
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
