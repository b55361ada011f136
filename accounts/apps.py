from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        # Imported here, once every app's models are loaded: the receivers
        # connect to other apps' grant tables, and the OpenAPI extension
        # registers itself on import. Neither is a circle being dodged.
        from accounts.audit import receivers  # noqa: PLC0415
        from accounts.auth import openapi  # noqa: F401, PLC0415

        receivers.connect()
