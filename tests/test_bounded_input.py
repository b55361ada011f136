"""Bounded input, never a 500: body size, JSON depth, session cookies, token
claims and list sizes are checked before they can cost or crash anything."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from django.conf import settings
from django.db import connection as db_connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.helpers import ACME, admin_client, admin_id, api_client, assert_error, jwt_login

pytestmark = pytest.mark.django_db

LOGIN = "/api/auth/jwt/create/"
GROUPS = "/api/groups/"


# --- request bodies -------------------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_before_it_is_read(settings: Any) -> None:
    settings.REQUEST_BODY_MAX_BYTES = 1000
    body = json.dumps({"email": "a" * 2000, "password": "x"})
    response = api_client(ACME).post(LOGIN, body, content_type="application/json")
    assert_error(response, 413, code="too_large")
    # A declared length is enough: nothing is read (the body here is tiny).
    declared = api_client(ACME).post(LOGIN, "{}", content_type="application/json", CONTENT_LENGTH="99999999")
    assert_error(declared, 413, code="too_large")
    # On any host, known or not, and on the Django admin too.
    assert_error(Client(HTTP_HOST="nowhere.example").post("/x/", body, content_type="application/json"), 413)
    assert_error(Client(HTTP_HOST=ACME.host).post("/admin/login/", {"username": "a" * 2000}), 413)


def test_the_default_limit_is_one_mebibyte() -> None:
    assert settings.REQUEST_BODY_MAX_BYTES == 1024 * 1024
    big = json.dumps({"email": "x@acme.test", "password": "p" * (1024 * 1024)})
    assert_error(api_client(ACME).post(LOGIN, big, content_type="application/json"), 413)


def test_a_malformed_content_length_is_400() -> None:
    response = api_client(ACME).post(LOGIN, "{}", content_type="application/json", CONTENT_LENGTH="12ab")
    assert_error(response, 400)


# --- JSON nesting ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [65, 1000, 3000])
@pytest.mark.parametrize("path", [LOGIN, GROUPS, "/api/products/"])
def test_json_nested_too_deep_is_400(depth: int, path: str) -> None:
    body = "[" * depth + "]" * depth
    response = admin_client().post(path, body, content_type="application/json")
    body_json = assert_error(response, 400, code="parse_error")
    assert "nested" in body_json["detail"]


def test_json_within_the_depth_limit_is_parsed() -> None:
    nested: Any = "x@acme.test"
    for _ in range(60):
        nested = [nested]
    response = api_client(ACME).post(
        LOGIN, json.dumps({"email": nested, "password": "x"}), content_type="application/json"
    )
    assert_error(response, 400, field="email")  # parsed, then refused by validation


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    response = api_client(ACME).post(
        LOGIN, json.dumps({"email": "[" * 5000 + "@acme.test", "password": "x"}), content_type="application/json"
    )
    assert response.status_code in (400, 401), response.content


# --- session cookies -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("cookie", ["abc\x00def" + "a" * 30, "\x00", "a" * 5000, "ABC'--"])
def test_a_junk_session_cookie_is_no_session_not_a_500(cookie: str) -> None:
    browser = Client(HTTP_HOST=ACME.host)
    browser.cookies["sessionid"] = cookie
    page = browser.get("/admin/login/")
    assert page.status_code == 200
    assert browser.get("/admin/").status_code == 302  # not logged in


# --- token claims --------------------------------------------------------------------------------------------


def _signed(**overrides: Any) -> str:
    """A correctly signed, otherwise real-looking acme access token for the admin."""
    real = jwt.decode(jwt_login(ACME, ACME.admin_email)["access"], options={"verify_signature": False})
    payload = {**real, **overrides}
    payload = {k: v for k, v in payload.items() if v is not _DROP}
    return jwt.encode(payload, str(settings.SIMPLE_JWT["SIGNING_KEY"]), algorithm="HS256")


_DROP = object()
_SOON = int((datetime.now(tz=UTC) + timedelta(minutes=5)).timestamp())


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": "tomorrow"},
        {"exp": 10**20},
        {"exp": -(10**20)},
        {"exp": 1.5e10},
        {"exp": True},
        {"iat": "now"},
        {"iat": 10**30},
        {"jti": _DROP},
        {"jti": 12345},
        {"jti": ""},
    ],
    ids=lambda claims: ",".join(f"{k}={'missing' if v is _DROP else v!r}" for k, v in claims.items()),
)
def test_malformed_claims_in_a_signed_token_are_401(claims: dict[str, Any]) -> None:
    access = _signed(**claims)
    refresh = _signed(token_type="refresh", fam=str(uuid.uuid4()), **claims)
    assert_error(api_client(ACME, token=access).get("/api/auth/users/me/"), 401)
    for path, body in (
        ("/api/auth/jwt/refresh/", {"refresh": refresh}),
        ("/api/auth/jwt/verify/", {"token": access}),
        ("/api/auth/jwt/verify/", {"token": refresh}),
        ("/api/auth/jwt/blacklist/", {"refresh": refresh}),
    ):
        assert_error(api_client(ACME).post(path, body, format="json"), 401)


def test_the_control_token_of_the_recipe_is_accepted() -> None:
    """Without this, the test above could pass for the wrong reason."""
    assert api_client(ACME, token=_signed(exp=_SOON)).get("/api/auth/users/me/").status_code == 200


# --- list sizes ----------------------------------------------------------------------------------------------


def test_lists_of_permissions_and_members_have_a_maximum() -> None:
    """Valid items, one too many of them: refused for the count alone."""
    admin = admin_client()
    labels = ["catalog.view_product"] * 501
    assert_error(admin.post(GROUPS, {"name": "Big", "permissions": labels}, format="json"), 400, field="permissions")
    users = [admin_id()] * 1001
    assert_error(admin.post(GROUPS, {"name": "Big", "users": users}, format="json"), 400, field="users")
    ok = admin.post(GROUPS, {"name": "Fits", "permissions": labels[:500], "users": users[:1000]}, format="json")
    assert ok.status_code == 201, ok.content
    huge = ["a.b"] * 100_000  # under the body limit, far over the list limit
    assert_error(
        admin.post(f"/api/users/{admin_id()}/permissions/", {"permissions": huge}, format="json"),
        400,
        field="permissions",
    )


def test_lists_are_resolved_in_one_query_whatever_their_length() -> None:
    admin = admin_client()
    counts = {}
    for n in (5, 400):
        labels = [f"catalog.no_such_{i}" for i in range(n)]
        with CaptureQueriesContext(db_connection) as queries:
            response = admin.post(GROUPS, {"name": f"G{n}", "permissions": labels}, format="json")
        assert_error(response, 400, field="permissions")
        counts[n] = len(queries.captured_queries)
    assert counts[5] == counts[400], counts
    body = admin.post(GROUPS, {"name": "Named", "permissions": ["catalog.nope_a", "catalog.nope_b"]}, format="json")
    message = assert_error(body, 400, field="permissions")["errors"]["permissions"][0]
    assert "catalog.nope_a" in message
    assert "catalog.nope_b" in message


# --- found in review: what the parser and the throttles must never choke on ----------------------------------


def test_an_unterminated_string_of_escaped_quotes_is_a_prompt_400() -> None:
    """A scanner with a backtracking regex took seconds per 40 KB of this (and
    minutes for 1 MiB, freezing workers); the parser must just refuse it."""
    body = b'"' + b'\\"' * 100_000
    response = api_client(ACME).post(LOGIN, body, content_type="application/json")
    assert_error(response, 400, code="parse_error")


@pytest.mark.parametrize("charset", ["bz2", "zlib", "zlib_codec", "utf-7", "rot13", "utf-16", "latin-1"])
def test_bodies_in_another_charset_than_utf8_are_415(charset: str) -> None:
    """Django and DRF decode with whatever codec the client names: bz2 would
    unpack a few bytes into gigabytes, utf-7 would hide brackets."""
    body = json.dumps({"email": ACME.admin_email, "password": "x"}).encode()
    # generic(): the test client would itself encode post() data in that charset.
    response = api_client(ACME).generic(
        "POST", LOGIN, body.decode(), content_type=f"application/json; charset={charset}"
    )
    assert_error(response, 415, code="unsupported_media_type")
    form_type = f"application/x-www-form-urlencoded; charset={charset}"
    form = Client(HTTP_HOST=ACME.host).generic(
        "POST", "/admin/login/", b"username=a&password=b", content_type=form_type
    )
    assert form.status_code == 415


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", "utf8", '"utf-8"'])
def test_utf8_bodies_are_accepted_however_spelled(charset: str) -> None:
    body = json.dumps({"email": ACME.admin_email, "password": "wrong"}).encode()
    response = api_client(ACME).post(LOGIN, body, content_type=f"application/json; charset={charset}")
    assert_error(response, 401)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (LOGIN, "email"),
        (LOGIN, "username"),
        ("/api/auth/users/reset_password/", "email"),
        ("/api/auth/users/resend_activation/", "email"),
    ],
)
def test_a_lone_surrogate_in_an_identifier_is_a_4xx_not_a_500(path: str, field: str) -> None:
    body = '{"%s": "a\\ud800@acme.test", "password": "x"}' % field  # noqa: UP031  (the escape must reach the server)
    response = api_client(ACME).post(path, body, content_type="application/json")
    assert 400 <= response.status_code < 500, response.content


def test_a_lone_surrogate_in_a_permission_label_is_a_400() -> None:
    body = '{"name": "S", "permissions": ["catalog.view\\ud800"]}'
    assert_error(admin_client().post(GROUPS, body, content_type="application/json"), 400, field="permissions")


def test_a_bulk_grant_is_bounded_in_total_rows() -> None:
    body = {
        "action": "grant",
        "permissions": ["view_product", "change_product"],
        "products": list(range(1, 1001)),
        "users": list(range(1, 52)),
    }
    assert_error(admin_client().post("/api/products/permissions/bulk/", body, format="json"), 400, field="products")
