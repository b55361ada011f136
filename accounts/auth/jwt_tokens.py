"""JWTs bound to the schema that issued them.

simplejwt alone lets a token from tenant A authenticate on tenant B whenever
the user ids collide (simplejwt #758). Every token made here carries the
schema name in the ``tenant`` claim, and every token read here must carry the
current schema's name, or it is refused: a missing, forged or foreign claim
fails closed. The claim is checked before anything touches the database.
"""

from __future__ import annotations

import hmac
from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken, UntypedToken

from tenants.db import connection, current_tenant_id

TENANT_CLAIM = "tenant"
# The tenant's row id (0 for the public schema): schema names can be reused
# after a purge, row ids cannot (tenants.db.current_tenant_id).
TENANT_ID_CLAIM = "tid"
# The user's token_epoch when the token was issued; a token whose value is
# not the user's current one has been revoked (accounts.models.User.save).
EPOCH_CLAIM = "ver"
# The login session (accounts.models.TokenFamily) a refresh token descends from.
FAMILY_CLAIM = "fam"
# Far enough for any real expiry, near enough that datetime arithmetic holds.
_LATEST_EPOCH = 253_402_300_799  # 9999-12-31T23:59:59Z


def _is_epoch(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _LATEST_EPOCH


class TenantBoundMixin:
    payload: dict[str, Any]

    def __init__(self, token: Any = None, verify: bool = True) -> None:
        super().__init__(token, verify)  # type: ignore[call-arg]
        if token is None:
            self.payload[TENANT_CLAIM] = connection.schema_name
            self.payload[TENANT_ID_CLAIM] = current_tenant_id()

    @classmethod
    def for_user(cls, user: Any) -> Any:
        token = super().for_user(user)  # type: ignore[misc]
        token[EPOCH_CLAIM] = user.token_epoch
        return token

    def verify(self) -> None:
        claim = self.payload.get(TENANT_CLAIM)
        if not isinstance(claim, str) or not hmac.compare_digest(claim.encode(), connection.schema_name.encode()):
            raise TokenError(_("Token was not issued for this host."))
        tid = self.payload.get(TENANT_ID_CLAIM)
        if not isinstance(tid, int) or isinstance(tid, bool) or tid != current_tenant_id():
            raise TokenError(_("Token was not issued for this host."))
        # A correctly signed token may still carry claims simplejwt would trip
        # over (a string or huge exp: TypeError, OverflowError; no jti: KeyError).
        if not _is_epoch(self.payload.get("exp")) or ("iat" in self.payload and not _is_epoch(self.payload["iat"])):
            raise TokenError(_("Token has a malformed expiry."))
        jti = self.payload.get(api_settings.JTI_CLAIM)
        if not isinstance(jti, str) or not jti or len(jti) > 255:
            raise TokenError(_("Token has no valid id."))
        super().verify()  # type: ignore[misc]


class TenantAccessToken(TenantBoundMixin, AccessToken):
    pass


class TenantRefreshToken(TenantBoundMixin, RefreshToken):
    access_token_class = TenantAccessToken
    # The family id is the session's, not the access token's business.
    no_copy_claims = (*RefreshToken.no_copy_claims, FAMILY_CLAIM)  # type: ignore[assignment]

    def check_blacklist(self) -> None:
        """Not here: a blacklisted refresh token presented again is a reuse,
        which accounts.auth.token_families must see (to revoke its family)
        rather than refuse before it looks."""


class TenantUntypedToken(TenantBoundMixin, UntypedToken):
    pass


def token_is_current(token: Any, user: Any) -> bool:
    """False when the user's credentials were revoked after this token was issued."""
    epoch = token.get(EPOCH_CLAIM)
    return isinstance(epoch, int) and not isinstance(epoch, bool) and epoch == user.token_epoch
