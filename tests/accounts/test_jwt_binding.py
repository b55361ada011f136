"""JWTs are bound to the schema (host) that issued them, and fail closed.

Everything goes through real HTTP requests (Django test client, tenant
middleware, DRF, simplejwt views); tokens are issued by the real endpoints,
except the hand-crafted ones, which are signed with the real signing key so
that only the claim under test differs from a genuine token. Each crafted
family has a positive control (the same recipe with the right claims must be
accepted), so the 401 assertions cannot pass vacuously.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from django.conf import settings
from django_tenants.utils import schema_context
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.models import TokenFamily, User
from tenants.models import Tenant
from tests.helpers import (
    ACME,
    BASE,
    GLOBEX,
    OPERATOR_EMAIL,
    PASSWORD,
    PLATFORM,
    DemoTenant,
    admin_id,
    api_client,
    assert_error,
    jwt_login,
    make_user,
    user_id,
)

pytestmark = pytest.mark.django_db

ME = "/api/auth/users/me/"
PLATFORM_TENANTS = "/api/platform/tenants/"
CREATE = "/api/auth/jwt/create/"
REFRESH = "/api/auth/jwt/refresh/"
VERIFY = "/api/auth/jwt/verify/"
BLACKLIST = "/api/auth/jwt/blacklist/"

SIGNING_KEY: str = str(settings.SIMPLE_JWT["SIGNING_KEY"])
ALGORITHM = "HS256"

# The demo tenants by schema name ("public": the platform operators).
TENANTS: dict[str, DemoTenant] = {tenant.schema: tenant for tenant in (ACME, GLOBEX, PLATFORM)}

# An id far above anything the session fixtures or other tests create.
TWIN_ID = 987_654


# --- helpers -----------------------------------------------------------------------------------------------
def probe_path(host: str) -> str:
    """An authenticated-only endpoint on that host."""
    return PLATFORM_TENANTS if host == BASE else ME


def claims(token: str) -> dict[str, Any]:
    """The payload of a token, signature checked with the real key."""
    return jwt.decode(token, SIGNING_KEY, algorithms=[ALGORITHM])


def me(host: str, access: str, scheme: str = "Bearer") -> Any:
    return api_client(host, token=access, scheme=scheme).get(probe_path(host))


def refresh(host: str, token: str) -> Any:
    return api_client(host).post(REFRESH, {"refresh": token}, format="json")


def verify(host: str, token: str) -> Any:
    return api_client(host).post(VERIFY, {"token": token}, format="json")


def blacklist(host: str, token: str) -> Any:
    return api_client(host).post(BLACKLIST, {"refresh": token}, format="json")


def craft(
    *,
    user_id: Any,
    token_type: str = "access",
    key: str = SIGNING_KEY,
    algorithm: str = ALGORITHM,
    drop: tuple[str, ...] = (),
    **extra: Any,
) -> str:
    """A token shaped like simplejwt's own, signed with ``key``."""
    now = datetime.now(tz=UTC)
    lifetime = timedelta(minutes=5) if token_type == "access" else timedelta(days=1)
    payload: dict[str, Any] = {
        "token_type": token_type,
        "exp": int((now + lifetime).timestamp()),
        "iat": int(now.timestamp()),
        "jti": uuid.uuid4().hex,
        "user_id": user_id,
        **extra,
    }
    if "ver" not in extra:
        payload["ver"] = _current_epoch(extra.get("tenant"), user_id)
    if "tid" not in extra:
        payload["tid"] = _tenant_id(extra.get("tenant"))
    if token_type == "refresh" and "fam" not in extra:
        payload["fam"] = _session(extra.get("tenant"), user_id)
    for name in drop:
        payload.pop(name, None)
    return jwt.encode(payload, key, algorithm=algorithm)


def _session(schema: Any, user_id: Any) -> str:
    """A live login session of the user, as a real login would start, so a
    crafted refresh token is not refused for want of one."""
    if schema not in ("acme", "globex", "public") or not str(user_id).isdigit():
        return str(uuid.uuid4())
    with schema_context(schema):
        user = User.objects.filter(pk=int(user_id)).first()
        return str(TokenFamily.objects.create(user=user).pk) if user else str(uuid.uuid4())


def _tenant_id(schema: Any) -> int:
    """The row id a token for ``schema`` carries (0 for public), so a crafted
    token differs from a real one only where a test says it does."""
    if schema == "public":
        return 0
    if schema not in ("acme", "globex"):
        return -2
    with schema_context("public"):
        return Tenant.objects.get(schema_name=schema).pk


