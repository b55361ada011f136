"""Account emails: built with the change, sent after it commits, links on the tenant's own domain.

Everything that depends on the database (the tenant's primary domain, the
uid, the one-time token) is computed by the service making the change, from
plain values (the tenant and a ``LinkBase``), never from a request. Rendering and
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

from accounts.auth.link_tokens import activation_tokens, email_reset_tokens, password_reset_tokens
from tenants.db import connection
from tenants.models import Tenant

logger = logging.getLogger(__name__)

_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="account-email")
_pending: set[Future[None]] = set()


@dataclass(frozen=True)
class Email:
    kind: str  # template name under accounts/email/
    to: str
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LinkBase:
    """How users reach this deployment from an email: the scheme and port of
    links. The host is never a client's: it is always the tenant's primary
    domain from the Domain table (``site_for``)."""

    scheme: str
    port: str

    @classmethod
    def configured(cls, *, scheme: str = "https", port: str | int = "") -> LinkBase:
        """PUBLIC_SCHEME / PUBLIC_PORT where set (behind a proxy, what users
        type), else ``scheme`` and ``port`` (a request passes its own)."""
        return cls(scheme=settings.PUBLIC_SCHEME or scheme, port=str(settings.PUBLIC_PORT or port))


@dataclass(frozen=True)
class Site:
    """Where a tenant's links point, and the name its emails sign with."""

    scheme: str
    host: str  # host[:port]
    name: str


def site_for(tenant: Tenant | None, links: LinkBase) -> Site:
    """The tenant's primary domain (one query), or the public host for none.

    The endpoints that must not reveal whether an address is known call this
    before the lookup, whatever the address, so both paths run the same queries."""
    if tenant is None:
        domain, name = settings.TENANT_BASE_DOMAIN, "the platform"
    else:
        domain = tenant.domains.filter(is_primary=True).values_list("domain", flat=True).first() or ""
        name = tenant.name
    default_port = "443" if links.scheme == "https" else "80"
    host = domain if links.port in ("", default_port) else f"{domain}:{links.port}"
    return Site(scheme=links.scheme, host=host, name=name)


_LINKS = {
    "activation": ("ACCOUNT_ACTIVATION_URL", activation_tokens, "ACCOUNT_ACTIVATION_TIMEOUT"),
    "password_reset": ("ACCOUNT_PASSWORD_RESET_URL", password_reset_tokens, "PASSWORD_RESET_TIMEOUT"),
    "email_reset": ("ACCOUNT_EMAIL_RESET_URL", email_reset_tokens, "EMAIL_RESET_TIMEOUT"),
}


def build(site: Site, kind: str, user: Any, *, to: str | None = None, **extra: Any) -> Email:
    """The email of ``kind`` for ``user`` (to ``to`` if given), with its
    one-time link when the kind has one."""
    context: dict[str, Any] = {
        "username": user.username,
        "site_name": site.name,
        "home": f"{site.scheme}://{site.host}/",
        **extra,
    }
    if kind in _LINKS:
        path_setting, generator, timeout_setting = _LINKS[kind]
        uid, token = encode_uid(user.pk), generator.make_token(user)
        path = str(getattr(settings, path_setting)).format(uid=uid, token=token).lstrip("/")
        context.update(
            uid=uid,
            token=token,
            url=f"{site.scheme}://{site.host}/{path}",
            expires_hours=max(1, int(getattr(settings, timeout_setting)) // 3600),
        )
    return Email(kind=kind, to=user.email if to is None else to, context=context)


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
