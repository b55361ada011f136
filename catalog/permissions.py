"""The seed's DRF permission classes, each a thin adapter over catalog.policy.

DRF's stock classes cannot be used as they are: DjangoModelPermissions does
not check GET, and DjangoObjectPermissions needs the model permission AND the
object permission, so a user holding only an object grant would get 403
(DRF #3185). These subclasses keep each class's job and delegate the decision
to the one rule, so views, lists and explain never disagree.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from rest_framework import permissions
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from catalog import policy
from catalog.models import Product


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
    DELETE delete).

    The action's source may be the product itself (directly or via a group) or
    any other source of the rule. A product the caller cannot see is a 404 (no
    existence leak); one it sees but may not touch is a 403.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        return True  # the view-level gate is ProductModelPermissions

    def action_for(self, request: Request, view: Any) -> str | None:
        """A view may name its action (publish); else the method decides."""
        explicit = getattr(view, "required_action", None)
        return str(explicit) if explicit else policy.METHOD_ACTIONS.get(request.method or "")

    def has_object_permission(self, request: Request, view: Any, obj: Product) -> bool:
        if not policy.can(request.user, "view", obj):
            raise Http404
        action = self.action_for(request, view)
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
        return policy.can(request.user, "publish", obj)
