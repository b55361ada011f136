from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth.models import AbstractUser
from django.contrib.auth.models import UserManager as DjangoUserManager
from django.db import models
from django.db.models.functions import Lower


class UserManager(DjangoUserManager["User"]):
    """Email is the login; it is unique per schema whatever its case."""

    def get_by_natural_key(self, username: str | None) -> User:
        return self.get(email__iexact=username)

    def _create_user_object(self, username: str, email: str | None, password: str | None, **extra: Any) -> User:
        email = self.normalize_email(email)
        user = self.model(username=username, email=email, **extra)
        user.password = ""
        if password is not None:
            user.set_password(password)
        return user

    def create_user(  # type: ignore[override]
        self, email: str, username: str, password: str | None = None, **extra: Any
    ) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        user = self._create_user_object(username, email, password, **extra)
        user.save(using=self._db)
        return user

    def create_superuser(  # type: ignore[override]
        self, email: str, username: str, password: str | None = None, **extra: Any
    ) -> User:
        extra["is_staff"] = True
        extra["is_superuser"] = True
        extra.setdefault("is_active", True)
        return self.create_user(email, username, password, **extra)


class User(AbstractUser):
    """A person in one schema: a tenant's user, or a platform operator in public.

    Ids mean nothing outside their schema; every credential carries the schema.
    """

    email = models.EmailField("email address", max_length=254)

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["username"]

    objects: ClassVar[UserManager] = UserManager()

    class Meta:
        verbose_name = "user"
        verbose_name_plural = "users"
        swappable = "AUTH_USER_MODEL"
        constraints = [
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email

    def validate_unique(self, exclude: Any = None) -> None:
        super().validate_unique(exclude)
        if self.email and (exclude is None or "email" not in exclude):
            clash = type(self)._default_manager.filter(email__iexact=self.email).exclude(pk=self.pk)
            if clash.exists():
                from django.core.exceptions import ValidationError

                raise ValidationError({"email": "A user with that email already exists."}, code="unique")
