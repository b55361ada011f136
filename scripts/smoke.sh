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
# status METHOD URL [DATA] [TOKEN] [HOST] -> prints the HTTP status, body in /tmp/smoke.body
status() {
  local args=(-s -o /tmp/smoke.body -w '%{http_code}' -X "$1" "$2" -H 'Content-Type: application/json')
  [ -n "${3:-}" ] && args+=(-d "$3")
  [ -n "${4:-}" ] && args+=(-H "Authorization: Bearer $4")
  [ -n "${5:-}" ] && args+=(-H "Host: $5")
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

# Emailed links. The server's console backend prints each email; MAIL_LOG is
# where its output goes (CI: the log of `make run`).
MAIL_LOG=${MAIL_LOG:?set MAIL_LOG to the file the server prints its emails to (make run > FILE)}
# link PATH_PREFIX ADDRESS: the newest link starting with PATH_PREFIX in an email to ADDRESS (waits 15 s).
link() {
  local found=""
  for _ in $(seq 1 150); do
    found=$($PY - "$MAIL_LOG" "$1" "$2" <<'PY'
import re, sys
log, prefix, to = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(log, encoding="utf-8", errors="replace").read()
links = [m.group(0) for block in re.split(r"\n-{20,}\n", text) if f"To: {to}" in block
         for m in re.finditer(re.escape(prefix) + r"\S+", block)]
print(links[-1] if links else "")
PY
)
    [ -n "$found" ] && { echo "$found"; return; }
    sleep 0.1
  done
  fail "no email to $2 with a link to $1 in $MAIL_LOG"
}
page() {  # page URL [HOST] -> HTTP status of a GET, body in /tmp/smoke.body, content type checked for 200
  local args=(-s -o /tmp/smoke.body -w '%{http_code} %{content_type}' "$1")
  [ -n "${2:-}" ] && args+=(-H "Host: $2")
  curl "${args[@]}"
}
GLOBEX_HOST="globex.$BASE:$PORT"

ACTIVATE=$(link "http://acme.$BASE:$PORT/activate/" "u@$SLUG.test")
echo "ok  the activation email links to acme's own host"
expect "$(page "$ACTIVATE")" "200 text/html; charset=utf-8" "activation link opens a page on acme"
grep -q 'Activate my account' /tmp/smoke.body || fail "activation page asks for one click"
expect "$(page "$ACTIVATE" "$GLOBEX_HOST")" "404 text/html; charset=utf-8" "activation link on globex's host"
expect "$(status POST "$ACME/api/auth/jwt/create/" "{\"email\": \"u@$SLUG.test\", \"password\": \"Sm0ke-Test-Pass\"}")" 401 "opening the link activated nothing"
# The click: the page's form, with its CSRF cookie and token, as a browser posts it.
curl -s -c /tmp/smoke.jar -o /tmp/smoke.page "$ACTIVATE"
CSRF=$(sed -n 's/.*name="csrfmiddlewaretoken" value="\([^"]*\)".*/\1/p' /tmp/smoke.page)
[ -n "$CSRF" ] || fail "the activation page carries a CSRF token"
expect "$(curl -s -b /tmp/smoke.jar -o /tmp/smoke.body -w '%{http_code}' -e "$ACTIVATE" -d "csrfmiddlewaretoken=$CSRF" "$ACTIVATE")" 200 "one click activates"
grep -q 'Account activated' /tmp/smoke.body || fail "the page says the account is active"
expect "$(status POST "$ACME/api/auth/jwt/create/" "{\"email\": \"u@$SLUG.test\", \"password\": \"Sm0ke-Test-Pass\"}")" 200 "the activated user logs in"
expect "$(page "$ACTIVATE")" "404 text/html; charset=utf-8" "the activation link works once"

ACME_ADMIN=${DEMO_ACME_ADMIN_EMAIL:-admin@acme.example.com}
expect "$(status POST "$ACME/api/auth/users/reset_password/" "{\"email\": \"$ACME_ADMIN\"}")" 204 "password reset asked on acme"
RESET=$(link "http://acme.$BASE:$PORT/password/reset/confirm/" "$ACME_ADMIN")
expect "$(page "$RESET")" "200 text/html; charset=utf-8" "reset link opens a page on acme"
grep -q 'Choose a new password' /tmp/smoke.body || fail "reset page asks for the new password"
expect "$(page "$RESET" "$GLOBEX_HOST")" "404 text/html; charset=utf-8" "reset link on globex's host"

# An invitation: acme's admin invites an address into ProductManagers; the
# invitee opens the emailed link (a page on acme's host), accepts, logs in.
ADMIN=$(curl -sf "$ACME/api/auth/jwt/create/" -H 'Content-Type: application/json' \
  -d "{\"email\": \"$ACME_ADMIN\", \"password\": \"${DEMO_ADMIN_PASSWORD:-demo-Passw0rd!}\"}" | json '["access"]') || fail "acme admin login"
expect "$(status GET "$ACME/api/groups/" "" "$ADMIN")" 200 "acme's groups"
GROUP=$($PY -c "import json,sys; print(next(g['id'] for g in json.load(sys.stdin)['results'] if g['name'] == 'ProductManagers'))" < /tmp/smoke.body)
INVITEE="invitee-$SLUG@acme.test"
expect "$(status POST "$ACME/api/invitations/" "{\"email\": \"$INVITEE\", \"groups\": [$GROUP]}" "$ADMIN")" 201 "acme's admin invites $INVITEE"
INVITATION=$(link "http://acme.$BASE:$PORT/invitation/" "$INVITEE")
expect "$(page "$INVITATION")" "200 text/html; charset=utf-8" "the invitation link opens a page on acme"
expect "$(page "$INVITATION" "$GLOBEX_HOST")" "404 text/html; charset=utf-8" "the invitation link on globex's host"
INVITE_TOKEN=${INVITATION##*/}
expect "$(status POST "$ACME/api/auth/invitations/accept/" "{\"token\": \"$INVITE_TOKEN\", \"username\": \"inv$SLUG\", \"password\": \"Sm0ke-Test-Pass\"}")" 201 "the invitee accepts"
[ "$(json '["groups"][0]' < /tmp/smoke.body)" = "ProductManagers" ] || fail "the invitee is in ProductManagers"
expect "$(status POST "$ACME/api/auth/jwt/create/" "{\"email\": \"$INVITEE\", \"password\": \"Sm0ke-Test-Pass\"}")" 200 "the invitee logs in"
expect "$(status POST "$ACME/api/auth/invitations/accept/" "{\"token\": \"$INVITE_TOKEN\", \"username\": \"inv2$SLUG\", \"password\": \"Sm0ke-Test-Pass\"}")" 400 "an invitation is accepted once"

# The support reset: an operator sends acme's admin a reset link (audited; no token in the answer).
expect "$(status POST "http://$BASE:$PORT/api/platform/tenants/acme/support/password-reset/" "{\"email\": \"$ACME_ADMIN\"}" "$OP")" 202 "operator sends acme's admin a reset link"
grep -q '"token"' /tmp/smoke.body && fail "the support answer carries no token"

# A custom domain, served at once (no settings, no restart), asked for before it existed.
CUSTOM="shop.$SLUG.test"
expect "$(status GET "http://127.0.0.1:$PORT/api/health/" "" "" "$CUSTOM:$PORT")" 404 "unknown custom domain"
expect "$(status POST "http://$BASE:$PORT/api/platform/tenants/$SLUG/domains/" "{\"domain\": \"$CUSTOM\"}" "$OP")" 201 "operator adds $CUSTOM"
expect "$(status GET "http://127.0.0.1:$PORT/api/health/" "" "" "$CUSTOM:$PORT")" 200 "$CUSTOM serves $SLUG at once"
[ "$(json '["tenant"]' < /tmp/smoke.body)" = "$SLUG" ] || fail "$CUSTOM is $SLUG's"
expect "$(status PATCH "http://$BASE:$PORT/api/platform/tenants/$SLUG/domains/$CUSTOM/" '{"is_primary": true}' "$OP")" 200 "$CUSTOM made primary"
expect "$(status POST "http://$SLUG.$BASE:$PORT/api/auth/users/reset_password/" "{\"email\": \"boss@$SLUG.test\"}")" 204 "reset asked on the old host"
link "http://$CUSTOM:$PORT/password/reset/confirm/" "boss@$SLUG.test" > /dev/null
echo "ok  the emailed link follows the new primary domain"

expect "$(status DELETE "http://$BASE:$PORT/api/platform/tenants/$SLUG/" "" "$OP")" 204 "archive"
expect "$(status GET "http://$SLUG.$BASE:$PORT/api/health/")" 403 "archived tenant is suspended"
expect "$(status DELETE "http://$BASE:$PORT/api/platform/tenants/$SLUG/?purge=$SLUG" "" "$OP")" 204 "purge"
expect "$(status GET "http://$SLUG.$BASE:$PORT/api/health/")" 404 "purged tenant is gone"
echo "SMOKE PASSED"
