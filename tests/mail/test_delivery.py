"""The outbox in this process: real SMTP (an aiosmtpd sink on loopback), real
rows, the inline dispatch of the test settings. The worker and the thread
paths, on committed data, are in test_worker.py and test_thread.py."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts import emails, services
from mail import services as mail
from mail.models import OutboxEmail
from tenants.models import Tenant
from tests.helpers import ACME, GLOBEX, PASSWORD, api_client, make_user
from tests.processes import SmtpSink

pytestmark = pytest.mark.django_db


@pytest.fixture
def sink(settings: Any) -> Iterator[SmtpSink]:
    server = SmtpSink().start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    yield server
    server.stop()


def register(email: str) -> Any:
    return api_client(ACME).post(
        "/api/auth/users/", {"email": email, "username": email.split("@")[0], "password": PASSWORD}, format="json"
    )


def rows(**filters: Any) -> list[OutboxEmail]:
    return list(OutboxEmail.objects.filter(**filters).order_by("id"))


def test_a_registration_writes_the_email_with_the_user_and_sends_it_after_commit(
    sink: SmtpSink, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = register("dora@acme.test")
    assert response.status_code == 201, response.content
    (row,) = rows(to="dora@acme.test")
    assert (row.status, row.kind, row.schema_name) == ("pending", "activation", "acme")
    assert row.tenant_id == Tenant.objects.get(slug="acme").pk
    assert row.request_id == response["X-Request-ID"]  # the log line and the email tie together
    assert "/activate/" in row.body
    assert sink.messages == []  # nothing leaves before the commit
    for callback in callbacks:
        callback()
    (message,) = sink.to("dora@acme.test")
    assert "activate" in message.get_payload()
    assert message["X-Request-ID"] == response["X-Request-ID"]
    row.refresh_from_db()
    assert (row.status, row.attempts, row.body) == ("sent", 1, "")  # the link is not kept


def test_a_rolled_back_change_sends_nothing(sink: SmtpSink, django_capture_on_commit_callbacks: Any) -> None:
    user = make_user(ACME, email="roll@acme.test", is_active=False)

    def change_that_fails() -> None:
        with transaction.atomic():
            emails.send_after_commit(emails.build(emails.Site("http", ACME.host, "Acme"), "activation", user))
            raise RuntimeError

    with django_capture_on_commit_callbacks(execute=True), schema_context(ACME.schema), pytest.raises(RuntimeError):
        change_that_fails()
    assert rows(to="roll@acme.test") == []
    assert sink.messages == []


def test_a_transient_failure_backs_off_then_sends(sink: SmtpSink, settings: Any) -> None:
    settings.EMAIL_RETRY_BASE_SECONDS = 60
    sink.defer = True
    with schema_context(ACME.schema):
        row = mail.enqueue(tenant_id=_acme_id(), kind="confirmation", to="later@acme.test", subject="s", body="b")
    before = timezone.now()
    assert mail.deliver(row.pk, tenant_id=_acme_id()) == "retry"
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("pending", 1)
    assert "451" in row.last_error
    assert before + timedelta(seconds=45) < row.next_attempt_at < before + timedelta(seconds=75)
    assert mail.sweep() == 0  # not due yet

    sink.defer = False
    OutboxEmail.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
    assert mail.sweep() == 1  # inline: the sweep delivers at once
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, "")
    assert len(sink.to("later@acme.test")) == 1


def test_backoff_doubles_and_is_capped(settings: Any) -> None:
    settings.EMAIL_RETRY_BASE_SECONDS, settings.EMAIL_RETRY_MAX_SECONDS = 30, 3600
    delays = [mail.backoff(n).total_seconds() for n in (1, 2, 3, 10)]
    assert 24 <= delays[0] <= 36
    assert 48 <= delays[1] <= 72
    assert 96 <= delays[2] <= 144
    assert 2880 <= delays[3] <= 4320


def test_a_refused_address_fails_at_once_and_is_visible(sink: SmtpSink) -> None:
    sink.refuse.add("bounce@acme.test")
    with schema_context(ACME.schema):
        row = mail.enqueue(tenant_id=_acme_id(), kind="confirmation", to="bounce@acme.test", subject="s", body="b")
    assert mail.deliver(row.pk, tenant_id=_acme_id()) == "failed"
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("failed", 1)
    assert "550" in row.last_error
    assert mail.sweep() == 0  # never tried again
    assert mail.deliver(row.pk, tenant_id=_acme_id()) == "skipped"


def test_the_last_allowed_attempt_ends_failed(sink: SmtpSink, settings: Any) -> None:
    settings.EMAIL_MAX_ATTEMPTS = 3
    sink.stop()  # nobody listens: connection refused, a transient error
    with schema_context(ACME.schema):
        row = mail.enqueue(tenant_id=_acme_id(), kind="confirmation", to="gone@acme.test", subject="s", body="b")
    outcomes = []
    for _ in range(4):
        OutboxEmail.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())  # the backoff is over
        outcomes.append(mail.deliver(row.pk, tenant_id=_acme_id()))
    assert outcomes == ["retry", "retry", "failed", "skipped"]
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("failed", 3)
    assert "Connection refused" in row.last_error or "ConnectionRefused" in row.last_error


def test_a_row_is_delivered_only_as_the_tenant_it_was_written_for(sink: SmtpSink) -> None:
    with schema_context(ACME.schema):
        row = mail.enqueue(tenant_id=_acme_id(), kind="confirmation", to="x@acme.test", subject="s", body="b")
    globex_id = Tenant.objects.get(slug=GLOBEX.slug).pk
    assert mail.deliver(row.pk, tenant_id=globex_id) == "skipped"
    assert mail.deliver(row.pk, tenant_id=None) == "skipped"
    assert sink.messages == []


def test_the_sweep_leases_what_it_dispatches(settings: Any) -> None:
    settings.EMAIL_DELIVERY = "celery"  # nothing listens on the broker below: the publish is lost
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    with schema_context(ACME.schema):
        row = mail.enqueue(tenant_id=_acme_id(), kind="confirmation", to="lease@acme.test", subject="s", body="b")
    # The first dispatch was lost and its lease ran out.
    OutboxEmail.objects.filter(pk=row.pk).update(leased_until=timezone.now() - timedelta(seconds=1))
    before = timezone.now()
    assert mail.sweep() == 0  # leased again, but the broker is down: nothing dispatched
    OutboxEmail.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert mail.sweep() == 0  # leased: not dispatched again while that lease runs
    row.refresh_from_db()
    assert row.leased_until is not None
    assert row.leased_until >= before + timedelta(seconds=settings.EMAIL_DISPATCH_LEASE_SECONDS)
    assert row.status == "pending"


@pytest.mark.parametrize("known", [True, False])
def test_reset_for_any_address_costs_the_request_the_same_and_only_a_known_one_gets_mail(
    sink: SmtpSink, django_capture_on_commit_callbacks: Any, known: bool
) -> None:
    if known:
        make_user(ACME, email="known@acme.test")
    address = "known@acme.test" if known else "nobody@acme.test"
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client(ACME).post("/api/auth/users/reset_password/", {"email": address}, format="json")
    assert response.status_code == 204
    (row,) = rows(to=address)
    if known:
        assert row.status == "sent"
        (message,) = sink.to(address)
        assert "/password/reset/confirm/" in message.get_payload()
    else:
        assert (row.status, row.body) == ("dropped", "")
        assert sink.messages == []


def test_the_outbox_is_not_a_tenant_table() -> None:
    """One table in the public schema: the worker drains the whole fleet with one query."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT table_schema FROM information_schema.tables WHERE table_name = 'mail_outboxemail'")
        assert [r[0] for r in cursor.fetchall()] == ["public"]


