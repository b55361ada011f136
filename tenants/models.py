from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django_tenants.models import DomainMixin, TenantMixin

# "https://" + a 253-character host + ":65535".
ORIGIN_MAX_LENGTH = len("https://") + 253 + len(":65535")
MAX_CORS_ORIGINS = 50
# The emailed links a tenant may point at its own front end (Tenant.link_templates).
LINK_KINDS = ("activation", "password_reset", "email_reset", "invitation")


class Tenant(TenantMixin):
    """One customer organisation: a PostgreSQL schema, its domains and its users.

    Schemas are created and dropped by ``tenants.services`` only (clone of the
    template, all in one transaction), never as a side effect of ``save()``.
    """

    slug = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    require_activation = models.BooleanField(default=True)
    # The hidden template schema that new tenants are cloned from. It has a row
    # so that migrate_schemas keeps it migrated with every other tenant.
    is_template = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    # Browser origins ("https://app.example.com") allowed to call this tenant's
    # API cross-origin, normalized by tenants.services.normalize_origins and
    # checked per request by tenants.cors. Empty: none.
    cors_allowed_origins = ArrayField(
        models.CharField(max_length=ORIGIN_MAX_LENGTH), default=list, blank=True, size=MAX_CORS_ORIGINS
    )
    # Where this tenant's emailed links point, by kind (LINK_KINDS), when not
    # at this deployment's pages: "https://app.acme.com/activate/{uid}/{token}".
    # Unset kinds follow the deployment's settings (ACCOUNT_*_URL).
    link_templates = models.JSONField(default=dict, blank=True)

    # Set by the fleet executor (tenants/fleet.py) when this tenant's schema
    # failed to migrate (it stays on its previous state, and is served);
    # cleared when a later run migrates it.
    migration_error = models.TextField(blank=True, default="")
    # The fingerprint of the migrations on disk that this schema was last seen
    # to have applied, written in the same transaction that applied them (or
    # cloned them from the template): a fleet run skips tenants whose marker
    # matches in one query. "" = unknown, check the schema itself.
    migrated_to = models.CharField(max_length=64, blank=True, default="")
    migration_failed_at = models.DateTimeField(null=True, blank=True)

    auto_create_schema = False
    auto_drop_schema = False

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_template"], condition=models.Q(is_template=True), name="tenants_single_template"
            ),
        ]

    def __str__(self) -> str:
        return self.slug


class Domain(DomainMixin):
    class Meta:
        ordering = ["-is_primary", "domain"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"], condition=models.Q(is_primary=True), name="tenants_one_primary_domain"
            ),
        ]

    def __str__(self) -> str:
        return self.domain
