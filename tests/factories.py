"""Tenant-aware factory_boy factories: each builds its row, and what its
post-generation hooks add, inside one tenant's schema.

    UserFactory(tenant=GLOBEX, prefix="owner", catalog_perms=("add_product",))

Without ``tenant``, in the schema the test is already in (so a SubFactory
follows its parent), or in acme's when that is the public schema.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import factory
from django.contrib.auth.models import Group, Permission
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, schema_context
from factory.django import DjangoModelFactory

from accounts.models import User
from catalog.models import Product
from tenants.db import connection

PASSWORD = "Corr3ct-Horse-Battery"


@dataclass(frozen=True)
class DemoTenant:
    """A tenant the test session provisions (or the public host, PLATFORM)."""

    slug: str
    host: str
    admin_email: str
    password: str = PASSWORD

    @property
    def schema(self) -> str:
        return self.slug.replace("-", "_")


DEFAULT_SCHEMA = "acme"


def catalog_permissions(codenames: Iterable[str]) -> list[Permission]:
    """Must be called inside the tenant's schema."""
    wanted = set(codenames)
    perms = list(Permission.objects.filter(content_type__app_label="catalog", codename__in=wanted))
    assert len(perms) == len(wanted), wanted
    return perms


class TenantModelFactory(DjangoModelFactory):
    class Meta:
        abstract = True

    @classmethod
    def _generate(cls, strategy: Any, params: dict[str, Any]) -> Any:
        tenant: DemoTenant | None = params.pop("tenant", None)
        if tenant is not None:
            schema = tenant.schema
        elif connection.schema_name != get_public_schema_name():
            schema = connection.schema_name
        else:
            schema = DEFAULT_SCHEMA
        with schema_context(schema):
            return super()._generate(strategy, params)


class UserFactory(TenantModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    class Params:
        prefix = "user"

    email = factory.LazyAttributeSequence(lambda o, n: f"{o.prefix}{n + 1}@{connection.schema_name}.test")
    username = factory.LazyAttribute(lambda o: o.email.split("@")[0])
    password = PASSWORD

    @classmethod
    def _create(cls, model_class: type[User], *args: Any, **kwargs: Any) -> User:
        # create_user: the email normalised, the password hashed, activated_at
        # set for an active user, as registration does.
        return model_class.objects.create_user(*args, **kwargs)

    @factory.post_generation
    def catalog_perms(obj: User, create: bool, extracted: Iterable[str] | None, **kwargs: Any) -> None:
        if create and extracted:
            obj.user_permissions.add(*catalog_permissions(extracted))


class GroupFactory(TenantModelFactory):
    class Meta:
        model = Group
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"group{n + 1}")

    @factory.post_generation
    def catalog_perms(obj: Group, create: bool, extracted: Iterable[str] | None, **kwargs: Any) -> None:
        if create and extracted:
            obj.permissions.add(*catalog_permissions(extracted))

    @factory.post_generation
    def members(obj: Group, create: bool, extracted: Iterable[User] | None, **kwargs: Any) -> None:
        if create and extracted:
            obj.user_set.add(*extracted)


class ProductFactory(TenantModelFactory):
    class Meta:
        model = Product

    class Params:
        published = factory.Trait(is_published=True, published_at=factory.LazyFunction(timezone.now))

    name = factory.Sequence(lambda n: f"product {n + 1}")
    price = Decimal("9.99")
    owner = None
    is_published = False
