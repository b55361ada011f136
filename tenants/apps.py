from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants"

    def ready(self) -> None:
        # Connects the cache's model signals; it imports the models, which
        # cannot be imported before the app registry is ready.
        from tenants import cache  # noqa: F401, PLC0415
