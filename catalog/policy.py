"""The permission rule for products, written once.

A user may perform action A on product P when any source grants it:

1. ``superuser`` of this tenant;
2. ``model_direct`` / ``model_group``: the model permission for A, held
   directly or through a group (DjangoModelPermissions);
3. ``object_direct`` / ``object_group``: guardian's object permission for A
   on P, directly or through a group (DjangoObjectPermissions);
4. ``owner``: the owner may view, change and delete (not publish);
5. ``published``: anyone, anonymous included, may view a published product.

Every consumer derives from the same branch definitions below:

* ``visible(user, action)``: the queryset of products allowed, as one SQL
  statement (``id = ANY(ARRAY(branch UNION ALL branch ...))``, each branch an
  index range; or no filter at all when a model-level source applies);
* ``product_with_access(user, pk, actions)``: one row with a boolean per action,
  the same ``id = ANY(...)`` expression evaluated for that row (detail views);
* ``explain(user, product)``: each source separately, with the names of the
  granting groups (the access endpoint).

A property test (tests/catalog/test_policy_agreement.py) checks that list
membership, detail status and explain agree for random worlds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.contrib.auth.models import AnonymousUser, Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.contrib.postgres.expressions import ArraySubquery
from django.db import connection
from django.db.models import (
    BooleanField,
    Exists,
    ExpressionWrapper,
    F,
    Func,
    IntegerField,
    Lookup,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce

from accounts.models import User
from accounts.permissions import is_tenant_admin
from catalog.models import Product, ProductGroupObjectPermission, ProductUserObjectPermission
from core import statements
from core.labels import permission_label

APP_LABEL = "catalog"
CODENAMES = {
    "view": "view_product",
    "add": "add_product",
    "change": "change_product",
    "delete": "delete_product",
    "publish": "can_publish_product",
}
ACTION_BY_CODENAME = {codename: action for action, codename in CODENAMES.items()}
# The per-method map: HTTP method -> action (and so -> codename).
METHOD_ACTIONS = {
    "GET": "view",
    "HEAD": "view",
    "OPTIONS": "view",
    "POST": "add",
    "PUT": "change",
    "PATCH": "change",
    "DELETE": "delete",
}
OBJECT_ACTIONS = ("view", "change", "delete", "publish")


OWNER_ACTIONS = frozenset({"view", "change", "delete"})
SOURCES = (
    "superuser",
    "model_direct",
    "model_group",
    "object_direct",
    "object_group",
    "owner",
    "published",
)

Caller = Any  # accounts.models.User or AnonymousUser


def action_for(method: str | None, named: str | None = None) -> str | None:
    """The action a request asks for: the one its view names (publish), else
    the per-method map's; None for a method the map does not know."""
    return named or METHOD_ACTIONS.get(method or "")


def _authenticated(user: Caller) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


# --- model-level sources: one query per request, whatever the actions ----------------


@dataclass(frozen=True)
class ModelGrants:
    """Which catalog model permissions the user holds, and how; and the ids of
    the catalog permissions, which the row-level branches compare grants with."""

    direct: frozenset[str]
    via_groups: dict[str, tuple[str, ...]]  # codename -> group names
    permission_ids: dict[str, tuple[int, ...]] = field(default_factory=dict)  # codename -> auth_permission ids

    def grants(self, action: str) -> bool:
        codename = CODENAMES[action]
        return codename in self.direct or bool(self.via_groups.get(codename))


_NO_GRANTS = ModelGrants(direct=frozenset(), via_groups={})
_HELD_DIRECTLY, _HELD_VIA_GROUP = "direct", "group"


