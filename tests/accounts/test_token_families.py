"""Refresh tokens with reuse detection (accounts.auth.token_families).

Every refresh token descends from one login (its family, the ``fam`` claim).
Replaying a rotated token ends the family, so the successor a thief obtained
dies too; a session never outlives JWT_SESSION_MAX_AGE however often it is
refreshed; and logging out while the same token is being refreshed leaves no
live child behind.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import jwt
import pytest
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.models import TokenFamily
from tenants.services import tenant_provision
from tests.helpers import ACME, BASE, PASSWORD, DemoTenant, api_client, assert_error, jwt_login, make_user

REFRESH = "/api/auth/jwt/refresh/"
VERIFY = "/api/auth/jwt/verify/"
BLACKLIST = "/api/auth/jwt/blacklist/"
ME = "/api/auth/users/me/"


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def rotate(where: DemoTenant, token: str) -> Any:
    return api_client(where).post(REFRESH, {"refresh": token}, format="json")


@pytest.fixture
def alice() -> Any:
    return make_user(prefix="alice")


@pytest.mark.django_db
def test_replaying_a_rotated_refresh_token_kills_its_successor(alice: Any) -> None:
    stolen = jwt_login(ACME, alice.email)["refresh"]
    owner = rotate(ACME, stolen)  # the owner refreshes first
    assert owner.status_code == 200, owner.content
    successor = owner.json()["refresh"]
    assert claims(successor)["fam"] == claims(stolen)["fam"]
    # The thief replays the stolen (already rotated) token: refused, and the session ends.
    assert_error(rotate(ACME, stolen), 401)
    assert_error(rotate(ACME, successor), 401)
    assert_error(api_client(ACME).post(VERIFY, {"token": successor}, format="json"), 401)
    with schema_context(ACME.schema):
        family = TokenFamily.objects.get(pk=claims(stolen)["fam"])
    assert family.revoked_because == TokenFamily.Ended.REUSE
    # Other sessions of the same user are untouched.
    other = jwt_login(ACME, alice.email)["refresh"]
    assert rotate(ACME, other).status_code == 200


@pytest.mark.django_db
def test_a_session_ends_at_its_absolute_lifetime_however_often_refreshed(alice: Any, settings: Any) -> None:
    settings.JWT_SESSION_MAX_AGE = timedelta(days=30)
    token = jwt_login(ACME, alice.email)["refresh"]
    family_id = claims(token)["fam"]
    # Logged in 30 days minus one hour ago: a refresh is still possible, but
    # its successor expires with the session, not a day later.
    started = timezone.now() - timedelta(days=30) + timedelta(hours=1)
    with schema_context(ACME.schema):
        TokenFamily.objects.filter(pk=family_id).update(started_at=started)
    rotated = rotate(ACME, token)
    assert rotated.status_code == 200, rotated.content
    successor = rotated.json()["refresh"]
    assert claims(successor)["exp"] <= int((started + timedelta(days=30)).timestamp())
    # Past the lifetime, the session is over.
    with schema_context(ACME.schema):
        TokenFamily.objects.filter(pk=family_id).update(started_at=started - timedelta(hours=2))
    assert_error(rotate(ACME, successor), 401)


@pytest.mark.django_db
def test_a_first_refresh_token_never_outlives_the_session(alice: Any, settings: Any) -> None:
    settings.JWT_SESSION_MAX_AGE = timedelta(hours=2)  # shorter than the refresh lifetime (1 day)
    token = jwt_login(ACME, alice.email)["refresh"]
    assert claims(token)["exp"] - claims(token)["iat"] <= 2 * 3600


@pytest.mark.django_db
def test_logout_and_logout_all_end_the_sessions(alice: Any) -> None:
    first, second = jwt_login(ACME, alice.email), jwt_login(ACME, alice.email)
    assert api_client(ACME).post(BLACKLIST, {"refresh": first["refresh"]}, format="json").status_code == 200
    assert_error(rotate(ACME, first["refresh"]), 401)
    assert rotate(ACME, second["refresh"]).status_code == 200  # another session
    third = jwt_login(ACME, alice.email)
    assert api_client(ACME, token=third["access"]).post("/api/auth/jwt/logout_all/").status_code == 204
    with schema_context(ACME.schema):
        assert not TokenFamily.objects.filter(user_id=alice.pk, revoked_at__isnull=True).exists()


@pytest.mark.django_db
def test_refresh_tokens_without_a_session_are_refused(alice: Any) -> None:
    """A refresh token whose family is missing, unknown or not its user's is a 401."""
    mine = jwt_login(ACME, alice.email)["refresh"]
    bob = make_user(prefix="bob")
    bobs_family = claims(jwt_login(ACME, bob.email)["refresh"])["fam"]
    with schema_context(ACME.schema):
        TokenFamily.objects.filter(pk=claims(mine)["fam"]).update(user_id=bob.pk)  # now not alice's
    assert_error(rotate(ACME, mine), 401)
    assert bobs_family != claims(mine)["fam"]


