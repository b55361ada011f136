#!/usr/bin/env python3
"""Attack a running server (what `make run` serves) as an outsider would, and
check that every door holds. Standard library only; loopback only.

    .venv/bin/python scripts/attack.py [--port 8000]

The operator provisions a throwaway tenant (purged at the end) and its admin
registers the accounts each attack needs. Each attack comes from its own
loopback address (127.0.0.x), so that the per-IP limits of one do not decide
another's outcome; what is checked is the per-account counter.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import secrets
import socket
import sys
import time
from http.cookies import SimpleCookie
from typing import Any

BASE = os.environ.get("TENANT_BASE_DOMAIN", "localhost")
OPERATOR = (
    os.environ.get("DEMO_OPERATOR_EMAIL", "operator@example.com"),
    os.environ.get("DEMO_OPERATOR_PASSWORD", "demo-Passw0rd!"),
)
PASSWORD = "Attack-" + secrets.token_urlsafe(10)
RESULTS: list[tuple[bool, str]] = []


class Server:
    def __init__(self, port: int) -> None:
        self.port = port

    def request(
        self,
        host: str,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        source: str = "127.0.0.1",
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30, source_address=(source, 0))
        sent = dict(headers or {})
        sent["Host"] = f"{host}:{self.port}"
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        if token:
            sent["Authorization"] = f"Bearer {token}"
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        answer = response.read()
        conn.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, answer

    def json(self, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        status, _headers, body = self.request(*args, **kwargs)
        try:
            return status, json.loads(body or b"null")
        except ValueError:
            return status, body.decode(errors="replace")


def check(ok: bool, what: str) -> bool:
    RESULTS.append((ok, what))
    print(f"{'PASS' if ok else 'FAIL'}  {what}", flush=True)
    return ok


def login(server: Server, host: str, source: str, password: str = PASSWORD, **identifier: str) -> tuple[int, Any]:
    return server.json(host, "POST", "/api/auth/jwt/create/", {**identifier, "password": password}, source=source)


# --- the attacks ---------------------------------------------------------------------------------------


def admin_form_login(server: Server, host: str, email: str, password: str, source: str) -> bool:
    """One try at the Django admin's login form; True if it logged in."""
    status, headers, page = server.request(host, "GET", "/admin/login/", source=source)
    cookie = SimpleCookie(headers.get("set-cookie", ""))
    csrf = cookie["csrftoken"].value if "csrftoken" in cookie else ""
    found = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    form = f"csrfmiddlewaretoken={found.group(1).decode() if found else ''}&username={email}&password={password}"
    status, headers, _page = server.request(
        host,
        "POST",
        "/admin/login/?next=/admin/",
        raw=form.encode(),
        source=source,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={csrf}",
            "Referer": f"http://{host}:{server.port}/admin/login/",
        },
    )
    return status == 302 and "sessionid=" in headers.get("set-cookie", "")


def attack_admin_login(server: Server, host: str, admin: str) -> None:
    # Control: the form works (else every try below would fail for the wrong reason).
    check(admin_form_login(server, host, admin, PASSWORD, "127.0.0.10"), "admin login: the right password logs in")
    wrong = [admin_form_login(server, host, admin, f"guess-{n}", "127.0.0.11") for n in range(30)]
    check(not any(wrong), "admin login: 30 wrong passwords, none logs in")
    right = admin_form_login(server, host, admin, PASSWORD, "127.0.0.12")
    check(not right, "admin login: then the right password, from another address, is refused for now")


def attack_email_then_username(server: Server, host: str, email: str, username: str) -> None:
    statuses = [login(server, host, "127.0.0.21", password=f"guess-{n}", email=email)[0] for n in range(12)]
    check(set(statuses) <= {401, 429} and 429 in statuses, f"12 wrong email logins: 401s then 429s ({statuses})")
    status, _body = login(server, host, "127.0.0.22", username=username)
    check(status == 429, f"then the right username login, from another address, answers 429 (got {status})")


def attack_current_password(server: Server, host: str, email: str) -> None:
    status, pair = login(server, host, "127.0.0.31", email=email)
    if not check(status == 200, "current_password: the victim's session"):
        return
    statuses = []
    for n in range(25):
        body = {"current_password": f"guess-{n}", "new_password": "Brand-New-Pass-42"}
        path = "/api/auth/users/set_password/"
        statuses.append(server.json(host, "POST", path, body, token=pair["access"], source="127.0.0.32")[0])
    first = statuses.index(429) + 1 if 429 in statuses else "-"
    check(
        set(statuses) <= {400, 429} and statuses[-1] == 429,
        f"25 wrong current_password tries meet 429 (from try {first})",
    )


def attack_refresh_replay(server: Server, host: str, email: str) -> None:
    status, pair = login(server, host, "127.0.0.41", email=email)
    if not check(status == 200, "refresh replay: the victim logs in"):
        return
    status, successor = server.json(host, "POST", "/api/auth/jwt/refresh/", {"refresh": pair["refresh"]})
    check(status == 200, "the victim refreshes (its token rotates)")
    status, _ = server.json(host, "POST", "/api/auth/jwt/refresh/", {"refresh": pair["refresh"]})
    check(status == 401, f"the thief replays the rotated token: 401 (got {status})")
    status, _ = server.json(host, "POST", "/api/auth/jwt/refresh/", {"refresh": successor["refresh"]})
    check(status == 401, f"and the successor is dead too (got {status})")