@cache
def _model_grants_sql() -> str:
    """Every catalog permission (codename, id), then those the user holds
    directly, then those it holds through a group (with the group's name).

    Plain SQL over the models' tables: as a three-part ORM union it costs more
    to build and compile (~2 ms) than to run, on every request of a user with
    no model-level source (bench/products.py)."""

    def table(model: Any) -> str:
        return str(connection.ops.quote_name(model._meta.db_table))

    permission, content_type, group = table(Permission), table(ContentType), table(Group)
    user_permissions = table(User._meta.get_field("user_permissions").remote_field.through)
    group_permissions = table(Group._meta.get_field("permissions").remote_field.through)
    user_groups = table(User._meta.get_field("groups").remote_field.through)
    catalog = (
        f"FROM {permission} p JOIN {content_type} ct ON ct.id = p.content_type_id"
        " WHERE ct.app_label = %(app_label)s AND p.codename = ANY(%(codenames)s)"
    )
    # Identifiers come from the models, values are parameters.
    return f"""
        SELECT p.codename, p.id, NULL, NULL {catalog}
        UNION ALL
        SELECT p.codename, p.id, '{_HELD_DIRECTLY}', NULL {catalog}
            AND p.id IN (SELECT up.permission_id FROM {user_permissions} up WHERE up.user_id = %(user)s)
        UNION ALL
        SELECT p.codename, p.id, '{_HELD_VIA_GROUP}', g.name
        FROM {permission} p
        JOIN {content_type} ct ON ct.id = p.content_type_id
        JOIN {group_permissions} gp ON gp.permission_id = p.id
        JOIN {group} g ON g.id = gp.group_id
        JOIN {user_groups} ug ON ug.group_id = g.id
        WHERE ct.app_label = %(app_label)s AND p.codename = ANY(%(codenames)s) AND ug.user_id = %(user)s
    """  # noqa: S608


def model_grants(user: Caller) -> ModelGrants:
    """Direct and group-granted catalog permissions, and the catalog
    permissions' ids, in one query; remembered on the user object for the rest
    of the request."""
    if not _authenticated(user):
        return _NO_GRANTS
    cached = getattr(user, "_catalog_model_grants", None)
    if cached is not None:
        return cached
    with connection.cursor() as cursor:
        cursor.execute(
            _model_grants_sql(), {"app_label": APP_LABEL, "codenames": list(CODENAMES.values()), "user": user.pk}
        )
        rows = cursor.fetchall()
    direct_set: set[str] = set()
    groups: dict[str, list[str]] = {}
    ids: dict[str, list[int]] = {}
    for codename, permission_id, how, group_name in rows:
        if how is None:
            ids.setdefault(codename, []).append(permission_id)
        elif how == _HELD_DIRECTLY:
            direct_set.add(codename)
        else:
            groups.setdefault(codename, []).append(group_name)
    result = ModelGrants(
        frozenset(direct_set),
        {c: tuple(sorted(g)) for c, g in groups.items()},
        {c: tuple(sorted(i)) for c, i in ids.items()},
    )
    user._catalog_model_grants = result
    return result


# --- who manages grants and asks about access ----------------------------------------------
# Tenant admins (accounts.permissions.is_tenant_admin) manage any product's
# grants and ask about anyone's access, whatever they may do with products
# themselves. Everyone else: only products they can see (else 404).


def may_manage_grants(user: Caller, product: Product) -> bool:
    """A tenant admin, or the product's owner."""
    return is_tenant_admin(user) or (_authenticated(user) and product.owner_id == user.pk)


def may_grant(user: Caller, product: Product, codenames: list[str]) -> bool:
    """Who manages the product's grants grants only what it holds on the
    product itself (accounts.roles: nobody grants what they do not hold),
    superusers excepted. Ownership gives view/change/delete, not publish."""
    if _authenticated(user) and user.is_superuser:
        return True
    if not may_manage_grants(user, product):
        return False
    return holds_on_all(user, [product.pk], codenames)