def test_logout_racing_a_refresh_of_the_same_token_leaves_no_live_child(
    committed: Callable[[str], None], rates: Callable[..., None]
) -> None:
    """Ten trials, each starting a refresh and a logout of one token at the
    same moment on two connections: whichever wins, afterwards nothing of that
    session can be refreshed (before families, a child could survive)."""
    rates()  # ten logins of one account: more than the default limit allows
    committed("racer")
    tenant_provision(slug="racer", name="Racer", admin_email="boss@racer.test", admin_password=PASSWORD)
    racer = DemoTenant("racer", f"racer.{BASE}", "boss@racer.test")
    survivors = 0
    for _trial in range(10):
        token = jwt_login(racer, racer.admin_email)["refresh"]
        answers = _at_once(racer, [(REFRESH, {"refresh": token}), (BLACKLIST, {"refresh": token})])
        assert answers[1].status_code in (200, 401), answers[1].content
        if answers[0].status_code == 200:
            child = answers[0].json()["refresh"]
            if rotate(racer, child).status_code == 200:
                survivors += 1
        assert_error(rotate(racer, token), 401)
    assert survivors == 0


def _at_once(where: DemoTenant, calls: list[tuple[str, dict[str, str]]]) -> list[Any]:
    """POST each (path, body) from its own thread and connection, released together."""
    barrier = threading.Barrier(len(calls))
    answers: list[Any] = [None] * len(calls)

    def call(index: int, path: str, body: dict[str, str]) -> None:
        try:
            barrier.wait(timeout=10)
            answers[index] = api_client(where).post(path, body, format="json")
        finally:
            db_connection.close()

    threads = [threading.Thread(target=call, args=(i, path, body)) for i, (path, body) in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert all(answer is not None for answer in answers), "a request hung"
    return answers


@pytest.mark.django_db
def test_verifying_a_rotated_refresh_token_is_a_reuse_too(alice: Any) -> None:
    """A thief must not be able to test a stolen, already rotated token at
    /verify/ without the session noticing."""
    stolen = jwt_login(ACME, alice.email)["refresh"]
    successor = rotate(ACME, stolen).json()["refresh"]
    assert_error(api_client(ACME).post(VERIFY, {"token": stolen}, format="json"), 401)
    assert_error(rotate(ACME, successor), 401)


@pytest.mark.django_db
def test_login_and_refresh_query_budgets(alice: Any) -> None:
    """Login: search_path, two counter upserts, the account lookup, the user,
    old sessions, the new session, its first token (8). Refresh: search_path,
    the user, the locked session and the spent token in a savepoint, the user
    for the access token, the successor (11)."""
    api_client(ACME).get("/api/health/")  # warm the tenant cache
    with CaptureQueriesContext(db_connection) as login:
        response = api_client(ACME).post(
            "/api/auth/jwt/create/", {"email": alice.email, "password": PASSWORD}, format="json"
        )
    assert response.status_code == 200
    assert len(login.captured_queries) <= 8, [q["sql"][:80] for q in login.captured_queries]
    with CaptureQueriesContext(db_connection) as refresh:
        assert rotate(ACME, response.json()["refresh"]).status_code == 200
    assert len(refresh.captured_queries) <= 11, [q["sql"][:80] for q in refresh.captured_queries]
