"""The provisioning service, against real PostgreSQL schemas.

``tenant_provision`` must give a tenant that is indistinguishable from one
built by running every migration, with its first admin in its own schema only,
and it must leave nothing behind when it fails or loses a race.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection as django_connection
from django.db.migrations.loader import MigrationLoader
from django_tenants.utils import schema_context
from psycopg import sql

from accounts.models import User
from core.errors import ApplicationError
from tenants import cloning, services
from tenants.db import connection
from tenants.models import Domain, Tenant
from tenants.services import SlugTaken, schema_is_current, tenant_provision
from tests.helpers import ACME, GLOBEX, PASSWORD, api_client, jwt_login
from tests.tenants.schema_signature import schema_signature

# --- helpers ---------------------------------------------------------------------------------------------------


def provision(slug: str, **overrides: Any) -> Tenant:
    kwargs: dict[str, Any] = {
        "slug": slug,
        "name": slug.title(),
        "admin_email": f"boss@{slug}.test",
        "admin_password": PASSWORD,
    }
    kwargs.update(overrides)
    return tenant_provision(**kwargs)


def schema_exists(schema: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)", [schema])
        return bool(cursor.fetchone()[0])


def schema_names() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace")
        return {name for (name,) in cursor.fetchall()}


def assert_nothing_of(slug: str) -> None:
    """No schema, no tenant row, no domain row for ``slug``."""
    connection.set_schema_to_public()
    assert not schema_exists(services.schema_name_for(slug))
    assert not Tenant.objects.filter(slug=slug).exists()
    assert not Tenant.objects.filter(schema_name=services.schema_name_for(slug)).exists()
    assert not Domain.objects.filter(domain=services.primary_domain_for(slug)).exists()


def users_in(schema: str) -> list[tuple[str, bool, bool]]:
    with schema_context(schema):
        rows = list(User.objects.order_by("email").values_list("email", "is_superuser", "is_staff"))
    connection.set_schema_to_public()
    return rows


def rows_of(schema: str, query: str) -> list[tuple[Any, ...]]:
    """``query`` with ``{schema}`` replaced by the quoted schema name, sorted."""
    with connection.cursor() as cursor:
        cursor.execute(query.format(schema=sql.Identifier(schema).as_string()))
        return sorted(cursor.fetchall())


def signature_of(schema: str) -> dict[str, Any]:
    with connection.cursor() as cursor:
        signature = schema_signature(cursor, schema)
    # schema_signature sets the search_path for the rest of the transaction:
    # make django-tenants set it again before the next query.
    connection.set_schema_to_public()
    return signature


# --- happy path -----------------------------------------------------------------------------------------------


def test_provision_creates_row_schema_domain_and_admin(db: None) -> None:
    tenant = provision("initech", name="  Initech Corp  ", require_activation=False)

    row = Tenant.objects.get(slug="initech")
    assert row.pk == tenant.pk
    assert row.name == "Initech Corp"  # stripped
    assert row.schema_name == "initech"
    assert row.is_active is True
    assert row.is_template is False
    assert row.require_activation is False
    assert row.archived_at is None
    assert schema_exists("initech")

    domains = list(Domain.objects.filter(tenant=row).values_list("domain", "is_primary"))
    assert domains == [("initech.localhost", True)]

    assert users_in("initech") == [("boss@initech.test", True, True)]
    with schema_context("initech"):
        admin = User.objects.get()
        assert admin.username == "boss"  # derived from the email
        assert admin.is_active
        assert admin.check_password(PASSWORD)
    connection.set_schema_to_public()

    # Only in its own schema: not among the operators, not in another tenant.
    assert not User.objects.filter(email="boss@initech.test").exists()
    for other in (ACME, GLOBEX):
        assert "boss@initech.test" not in [email for email, *_ in users_in(other.slug)]


def test_hyphenated_slug_maps_to_underscored_schema(db: None) -> None:
    tenant = provision("big-co")
    assert tenant.schema_name == "big_co"
    assert schema_exists("big_co")
    assert Domain.objects.get(tenant=tenant).domain == "big-co.localhost"
    assert users_in("big_co") == [("boss@big-co.test", True, True)]


def test_admin_logs_in_on_new_host_only(db: None) -> None:
    provision("hooli", admin_username="gavin")
    tokens = jwt_login("hooli.localhost", "boss@hooli.test")
    assert set(tokens) >= {"access", "refresh"}

    me = api_client("hooli.localhost", token=tokens["access"])
    body = me.get("/api/auth/users/me/").json()
    assert body["email"] == "boss@hooli.test"
    assert body["username"] == "gavin"

    # The same credentials mean nothing on another tenant or the public host.
    for host in (ACME.host, "localhost"):
        response = api_client(host).post(
            "/api/auth/jwt/create/", {"email": "boss@hooli.test", "password": PASSWORD}, format="json"
        )
        assert response.status_code == 401, (host, response.content)


def test_template_is_never_served_and_holds_no_users(db: None) -> None:
    template = Tenant.objects.get(is_template=True)
    assert template.schema_name == services.template_schema()
    assert not template.is_active
    assert not Domain.objects.filter(tenant=template).exists()
    provision("umbrella")
    assert users_in(services.template_schema()) == []


# --- clone == migrate -----------------------------------------------------------------------------------------

TABLE_ROWS = {
    "django_migrations": "SELECT app, name FROM {schema}.django_migrations",
    "django_content_type": "SELECT id, app_label, model FROM {schema}.django_content_type",
    "auth_permission": "SELECT id, codename, content_type_id FROM {schema}.auth_permission",
}


def test_clone_is_indistinguishable_from_migrate(db: None) -> None:
    cloned = provision("cloned", method="clone")
    migrated = provision("migrated", method="migrate")

    clone_signature = signature_of(cloned.schema_name)
    migrate_signature = signature_of(migrated.schema_name)
    assert clone_signature["columns"], "signature of an empty schema proves nothing"
    assert clone_signature["constraints"]
    assert clone_signature["indexes"]
    assert clone_signature["sequences"]
    for part in ("columns", "constraints", "indexes", "sequences"):
        assert clone_signature[part] == migrate_signature[part], part

    for table, query in TABLE_ROWS.items():
        cloned_rows = rows_of(cloned.schema_name, query)
        assert cloned_rows, table
        assert cloned_rows == rows_of(migrated.schema_name, query), table

    on_disk = set(MigrationLoader(None, ignore_no_migrations=True).graph.nodes)
    for schema in (cloned.schema_name, migrated.schema_name):
        applied = set(rows_of(schema, TABLE_ROWS["django_migrations"]))
        assert on_disk <= applied, (schema, sorted(on_disk - applied))

    # Both admins are in place and the identity sequences continue after the
    # copied rows (a restart bug would collide with the template's ids).
    assert users_in("cloned") == [("boss@cloned.test", True, True)]
    assert users_in("migrated") == [("boss@migrated.test", True, True)]
    with schema_context("cloned"):
        ct = ContentType.objects.create(app_label="probe", model="probe")
        Permission.objects.create(codename="probe", name="probe", content_type=ct)
    connection.set_schema_to_public()


# --- all or nothing -------------------------------------------------------------------------------------------


class Boom(RuntimeError):
    pass


def _fail(*args: Any, **kwargs: Any) -> None:
    raise Boom("late failure")


@pytest.mark.parametrize("method", ["clone", "migrate"])
def test_failure_creating_admin_leaves_nothing(
    committed: Callable[[str], None], monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    slug = f"late-fail-{method}"
    committed(slug)  # cleanup, should anything survive
    before = schema_names()
    monkeypatch.setattr(services, "_create_admin", _fail)

    with pytest.raises(Boom):
        provision(slug, method=method)

    assert_nothing_of(slug)
    assert schema_names() == before
    assert connection.schema_name == "public"

    # And the slug is free again.
    monkeypatch.undo()
    provision(slug)
    assert users_in(services.schema_name_for(slug)) == [(f"boss@{slug}.test", True, True)]


def test_failure_inside_clone_script_leaves_nothing(
    committed: Callable[[str], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    slug = "script-fail"
    committed(slug)
    before = schema_names()
    real = cloning.clone_script

    def failing_script(cursor: Any, template: str, fingerprint: str) -> cloning.CloneScript:
        script = real(cursor, template, fingerprint)
        # Fail after the script has created the schema and its tables.
        return cloning.CloneScript(fingerprint, (*script.statements, "SELECT 1 / 0"))

    monkeypatch.setattr(cloning, "clone_script", failing_script)

    with pytest.raises(Exception, match="division by zero"):
        provision(slug)

    assert_nothing_of(slug)
    assert schema_names() == before
    assert connection.schema_name == "public"


def test_existing_slug_is_refused_and_keeps_the_original(db: None) -> None:
    before = schema_names()
    with pytest.raises(SlugTaken) as caught:
        provision(ACME.slug, admin_email="intruder@evil.test")
    assert caught.value.field == "slug"
    assert caught.value.status_code == 409
    assert schema_names() == before
    assert Tenant.objects.filter(slug=ACME.slug).count() == 1
    assert "intruder@evil.test" not in [email for email, *_ in users_in(ACME.slug)]


@pytest.fixture
def orphan_schema(committed: Callable[[str], None]) -> Any:
    """A committed schema with data but no tenant row (say, from a manual restore)."""
    made: list[str] = []

    def make(schema: str) -> str:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE SCHEMA {schema}")
            cursor.execute(f"CREATE TABLE {schema}.keep (x int)")
            cursor.execute(f"INSERT INTO {schema}.keep VALUES (42)")
        made.append(schema)
        return schema

    yield make
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        for schema in made:
            cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _orphan_intact(schema: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT x FROM {schema}.keep")
        return cursor.fetchall() == [(42,)]


def test_clone_onto_existing_schema_is_a_conflict_and_keeps_it(
    committed: Callable[[str], None], orphan_schema: Callable[[str], str]
) -> None:
    committed("orphan-clone")
    orphan_schema("orphan_clone")
    with pytest.raises(SlugTaken) as caught:
        provision("orphan-clone", method="clone")
    assert caught.value.field == "slug"
    assert not Tenant.objects.filter(slug="orphan-clone").exists()
    assert not Domain.objects.filter(domain="orphan-clone.localhost").exists()
    assert _orphan_intact("orphan_clone")


def test_migrate_onto_existing_schema_fails_and_keeps_it(
    committed: Callable[[str], None], orphan_schema: Callable[[str], str]
) -> None:
    committed("orphan-migrate")
    orphan_schema("orphan_migrate")
    with pytest.raises(Exception, match="already exists"):
        provision("orphan-migrate", method="migrate")
    assert not Tenant.objects.filter(slug="orphan-migrate").exists()
    assert not Domain.objects.filter(domain="orphan-migrate.localhost").exists()
    assert _orphan_intact("orphan_migrate")  # not dropped by the clean-up


# --- concurrency ----------------------------------------------------------------------------------------------


def _race(calls: list[dict[str, Any]]) -> list[Tenant | BaseException]:
    """Run one provision per thread, started together, each on its own connection."""
    barrier = threading.Barrier(len(calls))
    results: list[Tenant | BaseException | None] = [None] * len(calls)

    def run(index: int, kwargs: dict[str, Any]) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = tenant_provision(**kwargs)
        except BaseException as exc:
            results[index] = exc
        finally:
            django_connection.close()

    threads = [threading.Thread(target=run, args=(i, kwargs)) for i, kwargs in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a provision hung"
    assert all(result is not None for result in results)
    return results  # type: ignore[return-value]


def _kwargs(slug: str, email: str) -> dict[str, Any]:
    return {"slug": slug, "name": slug.title(), "admin_email": email, "admin_password": PASSWORD}


def test_concurrent_provisions_of_different_slugs_both_succeed(committed: Callable[[str], None]) -> None:
    committed("race-one")
    committed("race-two")

    results = _race([_kwargs("race-one", "a@one.test"), _kwargs("race-two", "b@two.test")])

    assert all(isinstance(result, Tenant) for result in results), results
    connection.set_schema_to_public()
    assert set(Tenant.objects.filter(slug__in=["race-one", "race-two"]).values_list("slug", flat=True)) == {
        "race-one",
        "race-two",
    }
    assert set(Domain.objects.filter(tenant__slug__in=["race-one", "race-two"]).values_list("domain", flat=True)) == {
        "race-one.localhost",
        "race-two.localhost",
    }
    assert users_in("race_one") == [("a@one.test", True, True)]
    assert users_in("race_two") == [("b@two.test", True, True)]


def test_concurrent_provisions_of_one_slug_exactly_one_wins(committed: Callable[[str], None]) -> None:
    committed("same-slug")
    before = schema_names()

    results = _race([_kwargs("same-slug", "first@same.test"), _kwargs("same-slug", "second@same.test")])

    winners = [r for r in results if isinstance(r, Tenant)]
    losers = [r for r in results if not isinstance(r, Tenant)]
    assert len(winners) == 1, results
    assert len(losers) == 1, results
    assert isinstance(losers[0], SlugTaken), results
    assert losers[0].field == "slug"

    connection.set_schema_to_public()
    assert schema_names() == before | {"same_slug"}
    assert Tenant.objects.filter(slug="same-slug").count() == 1
    assert list(Domain.objects.filter(tenant__slug="same-slug").values_list("domain", "is_primary")) == [
        ("same-slug.localhost", True)
    ]
    # Exactly the winner's admin, nothing of the loser's.
    winner_email = "first@same.test" if results[0] is winners[0] else "second@same.test"
    assert users_in("same_slug") == [(winner_email, True, True)]


# --- validation -----------------------------------------------------------------------------------------------

BAD_SLUGS = [
    "ab",  # too short
    "a" * 33,  # too long
    "",
    "Acme2",  # uppercase
    "1acme",  # leading digit
    "-acme",  # leading hyphen
    "acme-",  # trailing hyphen
    "ac_me",  # underscore
    "café",  # unicode
    "\uff41\uff43\uff4d\uff45",  # full-width "acme"
    "ac--me",  # consecutive hyphens
    "ac me",
    "acme.co",
    " acme",
    "acme\n",
    None,
    123,
    "public",
    "www",
    "api",
    "admin",
    "static",
    "media",
    "template",
    "tenant-template",
    "pg-anything",
    "pg-catalog",
    "pg-toast",
    "information-schema",  # -> schema information_schema, a system schema
]


@pytest.mark.parametrize("slug", BAD_SLUGS, ids=repr)
def test_bad_slug_is_refused_before_anything_is_made(db: None, slug: Any) -> None:
    tenants_before = Tenant.objects.count()
    schemas_before = schema_names()
    with pytest.raises(ApplicationError) as caught:
        tenant_provision(slug=slug, name="X", admin_email="boss@x.test", admin_password=PASSWORD)
    assert caught.value.field == "slug"
    assert caught.value.status_code == 400  # a validation error, not a conflict
    assert caught.value.message
    assert Tenant.objects.count() == tenants_before
    assert schema_names() == schemas_before


def test_longest_valid_slug_is_accepted(db: None) -> None:
    slug = "a" * 31 + "1"
    tenant = provision(slug, admin_email="boss@long.test")
    assert tenant.schema_name == slug
    assert schema_exists(slug)


@pytest.mark.parametrize("email", ["not-an-email", "", "   ", "two@@example.com", "a@b@c.test", None, 42])
def test_bad_admin_email_is_refused(db: None, email: Any) -> None:
    tenants_before = Tenant.objects.count()
    schemas_before = schema_names()
    with pytest.raises(ApplicationError) as caught:
        provision("bad-email", admin_email=email)
    assert caught.value.field == "admin_email"
    assert Tenant.objects.count() == tenants_before
    assert schema_names() == schemas_before


@pytest.mark.parametrize(
    "password",
    [
        "short",  # too short
        "password123",  # too common
        "83749201937465",  # entirely numeric
        "boss@weak.test",  # too similar to the email
        "",
        None,
    ],
)
def test_weak_admin_password_is_refused(db: None, password: Any) -> None:
    tenants_before = Tenant.objects.count()
    schemas_before = schema_names()
    with pytest.raises(ApplicationError) as caught:
        provision("weak", admin_email="boss@weak.test", admin_password=password)
    assert caught.value.field == "admin_password"
    assert Tenant.objects.count() == tenants_before
    assert schema_names() == schemas_before


@pytest.mark.parametrize("username", ["has space", "x" * 151, "semi;colon"])
def test_bad_admin_username_is_refused(db: None, username: str) -> None:
    with pytest.raises(ApplicationError) as caught:
        provision("bad-user", admin_username=username)
    assert caught.value.field == "admin_username"
    assert not Tenant.objects.filter(slug="bad-user").exists()


@pytest.mark.parametrize("name", ["", "   ", "n" * 201, None])
def test_bad_name_is_refused(db: None, name: Any) -> None:
    with pytest.raises(ApplicationError) as caught:
        provision("bad-name", name=name)
    assert caught.value.field == "name"
    assert not Tenant.objects.filter(slug="bad-name").exists()


def test_migrate_path_keeps_the_host_suspended_until_the_tenant_is_ready(db, monkeypatch):
    """migrate commits as it goes; while it runs, the host must answer 403, not a half-made schema."""
    seen: list[int] = []
    real_call_command = call_command

    def call_command_and_probe(*args, **kwargs):
        real_call_command(*args, **kwargs)
        seen.append(api_client("slowpoke.localhost").get("/api/health/").status_code)
        connection.set_schema_to_public()

    monkeypatch.setattr("tenants.services.call_command", call_command_and_probe)
    tenant_provision(slug="slowpoke", name="Slow", admin_email="a@slow.test", admin_password=PASSWORD, method="migrate")
    assert seen == [403]
    assert api_client("slowpoke.localhost").get("/api/health/").status_code == 200


def test_bootstrap_migrates_only_the_schemas_that_lag(db):
    """`bootstrap` checks each schema's django_migrations and runs migrate_schemas
    only where something is missing (plain migrate_schemas visits every schema)."""
    out = StringIO()
    call_command("bootstrap", verbosity=0, stdout=out)
    assert "Tenant schemas migrated: 0 of" in out.getvalue()

    # Make globex lag: unapply its last accounts migration, for real.
    leaf = max(name for app, name in MigrationLoader(None).graph.leaf_nodes() if app == "accounts")
    previous = max(name for app, name in MigrationLoader(None).graph.nodes if app == "accounts" and name < leaf)
    call_command("migrate_schemas", "accounts", previous, schema_name="globex", interactive=False, verbosity=0)
    connection.set_schema_to_public()
    assert not schema_is_current("globex")
    # The tenant's marker still says current: a plain run trusts it (one query
    # for the whole fleet); --verify reads every schema's django_migrations.
    out = StringIO()
    call_command("bootstrap", verbosity=0, stdout=out)
    assert "Tenant schemas migrated: 0 of" in out.getvalue()
    out = StringIO()
    call_command("bootstrap", "--verify", verbosity=0, stdout=out)
    assert "Tenant schemas migrated: 1 of" in out.getvalue()
    assert schema_is_current("globex")
