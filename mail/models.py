"""The email outbox: one row per email, written in the transaction of the change that sends it.

It lives in the public schema only (``mail`` is a shared app), which every
tenant connection also sees (django-tenants' search_path is ``tenant, public``),
so the row commits or rolls back with the change, and the worker drains one
table for the whole fleet instead of visiting every schema.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class OutboxEmail(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"
        DROPPED = "dropped"  # a lookup email whose account did not qualify: nothing to send

    # Null for the public host's own mail. A purged tenant's mail goes with it.
    tenant = models.ForeignKey("tenants.Tenant", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    schema_name = models.CharField(max_length=63)
    kind = models.CharField(max_length=50)
    to = models.CharField(max_length=254)
    subject = models.CharField(max_length=998)
    # Holds the one-time link until it is sent; emptied once sent. Empty, with
    # ``context["lookup"]``, for an email the worker builds (services.enqueue_lookup).
    body = models.TextField(blank=True, default="")
    context = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.SmallIntegerField(default=0)
    # Due from then on: a delivery of a row that is not due yet does nothing
    # (a second task for one row, a retry before its backoff is over).
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # Dispatched, and not to be dispatched again before then: a dispatch that
    # never ran (a killed process, an unreachable broker) is picked up again by
    # the sweep once its lease runs out.
    leased_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    request_id = models.CharField(max_length=128, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=models.Q(status="pending"), name="mail_outbox_due"),
            models.Index(fields=["tenant", "status", "-created_at"], name="mail_outbox_by_tenant"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.to} ({self.status})"
