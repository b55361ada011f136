"""Citus: which worker holds each tenant, and moving a tenant to another worker."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from core.errors import ApplicationError
from tenants import citus, selectors, services


class Command(BaseCommand):
    help = (
        "On Citus: list the workers and the tenants each holds (or the node of the tenants named), "
        "or move a tenant to another worker with --move SLUG --to HOST:PORT."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("slugs", nargs="*", help="show these tenants' nodes (default: a summary per worker)")
        parser.add_argument("--move", metavar="SLUG", help="the tenant to move")
        parser.add_argument("--to", metavar="HOST:PORT", help="the worker to move it to")
        parser.add_argument(
            "--mode",
            choices=citus.TRANSFER_MODES,
            default="block_writes",
            help="block_writes (default: the tenant's writes wait for the copy), force_logical (it keeps "
            "serving; needs wal_level=logical), auto (Citus chooses)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not citus.is_citus():
            raise CommandError("This database is not a Citus coordinator: every tenant is on it.")
        try:
            if options["move"]:
                self._move(options["move"], options["to"], options["mode"])
            elif options["slugs"]:
                for slug in options["slugs"]:
                    placement = selectors.tenant_placement(tenant=selectors.tenant_get(slug=slug))
                    self.stdout.write(f"{slug}\t{placement['schema']}\t{placement['node'] or 'local'}")
            else:
                for row in selectors.node_summary():
                    node = row["node"] or "local (not distributed)"
                    size = f"{row['size_bytes'] // 1024} KiB" if isinstance(row["size_bytes"], int) else ""
                    self.stdout.write(f"{node}\t{row['tenants']} tenants\t{size}")
        except ApplicationError as exc:
            raise CommandError(exc.message) from None

    def _move(self, slug: str, to: str | None, mode: str) -> None:
        if not to:
            raise CommandError("--move needs --to HOST:PORT (one of: " + ", ".join(citus.worker_nodes()) + ").")
        tenant = selectors.tenant_get(slug=slug)
        before = selectors.tenant_placement(tenant=tenant)["node"]
        started = time.perf_counter()
        after = services.tenant_move(tenant=tenant, to_node=to, mode=mode)
        self.stdout.write(f"{slug}: {before} -> {after['node']} in {time.perf_counter() - started:.1f} s ({mode})")
