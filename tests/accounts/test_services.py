"""Account services called as a management command or a task would: plain
values (tenant, LinkBase, data), no request, no view."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import override_settings
from django_tenants.utils import schema_context

from accounts import emails, services
from accounts.apps import check_djoser_switches
from accounts.audit.recording import acting_as
from accounts.models import AuditEntry, User
from tenants.models import Tenant
from tests.helpers import ACME, PASSWORD, make_user

pytestmark = pytest.mark.django_db


def acme() -> Tenant:
    return Tenant.objects.get(slug=ACME.slug)


def test_register_outside_a_request_sends_the_link_on_the_primary_domain(deliver: Callable[[], Any]) -> None:
    tenant = acme()
    links = emails.LinkBase.configured()  # no request: https, default port
    with deliver() as outbox, schema_context(ACME.schema):
        user = services.user_register(
            tenant=tenant, links=links, email="task@acme.test", username="task", password=PASSWORD
        )
    assert not user.is_active  # acme requires activation
    (message,) = outbox
    assert message.to == ["task@acme.test"]
    assert f"https://{ACME.host}/activate/" in message.body


@override_settings(PUBLIC_SCHEME="http", PUBLIC_PORT="8000")
def test_link_base_follows_the_public_settings(deliver: Callable[[], Any]) -> None:
    user = make_user()
    with deliver() as outbox, schema_context(ACME.schema):
        services.user_send_password_reset(tenant=acme(), links=emails.LinkBase.configured(), email=user.email)
    (message,) = outbox
    assert f"http://{ACME.host}:8000/password/reset/confirm/" in message.body


def test_user_create_refuses_fields_it_does_not_know() -> None:
    with schema_context(ACME.schema), pytest.raises(TypeError, match="is_bogus"):
        services.user_create(email="x@acme.test", username="x", password=PASSWORD, is_bogus=True)  # type: ignore[call-arg]


def test_register_cannot_be_handed_privileges() -> None:
    """Registration passes names through, nothing else: a body field such as
    is_staff that reached it by mistake is refused, not applied."""
    with schema_context(ACME.schema), pytest.raises(TypeError, match="is_staff"):
        services.user_register(
            tenant=acme(),
            links=emails.LinkBase.configured(),
            email="sneaky@acme.test",
            username="sneaky",
            password=PASSWORD,
            is_staff=True,  # type: ignore[call-arg]
        )
    with schema_context(ACME.schema):
        assert not User.objects.filter(email="sneaky@acme.test").exists()


def test_changes_made_acting_as_someone_are_audited_with_that_actor() -> None:
    with schema_context(ACME.schema):
        actor = User.objects.get(email__iexact=ACME.admin_email)
        with acting_as(actor):
            group = services.group_create(name="From a task")
        entry = AuditEntry.objects.get(action=AuditEntry.Action.GROUP_CREATE, subject_id=group.pk)
    assert entry.actor_id == actor.pk
    assert entry.actor_repr == ACME.admin_email


def test_djoser_retype_switches_are_refused_at_start_up(settings: Any) -> None:
    assert check_djoser_switches() == []
    settings.DJOSER = {**settings.DJOSER, "PASSWORD_RESET_CONFIRM_RETYPE": True}
    (error,) = check_djoser_switches()
    assert error.id == "accounts.E001"
    assert "PASSWORD_RESET_CONFIRM_RETYPE" in error.msg
