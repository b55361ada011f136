"""The Celery application: tenant-aware (tenant-schemas-celery), configured from
Django's settings (the CELERY_* names), with django-structlog's worker step so
task log lines carry the request id of the request that queued them.

Worker:  celery -A config worker   (make worker)
Beat:    celery -A config beat     (schedules the outbox sweep; run exactly one)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from celery import signals
from django_structlog.celery.steps import DjangoStructLogInitStep
from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# WORKER_METRICS_PORT: the worker's own Prometheus endpoint. Tasks run in the
# pool's child processes, so their counters go to prometheus_client's
# multiprocess files, set up before anything imports prometheus_client.
_METRICS_PORT = os.environ.get("WORKER_METRICS_PORT", "")
if _METRICS_PORT and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="tenantdesk-worker-metrics-")

app = CeleryApp("tenantdesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.steps["worker"].add(DjangoStructLogInitStep)
app.autodiscover_tasks(["mail"])


def _count(outcome: str) -> Any:
    def receiver(sender: Any = None, **kwargs: Any) -> None:
        from core.metrics import TASKS  # noqa: PLC0415 (settings must be loaded first)

        name = getattr(sender, "name", None) or getattr(kwargs.get("request"), "task", None) or "unknown"
        TASKS.labels(task=str(name), outcome=outcome).inc()

    return receiver


for _signal, _outcome in (
    (signals.task_success, "success"),
    (signals.task_failure, "failure"),
    (signals.task_retry, "retry"),
    (signals.task_rejected, "rejected"),
    (signals.task_revoked, "revoked"),
):
    _signal.connect(_count(_outcome), weak=False)


@signals.worker_init.connect
def _metrics_server(**kwargs: Any) -> None:
    """Serve the pool's metrics from the main process, on the pod network only."""
    if not _METRICS_PORT:
        return
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server  # noqa: PLC0415

    for stale in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"):
        stale.unlink()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    start_http_server(int(_METRICS_PORT), registry=registry)
