"""Writes on tenants: provisioning, updates, archiving, purging, domains.

Every path that creates a tenant (platform API, ``provision_tenant`` command,
demo seeding, tests, benchmark) goes through ``tenant_provision``.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
import string
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Literal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.validators import validate_email
from django.db import OperationalError, ProgrammingError, transaction
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone
from psycopg import errors as pg_errors
from psycopg import sql

from core.errors import ApplicationError, Conflict, duplicate_raises
from core.metrics import PROVISION_SECONDS, PROVISIONS
from tenants import cache as tenant_cache
from tenants import citus, cloning, selectors
from tenants.db import connection
from tenants.fleet import TEMPLATE_LOCK, FleetExecutor, FleetReport
from tenants.fleet import fingerprint as fleet_fingerprint
from tenants.models import LINK_KINDS, MAX_CORS_ORIGINS, ORIGIN_MAX_LENGTH, Domain, Tenant

logger = logging.getLogger(__name__)

SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
# "information-schema" would be the schema information_schema, which PostgreSQL owns (like pg_*).
RESERVED_SLUGS = frozenset(
    {"public", "www", "api", "admin", "static", "media", "template", "tenant-template", "information-schema"}
)
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$")


class TenantBusy(Conflict):
    code = "tenant_busy"


class SlugTaken(Conflict):
    code = "slug_taken"


def template_schema() -> str:
    return str(settings.TENANT_TEMPLATE_SCHEMA)


def schema_name_for(slug: str) -> str:
    return slug.replace("-", "_")


def primary_domain_for(slug: str) -> str:
    return f"{slug}.{settings.TENANT_BASE_DOMAIN}"


def validate_slug(slug: object) -> str:
    if not isinstance(slug, str) or not SLUG_RE.fullmatch(slug):  # fullmatch: "$" would allow a trailing "\n"
        raise ApplicationError(
            "Use 3-32 characters: lowercase letters, digits and hyphens, starting with a letter "
            "and not ending with a hyphen.",
            field="slug",
        )
    if slug in RESERVED_SLUGS or slug.startswith("pg-") or schema_name_for(slug) == template_schema():
        raise ApplicationError(f"'{slug}' is reserved.", field="slug", code="reserved")
    if "--" in slug:
        raise ApplicationError("Consecutive hyphens are not allowed.", field="slug")
    return slug


# --- template ---------------------------------------------------------------------


@functools.cache
def _expected_migrations() -> frozenset[tuple[str, str]]:
    """Every migration on disk: migrate_schemas records all of them in a tenant
    schema (operations of shared-only apps are skipped by the router)."""
    return frozenset(MigrationLoader(None, ignore_no_migrations=True).graph.nodes)


def template_ensure(*, verbosity: int = 0, migrate: bool = True) -> Tenant:
    """Create the template tenant (row + schema, by plain migrations) if missing,
    and bring it up to date if it lags behind the migrations on disk (through
    the fleet executor, which captures the SQL the tenants then replay)."""
    template, _ = Tenant.objects.get_or_create(
        is_template=True,
        defaults={
            "slug": "tenant-template",
            "name": "Template for new tenants (never served)",
            "schema_name": template_schema(),
            "is_active": False,
        },
    )
    if not _has_migrations_table(template_schema()):
        _template_create(verbosity)
    elif migrate and not _template_is_current():
        FleetExecutor().migrate_template(verbosity)
    return template


def _template_create(verbosity: int) -> None:
    with connection.cursor() as cursor:
        # Session-level and exclusive: held across migrate_schemas' own
        # transactions, so no provision clones a half-migrated template.
        cursor.execute("SELECT pg_advisory_lock(%s)", [TEMPLATE_LOCK])
    try:
        if not _template_is_current():
            with transaction.atomic(), connection.cursor() as cursor:
                schema = sql.Identifier(template_schema()).as_string()
                # On Citus the template stays a local schema on the coordinator
                # (new tenants are cloned from it there, then distributed).
                with citus.local_schemas(cursor):
                    cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            call_command(
                "migrate_schemas", tenant=True, schema_name=template_schema(), interactive=False, verbosity=verbosity
            )
    finally:
        connection.set_schema_to_public()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [TEMPLATE_LOCK])


def _template_is_current() -> bool:
    return schema_is_current(template_schema())


def _has_migrations_table(schema: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT to_regclass(%s) IS NOT NULL", [f"{sql.Identifier(schema).as_string()}.django_migrations"]
        )
        return bool(cursor.fetchone()[0])


def schema_is_current(schema: str) -> bool:
    """Whether ``schema`` has every migration on disk applied: two cheap queries."""
    if not _has_migrations_table(schema):
        return False
    with connection.cursor() as cursor:
        applied = cloning.applied_migrations(cursor, schema)
    return _expected_migrations() <= applied


def tenants_migrate(
    *,
    verbosity: int = 0,
    connections_max: int = 2,
    lock_timeout: str = "5s",
    replay: bool = True,
    verify: bool = False,
    schemas: list[str] | None = None,
    progress: IO[str] | None = None,
) -> FleetReport:
    """Bring the template and every tenant schema up to date with the fleet
    executor (tenants/fleet.py): schemas already current cost one query per 500."""
    template_ensure(verbosity=verbosity, migrate=False)  # created if missing; migrated by the executor
    executor = FleetExecutor(
        connections_max=connections_max, lock_timeout=lock_timeout, replay=replay, verify=verify, progress=progress
    )
    return executor.run(schemas=schemas, verbosity=verbosity)


# --- provisioning ------------------------------------------------------------------


@dataclass
class ProvisionTimings:
    """Where the time of one provision went (seconds), for the benchmark."""

    password_hash: float = 0.0
    provision: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)


def tenant_provision(
    *,
    slug: str,
    name: str,
    admin_email: str,
    admin_password: str,
    admin_username: str | None = None,
    require_activation: bool = True,
    method: Literal["clone", "migrate"] = "clone",
    timings: ProvisionTimings | None = None,
) -> Tenant:
    """Create a tenant with its schema, primary domain and first admin.

    All or nothing: the tenant row, the domain, the schema and the admin are
    written in one transaction (PostgreSQL DDL is transactional), so any error
    leaves nothing behind. Two provisions of the same slug: the second waits on
    the first's unique index entry and then fails with ``SlugTaken``.
    """
    timings = timings or ProvisionTimings()
    slug = validate_slug(slug)
    name = _validate_name(name)
    admin_email, admin_username = _validate_admin(admin_email, admin_username, admin_password)

    started = time.perf_counter()
    password_hash = make_password(admin_password)
    timings.password_hash = time.perf_counter() - started
    spec = _NewTenant(
        slug=slug,
        name=name,
        require_activation=require_activation,
        admin_email=admin_email,
        admin_username=admin_username,
        password_hash=password_hash,
    )
    started = time.perf_counter()
    try:
        tenant = (_provision_by_clone if method == "clone" else _provision_by_migrations)(spec)
    except SlugTaken:
        PROVISIONS.labels(outcome="conflict").inc()
        raise
    except Exception:
        PROVISIONS.labels(outcome="failed").inc()
        raise
    timings.provision = time.perf_counter() - started
    PROVISIONS.labels(outcome="ok").inc()
    PROVISION_SECONDS.observe(timings.provision)
    logger.info("provisioned tenant %s (%s) in %.0f ms", slug, method, timings.provision * 1000)
    return tenant


def _validate_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ApplicationError("A name is required.", field="name")
    if len(name) > 200:
        raise ApplicationError("At most 200 characters.", field="name")
    return name.strip()


def _validate_admin(email: object, username: object, password: object) -> tuple[str, str]:
    if not isinstance(email, str):
        raise ApplicationError("A valid email address is required.", field="admin_email")
    email = get_user_model().objects.normalize_email(email.strip())
    try:
        validate_email(email)
    except ValidationError:
        raise ApplicationError("Enter a valid email address.", field="admin_email") from None
    if username is None:
        username = re.sub(r"[^\w.@+-]", "", email.split("@", 1)[0])[:150] or "admin"
    if not isinstance(username, str) or not re.fullmatch(r"[\w.@+-]{1,150}", username):
        raise ApplicationError("Letters, digits and @/./+/-/_ only, at most 150.", field="admin_username")
    if not isinstance(password, str) or not password:
        raise ApplicationError("A password is required.", field="admin_password")
    probe = get_user_model()(email=email, username=username)
    try:
        validate_password(password, user=probe)
    except ValidationError as exc:
        raise ApplicationError(" ".join(exc.messages), field="admin_password") from None
    return email, username


@dataclass(frozen=True)
class _NewTenant:
    """A validated provisioning request, the admin's password already hashed."""

    slug: str
    name: str
    require_activation: bool
    admin_email: str
    admin_username: str
    password_hash: str

    @property
    def domain(self) -> str:
        return primary_domain_for(self.slug)


