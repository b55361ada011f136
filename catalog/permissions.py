"""The seed's DRF permission classes for products, and the grant and explain
gates: each a thin adapter over catalog.policy, so views, lists and explain
never disagree.

DRF's stock classes cannot be used as they are: DjangoModelPermissions does
not check GET, and DjangoObjectPermissions needs the model permission AND the
object permission, so a user holding only an object grant would get 403
(DRF #3185). These subclasses keep each class's job and delegate the decision
to the one rule.

Everywhere: a product the caller cannot see is a 404 (no existence leak); one
it sees but may not act on is a 403.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from rest_framework import permissions
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request

from accounts.permissions import is_tenant_admin
from catalog import policy
from catalog.models import Product


def _visible_or_404(request: Request, product: Product) -> None:
    if not policy.can(request.user, "view", product):
        raise Http404


class ProductModelPermissions(permissions.DjangoModelPermissionsOrAnonReadOnly):
    """DjangoModelPermissionsOrAnonReadOnly where it fits: reads are open to
    anonymous callers (the rule shows them published products only), and
    creating needs the model permission ``add_product`` (directly, via a group,
    or as superuser). Writes to one product are object-level decisions
    (ProductObjectPermissions), so no model permission is required for them
    here; IsAuthenticatedOrReadOnly, before this class, turns anonymous writes
    away with a 401."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.method == "POST" and getattr(view, "action", None) == "create":
            return policy.has_model_level(request.user, "add")
        return request.method in permissions.SAFE_METHODS or bool(request.user and request.user.is_authenticated)


class ProductObjectPermissions(permissions.DjangoObjectPermissions):
    """DjangoObjectPermissions where it fits, with the seed's per-method map
    (policy.METHOD_ACTIONS: GET/HEAD/OPTIONS view, POST add, PUT/PATCH change,
    DELETE delete). The action's source may be the product itself (directly or
    via a group) or any other source of the rule."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return True  # the view-level gate is ProductModelPermissions

    def has_object_permission(self, request: Request, view: Any, obj: Product) -> bool:
        _visible_or_404(request, obj)
        action = policy.action_for(request.method, getattr(view, "required_action", None))
        return action is not None and policy.can(request.user, action, obj)


class IsOwner(BasePermission):
    """The seed's: the owner of the object."""

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        return bool(request.user and request.user.is_authenticated and obj.owner_id == request.user.pk)


class CanPublishProduct(BasePermission):
    """The seed's, per product: ``can_publish_product`` at model or object
    level. Ownership alone is not enough."""

    message = "You do not have permission to publish products."

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated)

    def has_object_permission(self, request: Request, view: Any, obj: Product) -> bool:
        _visible_or_404(request, obj)
        return policy.can(request.user, "publish", obj)


class CanManageGrants(IsAuthenticated):
    """Who manages a product's object grants (``.../permissions/``): tenant
    admins for any product, the owner (IsOwner) for its own. What they may
    grant (only what they hold on the product, superusers excepted) is
    checked by ``catalog.services.grants_change``, which every grant goes
    through; this gate runs first, so a caller who manages nothing learns
    nothing from the body's validation (which user or group ids exist)."""

    message = "Only a tenant admin or the product's owner may manage its permissions."

    def has_object_permission(self, request: Request, view: Any, obj: Product) -> bool:
        if is_tenant_admin(request.user):
            return True
        _visible_or_404(request, obj)
        return IsOwner().has_object_permission(request, view, obj)


class CanExplainAccess(IsAuthenticated):
    """``.../access/?user=``: your own access to a product you can see; tenant
    admins anyone's, for any product (policy.may_explain)."""

    message = "Only tenant admins may ask about other users."

    def has_object_permission(self, request: Request, view: Any, obj: Product) -> bool:
        if is_tenant_admin(request.user):
            return True
        _visible_or_404(request, obj)
        asked = request.query_params.get("user")
        return asked is None or asked == str(request.user.pk)
