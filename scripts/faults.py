#!/usr/bin/env python3
"""Faults, under load, against production-like processes (issue 12, point 4).

    .venv/bin/python scripts/faults.py [--only NAME[,NAME]] [--keep-tmp] [--list]

Starts what scripts/multinode_smoke.py starts (its helpers, imported), but on
a PostgreSQL cluster and a redis-server of its own, so that it may kill them:

* PostgreSQL 15 (``initdb`` into a temporary directory, run as the postgres
  user, on a free port), PgBouncer in session mode in front of it;
* redis-server on a free port (``--save '' --appendonly no``): cache,
  throttles, host -> tenant cache, and the Celery broker;
* node A (gunicorn, production settings) straight to PostgreSQL, node B
  through PgBouncer, nginx round robin over both; a Celery worker with beat;
  an SMTP sink in this process.

Then each fault, a function of its own (``--only`` picks some):

* ``postgres``: PostgreSQL stopped (immediate: a crash) and started again
  under load. While it is down every request needing it answers 503
  ``{"detail", "code": "database_unavailable"}``; within 10 s of it accepting
  connections again no request fails (persistent connections replaced).
* ``redis``: redis-server killed under load and started again (empty). No
  5xx at all: hosts resolve from the database, throttles count there, emails
  wait in the outbox; once it is back, readiness, caching and the emails of
  the outage return.
* ``provision``: ``manage.py provision_tenant`` killed with SIGKILL at random
  points (anywhere in its life, and inside its transaction): no schema
  without a row, row without a primary domain or schema, schema without its
  admin; the same slug provisions again; ``bootstrap`` ("the next start")
  finds everything consistent.
* ``fleet``: the fleet migration executor killed half-way and rerun:
  tests/tenants/test_fleet.py's kill-and-rerun test, run here on this
  PostgreSQL and Redis.
* ``worker``: the Celery worker killed while sending an email (held in the
  SMTP conversation): its pool process alone (the task is redelivered,
  acks_late) and the whole worker (the sweep sends it once a worker is back).
  Each email arrives, once.

Prints per fault PASS or FAIL with its figures, then a summary; exits 1 on
any FAIL. Bounded: about three minutes, a few hundred requests per fault,
everything on 127.0.0.1. Whatever happens it stops what it started (by the
process groups and the PostgreSQL data directory it made) and deletes its
directories.
"""

# ruff: noqa: S603  (runs initdb, pg_ctl, redis-server, manage.py, pytest, gunicorn and celery)

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
import multinode_smoke as ms

LOOPBACK = ms.LOOPBACK
BASE = ms.BASE
PG_BIN = Path("/usr/lib/postgresql/15/bin")
BUDGET = 330.0  # seconds for the whole run; every wait of multinode_smoke is cut to what is left
ms.BUDGET = BUDGET
RECOVERY_LIMIT = 10.0  # seconds after PostgreSQL is back by which no request may fail
DOWN_SECONDS = 6.0  # how long PostgreSQL and Redis stay away
FAULTS = ("postgres", "redis", "provision", "fleet", "worker")


# --- PostgreSQL and Redis of our own --------------------------------------------------------


