from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

from accounts.models import User


class EmailOrUsernameBackend(ModelBackend):
    """Log in with the email (any case) or, when asked with ``login_username``,
    the username. An unknown account still runs the password hasher, so the
    answer takes as long as for a known one."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        login_username: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        if password is None:
            return None
        if login_username is not None:
            lookup: dict[str, Any] = {"username": login_username}
        else:
            email = username if username is not None else kwargs.get(User.USERNAME_FIELD)
            if not isinstance(email, str):
                return None
            lookup = {"email__iexact": email}
        user = User._default_manager.filter(**lookup).first()
        if user is None:
            User().set_password(password)  # same cost as a real check
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None
