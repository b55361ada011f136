"""Benchmark tenant provisioning: SQL clone of the template vs plain migrations.

Run as ``.venv/bin/python bench/provision.py [--quick] [--clone-samples N] ...``.

It never touches the configured database: it creates a throwaway database
(``tenantdesk_bench`` by default) on the same server as the configured default
database, points Django at it before any connection opens, bootstraps it
(public schema + tenant template), measures, and drops it at the end, also on
error or interruption.

Each size (10 and 200 existing tenants, the fillers created by clone) has its
own database, all alive at once. It provisions N tenants by clone and M by
migrations, the methods spread evenly over the run (clone, migrate, clone...
when N == M) and every sample taken at every size in turn, so the noise of this
shared machine hits both methods and both sizes alike. Each measured tenant is
purged right after measuring it, so the number of existing tenants stays
constant.

The measured time of one provision is the wall-clock (``time.perf_counter``)
of the ``tenant_provision`` call minus the admin's password hash (which the
service reports in ``ProvisionTimings.password_hash``). The service's own
``ProvisionTimings.provision`` (which also leaves out input validation) is
shown next to it as a cross-check. The hash is reported on its own.

Targets (exit status 1 if one fails, unless ``--no-check``):
  * clone p50 <= 300 ms at every size;
  * migrate p50 / clone p50 >= 5 at every size;
  * clone p50 at the largest size / clone p50 at the smallest size <= 1.25.
"""

from __future__ import annotations

import argparse
import gc
import io
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench import _common as common  # noqa: E402
from bench._common import ms, percentile  # noqa: E402

CLONE_P50_MAX_MS = 300.0
MIGRATE_OVER_CLONE_MIN = 5.0
GROWTH_MAX = 1.25


# --- arguments -----------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--clone-samples", type=int, default=None, help="clone provisions per size (default 15)")
    parser.add_argument("--migrate-samples", type=int, default=None, help="migrate provisions per size (default 7)")
    parser.add_argument("--warmup", type=int, default=None, help="unmeasured provisions of each method per size (1)")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10, 200], help="numbers of existing tenants (default: 10 200)"
    )
    parser.add_argument("--quick", action="store_true", help="fewer samples, for CI (clone 5, migrate 3)")
    parser.add_argument(
        "--no-settle", dest="settle", action="store_false", help="skip VACUUM ANALYZE + CHECKPOINT before each size"
    )
    parser.add_argument("--no-check", action="store_true", help="always exit 0 when the run completes")
    common.add_db_name_argument(parser, "tenantdesk_bench")
    args = parser.parse_args(argv)
    quick = args.quick
    if args.clone_samples is None:
        args.clone_samples = 5 if quick else 15
    if args.migrate_samples is None:
        args.migrate_samples = 3 if quick else 7
    if args.warmup is None:
        args.warmup = 1
    if args.clone_samples < 1 or args.migrate_samples < 1 or args.warmup < 0:
        parser.error("sample counts must be >= 1 and --warmup >= 0")
    if len(args.sizes) < 1 or any(s < 0 for s in args.sizes):
        parser.error("--sizes must be non-negative")
    args.sizes = sorted(set(args.sizes))
    common.check_db_name(parser, args)
    return args


# --- measurement ---------------------------------------------------------------------


@dataclass
class Samples:
    provision: list[float] = field(default_factory=list)  # call minus hash, seconds
    service: list[float] = field(default_factory=list)  # ProvisionTimings.provision, seconds
    password_hash: list[float] = field(default_factory=list)


@dataclass
class SizeResult:
    size: int
    clone: Samples
    migrate: Samples
    seconds: float


def provision_once(slug: str, method: str) -> tuple[float, float, float]:
    """Provision one tenant, purge it, return (call - hash, service provision, hash) in seconds."""
    from tenants.services import ProvisionTimings, tenant_provision, tenant_purge

    timings = ProvisionTimings()
    gc.collect()
    started = time.perf_counter()
    tenant = tenant_provision(
        slug=slug,
        name=f"Bench {slug}",
        admin_email=f"admin@{slug}.bench.test",
        admin_password=common.PASSWORD,
        method=method,  # type: ignore[arg-type]
        timings=timings,
    )
    elapsed = time.perf_counter() - started
    tenant_purge(tenant=tenant, confirm=tenant.slug)
    return elapsed - timings.password_hash, timings.provision, timings.password_hash


def schedule(n_clone: int, n_migrate: int) -> list[str]:
    """Both methods spread evenly over the run: c, m, c, m... when the counts match."""
    slots = [((i + 0.5) / n_clone, 0, "clone") for i in range(n_clone)]
    slots += [((i + 0.5) / n_migrate, 1, "migrate") for i in range(n_migrate)]
    return [method for _, _, method in sorted(slots)]


def existing_tenants() -> int:
    from tenants.models import Tenant

    return Tenant.objects.filter(is_template=False).count()


def grow_to(size: int) -> None:
    """Add filler tenants (by clone) until ``size`` non-template tenants exist."""
    from django.test import override_settings

    from tenants.services import tenant_provision

    current = existing_tenants()
    # Fillers are not measured: a cheap hasher saves ~0.2 s of Argon2 each.
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        for i in range(current, size):
            slug = f"fill-{i:04d}"
            tenant_provision(
                slug=slug, name=f"Filler {i}", admin_email=f"admin@{slug}.bench.test", admin_password=common.PASSWORD
            )
    if existing_tenants() != size:
        raise RuntimeError(f"expected {size} existing tenants, found {existing_tenants()} (shrinking is unsupported)")