def _insert_tenant_rows(spec: _NewTenant, *, is_active: bool = True, migrated_to: str = "") -> Tenant:
    tenant = Tenant(
        migrated_to=migrated_to,
        slug=spec.slug,
        name=spec.name,
        schema_name=schema_name_for(spec.slug),
        require_activation=spec.require_activation,
        is_active=is_active,
    )
    with duplicate_raises(SlugTaken(f"A tenant with slug '{spec.slug}' already exists.", field="slug")):
        # Skip TenantMixin.save(): its case-insensitive pre-check is a
        # racy extra query; our schema names are lowercase by construction
        # and the unique indexes decide races.
        Tenant.objects.bulk_create([tenant])
        Domain.objects.bulk_create([Domain(tenant=tenant, domain=spec.domain, is_primary=True)])
    # bulk_create sends no signals: forget a cached "unknown host" ourselves.
    tenant_cache.evict_hosts([spec.domain])
    return tenant


def _create_admin(tenant: Tenant, spec: _NewTenant) -> None:
    connection.set_tenant(tenant)
    get_user_model().objects.create(
        email=spec.admin_email,
        username=spec.admin_username,
        password=spec.password_hash,
        is_staff=True,
        is_superuser=True,
        is_active=True,
        activated_at=timezone.now(),
    )