def holds_on_all(user: Caller, product_ids: list[int], codenames: list[str]) -> bool:
    """Whether ``user`` holds every action of ``codenames`` on every one of the
    products, from a source it can hand on: publication is not one (a view
    granted on a published product would outlive its unpublishing). One query
    per codename, whatever the number of products."""
    wanted = set(product_ids)
    return all(
        set(
            visible(user, ACTION_BY_CODENAME[codename], published=False)
            .filter(pk__in=wanted)
            .values_list("pk", flat=True)
        )
        == wanted
        for codename in codenames
    )


def has_model_level(user: Caller, action: str) -> bool:
    """Superuser or model permission: the action is allowed on every product."""
    if not _authenticated(user):
        return False
    return bool(user.is_superuser) or model_grants(user).grants(action)


# --- row-level branches: each a set of product ids ----------------------------------------


class _EqualsAny(Lookup):
    """``lhs = ANY(rhs)`` with ``rhs`` an ``ARRAY(subquery)``.

    The same membership test as ``lhs IN (subquery)``, planned differently:
    the subquery is not correlated, so PostgreSQL runs it once (an InitPlan)
    and then probes an index with the array. ``IN`` lets the planner turn it
    into a join, and with several branches it guesses the row counts badly.
    """

    lookup_name = "equals_any"
    prepare_rhs = False

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} = ANY({rhs})", [*lhs_params, *rhs_params]


def _in_ids(field: str, ids: QuerySet[Any]) -> _EqualsAny:
    """``field`` is one of the values ``ids`` (a one-column queryset) yields."""
    return _EqualsAny(F(field), ArraySubquery(ids))


def _permission_q(user: Caller, action: str) -> Q:
    """The grant's permission is the catalog permission for ``action`` (codename
    and app label, as guardian matches them).

    The ids come with the user's model grants (no extra query), so each branch
    compares ids rather than joining auth_permission and django_content_type.
    A schema without that permission gets the subquery instead: an empty id
    list would make the branch a SQL-less "empty result" that cannot sit
    inside a union or an ARRAY().
    """
    ids = model_grants(user).permission_ids.get(CODENAMES[action])
    if ids:
        return Q(permission_id__in=ids)
    return Q(
        permission_id__in=Permission.objects.filter(codename=CODENAMES[action], content_type__app_label=APP_LABEL)
        .order_by()
        .values("id")
    )


def _user_grants(user: Caller, action: str) -> QuerySet[ProductUserObjectPermission]:
    # (user_id, permission_id): the leading columns of the unique
    # (user, permission, content_object) index, so an index-only range scan.
    return ProductUserObjectPermission.objects.filter(_permission_q(user, action), user_id=user.pk)


def _group_grants(user: Caller, action: str) -> QuerySet[ProductGroupObjectPermission]:
    # The user's groups straight from the membership table: joining auth_group as
    # ``group__user`` does costs the planner more, for nothing the branch needs.
    memberships = User.groups.through.objects.filter(user_id=user.pk).values("group_id")
    return ProductGroupObjectPermission.objects.filter(_permission_q(user, action), group_id__in=memberships)


def _row_branches(user: Caller, action: str, *, published: bool = True) -> list[QuerySet[Any]]:
    """Querysets of product ids, one per row-level source that can apply
    (without the "published" source when ``published`` is False)."""
    branches: list[QuerySet[Any]] = []
    if _authenticated(user):
        branches.append(_user_grants(user, action).values("content_object_id"))
        branches.append(_group_grants(user, action).values("content_object_id"))
        if action in OWNER_ACTIONS:
            branches.append(Product.objects.filter(owner_id=user.pk).order_by().values("id"))
    if action == "view" and published:
        branches.append(Product.objects.filter(is_published=True).order_by().values("id"))
    return branches


# No row-level source can apply (anonymous or inactive, any action but view).
_NO_PRODUCT = Q(pk__in=[])


