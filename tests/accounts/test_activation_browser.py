"""A new user in a real browser: registers on a tenant that requires
activation, opens the activation link from the email it was sent in headless
Chromium, clicks once, and then logs in through the API.

The server and the browser are tests/browser.py's; the tenant is provisioned
for the test (committed) and purged afterwards.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from django_tenants.utils import schema_context
from selenium.webdriver.common.by import By

from accounts.models import User
from tenants.services import tenant_provision
from tests.browser import WAIT_SECONDS, Server, needs_chromium, screenshot_on_failure, wait_for
from tests.helpers import BASE, PASSWORD

pytestmark = needs_chromium

SLUG = "browsy"
HOST = f"{SLUG}.{BASE}"
EMAIL = "newcomer@browsy.test"


def call(server: Server, path: str, body: dict[str, Any], token: str | None = None) -> tuple[int, Any]:
    """A real HTTP request to the test server (not Django's test client)."""
    request = urllib.request.Request(
        server.url("127.0.0.1", path),
        data=json.dumps(body).encode() if body else None,
        headers={
            "Host": f"{HOST}:{server.port}",
            "Content-Type": "application/json",
            **({"Authorization": f"Bearer {token}"} if token else {}),
        },
        method="POST" if body else "GET",
    )
    try:
        with urllib.request.urlopen(request, timeout=WAIT_SECONDS) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def sent_link(mailoutbox: list[Any], to: str) -> str:
    """The link of the first email to ``to``; emails leave after the commit,
    on a thread of the server's process."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        for message in mailoutbox:
            if to in message.to:
                found = re.search(r"https?://\S+", message.body)
                assert found, message.body
                return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no email to {to} within {WAIT_SECONDS} s")


def test_register_open_the_emailed_link_click_and_log_in(
    committed: Callable[[str], None], server: Server, browser: Any, mailoutbox: list[Any]
) -> None:
    committed(SLUG)
    tenant = tenant_provision(slug=SLUG, name="Browsy Ltd", admin_email="owner@browsy.test", admin_password=PASSWORD)
    assert tenant.require_activation

    status, body = call(server, "/api/auth/users/", {"username": "newcomer", "email": EMAIL, "password": PASSWORD})
    assert status == 201, body
    assert call(server, "/api/auth/jwt/create/", {"email": EMAIL, "password": PASSWORD})[0] == 401  # not yet

    link = sent_link(mailoutbox, EMAIL)
    assert link.startswith(f"http://{HOST}:{server.port}/activate/"), link  # the tenant's own host

    with screenshot_on_failure(browser, "activation"):
        browser.get(link)
        wait_for(browser, "#activate")
        assert "Browsy Ltd" in browser.find_element(By.TAG_NAME, "header").text
        with schema_context(SLUG):
            assert User.objects.get(email=EMAIL).is_active is False  # opening the link changed nothing
        browser.find_element(By.ID, "activate").click()
        wait_for(browser, "#message")
        assert browser.find_element(By.TAG_NAME, "h1").text == "Account activated"

        browser.get(link)  # once only
        wait_for(browser, "h1")
        assert browser.find_element(By.TAG_NAME, "h1").text == "This link cannot be used"

    status, tokens = call(server, "/api/auth/jwt/create/", {"email": EMAIL, "password": PASSWORD})
    assert status == 200, tokens
    status, me = call(server, "/api/auth/users/me/", {}, token=tokens["access"])
    assert status == 200, me
    assert me["email"] == EMAIL
