#!/usr/bin/env python3
"""Multi-node smoke run: a production layout of several machines, on loopback.

    .venv/bin/python scripts/multinode_smoke.py [--keep-tmp]

What it starts (every port free at run time, everything on 127.0.0.1):

* a fresh database ``tenantdesk_multinode_<pid>`` on the PostgreSQL at
  127.0.0.1:5432 (user postgres, trust), behind its own PgBouncer in session
  mode (Debian's package; installed with apt-get when missing and root);
* ``manage.py bootstrap`` once, through PgBouncer, then a platform operator;
* two gunicorn instances, "node A" and "node B" (two machines), with
  production settings (``DJANGO_ENV=production``, JSON logs, one log file and
  one Prometheus multiprocess directory each);
* one Celery worker with an embedded beat, on its own queue
  (``multinode-<pid>``) of Redis database 10; the cache is Redis database 9;
* an SMTP sink (aiosmtpd) in this process;
* nginx (Debian's package) round-robin over the two nodes, standing for the
  TLS-terminating load balancer: it sends ``X-Forwarded-Proto: https``, passes
  or makes ``X-Request-ID`` and names the node that served each response in
  ``X-Upstream``.

Then, through nginx: readiness on both nodes; an operator provisions a tenant
that requires activation; registration, the activation email through the
worker, activation, login; a login on one node refreshed on the other, and
the rotated token refused; a token refused on another tenant; a suspension
seen by both nodes on the very next request; a request id found in the JSON
log of the node that served it (and only there); Prometheus metrics.

Prints one line per step and exits 0 ("multinode smoke passed"), or 1 on the
first failure with the reason and the tail of every log. Whatever happens
(success, failure, Ctrl-C, SIGTERM), it stops what it started, by the process
groups it started, drops its database and deletes its Redis keys.
"""

# ruff: noqa: S603  (runs nginx, pgbouncer, apt-get, manage.py, gunicorn and celery)

from __future__ import annotations

import argparse
import email
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import psycopg
import redis
from aiosmtpd.controller import Controller
from psycopg import sql

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".venv" / "bin" if (REPO / ".venv" / "bin" / "python").exists() else Path(sys.executable).parent
LOOPBACK = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
REDIS_PORT = 6379
CACHE_DB = 9  # REDIS_URL: cache, throttles, host -> tenant cache
BROKER_DB = 10  # CELERY_BROKER_URL
BASE = "localhost"  # TENANT_BASE_DOMAIN: the public host; tenants on <slug>.localhost
BUDGET = 175.0  # seconds: every wait is cut to what is left of it
TAIL = 40  # log lines shown per log on failure


class Failure(Exception):
    """A check failed: the message says which and what was seen."""


class Interrupted(BaseException):
    """SIGTERM or SIGHUP: cleaned up like Ctrl-C."""


STARTED = time.monotonic()


def remaining() -> float:
    return BUDGET - (time.monotonic() - STARTED)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.2) -> Any:
    timeout = min(timeout, max(remaining(), 1.0))
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise Failure(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((LOOPBACK, port)) == 0


# --- steps ---------------------------------------------------------------------------------


@contextmanager
def step(label: str, kind: str = "step") -> Iterator[list[str]]:
    """Prints ``[kind] label ... ok (details)``; the block appends its details."""
    print(f"[{kind}] {label} ...", end="", flush=True)
    details: list[str] = []
    started = time.monotonic()
    try:
        yield details
    except (KeyboardInterrupt, Interrupted):
        print(" interrupted", flush=True)
        raise
    except BaseException:
        print(" FAILED", flush=True)
        raise
    took = time.monotonic() - started
    extra = "; ".join(details)
    print(f" ok ({extra + ', ' if extra else ''}{took:.1f} s)", flush=True)


# --- processes -------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        # Its own session (start_new_session): the group id is the leader's pid,
        # kept by the kernel while any member lives.
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def stop_all(procs: list[Proc], timeout: float = 12.0) -> None:
    """SIGTERM to every group, then SIGKILL to what is left after ``timeout``."""
    for proc in procs:
        proc.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        with suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=max(deadline - time.monotonic(), 0.1))
    for proc in procs:
        # Also when the leader is gone: its workers may not be.
        proc.signal_group(signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=5)


# --- SMTP sink (the few lines of tests/processes.py's SmtpSink it needs) ----------------------


