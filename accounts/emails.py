"""Account emails: built with the change, sent after it commits, links on the tenant's own domain.

Everything that depends on the database (the tenant's primary domain, the
uid, the one-time token) is computed by the service making the change, from
plain values (the tenant and a ``LinkBase``), never from a request. The email
is rendered and written to the outbox (``mail``) in the change's transaction;
SMTP happens after the commit, on the worker (or a thread without a broker),
so the response never waits for the mail server: an endpoint answers as fast
whether or not it sends an email (no account enumeration by timing). Failures
retry with backoff and end in a visible ``failed`` row, never in silence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from django.template import Context
from django.template.loader import get_template
from djoser.utils import encode_uid

from accounts.auth.link_tokens import activation_tokens, email_reset_tokens, password_reset_tokens
from accounts.models import User
from mail import services as mail
from tenants.db import current_tenant_id
from tenants.models import Tenant


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
    slug: str = ""
    # The tenant's own link templates (Tenant.link_templates), by kind.
    link_templates: dict[str, str] = field(default_factory=dict)


def site_for(tenant: Tenant | None, links: LinkBase) -> Site:
    """The tenant's primary domain (one query), or the public host for none.

    The endpoints that must not reveal whether an address is known call this
    before the lookup, whatever the address, so both paths run the same queries."""
    if tenant is None:
        domain, name, slug, templates = settings.TENANT_BASE_DOMAIN, "the platform", "", {}
    else:
        domain = tenant.domains.filter(is_primary=True).values_list("domain", flat=True).first() or ""
        name, slug, templates = tenant.name, tenant.slug, dict(tenant.link_templates or {})
    default_port = "443" if links.scheme == "https" else "80"
    host = domain if links.port in ("", default_port) else f"{domain}:{links.port}"
    return Site(scheme=links.scheme, host=host, name=name, slug=slug, link_templates=templates)


# The setting holding each kind's link template (tenants.models.LINK_KINDS).
LINK_SETTINGS = {
    "activation": "ACCOUNT_ACTIVATION_URL",
    "password_reset": "ACCOUNT_PASSWORD_RESET_URL",
    "email_reset": "ACCOUNT_EMAIL_RESET_URL",
    "invitation": "ACCOUNT_INVITATION_URL",
}


def link_url(site: Site, kind: str, **values: str) -> str:
    """The emailed link of ``kind``: the tenant's own template if it set one,
    else the deployment's. A path ("activate/{uid}/{token}", the default) is
    served by this deployment's pages (accounts/pages.py) on the tenant's
    primary domain; a full URL ("https://app.example.com/activate?u={uid}&t={token}")
    points at another front end. Placeholders: {scheme}, {domain} (the primary
    domain, with the port links use), {slug}, and the kind's {uid}/{token}."""
    template = site.link_templates.get(kind) or str(getattr(settings, LINK_SETTINGS[kind]))
    url = template.format(scheme=site.scheme, domain=site.host, slug=site.slug, **values)
    if "://" in template:
        return url
    return f"{site.scheme}://{site.host}/{url.lstrip('/')}"


_LINKS = {
    "activation": (activation_tokens, "ACCOUNT_ACTIVATION_TIMEOUT"),
    "password_reset": (password_reset_tokens, "PASSWORD_RESET_TIMEOUT"),
    "email_reset": (email_reset_tokens, "EMAIL_RESET_TIMEOUT"),
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
        generator, timeout_setting = _LINKS[kind]
        uid, token = encode_uid(user.pk), generator.make_token(user)
        context.update(
            uid=uid,
            token=token,
            url=link_url(site, kind, uid=uid, token=token),
            expires_hours=max(1, int(getattr(settings, timeout_setting)) // 3600),
        )
    return Email(kind=kind, to=user.email if to is None else to, context=context)


def _tenant_id() -> int | None:
    return current_tenant_id() or None  # 0 on the public schema


def _rendered(email: Email) -> tuple[str, str, str]:
    subject = " ".join(_render(f"{email.kind}_subject", email.context).split())
    return email.to, subject, _render(email.kind, email.context)


def send_after_commit(email: Email) -> None:
    """Render the email now and write it to the outbox in the current
    transaction: it leaves once that commits (mail.services), and never if it
    rolls back."""
    to, subject, body = _rendered(email)
    mail.enqueue(tenant_id=_tenant_id(), kind=email.kind, to=to, subject=subject, body=body)


# --- emails to an address that may or may not have an account ----------------------------
# Activation resend, password reset and email reset answer the same whatever
# the address. So that they also cost the same, the request only writes the
# outbox row; the worker finds the account (by these rules) and builds the
# email, or drops the row when none qualifies.

_QUALIFIES: dict[str, Callable[[str, dict[str, Any]], User | None]] = {
    "activation": lambda address, ctx: User.objects.filter(
        email__iexact=address, is_active=False, activated_at__isnull=True
    ).first(),
    "password_reset": lambda address, ctx: next(
        (u for u in User.objects.filter(email__iexact=address, is_active=True)[:1] if u.has_usable_password()), None
    ),
    # Only the caller's own address: one user cannot start a change for another.
    "email_reset": lambda address, ctx: User.objects.filter(
        email__iexact=address, is_active=True, pk=int(ctx.get("caller_id") or 0)
    ).first(),
}


def send_to_account_after_commit(site: Site, kind: str, *, address: str, caller_id: int | None = None) -> None:
    mail.enqueue_lookup(
        tenant_id=_tenant_id(), kind=kind, to=address, context={"site": asdict(site), "caller_id": caller_id}
    )


def _build_for_account(kind: str) -> Callable[[str, dict[str, Any]], tuple[str, str, str] | None]:
    def build_it(address: str, context: dict[str, Any]) -> tuple[str, str, str] | None:
        user = _QUALIFIES[kind](address, context)
        if user is None:
            return None
        return _rendered(build(Site(**context["site"]), kind, user))

    return build_it


def register_builders() -> None:
    for kind in _QUALIFIES:
        mail.register_builder(kind, _build_for_account(kind))


def _render(name: str, context: dict[str, Any]) -> str:
    # Plain text: no HTML escaping of names and links.
    return str(get_template(f"accounts/email/{name}.txt").template.render(Context(context, autoescape=False)))  # type: ignore[attr-defined]