def _provision_by_clone(spec: _NewTenant) -> Tenant:
    if not _template_is_current():
        template_ensure()
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [TEMPLATE_LOCK])
                applied = cloning.applied_migrations(cursor, template_schema())
                script = cloning.clone_script(cursor, template_schema(), cloning.fingerprint_of(applied))
            # The clone has the template's migrations: mark it current when they are all there.
            marker = fleet_fingerprint(_expected_migrations()) if _expected_migrations() <= applied else ""
            tenant = _insert_tenant_rows(spec, migrated_to=marker)
            on_citus = citus.is_citus()
            with connection.cursor() as cursor:
                try:
                    # On Citus the script runs locally (one string of many
                    # statements, ALTERs a distributed schema refuses), then
                    # the schema is distributed below.
                    with citus.local_schemas(cursor):
                        cursor.execute(script.render(tenant.schema_name))
                except ProgrammingError as exc:  # Django wraps psycopg's errors
                    if isinstance(exc.__cause__, pg_errors.DuplicateSchema):
                        raise SlugTaken(f"A schema for '{spec.slug}' already exists.", field="slug") from None
                    raise
            _create_admin(tenant, spec)
            if on_citus:
                # After the admin: every write of this transaction is local, and
                # its deferred checks run before the schema moves (Citus could
                # not run them on the worker at a purge in this transaction).
                connection.set_schema_to_public()
                with connection.cursor() as cursor:
                    citus.distribute_schema(cursor, tenant.schema_name, _tables_with_rows(tenant.schema_name))
    finally:
        # Also forgets the search_path the clone script set locally.
        connection.set_schema_to_public()
    return tenant


