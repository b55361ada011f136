"""The email outbox: write with the change, send after the commit, retry until sent or failed.

Guarantee: an email whose transaction committed is delivered, even if the
process that wrote it dies right after the commit or the broker is down at
that moment. The row is the source of truth; the task message is only a
nudge:

* ``enqueue`` writes the row in the caller's transaction, due one *lease*
  from now, and asks for a dispatch once the transaction commits;
* a dispatch hands the row to the worker (``EMAIL_DELIVERY=celery``), to an
  in-process thread (``thread``: no broker, the embedded default) or runs it
  at once (``inline``: tests). Publishing happens on a background thread, so
  an unreachable broker never delays a response;
* ``deliver`` locks the row (``SKIP LOCKED``: two deliveries of one row never
  both send), sends it and records the outcome. A transient failure (no
  connection, timeout, SMTP 4xx) pushes ``next_attempt_at`` back with
  exponential backoff; a permanent one (SMTP 5xx for the recipient or the
  message) or the last allowed attempt ends in ``failed``, with the error;
* ``sweep`` (every ``EMAIL_SWEEP_SECONDS``, by Celery beat, or by a thread
  without a broker) dispatches every pending row that is due: the retries,
  and the rows whose dispatch was lost.

Delivery is at least once: a worker killed after the SMTP server accepted a
message but before the row was marked sent sends it again.
"""

from __future__ import annotations

import contextvars
import logging
import random
import smtplib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, Literal

import structlog
from celery import current_app
from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django_tenants.utils import tenant_context

from core.errors import Conflict, NotFound
from core.metrics import EMAILS
from mail.models import OutboxEmail
from tenants.db import connection as tenant_connection
from tenants.models import Tenant

logger = logging.getLogger(__name__)

Outcome = Literal["sent", "retry", "failed", "dropped", "skipped"]
# kind -> builds (to, subject, body) from (address, context), in the tenant's
# schema, or None when no account qualifies. Registered by the apps above.
Builder = Callable[[str, dict[str, Any]], "tuple[str, str, str] | None"]
_builders: dict[str, Builder] = {}
DELIVER_TASK = "mail.deliver"

# One thread publishes (or, without a broker, sends) after commits; the queue
# is in memory, which is why the row, not this queue, is what must survive.
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mail-dispatch")
_pending: set[Future[bool | None]] = set()
_sweeper: threading.Thread | None = None
_sweeper_lock = threading.Lock()


def _lease() -> timedelta:
    return timedelta(seconds=int(settings.EMAIL_DISPATCH_LEASE_SECONDS))


def enqueue(
    *, tenant_id: int | None, kind: str, to: str, subject: str, body: str, context: dict[str, Any] | None = None
) -> OutboxEmail:
    """Write the email in the current transaction; it leaves once that commits."""
    request_id = str(structlog.contextvars.get_contextvars().get("request_id", ""))[:128]
    row = OutboxEmail.objects.create(
        tenant_id=tenant_id,
        schema_name=connection.schema_name,  # type: ignore[attr-defined]
        kind=kind,
        to=to,
        subject=subject,
        body=body,
        context=context or {},
        leased_until=timezone.now() + _lease(),
        request_id=request_id,
    )
    transaction.on_commit(lambda: dispatch(row.pk, tenant_id, row.schema_name))
    return row


def register_builder(kind: str, builder: Builder) -> None:
    _builders[kind] = builder


def enqueue_lookup(*, tenant_id: int | None, kind: str, to: str, context: dict[str, Any]) -> OutboxEmail:
    """For endpoints that must not reveal whether an address has an account:
    the request writes the same row whatever the address, and the worker
    looks the account up (the registered builder of ``kind``) and sends, or
    drops the row. Known and unknown addresses cost the request the same."""
    if kind not in _builders:
        raise LookupError(f"no builder registered for {kind!r} emails")
    return enqueue(tenant_id=tenant_id, kind=kind, to=to, subject="", body="", context={**context, "lookup": True})


def dispatch(pk: int, tenant_id: int | None, schema_name: str, *, background: bool = True) -> bool:
    """Hand the email on; False when it could not be (the broker is down)."""
    mode = settings.EMAIL_DELIVERY
    if mode == "inline":
        deliver(pk, tenant_id=tenant_id)
        return True
    job = _publish if mode == "celery" else _deliver_in_thread
    if not background:
        return job(pk, tenant_id, schema_name) is not False
    if mode == "thread":
        _ensure_sweeper()
    future = _executor.submit(contextvars.copy_context().run, job, pk, tenant_id, schema_name)
    _pending.add(future)
    future.add_done_callback(_pending.discard)
    return True


def _publish(pk: int, tenant_id: int | None, schema_name: str) -> bool:
    try:
        current_app.send_task(
            DELIVER_TASK,
            args=[pk, tenant_id],
            headers={"_schema_name": schema_name},  # tenant-schemas-celery runs it there
            retry=False,  # the sweep is the retry: never hold a thread on a dead broker
            expires=int(settings.EMAIL_DISPATCH_LEASE_SECONDS),  # by then the sweep has sent another
        )
    except Exception as exc:  # kombu's OperationalError, socket errors, ...
        logger.warning("broker unreachable, email %s left for the sweep: %s", pk, exc)
        return False
    return True


