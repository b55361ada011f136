"""The Django admin's product pages follow the one rule (catalog/policy.py)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from catalog.models import Product
from tests.helpers import ACME, GLOBEX, admin_site_login, csrf_token, make_product, make_user

pytestmark = pytest.mark.django_db


def _change_form(browser: Client, product: Product) -> str:
    response = browser.get(f"/admin/catalog/product/{product.pk}/change/")
    assert response.status_code == 200
    return str(response.content.decode())


def test_admin_publishing_follows_the_rule() -> None:
    editor = make_user(prefix="editor", perms=("view_product", "change_product"), is_staff=True)
    product = make_product(owner=editor)
    editor_form = _change_form(admin_site_login(ACME, editor.email), product)
    assert 'name="is_published"' not in editor_form  # owner + change_product is not enough to publish

    admin = admin_site_login(ACME, ACME.admin_email)
    assert 'name="is_published"' in _change_form(admin, product)
    token = csrf_token(admin.get(f"/admin/catalog/product/{product.pk}/change/"))
    data: dict[str, Any] = {
        "csrfmiddlewaretoken": token,
        "name": product.name,
        "description": "",
        "price": "9.99",
        "owner": str(editor.pk),
        "is_published": "on",
    }
    assert admin.post(f"/admin/catalog/product/{product.pk}/change/", data).status_code == 302
    with schema_context(ACME.schema):
        product.refresh_from_db()
    assert product.is_published
    assert product.published_at is not None  # through the service, stamped


def test_admin_header_and_title_name_the_tenant() -> None:
    page = admin_site_login(ACME, ACME.admin_email).get("/admin/").content.decode()
    assert '<a href="/admin/">Acme administration</a>' in page
    assert "<title>Site administration | Acme admin</title>" in page
    login_page = Client(HTTP_HOST=GLOBEX.host).get("/admin/login/").content.decode()
    assert "Globex administration" in login_page
    assert "Acme" not in login_page


@pytest.mark.parametrize("who", ["email", "EMAIL", "username"])
def test_guardian_object_permission_page_takes_an_email_or_a_username(who: str) -> None:
    grantee = make_user(prefix="guarded")
    product = make_product()
    identification = {"email": grantee.email, "EMAIL": grantee.email.upper(), "username": grantee.username}[who]
    admin = admin_site_login(ACME, ACME.admin_email)
    url = f"/admin/catalog/product/{product.pk}/permissions/"
    token = csrf_token(admin.get(url))
    response = admin.post(url, {"csrfmiddlewaretoken": token, "user": identification, "submit_manage_user": "1"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert response["Location"].endswith(f"/permissions/user-manage/{grantee.pk}/")


def test_guardian_object_permission_page_names_an_unknown_user() -> None:
    product = make_product()
    admin = admin_site_login(ACME, ACME.admin_email)
    url = f"/admin/catalog/product/{product.pk}/permissions/"
    token = csrf_token(admin.get(url))
    response = admin.post(url, {"csrfmiddlewaretoken": token, "user": "nobody@acme.test", "submit_manage_user": "1"})
    assert response.status_code == 200
    assert "No user of this tenant has that email or username." in response.content.decode()
    with schema_context(GLOBEX.schema):  # another tenant's user is nobody here
        other = make_user(GLOBEX, prefix="elsewhere")
    response = admin.post(url, {"csrfmiddlewaretoken": token, "user": other.username, "submit_manage_user": "1"})
    assert "No user of this tenant has that email or username." in response.content.decode()