def _provision_by_migrations(spec: _NewTenant) -> Tenant:
    """The slow reference path (what django-tenants does without a template):
    run every migration in a new schema. Kept for the benchmark and as a
    fallback. migrate commits as it goes, so this path cannot be one
    transaction: the row claims the slug first but stays suspended (its host
    answers 403, never a half-migrated schema) until the admin exists, and a
    failure is cleaned up by hand."""
    tenant = _insert_tenant_rows(spec, is_active=False)
    schema_created = False
    try:
        on_citus = citus.is_citus()
        # On Citus: local while migrations run (some are refused in a
        # distributed schema), distributed with the admin below.
        with transaction.atomic(), connection.cursor() as cursor, citus.local_schemas(cursor):
            cursor.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(tenant.schema_name)).as_string())
        schema_created = True
        call_command("migrate_schemas", tenant=True, schema_name=tenant.schema_name, interactive=False, verbosity=0)
        with transaction.atomic():
            _create_admin(tenant, spec)
            connection.set_schema_to_public()
            if on_citus:
                with connection.cursor() as cursor:
                    citus.distribute_schema(cursor, tenant.schema_name, _tables_with_rows(tenant.schema_name))
            tenant.is_active = True
            tenant.save(update_fields=["is_active"])  # evicts the cached "suspended" answer
    except BaseException:
        connection.set_schema_to_public()
        if schema_created:
            _drop_tenant(tenant)
        else:  # someone else's schema (CREATE SCHEMA failed): keep it, drop only our rows
            Tenant.objects.filter(pk=tenant.pk).delete()
        raise
    finally:
        connection.set_schema_to_public()
    return tenant


def _tables_with_rows(schema: str) -> list[str]:
    """The schema's tables that hold rows, in two queries."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = %s::regnamespace AND relkind = 'r'",
            [sql.Identifier(schema).as_string()],
        )
        names = [row[0] for row in cursor.fetchall()]
        if not names:
            return []
        cursor.execute(
            " UNION ALL ".join(
                f"SELECT {sql.Literal(name).as_string()} "  # noqa: S608
                f"WHERE EXISTS (SELECT 1 FROM {sql.Identifier(schema, name).as_string()})"
                for name in names
            )
        )
        return [row[0] for row in cursor.fetchall()]


# --- lifecycle ------------------------------------------------------------------------


def tenant_update(
    *,
    tenant: Tenant,
    name: str | None = None,
    is_active: bool | None = None,
    require_activation: bool | None = None,
    cors_allowed_origins: Sequence[str] | None = None,
    link_templates: dict[str, str | None] | None = None,
) -> Tenant:
    """Change what is given (None: leave as is). Everything is validated
    before anything is written; the save evicts the tenant's cached hosts
    (tenants.cache), so its next request sees the change. ``link_templates``
    is merged into the tenant's: a kind given null (or "") goes back to the
    deployment's template."""
    origins = normalize_origins(cors_allowed_origins) if cors_allowed_origins is not None else None
    templates = normalize_link_templates(link_templates) if link_templates is not None else None
    name = _validate_name(name) if name is not None else None
    fields: list[str] = []
    if templates is not None:
        merged = {**(tenant.link_templates or {}), **templates}
        tenant.link_templates = {kind: value for kind, value in merged.items() if value}
        fields.append("link_templates")
    if name is not None:
        tenant.name = name
        fields.append("name")
    if is_active is not None:
        tenant.is_active = bool(is_active)
        # One notion of "suspended", whichever way it was asked for.
        tenant.archived_at = None if is_active else (tenant.archived_at or timezone.now())
        fields += ["is_active", "archived_at"]
    if require_activation is not None:
        tenant.require_activation = bool(require_activation)
        fields.append("require_activation")
    if origins is not None:
        tenant.cors_allowed_origins = origins
        fields.append("cors_allowed_origins")
    if fields:
        with transaction.atomic():  # the cache's eviction may refuse the change (tenants.cache)
            tenant.save(update_fields=fields)
    return tenant


