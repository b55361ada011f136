"""Brute force closed on every door, with one counter per account.

The doors: ``jwt/create``, the Django admin's login form, and the
``current_password`` checks (set_password, set_email, deleting an account);
the reset and activation-email endpoints have their own per-account counter.
An account is counted as the account, not as the identifier typed. Counters
are shared by every process, with or without Redis.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from accounts.auth import rates as counters
from accounts.models import RateCounter
from tenants.db import connection
from tests.helpers import (
    ACME,
    PASSWORD,
    api_client,
    assert_throttled,
    csrf_token,
    make_user,
)

LOGIN = "/api/auth/jwt/create/"
SET_PASSWORD = "/api/auth/users/set_password/"
SET_EMAIL = "/api/auth/users/set_email/"
RESET_PASSWORD = "/api/auth/users/reset_password/"
ROOT = Path(__file__).resolve().parents[2]


def login(ip: str = "10.9.0.1", password: str = "wrong", **identifier: str) -> Any:
    return api_client(ACME).post(LOGIN, {**identifier, "password": password}, format="json", REMOTE_ADDR=ip)


def admin_login(email: str, password: str, ip: str = "10.9.1.1") -> tuple[int, str, bool]:
    """(status, page, logged in?) of one try at the admin's login form."""
    browser = Client(HTTP_HOST=ACME.host, REMOTE_ADDR=ip)
    token = csrf_token(browser.get("/admin/login/"))
    response = browser.post(
        "/admin/login/", {"username": email, "password": password, "csrfmiddlewaretoken": token}, REMOTE_ADDR=ip
    )
    logged_in = browser.get("/admin/", REMOTE_ADDR=ip).status_code == 200
    return response.status_code, response.content.decode(), logged_in


# --- the Django admin login -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_admin_login_is_throttled_per_account(rates: Callable[..., None]) -> None:
    rates(login_account="5/min")
    alice = make_user(prefix="alice", is_staff=True)
    for n in range(5):
        status, _page, logged_in = admin_login(alice.email, f"guess{n}", ip=f"10.9.1.{n}")
        assert (status, logged_in) == (200, False)
    status, page, logged_in = admin_login(alice.email, PASSWORD, ip="10.9.1.99")  # the right one, a new IP
    assert not logged_in
    assert "Too many login attempts" in page
    # The API door shares the account's counter.
    assert_throttled(login(ip="10.9.1.98", password=PASSWORD, email=alice.email))


@pytest.mark.django_db
def test_admin_login_is_throttled_per_ip(rates: Callable[..., None]) -> None:
    rates(login_ip="4/min")
    for n in range(4):
        admin_login(f"nobody{n}@acme.test", "x", ip="10.9.2.1")
    _status, page, logged_in = admin_login(ACME.admin_email, PASSWORD, ip="10.9.2.1")
    assert not logged_in
    assert "Too many login attempts" in page
    assert admin_login(ACME.admin_email, PASSWORD, ip="10.9.2.2")[2]  # another IP is not spent


# --- one account, one counter ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_account_locked_by_email_is_locked_by_username_too(rates: Callable[..., None]) -> None:
    rates(login_account="10/min")
    alice = make_user(prefix="alice")
    for n in range(12):
        response = login(ip=f"10.9.3.{n}", email=alice.email)
        assert response.status_code in (401, 429), response.content
    assert_throttled(login(ip="10.9.3.99", password=PASSWORD, username=alice.username))


@pytest.mark.django_db
def test_case_folding_spellings_count_against_the_same_account(rates: Callable[..., None]) -> None:
    """PostgreSQL's UPPER folds the dotless i (U+0131) to I, so the login finds
    admin@acme.test under that spelling: it must be the same counter."""
    rates(login_account="3/min")
    spellings = ["admin@acme.test", "ADMIN@ACME.TEST", "adm\u0131n@acme.test"]
    for n, email in enumerate(spellings):
        assert login(ip=f"10.9.4.{n}", email=email).status_code == 401
    assert_throttled(login(ip="10.9.4.99", password=PASSWORD, email=ACME.admin_email))


@pytest.mark.django_db
def test_reset_counter_is_per_account_whatever_the_spelling(rates: Callable[..., None]) -> None:
    rates(reset_account="2/hour")
    client = api_client(ACME)
    for n, email in enumerate(["adm\u0131n@acme.test", "ADMIN@acme.test"]):
        response = client.post(RESET_PASSWORD, {"email": email}, format="json", REMOTE_ADDR=f"10.9.5.{n}")
        assert response.status_code == 204, response.content
    assert_throttled(client.post(RESET_PASSWORD, {"email": ACME.admin_email}, format="json", REMOTE_ADDR="10.9.5.9"))