def allowed_q(user: Caller, action: str, *, published: bool = True) -> Q | None:
    """The rule as a filter on products; None means every product.

    ``id = ANY(ARRAY(branch UNION ALL branch ...))``: the union runs once, then
    the primary key index is probed with the ids, in id order, so a page
    ordered by id stops after its rows (see bench/products.py).
    """
    if has_model_level(user, action):
        return None
    branches = _row_branches(user, action, published=published)
    if not branches:
        return _NO_PRODUCT
    first, *rest = branches
    return Q(_in_ids("pk", first.union(*rest, all=True) if rest else first))


def visible_total(user: Caller, action: str = "view") -> Func | Subquery | Value:
    """How many products ``visible(user, action)`` holds, as an expression
    for a page's rows: one scalar subquery, computed once per statement
    (``visible_page``).

    When nothing restricts the list, a COUNT of the products; when no source
    can apply, 0. Otherwise it counts the distinct ids of the branches
    themselves, without looking the products up: every id a branch yields is
    a product's (the grant tables' foreign keys cascade; the other branches
    read products), so the number is exact. Only for the unfiltered list: a
    search or a filter narrows the products, not the branches."""
    if has_model_level(user, action):
        # COUNT(*) of every product; not an aggregate to the ORM, so no GROUP BY.
        every = Product.objects.order_by().annotate(
            n=Func(function="COUNT", template="COUNT(*)", output_field=IntegerField())
        )
        return Subquery(every.values("n"), output_field=IntegerField())
    branches = _row_branches(user, action)
    if not branches:
        return Value(0)
    first, *rest = branches
    distinct_ids = first.union(*rest) if rest else first.distinct()  # UNION, not UNION ALL: each id once
    return Func(ArraySubquery(distinct_ids), function="cardinality", output_field=IntegerField())


def visible(
    user: Caller, action: str = "view", queryset: QuerySet[Product] | None = None, *, published: bool = True
) -> QuerySet[Product]:
    """Products the user may perform ``action`` on: one SQL statement.
    ``published=False`` leaves out what only publication allows."""
    queryset = Product.objects.all() if queryset is None else queryset
    q = allowed_q(user, action, published=published)
    return queryset if q is None else queryset.filter(q)


def visible_page(user: Caller, bottom: int, size: int, action: str = "view") -> tuple[list[Product], int | None]:
    """Rows ``bottom`` to ``bottom + size`` of ``visible(user, action)`` in id
    order, and how many products the whole list holds (None when the page is
    empty: past the end, or nothing to see). One statement, whose SQL is
    compiled once per shape of the rule (core.statements): which sources
    apply, and how many permission ids the grants are compared with. The
    statement is the one ``visible`` and ``visible_total`` build, for a
    stand-in of the caller."""
    shape, values = _caller_shape(user, action)

    def listed(caller: Caller) -> QuerySet[Product]:
        ordered = Product.objects.order_by("id")
        return visible(caller, action, ordered).annotate(_list_total=visible_total(caller, action))

    compiled = statements.statement(
        ("catalog.visible_page", *shape), lambda stand_ins: listed(_stand_in_caller(shape, stand_ins)), len(values)
    )
    if compiled is None:  # not reusable (logged): the ORM, for this call
        rows: list[Product] = list(listed(user)[bottom : bottom + size])
    else:
        # LIMIT and OFFSET as parameters: Django writes a slice's into the SQL.
        rows = compiled.fetch(values, tail=" LIMIT %s OFFSET %s", tail_params=(size, bottom))
    return rows, (int(rows[0]._list_total) if rows else None)  # type: ignore[attr-defined]


def _caller_shape(user: Caller, action: str) -> tuple[tuple[Any, ...], tuple[int, ...]]:
    """The shape of the rule for the caller (what its SQL text depends on),
    and the values that fill it."""
    if has_model_level(user, action):
        return ("every",), ()
    if not _authenticated(user):
        return ("anonymous", action), ()
    ids = model_grants(user).permission_ids.get(CODENAMES[action], ())
    return ("grants", action, len(ids)), (user.pk, *ids)


