"""Fuzzing both hosts' OpenAPI schemas with schemathesis: no 5xx, and every
answer as the schema says.

Each host's schema is loaded from its own ``/api/schema/`` (config.urls_public
on the base domain, config.urls_tenant on acme's host) through the project's
WSGI application, and every operation in it is called in process through that
application (tenant middleware, DRF, the error handlers: what a server runs),
with cases hypothesis generates from the schema, as each caller:

* public host: a superuser operator and a plain (staff, not superuser) operator;
* acme's host: its admin and a plain user; on both hosts, nobody (no token).

Path parameters are the generated ones or, half the time, ids that exist
(the fixture's products, group, customer, invitation, emails, users,
operators, tenants, domains), so detail operations get past their 404.

Each call runs in a savepoint of the test's transaction, rolled back once
the answer is in: every case meets the same state (the session's tenants and
the fixture's rows), state-changing operations run for real (a DELETE, a
PATCH of the caller itself, logout_all, provisioning a tenant, archiving or
purging one: PostgreSQL DDL is transactional) without changing what the next
case sees, and nothing is committed, so no other test is affected. So no
operation is excluded. Throttles are set generous (``rates``): their 429s
are tests/accounts/test_brute_force.py's subject.

Checks, on every answer, of cases that fit the schema and of cases that do
not (schemathesis' positive and negative modes): ``not_a_server_error``,
``status_code_conformance`` (the status is documented),
``content_type_conformance``, ``response_schema_conformance`` (the body
matches), ``response_headers_conformance``, and ``body_is_documented``
(below: a body where the schema documents none).

Not run, and why:
* ``negative_data_rejection``: DRF coerces by design what the schema's types
  forbid (a number for a string field, "1" for an integer, read-only fields
  ignored, a bad page size falls back to the default), so a 2xx for such a
  case is no lie about the answers; what the API must refuse is refused in
  tests/test_hostile_input.py (wrong types, NULs, huge integers) instead.
* ``positive_data_acceptance``: the schema cannot say what a valid body also
  needs (an email not yet taken, a strong password, a group id that exists,
  a slug not reserved), so a schema-valid body is often rightly a 400.
* ``ignored_auth``, ``use_after_free``, ``ensure_resource_availability``:
  stateful (they replay or chain requests); every call here is rolled back,
  and authentication is covered by the anonymous callers and by
  tests/accounts/test_jwt_binding.py and tests/test_hostile_input.py.
* ``unsupported_method``, ``missing_required_header``: DRF's 405 is not
  under test here; no operation has a required header.
* Shrinking (hypothesis' shrink phase) is off to keep the run bounded; a
  failure shows the case as found, with a curl line to reproduce it.

Budget: ``FUZZ_EXAMPLES`` cases per operation, caller and mode, 6 by
default: about 3,200 calls over the 6 callers, 100 operations (28 on the
public host, 72 on acme's), some 90 seconds on two cores.
``FUZZ_EXAMPLES=40 pytest tests/test_fuzz.py`` for a bench run (21,000
calls, about 7 minutes). Cases are derandomized (the same every run, so CI
does not flake); ``FUZZ_SEED=<int>`` explores others.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from django.core.signals import got_request_exception, request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tenants.db import connection
from tests.helpers import ACME, BASE, OPERATOR_EMAIL, jwt_login, make_targets, path_parameters

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "6"))
SEED = os.environ.get("FUZZ_SEED")


def body_is_documented(ctx: Any, response: Any, case: Any) -> bool | None:
    """An answer with a body where the schema says the status has none
    (``response_schema_conformance`` has nothing to compare it with then)."""
    responses = case.operation.definition.raw.get("responses", {})
    documented = responses.get(str(response.status_code)) or responses.get("default")
    if documented is not None and response.content and not documented.get("content"):
        raise AssertionError(f"{response.status_code} has a body, the schema says none: {response.content[:300]!r}")
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    body_is_documented,
]


@contextlib.contextmanager
def connection_kept() -> Iterator[None]:
    """Calls into the WSGI application keep the test's connection (and its
    transaction) open, as Django's test client does: Django closes a
    connection not in autocommit at the start and end of every request."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@dataclass
class Caller:
    name: str
    host: str
    token: str | None


