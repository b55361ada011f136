from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from accounts import audit  # noqa: F401  (connects the audit signals)
        from config import openapi  # noqa: F401  (registers the JWT scheme)