# --- emailed links -------------------------------------------------------------------

LINK_FIELD = "link_templates"
_LINK_TEMPLATE_MAX = 500
_LINK_PLACEHOLDERS = frozenset({"scheme", "domain", "slug", "uid", "token"})


def normalize_link_templates(values: object) -> dict[str, str | None]:
    """{kind: template or None}, each template checked by ``check_link_template``."""
    if not isinstance(values, dict):
        raise ApplicationError(
            'Give an object: {"activation": "https://app.example.com/a/{uid}/{token}"}.', field=LINK_FIELD
        )
    unknown = sorted(set(values) - set(LINK_KINDS))
    if unknown:
        raise ApplicationError(
            f"Unknown link kind {unknown[0]!r}; the kinds are {', '.join(LINK_KINDS)}.", field=LINK_FIELD
        )
    cleaned: dict[str, str | None] = {}
    for kind, template in values.items():
        if template is None or template == "":
            cleaned[kind] = None
            continue
        problem = check_link_template(kind, template)
        if problem:
            raise ApplicationError(f"{kind}: {problem}", field=LINK_FIELD)
        cleaned[kind] = template.strip()
    return cleaned


def check_link_template(kind: str, template: object) -> str:
    """What is wrong with an emailed link's template, or "" (used for the
    tenants' templates and, by a system check, for the deployment's)."""
    if not isinstance(template, str) or not template.strip():
        return "a template is a non-empty string."
    template = template.strip()
    if len(template) > _LINK_TEMPLATE_MAX:
        return f"at most {_LINK_TEMPLATE_MAX} characters."
    if any(ch.isspace() or ch == "\x00" for ch in template):
        return "a link has no spaces or control characters."
    try:
        fields = [
            (name, spec, conv) for _text, name, spec, conv in string.Formatter().parse(template) if name is not None
        ]
    except ValueError:
        return "unbalanced { or }."
    if any(spec or conv for _name, spec, conv in fields):
        return "placeholders take no format spec or conversion: write {token}, not {token:...} or {token!r}."
    names = {name for name, _spec, _conv in fields}
    needed = {"token"} if kind == "invitation" else {"uid", "token"}
    if not needed <= names:
        return f"it must contain {' and '.join('{' + n + '}' for n in sorted(needed, reverse=True))}."
    allowed = _LINK_PLACEHOLDERS - ({"uid"} if kind == "invitation" else set())
    if names - allowed:
        return f"unknown placeholder {{{sorted(names - allowed)[0]}}}; use {', '.join(sorted(allowed))}."
    if "://" in template and not template.lower().startswith(("https://", "http://", "{scheme}://")):
        return "a full link starts with https://, http:// or {scheme}://."
    return ""


# --- CORS origins ---------------------------------------------------------------------

CORS_FIELD = "cors_allowed_origins"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_IPV4_RE = re.compile(r"^[0-9.]+$")


def normalize_origins(values: object) -> list[str]:
    """A tenant's allowed browser origins, validated and normalized
    (``normalize_origin`` each, duplicates dropped, order kept), at most
    ``MAX_CORS_ORIGINS``. Errors name the field and the bad entry."""
    if not isinstance(values, list | tuple):
        raise ApplicationError("A list of origins is required.", field=CORS_FIELD)
    if len(values) > MAX_CORS_ORIGINS:
        raise ApplicationError(f"At most {MAX_CORS_ORIGINS} origins.", field=CORS_FIELD)
    normalized: dict[str, None] = {}
    for position, value in enumerate(values, start=1):
        if not isinstance(value, str):
            raise ApplicationError(f"Entry {position} is not a string.", field=CORS_FIELD)
        normalized[normalize_origin(value)] = None
    return list(normalized)


