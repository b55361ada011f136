"""gunicorn settings for production: sync workers, no threads.

Why sync workers: django-tenants keeps the current schema on the connection
and clears Django's process-wide ContentType cache on every switch; threads
serving different tenants in one process would share that cache. Scale with
processes (and machines) instead; the tenant cache, throttles and the default
cache live in Redis (REDIS_URL) so every process sees the same state.

Metrics: every worker writes its Prometheus samples to PROMETHEUS_MULTIPROC_DIR
(one directory per gunicorn instance, emptied when it starts), so a scrape of
/api/metrics/ served by any worker reports them all.
"""

import multiprocessing
import os
import tempfile
from pathlib import Path
from typing import Any

_port = os.environ.get("PORT", "8000")
bind = f"0.0.0.0:{_port}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
worker_class = "sync"
threads = 1
# Each recycled worker leaves its metrics file behind (~36 KB, read by every
# scrape until the next start): recycle rarely.
max_requests = 50_000
max_requests_jitter = 5_000
timeout = 30
graceful_timeout = 30
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# django-structlog writes the request line (JSON in production): no second access log.
accesslog = None
errorlog = "-"

os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(Path(tempfile.gettempdir()) / f"tenantdesk-prometheus-{_port}"))


def on_starting(server: Any) -> None:
    """Forget the samples of a previous run: its *.db files only (the
    directory may be one the environment shares, /tmp even)."""
    path = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess  # noqa: PLC0415 (only once workers exist)

    multiprocess.mark_process_dead(worker.pid)
