from django.apps import AppConfig


class FleetAppConfig(AppConfig):
    name = "bench.fleetapp"
    label = "fleetapp"
    default_auto_field = "django.db.models.BigAutoField"
