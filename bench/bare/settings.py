"""The product's settings with everything between the request and DRF's
ListAPIView taken away (see bench/bare/__init__.py). BENCH_BARE_SCHEMA names
the tenant schema the rows are in."""

import os

from config.settings import *  # noqa: F403
from config.settings import DATABASES, REST_FRAMEWORK

MIDDLEWARE = []  # nothing between the request and the view
ROOT_URLCONF = "bench.bare.urls"
DATABASES["default"] = {
    **DATABASES["default"],
    "ENGINE": "django.db.backends.postgresql",
    "OPTIONS": {"options": f"-c search_path={os.environ['BENCH_BARE_SCHEMA']},public"},
}
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_THROTTLE_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
}
