from typing import Any

from django.core.management.base import BaseCommand

from mail import services


class Command(BaseCommand):
    help = "Dispatch every pending email that is due (what the worker's sweep does every EMAIL_SWEEP_SECONDS)."

    def handle(self, *args: Any, **options: Any) -> None:
        count = services.sweep()
        services.wait_for_pending(timeout=60)
        self.stdout.write(f"{count} email(s) dispatched.")
