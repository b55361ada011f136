"""The product's settings plus bench/fleetapp as a tenant app, for bench/fleet.py."""

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS, TENANT_APPS

TENANT_APPS = [*TENANT_APPS, "bench.fleetapp"]
INSTALLED_APPS = [*INSTALLED_APPS, "bench.fleetapp"]
