"""The pages the emailed links open, on the tenant's own host (accounts/pages.py).

Each test takes the link from the email the API sent (the locmem backend, via
the ``deliver`` fixture), opens it with Django's test client through the real
middleware, and posts the form with the CSRF token the page rendered (the
client enforces CSRF checks, as a browser meets them). A GET never changes
anything; a used link, or the link on another tenant's host, is a 404 page;
an expired one a 410 page.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django_tenants.utils import schema_context
from djoser.utils import encode_uid

from accounts.auth.link_tokens import activation_tokens
from accounts.models import User
from core.log_redaction import masking_paths
from tenants.models import Tenant
from tests.accounts.test_djoser_endpoints import (
    Deliver,
    fetch,
    login,
    member,
    only_link,
    register,
    sent,
)
from tests.helpers import ACME, BASE, GLOBEX, PASSWORD, api_client, csrf_token, jwt_login, make_user

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Fresh-Staple-Orbit-42"


def page_client(host: str) -> Client:
    return Client(HTTP_HOST=host, enforce_csrf_checks=True)


def link_path(message: Any) -> tuple[str, str]:
    link = only_link(message)
    return link["host"], f"/{link['path']}/{link['uid']}/{link['token']}"


def open_page(client: Client, path: str, status: int = 200) -> Any:
    page = client.get(path)
    assert page.status_code == status, (page.status_code, page.content[:500])
    assert page["Content-Type"].startswith("text/html")
    assert page["Cache-Control"] == "no-store"
    assert page["Referrer-Policy"] == "same-origin"
    return page


def submit(client: Client, path: str, page: Any, **fields: str) -> Any:
    return client.post(path, {"csrfmiddlewaretoken": csrf_token(page), **fields})


def text(response: Any) -> str:
    return response.content.decode()


def pending_registration(deliver: Deliver, n: str) -> tuple[str, str]:
    with sent(deliver) as outbox:
        response = register(ACME, username=f"page{n}", email=f"page{n}@acme.test", password=PASSWORD)
        assert response.status_code == 201, response.content
    (message,) = outbox
    return link_path(message)


# --- activation --------------------------------------------------------------------------------


def test_activation_link_opens_a_page_that_asks_for_one_click(deliver: Deliver) -> None:
    host, path = pending_registration(deliver, "1")
    assert host == ACME.host
    client = page_client(host)

    page = open_page(client, path)
    assert "Activate your account" in text(page)
    assert "Acme" in text(page)
    for _ in range(3):  # a mail scanner opening the link, HEAD or GET, activates nothing
        client.get(path)
        client.head(path)
    assert fetch(ACME, email="page1@acme.test").is_active is False  # type: ignore[union-attr]

    with sent(deliver) as outbox:
        done = submit(client, path, page)
    assert done.status_code == 200, done.content
    assert "Account activated" in text(done)
    assert fetch(ACME, email="page1@acme.test").is_active is True  # type: ignore[union-attr]
    assert [m.subject for m in outbox]
    assert "page1@acme.test" in outbox[0].to
    jwt_login(ACME, "page1@acme.test")

    used = open_page(client, path, 404)  # spent: it says so
    assert "cannot be used" in text(used)
    assert submit(client, path, page).status_code == 404


def test_activation_post_without_the_csrf_token_is_refused(deliver: Deliver) -> None:
    host, path = pending_registration(deliver, "2")
    response = page_client(host).post(path, {})
    assert response.status_code == 403
    assert fetch(ACME, email="page2@acme.test").is_active is False  # type: ignore[union-attr]


def test_a_link_on_another_tenants_host_is_404(deliver: Deliver) -> None:
    _host, path = pending_registration(deliver, "3")
    # globex has a user with the same id, so the uid names someone there too.
    with schema_context(GLOBEX.schema):
        pk = fetch(ACME, email="page3@acme.test").pk  # type: ignore[union-attr]
        if not User.objects.filter(pk=pk).exists():
            make_user(GLOBEX, id=pk, is_active=False, activated_at=None)
    client = page_client(GLOBEX.host)
    page = open_page(client, path, 404)
    assert "Globex" in text(page)
    assert "Acme" not in text(page)
    assert client.post(path, {}).status_code in (403, 404)
    assert open_page(page_client(ACME.host), path).status_code == 200  # still good at home
    assert page_client(BASE).get(path).status_code == 404  # the public host has no such page


def test_an_expired_activation_link_says_so(deliver: Deliver) -> None:
    host, _path = pending_registration(deliver, "4")
    user = fetch(ACME, email="page4@acme.test")
    assert user is not None
    with schema_context(ACME.schema):
        long_ago = activation_tokens._num_seconds(activation_tokens._now()) - 4 * 24 * 3600
        token = activation_tokens._make_token_with_timestamp(user, long_ago, activation_tokens.secret)
    page = open_page(page_client(host), f"/activate/{encode_uid(user.pk)}/{token}", 410)
    assert "expired" in text(page)


def test_garbage_links_are_404_pages_not_errors() -> None:
    client = page_client(ACME.host)
    for path in ("/activate/x/y", "/activate/MTIz/1-2/", "/password/reset/confirm/%FF/zz", "/email/reset/confirm/-/-"):
        open_page(client, path, 404)


# --- password reset ----------------------------------------------------------------------------


def reset_link(deliver: Deliver, email: str) -> tuple[str, str]:
    with sent(deliver) as outbox:
        assert (
            api_client(ACME).post("/api/auth/users/reset_password/", {"email": email}, format="json").status_code == 204
        )
    (message,) = outbox
    return link_path(message)


def test_reset_link_asks_for_the_new_password_with_the_validators_messages(deliver: Deliver) -> None:
    user = make_user(ACME, email="resetpage@acme.test")
    host, path = reset_link(deliver, user.email)
    client = page_client(host)
    page = open_page(client, path)
    assert "Choose a new password" in text(page)

    weak = submit(client, path, page, new_password="123", re_new_password="123")
    assert weak.status_code == 400
    assert "This password is too short" in text(weak)
    assert "entirely numeric" in text(weak)
    mismatch = submit(client, path, page, new_password=NEW_PASSWORD, re_new_password=NEW_PASSWORD + "x")
    assert mismatch.status_code == 400
    assert "do not match" in text(mismatch)
    assert login(ACME, email=user.email).status_code == 200  # nothing changed yet

    with sent(deliver) as outbox:
        done = submit(client, path, page, new_password=NEW_PASSWORD, re_new_password=NEW_PASSWORD)
    assert done.status_code == 200
    assert "Password changed" in text(done)
    assert [m.to for m in outbox] == [[user.email]]  # "your password was changed"
    assert login(ACME, email=user.email).status_code == 401
    jwt_login(ACME, user.email, NEW_PASSWORD)
    open_page(client, path, 404)  # the reset token died with the old password
    open_page(page_client(GLOBEX.host), path, 404)


# --- email change --------------------------------------------------------------------------------


def test_email_change_link_confirms_the_new_address(deliver: Deliver) -> None:
    client_api = member(ACME)
    with sent(deliver) as outbox:
        response = client_api.post("/api/auth/users/reset_email/", {"email": "member@acme.test"}, format="json")
        assert response.status_code == 204
    (message,) = outbox
    host, path = link_path(message)
    client = page_client(host)
    page = open_page(client, path)
    assert "Change your email address" in text(page)

    make_user(ACME, email="taken-page@acme.test")
    taken = submit(client, path, page, new_email="Taken-Page@acme.test")
    assert taken.status_code == 400
    assert "already exists" in text(taken)
    bad = submit(client, path, page, new_email="not an email")
    assert bad.status_code == 400
    assert "valid email" in text(bad)

    done = submit(client, path, page, new_email="moved@acme.test")
    assert done.status_code == 200
    assert "Email address changed" in text(done)
    assert fetch(ACME, email="moved@acme.test") is not None
    jwt_login(ACME, "moved@acme.test")
    open_page(client, path, 404)


# --- where the links point -------------------------------------------------------------------------


def test_a_deployment_can_point_the_links_at_its_own_front_end(deliver: Deliver) -> None:
    with (
        override_settings(
            ACCOUNT_ACTIVATION_URL="https://app.example.com/{slug}/activate?d={domain}&u={uid}&t={token}"
        ),
        sent(deliver) as outbox,
    ):
        register(ACME, username="spa1", email="spa1@acme.test", password=PASSWORD)
    (message,) = outbox
    found = re.search(r"https://app\.example\.com/acme/activate\?d=([^&]+)&u=([^&]+)&t=(\S+)", message.body)
    assert found, message.body
    assert found[1] == ACME.host
    # The front end POSTs uid and token to the API as ever.
    response = api_client(ACME).post("/api/auth/users/activation/", {"uid": found[2], "token": found[3]}, format="json")
    assert response.status_code == 204, response.content


def test_a_tenant_can_point_its_links_elsewhere(deliver: Deliver) -> None:
    Tenant.objects.filter(slug=ACME.slug).update(
        link_templates={"password_reset": "https://id.acme.test/r/{uid}/{token}"}
    )
    make_user(ACME, email="ownfront@acme.test")
    with sent(deliver) as outbox:
        api_client(ACME).post("/api/auth/users/reset_password/", {"email": "ownfront@acme.test"}, format="json")
        api_client(GLOBEX).post("/api/auth/users/reset_password/", {"email": GLOBEX.admin_email}, format="json")
    bodies = {m.to[0]: m.body for m in outbox}
    assert "https://id.acme.test/r/" in bodies["ownfront@acme.test"]
    assert f"//{GLOBEX.host}/password/reset/confirm/" in bodies[GLOBEX.admin_email]  # others keep the default


def test_links_use_the_primary_domain_not_the_requests_host(deliver: Deliver) -> None:
    acme = Tenant.objects.get(slug=ACME.slug)
    with schema_context("public"):
        acme.domains.create(domain="alias.acme.test", is_primary=False)
    with sent(deliver) as outbox:
        response = api_client("alias.acme.test").post(
            "/api/auth/users/", {"username": "alias1", "email": "alias1@acme.test", "password": PASSWORD}, format="json"
        )
        assert response.status_code == 201, response.content
    (message,) = outbox
    host, path = link_path(message)
    assert host == ACME.host
    open_page(page_client("alias.acme.test"), path)  # every domain of the tenant serves the page


# --- the tokens stay out of the logs ------------------------------------------------------------


def test_opening_a_link_logs_no_token(deliver: Deliver, caplog: pytest.LogCaptureFixture) -> None:
    """Opening a link does not spend it (mail scanners open links): a request
    line with its path would put a live token in the logs."""
    _host, path = pending_registration(deliver, "5")
    token = path.rsplit("/", 1)[1]
    caplog.clear()
    with caplog.at_level(logging.INFO):
        open_page(page_client(ACME.host), path)
        open_page(page_client(ACME.host), "/invitation/some-invitation-token-0123456789", 404)
    lines = [f"{record.msg} {record.getMessage()}" for record in caplog.records]
    finished = [line for line in lines if "request_finished" in line]
    assert len(finished) == 2, lines
    assert "/activate/<uid>/<token>" in finished[0]
    assert "/invitation/<token>" in finished[1]
    assert not [line for line in lines if token in line or "some-invitation-token" in line]


@pytest.mark.parametrize(
    ("logged", "masked"),
    [
        ("GET /activate/MTI/c1x-abc", "GET /activate/<uid>/<token>"),
        ("POST /password/reset/confirm/MTI/c1x-abc/?next=x", "POST /password/reset/confirm/<uid>/<token>/?next=x"),
        ("/email/reset/confirm/MTI/c1x-abc", "/email/reset/confirm/<uid>/<token>"),
        ("GET /invitation/AbC_-123/", "GET /invitation/<token>/"),
        ("GET /api/products/7/", "GET /api/products/7/"),
    ],
)
def test_the_log_processor_masks_every_links_path(logged: str, masked: str) -> None:
    processor = masking_paths(settings.LOG_MASKED_PATHS)
    assert processor(None, "info", {"request": logged, "path": logged, "event": "x"}) == {
        "request": masked,
        "path": masked,
        "event": "x",
    }
