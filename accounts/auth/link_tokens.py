"""One-time tokens for emailed links, one generator per purpose.

djoser uses Django's ``default_token_generator`` for activation and password
reset alike, so a reset token also activates (and could revive a deactivated
account). Here each purpose has its own salt, its own expiry setting, and a
hash over the state that using it changes, so a token works once, for one
purpose, in one tenant: the schema name is part of every hash, and user ids
collide across schemas.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.utils.crypto import constant_time_compare
from django.utils.http import base36_to_int

from tenants.db import connection, current_tenant_id


class TenantTokenGenerator(PasswordResetTokenGenerator):
    timeout_setting = "PASSWORD_RESET_TIMEOUT"

    def _state(self, user: Any) -> str:
        raise NotImplementedError

    def _make_hash_value(self, user: Any, timestamp: int) -> str:
        tenant = f"{connection.schema_name}:{current_tenant_id()}"  # schema names can be reused, row ids cannot
        return f"{tenant}|{user.pk}|{timestamp}|{self._state(user)}"

    def check_token(self, user: Any, token: Any) -> bool:
        return self.token_state(user, token) == "valid"

    def token_state(self, user: Any, token: Any) -> str:
        """ "valid"; "expired" (it was this user's, unused, but is too old); or
        "invalid" (used, never issued, for another purpose or tenant)."""
        if not (user and isinstance(token, str) and token):
            return "invalid"
        try:
            ts_b36, _hash = token.split("-")
            ts = base36_to_int(ts_b36)
        except ValueError:
            return "invalid"
        if not any(
            constant_time_compare(self._make_token_with_timestamp(user, ts, secret), token)
            for secret in [self.secret, *self.secret_fallbacks]
        ):
            return "invalid"
        age = self._num_seconds(self._now()) - ts
        return "valid" if 0 <= age <= int(getattr(settings, self.timeout_setting)) else "expired"


class ActivationTokenGenerator(TenantTokenGenerator):
    """Valid until the account is activated (``activated_at`` then changes)."""

    key_salt = "accounts.activation"
    timeout_setting = "ACCOUNT_ACTIVATION_TIMEOUT"

    def _state(self, user: Any) -> str:
        return f"{user.is_active}|{user.activated_at}|{user.email}"


class ResetPasswordTokenGenerator(TenantTokenGenerator):
    """Valid until the password, the email or is_active changes, a session
    login (last_login; JWT logins leave it alone), or a revocation
    (token_epoch: deactivation, "log out everywhere")."""

    key_salt = "accounts.password_reset"
    timeout_setting = "PASSWORD_RESET_TIMEOUT"

    def _state(self, user: Any) -> str:
        login = user.last_login.replace(microsecond=0, tzinfo=None) if user.last_login else ""
        return f"{user.password}|{login}|{user.is_active}|{user.email}|{user.token_epoch}"


class EmailResetTokenGenerator(TenantTokenGenerator):
    """Valid until the email, the password or is_active changes, or a revocation."""

    key_salt = "accounts.email_reset"
    timeout_setting = "EMAIL_RESET_TIMEOUT"

    def _state(self, user: Any) -> str:
        return f"{user.email}|{user.password}|{user.is_active}|{user.token_epoch}"


activation_tokens = ActivationTokenGenerator()
password_reset_tokens = ResetPasswordTokenGenerator()
email_reset_tokens = EmailResetTokenGenerator()
