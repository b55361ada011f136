"""How a model permission is named in the API and the audit log."""

from __future__ import annotations

from typing import Any


def permission_label(app_label: str, codename: str) -> str:
    """``"app_label.codename"``, as Django's ``has_perm`` spells it."""
    return f"{app_label}.{codename}"


def label_of(permission: Any) -> str:
    """The label of an ``auth.Permission`` (its content type loaded with it)."""
    return permission_label(permission.content_type.app_label, permission.codename)