# --- current_password checks ------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", [SET_PASSWORD, SET_EMAIL, "delete"])
def test_current_password_checks_are_throttled_per_account(rates: Callable[..., None], path: str) -> None:
    rates(login_account="10/min")
    alice = make_user(prefix="alice")
    client = api_client(user=alice)  # one login: one of the ten

    def guess(n: int) -> Any:
        wrong = {"current_password": f"guess{n}"}
        if path == SET_PASSWORD:
            return client.post(path, {**wrong, "new_password": "Fresh-Staple-Orbit-42"}, format="json")
        if path == SET_EMAIL:
            return client.post(path, {**wrong, "new_email": f"alice{n}@acme.test"}, format="json")
        return client.generic("DELETE", "/api/auth/users/me/", json.dumps(wrong), "application/json")

    statuses = [guess(n).status_code for n in range(25)]
    assert statuses[:9] == [400] * 9
    assert set(statuses[9:]) == {429}
    assert_throttled(guess(99))
    # The same counter as the logins: the right password is refused there too.
    assert_throttled(login(ip="10.9.6.1", password=PASSWORD, email=alice.email))


# --- shared by every process, without Redis ----------------------------------------------------------------------

_CHILD = """
import django, os, sys
django.setup()
from django.conf import settings
from django_tenants.utils import schema_context
from accounts.auth import rates
settings.REDIS_URL = ""
with schema_context("acme"):
    for _ in range(int(sys.argv[2])):
        count, _left = rates.hit(sys.argv[1], 3600)
print(count)
"""


def test_counters_are_shared_by_processes_without_redis(committed: Callable[[str], None], settings: Any) -> None:
    """Two gunicorn workers are two processes: a hit counted in one must be
    seen by the other. Another OS process counts 5 hits; this one's next hit
    is the 6th."""
    settings.REDIS_URL = ""
    key = f"test:shared:{os.getpid()}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": "",
        "PYTHONPATH": str(ROOT),
    }
    try:
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, key, "5"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert child.returncode == 0, child.stderr
        assert float(child.stdout.strip().splitlines()[-1]) == 5
        with schema_context(ACME.schema):
            count, _left = counters.hit(key, 3600)
        assert 5.9 < count <= 6  # (a window's end between the two weighs the 5 a little less)
    finally:
        with schema_context(ACME.schema):
            RateCounter.objects.filter(key=key).delete()


def _database_url() -> str:
    """The test database, as a URL another process can use."""
    db = connection.settings_dict
    host = db["HOST"].replace("/", "%2F")
    return f"postgres://{db['USER']}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.django_db
def test_a_burst_across_a_window_end_is_still_one_burst(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten hits in the last second of a minute and one in the first second of
    the next: eleven in two seconds. Fixed windows alone would count the
    eleventh as the first of a new minute."""
    clock = {"now": 1_800_000_000 // 60 * 60 + 59.0}  # one second before a minute ends
    monkeypatch.setattr(counters.time, "time", lambda: clock["now"])
    with schema_context(ACME.schema):
        for _ in range(10):
            counters.hit("test:burst", 60)
        clock["now"] += 2
        count, _left = counters.hit("test:burst", 60)
    assert count > 10, count
    # Long after, the previous burst no longer weighs anything.
    clock["now"] += 120
    with schema_context(ACME.schema):
        count, _left = counters.hit("test:burst", 60)
    assert count == 1


# --- found in review -------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_unicode_compatibility_spellings_share_the_admin_login_counter(rates: Callable[..., None]) -> None:
    """Django's login form NFKC-normalises the username before authenticating:
    a full-width spelling logs into the same account, so it is the same counter."""
    rates(login_account="3/min")
    for n in range(3):
        admin_login(ACME.admin_email, f"guess{n}", ip=f"10.9.7.{n}")
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" and c != "@" else c for c in ACME.admin_email)
    _status, page, logged_in = admin_login(fullwidth, PASSWORD, ip="10.9.7.99")
    assert not logged_in
    assert "Too many login attempts" in page


@pytest.mark.django_db
def test_the_admin_password_change_form_is_a_current_password_check(rates: Callable[..., None]) -> None:
    rates(login_account="5/min")
    browser = Client(HTTP_HOST=ACME.host, REMOTE_ADDR="10.9.8.1")
    token = csrf_token(browser.get("/admin/login/"))
    browser.post("/admin/login/", {"username": ACME.admin_email, "password": PASSWORD, "csrfmiddlewaretoken": token})
    statuses = []
    for n in range(8):
        token = csrf_token(browser.get("/admin/password_change/"))
        form = {"old_password": f"guess{n}", "new_password1": "Ne3w-Pass-Word!", "new_password2": "Ne3w-Pass-Word!"}
        statuses.append(browser.post("/admin/password_change/", {**form, "csrfmiddlewaretoken": token}).status_code)
    assert 429 in statuses, statuses
    assert statuses[-1] == 429
    # Anonymous callers are sent to the login page, as the admin does.
    assert Client(HTTP_HOST=ACME.host).get("/admin/password_change/").status_code == 302


@pytest.mark.django_db
def test_a_numeric_username_sent_as_a_number_is_counted_as_the_text(rates: Callable[..., None]) -> None:
    rates(login_account="3/min")
    make_user(email="numbers@acme.test", username="31337")
    for n in range(3):
        login(ip=f"10.9.9.{n}", username="31337")
    assert_throttled(api_client(ACME).post(LOGIN, {"username": 31337, "password": PASSWORD}, format="json"))
