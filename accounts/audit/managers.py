"""Guardian's managers for direct foreign-key grant tables, audited on the
bulk paths.

``assign_perm`` with a queryset or list of objects, or with a list of users or
groups, writes with ``bulk_create``, which sends no ``post_save``: without
these managers, grants made that way (shell, scripts) would never reach the
audit log. Single assigns and every removal send signals
(``accounts.audit.receivers``); services that write in bulk record their own.
"""

from __future__ import annotations

from typing import Any

from guardian.managers import GroupObjectPermissionManager, UserObjectPermissionManager

from accounts.audit import entries
from accounts.audit.recording import record, signals_active


def _record_grants(rows: list[Any]) -> None:
    if rows and signals_active():
        record(entries.object_permission_changed(row, granted=True) for row in rows)


class _AuditedBulkAssign:
    user_or_group_field: str

    def bulk_assign_perm(self, perm: Any, user_or_group: Any, queryset: Any, ignore_conflicts: bool = False) -> list:
        # guardian skips what is already held, so every returned row is new.
        created = super().bulk_assign_perm(perm, user_or_group, queryset, ignore_conflicts)  # type: ignore[misc]
        _record_grants(created)
        return created

    def assign_perm_to_many(self, perm: Any, users_or_groups: Any, obj: Any, ignore_conflicts: bool = False) -> list:
        # guardian inserts for every holder and lets conflicts pass: log only the rows that are new.
        rows = self.filter(content_object=obj)  # type: ignore[attr-defined]
        before = set(rows.values_list("pk", flat=True))
        created = super().assign_perm_to_many(perm, users_or_groups, obj, ignore_conflicts)  # type: ignore[misc]
        _record_grants(list(rows.exclude(pk__in=before).select_related(self.user_or_group_field, "permission")))
        return created


class AuditedUserObjectPermissionManager(_AuditedBulkAssign, UserObjectPermissionManager):
    pass


class AuditedGroupObjectPermissionManager(_AuditedBulkAssign, GroupObjectPermissionManager):
    pass