def _current_epoch(schema: Any, user_id: Any) -> int:
    """The user's token_epoch, so a crafted token is not refused as revoked
    (only what each test varies should decide the outcome)."""
    if schema not in ("acme", "globex", "public") or not str(user_id).isdigit():
        return 0
    with schema_context(schema):
        return User.objects.filter(pk=int(user_id)).values_list("token_epoch", flat=True).first() or 0


@pytest.fixture
def acme_pair() -> dict[str, str]:
    return jwt_login(ACME.host, ACME.admin_email)


@pytest.fixture
def globex_pair() -> dict[str, str]:
    return jwt_login(GLOBEX.host, GLOBEX.admin_email)


@pytest.fixture
def operator_pair() -> dict[str, str]:
    return jwt_login(BASE, OPERATOR_EMAIL)


# --- issued tokens carry the binding ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("host", "email", "schema"),
    [
        (ACME.host, ACME.admin_email, "acme"),
        (GLOBEX.host, GLOBEX.admin_email, "globex"),
        (BASE, OPERATOR_EMAIL, "public"),
    ],
)
def test_issued_access_and_refresh_carry_the_issuing_schema(host: str, email: str, schema: str) -> None:
    pair = jwt_login(host, email)
    access, refresh_claims = claims(pair["access"]), claims(pair["refresh"])
    assert access["tenant"] == schema
    assert refresh_claims["tenant"] == schema
    assert access["token_type"] == "access"
    assert refresh_claims["token_type"] == "refresh"
    # simplejwt 5.x writes the id as a string.
    assert access["user_id"] == refresh_claims["user_id"] == str(user_id(TENANTS[schema], email))


def test_rotated_tokens_keep_the_binding(acme_pair: dict[str, str]) -> None:
    response = refresh(ACME.host, acme_pair["refresh"])
    assert response.status_code == 200, response.content
    assert claims(response.json()["access"])["tenant"] == "acme"
    assert claims(response.json()["refresh"])["tenant"] == "acme"


# --- header schemes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["Bearer", "JWT"])
def test_bearer_and_jwt_header_schemes_authenticate_on_tenant_host(acme_pair: dict[str, str], scheme: str) -> None:
    response = me(ACME.host, acme_pair["access"], scheme)
    assert response.status_code == 200, response.content
    assert response.json()["email"] == ACME.admin_email


def test_unknown_header_scheme_is_not_authenticated(acme_pair: dict[str, str]) -> None:
    assert_error(me(ACME.host, acme_pair["access"], "Token"), 401)


def test_no_header_is_not_authenticated() -> None:
    assert_error(api_client(ACME).get(ME), 401)
    assert_error(api_client(PLATFORM).get(PLATFORM_TENANTS), 401)


def test_garbage_bearer_is_401() -> None:
    assert_error(me(ACME.host, "not-a-jwt"), 401)
    assert_error(api_client(ACME, token="a b").get(ME), 401)


# --- access tokens on another host ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("issuer_host", "email", "other_hosts"),
    [
        (ACME.host, ACME.admin_email, [GLOBEX.host, BASE]),
        (GLOBEX.host, GLOBEX.admin_email, [ACME.host, BASE]),
        (BASE, OPERATOR_EMAIL, [ACME.host, GLOBEX.host]),
    ],
    ids=["acme", "globex", "operator"],
)
def test_access_token_answers_401_on_every_other_host(issuer_host: str, email: str, other_hosts: list[str]) -> None:
    access = jwt_login(issuer_host, email)["access"]
    # Control: it works where it was issued.
    assert me(issuer_host, access).status_code == 200
    for host in other_hosts:
        for scheme in ("Bearer", "JWT"):
            assert_error(me(host, access, scheme), 401)


def test_operator_token_works_on_public_host(operator_pair: dict[str, str]) -> None:
    response = me(BASE, operator_pair["access"])
    assert response.status_code == 200, response.content


def test_tenant_admin_token_is_not_an_operator_token(acme_pair: dict[str, str]) -> None:
    # 401 (unauthenticated), not 403 (authenticated but not allowed).
    body = assert_error(
        api_client(BASE, token=acme_pair["access"]).post(
            PLATFORM_TENANTS, {"slug": "evil", "name": "E"}, format="json"
        ),
        401,
    )
    assert body["code"] == "token_not_valid"


