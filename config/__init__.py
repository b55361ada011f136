"""The project package. Importing it loads the Celery app, so that tasks
queued from Django (the outbox's dispatch) use it."""

from config.celery import app as celery_app

__all__ = ("celery_app",)
