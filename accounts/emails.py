"""Account emails: built in the request, sent after it, links on the tenant's own domain.

Everything that depends on the request or the database (the tenant's primary
domain, the uid, the one-time token) is computed in the request. Rendering and
SMTP happen after the transaction commits, on a small worker pool, so the
response never waits for the mail server: an endpoint answers as fast whether
or not it sends an email (no account enumeration by timing). A failed send is
logged with its recipient and kind, never swallowed silently.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.template import Context
from django.template.loader import get_template
from djoser.utils import encode_uid

from accounts.email_tokens import activation_tokens, email_reset_tokens, password_reset_tokens
from tenants.db import connection

logger = logging.getLogger(__name__)

_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="account-email")
_pending: set[Future[None]] = set()


@dataclass(frozen=True)
class Email:
    kind: str  # template name under accounts/email/
    to: str
    context: dict[str, Any] = field(default_factory=dict)


def links_base(request: Any) -> tuple[str, str, str]:
    """(scheme, host[:port], site name) for links: always the current tenant's
    primary domain from the database, never the Host header a client sent.

    The endpoints that must not reveal whether an address is known call this
    before the lookup, whatever the address, and pass it to ``build(base=...)``,
    so both paths run the same queries."""
    tenant = getattr(request, "tenant", None)
    if tenant is None:
        domain, name = settings.TENANT_BASE_DOMAIN, "the platform"
    else:
        domain = tenant.domains.filter(is_primary=True).values_list("domain", flat=True).first() or ""
        name = tenant.name
    # Behind a proxy the request's own scheme and port are the app server's:
    # PUBLIC_SCHEME / PUBLIC_PORT say what users type. Unset, the request's.
    scheme = settings.PUBLIC_SCHEME or request.scheme
    port = str(settings.PUBLIC_PORT or request.get_port())
    default_port = "443" if scheme == "https" else "80"
    host = domain if port in ("", default_port) else f"{domain}:{port}"
    return scheme, host, name


def build(request: Any, kind: str, user: Any, *, base: tuple[str, str, str] | None = None, **extra: Any) -> Email:
    scheme, host, site_name = base or links_base(request)
    context: dict[str, Any] = {
        "username": user.username,
        "site_name": site_name,
        "home": f"{scheme}://{host}/",
        **extra,
    }
    links = {
        "activation": (settings.ACCOUNT_ACTIVATION_URL, activation_tokens, "ACCOUNT_ACTIVATION_TIMEOUT"),
        "password_reset": (settings.ACCOUNT_PASSWORD_RESET_URL, password_reset_tokens, "PASSWORD_RESET_TIMEOUT"),
        "email_reset": (settings.ACCOUNT_EMAIL_RESET_URL, email_reset_tokens, "EMAIL_RESET_TIMEOUT"),
    }
    if kind in links:
        path, generator, timeout_setting = links[kind]
        uid, token = encode_uid(user.pk), generator.make_token(user)
        context.update(
            uid=uid,
            token=token,
            url=f"{scheme}://{host}/{path.format(uid=uid, token=token).lstrip('/')}",
            expires_hours=max(1, int(getattr(settings, timeout_setting)) // 3600),
        )
    return Email(kind=kind, to=user.email, context=context)


def send_after_commit(email: Email) -> None:
    """Queue the email once the current transaction commits (at once outside one)."""
    schema = connection.schema_name
    transaction.on_commit(lambda: _submit(email, schema))


def _submit(email: Email, schema: str) -> None:
    future = _pool.submit(_deliver, email, schema)
    _pending.add(future)
    future.add_done_callback(_pending.discard)


def _render(name: str, context: dict[str, Any]) -> str:
    # Plain text: no HTML escaping of names and links.
    return str(get_template(f"accounts/email/{name}.txt").template.render(Context(context, autoescape=False)))  # type: ignore[attr-defined]


def _deliver(email: Email, schema: str) -> None:
    try:
        subject = _render(f"{email.kind}_subject", email.context).strip()
        body = _render(email.kind, email.context)
        EmailMessage(subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=[email.to]).send()
    except Exception:
        logger.exception("could not send %s email to %s (schema %s)", email.kind, email.to, schema)


def wait_for_pending(timeout: float = 10.0) -> None:
    """Block until queued emails are handed to the backend (tests, shutdown)."""
    for future in list(_pending):
        future.result(timeout=timeout)
