"""Email without a broker (EMAIL_DELIVERY=thread, the embedded default of
`make run`): a real gunicorn sends after the commit on a thread of its own,
and sweeps what a previous process left behind."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.utils import timezone

from mail.models import OutboxEmail
from tenants.models import Tenant
from tenants.services import tenant_provision
from tests.helpers import PASSWORD
from tests.processes import Process, SmtpSink, child_env, http, start_web, wait_for


@pytest.fixture
def threadco(committed: Callable[[str], None]) -> Tenant:
    committed("threadco")
    return tenant_provision(
        slug="threadco", name="Thread Co", admin_email="admin@threadco.test", admin_password=PASSWORD
    )


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    server = SmtpSink().start()
    yield server
    server.stop()


def test_without_a_broker_the_web_process_sends_and_sweeps_what_a_previous_one_left(
    threadco: Tenant, sink: SmtpSink, tmp_path: Path
) -> None:
    # A row a killed process left behind: committed, its dispatch lost, its lease over.
    left = OutboxEmail.objects.create(
        tenant=threadco,
        schema_name=threadco.schema_name,
        kind="confirmation",
        to="left@threadco.test",
        subject="Hi",
        body="b",
        leased_until=timezone.now(),
    )

    env = child_env(EMAIL_URL=sink.url, EMAIL_SWEEP_SECONDS="1", EMAIL_DELIVERY=None, CELERY_BROKER_URL=None)
    web: Process
    web, port = start_web(env, tmp_path)
    try:
        wait_for(lambda: sink.to("left@threadco.test"), timeout=30, what="the left-over email, by the sweep")
        body = json.dumps({"email": "new@threadco.test", "username": "new", "password": PASSWORD}).encode()
        status, _, content = http(port, "POST", "/api/auth/users/", host="threadco.localhost", body=body)
        assert status == 201, content
        (message,) = wait_for(lambda: sink.to("new@threadco.test"), timeout=30, what="the activation email")
        assert "http://threadco.localhost" in message.get_payload()
        wait_for(lambda: OutboxEmail.objects.get(to="new@threadco.test").status == "sent", timeout=10, what="sent")
        assert OutboxEmail.objects.get(pk=left.pk).status == "sent"
        assert len(sink.to("left@threadco.test")) == 1
    finally:
        web.kill()