class OwnPostgres:
    """A cluster in a temporary directory, run as the postgres user, on a free port."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"faults-pg-{os.getpid()}-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = ms.free_port()
        self.initialised = False

    def _as_postgres(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv

    def _run(self, argv: list[str], timeout: float = 60) -> None:
        done = subprocess.run(self._as_postgres(argv), capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise ms.Failure(f"{' '.join(argv[:2])} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")

    def init(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise ms.Failure(f"{PG_BIN}/initdb is missing (Debian's postgresql-15)")
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
        self.initialised = True

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses={LOOPBACK} -c max_connections=200"
        argv = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", options]
        self._run([*argv, "start"], timeout=90)

    def stop(self, mode: str = "fast") -> None:
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"])

    def accepting(self) -> bool:
        try:
            with psycopg.connect(self.url("postgres"), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def url(self, db: str) -> str:
        return f"postgres://postgres@{LOOPBACK}:{self.port}/{db}"

    def shutdown(self) -> list[str]:
        problems = []
        if self.initialised and (self.data / "postmaster.pid").exists():
            try:
                self.stop("fast")
            except (ms.Failure, subprocess.TimeoutExpired) as error:
                with suppress(ms.Failure, subprocess.TimeoutExpired):
                    self.stop("immediate")
                if (self.data / "postmaster.pid").exists():
                    problems.append(f"PostgreSQL in {self.data} did not stop: {error}")
        if not problems:
            shutil.rmtree(self.root, ignore_errors=True)
        return problems


@dataclass
class HoldingSink(ms.SmtpSink):
    """multinode_smoke's SMTP sink, which can hold the first RCPT of an address
    (the sender is then in the middle of sending) until it is released."""

    hold: set[str] = field(default_factory=set)
    held: dict[str, tuple[str, int]] = field(default_factory=dict)  # address -> the sender's (host, port)
    released: set[str] = field(default_factory=set)
    senders: list[tuple[str, int]] = field(default_factory=list)  # the (host, port) of each message's sender

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.senders.append(tuple(session.peer)[:2])
        return await super().handle_DATA(server, session, envelope)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.hold:
            self.hold.discard(address)  # only the first attempt is held
            self.held[address] = tuple(session.peer)[:2]
            deadline = time.monotonic() + 30
            while address not in self.released and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        envelope.rcpt_tos.append(address)
        return "250 OK"


def pid_of_peer(port: int, group: int) -> int | None:
    """The process of ``group`` owning the loopback TCP socket bound to ``port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with suppress(OSError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(OSError):
            if os.getpgid(int(entry.name)) != group:
                continue
            for fd in (entry / "fd").iterdir():
                with suppress(OSError):
                    link = os.readlink(fd)
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        return int(entry.name)
    return None


# --- load ----------------------------------------------------------------------------------------


@dataclass
class Sample:
    t0: float
    t1: float
    kind: str
    status: int  # 0: no answer
    code: str
    node: str
    shaped: bool  # a non-2xx body is {"detail": str, "code": str, ...}
    wrong: str = ""  # a 2xx whose body is not what it should be

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and not self.wrong

    def label(self) -> str:
        if self.wrong:
            return f"{self.status} wrong body ({self.wrong})"
        return f"{self.status}/{self.code or '-'}" + ("" if self.shaped or self.ok else " (not the error shape)")


@dataclass
class Probe:
    kind: str
    method: str
    path: str
    host: str
    body: Any = None
    token: str | None = None
    check: Callable[[Any], str] | None = None  # the 2xx body -> "" or what is wrong with it


class Load:
    """A few threads sending the probes round robin through nginx, each
    request's outcome recorded, until stopped."""

    def __init__(self, run: FaultRun, probes: list[Probe], *, threads: int = 3, pause: float = 0.06) -> None:
        self.run, self.probes, self.threads, self.pause = run, probes, threads, pause
        self.samples: list[Sample] = []
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []

    def now(self) -> float:
        return time.monotonic() - self.t0

    def start(self) -> Load:
        for i in range(self.threads):
            worker = threading.Thread(target=self._loop, args=(i,), daemon=True, name=f"load-{i}")
            worker.start()
            self._workers.append(worker)
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=40)
        return sorted(self.samples, key=lambda s: s.t0)

    def _loop(self, i: int) -> None:
        n = i
        while not self._stop.is_set():
            probe = self.probes[n % len(self.probes)]
            n += 1
            sample = self.send(probe)
            with self._lock:
                self.samples.append(sample)
            self._stop.wait(self.pause)

    def send(self, probe: Probe) -> Sample:
        t0 = self.now()
        try:
            r = ms.http(
                self.run.nginx_port,
                probe.method,
                probe.path,
                host=probe.host,
                body=probe.body,
                token=probe.token,
                nodes=self.run.nodes,
            )
        except ms.Failure:
            return Sample(t0, self.now(), probe.kind, 0, "no answer", "-", False)
        code, shaped, wrong = "", False, ""
        try:
            data = json.loads(r.body) if r.body else None
        except ValueError:
            data = None
        if isinstance(data, dict):
            code = str(data.get("code", ""))
            shaped = isinstance(data.get("detail"), str) and isinstance(data.get("code"), str)
        if 200 <= r.status < 300 and probe.check is not None:
            wrong = probe.check(data)
        return Sample(t0, self.now(), probe.kind, r.status, code, r.node, shaped, wrong)


def tally(samples: list[Sample]) -> str:
    counts = Counter(s.label() for s in samples)
    return ", ".join(f"{label} x{n}" for label, n in counts.most_common()) or "none"


def by_kind(samples: list[Sample]) -> str:
    return " ".join(f"{kind} {n}" for kind, n in Counter(s.kind for s in samples).most_common()) or "none"


def per_node(samples: list[Sample]) -> str:
    counts = Counter(s.node for s in samples)
    return " ".join(f"{node} {n}" for node, n in sorted(counts.items()))


# --- the run -----------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    passed: bool
    figures: list[str]
    problems: list[str]
    seconds: float


