"""Ids in URLs and query strings: ASCII digits only, never a 500."""

from __future__ import annotations

import pytest

from tests.helpers import PRODUCTS, access_url, admin_client, assert_error, make_product, make_user

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
    assert_error(response, 400, field="user")