@dataclass
class SmtpSink:
    port: int = field(default_factory=free_port)
    messages: list[Message] = field(default_factory=list)
    _controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted"

    def start(self) -> SmtpSink:
        self._controller = Controller(self, hostname=LOOPBACK, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            with suppress(Exception):
                self._controller.stop()
            self._controller = None

    def to(self, address: str) -> list[Message]:
        return [m for m in list(self.messages) if address in str(m["To"])]


def text_of(message: Message) -> str:
    parts = message.walk() if message.is_multipart() else [message]
    for part in parts:
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload.decode(part.get_content_charset() or "utf-8", errors="replace")
    return ""


# --- HTTP through nginx ------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is an answer to check, not to follow


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


@dataclass
class Response:
    method: str
    url: str
    host: str
    status: int
    headers: dict[str, str]
    body: bytes
    node: str

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            raise Failure(f"{self.describe()}: the body is not JSON") from None

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    def describe(self) -> str:
        text = self.body[:400].decode(errors="replace")
        return f"{self.method} http://{self.host}{self.url} -> {self.status} (node {self.node}): {text}"


def request_parts(
    host: str, body: Any = None, token: str | None = None, headers: dict[str, str] | None = None
) -> tuple[dict[str, str], bytes | None]:
    """The headers and body of a JSON API request to ``host``, with a bearer token if any."""
    sent = {"Host": host, "Accept": "application/json", **(headers or {})}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
    if token:
        sent["Authorization"] = f"Bearer {token}"
    return sent, data


def http(
    port: int,
    method: str,
    path: str,
    *,
    host: str,
    body: Any = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    nodes: dict[str, str] | None = None,
) -> Response:
    sent, data = request_parts(host, body, token, headers)
    request = urllib.request.Request(f"http://{LOOPBACK}:{port}{path}", data=data, method=method, headers=sent)
    try:
        with _OPENER.open(request, timeout=30) as answer:
            status, got, raw = answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as error:
        status, got, raw = error.code, error.headers, error.read()
    except (urllib.error.URLError, OSError) as error:
        raise Failure(f"{method} http://{host}{path} (port {port}): no answer: {error}") from None
    flat = {k.lower(): v for k, v in got.items()}
    upstream = flat.get("x-upstream", "")
    node = (nodes or {}).get(upstream, upstream or "-")
    return Response(method, path, host, status, flat, raw, node)


# --- the run ---------------------------------------------------------------------------------------


def ensure_packages() -> tuple[str, str]:
    """/usr/sbin/nginx and /usr/sbin/pgbouncer, from Debian's packages when missing."""
    nginx, pgbouncer = "/usr/sbin/nginx", "/usr/sbin/pgbouncer"
    if Path(nginx).exists() and Path(pgbouncer).exists():
        return nginx, pgbouncer
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Failure("nginx or pgbouncer is missing: apt-get install -y nginx pgbouncer (as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "nginx", "pgbouncer"]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            raise Failure(f"{' '.join(argv)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    if not (Path(nginx).exists() and Path(pgbouncer).exists()):
        raise Failure("apt-get install nginx pgbouncer did not provide /usr/sbin/nginx and /usr/sbin/pgbouncer")
    return nginx, pgbouncer


NGINX_CONF = """\
# The load balancer of this run: TLS would end here (X-Forwarded-Proto https),
# round robin over the two nodes. Proxy settings from deploy/nginx.conf.
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 256; }}

http {{
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;

    upstream tenantdesk_web {{
        server {loopback}:{port_a};   # node A
        server {loopback}:{port_b};   # node B
    }}

    map $http_x_request_id $req_id {{
        default $http_x_request_id;
        ""      $request_id;
    }}

    log_format tenantdesk_json escape=json
        '{{"time":"$time_iso8601","request_id":"$req_id","remote_addr":"$remote_addr",'
        '"host":"$host","method":"$request_method","uri":"$request_uri","status":$status,'
        '"bytes":$body_bytes_sent,"request_time":$request_time,'
        '"upstream":"$upstream_addr","upstream_time":"$upstream_response_time"}}';

    server {{
        listen {loopback}:{port} default_server;
        server_name {base} *.{base};
        server_tokens off;
        access_log {prefix}/access.log tenantdesk_json;

        client_max_body_size  1m;
        client_header_timeout 15s;
        client_body_timeout   15s;
        send_timeout          30s;
        keepalive_timeout     65s;

        location / {{
            proxy_pass http://tenantdesk_web;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Request-ID $req_id;
            # One node per request, named: a failing node shows as a 502, not
            # as a silent retry on the other one.
            proxy_next_upstream off;
            add_header X-Upstream $upstream_addr always;

            proxy_connect_timeout 5s;
            proxy_send_timeout    35s;
            proxy_read_timeout    35s;
        }}
    }}
}}
"""

PGBOUNCER_INI = """\
[databases]
{db} = host={loopback} port={pg_port} dbname={db}

[pgbouncer]
listen_addr = {loopback}
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {prefix}/userlist.txt
; django-tenants sets search_path per session: session mode only, never transaction.
pool_mode = session
server_reset_query = DISCARD ALL
; as deploy/k8s/pgbouncer.yaml: PostgreSQL away, clients wait 10 s at most; logins retried every 2 s
query_wait_timeout = 10
server_login_retry = 2
max_client_conn = 200
default_pool_size = 40
ignore_startup_parameters = extra_float_digits
admin_users = {user}
logfile =
pidfile =
"""

OPERATOR_CODE = """\
import os
from tenants.db import connection
from accounts import services
connection.set_schema_to_public()
services.user_create(
    email=os.environ["SMOKE_OPERATOR_EMAIL"], username="operator",
    password=os.environ["SMOKE_OPERATOR_PASSWORD"], is_staff=True, is_superuser=True,
)
print("operator created")
"""


# For runs that load the layout from one address (scripts/faults.py,
# bench/isolation.py): limits no load reaches; the throttles still count.
LOAD_THROTTLES = {
    "THROTTLE_LOGIN_IP": "1000000/min",
    "THROTTLE_LOGIN_ACCOUNT": "1000000/min",
    "THROTTLE_REGISTER_IP": "1000000/hour",
    "THROTTLE_RESET_IP": "1000000/hour",
    "THROTTLE_RESET_ACCOUNT": "1000000/hour",
}


class Run:
    def __init__(self, keep_tmp: bool, *, pg_port: int = PG_PORT, redis_port: int = REDIS_PORT) -> None:
        self.pid = os.getpid()
        self.keep_tmp = keep_tmp
        # Where PostgreSQL and Redis listen (scripts/faults.py runs its own of both).
        self.pg_port = pg_port
        self.redis_port = redis_port
        self.tmp = Path(tempfile.mkdtemp(prefix=f"multinode-smoke-{self.pid}-"))
        self.db = f"tenantdesk_multinode_{self.pid}"
        self.db_created = False
        self.queue = f"multinode-{self.pid}"
        self.procs: list[Proc] = []
        self.sink: SmtpSink | None = None
        self.redis_before: dict[int, set[bytes]] = {}
        self.logs: dict[str, Path] = {}
        self.nodes: dict[str, str] = {}  # "127.0.0.1:port" -> "A" / "B"
        self.node_ports: dict[str, int] = {}
        self.nginx_port = 0
        self.pgbouncer_port = 0
        self.requests = 0
        self.served: Counter[str] = Counter()
        self.direct = 0
        self.secret_key = secrets.token_urlsafe(50)
        self.metrics_token = secrets.token_urlsafe(32)
        self.operator_email = "operator@example.com"
        self.operator_password = "Op-" + secrets.token_urlsafe(18)

    # --- helpers ---

    def env(self, **extra: str) -> dict[str, str]:
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
        env = {k: os.environ[k] for k in keep if k in os.environ}
        env.update(
            PYTHONUNBUFFERED="1",
            DJANGO_SETTINGS_MODULE="config.settings",
            DJANGO_ENV="production",
            SECRET_KEY=self.secret_key,
            TENANT_BASE_DOMAIN=BASE,
            BEHIND_TLS_PROXY="true",
            NUM_PROXIES="1",
            PUBLIC_SCHEME="https",
            PUBLIC_PORT="443",
            LOG_FORMAT="json",
            METRICS_TOKEN=self.metrics_token,
            EMAIL_URL=f"smtp://{LOOPBACK}:{self.sink.port if self.sink else 25}",
            DEFAULT_FROM_EMAIL=f"no-reply@{BASE}",
            DATABASE_URL=f"postgres://{PG_USER}@{LOOPBACK}:{self.pgbouncer_port}/{self.db}",
            REDIS_URL=f"redis://{LOOPBACK}:{self.redis_port}/{CACHE_DB}",
            CELERY_BROKER_URL=f"redis://{LOOPBACK}:{self.redis_port}/{BROKER_DB}",
            CELERY_QUEUE=self.queue,
        )
        env.update(extra)
        return env

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Proc:
        log = self.tmp / f"{name}.log"
        self.logs[name] = log
        with log.open("wb") as out:
            popen = subprocess.Popen(
                argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def manage(self, name: str, *args: str, timeout: float, env: dict[str, str] | None = None) -> str:
        """``manage.py args`` to its end, in its own process group; its output."""
        proc = self.start(name, [str(BIN / "python"), "manage.py", *args], env or self.env())
        try:
            proc.popen.wait(timeout=min(timeout, max(remaining(), 5.0)))
        except subprocess.TimeoutExpired:
            raise Failure(f"manage.py {args[0]} did not finish in {timeout:.0f} s") from None
        finally:
            stop_all([proc], timeout=5)
            self.procs.remove(proc)
        if proc.popen.returncode != 0:
            raise Failure(f"manage.py {args[0]} exited {proc.popen.returncode}:\n{proc.output()[-3000:]}")
        return proc.output()

    def provision(self, slug: str, name: str, *, require_activation: bool) -> Response:
        """A tenant through the platform API, as the operator."""
        return self.call(
            "POST",
            "/api/platform/tenants/",
            host=BASE,
            token=self.operator,
            body={
                "slug": slug,
                "name": name,
                "admin_email": f"boss@{slug}.test",
                "admin_password": "Adm-" + secrets.token_urlsafe(12),
                "require_activation": require_activation,
            },
            expect=201,
            what=f"provision {slug}",
        )

    def call(
        self,
        method: str,
        path: str,
        *,
        host: str,
        expect: int | None = None,
        what: str = "",
        **kwargs: Any,
    ) -> Response:
        response = http(self.nginx_port, method, path, host=host, nodes=self.nodes, **kwargs)
        self.requests += 1
        self.served[response.node] += 1
        if response.node not in ("A", "B"):
            raise Failure(f"{what or path}: no node named in X-Upstream: {response.describe()}")
        if expect is not None and response.status != expect:
            raise Failure(f"{what or path}: expected {expect}, got {response.describe()}")
        return response

    def tenant_host(self, slug: str) -> str:
        return f"{slug}.{BASE}"

    # --- set-up ---

    def setup(self) -> None:
        with step("nginx and pgbouncer (Debian's packages)", "setup") as d:
            self.nginx_bin, self.pgbouncer_bin = ensure_packages()
            d.append(f"{self.nginx_bin}, {self.pgbouncer_bin}")
        # pgbouncer (as root) and nginx's workers run as nobody: they must reach
        # their own directories, and only those.
        self.tmp.chmod(0o711)

        with step(f"database {self.db} on {LOOPBACK}:{self.pg_port}", "setup"):
            with self.admin_db() as conn:
                try:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.db)))
                except psycopg.errors.DuplicateDatabase:
                    raise Failure(
                        f"database {self.db} already exists (left by a killed run with this pid?): "
                        f"psql -h {LOOPBACK} -U {PG_USER} -c 'DROP DATABASE {self.db} WITH (FORCE)'"
                    ) from None
            self.db_created = True

        self.snapshot_redis()
        with step("SMTP sink", "setup") as d:
            self.sink = SmtpSink().start()
            d.append(f"port {self.sink.port}")

        with step("pgbouncer in session mode", "setup") as d:
            self.start_pgbouncer()
            d.append(f"port {self.pgbouncer_port}")

        with step("manage.py bootstrap through pgbouncer", "setup"):
            self.manage("bootstrap", "bootstrap", timeout=120)

        with step("platform operator (accounts.services.user_create, public schema)", "setup") as d:
            env = self.env(SMOKE_OPERATOR_EMAIL=self.operator_email, SMOKE_OPERATOR_PASSWORD=self.operator_password)
            out = self.manage("operator", "shell", "-c", OPERATOR_CODE, timeout=60, env=env)
            if "operator created" not in out:
                raise Failure(f"operator not created:\n{out[-2000:]}")
            d.append(self.operator_email)

        with step("node A and node B (gunicorn, 2 workers each, production settings)", "setup") as d:
            for name in ("A", "B"):
                self.start_node(name)
            for name in ("A", "B"):
                self.wait_node(name)
            d.append(", ".join(f"{n} on :{p}" for n, p in self.node_ports.items()))

        with step(f"Celery worker with beat, queue {self.queue}", "setup"):
            self.start_worker()

        with step("nginx round robin over both nodes", "setup") as d:
            self.start_nginx()
            d.append(f"port {self.nginx_port}")

    @contextmanager
    def admin_db(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            conn = psycopg.connect(
                host=LOOPBACK, port=self.pg_port, user=PG_USER, dbname="postgres", autocommit=True, connect_timeout=5
            )
        except psycopg.Error as error:
            raise Failure(f"PostgreSQL at {LOOPBACK}:{self.pg_port} (user {PG_USER}): {error}") from None
        with conn:
            yield conn

    def snapshot_redis(self) -> None:
        """Keys present before the run: only the others are ours to delete."""
        try:
            for db in (CACHE_DB, BROKER_DB):
                client = redis.Redis(host=LOOPBACK, port=self.redis_port, db=db, socket_timeout=5)
                self.redis_before[db] = set(client.scan_iter(count=1000))
                client.close()
        except redis.RedisError as error:
            raise Failure(f"Redis at {LOOPBACK}:{self.redis_port}: {error}") from None

    def start_pgbouncer(self) -> None:
        prefix = self.tmp / "pgbouncer"
        prefix.mkdir(mode=0o755)
        prefix.chmod(0o755)
        self.pgbouncer_port = free_port()
        ini = prefix / "pgbouncer.ini"
        ini.write_text(
            PGBOUNCER_INI.format(
                db=self.db,
                loopback=LOOPBACK,
                pg_port=self.pg_port,
                port=self.pgbouncer_port,
                prefix=prefix,
                user=PG_USER,
            )
        )
        (prefix / "userlist.txt").write_text(f'"{PG_USER}" ""\n')
        for path in (ini, prefix / "userlist.txt"):
            path.chmod(0o644)
        argv = [self.pgbouncer_bin]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]  # "PgBouncer should not run as root"
        proc = self.start("pgbouncer", [*argv, str(ini)], os.environ.copy())

        def up() -> bool:
            if not proc.alive():
                raise Failure(f"pgbouncer exited:\n{proc.output()[-2000:]}")
            return port_open(self.pgbouncer_port)

        wait_for(up, timeout=15, what="pgbouncer to listen")
        url = f"postgres://{PG_USER}@{LOOPBACK}:{self.pgbouncer_port}/{self.db}"
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")

    def pgbouncer_show(self, what: str) -> dict[str, Any]:
        """``SHOW POOLS`` or ``SHOW STATS`` on pgbouncer's admin console (simple query
        protocol: a client-side cursor), the row of this run's database."""
        url = f"postgres://{PG_USER}@{LOOPBACK}:{self.pgbouncer_port}/pgbouncer"
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
                cursor = psycopg.ClientCursor(conn)
                cursor.execute(f"SHOW {what}")
                names = [c.name for c in cursor.description or []]
                for row in cursor.fetchall():
                    found = dict(zip(names, row, strict=True))
                    if found.get("database") == self.db:
                        return found
        except psycopg.Error as error:
            raise Failure(f"pgbouncer's admin console: SHOW {what}: {error}") from None
        return {}

    def start_node(self, name: str) -> None:
        port = free_port()
        prom = self.tmp / f"prometheus-{name.lower()}"
        env = self.env(PORT=str(port), PROMETHEUS_MULTIPROC_DIR=str(prom))
        argv = [str(BIN / "gunicorn"), "config.wsgi", "-c", "deploy/gunicorn.conf.py"]
        argv += ["--bind", f"{LOOPBACK}:{port}", "--workers", "2"]
        self.start(f"node-{name.lower()}", argv, env)
        self.nodes[f"{LOOPBACK}:{port}"] = name
        self.node_ports[name] = port

    def wait_node(self, name: str) -> None:
        port = self.node_ports[name]
        proc = next(p for p in self.procs if p.name == f"node-{name.lower()}")

        def up() -> bool:
            if not proc.alive():
                raise Failure(f"node {name} (gunicorn) exited:\n{proc.output()[-3000:]}")
            if not port_open(port):
                return False
            self.direct += 1
            # Liveness on a host that is not the product's: answered before routing.
            return http(port, "GET", "/api/health/", host=LOOPBACK).status == 200

        wait_for(up, timeout=60, what=f"node {name} to answer", interval=0.3)

    def start_worker(self) -> None:
        argv = [str(BIN / "celery"), "-A", "config", "worker", "-B", "--loglevel=INFO", "--pool=prefork"]
        argv += ["--concurrency=2", "-Q", self.queue, f"--schedule={self.tmp / 'beat'}"]
        argv += ["-n", f"{self.queue}@%h", "--without-mingle", "--without-gossip"]
        proc = self.start("worker", argv, self.env())

        def ready() -> bool:
            if not proc.alive():
                raise Failure(f"the worker exited:\n{proc.output()[-3000:]}")
            return "ready." in proc.output()

        wait_for(ready, timeout=60, what="the worker to be ready", interval=0.3)

    def start_nginx(self) -> None:
        prefix = self.tmp / "nginx"
        prefix.mkdir(mode=0o755)
        prefix.chmod(0o755)
        self.nginx_port = free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                prefix=prefix,
                loopback=LOOPBACK,
                port=self.nginx_port,
                port_a=self.node_ports["A"],
                port_b=self.node_ports["B"],
                base=BASE,
            )
        )
        self.logs["nginx-error"] = prefix / "error.log"
        self.logs["nginx-access"] = prefix / "access.log"
        base_argv = [self.nginx_bin, "-c", str(conf), "-p", str(prefix), "-e", str(prefix / "error.log")]
        test = subprocess.run([*base_argv, "-t"], capture_output=True, text=True, timeout=30, check=False)
        if test.returncode != 0:
            raise Failure(f"nginx -t refused the configuration:\n{test.stdout}{test.stderr}")
        proc = self.start("nginx", base_argv, os.environ.copy())

        def up() -> bool:
            if not proc.alive():
                raise Failure(f"nginx exited:\n{proc.output()[-2000:]}")
            return port_open(self.nginx_port)

        wait_for(up, timeout=15, what="nginx to listen")

    # --- the steps ---

    def steps(self) -> None:
        self.step_ready()
        self.step_operator()
        self.step_registration()
        self.step_refresh_across_nodes()
        self.step_cross_tenant()
        self.step_suspension()
        self.step_request_id()
        self.step_metrics()
        self.step_pgbouncer()

    def both_nodes(self, send: Callable[[int], Response], *, limit: int = 6) -> list[Response]:
        """Calls ``send(i)`` until each node has answered at least once; returns every response."""
        seen: list[Response] = []
        for i in range(limit):
            seen.append(send(i))
            if {r.node for r in seen} >= {"A", "B"}:
                return seen
        raise Failure(f"{limit} requests never reached both nodes: {[r.node for r in seen]}")

    def step_ready(self) -> None:
        with step("readiness through nginx: database, cache, tenant_cache, broker ok on both nodes") as d:

            def ready(_: int) -> Response:
                r = self.call("GET", "/api/health/ready/", host=BASE, expect=200, what="readiness")
                checks = r.json().get("checks", {})
                for name in ("database", "cache", "tenant_cache", "broker"):
                    if checks.get(name) != "ok":
                        raise Failure(f"readiness on node {r.node}: {name} is {checks.get(name)!r}: {checks}")
                return r

            d.append("nodes " + " ".join(r.node for r in self.both_nodes(ready)))
            # Production settings are live: without the proxy's X-Forwarded-Proto, HTTPS is required.
            self.direct += 1
            r = http(self.node_ports["A"], "GET", "/api/platform/tenants/", host=BASE)
            if r.status != 301 or not r.header("Location").startswith(f"https://{BASE}/"):
                raise Failure(f"node A without X-Forwarded-Proto should redirect to https: {r.describe()}")
            d.append("plain HTTP straight to a node: 301 to https")

    def step_operator(self) -> None:
        self.slug = f"smoke-{self.pid}"
        self.host = self.tenant_host(self.slug)
        with step(f"operator logs in on {BASE} and provisions {self.slug} (require_activation)") as d:
            r = self.call(
                "POST",
                "/api/auth/jwt/create/",
                host=BASE,
                body={"email": self.operator_email, "password": self.operator_password},
                expect=200,
                what="operator login",
            )
            self.operator = r.json()["access"]
            tenant = self.provision(self.slug, "Multinode smoke", require_activation=True).json()
            if tenant.get("domains") != [self.host] or tenant.get("require_activation") is not True:
                raise Failure(f"provisioned tenant: unexpected {tenant}")
            self.schema = str(tenant["schema_name"])
            d.append(f"schema {self.schema}, domain {self.host}")

    def step_registration(self) -> None:
        self.user_email = f"user-{self.pid}@{self.slug}.test"
        self.user_password = "Usr-" + secrets.token_urlsafe(12)
        login = {"email": self.user_email, "password": self.user_password}
        with step("registration on the tenant host, activation email through the worker, activation, login") as d:
            reg_id = f"smoke-reg-{uuid.uuid4()}"
            r = self.call(
                "POST",
                "/api/auth/users/",
                host=self.host,
                body={"username": f"user{self.pid}", "email": self.user_email, "password": self.user_password},
                headers={"X-Request-ID": reg_id},
                expect=201,
                what="registration",
            )
            d.append(f"registered on node {r.node}")
            self.call(
                "POST", "/api/auth/jwt/create/", host=self.host, body=login, expect=401, what="login before activation"
            )
            assert self.sink is not None
            sink = self.sink
            message = wait_for(
                lambda: next(iter(sink.to(self.user_email)), None), timeout=60, what="the activation email"
            )
            body = text_of(message)
            link = re.search(r"(\S+)/activate/([^/\s]+)/([^/\s]+)", body)
            if not link:
                raise Failure(f"no activation link in the email:\n{body}")
            if link.group(1) != f"https://{self.host}":
                raise Failure(f"activation link should be on https://{self.host}: {link.group(0)}")
            if message["X-Request-ID"] != reg_id:
                raise Failure(f"the email's X-Request-ID is {message['X-Request-ID']!r}, not the registration's")
            d.append("email received, X-Request-ID of the registration")
            uid, token = link.group(2), link.group(3)
            self.call(
                "POST",
                "/api/auth/users/activation/",
                host=self.host,
                body={"uid": uid, "token": token},
                expect=204,
                what="activation",
            )
            r = self.call("POST", "/api/auth/jwt/create/", host=self.host, body=login, expect=200, what="login")
            self.access = r.json()["access"]
            wait_for(
                lambda: reg_id in self.logs["worker"].read_text(errors="replace"),
                timeout=10,
                what=f"a line of the worker's log with the registration's request id {reg_id}",
            )
            d.append("the worker's log carries its request id")

    def step_refresh_across_nodes(self) -> None:
        with step("login on one node, refresh on the other, the rotated token refused") as d:
            login = {"email": self.user_email, "password": self.user_password}
            r = self.call("POST", "/api/auth/jwt/create/", host=self.host, body=login, expect=200, what="login")
            login_node, refresh = r.node, r.json()["refresh"]
            for _ in range(4):
                r = self.call("POST", "/api/auth/jwt/refresh/", host=self.host, body={"refresh": refresh}, expect=200)
                old, refresh = refresh, r.json()["refresh"]
                if not r.json().get("access") or refresh == old:
                    raise Failure(f"refresh did not rotate: {r.describe()}")
                if r.node != login_node:
                    break
            else:
                raise Failure(f"four refreshes never reached the node other than {login_node}")
            d.append(f"login on {login_node}, refreshed on {r.node}")
            r = self.call(
                "POST",
                "/api/auth/jwt/refresh/",
                host=self.host,
                body={"refresh": old},
                expect=401,
                what="replay of the rotated refresh token",
            )
            d.append(f"replay refused on {r.node}")
            r = self.call(
                "POST",
                "/api/auth/jwt/refresh/",
                host=self.host,
                body={"refresh": refresh},
                expect=401,
                what="successor after a replay",
            )
            d.append(f"its successor refused on {r.node}")

    def step_cross_tenant(self) -> None:
        self.slug_b = f"smoke-{self.pid}-b"
        host_b = self.tenant_host(self.slug_b)
        with step(f"a second tenant {self.slug_b}; {self.slug}'s token refused there") as d:
            self.provision(self.slug_b, "Multinode smoke B", require_activation=False)
            r = self.call("GET", "/api/auth/users/me/", host=self.host, token=self.access, expect=200, what="own host")
            if r.json().get("email") != self.user_email:
                raise Failure(f"users/me/ is someone else: {r.describe()}")
            r = self.call(
                "GET", "/api/auth/users/me/", host=host_b, token=self.access, expect=401, what="token on another tenant"
            )
            d.append(f"200 on its own host, 401 on {host_b} (node {r.node})")

    def step_suspension(self) -> None:
        with step(f"suspend {self.slug}: the very next request, and every one, refused on both nodes") as d:
            r = self.call(
                "PATCH",
                f"/api/platform/tenants/{self.slug}/",
                host=BASE,
                token=self.operator,
                body={"is_active": False},
                expect=200,
                what="suspend",
            )
            if r.json().get("is_active") is not False:
                raise Failure(f"suspend: {r.describe()}")
            patched_on = r.node

            def refused(i: int) -> Response:
                path = "/api/auth/users/me/" if i % 2 == 0 else "/api/health/"
                r = self.call("GET", path, host=self.host, token=self.access, expect=403, what=f"suspended {path}")
                if r.json().get("code") != "tenant_suspended":
                    raise Failure(f"suspended tenant: expected code tenant_suspended: {r.describe()}")
                return r

            seen = self.both_nodes(refused)
            d.append(f"PATCH on {patched_on}, then 403 on " + " ".join(r.node for r in seen))

            self.call(
                "PATCH",
                f"/api/platform/tenants/{self.slug}/",
                host=BASE,
                token=self.operator,
                body={"is_active": True},
                expect=200,
                what="re-activate",
            )

            def served(_: int) -> Response:
                return self.call(
                    "GET", "/api/auth/users/me/", host=self.host, token=self.access, expect=200, what="re-activated"
                )

            d.append("re-activated: 200 on " + " ".join(r.node for r in self.both_nodes(served)))

    def step_request_id(self) -> None:
        with step("request id: echoed, in the serving node's JSON log only, and in nginx's log") as d:
            rid = f"smoke-{uuid.uuid4()}"
            r = self.call(
                "GET",
                "/api/auth/users/me/",
                host=self.host,
                token=self.access,
                headers={"X-Request-ID": rid},
                expect=200,
                what="request with an id",
            )
            if r.header("X-Request-ID") != rid:
                raise Failure(f"X-Request-ID sent {rid}, got back {r.header('X-Request-ID')!r}")
            node, other = r.node, "B" if r.node == "A" else "A"
            log, other_log = self.logs[f"node-{node.lower()}"], self.logs[f"node-{other.lower()}"]

            def finished() -> dict[str, Any] | None:
                for line in log.read_text(errors="replace").splitlines():
                    if rid not in line:
                        continue
                    with suppress(ValueError):
                        entry = json.loads(line)
                        if entry.get("event") == "request_finished" and entry.get("request_id") == rid:
                            return dict(entry)
                return None

            entry = wait_for(finished, timeout=10, what=f"request_finished with {rid} in node {node}'s log")
            want = {"tenant": self.schema, "method": "GET", "path": "/api/auth/users/me/", "status": 200}
            wrong = {k: entry.get(k) for k, v in want.items() if entry.get(k) != v}
            if wrong or not isinstance(entry.get("duration_ms"), int | float):
                raise Failure(f"request_finished line: expected {want} and a duration_ms, got {entry}")
            if rid in other_log.read_text(errors="replace"):
                raise Failure(f"node {other}'s log also mentions {rid}")
            d.append(f"node {node}: tenant {entry['tenant']}, {entry['duration_ms']} ms; not in node {other}'s log")

            def in_access_log() -> bool:
                for line in self.logs["nginx-access"].read_text(errors="replace").splitlines():
                    with suppress(ValueError):
                        entry = json.loads(line)
                        if entry.get("request_id") == rid:
                            return bool(self.nodes.get(entry.get("upstream", "")) == node)
                return False

            wait_for(in_access_log, timeout=5, what=f"{rid} in nginx's access log, upstream node {node}")
            r = self.call("GET", "/api/health/", host=self.host, expect=200, what="request without an id")
            made = r.header("X-Request-ID")
            if not re.fullmatch(r"[0-9a-f]{32}", made):
                raise Failure(f"without X-Request-ID, nginx's $request_id should come back, got {made!r}")
            d.append("without one, nginx's id comes back")

    def step_metrics(self) -> None:
        with step("metrics: 200 with the token (through nginx and on each node), 404 without") as d:
            r = self.call(
                "GET", "/api/metrics/", host=BASE, headers={"Authorization": f"Bearer {self.metrics_token}"}, expect=200
            )
            text = r.body.decode(errors="replace")
            for name in ("tenantdesk_http_request_duration_seconds", "tenantdesk_outbox_emails"):
                if name not in text:
                    raise Failure(f"metrics (node {r.node}) lack {name}")
            sent = re.search(r'^tenantdesk_outbox_emails\{status="sent"\} (\S+)$', text, re.MULTILINE)
            if not sent or float(sent.group(1)) < 1:
                raise Failure(f"metrics: no sent email in tenantdesk_outbox_emails: {sent and sent.group(0)}")
            d.append(f"node {r.node}, outbox sent {float(sent.group(1)):g}")
            r = self.call("GET", "/api/metrics/", host=BASE, expect=404, what="metrics without the token")
            d.append(f"404 without (node {r.node})")
            for name, port in self.node_ports.items():
                self.direct += 1
                r = http(port, "GET", "/api/metrics/", host=BASE, token=self.metrics_token)
                if r.status != 200 or b"tenantdesk_http_request_duration_seconds" not in r.body:
                    raise Failure(f"scrape of node {name} directly: {r.describe()}")
            d.append("each node scraped directly")

    def step_pgbouncer(self) -> None:
        with step("pgbouncer carried the run's queries, in session mode") as d:
            pool, stats = self.pgbouncer_show("POOLS"), self.pgbouncer_show("STATS")
            if pool.get("pool_mode") != "session":
                raise Failure(f"pgbouncer's pool for {self.db} is not in session mode: {pool}")
            if not int(stats.get("total_query_count") or 0):
                raise Failure(f"pgbouncer counted no query for {self.db}: {stats}")
            d.append(
                f"{stats['total_query_count']} queries, {stats.get('total_xact_count')} transactions; "
                f"now {pool.get('cl_active')} clients on {pool.get('sv_active')} server connections"
            )

    # --- failure and cleanup ---

    def show_logs(self) -> None:
        order = ["node-a", "node-b", "worker", "nginx-error", "nginx-access", "pgbouncer", "bootstrap", "operator"]
        names = sorted(self.logs, key=lambda n: order.index(n) if n in order else len(order))
        for name in names:
            path = self.logs[name]
            lines = path.read_text(errors="replace").splitlines()[-TAIL:] if path.exists() else []
            if not lines:
                continue
            print(f"\n----- {name}: last {len(lines)} lines of {path.name} -----", file=sys.stderr)
            for line in lines:
                print(line[:2000], file=sys.stderr)
        sys.stderr.flush()

    def cleanup(self) -> list[str]:
        problems: list[str] = []
        stop_all([p for p in self.procs if p.name != "pgbouncer"])
        stop_all([p for p in self.procs if p.name == "pgbouncer"], timeout=5)
        still = [p.name for p in self.procs if p.alive()]
        if still:
            problems.append(f"still running: {', '.join(still)}")
        if self.sink is not None:
            self.sink.stop()
        if self.db_created:
            try:
                with self.admin_db() as conn:
                    conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = %s AND pid <> pg_backend_pid()",
                        [self.db],
                    )
                    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.db)))
            except (Failure, psycopg.Error) as error:
                problems.append(f"could not drop database {self.db}: {error}")
        problems += self.clean_redis()
        if self.keep_tmp:
            print(f"[cleanup] logs and configuration kept in {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return problems

    def clean_redis(self) -> list[str]:
        """Keys that appeared during the run (the databases are this script's own),
        and in the broker's, those of this run's queue only."""
        if not self.redis_before:
            return []
        try:
            deleted = 0
            for db, before in self.redis_before.items():
                client = redis.Redis(host=LOOPBACK, port=self.redis_port, db=db, socket_timeout=5)
                ours = [k for k in client.scan_iter(count=1000) if k not in before]
                if db == BROKER_DB:  # the run's queue, and kombu's bookkeeping it created
                    ours = [k for k in ours if self.queue.encode() in k or k.startswith(b"_kombu.")]
                ours += [k for k in client.scan_iter(match=f"*{self.queue}*", count=1000) if k not in ours]
                for i in range(0, len(ours), 500):
                    deleted += int(client.delete(*ours[i : i + 500]))
                client.close()
        except redis.RedisError as error:
            return [f"could not delete the run's Redis keys: {error}"]
        return []


def guarded(run: Run, title: str, body: Callable[[], int], *, finally_: Callable[[], None] | None = None) -> int:
    """``body()``'s exit status, with what every run of this layout needs
    around it (this script's, scripts/faults.py's, bench/isolation.py's):
    SIGTERM and SIGHUP stop it as Ctrl-C does (130); a ``Failure`` or any
    other error prints ``title`` FAILED and the logs (1); and whatever
    happens, ``finally_()`` then the run's clean-up, which no second signal
    interrupts. A clean-up problem makes a passing run fail."""

    def interrupted(signum: int, frame: Any) -> None:
        raise Interrupted(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)
    os.chdir(REPO)
    code = 0
    try:
        code = body()
    except Failure as failure:
        print(f"\n{title} FAILED: {failure}", file=sys.stderr, flush=True)
        run.show_logs()
        print(f"\n{title} FAILED: {failure}", file=sys.stderr, flush=True)
        if not run.keep_tmp:
            print("(the logs above are tails; --keep-tmp keeps them whole)", file=sys.stderr)
        code = 1
    except (KeyboardInterrupt, Interrupted) as stop:
        print(f"\ninterrupted ({str(stop) or 'SIGINT'}): cleaning up", file=sys.stderr, flush=True)
        code = 130
    except Exception:
        print(f"\n{title} FAILED with an unexpected error:", file=sys.stderr, flush=True)
        traceback.print_exc()
        run.show_logs()
        code = 1
    finally:
        if finally_ is not None:
            finally_()
        # No second interruption in the middle of the clean-up (it is bounded: ~30 s at most).
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        problems = run.cleanup()
        for problem in problems:
            print(f"[cleanup] {problem}", file=sys.stderr)
        if problems and code == 0:
            code = 1
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (logs, configs)")
    args = parser.parse_args()
    run = Run(keep_tmp=args.keep_tmp)

    def body() -> int:
        run.setup()
        run.steps()
        return 0

    code = guarded(run, "MULTINODE SMOKE", body)
    if code == 0:
        elapsed = time.monotonic() - STARTED
        per_node = ", ".join(f"node {n}: {run.served[n]}" for n in ("A", "B"))
        print(
            f"\n{run.requests} requests through nginx ({per_node}), {run.direct} straight to the nodes; "
            f"{elapsed:.1f} s\nmultinode smoke passed"
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