@override_settings(EMAIL_DELIVERY="inline")
def test_services_enqueue_through_the_outbox(sink: SmtpSink, django_capture_on_commit_callbacks: Any) -> None:
    user = make_user(ACME, email="pw@acme.test")
    with django_capture_on_commit_callbacks(execute=True), schema_context(ACME.schema):
        services.user_set_password(
            tenant=Tenant.objects.get(slug="acme"),
            links=emails.LinkBase("http", ""),
            user=user,
            new_password="N3w-pass-word!",
        )
    (row,) = rows(to="pw@acme.test")
    assert (row.kind, row.status) == ("password_changed", "sent")


def _acme_id() -> int:
    return int(Tenant.objects.get(slug=ACME.slug).pk)


def test_prune_forgets_what_is_done_and_keeps_failures_longer(settings: Any) -> None:
    settings.EMAIL_RETENTION_DAYS = 30
    now = timezone.now()
    ages = {"sent": 31, "dropped": 31, "failed": 31, "pending": 400}
    made = {}
    with schema_context(ACME.schema):
        for status, days in ages.items():
            row = mail.enqueue(
                tenant_id=_acme_id(), kind="confirmation", to=f"{status}@acme.test", subject="s", body=""
            )
            OutboxEmail.objects.filter(pk=row.pk).update(status=status, created_at=now - timedelta(days=days))
            made[status] = row.pk
        recent = mail.enqueue(tenant_id=_acme_id(), kind="confirmation", to="recent@acme.test", subject="s", body="")
        OutboxEmail.objects.filter(pk=recent.pk).update(status="sent")
    assert mail.prune(now=now) == 2
    left = set(OutboxEmail.objects.filter(pk__in=[*made.values(), recent.pk]).values_list("to", flat=True))
    assert left == {"failed@acme.test", "pending@acme.test", "recent@acme.test"}
    assert mail.prune(now=now + timedelta(days=61)) == 2  # the failure at 92 days, the recent one at 61