# --- colliding primary keys -------------------------------------------------------------------------------
@pytest.fixture
def twins() -> dict[str, User]:
    """One user per schema, all with the same primary key; the public one is a staff operator."""
    return {
        "acme": make_user(ACME, email="twin@acme.test", id=TWIN_ID),
        "globex": make_user(GLOBEX, email="twin@globex.test", id=TWIN_ID),
        "public": make_user(PLATFORM, email="twin@platform.test", id=TWIN_ID, is_staff=True),
    }


def test_twins_really_share_the_primary_key(twins: dict[str, User]) -> None:
    for tenant, email in ((ACME, "twin@acme.test"), (GLOBEX, "twin@globex.test"), (PLATFORM, "twin@platform.test")):
        assert user_id(tenant, email) == TWIN_ID
    with schema_context("globex"):
        assert not User.objects.filter(email="twin@acme.test").exists()


def test_acme_token_for_id_n_never_becomes_globex_or_operator_id_n(twins: dict[str, User]) -> None:
    pair = jwt_login(ACME.host, "twin@acme.test")
    assert claims(pair["access"])["user_id"] == str(TWIN_ID)

    home = me(ACME.host, pair["access"])
    assert home.status_code == 200, home.content
    assert home.json()["email"] == "twin@acme.test"
    assert home.json()["id"] == TWIN_ID

    # Globex's user N exists and is active; the public user N is a staff operator
    # (the platform API would answer 200 for it). Both must refuse acme's token.
    assert_error(me(GLOBEX.host, pair["access"]), 401)
    assert_error(me(BASE, pair["access"]), 401)
    assert_error(api_client(BASE, token=pair["access"]).get(PLATFORM_TENANTS), 401)
    # ... and acme's refresh token must not mint tokens there either.
    assert_error(refresh(GLOBEX.host, pair["refresh"]), 401)
    assert_error(refresh(BASE, pair["refresh"]), 401)


def test_globex_and_operator_tokens_for_id_n_never_become_acme_id_n(twins: dict[str, User]) -> None:
    globex_access = jwt_login(GLOBEX.host, "twin@globex.test")["access"]
    operator_access = jwt_login(BASE, "twin@platform.test")["access"]
    assert me(GLOBEX.host, globex_access).json()["email"] == "twin@globex.test"
    assert me(BASE, operator_access).status_code == 200
    for token in (globex_access, operator_access):
        assert claims(token)["user_id"] == str(TWIN_ID)
        assert_error(me(ACME.host, token), 401)
    assert_error(me(GLOBEX.host, operator_access), 401)
    assert_error(me(BASE, globex_access), 401)


def test_real_operator_id_collides_with_a_tenant_user_and_still_does_not_cross(
    operator_pair: dict[str, str],
) -> None:
    operator_id = user_id(PLATFORM, OPERATOR_EMAIL)
    with schema_context("acme"):
        collider = User.objects.filter(pk=operator_id).first()
    if collider is None:
        collider = make_user(ACME, email="collider@acme.test", id=operator_id)
    assert collider.pk == operator_id
    collider_email = collider.email

    assert claims(operator_pair["access"])["user_id"] == str(operator_id)
    assert_error(me(ACME.host, operator_pair["access"]), 401)
    assert_error(refresh(ACME.host, operator_pair["refresh"]), 401)

    # And the other way: acme's user with the operator's id is not an operator.
    acme_pair = jwt_login(ACME.host, collider_email)
    assert claims(acme_pair["access"])["user_id"] == str(operator_id)
    assert me(ACME.host, acme_pair["access"]).json()["email"] == collider_email
    assert_error(api_client(BASE, token=acme_pair["access"]).get(PLATFORM_TENANTS), 401)


def test_collision_control_a_globex_bound_token_for_id_n_is_globex_user(twins: dict[str, User]) -> None:
    """Shows what is at stake: the same user id, bound to globex, *is* globex's user."""
    token = craft(user_id=TWIN_ID, tenant="globex")
    response = me(GLOBEX.host, token)
    assert response.status_code == 200, response.content
    assert response.json()["email"] == "twin@globex.test"
    assert_error(me(ACME.host, token), 401)


