from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = "Catalog"

    def ready(self) -> None:
        # Connects the grant guard to the grant tables, which cannot be
        # imported before the app registry is ready; and lets invitations
        # (accounts, below catalog) carry grants on products.
        from accounts.invitation_grants import register_object_grants  # noqa: PLC0415
        from catalog import guards, services  # noqa: PLC0415

        guards.connect()
        register_object_grants(
            services.INVITATION_MODEL, check=services.invitation_grants_check, apply=services.invitation_grants_apply
        )
