"""Real processes for the tests that need them: an SMTP sink (aiosmtpd), a
gunicorn serving the test database, a Celery worker on a real Redis.

Every process is started in its own session and ended by its process group,
so a test never leaves a server behind (and never touches one it did not start).
"""

from __future__ import annotations

import email
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from aiosmtpd.controller import Controller
from django.db import connection

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], *, timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def database_url() -> str:
    """The test database (the one this test process uses), as a URL for a child process."""
    d = connection.settings_dict
    user = quote(str(d.get("USER") or "postgres"), safe="")
    password = f":{quote(str(d['PASSWORD']), safe='')}" if d.get("PASSWORD") else ""
    host = quote(str(d.get("HOST") or ""), safe="")
    port = f":{d['PORT']}" if d.get("PORT") else ""
    return f"postgres://{user}{password}@{host}{port}/{d['NAME']}"


def broker_url() -> str | None:
    """A Redis database for the broker, next to REDIS_URL's but not it: the
    tests clear the cache database between tests."""
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        return None
    parts = urlsplit(redis_url)
    return urlunsplit((parts.scheme, parts.netloc, "/15", "", ""))


# --- SMTP ------------------------------------------------------------------------------------


@dataclass
class SmtpSink:
    """An SMTP server on loopback that keeps what it receives. ``refuse``:
    recipients it answers 550 (permanent); ``defer``: answer 451 to all."""

    port: int = field(default_factory=free_port)
    messages: list[Message] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    defer: bool = False
    _controller: Controller | None = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refuse:
            return "550 5.1.1 No such mailbox"
        if self.defer:
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted"

    def start(self) -> SmtpSink:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if address in str(m["To"])]

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


@contextmanager
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    try:
        yield sink
    finally:
        sink.stop()


# --- processes -----------------------------------------------------------------------------


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """The whole process group (gunicorn's master and workers, celery's pool)."""
        if self.popen.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def child_env(**overrides: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CELERY_BROKER_URL", "PYTEST_ADDOPTS")}
    env.update(
        DATABASE_URL=database_url(),
        DJANGO_ENV="development",
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONUNBUFFERED="1",
        LOG_FORMAT="json",
    )
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def start(name: str, argv: list[str], env: dict[str, str], tmp: Path) -> Process:
    log = tmp / f"{name}.log"
    # Children share one tenant cache with each other, not with this process
    # (whose evictions they would never see): a fresh one per test.
    env = {"TENANT_CACHE_DIR": str(tmp / "tenant-cache"), **env}
    popen = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    return Process(name, popen, log)


def start_web(env: dict[str, str], tmp: Path, *, port: int | None = None) -> tuple[Process, int]:
    port = port or free_port()
    proc = start(
        "web",
        [
            str(BIN / "gunicorn"),
            "config.wsgi",
            "-c",
            "deploy/gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{port}",
            "-w",
            "1",
        ],
        {**env, "PORT": str(port)},
        tmp,
    )

    def up() -> bool:
        if proc.popen.poll() is not None:
            raise AssertionError(f"gunicorn exited:\n{proc.output()[-3000:]}")
        try:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/api/health/", headers={"Host": "localhost"})
            with urllib.request.urlopen(request, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, OSError):
            return False

    wait_for(up, timeout=60, what="gunicorn to answer")
    return proc, port


def start_worker(env: dict[str, str], tmp: Path, *, beat: bool = True) -> Process:
    queue = env["CELERY_QUEUE"]
    argv = [str(BIN / "celery"), "-A", "config", "worker", "--pool=solo", "--loglevel=INFO", "-Q", queue]
    argv += ["-n", f"test-{queue}@%h"]
    if beat:
        argv += ["-B", f"--schedule={tmp / 'beat-schedule'}"]
    proc = start("worker", argv, env, tmp)
    wait_for(lambda: "ready." in proc.output() or proc.popen.poll() is not None, timeout=60, what="the worker to start")
    if proc.popen.poll() is not None:
        raise AssertionError(f"worker exited:\n{proc.output()[-3000:]}")
    return proc


def http(
    port: int, method: str, path: str, *, host: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        method=method,
        headers={"Host": host, "Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()
