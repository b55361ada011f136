#!/usr/bin/env bash
# End-to-end check of a running server (what `make run` serves): the README's
# curl walkthrough, with every answer checked. Usage: scripts/smoke.sh [port]
set -euo pipefail
PORT=${1:-${PORT:-8000}}
BASE=${TENANT_BASE_DOMAIN:-localhost}
PY=${PY:-.venv/bin/python}
OP_EMAIL=${DEMO_OPERATOR_EMAIL:-operator@example.com}
OP_PASSWORD=${DEMO_OPERATOR_PASSWORD:-demo-Passw0rd!}
SLUG="smoke-$(date +%s)"
fail() { echo "SMOKE FAIL: $*" >&2; exit 1; }
json() { $PY -c "import json,sys; print(json.load(sys.stdin)$1)"; }
# status METHOD URL [DATA] [TOKEN] -> prints the HTTP status, body in /tmp/smoke.body
status() {
  local args=(-s -o /tmp/smoke.body -w '%{http_code}' -X "$1" "$2" -H 'Content-Type: application/json')
  [ -n "${3:-}" ] && args+=(-d "$3")
  [ -n "${4:-}" ] && args+=(-H "Authorization: Bearer $4")
  curl "${args[@]}"
}
expect() { [ "$1" = "$2" ] || fail "$3: expected $2, got $1: $(cat /tmp/smoke.body)"; echo "ok  $3 ($1)"; }

expect "$(status GET "http://$BASE:$PORT/api/health/")" 200 "public host answers"
OP=$(curl -sf "http://$BASE:$PORT/api/auth/jwt/create/" -H 'Content-Type: application/json' \
  -d "{\"email\": \"$OP_EMAIL\", \"password\": \"$OP_PASSWORD\"}" | json '["access"]') || fail "operator login"
echo "ok  operator logs in on the public host"

expect "$(status POST "http://$BASE:$PORT/api/platform/tenants/" \
  "{\"slug\": \"$SLUG\", \"name\": \"Smoke\", \"admin_email\": \"boss@$SLUG.test\", \"admin_password\": \"Sm0ke-Test-Pass\", \"require_activation\": false}" "$OP")" 201 "operator provisions $SLUG"
[ "$(json '["domains"][0]' < /tmp/smoke.body)" = "$SLUG.$BASE" ] || fail "primary domain"
expect "$(status GET "http://$SLUG.$BASE:$PORT/api/health/")" 200 "the new tenant's host answers"

TENANT=$(curl -sf "http://$SLUG.$BASE:$PORT/api/auth/jwt/create/" -H 'Content-Type: application/json' \
  -d "{\"email\": \"boss@$SLUG.test\", \"password\": \"Sm0ke-Test-Pass\"}" | json '["access"]') || fail "tenant admin login"
echo "ok  tenant admin logs in on its host"
expect "$(status GET "http://$SLUG.$BASE:$PORT/api/auth/users/me/" "" "$TENANT")" 200 "tenant token works on its host"
expect "$(status GET "http://$BASE:$PORT/api/platform/tenants/" "" "$TENANT")" 401 "tenant token refused on the public host"
expect "$(status GET "http://acme.$BASE:$PORT/api/auth/users/me/" "" "$TENANT")" 401 "tenant token refused on another tenant"
expect "$(status GET "http://acme.$BASE:$PORT/api/auth/users/me/" "" "$OP")" 401 "operator token refused on a tenant host"

expect "$(status POST "http://$BASE:$PORT/api/platform/tenants/" '{"slug": "Bad Slug!"' "$OP")" 400 "malformed JSON"
expect "$(status POST "http://$BASE:$PORT/api/platform/tenants/" \
  '{"slug": "x", "name": "X", "admin_email": "a@x.test", "admin_password": "Sm0ke-Test-Pass"}' "$OP")" 400 "bad slug"
[ "$(json '["errors"]["slug"][0]' < /tmp/smoke.body)" != "" ] || fail "bad slug names the field"
expect "$(status POST "http://$BASE:$PORT/api/platform/tenants/" \
  "{\"slug\": \"$SLUG\", \"name\": \"Again\", \"admin_email\": \"a@x.test\", \"admin_password\": \"Sm0ke-Test-Pass\"}" "$OP")" 409 "duplicate slug"
expect "$(status GET "http://nowhere.$BASE:$PORT/api/health/")" 404 "unknown host"

# Tenant side, on the demo tenant acme (seed_demo): the seed's ProductManagers example.
ACME="http://acme.$BASE:$PORT"
expect "$(status GET "$ACME/api/products/")" 200 "anonymous lists acme's products"
[ "$(json '["count"]' < /tmp/smoke.body)" = "1" ] || fail "anonymous sees only the published product"
JOHN=$(curl -sf "$ACME/api/auth/jwt/create/" -H 'Content-Type: application/json' \
  -d "{\"username\": \"john_doe\", \"password\": \"${DEMO_ADMIN_PASSWORD:-demo-Passw0rd!}\"}" | json '["access"]') || fail "john_doe login"
expect "$(status GET "$ACME/api/products/?ordering=name" "" "$JOHN")" 200 "john_doe (ProductManagers) lists products"
[ "$(json '["count"]' < /tmp/smoke.body)" = "2" ] || fail "john_doe sees both products"
SKATES=$(json '["results"][1]["id"]' < /tmp/smoke.body)
expect "$(status POST "$ACME/api/products/$SKATES/publish/" "" "$JOHN")" 200 "john_doe publishes"
expect "$(status POST "$ACME/api/products/$SKATES/unpublish/" "" "$JOHN")" 200 "john_doe unpublishes"
expect "$(status GET "$ACME/api/products/$SKATES/access/" "" "$JOHN")" 200 "john_doe asks why"
[ "$(json '["actions"]["publish"]["sources"][0]["group"]' < /tmp/smoke.body)" = "ProductManagers" ] || fail "explain names the group"
expect "$(status DELETE "$ACME/api/products/$SKATES/" "" "$JOHN")" 403 "john_doe may not delete"
expect "$(status POST "$ACME/api/auth/users/" "{\"username\": \"u$SLUG\", \"email\": \"u@$SLUG.test\", \"password\": \"Sm0ke-Test-Pass\"}")" 201 "registration on acme"

expect "$(status DELETE "http://$BASE:$PORT/api/platform/tenants/$SLUG/" "" "$OP")" 204 "archive"
expect "$(status GET "http://$SLUG.$BASE:$PORT/api/health/")" 403 "archived tenant is suspended"
expect "$(status DELETE "http://$BASE:$PORT/api/platform/tenants/$SLUG/?purge=$SLUG" "" "$OP")" 204 "purge"
expect "$(status GET "http://$SLUG.$BASE:$PORT/api/health/")" 404 "purged tenant is gone"
echo "SMOKE PASSED"
