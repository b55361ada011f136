from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = "Catalog"

    def ready(self) -> None:
        # Connects the grant guard to the grant tables, which cannot be
        # imported before the app registry is ready.
        from catalog import guards  # noqa: PLC0415

        guards.connect()
