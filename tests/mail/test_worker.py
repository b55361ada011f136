"""Email through the real queue: gunicorn, a Celery worker (with its beat) on
Redis, an SMTP sink, and committed rows in the test database.

These need a Redis server (REDIS_URL); `make test` on the embedded database
has none, and CI's second run (PostgreSQL 15 with Redis) runs them.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from mail.models import OutboxEmail
from tenants.services import tenant_provision
from tests.helpers import PASSWORD
from tests.processes import Process, SmtpSink, broker_url, child_env, free_port, http, start_web, start_worker, wait_for

BROKER = broker_url()
pytestmark = pytest.mark.skipif(BROKER is None, reason="needs Redis (REDIS_URL): CI runs it with PostgreSQL 15 + Redis")


@pytest.fixture
def queue() -> Iterator[str]:
    """A queue of this test's own: other runs on this Redis never take its tasks."""
    name = f"test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield name
    client = redis.Redis.from_url(str(BROKER))
    client.delete(name, f"_kombu.binding.{name}")


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for proc in started:
        proc.kill()


@pytest.fixture
def mailco(committed: Callable[[str], None]) -> str:
    committed("mailco")
    tenant_provision(slug="mailco", name="Mail Co", admin_email="admin@mailco.test", admin_password=PASSWORD)
    return "mailco.localhost"


def env_for(queue: str, sink_port: int, **extra: str) -> dict[str, str]:
    return child_env(
        CELERY_BROKER_URL=str(BROKER),
        CELERY_QUEUE=queue,
        EMAIL_URL=f"smtp://127.0.0.1:{sink_port}",
        EMAIL_SWEEP_SECONDS="1",
        EMAIL_DISPATCH_LEASE_SECONDS="2",
        EMAIL_RETRY_BASE_SECONDS="1",
        EMAIL_RETRY_MAX_SECONDS="2",
        EMAIL_TIMEOUT="3",
        **extra,
    )


def register(port: int, host: str, email: str, request_id: str) -> None:
    body = json.dumps({"email": email, "username": email.split("@")[0], "password": PASSWORD}).encode()
    status, headers, content = http(
        port, "POST", "/api/auth/users/", host=host, body=body, headers={"X-Request-ID": request_id}
    )
    assert status == 201, content
    assert headers["X-Request-ID"] == request_id


def row_for(email: str) -> OutboxEmail:
    return OutboxEmail.objects.get(to=email)


@pytest.mark.parametrize("broker_at_commit", ["up", "down"])
def test_the_email_of_a_committed_registration_arrives_though_the_web_process_was_killed(
    mailco: str, queue: str, processes: list[Process], tmp_path: Path, broker_at_commit: str
) -> None:
    """Killed right after the commit: with the broker up the task waits in
    Redis for a worker; with the broker down at that moment the row waits in
    the outbox for the sweep. Either way the email arrives, once."""
    sink = SmtpSink().start()
    try:
        web_env = env_for(queue, sink.port)
        if broker_at_commit == "down":
            web_env["CELERY_BROKER_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens there
        web, port = start_web(web_env, tmp_path)
        processes.append(web)
        request_id = f"test-{uuid.uuid4()}"
        register(port, mailco, "newbie@mailco.test", request_id)
        if broker_at_commit == "up":  # killed once the task is in Redis, before any worker took it
            wait_for(lambda: redis.Redis.from_url(str(BROKER)).llen(queue) >= 1, timeout=10, what="the queued task")
        web.kill()  # SIGKILL to the master and its worker: nothing runs after this

        assert row_for("newbie@mailco.test").status == "pending"
        assert sink.messages == []
        worker = start_worker(env_for(queue, sink.port), tmp_path)
        processes.append(worker)

        (message,) = wait_for(lambda: sink.to("newbie@mailco.test"), timeout=60, what="the activation email")
        assert "http://mailco.localhost" in message.get_payload()
        assert message["X-Request-ID"] == request_id
        wait_for(lambda: row_for("newbie@mailco.test").status == "sent", timeout=10, what="the row marked sent")
        # Three more sweeps: a sent row is never sent again.
        wait_for(lambda: worker.output().count('"mail.sweep"') >= 3 or None, timeout=20, what="more sweeps")
        assert len(sink.to("newbie@mailco.test")) == 1
        # The request id of the registration is on the worker's JSON log line of the delivery.
        lines = [json.loads(line) for line in worker.output().splitlines() if line.startswith("{")]
        assert any(line.get("request_id") == request_id and "sent" in line.get("event", "") for line in lines)
    finally:
        sink.stop()


def test_smtp_away_for_a_while_then_back_the_email_arrives(
    mailco: str, queue: str, processes: list[Process], tmp_path: Path
) -> None:
    sink_port = free_port()  # reserved, nobody listens yet: connection refused
    env = env_for(queue, sink_port)
    web, port = start_web(env, tmp_path)
    processes.append(web)
    processes.append(start_worker(env, tmp_path))

    register(port, mailco, "patient@mailco.test", f"test-{uuid.uuid4()}")
    wait_for(lambda: row_for("patient@mailco.test").attempts >= 2, timeout=60, what="two failed attempts")
    row = row_for("patient@mailco.test")
    assert row.status == "pending"
    assert "refused" in row.last_error.lower()

    sink = SmtpSink(port=sink_port).start()
    try:
        wait_for(lambda: sink.to("patient@mailco.test"), timeout=60, what="the email after SMTP came back")
        wait_for(lambda: row_for("patient@mailco.test").status == "sent", timeout=10, what="the row marked sent")
        assert row_for("patient@mailco.test").attempts >= 3
        assert len(sink.to("patient@mailco.test")) == 1
    finally:
        sink.stop()


def test_a_refused_address_ends_failed_through_the_worker(
    mailco: str, queue: str, processes: list[Process], tmp_path: Path
) -> None:
    sink = SmtpSink().start()
    sink.refuse.add("nosuch@mailco.test")
    try:
        env = env_for(queue, sink.port)
        web, port = start_web(env, tmp_path)
        processes += [web, start_worker(env, tmp_path)]
        register(port, mailco, "nosuch@mailco.test", f"test-{uuid.uuid4()}")
        wait_for(lambda: row_for("nosuch@mailco.test").status == "failed", timeout=60, what="the failed state")
        row: Any = row_for("nosuch@mailco.test")
        assert row.attempts == 1
        assert "550" in row.last_error
        assert sink.messages == []
    finally:
        sink.stop()