# --- refresh / verify / blacklist on another host ---------------------------------------------------------
CROSS = [
    (ACME.host, ACME.admin_email, GLOBEX.host),
    (ACME.host, ACME.admin_email, BASE),
    (GLOBEX.host, GLOBEX.admin_email, ACME.host),
    (BASE, OPERATOR_EMAIL, ACME.host),
    (BASE, OPERATOR_EMAIL, GLOBEX.host),
]
CROSS_IDS = ["acme-on-globex", "acme-on-public", "globex-on-acme", "operator-on-acme", "operator-on-globex"]


@pytest.mark.parametrize(("issuer_host", "email", "other_host"), CROSS, ids=CROSS_IDS)
def test_refresh_verify_blacklist_with_foreign_token_answer_401(issuer_host: str, email: str, other_host: str) -> None:
    pair = jwt_login(issuer_host, email)
    assert_error(refresh(other_host, pair["refresh"]), 401)
    assert_error(verify(other_host, pair["refresh"]), 401)
    assert_error(verify(other_host, pair["access"]), 401)
    assert_error(blacklist(other_host, pair["refresh"]), 401)

    # None of that touched the token at home: it still verifies and rotates once.
    assert verify(issuer_host, pair["access"]).status_code == 200
    assert verify(issuer_host, pair["refresh"]).status_code == 200
    assert refresh(issuer_host, pair["refresh"]).status_code == 200


def test_foreign_blacklist_leaves_no_rows_in_the_other_schema(acme_pair: dict[str, str]) -> None:
    jti = claims(acme_pair["refresh"])["jti"]
    assert_error(blacklist(GLOBEX.host, acme_pair["refresh"]), 401)
    assert_error(refresh(GLOBEX.host, acme_pair["refresh"]), 401)
    with schema_context("globex"):
        assert not OutstandingToken.objects.filter(jti=jti).exists()
        assert not BlacklistedToken.objects.filter(token__jti=jti).exists()


# --- the right host: rotation, replay, logout -------------------------------------------------------------
def test_verify_on_the_right_host(acme_pair: dict[str, str]) -> None:
    for token in (acme_pair["access"], acme_pair["refresh"]):
        response = verify(ACME.host, token)
        assert response.status_code == 200, response.content
        assert response.json() == {}


def test_refresh_rotates_and_old_refresh_cannot_be_replayed(acme_pair: dict[str, str]) -> None:
    old = acme_pair["refresh"]
    response = refresh(ACME.host, old)
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"access", "refresh"}
    assert body["refresh"] != old
    assert claims(body["refresh"])["jti"] != claims(old)["jti"]
    assert me(ACME.host, body["access"]).json()["email"] == ACME.admin_email

    # The new refresh token is good, once.
    second = refresh(ACME.host, body["refresh"])
    assert second.status_code == 200, second.content
    assert_error(refresh(ACME.host, body["refresh"]), 401)

    replay = assert_error(refresh(ACME.host, old), 401)
    assert replay["code"] == "token_not_valid"
    assert_error(verify(ACME.host, old), 401)
    # Reuse detection: the replay ended the session, so its newest token died too.
    assert_error(refresh(ACME.host, second.json()["refresh"]), 401)
    assert_error(verify(ACME.host, second.json()["refresh"]), 401)


def test_blacklist_logs_out_the_refresh_token(acme_pair: dict[str, str]) -> None:
    response = blacklist(ACME.host, acme_pair["refresh"])
    assert response.status_code == 200, response.content
    assert_error(refresh(ACME.host, acme_pair["refresh"]), 401)
    assert_error(verify(ACME.host, acme_pair["refresh"]), 401)
    assert_error(blacklist(ACME.host, acme_pair["refresh"]), 401)


def test_blacklist_on_public_host_for_operator(operator_pair: dict[str, str]) -> None:
    assert blacklist(BASE, operator_pair["refresh"]).status_code == 200
    assert_error(refresh(BASE, operator_pair["refresh"]), 401)


def test_access_token_is_not_a_refresh_token_and_vice_versa(acme_pair: dict[str, str]) -> None:
    assert_error(refresh(ACME.host, acme_pair["access"]), 401)
    assert_error(blacklist(ACME.host, acme_pair["access"]), 401)
    assert_error(me(ACME.host, acme_pair["refresh"]), 401)


@pytest.mark.parametrize(
    ("path", "payload"),
    [(REFRESH, {}), (VERIFY, {}), (BLACKLIST, {}), (REFRESH, {"refresh": ""}), (VERIFY, {"token": ""})],
)
def test_missing_token_fields_are_400_json(path: str, payload: dict[str, str]) -> None:
    assert_error(api_client(ACME).post(path, payload, format="json"), 400)


