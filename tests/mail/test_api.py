"""The outbox as admins see it: a tenant's own emails, the fleet's for operators; never a body."""

from __future__ import annotations

from typing import Any

import pytest
from django_tenants.utils import schema_context

from mail import services as mail
from mail.models import OutboxEmail
from tenants.models import Tenant
from tests.helpers import ACME, GLOBEX, admin_client, api_client, assert_error, make_user

pytestmark = pytest.mark.django_db


def add(tenant: Any, to: str, status: str = "pending", **fields: Any) -> OutboxEmail:
    with schema_context(tenant.schema):
        row = mail.enqueue(
            tenant_id=Tenant.objects.get(slug=tenant.slug).pk,
            kind="confirmation",
            to=to,
            subject="Hi",
            body="secret-link",
        )
    OutboxEmail.objects.filter(pk=row.pk).update(status=status, **fields)
    return row


def test_tenant_admins_see_their_own_emails_never_a_body() -> None:
    mine = add(ACME, "a@acme.test", "failed", last_error="SMTPRecipientsRefused: 550")
    add(GLOBEX, "g@globex.test", "failed")
    response = admin_client(ACME).get("/api/emails/?status=failed")
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [r["id"] for r in rows] == [mine.pk]
    assert rows[0]["last_error"] == "SMTPRecipientsRefused: 550"
    assert "body" not in rows[0]
    assert "secret-link" not in response.content.decode()


def test_plain_users_may_not_list_emails() -> None:
    make_user(ACME, email="plain@acme.test")
    assert_error(api_client(ACME, user="plain@acme.test").get("/api/emails/"), 403)
    assert_error(api_client(ACME).get("/api/emails/"), 401)


def test_bad_filters_are_400() -> None:
    response = admin_client(ACME).get("/api/emails/?status=lost")
    assert_error(response, 400)
    assert "status" in response.json()["errors"]


def test_retrying_a_failed_email_sends_it_again(django_capture_on_commit_callbacks: Any, mailoutbox: list[Any]) -> None:
    row = add(ACME, "again@acme.test", "failed", attempts=8)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client(ACME).post(f"/api/emails/{row.pk}/retry/")
    assert response.status_code == 200, response.content
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("sent", 1)
    assert [m.to for m in mailoutbox] == [["again@acme.test"]]


def test_only_a_failed_email_of_this_tenant_can_be_retried() -> None:
    sent = add(ACME, "done@acme.test", "sent")
    theirs = add(GLOBEX, "g@globex.test", "failed")
    assert_error(admin_client(ACME).post(f"/api/emails/{sent.pk}/retry/"), 409, code="not_failed")
    assert_error(admin_client(ACME).post(f"/api/emails/{theirs.pk}/retry/"), 404)
    theirs.refresh_from_db()
    assert theirs.status == "failed"


def test_operators_see_the_fleet_and_filter_by_tenant(operator_client: Any) -> None:
    add(ACME, "a@acme.test", "failed")
    add(GLOBEX, "g@globex.test", "failed")
    everything = operator_client.get("/api/platform/emails/?status=failed").json()["results"]
    assert {(r["tenant"], r["to"]) for r in everything} >= {("acme", "a@acme.test"), ("globex", "g@globex.test")}
    only_acme = operator_client.get("/api/platform/emails/?tenant=acme").json()["results"]
    assert {r["tenant"] for r in only_acme} == {"acme"}
    assert "secret-link" not in operator_client.get("/api/platform/emails/").content.decode()


def test_operators_retry_any_tenants_failed_email(operator_client: Any) -> None:
    row = add(GLOBEX, "g@globex.test", "failed")
    response = operator_client.post(f"/api/platform/emails/{row.pk}/retry/")
    assert response.status_code == 200
    assert response.json()["tenant"] == "globex"
    assert_error(operator_client.post("/api/platform/emails/999999/retry/"), 404)


def test_tenant_admins_cannot_reach_the_fleet() -> None:
    assert_error(admin_client(ACME).get("/api/platform/emails/"), 404)  # not on a tenant host at all


def test_tenant_admins_see_recipient_errors_but_not_the_platforms_relay(operator_client: Any) -> None:
    relay = add(
        ACME, "r@acme.test", "pending", last_error="SMTPAuthenticationError: (535, b'auth failed at relay.internal')"
    )
    refused = add(
        ACME, "n@acme.test", "failed", last_error="SMTPRecipientsRefused: {'n@acme.test': (550, b'No such user')}"
    )
    shown = {r["id"]: r["last_error"] for r in admin_client(ACME).get("/api/emails/").json()["results"]}
    assert "relay.internal" not in shown[relay.pk]
    assert "platform" in shown[relay.pk]
    assert "No such user" in shown[refused.pk]
    fleet = {
        r["id"]: r["last_error"] for r in operator_client.get("/api/platform/emails/?tenant=acme").json()["results"]
    }
    assert "relay.internal" in fleet[relay.pk]
