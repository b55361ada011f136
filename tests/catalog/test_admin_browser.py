"""Tenant admins in a real browser: headless Chromium logs into acme's Django
admin, grants an object permission through guardian's "Object permissions"
page, and the API then shows the grant (the grantee's product list and the
audit log).

The server and the browser are tests/browser.py's. Everything the test
commits is deleted afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.sessions.models import Session
from django.db import models
from django_tenants.utils import schema_context
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from accounts.models import AuditEntry, User
from catalog.models import Product, ProductUserObjectPermission
from tests.browser import Server, needs_chromium, screenshot_on_failure, wait_for
from tests.helpers import ACME, AUDIT, PASSWORD, PRODUCTS, admin_client, api_client, list_ids, make_product, make_user

pytestmark = needs_chromium


# --- committed data and its cleanup -------------------------------------------------------------


@dataclass(frozen=True)
class Scene:
    admin: User
    grantee: User
    product: Product


# Tables that the scene's requests add rows to (admin session, audit of the
# grant and of its revoke when the product goes, JWTs issued to the API calls,
# admin log): every row newer than the test's start is deleted afterwards.
_GROWING: tuple[type[models.Model], ...] = (AuditEntry, OutstandingToken, LogEntry)


def _max_pk(model: type[models.Model]) -> int:
    top: int | None = model._default_manager.aggregate(top=models.Max("pk"))["top"]
    return top or 0


@pytest.fixture
def scene(committed: Callable[[str], None]) -> Iterator[Scene]:
    """In acme, committed: a product owned by the admin and a plain user."""
    with schema_context(ACME.schema):
        before = {model: _max_pk(model) for model in _GROWING}
        sessions_before = set(Session.objects.values_list("session_key", flat=True))
        admin = User.objects.get(email__iexact=ACME.admin_email)
        admin_last_login = admin.last_login
        grantee = make_user(email="grantee.browser@acme.test", username="grantee_browser")
        product = make_product(name="Browser-granted widget", price=Decimal("12.50"), owner=admin)
    try:
        yield Scene(admin=admin, grantee=grantee, product=product)
    finally:
        with schema_context(ACME.schema):
            Product.objects.filter(pk=product.pk).delete()  # its grants cascade
            BlacklistedToken.objects.filter(token__id__gt=before[OutstandingToken]).delete()
            for model, top in before.items():
                model._default_manager.filter(pk__gt=top).delete()
            User.objects.filter(pk=grantee.pk).delete()
            Session.objects.exclude(session_key__in=sessions_before).delete()
            User.objects.filter(pk=admin.pk).update(last_login=admin_last_login)
            assert not ProductUserObjectPermission.objects.filter(user_id=grantee.pk).exists()


# --- the test ---------------------------------------------------------------------------------


def _wait_for(driver: Any, css: str) -> None:
    """``wait_for``, and the page must be the admin's."""
    wait_for(driver, css)
    assert driver.find_elements(By.ID, "site-name"), f"not an admin page: {driver.current_url}"


def _choose_permission(driver: Any, codename: str) -> None:
    """Guardian's permission field is admin's FilteredSelectMultiple: with the
    admin's JavaScript loaded it is two boxes (pick in the left one, "Choose"),
    without it a plain multiple select."""
    available = driver.find_elements(By.ID, "id_permissions_from")
    if available:
        Select(available[0]).select_by_value(codename)
        driver.find_element(By.ID, "id_permissions_add").click()
        chosen = Select(driver.find_element(By.ID, "id_permissions_to"))
        assert codename in [option.get_attribute("value") for option in chosen.options]
    else:
        Select(driver.find_element(By.ID, "id_permissions")).select_by_value(codename)


def test_tenant_admin_grants_object_permission_through_guardian_admin(
    server: Server, scene: Scene, browser: Any
) -> None:
    with screenshot_on_failure(browser, "grant"):
        _grant_through_admin(server, scene, browser)


