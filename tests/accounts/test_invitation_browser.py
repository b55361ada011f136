"""An invitation accepted in a real browser: a tenant admin invites an address
through the API, headless Chromium opens the link from the email that was
sent, fills in a username and a password and submits; the new account then
logs in through the API and is in the invited group.

The server and the browser are tests/browser.py's (a threaded WSGI server on
loopback serving committed data). Everything the test commits is deleted
afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import Group
from django.db import models
from django.utils import timezone
from django_tenants.utils import schema_context
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from selenium.webdriver.common.by import By

from accounts.models import AuditEntry, Invitation, TokenFamily, User
from mail.models import OutboxEmail
from mail.services import wait_for_pending
from tests.browser import Server, needs_chromium, screenshot_on_failure, wait_for
from tests.helpers import ACME, PASSWORD, admin_client, api_client, jwt_login, make_group

pytestmark = needs_chromium

INVITEE = "browser.invitee@acme.test"
GROUP = "Browser invitees"
LINK = re.compile(r"https?://[^/\s]+/invitation/[A-Za-z0-9_-]+")

# Rows the scene's requests add (the invitation, its audit and the
# membership's, the admin's and the invitee's logins, the emails): every row
# newer than the test's start is deleted afterwards.
_GROWING: tuple[type[models.Model], ...] = (AuditEntry, OutstandingToken, Invitation, OutboxEmail)


def _max_pk(model: type[models.Model]) -> int:
    top: int | None = model._default_manager.aggregate(top=models.Max("pk"))["top"]
    return top or 0


@pytest.fixture
def group(committed: Callable[[str], None]) -> Iterator[Group]:
    """In acme, committed: the group the address is invited into."""
    started = timezone.now()
    with schema_context(ACME.schema):
        before = {model: _max_pk(model) for model in _GROWING}
        made = make_group(ACME, name=GROUP, perms=("view_product",))
    try:
        yield made
    finally:
        with schema_context(ACME.schema):
            User.objects.filter(email__iexact=INVITEE).delete()
            Group.objects.filter(pk=made.pk).delete()
            TokenFamily.objects.filter(started_at__gte=started).delete()
            BlacklistedToken.objects.filter(token__id__gt=before[OutstandingToken]).delete()
            for model, top in before.items():
                model._default_manager.filter(pk__gt=top).delete()
            assert not Invitation.objects.filter(email__iexact=INVITEE).exists()


def test_an_invitation_accepted_in_the_browser_lands_in_the_invited_group(
    server: Server, group: Group, browser: Any, mailoutbox: list[Any]
) -> None:
    with screenshot_on_failure(browser, "invitation"):
        _accept_in_browser(server, group, browser, mailoutbox)


def _accept_in_browser(server: Server, group: Group, browser: Any, mailoutbox: list[Any]) -> None:
    # The admin invites the address through the API; the email leaves once that commits.
    admin = admin_client()
    created = admin.post("/api/invitations/", {"email": INVITEE, "groups": [group.pk]}, format="json")
    assert created.status_code == 201, created.content
    wait_for_pending()
    (message,) = [m for m in mailoutbox if m.to == [INVITEE]]
    (link,) = LINK.findall(message.body)
    parts = urlsplit(link)
    assert parts.hostname == ACME.host  # the tenant's primary domain

    # Chromium opens the link (on the test server's port): the invitation, and a form.
    browser.get(server.url(ACME.host, parts.path))
    wait_for(browser, "#submit")
    page = browser.find_element(By.TAG_NAME, "main").text
    assert "Join Acme" in page
    assert browser.find_element(By.ID, "invited-email").text == INVITEE
    assert browser.find_element(By.ID, "invited-groups").text == GROUP
    with schema_context(ACME.schema):  # opening it changed nothing
        assert Invitation.objects.get(pk=created.json()["id"]).status == "pending"
        assert not User.objects.filter(email__iexact=INVITEE).exists()

    browser.find_element(By.ID, "id_username").send_keys("browser_invitee")
    browser.find_element(By.ID, "id_password").send_keys(PASSWORD)
    browser.find_element(By.ID, "id_re_password").send_keys(PASSWORD)
    browser.find_element(By.ID, "submit").click()
    wait_for(browser, "#message")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Welcome"
    assert f"Your account is active in {GROUP}" in browser.find_element(By.ID, "message").text

    # The new account logs in through the API and is in the invited group.
    pair = jwt_login(ACME, INVITEE, PASSWORD)
    me = api_client(token=pair["access"]).get("/api/auth/users/me/")
    assert me.status_code == 200, me.content
    assert me.json()["username"] == "browser_invitee"
    summary = admin.get(f"/api/users/{me.json()['id']}/permissions/")
    assert summary.status_code == 200, summary.content
    assert summary.json()["via_groups"] == {"catalog.view_product": [GROUP]}
    with schema_context(ACME.schema):
        user = User.objects.get(email__iexact=INVITEE)
        assert user.is_active
        assert list(user.groups.values_list("name", flat=True)) == [GROUP]
        assert Invitation.objects.get(pk=created.json()["id"]).accepted_user_id == user.pk
    listed = admin.get("/api/invitations/", {"status": "accepted", "email": INVITEE})
    assert [item["id"] for item in listed.json()["results"]] == [created.json()["id"]]

    # The link is spent: opening it again is the 404 page.
    browser.get(server.url(ACME.host, parts.path))
    wait_for(browser, "h1")
    assert "This invitation has already been used or is no longer valid" in browser.page_source