class FaultRun(ms.Run):
    """multinode_smoke's run, on our own PostgreSQL and Redis, node A straight
    to PostgreSQL and node B through PgBouncer."""

    def __init__(self, keep_tmp: bool) -> None:
        self.pg = OwnPostgres()
        self.redis_procs: list[ms.Proc] = []
        super().__init__(keep_tmp, pg_port=self.pg.port, redis_port=ms.free_port())
        self.db = "tenantdesk_faults"
        self.sink: HoldingSink | None = None
        self.redis_starts = 0
        self.worker_starts = 0
        self.admin_password = "Adm-" + secrets.token_urlsafe(12)

    def cleanup(self) -> list[str]:
        return super().cleanup() + self.pg.shutdown()

    # --- configuration ---

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(
            **ms.LOAD_THROTTLES,
            JWT_ACCESS_MINUTES="30",  # the load's tokens outlive the run
            # The outbox's clock, shortened so that its recoveries fit in this run.
            EMAIL_SWEEP_SECONDS="2",
            EMAIL_DISPATCH_LEASE_SECONDS="8",
            EMAIL_RETRY_BASE_SECONDS="1",
            EMAIL_RETRY_MAX_SECONDS="4",
            **extra,
        )

    def start_node(self, name: str) -> None:
        port = ms.free_port()
        prom = self.tmp / f"prometheus-{name.lower()}"
        database = (
            self.pg.url(self.db) if name == "A" else f"postgres://postgres@{LOOPBACK}:{self.pgbouncer_port}/{self.db}"
        )
        env = self.env(PORT=str(port), PROMETHEUS_MULTIPROC_DIR=str(prom), DATABASE_URL=database)
        argv = [str(ms.BIN / "gunicorn"), "config.wsgi", "-c", "deploy/gunicorn.conf.py"]
        argv += ["--bind", f"{LOOPBACK}:{port}", "--workers", "2"]
        self.start(f"node-{name.lower()}", argv, env)
        self.nodes[f"{LOOPBACK}:{port}"] = name
        self.node_ports[name] = port

    def start_redis(self) -> None:
        self.redis_starts += 1
        argv = ["redis-server", "--port", str(self.redis_port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no"]
        proc = self.start(f"redis-{self.redis_starts}", argv, os.environ.copy())
        self.redis_procs.append(proc)

        def up() -> bool:
            if not proc.alive():
                raise ms.Failure(f"redis-server exited:\n{proc.output()[-2000:]}")
            try:
                return bool(redis.Redis(host=LOOPBACK, port=self.redis_port, socket_timeout=1).ping())
            except redis.RedisError:
                return False

        ms.wait_for(up, timeout=15, what="redis-server to answer")

    def kill_redis(self) -> None:
        for proc in self.redis_procs:
            proc.signal_group(signal.SIGKILL)
            with suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=10)
        self.redis_procs = []

    def start_worker(self) -> None:
        self.worker_starts += 1
        old = self.logs.get("worker")
        if old is not None and old.exists():
            old.rename(old.with_name(f"worker-{self.worker_starts - 1}.log"))
        super().start_worker()

    def worker(self) -> ms.Proc:
        return next(p for p in reversed(self.procs) if p.name == "worker")

    def clean_redis(self) -> list[str]:
        return []  # our own redis-server, gone with the run

    # --- set-up ---

    def setup_data(self) -> None:
        with ms.step(f"PostgreSQL 15 of our own (initdb), port {self.pg.port}", "setup") as d:
            self.pg.init()
            self.pg.start()
            with psycopg.connect(self.pg.url("postgres"), autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.db)))
            d.append(str(self.pg.data))
        with ms.step(f"redis-server of our own, port {self.redis_port}", "setup"):
            self.start_redis()

    def setup_web(self) -> None:
        with ms.step("nginx and pgbouncer (Debian's packages)", "setup"):
            self.nginx_bin, self.pgbouncer_bin = ms.ensure_packages()
        self.tmp.chmod(0o711)
        with ms.step("SMTP sink", "setup") as d:
            sink = HoldingSink()
            sink.start()
            self.sink = sink
            d.append(f"port {sink.port}")
        with ms.step("pgbouncer in session mode", "setup") as d:
            self.start_pgbouncer()
            d.append(f"port {self.pgbouncer_port}")
        with ms.step("manage.py bootstrap through pgbouncer", "setup"):
            self.manage("bootstrap", "bootstrap", timeout=120)
        with ms.step("platform operator", "setup"):
            env = self.env(SMOKE_OPERATOR_EMAIL=self.operator_email, SMOKE_OPERATOR_PASSWORD=self.operator_password)
            out = self.manage("operator", "shell", "-c", ms.OPERATOR_CODE, timeout=60, env=env)
            if "operator created" not in out:
                raise ms.Failure(f"operator not created:\n{out[-2000:]}")
        with ms.step("node A (straight to PostgreSQL) and node B (through PgBouncer), 2 workers each", "setup") as d:
            for name in ("A", "B"):
                self.start_node(name)
            for name in ("A", "B"):
                self.wait_node(name)
            d.append(", ".join(f"{n} on :{p}" for n, p in self.node_ports.items()))
        with ms.step(f"Celery worker with beat, queue {self.queue}", "setup"):
            self.start_worker()
        with ms.step("nginx round robin over both nodes", "setup") as d:
            self.start_nginx()
            d.append(f"port {self.nginx_port}")
        self.slug = f"faults-{self.pid}"
        self.host = self.tenant_host(self.slug)
        with ms.step(f"tenant {self.slug} and its users, through the API", "setup"):
            login = {"email": self.operator_email, "password": self.operator_password}
            r = self.call("POST", "/api/auth/jwt/create/", host=BASE, body=login, expect=200, what="operator login")
            self.operator = r.json()["access"]
            self.provision_api(self.slug, expect=201)
            self.admin_email = f"boss@{self.slug}.test"
            body = {"email": self.admin_email, "password": self.admin_password}
            r = self.call("POST", "/api/auth/jwt/create/", host=self.host, body=body, expect=200, what="admin login")
            self.access = r.json()["access"]
            for who in ("redis", "redis-inflight", "worker-child", "worker-all"):
                self.register(f"{who}-{self.pid}@{self.slug}.test")

    def provision_api(self, slug: str, *, expect: int) -> ms.Response:
        body = {
            "slug": slug,
            "name": slug.title(),
            "admin_email": f"boss@{slug}.test",
            "admin_password": self.admin_password,
            "require_activation": False,
        }
        return self.call("POST", "/api/platform/tenants/", host=BASE, token=self.operator, body=body, expect=expect)

    def register(self, address: str) -> None:
        body = {"email": address, "username": address.split("@")[0], "password": self.admin_password}
        self.call("POST", "/api/auth/users/", host=self.host, body=body, expect=201, what=f"register {address}")

    def app_db(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.pg.url(self.db), autocommit=True, connect_timeout=5)

    def probes(self) -> dict[str, Probe]:
        def me(body: Any) -> str:
            email = body.get("email") if isinstance(body, dict) else None
            return "" if email == self.admin_email else f"users/me is {email!r}"

        def health(body: Any) -> str:
            schema = body.get("schema") if isinstance(body, dict) else None
            return "" if schema == self.slug.replace("-", "_") else f"schema {schema!r}"

        login = {"email": self.admin_email, "password": self.admin_password}
        return {
            "me": Probe("me", "GET", "/api/auth/users/me/", self.host, token=self.access, check=me),
            "products": Probe("products", "GET", "/api/products/", self.host, token=self.access),
            "health": Probe("health", "GET", "/api/health/", self.host, check=health),
            "login": Probe("login", "POST", "/api/auth/jwt/create/", self.host, body=login),
            "operator": Probe("operator", "GET", "/api/platform/tenants/", BASE, token=self.operator),
        }


