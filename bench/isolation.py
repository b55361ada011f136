#!/usr/bin/env python3
"""Isolation under load (issue 12, point 2): every answer belongs to the tenant and user it was sent as.

    .venv/bin/python bench/isolation.py [--requests N] [--tenants N] [--users N] [--concurrency N]
                                        [--ci] [--redis-dbs 11,12] [--seed N] [--tolerate N] [--keep-tmp]

Starts scripts/multinode_smoke.py's production layout with its ``Run``
(imported, not copied): PgBouncer in session mode, two gunicorn nodes with
production settings (2 sync workers each), one Celery worker with beat, an
SMTP sink, nginx round robin; on a database of its own
(``tenantdesk_isolation_<pid>``, dropped at the end) and Redis databases 11
(cache) and 12 (broker) by default (``--redis-dbs``), beside multinode_smoke
(9, 10) and faults.py (a redis-server of its own). For the run, throttles are
raised (the whole load comes from one address) and access tokens outlive it.

Set-up, through nginx: the platform operator provisions ``--tenants``
tenants (default 20; every fifth requires activation); in each, the admin
creates 12 products and publishes 2, ``--users`` users (default 5) register
(activated through the worker's emails where the tenant requires it) and
log in, and the admin grants each user view and change on 3 of the other 10.

Load: ``--concurrency`` threads (default 8), each with its own keep-alive
connection to nginx, send ``--requests`` requests (default 100,000; ``--ci``
5,000) across all tenants at once: product lists and details (the admin, plain
users who see products through object grants, anonymous callers), creates and
updates (admins; plain users where granted, and refused where not), grants
and revokes (single and bulk) by the tenant admins and their listings,
refreshes (some replayed: the old token and its successor refused), logins
(some with a wrong password), registrations and activations, ``users/me``,
the user list, tokens presented to another tenant; and, on the public host,
the platform operator suspending one tenant at a time for a second or two.

Every answer is checked. Markers are unique per tenant (the slug in every
product name and email) and per user (a tag in the email and username). A
LEAK is: a body naming another tenant; ``users/me`` or a token's claims
(decoded without verification) naming another tenant or user; a plain user
seeing or changing a product never granted to them, or one whose revocation
was confirmed before the request and not granted again since (grant changes
still in flight at the time of a read are ambiguous, and not counted); an
anonymous caller seeing an unpublished product; a write or a listing that
must be refused succeeding (a create without ``add_product``, the user list
to a plain user, another tenant's token, a replayed refresh token, a wrong
password, an inactive account); data served while the tenant was suspended
(the request sent after the suspension was confirmed, answered before the
reactivation was sent: it must be 403 ``tenant_suspended`` in the error
shape); an email naming another tenant or linking to another host. 5xx are
counted apart, and so is any other answer the request should not get
(unexpected: a 401 on a valid token, a granted product missing, a
``tenant_suspended`` outside a suspension, an error not in the error shape,
no answer), by kind with examples; 429s would be counted apart too.

Prints one summary (requests by kind, throughput, latency p50/p95, leaks,
5xx, unexpected answers) and exits 1 if there was a leak, a 5xx, more than
``--tolerate`` (default 0) unexpected answers, or a check that never ran
(no suspension seen, no replay, ...). Whatever happens it stops what it
started, drops its database and deletes its Redis keys (multinode_smoke's
clean-up).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import math
import random
import re
import secrets
import sys
import threading
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import multinode_smoke as ms  # noqa: E402

LOOPBACK = ms.LOOPBACK
BASE = ms.BASE
SMOKE_REDIS_DBS = (ms.CACHE_DB, ms.BROKER_DB)  # multinode_smoke's own, before main() points it at ours
TIMEOUT = 40.0  # seconds per request (nginx gives up on a node after 35)
PERMS = ["change_product", "view_product"]
POOL = 10  # grantable products per tenant; 2 more are published
PUBLISHED = 2
FIRST_GRANTS = 3  # products granted to each set-up user
EXAMPLES = 4  # examples kept per kind of problem
PROGRESS_EVERY = 15.0  # seconds

# Weights of the operations the load threads draw from (each sends one to four requests).
MIX: dict[str, float] = {
    "list_user": 16,
    "list_admin": 8,
    "list_anon": 2,
    "detail_user": 16,
    "detail_admin": 7,
    "me": 9,
    "users_list": 2,
    "create": 4,
    "update_admin": 4,
    "update_user": 5,
    "grant": 8,
    "grants_read": 2,
    "refresh": 6,
    "login": 2.5,
    "register": 1.5,
    "activate": 1,
    "foreign": 2,
}


def now() -> float:
    return time.monotonic()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def claims_of(token: Any) -> dict[str, Any]:
    """A JWT's payload, not verified (what the client can read)."""
    try:
        part = str(token).split(".")[1]
        decoded = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        return {}
    return decoded if isinstance(decoded, dict) else {}


# --- HTTP: one keep-alive connection per thread --------------------------------------------------


class Conn:
    def __init__(self, port: int) -> None:
        self.port = port
        self.http: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self.http is not None:
            self.http.close()
            self.http = None

    def send(
        self, method: str, path: str, host: str, body: Any, token: str | None
    ) -> tuple[int, dict[str, str], bytes]:
        headers, data = ms.request_parts(host, body, token)
        if self.http is None:
            self.http = http.client.HTTPConnection(LOOPBACK, self.port, timeout=TIMEOUT)
        try:
            self.http.request(method, path, body=data, headers=headers)
            response = self.http.getresponse()
            raw = response.read()
        except BaseException:
            self.close()
            raise
        if response.will_close:
            self.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, raw


@dataclass
class Answer:
    kind: str
    method: str
    host: str
    path: str
    status: int  # 0: no answer
    raw: bytes
    data: Any
    node: str
    t0: float
    t1: float
    ok: bool = False  # one of the statuses the caller called plausible
    suspended: bool = False  # 403 tenant_suspended while the tenant was (maybe) suspended

    def describe(self) -> str:
        text = self.raw[:300].decode(errors="replace")
        return f"{self.method} {self.host}{self.path} -> {self.status} (node {self.node}): {text}"


# --- what was seen -----------------------------------------------------------------------------------


@dataclass
class Problems:
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, label: str, example: str) -> None:
        self.counts[label] += 1
        if len(self.examples[label]) < EXAMPLES:
            self.examples[label].append(example)

    def total(self) -> int:
        return sum(self.counts.values())

    def report(self, title: str) -> list[str]:
        lines = [f"{title}: {self.total()}"]
        for label, n in self.counts.most_common():
            lines.append(f"  {n:>7}  {label}")
            lines += [f"             e.g. {example[:600]}" for example in self.examples[label]]
        return lines