def test_a_second_dispatch_of_one_row_burns_no_attempt_during_the_backoff(sink: SmtpSink) -> None:
    """Two tasks for one row (the sweep re-dispatched while a worker was away):
    the second finds the row backing off and does nothing."""
    sink.stop()
    with schema_context(ACME.schema):
        row = mail.enqueue(tenant_id=_acme_id(), kind="confirmation", to="twice@acme.test", subject="s", body="b")
    assert [mail.deliver(row.pk, tenant_id=_acme_id()) for _ in range(3)] == ["retry", "skipped", "skipped"]
    row.refresh_from_db()
    assert (row.status, row.attempts, row.leased_until) == ("pending", 1, None)


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        (smtplib.SMTPRecipientsRefused({"a@x.test": (550, b"5.1.1 No such user")}), True),
        (smtplib.SMTPRecipientsRefused({"a@x.test": (554, b"5.7.1 Relay access denied")}), False),
        (smtplib.SMTPRecipientsRefused({"a@x.test": (450, b"4.2.0 Mailbox busy")}), False),
        (smtplib.SMTPDataError(554, b"5.6.0 Message rejected"), True),
        (smtplib.SMTPConnectError(554, b"blocklisted"), False),
        (smtplib.SMTPHeloError(501, b"bad helo"), False),
        (smtplib.SMTPAuthenticationError(535, b"5.7.8 bad credentials"), False),
        (smtplib.SMTPSenderRefused(553, b"5.1.8 sender", "no-reply@x.test"), False),
        (ConnectionRefusedError(111, "Connection refused"), False),
    ],
)
def test_what_counts_as_refused_for_good(error: BaseException, permanent: bool) -> None:
    assert mail._permanent(error) is permanent


def test_a_failing_builder_counts_an_attempt_and_leaves_the_transaction_usable(
    sink: SmtpSink, monkeypatch: Any
) -> None:
    def broken(address: str, context: dict[str, Any]) -> Any:
        OutboxEmail.objects.raw("SELECT * FROM no_such_table")[0]  # a database error inside the builder

    monkeypatch.setitem(mail._builders, "password_reset", broken)
    with schema_context(ACME.schema):
        row = mail.enqueue_lookup(tenant_id=_acme_id(), kind="password_reset", to="x@acme.test", context={})
    assert mail.deliver(row.pk, tenant_id=_acme_id()) == "retry"
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("pending", 1)
    assert "no_such_table" in row.last_error