# --- the faults -----------------------------------------------------------------------------------


def fault_postgres(run: FaultRun, figures: list[str], problems: list[str]) -> None:
    """PostgreSQL stopped (immediate shutdown: a crash) and started again under load."""
    p = run.probes()
    load = Load(run, [p["me"], p["products"], p["health"], p["me"], p["operator"]]).start()
    try:
        time.sleep(3)
        t_down = load.now()
        run.pg.stop("immediate")
        time.sleep(DOWN_SECONDS)
        run.pg.start()
        t_back = load.now()
        time.sleep(RECOVERY_LIMIT + 3)
    finally:
        samples = load.stop()

    before = [s for s in samples if s.t1 < t_down]
    down = [s for s in samples if s.t0 >= t_down and s.t1 <= t_back]
    across = [s for s in samples if s.t1 >= t_down and not (s.t0 >= t_down and s.t1 <= t_back) and s.t0 < t_back]
    after = [s for s in samples if s.t0 >= t_back + RECOVERY_LIMIT]
    failed_down = [s for s in down if not s.ok]
    late = [s for s in samples if not s.ok and s.t0 >= t_back]
    recovery = max((s.t1 for s in late), default=t_back) - t_back
    figures.append(
        f"{len(samples)} requests (nodes {per_node(samples)}), slowest {max(s.t1 - s.t0 for s in samples):.1f} s"
    )
    figures.append(f"before: {len(before)} sent, {sum(not s.ok for s in before)} failed")
    figures.append(f"down {t_back - t_down:.1f} s: {len(down)} sent, {len(failed_down)} failed: {tally(failed_down)}")
    figures.append(
        f"  of those, by node: A {tally([s for s in failed_down if s.node == 'A'])}; "
        f"B {tally([s for s in failed_down if s.node == 'B'])}"
    )
    answered = [s for s in down if s.ok]
    waited = [s for s in answered if s.kind != "health"]  # needed the database: waited for it to come back
    figures.append(
        f"  answered while down: {len(answered)} ({by_kind(answered)}); of those needing the database "
        f"(waited for it): {per_node(waited) or 'none'}, longest {max((s.t1 - s.t0 for s in waited), default=0):.1f} s"
    )
    across_failed = [s for s in across if not s.ok]
    figures.append(f"across the stop or the start: {len(across)} sent, failed: {tally(across_failed)}")
    figures.append(
        f"back: last failure {recovery:.1f} s after PostgreSQL accepted connections (limit {RECOVERY_LIMIT:g} s); "
        f"failures after it was back: {tally(late) if late else 'none'}"
        + (f" (A {sum(s.node == 'A' for s in late)}, B {sum(s.node == 'B' for s in late)})" if late else "")
    )
    figures.append(f"from +{RECOVERY_LIMIT:g} s on: {len(after)} sent, {sum(not s.ok for s in after)} failed")

    if any(not s.ok for s in before):
        problems.append(f"failures before the fault: {tally([s for s in before if not s.ok])}")
    bad = [s for s in samples if not s.ok and not (s.status == 503 and s.code == "database_unavailable" and s.shaped)]
    if bad:
        problems.append(f"failures other than a 503 database_unavailable: {tally(bad)}")
    if len([s for s in failed_down if s.status == 503]) < 5:
        problems.append("hardly any request failed while PostgreSQL was down: the fault did not bite")
    if recovery > RECOVERY_LIMIT or any(not s.ok for s in after):
        problems.append(f"not recovered within {RECOVERY_LIMIT:g} s: {tally([s for s in after if not s.ok])}")
    if len(after) < 10:
        problems.append(f"only {len(after)} requests after recovery")


