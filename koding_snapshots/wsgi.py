"""WSGI entry point (gunicorn koding_snapshots.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "koding_snapshots.settings")

application = get_wsgi_application()
