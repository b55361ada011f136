import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# Without a broker (EMAIL_DELIVERY=thread, the embedded default), each serving
# process sends the outbox's due emails itself: those left by a restart too.
from mail.services import start_sweeper  # noqa: E402 (Django must be set up first)

start_sweeper()