def normalize_origin(value: str) -> str:
    """``scheme://host[:port]`` as a browser sends it in ``Origin``: http or
    https, host lowercased (IDNA-encoded), default port dropped; no userinfo,
    path, query, fragment or wildcard. ``ApplicationError`` otherwise.

    tenants.cors normalizes the ``Origin`` header with this too."""
    # Echoed in the error: ascii() so a lone surrogate or control character
    # cannot break the JSON answer or the log line.
    shown = ascii(value if len(value) <= 80 else value[:77] + "...")[1:-1]

    def invalid(reason: str) -> ApplicationError:
        return ApplicationError(f"'{shown}': {reason}", field=CORS_FIELD)

    origin = value.strip()
    if len(origin) > ORIGIN_MAX_LENGTH:
        raise invalid(f"an origin has at most {ORIGIN_MAX_LENGTH} characters.")
    if origin == "null":
        raise invalid("the opaque origin, sent by any sandboxed page or local file, cannot be allowed.")
    if "*" in origin:
        raise invalid("wildcards are not allowed; list each origin.")
    if not origin.isprintable() or any(c.isspace() for c in origin):
        raise invalid("an origin has no spaces or control characters.")
    scheme, sep, rest = origin.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in _DEFAULT_PORTS:
        raise invalid("use http:// or https:// followed by a host, e.g. https://app.example.com.")
    if rest.endswith("/"):
        rest = rest[:-1]  # "https://app.example.com/" is how people paste an origin
    if any(c in rest for c in "/?#\\"):
        raise invalid("an origin has no path, query or fragment: scheme://host[:port] only.")
    if "@" in rest:
        raise invalid("an origin has no user or password.")
    host, port = _split_host_port(rest, invalid)
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _split_host_port(netloc: str, invalid: Callable[[str], ApplicationError]) -> tuple[str, int | None]:
    if netloc.startswith("["):  # an IPv6 literal
        address, bracket, port_text = netloc[1:].partition("]")
        if not bracket or (port_text and not port_text.startswith(":")):
            raise invalid("not a valid IPv6 address.")
        try:
            host = f"[{ipaddress.IPv6Address(address).compressed}]"
        except ValueError:
            raise invalid("not a valid IPv6 address.") from None
        port_text = port_text[1:]
    else:
        host, _, port_text = netloc.partition(":")
        host = _origin_host(host, invalid)
    if not port_text:
        return host, None
    # ASCII digits only: "²".isdigit() is true and int("²") raises.
    if not (port_text.isascii() and port_text.isdecimal()) or len(port_text) > 5 or not 0 < int(port_text) < 65536:
        raise invalid("the port is a number from 1 to 65535.")
    return host, int(port_text)


def _origin_host(host: str, invalid: Callable[[str], ApplicationError]) -> str:
    try:
        host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise invalid("not a valid host name.") from None
    if _IPV4_RE.fullmatch(host):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise invalid("not a valid IPv4 address.") from None
    if not DOMAIN_RE.fullmatch(host):
        raise invalid("not a valid host name.")
    return host


def tenant_archive(*, tenant: Tenant) -> Tenant:
    """Suspend the tenant and keep its data; reversible with is_active=true."""
    tenant.is_active = False
    tenant.archived_at = tenant.archived_at or timezone.now()
    with transaction.atomic():  # the cache's eviction may refuse the change (tenants.cache)
        tenant.save(update_fields=["is_active", "archived_at"])
    return tenant


def tenant_purge(*, tenant: Tenant, confirm: str) -> None:
    """Drop the schema and every row of the tenant, irrevocably."""
    if confirm != tenant.slug:
        raise ApplicationError(f"To purge, pass purge={tenant.slug}.", field="purge")
    _drop_tenant(tenant)