def fault_redis(run: FaultRun, figures: list[str], problems: list[str]) -> None:
    """redis-server killed under load (cache, throttles, tenant cache, broker) and started again."""
    p = run.probes()
    address = f"redis-{run.pid}@{run.slug}.test"
    reset = Probe("reset", "POST", "/api/auth/users/reset_password/", run.host, body={"email": address})
    sink = run.sink
    assert sink is not None
    load = Load(run, [p["health"], p["me"], p["login"], p["me"], reset, p["operator"], p["products"]]).start()
    try:
        time.sleep(3)
        # One email in the middle of being sent when Redis goes: a task in flight, not yet acked (acks_late).
        inflight = f"redis-inflight-{run.pid}@{run.slug}.test"
        sink.hold.add(inflight)
        body = {"email": inflight}
        run.call("POST", "/api/auth/users/reset_password/", host=run.host, body=body, expect=204, what="a reset")
        ms.wait_for(lambda: inflight in sink.held, timeout=20, what="the worker in the SMTP conversation")
        worker = run.worker()
        t_down = load.now()
        run.kill_redis()
        time.sleep(1)
        sink.released.add(inflight)
        time.sleep(DOWN_SECONDS - 1)
        run.start_redis()
        t_back = load.now()
        # Celery 5.7 / kombu 5.7: a broker connection lost with an unacked task in flight makes the
        # worker exit ("Unrecoverable error: AttributeError ... 'hostname'", from kombu's restore of the
        # unacked messages); deploy/ restarts it (Kubernetes, compose's restart: unless-stopped), as here.
        exited = not worker.alive()
        if exited:
            lines = [line for line in worker.output().splitlines() if "Unrecoverable error" in line]
            run.start_worker()
            figures.append(
                f"NOTE the worker exited when Redis went (celery/kombu 5.7 bug, a task in flight): "
                f"{(json.loads(lines[0]).get('event') if lines and lines[0].startswith('{') else 'no message')}; "
                f"started again as deploy/'s supervisors do ({load.now() - t_back:.1f} s after Redis was back)"
            )
        else:
            figures.append("the worker (a task in flight when Redis went) kept running and reconnected")

        # Readiness on both nodes again (every check ok), and the caches used again.
        def ready() -> bool:
            seen = set()
            for _ in range(6):
                r = ms.http(run.nginx_port, "GET", "/api/health/ready/", host=BASE, nodes=run.nodes)
                if r.status == 200:
                    seen.add(r.node)
            return seen >= {"A", "B"}

        ms.wait_for(ready, timeout=30, what="readiness 200 on both nodes after Redis came back", interval=0.5)
        t_ready = load.now()
        time.sleep(6)
    finally:
        samples = load.stop()
    client = redis.Redis(host=LOOPBACK, port=run.redis_port, db=ms.CACHE_DB, socket_timeout=5)
    tenant_keys = sum(1 for _ in client.scan_iter(match="td-tenants:*", count=1000))
    rate_keys = sum(1 for _ in client.scan_iter(match="*:td:*:rate:*", count=1000))

    down = [s for s in samples if s.t0 >= t_down and s.t1 <= t_back]
    resets_down = [s for s in down if s.kind == "reset" and s.ok]
    resets = [s for s in samples if s.kind == "reset" and s.ok]
    t_mail = ms.wait_for(
        lambda: len(sink.to(address)) >= len(resets) and sink.to(inflight) and load.now(),
        timeout=60,
        what=f"the {len(resets)} reset emails to {address} and the one in flight to {inflight}",
        interval=0.5,
    )
    time.sleep(4)  # two sweeps more: nothing is sent twice
    with run.app_db() as conn:
        counted = conn.execute(
            sql.SQL("SELECT count(*) FROM {}.accounts_ratecounter").format(sql.Identifier(run.slug.replace("-", "_")))
        ).fetchone()
    failed = [s for s in samples if not s.ok]
    figures.append(
        f"{len(samples)} requests (nodes {per_node(samples)}), slowest {max(s.t1 - s.t0 for s in samples):.1f} s"
    )
    figures.append(f"down {t_back - t_down:.1f} s: {len(down)} sent: {tally(down)}")
    figures.append(
        "  by kind while down: "
        + ", ".join(
            f"{kind} {sum(s.ok for s in down if s.kind == kind)}/{sum(1 for s in down if s.kind == kind)} ok"
            for kind in ("health", "me", "login", "reset", "operator", "products")
        )
    )
    figures.append(f"failures over the whole run: {tally(failed) if failed else 'none'}")
    figures.append(
        f"back: readiness 200 on both nodes {t_ready - t_back:.1f} s after redis-server answered; "
        f"then {tenant_keys} tenant-cache keys and {rate_keys} throttle keys in Redis again"
    )
    figures.append(
        f"throttle counters written to the database while Redis was away: {counted[0] if counted else 0} rows"
    )
    figures.append(
        f"emails: {len(resets)} resets asked ({len(resets_down)} while Redis was down), "
        f"{len(sink.to(address))} received, the last {t_mail - t_back:.1f} s after Redis came back; "
        f"the one in flight when Redis went: {len(sink.to(inflight))} received"
    )
    if failed:
        problems.append(f"failures: {tally(failed)}")
    if len(down) < 10:
        problems.append(f"only {len(down)} requests while Redis was down")
    if not resets_down:
        problems.append("no reset was asked for while Redis was down")
    if len(sink.to(address)) != len(resets):
        problems.append(f"{len(resets)} resets but {len(sink.to(address))} emails")
    if len(sink.to(inflight)) != 1:
        problems.append(f"the email in flight arrived {len(sink.to(inflight))} times")
    if not tenant_keys:
        problems.append("the tenant cache is not used again after Redis came back")
    if not (counted and counted[0]):
        problems.append("no throttle counter in the database: did the throttles count while Redis was away?")


