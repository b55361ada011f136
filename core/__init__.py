"""Shared ground: what every app may use and nothing in the project imports
back. The API's error shape (``core.errors``), ids from URLs (``core.ids``),
permission labels (``core.labels``). Settings are read through
``django.conf.settings``, never from the project package."""
