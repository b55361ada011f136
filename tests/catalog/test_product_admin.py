"""The Django admin's product pages follow the one rule (catalog/policy.py)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from catalog.models import Product
from tests.helpers import ACME, admin_site_login, csrf_token, make_product, make_user

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