# --- fail closed: crafted tokens --------------------------------------------------------------------------
BAD_BINDINGS: list[tuple[str, dict[str, Any]]] = [
    ("no-tenant-claim", {"drop": ("tenant",)}),
    ("globex-claim-on-acme", {"tenant": "globex"}),
    ("public-claim-on-acme", {"tenant": "public"}),
    ("template-claim-on-acme", {"tenant": str(settings.TENANT_TEMPLATE_SCHEMA)}),
    ("upper-case-claim", {"tenant": "ACME"}),
    ("padded-claim", {"tenant": "acme "}),
    ("empty-claim", {"tenant": ""}),
    ("null-claim", {"tenant": None}),
    ("int-claim", {"tenant": 1}),
    ("bool-claim", {"tenant": True}),
    ("list-claim", {"tenant": ["acme"]}),
    ("dict-claim", {"tenant": {"schema": "acme"}}),
    ("non-ascii-claim", {"tenant": "acmé"}),
    ("wrong-key", {"tenant": "acme", "key": "not-the-signing-key-" + "x" * 40}),
]


@pytest.mark.parametrize(("case", "recipe"), BAD_BINDINGS, ids=[case for case, _ in BAD_BINDINGS])
def test_crafted_tokens_fail_closed_everywhere(case: str, recipe: dict[str, Any]) -> None:
    user_id = admin_id(ACME)
    access = craft(user_id=user_id, token_type="access", **recipe)
    refresh_token = craft(user_id=user_id, token_type="refresh", **recipe)

    assert_error(me(ACME.host, access), 401)
    assert_error(me(ACME.host, access, "JWT"), 401)
    assert_error(refresh(ACME.host, refresh_token), 401)
    assert_error(verify(ACME.host, access), 401)
    assert_error(verify(ACME.host, refresh_token), 401)
    assert_error(blacklist(ACME.host, refresh_token), 401)


def test_crafted_control_the_same_recipe_with_the_right_claim_is_accepted() -> None:
    """Without this, the fail-closed test above could pass for the wrong reason."""
    user_id = admin_id(ACME)
    access = craft(user_id=user_id, token_type="access", tenant="acme")
    refresh_token = craft(user_id=user_id, token_type="refresh", tenant="acme")

    response = me(ACME.host, access)
    assert response.status_code == 200, response.content
    assert response.json()["email"] == ACME.admin_email
    assert verify(ACME.host, access).status_code == 200
    assert verify(ACME.host, refresh_token).status_code == 200
    rotated = refresh(ACME.host, refresh_token)
    assert rotated.status_code == 200, rotated.content
    assert claims(rotated.json()["access"])["tenant"] == "acme"


def test_crafted_alg_none_token_is_refused() -> None:
    token = jwt.encode(
        {
            "token_type": "access",
            "user_id": admin_id(ACME),
            "tenant": "acme",
            "jti": uuid.uuid4().hex,
            "exp": int((datetime.now(tz=UTC) + timedelta(minutes=5)).timestamp()),
        },
        key="",
        algorithm="none",
    )
    assert_error(me(ACME.host, token), 401)
    assert_error(verify(ACME.host, token), 401)


def test_expired_token_with_right_claim_is_refused() -> None:
    past = int((datetime.now(tz=UTC) - timedelta(minutes=1)).timestamp())
    token = craft(user_id=admin_id(ACME), tenant="acme", exp=past)
    assert_error(me(ACME.host, token), 401)
    assert_error(verify(ACME.host, token), 401)


@pytest.mark.parametrize(
    "user_id",
    [None, "", "abc", "1.5", "1; drop table", 10**30, -1, [1], {"id": 1}, 1.5, True],
    ids=["null", "empty", "abc", "str-float", "sql", "huge", "negative", "list", "dict", "float", "bool"],
)
def test_crafted_junk_user_id_claims_are_401_never_500_never_coerced(user_id: Any) -> None:
    """Right tenant, right key, junk user id: refused as nobody (1.5 and True must not become user 1)."""
    access = craft(user_id=user_id, tenant="acme")
    refresh_token = craft(user_id=user_id, token_type="refresh", tenant="acme")
    assert_error(me(ACME.host, access), 401)
    assert_error(refresh(ACME.host, refresh_token), 401)
    response = blacklist(ACME.host, refresh_token)
    assert response.status_code in (200, 401), response.content