def _deliver_in_thread(pk: int, tenant_id: int | None, schema_name: str) -> None:
    try:
        deliver(pk, tenant_id=tenant_id)
    except Exception:
        logger.exception("in-process delivery of email %s failed", pk)
    finally:
        connection.close()  # this thread's own connection


def wait_for_pending(timeout: float = 10.0) -> None:
    """Block until dispatches queued in this process have run (tests, shutdown)."""
    for future in list(_pending):
        future.result(timeout=timeout)


def email_retry(*, pk: int, tenant_id: int | None) -> OutboxEmail:
    """Send a failed email again (an admin fixed the address's mailbox, or the
    mail server's configuration): a fresh set of attempts, dispatched on commit."""
    with transaction.atomic():
        of_tenant = Q(tenant__isnull=True) if tenant_id is None else Q(tenant_id=tenant_id)
        try:
            row = OutboxEmail.objects.select_for_update(nowait=True).filter(of_tenant, pk=pk).first()
        except OperationalError:  # being delivered right now
            raise Conflict("This email is being sent right now.", code="in_progress") from None
        if row is None:
            raise NotFound("No such email.")
        if row.status != OutboxEmail.Status.FAILED:
            raise Conflict(f"Only a failed email can be sent again; this one is {row.status}.", code="not_failed")
        row.status = OutboxEmail.Status.PENDING
        row.attempts = 0
        row.next_attempt_at = timezone.now()
        row.leased_until = timezone.now() + _lease()
        row.save(update_fields=["status", "attempts", "next_attempt_at", "leased_until"])
        transaction.on_commit(lambda: dispatch(row.pk, row.tenant_id, row.schema_name))
    return row


# --- delivery --------------------------------------------------------------------------------


def _permanent(exc: BaseException) -> bool:
    """Whether sending again cannot help: the server refused this recipient or
    this message for good (5xx). Connection trouble, timeouts, 4xx, and
    refusals of our own sender or credentials (a deployment to fix, after
    which the mail should still go) are worth retrying."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return bool(exc.recipients) and all(_refused_for_good(code, text) for code, text in exc.recipients.values())
    if isinstance(
        exc,
        smtplib.SMTPSenderRefused | smtplib.SMTPAuthenticationError | smtplib.SMTPConnectError | smtplib.SMTPHeloError,
    ):
        return False  # our sender, our credentials, our IP: the deployment's to fix
    if isinstance(exc, smtplib.SMTPResponseException):
        return _refused_for_good(exc.smtp_code, exc.smtp_error)
    return False


def _refused_for_good(code: int, text: bytes | str) -> bool:
    """5xx, except the 5.7.x family (relay denied, authentication, policy):
    those say more about our mail set-up than about the address."""
    message = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    return code >= 500 and not message.lstrip().startswith("5.7.")


def backoff(attempts: int) -> timedelta:
    """Exponential, capped, with jitter so a mail server coming back is not hit all at once."""
    base = float(settings.EMAIL_RETRY_BASE_SECONDS)
    delay = min(float(settings.EMAIL_RETRY_MAX_SECONDS), base * 2 ** max(0, attempts - 1))
    return timedelta(seconds=delay * random.uniform(0.8, 1.2))


def deliver(pk: int, *, tenant_id: int | None) -> Outcome:
    """Send one pending email, once, and record what happened."""
    with transaction.atomic():
        of_tenant = Q(tenant__isnull=True) if tenant_id is None else Q(tenant_id=tenant_id)
        row = (
            OutboxEmail.objects.select_for_update(skip_locked=True)
            .filter(of_tenant, pk=pk, status=OutboxEmail.Status.PENDING, next_attempt_at__lte=timezone.now())
            .first()
        )
        if row is None:  # sent, failed, purged, not due (backing off), or being sent by someone else
            return "skipped"
        # Sent by the sweep rather than the request's own task, its lines still name the request.
        if not row.request_id:
            return _send(row)
        with structlog.contextvars.bound_contextvars(request_id=row.request_id):
            return _send(row)


def _send(row: OutboxEmail) -> Outcome:
    """Build (for a lookup email), send and record; the caller holds the row's lock."""
    row.attempts += 1
    try:
        if row.context.get("lookup") and not _build(row):
            row.status = OutboxEmail.Status.DROPPED
            row.context = {}
            row.save(update_fields=["status", "context", "attempts"])
            EMAILS.labels(kind=row.kind, outcome="dropped").inc()
            return "dropped"
        with get_connection(timeout=settings.EMAIL_TIMEOUT) as smtp:
            EmailMessage(
                subject=row.subject,
                body=row.body,
                from_email=settings.DEFAULT_FROM_EMAIL,
                to=[row.to],
                headers={"X-Request-ID": row.request_id} if row.request_id else None,
                connection=smtp,
            ).send()
    except Exception as exc:
        outcome: Outcome = "failed" if _permanent(exc) or row.attempts >= settings.EMAIL_MAX_ATTEMPTS else "retry"
        row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        if outcome == "failed":
            row.status = OutboxEmail.Status.FAILED
            logger.error("email %s (%s) to %s failed for good: %s", row.pk, row.kind, row.to, row.last_error)
        else:
            row.next_attempt_at = timezone.now() + backoff(row.attempts)
            row.leased_until = None  # the sweep sends it again once it is due
            logger.warning("email %s (%s) not sent, attempt %s: %s", row.pk, row.kind, row.attempts, exc)
        row.save(update_fields=["attempts", "status", "last_error", "next_attempt_at", "leased_until"])
    else:
        outcome = "sent"
        row.status = OutboxEmail.Status.SENT
        row.sent_at = timezone.now()
        row.body = ""  # the one-time link is not kept once it has left
        row.last_error = ""
        row.save(update_fields=["attempts", "status", "sent_at", "body", "last_error"])
        logger.info("email %s (%s) sent", row.pk, row.kind)
    EMAILS.labels(kind=row.kind, outcome=outcome).inc()
    return outcome