INVARIANTS = {
    "schema without a tenant row": """
        SELECT n.nspname FROM pg_namespace n
        WHERE n.nspname NOT IN ('public', 'information_schema', 'tenant_template')
          AND n.nspname NOT LIKE 'pg\\_%'
          AND NOT EXISTS (SELECT 1 FROM tenants_tenant t WHERE t.schema_name = n.nspname)""",
    "tenant row without its schema": """
        SELECT t.slug FROM tenants_tenant t
        WHERE NOT EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = t.schema_name)""",
    "tenant row without a primary domain": """
        SELECT t.slug FROM tenants_tenant t
        WHERE NOT t.is_template
          AND NOT EXISTS (SELECT 1 FROM tenants_domain d WHERE d.tenant_id = t.id AND d.is_primary)""",
    "domain without a tenant row": """
        SELECT d.domain FROM tenants_domain d
        WHERE NOT EXISTS (SELECT 1 FROM tenants_tenant t WHERE t.id = d.tenant_id)""",
}


def half_made(conn: psycopg.Connection[Any]) -> list[str]:
    """Every half-made tenant, described; [] when the fleet is consistent."""
    found = []
    for what, query in INVARIANTS.items():
        rows = [str(row[0]) for row in conn.execute(query).fetchall()]
        if rows:
            found.append(f"{what}: {', '.join(rows)}")
    tenants = conn.execute(
        "SELECT slug, schema_name FROM tenants_tenant t WHERE NOT is_template "
        "AND EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = t.schema_name)"
    ).fetchall()
    for slug, schema in tenants:
        admins_of = sql.SQL(
            "SELECT count(*) FROM {}.accounts_user WHERE is_active AND is_staff AND is_superuser AND email = %s"
        ).format(sql.Identifier(schema))
        try:
            (admins,) = conn.execute(admins_of, [f"boss@{slug}.test"]).fetchone() or (0,)
        except psycopg.Error as error:
            found.append(f"tenant {slug}: its schema has no users table ({error.__class__.__name__})")
            continue
        if admins != 1:
            found.append(f"tenant {slug} without its admin")
    return found


