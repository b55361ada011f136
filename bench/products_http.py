"""Product list throughput under gunicorn and wrk, against bare DRF over the same rows.

Builds bench/products.py's tenant (100,000 products, 1,000,000 object grants;
``--quick``: 10,000 and 100,000) in a throwaway database, then serves it twice
with the same gunicorn (2 sync workers, DEBUG off, Redis):

* the product: ``GET /api/products/`` (a page of 50) through the whole stack:
  tenant middleware, JWT, the permission rule, throttles, the request log line;
* bare DRF (bench/bare/): a ``ListAPIView`` over the same rows with the same
  serializer and pagination, and nothing else (no tenancy middleware, no JWT,
  no permissions).

wrk (``-t2 -c8``, Debian's package) loads each in turn, interleaved in
rounds (bare, grants user, superuser, bare, ...), so a noisy machine hits all
alike. Printed per caller: median requests per second over the rounds, its
ratio to bare DRF, and the workers' CPU per request (user + system time of the
worker processes from /proc over the requests wrk completed).

Targets (exit status 1 if one fails, unless ``--no-check``; checked at the full
size only): both callers at least 0.8x bare DRF's throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench import _common as common  # noqa: E402
from bench import products  # noqa: E402

RATIO_MIN = 0.8
WORKERS = 2
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=None, help="wrk duration per run (default 10; --quick 3)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of (bare, grants, superuser) (default 5)")
    parser.add_argument("--connections", type=int, default=8, help="wrk -c (default 8)")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7"))
    own, rest = parser.parse_known_args(argv)
    args = products.parse_args(rest)
    for name, value in vars(own).items():
        setattr(args, name, value)
    args.seconds = args.seconds or (3.0 if args.quick else 10.0)
    args.rounds = args.rounds or (2 if args.quick else 5)
    if not shutil.which("wrk"):
        parser.error("needs wrk (apt-get install wrk)")
    return args


# --- servers ----------------------------------------------------------------------------


@dataclass
class Server:
    label: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        return [int(pid) for pid in children]

    def cpu_seconds(self) -> float:
        total = 0
        for pid in self.worker_pids():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        return total / CLOCK_TICKS


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def gunicorn(label: str, env: dict[str, str], tmp: Path) -> Iterator[Server]:
    port = _free_port()
    log = tmp / f"{label}.log"
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "config.wsgi",
            "-c",
            "deploy/gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(WORKERS),
        ],
        cwd=REPO_ROOT,
        env={**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp / f"prom-{label}")},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        server = Server(label, port, process, log)
        deadline = time.monotonic() + 60
        while len(server.worker_pids()) < WORKERS or not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{label} did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _answers(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/products/?page_size=1", timeout=2)
    except urllib.error.HTTPError:
        return True  # it answers (401/404: not this caller's)
    except OSError:
        return False
    return True


def _request(port: int, host: str, path: str, body: dict[str, str] | None = None, token: str = "") -> dict[str, object]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Host": host, "Content-Type": "application/json", **({"Authorization": token} if token else {})},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, object] = json.loads(response.read())
        return answer


# --- load ------------------------------------------------------------------------------------


@dataclass
class Caller:
    label: str
    server: Server
    host: str
    token: str = ""
    count: int = 0
    rates: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)


def wrk(caller: Caller, seconds: float, connections: int) -> None:
    command = [
        "wrk",
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "-H",
        f"Host: {caller.host}",
    ]
    if caller.token:
        command += ["-H", f"Authorization: {caller.token}"]
    command.append(f"http://127.0.0.1:{caller.server.port}/api/products/")
    before = caller.server.cpu_seconds()
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    cpu = caller.server.cpu_seconds() - before
    done = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors or "Socket errors" in output:
        raise RuntimeError(f"{caller.label}: errors under load:\n{output}")
    caller.rates.append(float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)))  # type: ignore[union-attr]
    caller.cpu_ms.append(cpu / done * 1000)


def run(args: argparse.Namespace) -> common.Checks:
    from django.conf import settings

    started = time.perf_counter()
    world = products.build_world(args)
    print(f"built the tenant in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    db = settings.DATABASES["default"]
    host = db["HOST"] or "127.0.0.1"
    # The embedded PostgreSQL listens on a socket directory only (devtools.embedded_db).
    where = quote(host, safe="") if host.startswith("/") else f"{host}:{db['PORT'] or 5432}"
    database_url = f"postgres://{db['USER']}@{where}/{db['NAME']}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": args.redis_url,
        "DEBUG": "false",
        "JWT_ACCESS_MINUTES": "120",
        "EMAIL_DELIVERY": "thread",
        # Production's log format (the default outside production is the readable text
        # renderer, ~0.5 ms a request dearer than the JSON line production writes).
        "LOG_FORMAT": "json",
    }
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp_name:
        tmp = Path(tmp_name)
        bare_env = {
            **env,
            "DJANGO_SETTINGS_MODULE": "bench.bare.settings",
            "BENCH_BARE_SCHEMA": world.tenant.schema_name,
        }
        with gunicorn("product", env, tmp) as product, gunicorn("bare", bare_env, tmp) as bare:
            callers = [Caller("bare DRF", bare, "127.0.0.1")]
            for label, email in (("grants user", products.MEASURED_EMAIL), ("superuser", products.ADMIN_EMAIL)):
                login = _request(
                    product.port, world.host, "/api/auth/jwt/create/", {"email": email, "password": common.PASSWORD}
                )
                callers.append(Caller(label, product, world.host, token=f"Bearer {login['access']}"))
            for caller in callers:
                page = _request(caller.server.port, caller.host, "/api/products/", token=caller.token)
                caller.count = int(page["count"])  # type: ignore[call-overload]
                wrk(caller, 1.0, args.connections)  # warm-up, not counted
                caller.rates.clear()
                caller.cpu_ms.clear()
            for _ in range(args.rounds):
                for caller in callers:
                    wrk(caller, args.seconds, args.connections)
    return report(args, world, callers)


def report(args: argparse.Namespace, world: products.World, callers: list[Caller]) -> common.Checks:
    bare = callers[0]
    bare_rate, bare_cpu = statistics.median(bare.rates), statistics.median(bare.cpu_ms)
    print()
    print(f"Product list under gunicorn ({WORKERS} sync workers, DEBUG off, Redis): {common.server_description()}")
    print("data: " + ", ".join(f"{label} {value:,}" for label, value in world.counts.items()))
    print(
        f"GET /api/products/ (page of 50), wrk -t2 -c{args.connections}, {args.seconds:g} s per run, "
        f"{args.rounds} interleaved rounds; medians over the rounds"
    )
    print()
    common.print_header(
        f"{'caller':<12} | {'count':>7} | {'req/s':>7} | {'ratio to bare':>13} | "
        f"{'CPU ms/request':>14} | {'vs bare':>7}"
    )
    checks: common.Checks = []
    full = args.products >= products.FULL_PRODUCTS and args.grants >= products.FULL_GRANTS
    for caller in callers:
        rate, cpu = statistics.median(caller.rates), statistics.median(caller.cpu_ms)
        print(
            f"{caller.label:<12} | {caller.count:>7,} | {rate:>7.1f} | {rate / bare_rate:>13.2f} | "
            f"{cpu:>14.2f} | {cpu / bare_cpu:>6.2f}x"
        )
        if caller is not bare:
            text = f"{caller.label}: {rate / bare_rate:.2f}x bare DRF's throughput >= {RATIO_MIN}"
            if full:
                checks.append((rate / bare_rate >= RATIO_MIN, text))
            else:
                print(f"  INFO {text} (checked only at the full size)")
    print()
    rounds = "; ".join(f"{c.label} " + ", ".join(f"{r:.0f}" for r in c.rates) for c in callers)
    print(f"every round (req/s): {rounds}")
    common.print_checks(checks)
    return checks


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return common.run_in_throwaway_database(args, lambda: run(args), keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