def _grant_through_admin(server: Server, scene: Scene, browser: Any) -> None:
    product, grantee = scene.product, scene.grantee
    grantee_api = api_client(user=grantee)
    assert product.pk not in list_ids(grantee_api)

    # Log into acme's admin.
    browser.get(server.url(ACME.host, "/admin/"))
    _wait_for(browser, "#login-form")
    browser.find_element(By.ID, "id_username").send_keys(ACME.admin_email)
    browser.find_element(By.ID, "id_password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "#login-form [type=submit]").click()
    _wait_for(browser, "#user-tools")
    assert browser.current_url == server.url(ACME.host, "/admin/")
    assert browser.find_element(By.ID, "site-name").text == "Acme administration"  # the tenant's name
    assert browser.title.endswith("Acme admin")

    # Users and groups are there too (and their pages work on the tenant host).
    for path, css in (
        ("/admin/accounts/user/", "#result_list"),
        (f"/admin/accounts/user/{grantee.pk}/change/", "#user_form"),
        ("/admin/auth/group/", "#changelist"),
        ("/admin/auth/group/add/", "#group_form"),
        ("/admin/catalog/product/", "#result_list"),
    ):
        browser.get(server.url(ACME.host, path))
        _wait_for(browser, css)

    # The product's change page, then guardian's "Object permissions".
    browser.get(server.url(ACME.host, f"/admin/catalog/product/{product.pk}/change/"))
    _wait_for(browser, "#product_form")
    assert browser.find_element(By.ID, "id_name").get_attribute("value") == product.name
    permissions_link = browser.find_element(By.CSS_SELECTOR, ".object-tools a.permissionslink")
    assert permissions_link.text.casefold() == "object permissions"  # upper case by the admin's CSS
    permissions_link.click()

    # Guardian's user form: the user's email or username.
    _wait_for(browser, "input[name=user]")
    assert browser.current_url == server.url(ACME.host, f"/admin/catalog/product/{product.pk}/permissions/")
    # The box takes a username as well as an email (accounts.admin.UserByEmailOrUsername).
    browser.find_element(By.CSS_SELECTOR, "input[name=user]").send_keys(grantee.username)
    browser.find_element(By.CSS_SELECTOR, "input[name=submit_manage_user]").click()

    # The user's permissions for this product: tick view_product, save.
    _wait_for(browser, "select[name=permissions], #id_permissions_from")
    assert browser.current_url == server.url(
        ACME.host, f"/admin/catalog/product/{product.pk}/permissions/user-manage/{grantee.pk}/"
    )
    _choose_permission(browser, "view_product")
    browser.find_element(By.ID, "submit").click()  # guardian's "Save"
    _wait_for(browser, "ul.messagelist")
    assert "Permissions saved." in browser.find_element(By.CSS_SELECTOR, "ul.messagelist").text

    # The grant is real: the grantee's list shows the product (and may open it) ...
    assert product.pk in list_ids(grantee_api)
    assert grantee_api.get(f"{PRODUCTS}{product.pk}/").status_code == 200
    with schema_context(ACME.schema):
        granted = ProductUserObjectPermission.objects.filter(user_id=grantee.pk, content_object_id=product.pk)
        assert sorted(granted.values_list("permission__codename", flat=True)) == ["view_product"]

    # ... and the audit log names the admin as the one who granted it.
    audit = admin_client().get(f"{AUDIT}?action=object.grant&subject_type=user&subject_id={grantee.pk}")
    assert audit.status_code == 200, audit.content
    entries = audit.json()["results"]
    assert len(entries) == 1, entries
    (entry,) = entries
    assert entry["actor"] == {"id": scene.admin.pk, "email": scene.admin.email}
    assert entry["subject"] == {"type": "user", "id": grantee.pk, "name": grantee.email}
    assert entry["permission"] == "catalog.view_product"
    assert entry["target"]["type"] == "catalog.product"
    assert entry["target"]["id"] == product.pk
