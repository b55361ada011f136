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
  statement (``id IN (branch UNION ALL branch ...)``, each branch an index
  range; or no filter at all when a model-level source applies);
* ``product_with_access(user, pk, actions)``: one row with a boolean per action,
  the same ``id IN (...)`` expression evaluated for that row (detail views);
* ``explain(user, product)``: each source separately, with the names of the
  granting groups (the access endpoint).

A property test (tests/catalog/test_policy_agreement.py) checks that list
membership, detail status and explain agree for random worlds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import Permission
from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import BooleanField, CharField, Exists, ExpressionWrapper, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Coalesce

from catalog.models import Product, ProductGroupObjectPermission, ProductUserObjectPermission

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

User = Any  # accounts.models.User or AnonymousUser


def _authenticated(user: User) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


# --- model-level sources: one query per request, whatever the actions ----------------


@dataclass(frozen=True)
class ModelGrants:
    """Which catalog model permissions the user holds, and how."""

    direct: frozenset[str]
    via_groups: dict[str, tuple[str, ...]]  # codename -> group names

    def grants(self, action: str) -> bool:
        codename = CODENAMES[action]
        return codename in self.direct or bool(self.via_groups.get(codename))


_NO_GRANTS = ModelGrants(direct=frozenset(), via_groups={})


def model_grants(user: User) -> ModelGrants:
    """Direct and group-granted catalog permissions, in one query; remembered
    on the user object for the rest of the request."""
    if not _authenticated(user):
        return _NO_GRANTS
    cached = getattr(user, "_catalog_model_grants", None)
    if cached is not None:
        return cached
    catalog = Permission.objects.filter(content_type__app_label=APP_LABEL, codename__in=CODENAMES.values())
    direct = catalog.filter(user=user).values_list("codename", Value(None, output_field=CharField()))
    grouped = catalog.filter(group__user=user).values_list("codename", "group__name")
    direct_set: set[str] = set()
    groups: dict[str, list[str]] = {}
    for codename, group_name in direct.union(grouped, all=True):
        if group_name is None:
            direct_set.add(codename)
        else:
            groups.setdefault(codename, []).append(group_name)
    result = ModelGrants(frozenset(direct_set), {c: tuple(sorted(g)) for c, g in groups.items()})
    user._catalog_model_grants = result
    return result


def has_model_level(user: User, action: str) -> bool:
    """Superuser or model permission: the action is allowed on every product."""
    if not _authenticated(user):
        return False
    return bool(user.is_superuser) or model_grants(user).grants(action)


# --- row-level branches: each a set of product ids ----------------------------------------


def _user_grants(user: User, action: str) -> QuerySet[ProductUserObjectPermission]:
    return ProductUserObjectPermission.objects.filter(
        user_id=user.pk, permission__codename=CODENAMES[action], permission__content_type__app_label=APP_LABEL
    )


def _group_grants(user: User, action: str) -> QuerySet[ProductGroupObjectPermission]:
    return ProductGroupObjectPermission.objects.filter(
        group__user=user.pk, permission__codename=CODENAMES[action], permission__content_type__app_label=APP_LABEL
    )


def _row_branches(user: User, action: str) -> list[QuerySet[Any]]:
    """Querysets of product ids, one per row-level source that can apply."""
    branches: list[QuerySet[Any]] = []
    if _authenticated(user):
        branches.append(_user_grants(user, action).values("content_object_id"))
        branches.append(_group_grants(user, action).values("content_object_id"))
        if action in OWNER_ACTIONS:
            branches.append(Product.objects.filter(owner_id=user.pk).values("id"))
    if action == "view":
        branches.append(Product.objects.filter(is_published=True).values("id"))
    return branches


def allowed_q(user: User, action: str) -> Q | None:
    """The rule as a filter on products; None means every product."""
    if has_model_level(user, action):
        return None
    branches = _row_branches(user, action)
    if not branches:
        return Q(pk__in=[])
    first, *rest = branches
    return Q(pk__in=first.union(*rest, all=True) if rest else first)


def visible(user: User, action: str = "view", queryset: QuerySet[Product] | None = None) -> QuerySet[Product]:
    """Products the user may perform ``action`` on: one SQL statement."""
    queryset = Product.objects.all() if queryset is None else queryset
    q = allowed_q(user, action)
    return queryset if q is None else queryset.filter(q)


def product_with_access(
    user: User, pk: Any, actions: tuple[str, ...] = OBJECT_ACTIONS, queryset: QuerySet[Product] | None = None
) -> Product | None:
    """The product with ``can_<action>`` booleans, in one query; None if it
    does not exist. Whether the caller may even see it is ``can_view``."""
    queryset = Product.objects.all() if queryset is None else queryset
    annotations = {}
    for action in actions:
        q = allowed_q(user, action)
        annotations[f"can_{action}"] = Value(True) if q is None else ExpressionWrapper(q, output_field=BooleanField())
    return queryset.filter(pk=pk).annotate(**annotations).first()


def can(user: User, action: str, product: Product) -> bool:
    """A single check; uses the flags ``product_with_access`` attached when present."""
    flag = getattr(product, f"can_{action}", None)
    if flag is not None:
        return bool(flag)
    return visible(user, action).filter(pk=product.pk).exists()


# --- explain: every source, separately ---------------------------------------------------


def explain(user: User, product: Product) -> dict[str, dict[str, Any]]:
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
        sources: list[dict[str, Any]] = []
        if authenticated and user.is_superuser:
            sources.append({"source": "superuser"})
        if codename in grants.direct:
            sources.append({"source": "model_direct", "permission": f"{APP_LABEL}.{codename}"})
        for group in grants.via_groups.get(codename, ()):
            sources.append({"source": "model_group", "permission": f"{APP_LABEL}.{codename}", "group": group})
        if row.get(f"{action}__object_direct"):
            sources.append({"source": "object_direct", "permission": f"{APP_LABEL}.{codename}"})
        for group in row.get(f"{action}__object_group") or ():
            sources.append({"source": "object_group", "permission": f"{APP_LABEL}.{codename}", "group": group})
        if authenticated and action in OWNER_ACTIONS and product.owner_id == user.pk:
            sources.append({"source": "owner"})
        if action == "view" and product.is_published:
            sources.append({"source": "published"})
        answer[action] = {"allowed": bool(sources), "sources": sources}
    return answer