def _build(row: OutboxEmail) -> bool:
    """Fill in a lookup email in its tenant's schema; False when no account qualifies.
    In a savepoint: a failing builder leaves the row's own transaction usable."""
    with transaction.atomic():
        return _build_in_savepoint(row)


def _build_in_savepoint(row: OutboxEmail) -> bool:
    builder = _builders.get(row.kind)
    if builder is None:
        return False
    if row.tenant_id is None:
        built = builder(row.to, row.context)
    else:
        current = getattr(tenant_connection, "tenant", None)
        if isinstance(current, Tenant) and current.pk == row.tenant_id:
            built = builder(row.to, row.context)  # the worker already runs in the tenant's schema
        else:
            tenant = Tenant.objects.filter(pk=row.tenant_id, schema_name=row.schema_name).first()
            if tenant is None:
                return False
            with tenant_context(tenant):
                built = builder(row.to, row.context)
    if built is None:
        return False
    row.to, row.subject, row.body = built
    row.context = {}
    row.save(update_fields=["to", "subject", "body", "context"])
    return True


# --- the sweep -----------------------------------------------------------------------------


def sweep(*, limit: int = 500) -> int:
    """Dispatch the pending emails that are due (retries, and lost dispatches).

    Each is leased before it is dispatched, so a sweep every few seconds does
    not queue one email many times while the first dispatch waits its turn."""
    now = timezone.now()
    with transaction.atomic():
        due = list(
            OutboxEmail.objects.select_for_update(skip_locked=True)
            .filter(status=OutboxEmail.Status.PENDING, next_attempt_at__lte=now)
            .filter(Q(leased_until__isnull=True) | Q(leased_until__lte=now))
            .order_by("next_attempt_at")
            .values_list("pk", "tenant_id", "schema_name")[:limit]
        )
        if not due:
            return 0
        OutboxEmail.objects.filter(pk__in=[pk for pk, _, _ in due]).update(leased_until=now + _lease())
    dispatched = 0
    for pk, tenant_id, schema_name in due:
        if not dispatch(pk, tenant_id, schema_name, background=False):
            break  # the broker is down: the rest stay leased and come due again
        dispatched += 1
    return dispatched


def prune(*, now: datetime | None = None) -> int:
    """Forget what is done: sent and dropped rows after EMAIL_RETENTION_DAYS,
    failed ones (kept longer, to be looked at) after three times that."""
    now = now or timezone.now()
    days = timedelta(days=int(settings.EMAIL_RETENTION_DAYS))
    done = Q(status__in=[OutboxEmail.Status.SENT, OutboxEmail.Status.DROPPED], created_at__lt=now - days)
    failed = Q(status=OutboxEmail.Status.FAILED, created_at__lt=now - 3 * days)
    deleted, _ = OutboxEmail.objects.filter(done | failed).delete()
    return deleted


def start_sweeper() -> None:
    """Without a broker there is no beat: each web process sweeps (and prunes)
    on a thread, from the moment it serves (config/wsgi.py). SKIP LOCKED, the
    lease and the due time make several sweepers safe."""
    if settings.EMAIL_DELIVERY == "thread":
        _ensure_sweeper()


def _ensure_sweeper() -> None:
    global _sweeper
    with _sweeper_lock:
        if _sweeper is not None and _sweeper.is_alive():
            return
        _sweeper = threading.Thread(target=_sweep_forever, name="mail-sweep", daemon=True)
        _sweeper.start()


def _sweep_forever() -> None:
    last_prune = 0.0
    while True:
        time.sleep(float(settings.EMAIL_SWEEP_SECONDS))
        try:
            sweep()
            if time.monotonic() - last_prune > 3600:
                prune()
                last_prune = time.monotonic()
        except Exception:
            logger.exception("email sweep failed")
        finally:
            connection.close()