def fault_provision(run: FaultRun, figures: list[str], problems: list[str]) -> None:
    """manage.py provision_tenant killed with SIGKILL at random points; the same slug provisions again."""
    rng = random.Random()  # a new draw each run; the points are printed
    app = f"faults-provision-{run.pid}"

    def start(slug: str) -> ms.Proc:
        argv = [str(ms.BIN / "python"), "manage.py", "provision_tenant", slug, "--admin-email", f"boss@{slug}.test"]
        argv.append("--no-activation")
        env = run.env(PGAPPNAME=app, TENANT_ADMIN_PASSWORD=run.admin_password)
        return run.start(f"provision-{slug}", argv, env)

    def in_transaction(conn: psycopg.Connection[Any]) -> bool:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND xact_start IS NOT NULL "
            "AND backend_xid IS NOT NULL",
            [app],
        ).fetchone()
        return bool(row and row[0])

    def sessions(conn: psycopg.Connection[Any]) -> int:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [app]).fetchone()
        return int(row[0]) if row else 0

    with run.app_db() as conn:
        # A whole run first: how long the process lives, and its transaction (the window to aim at).
        ref = start(f"fk-ref-{run.pid}")
        started = time.monotonic()
        xact_from = xact_to = 0.0
        while ref.alive() and time.monotonic() - started < 60:
            if in_transaction(conn):
                xact_to = time.monotonic() - started
                xact_from = xact_from or xact_to
            time.sleep(0.01)
        with suppress(subprocess.TimeoutExpired):
            ref.popen.wait(timeout=5)
        life = time.monotonic() - started
        if ref.popen.returncode != 0:
            raise ms.Failure(f"provision_tenant exited {ref.popen.returncode}:\n{ref.output()[-2000:]}")
        figures.append(
            f"a whole provision_tenant: {life:.1f} s, its transaction seen from {xact_from:.2f} s to {xact_to:.2f} s"
        )
        outcomes: Counter[str] = Counter()
        points: list[str] = []

        def kill_once(i: int) -> None:
            slug = f"fk-{i}-{run.pid}"
            proc = start(slug)
            began = time.monotonic()
            if i % 2 == 0:  # anywhere in its life
                delay = rng.uniform(0.3, life)
                time.sleep(max(0.0, delay - (time.monotonic() - began)))
                where = f"{delay:.2f} s"
            else:  # inside the transaction
                ms.wait_for(
                    lambda: in_transaction(conn) or not proc.alive(), timeout=30, what="its transaction", interval=0.003
                )
                offset = rng.uniform(0, max(0.02, 0.5 * (xact_to - xact_from)))
                time.sleep(offset)
                where = f"{time.monotonic() - began:.2f} s (transaction +{offset:.2f} s)"
            inside = in_transaction(conn)  # still open (a few ms before the kill)?
            alive = proc.alive()
            proc.signal_group(signal.SIGKILL)
            proc.popen.wait(timeout=10)
            ms.wait_for(lambda: sessions(conn) == 0, timeout=30, what="the killed process's session to end")
            found = half_made(conn)
            made = conn.execute("SELECT count(*) FROM tenants_tenant WHERE slug = %s", [slug]).fetchone()
            outcome = "complete" if made and made[0] else "nothing"
            if not alive:
                outcome += " (it had finished)"
            if inside:
                outcome += ", its transaction open"
            outcomes[outcome] += 1
            points.append(f"{where}: {outcome}")
            if found:
                problems.append(f"killed at {where}: {'; '.join(found)}")
            again = run.provision_api(slug, expect=409 if outcome.startswith("complete") else 201)
            if again.status == 409 and again.json().get("code") != "slug_taken":
                problems.append(f"{slug} provisioned again: {again.describe()}")
            if again.status == 201 and again.json().get("slug") != slug:
                problems.append(f"{slug} provisioned again as {again.json()}")
            found = half_made(conn)
            if found:
                problems.append(f"after provisioning {slug} again: {'; '.join(found)}")

        # At least 8 kills, and on until 2 of them hit an open transaction (at most 14).
        i = 0
        while i < 8 or (i < 14 and sum(n for o, n in outcomes.items() if o == "nothing, its transaction open") < 2):
            kill_once(i)
            i += 1
        figures.append("killed at " + "; ".join(points))
        figures.append(f"outcomes: {dict(outcomes)}; every slug provisioned again (201, or 409 where it was complete)")
        # "The next start": bootstrap, as a deployment runs it.
        out = run.manage("bootstrap-after", "bootstrap", timeout=120)
        last = out.strip().splitlines()[-2:] if out.strip() else []
        figures.append(f"bootstrap afterwards: {' / '.join(line.strip() for line in last)}")
        found = half_made(conn)
        figures.append(f"half-made tenants after it: {'; '.join(found) if found else 'none'}")
        if found:
            problems.append(f"after bootstrap: {'; '.join(found)}")
        if not any("nothing, its transaction open" in p for p in points):
            problems.append("no kill landed inside the transaction: the point of this fault was not tested")


