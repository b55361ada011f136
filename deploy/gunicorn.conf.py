"""gunicorn settings for production: sync workers, no threads.

Why sync workers: django-tenants keeps the current schema on the connection
and clears Django's process-wide ContentType cache on every switch; threads
serving different tenants in one process would share that cache. Scale with
processes (and machines) instead; the tenant cache, throttles and the default
cache live in Redis (REDIS_URL) so every process sees the same state.
"""

import multiprocessing
import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
worker_class = "sync"
threads = 1
max_requests = 2000
max_requests_jitter = 200
timeout = 30
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"
