from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks

# djoser's *_RETYPE serializers check emailed tokens with the view's generator,
# which is djoser's default one: not bound to the tenant, one for every purpose.
# Ours (accounts.serializers) each name their own; these switches would bypass them.
_UNSUPPORTED_DJOSER_SWITCHES = (
    "PASSWORD_RESET_CONFIRM_RETYPE",
    "USERNAME_RESET_CONFIRM_RETYPE",
    "SET_PASSWORD_RETYPE",
    "SET_USERNAME_RETYPE",
    "USER_CREATE_PASSWORD_RETYPE",
)


def check_djoser_switches(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    on = [name for name in _UNSUPPORTED_DJOSER_SWITCHES if getattr(settings, "DJOSER", {}).get(name)]
    return [
        checks.Error(
            f"DJOSER[{name!r}] is not supported: djoser's retype serializers would check emailed "
            "tokens with a generator that is not bound to the tenant.",
            id="accounts.E001",
        )
        for name in on
    ]


def check_link_settings(
    check_template: Callable[[str, object], str], link_settings: dict[str, str], **kwargs: Any
) -> list[checks.CheckMessage]:
    """The deployment's emailed-link templates (ACCOUNT_*_URL, by kind) follow
    the rule the tenants' own templates do (tenants.services.check_link_template)."""
    return [
        checks.Error(f"{name}: {problem}", id="accounts.E002")
        for kind, name in link_settings.items()
        if (problem := check_template(kind, getattr(settings, name, "")))
    ]


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        checks.register(check_djoser_switches)

        # Imported here, once every app's models are loaded: the receivers
        # connect to other apps' grant tables, and the OpenAPI extension
        # registers itself on import. Neither is a circle being dodged.
        from accounts import emails, guards  # noqa: PLC0415
        from accounts.audit import receivers  # noqa: PLC0415
        from accounts.auth import openapi  # noqa: F401, PLC0415
        from tenants.services import check_link_template  # noqa: PLC0415

        guards.connect()
        receivers.connect()
        emails.register_builders()  # the outbox builds the no-enumeration emails with these
        checks.register(functools.partial(check_link_settings, check_link_template, emails.LINK_SETTINGS))
