from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants"

    def ready(self) -> None:
        # Connects the cache's model signals and the per-tenant CORS check;
        # both import the models, which cannot be imported before the app
        # registry is ready.
        from corsheaders.signals import check_request_enabled  # noqa: PLC0415

        from tenants import cache  # noqa: F401, PLC0415
        from tenants.cors import origin_allowed  # noqa: PLC0415

        # Each tenant's own allowed origins (tenants/cors.py).
        check_request_enabled.connect(origin_allowed, dispatch_uid="tenants.cors.origin_allowed")