@dataclass
class World:
    """What exists for the fuzzed calls: the callers' tokens, and real ids
    per collection name (the path segment before a parameter)."""

    callers: dict[str, Caller]
    known: dict[str, list[Any]]


@dataclass
class Report:
    calls: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


@pytest.fixture
def world(rates: Callable[..., None]) -> World:
    rates()
    targets = make_targets()
    callers = {
        "operator": Caller("operator", BASE, jwt_login(BASE, OPERATOR_EMAIL)["access"]),
        "staff": Caller("staff", BASE, jwt_login(BASE, targets.staff.email)["access"]),
        "public-anonymous": Caller("anonymous", BASE, None),
        "admin": Caller("admin", ACME.host, jwt_login(ACME, ACME.admin_email)["access"]),
        "user": Caller("user", ACME.host, jwt_login(ACME, targets.user.email)["access"]),
        "acme-anonymous": Caller("anonymous", ACME.host, None),
    }
    return World(callers=callers, known=targets.ids)


def load_schema(host: str) -> Any:
    with connection_kept():
        schema = schemathesis.openapi.from_wsgi(
            "/api/schema/", get_wsgi_application(), headers={"Host": host, "Accept": "application/vnd.oai.openapi+json"}
        )
    connection.set_schema_to_public()
    return schema


def cases(operation: Any, mode: GenerationMode, caller: Caller, known: dict[str, list[Any]]) -> Any:
    """Cases of ``operation`` as ``caller``: its token, fixed (never negated),
    and half the time the path parameters fixed to ids that exist."""
    headers = {"Authorization": f"Bearer {caller.token}"} if caller.token else None
    parameters = path_parameters(operation.path)
    existing = [known.get(collection, []) for collection in parameters.values()]
    generated = operation.as_strategy(generation_mode=mode, headers=headers)
    if not parameters or not all(existing):
        return generated
    combinations = [dict(zip(parameters, values, strict=True)) for values in itertools.product(*existing)]
    return generated | st.one_of(
        [operation.as_strategy(generation_mode=mode, headers=headers, path_parameters=ids) for ids in combinations]
    )


def fuzz(operation: Any, caller: Caller, world: World, report: Report) -> None:
    exceptions: list[str] = []

    def record(sender: Any, request: Any = None, **kwargs: Any) -> None:
        exceptions.append(traceback.format_exc())

    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=SEED is None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=cases(operation, mode, caller, world.known))
        def run(case: Any) -> None:
            exceptions.clear()
            savepoint = transaction.savepoint()
            try:
                with connection_kept():
                    response = case.call(base_url=f"http://{caller.host}")
            finally:
                transaction.savepoint_rollback(savepoint)
                connection.set_schema_to_public()
            report.calls += 1
            report.statuses[response.status_code] = report.statuses.get(response.status_code, 0) + 1
            try:
                case.validate_response(response, checks=CHECKS)
            except BaseException as exc:
                if exceptions:
                    exc.add_note("Server traceback:\n" + exceptions[-1])
                raise

        if SEED is not None:
            run = seed(int(SEED))(run)
        got_request_exception.connect(record)
        try:
            run()
        except Unsatisfiable:
            pass  # nothing to negate: no parameters, no body
        except (Exception, BaseExceptionGroup) as exc:
            notes = "\n".join(getattr(exc, "__notes__", []))
            report.failures.append(f"{caller.name} {mode.value} {operation.label}:\n{exc}\n{notes}")
        finally:
            got_request_exception.disconnect(record)


@pytest.mark.parametrize("caller_name", ["operator", "staff", "public-anonymous", "admin", "user", "acme-anonymous"])
def test_every_operation_answers_as_its_schema_says(world: World, caller_name: str) -> None:
    caller = world.callers[caller_name]
    schema = load_schema(caller.host)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20, [op.label for op in operations]
    report = Report()
    started = time.monotonic()
    for operation in operations:
        fuzz(operation, caller, world, report)
    elapsed = time.monotonic() - started
    print(
        f"\n{caller.host} as {caller.name}: {len(operations)} operations, {report.calls} calls in {elapsed:.1f} s, "
        f"statuses {dict(sorted(report.statuses.items()))}, {len(report.failures)} failing"
    )
    assert not report.failures, "\n\n".join(report.failures)