def _stand_in_caller(shape: tuple[Any, ...], stand_ins: tuple[int, ...]) -> Caller:
    """A caller of that shape whose id and permission ids are the stand-ins."""
    if shape[0] == "anonymous":
        return AnonymousUser()
    stand_in = User(pk=stand_ins[0] if stand_ins else None, is_active=True, is_superuser=shape[0] == "every")
    ids = stand_ins[1:]
    stand_in._catalog_model_grants = ModelGrants(  # type: ignore[attr-defined]
        direct=frozenset(), via_groups={}, permission_ids={CODENAMES[shape[1]]: ids} if ids else {}
    )
    return stand_in


def product_with_access(
    user: Caller, pk: Any, actions: tuple[str, ...] = OBJECT_ACTIONS, queryset: QuerySet[Product] | None = None
) -> Product | None:
    """The product with ``can_<action>`` booleans, in one query; None if it
    does not exist. Whether the caller may even see it is ``can_view``."""
    queryset = Product.objects.all() if queryset is None else queryset
    annotations: dict[str, Any] = {}
    for action in actions:
        q = allowed_q(user, action)
        if q is None:
            annotations[f"can_{action}"] = Value(True)
        elif q is _NO_PRODUCT:
            # Compiled into a SELECT list, an always-empty filter becomes the
            # integer 0 rather than false: say False outright.
            annotations[f"can_{action}"] = Value(False)
        else:
            annotations[f"can_{action}"] = ExpressionWrapper(q, output_field=BooleanField())
    return queryset.filter(pk=pk).annotate(**annotations).first()


def can(user: Caller, action: str, product: Product) -> bool:
    """A single check; uses the flags ``product_with_access`` attached when present."""
    flag = getattr(product, f"can_{action}", None)
    if flag is not None:
        return bool(flag)
    return visible(user, action).filter(pk=product.pk).exists()


# --- explain: every source, separately ---------------------------------------------------


def explain(user: Caller, product: Product) -> dict[str, dict[str, Any]]:
    """For view, change, delete and publish: allowed or not, and every source
    that grants it (with group names). Two queries."""
    authenticated = _authenticated(user)
    grants = model_grants(user)
    annotations: dict[str, Any] = {}
    for action in OBJECT_ACTIONS:
        if authenticated:
            annotations[f"{action}__object_direct"] = Exists(
                _user_grants(user, action).filter(content_object=OuterRef("pk"))
            )
            annotations[f"{action}__object_group"] = Coalesce(
                ArraySubquery(
                    _group_grants(user, action)
                    .filter(content_object=OuterRef("pk"))
                    .order_by("group__name")
                    .values("group__name")
                ),
                Value([]),
            )
    row = Product.objects.filter(pk=product.pk).annotate(**annotations).values(*annotations.keys()).first() or {}

    answer: dict[str, dict[str, Any]] = {}
    for action in OBJECT_ACTIONS:
        codename = CODENAMES[action]
        label = permission_label(APP_LABEL, codename)
        sources: list[dict[str, Any]] = []
        if authenticated and user.is_superuser:
            sources.append({"source": "superuser"})
        if codename in grants.direct:
            sources.append({"source": "model_direct", "permission": label})
        for group in grants.via_groups.get(codename, ()):
            sources.append({"source": "model_group", "permission": label, "group": group})
        if row.get(f"{action}__object_direct"):
            sources.append({"source": "object_direct", "permission": label})
        for group in row.get(f"{action}__object_group") or ():
            sources.append({"source": "object_group", "permission": label, "group": group})
        if authenticated and action in OWNER_ACTIONS and product.owner_id == user.pk:
            sources.append({"source": "owner"})
        if action == "view" and product.is_published:
            sources.append({"source": "published"})
        answer[action] = {"allowed": bool(sources), "sources": sources}
    return answer