def _drop_tenant(tenant: Tenant) -> None:
    with transaction.atomic():
        with connection.cursor() as cursor:
            # Inside a larger transaction, deferred foreign-key checks may still
            # be pending on the tenant's tables; DROP refuses them. Run them now.
            on_citus = citus.is_citus()  # asked before: after a failed DROP no query runs
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(tenant.schema_name)).as_string()
            try:
                cursor.execute(drop)
            except OperationalError as exc:
                # Citus: the checks pending are on a worker, where SET
                # CONSTRAINTS does not reach (citusdata/citus #2234).
                if getattr(exc.__cause__, "sqlstate", None) == "55006" and on_citus:
                    raise TenantBusy(
                        f"'{tenant.slug}' was written to in this transaction; on Citus, purge it in a transaction "
                        "of its own.",
                        field="purge",
                    ) from None
                raise
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")  # back to Django's foreign keys' own timing
        Tenant.objects.filter(pk=tenant.pk).delete()  # domains cascade; cache signals fire


def tenant_move(*, tenant: Tenant, to_node: str, mode: str = "block_writes") -> dict[str, object]:
    """Citus: move the tenant's schema (all its tables, colocated) to another
    worker. Runs for as long as the copy takes; not for a web request."""
    if not citus.is_citus():
        raise ApplicationError("This database is not a Citus coordinator.", field="node")
    placement = citus.move_schema(tenant.schema_name, to_node, mode)
    logger.info("moved tenant %s to %s (%s)", tenant.slug, placement.node, mode)
    return {"citus": True, **placement.as_dict()}


# --- domains --------------------------------------------------------------------------


def domain_add(*, tenant: Tenant, domain: str, is_primary: bool = False) -> Domain:
    if not isinstance(domain, str):
        raise ApplicationError("A domain name is required.", field="domain")
    domain = selectors.normalize_domain(domain)
    try:  # an international name as the ASCII form browsers send: "bücher.example" -> "xn--bcher-kva.example"
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise ApplicationError("Enter a valid domain name, such as shop.example.com.", field="domain") from None
    labels = domain.split(".")
    # A name with a dot whose last label is not a number (RFC 3696, 2): "5" or
    # "shop" alone cannot be a customer's host, "10.1.2.3" is an address.
    if not DOMAIN_RE.fullmatch(domain) or len(labels) < 2 or labels[-1].isdigit():
        raise ApplicationError("Enter a valid domain name, such as shop.example.com.", field="domain")
    if domain.startswith("www."):
        # The router serves www.<host> as <host> (tenants.middleware): a domain
        # beginning with www. could never be reached.
        raise ApplicationError("Give the domain without www.; www.<domain> is served as <domain>.", field="domain")
    if domain == settings.TENANT_BASE_DOMAIN:
        raise ApplicationError(f"{domain} is the platform's own host.", field="domain")
    with duplicate_raises(Conflict(f"'{domain}' is already in use.", field="domain")), transaction.atomic():
        if is_primary:
            _unset_primary(tenant)
        created = Domain.objects.create(tenant=tenant, domain=domain, is_primary=is_primary)
    return created


def domain_make_primary(*, tenant: Tenant, domain: str) -> Domain:
    """Make ``domain`` the tenant's primary domain: emailed links are built on
    it from now on (the old primary stays a domain of the tenant, still
    served). One transaction; the one-primary constraint holds throughout."""
    with transaction.atomic():
        found = selectors.tenant_domain(tenant=tenant, domain=domain, for_update=True)
        if not found.is_primary:
            _unset_primary(tenant)
            found.is_primary = True
            found.save(update_fields=["is_primary"])
    return found


def _unset_primary(tenant: Tenant) -> None:
    # Through save(), not update(): the model signals evict the cached host.
    for old in Domain.objects.select_for_update().filter(tenant=tenant, is_primary=True):
        old.is_primary = False
        old.save(update_fields=["is_primary"])


def domain_remove(*, tenant: Tenant, domain: str) -> None:
    found = selectors.tenant_domain(tenant=tenant, domain=domain)
    if found.is_primary:
        raise ApplicationError(
            "The primary domain cannot be removed; make another domain primary first.", field="domain"
        )
    found.delete()