class Worlds:
    """One database per size, all alive at once, so that samples at every size
    can be interleaved and the machine's noise (this machine is shared) hits
    every size alike. The first size lives in the run's own database."""

    def __init__(self, sizes: list[int], primary: str) -> None:
        from django.db import connection

        self.settings = connection.settings_dict
        self.names = {size: primary if i == 0 else f"{primary}_{size}" for i, size in enumerate(sizes)}

    def use(self, size: int) -> None:
        """Point the default connection at ``size``'s database, connected (outside any timing)."""
        from django.db import connection

        if self.settings["NAME"] != self.names[size]:
            connection.close()
            self.settings["NAME"] = self.names[size]
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    def create_extra(self) -> None:
        from django.core.management import call_command

        for size, name in self.names.items():
            if name == self.settings["NAME"]:
                continue
            common.create_bench_database(self.settings, name)
            self.use(size)
            call_command("bootstrap", verbosity=0, stdout=io.StringIO())

    def drop_extra(self, primary: str) -> None:
        from django.db import connection

        connection.close()
        for name in self.names.values():
            if name != primary:
                common.drop_bench_database(self.settings, name)
        self.settings["NAME"] = primary


def measure(args: argparse.Namespace, worlds: Worlds, progress: bool) -> list[SizeResult]:
    for size in args.sizes:
        worlds.use(size)
        grow_to(size)
        if args.settle:
            common.settle()
        for i in range(args.warmup):
            for method in ("clone", "migrate"):
                provision_once(f"warm-{method[0]}-{size}-{i}", method)
    results = {size: SizeResult(size=size, clone=Samples(), migrate=Samples(), seconds=0.0) for size in args.sizes}
    for i, method in enumerate(schedule(args.clone_samples, args.migrate_samples)):
        for size in args.sizes:  # every size in turn, for every sample
            worlds.use(size)
            started = time.perf_counter()
            call, service, hashed = provision_once(f"m-{method[0]}-{size}-{i}", method)
            result = results[size]
            result.seconds += time.perf_counter() - started
            target = result.clone if method == "clone" else result.migrate
            target.provision.append(call)
            target.service.append(service)
            target.password_hash.append(hashed)
            if progress:
                print(f"  {size:>4} tenants  {method:<7} {call * 1000:8.1f} ms", file=sys.stderr)
            if existing_tenants() != size:
                raise RuntimeError("the number of existing tenants changed during measurement")
    return [results[size] for size in args.sizes]


# --- report --------------------------------------------------------------------------


def report(results: list[SizeResult], args: argparse.Namespace, server: str) -> common.Checks:
    print()
    print(f"Provisioning benchmark: {server}")
    print(
        f"samples per size: clone {args.clone_samples}, migrate {args.migrate_samples}; one database per size, "
        f"sizes and methods interleaved; warm-up {args.warmup} of each; each measured tenant purged after measuring"
    )
    print("times: wall-clock of the tenant_provision call minus the admin password hash (ms)")
    print()
    header = (
        f"{'existing':>8} | {'clone p50':>9} | {'clone p90':>9} | {'migrate p50':>11} | {'migrate p90':>11} | "
        f"{'migrate/clone':>13} | {'hash p50':>8} | {'svc clone p50':>13} | {'svc migrate p50':>15}"
    )
    common.print_header(header)
    checks: common.Checks = []
    clone_p50: dict[int, float] = {}
    for r in results:
        c50, c90 = statistics.median(r.clone.provision), percentile(r.clone.provision, 0.9)
        m50, m90 = statistics.median(r.migrate.provision), percentile(r.migrate.provision, 0.9)
        h50 = statistics.median(r.clone.password_hash + r.migrate.password_hash)
        ratio = m50 / c50
        clone_p50[r.size] = c50
        print(
            f"{r.size:>8} | {ms(c50):>9} | {ms(c90):>9} | {ms(m50):>11} | {ms(m90):>11} | {ratio:>12.1f}x | "
            f"{ms(h50):>8} | {ms(statistics.median(r.clone.service)):>13} | "
            f"{ms(statistics.median(r.migrate.service)):>15}"
        )
        checks.append(
            (
                c50 * 1000 <= CLONE_P50_MAX_MS,
                f"clone p50 at {r.size} tenants: {ms(c50)} ms <= {CLONE_P50_MAX_MS:.0f} ms",
            )
        )
        checks.append(
            (
                ratio >= MIGRATE_OVER_CLONE_MIN,
                f"migrate/clone at {r.size} tenants: {ratio:.1f} >= {MIGRATE_OVER_CLONE_MIN}",
            )
        )
    print()
    print(
        "clone min/max (ms): "
        + "; ".join(f"{r.size}: {ms(min(r.clone.provision))}/{ms(max(r.clone.provision))}" for r in results)
    )
    print(
        "migrate min/max (ms): "
        + "; ".join(f"{r.size}: {ms(min(r.migrate.provision))}/{ms(max(r.migrate.provision))}" for r in results)
    )
    if len(results) >= 2:
        small, large = results[0].size, results[-1].size
        growth = clone_p50[large] / clone_p50[small]
        print(
            f"clone p50({large}) / clone p50({small}) = {ms(clone_p50[large])} / {ms(clone_p50[small])} = {growth:.2f}"
        )
        checks.append((growth <= GROWTH_MAX, f"clone p50({large}) / p50({small}): {growth:.2f} <= {GROWTH_MAX}"))
    print()
    common.print_checks(checks)
    return checks


# --- main ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def run() -> common.Checks:
        progress = sys.stderr.isatty()
        server = common.server_description()
        worlds = Worlds(args.sizes, args.db_name)
        try:
            worlds.create_extra()
            started = time.perf_counter()
            results = measure(args, worlds, progress)
            print(f"measured in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        finally:
            worlds.drop_extra(args.db_name)
        return report(results, args, server)

    return common.run_in_throwaway_database(args, run)


if __name__ == "__main__":
    raise SystemExit(main())