def test_crafted_token_without_user_id_is_refused() -> None:
    assert_error(me(ACME.host, craft(user_id=None, tenant="acme", drop=("user_id",))), 401)
    assert_error(refresh(ACME.host, craft(user_id=None, token_type="refresh", tenant="acme", drop=("user_id",))), 401)


# --- users deleted or deactivated after login -------------------------------------------------------------
def test_refresh_and_access_for_user_deleted_after_login_answer_401() -> None:
    make_user(ACME, email="gone@acme.test")
    pair = jwt_login(ACME.host, "gone@acme.test")
    assert me(ACME.host, pair["access"]).status_code == 200
    with schema_context("acme"):
        User.objects.filter(email="gone@acme.test").delete()

    body = assert_error(refresh(ACME.host, pair["refresh"]), 401)
    assert body["code"] == "no_active_account"
    body = assert_error(me(ACME.host, pair["access"]), 401)
    assert body["code"] == "user_not_found"
    # Logging out a deleted user's token must not blow up either.
    assert blacklist(ACME.host, pair["refresh"]).status_code in (200, 401)


def test_refresh_and_access_for_deactivated_user_answer_401() -> None:
    make_user(ACME, email="frozen@acme.test")
    pair = jwt_login(ACME.host, "frozen@acme.test")
    with schema_context("acme"):
        User.objects.filter(email="frozen@acme.test").update(is_active=False)

    body = assert_error(refresh(ACME.host, pair["refresh"]), 401)
    assert body["code"] == "no_active_account"
    body = assert_error(me(ACME.host, pair["access"]), 401)
    assert body["code"] == "user_inactive"
    # Login is refused as well.
    assert_error(api_client(ACME).post(CREATE, {"email": "frozen@acme.test", "password": PASSWORD}, format="json"), 401)


def test_deleting_globex_twin_does_not_affect_acme_twin(twins: dict[str, User]) -> None:
    pair = jwt_login(ACME.host, "twin@acme.test")
    with schema_context("globex"):
        User.objects.filter(pk=TWIN_ID).delete()
    assert me(ACME.host, pair["access"]).json()["email"] == "twin@acme.test"
    assert refresh(ACME.host, pair["refresh"]).status_code == 200


# --- login ------------------------------------------------------------------------------------------------
def _login(host: str, email: str, password: str = PASSWORD) -> Any:
    return api_client(host).post(CREATE, {"email": email, "password": password}, format="json")


@pytest.mark.parametrize(
    ("host", "email"), [(ACME.host, ACME.admin_email), (GLOBEX.host, GLOBEX.admin_email), (BASE, OPERATOR_EMAIL)]
)
def test_login_with_wrong_password_is_401_json(host: str, email: str) -> None:
    body = assert_error(_login(host, email, "wrong-" + PASSWORD), 401)
    assert body["code"] == "no_active_account"
    assert "access" not in body
    assert "refresh" not in body


def test_login_with_unknown_email_is_401_json() -> None:
    assert_error(_login(ACME.host, "nobody@acme.test"), 401)


@pytest.mark.parametrize(
    ("email", "home", "elsewhere"),
    [
        (ACME.admin_email, ACME.host, [GLOBEX.host, BASE]),
        (GLOBEX.admin_email, GLOBEX.host, [ACME.host, BASE]),
        (OPERATOR_EMAIL, BASE, [ACME.host, GLOBEX.host]),
    ],
    ids=["acme-admin", "globex-admin", "operator"],
)
def test_correct_credentials_only_log_in_on_their_own_host(email: str, home: str, elsewhere: list[str]) -> None:
    assert _login(home, email).status_code == 200
    for host in elsewhere:
        body = assert_error(_login(host, email), 401)
        assert body["code"] == "no_active_account"


def test_login_email_is_case_insensitive_but_still_host_bound() -> None:
    assert _login(ACME.host, ACME.admin_email.upper()).status_code == 200
    assert_error(_login(GLOBEX.host, ACME.admin_email.upper()), 401)


def test_unknown_host_is_404_json_even_with_a_valid_token(acme_pair: dict[str, str]) -> None:
    response = api_client(f"nope.{BASE}", token=acme_pair["access"]).get(ME)
    assert_error(response, 404)
