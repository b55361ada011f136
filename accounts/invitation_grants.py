"""Object grants an invitation carries, checked and applied by the app that
owns the objects.

``accounts`` cannot import the apps above it (catalog's products), so they
register here, from their ``AppConfig.ready()``, one handler per model label
("catalog.product"), as ``mail.register_builder`` does for emails:

* ``check(actor, entries)``: whether ``actor`` may grant the entries (each
  ``{"model", "id", "permissions"}``; the objects exist, the permissions are
  the model's object permissions, ``actor`` holds them: nobody grants what they
  do not hold); returns them normalised, to be stored. Raises
  ``ApplicationError`` naming the field ``object_grants`` or ``RoleRefused``.
* ``apply(actor, user, entries)``: grant them to ``user`` (audited, as
  ``actor``), or raise as ``check`` does.

A model nobody registered is refused (a 400 naming ``object_grants``), never
silently dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from accounts.models import User
from core.errors import ApplicationError

FIELD = "object_grants"

Entry = dict[str, Any]
Check = Callable[[User | None, list[Entry]], list[Entry]]
Apply = Callable[[User | None, User, list[Entry]], None]


@dataclass(frozen=True)
class _Handler:
    check: Check
    apply: Apply


_handlers: dict[str, _Handler] = {}


def register_object_grants(model: str, *, check: Check, apply: Apply) -> None:
    """Let invitations carry grants on ``model`` ("app_label.model_name")."""
    _handlers[model.lower()] = _Handler(check=check, apply=apply)


def registered() -> list[str]:
    return sorted(_handlers)


def _by_model(entries: list[Entry]) -> dict[str, list[Entry]]:
    grouped: dict[str, list[Entry]] = {}
    for entry in entries:
        model = str(entry["model"]).lower()
        if model not in _handlers:
            known = ", ".join(registered()) or "none"
            raise ApplicationError(
                f"Invitations cannot carry grants on '{entry['model']}' (they can on: {known}).", field=FIELD
            )
        grouped.setdefault(model, []).append({**entry, "model": model})
    return grouped


def check(actor: User | None, entries: list[Entry]) -> list[Entry]:
    """The entries normalised by their models' handlers, in model order; or
    the first handler's refusal."""
    return [
        normalised
        for model, of_model in _by_model(entries).items()
        for normalised in _handlers[model].check(actor, of_model)
    ]


def apply(actor: User | None, user: User, entries: list[Entry]) -> None:
    for model, of_model in _by_model(entries).items():
        _handlers[model].apply(actor, user, of_model)