class Stats:
    def __init__(self, budget: int) -> None:
        self.lock = threading.Lock()
        self.budget = budget
        self.sent = 0
        self.kinds: Counter[str] = Counter()
        self.statuses: dict[str, Counter[str]] = defaultdict(Counter)
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.nodes: Counter[str] = Counter()
        self.hosts: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.refusals: Counter[str] = Counter()  # expected 4xx, by kind and status
        self.leaks = Problems()
        self.errors = Problems()  # 5xx
        self.unexpected = Problems()
        self.throttled = Problems()
        self.events: Counter[str] = Counter()  # checks that ran (coverage)
        self.started = now()
        self.ended = 0.0
        self.cpu = 0.0  # this process's CPU time over the load (the generator's cost)

    def more(self) -> bool:
        with self.lock:
            return self.sent < self.budget

    def record(self, ans: Answer, outcome: str) -> None:
        label = f"{ans.status}" + (
            f"/{ans.data.get('code')}" if ans.status >= 400 and isinstance(ans.data, dict) else ""
        )
        with self.lock:
            self.sent += 1
            self.kinds[ans.kind] += 1
            self.statuses[ans.kind][label] += 1
            self.latency[ans.kind].append(ans.t1 - ans.t0)
            self.nodes[ans.node] += 1
            self.hosts[ans.host] += 1
            self.outcomes[outcome] += 1
            if outcome == "refused as expected":
                self.refusals[f"{ans.kind} {label}"] += 1

    def leak(self, kind: str, what: str, example: str) -> None:
        with self.lock:
            self.leaks.add(f"{kind}: {what}", example)

    def odd(self, kind: str, what: str, example: str) -> None:
        with self.lock:
            self.unexpected.add(f"{kind}: {what}", example)

    def event(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.events[name] += n


# --- the fleet as the generator knows it ------------------------------------------------------------


@dataclass(eq=False)
class Account:
    tenant: Tenant
    tag: str
    email: str
    username: str
    password: str
    id: int = 0
    admin: bool = False
    access: str = ""
    refresh: str = ""
    busy: bool = False  # a refresh of this account in flight (one at a time: a second would be a reuse)


@dataclass
class Grant:
    """One (user, product) pair's object grants as the generator made them."""

    granted: bool = False  # the last confirmed change
    ever: bool = False  # a grant was ever sent (set before sending)
    pending: int = 0  # changes in flight
    seq: int = 0  # bumped when a change starts and when it ends
    unknown: bool = False  # a change got no usable answer: ambiguous until the next confirmed one


@dataclass
class Window:
    """One suspension, as the operator's requests bound it."""

    sent: float
    done: float | None = None  # the suspension answered 200 (committed) by then
    resume_sent: float | None = None
    resume_done: float | None = None


@dataclass(eq=False)
class Tenant:
    index: int
    slug: str
    require_activation: bool
    password: str
    tid: int = 0
    admin: Account | None = None
    users: list[Account] = field(default_factory=list)  # active plain users
    pending: list[Account] = field(default_factory=list)  # registered, waiting for activation
    products: dict[int, int] = field(default_factory=dict)  # id -> serial (in every name)
    pool: list[int] = field(default_factory=list)  # products the admin grants
    published: set[int] = field(default_factory=set)
    created: list[int] = field(default_factory=list)  # created by the load: never granted nor published
    grants: dict[tuple[int, int], Grant] = field(default_factory=dict)
    windows: list[Window] = field(default_factory=list)
    serial: int = 0

    @property
    def host(self) -> str:
        return f"{self.slug}.{BASE}"

    @property
    def schema(self) -> str:
        return self.slug.replace("-", "_")

    def next_serial(self) -> int:
        self.serial += 1
        return self.serial

    def grant(self, user_id: int, product_id: int) -> Grant:
        return self.grants.setdefault((user_id, product_id), Grant())

    def phase(self, t0: float, t1: float) -> str:
        """'suspended' when the whole request fell inside a confirmed suspension,
        'boundary' when it overlapped one's edges, else 'active'."""
        for w in self.windows:
            end = w.resume_done if w.resume_done is not None else math.inf
            if t1 < w.sent or t0 > end:
                continue
            if w.done is not None and t0 > w.done and (w.resume_sent is None or t1 < w.resume_sent):
                return "suspended"
            return "boundary"
        return "active"


class Failure(ms.Failure):
    pass


# --- the run --------------------------------------------------------------------------------------


class IsolationRun(ms.Run):
    """multinode_smoke's run, under a database, queue and Redis databases of its own."""

    def __init__(self, keep_tmp: bool) -> None:
        super().__init__(keep_tmp)
        self.db = f"tenantdesk_isolation_{self.pid}"
        self.queue = f"isolation-{self.pid}"

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(
            **ms.LOAD_THROTTLES,
            JWT_ACCESS_MINUTES="600",  # the load's access tokens outlive the run
            **extra,
        )


class Isolation:
    def __init__(self, run: IsolationRun, args: argparse.Namespace) -> None:
        self.run = run
        self.args = args
        self.lock = threading.Lock()
        self.stats = Stats(budget=10**9)  # the set-up's; the load gets its own
        self.setup_stats = self.stats
        self.stop = threading.Event()
        self.width = max(2, len(str(args.tenants - 1)))
        self.tenants = [
            Tenant(
                index=i,
                slug=f"iso{run.pid}-t{i:0{self.width}d}",
                require_activation=i % 5 == 4,
                password="Iso-" + secrets.token_urlsafe(12),
            )
            for i in range(args.tenants)
        ]
        self.marker = re.compile(
            rb"iso" + str(run.pid).encode() + rb"[-_]t(\d{" + str(self.width).encode() + rb"})(?!\d)"
        )
        self.operator = ""
        self.registered = 0
        self.ops: dict[str, Callable[[Conn, random.Random], None]] = {
            "list_user": self.op_list_user,
            "list_admin": self.op_list_admin,
            "list_anon": self.op_list_anon,
            "detail_user": self.op_detail_user,
            "detail_admin": self.op_detail_admin,
            "me": self.op_me,
            "users_list": self.op_users_list,
            "create": self.op_create,
            "update_admin": self.op_update_admin,
            "update_user": self.op_update_user,
            "grant": self.op_grant,
            "grants_read": self.op_grants_read,
            "refresh": self.op_refresh,
            "login": self.op_login,
            "register": self.op_register,
            "activate": self.op_activate,
            "foreign": self.op_foreign,
        }

    # --- one request, judged -------------------------------------------------------------------

    def call(
        self,
        conn: Conn,
        kind: str,
        method: str,
        path: str,
        *,
        tenant: Tenant | None,
        expect: Collection[int],
        token: str | None = None,
        body: Any = None,
        about: Tenant | None = None,
    ) -> Answer:
        """Sends through nginx to ``tenant``'s host (the public host when None) and
        judges the answer: suspension, markers of other tenants (``about``: the
        tenant the body may name, ``tenant`` by default), 5xx, the plausible
        statuses ``expect``, the error shape. The caller checks the body further."""
        host = tenant.host if tenant is not None else BASE
        about = about or tenant
        t0 = now()
        try:
            status, headers, raw = conn.send(method, path, host, body, token)
            error = ""
        except (OSError, http.client.HTTPException) as exc:
            status, headers, raw, error = 0, {}, b"", f"{type(exc).__name__}: {exc}"
        t1 = now()
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
        node = self.run.nodes.get(headers.get("x-upstream", ""), "-")
        ans = Answer(kind, method, host, path, status, raw, data, node, t0, t1)
        code = data.get("code") if isinstance(data, dict) else None
        shaped = isinstance(data, dict) and isinstance(data.get("detail"), str) and isinstance(code, str)
        with self.lock:
            phase = tenant.phase(t0, t1) if tenant is not None else "active"
        stats = self.stats
        if status == 0:
            outcome = "unexpected"
            stats.odd(kind, "no answer", f"{method} {host}{path}: {error}")
        elif status >= 500:
            outcome = "5xx"
            with stats.lock:
                stats.errors.add(f"{kind}: {status}/{code}", ans.describe())
        elif status == 403 and code == "tenant_suspended":
            if phase != "active" and shaped:
                outcome, ans.suspended = "suspended (403 tenant_suspended)", True
            else:
                outcome = "unexpected"
                stats.odd(kind, f"403 tenant_suspended ({phase})", ans.describe())
        elif phase == "suspended":
            outcome = "unexpected"
            if 200 <= status < 300:
                stats.leak(kind, "data served while the tenant was suspended", ans.describe())
            else:
                stats.odd(kind, f"{status}/{code} while suspended, not 403 tenant_suspended", ans.describe())
        elif status == 429:
            outcome = "throttled"
            with stats.lock:
                stats.throttled.add(f"{kind}: 429/{code}", ans.describe())
        elif status in expect:
            if status >= 400 and not shaped:
                outcome = "unexpected"
                stats.odd(kind, f"{status}: not the error shape", ans.describe())
            else:
                ans.ok = True
                outcome = "ok" if status < 400 else "refused as expected"
        else:
            outcome = "unexpected"
            stats.odd(kind, f"{status}/{code} (expected {'/'.join(map(str, sorted(expect)))})", ans.describe())
        if raw and about is not None:
            others = sorted({int(m) for m in self.marker.findall(raw)} - {about.index})
            if others:
                names = ", ".join(self.tenants[i].slug for i in others if i < len(self.tenants))
                stats.leak(kind, "the body names another tenant", f"{names} in {ans.describe()}")
                ans.ok = False
        stats.record(ans, outcome)
        return ans

    # --- accounts and tokens -----------------------------------------------------------------

    def check_claims(self, kind: str, acc: Account, token: Any, token_type: str, ans: Answer) -> bool:
        t = acc.tenant
        claims = claims_of(token)
        wrong = {
            name: claims.get(name)
            for name, want in (("tenant", t.schema), ("tid", t.tid), ("user_id", acc.id), ("token_type", token_type))
            if str(claims.get(name)) != str(want)
        }
        if wrong:
            self.stats.leak(
                kind,
                f"{token_type} token claims not this tenant's and user's",
                f"{t.slug} user {acc.id}: {wrong} in {ans.describe()}",
            )
            return False
        return True

    def login(self, conn: Conn, rng: random.Random, acc: Account, kind: str = "login") -> bool:
        by_username = not acc.admin and rng.random() < 0.3
        body = {"username": acc.username} if by_username else {"email": acc.email}
        body["password"] = acc.password
        ans = self.call(conn, kind, "POST", "/api/auth/jwt/create/", tenant=acc.tenant, body=body, expect={200})
        if not ans.ok or not isinstance(ans.data, dict):
            return False
        access, refresh = ans.data.get("access"), ans.data.get("refresh")
        if not (isinstance(access, str) and isinstance(refresh, str)):
            self.stats.odd(kind, "no access or refresh token", ans.describe())
            return False
        if not acc.id:  # the set-up's first login of an admin: its id and the tenant's row id, from the claims
            claims = claims_of(access)
            acc.id = int(claims.get("user_id") or 0)
            with self.lock:
                acc.tenant.tid = acc.tenant.tid or int(claims.get("tid") or 0)
        if not (
            self.check_claims(kind, acc, access, "access", ans)
            and self.check_claims(kind, acc, refresh, "refresh", ans)
        ):
            return False
        acc.access, acc.refresh = access, refresh
        return True

    def user(self, conn: Conn, rng: random.Random, t: Tenant) -> Account | None:
        """An active plain user of ``t``, logged in."""
        with self.lock:
            if not t.users:
                return None
            acc = rng.choice(t.users)
        if not acc.access and not self.login(conn, rng, acc):
            return None
        return acc

    def admin(self, conn: Conn, rng: random.Random, t: Tenant) -> Account | None:
        acc = t.admin
        if acc is None or (not acc.access and not self.login(conn, rng, acc)):
            return None
        return acc

    # --- products as a plain user sees them ---------------------------------------------------------

    def snapshot(self, t: Tenant, acc: Account) -> dict[int, tuple[bool, bool, int]]:
        """product -> (granted, stable: no change in flight nor unknown, seq), before a read."""
        with self.lock:
            return {
                p: (g.granted, g.pending == 0 and not g.unknown, g.seq) for p in t.pool for g in (t.grant(acc.id, p),)
            }

    def expect_view(self, t: Tenant, acc: Account, pid: int, snap: dict[int, tuple[bool, bool, int]]) -> str:
        """'yes', 'no' or 'either': may ``acc`` see ``pid`` now."""
        if pid in t.published:
            return "yes"
        if pid not in snap:
            return "no"  # created by the load, another tenant's id, or none: never granted
        granted, stable, _ = snap[pid]
        return ("yes" if granted else "no") if stable else "either"

    def unchanged(self, t: Tenant, acc: Account, pid: int, snap: dict[int, tuple[bool, bool, int]]) -> bool:
        """No grant change of (acc, pid) was in flight at the snapshot or started or ended since."""
        if pid not in snap:
            return True  # published, created by the load or not this tenant's: never granted
        _, stable, seq = snap[pid]
        with self.lock:
            return stable and t.grant(acc.id, pid).seq == seq

    def check_visible(
        self,
        kind: str,
        t: Tenant,
        acc: Account,
        snap: dict[int, tuple[bool, bool, int]],
        seen: set[int],
        ans: Answer,
        *,
        complete: bool,
    ) -> None:
        with self.lock:
            for pid in sorted(seen):
                if pid in t.published:
                    continue
                g = t.grants.get((acc.id, pid))
                if g is None or not g.ever:
                    self.stats.leak(kind, "a product never granted to this user", f"product {pid}: {ans.describe()}")
                    continue
                before = snap.get(pid)
                if before and before[1] and not before[0] and g.seq == before[2]:
                    self.stats.leak(
                        kind,
                        "a product whose revocation was confirmed before the request",
                        f"product {pid}: {ans.describe()}",
                    )
            if not complete:
                return
            missing = [p for p in t.published if p not in seen]
            missing += [
                p
                for p, (granted, stable, seq) in snap.items()
                if granted and stable and t.grants[(acc.id, p)].seq == seq and p not in seen
            ]
        if missing:
            self.stats.odd(kind, "a published or granted product missing", f"{sorted(missing)}: {ans.describe()}")

    def check_product(self, kind: str, t: Tenant, item: Any, ans: Answer) -> int | None:
        """The product's id if it is one of ``t``'s, well formed."""
        if not (isinstance(item, dict) and isinstance(item.get("id"), int) and isinstance(item.get("name"), str)):
            self.stats.odd(kind, "a product without id or name", ans.describe())
            return None
        pid, name = item["id"], item["name"]
        if not name.startswith(f"{t.slug} p"):
            self.stats.leak(kind, "a product that is not this tenant's", f"{name!r}: {ans.describe()}")
            return None
        with self.lock:
            serial = t.products.get(pid)
        if serial is not None and not name.startswith(f"{t.slug} p{serial:05d} "):
            self.stats.odd(kind, "a product's id and name disagree", f"id {pid} {name!r}: {ans.describe()}")
        return int(pid)

    def page(self, kind: str, t: Tenant, ans: Answer) -> set[int] | None:
        data = ans.data
        if not (
            isinstance(data, dict) and isinstance(data.get("results"), list) and isinstance(data.get("count"), int)
        ):
            self.stats.odd(kind, "not a page", ans.describe())
            return None
        ids = {pid for item in data["results"] if (pid := self.check_product(kind, t, item, ans)) is not None}
        if data.get("next") is None and data.get("previous") is None and data["count"] != len(data["results"]):
            self.stats.odd(kind, "count disagrees with the page", ans.describe())
        return ids

    # --- the operations -------------------------------------------------------------------------

    def op_list_user(self, conn: Conn, rng: random.Random) -> None:
        t = rng.choice(self.tenants)
        acc = self.user(conn, rng, t)
        if acc is None:
            return
        snap = self.snapshot(t, acc)
        path = "/api/products/?page_size=200"
        ans = self.call(conn, "list_user", "GET", path, tenant=t, token=acc.access, expect={200})
        if ans.ok and (seen := self.page("list_user", t, ans)) is not None:
            self.check_visible("list_user", t, acc, snap, seen, ans, complete=True)
            self.stats.event("plain user lists checked")

    def op_list_admin(self, conn: Conn, rng: random.Random) -> None:
        t = rng.choice(self.tenants)
        acc = self.admin(conn, rng, t)
        if acc is None:
            return
        path = rng.choice(["/api/products/", "/api/products/?page=2", f"/api/products/?search={t.slug}"])
        path = rng.choice([path, "/api/products/?ordering=-id&page_size=20"])
        expect = {200, 404} if "page=2" in path else {200}  # a second page only once there are 51 products
        ans = self.call(conn, "list_admin", "GET", path, tenant=t, token=acc.access, expect=expect)
        if ans.ok and ans.status == 200:
            self.page("list_admin", t, ans)

    def op_list_anon(self, conn: Conn, rng: random.Random) -> None:
        t = rng.choice(self.tenants)
        ans = self.call(conn, "list_anon", "GET", "/api/products/?page_size=200", tenant=t, expect={200})
        if ans.ok and (seen := self.page("list_anon", t, ans)) is not None:
            if seen - t.published:
                self.stats.leak("list_anon", "an unpublished product to an anonymous caller", ans.describe())
            if t.published - seen:
                self.stats.odd("list_anon", "a published product missing", ans.describe())

    def pick_product(self, rng: random.Random, t: Tenant) -> int:
        with self.lock:
            r = rng.random()
            if r < 0.5:
                return rng.choice(t.pool)
            if r < 0.65:
                return rng.choice(sorted(t.published))
            if r < 0.85 and t.created:
                return rng.choice(t.created)
            other = rng.choice(self.tenants)  # an id of another tenant's, or none at all
            return rng.choice([*other.products, max(other.products, default=0) + rng.randint(1, 50)])

    def op_detail_user(self, conn: Conn, rng: random.Random) -> None:
        t = rng.choice(self.tenants)
        acc = self.user(conn, rng, t)
        if acc is None:
            return
        pid = self.pick_product(rng, t)
        snap = self.snapshot(t, acc)
        want = self.expect_view(t, acc, pid, snap)
        ans = self.call(
            conn, "detail_user", "GET", f"/api/products/{pid}/", tenant=t, token=acc.access, expect={200, 404}
        )
        if not ans.ok:
            return
        if ans.status == 404 and want == "yes" and self.unchanged(t, acc, pid, snap):
            self.stats.odd("detail_user", "404 for a published or granted product", ans.describe())
        if ans.status == 200:
            got = self.check_product("detail_user", t, ans.data, ans)
            if got is not None and got != pid:
                self.stats.leak("detail_user", f"asked for product {pid}, got {got}", ans.describe())
            self.check_visible("detail_user", t, acc, snap, {pid}, ans, complete=False)
        self.stats.event("plain user details checked")

    def op_detail_admin(self, conn: Conn, rng: random.Random) -> None:
        t = rng.choice(self.tenants)
        acc = self.admin(conn, rng, t)
        if acc is None:
            return
        pid = self.pick_product(rng, t)
        with self.lock:
            known = pid in t.products
        ans = self.call(
            conn, "detail_admin", "GET", f"/api/products/{pid}/", tenant=t, token=acc.access, expect={200, 404}
        )
        if ans.ok and ans.status == 404 and known:
            self.stats.odd("detail_admin", "404 for one of the tenant's products", ans.describe())
        if ans.ok and ans.status == 200:
            got = self.check_product("detail_admin", t, ans.data, ans)
            if got is not None and got != pid:
                self.stats.leak("detail_admin", f"asked for product {pid}, got {got}", ans.describe())

    def create(self, conn: Conn, rng: random.Random, t: Tenant, acc: Account, kind: str) -> int | None:
        with self.lock:
            serial = t.next_serial()
        name = f"{t.slug} p{serial:05d} v0"
        body = {"name": name, "description": f"{t.slug} {acc.tag}", "price": f"{rng.randint(1, 99999) / 100:.2f}"}
        expect = {201} if acc.admin else {201, 403}
        ans = self.call(conn, kind, "POST", "/api/products/", tenant=t, token=acc.access, body=body, expect=expect)
        if not ans.ok:
            return None
        if not acc.admin:
            if ans.status == 201:
                self.stats.leak(kind, "a plain user (no add_product) created a product", ans.describe())
            return None
        data = ans.data if isinstance(ans.data, dict) else {}
        pid = data.get("id")
        if not isinstance(pid, int) or data.get("name") != name or data.get("owner") != acc.id:
            self.stats.odd(kind, "the created product is not the one sent", f"sent {body}: {ans.describe()}")
            return None
        with self.lock:
            t.products[pid] = serial
        return pid

    def op_create(self, conn: Conn, rng: random.Random) -> None:
        t = rng.choice(self.tenants)
        if rng.random() < 0.15:
            acc = self.user(conn, rng, t)
            if acc is not None:
                self.create(conn, rng, t, acc, "create_refused")
            return
        acc = self.admin(conn, rng, t)
        if acc is not None and (pid := self.create(conn, rng, t, acc, "create")) is not None:
            with self.lock:
                t.created.append(pid)

    def update(self, conn: Conn, rng: random.Random, t: Tenant, acc: Account, pid: int, kind: str) -> Answer:
        with self.lock:
            serial = t.products.get(pid, 0)
        name = f"{t.slug} p{serial:05d} v{secrets.token_hex(3)} {acc.tag}"
        body = {"name": name, "price": f"{rng.randint(1, 99999) / 100:.2f}"}
        expect = {200} if acc.admin else {200, 403, 404}
        ans = self.call(
            conn, kind, "PATCH", f"/api/products/{pid}/", tenant=t, token=acc.access, body=body, expect=expect
        )
        if ans.ok and ans.status == 200:
            data = ans.data if isinstance(ans.data, dict) else {}
            if data.get("id") != pid or data.get("name") != name:
                self.stats.odd(kind, "the updated product is not the one sent", f"sent {body}: {ans.describe()}")
        return ans

    def op_update_admin(self, conn: Conn, rng: random.Random) -> None:
        t = rng.choice(self.tenants)
        acc = self.admin(conn, rng, t)
        if acc is None:
            return
        with self.lock:
            pid = rng.choice(list(t.products))
        self.update(conn, rng, t, acc, pid, "update_admin")

    def op_update_user(self, conn: Conn, rng: random.Random) -> None:
        t = rng.choice(self.tenants)
        acc = self.user(conn, rng, t)
        if acc is None:
            return
        with self.lock:
            r = rng.random()
            pid = rng.choice(t.pool if r < 0.7 or not t.created else sorted(t.published) if r < 0.85 else t.created)
        snap = self.snapshot(t, acc)
        want = self.expect_view(t, acc, pid, snap)  # change is granted with view, always
        ans = self.update(conn, rng, t, acc, pid, "update_user")
        if not ans.ok:
            return
        if pid in t.published:
            if ans.status == 200:  # visible, never changeable by a plain user
                self.stats.leak("update_user", "a plain user changed a published product", ans.describe())
            elif ans.status == 404:
                self.stats.odd("update_user", "404 on a published product", ans.describe())
        elif want == "no" and ans.status == 200:
            self.check_visible("update_user", t, acc, snap, {pid}, ans, complete=False)
        elif want == "no" and ans.status == 403 and self.unchanged(t, acc, pid, snap):
            self.stats.leak("update_user", "403, not 404: an ungranted product shown to exist", ans.describe())
        elif want == "yes" and ans.status != 200 and self.unchanged(t, acc, pid, snap):
            self.stats.odd("update_user", f"{ans.status} on a product granted view and change", ans.describe())
        self.stats.event("plain user updates checked")

    def change_grants(
        self, conn: Conn, rng: random.Random, t: Tenant, *, bulk: bool, force: bool | None = None
    ) -> None:
        admin = self.admin(conn, rng, t)
        with self.lock:
            users = list(t.users)
        if admin is None or not users:
            return
        acc = rng.choice(users)
        with self.lock:
            pids = rng.sample(t.pool, 3 if bulk else 1)
            states = [t.grant(acc.id, p) for p in pids]
            if force is not None:
                grant = force
            elif bulk or states[0].unknown:
                grant = rng.random() < 0.5
            else:
                grant = not states[0].granted
            for s in states:
                s.pending += 1
                s.seq += 1
                s.ever |= grant
        kind = ("bulk_" if bulk else "") + ("grant" if grant else "revoke")
        confirmed, ans = False, None
        try:
            if bulk:
                body: dict[str, Any] = {"action": "grant" if grant else "revoke", "permissions": PERMS}
                body.update(products=pids, users=[acc.id])
                path = "/api/products/permissions/bulk/"
                ans = self.call(conn, kind, "POST", path, tenant=t, token=admin.access, body=body, expect={200})
                confirmed = ans.ok and isinstance(ans.data, dict) and isinstance(ans.data.get("changed"), int)
            else:
                body = {"user": acc.id, "permissions": PERMS}
                path = f"/api/products/{pids[0]}/permissions/"
                method = "POST" if grant else "DELETE"
                ans = self.call(conn, kind, method, path, tenant=t, token=admin.access, body=body, expect={200})
                confirmed = ans.ok and self.check_grants(kind, t, ans, acc.id, grant)
            if ans.ok and not confirmed:
                self.stats.odd(kind, "the answer does not show the change", ans.describe())
            self.stats.event("grants" if grant else "revokes")
        finally:
            with self.lock:
                for s in states:
                    s.pending -= 1
                    s.seq += 1
                    if confirmed:
                        s.granted, s.unknown = grant, False
                    elif ans is None or not ans.suspended:
                        s.unknown = True  # no usable answer: it may or may not have happened

    def check_grants(self, kind: str, t: Tenant, ans: Answer, user_id: int | None, granted: bool) -> bool:
        """The grants listing of one product: its holders are this tenant's; ``user_id`` holds both or none."""
        data = ans.data
        if not (isinstance(data, dict) and isinstance(data.get("users"), list)):
            self.stats.odd(kind, "not a grants listing", ans.describe())
            return False
        holders = {}
        for holder in data["users"]:
            email = holder.get("email") if isinstance(holder, dict) else None
            if not (isinstance(email, str) and email.endswith(f"@{t.slug}.test")):
                self.stats.leak(kind, "a grant holder who is not this tenant's", f"{holder}: {ans.describe()}")
                continue
            holders[holder.get("id")] = set(holder.get("permissions") or [])
        if user_id is None:
            return True
        return (set(PERMS) <= holders.get(user_id, set())) if granted else user_id not in holders

    def op_grant(self, conn: Conn, rng: random.Random) -> None:
        self.change_grants(conn, rng, rng.choice(self.tenants), bulk=rng.random() < 0.15)

    def op_grants_read(self, conn: Conn, rng: random.Random) -> None:
        t = rng.choice(self.tenants)
        admin = self.admin(conn, rng, t)
        if admin is None:
            return
        pid = rng.choice(t.pool)
        with self.lock:
            before = {
                u: (g.granted, g.pending == 0 and not g.unknown, g.seq) for (u, p), g in t.grants.items() if p == pid
            }
        path = f"/api/products/{pid}/permissions/"
        ans = self.call(conn, "grants_read", "GET", path, tenant=t, token=admin.access, expect={200})
        if not (ans.ok and self.check_grants("grants_read", t, ans, None, False)):
            return
        holders = {int(h["id"]) for h in ans.data["users"] if isinstance(h, dict) and isinstance(h.get("id"), int)}
        with self.lock:
            wrong = [
                u
                for u, (granted, stable, seq) in before.items()
                if stable and t.grants[(u, pid)].seq == seq and (u in holders) != granted
            ]
            never = sorted(u for u in holders if not (t.grants.get((u, pid)) or Grant()).ever)
        if never:
            self.stats.odd("grants_read", f"users {never} listed, never granted", ans.describe())
        if wrong:
            self.stats.odd(
                "grants_read", f"the listing disagrees with the confirmed grants of users {wrong}", ans.describe()
            )

    def op_refresh(self, conn: Conn, rng: random.Random) -> None:
        t = rng.choice(self.tenants)
        with self.lock:
            free = [a for a in [*t.users, *([t.admin] if t.admin else [])] if not a.busy]
            if not free:
                return
            acc = rng.choice(free)
            acc.busy = True
        try:
            if not acc.refresh and not self.login(conn, rng, acc):
                return
            old = acc.refresh
            ans = self.call(
                conn, "refresh", "POST", "/api/auth/jwt/refresh/", tenant=t, body={"refresh": old}, expect={200}
            )
            data = ans.data if isinstance(ans.data, dict) else {}
            if not ans.ok:
                if ans.status == 401:  # refused: log in again next time
                    acc.refresh = ""
                return
            new, access = data.get("refresh"), data.get("access")
            if not (isinstance(new, str) and isinstance(access, str)) or new == old:
                self.stats.odd("refresh", "no rotation", ans.describe())
                return
            if not (
                self.check_claims("refresh", acc, access, "access", ans)
                and self.check_claims("refresh", acc, new, "refresh", ans)
            ):
                return
            acc.access, acc.refresh = access, new
            if rng.random() >= 0.3:
                return
            # A replay of the rotated token: refused, and the session ends with it (its successor too).
            ans = self.call(
                conn,
                "refresh_replay",
                "POST",
                "/api/auth/jwt/refresh/",
                tenant=t,
                body={"refresh": old},
                expect={200, 401},
            )
            if not ans.ok:
                return
            if ans.status == 200:
                self.stats.leak("refresh_replay", "a rotated refresh token accepted again", ans.describe())
                return
            acc.refresh = ""
            ans = self.call(
                conn,
                "refresh_successor",
                "POST",
                "/api/auth/jwt/refresh/",
                tenant=t,
                body={"refresh": new},
                expect={200, 401},
            )
            if ans.ok and ans.status == 200:
                self.stats.leak(
                    "refresh_successor", "the successor of a replayed token still refreshes", ans.describe()
                )
            if ans.ok:
                self.stats.event("replays checked")
        finally:
            acc.busy = False

    def op_login(self, conn: Conn, rng: random.Random) -> None:
        t = rng.choice(self.tenants)
        with self.lock:
            accounts = [*t.users, *([t.admin] if t.admin else [])]
        if not accounts:
            return
        acc = rng.choice(accounts)
        if rng.random() < 0.1:
            body = {"email": acc.email, "password": acc.password + "x"}
            ans = self.call(conn, "login_bad", "POST", "/api/auth/jwt/create/", tenant=t, body=body, expect={200, 401})
            if ans.ok and ans.status == 200:
                self.stats.leak("login_bad", "a login with a wrong password", ans.describe())
            return
        self.login(conn, rng, acc)

    def op_me(self, conn: Conn, rng: random.Random) -> None:
        t = rng.choice(self.tenants)
        acc = self.admin(conn, rng, t) if rng.random() < 0.2 else self.user(conn, rng, t)
        if acc is None:
            return
        ans = self.call(conn, "me", "GET", "/api/auth/users/me/", tenant=t, token=acc.access, expect={200})
        if ans.ok:
            data = ans.data if isinstance(ans.data, dict) else {}
            got = (data.get("id"), data.get("email"), data.get("username"))
            if got != (acc.id, acc.email, acc.username):
                self.stats.leak(
                    "me", "users/me answered another user", f"expected {acc.id} {acc.email}: {ans.describe()}"
                )

    def op_users_list(self, conn: Conn, rng: random.Random) -> None:
        t = rng.choice(self.tenants)
        if rng.random() < 0.15:
            acc = self.user(conn, rng, t)
            if acc is not None:
                path = "/api/auth/users/"
                ans = self.call(conn, "users_list_refused", "GET", path, tenant=t, token=acc.access, expect={200, 403})
                if ans.ok and ans.status == 200:
                    self.stats.leak("users_list_refused", "the user list to a plain user", ans.describe())
            return
        acc = self.admin(conn, rng, t)
        if acc is None:
            return
        path = f"/api/auth/users/?page_size={rng.choice([20, 100, 200])}"
        ans = self.call(conn, "users_list", "GET", path, tenant=t, token=acc.access, expect={200})
        results = ans.data.get("results") if ans.ok and isinstance(ans.data, dict) else None
        if ans.ok and not isinstance(results, list):
            self.stats.odd("users_list", "not a page", ans.describe())
        for user in results or []:
            email = user.get("email") if isinstance(user, dict) else None
            if not (isinstance(email, str) and email.endswith(f"@{t.slug}.test")):
                self.stats.leak("users_list", "a user who is not this tenant's", f"{user}: {ans.describe()}")

    def register(self, conn: Conn, t: Tenant) -> Account | None:
        with self.lock:
            tag = f"u{t.next_serial():05d}"
        acc = Account(t, tag, f"{tag}.{t.slug}@{t.slug}.test", f"{tag}-{t.slug}", "Usr-" + secrets.token_urlsafe(12))
        body = {"username": acc.username, "email": acc.email, "password": acc.password}
        body.update(first_name=tag, last_name=t.slug)
        ans = self.call(conn, "register", "POST", "/api/auth/users/", tenant=t, body=body, expect={201})
        if not ans.ok:
            return None
        data = ans.data if isinstance(ans.data, dict) else {}
        if not isinstance(data.get("id"), int) or (data.get("email"), data.get("username")) != (
            acc.email,
            acc.username,
        ):
            self.stats.odd("register", "the registered user is not the one sent", ans.describe())
            return None
        acc.id = data["id"]
        with self.lock:
            (t.pending if t.require_activation else t.users).append(acc)
            self.registered += 1
        return acc

    def op_register(self, conn: Conn, rng: random.Random) -> None:
        self.register(conn, rng.choice(self.tenants))

    def activation_link(self, acc: Account) -> tuple[str, str, str] | None:
        """(host, uid, token) of the account's activation email, once it arrived."""
        assert self.run.sink is not None
        for message in self.run.sink.to(acc.email):
            link = re.search(r"(\S+)/activate/([^/\s]+)/([^/\s]+)", ms.text_of(message))
            if link:
                return link.group(1), link.group(2), link.group(3)
        return None

    def activate(self, conn: Conn, rng: random.Random, acc: Account) -> bool | None:
        """True: activated; False: not (yet); None: the email has not arrived."""
        t = acc.tenant
        found = self.activation_link(acc)
        if found is None:
            return None
        where, uid, token = found
        if where != f"https://{t.host}":
            self.stats.leak("activate", "an activation link to another host", f"{acc.email}: {where}")
            return False
        body = {"email": acc.email, "password": acc.password}
        ans = self.call(conn, "login_pending", "POST", "/api/auth/jwt/create/", tenant=t, body=body, expect={200, 401})
        if ans.ok and ans.status == 200:
            self.stats.leak("login_pending", "an account not yet activated logged in", ans.describe())
        if ans.suspended:
            return False
        path = "/api/auth/users/activation/"
        ans = self.call(conn, "activate", "POST", path, tenant=t, body={"uid": uid, "token": token}, expect={204})
        if not ans.ok:
            return False
        self.stats.event("activations")
        return True

    def op_activate(self, conn: Conn, rng: random.Random) -> None:
        with self.lock:
            waiting = [(t, a) for t in self.tenants for a in t.pending]
        ready = [(t, a) for t, a in waiting if self.activation_link(a) is not None]
        if not ready:
            self.op_me(conn, rng)
            return
        t, acc = rng.choice(ready)
        with self.lock:
            if acc not in t.pending:
                return  # another thread took it
            t.pending.remove(acc)
        done = self.activate(conn, rng, acc)
        with self.lock:
            (t.users if done else t.pending).append(acc)

    def op_foreign(self, conn: Conn, rng: random.Random) -> None:
        """A token of one tenant presented to another's host: 401."""
        t, other = rng.sample(self.tenants, 2)
        acc = self.user(conn, rng, t) if rng.random() < 0.8 else self.admin(conn, rng, t)
        if acc is None:
            return
        if rng.random() < 0.3 and acc.refresh:
            body = {"refresh": acc.refresh}
            ans = self.call(
                conn, "foreign_refresh", "POST", "/api/auth/jwt/refresh/", tenant=other, body=body, expect={200, 401}
            )
        else:
            path = rng.choice(["/api/auth/users/me/", "/api/products/"])
            ans = self.call(conn, "foreign_token", "GET", path, tenant=other, token=acc.access, expect={200, 401})
        if ans.ok and ans.status == 200:
            self.stats.leak(ans.kind, f"{other.slug} accepted a token of {t.slug}", ans.describe())
        if ans.ok:
            self.stats.event("foreign tokens refused")

    # --- suspensions, by the platform operator --------------------------------------------------

    def suspender(self, seed: int) -> None:
        rng = random.Random(seed)
        conn = Conn(self.run.nginx_port)
        try:
            while not self.stop.wait(rng.uniform(1.0, 3.0)):
                self.suspend_once(conn, rng, rng.choice(self.tenants))
        except Exception:
            self.stats.odd("suspend", "the operator's thread failed", traceback.format_exc())

    def suspend_once(self, conn: Conn, rng: random.Random, t: Tenant) -> None:
        window = Window(sent=now())
        with self.lock:
            t.windows.append(window)
        path = f"/api/platform/tenants/{t.slug}/"
        try:
            ans = self.call(
                conn,
                "suspend",
                "PATCH",
                path,
                tenant=None,
                about=t,
                token=self.operator,
                body={"is_active": False},
                expect={200},
            )
            if (
                ans.ok
                and isinstance(ans.data, dict)
                and ans.data.get("is_active") is False
                and ans.data.get("slug") == t.slug
            ):
                with self.lock:
                    window.done = ans.t1
                self.stats.event("suspensions")
            elif ans.ok:
                self.stats.odd("suspend", "the answer is not the suspended tenant", ans.describe())
            time.sleep(rng.uniform(1.0, 2.5))
        finally:
            for _ in range(5):  # back to active, whatever happened
                with self.lock:
                    window.resume_sent = window.resume_sent or now()
                ans = self.call(
                    conn,
                    "resume",
                    "PATCH",
                    path,
                    tenant=None,
                    about=t,
                    token=self.operator,
                    body={"is_active": True},
                    expect={200},
                )
                if ans.ok and isinstance(ans.data, dict) and ans.data.get("is_active") is True:
                    with self.lock:
                        window.resume_done = ans.t1
                    break
                time.sleep(1)
            else:
                raise Failure(f"{t.slug} could not be reactivated")

    # --- set-up -------------------------------------------------------------------------------------

    def must(self, ans: Answer, what: str) -> Any:
        if not ans.ok:
            raise Failure(f"set-up: {what}: {ans.describe()}")
        return ans.data

    def setup(self) -> None:
        conn = Conn(self.run.nginx_port)
        with ms.step("platform operator login on the public host", "setup") as d:
            body = {"email": self.run.operator_email, "password": self.run.operator_password}
            ans = self.call(
                conn, "operator_login", "POST", "/api/auth/jwt/create/", tenant=None, body=body, expect={200}
            )
            self.operator = self.must(ans, "operator login")["access"]
            claims = claims_of(self.operator)
            if (claims.get("tenant"), claims.get("tid")) != ("public", 0):
                raise Failure(f"the operator's token claims {claims}")
            d.append("claims public, tid 0")

        with ms.step(f"{len(self.tenants)} tenants provisioned through the platform API", "setup") as d:
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(self.provision, self.tenants))
            d.append(f"{sum(t.require_activation for t in self.tenants)} require activation")

        with ms.step(
            f"per tenant: admin login, {POOL + PUBLISHED} products ({PUBLISHED} published), "
            f"{self.args.users} users registered and logged in, {FIRST_GRANTS} grants each",
            "setup",
        ) as d:
            with ThreadPoolExecutor(self.args.concurrency) as pool:
                list(pool.map(self.populate, self.tenants))
            tids = [t.tid for t in self.tenants]
            if len(set(tids)) != len(tids) or 0 in tids:
                raise Failure(f"tenant row ids from the tokens' tid claims are not distinct: {tids}")
            d.append(f"{sum(len(t.users) for t in self.tenants)} users, {self.stats.sent} requests")
        problems = self.stats.leaks.total() + self.stats.errors.total() + self.stats.unexpected.total()
        if problems:
            lines = self.stats.leaks.report("leaks") + self.stats.errors.report("5xx")
            lines += self.stats.unexpected.report("unexpected")
            raise Failure("set-up saw problems:\n" + "\n".join(lines))

    def provision(self, t: Tenant) -> None:
        conn = Conn(self.run.nginx_port)
        body = {
            "slug": t.slug,
            "name": f"Isolation {t.slug}",
            "admin_email": f"boss@{t.slug}.test",
            "admin_password": t.password,
            "require_activation": t.require_activation,
        }
        ans = self.call(
            conn,
            "provision",
            "POST",
            "/api/platform/tenants/",
            tenant=None,
            about=t,
            token=self.operator,
            body=body,
            expect={201},
        )
        data = self.must(ans, f"provision {t.slug}")
        if (data.get("slug"), data.get("schema_name"), data.get("domains")) != (t.slug, t.schema, [t.host]):
            raise Failure(f"provisioned {t.slug}: {ans.describe()}")
        t.admin = Account(t, "admin", f"boss@{t.slug}.test", "", t.password, admin=True)

    def populate(self, t: Tenant) -> None:
        conn = Conn(self.run.nginx_port)
        rng = random.Random(f"{self.args.seed}-{t.slug}")
        admin = t.admin
        assert admin is not None
        if not self.login(conn, rng, admin):
            raise Failure(f"{t.slug}: the admin cannot log in")
        ans = self.call(conn, "me", "GET", "/api/auth/users/me/", tenant=t, token=admin.access, expect={200})
        data = self.must(ans, f"{t.slug}: users/me of the admin")
        if (data.get("id"), data.get("email"), data.get("is_superuser")) != (admin.id, admin.email, True):
            raise Failure(f"{t.slug}: the admin's users/me: {ans.describe()}")
        admin.username = str(data.get("username"))
        for i in range(POOL + PUBLISHED):
            pid = self.create(conn, rng, t, admin, "create")
            if pid is None:
                raise Failure(f"{t.slug}: product {i} not created")
            if i < PUBLISHED:
                ans = self.call(
                    conn, "publish", "POST", f"/api/products/{pid}/publish/", tenant=t, token=admin.access, expect={200}
                )
                if self.must(ans, f"{t.slug}: publish {pid}").get("is_published") is not True:
                    raise Failure(f"{t.slug}: not published: {ans.describe()}")
                t.published.add(pid)
            else:
                t.pool.append(pid)
        for _ in range(self.args.users):
            if self.register(conn, t) is None:
                raise Failure(f"{t.slug}: a registration failed")
        for acc in list(t.pending):

            def activated(acc: Account = acc) -> bool:
                done = self.activate(conn, rng, acc)
                if done is False:
                    raise Failure(f"{t.slug}: {acc.email} not activated")
                return bool(done)

            ms.wait_for(activated, timeout=60, what=f"the activation email to {acc.email}", interval=0.3)
            t.pending.remove(acc)
            t.users.append(acc)
        for acc in t.users:
            if not self.login(conn, rng, acc):
                raise Failure(f"{t.slug}: {acc.email} cannot log in")
            for pid in rng.sample(t.pool, FIRST_GRANTS):
                with self.lock:
                    state = t.grant(acc.id, pid)
                    state.pending, state.seq, state.ever = state.pending + 1, state.seq + 1, True
                body = {"user": acc.id, "permissions": PERMS}
                path = f"/api/products/{pid}/permissions/"
                ans = self.call(conn, "grant", "POST", path, tenant=t, token=admin.access, body=body, expect={200})
                if not (ans.ok and self.check_grants("grant", t, ans, acc.id, True)):
                    raise Failure(f"{t.slug}: grant of {pid} to {acc.id}: {ans.describe()}")
                with self.lock:
                    state.pending, state.seq, state.granted = state.pending - 1, state.seq + 1, True

    # --- the load ----------------------------------------------------------------------------------

    def worker(self, i: int) -> None:
        conn = Conn(self.run.nginx_port)
        rng = random.Random(self.args.seed * 1000 + i)
        names, weights = list(MIX), list(MIX.values())
        while not self.stop.is_set() and self.stats.more():
            op = rng.choices(names, weights)[0]
            try:
                self.ops[op](conn, rng)
            except Exception:
                self.stats.odd(op, "the load generator failed", traceback.format_exc()[-1500:])
        conn.close()

    def load(self) -> None:
        self.stats = Stats(self.args.requests)
        threads = [
            threading.Thread(target=self.worker, args=(i,), name=f"load-{i}", daemon=True)
            for i in range(self.args.concurrency)
        ]
        suspender = threading.Thread(target=self.suspender, args=(self.args.seed,), name="operator", daemon=True)
        print(
            f"[load] {self.args.requests} requests, {self.args.concurrency} threads, keep-alive through nginx "
            f"on :{self.run.nginx_port}, {len(self.tenants)} tenants at once; the operator suspends one at a time",
            flush=True,
        )
        self.stats.started = now()
        cpu = time.process_time()
        every = PROGRESS_EVERY if self.args.requests <= 20_000 else 4 * PROGRESS_EVERY
        for thread in threads:
            thread.start()
        suspender.start()
        try:
            last = now()
            while any(thread.is_alive() for thread in threads):
                time.sleep(0.5)
                if now() - last >= every:
                    last = now()
                    s = self.stats
                    elapsed = last - s.started
                    print(
                        f"[load] {elapsed:6.0f} s: {s.sent} requests ({s.sent / elapsed:.0f}/s), leaks "
                        f"{s.leaks.total()}, 5xx {s.errors.total()}, unexpected {s.unexpected.total()}, "
                        f"suspended answers {s.outcomes['suspended (403 tenant_suspended)']}",
                        flush=True,
                    )
            self.stats.ended = now()
            self.stats.cpu = time.process_time() - cpu
        finally:
            self.stop.set()
            for thread in threads:
                thread.join(timeout=TIMEOUT + 5)
            suspender.join(timeout=TIMEOUT * 5 + 10)
        if not self.stats.ended:
            self.stats.ended = now()

    def check_emails(self) -> int:
        """Every email the sink received names only its recipient's tenant and links to its host."""
        assert self.run.sink is not None
        checked = 0
        for message in list(self.run.sink.messages):
            to = str(message["To"] or "")
            slug = next(
                (t.slug for t in self.tenants if to.endswith(f"@{t.slug}.test>") or to.endswith(f"@{t.slug}.test")),
                None,
            )
            if slug is None:
                continue
            checked += 1
            own = next(t for t in self.tenants if t.slug == slug)
            text = f"{message['Subject']}\n{ms.text_of(message)}"
            others = {int(m) for m in self.marker.findall(text.encode())} - {own.index}
            hosts = {h for h in re.findall(r"https?://([^/\s:]+)", text) if h.endswith(BASE)} - {own.host}
            if others or hosts:
                self.stats.leak("email", "an email naming another tenant or host", f"to {to}: {sorted(others)} {hosts}")
        return checked

    # --- the summary ----------------------------------------------------------------------------

    def summary(self, setup_seconds: float, emails: int, tolerate: int) -> int:
        s = self.stats
        elapsed = max(s.ended - s.started, 1e-9)
        every = [x for values in s.latency.values() for x in values]
        users = sum(len(t.users) for t in self.tenants)
        lines = [
            "",
            "isolation under load: summary",
            f"  fleet: {len(self.tenants)} tenants ({sum(t.require_activation for t in self.tenants)} requiring "
            f"activation), {users} active plain users at the end ({self.registered} registered in all), "
            f"{sum(len(t.products) for t in self.tenants)} products",
            f"  set-up: {self.setup_stats.sent} requests, {setup_seconds:.1f} s (start-up included)",
            f"  load: {s.sent} requests in {elapsed:.1f} s = {s.sent / elapsed:.1f} req/s with {self.args.concurrency} "
            f"threads; latency p50 {percentile(every, 0.5) * 1000:.1f} ms, "
            f"p95 {percentile(every, 0.95) * 1000:.1f} ms, "
            f"max {max(every, default=0) * 1000:.0f} ms; nodes "
            + " ".join(f"{n} {c}" for n, c in sorted(s.nodes.items())),
            f"  per tenant host: {min(s.hosts[t.host] for t in self.tenants)} to "
            f"{max(s.hosts[t.host] for t in self.tenants)} requests, {s.hosts[BASE]} on the public host; "
            f"the load generator used {s.cpu:.1f} s of CPU ({100 * s.cpu / elapsed:.0f}% of one core)",
            "",
            f"  {'kind':<20} {'requests':>9} {'p50 ms':>8} {'p95 ms':>8}  statuses",
        ]
        for kind, n in sorted(s.kinds.items(), key=lambda kv: -kv[1]):
            statuses = " ".join(f"{label} x{c}" for label, c in s.statuses[kind].most_common())
            lat = s.latency[kind]
            p50, p95 = percentile(lat, 0.5) * 1000, percentile(lat, 0.95) * 1000
            lines.append(f"  {kind:<20} {n:>9} {p50:>8.1f} {p95:>8.1f}  {statuses}")
        lines += ["", "  outcomes: " + ", ".join(f"{o} {c}" for o, c in s.outcomes.most_common())]
        lines.append(
            "  refused as expected: " + (", ".join(f"{k} x{c}" for k, c in s.refusals.most_common()) or "none")
        )
        suspensions = sum(1 for t in self.tenants for w in t.windows if w.done is not None)
        lines.append(
            f"  suspensions: {suspensions}, answered 403 tenant_suspended "
            f"{s.outcomes['suspended (403 tenant_suspended)']} times; emails checked: {emails}"
        )
        lines.append("  checks that ran: " + ", ".join(f"{k} {c}" for k, c in sorted(s.events.items())))
        lines += [""] + [f"  {line}" for line in s.leaks.report("LEAKS")]
        lines += [f"  {line}" for line in s.errors.report("5xx")]
        lines += [f"  {line}" for line in s.unexpected.report("unexpected answers")]
        lines += [f"  {line}" for line in s.throttled.report("throttled (429, expected only if the limits were hit)")]
        required = {
            "suspensions": 1,
            "plain user lists checked": 1,
            "plain user details checked": 1,
            "plain user updates checked": 1,
            "grants": 1,
            "revokes": 1,
            "replays checked": 1,
            "foreign tokens refused": 1,
        }
        vacuous = [name for name, least in required.items() if s.events[name] < least]
        if not s.outcomes["suspended (403 tenant_suspended)"]:
            vacuous.append("a request answered 403 tenant_suspended")
        if not self.registered:
            vacuous.append("registrations")
        failed = []
        if s.leaks.total():
            failed.append(f"{s.leaks.total()} leaks")
        if s.errors.total():
            failed.append(f"{s.errors.total()} 5xx")
        if s.unexpected.total() > tolerate:
            failed.append(f"{s.unexpected.total()} unexpected answers (tolerated: {tolerate})")
        if vacuous:
            failed.append(f"checks that never ran: {', '.join(vacuous)}")
        lines.append("")
        lines.append(
            f"leaks {s.leaks.total()}, 5xx {s.errors.total()}, unexpected {s.unexpected.total()}: "
            + (f"ISOLATION FAILED ({'; '.join(failed)})" if failed else "isolation held")
        )
        print("\n".join(lines), flush=True)
        return 1 if failed else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=None, help="requests of the load (default 100000; --ci 5000)")
    parser.add_argument("--tenants", type=int, default=20, help="tenants (default 20)")
    parser.add_argument("--users", type=int, default=5, help="plain users per tenant at the start (default 5)")
    parser.add_argument("--concurrency", type=int, default=8, help="load threads (default 8)")
    parser.add_argument("--ci", action="store_true", help="the CI run: 5000 requests unless --requests says otherwise")
    parser.add_argument(
        "--redis-dbs", default="11,12", help="Redis databases for the cache and the broker (default 11,12)"
    )
    parser.add_argument("--seed", type=int, default=12, help="seed of the operations drawn (default 12)")
    parser.add_argument("--tolerate", type=int, default=0, help="unexpected answers tolerated (default 0)")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the logs and configuration")
    args = parser.parse_args(argv)
    if args.requests is None:
        args.requests = 5000 if args.ci else 100_000
    if args.tenants < 2 or args.users < 1 or args.concurrency < 1 or args.requests < 1:
        parser.error("--tenants must be at least 2, --users, --concurrency and --requests at least 1")
    try:
        cache_db, broker_db = (int(x) for x in args.redis_dbs.split(","))
    except ValueError:
        parser.error("--redis-dbs takes two database numbers: CACHE,BROKER")
    if cache_db == broker_db or {cache_db, broker_db} & set(SMOKE_REDIS_DBS):
        parser.error("--redis-dbs: two different databases, not multinode_smoke's {} and {}".format(*SMOKE_REDIS_DBS))
    args.cache_db, args.broker_db = cache_db, broker_db
    return args


def main() -> int:
    args = parse_args()
    # multinode_smoke reads these module constants when it builds the environment and cleans Redis.
    ms.CACHE_DB, ms.BROKER_DB = args.cache_db, args.broker_db
    ms.BUDGET = 300.0 + args.requests / 20  # its waits (set-up) are cut to what is left of it

    run = IsolationRun(keep_tmp=args.keep_tmp)
    iso = Isolation(run, args)

    def body() -> int:
        run.setup()
        run.step_ready()
        iso.setup()
        setup_seconds = time.monotonic() - ms.STARTED
        iso.load()
        time.sleep(3)  # the last activation and confirmation emails
        emails = iso.check_emails()
        code = iso.summary(setup_seconds, emails, args.tolerate)
        if code:
            run.show_logs()
        return code

    code = ms.guarded(run, "ISOLATION RUN", body, finally_=iso.stop.set)
    print(f"{time.monotonic() - ms.STARTED:.1f} s in all", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
