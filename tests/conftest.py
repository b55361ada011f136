"""Test set-up: a real PostgreSQL, real schemas, real requests through the middleware.

The session creates the template and two tenants, ``acme`` and ``globex``,
through the provisioning service, committed in the test database. Each test
runs in a transaction that is rolled back (PostgreSQL DDL included), so a test
may provision tenants freely. Tests that need real commits (concurrency) use
``committed`` and clean up after themselves.

Fixtures only; what tests import lives in tests/helpers.py.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import environ
import pytest
from django.conf import settings
from django.core.cache import caches
from django.db import connections
from django.test.utils import setup_databases, teardown_databases
from rest_framework.test import APIClient

from accounts.services import user_create
from mail.services import wait_for_pending
from tenants import cache as tenant_cache
from tenants.db import connection
from tenants.models import Tenant
from tenants.services import template_ensure, tenant_provision, tenant_purge
from tests import citus_cluster
from tests.helpers import ACME, GLOBEX, OPERATOR_EMAIL, PASSWORD, PLATFORM, admin_client

# The browser tests' server and Chromium (tests/browser.py).
pytest_plugins = ["tests.browser"]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if os.environ.get("CITUS_URL"):
        terminalreporter.write_line(f"Citus: the suite ran on {settings.DATABASES['default']['NAME']} (CITUS_URL)")
    else:
        terminalreporter.write_line(citus_cluster.CITUS_NOT_RUN, yellow=True)


def pytest_configure(config: Any) -> None:
    # One test database per run, so that several runs on one server (a
    # developer's and CI's, or parallel sessions) never trip over each other.
    db = settings.DATABASES["default"]
    if os.environ.get("CITUS_URL"):
        # The whole suite on a Citus coordinator (tests/citus_cluster.py makes
        # the test database on every node).
        citus_db = environ.Env.db_url_config(os.environ["CITUS_URL"])
        db.update({key: citus_db.get(key, "") for key in ("NAME", "USER", "PASSWORD", "HOST", "PORT")})
    test = db.setdefault("TEST", {})
    if not test.get("NAME"):
        test["NAME"] = f"test_{db['NAME']}_{os.getpid()}"
    # Emails are delivered in the test's own transaction (it never commits);
    # tests/mail/ runs the real worker and the thread path on committed data.
    settings.EMAIL_DELIVERY = "inline"
    settings.PASSWORD_HASHERS = ["tests.hashers.FastArgon2PasswordHasher", *settings.PASSWORD_HASHERS]
    # Per-process tenant cache in tests: clearing it between tests must not
    # wipe the cache of a dev server or of another test run on this machine
    # (the cross-process tests in tests/tenants/test_routing.py set their own).
    settings.CACHES = {
        **settings.CACHES,
        "tenants": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "tenants-tests"},
    }


@pytest.fixture(scope="session")
def django_db_setup(
    request: Any, django_test_environment: None, django_db_blocker: Any, django_db_keepdb: bool
) -> Iterator[None]:
    """Always create the test database (pytest-django's own fixture creates it
    only for tests that ask for ``db``; ``committed`` tests do not), then the
    template, acme, globex and an operator."""
    verbosity = request.config.option.verbose
    db = settings.DATABASES["default"]
    # Only with CITUS_URL: Django's own set-up never connects to the configured
    # database (CI's need not exist), and a plain run must not start to.
    nodes = citus_cluster.prepare(db, db["TEST"]["NAME"]) if os.environ.get("CITUS_URL") else None
    with django_db_blocker.unblock():
        db_cfg = setup_databases(
            # On Citus the database exists already (made on every node above).
            verbosity=verbosity,
            interactive=False,
            aliases={"default": {}},
            keepdb=django_db_keepdb or nodes is not None,
        )
        assert connection.settings_dict["NAME"].startswith("test_"), "refusing to seed a non-test database"
        connection.set_schema_to_public()
        template_ensure()
        for demo in (ACME, GLOBEX):
            tenant_provision(
                slug=demo.slug, name=demo.slug.title(), admin_email=demo.admin_email, admin_password=demo.password
            )
        user_create(email=OPERATOR_EMAIL, username="operator", password=PASSWORD, is_staff=True, is_superuser=True)
    yield
    if not django_db_keepdb:
        with django_db_blocker.unblock():
            if nodes is None:
                teardown_databases(db_cfg, verbosity=verbosity)
            else:
                connections["default"].close()
                citus_cluster.drop(db, db["TEST"]["NAME"], nodes)


@pytest.fixture(autouse=True)
def _fresh_tenancy_state() -> Iterator[None]:
    caches["default"].clear()  # throttle counters
    tenant_cache.clear()
    connection.set_schema_to_public()
    yield
    connection.set_schema_to_public()
    tenant_cache.clear()


@pytest.fixture
def rates(settings: Any) -> Callable[..., None]:
    """``rates(login_account="3/min")``: every throttle generous (1000 per
    period) but the ones named, for the rest of the test."""
    generous = {
        "login_ip": "1000/min",
        "login_account": "1000/min",
        "register_ip": "1000/hour",
        "reset_ip": "1000/hour",
        "reset_account": "1000/hour",
    }

    def set_rates(**overrides: str) -> None:
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**generous, **overrides}}

    return set_rates


@pytest.fixture
def operator_client(db: None) -> APIClient:
    return admin_client(PLATFORM)


@pytest.fixture
def committed(django_db_setup: None, django_db_blocker: Any) -> Iterator[Callable[[str], None]]:
    """Real commits (no wrapping transaction); purges the slugs it is told about.

    Depends on django_db_setup so the test database exists and is the one in
    use even when no other fixture of the test asks for the database."""
    created: list[str] = []
    with django_db_blocker.unblock():
        yield created.append
        connection.set_schema_to_public()
        for tenant in Tenant.objects.filter(slug__in=created):
            tenant_purge(tenant=tenant, confirm=tenant.slug)


@pytest.fixture
def deliver(django_capture_on_commit_callbacks: Any, mailoutbox: list[Any]) -> Callable[[], Any]:
    """``with deliver() as outbox: <request>``: runs the on-commit hooks the
    request queued (the test transaction never commits) and waits until the
    emails they queued are handed to the locmem backend."""

    @contextlib.contextmanager
    def run() -> Iterator[list[Any]]:
        with django_capture_on_commit_callbacks(execute=True):
            yield mailoutbox
        wait_for_pending()

    return run
