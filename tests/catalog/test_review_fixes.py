"""Regressions found in review: odd ids, staff without product rights, admin publishing, links, sessions."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from accounts.models import User
from catalog.models import Product
from tests.catalog.support import (
    PRODUCTS,
    access_url,
    admin_client,
    detail_url,
    grants_url,
    make_product,
    make_user,
    user_client,
)
from tests.conftest import ACME, PASSWORD

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("odd", ["²", "٣", "1²", "\uff11"])
def test_non_ascii_digits_in_ids_are_not_found_not_500(odd: str) -> None:
    admin = admin_client()
    for path in (f"{PRODUCTS}{odd}/", f"{PRODUCTS}{odd}/access/", f"/api/users/{odd}/permissions/"):
        assert admin.get(path).status_code == 404, path
    product = make_product(owner=make_user())
    response = admin.get(access_url(product.pk, odd))
    assert response.status_code == 400
    assert response.json()["errors"] == {"user": ["No such user."]}


def test_staff_without_product_rights_manage_grants_and_explain_any_product() -> None:
    """Tenant admins (is_staff) reach every product's grants and explain, as the
    bulk endpoint already let them; they still cannot view it through the list."""
    staff = make_user(prefix="staff")
    with schema_context(ACME.slug):
        User.objects.filter(pk=staff.pk).update(is_staff=True)
    hidden = make_product(owner=make_user())
    client = user_client(staff)
    assert client.get(detail_url(hidden.pk)).status_code == 404
    assert client.get(grants_url(hidden.pk)).status_code == 200
    answer = client.get(access_url(hidden.pk, staff.pk)).json()
    assert answer["actions"]["view"] == {"allowed": False, "sources": []}
    grant = {"user": staff.pk, "permissions": ["view_product"]}
    assert client.post(grants_url(hidden.pk), grant, format="json").status_code == 200
    assert client.get(detail_url(hidden.pk)).status_code == 200


def _admin_session(email: str) -> Client:
    browser = Client(HTTP_HOST=ACME.host)
    page = browser.get("/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)  # type: ignore[union-attr]
    browser.post("/admin/login/", {"username": email, "password": PASSWORD, "csrfmiddlewaretoken": token})
    return browser


def _change_form(browser: Client, product: Product) -> str:
    response = browser.get(f"/admin/catalog/product/{product.pk}/change/")
    assert response.status_code == 200
    return str(response.content.decode())


def test_admin_publishing_follows_the_rule() -> None:
    editor = make_user(prefix="editor", perms=("view_product", "change_product"))
    with schema_context(ACME.slug):
        User.objects.filter(pk=editor.pk).update(is_staff=True)
    product = make_product(owner=editor)
    editor_form = _change_form(_admin_session(editor.email), product)
    assert 'name="is_published"' not in editor_form  # owner + change_product is not enough to publish

    admin = _admin_session(ACME.admin_email)
    assert 'name="is_published"' in _change_form(admin, product)
    page = admin.get(f"/admin/catalog/product/{product.pk}/change/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    data: dict[str, Any] = {
        "csrfmiddlewaretoken": token,
        "name": product.name,
        "description": "",
        "price": "9.99",
        "owner": str(editor.pk),
        "is_published": "on",
    }
    assert admin.post(f"/admin/catalog/product/{product.pk}/change/", data).status_code == 302
    with schema_context(ACME.slug):
        product.refresh_from_db()
    assert product.is_published
    assert product.published_at is not None  # through the service, stamped


def test_logout_everywhere_also_ends_admin_sessions() -> None:
    browser = _admin_session(ACME.admin_email)
    assert browser.get("/admin/").status_code == 200
    admin_client().post("/api/auth/jwt/logout_all/")
    assert browser.get("/admin/").status_code == 302  # back to the login page


def test_email_links_use_the_public_scheme_and_port(settings: Any, deliver: Any) -> None:
    settings.PUBLIC_SCHEME = "https"
    settings.PUBLIC_PORT = "443"
    user = make_user()
    with deliver() as outbox:
        response = Client(HTTP_HOST=ACME.host).post(
            "/api/auth/users/reset_password/", {"email": user.email}, content_type="application/json"
        )
    assert response.status_code == 204
    (message,) = outbox
    assert "https://acme.localhost/password/reset/confirm/" in message.body
