"""Plain helpers shared by the accounts tests (no fixtures: those live in conftest)."""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient

from tests.conftest import PASSWORD, authed, jwt_login


def assert_json_error(response: Any, status: int) -> dict[str, Any]:
    """The API's one error shape: a JSON object with a non-empty ``detail`` and ``code``."""
    assert response.status_code == status, (response.status_code, response.content)
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("detail"), str), body
    assert body["detail"], body
    assert isinstance(body.get("code"), str), body
    assert body["code"], body
    return body


def logged_in(host: str, email: str, password: str = PASSWORD) -> APIClient:
    """A client on ``host`` carrying an access token from the real login endpoint."""
    return authed(host, jwt_login(host, email, password)["access"])