def attack_big_body(server: Server, host: str) -> None:
    """8 MiB announced; only the headers and 64 KiB sent before the answer is read."""
    size = 8 * 1024 * 1024
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10, source_address=("127.0.0.51", 0))
    started = time.monotonic()
    head = (
        f"POST /api/auth/jwt/create/ HTTP/1.1\r\nHost: {host}:{server.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
    )
    sock.sendall(head.encode() + b"[" * 65536)
    answer = b""
    try:
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    except TimeoutError:
        pass  # the server waits for the rest of the body: it would read all 8 MiB
    elapsed = time.monotonic() - started
    sock.close()
    status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "none"
    check(status == "413" and elapsed < 5, f"an 8 MiB body answers 413 at once ({status} in {elapsed * 1000:.0f} ms)")


def attack_deep_json(server: Server, host: str) -> None:
    raw = b"[" * 3000 + b"]" * 3000
    status, _h, body = server.request(
        host,
        "POST",
        "/api/auth/jwt/create/",
        raw=raw,
        headers={"Content-Type": "application/json"},
        source="127.0.0.52",
    )
    check(status == 400, f"3,000-deep JSON answers 400 (got {status}: {body[:80]!r})")


def attack_staff_escalation(server: Server, host: str, admin_token: str, root_id: int, staff: dict[str, Any]) -> None:
    status, pair = login(server, host, "127.0.0.61", email=staff["email"])
    if not check(status == 200, "escalation: the staff user logs in"):
        return
    token = pair["access"]
    grant = {"permissions": ["accounts.change_user"]}
    status, _ = server.json(host, "POST", f"/api/users/{staff['id']}/permissions/", grant, token=token)
    check(status == 403, f"staff cannot grant itself accounts.change_user ({status})")
    status, _ = server.json(host, "PATCH", f"/api/auth/users/{root_id}/", {"is_active": False}, token=token)
    check(status == 403, f"staff cannot deactivate the superuser ({status})")
    status, _ = server.json(host, "DELETE", f"/api/auth/users/{root_id}/", {"current_password": PASSWORD}, token=token)
    check(status == 403, f"staff cannot delete the superuser ({status})")
    status, me = server.json(host, "GET", f"/api/auth/users/{root_id}/", token=admin_token)
    check(status == 200 and me.get("is_active") and me.get("is_superuser"), "the superuser is intact")


# --- set-up --------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    args = parser.parse_args()
    server = Server(args.port)
    slug = f"attack-{secrets.token_hex(3)}"
    host = f"{slug}.{BASE}"

    status, body = login(server, BASE, "127.0.0.2", password=OPERATOR[1], email=OPERATOR[0])
    if status != 200:
        print(f"operator login failed: {status} {body}", file=sys.stderr)
        return 2
    operator = body["access"]
    admin = f"boss@{slug}.test"
    tenant = {"slug": slug, "name": "Attack", "admin_email": admin, "admin_password": PASSWORD}
    status, body = server.json(
        BASE, "POST", "/api/platform/tenants/", {**tenant, "require_activation": False}, token=operator
    )
    if status != 201:
        print(f"provisioning failed: {status} {body}", file=sys.stderr)
        return 2
    try:
        status, pair = login(server, host, "127.0.0.3", email=admin)
        admin_token = pair["access"]
        _, root = server.json(host, "GET", "/api/auth/users/me/", token=admin_token)
        users = {}
        for n, name in enumerate(("bob", "carol", "dave", "eve")):
            account = {"email": f"{name}@{slug}.test", "username": name, "password": PASSWORD}
            status, users[name] = server.json(host, "POST", "/api/auth/users/", account, source=f"127.0.1.{n}")
            if status != 201:
                print(f"registering {name} failed: {status} {users[name]}", file=sys.stderr)
                return 2
        eve = f"/api/auth/users/{users['eve']['id']}/"
        status, answer = server.json(host, "PATCH", eve, {"is_staff": True}, token=admin_token)
        check(status == 200 and answer.get("is_staff") is True, "the superuser makes eve staff")

        attack_admin_login(server, host, admin)
        attack_email_then_username(server, host, users["bob"]["email"], "bob")
        attack_current_password(server, host, users["carol"]["email"])
        attack_refresh_replay(server, host, users["dave"]["email"])
        attack_big_body(server, host)
        attack_deep_json(server, host)
        attack_staff_escalation(server, host, admin_token, root["id"], users["eve"])
    finally:
        server.json(BASE, "DELETE", f"/api/platform/tenants/{slug}/?purge={slug}", token=operator)
    failed = [what for ok, what in RESULTS if not ok]
    print(f"\n{len(RESULTS) - len(failed)} of {len(RESULTS)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