def fault_fleet(run: FaultRun, figures: list[str], problems: list[str]) -> None:
    """tests/tenants/test_fleet.py::test_killed_half_way_a_rerun_migrates_every_tenant_exactly_once, here."""
    test = "tests/tenants/test_fleet.py::test_killed_half_way_a_rerun_migrates_every_tenant_exactly_once"
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_ENV", "CELERY_BROKER_URL", "PYTEST_ADDOPTS")}
    env.update(
        DATABASE_URL=run.pg.url("fleet"),  # pytest makes and drops test_fleet_<pid> in our cluster
        REDIS_URL=f"redis://{LOOPBACK}:{run.redis_port}/3",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    argv = [str(ms.BIN / "pytest"), "-q", "-p", "no:cacheprovider", "-o", "addopts=", test]
    started = time.monotonic()
    done = subprocess.run(argv, cwd=ms.REPO, env=env, capture_output=True, text=True, timeout=180, check=False)
    summary = [line for line in done.stdout.splitlines() if re.search(r"\d+ (passed|failed|error)", line)]
    figures.append(f"{test}")
    figures.append(
        "its steps: 6 tenants lag by a migration; migrate_fleet --connections 2 runs while one tenant's lock is "
        "held; SIGKILL once the others are migrated; rerun: 1 migrated, 5 current, each migration recorded once"
    )
    figures.append(f"pytest: {summary[-1] if summary else 'no summary'} ({time.monotonic() - started:.1f} s)")
    if done.returncode != 0:
        problems.append(f"pytest exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")


def fault_worker(run: FaultRun, figures: list[str], problems: list[str]) -> None:
    """The Celery worker killed while sending: its pool process alone, then the whole worker."""
    for variant in ("child", "all"):
        kill_worker_while_sending(run, variant, figures, problems)


def kill_worker_while_sending(run: FaultRun, variant: str, figures: list[str], problems: list[str]) -> None:
    sink = run.sink
    assert sink is not None
    address = f"worker-{variant}-{run.pid}@{run.slug}.test"
    sink.hold.add(address)
    body = {"email": address}
    run.call("POST", "/api/auth/users/reset_password/", host=run.host, body=body, expect=204, what="a reset")
    asked = time.monotonic()
    ms.wait_for(lambda: address in sink.held, timeout=40, what=f"the worker in the SMTP conversation for {address}")
    worker = run.worker()
    _, port = sink.held[address]
    sender = pid_of_peer(port, worker.popen.pid)
    if sender is None:
        sink.released.add(address)
        problems.append(f"{variant}: no process of the worker owns the SMTP connection (port {port})")
        return
    if variant == "child":
        what = f"pool process {sender} (the main process {worker.popen.pid} lives on)"
        os.kill(sender, signal.SIGKILL)
    else:
        what = f"the whole worker (main {worker.popen.pid}, pool, beat: its process group)"
        worker.signal_group(signal.SIGKILL)
        worker.popen.wait(timeout=10)
    killed = time.monotonic()
    sink.released.add(address)  # the held conversation goes nowhere: its sender is gone

    def row() -> tuple[Any, ...] | None:
        with run.app_db() as conn:
            query = 'SELECT status, attempts, kind FROM mail_outboxemail WHERE "to" = %s'
            return conn.execute(query, [address]).fetchone()

    then = row()
    restarted = 0.0
    if variant == "all":
        time.sleep(1)
        run.start_worker()
        restarted = time.monotonic() - killed
    ms.wait_for(lambda: sink.to(address), timeout=60, what=f"the email to {address}", interval=0.2)
    arrived = time.monotonic() - killed
    time.sleep(6)  # three sweeps more: a sent email is not sent again
    final = row()
    copies = len(sink.to(address))
    figures.append(
        f"{variant}: the sender held in RCPT {killed - asked:.1f} s after the request; killed {what}; "
        f"row then {then[0] if then else '?'}; "
        + (f"worker started again +{restarted:.1f} s (ready); " if restarted else "")
        + f"email arrived {arrived:.1f} s after the kill; {copies} cop{'y' if copies == 1 else 'ies'} "
        f"(6 s later); row {final[0] if final else '?'} ({final[2] if final else '?'}) "
        f"after {final[1] if final else '?'} attempt(s)"
    )
    if copies != 1:
        problems.append(f"{variant}: {copies} copies of the email")
    if sink.held[address] in sink.senders:
        problems.append(f"{variant}: the killed sender's conversation delivered a message")
    if not final or final[0] != "sent":
        problems.append(f"{variant}: the row is {final}")


FAULT_FUNCTIONS: dict[str, Callable[[FaultRun, list[str], list[str]], None]] = {
    "postgres": fault_postgres,
    "redis": fault_redis,
    "provision": fault_provision,
    "fleet": fault_fleet,
    "worker": fault_worker,
}


def run_fault(run: FaultRun, name: str) -> Result:
    print(f"\n[fault] {name}: {(FAULT_FUNCTIONS[name].__doc__ or '').strip()}", flush=True)
    figures: list[str] = []
    problems: list[str] = []
    started = time.monotonic()
    try:
        FAULT_FUNCTIONS[name](run, figures, problems)
    except ms.Failure as failure:
        problems.append(str(failure))
    except Exception:
        problems.append(traceback.format_exc())
    result = Result(name, not problems, figures, problems, time.monotonic() - started)
    for line in figures:
        print(f"    {line}")
    for line in problems:
        print(f"    FAIL: {line}")
    print(f"{'PASS' if result.passed else 'FAIL'} {name} ({result.seconds:.1f} s)", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--only", action="append", default=[], help=f"faults to run, of {', '.join(FAULTS)}")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the logs and configuration")
    parser.add_argument("--list", action="store_true", help="list the faults and exit")
    args = parser.parse_args()
    if args.list:
        for name in FAULTS:
            print(f"{name}: {(FAULT_FUNCTIONS[name].__doc__ or '').strip()}")
        return 0
    chosen = [n.strip() for item in args.only for n in item.split(",") if n.strip()] or list(FAULTS)
    unknown = [n for n in chosen if n not in FAULTS]
    if unknown:
        parser.error(f"unknown fault(s) {', '.join(unknown)}; choose from {', '.join(FAULTS)}")

    run = FaultRun(keep_tmp=args.keep_tmp)
    results: list[Result] = []

    def body() -> int:
        run.setup_data()
        if set(chosen) - {"fleet"}:
            run.setup_web()
        for name in chosen:
            results.append(run_fault(run, name))
            if not results[-1].passed:
                run.show_logs()
        return 0

    code = ms.guarded(run, "FAULTS SET-UP", body)
    print("\nsummary:")
    for result in results:
        print(f"  {'PASS' if result.passed else 'FAIL'}  {result.name:<10} {result.seconds:5.1f} s")
    missing = [n for n in chosen if n not in {r.name for r in results}]
    for name in missing:
        print(f"  FAIL  {name:<10}   not run")
    if code == 0 and (missing or any(not r.passed for r in results)):
        code = 1
    print(f"{time.monotonic() - ms.STARTED:.1f} s; " + ("faults passed" if code == 0 else "FAULTS FAILED"))
    return code


if __name__ == "__main__":
    sys.exit(main())
